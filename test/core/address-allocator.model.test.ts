/**
 * Model-based tests of AddressAllocator: random operation sequences run against the allocator
 * and the obviously-correct reference model in ./models/address-model.ts, comparing every result
 * and running checkValid() after every step; plus snapshot round trips and snapshot fuzzing.
 *
 * Seeds are fixed so CI is reproducible; set FC_SEED to explore other sequences.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AddressAllocator, AllocatorError, AllocPolicy, formatRange, RangeInclusive } from "../../src/index.js";
import {
  AddressModel,
  alignDown,
  alignUp,
  snapshotProblem,
  type ModelPolicy,
  type ModelRange,
  type ModelResult,
} from "../models/address-model.js";

const TWO64 = 1n << 64n;
const U64_MAX = TWO64 - 1n;
const P63 = 1n << 63n;
const P53 = 1n << 53n;
const P32 = 1n << 32n;
const SEED = process.env["FC_SEED"] === undefined ? 0x5eed_a110 : Number(process.env["FC_SEED"]);

/** FC_QUICK=1 stops at the first failure without shrinking (for quick mutation checks). */
const QUICK = process.env["FC_QUICK"] === "1";
const params = (numRuns: number, seedOffset: number) => ({ numRuns, seed: SEED + seedOffset, includeErrorInReport: true, endOnFailure: QUICK });

let opsExecuted = 0;
/** How often each kind of outcome happened, to show the generators reach every rule. */
const outcomes = new Map<string, number>();
const tally = (key: string): void => {
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
};
const opsByTest = new Map<string, number>();

// ---- pools ------------------------------------------------------------------------------------

interface Pool {
  readonly name: string;
  readonly base: bigint;
  readonly size: bigint;
}

const POOLS: readonly Pool[] = [
  { name: "[0, 63]", base: 0n, size: 64n },
  { name: "[1, 100] odd base", base: 1n, size: 100n },
  { name: "[0x1000, 0x20fff] pages", base: 0x1000n, size: 0x20000n },
  { name: "around 2^32", base: P32 - 48n, size: 96n },
  { name: "around 2^53", base: P53 - 40n, size: 80n },
  { name: "around 2^63", base: P63 - 64n, size: 128n },
  { name: "top 16 [2^64-16, 2^64-1]", base: U64_MAX - 15n, size: 16n },
  { name: "top 100 (unaligned base)", base: TWO64 - 100n, size: 100n },
  { name: "top 256", base: TWO64 - 256n, size: 256n },
  { name: "top 1 MiB", base: TWO64 - (1n << 20n), size: 1n << 20n },
  { name: "one address at 2^64-1", base: U64_MAX, size: 1n },
  { name: "whole space", base: 0n, size: TWO64 },
  { name: "[1, 2^64-1]", base: 1n, size: U64_MAX },
  { name: "[0, 2^64-2]", base: 0n, size: U64_MAX },
  { name: "upper half", base: P63, size: P63 },
  // Gap lengths beyond float32 (2^24) and float64 (2^53) precision, with odd starts.
  { name: "32 MiB + 3 at an odd base", base: 0x7n, size: (1n << 25n) + 3n },
  { name: "2^54 + 5 at base 3", base: 3n, size: (1n << 54n) + 5n },
];

const randomPool: fc.Arbitrary<Pool> = fc
  .tuple(fc.bigInt(0n, U64_MAX), fc.bigInt(0n, U64_MAX), fc.constantFrom(64n, 4096n, P32, TWO64))
  .map(([base, r, limit]) => {
    const room = TWO64 - base;
    const size = 1n + (r % (room < limit ? room : limit));
    return { name: `random [${base}, +${size}]`, base, size };
  });

// ---- raw operations -----------------------------------------------------------------------------

/**
 * Operations are generated as raw random numbers and turned into concrete calls against the
 * current state when they run (see `materialize`), so shrinking keeps them meaningful.
 */
type RawOp =
  | {
      readonly t: "alloc";
      readonly policy: number;
      readonly sizeMode: number;
      readonly alignMode: number;
      readonly addrMode: number;
      readonly r1: bigint;
      readonly r2: bigint;
      readonly r3: bigint;
      readonly window: { readonly mode: number; readonly a: bigint; readonly b: bigint } | null;
      readonly owner: number;
      readonly form: number;
    }
  | { readonly t: "free"; readonly mode: number; readonly k: number; readonly r: bigint }
  | { readonly t: "release"; readonly owner: number }
  | { readonly t: "query"; readonly r: bigint }
  | { readonly t: "roundtrip"; readonly viaClone: boolean };

const u64 = fc.bigInt(0n, U64_MAX);

const allocArb = (alignModes: number) =>
  fc.record({
    t: fc.constant("alloc" as const),
    policy: fc.nat(9),
    sizeMode: fc.nat(40),
    alignMode: fc.nat(alignModes),
    addrMode: fc.nat(12),
    r1: u64,
    r2: u64,
    r3: u64,
    window: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.record({ mode: fc.nat(9), a: u64, b: u64 }) }),
    owner: fc.nat(6),
    form: fc.nat(3),
  });

const rawOpArb = (options: { alignModes?: number; allocWeight?: number; freeWeight?: number } = {}): fc.Arbitrary<RawOp> =>
  fc.oneof(
    { weight: options.allocWeight ?? 10, arbitrary: allocArb(options.alignModes ?? 24) },
    { weight: options.freeWeight ?? 6, arbitrary: fc.record({ t: fc.constant("free" as const), mode: fc.nat(13), k: fc.nat(), r: u64 }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("release" as const), owner: fc.nat(6) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("query" as const), r: u64 }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant("roundtrip" as const), viaClone: fc.boolean() }) },
  );

const OWNERS = [undefined, undefined, "a", "b", "virtio-blk0", "c", "a"] as const;
const ownerOf = (n: number): string | undefined => OWNERS[n % OWNERS.length];

