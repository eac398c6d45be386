/**
 * SharedSystemAllocator in one thread with several participants (each `attach` is a participant
 * with its own replica, as a worker would be): every public method, results and errors equal to a
 * plain DefaultSystemAllocator driven by the same calls, failed calls changing nothing, log wrap
 * and checkpoints, oversize entries and full checkpoints, a DeviceManager on top, the lock and its
 * recovery, and hostile handles, buffers and arguments.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import type { Device } from "../../src/devices/device.js";
import { SHARED_SYSTEM_ALLOCATOR_FORMAT, SharedSystemAllocator } from "../../src/shared/shared-system-allocator.js";
import { getLayout, type SystemLayout } from "../../src/system/layouts.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { code } from "../helpers/assert-code.js";

const PC = getLayout("pc-x86_64");
/** Small pools, so that exhaustion, fallback and collisions are easy to reach. */
const SMALL: SystemLayout = {
  name: "small",
  pio: { base: 0x100, size: 0x100 },
  mmio32: { base: 0x1000, size: 0x4000 },
  mmio64: { base: "0x100000000", size: 0x2000 },
  legacyIrq: { first: 5, last: 12 },
  msi: { first: 24, last: 40 },
  instanceId: { first: 0, last: 15 },
  reserved: [
    { pool: "mmio32", start: 0x4000, end: 0x4fff, owner: "ioapic" },
    { pool: "legacyIrq", start: 9, end: 9, owner: "acpi" },
  ],
};
const LOCK_WORD = 2;

const state = (s: { toJSON(): unknown }): string => JSON.stringify(s.toJSON());

/** The outcome of a call, comparable across allocators: a value, or an error's code and message. */
function outcome(f: () => unknown): unknown {
  try {
    const v = f();
    return { ok: v instanceof RangeInclusive ? ["range", v.start, v.end] : v };
  } catch (error) {
    assert.ok(error instanceof AllocatorError, `not an AllocatorError: ${String(error)}`);
    return { code: error.code, message: error.message, owner: error.owner };
  }
}

// ---- the differential model -------------------------------------------------------------------

const owner = fc.constantFrom("a", "b", "c", "d@1", "");
const idValue = fc.oneof(fc.integer({ min: 0, max: 45 }), fc.constantFrom(-1, -0, 2 ** 32, 2 ** 53, Number.NaN, 1.5, "7"));
const addr = fc.oneof(fc.bigInt({ min: 0n, max: 0x6000n }), fc.constantFrom(0x1_0000_0000n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n));
const size = fc.oneof(fc.constantFrom(1n, 0x100n, 0x1000n, 0x2000n), fc.constantFrom(0n, 3n));

