/**
 * The shared route table in one thread: the view agrees with `Bus.lookup` after any sequence of
 * inserts, removals and moves (a model test), at the edges of the u64 space; the capacity and
 * handle rules; hostile arguments; snapshots. The cross-thread tests are in
 * shared-routing-workers.test.ts and shared-routing-browser.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Bus, type BusMapping } from "../../src/devices/bus.js";
import { RangeInclusive } from "../../src/core/range.js";
import { U64_MAX } from "../../src/core/u64.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import {
  DEFAULT_ROUTE_CAPACITY,
  ROUTE_STALE,
  ROUTE_UNMAPPED,
  SHARED_ROUTES_SNAPSHOT_FORMAT,
  SharedRouteTable,
  SharedRouteView,
  type SharedRouteSnapshot,
} from "../../src/index.js";
import { code } from "../helpers/assert-code.js";

interface Dev {
  readonly name: string;
  readonly id: number;
  read(): void;
  write(): void;
}
const dev = (id: number): Dev => ({ name: `d${id}`, id, read() {}, write() {} });
const handleOf = (m: BusMapping<Dev>): number => m.device.id;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** What the view must answer for `a`, from the bus. */
function expected(bus: Bus<Dev>, a: bigint): { handle: number; offset: bigint } {
  const hit = bus.lookup(a);
  return hit === undefined ? { handle: ROUTE_UNMAPPED, offset: 0n } : { handle: hit.device.id, offset: hit.offset };
}

/** Checks the view against the bus at `a`, as a bigint and (when safe) as a number. */
function agree(view: SharedRouteView, bus: Bus<Dev>, a: bigint): void {
  const want = expected(bus, a);
  assert.equal(view.find(a), want.handle, `find(0x${a.toString(16)}n)`);
  assert.equal(view.lastOffsetBig, want.offset, `offset at 0x${a.toString(16)}n`);
  if (want.offset <= MAX_SAFE) assert.equal(view.lastOffset, Number(want.offset));
  if (a <= MAX_SAFE) {
    assert.equal(view.find(Number(a)), want.handle, `find(0x${a.toString(16)})`);
    assert.equal(view.lastOffset, Number(want.offset));
    assert.equal(view.lastOffsetBig, want.offset);
  }
}

/** The addresses worth probing: every bound, its neighbours, and the edges. */
function probes(bus: Bus<Dev>, extra: readonly bigint[]): bigint[] {
  const out = new Set<bigint>([0n, 1n, 1n << 32n, MAX_SAFE, MAX_SAFE + 1n, 1n << 63n, U64_MAX, ...extra]);
  for (const m of bus.mappings()) {
    for (const b of [m.range.start, m.range.end]) for (const d of [-1n, 0n, 1n]) if (b + d >= 0n && b + d <= U64_MAX) out.add(b + d);
  }
  return [...out];
}

/** Bases near the edges, so that random mappings cross 2^32, 2^53 and 2^63 and touch 2^64-1. */
const BASES = [0n, 0x3f8n, 0xffff_f000n, 1n << 32n, MAX_SAFE - 0x800n, 1n << 53n, (1n << 63n) - 0x800n, U64_MAX - 0xfffn];

const opArb = fc.oneof(
  fc.record({ op: fc.constant("insert" as const), base: fc.constantFrom(...BASES), delta: fc.bigInt(0n, 0x1000n), size: fc.bigInt(1n, 0x1000n) }),
  fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }),
  fc.record({ op: fc.constant("move" as const), pick: fc.nat(), base: fc.constantFrom(...BASES), delta: fc.bigInt(0n, 0x1000n) }),
);

