/**
 * Model test of dispatch: random inserts, removals and moves interleaved with random accesses of
 * every width, on an MMIO bus (addresses around 0, 2^32, 2^40, 2^53, 2^63 and 2^64-1, mappings
 * from one byte to 16 GiB) and a port bus. Every read is made through every path (the number
 * accessor where the address is a safe integer, the u32-pair and bigint accessors, the byte-buffer
 * path with number and bigint addresses) and each must return what a reference map says: a flat
 * list of mappings, searched linearly, over devices of five shapes backed by sparse byte stores.
 * Writes go through a random path and update the reference; the counters must move as the
 * reference's reason says, and the hook must be told that reason. 10^5 operations in all; `checkValid()` every 500 and at the end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Bus, type UnmappedReason } from "../../src/devices/bus.js";
import type { Device } from "../../src/devices/device.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { U64_MAX } from "../../src/core/u64.js";

type Shape = "width" | "generic" | "both" | "bytes" | "words";
const SHAPES: readonly Shape[] = ["width", "generic", "both", "bytes", "words"];

/** A device's bytes: written ones in a map, the rest a pattern of the device id and offset. */
class Store {
  readonly written = new Map<number, number>();
  constructor(readonly id: number) {}
  get(offset: number): number {
    return this.written.get(offset) ?? ((this.id * 131 + (offset % 65521) * 7 + 3) & 0xff);
  }
  set(offset: number, byte: number): void {
    this.written.set(offset, byte & 0xff);
  }
  le(offset: number, width: number): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this.get(offset + i);
    return width === 4 ? v | 0 : v;
  }
}

function makeDevice(shape: Shape, store: Store): Device {
  const d: Device & Record<string, unknown> = { name: `${shape}${store.id}` };
  if (shape === "width" || shape === "both" || shape === "bytes") {
    d.read8 = (o: number) => store.get(o);
    d.write8 = (o: number, v: number) => store.set(o, v);
  }
  if (shape === "width" || shape === "both") {
    d.read16 = (o: number) => store.le(o, 2);
    d.write16 = (o: number, v: number) => {
      store.set(o, v);
      store.set(o + 1, v >>> 8);
    };
  }
  if (shape === "width" || shape === "both" || shape === "words") {
    d.read32 = (o: number) => store.le(o, 4);
    d.write32 = (o: number, v: number) => {
      for (let i = 0; i < 4; i++) store.set(o + i, v >>> (8 * i));
    };
  }
  if (shape === "generic" || shape === "both") {
    d.read = (_base: bigint, offset: bigint, data: Uint8Array) => {
      for (let i = 0; i < data.length; i++) data[i] = store.get(Number(offset) + i);
    };
    d.write = (_base: bigint, offset: bigint, data: Uint8Array) => {
      for (let i = 0; i < data.length; i++) store.set(Number(offset) + i, data[i]!);
    };
  }
  return d;
}

interface Entry {
  start: bigint;
  end: bigint;
  readonly shape: Shape;
  readonly store: Store;
  readonly owner: string;
}

/** What the reference says of an access of `length` bytes at `a`. */
function expect(model: Entry[], a: bigint, length: number): { reason: UnmappedReason | undefined; entry: Entry | undefined } {
  if (length === 0) return { reason: "empty", entry: undefined };
  const entry = model.find((m) => m.start <= a && a <= m.end);
  if (entry === undefined) return { reason: "unmapped", entry };
  const last = a + BigInt(length - 1);
  if (last > entry.end) {
    const straddle = last <= U64_MAX && model.some((m) => m !== entry && m.start > entry.end && m.start <= last);
    return { reason: straddle ? "straddle" : "past-end", entry };
  }
  const supported =
    entry.shape === "words" ? length % 4 === 0 : true;
  return { reason: supported ? undefined : "unsupported", entry };
}

/** xorshift128+ driven by the fast-check seed, so that a failure replays from FC_SEED. */
function prng(seed: number): (n: number) => number {
  let s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let s1 = (seed * 0x85ebca6b) >>> 0 || 2;
  return (n: number) => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) % n;
  };
}

const MEM_REGIONS: readonly [bigint, bigint][] = [
  [0n, 1n << 20n],
  [(1n << 32n) - (1n << 20n), (1n << 32n) + (1n << 20n)],
  [1n << 40n, (1n << 40n) + (1n << 36n)], // room for mappings past the 8 GiB hash limit
  [(1n << 53n) - (1n << 20n), (1n << 53n) + (1n << 20n)],
  [(1n << 63n) - (1n << 16n), (1n << 63n) + (1n << 16n)],
  [U64_MAX - (1n << 20n) + 1n, U64_MAX],
];
const IO_REGIONS: readonly [bigint, bigint][] = [[0n, 0x1_1000n]];