const bitLength = (v: bigint): number => (v === 0n ? 0 : v.toString(2).length);
const clampU64 = (v: bigint): bigint => (v < 0n ? 0n : v > U64_MAX ? U64_MAX : v);
const pick = <T>(xs: readonly T[], r: bigint): T | undefined => (xs.length === 0 ? undefined : xs[Number(r % BigInt(xs.length))]);

/** A concrete call. Sizes, alignments and addresses are valid u64 values. */
type Op =
  | {
      readonly t: "alloc";
      readonly size: bigint;
      readonly alignment: bigint;
      readonly policy: ModelPolicy;
      readonly owner: string | undefined;
      readonly window: { readonly min: bigint; readonly max: bigint } | undefined;
      readonly form: number;
    }
  | { readonly t: "free"; readonly range: ModelRange; readonly asRange: boolean }
  | { readonly t: "release"; readonly owner: string }
  | { readonly t: "query"; readonly r: bigint }
  | { readonly t: "roundtrip"; readonly viaClone: boolean };

interface Context {
  readonly model: AddressModel;
  /** Ranges freed earlier, for "already freed" attempts. */
  readonly freed: ModelRange[];
  /** Alignment (as a shift) choices of this run; empty means "any, scaled to the pool". */
  readonly alignShifts: readonly number[];
}

function chooseSize(op: Extract<RawOp, { t: "alloc" }>, m: AddressModel): bigint {
  if (op.sizeMode === 0) return 0n; // InvalidSize
  const s = chooseSizeRaw(op, m);
  return s < 1n ? 1n : s > U64_MAX ? U64_MAX : s;
}

function chooseSizeRaw(op: Extract<RawOp, { t: "alloc" }>, m: AddressModel): bigint {
  const { sizeMode: mode, r1 } = op;
  const poolBits = bitLength(m.size);
  if (mode === 0) return 0n; // InvalidSize
  if (mode <= 10) return 1n + (r1 % 16n);
  if (mode <= 16) return 1n << BigInt(Number(r1 % BigInt(poolBits)));
  if (mode <= 20) return clampU64((1n << BigInt(Number(r1 % BigInt(poolBits)))) + (r1 % 3n) - 1n) || 1n;
  if (mode <= 26) return 1n + (r1 % (m.size / 8n > 0n ? m.size / 8n : 1n));
  if (mode <= 30) return 1n + (r1 % (m.size < U64_MAX ? m.size : U64_MAX));
  if (mode <= 33) return clampU64(m.size - 1n + (r1 % 3n)) || 1n; // pool size - 1, pool size, + 1
  const free = pick(m.freeRanges(), r1);
  if (free === undefined) return 1n + (r1 % 4n);
  return clampU64(free.end - free.start + 1n + (r1 % 3n) - 1n) || 1n; // a free block's size +- 1
}

function chooseAlignment(op: Extract<RawOp, { t: "alloc" }>, ctx: Context): bigint {
  const { alignMode: mode, r2 } = op;
  if (ctx.alignShifts.length > 0) {
    if (mode === 0) return pick([0n, 3n, 0x1800n, U64_MAX], r2)!;
    return 1n << BigInt(pick(ctx.alignShifts, r2 + BigInt(mode))!);
  }
  if (mode === 0) return pick([0n, 3n, 6n, 0x1001n, U64_MAX, P63 + P63 / 2n], r2)!; // InvalidAlignment
  if (mode === 1) return P63;
  if (mode <= 8) return 1n;
  const poolBits = bitLength(ctx.model.size);
  const shift = Number(r2 % BigInt(poolBits + 3));
  return 1n << BigInt(shift > 63 ? 63 : shift);
}

function chooseAddress(op: Extract<RawOp, { t: "alloc" }>, m: AddressModel, size: bigint, align: bigint): bigint {
  const { addrMode: mode, r3 } = op;
  const validAlign = align > 0n && (align & (align - 1n)) === 0n ? align : 1n;
  const down = (v: bigint) => (v < 0n ? 0n : alignDown(clampU64(v), validAlign));
  const up = (v: bigint) => clampU64(alignUp(v < 0n ? 0n : v, validAlign));
  switch (mode) {
    case 0:
    case 1:
    case 2:
      return down(m.base + (r3 % m.size));
    case 3:
      return clampU64(m.base + (r3 % m.size)); // usually unaligned for large alignments
    case 4: {
      const f = pick(m.freeRanges(), r3);
      return f === undefined ? m.base : up(f.start);
    }
    case 5: {
      const f = pick(m.freeRanges(), r3);
      return f === undefined ? m.base : down(f.end - size + 1n);
    }
    case 6:
    case 7: {
      const a = pick(m.allocations(), r3);
      if (a === undefined) return m.base;
      const edge = pick([a.start, a.end, a.end + 1n, a.start - size, a.start - size + 1n, a.end - size + 1n], r3 / 7n)!;
      return mode === 6 ? clampU64(edge) : down(edge);
    }
    case 8:
      return m.base > 0n ? clampU64(m.base - 1n - (r3 % 4n)) : clampU64(m.end + 1n); // below the pool
    case 9:
      return down(m.end - size + 2n); // crossing the pool end
    case 10:
      return down(U64_MAX - size + 2n); // past 2^64-1
    case 11:
      return down(U64_MAX);
    default:
      return down(r3);
  }
}

