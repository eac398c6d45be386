/**
 * One truth for a VM's resources (issue 7, "Fixed resources are held, sharing is explicit" and
 * "Errors that say who and what"), on the real DefaultSystemAllocator:
 *
 * - each scenario of the issue's opening list, reproduced by changing the allocator behind the
 *   manager's back, makes `checkConsistency()` fail, naming the device;
 * - fixed, shared and allocated resources are all held under the device's `name@id` owner;
 * - shared legacy lines are reference-counted; unshared and shared never mix;
 * - a failed registration names the device and the request.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { ResourceRequest } from "../../src/devices/device.js";
import type { AllocationCallbacks } from "../../src/system/allocation-callbacks.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import type { LayoutName } from "../../src/system/layouts.js";
import { DefaultSystemAllocator, type Holding } from "../../src/system/system-allocator.js";
import { allocatorError, newVm, ProbeDevice, TEST_LAYOUT, thrown } from "../helpers/vm.js";

const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);
const GiB = 1n << 30n;

/** checkConsistency must fail with InvalidState matching `message`, naming `device`. */
function inconsistent(dm: DeviceManager, message: RegExp, device: string): void {
  const e = thrown(() => dm.checkConsistency());
  allocatorError("InvalidState", message)(e);
  assert.equal((e as AllocatorError).device, device);
}

/**
 * What a VM is, as text, for "a failed call changed nothing": the allocator's whole snapshot
 * (the id pools' `released` history included: a rolled-back registration frees with `undo`, so an
 * id it took counts as never handed out again) and the manager's snapshot.
 */
const state = (sys: DefaultSystemAllocator, dm: DeviceManager) => JSON.stringify({ sys: sys.toJSON(), dm: dm.toJSON() });

/** A holding as comparable text: pool, value, and whose reservation it sits in. */
const holdingText = (h: Holding) =>
  `${h.pool} ${"range" in h ? h.range.toString(h.pool === "pio" ? "io" : "mem") : `${h.id}`}${"shared" in h && h.shared ? " shared" : ""}${h.within === undefined ? "" : ` within ${h.within}`}`;

