/**
 * DeviceManager.toJSON / DeviceManager.fromJSON: the device half of a VM snapshot, restored next
 * to the system allocator of the same moment (issue 7, "Snapshots of a whole VM").
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ResourceRequest } from "../../src/devices/device.js";
import { DeviceManager, type DeviceManagerRestoreOptions } from "../../src/devices/device-manager.js";
import { DEVICE_MANAGER_SNAPSHOT_FORMAT, type DeviceManagerSnapshot } from "../../src/devices/device-manager-snapshot.js";
import type { AllocationCallbacks, HoldingsFunc } from "../../src/system/allocation-callbacks.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { allocatorError, newVm, plainResources, ProbeDevice, restoreVm, thrown, vmSnapshot } from "../helpers/vm.js";

const GiB = 1n << 30n;
const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);

/**
 * A VM on the test layout with every way of holding a resource: allocated, fixed in free pool space,
 * fixed inside a platform reservation (the serial ports in the ISA block, the RTC's line 8),
 * fixed outside every pool (IRQ 4 below the IRQ pool, a ROM below the MMIO pools, GSI 5000),
 * shared lines (16 in the pool, 4 outside it, 9 in a reservation), a simple registration, a
 * fixed instance id, an MSI range with a window and alignment, and 64-bit MMIO.
 */
function sampleVm() {
  const { sys, dm } = newVm();
  const devices = new Map<number, ProbeDevice>();
  /** How to plug each device again, on any manager. */
  const replug = new Map<number, (into: DeviceManager) => number>();
  let fill = 0x10;
  const plug = (name: string, reqs: readonly ResourceRequest[]): number => {
    const d = new ProbeDevice(name, fill++);
    const id = dm.fullRegisterDevice(d, reqs);
    devices.set(id, d);
    replug.set(id, (into) => into.fullRegisterDevice(new ProbeDevice(name), reqs));
    return id;
  };
  plug("serial", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4, shared: true }]);
  plug("serial", [{ kind: "pio", size: 8, fixed: 0x2f8 }, { kind: "irq", fixed: 4, shared: true }]);
  plug("virtio-net", [
    { kind: "mmio", size: 0x1000, alignment: 0x1000 },
    { kind: "msi", count: 2 },
    { kind: "pio", size: 0x20, alignment: 0x20, window: { min: 0x2000, max: 0x2fff } },
  ]);
  plug("virtio-blk", [
    { kind: "mmio", size: 0x2000, alignment: 0x1000, mmio64: true },
    { kind: "irq", fixed: 16, shared: true },
    { kind: "msi", count: 1, fixed: [100] },
  ]);
  plug("virtio-blk", [{ kind: "irq", fixed: 16, shared: true }, { kind: "mmio", size: 0x1000, fixed: 0xd000_0000 }, { kind: "irq" }]);
  plug("rtc", [{ kind: "instanceId", fixed: 40 }, { kind: "irq", fixed: 8 }, { kind: "pio", size: 2, fixed: 0x70 }]);
  plug("boot-rom", [{ kind: "mmio", size: 0x1000, fixed: 0x1000 }, { kind: "msi", count: 1, fixed: [5000] }]);
  const simple = (into: DeviceManager, d: ProbeDevice) =>
    into.simpleRegisterDevice(d, 7, [{ irq: 9, shared: true }], r(0x4000, 0x400f), r(0xe000_0000, 0xe000_0fff));
  const probe = new ProbeDevice("vmm-probe", fill++);
  simple(dm, probe);
  devices.set(7, probe);
  replug.set(7, (into) => simple(into, new ProbeDevice("vmm-probe")));
  return { sys, dm, devices, replug };
}

const idSlot = (value: number, fixed: boolean, heldBy: string, shared = false) => ({ value, fixed, shared, heldBy });
const rangeSlot = (start: string, end: string, fixed: boolean, heldBy: string, extra: Record<string, unknown> = {}) => ({
  start,
  end,
  fixed,
  heldBy,
  mmio64: false,
  ...extra,
});
const device = (name: string, id: number, registration: string, fields: Record<string, unknown>) => ({
  name,
  owner: `${name}@${id}`,
  registration,
  instanceId: idSlot(id, false, "allocator"),
  irqs: [],
  msi: [],
  pio: [],
  mmio: [],
  ...fields,
});

/** Fresh device objects for a restore, named as recorded, keeping them for inspection. */
function freshDevices() {
  const made = new Map<number, ProbeDevice>();
  let fill = 0xa0;
  const resolve = (e: { instanceId: number; name: string }) => {
    const d = new ProbeDevice(e.name, fill++);
    made.set(e.instanceId, d);
    return d;
  };
  return { made, resolve };
}

/** Reads and writes one byte inside every range of every device, checking who receives it. */
function assertRoutes(dm: DeviceManager, owners: ReadonlyMap<number, ProbeDevice>, strangers: readonly ProbeDevice[] = []): void {
  for (const id of dm.instanceIds()) {
    const res = dm.resourcesOf(id);
    const dev = owners.get(id)!;
    assert.equal(res.device, dev, `${res.owner} is attached to the given object`);
    for (const [kind, slots] of [["pio", res.pio], ["mmio", res.mmio]] as const) {
      for (const { range } of slots) {
        const offset = range.len() > 4n ? 3n : 0n;
        const data = new Uint8Array(1);
        const before = dev.accesses.length;
        const hit = kind === "pio" ? dm.pioRead(range.start + offset, data) : dm.mmioRead(range.start + offset, data);
        assert.equal(hit, true, `${kind} read in ${range.toString()} of ${res.owner}`);
        assert.equal(data[0], dev.fill);
        assert.deepEqual(dev.accesses.slice(before), [{ op: "read", base: range.start, offset, len: 1 }]);
        const wrote = kind === "pio" ? dm.pioWrite(range.end, new Uint8Array(1)) : dm.mmioWrite(range.end, new Uint8Array(1));
        assert.equal(wrote, true);
        assert.deepEqual(dev.accesses.at(-1), { op: "write", base: range.start, offset: range.end - range.start, len: 1 });
      }
    }
  }
  for (const s of strangers) assert.deepEqual(s.accesses, [], `${s.name} (not attached) saw no access`);
}

const sysText = (sys: DefaultSystemAllocator) => JSON.stringify(sys.toJSON());