/** One call; `held` is what was returned so far (so frees often name real holdings). */
type Cb = (params: unknown) => unknown;
/** What the model drives: both allocators, seen loosely typed so that bad arguments can be passed. */
interface Driven {
  deviceIdCallback(): Cb;
  irqCallback(): Cb;
  pioAddressCallback(): Cb;
  mmioAddressCallback(): Cb;
  reserve(...args: unknown[]): unknown;
  unreserve(...args: unknown[]): unknown;
  releaseAll(owner: unknown): unknown;
}
type Cmd = { run: (s: Driven, held: unknown[]) => unknown; who: number };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ owner, fixed: fc.option(idValue, { nil: undefined }), shared: fc.boolean(), msi: fc.boolean(), allowReserved: fc.boolean(), who: fc.nat(2) }).map((c): Cmd => ({
    who: c.who,
    run: (s) =>
      s.irqCallback()({
        action: "allocate",
        owner: c.owner,
        ...(c.fixed !== undefined ? { fixed: c.fixed } : {}),
        ...(c.shared ? { shared: true } : {}),
        ...(c.msi ? { pool: "msi" } : {}),
        ...(c.allowReserved ? { allowReserved: true } : {}),
      }),
  })),
  fc.record({ owner, fixed: fc.option(idValue, { nil: undefined }), append: fc.boolean(), who: fc.nat(2) }).map((c): Cmd => ({
    who: c.who,
    run: (s) => s.deviceIdCallback()({ action: "allocate", owner: c.owner, ...(c.fixed !== undefined ? { fixed: c.fixed } : {}), ...(c.append ? { appendIdToOwner: true } : {}) }),
  })),
  fc
    .record({ owner, size, fixed: fc.option(addr, { nil: undefined }), mmio64: fc.boolean(), fallback: fc.boolean(), last: fc.boolean(), pio: fc.boolean(), align: fc.constantFrom(undefined, 1n, 0x1000n, 3n), who: fc.nat(2) })
    .map((c): Cmd => ({
      who: c.who,
      run: (s) =>
        (c.pio ? s.pioAddressCallback() : s.mmioAddressCallback())({
          action: "allocate",
          owner: c.owner,
          size: c.size,
          ...(c.align !== undefined ? { alignment: c.align } : {}),
          ...(c.fixed !== undefined ? { fixed: c.fixed } : {}),
          ...(c.mmio64 && !c.pio ? { mmio64: true } : {}),
          ...(c.fallback && !c.pio ? { allowFallback: true } : {}),
          ...(c.last ? { placement: "last" } : {}),
        }),
    })),
  // Frees: of something returned earlier (under its owner or a wrong one), or of a random id/range.
  fc.record({ pick: fc.nat(), wrongOwner: fc.boolean(), who: fc.nat(2), id: idValue, msi: fc.boolean() }).map((c): Cmd => ({
    who: c.who,
    run: (s, held) => {
      const h = held.length === 0 ? undefined : (held[c.pick % held.length] as { kind: string; owner: string; value: unknown });
      if (h === undefined) return s.irqCallback()({ action: "free", owner: "a", id: c.id, ...(c.msi ? { pool: "msi" } : {}) });
      const o = c.wrongOwner ? "a" : h.owner;
      if (h.kind === "pio" || h.kind === "mmio") return (h.kind === "pio" ? s.pioAddressCallback() : s.mmioAddressCallback())({ action: "free", owner: o, range: h.value });
      if (h.kind === "deviceId") return s.deviceIdCallback()({ action: "free", owner: o, id: h.value });
      return s.irqCallback()({ action: "free", owner: o, id: h.value, ...(h.kind === "msi" ? { pool: "msi" } : {}) });
    },
  })),
  fc.record({ pool: fc.constantFrom("mmio32", "pio", "legacyIrq", "msi", "instanceId", "nope"), start: fc.bigInt({ min: 0n, max: 0x5000n }), len: fc.bigInt({ min: 0n, max: 0x1000n }), owner, un: fc.boolean(), who: fc.nat(2) }).map((c): Cmd => ({
    who: c.who,
    run: (s) => {
      const idPool = c.pool === "legacyIrq" || c.pool === "msi" || c.pool === "instanceId";
      const start = idPool ? c.start % 48n : c.start;
      const target = idPool ? { start, end: start + (c.len % 3n) } : { start, size: c.len };
      return c.un ? s.unreserve(c.pool, target) : s.reserve(c.pool, target, c.owner);
    },
  })),
  fc.record({ owner, who: fc.nat(2) }).map((c): Cmd => ({ who: c.who, run: (s) => s.releaseAll(c.owner) })),
);

/** Remembers what a successful allocate returned, so later frees can name it. */
function remember(held: unknown[], result: unknown, cmdText: string): void {
  void cmdText;
  if (typeof result === "object" && result !== null && "ok" in result) {
    const v = (result as { ok: unknown }).ok;
    if (Array.isArray(v) && v[0] === "range") held.push({ kind: "mmio", owner: "a", value: new RangeInclusive(v[1] as bigint, v[2] as bigint) });
    else if (typeof v === "number") held.push({ kind: "irq", owner: "a", value: v }, { kind: "deviceId", owner: "b", value: v }, { kind: "msi", owner: "c", value: v });
  }
}