function chooseWindow(op: Extract<RawOp, { t: "alloc" }>, m: AddressModel, size: bigint): { min: bigint; max: bigint } | undefined {
  const w = op.window;
  if (w === null) return undefined;
  const span = (r: bigint, limit: bigint) => r % (limit > 0n ? limit : 1n);
  switch (w.mode) {
    case 0:
    case 1:
    case 2: {
      const min = m.base + span(w.a, m.size);
      return { min, max: clampU64(min + span(w.b, m.size)) };
    }
    case 3: {
      const min = m.base + span(w.a, m.size);
      return { min, max: clampU64(min + size - 1n + (w.b % 3n) - 1n) }; // just fits, one short, one more
    }
    case 4: {
      const f = pick(m.freeRanges(), w.a);
      return f === undefined ? undefined : { min: f.start, max: f.end };
    }
    case 5:
      return { min: 0n, max: U64_MAX };
    case 6: {
      const x = m.base + span(w.a, m.size);
      return x > 0n ? { min: x, max: x - 1n - span(w.b, 4n) < 0n ? 0n : x - 1n - span(w.b, 4n) } : { min: 1n, max: 0n }; // min > max
    }
    case 7:
      return m.end < U64_MAX ? { min: m.end + 1n, max: clampU64(m.end + 1n + span(w.b, 1000n)) } : { min: 0n, max: m.base === 0n ? 0n : m.base - 1n };
    case 8:
      return { min: clampU64(m.base - span(w.a, 8n)), max: clampU64(m.base + span(w.b, m.size)) };
    default:
      return { min: clampU64(m.end - span(w.a, m.size)), max: clampU64(m.end + span(w.b, 8n)) };
  }
}

function chooseFree(op: Extract<RawOp, { t: "free" }>, ctx: Context): ModelRange {
  const m = ctx.model;
  const all = m.allocations();
  const live = all.length === 0 ? undefined : all[op.k % all.length]!;
  const r = op.r;
  switch (op.mode) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
      if (live !== undefined) return { start: live.start, end: live.end };
      break;
    case 6: // a part of an allocation
      if (live !== undefined && live.end > live.start) return r % 2n === 0n ? { start: live.start + 1n, end: live.end } : { start: live.start, end: live.end - 1n };
      break;
    case 7: // more than an allocation
      if (live !== undefined) {
        if (r % 2n === 0n && live.start > 0n) return { start: live.start - 1n, end: live.end };
        if (live.end < U64_MAX) return { start: live.start, end: live.end + 1n };
      }
      break;
    case 8: // two neighbouring allocations
      if (all.length >= 2) {
        const i = op.k % (all.length - 1);
        return { start: all[i]!.start, end: all[i + 1]!.end };
      }
      break;
    case 9: {
      const f = pick(ctx.freed, r);
      if (f !== undefined) return f;
      break;
    }
    case 10: {
      const f = pick(m.freeRanges(), r);
      if (f !== undefined) return { start: f.start, end: f.end };
      break;
    }
    case 11: // outside or across the pool edges
      if (m.base > 0n && r % 2n === 0n) return { start: m.base - 1n, end: m.base + (r % 4n < m.size ? r % 4n : 0n) };
      if (m.end < U64_MAX) return { start: m.end - (r % 4n < m.size ? r % 4n : 0n), end: m.end + 1n };
      break;
    case 12: {
      const start = m.base + (r % m.size);
      return { start: start + 1n > U64_MAX ? start : start + 1n, end: start }; // reversed unless at 2^64-1
    }
    default:
      break;
  }
  const start = m.base + (r % m.size);
  return { start, end: clampU64(start + (r % 5n)) };
}

function materialize(raw: RawOp, ctx: Context): Op {
  const m = ctx.model;
  switch (raw.t) {
    case "alloc": {
      const size = chooseSize(raw, m);
      const alignment = chooseAlignment(raw, ctx);
      const kind = raw.policy < 4 ? "FirstMatch" : raw.policy < 7 ? "LastMatch" : "ExactMatch";
      const policy: ModelPolicy = kind === "ExactMatch" ? { kind, address: chooseAddress(raw, m, size, alignment) } : { kind };
      return { t: "alloc", size, alignment, policy, owner: ownerOf(raw.owner), window: chooseWindow(raw, m, size), form: raw.form };
    }
    case "free":
      return { t: "free", range: chooseFree(raw, ctx), asRange: raw.k % 2 === 0 };
    case "release":
      return { t: "release", owner: ownerOf(raw.owner) ?? "a" };
    case "query":
    case "roundtrip":
      return raw;
  }
}

// ---- running one operation on both --------------------------------------------------------------

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: AllocatorError };

function attempt<T>(f: () => T): Outcome<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof AllocatorError) return { ok: false, error: e };
    throw e;
  }
}

/** Passes numbers instead of bigints now and then, when they are safe integers. */
const num = (v: bigint, flip: boolean): bigint | number => (flip && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

function callAllocate(a: AddressAllocator, op: Extract<Op, { t: "alloc" }>): RangeInclusive {
  const flip = op.form >= 2;
  const policy = op.policy.kind === "ExactMatch" ? AllocPolicy.ExactMatch(num(op.policy.address, flip)) : AllocPolicy[op.policy.kind];
  const window = op.window === undefined ? undefined : { min: num(op.window.min, flip), max: num(op.window.max, !flip) };
  if (op.form % 2 === 0) {
    return a.allocate({
      size: num(op.size, flip),
      alignment: num(op.alignment, !flip),
      policy,
      ...(op.owner === undefined ? {} : { owner: op.owner }),
      ...(window === undefined ? {} : { window }),
    });
  }
  return a.allocate(num(op.size, flip), num(op.alignment, flip), policy, {
    ...(op.owner === undefined ? {} : { owner: op.owner }),
    ...(window === undefined ? {} : { window }),
  });
}

const show = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `0x${x.toString(16)}` : x));