describe("checkConsistency: issue 7's scenarios, reproduced behind the manager's back, are detected", () => {
  it("(a) a fixed line freed behind the manager's back, then handed to a third device", () => {
    const { sys, dm } = newVm();
    dm.fullRegisterDevice(new ProbeDevice("uart"), [{ kind: "irq", fixed: 5 }]);
    // The second unshared holder is refused now; the allocator holds the line for the first.
    assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("uart"), [{ kind: "irq", fixed: 5 }]), allocatorError("Overlap", /\[irq 5\] is held by uart@0, which does not share it/));
    assert.equal(sys.legacyIrq.ownerOf(5), "uart@0");
    dm.checkConsistency();

    // The old behaviour: the allocator never heard of the fixed line.
    sys.irqCallback()({ action: "free", owner: "uart@0", id: 5, pool: "legacy" });
    inconsistent(dm, /uart@0 records irq 5, which the allocator does not hold for it/, "uart@0");
    // A third device asking through the manager is handed line 5 by the allocator; the manager
    // sees the clash and rolls back instead of sharing the line silently.
    const before = state(sys, dm);
    assert.throws(
      () => dm.fullRegisterDevice(new ProbeDevice("third"), [{ kind: "irq" }]),
      allocatorError("InvalidState", /^third@1: requests\[0\] \(irq\): the IRQ allocator handed \[irq 5\] to third@1, but it is held by uart@0, which does not share it$/),
    );
    assert.equal(state(sys, dm), before);
    // Asking the allocator directly hands it out: still detected.
    assert.equal(sys.irqCallback()({ action: "allocate", owner: "virtio-blk@7", pool: "legacy" }), 5);
    inconsistent(dm, /uart@0 records irq 5, which the allocator does not hold for it/, "uart@0");
  });

  it("(a) two unshared holders of a line cannot be made by registering, by re-registering fixed values, or by a snapshot", () => {
    const { sys, dm } = newVm();
    dm.fullRegisterDevice(new ProbeDevice("a"), [{ kind: "irq", fixed: 10 }]);
    // Even once the allocator has lost the line, the manager's own table refuses a second holder.
    sys.releaseAll("a@0");
    assert.throws(() => dm.simpleRegisterDevice(new ProbeDevice("b"), 1, 10), allocatorError("Overlap", /\[irq 10\] is held by a@0, which does not share it/));
    assert.equal(sys.legacyIrq.isAllocated(10), false, "the refused registration held nothing");
    // A snapshot claiming two holders is refused too.
    const plain = new DeviceManager();
    plain.fullRegisterDevice(new ProbeDevice("a"), [{ kind: "instanceId", fixed: 0 }, { kind: "irq", fixed: 10 }]);
    const snap = structuredClone(plain.toJSON()) as unknown as { devices: Record<string, unknown>[] };
    snap.devices.push({ ...structuredClone(snap.devices[0]!), name: "b", owner: "b@1", instanceId: { value: 1, fixed: true, shared: false, heldBy: "unmanaged" } });
    assert.throws(() => DeviceManager.fromJSON(snap, { devices: (e) => new ProbeDevice(e.name) }), allocatorError("InvalidSnapshot", /b@1: \[irq 10\] is held by a@0, which does not share it/));
  });

  it("(b) a fixed MMIO range in free pool space is held, so FirstMatch skips it; freed behind the back, it is detected", () => {
    const { sys, dm } = newVm();
    const fw = dm.fullRegisterDevice(new ProbeDevice("fw-dev"), [{ kind: "mmio", size: 0x1000, fixed: 0xc000_0000 }]);
    assert.equal(sys.mmio32.find(0xc000_0000n)?.owner, "fw-dev@0");
    const nic = dm.fullRegisterDevice(new ProbeDevice("nic"), [{ kind: "mmio", size: 0x1000 }]);
    assert.ok(dm.resourcesOf(nic).mmio[0]!.range.equals(r(0xc000_1000, 0xc000_1fff)), "FirstMatch never offers the fixed range");
    dm.checkConsistency();

    sys.mmioAddressCallback()({ action: "free", owner: "fw-dev@0", range: r(0xc000_0000, 0xc000_0fff) });
    inconsistent(dm, /fw-dev@0 records mmio 0xc0000000-0xc0000fff, which the allocator does not hold for it/, "fw-dev@0");
    // The old symptom: the allocator offers the range again and the bus refuses it. The failed
    // registration gives the range back, so it changes nothing.
    const before = state(sys, dm);
    assert.throws(
      () => dm.fullRegisterDevice(new ProbeDevice("nic"), [{ kind: "mmio", size: 0x1000 }]),
      allocatorError("Overlap", /^nic@2: requests\[0\] \(mmio, 0x1000 bytes\): .*\[mem 0xc0000000-0xc0000fff\].*fw-dev@0/),
    );
    assert.equal(state(sys, dm), before);
    assert.equal(fw, 0);
  });

  it("(b) a range moved into free pool space is held there; freed behind the back, it is detected", () => {
    const { sys, dm } = newVm("firecracker-x86_64");
    const id = dm.fullRegisterDevice(new ProbeDevice("nic"), [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }]);
    const from = dm.resourcesOf(id).mmio[0]!.range;
    const to = dm.moveRange(id, from, 0xd000_0000n);
    assert.deepEqual(sys.allocationsOf("nic@0").filter((h) => h.pool === "mmio32").map(holdingText), ["mmio32 [mem 0xd0000000-0xd0000fff]"]);
    assert.equal(sys.mmio32.find(from.start), undefined, "the old place was given back");
    dm.checkConsistency();
    sys.mmioAddressCallback()({ action: "free", owner: "nic@0", range: to });
    inconsistent(dm, /nic@0 records mmio 0xd0000000-0xd0000fff, which the allocator does not hold for it/, "nic@0");
  });

  it("(c) a manager rebuilt by re-registering fixed values without callbacks disagrees with the allocator", () => {
    const { sys, dm } = newVm();
    const reqs: ResourceRequest[] = [
      { kind: "mmio", size: 0x1000, alignment: 0x1000 },
      { kind: "msi", count: 2 },
      { kind: "pio", size: 0x20, alignment: 0x20 },
      { kind: "irq" },
    ];
    for (const name of ["virtio-net", "virtio-blk"]) dm.fullRegisterDevice(new ProbeDevice(name), reqs);
    // Rebuild the old way: every resource handed over as a fixed value, to a manager that can
    // see the allocator's holdings but allocates nothing.
    const rebuilt = new DeviceManager({ holdings: sys.holdingsCallback() });
    for (const id of dm.instanceIds()) {
      const res = dm.resourcesOf(id);
      rebuilt.fullRegisterDevice(new ProbeDevice(res.name), [
        { kind: "instanceId", fixed: id },
        ...res.irqs.map((q): ResourceRequest => ({ kind: "irq", fixed: q.irq })),
        { kind: "msi", count: res.msi.length, fixed: res.msi.map((m) => m.gsi) },
        ...res.pio.map((s): ResourceRequest => ({ kind: "pio", size: s.range.len(), fixed: s.range.start })),
        ...res.mmio.map((s): ResourceRequest => ({ kind: "mmio", size: s.range.len(), fixed: s.range.start })),
      ]);
      assert.equal(rebuilt.resourcesOf(id).instanceIdAllocated, false);
    }
    inconsistent(rebuilt, /the allocator holds .* for virtio-net@0, which its record does not list/, "virtio-net@0");
    // Unplugging from it frees nothing: what the allocator holds is now a leak, and is reported.
    rebuilt.unregisterDevice(0);
    rebuilt.unregisterDevice(1);
    assert.equal(rebuilt.size, 0);
    assert.equal(sys.allocationsOf("virtio-net@0").length, 6);
    inconsistent(rebuilt, /for virtio-net@0, which is not a registered device \(leaked\)/, "virtio-net@0");
    // Re-registered under another instance id, the old owner's holdings are orphans at once.
    const other = new DeviceManager({ holdings: sys.holdingsCallback() });
    other.simpleRegisterDevice(new ProbeDevice("virtio-blk"), 100);
    inconsistent(other, /which is not a registered device \(leaked\)/, "virtio-net@0");

    // The snapshot is the right way: restored, it agrees, and unplugging frees everything.
    const restored = DeviceManager.fromJSON(dm.toJSON(), { systemAllocator: sys, devices: (e) => new ProbeDevice(e.name) });
    restored.checkConsistency();
    for (const id of restored.instanceIds()) restored.fullUnregisterDevice(id);
    assert.deepEqual(sys.holdings(), new DefaultSystemAllocator(TEST_LAYOUT).holdings());
  });

  it("(d) the instance id held under the bare device name is detected, and releaseAll of the bare name touches nothing", () => {
    const { sys, dm } = newVm();
    dm.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "irq" }]);
    dm.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "irq" }]);
    assert.equal(sys.instanceId.ownerOf(0), "virtio-net@0");
    assert.equal(sys.instanceId.ownerOf(1), "virtio-net@1");
    assert.deepEqual(sys.releaseAll("virtio-net"), []);
    dm.checkConsistency();
    // The old behaviour: the id held under the bare name.
    const ids = sys.deviceIdCallback();
    ids({ action: "free", owner: "virtio-net@1", id: 1 });
    ids({ action: "allocate", owner: "virtio-net", fixed: 1 });
    inconsistent(dm, /virtio-net@1 records instanceId 1, which the allocator does not hold for it/, "virtio-net@1");
  });

  it("an orphan name@id holding is a leak; holdings of owners that are not devices are not", () => {
    const { sys, dm } = newVm("firecracker-x86_64");
    dm.fullRegisterDevice(new ProbeDevice("nic"), [{ kind: "msi", count: 1 }]);
    sys.irqCallback()({ action: "allocate", owner: "vmm", pool: "msi" });
    sys.mmioAddressCallback()({ action: "allocate", owner: "acpi@tables", size: 0x1000n });
    dm.checkConsistency();
    sys.irqCallback()({ action: "allocate", owner: "nic@9", pool: "legacy" });
    inconsistent(dm, /the allocator holds irq 5 for nic@9, which is not a registered device \(leaked\)/, "nic@9");
  });

  it("with otherManagers, another manager's live devices on the same allocator are not leaks; their leftovers are", () => {
    const { sys, dm: strict } = newVm("firecracker-x86_64");
    const a = DeviceManager.fromSystemAllocator(sys, { otherManagers: true });
    const b = DeviceManager.fromSystemAllocator(sys, { otherManagers: true });
    const blk = a.fullRegisterDevice(new ProbeDevice("virtio-blk"), [{ kind: "mmio", size: 0x1000 }, { kind: "irq" }]);
    const net = b.fullRegisterDevice(new ProbeDevice("virtio-net"), [{ kind: "mmio", size: 0x1000 }, { kind: "msi", count: 2 }]);
    assert.notEqual(blk, net); // one instance-id pool: owners never collide
    a.checkConsistency();
    b.checkConsistency();
    // Without the option, each of the other's devices is a leak (the default, one manager per allocator).
    inconsistent(strict, /for virtio-blk@0, which is not a registered device \(leaked\)/, "virtio-blk@0");
    // A leftover of a gone device (its instance id freed, something else still held) is a leak for both.
    sys.irqCallback()({ action: "allocate", owner: "gone@7", pool: "legacy" });
    inconsistent(a, /holds irq \d+ for gone@7, which is not a registered device \(leaked\)/, "gone@7");
    inconsistent(b, /holds irq \d+ for gone@7, which is not a registered device \(leaked\)/, "gone@7");
    sys.releaseAll("gone@7");
    // A restore of one manager's snapshot next to the other's live devices needs the option too.
    const devices = new Map([[net, b.resourcesOf(net).device]]);
    const restored = DeviceManager.fromJSON(JSON.parse(JSON.stringify(b.toJSON())), { systemAllocator: sys, devices, otherManagers: true });
    assert.deepEqual(restored.instanceIds(), [net]);
    assert.throws(() => DeviceManager.fromJSON(b.toJSON(), { systemAllocator: sys, devices }), allocatorError("InvalidSnapshot", /virtio-blk@0, which is not a registered device \(leaked\)/));
    // Unplugging in one manager is seen by the other's check at once.
    b.fullUnregisterDevice(net);
    a.checkConsistency();
    assert.deepEqual(sys.allocationsOf(`virtio-net@${net}`), []);
    // Bad options are refused.
    assert.throws(() => DeviceManager.fromSystemAllocator(sys, { otherManagers: 1 } as never), allocatorError("InvalidArgument", /otherManagers must be a boolean/));
    assert.throws(() => DeviceManager.fromSystemAllocator(sys, { othermanagers: true } as never), allocatorError("InvalidArgument", /unknown field "othermanagers"/));
  });
});