describe("SharedSystemAllocator: equal to DefaultSystemAllocator", () => {
  for (const logBytes of [64 << 10, 256]) {
    it(`random call sequences on 3 participants give the same results, errors and state (log ${logBytes} bytes)`, () => {
      fc.assert(
        fc.property(fc.array(cmd, { maxLength: 60 }), (cmds) => {
          const plain = new DefaultSystemAllocator(SMALL);
          const first = SharedSystemAllocator.create(SMALL, { logBytes });
          const parts = [first, SharedSystemAllocator.attach(first.handle), SharedSystemAllocator.attach(first.handle)];
          const held: unknown[] = [];
          for (const c of cmds) {
            const s = parts[c.who]!;
            const before = state(plain);
            const seq = s.lastCommitSequence;
            const want = outcome(() => c.run(plain as unknown as Driven, held));
            const got = outcome(() => c.run(s as unknown as Driven, held));
            assert.deepEqual(got, want);
            if ("code" in (want as object)) {
              // A failed call changed nothing and committed nothing.
              assert.equal(state(plain), before);
              assert.equal(state(parts[(c.who + 1) % 3]!), before);
              assert.equal(s.lastCommitSequence, seq);
            }
            remember(held, want, "");
          }
          for (const p of parts) {
            assert.equal(state(p), state(plain));
            assert.deepEqual(p.holdings(), plain.holdings());
            assert.deepEqual(p.owners(), plain.owners());
            assert.deepEqual(p.reservations(), plain.reservations());
            for (const o of ["a", "b", "c"]) assert.deepEqual(p.allocationsOf(o), plain.allocationsOf(o));
            assert.deepEqual(p.holdingsCallback()(), plain.holdingsCallback()());
          }
          first.checkValid();
        }),
        { numRuns: logBytes === 256 ? 60 : 100 },
      );
    });
  }

  it("reads and layout accessors answer as the plain allocator does", () => {
    const plain = new DefaultSystemAllocator(PC);
    const s = SharedSystemAllocator.create(PC);
    assert.equal(s.name, "pc-x86_64");
    assert.deepEqual(s.layout, plain.layout);
    assert.equal(s.hasPool("pio"), true);
    assert.equal(SharedSystemAllocator.create().hasPool("pio"), false);
    assert.equal(SharedSystemAllocator.create().pioAddressCallback(), undefined);
    assert.deepEqual(s.reservations(), plain.reservations());
    assert.deepEqual(outcome(() => s.allocationsOf("")), outcome(() => plain.allocationsOf("")));
    assert.deepEqual(outcome(() => s.holdingsCallback()("")), outcome(() => plain.holdingsCallback()("")));
    const copy = s.toDefaultAllocator();
    assert.ok(copy instanceof DefaultSystemAllocator);
    assert.deepEqual(copy.toJSON(), plain.toJSON());
    // The copy is independent: changing it does not change the shared state.
    copy.irqCallback()({ action: "allocate", owner: "x" });
    assert.deepEqual(s.toJSON(), plain.toJSON());
  });

  it("odd argument values travel exactly: -0, NaN, Infinity, 2^53, extra fields, __proto__, missing arguments", () => {
    const odd: unknown[] = [
      { action: "allocate", owner: "a", fixed: -0 },
      { action: "allocate", owner: "a", fixed: Number.NaN },
      { action: "allocate", owner: "a", fixed: Number.POSITIVE_INFINITY },
      { action: "allocate", owner: "a", fixed: 2 ** 53 },
      { action: "allocate", owner: "a", fixed: 7, unknownField: [1, { x: 2n }], note: undefined },
      JSON.parse('{"action":"allocate","owner":"a","__proto__":{"fixed":8}}'),
      { action: "allocate", owner: "a", shared: undefined },
      { action: "free", owner: "a", id: 7 },
      { action: "bogus", owner: "a" },
      5,
      null,
      undefined,
      [],
    ];
    const plain = new DefaultSystemAllocator(PC);
    const s = SharedSystemAllocator.create(PC);
    for (const p of odd) assert.deepEqual(outcome(() => s.irqCallback()(p as never)), outcome(() => plain.irqCallback()(p as never)), String(p));
    const ranges: unknown[] = [
      { action: "allocate", owner: "m", size: 0x1000n, window: { min: 0xc000_0000n, max: 0xd000_0000n } },
      { action: "allocate", owner: "m", size: 4096, alignment: 4096 },
      { action: "allocate", owner: "m", size: 2n ** 64n },
      { action: "free", owner: "m", range: { start: 1n, end: 2n } },
    ];
    for (const p of ranges) assert.deepEqual(outcome(() => s.mmioAddressCallback()(p as never)), outcome(() => plain.mmioAddressCallback()(p as never)));
    assert.deepEqual(outcome(() => s.reserve("mmio32", new RangeInclusive(0xc000_0000n, 0xc000_0fffn), "fw")), outcome(() => plain.reserve("mmio32", new RangeInclusive(0xc000_0000n, 0xc000_0fffn), "fw")));
    assert.deepEqual(outcome(() => (s.reserve as (...a: unknown[]) => unknown)("mmio32", 0xc000_1000)), outcome(() => (plain.reserve as (...a: unknown[]) => unknown)("mmio32", 0xc000_1000)));
    assert.deepEqual(outcome(() => s.unreserve("mmio32", "0xc0000000" as never)), outcome(() => plain.unreserve("mmio32", "0xc0000000" as never)));
    assert.equal(state(s), state(plain));
  });

  it("restores from a snapshot: create(DefaultSystemAllocator.fromJSON(snapshot))", () => {
    const s = SharedSystemAllocator.create(PC);
    s.mmioAddressCallback()({ action: "allocate", owner: "blk", size: 0x1000n });
    s.irqCallback()({ action: "allocate", owner: "blk", shared: true });
    const snapshot = JSON.parse(JSON.stringify(s.toJSON()));
    const restored = SharedSystemAllocator.create(DefaultSystemAllocator.fromJSON(snapshot));
    assert.deepEqual(restored.toJSON(), s.toJSON());
    assert.deepEqual(restored.allocationsOf("blk"), s.allocationsOf("blk"));
    // Starting from an allocator copies it: the source is not the shared state.
    const source = new DefaultSystemAllocator(PC);
    const fromSource = SharedSystemAllocator.create(source);
    source.irqCallback()({ action: "allocate", owner: "x" });
    assert.deepEqual(fromSource.owners(), new DefaultSystemAllocator(PC).owners());
  });
});