function compareOutcome(real: Outcome<{ start: bigint; end: bigint } | undefined | void>, expected: ModelResult<ModelRange | undefined>, what: string): void {
  if (expected.ok) {
    assert.ok(real.ok, `${what}: expected success ${show(expected.value)}, got ${real.ok ? "" : `${real.error.code}: ${real.error.message}`}`);
    if (expected.value !== undefined) {
      assert.ok(real.value instanceof RangeInclusive, `${what}: allocate must return a RangeInclusive`);
      assert.deepEqual([real.value.start, real.value.end], [expected.value.start, expected.value.end], what);
    }
    return;
  }
  assert.ok(!real.ok, `${what}: expected ${[...expected.codes].join("|")}, got success ${show(real.ok ? real.value : undefined)}`);
  assert.ok(expected.codes.has(real.error.code), `${what}: expected ${[...expected.codes].join("|")}, got ${real.error.code}: ${real.error.message}`);
  if (real.error.code === "Overlap") {
    // The message names a conflicting allocation (Linux style) and error.owner is its owner.
    const named = expected.conflicts.filter((c) => real.error.message.includes(formatRange(c.start, c.end)));
    assert.ok(named.length > 0, `${what}: Overlap message must name a conflicting range: ${real.error.message}`);
    assert.ok(
      named.some((c) => c.owner === real.error.owner && (c.owner === undefined || real.error.message.includes(`conflicts with ${c.owner} ${formatRange(c.start, c.end)}`))),
      `${what}: Overlap owner ${String(real.error.owner)} / message ${real.error.message}`,
    );
  }
}

const modelAllocs = (m: AddressModel) => m.allocations().map((a) => [a.start, a.end, a.owner]);
const realAllocs = (a: AddressAllocator) => [...a.allocations()].map((x) => [x.range.start, x.range.end, x.owner]);
const modelFrees = (m: AddressModel) => m.freeRanges().map((r) => [r.start, r.end]);
const realFrees = (a: AddressAllocator) => [...a.freeRanges()].map((r) => [r.start, r.end]);

function compareState(a: AddressAllocator, m: AddressModel, what: string): void {
  a.checkValid();
  assert.equal(a.allocationCount, m.allocationCount, `${what}: allocationCount`);
  assert.equal(a.allocatedSize, m.allocatedSize, `${what}: allocatedSize`);
  assert.equal(a.availableSize, m.availableSize, `${what}: availableSize`);
  assert.deepEqual(realAllocs(a), modelAllocs(m), `${what}: allocations()`);
  assert.deepEqual(realFrees(a), modelFrees(m), `${what}: freeRanges()`);
}

function compareQueries(a: AddressAllocator, m: AddressModel, r: bigint, what: string): void {
  const probes = [a.base, a.end, a.base + (r % a.size), clampU64(a.end + 1n), a.base === 0n ? 0n : a.base - 1n];
  for (const x of m.allocations().slice(0, 3)) probes.push(x.start, x.end, x.end + 1n > U64_MAX ? x.end : x.end + 1n);
  for (const p of probes) {
    const f = a.find(p);
    const e = m.find(p);
    assert.deepEqual(f === undefined ? undefined : [f.range.start, f.range.end, f.owner], e === undefined ? undefined : [e.start, e.end, e.owner], `${what}: find(${p})`);
  }
  for (const x of m.allocations().slice(0, 3)) {
    assert.equal(a.isAllocated({ start: x.start, end: x.end }), true, `${what}: isAllocated`);
    if (x.end > x.start) assert.equal(a.isAllocated({ start: x.start, end: x.end - 1n }), false, `${what}: isAllocated part`);
  }
  assert.deepEqual(new Set(a.owners()), m.owners(), `${what}: owners()`);
  assert.equal(a.owners().length, m.owners().size, `${what}: owners() has no duplicates`);
  for (const o of ["a", "b", "c", "virtio-blk0", "nobody"]) {
    assert.deepEqual(
      a.allocationsOf(o).map((x) => [x.start, x.end]),
      m.allocationsOf(o).map((x) => [x.start, x.end]),
      `${what}: allocationsOf(${o})`,
    );
  }
}

/** Runs `op` on the allocator and the model and compares; returns the allocator to use next. */
function step(a: AddressAllocator, ctx: Context, op: Op, what: string): AddressAllocator {
  const m = ctx.model;
  opsExecuted++;
  switch (op.t) {
    case "alloc": {
      const expected = m.allocate(op);
      const real = attempt(() => callAllocate(a, op));
      compareOutcome(real, expected, what);
      tally(`allocate ${op.policy.kind}${op.window === undefined ? "" : " in window"}: ${real.ok ? "ok" : real.error.code}`);
      break;
    }
    case "free": {
      const expected = m.free(op.range);
      const real = attempt(() => a.free(op.asRange && op.range.start <= op.range.end ? new RangeInclusive(op.range.start, op.range.end) : op.range));
      compareOutcome(real, expected, what);
      tally(`free: ${real.ok ? "ok" : real.error.code}`);
      if (expected.ok) {
        ctx.freed.push(op.range);
        if (ctx.freed.length > 16) ctx.freed.shift();
      }
      break;
    }
    case "release": {
      const expected = m.releaseOwner(op.owner);
      const real = a.releaseOwner(op.owner);
      assert.deepEqual(
        real.map((r) => [r.start, r.end]),
        expected.map((r) => [r.start, r.end]),
        what,
      );
      for (const r of expected) ctx.freed.push(r);
      while (ctx.freed.length > 16) ctx.freed.shift();
      break;
    }
    case "query":
      compareQueries(a, m, op.r, what);
      break;
    case "roundtrip": {
      const restored = op.viaClone ? a.clone() : AddressAllocator.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
      assert.deepEqual(restored.toJSON(), a.toJSON(), `${what}: round trip`);
      a = restored;
      break;
    }
  }
  compareState(a, m, what);
  return a;
}