describe("DeviceManager.toJSON", () => {
  it("records every live device by ascending instance id with every field of every resource", () => {
    const { dm } = sampleVm();
    const snap = dm.toJSON();
    assert.deepEqual(snap, {
      format: "vm-allocator/device-manager",
      version: 1,
      devices: [
        device("serial", 0, "full", { irqs: [idSlot(4, true, "outside", true)], pio: [rangeSlot("0x3f8", "0x3ff", true, "allocator")] }),
        device("serial", 1, "full", { irqs: [idSlot(4, true, "outside", true)], pio: [rangeSlot("0x2f8", "0x2ff", true, "allocator")] }),
        device("virtio-net", 2, "full", {
          msi: [idSlot(24, false, "allocator"), idSlot(25, false, "allocator")],
          pio: [rangeSlot("0x2000", "0x201f", false, "allocator", { alignment: "0x20", window: { min: "0x2000", max: "0x2fff" } })],
          mmio: [rangeSlot("0xc0000000", "0xc0000fff", false, "allocator", { alignment: "0x1000" })],
        }),
        device("virtio-blk", 3, "full", {
          irqs: [idSlot(16, true, "allocator", true)],
          msi: [idSlot(100, true, "allocator")],
          mmio: [rangeSlot("0x1000000000", "0x1000001fff", false, "allocator", { alignment: "0x1000", mmio64: true })],
        }),
        device("virtio-blk", 4, "full", {
          irqs: [idSlot(16, true, "allocator", true), idSlot(5, false, "allocator")],
          mmio: [rangeSlot("0xd0000000", "0xd0000fff", true, "allocator")],
        }),
        device("boot-rom", 5, "full", { msi: [idSlot(5000, true, "outside")], mmio: [rangeSlot("0x1000", "0x1fff", true, "outside")] }),
        device("vmm-probe", 7, "simple", {
          instanceId: idSlot(7, true, "allocator"),
          irqs: [idSlot(9, true, "allocator", true)],
          pio: [rangeSlot("0x4000", "0x400f", true, "allocator")],
          mmio: [rangeSlot("0xe0000000", "0xe0000fff", true, "allocator")],
        }),
        device("rtc", 40, "full", {
          instanceId: idSlot(40, true, "allocator"),
          irqs: [idSlot(8, true, "allocator")],
          pio: [rangeSlot("0x70", "0x71", true, "allocator")],
        }),
      ],
    });
    assert.equal(snap.format, DEVICE_MANAGER_SNAPSHOT_FORMAT);
    // Plain JSON: the text form parses back to the same object.
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap);
  });

  it("is empty for an empty manager, says unmanaged without callbacks, and is a copy", () => {
    assert.deepEqual(new DeviceManager().toJSON(), { format: "vm-allocator/device-manager", version: 1, devices: [] });
    const dm = new DeviceManager();
    dm.simpleRegisterDevice(new ProbeDevice("late"), 0xffff_ffff, 3, r(0, 0), r(0xffff_ffff_ffff_f000n, 0xffff_ffff_ffff_ffffn));
    dm.fullRegisterDevice(new ProbeDevice("early"), [{ kind: "instanceId", fixed: 0 }, { kind: "msi", count: 2, fixed: [0, 0xffff_ffff] }]);
    const snap = dm.toJSON() as unknown as { devices: Record<string, unknown>[] };
    assert.deepEqual(snap.devices, [
      device("early", 0, "full", { instanceId: idSlot(0, true, "unmanaged"), msi: [idSlot(0, true, "unmanaged"), idSlot(0xffff_ffff, true, "unmanaged")] }),
      device("late", 0xffff_ffff, "simple", {
        instanceId: idSlot(0xffff_ffff, true, "unmanaged"),
        irqs: [idSlot(3, true, "unmanaged")],
        pio: [rangeSlot("0x0", "0x0", true, "unmanaged")],
        mmio: [rangeSlot("0xfffffffffffff000", "0xffffffffffffffff", true, "unmanaged")],
      }),
    ]);
    // The edges restore exactly: id 2^32-1, port 0, the last page below 2^64.
    const { made, resolve } = freshDevices();
    const back = DeviceManager.fromJSON(JSON.parse(JSON.stringify(snap)), { devices: resolve });
    assert.deepEqual(back.toJSON(), snap);
    assertRoutes(back, made);
    const last = new Uint8Array(1);
    assert.equal(back.mmioRead(0xffff_ffff_ffff_ffffn, last), true);
    assert.equal(last[0], made.get(0xffff_ffff)!.fill);
    // Changing the snapshot cannot reach the manager.
    (snap.devices[0]!["irqs"] as unknown[]).push({ value: 1 });
    snap.devices.length = 0;
    assert.equal(dm.toJSON().devices.length, 2);
    assert.deepEqual(dm.toJSON().devices[0]!.irqs, []);
  });

  it("follows moves, unplugs and the name a device without one gets", () => {
    const { sys, dm } = newVm("firecracker-x86_64");
    const anonymous = { read: (_b: bigint, _o: bigint, d: Uint8Array) => d.fill(1), write: () => {} };
    const id = dm.fullRegisterDevice(anonymous, [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }]);
    const other = dm.fullRegisterDevice(new ProbeDevice("gone"), [{ kind: "irq" }]);
    const moved = dm.moveRange(id, dm.resourcesOf(id).mmio[0]!.range, 0xd000_0000n);
    dm.fullUnregisterDevice(other);
    assert.deepEqual(dm.toJSON().devices, [
      device("device", 0, "full", { mmio: [rangeSlot("0xd0000000", "0xd0000fff", false, "allocator", { alignment: "0x1000" })] }),
    ]);
    const back = DeviceManager.fromJSON(dm.toJSON(), { systemAllocator: sys, devices: new Map([[0, anonymous]]) });
    assert.equal(back.resourcesOf(0).device, anonymous);
    assert.ok(back.resourcesOf(0).mmio[0]!.range.equals(moved));
  });
});