/**
 * Devices valid on the test layout and on both x86 presets, with every way of holding a
 * resource. Port ranges are allocated only where the layout has a port pool (Firecracker has
 * none: its two legacy ports are fixed, and only mapped).
 */
function plugAll(dm: DeviceManager, sys: DefaultSystemAllocator): void {
  const full = (name: string, reqs: readonly ResourceRequest[]) => dm.fullRegisterDevice(new ProbeDevice(name), reqs);
  full("serial", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4, shared: true }]);
  full("serial", [{ kind: "pio", size: 8, fixed: 0x3e8 }, { kind: "irq", fixed: 4, shared: true }]);
  for (let i = 0; i < 3; i++) full("virtio-net", [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "msi", count: 2 }, { kind: "irq" }]);
  full("virtio-blk", [{ kind: "mmio", size: 0x2000, alignment: 0x2000, mmio64: true }, { kind: "irq", fixed: 16, shared: true }]);
  full("virtio-blk", [{ kind: "irq", fixed: 16, shared: true }, ...(sys.pio === undefined ? [] : [{ kind: "pio" as const, size: 0x40, alignment: 0x40 }])]);
  full("fw-dev", [{ kind: "instanceId", fixed: 50 }, { kind: "mmio", size: 0x1000, fixed: 0xd000_0000 }, { kind: "irq", fixed: 13 }, { kind: "msi", count: 1, fixed: [200] }]);
  dm.simpleRegisterDevice(new ProbeDevice("vmm-dev"), 77, { irq: 14, shared: true }, r(0xe000, 0xe00f), r(0xe000_0000, 0xe000_0fff));
}

/** What `allocationsOf(owner)` must list for a device, derived from its record alone. */
function expectedHoldings(sys: DefaultSystemAllocator, dm: DeviceManager, id: number): string[] {
  const res = dm.resourcesOf(id);
  const out: string[] = [];
  if (res.instanceIdAllocated) out.push(`instanceId ${id}`);
  for (const q of res.irqs) if (q.allocated) out.push(`legacyIrq ${q.irq}${q.shared ? " shared" : ""}`);
  for (const m of res.msi) if (m.allocated) out.push(`msi ${m.gsi}`);
  for (const s of res.pio) if (s.allocated) out.push(`pio ${s.range.toString("io")}`);
  for (const s of res.mmio) {
    if (!s.allocated) continue;
    const pool = sys.mmio64 !== undefined && sys.mmio64.range.contains(s.range) ? "mmio64" : "mmio32";
    out.push(`${pool} ${s.range.toString("mem")}`);
  }
  return out.sort();
}