/** Runs a whole sequence from an empty allocator over `pool`; throws on the first difference. */
function runSequence(pool: Pool, raws: readonly RawOp[], alignShifts: readonly number[] = []): number {
  let a = new AddressAllocator(pool.base, pool.size);
  const ctx: Context = { model: new AddressModel(pool.base, pool.size), freed: [], alignShifts };
  compareState(a, ctx.model, "initial");
  raws.forEach((raw, i) => {
    const op = materialize(raw, ctx);
    a = step(a, ctx, op, `${pool.name} step ${i} ${show(op)}`);
  });
  compareQueries(a, ctx.model, 12345n, `${pool.name} final`);
  return raws.length;
}

function counted(name: string, body: () => void): () => void {
  return () => {
    const before = opsExecuted;
    body();
    opsByTest.set(name, opsExecuted - before);
  };
}

// ---- the tests -------------------------------------------------------------------------------------

describe("AddressAllocator against the reference model", () => {
  for (const [i, pool] of POOLS.entries()) {
    const name = `random operations on ${pool.name}`;
    it(
      name,
      counted(name, () => {
        fc.assert(
          fc.property(fc.array(rawOpArb(), { maxLength: 450, size: "max" }), (raws) => {
            runSequence(pool, raws);
          }),
          params(26, i),
        );
      }),
    );
  }

  const name = "random operations on random pools";
  it(
    name,
    counted(name, () => {
      fc.assert(
        fc.property(randomPool, fc.array(rawOpArb(), { maxLength: 150, size: "max" }), (pool, raws) => {
          runSequence(pool, raws);
        }),
        params(150, 100),
      );
    }),
  );

  const fragName = "fragmenting a small pool with frees and reallocations";
  it(
    fragName,
    counted(fragName, () => {
      fc.assert(
        fc.property(
          fc.constantFrom(POOLS[0]!, POOLS[1]!, POOLS[6]!, POOLS[7]!),
          fc.array(rawOpArb({ allocWeight: 10, freeWeight: 10 }), { maxLength: 300, size: "max" }),
          (pool, raws) => {
            runSequence(pool, raws);
          },
        ),
        params(60, 200),
      );
    }),
  );
});

describe("many alignments (annotations per alignment and their eviction) against the model", () => {
  // 14 distinct alignments, more than MAX_ALIGNMENT_CLASSES, over pools whose gap starts are
  // mostly unaligned (odd base, odd sizes) so the per-alignment annotations are built and evicted.
  const SHIFTS = [0, 1, 3, 4, 8, 12, 13, 15, 16, 17, 20, 21, 24, 63];
  const pools: Pool[] = [
    { name: "odd base 16 MiB", base: 0x3n, size: 1n << 24n },
    { name: "base 0 16 MiB", base: 0n, size: 1n << 24n },
    { name: "top 16 MiB", base: TWO64 - (1n << 24n) + 5n, size: (1n << 24n) - 5n },
    { name: "whole space", base: 0n, size: TWO64 },
  ];
  for (const [i, pool] of pools.entries()) {
    const name = `random alignments on ${pool.name}`;
    it(
      name,
      counted(name, () => {
        fc.assert(
          fc.property(fc.array(rawOpArb({ alignModes: 40, allocWeight: 14 }), { maxLength: 400, size: "max" }), (raws) => {
            runSequence(pool, raws, SHIFTS);
          }),
          params(20, 300 + i),
        );
      }),
    );
  }

  const rr = "round-robin alignments evict every annotation in turn";
  it(
    rr,
    counted(rr, () => {
      // Deterministic: many odd-sized allocations, then FirstMatch/LastMatch requests cycling
      // through all alignments (least recently used goes first, so every request rebuilds),
      // interleaved with frees, each checked against the model.
      const pool: Pool = { name: "round robin", base: 0x1001n, size: 1n << 22n };
      let a = new AddressAllocator(pool.base, pool.size);
      const ctx: Context = { model: new AddressModel(pool.base, pool.size), freed: [], alignShifts: SHIFTS };
      let n = 0;
      const doStep = (op: Op) => {
        a = step(a, ctx, op, `round robin step ${n++} ${show(op)}`);
      };
      for (let i = 0; i < 200; i++) {
        doStep({ t: "alloc", size: BigInt(1 + ((i * 7919) % 97)), alignment: 1n, policy: { kind: "FirstMatch" }, owner: undefined, window: undefined, form: 0 });
      }
      for (let round = 0; round < 40; round++) {
        for (const [j, shift] of SHIFTS.entries()) {
          const size = BigInt(1 + ((round * 131 + j * 17) % 3000));
          const kind = (round + j) % 2 === 0 ? "FirstMatch" : "LastMatch";
          const window = round % 5 === 0 ? { min: pool.base + BigInt(round * 997), max: pool.base + pool.size - 1n - BigInt(j * 4099) } : undefined;
          doStep({ t: "alloc", size, alignment: 1n << BigInt(shift), policy: { kind }, owner: j % 3 === 0 ? "rr" : undefined, window, form: j % 4 });
        }
        const live = ctx.model.allocations();
        for (let k = 0; k < 5 && live.length > 0; k++) {
          const victim = live[(round * 37 + k * 11) % live.length]!;
          if (ctx.model.isAllocated(victim.start, victim.end)) doStep({ t: "free", range: { start: victim.start, end: victim.end }, asRange: k % 2 === 0 });
        }
        if (round % 10 === 9) doStep({ t: "release", owner: "rr" });
      }
    }),
  );
});