function run(kind: "io" | "mem", seed: number, operations: number): void {
  const rand = prng(seed);
  const big = (n: bigint) => (BigInt(rand(2 ** 30)) * (1n << 30n) + BigInt(rand(2 ** 30))) % n;
  const regions = kind === "io" ? IO_REGIONS : MEM_REGIONS;
  const reasons: UnmappedReason[] = [];
  const expectedReasons: UnmappedReason[] = [];
  const bus = new Bus(kind, { onUnmapped: (access) => void reasons.push(access.reason) });
  const model: Entry[] = [];
  let nextId = 0;
  const counted = { unmapped: 0, rejected: 0 };

  const size = (region: number): bigint => {
    const roll = rand(100);
    if (kind === "mem" && region === 2 && roll < 3) return (1n << 33n) + big(1n << 34n); // 8 to 24 GiB
    if (roll < 10) return BigInt(1 + rand(0x60000)); // block-sized
    if (roll < 40) return BigInt(1 + rand(0x3000)); // page-sized
    return BigInt(1 + rand(0x40)); // registers
  };
  const somewhere = (): bigint => {
    if (model.length > 0 && rand(3) > 0) {
      const m = model[rand(model.length)]!;
      const near = [m.start, m.end, m.start + (m.end - m.start) / 2n][rand(3)]!;
      const a = near + BigInt(rand(16)) - 8n;
      return a < 0n ? 0n : a > U64_MAX ? U64_MAX : a;
    }
    const [lo, hi] = regions[rand(regions.length)]!;
    return lo + big(hi - lo + 1n);
  };
  const countReason = (reason: UnmappedReason | undefined) => {
    if (reason === "unmapped") counted.unmapped++;
    else if (reason !== undefined) counted.rejected++;
    if (reason !== undefined) expectedReasons.push(reason);
  };

  const read = (a: bigint, width: 1 | 2 | 4) => {
    const { reason, entry } = expect(model, a, width);
    const narrow = entry !== undefined && reason === undefined && entry.shape === "words" && width !== 4;
    const why = narrow ? "unsupported" : reason;
    const expected = why === undefined ? entry!.store.le(Number(a - entry!.start), width) : width === 4 ? -1 : width === 2 ? 0xffff : 0xff;
    const got: [string, number][] = [];
    const h = Number(a >> 32n);
    const l = Number(a & 0xffff_ffffn);
    if (a <= BigInt(Number.MAX_SAFE_INTEGER)) {
      const n = Number(a);
      got.push(["number", width === 1 ? bus.read8(n) : width === 2 ? bus.read16(n) : bus.read32(n)]);
    }
    got.push(["pair", width === 1 ? bus.read8Pair(h, l) : width === 2 ? bus.read16Pair(h, l | 0) : bus.read32Pair(h | 0, l)]);
    got.push(["bigint", width === 1 ? bus.read8Big(a) : width === 2 ? bus.read16Big(a) : bus.read32Big(a)]);
    for (let i = 0; i < got.length; i++) countReason(why);
    for (const [path, value] of got) assert.equal(value, expected, `${kind} read${width * 8} at 0x${a.toString(16)} via ${path} (${why ?? "mapped"})`);
  };

  const readBuffer = (a: bigint, length: number) => {
    const { reason, entry } = expect(model, a, length);
    const expected = Array.from({ length }, (_, i) => (reason === undefined ? entry!.store.get(Number(a - entry!.start) + i) : 0xff));
    const forms: (bigint | number)[] = a <= BigInt(Number.MAX_SAFE_INTEGER) ? [a, Number(a)] : [a];
    for (const form of forms) {
      const data = new Uint8Array(length).fill(0x42);
      assert.equal(bus.read(form, data), reason === undefined, `${kind} read of ${length} at 0x${a.toString(16)} (${reason ?? "mapped"})`);
      assert.deepEqual([...data], expected, `${kind} bytes of ${length} at 0x${a.toString(16)} as ${typeof form}`);
      countReason(reason);
    }
  };

  const write = (a: bigint, width: 1 | 2 | 4 | 0, length: number) => {
    const n = width === 0 ? length : width;
    const { reason, entry } = expect(model, a, n);
    const narrow = entry !== undefined && reason === undefined && width !== 0 && entry.shape === "words" && width !== 4;
    const why = narrow ? "unsupported" : reason;
    const bytes = Array.from({ length: n }, () => rand(256));
    const value = bytes.reduceRight((v, b) => v * 256 + b, 0);
    const h = Number(a >> 32n);
    const l = Number(a & 0xffff_ffffn);
    const path = rand(4);
    if (width === 0) {
      const data = Uint8Array.from(bytes);
      assert.equal(bus.write(path % 2 === 0 && a <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(a) : a, data), why === undefined);
    } else if (path === 0 && a <= BigInt(Number.MAX_SAFE_INTEGER)) {
      if (width === 1) bus.write8(Number(a), value);
      else if (width === 2) bus.write16(Number(a), value);
      else bus.write32(Number(a), value);
    } else if (path <= 1) {
      if (width === 1) bus.write8Pair(h, l, value);
      else if (width === 2) bus.write16Pair(h | 0, l, value);
      else bus.write32Pair(h, l | 0, value | 0);
    } else {
      if (width === 1) bus.write8Big(a, value);
      else if (width === 2) bus.write16Big(a, value);
      else bus.write32Big(a, value);
    }
    countReason(why);
    if (why === undefined) bytes.forEach((b, i) => entry!.store.set(Number(a - entry!.start) + i, b));
  };

  for (let op = 0; op < operations; op++) {
    const roll = rand(100);
    if (roll < 12) {
      const region = rand(regions.length);
      const [lo, hi] = regions[region]!;
      const start = lo + big(hi - lo + 1n);
      const s = size(region);
      const end = start + s - 1n > U64_MAX ? U64_MAX : start + s - 1n;
      const shape = SHAPES[rand(SHAPES.length)]!;
      const store = new Store(nextId++);
      const owner = `${shape}@${store.id}`;
      const clash = model.find((m) => m.start <= end && start <= m.end);
      if (clash !== undefined) {
        assert.throws(
          () => bus.insert(new RangeInclusive(start, end), makeDevice(shape, store), owner),
          (e) => e instanceof AllocatorError && e.code === "Overlap" && e.owner === model.filter((m) => m.start <= end && start <= m.end).sort((x, y) => (x.start < y.start ? -1 : 1))[0]!.owner,
        );
      } else {
        bus.insert(new RangeInclusive(start, end), makeDevice(shape, store), owner);
        model.push({ start, end, shape, store, owner });
      }
    } else if (roll < 18 && model.length > 0) {
      const i = rand(model.length);
      const m = model[i]!;
      const removed = rand(2) === 0 ? bus.remove(new RangeInclusive(m.start, m.end)) : bus.remove(m.start + big(m.end - m.start + 1n));
      assert.equal(removed.owner, m.owner);
      model.splice(i, 1);
    } else if (roll < 24 && model.length > 0) {
      const m = model[rand(model.length)]!;
      const base = rand(2) === 0 ? somewhere() : m.start + BigInt(rand(0x3000)) - 0x1800n;
      const b = base < 0n ? 0n : base > U64_MAX ? U64_MAX : base;
      const len = m.end - m.start;
      const range = new RangeInclusive(m.start, m.end);
      if (b + len > U64_MAX) {
        assert.throws(() => bus.move(range, b), (e) => e instanceof AllocatorError && e.code === "Overflow");
      } else if (model.some((o) => o !== m && o.start <= b + len && b <= o.end)) {
        assert.throws(() => bus.move(range, b), (e) => e instanceof AllocatorError && e.code === "Overlap");
      } else {
        const moved = bus.move(range, b);
        assert.equal(moved.owner, m.owner);
        m.start = b;
        m.end = b + len;
      }
    } else {
      const a = somewhere();
      const what = rand(6);
      if (what < 2) read(a, ([1, 2, 4] as const)[rand(3)]!);
      else if (what === 2) readBuffer(a, rand(11));
      else if (what < 5) write(a, ([1, 2, 4] as const)[rand(3)]!, 0);
      else write(a, 0, rand(11));
    }
    assert.equal(bus.size, model.length);
    assert.deepEqual(reasons, expectedReasons, `reasons reported to the hook at op ${op}`);
    reasons.length = 0;
    expectedReasons.length = 0;
    assert.equal(bus.unmappedReads + bus.unmappedWrites, counted.unmapped, `unmapped count after op ${op}`);
    assert.equal(bus.rejectedReads + bus.rejectedWrites, counted.rejected, `rejected count after op ${op}`);
    if (op % 500 === 0) bus.checkValid();
  }
  bus.checkValid();
  const sorted = [...model].sort((x, y) => (x.start < y.start ? -1 : 1));
  assert.deepEqual(
    bus.mappings().map((m) => [m.owner, m.range.start, m.range.end]),
    sorted.map((m) => [m.owner, m.start, m.end]),
  );
}

describe("dispatch: model-based", () => {
  it("the fast paths, the generic path and a reference agree under random changes, MMIO (80 000 operations)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => run("mem", seed, 10_000)),
      { numRuns: 8 },
    );
  });

  it("the same on a port bus (20 000 operations)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seed) => run("io", seed, 10_000)),
      { numRuns: 2 },
    );
  });
});
