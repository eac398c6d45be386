/**
 * Nothing a caller holds aliases the state of a bus, a device manager or an allocator: what they
 * hand out is frozen or a copy, and what they are handed (ranges above all) cannot change after.
 * Every test drives the public API only, and checks afterwards that the structures still agree
 * and that unplugging gives everything back.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AddressAllocator,
  AllocatorError,
  AllocPolicy,
  Bus,
  DefaultSystemAllocator,
  DeviceManager,
  getLayout,
  IdAllocator,
  RangeInclusive,
  type AddrAllocateFunc,
  type Device,
} from "../../src/index.js";

const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);
const device = (name: string): Device => ({ name, read: (_b, _o, data) => data.fill(0x5a), write: () => {} });
type Writable = { -readonly [K in keyof RangeInclusive]: RangeInclusive[K] };

/** The ways a caller might try to change a range it holds; each throws in strict mode. */
function assertUnchangeable(range: RangeInclusive): void {
  const before = [range.start, range.end];
  const w = range as Writable;
  assert.throws(() => {
    w.start += 0x1000n;
  }, TypeError);
  assert.throws(() => {
    w.end = 0n;
  }, TypeError);
  assert.throws(() => Object.defineProperty(range, "start", { value: 0n }), TypeError);
  assert.deepEqual([range.start, range.end], before);
}

/** What the allocator holds (allocations and reservations), to compare before plugging and after unplugging. */
const holdings = (sys: DefaultSystemAllocator): string => JSON.stringify(sys.holdings());

function plugged(): { sys: DefaultSystemAllocator; dm: DeviceManager; id: number; initial: string } {
  const sys = new DefaultSystemAllocator(getLayout("pc-x86_64")); // a preset with port I/O
  const initial = holdings(sys);
  const dm = DeviceManager.fromSystemAllocator(sys);
  const id = dm.fullRegisterDevice(device("virtio-blk"), [
    { kind: "mmio", size: 0x1000, alignment: 0x1000 },
    { kind: "pio", size: 0x20 },
    { kind: "irq" },
  ]);
  return { sys, dm, id, initial };
}