describe("one truth on the real system allocator", () => {
  /** Per layout: how the fixed ports, the fixed line 16 and the VMM's ports are held. */
  const cases: { name: string; layout: LayoutName | typeof TEST_LAYOUT; serial: string[]; line16: string; vmmPort: string[] }[] = [
    // The ISA block is reserved: a serial port there is a use of the reservation.
    { name: "the test layout", layout: TEST_LAYOUT, serial: ["pio [io 0x3f8-0x3ff] within isa-legacy"], line16: "legacyIrq 16 shared", vmmPort: ["pio [io 0xe000-0xe00f]"] },
    // Ports from 0xc000 only: the serial ports lie outside the pool and are only mapped; the
    // PCI INTx lines 16-23 are reserved, so sharing 16 is a shared use of that reservation.
    { name: "pc-x86_64", layout: "pc-x86_64", serial: [], line16: "legacyIrq 16 shared within pci-intx", vmmPort: ["pio [io 0xe000-0xe00f]"] },
    // No port pool at all: ports are unmanaged, mapped and recorded only.
    { name: "firecracker-x86_64", layout: "firecracker-x86_64", serial: [], line16: "legacyIrq 16 shared", vmmPort: [] },
  ];
  for (const c of cases) {
    it(`${c.name}: fixed, shared and allocated resources are all held under the device's owner, its instance id included`, () => {
      const { sys, dm } = newVm(c.layout);
      const fresh = sys.holdings();
      plugAll(dm, sys);
      dm.checkConsistency();
      sys.checkValid();
      assert.equal(dm.size, 9);
      for (const id of dm.instanceIds()) {
        const { owner } = dm.resourcesOf(id);
        const listed = sys.allocationsOf(owner);
        assert.deepEqual(listed.map((h) => holdingText(h).replace(/ within .*/, "")).sort(), expectedHoldings(sys, dm, id), owner);
        assert.ok(listed.every((h) => h.owner === owner && !h.reserved), `${owner} holds only allocations and uses`);
        assert.ok(listed.some((h) => h.pool === "instanceId" && h.id === id), `${owner} holds its instance id`);
      }
      // IRQ 4 lies below the IRQ pool (5..23): only recorded. The firmware's MMIO range, line and
      // GSI are held exactly.
      assert.deepEqual(sys.allocationsOf("serial@0").map(holdingText), [...c.serial, "instanceId 0"]);
      assert.deepEqual(dm.resourcesOf(0).irqs, [{ irq: 4, allocated: false, fixed: true, shared: true }]);
      assert.equal(dm.resourcesOf(0).pio[0]!.allocated, c.serial.length > 0);
      assert.equal(sys.holdings().some((h) => h.pool === "legacyIrq" && h.id === 4), false);
      assert.deepEqual(sys.allocationsOf("fw-dev@50").map(holdingText), ["mmio32 [mem 0xd0000000-0xd0000fff]", "legacyIrq 13", "msi 200", "instanceId 50"]);
      assert.deepEqual(sys.allocationsOf("vmm-dev@77").map(holdingText), [...c.vmmPort, "mmio32 [mem 0xe0000000-0xe0000fff]", "legacyIrq 14 shared", "instanceId 77"]);
      // Shared line 16: held once, listed for both holders.
      for (const owner of ["virtio-blk@5", "virtio-blk@6"]) {
        assert.deepEqual(sys.allocationsOf(owner).filter((h) => h.pool === "legacyIrq").map(holdingText), [c.line16], owner);
      }
      // Every holding of a name@id owner is a live device's: nothing else was allocated.
      const owners = new Set(dm.instanceIds().map((id) => dm.resourcesOf(id).owner));
      for (const h of sys.holdings()) if (!h.reserved) assert.ok(owners.has(h.owner), `${holdingText(h)} of ${h.owner}`);
      // Unplugging everything leaves the allocator holding what it held before.
      for (const id of dm.instanceIds()) dm.fullUnregisterDevice(id);
      assert.deepEqual(sys.holdings(), fresh);
    });
  }

  it("releaseAll of one virtio-net@N frees exactly its holdings and never touches another virtio-net@M", () => {
    const { sys, dm } = newVm();
    plugAll(dm, sys);
    const nets = dm.instanceIds().filter((id) => dm.resourcesOf(id).name === "virtio-net");
    assert.deepEqual(nets, [2, 3, 4]);
    const before = new Map(nets.map((id) => [id, sys.allocationsOf(`virtio-net@${id}`)] as const));
    const freed = sys.releaseAll("virtio-net@3");
    assert.deepEqual(freed, before.get(3));
    assert.equal(freed.length, 1 + 2 + 1 + 1);
    assert.deepEqual(sys.allocationsOf("virtio-net@3"), []);
    for (const id of [2, 4]) assert.deepEqual(sys.allocationsOf(`virtio-net@${id}`), before.get(id));
    assert.deepEqual(sys.releaseAll("virtio-net"), [], "the bare name holds nothing");
    inconsistent(dm, /virtio-net@3 records .*, which the allocator does not hold for it/, "virtio-net@3");
    // Unplugging the device reports the frees that failed, and takes it out all the same.
    assert.throws(() => dm.fullUnregisterDevice(3), allocatorError("InvalidState", /^virtio-net@3 was unregistered, but freeing .* failed/));
    dm.checkConsistency();
    for (const id of [2, 4]) assert.deepEqual(sys.allocationsOf(`virtio-net@${id}`), before.get(id));
  });
});