describe("SharedRouteView agrees with Bus.lookup", () => {
  it("after random inserts, removals and moves, at bounds, edges and random addresses (model)", () => {
    fc.assert(
      fc.property(fc.constantFrom<"io" | "mem">("io", "mem"), fc.array(opArb, { maxLength: 30 }), fc.array(fc.bigInt(0n, U64_MAX), { maxLength: 8 }), (kind, ops, randoms) => {
        const bus = new Bus<Dev>(kind);
        const table = new SharedRouteTable(bus, handleOf, { capacity: 64 });
        const view = SharedRouteView.attach(table.buffer);
        let next = 0;
        let generation = 0;
        for (const op of ops) {
          const before = table.generation;
          try {
            if (op.op === "insert") {
              const start = op.base + op.delta > U64_MAX ? U64_MAX : op.base + op.delta;
              const end = start + op.size - 1n > U64_MAX ? U64_MAX : start + op.size - 1n;
              bus.insert(new RangeInclusive(start, end), dev(next++));
            } else {
              const all = bus.mappings();
              if (all.length === 0) continue;
              const m = all[op.pick % all.length]!;
              if (op.op === "remove") bus.remove(m.range);
              else bus.move(m.range, op.base + op.delta > U64_MAX ? U64_MAX : op.base + op.delta);
            }
            // A move to the same base changes nothing and publishes nothing.
            generation = table.generation;
            assert.ok(generation === before + 1 || generation === before);
          } catch (e) {
            assert.ok(e instanceof Error && "code" in e, String(e));
            assert.equal(table.generation, before, "a failed change publishes nothing");
          }
          table.checkValid();
          assert.equal(view.generation, generation);
          for (const a of probes(bus, randoms)) agree(view, bus, a);
        }
        assert.equal(view.retries, 0, "nothing publishes during a lookup in one thread");
      }),
      { numRuns: 60 },
    );
  });

  it("mappings touching 0, 2^32, 2^53 and 2^64-1, as numbers and bigints", () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(0n, 0n), dev(1));
    bus.insert(new RangeInclusive(0xffff_ffffn, 1n << 32n), dev(2));
    bus.insert(new RangeInclusive(MAX_SAFE, MAX_SAFE + 1n), dev(3));
    bus.insert(new RangeInclusive(1n << 63n, (1n << 63n) + 0xffn), dev(4));
    bus.insert(new RangeInclusive(U64_MAX - 0xfn, U64_MAX), dev(5));
    const view = SharedRouteView.attach(table);
    for (const a of probes(bus, [])) agree(view, bus, a);
    assert.equal(view.find(U64_MAX), 5);
    assert.equal(view.lastOffset, 15);
    assert.equal(view.find(MAX_SAFE + 1n), 3);
    assert.equal(view.lastOffsetBig, 1n);
    assert.equal(view.find(Number.MAX_SAFE_INTEGER), 3);
    assert.equal(view.lastOffset, 0);
    assert.equal(view.find(0), 1);
    assert.equal(view.find(1), ROUTE_UNMAPPED);
    assert.equal(view.lastOffset, 0);
  });

  it("one mapping of the whole u64 space: offsets past 2^53 are exact as bigints", () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(0n, U64_MAX), dev(9));
    const view = SharedRouteView.attach(table);
    assert.equal(view.find(U64_MAX), 9);
    assert.equal(view.lastOffsetBig, U64_MAX);
    assert.equal(view.find((1n << 63n) + 1n), 9);
    assert.equal(view.lastOffsetBig, (1n << 63n) + 1n);
    assert.equal(view.find(Number.MAX_SAFE_INTEGER), 9);
    assert.equal(view.lastOffset, Number.MAX_SAFE_INTEGER);
  });

  it("a mapping above 2^53 next to one below, where float bounds round together", () => {
    // Starts 2^53 + 1 and 2^53 + 2 both round to doubles next to 2^53: the search above 2^53
    // must compare halves, and the number search must stay exact below.
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(MAX_SAFE - 1n, MAX_SAFE - 1n), dev(1));
    bus.insert(new RangeInclusive(MAX_SAFE + 2n, MAX_SAFE + 2n), dev(2));
    bus.insert(new RangeInclusive(MAX_SAFE + 3n, MAX_SAFE + 3n), dev(3));
    const view = SharedRouteView.attach(table);
    for (const a of probes(bus, [])) agree(view, bus, a);
    assert.equal(view.find(Number.MAX_SAFE_INTEGER), ROUTE_UNMAPPED);
    assert.equal(view.find(MAX_SAFE + 3n), 3);
  });

  it("the same for a port bus, and a new view sees what an older one sees", () => {
    const bus = new Bus<Dev>("io");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(0x3f8, 0x3ff), dev(4));
    const a = SharedRouteView.attach(table);
    bus.move(new RangeInclusive(0x3f8, 0x3ff), 0x2f8);
    const b = SharedRouteView.attach(table.buffer);
    assert.equal(a.kind, "io");
    assert.equal(a.capacity, DEFAULT_ROUTE_CAPACITY);
    for (const v of [a, b]) {
      assert.equal(v.find(0x3f8), ROUTE_UNMAPPED);
      assert.equal(v.find(0x2fa), 4);
      assert.equal(v.lastOffset, 2);
      assert.equal(v.lastGeneration, 2);
    }
  });
});

