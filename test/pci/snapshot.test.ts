/**
 * Root-complex snapshots: what the guest programmed is recorded, a twin rebuilt by the same
 * plugs and guest operations verifies against it, and a corrupted snapshot or a diverged twin is
 * refused with `InvalidSnapshot` naming the field.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT, type PciRootComplexSnapshot } from "../../src/pci/root-complex-snapshot.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { PciRootComplex } from "../../src/pci/root-complex.js";
import type { PciMsiMessage } from "../../src/pci/vectors.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { code, Guest, machine, MMIO64_BASE, TestPciDevice, type Machine } from "./helpers.js";

/** The device code of the three functions, as a VMM declares it (again at restore). */
function devices(): { bridge: TestPciDevice; blk: TestPciDevice; net: TestPciDevice } {
  return {
    bridge: new TestPciDevice("host-bridge", 0x8086, 0x29c0, 0x060000),
    blk: new TestPciDevice("virtio-blk", 0x1af4, 0x1042, 0x010000, { interruptPin: 1, bars: [{ kind: "mem32", index: 1, size: 0x1000 }, { kind: "mem64", index: 4, size: 0x4000, prefetchable: true }], msix: { vectors: 4, tableBar: 1 } }),
    net: new TestPciDevice("virtio-net", 0x1af4, 0x1041, 0x020000, { interruptPin: 1, bars: [{ kind: "io", size: 0x20 }, { kind: "mem32", size: 0x1000 }], msi: { vectors: 2 } }),
  };
}

/** A machine with three functions, driven by a guest: decode, a BAR move, MSI-X with two vectors unmasked, a colliding BAR write. */
function driven(extra?: (m: Machine, g: Guest) => void): Machine {
  const m = machine();
  const g = new Guest(m.dm);
  const d0 = devices();
  m.host.plug(d0.bridge, { address: "00:00.0" });
  const blk = m.host.plug(d0.blk);
  const net = m.host.plug(d0.net);
  const d = blk.address.device;
  g.configWrite("cf8", 0, d, 0, 4, 2, 0x6); // memory decode, bus master
  g.setBar("ecam", 0, d, 0, 4, MMIO64_BASE + 0x10_0000n, true); // move the 64-bit BAR while live
  g.configWrite("ecam", 0, d, 0, blk.msix!.offset + 2, 2, 0x8000); // MSI-X on
  const table = blk.bars()[0]!.range.start;
  for (const v of [0, 2]) g.write("mem", table + BigInt(16 * v + 12), [0, 0, 0, 0]);
  // virtio-net's memory BAR written onto virtio-blk's: kept in the register, pending.
  g.configWrite("cf8", 0, net.address.device, 0, 4, 2, 0x3);
  g.setBar("cf8", 0, net.address.device, 0, 1, table, false);
  extra?.(m, g);
  return m;
}

/** The whole VM as a VMM saves it: allocator, device manager, root complex, through JSON. */
function vmSnapshot(m: Machine): { system: unknown; devices: unknown; pci: Record<string, unknown> } {
  return JSON.parse(JSON.stringify({ system: m.sys.toJSON(), devices: m.dm.toJSON(), pci: m.host.toJSON() })) as { system: unknown; devices: unknown; pci: Record<string, unknown> };
}

/** Restores `vm` with fresh device code; returns the restored machine's parts. */
function restore(vm: ReturnType<typeof vmSnapshot>, functions?: Map<string, TestPciDevice>) {
  const sys = DefaultSystemAllocator.fromJSON(vm.system);
  const d = devices();
  const messages: PciMsiMessage[] = [];
  const restored = PciRootComplex.fromJSON(vm.pci, {
    systemAllocator: sys,
    deviceManager: vm.devices,
    devices: new Map(),
    functions: functions ?? new Map([["0000:00:00.0", d.bridge], ["0000:00:01.0", d.blk], ["0000:00:02.0", d.net]]),
    onMsi: (msg) => messages.push(msg),
  });
  return { sys, dm: restored.deviceManager, host: restored.rootComplex, d, messages };
}

const clone = (s: PciRootComplexSnapshot): Record<string, unknown> => JSON.parse(JSON.stringify(s)) as Record<string, unknown>;