describe("shared legacy lines", () => {
  /** Lines of the test layout: in the pool, in a reservation (ACPI SCI), and below the pool. */
  const LINES = [
    { line: 16, where: "in the pool" },
    { line: 9, where: "in a reservation" },
    { line: 4, where: "outside the pool" },
  ];

  for (const { line, where } of LINES) {
    it(`line ${line} (${where}): two and three shared holders are fine`, () => {
      const { sys, dm } = newVm();
      for (let i = 0; i < 3; i++) dm.fullRegisterDevice(new ProbeDevice(`pci${i}`), [{ kind: "irq", fixed: line, shared: true }]);
      dm.checkConsistency();
      sys.checkValid();
      const holders = sys.holdings().filter((h) => h.pool === "legacyIrq" && h.id === line && !h.reserved);
      if (line === 4) assert.deepEqual(holders, []);
      else assert.deepEqual(holders.map((h) => [h.owner, "shared" in h && h.shared]), [["pci0@0", true], ["pci1@1", true], ["pci2@2", true]]);
      for (let i = 0; i < 3; i++) assert.deepEqual(dm.resourcesOf(i).irqs, [{ irq: line, allocated: line !== 4, fixed: true, shared: true }]);
    });

    it(`line ${line} (${where}): unshared and shared are an Overlap in both orders, naming the holder and changing nothing`, () => {
      for (const [first, second, message] of [
        [false, true, new RegExp(`^b@1: requests\\[0\\] \\(irq ${line}, shared\\): \\[irq ${line}\\] is held by a@0, which does not share it$`)],
        [true, false, new RegExp(`^b@1: requests\\[0\\] \\(irq ${line}\\): \\[irq ${line}\\] is shared by a@0; pass shared: true to share it$`)],
        [false, false, new RegExp(`^b@1: requests\\[0\\] \\(irq ${line}\\): \\[irq ${line}\\] is held by a@0, which does not share it$`)],
      ] as const) {
        const { sys, dm } = newVm();
        dm.fullRegisterDevice(new ProbeDevice("a"), [{ kind: "irq", fixed: line, shared: first }]);
        const before = state(sys, dm);
        const e = thrown(() => dm.fullRegisterDevice(new ProbeDevice("b"), [{ kind: "irq", fixed: line, shared: second }]));
        allocatorError("Overlap", message)(e);
        assert.equal((e as AllocatorError).owner, "a@0");
        assert.equal((e as AllocatorError).device, "b@1");
        assert.equal(state(sys, dm), before);
        // The same through simple registration.
        assert.throws(() => dm.simpleRegisterDevice(new ProbeDevice("b"), 1, { irq: line, shared: second }), allocatorError("Overlap", /a@0/));
        assert.equal(state(sys, dm), before);
        dm.checkConsistency();
      }
    });
  }

  it("the allocator's own callback refuses to mix shared and unshared holders too, naming them", () => {
    const { sys, dm } = newVm();
    dm.fullRegisterDevice(new ProbeDevice("a"), [{ kind: "irq", fixed: 16, shared: true }]);
    dm.fullRegisterDevice(new ProbeDevice("b"), [{ kind: "irq", fixed: 16, shared: true }]);
    const irq = sys.irqCallback();
    assert.throws(() => irq({ action: "allocate", owner: "c@9", fixed: 16, pool: "legacy" }), allocatorError("Overlap", /\[irq 16\] is shared by a@0, b@1; pass shared: true to share it/));
    dm.fullRegisterDevice(new ProbeDevice("u"), [{ kind: "irq", fixed: 17 }]);
    assert.throws(() => irq({ action: "allocate", owner: "c@9", fixed: 17, pool: "legacy", shared: true }), allocatorError("Overlap", /\[irq 17\] is already held by u@2/));
    dm.checkConsistency();
  });

  it("a shared line in the pool is freed only when its last holder unplugs", () => {
    const { sys, dm } = newVm();
    for (const name of ["a", "b", "c"]) dm.fullRegisterDevice(new ProbeDevice(name), [{ kind: "irq", fixed: 16, shared: true }]);
    assert.equal(sys.legacyIrq.ownerOf(16), "a@0");
    dm.fullUnregisterDevice(0);
    assert.equal(sys.legacyIrq.isAllocated(16), true);
    assert.equal(sys.legacyIrq.ownerOf(16), "b@1", "the next holder takes the line over");
    assert.deepEqual(sys.allocationsOf("a@0"), []);
    dm.checkConsistency();
    dm.fullUnregisterDevice(2);
    assert.equal(sys.legacyIrq.ownerOf(16), "b@1");
    dm.checkConsistency();
    dm.fullUnregisterDevice(1);
    assert.equal(sys.legacyIrq.isAllocated(16), false);
    assert.deepEqual(sys.holdings().filter((h) => h.pool === "legacyIrq" && h.id === 16), []);
    // Free now: an unshared holder may take it.
    dm.fullRegisterDevice(new ProbeDevice("d"), [{ kind: "irq", fixed: 16 }]);
    assert.equal(sys.legacyIrq.ownerOf(16), "d@0");
    dm.checkConsistency();
  });

  it("a shared line in a reservation keeps the reservation when its last holder unplugs", () => {
    const { sys, dm } = newVm();
    for (const name of ["a", "b"]) dm.fullRegisterDevice(new ProbeDevice(name), [{ kind: "irq", fixed: 9, shared: true }]);
    dm.fullUnregisterDevice(1);
    assert.deepEqual(sys.allocationsOf("a@0").map(holdingText), ["legacyIrq 9 shared within acpi-sci", "instanceId 0"]);
    dm.fullUnregisterDevice(0);
    assert.equal(sys.legacyIrq.ownerOf(9), "acpi-sci");
    assert.deepEqual(sys.holdings().filter((h) => h.pool === "legacyIrq" && h.id === 9).map((h) => [h.owner, h.reserved]), [["acpi-sci", true]]);
    dm.fullRegisterDevice(new ProbeDevice("sci"), [{ kind: "irq", fixed: 9 }]);
    dm.checkConsistency();
  });

  it("a shared line outside the pool is tracked by the manager alone, and freed with its last holder", () => {
    const { sys, dm } = newVm("firecracker-x86_64");
    const before = JSON.stringify(sys.toJSON().pools.legacyIrq);
    dm.fullRegisterDevice(new ProbeDevice("com1"), [{ kind: "irq", fixed: 4, shared: true }]);
    dm.fullRegisterDevice(new ProbeDevice("com3"), [{ kind: "irq", fixed: 4, shared: true }]);
    assert.equal(JSON.stringify(sys.toJSON().pools.legacyIrq), before, "the allocator never saw line 4");
    dm.fullUnregisterDevice(0);
    assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("kbd"), [{ kind: "irq", fixed: 4 }]), allocatorError("Overlap", /\[irq 4\] is shared by com3@1; pass shared: true/));
    dm.fullUnregisterDevice(1);
    dm.fullRegisterDevice(new ProbeDevice("kbd"), [{ kind: "irq", fixed: 4 }]);
    dm.checkConsistency();
  });
});