describe("SharedSystemAllocator: participants, log and checkpoints", () => {
  it("each attach is a distinct participant; a structured-cloned handle shares the same memory", () => {
    const a = SharedSystemAllocator.create(PC);
    const handle = structuredClone(a.handle);
    assert.equal(handle.format, SHARED_SYSTEM_ALLOCATOR_FORMAT);
    assert.equal(a.buffer, a.handle.buffer);
    const b = SharedSystemAllocator.attach(handle);
    const reserved = a.reserveParticipantId();
    const c = SharedSystemAllocator.attach(a.handle, { participantId: reserved });
    assert.deepEqual([a.participantId, b.participantId, reserved, c.participantId], [1, 2, 3, 3]);
    const irq = b.irqCallback()({ action: "allocate", owner: "net" });
    assert.equal(b.lastCommitSequence, 1);
    assert.equal(a.lastCommitSequence, 0);
    assert.deepEqual(a.allocationsOf("net"), [{ pool: "legacyIrq", id: irq, owner: "net", reserved: false }]);
    assert.equal(c.irqCallback()({ action: "free", owner: "net", id: irq! }), irq);
    assert.equal(c.lastCommitSequence, 2);
    assert.deepEqual(a.allocationsOf("net"), []);
    const log = a.committedLog();
    assert.equal(log.checkpointSequence, 0);
    assert.deepEqual(
      log.operations.map((o) => [o.sequence, o.operation, o.args]),
      [
        [1, "irq", [{ action: "allocate", owner: "net" }]],
        [2, "irq", [{ action: "free", owner: "net", id: irq }]],
      ],
    );
  });

  it("a full log becomes a checkpoint in the other slot; the others reload it", () => {
    const a = SharedSystemAllocator.create(PC, { logBytes: 512 });
    const b = SharedSystemAllocator.attach(a.handle);
    const plain = new DefaultSystemAllocator(PC);
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const p = { action: "allocate", owner: `dev${i}`, size: 0x1000n } as const;
      assert.deepEqual(a.mmioAddressCallback()(p), plain.mmioAddressCallback()(p));
      seen.add(a.committedLog().checkpointSequence);
      if (i % 7 === 0) assert.equal(state(b), state(plain));
    }
    // Several checkpoints were taken (each naming the sequence it stands at), alternating slots.
    assert.ok(seen.size >= 4, `checkpoints at ${[...seen].join(", ")}`);
    const log = b.committedLog();
    assert.deepEqual(log.checkpoint, DefaultSystemAllocator.fromJSON(log.checkpoint).toJSON());
    const replayed = DefaultSystemAllocator.fromJSON(log.checkpoint);
    for (const op of log.operations) replayed.mmioAddressCallback()(op.args[0] as never);
    assert.equal(state(replayed), state(plain));
    assert.equal(log.checkpointSequence + log.operations.length, 40);
    b.checkValid();
    assert.equal(state(b), state(plain));
  });

  it("refuses an entry larger than the whole log before any change", () => {
    const a = SharedSystemAllocator.create(PC, { logBytes: 256 });
    const before = state(a);
    assert.throws(() => a.irqCallback()({ action: "allocate", owner: "x".repeat(300) }), code("InvalidArgument", /larger logBytes/));
    assert.equal(state(a), before);
    assert.equal(a.lastCommitSequence, 0);
    assert.equal(a.irqCallback()({ action: "allocate", owner: "y" }), 5);
  });

  it("refuses a call whose checkpoint no longer fits, asking for a larger checkpointBytes; reads go on", () => {
    const initial = new TextEncoder().encode(JSON.stringify(new DefaultSystemAllocator(PC).toJSON())).length;
    const a = SharedSystemAllocator.create(PC, { logBytes: 256, checkpointBytes: initial + 200 });
    let error: unknown;
    let i = 0;
    for (; i < 200 && error === undefined; i++) {
      const before = state(a);
      const seq = a.lastCommitSequence;
      try {
        a.mmioAddressCallback()({ action: "allocate", owner: `device-with-a-long-name-${i}`, size: 0x1000n });
      } catch (e) {
        error = e;
        assert.equal(state(a), before);
        assert.equal(a.lastCommitSequence, seq);
      }
    }
    assert.ok(error instanceof AllocatorError && error.code === "ResourceNotAvailable" && /larger checkpointBytes/.test(error.message), String(error));
    a.checkValid();
    assert.equal(a.owners().filter((o) => o.startsWith("device-")).length, i - 1);
    // Frees shrink the state: once it fits again (a few frees past the last checkpoint), calls
    // commit again, the free that makes it fit included.
    let freed = 0;
    for (let k = 0; k < 4 && freed === 0; k++) {
      const name = `device-with-a-long-name-${k}`;
      const range = (a.allocationsOf(name)[0] as { range: RangeInclusive }).range;
      try {
        a.mmioAddressCallback()({ action: "free", owner: name, range });
        freed = k + 1;
      } catch (e) {
        assert.ok(e instanceof AllocatorError && e.code === "ResourceNotAvailable");
        assert.equal(a.allocationsOf(name).length, 1);
      }
    }
    assert.ok(freed > 0, "no free committed");
    a.checkValid();
    assert.deepEqual(a.allocationsOf(`device-with-a-long-name-${freed - 1}`), []);
    assert.throws(() => SharedSystemAllocator.create(PC, { checkpointBytes: 64 }), code("ResourceNotAvailable"));
  });

  it("rejects bad options", () => {
    for (const o of [{ logBytes: 63 }, { logBytes: 1.5 }, { logBytes: 2 ** 30 }, { checkpointBytes: "1" }, { lockTimeoutMs: 0 }, { lockTimeoutMs: Number.NaN }]) {
      assert.throws(() => SharedSystemAllocator.create(PC, o as never), code("InvalidArgument"), JSON.stringify(o));
    }
    assert.throws(() => SharedSystemAllocator.create(PC, null as never), code("InvalidArgument"));
    assert.throws(() => SharedSystemAllocator.create({ mmio32: { base: 0, size: 0 } } as never), AllocatorError);
  });
});