describe("PciRootComplex snapshots", () => {
  it("record the slots, command bits, BAR registers and placements, MSI-X enables and held vectors, and pending BARs", () => {
    const m = driven();
    const s = m.host.toJSON();
    assert.equal(s.format, PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT);
    assert.deepEqual(s.slots, m.host.slots.toJSON());
    assert.deepEqual(s.functions.map((f) => f.address), ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0"]);
    const [, blk, net] = s.functions;
    assert.equal(blk!.ids, (0x1042 << 16) | 0x1af4);
    assert.equal(blk!.classRevision, 0x010000 << 8);
    assert.equal(blk!.command, 0x6);
    assert.equal(blk!.intxLine, 21);
    assert.deepEqual(blk!.bars.map((b) => [b.index, b.base, b.routed]), [[1, blk!.bars[0]!.start, true], [4, `0x${(MMIO64_BASE + 0x10_0000n).toString(16)}`, true]]);
    assert.deepEqual(blk!.msix, { enabled: true, functionMasked: false, held: [[0, 24], [2, 25]], table: [[0, 0, 0, 0, 0], [2, 0, 0, 0, 0]], pending: [] });
    // The last configuration access went through 0xcf8: the guest's address register is recorded.
    assert.equal(net!.address, "0000:00:02.0");
    assert.equal(s.configAddress, (0x8000_0000 | (2 << 11) | 0x14) >>> 0);
    assert.equal(s.heldVectors, 2);
    assert.equal(net!.bars[1]!.pending, blk!.bars[0]!.start);
    assert.equal(net!.bars[1]!.routed, false);
    assert.equal(s.barConflicts, m.host.barConflicts);
    assert.ok(s.barConflicts >= 1);
  });

  it("a twin driven by the same guest operations verifies; the snapshot survives JSON", () => {
    const a = driven();
    const b = driven();
    b.host.verifySnapshot(clone(a.host.toJSON()));
    a.host.verifySnapshot(a.host.toJSON());
  });

  it("a twin that diverged by one guest write is refused, naming the field", () => {
    const a = driven();
    const b = driven((_m, g) => g.configWrite("ecam", 0, 1, 0, 4, 2, 0x2)); // bus master off
    assert.throws(() => b.host.verifySnapshot(clone(a.host.toJSON())), code("InvalidSnapshot", /functions\[1\]\.command is 6 in the snapshot but 2 in the root complex/));
    const c = driven((m) => m.host.unplug("00:02.0"));
    assert.throws(() => c.host.verifySnapshot(clone(a.host.toJSON())), code("InvalidSnapshot", /slots|functions has 3 entries, the root complex 2/));
  });

  it("fromJSON restores the whole root complex with its device manager; the restored twin then behaves as the original", () => {
    const a = driven((_m, g) => g.configWrite("cf8", 0, 2, 0, 0x40 + 2, 2, 0x0011)); // virtio-net's MSI on, 2 vectors
    const vm = vmSnapshot(a);
    const b = restore(vm);
    assert.deepEqual(JSON.parse(JSON.stringify(b.host.toJSON())), vm.pci);
    assert.deepEqual(JSON.parse(JSON.stringify(b.dm.toJSON())), vm.devices);
    assert.equal(b.host.heldVectors, a.host.heldVectors);
    b.host.checkConsistency();
    // The same guest operations on both: the states stay equal, the allocators too.
    const ops = (host: PciRootComplex, dm: DeviceManager) => {
      const g = new Guest(dm);
      const blk = host.function("00:01.0")!;
      g.setBar("ecam", 0, 1, 0, 4, MMIO64_BASE + 0x20_0000n, true);
      const table = blk.bars()[0]!.range.start;
      g.write("mem", table + BigInt(16 * 1 + 12), [0, 0, 0, 0]); // unmask vector 1
      assert.equal(g.read("mem", blk.bars()[1]!.range.start, 4).length, 4);
      host.unplug("00:02.0"); // with its pending BAR and its MSI GSIs
      host.plug(new TestPciDevice("nvme", 0x1b36, 0x0010, 0x010802, { interruptPin: 1, bars: [{ kind: "mem64", size: 0x4000 }] }));
      return g;
    };
    ops(a.host, a.dm);
    ops(b.host, b.dm);
    assert.deepEqual(JSON.parse(JSON.stringify(b.host.toJSON())), JSON.parse(JSON.stringify(a.host.toJSON())));
    assert.deepEqual(b.sys.toJSON(), a.sys.toJSON());
    b.host.checkConsistency();
    // Messages reach the restored host's sink; BAR accesses reach the new device code.
    assert.ok(b.host.function("00:01.0")!.signalMsi(1));
    assert.equal(b.messages.at(-1)!.vector, 1);
    const g = new Guest(b.dm);
    g.read("mem", b.host.function("00:01.0")!.bars()[1]!.range.start, 4);
    assert.equal(b.d.blk.accesses.length, 2); // one in ops, one here
    // The 0xcf8 latch came back: a data-port read without writing the address first reads what it names.
    assert.equal(b.dm.pioRead32(0xcfc) >>> 0, a.dm.pioRead32(0xcfc) >>> 0);
  });

  it("fromJSON refuses, with InvalidSnapshot and nothing held or freed, what does not fit", () => {
    const a = driven();
    const vm = vmSnapshot(a);
    const sysBefore = JSON.stringify(DefaultSystemAllocator.fromJSON(vm.system).toJSON());
    const d = devices();
    const all = (over: Record<string, TestPciDevice | undefined> = {}) => {
      const m = new Map<string, TestPciDevice>();
      for (const [k, v] of Object.entries({ "0000:00:00.0": d.bridge, "0000:00:01.0": d.blk, "0000:00:02.0": d.net, ...over })) if (v !== undefined) m.set(k, v);
      return m;
    };
    const fails = (v: typeof vm, functions: Map<string, TestPciDevice>, message: RegExp) => {
      const sys = DefaultSystemAllocator.fromJSON(v.system);
      assert.throws(() => PciRootComplex.fromJSON(v.pci, { systemAllocator: sys, deviceManager: v.devices, devices: new Map(), functions }), code("InvalidSnapshot", message));
      assert.equal(JSON.stringify(sys.toJSON()), sysBefore);
    };
    fails(vm, all({ "0000:00:02.0": undefined }), /functions\[2\]: no device code was given for 0000:00:02\.0/);
    fails(vm, all({ "0000:00:02.0": new TestPciDevice("virtio-net", 0x1af4, 0x1041, 0x020000, { interruptPin: 1, bars: [{ kind: "io", size: 0x40 }, { kind: "mem32", size: 0x1000 }], msi: { vectors: 2 } }) }), /declares BARs \[0:io:false:0x40/);
    fails(vm, all({ "0000:00:02.0": new TestPciDevice("virtio-nic", 0x1af4, 0x1041, 0x020000) }), /is named "virtio-nic", not "virtio-net"/);
    const moved = structuredClone(vm);
    const bar = (moved.pci["functions"] as { bars: { start: string; size: string }[] }[])[1]!.bars[1]!;
    bar.start = `0x${(BigInt(bar.start) + BigInt(bar.size)).toString(16)}`;
    fails(moved, all(), /functions\[1\]\.bars\[1\]: the device manager holds \[mem 0x[0-9a-f]+-0x[0-9a-f]+\] for virtio-blk 0000:00:01\.0 BAR 4/);
    const gsi = structuredClone(vm);
    ((gsi.pci["functions"] as { msix: { held: number[][] } }[])[1]!.msix.held[0]![1]) = 99;
    fails(gsi, all(), /functions\[1\]\.msix\.held: the allocator holds MSI GSIs \[24, 25\] for virtio-blk 0000:00:01\.0 MSI-X, the snapshot \[25, 99\]/);
    const routing = structuredClone(vm);
    (routing.pci["host"] as { intxRouting: { name: string } }).intxRouting.name = "piix";
    fails(routing, all(), /host\.intxRouting is piix/);
    fails({ ...vm, pci: { ...vm.pci, version: 9 } }, all(), /unsupported version 9/);
    fails({ ...vm, devices: { format: "vm-allocator/device-manager", version: 1, devices: [] } }, all(), /invalid device-manager snapshot: it disagrees with the allocator/);
  });

  it("corrupted snapshots are refused with InvalidSnapshot naming what is wrong, and nothing changes", () => {
    const m = driven();
    const good = m.host.toJSON();
    const before = JSON.stringify(good);
    const cases: [string, (s: Record<string, unknown>) => unknown, RegExp][] = [
      ["not an object", () => 7, /expected an object/],
      ["format", (s) => ({ ...s, format: "x" }), /format must be "vm-allocator\/pci-root-complex"/],
      ["version", (s) => ({ ...s, version: 2 }), /unsupported version 2/],
      ["slots", (s) => ({ ...s, slots: null }), /slots must be a "vm-allocator\/pci-slots" snapshot/],
      ["a slot held twice", (s) => ({ ...s, slots: { ...(s["slots"] as object), held: [{ address: "0000:00:01.0", owner: "a" }, { address: "0000:00:01.0", owner: "b" }] } }), /slots: .*duplicate or out of order/],
      ["an unknown field", (s) => ({ ...s, extra: 1 }), /extra is an unknown field/],
      ["a BAR base", (s) => {
        const f = (s["functions"] as { bars: { base: string }[] }[])[1]!;
        f.bars[1]!.base = "0x0";
        return s;
      }, /functions\[1\]\.bars\[1\]\.base is "0x0" in the snapshot/],
      ["a held vector", (s) => {
        ((s["functions"] as { msix: { held: number[][] } }[])[1]!.msix.held[1]![1]) = 99;
        return s;
      }, /functions\[1\]\.msix\.held\[1\]\[1\] is 99/],
      ["a missing field", (s) => {
        delete s["barEvictions"];
        return s;
      }, /barEvictions is missing in the snapshot/],
    ];
    for (const [name, corrupt, message] of cases) {
      assert.throws(() => m.host.verifySnapshot(corrupt(clone(good))), code("InvalidSnapshot", message), name);
    }
    assert.equal(JSON.stringify(m.host.toJSON()), before);
    m.host.checkConsistency();
  });

  it("property: snapshot anywhere in a guest's run, restore, and both twins stay equal under the rest of it", () => {
    type Op =
      | { readonly op: "command"; readonly dev: number; readonly value: number }
      | { readonly op: "bar"; readonly dev: number; readonly index: number; readonly value: number }
      | { readonly op: "msix"; readonly value: number }
      | { readonly op: "vector"; readonly vector: number; readonly masked: boolean }
      | { readonly op: "msi"; readonly value: number }
      | { readonly op: "unplug"; readonly dev: number }
      | { readonly op: "signal"; readonly dev: number; readonly vector: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant("command" as const), dev: fc.integer({ min: 1, max: 2 }), value: fc.constantFrom(0, 1, 2, 3, 6, 7, 0x400) }),
      fc.record({
        op: fc.constant("bar" as const),
        dev: fc.integer({ min: 1, max: 2 }),
        index: fc.integer({ min: 0, max: 5 }),
        value: fc.oneof(fc.constantFrom(0xffff_ffff, 0xc000, 0xc020, 0xc000_0000, 0xc000_1000, 0xc000_2000, 0), fc.integer({ min: 0, max: 0xffff_ffff })),
      }),
      fc.record({ op: fc.constant("msix" as const), value: fc.constantFrom(0, 0x8000, 0xc000) }),
      fc.record({ op: fc.constant("vector" as const), vector: fc.integer({ min: 0, max: 3 }), masked: fc.boolean() }),
      fc.record({ op: fc.constant("msi" as const), value: fc.constantFrom(0, 0x01, 0x11) }),
      fc.record({ op: fc.constant("unplug" as const), dev: fc.integer({ min: 1, max: 2 }) }),
      fc.record({ op: fc.constant("signal" as const), dev: fc.integer({ min: 1, max: 2 }), vector: fc.integer({ min: 0, max: 3 }) }),
    );
    const apply = (host: PciRootComplex, dm: DeviceManager, o: Op): void => {
      const g = new Guest(dm);
      switch (o.op) {
        case "command":
          return g.configWrite("cf8", 0, o.dev, 0, 4, 2, o.value);
        case "bar":
          return g.configWrite("ecam", 0, o.dev, 0, 0x10 + 4 * o.index, 4, o.value);
        case "msix": {
          const f = host.function("00:01.0");
          if (f !== undefined) g.configWrite("cf8", 0, 1, 0, f.msix!.offset + 2, 2, o.value);
          return;
        }
        case "vector": {
          const f = host.function("00:01.0");
          if (f !== undefined) g.write("mem", f.bars()[0]!.range.start + BigInt(16 * o.vector + 12), [o.masked ? 1 : 0, 0, 0, 0]);
          return;
        }
        case "msi": {
          const f = host.function("00:02.0");
          if (f !== undefined) g.configWrite("cf8", 0, 2, 0, f.msi!.offset + 2, 2, o.value);
          return;
        }
        case "unplug":
          if (host.function({ bus: 0, device: o.dev, function: 0 }) !== undefined) host.unplug({ bus: 0, device: o.dev, function: 0 });
          return;
        case "signal":
          host.function({ bus: 0, device: o.dev, function: 0 })?.signalMsi(o.vector);
          return;
      }
    };
    fc.assert(
      fc.property(fc.array(op, { maxLength: 14 }), fc.array(op, { maxLength: 10 }), (before, after) => {
        const a = driven();
        for (const o of before) apply(a.host, a.dm, o);
        const b = restore(vmSnapshot(a));
        assert.deepEqual(JSON.parse(JSON.stringify(b.host.toJSON())), JSON.parse(JSON.stringify(a.host.toJSON())));
        for (const o of after) {
          apply(a.host, a.dm, o);
          apply(b.host, b.dm, o);
        }
        assert.deepEqual(JSON.parse(JSON.stringify(b.host.toJSON())), JSON.parse(JSON.stringify(a.host.toJSON())));
        assert.deepEqual(b.sys.toJSON(), a.sys.toJSON());
        assert.deepEqual(b.dm.toJSON(), a.dm.toJSON());
        b.host.checkConsistency();
      }),
      { numRuns: 60 },
    );
  });
});