describe("SharedRouteTable capacity, handles and closing", () => {
  it("a bus past the capacity makes the table stale (never a partial table), and fitting again makes it exact", () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf, { capacity: 2 });
    const view = SharedRouteView.attach(table);
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    bus.insert(new RangeInclusive(0x3000, 0x3fff), dev(2));
    assert.equal(table.stale, false);
    assert.equal(view.find(0x1000), 1);
    bus.insert(new RangeInclusive(0x5000, 0x5fff), dev(3));
    assert.equal(table.stale, true);
    assert.match(table.staleReason!, /3 mappings, more than the capacity 2/);
    for (const a of [0, 0x1000, 0x2000, 0x5000]) assert.equal(view.find(a), ROUTE_STALE);
    for (const a of [0n, 0x1000n, 1n << 60n, U64_MAX]) assert.equal(view.find(a), ROUTE_STALE);
    assert.equal(view.snapshot().stale, true);
    assert.deepEqual(view.snapshot().routes, []);
    table.checkValid();
    bus.remove(new RangeInclusive(0x1000, 0x1fff));
    assert.equal(table.stale, false);
    assert.equal(table.staleReason, undefined);
    assert.equal(view.find(0x1000), ROUTE_UNMAPPED);
    assert.equal(view.find(0x5004), 3);
    assert.equal(view.lastOffset, 4);
    table.checkValid();
  });

  it("capacity 0 holds only the empty bus", () => {
    const bus = new Bus<Dev>("io");
    const table = new SharedRouteTable(bus, handleOf, { capacity: 0 });
    const view = SharedRouteView.attach(table);
    assert.equal(view.find(0x60), ROUTE_UNMAPPED);
    bus.insert(new RangeInclusive(0x60, 0x60), dev(1));
    assert.equal(view.find(0x60), ROUTE_STALE);
    assert.equal(view.find(0x61n), ROUTE_STALE);
  });

  it("a handleOf that throws or returns a non-u32 makes the table stale with the reason; publish() asks again", () => {
    const bus = new Bus<Dev>("mem");
    let bad: unknown = "oops";
    const table = new SharedRouteTable(bus, (m) => (m.device.id === 2 ? (bad as number) : m.device.id));
    const view = SharedRouteView.attach(table);
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    bus.insert(new RangeInclusive(0x3000, 0x3fff), dev(2));
    assert.equal(table.stale, true);
    assert.match(table.staleReason!, /handleOf returned "oops" for d2 \[mem 0x3000-0x3fff\], not a u32/);
    assert.equal(view.find(0x1000), ROUTE_STALE);
    for (const v of [-1, 1.5, 2 ** 32, NaN]) {
      bad = v;
      table.publish();
      assert.equal(table.stale, true, String(v));
    }
    const thrower = new SharedRouteTable(bus, () => {
      throw new Error("no port for it");
    });
    assert.match(thrower.staleReason!, /handleOf threw for d1 \[mem 0x1000-0x1fff\]: no port for it/);
    bad = 0xffff_ffff;
    table.publish();
    assert.equal(table.stale, false);
    assert.equal(view.find(0x3001), 0xffff_ffff);
    assert.equal(view.find(0x1001), 1);
    table.checkValid();
  });

  it("handles are asked once per mapping; publish() asks again", () => {
    const bus = new Bus<Dev>("mem");
    let asked = 0;
    let shift = 0;
    const table = new SharedRouteTable(bus, (m) => {
      asked++;
      return m.device.id + shift;
    });
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    bus.insert(new RangeInclusive(0x3000, 0x3fff), dev(2));
    bus.insert(new RangeInclusive(0x5000, 0x5fff), dev(3));
    assert.equal(asked, 3);
    bus.move(new RangeInclusive(0x3000, 0x3fff), 0x7000);
    assert.equal(asked, 4, "a moved mapping is a new one");
    shift = 100;
    table.publish();
    assert.equal(asked, 7);
    assert.equal(SharedRouteView.attach(table).find(0x7000), 102);
  });

  it("close() publishes a stale table, stops following the bus, and is idempotent", () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    const view = SharedRouteView.attach(table);
    assert.equal(view.find(0x1000), 1);
    table.close();
    assert.equal(table.closed, true);
    assert.equal(table.staleReason, "closed");
    assert.equal(view.find(0x1000), ROUTE_STALE);
    const g = table.generation;
    table.close();
    bus.insert(new RangeInclusive(0x3000, 0x3fff), dev(2));
    assert.equal(table.generation, g);
    assert.throws(() => table.publish(), code("InvalidState", /closed/));
    assert.equal(view.find(0x3000), ROUTE_STALE);
  });

  it("forDeviceManager: handles are instance ids, moves and unregistrations follow, a foreign mapping makes it stale", () => {
    const sys = new DefaultSystemAllocator();
    const dm = DeviceManager.fromSystemAllocator(sys);
    const mk = (name: string) => ({ name, read() {}, write() {} });
    const uart = dm.fullRegisterDevice(mk("serial0"), [{ kind: "pio", size: 8, fixed: 0x3f8 }]);
    const table = SharedRouteTable.forDeviceManager(dm, "pio");
    const mmio = SharedRouteTable.forDeviceManager(dm, "mmio", { capacity: 8 });
    const blk = dm.fullRegisterDevice(mk("virtio-blk"), [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }]);
    const io = SharedRouteView.attach(table);
    const mem = SharedRouteView.attach(mmio);
    assert.equal(io.find(0x3fa), uart);
    assert.equal(io.lastOffset, 2);
    const range = dm.resourcesOf(blk).mmio[0]!.range;
    assert.equal(mem.find(range.start + 0x10n), blk);
    assert.equal(mem.lastOffset, 0x10);
    const moved = dm.moveRange(blk, range, range.start + 0x10000n);
    assert.equal(mem.find(range.start), ROUTE_UNMAPPED);
    assert.equal(mem.find(moved.start), blk);
    dm.fullUnregisterDevice(uart);
    assert.equal(io.find(0x3f8), ROUTE_UNMAPPED);
    dm.pioBus.insert(new RangeInclusive(0x60, 0x60), mk("rogue"));
    assert.equal(table.stale, true);
    assert.match(table.staleReason!, /rogue is not a device manager's owner/);
    assert.equal(io.find(0x60), ROUTE_STALE);
    assert.equal(mem.find(moved.start), blk, "the other bus is unaffected");
    mmio.checkValid();
  });
});