describe("DeviceManager.fromJSON: a VM round trip through JSON text", () => {
  it("restores the same devices at the same places, routing to the given objects at once", () => {
    const { sys, dm, devices } = sampleVm();
    const text = vmSnapshot(sys, dm);
    const { made, resolve } = freshDevices();
    const entries: unknown[] = [];
    const b = restoreVm(text, (e) => {
      entries.push({ ...e });
      return resolve(e);
    });
    // The function is asked once per device, in ascending order, with the recorded identity.
    assert.deepEqual(
      entries,
      dm.instanceIds().map((id) => ({ instanceId: id, name: dm.resourcesOf(id).name, owner: dm.resourcesOf(id).owner })),
    );
    assert.deepEqual(b.dm.instanceIds(), dm.instanceIds());
    assert.equal(b.dm.size, dm.size);
    for (const id of dm.instanceIds()) {
      assert.deepEqual(plainResources(b.dm.resourcesOf(id)), plainResources(dm.resourcesOf(id)));
      assert.equal(b.dm.resourcesOf(id).device, made.get(id));
    }
    assertRoutes(b.dm, made, [...devices.values()]);
    // Nothing maps where nothing was mapped.
    const data = new Uint8Array(2);
    assert.equal(b.dm.mmioRead(0xc000_1000n, data), false);
    assert.deepEqual([...data], [0xff, 0xff]);
    assert.equal(b.dm.pioRead(0x3f0, data), false);
    b.dm.checkConsistency();
    b.sys.checkValid();
    assert.deepEqual(b.dm.toJSON(), dm.toJSON());
    assert.deepEqual(b.sys.toJSON(), sys.toJSON());
    assert.equal(vmSnapshot(b.sys, b.dm), text);
    // The original is untouched by being snapshotted.
    dm.checkConsistency();
    assertRoutes(dm, devices);
  });

  it("names the holders of a shared line in the same order as the original, whatever order they came in", () => {
    // Found by the twin test: vmm@3 took line 16 before virtio-net@0; a restore adds holders
    // in id order, so the original must list them that way too.
    const { sys, dm } = newVm();
    dm.simpleRegisterDevice(new ProbeDevice("vmm"), 3, { irq: 16, shared: true });
    dm.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "irq", fixed: 16, shared: true }]);
    dm.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "irq", fixed: 4, shared: true }]);
    dm.simpleRegisterDevice(new ProbeDevice("vmm"), 2, { irq: 4, shared: true });
    const restored = restoreVm(vmSnapshot(sys, dm), freshDevices().resolve);
    for (const [line, holders, first] of [
      [16, "virtio-net@0, vmm@3", "virtio-net@0"],
      [4, "virtio-net@1, vmm@2", "virtio-net@1"],
    ] as const) {
      for (const vm of [dm, restored.dm]) {
        const e = thrown(() => vm.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "irq", fixed: line }]));
        allocatorError("Overlap", new RegExp(`^virtio-net@4: requests\\[0\\] \\(irq ${line}\\): \\[irq ${line}\\] is shared by ${holders}; pass shared: true to share it$`))(e);
        assert.equal((e as AllocatorError).owner, first);
      }
    }
  });

  it("accepts callbacks instead of a system allocator, and a Map of device objects", () => {
    const { sys, dm } = sampleVm();
    const snap = JSON.parse(JSON.stringify(dm.toJSON())) as unknown;
    const sys2 = DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(sys.toJSON())));
    const callbacks: AllocationCallbacks = {
      deviceId: sys2.deviceIdCallback(),
      irq: sys2.irqCallback(),
      pio: sys2.pioAddressCallback()!,
      mmio: sys2.mmioAddressCallback(),
      holdings: sys2.holdingsCallback(),
    };
    const objects = new Map(dm.instanceIds().map((id) => [id, new ProbeDevice(dm.resourcesOf(id).name, id)] as const));
    const back = DeviceManager.fromJSON(snap, { callbacks, devices: objects });
    assertRoutes(back, objects);
    back.checkConsistency();
    assert.deepEqual(back.toJSON(), dm.toJSON());
    // The same object may back several devices, as with live registration.
    const shared = new ProbeDevice("serial");
    const twice = new Map([...objects, [0, shared], [1, shared]]);
    const again = DeviceManager.fromJSON(snap, { callbacks, devices: twice });
    assert.equal(again.resourcesOf(0).device, shared);
    assert.equal(again.resourcesOf(1).device, shared);
    again.checkConsistency();
  });

  it("restores a manager without callbacks (everything unmanaged), and an empty one", () => {
    const dm = new DeviceManager();
    const a = new ProbeDevice("uart");
    dm.simpleRegisterDevice(a, 3, 4, r(0x3f8, 0x3ff), r(0xd000_0000, 0xd000_0fff));
    dm.fullRegisterDevice(new ProbeDevice("rom"), [{ kind: "instanceId", fixed: 9 }, { kind: "mmio", size: 0x100, fixed: 0xfff0_0000 }]);
    const text = JSON.stringify(dm.toJSON());
    const { made, resolve } = freshDevices();
    const back = DeviceManager.fromJSON(JSON.parse(text), { devices: resolve });
    assertRoutes(back, made, [a]);
    back.checkConsistency();
    assert.equal(JSON.stringify(back.toJSON()), text);
    // Without callbacks, unplugging frees nothing and needs nothing: unregisterDevice works.
    back.unregisterDevice(3);
    assert.deepEqual(back.instanceIds(), [9]);

    const empty = DeviceManager.fromJSON(new DeviceManager().toJSON(), { devices: new Map() });
    assert.equal(empty.size, 0);
    empty.checkConsistency();
  });

  it("after a restore, unplugging frees exactly what the unsnapshotted twin frees, step by step", () => {
    const twin = sampleVm();
    const restored = restoreVm(vmSnapshot(twin.sys, twin.dm), freshDevices().resolve);
    const fresh = new DefaultSystemAllocator(twin.sys.layout);
    // An order that is neither registration nor id order.
    const order = [4, 0, 40, 7, 2, 5, 1, 3];
    assert.deepEqual([...order].sort((x, y) => x - y), twin.dm.instanceIds());
    for (const id of order) {
      const a = twin.dm.fullUnregisterDevice(id);
      const b = restored.dm.fullUnregisterDevice(id);
      assert.deepEqual(plainResources(b), plainResources(a));
      assert.deepEqual(restored.sys.toJSON(), twin.sys.toJSON(), `after unplugging ${a.owner}`);
      assert.deepEqual(restored.sys.allocationsOf(a.owner), [], `${a.owner} holds nothing after unplug`);
      restored.dm.checkConsistency();
    }
    // Nothing leaked: both allocators hold what a fresh one holds (their snapshots differ from a
    // fresh one's only by the id pools' released history).
    assert.deepEqual(restored.sys.holdings(), fresh.holdings());
    assert.deepEqual(twin.sys.holdings(), fresh.holdings());
    assert.equal(restored.dm.pioBus.size + restored.dm.mmioBus.size, 0);
  });

  it("after a restore, replugging an unplugged device reuses exactly what it had", () => {
    for (const id of sampleVm().dm.instanceIds()) {
      const twin = sampleVm();
      const restored = restoreVm(vmSnapshot(twin.sys, twin.dm), freshDevices().resolve);
      const original = plainResources(twin.dm.resourcesOf(id));
      twin.dm.fullUnregisterDevice(id);
      restored.dm.fullUnregisterDevice(id);
      const again = twin.replug.get(id)!;
      assert.equal(again(restored.dm), id);
      assert.equal(again(twin.dm), id);
      assert.deepEqual(plainResources(restored.dm.resourcesOf(id)), original, `${original.owner} replugged where it was`);
      assert.deepEqual(restored.sys.toJSON(), twin.sys.toJSON());
      assert.deepEqual(restored.dm.toJSON(), JSON.parse(JSON.stringify(sampleVm().dm.toJSON())));
      restored.dm.checkConsistency();
    }
  });
});