describe("SharedSystemAllocator: the lock and recovery", () => {
  it("a lock left held by a dead participant blocks others until recoverFrom releases it", () => {
    const a = SharedSystemAllocator.create(PC, { lockTimeoutMs: 30 });
    const dead = a.reserveParticipantId();
    const words = new Int32Array(a.buffer, 0, 16);
    // A participant that died inside a call: its id stays in the lock word.
    Atomics.store(words, LOCK_WORD, dead);
    assert.throws(() => a.holdings(), code("InvalidState", new RegExp(`participant ${dead}.*recoverFrom\\(${dead}\\)`)));
    assert.throws(() => a.irqCallback()({ action: "allocate", owner: "x" }), code("InvalidState"));
    assert.equal(a.recoverFrom(a.participantId), false, "only the holder's id releases the lock");
    assert.equal(a.recoverFrom(dead), true);
    assert.equal(a.recoverFrom(dead), false);
    assert.equal(Atomics.load(words, LOCK_WORD), 0);
    assert.equal(a.irqCallback()({ action: "allocate", owner: "x" }), 5);
    for (const bad of [0, -1, 1.5, 2 ** 31, "1", undefined]) assert.throws(() => a.recoverFrom(bad as never), code("InvalidArgument"));
  });

  it("a half-written entry past the committed end is ignored: dying before the commit store leaves nothing", () => {
    const a = SharedSystemAllocator.create(PC);
    const b = SharedSystemAllocator.attach(a.handle);
    a.irqCallback()({ action: "allocate", owner: "x" });
    const before = state(b);
    // Scribble where the next entry would go, without committing its length.
    const committed = new Int32Array(a.buffer, 0, 16)[8]!;
    const logStart = 64 + new Int32Array(a.buffer, 0, 16)[5]!;
    new Uint8Array(a.buffer, logStart + committed, 64).fill(0x7b);
    assert.equal(state(b), before);
    assert.equal(a.irqCallback()({ action: "allocate", owner: "y" }), 6);
    b.checkValid();
  });

  it("a getter in the params may call the allocator: arguments are read before the lock is taken", () => {
    const a = SharedSystemAllocator.create(PC);
    const params = {
      action: "allocate",
      get owner(): string {
        return `after-${a.holdings().length}`;
      },
    };
    assert.equal(a.irqCallback()(params as never), 5);
    assert.equal(a.allocationsOf(`after-${new DefaultSystemAllocator(PC).holdings().length}`).length, 1);
  });
});