describe("shared routing refuses hostile arguments", () => {
  const bus = new Bus<Dev>("mem");
  bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
  const table = new SharedRouteTable(bus, handleOf);
  const view = SharedRouteView.attach(table);

  it("find: anything but a u64 (a bigint, or a safe-integer number) is InvalidArgument naming address", () => {
    for (const a of [-1, 1.5, 2 ** 53, Infinity, NaN, -0.5, -1n, 1n << 64n, "4096", null, undefined, {}, [0x1000]]) {
      assert.throws(() => view.find(a as never), code("InvalidArgument", /^address must be an integer from 0 to 2\^64-1/), String(a));
    }
    assert.equal(view.find(-0), ROUTE_UNMAPPED);
    assert.equal(view.find(0x1000), 1, "a refused call changes nothing");
    assert.equal(view.retries, 0);
  });

  it("attach: only a route table's buffer, or an object that has one", () => {
    const bad: unknown[] = [
      undefined,
      null,
      42,
      "buffer",
      {},
      { buffer: 1 },
      new ArrayBuffer(64),
      new SharedArrayBuffer(1 << 16),
      table.buffer.slice(0, 128),
      new Uint32Array(16),
      new ArrayBuffer(63),
      new SharedArrayBuffer(5),
      new Proxy({}, { get: () => { throw new Error("trap"); } }),
    ];
    bad.forEach((b, i) => assert.throws(() => SharedRouteView.attach(b as never), code("InvalidArgument"), `case ${i}`));
    const wrong = table.buffer.slice(0);
    new Uint32Array(wrong)[2] = 3; // another capacity than the length says
    assert.throws(() => SharedRouteView.attach(wrong), code("InvalidArgument", /not a shared route table/));
  });

  it("the table: a Bus, a handleOf function, a capacity from 0 to 2^20, known options only", () => {
    assert.throws(() => new SharedRouteTable({} as never, handleOf), code("InvalidArgument", /bus must be a Bus/));
    assert.throws(() => new SharedRouteTable(bus, 3 as never), code("InvalidArgument", /handleOf must be a function/));
    for (const capacity of [-1, 1.5, 2 ** 20 + 1, "8", null, NaN]) {
      assert.throws(() => new SharedRouteTable(bus, handleOf, { capacity } as never), code("InvalidArgument", /options.capacity/), String(capacity));
    }
    assert.throws(() => new SharedRouteTable(bus, handleOf, { capacty: 8 } as never), code("InvalidArgument", /unknown field "capacty"/));
    assert.throws(() => SharedRouteTable.forDeviceManager({} as never, "pio"), code("InvalidArgument", /DeviceManager/));
    assert.throws(() => SharedRouteTable.forDeviceManager(new DeviceManager(), "irq" as never), code("InvalidArgument", /"pio" or "mmio"/));
  });

  it("a corrupted buffer never makes a lookup throw or read outside it", () => {
    const b = new Bus<Dev>("mem");
    const t = new SharedRouteTable(b, handleOf, { capacity: 4 });
    b.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    const v = SharedRouteView.attach(t);
    const words = new Uint32Array(t.buffer);
    const rng = fc.sample(fc.tuple(fc.nat(words.length - 1), fc.integer({ min: 0, max: 0xffff_ffff })), { numRuns: 300, seed: 7 });
    for (const [at, value] of rng) {
      if (at < 16) continue; // the header is checked by attach; the buffers are data
      words[at] = value;
      for (const a of [0, 0x1000, 0x1fff, Number.MAX_SAFE_INTEGER]) {
        const r = v.find(a);
        assert.ok(Number.isInteger(r) && r >= ROUTE_STALE && r <= 0xffff_ffff);
      }
      for (const a of [0n, 1n << 60n, U64_MAX]) assert.ok(Number.isInteger(v.find(a)));
      v.snapshot();
    }
  });
});