describe("DeviceManager.fromJSON: a restored twin behaves like the original (random operations)", () => {
  type Op =
    | { op: "plug"; name: string; reqs: ResourceRequest[] }
    | { op: "simple"; id: number; irq: number | undefined; shared: boolean; port: number; page: number }
    | { op: "unplug"; pick: number }
    | { op: "move"; pick: number; which: number; base: bigint };

  const PAGE = 0x1000;
  const req: fc.Arbitrary<ResourceRequest> = fc.oneof(
    fc.constant<ResourceRequest>({ kind: "irq" }),
    fc.constantFrom<ResourceRequest>(
      { kind: "irq", fixed: 4, shared: true }, // outside the pool
      { kind: "irq", fixed: 7 },
      { kind: "irq", fixed: 8 }, // the RTC's reserved line
      { kind: "irq", fixed: 16, shared: true },
      { kind: "irq", fixed: 16 },
      { kind: "irq", fixed: 17, shared: true },
    ),
    fc.record({ kind: fc.constant("msi" as const), count: fc.integer({ min: 1, max: 3 }) }),
    fc.integer({ min: 24, max: 29 }).map((g): ResourceRequest => ({ kind: "msi", count: 1, fixed: [g] })),
    fc.constantFrom<ResourceRequest>(
      { kind: "pio", size: 8, alignment: 8 },
      { kind: "pio", size: 0x20, alignment: 0x20, window: { min: 0x1000, max: 0x10ff } },
      { kind: "pio", size: 8, fixed: 0x3f8 }, // inside the ISA reservation
      { kind: "pio", size: 8, fixed: 0x2f8 },
    ),
    fc.integer({ min: 0, max: 7 }).map((k): ResourceRequest => ({ kind: "pio", size: 8, fixed: 0x1000 + 8 * k })),
    fc.record({ kind: fc.constant("mmio" as const), size: fc.constantFrom(PAGE, 4 * PAGE), alignment: fc.constant(PAGE), mmio64: fc.boolean() }),
    fc.integer({ min: 0, max: 7 }).map((k): ResourceRequest => ({ kind: "mmio", size: PAGE, fixed: 0xc000_0000 + k * PAGE })),
    fc.constantFrom<ResourceRequest>(
      { kind: "mmio", size: PAGE, fixed: 0x1000 }, // below every MMIO pool
      { kind: "mmio", size: PAGE, fixed: 0xfec0_0000 }, // the IOAPIC, inside its reservation
      { kind: "instanceId", fixed: 3 },
      { kind: "instanceId", fixed: 12 },
    ),
  );
  const moveBase = fc.oneof(
    fc.integer({ min: 0, max: 7 }).map((k) => 0xc000_0000n + BigInt(k * PAGE)),
    fc.integer({ min: 0, max: 3 }).map((k) => 64n * GiB + BigInt(k * PAGE)),
    fc.integer({ min: 0, max: 7 }).map((k) => 0x1000n + BigInt(8 * k)),
    fc.constantFrom(0x1000n, 0xfec0_0000n, 0xc000_0800n, 0x3f8n, 0x10000n, 0x40n),
  );
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant("plug" as const), name: fc.constantFrom("virtio-net", "virtio-blk", "serial"), reqs: fc.array(req, { maxLength: 5 }) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("simple" as const),
        id: fc.constantFrom(3, 12, 50),
        irq: fc.option(fc.constantFrom(7, 9, 16), { nil: undefined }),
        shared: fc.boolean(),
        port: fc.integer({ min: 0, max: 3 }),
        page: fc.integer({ min: 0, max: 3 }),
      }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("unplug" as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("move" as const), pick: fc.nat(), which: fc.nat(), base: moveBase }) },
  );

  type Vm = { sys: DefaultSystemAllocator; dm: DeviceManager; objects: Map<number, ProbeDevice> };
  const outcome = (fn: () => unknown): unknown => {
    try {
      return { ok: fn() };
    } catch (e) {
      assert.ok(e instanceof AllocatorError, `only AllocatorErrors are expected, got ${String(e)}`);
      return { code: e.code, message: e.message, device: e.device, requestIndex: e.requestIndex, owner: e.owner };
    }
  };
  function apply(vm: Vm, o: Op): unknown {
    const { dm } = vm;
    switch (o.op) {
      case "plug":
        return outcome(() => {
          const d = new ProbeDevice(o.name);
          const id = dm.fullRegisterDevice(d, o.reqs);
          vm.objects.set(id, d);
          return plainResources(dm.resourcesOf(id));
        });
      case "simple":
        return outcome(() => {
          const d = new ProbeDevice("vmm");
          const irq = o.irq === undefined ? undefined : { irq: o.irq, shared: o.shared };
          dm.simpleRegisterDevice(d, o.id, irq, r(0x5000 + o.port * 16, 0x500f + o.port * 16), r(0xe000_0000 + o.page * PAGE, 0xe000_0fff + o.page * PAGE));
          vm.objects.set(o.id, d);
          return o.id;
        });
      case "unplug": {
        const ids = dm.instanceIds();
        if (ids.length === 0) return "none";
        const id = ids[o.pick % ids.length]!;
        return outcome(() => {
          const res = plainResources(dm.fullUnregisterDevice(id));
          vm.objects.delete(id);
          return res;
        });
      }
      case "move": {
        const ids = dm.instanceIds();
        if (ids.length === 0) return "none";
        const res = dm.resourcesOf(ids[o.pick % ids.length]!);
        const slots = [...res.pio.map((s) => ["pio", s.range] as const), ...res.mmio.map((s) => ["mmio", s.range] as const)];
        if (slots.length === 0) return "no ranges";
        const [kind, range] = slots[o.which % slots.length]!;
        return outcome(() => dm.moveRange(res.instanceId, range, o.base, kind).toString());
      }
    }
  }

  it("applies the same operations after a JSON snapshot with the same results, errors and final state", () => {
    const tally: Record<string, { ok: number; failed: number }> = {};
    let restoredDevices = 0;
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 35 }), fc.nat(), (ops, cut) => {
        const { sys, dm } = newVm();
        const a: Vm = { sys, dm, objects: new Map() };
        const at = cut % (ops.length + 1);
        for (const o of ops.slice(0, at)) apply(a, o);
        const text = vmSnapshot(a.sys, a.dm);
        const objects = new Map<number, ProbeDevice>();
        const restored = restoreVm(text, (e) => {
          const d = new ProbeDevice(e.name);
          objects.set(e.instanceId, d);
          return d;
        });
        const b: Vm = { ...restored, objects };
        restoredDevices += b.dm.size;
        b.dm.checkConsistency();
        for (const o of ops.slice(at)) {
          const ra = apply(a, o);
          const rb = apply(b, o);
          assert.deepEqual(rb, ra, `${o.op} after the snapshot`);
          if (typeof ra === "object" && ra !== null) {
            const t = (tally[o.op] ??= { ok: 0, failed: 0 });
            if ("ok" in ra) t.ok++;
            else t.failed++;
          }
          b.dm.checkConsistency();
          a.dm.checkConsistency();
        }
        assert.deepEqual(b.dm.toJSON(), a.dm.toJSON());
        assert.deepEqual(b.sys.toJSON(), a.sys.toJSON());
        b.sys.checkValid();
        assertRoutes(b.dm, b.objects, [...a.objects.values()]);
      }),
      { numRuns: 100 },
    );
    // Every operation must succeed and fail often after restores that carry devices, or this
    // proves little (an unplug cannot fail here: nothing refuses a free).
    const summary = JSON.stringify({ tally, restoredDevices });
    for (const op of ["plug", "simple", "unplug", "move"]) assert.ok((tally[op]?.ok ?? 0) >= 15, summary);
    for (const op of ["plug", "simple", "move"]) assert.ok((tally[op]?.failed ?? 0) >= 5, summary);
    assert.ok(restoredDevices >= 60, summary);
  });
});