describe("SharedSystemAllocator: a DeviceManager on top", () => {
  it("registers and unregisters devices through it, consistently, seen by every participant", () => {
    const shared = SharedSystemAllocator.create(PC);
    const other = SharedSystemAllocator.attach(shared.handle);
    const dm = DeviceManager.fromSystemAllocator(shared);
    const dev: Device = { read8: () => 0, write8: () => undefined };
    const id = dm.fullRegisterDevice(dev, [{ kind: "irq" }, { kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }, { kind: "msi", count: 2 }]);
    const uart = dm.fullRegisterDevice(dev, [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4, shared: true }]);
    dm.checkConsistency();
    const owners = other.owners();
    assert.ok(owners.some((o) => o.endsWith(`@${id}`)), owners.join(", "));
    // Another participant's allocation is seen by the manager's allocator: no double allocation.
    const theirs = other.mmioAddressCallback()({ action: "allocate", owner: "other", size: 0x1000n });
    const mine = shared.holdingsCallback()().filter((h) => h.kind === "mmio" && h.owner !== "other");
    assert.ok(mine.every((h) => "range" in h && (h.range.end < theirs!.start || h.range.start > theirs!.end)));
    dm.checkConsistency();
    dm.fullUnregisterDevice(id);
    dm.fullUnregisterDevice(uart);
    dm.checkConsistency();
    assert.deepEqual(other.owners(), ["other", ...new DefaultSystemAllocator(PC).owners()].sort());
  });
});