describe("shared routing snapshots", () => {
  const build = () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf);
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    bus.insert(new RangeInclusive(1n << 60n, (1n << 60n) + 0xfffn), dev(7));
    bus.insert(new RangeInclusive(U64_MAX, U64_MAX), dev(8));
    return { bus, table };
  };

  it("are plain JSON: format, version, kind, generation, stale, routes in hex", () => {
    const { table } = build();
    const snap = SharedRouteView.attach(table).snapshot();
    assert.deepEqual(snap, {
      format: SHARED_ROUTES_SNAPSHOT_FORMAT,
      version: 1,
      kind: "mem",
      generation: 3,
      stale: false,
      routes: [
        { start: "0x1000", end: "0x1fff", handle: 1 },
        { start: "0x1000000000000000", end: "0x1000000000000fff", handle: 7 },
        { start: "0xffffffffffffffff", end: "0xffffffffffffffff", handle: 8 },
      ],
    });
    assert.equal(SHARED_ROUTES_SNAPSHOT_FORMAT, "vm-allocator/shared-routes");
    assert.deepEqual(JSON.parse(JSON.stringify(table)), snap);
    assert.deepEqual(table.toJSON(), snap);
  });

  it("fromJSON rebuilds a frozen view that answers the same and snapshots to the same", () => {
    const { bus, table } = build();
    const snap = table.toJSON();
    const frozen = SharedRouteView.fromJSON(JSON.parse(JSON.stringify(snap)));
    assert.deepEqual(frozen.snapshot(), snap);
    for (const a of probes(bus, [])) agree(frozen, bus, a);
    bus.insert(new RangeInclusive(0x8000, 0x8fff), dev(2));
    assert.equal(frozen.find(0x8000), ROUTE_UNMAPPED, "no writer changes a restored view");
    assert.equal(frozen.generation, 3);
    const odd = SharedRouteView.fromJSON({ ...snap, generation: 0xffff_ffff });
    assert.equal(odd.find(0x1001n), 1);
    assert.equal(odd.lastGeneration, 0xffff_ffff);
    const stale = SharedRouteView.fromJSON({ ...snap, stale: true, routes: [] });
    assert.equal(stale.find(0x1001), ROUTE_STALE);
    assert.equal(stale.find(0), ROUTE_STALE);
    const empty = SharedRouteView.fromJSON({ ...snap, routes: [] });
    for (const a of [0, 0x1001, Number.MAX_SAFE_INTEGER]) assert.equal(empty.find(a), ROUTE_UNMAPPED);
    for (const a of [0n, 1n << 60n, U64_MAX]) assert.equal(empty.find(a), ROUTE_UNMAPPED);
    assert.equal(empty.capacity, 1);
  });

  it("fromJSON refuses malformed snapshots with InvalidSnapshot naming the problem", () => {
    const { table } = build();
    const good = table.toJSON();
    const r = (start: string, end: string, handle: unknown = 1) => ({ start, end, handle });
    const cases: [unknown, RegExp][] = [
      [null, /must be an object/],
      [[], /must be an object/],
      [{ ...good, format: "vm-allocator/bus" }, /format must be "vm-allocator\/shared-routes"/],
      [{ ...good, version: 2 }, /version must be 1/],
      [{ ...good, kind: "pci" }, /kind must be "io" or "mem"/],
      [{ ...good, generation: -1 }, /generation/],
      [{ ...good, generation: 2 ** 32 }, /generation/],
      [{ ...good, stale: 1 }, /stale must be a boolean/],
      [{ ...good, routes: {} }, /routes must be an array/],
      [{ ...good, stale: true }, /a stale table has no routes/],
      [{ ...good, extra: 1 }, /unknown field "extra"/],
      [(({ routes: _, ...rest }) => rest)(good), /lacks field "routes"/],
      [{ ...good, routes: [r("0x10", "0x1")] }, /starts after it ends/],
      [{ ...good, routes: [r("0x10", "0x1f"), r("0x1f", "0x2f")] }, /sorted and disjoint/],
      [{ ...good, routes: [r("0x20", "0x2f"), r("0x10", "0x1f")] }, /sorted and disjoint/],
      [{ ...good, routes: [r("0x010", "0x1f")] }, /canonical 0x hex/],
      [{ ...good, routes: [r("0x10000000000000000", "0x10000000000000000")] }, /canonical 0x hex/],
      [{ ...good, routes: [r("16", "0x1f")] }, /canonical 0x hex/],
      [{ ...good, routes: [r("0x10", "0x1f", -1)] }, /handle must be an integer from 0 to 2\^32-1/],
      [{ ...good, routes: [r("0x10", "0x1f", 1.5)] }, /handle/],
      [{ ...good, routes: [r("0x10", "0x1f", "1")] }, /handle/],
      [{ ...good, routes: [{ ...r("0x10", "0x1f"), owner: "x" }] }, /routes\[0\] has unknown field "owner"/],
      [new Proxy({}, { ownKeys: () => { throw new Error("trap"); } }), /could not be read \(trap\)/],
    ];
    for (const [snap, message] of cases) {
      assert.throws(() => SharedRouteView.fromJSON(snap), code("InvalidSnapshot", message), message.source);
    }
  });

  it("a snapshot of a view is one published table while the table keeps changing", () => {
    // In one thread no publish can interleave; the torn-read tests run this with writers in
    // other threads. Here: each snapshot equals the bus at its generation.
    const bus = new Bus<Dev>("io");
    const table = new SharedRouteTable(bus, handleOf);
    const view = SharedRouteView.attach(table);
    const seen: SharedRouteSnapshot[] = [];
    for (let i = 0; i < 20; i++) {
      bus.insert(RangeInclusive.withSize(0x100 + 16 * i, 8), dev(i));
      const s = view.snapshot();
      assert.equal(s.generation, i + 1);
      assert.equal(view.lastGeneration, i + 1);
      assert.equal(s.routes.length, i + 1);
      seen.push(s);
    }
    assert.deepEqual(seen[19]!.routes.map((x) => x.handle), [...Array(20).keys()]);
  });
});