describe("DeviceManager.fromJSON: validation", () => {
  /** The sample VM's snapshot as plain data, and a fresh allocator restored from its system half. */
  const base = (() => {
    const { sys, dm, devices } = sampleVm();
    return { vm: JSON.parse(vmSnapshot(sys, dm)) as { system: unknown; devices: DeviceManagerSnapshot }, devices };
  })();
  type Snap = { format?: unknown; version?: unknown; devices: Record<string, any>[]; [k: string]: unknown };
  const copy = (): Snap => structuredClone(base.vm.devices) as unknown as Snap;
  const objects = () => new Map([...base.devices].map(([id, d]) => [id, new ProbeDevice(d.name)] as const));

  /** fromJSON must fail with InvalidSnapshot matching `message`, leaving the allocator as it was. */
  function refuse(snapshot: unknown, message: RegExp, opts: { options?: (sys: DefaultSystemAllocator) => unknown; device?: string; system?: unknown } = {}): AllocatorError {
    const sys = DefaultSystemAllocator.fromJSON(opts.system ?? base.vm.system);
    const before = sysText(sys);
    const options = opts.options !== undefined ? opts.options(sys) : { systemAllocator: sys, devices: objects() };
    const e = thrown(() => DeviceManager.fromJSON(snapshot, options as DeviceManagerRestoreOptions));
    allocatorError("InvalidSnapshot", message)(e);
    if (opts.device !== undefined) assert.equal((e as AllocatorError).device, opts.device);
    assert.equal(sysText(sys), before, "a failed restore leaves the allocator as it was");
    sys.checkValid();
    return e as AllocatorError;
  }

  it("the base snapshot restores (so every refusal below is due to its one change)", () => {
    const sys = DefaultSystemAllocator.fromJSON(base.vm.system);
    DeviceManager.fromJSON(copy(), { systemAllocator: sys, devices: objects() }).checkConsistency();
  });

  const shapeCases: [string, (s: Snap) => unknown, RegExp, string?][] = [
    ["wrong format", (s) => (s.format = "vm-allocator/system-allocator"), /format must be "vm-allocator\/device-manager", got "vm-allocator\/system-allocator"/],
    ["no format", (s) => delete s.format, /the snapshot is missing "format"/],
    ["version 2", (s) => (s.version = 2), /unsupported version 2 \(supported: 1\)/],
    ["version as text", (s) => (s.version = "1"), /unsupported version "1"/],
    ["unknown top-level field", (s) => (s["extra"] = 1), /the snapshot has unknown field "extra"/],
    ["no devices", (s) => delete (s as Partial<Snap>).devices, /the snapshot is missing "devices"/],
    ["devices not an array", (s) => ((s as Record<string, unknown>)["devices"] = {}), /devices must be an array, got object/],
    ["a device that is not an object", (s) => (s.devices[1] = [] as never), /devices\[1\] must be an object, got an array/],
    ["unknown device field", (s) => (s.devices[2]!["color"] = "red"), /devices\[2\] has unknown field "color"/],
    ...["name", "owner", "registration", "instanceId", "irqs", "msi", "pio", "mmio"].map(
      (k): [string, (s: Snap) => unknown, RegExp] => [`device without ${k}`, (s) => delete s.devices[2]![k], new RegExp(`devices\\[2\\] is missing "${k}"`)],
    ),
    ["empty name", (s) => (s.devices[2]!["name"] = ""), /devices\[2\]\.name must be a non-empty string, got ""/],
    ["numeric name", (s) => (s.devices[2]!["name"] = 7), /devices\[2\]\.name must be a non-empty string, got 7/],
    ["unknown registration", (s) => (s.devices[2]!["registration"] = "partial"), /devices\[2\]\.registration must be "simple" or "full", got "partial"/],
    ...([-1, 1.5, 2 ** 32, "2", null] as unknown[]).map((v): [string, (s: Snap) => unknown, RegExp] => [
      `instance id ${JSON.stringify(v)}`,
      (s) => (s.devices[2]!["instanceId"].value = v),
      /devices\[2\]\.instanceId\.value must be an integer from 0 to 2\^32-1/,
    ]),
    ["instanceId.fixed not boolean", (s) => (s.devices[2]!["instanceId"].fixed = "no"), /devices\[2\]\.instanceId\.fixed must be a boolean, got "no"/],
    ["shared instance id", (s) => (s.devices[2]!["instanceId"].shared = true), /devices\[2\]\.instanceId\.shared must be false: instance ids are never shared/],
    ["unknown heldBy", (s) => (s.devices[2]!["instanceId"].heldBy = "nobody"), /devices\[2\]\.instanceId\.heldBy must be one of "allocator", "outside", "unmanaged", got "nobody"/],
    ["unknown instanceId field", (s) => (s.devices[2]!["instanceId"].pool = "x"), /devices\[2\]\.instanceId has unknown field "pool"/],
    ["owner of another id", (s) => (s.devices[2]!["owner"] = "virtio-net@3"), /devices\[2\]\.owner must be "virtio-net@2", got "virtio-net@3"/, "virtio-net@2"],
    ["bare owner", (s) => (s.devices[2]!["owner"] = "virtio-net"), /devices\[2\]\.owner must be "virtio-net@2", got "virtio-net"/, "virtio-net@2"],
    ["owner with a padded id", (s) => (s.devices[2]!["owner"] = "virtio-net@02"), /devices\[2\]\.owner must be "virtio-net@2", got "virtio-net@02"/],
    ["irqs not an array", (s) => (s.devices[0]!["irqs"] = 4), /devices\[0\]\.irqs must be an array, got 4/],
    ["irq without shared", (s) => delete s.devices[0]!["irqs"][0].shared, /devices\[0\]\.irqs\[0\] is missing "shared"/],
    ["irq as text", (s) => (s.devices[0]!["irqs"][0].value = "4"), /devices\[0\]\.irqs\[0\]\.value must be an integer/],
    ["shared MSI", (s) => (s.devices[2]!["msi"][1].shared = true), /devices\[2\]\.msi\[1\]\.shared must be false: MSI GSIs are never shared/, "virtio-net@2"],
    ...(["0x02000", "0X2000", "0x2000 ", "8192", 8192, "0x", "-0x1", "0x10000000000000000", "", null] as unknown[]).map(
      (v): [string, (s: Snap) => unknown, RegExp] => [
        `start ${JSON.stringify(v)}`,
        (s) => (s.devices[2]!["pio"][0].start = v),
        /devices\[2\]\.pio\[0\]\.start must be canonical hex \("0x1f"\)/,
      ],
    ),
    ["end in capitals", (s) => (s.devices[2]!["mmio"][0].end = "0xC0000FFF"), /devices\[2\]\.mmio\[0\]\.end must be canonical hex/],
    ["inverted range", (s) => (s.devices[2]!["pio"][0].start = "0x2020"), /devices\[2\]\.pio\[0\]: start 0x2020 is above end 0x201f/],
    ["alignment not a power of two", (s) => (s.devices[2]!["pio"][0].alignment = "0x3"), /devices\[2\]\.pio\[0\]\.alignment must be a power of two, got 0x3/],
    ["alignment zero", (s) => (s.devices[2]!["pio"][0].alignment = "0x0"), /devices\[2\]\.pio\[0\]\.alignment must be a power of two, got 0x0/],
    ["alignment not canonical", (s) => (s.devices[2]!["pio"][0].alignment = "0x020"), /devices\[2\]\.pio\[0\]\.alignment must be canonical hex/],
    ["inverted window", (s) => (s.devices[2]!["pio"][0].window = { min: "0x2fff", max: "0x2000" }), /devices\[2\]\.pio\[0\]\.window: min is above max/],
    ["window without max", (s) => (s.devices[2]!["pio"][0].window = { min: "0x2000" }), /devices\[2\]\.pio\[0\]\.window is missing "max"/],
    ["window with a typo", (s) => (s.devices[2]!["pio"][0].window.maxx = "0x1"), /devices\[2\]\.pio\[0\]\.window has unknown field "maxx"/],
    ["window not canonical", (s) => (s.devices[2]!["pio"][0].window.min = "0x02000"), /devices\[2\]\.pio\[0\]\.window\.min must be canonical hex/],
    ["64-bit port range", (s) => (s.devices[2]!["pio"][0].mmio64 = true), /devices\[2\]\.pio\[0\]\.mmio64 is true for a port range/],
    ["mmio64 as text", (s) => (s.devices[3]!["mmio"][0].mmio64 = "true"), /devices\[3\]\.mmio\[0\]\.mmio64 must be a boolean, got "true"/],
    ["range heldBy unknown", (s) => (s.devices[3]!["mmio"][0].heldBy = "allocated"), /devices\[3\]\.mmio\[0\]\.heldBy must be one of/],
    ["range with a size", (s) => (s.devices[3]!["mmio"][0].size = "0x2000"), /devices\[3\]\.mmio\[0\] has unknown field "size"/],
  ];
  for (const [what, mutate, message, device] of shapeCases) {
    it(`refuses a snapshot with ${what}, naming the field`, () => {
      const s = copy();
      mutate(s);
      refuse(s, message, device === undefined ? {} : { device });
    });
  }

  it("refuses what is not a snapshot object at all", () => {
    for (const v of [null, undefined, [], "text", 42, true]) refuse(v, /the snapshot must be an object/);
  });

  const meaningCases: [string, (s: Snap) => unknown, RegExp, string][] = [
    ["a duplicate instance id", (s) => s.devices.splice(3, 0, structuredClone(s.devices[2]!)), /devices are not in ascending instance-id order at virtio-net@2/, "virtio-net@2"],
    ["devices out of order", (s) => s.devices.reverse(), /devices are not in ascending instance-id order at vmm-probe@7/, "vmm-probe@7"],
    [
      "MMIO ranges of two devices that overlap",
      (s) => Object.assign(s.devices[4]!["mmio"][0], { start: "0xc0000800", end: "0xc00017ff" }),
      /virtio-blk@4: \[mem 0xc0000800-0xc00017ff\] conflicts with virtio-net@2 \[mem 0xc0000000-0xc0000fff\]/,
      "virtio-blk@4",
    ],
    [
      "port ranges of two devices that overlap",
      (s) => Object.assign(s.devices[1]!["pio"][0], { start: "0x3f8", end: "0x3ff" }),
      /serial@1: \[io 0x3f8-0x3ff\] conflicts with serial@0 \[io 0x3f8-0x3ff\]/,
      "serial@1",
    ],
    [
      "two ranges of one device that overlap",
      (s) => s.devices[4]!["mmio"].push({ ...s.devices[4]!["mmio"][0], start: "0xd0000ff0" }),
      /virtio-blk@4: \[mem 0xd0000ff0-0xd0000fff\] conflicts with virtio-blk@4 \[mem 0xd0000000-0xd0000fff\]/,
      "virtio-blk@4",
    ],
    [
      "an unshared line held twice",
      (s) => s.devices[3]!["irqs"].push({ value: 5, fixed: false, shared: false, heldBy: "allocator" }),
      /virtio-blk@4: \[irq 5\] is held by virtio-blk@3, which does not share it/,
      "virtio-blk@4",
    ],
    [
      "a shared line joined unshared",
      (s) => (s.devices[4]!["irqs"][0].shared = false),
      /virtio-blk@4: \[irq 16\] is shared by virtio-blk@3; pass shared: true to share it/,
      "virtio-blk@4",
    ],
    [
      "a shared line outside the pool joined unshared",
      (s) => (s.devices[0]!["irqs"][0].shared = false),
      /serial@1: \[irq 4\] is held by serial@0, which does not share it/,
      "serial@1",
    ],
    [
      "one device listing a line twice",
      (s) => s.devices[4]!["irqs"].push({ ...s.devices[4]!["irqs"][0] }),
      /virtio-blk@4: \[irq 16\] is already held by virtio-blk@4/,
      "virtio-blk@4",
    ],
    ["a duplicate MSI GSI", (s) => (s.devices[3]!["msi"][0].value = 25), /virtio-blk@3: MSI GSI 25 is held by virtio-net@2/, "virtio-blk@3"],
    [
      "unmanaged where a callback exists",
      (s) => (s.devices[2]!["pio"][0].heldBy = "unmanaged"),
      /virtio-net@2: \[io 0x2000-0x201f\] was recorded without an allocator \(no pio callback\), but a pio callback was given/,
      "virtio-net@2",
    ],
    [
      "an unmanaged instance id where a callback exists",
      (s) => (s.devices[7]!["instanceId"].heldBy = "unmanaged"),
      /rtc@40: instance id 40 was recorded without an allocator \(no deviceId callback\), but a deviceId callback was given/,
      "rtc@40",
    ],
  ];
  for (const [what, mutate, message, device] of meaningCases) {
    it(`refuses ${what}, naming the device`, () => {
      const s = copy();
      mutate(s);
      refuse(s, message, { device });
    });
  }

  it("refuses resources held by the allocator or outside it when the restore has no callback for the kind", () => {
    const without = (k: keyof AllocationCallbacks) => (sys: DefaultSystemAllocator) => {
      const all: Record<string, unknown> = {
        deviceId: sys.deviceIdCallback(),
        irq: sys.irqCallback(),
        pio: sys.pioAddressCallback(),
        mmio: sys.mmioAddressCallback(),
        holdings: sys.holdingsCallback(),
      };
      delete all[k];
      return { callbacks: all, devices: objects() };
    };
    refuse(copy(), /serial@0: \[io 0x3f8-0x3ff\] is held by the allocator, but no pio callback was given/, { options: without("pio"), device: "serial@0" });
    refuse(copy(), /serial@0: \[irq 4\] is reported outside the pools, but no irq callback was given/, { options: without("irq"), device: "serial@0" });
    refuse(copy(), /serial@0: instance id 0 is held by the allocator, but no deviceId callback was given/, { options: without("deviceId") });
    // Only "outside" left for MMIO: the ROM below the pools.
    const s = copy();
    s.devices = s.devices.filter((d) => d["mmio"].every((m: { heldBy: string }) => m.heldBy !== "allocator"));
    s.devices.forEach((d) => (d["pio"] = []));
    refuse(s, /boot-rom@5: \[mem 0x1000-0x1fff\] is reported outside the pools, but no mmio callback was given/, {
      options: (sys) => ({ callbacks: { deviceId: sys.deviceIdCallback(), irq: sys.irqCallback() }, devices: objects() }),
      device: "boot-rom@5",
    });
    // And the whole snapshot against a manager with no callbacks at all.
    refuse(copy(), /serial@0: instance id 0 is held by the allocator, but no deviceId callback was given/, { options: () => ({ devices: objects() }) });
  });

  /**
   * A consistent forgery: the system half no longer holds one of a device's resources, and the
   * device half claims that resource lies outside every pool (held by no one). The holdings agree
   * (nothing held, nothing recorded as held); only the outside probe can tell.
   */
  function forgeOutside(owner: string, field: "instanceId" | "irqs" | "msi" | "pio" | "mmio", index = 0) {
    const sys = DefaultSystemAllocator.fromJSON(base.vm.system);
    const s = copy();
    const d = s.devices.find((x) => x["owner"] === owner)!;
    const slot = field === "instanceId" ? d["instanceId"] : d[field][index];
    assert.equal(slot.heldBy, "allocator", `${owner} ${field}[${index}] is held to begin with`);
    slot.heldBy = "outside";
    let what: string;
    if (field === "pio" || field === "mmio") {
      const range = r(BigInt(slot.start), BigInt(slot.end));
      (field === "pio" ? sys.pioAddressCallback()! : sys.mmioAddressCallback())({ action: "free", owner, range });
      what = range.toString(field === "pio" ? "io" : "mem");
    } else {
      const id = slot.value as number;
      if (field === "instanceId") sys.deviceIdCallback()({ action: "free", owner, id });
      else sys.irqCallback()({ action: "free", owner, id, pool: field === "msi" ? "msi" : "legacy" });
      what = field === "instanceId" ? `instance id ${id}` : field === "msi" ? `MSI GSI ${id}` : `[irq ${id}]`;
    }
    return { system: sys.toJSON(), devices: s, what };
  }
  const esc = (text: string) => text.replace(/[[\]]/g, "\\$&");

  it("refuses a resource recorded as outside every pool that lies in one, naming the device and the resource", () => {
    for (const [owner, field] of [
      ["virtio-net@2", "mmio"],
      ["virtio-net@2", "pio"],
      ["virtio-net@2", "msi"],
      ["virtio-blk@4", "irqs"],
      ["virtio-blk@3", "instanceId"],
    ] as const) {
      const index = owner === "virtio-blk@4" && field === "irqs" ? 1 : 0;
      const forged = forgeOutside(owner, field, index);
      refuse(forged.devices, new RegExp(`${owner} records ${esc(forged.what)} as outside every pool, but it lies in the allocator's pools`), { system: forged.system, device: owner });
    }
  });

  it("without the outside probe, such a forgery restores, and the range is then handed to another device (what the probe prevents)", () => {
    const forged = forgeOutside("virtio-net@2", "mmio");
    const sys = DefaultSystemAllocator.fromJSON(forged.system);
    const noProbe = {
      deviceIdCallback: () => sys.deviceIdCallback(),
      irqCallback: () => sys.irqCallback(),
      pioAddressCallback: () => sys.pioAddressCallback(),
      mmioAddressCallback: () => sys.mmioAddressCallback(),
      holdingsCallback: () => sys.holdingsCallback(),
    };
    const dm = DeviceManager.fromJSON(forged.devices, { systemAllocator: noProbe, devices: objects() });
    dm.checkConsistency(); // nothing to ask: the forgery goes unnoticed
    const range = dm.resourcesOf(2).mmio[0]!.range;
    assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("victim"), [{ kind: "mmio", size: range.len(), alignment: 0x1000 }]), allocatorError("Overlap", /conflicts with virtio-net@2/));
    // The same snapshot restored with the probe is refused.
    assert.throws(
      () => DeviceManager.fromJSON(forged.devices, { systemAllocator: DefaultSystemAllocator.fromJSON(forged.system), devices: objects() }),
      allocatorError("InvalidSnapshot", /virtio-net@2 records \[mem .*\] as outside every pool/),
    );
  });

  it("checkConsistency asks the outside probe too: a value that stops being outside is reported", () => {
    const sys = DefaultSystemAllocator.fromJSON(base.vm.system);
    let lie = true;
    const truth = sys.outsideCallback();
    const dm = DeviceManager.fromJSON(copy(), {
      callbacks: {
        deviceId: sys.deviceIdCallback(),
        irq: sys.irqCallback(),
        pio: sys.pioAddressCallback()!,
        mmio: sys.mmioAddressCallback(),
        holdings: sys.holdingsCallback(),
        outside: (q) => lie || truth(q),
      },
      devices: objects(),
    });
    dm.checkConsistency();
    lie = false;
    dm.checkConsistency(); // the sample's outside values (IRQ 4, the ROM, GSI 5000) are truly outside
    const forged = forgeOutside("virtio-net@2", "msi");
    lie = true;
    const sys2 = DefaultSystemAllocator.fromJSON(forged.system);
    const dm2 = DeviceManager.fromJSON(forged.devices, {
      callbacks: { deviceId: sys2.deviceIdCallback(), irq: sys2.irqCallback(), pio: sys2.pioAddressCallback()!, mmio: sys2.mmioAddressCallback(), holdings: sys2.holdingsCallback(), outside: (q) => lie || sys2.outsideCallback()(q) },
      devices: objects(),
    });
    dm2.checkConsistency();
    lie = false;
    const e = thrown(() => dm2.checkConsistency());
    allocatorError("InvalidState", /virtio-net@2 records MSI GSI \d+ as outside every pool, but it lies in the allocator's pools/)(e);
    assert.equal((e as AllocatorError).device, "virtio-net@2");
  });

  it("the outside probe must answer a boolean", () => {
    refuse(copy(), /the outside callback returned string, not a boolean/, {
      options: (sys) => ({
        callbacks: { deviceId: sys.deviceIdCallback(), irq: sys.irqCallback(), pio: sys.pioAddressCallback()!, mmio: sys.mmioAddressCallback(), outside: () => "yes" as unknown as boolean },
        devices: objects(),
      }),
    });
  });

  it("refuses a missing, misnamed or non-device object, naming the device", () => {
    const withObjects = (change: (m: Map<number, unknown>) => void) => (sys: DefaultSystemAllocator) => {
      const m = objects() as Map<number, unknown>;
      change(m);
      return { systemAllocator: sys, devices: m };
    };
    refuse(copy(), /no device object was given for virtio-blk@3/, { options: withObjects((m) => m.delete(3)), device: "virtio-blk@3" });
    refuse(copy(), /no device object was given for rtc@40/, {
      options: (sys) => ({ systemAllocator: sys, devices: (e: { name: string }) => (e.name === "rtc" ? undefined : new ProbeDevice(e.name)) }),
      device: "rtc@40",
    });
    refuse(copy(), /the device object given for virtio-blk@3 is named "virtio-net", not "virtio-blk"/, {
      options: withObjects((m) => m.set(3, new ProbeDevice("virtio-net"))),
      device: "virtio-blk@3",
    });
    refuse(copy(), /the device object given for serial@0 is named "device", not "serial"/, {
      options: withObjects((m) => m.set(0, { read() {}, write() {} })),
      device: "serial@0",
    });
    const notDevices: [unknown, RegExp][] = [
      [{}, /device must have at least one of the methods read, write, read8/],
      [{ name: "virtio-net", rd() {} }, /device must have at least one of the methods read, write, read8/],
      [null, /device must be an object/],
      [42, /device must be an object/],
      [{ name: "", read() {}, write() {} }, /device\.name must be a non-empty string/],
      [{ name: 5, read() {}, write() {} }, /device\.name must be a non-empty string/],
    ];
    for (const [value, why] of notDevices) {
      const e = refuse(copy(), /the device object given for virtio-net@2 is not a device: /, { options: withObjects((m) => m.set(2, value)), device: "virtio-net@2" });
      assert.match(e.message, why);
    }
  });

  it("refuses missing or wrong options, naming them", () => {
    const cases: [(sys: DefaultSystemAllocator) => unknown, RegExp][] = [
      [(sys) => ({ systemAllocator: sys }), /options\.devices must be a Map or a function/],
      ...([[], {}, "devices", 3, null, new Set([1])] as unknown[]).map((d): [(sys: DefaultSystemAllocator) => unknown, RegExp] => [
        (sys) => ({ systemAllocator: sys, devices: d }),
        /options\.devices must be a Map or a function/,
      ]),
      [() => null, /options must be an object/],
      [() => "sys", /options must be an object/],
      [(sys) => ({ systemAllocator: sys, callbacks: {}, devices: new Map() }), /callbacks or systemAllocator, not both/],
      [() => ({ systemAllocator: {}, devices: new Map() }), /sys\.deviceIdCallback must be a function/],
      [() => ({ callbacks: { irqs: () => 1 }, devices: new Map() }), /callbacks has unknown field "irqs"/],
      [() => ({ callbacks: { irq: 5 }, devices: new Map() }), /callbacks\.irq must be a function/],
    ];
    for (const [options, message] of cases) refuse(copy(), message, { options });
    // `undefined` options go through the same path (the `refuse` default would supply some).
    const sys = DefaultSystemAllocator.fromJSON(base.vm.system);
    assert.throws(() => DeviceManager.fromJSON(copy(), undefined as never), allocatorError("InvalidSnapshot", /options must be an object/));
    assert.throws(() => DeviceManager.fromJSON(copy(), undefined as never), (e: unknown) => (e as AllocatorError).cause instanceof AllocatorError);
    sys.checkValid();
  });
});