describe("aliasing: the device manager", () => {
  it("resourcesOf(id).mmio[0].range.start += 0x1000n throws and corrupts nothing; unplugging frees everything", () => {
    const { sys, dm, id, initial } = plugged();
    const held = dm.resourcesOf(id);
    assertUnchangeable(held.mmio[0]!.range);
    assertUnchangeable(held.pio[0]!.range);
    dm.checkConsistency();
    const mapped = held.mmio[0]!.range;
    const data = new Uint8Array(4);
    assert.equal(dm.mmioRead(mapped.start, data), true);
    dm.fullUnregisterDevice(id);
    dm.checkConsistency();
    sys.checkValid();
    assert.equal(holdings(sys), initial);
  });

  it("resourcesOf returns a copy: changing its arrays and records reaches nothing", () => {
    const { dm, id } = plugged();
    const pristine = dm.resourcesOf(id);
    const held = dm.resourcesOf(id) as unknown as {
      mmio: { range: RangeInclusive; allocated: boolean }[];
      irqs: { irq: number; allocated: boolean }[];
      owner: string;
    };
    const range = held.mmio[0]!.range;
    const irq = held.irqs[0]!.irq;
    held.mmio[0]!.range = r(0, 0xfff);
    held.mmio[0]!.allocated = false;
    held.mmio.push({ range: r(0x10, 0x20), allocated: true });
    held.irqs[0]!.irq = irq + 1;
    held.owner = "someone-else";
    const again = dm.resourcesOf(id);
    assert.deepStrictEqual(again, pristine);
    assert.equal(again.mmio[0]!.range, range);
    assert.equal(again.mmio[0]!.allocated, true);
    assert.equal(again.irqs[0]!.irq, irq);
    assert.equal(again.owner, pristine.owner);
    dm.checkConsistency();
    dm.fullUnregisterDevice(id);
    dm.checkConsistency();
  });

  it("simpleRegisterDevice keeps the caller's ranges, which the caller cannot change afterwards", () => {
    const dm = new DeviceManager();
    const mmio = r(0xd000_0000, 0xd000_0fff);
    const pio = r(0x3f8, 0x3ff);
    dm.simpleRegisterDevice(device("serial"), 3, 4, pio, [mmio]);
    assertUnchangeable(mmio);
    assertUnchangeable(pio);
    dm.checkConsistency();
    assert.equal(dm.mmioBus.lookup(0xd000_0000)?.owner, "serial@3");
    dm.unregisterDevice(3);
    dm.checkConsistency();
    assert.equal(dm.mmioBus.size, 0);
  });

  it("refuses a Proxy of a range, or a lookalike, anywhere a range is taken", () => {
    const dm = new DeviceManager();
    const real = r(0x1000, 0x1fff);
    const fakes: unknown[] = [
      new Proxy(real, {}),
      Object.freeze(Object.assign(Object.create(RangeInclusive.prototype) as object, { start: 0x1000n, end: 0x1fffn })),
      { start: 0x1000n, end: 0x1fffn },
    ];
    for (const fake of fakes) {
      assert.throws(() => dm.simpleRegisterDevice(device("d"), 1, undefined, undefined, fake as RangeInclusive), { code: "InvalidArgument" });
      assert.throws(() => new Bus("mem").insert(fake as RangeInclusive, device("d")), { code: "InvalidArgument" });
    }
    assert.equal(dm.size, 0);
    dm.checkConsistency();
  });

  it("a range an allocator callback returns (and keeps) cannot be changed by it later", () => {
    const pool = new AddressAllocator(0xd000_0000, 0x10_0000);
    const handedOut: RangeInclusive[] = [];
    const mmio: AddrAllocateFunc = (params) => {
      if (params.action === "free") {
        pool.free(params.range);
        return params.range;
      }
      const got = pool.allocate(params.size, params.alignment ?? 1n, undefined, { owner: params.owner });
      handedOut.push(got);
      return got;
    };
    const ids = new IdAllocator(0, 100);
    const dm = new DeviceManager({
      mmio,
      deviceId: (p) => (p.action === "allocate" ? ids.allocateId(p.owner) : ids.freeId(p.id)),
    });
    const id = dm.fullRegisterDevice(device("nvme"), [{ kind: "mmio", size: 0x4000, alignment: 0x1000 }]);
    assertUnchangeable(handedOut[0]!);
    dm.checkConsistency();
    dm.fullUnregisterDevice(id);
    assert.equal(pool.allocationCount, 0);
    assert.equal(ids.allocatedCount, 0);
  });

  it(
    "the window an allocator callback is given is not the one the manager keeps for moves",
    () => {
      const pool = new AddressAllocator(0xd000_0000, 0x10_0000);
      const mmio: AddrAllocateFunc = (params) => {
        if (params.action === "free") {
          pool.free(params.range);
          return params.range;
        }
        const window = params.window as { min: bigint; max: bigint } | undefined;
        if (window !== undefined) window.max = 0xffff_ffffn; // a callback scribbling on what it was given
        const policy = params.fixed === undefined ? undefined : AllocPolicy.ExactMatch(params.fixed);
        return pool.allocate(params.size, params.alignment ?? 1n, policy, { owner: params.owner });
      };
      const dm = new DeviceManager({ mmio });
      const id = dm.fullRegisterDevice(device("gpu"), [
        { kind: "instanceId", fixed: 1 },
        { kind: "mmio", size: 0x1000, window: { min: 0xd000_0000, max: 0xd000_ffff } },
      ]);
      const range = dm.resourcesOf(id).mmio[0]!.range;
      assert.throws(() => dm.moveRange(id, range, 0xd008_0000), { code: "OutOfRange" });
    },
  );
});