describe("shared routing answers are proved, not guessed", () => {
  it("garbage in the search keys (the plain hints) never changes an answer", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 20 }), fc.array(fc.double(), { minLength: 1, maxLength: 64 }), (ops, garbage) => {
        const bus = new Bus<Dev>("mem");
        const table = new SharedRouteTable(bus, handleOf, { capacity: 32 });
        let next = 0;
        for (const op of ops) {
          if (op.op !== "insert") continue;
          const start = op.base + op.delta > U64_MAX ? U64_MAX : op.base + op.delta;
          const end = start + op.size - 1n > U64_MAX ? U64_MAX : start + op.size - 1n;
          try {
            bus.insert(new RangeInclusive(start, end), dev(next++));
          } catch {
            // overlaps are skipped
          }
        }
        // Both buffers' keys: 16 header words, then per buffer 16 words and 32 keys.
        const keys = new Float64Array(table.buffer);
        const perBuffer = (16 + 32 * 7) / 2;
        for (let b = 0; b < 2; b++) for (let i = 0; i < 32; i++) keys[8 + b * perBuffer + 8 + i] = garbage[(i + b) % garbage.length]!;
        const view = SharedRouteView.attach(table);
        for (const a of probes(bus, [])) agree(view, bus, a);
      }),
      { numRuns: 60 },
    );
  });
});