describe("DeviceManager.fromJSON: disagreement with the restored system allocator", () => {
  /** Snapshots of one VM at several moments: the sample, then one change each. */
  function moments() {
    const vm = sampleVm();
    const t0 = JSON.parse(vmSnapshot(vm.sys, vm.dm)) as { system: unknown; devices: DeviceManagerSnapshot };
    vm.dm.fullRegisterDevice(new ProbeDevice("virtio-scsi"), [{ kind: "mmio", size: 0x1000 }, { kind: "msi", count: 1 }]);
    const t1 = JSON.parse(vmSnapshot(vm.sys, vm.dm)) as typeof t0;
    return { t0, t1, vm };
  }
  const objectsFor = (snap: DeviceManagerSnapshot) => new Map(snap.devices.map((d) => [d.instanceId.value, new ProbeDevice(d.name)] as const));
  function refuseAgainst(system: unknown, devices: DeviceManagerSnapshot, message: RegExp, device: string): void {
    const sys = DefaultSystemAllocator.fromJSON(system);
    const before = sysText(sys);
    const e = thrown(() => DeviceManager.fromJSON(devices, { systemAllocator: sys, devices: objectsFor(devices) }));
    allocatorError("InvalidSnapshot", message)(e);
    assert.match((e as AllocatorError).message, /it disagrees with the allocator/);
    assert.equal((e as AllocatorError).device, device);
    assert.equal(sysText(sys), before);
  }

  it("refuses an allocator from an earlier moment: a device it does not hold", () => {
    const { t0, t1 } = moments();
    refuseAgainst(t0.system, t1.devices, /virtio-scsi@6 records .*mmio 0xc0001000-0xc0001fff.*, which the allocator does not hold for it/, "virtio-scsi@6");
  });

  it("refuses an allocator from a later moment: an orphan name@id holding is a leak", () => {
    const { t0, t1 } = moments();
    refuseAgainst(t1.system, t0.devices, /the allocator holds .* for virtio-scsi@6, which is not a registered device \(leaked\)/, "virtio-scsi@6");
    // The same when the device is simply left out of the snapshot.
    const dropped = { ...t1.devices, devices: t1.devices.devices.filter((d) => d.owner !== "serial@1") };
    refuseAgainst(t1.system, dropped, /for serial@1, which is not a registered device \(leaked\)/, "serial@1");
  });

  it("refuses a holding the record does not list, and a record of a place that moved or was freed", () => {
    const { t0, vm } = moments();
    // Extra: something allocated under a device's owner behind the manager's back.
    const extra = DefaultSystemAllocator.fromJSON(t0.system);
    extra.mmioAddressCallback()({ action: "allocate", owner: "virtio-net@2", size: 0x1000n });
    refuseAgainst(extra.toJSON(), t0.devices, /the allocator holds mmio 0xc0001000-0xc0001fff for virtio-net@2, which its record does not list/, "virtio-net@2");
    // A record that says "outside" for what the allocator holds.
    const outside = structuredClone(t0.devices) as unknown as { devices: { mmio: { heldBy: string }[] }[] };
    outside.devices[2]!.mmio[0]!.heldBy = "outside";
    // (The outside probe refuses it first: the range lies in a pool.)
    refuseAgainst(t0.system, outside as unknown as DeviceManagerSnapshot, /virtio-net@2 records \[mem 0xc0000000-0xc0000fff\] as outside every pool, but it lies in the allocator's pools/, "virtio-net@2");
    // A place that moved since the device half was taken.
    vm.dm.moveRange(4, r(0xd000_0000, 0xd000_0fff), 0xd010_0000n);
    refuseAgainst(vm.sys.toJSON(), t0.devices, /virtio-blk@4 records mmio 0xd0000000-0xd0000fff, which the allocator does not hold for it/, "virtio-blk@4");
    // A line freed since.
    vm.dm.fullUnregisterDevice(3);
    refuseAgainst(vm.sys.toJSON(), t0.devices, /virtio-blk@3 records .*irq 16 shared.*, which the allocator does not hold for it/, "virtio-blk@3");
  });

  it("ignores holdings of owners that are not devices (a VMM's own allocations)", () => {
    const { t0 } = moments();
    const sys = DefaultSystemAllocator.fromJSON(t0.system);
    sys.mmioAddressCallback()({ action: "allocate", owner: "acpi-tables", size: 0x1000n });
    sys.irqCallback()({ action: "allocate", owner: "vmm", pool: "msi" });
    const dm = DeviceManager.fromJSON(t0.devices, { systemAllocator: sys, devices: objectsFor(t0.devices) });
    dm.checkConsistency();
  });
});

describe("DeviceManager.fromJSON: fault injection at every step", () => {
  const vm = sampleVm();
  const text = vmSnapshot(vm.sys, vm.dm);
  const parsed = JSON.parse(text) as { system: unknown; devices: unknown };
  const ids = vm.dm.instanceIds();

  /** Callbacks of `sys` that count allocation calls (a restore must make none). */
  function counted(sys: DefaultSystemAllocator, holdings: HoldingsFunc = sys.holdingsCallback()) {
    const calls = { n: 0 };
    const wrap = <F extends (p: never) => unknown>(f: F): F => ((p: never) => (calls.n++, f(p))) as F;
    const callbacks: AllocationCallbacks = {
      deviceId: wrap(sys.deviceIdCallback()),
      irq: wrap(sys.irqCallback()),
      pio: wrap(sys.pioAddressCallback()!),
      mmio: wrap(sys.mmioAddressCallback()),
      holdings,
    };
    return { callbacks, calls };
  }
  function expectFailure(sys: DefaultSystemAllocator, before: string, run: () => unknown, cause: unknown): void {
    const e = thrown(run);
    allocatorError("InvalidSnapshot")(e);
    assert.equal((e as AllocatorError).cause, cause);
    assert.equal(sysText(sys), before);
  }
  const throwables = (k: number): unknown[] => [new Error(`boom ${k}`), `text ${k}`, new AllocatorError("NotFound", `lookup ${k} failed`)];

  it("a devices function that throws at its k-th call, for every k, is InvalidSnapshot with that cause", () => {
    for (let k = 0; k < ids.length; k++) {
      for (const value of throwables(k)) {
        const sys = DefaultSystemAllocator.fromJSON(parsed.system);
        const before = sysText(sys);
        const { callbacks, calls } = counted(sys);
        let n = 0;
        const devices = (e: { name: string }) => {
          if (n++ === k) throw value;
          return new ProbeDevice(e.name);
        };
        expectFailure(sys, before, () => DeviceManager.fromJSON(parsed.devices, { callbacks, devices }), value);
        assert.equal(calls.n, 0, "a restore allocates and frees nothing");
      }
    }
    // An InvalidSnapshot of the VMM's own passes through as it is.
    const own = new AllocatorError("InvalidSnapshot", "device image missing");
    const sys = DefaultSystemAllocator.fromJSON(parsed.system);
    const e = thrown(() => DeviceManager.fromJSON(parsed.devices, { systemAllocator: sys, devices: () => { throw own; } }));
    assert.equal(e, own);
  });

  it("a devices Map whose get throws at the k-th call, for every k, is InvalidSnapshot with that cause", () => {
    for (let k = 0; k < ids.length; k++) {
      const sys = DefaultSystemAllocator.fromJSON(parsed.system);
      const before = sysText(sys);
      const boom = new Error(`get ${k}`);
      let n = 0;
      class Flaky extends Map<number, ProbeDevice> {
        override get(id: number): ProbeDevice | undefined {
          if (n++ === k) throw boom;
          return super.get(id);
        }
      }
      const devices = new Flaky(ids.map((id) => [id, new ProbeDevice(vm.dm.resourcesOf(id).name)]));
      expectFailure(sys, before, () => DeviceManager.fromJSON(parsed.devices, { systemAllocator: sys, devices }), boom);
    }
  });

  it("a holdings callback that throws at its k-th call, for every k, is InvalidSnapshot with that cause", () => {
    // Count the calls of a successful restore first: every one of them gets its turn to fail.
    const probe = DefaultSystemAllocator.fromJSON(parsed.system);
    let total = 0;
    const real = probe.holdingsCallback();
    const ok = counted(probe, (owner) => (total++, real(owner)));
    const restored = DeviceManager.fromJSON(parsed.devices, { callbacks: ok.callbacks, devices: (e) => new ProbeDevice(e.name) });
    assert.ok(total > ids.length, `holdings was asked ${total} times`);
    const calls = total;
    restored.checkConsistency();
    total = calls;
    for (let k = 0; k < total; k++) {
      for (const value of throwables(k)) {
        const sys = DefaultSystemAllocator.fromJSON(parsed.system);
        const before = sysText(sys);
        const inner = sys.holdingsCallback();
        let n = 0;
        const { callbacks, calls } = counted(sys, (owner) => {
          if (n++ === k) throw value;
          return inner(owner);
        });
        expectFailure(sys, before, () => DeviceManager.fromJSON(parsed.devices, { callbacks, devices: (e) => new ProbeDevice(e.name) }), value);
        assert.equal(calls.n, 0);
      }
    }
  });

  it("a holdings callback that answers garbage is InvalidSnapshot, not a crash", () => {
    const garbage: unknown[] = [null, 5, [null], [{ kind: "mmio", owner: "x@1" }], [{ kind: "irq", owner: 7, id: 1 }]];
    for (const answer of garbage) {
      const sys = DefaultSystemAllocator.fromJSON(parsed.system);
      const before = sysText(sys);
      const { callbacks } = counted(sys, () => answer as never);
      const e = thrown(() => DeviceManager.fromJSON(parsed.devices, { callbacks, devices: (d) => new ProbeDevice(d.name) }));
      allocatorError("InvalidSnapshot")(e);
      assert.equal(sysText(sys), before);
    }
  });

  it("a snapshot whose k-th property read throws, for every k, is InvalidSnapshot with that cause", () => {
    /** A deep proxy over `value` that counts every read of it and throws at read number `k`. */
    const trap = (value: unknown, k: number, count: { n: number }, boom: unknown): unknown => {
      if (typeof value !== "object" || value === null) return value;
      const tick = () => {
        if (count.n++ === k) throw boom;
      };
      return new Proxy(value, {
        get(t, p, rcv) {
          tick();
          return trap(Reflect.get(t, p, rcv), k, count, boom);
        },
        ownKeys(t) {
          tick();
          return Reflect.ownKeys(t);
        },
        getOwnPropertyDescriptor(t, p) {
          tick();
          return Reflect.getOwnPropertyDescriptor(t, p);
        },
        has(t, p) {
          tick();
          return Reflect.has(t, p);
        },
      });
    };
    // A small VM with one of each kind of resource keeps "every k" to a few hundred restores.
    const small = newVm();
    small.dm.fullRegisterDevice(new ProbeDevice("serial"), [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4, shared: true }]);
    small.dm.fullRegisterDevice(new ProbeDevice("nic"), [
      { kind: "mmio", size: 0x1000, alignment: 0x1000, window: { min: 0xc000_0000, max: 0xcfff_ffff } },
      { kind: "msi", count: 1 },
      { kind: "irq" },
    ]);
    const { system, devices } = JSON.parse(vmSnapshot(small.sys, small.dm)) as { system: unknown; devices: unknown };
    const reads = { n: 0 };
    const sys0 = DefaultSystemAllocator.fromJSON(system);
    DeviceManager.fromJSON(trap(devices, -1, reads, null), { systemAllocator: sys0, devices: (e) => new ProbeDevice(e.name) }).checkConsistency();
    assert.ok(reads.n > 100, `${reads.n} reads`);
    for (let k = 0; k < reads.n; k++) {
      const sys = DefaultSystemAllocator.fromJSON(system);
      const before = sysText(sys);
      const boom = new Error(`read ${k}`);
      const snapshot = trap(devices, k, { n: 0 }, boom);
      expectFailure(sys, before, () => DeviceManager.fromJSON(snapshot, { systemAllocator: sys, devices: (e) => new ProbeDevice(e.name) }), boom);
    }
  });
});