describe("registration errors name the device and the request", () => {
  /** The test layout with x@0, x@1 and holder@2 (fixed line 10, GSI 30, ports 0x1000-0x1007, MMIO at 0xd0000000): the next device is @3. */
  function setup(sys = new DefaultSystemAllocator(TEST_LAYOUT)) {
    const dm = DeviceManager.fromSystemAllocator(sys);
    dm.fullRegisterDevice(new ProbeDevice("x"), []);
    dm.fullRegisterDevice(new ProbeDevice("x"), []);
    dm.fullRegisterDevice(new ProbeDevice("holder"), [
      { kind: "irq", fixed: 10 },
      { kind: "msi", count: 1, fixed: [30] },
      { kind: "pio", size: 8, fixed: 0x1000 },
      { kind: "mmio", size: 0x1000, fixed: 0xd000_0000 },
    ]);
    return { sys, dm };
  }

  /** The registration must fail with exactly `message`, carrying device, requestIndex and the original as cause. */
  function check(
    vm: { sys: DefaultSystemAllocator; dm: DeviceManager },
    register: (dm: DeviceManager) => unknown,
    want: { code: string; message: string; device: string; requestIndex: number | undefined; owner?: string },
  ): void {
    const before = state(vm.sys, vm.dm);
    const e = thrown(() => register(vm.dm));
    assert.ok(e instanceof AllocatorError, String(e));
    assert.equal(e.message, want.message);
    assert.equal(e.code, want.code);
    assert.equal(e.device, want.device);
    assert.equal(e.requestIndex, want.requestIndex);
    assert.equal(e.owner, want.owner);
    const cause = e.cause;
    assert.ok(cause instanceof AllocatorError, "the original error is the cause");
    assert.equal(cause.code, e.code);
    assert.ok(e.message.endsWith(`: ${cause.message}`), "the message ends with the original one");
    assert.equal(cause.device, undefined);
    assert.equal(state(vm.sys, vm.dm), before, "a failed registration changes nothing");
    vm.dm.checkConsistency();
  }

  const blk = (reqs: readonly ResourceRequest[]) => (dm: DeviceManager) => dm.fullRegisterDevice(new ProbeDevice("virtio-blk"), reqs);

  it("mmio: no free space in 64-bit MMIO (the issue's example)", () => {
    const vm = setup();
    vm.sys.mmioAddressCallback()({ action: "allocate", owner: "filler", size: 32n * GiB, mmio64: true });
    check(vm, blk([{ kind: "irq" }, { kind: "mmio", size: 0x1000, mmio64: true }]), {
      code: "ResourceNotAvailable",
      message: "virtio-blk@3: requests[1] (mmio, 0x1000 bytes, mmio64): no free space for 0x1000 bytes aligned to 0x1 in pool [mem 0x1000000000-0x17ffffffff]",
      device: "virtio-blk@3",
      requestIndex: 1,
    });
  });

  it("mmio: a fixed range that is taken, and one across a reservation's edge", () => {
    const vm = setup();
    check(vm, blk([{ kind: "mmio", size: 0x1000, alignment: 0x1000, fixed: 0xd000_0000 }]), {
      code: "Overlap",
      message: "virtio-blk@3: requests[0] (mmio, 0x1000 bytes, at 0xd0000000, aligned 0x1000): [mem 0xd0000000-0xd0000fff] conflicts with holder@2 [mem 0xd0000000-0xd0000fff]",
      device: "virtio-blk@3",
      requestIndex: 0,
      owner: "holder@2",
    });
    const e = thrown(() => vm.dm.fullRegisterDevice(new ProbeDevice("virtio-blk"), [{ kind: "mmio", size: 0x2000, fixed: 0xfebf_f000 }]));
    allocatorError("Overlap", /^virtio-blk@3: requests\[0\] \(mmio, 0x2000 bytes, at 0xfebff000\): .*ioapic/)(e);
  });

  it("pio: a fixed range that is taken, and a window with no room", () => {
    const vm = setup();
    check(vm, blk([{ kind: "pio", size: 8 }, { kind: "pio", size: 4, fixed: 0x1004 }]), {
      code: "Overlap",
      message: "virtio-blk@3: requests[1] (pio, 0x4 ports, at 0x1004): [io 0x1004-0x1007] conflicts with holder@2 [io 0x1000-0x1007]",
      device: "virtio-blk@3",
      requestIndex: 1,
      owner: "holder@2",
    });
    const e = thrown(() => vm.dm.fullRegisterDevice(new ProbeDevice("virtio-blk"), [{ kind: "pio", size: 0x10, alignment: 0x10, window: { min: 0x1000, max: 0x100f } }]));
    allocatorError("ResourceNotAvailable", /^virtio-blk@3: requests\[0\] \(pio, 0x10 ports, aligned 0x10\): /)(e);
    assert.equal((e as AllocatorError).requestIndex, 0);
  });

  it("irq: a fixed line held unshared, and an exhausted pool", () => {
    const vm = setup();
    check(vm, blk([{ kind: "irq" }, { kind: "irq", fixed: 10 }]), {
      code: "Overlap",
      message: "virtio-blk@3: requests[1] (irq 10): [irq 10] is held by holder@2, which does not share it",
      device: "virtio-blk@3",
      requestIndex: 1,
      owner: "holder@2",
    });
    check(vm, blk([{ kind: "pio", size: 1 }, { kind: "irq", fixed: 10, shared: true }]), {
      code: "Overlap",
      message: "virtio-blk@3: requests[1] (irq 10, shared): [irq 10] is held by holder@2, which does not share it",
      device: "virtio-blk@3",
      requestIndex: 1,
      owner: "holder@2",
    });
    for (let line = 5; line <= 23; line++) if (!vm.sys.legacyIrq.isAllocated(line)) vm.sys.irqCallback()({ action: "allocate", owner: "filler", fixed: line, pool: "legacy" });
    check(vm, blk([{ kind: "irq" }]), {
      code: "ResourceNotAvailable",
      message: "virtio-blk@3: requests[0] (irq): legacy IRQ pool: no free id in [irq 5-23]",
      device: "virtio-blk@3",
      requestIndex: 0,
    });
  });

  it("msi: a fixed GSI that is taken names the vector; an exhausted pool", () => {
    const vm = setup();
    check(vm, blk([{ kind: "msi", count: 2, fixed: [31, 30] }]), {
      code: "Overlap",
      message: "virtio-blk@3: requests[0] (msi, 2 vectors): vector 2 of 2: MSI GSI 30 is held by holder@2, which does not share it",
      device: "virtio-blk@3",
      requestIndex: 0,
      owner: "holder@2",
    });
    const irq = vm.sys.irqCallback();
    for (let gsi = 24; gsi <= 4095; gsi++) if (!vm.sys.msi.isAllocated(gsi)) irq({ action: "allocate", owner: "filler", fixed: gsi, pool: "msi" });
    check(vm, blk([{ kind: "irq" }, { kind: "msi", count: 1 }]), {
      code: "ResourceNotAvailable",
      message: "virtio-blk@3: requests[1] (msi, 1 vector): MSI pool: no free id in [irq 24-4095]",
      device: "virtio-blk@3",
      requestIndex: 1,
    });
  });

  it("instanceId: a fixed id that is taken (the device has no id yet), and an exhausted pool", () => {
    check(setup(), blk([{ kind: "irq" }, { kind: "instanceId", fixed: 1 }]), {
      code: "Overlap",
      message: "virtio-blk: requests[1] (instanceId 1): instance id 1 for virtio-blk is already held by x@1",
      device: "virtio-blk",
      requestIndex: 1,
      owner: "x@1",
    });
    const small = new DefaultSystemAllocator({ ...TEST_LAYOUT, instanceId: { first: 0, last: 2 } });
    const vm = setup(small);
    const e = thrown(() => vm.dm.fullRegisterDevice(new ProbeDevice("virtio-blk"), [{ kind: "irq" }]));
    allocatorError("ResourceNotAvailable", /^virtio-blk: instance id: .*no free id in \[id 0-2\]$/)(e);
    assert.equal((e as AllocatorError).device, "virtio-blk");
    assert.equal((e as AllocatorError).requestIndex, undefined, "no request asked for the id");
  });

  it("simple registration names the argument", () => {
    const vm = setup();
    const e = thrown(() => vm.dm.simpleRegisterDevice(new ProbeDevice("virtio-blk"), 9, [7, 10]));
    allocatorError("Overlap", /^virtio-blk@9: irq\[1\]: \[irq 10\] is held by holder@2, which does not share it$/)(e);
    assert.equal((e as AllocatorError).device, "virtio-blk@9");
    const m = thrown(() => vm.dm.simpleRegisterDevice(new ProbeDevice("virtio-blk"), 9, undefined, undefined, [r(0xe000_0000, 0xe000_0fff), r(0xd000_0000, 0xd000_0fff)]));
    allocatorError("Overlap", /^virtio-blk@9: mmioRange\[1\]: \[mem 0xd0000000-0xd0000fff\] conflicts with holder@2 \[mem 0xd0000000-0xd0000fff\]$/)(m);
    const i = thrown(() => vm.dm.simpleRegisterDevice(new ProbeDevice("virtio-blk"), 2));
    allocatorError("Overlap", /^virtio-blk: instanceId: instance id 2 for virtio-blk is already held by holder@2$/)(i);
    vm.dm.checkConsistency();
  });

  it("a missing callback is MissingAllocator naming the device and the request, before anything is held", () => {
    const dm = new DeviceManager({});
    const e = thrown(() => dm.fullRegisterDevice(new ProbeDevice("virtio-blk"), [{ kind: "instanceId", fixed: 3 }, { kind: "irq", fixed: 5 }, { kind: "mmio", size: 0x1000 }]));
    allocatorError("MissingAllocator", /^cannot register virtio-blk: requests\[2\] \(mmio, size 0x1000\) has no fixed address and no mmio allocator callback was provided$/)(e);
    assert.equal((e as AllocatorError).device, "virtio-blk");
    assert.equal((e as AllocatorError).requestIndex, 2);
    assert.equal(dm.size, 0);
  });
});