describe("aliasing: buses", () => {
  it("mappings() entries are frozen and the list is a copy", () => {
    const bus = new Bus("mem");
    const range = r(0x1000, 0x1fff);
    bus.insert(range, device("a"), "a@0");
    const list = bus.mappings();
    const m = list[0]! as { owner: string; range: RangeInclusive; device: Device };
    assertUnchangeable(m.range);
    assert.throws(() => {
      m.owner = "b@1";
    }, TypeError);
    assert.throws(() => {
      m.range = r(0, 0xfff);
    }, TypeError);
    list.pop();
    assert.equal(bus.mappings().length, 1);
    bus.checkValid();
    assert.equal(bus.remove(range).owner, "a@0");
    assert.equal(bus.size, 0);
  });

  it("lookup() and get() results reach nothing when changed", () => {
    const bus = new Bus("io");
    const range = r(0x3f8, 0x3ff);
    bus.insert(range, device("serial"));
    const found = bus.lookup(0x3fa)! as { range: RangeInclusive; offset: bigint; owner: string };
    assertUnchangeable(found.range);
    try {
      found.owner = "other";
      found.offset = 0n;
    } catch (error) {
      assert.ok(error instanceof TypeError);
    }
    assert.equal(bus.lookup(0x3fa)!.offset, 2n);
    assert.equal(bus.lookup(0x3fa)!.owner, "serial");
    assertUnchangeable(bus.get(range)!.range);
    bus.checkValid();
    assert.equal(bus.remove(0x3f8).owner, "serial");
  });

  it("a range given to insert cannot move under the bus", () => {
    const bus = new Bus("mem");
    const a = r(0x1000, 0x1fff);
    const b = r(0x2000, 0x2fff);
    bus.insert(a, device("a"));
    bus.insert(b, device("b"));
    assertUnchangeable(a);
    bus.checkValid();
    assert.throws(() => bus.insert(r(0x1800, 0x27ff), device("c")), (e: unknown) => e instanceof AllocatorError && e.code === "Overlap");
    assert.equal(bus.lookup(0x1fff)?.owner, "a");
    assert.equal(bus.lookup(0x2000)?.owner, "b");
  });
});

describe("aliasing: the system allocator and the core allocators", () => {
  it("holdings, allocationsOf, the layout and pool views hand out copies or frozen objects", () => {
    const { sys, dm, id, initial } = plugged();
    const owner = dm.resourcesOf(id).owner;
    const held = sys.allocationsOf(owner) as { range?: RangeInclusive; owner: string }[];
    for (const h of held) if (h.range !== undefined) assertUnchangeable(h.range);
    held[0]!.owner = "thief";
    held.length = 0;
    assert.ok(sys.allocationsOf(owner).length > 0);
    assert.ok(Object.isFrozen(sys.layout));
    assert.throws(() => {
      (sys.layout.mmio32 as { base: string }).base = "0x0";
    }, TypeError);
    const view = sys.mmio32.allocations() as { range: RangeInclusive; owner: string | undefined }[];
    view[0]!.owner = "thief";
    assert.notEqual(sys.mmio32.allocations()[0]!.owner, "thief");
    const snapshot = sys.toJSON() as unknown as { layout: { mmio32: { base: string } } };
    snapshot.layout.mmio32.base = "0x0";
    assert.notEqual(sys.toJSON().layout.mmio32.base, "0x0");
    sys.checkValid();
    dm.fullUnregisterDevice(id);
    assert.equal(holdings(sys), initial);
  });

  it("snapshots given to fromJSON are not kept: changing them later changes nothing", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(0x100, 1, undefined, { owner: "x" });
    const snap = a.toJSON() as unknown as { blocks: { start: string; owner?: string }[] };
    const b = AddressAllocator.fromJSON(snap);
    snap.blocks[0]!.owner = "y";
    snap.blocks.length = 0;
    assert.deepEqual(b.toJSON(), a.toJSON());
    const ids = new IdAllocator(0, 100);
    ids.allocateIds(3, "x");
    const idSnap = ids.toJSON();
    const restored = IdAllocator.fromJSON(idSnap);
    idSnap.allocated[0]![1] = 100;
    idSnap.owners[0]![0] = "y";
    assert.deepEqual(restored.toJSON(), ids.toJSON());
    restored.checkValid();
  });
});