describe("tight fits at the float32 / float64 precision edges against the model", () => {
  // Gaps of length L-1, L+1 and L (low to high) with misaligned starts; requests of L-1, L and
  // L+1 bytes at several alignments must land exactly where the model says (or fail the same).
  const LENGTHS = [
    (1n << 24n) - 1n, 1n << 24n, (1n << 24n) + 1n, (1n << 24n) + 3n, (1n << 25n) + 1n, 3n * (1n << 24n) + 1n,
    (1n << 31n) + 1n, (1n << 32n) + 5n, (1n << 52n) + 1n, P53 - 1n, P53, P53 + 1n, P53 + 2n, P53 + 3n,
    (1n << 54n) + 3n, (1n << 60n) + 1n, (1n << 62n) + 1n, P63 - 1n, P63, P63 + 1n, U64_MAX - 9n,
  ];
  const ALIGNS = [1n, 2n, 8n, 1n << 12n, 1n << 20n, 1n << 31n, 1n << 32n, 1n << 40n];
  const name = "requests of L-1, L, L+1 bytes among gaps of L-1, L, L+1 bytes";
  it(
    name,
    counted(name, () => {
      for (const L of LENGTHS) {
        for (const sep of [1n, 6n]) {
          // Lay the gaps out from address 5 upwards, separated by `sep`-byte allocations,
          // dropping the smallest ones when they do not fit in the space.
          let lengths = [L - 1n, L + 1n, L];
          const total = (ls: bigint[]) => 5n + ls.reduce((x, y) => x + y + sep, 0n);
          while (lengths.length > 1 && total(lengths) > TWO64) lengths = lengths.slice(1);
          if (total(lengths) > TWO64) lengths = [U64_MAX - 5n];
          let a = new AddressAllocator(0n, TWO64);
          const ctx: Context = { model: new AddressModel(0n, TWO64), freed: [], alignShifts: [] };
          const exact = (start: bigint, end: bigint): Op => ({ t: "alloc", size: end - start + 1n, alignment: 1n, policy: { kind: "ExactMatch", address: start }, owner: "wall", window: undefined, form: 0 });
          const walls: [bigint, bigint][] = [[0n, 4n]];
          let at = 5n;
          for (const len of lengths) {
            at += len;
            const wallEnd = at + sep - 1n > U64_MAX ? U64_MAX : at + sep - 1n;
            if (at <= U64_MAX) walls.push([at, wallEnd]);
            at = wallEnd + 1n;
          }
          if (at <= U64_MAX) walls.push([at, U64_MAX]);
          for (const [s0, e0] of walls) a = step(a, ctx, exact(s0, e0), `L=${L} wall`);
          for (const align of ALIGNS) {
            for (const size of [L - 1n, L, L + 1n]) {
              if (size > U64_MAX) continue;
              for (const kind of ["FirstMatch", "LastMatch"] as const) {
                const what = `L=${L} sep=${sep} size=${size} align=${align} ${kind}`;
                const op: Op = { t: "alloc", size, alignment: align, policy: { kind }, owner: undefined, window: undefined, form: 0 };
                a = step(a, ctx, op, what);
                // Give the space back so every request sees the same gaps.
                const placed = ctx.model.allocations().find((x) => x.owner === undefined);
                if (placed !== undefined) a = step(a, ctx, { t: "free", range: placed, asRange: true }, `${what} free`);
              }
            }
          }
        }
      }
    }),
  );
});

describe("snapshots: round trips", () => {
  const name = "a restored snapshot and a clone behave exactly like the original for every later operation";
  it(
    name,
    counted(name, () => {
      fc.assert(
        fc.property(
          fc.oneof(fc.constantFrom(...POOLS), randomPool),
          fc.array(rawOpArb(), { maxLength: 120, size: "max" }),
          fc.array(rawOpArb(), { minLength: 1, maxLength: 120, size: "max" }),
          (pool, setup, later) => {
            let a = new AddressAllocator(pool.base, pool.size);
            const ctx: Context = { model: new AddressModel(pool.base, pool.size), freed: [], alignShifts: [] };
            setup.forEach((raw, i) => {
              a = step(a, ctx, materialize(raw, ctx), `${pool.name} setup ${i}`);
            });
            const json = JSON.stringify(a.toJSON());
            const restored = AddressAllocator.fromJSON(JSON.parse(json));
            const cloned = a.clone();
            restored.checkValid();
            cloned.checkValid();
            assert.equal(JSON.stringify(restored.toJSON()), json);
            assert.equal(JSON.stringify(cloned.toJSON()), json);
            const twins = [a, restored, cloned];
            later.forEach((raw, i) => {
              if (raw.t === "roundtrip") return;
              const op = materialize(raw, ctx);
              const results = twins.map((t) => {
                const out = attempt((): unknown => {
                  if (op.t === "alloc") return callAllocate(t, op);
                  if (op.t === "free") return t.free(op.range);
                  if (op.t === "release") return t.releaseOwner(op.owner);
                  if (op.t === "query") return [t.find(a.base + (op.r % a.size)), [...t.owners()].sort()];
                  return undefined;
                });
                t.checkValid();
                return out.ok ? show(out.value) : `${out.error.code}: ${out.error.message} / ${String(out.error.owner)}`;
              });
              opsExecuted++;
              assert.equal(results[1], results[0], `restored differs at later op ${i} ${show(op)}`);
              assert.equal(results[2], results[0], `clone differs at later op ${i} ${show(op)}`);
              // Keep the model in step, and check the original against it.
              applyToModel(ctx, op);
              compareState(a, ctx.model, `later op ${i}`);
            });
            const finals = twins.map((t) => JSON.stringify(t.toJSON()));
            assert.equal(finals[1], finals[0]);
            assert.equal(finals[2], finals[0]);
          },
        ),
        params(120, 400),
      );
    }),
  );
});

function applyToModel(ctx: Context, op: Op): void {
  if (op.t === "alloc") ctx.model.allocate(op);
  else if (op.t === "free") {
    if (ctx.model.free(op.range).ok) ctx.freed.push(op.range);
  } else if (op.t === "release") ctx.model.releaseOwner(op.owner);
}

// ---- snapshot fuzzing ---------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const HEX = "0123456789abcdefABCDEF";
const JUNK: Json[] = [null, 0, 1, -1, 4096, 1.5, true, false, "", "0x", "x", "0x1000", "0X10", "free", "allocated", [], {}, ["0x0"], { start: "0x0" }];