describe("fault injection: a failed registration or move leaves the allocator's snapshot byte-identical", () => {
  /**
   * Everything a registration can take: an instance id, an allocated line, a shared line, a use of
   * a reserved line, MSI vectors, a port range in the ISA block (a use) and one allocated, MMIO in
   * 64-bit space and at a fixed address.
   */
  const RICH: ResourceRequest[] = [
    { kind: "irq" },
    { kind: "irq", fixed: 12, shared: true },
    { kind: "irq", fixed: 8 },
    { kind: "msi", count: 3 },
    { kind: "pio", size: 8, fixed: 0x3f8 },
    { kind: "pio", size: 0x10, alignment: 0x10 },
    { kind: "mmio", size: 0x1000, alignment: 0x1000, mmio64: true },
    { kind: "mmio", size: 0x1000, fixed: 0xd000_0000 },
  ];

  /**
   * A VM with history (ids handed out and given back, so the pools hold released ids next to
   * fresh ones, and a shared line with a holder), on callbacks that fail their `failAt`-th call.
   */
  function vm(failAt: number) {
    const sys = new DefaultSystemAllocator(TEST_LAYOUT);
    let calls = 0;
    const failing = <P extends { action: string }, R>(cb: (p: P) => R) => (p: P): R => {
      if (p.action === "allocate" && calls++ === failAt) throw new AllocatorError("ResourceNotAvailable", `injected failure at call ${failAt}`);
      return cb(p);
    };
    const callbacks: AllocationCallbacks = {
      deviceId: failing(sys.deviceIdCallback()),
      irq: failing(sys.irqCallback()),
      pio: failing(sys.pioAddressCallback()!),
      mmio: failing(sys.mmioAddressCallback()),
      holdings: sys.holdingsCallback(),
    };
    const setupCalls = failAt;
    failAt = -1; // no failure while the history is made
    const dm = new DeviceManager(callbacks);
    const gone = dm.fullRegisterDevice(new ProbeDevice("gone"), [{ kind: "irq" }, { kind: "msi", count: 2 }, { kind: "pio", size: 8 }]);
    dm.fullRegisterDevice(new ProbeDevice("com1"), [{ kind: "irq", fixed: 12, shared: true }]);
    dm.fullUnregisterDevice(gone);
    calls = 0;
    failAt = setupCalls;
    return { sys, dm, calls: () => calls };
  }

  it("RICH registers on a VM with history, one allocation per id, line, vector and range", () => {
    const { dm, calls } = vm(-1);
    const id = dm.fullRegisterDevice(new ProbeDevice("rich"), RICH);
    assert.equal(calls(), 1 + 3 + 3 + 2 + 2, "one allocation per id, line, vector and range");
    dm.checkConsistency();
    dm.fullUnregisterDevice(id);
    dm.checkConsistency();
  });

  it("whichever allocation fails, every one before it is undone: sys.toJSON() and dm.toJSON() are as before", () => {
    const steps = 1 + 3 + 3 + 2 + 2;
    for (let k = 0; k < steps; k++) {
      const { sys, dm } = vm(k);
      const before = state(sys, dm);
      assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("rich"), RICH), allocatorError("ResourceNotAvailable", new RegExp(`injected failure at call ${k}$`)));
      assert.equal(state(sys, dm), before, `failing allocation ${k}`);
      dm.checkConsistency();
      sys.checkValid();
    }
  });

  it("a failure after every allocation (the last range collides on the bus) is undone too", () => {
    const { sys, dm } = vm(-1);
    // Only mapped (outside every pool), so only the bus can refuse the second one.
    dm.fullRegisterDevice(new ProbeDevice("rom"), [{ kind: "mmio", size: 0x1000, fixed: 0x2_0000_0000 }]);
    const before = state(sys, dm);
    assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("rich"), [...RICH, { kind: "mmio", size: 0x1000, fixed: 0x2_0000_0000 }]), allocatorError("Overlap", /conflicts with rom@/));
    assert.equal(state(sys, dm), before);
    // An instance id the callback hands out but a device already has (the allocator lost it
    // behind the manager's back): the manager refuses it after the fact, and undoes that too.
    assert.deepEqual(dm.instanceIds(), [0, 1], "rom@0 (a released id, reused) and com1@1: 2 comes next");
    dm.simpleRegisterDevice(new ProbeDevice("simple"), 2);
    sys.deviceIdCallback()({ action: "free", owner: "simple@2", id: 2 });
    const before2 = state(sys, dm);
    assert.throws(() => dm.fullRegisterDevice(new ProbeDevice("late"), RICH), allocatorError("Overlap", /instance id 2 for late is already held by simple@2/));
    assert.equal(state(sys, dm), before2);
  });

  it("a refused move leaves the snapshot byte-identical, whether the new place or freeing the old one fails", () => {
    for (const [what, to, failFree] of [
      ["onto a reservation", 0xfec0_0000n, false],
      ["to free space, the old place refusing to be freed", 0xd010_0000n, true],
      ["onto part of itself, the new place refused", 0xd000_0800n, false],
    ] as const) {
      const sys = new DefaultSystemAllocator(TEST_LAYOUT);
      const mmio = sys.mmioAddressCallback();
      let refuse = false;
      const guarded = new DeviceManager({
        deviceId: sys.deviceIdCallback(),
        irq: sys.irqCallback(),
        mmio: (p) => {
          if (refuse && (failFree ? p.action === "free" && p.undo !== true : p.action === "allocate" && p.fixed === to)) throw new AllocatorError("Overlap", "injected");
          return mmio(p);
        },
        holdings: sys.holdingsCallback(),
      });
      const id = guarded.fullRegisterDevice(new ProbeDevice("bar"), [{ kind: "mmio", size: 0x1000, fixed: 0xd000_0000 }]);
      const before = state(sys, guarded);
      refuse = what !== "onto a reservation";
      assert.throws(() => guarded.moveRange(id, r(0xd000_0000, 0xd000_0fff), to), allocatorError("Overlap"), what);
      assert.equal(state(sys, guarded), before, what);
      guarded.checkConsistency();
    }
  });
});