describe("SharedRouteTable outside cross-origin isolation, and its own check", () => {
  it("uses a plain ArrayBuffer where SharedArrayBuffer is missing, and still answers in its thread", () => {
    const g = globalThis as { SharedArrayBuffer?: unknown };
    const saved = g.SharedArrayBuffer;
    let table: SharedRouteTable<Dev>;
    const bus = new Bus<Dev>("io");
    try {
      delete g.SharedArrayBuffer;
      table = new SharedRouteTable(bus, handleOf, { capacity: 4 });
    } finally {
      g.SharedArrayBuffer = saved;
    }
    assert.equal(Object.prototype.toString.call(table.buffer), "[object ArrayBuffer]");
    bus.insert(new RangeInclusive(0x60, 0x64), dev(3));
    const view = SharedRouteView.attach(table.buffer);
    assert.equal(view.find(0x64), 3);
    assert.equal(view.lastOffset, 4);
  });

  it("checkValid reports a published table that differs from the bus", () => {
    const bus = new Bus<Dev>("mem");
    const table = new SharedRouteTable(bus, handleOf, { capacity: 4 });
    bus.insert(new RangeInclusive(0x1000, 0x1fff), dev(1));
    table.checkValid();
    // Generation 1 is in buffer 1: 16 header words, then buffer 0 (16 + 4 * 7 words), then
    // buffer 1's 16 words and 4 keys (8 words); its first entry's end-lo word is 3 words in.
    const words = new Uint32Array(table.buffer);
    const entry = 16 + (16 + 4 * 7) + 16 + 8;
    assert.equal(words[entry + 3], 0x1fff);
    words[entry + 3] = 0x17ff;
    assert.throws(() => table.checkValid(), code("InvalidState", /route 0 0x1000-0x17ff handle 1 is not d1 \[mem 0x1000-0x1fff\]/));
  });
});