interface Mutation {
  readonly kind: number;
  readonly i: number;
  readonly j: number;
  readonly r: number;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({ kind: fc.nat(15), i: fc.nat(), j: fc.nat(), r: fc.nat() });

/** The value of a hex string (any case), or undefined. */
const hexOf = (v: Json | undefined): bigint | undefined => (typeof v === "string" && /^0x[0-9a-f]{1,17}$/i.test(v) ? BigInt(v) : undefined);

/** Applies one mutation to a parsed snapshot in place (it may replace the root; returns it). */
function mutate(root: Json, mu: Mutation): Json {
  if (typeof root !== "object" || root === null || Array.isArray(root)) return mu.kind % 2 === 0 ? root : JUNK[mu.r % JUNK.length]!;
  const blocks = Array.isArray(root["blocks"]) ? (root["blocks"] as Json[]) : undefined;
  const blockAt = (n: number): Record<string, Json> | undefined => {
    if (blocks === undefined || blocks.length === 0) return undefined;
    const b = blocks[n % blocks.length];
    return typeof b === "object" && b !== null && !Array.isArray(b) ? b : undefined;
  };
  const hexFields = (): [Record<string, Json>, string][] => {
    const out: [Record<string, Json>, string][] = [[root, "base"], [root, "end"]];
    for (let n = 0; n < (blocks?.length ?? 0); n++) {
      const b = blockAt(n);
      if (b !== undefined) out.push([b, "start"], [b, "end"]);
    }
    return out;
  };
  switch (mu.kind) {
    case 0:
    case 1: {
      // Change one hex digit (sometimes to an upper-case one).
      const fields = hexFields();
      const [obj, key] = fields[mu.i % fields.length]!;
      const v = obj[key];
      if (typeof v === "string" && v.length > 2) {
        const pos = 2 + (mu.j % (v.length - 2));
        const digit = HEX[mu.r % (mu.kind === 0 ? 16 : HEX.length)]!;
        obj[key] = v.slice(0, pos) + digit + v.slice(pos + 1);
      }
      return root;
    }
    case 2: // swap two blocks
      if (blocks !== undefined && blocks.length > 1) {
        const x = mu.i % blocks.length;
        const y = mu.j % blocks.length;
        [blocks[x], blocks[y]] = [blocks[y]!, blocks[x]!];
      }
      return root;
    case 3: // delete a block
      if (blocks !== undefined && blocks.length > 0) blocks.splice(mu.i % blocks.length, 1);
      return root;
    case 4: // duplicate a block
      if (blocks !== undefined && blocks.length > 0) {
        const x = mu.i % blocks.length;
        blocks.splice(x, 0, JSON.parse(JSON.stringify(blocks[x])) as Json);
      }
      return root;
    case 5: {
      // delete a field
      const b = mu.j % 3 === 0 ? root : blockAt(mu.i);
      if (b !== undefined) {
        const keys = Object.keys(b);
        if (keys.length > 0) delete b[keys[mu.r % keys.length]!];
      }
      return root;
    }
    case 6: {
      // add a field: an owner (maybe on a free block, maybe empty) or an unknown one
      const b = blockAt(mu.i);
      const target = mu.j % 4 === 0 || b === undefined ? root : b;
      const key = ["owner", "owner", "size", "extra", "state", "format"][mu.r % 6]!;
      target[key] = ["virtio-net0", "", "0x10", 1, "free"][mu.j % 5]!;
      return root;
    }
    case 7: // truncate the blocks array
      if (blocks !== undefined) blocks.length = mu.i % (blocks.length + 1);
      return root;
    case 8: {
      // change the type of a field
      const b = mu.j % 3 === 0 ? root : blockAt(mu.i);
      if (b !== undefined) {
        const keys = Object.keys(b);
        if (keys.length > 0) b[keys[mu.r % keys.length]!] = JUNK[mu.i % JUNK.length]!;
      }
      return root;
    }
    case 9: {
      // flip a block's state (valid when its neighbours allow it)
      const b = blockAt(mu.i);
      if (b !== undefined) b["state"] = b["state"] === "free" ? "allocated" : "free";
      if (b !== undefined && mu.r % 2 === 0) delete b["owner"];
      return root;
    }
    case 10: {
      // split a block in two (valid for allocated blocks)
      const x = blocks === undefined || blocks.length === 0 ? 0 : mu.i % blocks.length;
      const b = blockAt(x);
      const s = hexOf(b?.["start"]);
      const e = hexOf(b?.["end"]);
      if (blocks !== undefined && b !== undefined && s !== undefined && e !== undefined) {
        if (e > s) {
          const cut = s + (BigInt(mu.r) % (e - s));
          const second: Record<string, Json> = { ...b, start: `0x${(cut + 1n).toString(16)}` };
          b["end"] = `0x${cut.toString(16)}`;
          blocks.splice(x + 1, 0, second);
        }
      }
      return root;
    }
    case 11: {
      // merge a block with the next one (valid for two allocated blocks)
      const x = blocks === undefined || blocks.length < 2 ? 0 : mu.i % (blocks.length - 1);
      const b = blockAt(x);
      const c = blocks === undefined || blocks.length < 2 ? undefined : blockAt(x + 1);
      if (blocks !== undefined && b !== undefined && c !== undefined) {
        b["end"] = c["end"]!;
        blocks.splice(x + 1, 1);
      }
      return root;
    }
    case 12: {
      // move the boundary between two blocks consistently (often valid)
      const x = blocks === undefined || blocks.length < 2 ? 0 : mu.i % (blocks.length - 1);
      const b = blockAt(x);
      const c = blocks === undefined || blocks.length < 2 ? undefined : blockAt(x + 1);
      const old = hexOf(b?.["end"]);
      if (b !== undefined && c !== undefined && old !== undefined) {
        const delta = BigInt((mu.r % 9) - 4);
        const e = old + delta;
        if (e >= 0n && e < U64_MAX) {
          b["end"] = `0x${e.toString(16)}`;
          c["start"] = `0x${(e + 1n).toString(16)}`;
        }
      }
      return root;
    }
    case 13: {
      // change an owner
      const b = blockAt(mu.i);
      if (b !== undefined) b["owner"] = ["x", "virtio-blk0", "", "a"][mu.r % 4]!;
      return root;
    }
    case 14: // change the pool bounds
      if (mu.j % 2 === 0) root["base"] = ["0x0", "0x1", "0xffffffffffffffff", "0x10000000000000000"][mu.r % 4]!;
      else root["end"] = ["0x0", "0xffffffffffffffff", "0x7fffffffffffffff", "0x1000"][mu.r % 4]!;
      return root;
    default:
      return JUNK[mu.r % JUNK.length]!;
  }
}

describe("snapshots: fuzzing fromJSON", () => {
  const name = "every mutated snapshot is rejected with InvalidSnapshot exactly when it is invalid, else restored faithfully";
  it(
    name,
    counted(name, () => {
      let accepted = 0;
      let rejected = 0;
      fc.assert(
        fc.property(
          fc.oneof(fc.constantFrom(...POOLS), randomPool),
          fc.array(rawOpArb(), { maxLength: 40, size: "max" }),
          fc.array(mutationArb, { minLength: 1, maxLength: 3, size: "max" }),
          fc.array(rawOpArb(), { maxLength: 15, size: "max" }),
          (pool, setup, mutations, later) => {
            const a = new AddressAllocator(pool.base, pool.size);
            const ctx: Context = { model: new AddressModel(pool.base, pool.size), freed: [], alignShifts: [] };
            for (const raw of setup) if (raw.t !== "roundtrip") applyBoth(a, ctx, materialize(raw, ctx));
            let doc = JSON.parse(JSON.stringify(a.toJSON())) as Json;
            for (const mu of mutations) doc = mutate(doc, mu);
            const input = JSON.parse(JSON.stringify(doc)) as Json;
            const verdict = snapshotProblem(input);
            let restored: AddressAllocator;
            try {
              restored = AddressAllocator.fromJSON(input);
            } catch (e) {
              assert.ok(e instanceof AllocatorError, `fromJSON threw a non-AllocatorError: ${String(e)}`);
              assert.equal(e.code, "InvalidSnapshot", e.message);
              assert.match(e.message, /snapshot/);
              assert.ok("problem" in verdict, `a valid snapshot was rejected (${e.message}): ${show(input)}`);
              rejected++;
              return;
            }
            assert.ok("model" in verdict, `an invalid snapshot (${"problem" in verdict ? verdict.problem : ""}) was accepted: ${show(input)}`);
            accepted++;
            restored.checkValid();
            assert.deepEqual(restored.toJSON(), input);
            // The restored allocator then behaves like the model of the state it describes.
            const c2: Context = { model: verdict.model, freed: [], alignShifts: [] };
            compareState(restored, c2.model, "restored");
            let r = restored;
            later.forEach((raw, i) => {
              r = step(r, c2, materialize(raw, c2), `after restore op ${i}`);
            });
          },
        ),
        params(4000, 500),
      );
      assert.ok(accepted > 200, `the fuzzer should also produce valid snapshots (accepted ${accepted})`);
      assert.ok(rejected > 2000, `rejected ${rejected}`);
    }),
  );

  it("a fuzzed snapshot never makes fromJSON throw anything but InvalidSnapshot, even for exotic values", () => {
    const exotic: unknown[] = [
      Object.create(null) as unknown,
      { format: "vm-allocator/address-allocator", version: 1, base: "0x0", end: "0x0", blocks: [Object.create(null)] },
      { format: "vm-allocator/address-allocator", version: 1, base: "0x0", end: "0x0", blocks: new Array(1) },
      { format: "vm-allocator/address-allocator", version: 1n, base: "0x0", end: "0x0", blocks: [] },
      { format: "vm-allocator/address-allocator", version: 1, base: 0n, end: "0x0", blocks: [] },
      { format: "vm-allocator/address-allocator", version: 1, base: "0x0", end: "0x0", blocks: [{ start: "0x0", end: "0x0", state: "allocated", owner: Symbol("o") }] },
      { format: "vm-allocator/address-allocator", version: 1, base: "0x0", end: "0x0", blocks: "0x0-0x0" },
      new Date(0),
      () => 1,
      Symbol("s"),
      10n,
    ];
    for (const x of exotic) {
      assert.throws(
        () => AddressAllocator.fromJSON(x),
        (e: unknown) => e instanceof AllocatorError && e.code === "InvalidSnapshot",
      );
    }
  });
});

function applyBoth(a: AddressAllocator, ctx: Context, op: Op): void {
  opsExecuted++;
  if (op.t === "alloc") compareOutcome(attempt(() => callAllocate(a, op)), ctx.model.allocate(op), "setup");
  else if (op.t === "free") compareOutcome(attempt(() => a.free(op.range)), ctx.model.free(op.range), "setup");
  else if (op.t === "release") a.releaseOwner(op.owner) && ctx.model.releaseOwner(op.owner);
  a.checkValid();
}

describe("budget", () => {
  it("ran at least 100 000 model operations", () => {
    assert.ok(opsExecuted >= 100_000, `only ${opsExecuted} operations`);
  });
});

after(() => {
  const lines = [...opsByTest].map(([k, v]) => `  ${v.toString().padStart(7)}  ${k}`);
  const stats = [...outcomes].sort(([x], [y]) => (x < y ? -1 : 1)).map(([k, v]) => `  ${v.toString().padStart(7)}  ${k}`);
  console.log(`# model operations executed: ${opsExecuted} (seed ${SEED})\n${lines.join("\n")}\noutcomes:\n${stats.join("\n")}`);
});