describe("fullUnregisterDevice with { undo: true } rolls a registration back without a trace", () => {
  it("the allocator's snapshot is as before the registration; a plain unplug leaves released history", () => {
    const { sys, dm } = newVm();
    const reqs: ResourceRequest[] = [{ kind: "irq" }, { kind: "msi", count: 2 }, { kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }, { kind: "irq", fixed: 12, shared: true }];
    const before = JSON.stringify(sys.toJSON());
    dm.fullUnregisterDevice(dm.fullRegisterDevice(new ProbeDevice("d"), reqs), { undo: true });
    assert.equal(JSON.stringify(sys.toJSON()), before);
    dm.fullUnregisterDevice(dm.fullRegisterDevice(new ProbeDevice("d"), reqs));
    assert.notEqual(JSON.stringify(sys.toJSON()), before, "a plain unplug remembers the ids as released");
    dm.checkConsistency();
  });

  it("refuses bad options before changing anything", () => {
    const { sys, dm } = newVm();
    const id = dm.fullRegisterDevice(new ProbeDevice("d"), [{ kind: "irq" }]);
    const before = state(sys, dm);
    for (const [bad, message] of [
      [null, /^options must be an object/],
      [5, /^options must be an object/],
      [{ undo: "yes" }, /^options\.undo must be a boolean/],
      [{ undoo: true }, /^options has unknown field "undoo"/],
    ] as const) {
      assert.throws(() => dm.fullUnregisterDevice(id, bad as never), allocatorError("InvalidArgument", message));
      assert.equal(state(sys, dm), before);
    }
    dm.fullUnregisterDevice(id, {});
    dm.checkConsistency();
  });
});