describe("SharedSystemAllocator: hostile handles, buffers and arguments", () => {
  it("refuses what is not a handle, with AllocatorError InvalidArgument", () => {
    const good = SharedSystemAllocator.create(PC);
    const cases: unknown[] = [
      null,
      5,
      {},
      { format: "nope", buffer: good.buffer },
      { format: SHARED_SYSTEM_ALLOCATOR_FORMAT },
      { format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: new ArrayBuffer(64) },
      { format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: new SharedArrayBuffer(8) },
      { format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: new SharedArrayBuffer(4096) },
      { format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: new SharedArrayBuffer(good.buffer.byteLength + 8) },
    ];
    for (const h of cases) assert.throws(() => SharedSystemAllocator.attach(h as never), code("InvalidArgument"), String(h));
    // A header of the right magic but sizes that do not match the buffer.
    const fake = new SharedArrayBuffer(4096);
    new Int32Array(fake).set(new Int32Array(good.buffer, 0, 16));
    assert.throws(() => SharedSystemAllocator.attach({ format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: fake }), code("InvalidArgument", /does not match/));
    for (const id of [0, 99, 1.5, "2"]) assert.throws(() => SharedSystemAllocator.attach(good.handle, { participantId: id as never }), code("InvalidArgument"));
    assert.throws(() => SharedSystemAllocator.attach(good.handle, { lockTimeoutMs: -1 }), code("InvalidArgument"));
    assert.throws(() => SharedSystemAllocator.attach(good.handle, null as never), code("InvalidArgument"));
  });

  it("a corrupt checkpoint is InvalidSnapshot; a corrupt committed entry is InvalidState (replicas diverged)", () => {
    const a = SharedSystemAllocator.create(PC);
    const copy = new SharedArrayBuffer(a.buffer.byteLength);
    new Uint8Array(copy).set(new Uint8Array(a.buffer));
    new Uint8Array(copy, 64, 16).fill(0x20); // still JSON-ish text, no longer a snapshot
    assert.throws(() => SharedSystemAllocator.attach({ format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: copy }), code("InvalidSnapshot"));
    new Uint8Array(copy, 64, 1).fill(0xff);
    assert.throws(() => SharedSystemAllocator.attach({ format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: copy }), code("InvalidSnapshot"));

    const b = SharedSystemAllocator.attach(a.handle);
    a.irqCallback()({ action: "allocate", owner: "x" });
    const words = new Int32Array(a.buffer, 0, 16);
    const logStart = 64 + words[5]!;
    const end = words[8]!;
    // Commit a well-formed entry that cannot replay (freeing what nobody holds).
    const text = new TextEncoder().encode('[2,"irq",[["o",{"action":"free","owner":"nobody","id":7}]]]');
    new Int32Array(a.buffer)[(logStart + end) / 4] = text.length;
    new Uint8Array(a.buffer).set(text, logStart + end + 4);
    Atomics.store(words, 8, end + 4 + Math.ceil(text.length / 4) * 4);
    assert.throws(() => b.holdings(), code("InvalidState", /diverged/));
    // An entry with a garbage length.
    Atomics.store(words, 8, end + 8);
    new Int32Array(a.buffer)[(logStart + end) / 4] = 1 << 30;
    assert.throws(() => b.holdings(), code("InvalidState", /diverged/));
    Atomics.store(words, 8, 1 << 30);
    assert.throws(() => b.holdings(), code("InvalidState", /out of bounds/));
  });

  it("checkValid finds a replica that differs from the shared checkpoint and log", () => {
    const a = SharedSystemAllocator.create(PC);
    const b = SharedSystemAllocator.attach(a.handle);
    b.checkValid();
    // Rewrite the active checkpoint in place (same epoch, so b keeps its replica) with another state.
    const other = new DefaultSystemAllocator(PC);
    other.irqCallback()({ action: "allocate", owner: "ghost" });
    const bytes = new TextEncoder().encode(JSON.stringify(other.toJSON()));
    new Uint8Array(a.buffer).set(bytes, 64);
    Atomics.store(new Int32Array(a.buffer, 0, 16), 10, bytes.length);
    assert.throws(() => b.checkValid(), code("InvalidState", /replica differs/));
    // A participant that loads afresh sees the rewritten state, and agrees with it.
    const c = SharedSystemAllocator.attach(a.handle);
    assert.deepEqual(c.allocationsOf("ghost").length, 1);
    c.checkValid();
  });

  it("arguments that cannot travel between threads are InvalidArgument before any change", () => {
    const a = SharedSystemAllocator.create(PC);
    const before = state(a);
    const cyclic: Record<string, unknown> = { action: "allocate", owner: "x" };
    cyclic["self"] = cyclic;
    const bad: unknown[] = [
      { action: "allocate", owner: "x", fixed: () => 5 },
      { action: "allocate", owner: "x", tag: Symbol("s") },
      { action: "allocate", owner: "x", when: new Date(0) },
      cyclic,
      {
        action: "allocate",
        get owner(): string {
          throw new Error("hostile getter");
        },
      },
      new Proxy({}, { ownKeys: () => { throw new Error("hostile proxy"); } }),
    ];
    for (const p of bad) assert.throws(() => a.irqCallback()(p as never), code("InvalidArgument"));
    assert.throws(() => a.mmioAddressCallback()({ action: "free", owner: "x", range: new Proxy(new RangeInclusive(1, 2), {}) }), code("InvalidArgument"));
    assert.equal(state(a), before);
    assert.equal(a.lastCommitSequence, 0);
    a.checkValid();
  });
});
