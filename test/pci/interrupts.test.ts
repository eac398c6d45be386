import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { intxLine, Q35_INTX_ROUTING, swizzledIntxRouting } from "../../src/pci/intx.js";
import { PciRootComplex } from "../../src/pci/root-complex.js";
import { PC_X86_64 } from "../../src/system/layouts.js";
import { DefaultSystemAllocator, type IdHolding } from "../../src/system/system-allocator.js";
import { Guest, machine, TestPciDevice, code, type Machine } from "./helpers.js";

const q35 = (slot: number, pin: number) => intxLine(Q35_INTX_ROUTING, slot, pin);

describe("INTx", () => {
  it("q35 wiring: PIRQ A-H are GSIs 16-23, slots 0-23 rotate over E-H, 25-29 and 31 start at A, 24 and 30 at E", () => {
    assert.deepEqual([0, 1, 2, 3, 4].map((s) => q35(s, 1)), [20, 21, 22, 23, 20]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(3, p)), [23, 20, 21, 22]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(0x17, p)), [23, 20, 21, 22]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(0x18, p)), [20, 21, 22, 23]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(0x19, p)), [16, 17, 18, 19]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(0x1e, p)), [20, 21, 22, 23]);
    assert.deepEqual([1, 2, 3, 4].map((p) => q35(0x1f, p)), [16, 17, 18, 19]);
    const simple = swizzledIntxRouting("simple", [5, 6, 7]);
    assert.deepEqual([0, 1, 2, 3].map((s) => intxLine(simple, s, 2)), [6, 7, 5, 6]);
    assert.throws(() => swizzledIntxRouting("none", []), code("InvalidArgument"));
    assert.throws(() => intxLine({ name: "broken", lines: [1], pirq: () => 3 }, 0, 1), code("InvalidState", /broken INTx routing gives PIRQ 3/));
  });

  it("functions on one line share it, explicitly, in the allocator; it is freed with its last holder", () => {
    const m = machine();
    const a = m.host.plug(new TestPciDevice("a", 1, 1, 0, { interruptPin: 1 }), { address: "00:01.0" });
    const b = m.host.plug(new TestPciDevice("b", 1, 1, 0, { interruptPin: 1 }), { address: "00:05.0" });
    assert.equal(a.intxLine, 21);
    assert.equal(b.intxLine, 21);
    // The preset reserves PIRQ A-H for PCI ("pci-intx"); each function uses its line, shared, inside it.
    const line = () => m.sys.holdings().filter((h) => "id" in h && h.pool === "legacyIrq" && h.id === 21 && !h.reserved);
    assert.deepEqual(line().map((h) => [h.owner, "shared" in h && h.shared, "within" in h && h.within]), [
      [`a 0000:00:01.0@${a.instanceId}`, true, "pci-intx"],
      [`b 0000:00:05.0@${b.instanceId}`, true, "pci-intx"],
    ]);
    assert.deepEqual(m.dm.resourcesOf(a.instanceId).irqs, [{ irq: 21, allocated: true, fixed: true, shared: true }]);
    m.host.unplug(a);
    assert.equal(line().length, 1);
    m.host.unplug(b);
    assert.equal(line().length, 0);
    m.host.checkConsistency();
  });

  it("a function without a pin holds no line", () => {
    const m = machine();
    const f = m.host.plug(new TestPciDevice("a", 1, 1, 0));
    assert.equal(f.intxLine, undefined);
    assert.deepEqual(m.dm.resourcesOf(f.instanceId).irqs, []);
    assert.equal(new Guest(m.dm).configRead("cf8", 0, 1, 0, 0x3c, 2), 0);
    f.setIntx(true);
    assert.deepEqual(m.intx, []);
  });

  it("a line held unshared by another device makes the plug fail, naming it, with nothing held", () => {
    const m = machine();
    m.dm.fullRegisterDevice({ name: "uart", read: () => {}, write: () => {} }, [{ kind: "irq", fixed: 21 }]);
    const before = JSON.stringify(m.sys.holdings());
    assert.throws(() => m.host.plug(new TestPciDevice("a", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }] })), code("Overlap", /^cannot plug a 0000:00:01\.0 INTA \(q35 line 21\): \[irq 21\] is held by uart@\d+, which does not share it$/));
    assert.equal(JSON.stringify(m.sys.holdings()), before);
    assert.equal(m.host.size, 0);
    assert.equal(m.host.slots.size, 0);
    m.host.checkConsistency();
  });

  it("a shared line is raised while any function on it asserts and INTx is not disabled; status shows the pin", () => {
    const m = machine();
    const g = new Guest(m.dm);
    const a = m.host.plug(new TestPciDevice("a", 1, 1, 0, { interruptPin: 1 }), { address: "00:01.0" });
    const b = m.host.plug(new TestPciDevice("b", 1, 1, 0, { interruptPin: 1 }), { address: "00:05.0" });
    a.setIntx(true);
    b.setIntx(true);
    a.setIntx(false);
    assert.deepEqual(m.intx, [{ gsi: 21, level: true }], "still held up by b");
    b.setIntx(false);
    assert.deepEqual(m.intx.at(-1), { gsi: 21, level: false });
    a.setIntx(true);
    assert.ok(g.configRead("cf8", 0, 1, 0, 6, 2) & 0x8);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x400);
    assert.deepEqual(m.intx.at(-1), { gsi: 21, level: false }, "INTx disable lowers the line");
    assert.ok(g.configRead("cf8", 0, 1, 0, 6, 2) & 0x8, "the status bit still shows the pin");
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0);
    assert.deepEqual(m.intx.at(-1), { gsi: 21, level: true });
    m.host.unplug(a);
    assert.deepEqual(m.intx.at(-1), { gsi: 21, level: false }, "unplug lowers what the function held up");
    assert.equal(g.configRead("cf8", 0, 5, 0, 6, 2) & 0x8, 0);
  });
});

function msiMachine(layout = PC_X86_64): { m: Machine; g: Guest } {
  const m = machine({}, layout);
  return { m, g: new Guest(m.dm) };
}

const msiHeld = (m: Machine) => m.sys.holdings().filter((h): h is IdHolding => "id" in h && h.pool === "msi");

describe("MSI", () => {
  it("GSIs are held when the guest enables MSI, 2^MME of them, and given back when it disables it", () => {
    const { m, g } = msiMachine();
    const f = m.host.plug(new TestPciDevice("a", 1, 1, 0, { msi: { vectors: 8, perVectorMask: true } }));
    const cap = f.msi!.offset;
    assert.equal(g.configRead("cf8", 0, 1, 0, cap + 2, 2), 0x0186, "8 vectors capable, 64-bit, per-vector mask");
    g.configWrite("cf8", 0, 1, 0, cap + 4, 4, 0xfee0_0000);
    g.configWrite("cf8", 0, 1, 0, cap + 0xc, 2, 0x40);
    assert.equal(msiHeld(m).length, 0, "nothing while disabled");
    assert.equal(f.signalMsi(0), false);
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x21); // enable, MME = 2: 4 vectors
    assert.equal(msiHeld(m).length, 4);
    assert.ok(msiHeld(m).every((h) => h.owner === "a 0000:00:01.0 MSI"));
    assert.ok(f.signalMsi(3));
    assert.deepEqual([m.messages.at(-1)!.data, m.messages.at(-1)!.address, m.messages.at(-1)!.capability], [0x43, 0xfee0_0000n, "msi"]);
    assert.equal(f.signalMsi(4), false, "beyond the enabled count");
    // Per-vector mask: pending while masked, sent on unmask.
    g.configWrite("cf8", 0, 1, 0, cap + 0x10, 4, 0x2);
    const sent = m.messages.length;
    assert.equal(f.signalMsi(1), false);
    assert.equal(g.configRead("cf8", 0, 1, 0, cap + 0x14), 0x2);
    g.configWrite("cf8", 0, 1, 0, cap + 0x10, 4, 0);
    assert.equal(m.messages.length, sent + 1);
    assert.equal(m.messages.at(-1)!.vector, 1);
    assert.equal(g.configRead("cf8", 0, 1, 0, cap + 0x14), 0);
    // A guest asking for more than the function can gets what it can.
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x71);
    assert.equal(msiHeld(m).length, 8);
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x0);
    assert.equal(msiHeld(m).length, 0);
    assert.equal(m.host.heldVectors, 0);
    m.host.checkConsistency();
  });
});

describe("MSI-X", () => {
  function plugged(vectors = 8) {
    const { m, g } = msiMachine();
    const dev = new TestPciDevice("nvme", 0x1b36, 0x10, 0x010802, { bars: [{ kind: "mem64", size: 0x4000 }], msix: { vectors, tableBar: 0, tableOffset: 0x1000, pbaOffset: 0x3000 } });
    const f = m.host.plug(dev);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    const base = f.bars()[0]!.range.start;
    const table = base + 0x1000n;
    const pba = base + 0x3000n;
    const cap = f.msix!.offset;
    const entry = (v: number, data: number, masked: boolean) => {
      const e = table + BigInt(16 * v);
      g.write("mem", e, [0x00, 0x10, 0xe0, 0xfe]);
      g.write("mem", e + 8n, [data & 0xff, 0, 0, 0]);
      g.write("mem", e + 12n, [masked ? 1 : 0, 0, 0, 0]);
    };
    return { m, g, f, dev, table, pba, cap, entry };
  }

  it("a vector holds a GSI when enabled, unmasked and the function unmasked; masking keeps it; disabling gives all back", () => {
    const { m, g, f, cap, entry, table } = plugged();
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x8000);
    assert.equal(msiHeld(m).length, 0, "enabled, every vector still masked");
    entry(3, 0x33, false);
    assert.equal(msiHeld(m).length, 1);
    assert.equal(f.msix!.gsiOf(3), msiHeld(m)[0]!.id);
    entry(3, 0x33, true);
    assert.equal(msiHeld(m).length, 1, "masking keeps the GSI");
    assert.equal(f.signalMsi(3), false);
    assert.ok(f.msix!.isPending(3));
    entry(3, 0x33, false);
    assert.deepEqual([m.messages.at(-1)!.vector, m.messages.at(-1)!.data, m.messages.at(-1)!.address], [3, 0x33, 0xfee0_1000n], "the pending message is sent on unmask");
    assert.ok(!f.msix!.isPending(3));
    // Function mask: pending, then sent when the function is unmasked.
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0xc000);
    entry(5, 0x55, false);
    assert.equal(msiHeld(m).length, 1, "nothing new is held while the function is masked");
    assert.equal(f.signalMsi(3), false);
    const n = m.messages.length;
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x8000);
    assert.equal(msiHeld(m).length, 2);
    assert.equal(m.messages.length, n + 1);
    // The table reads back; reserved bits read zero.
    g.write("mem", table + 12n, [0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual(g.read("mem", table + 12n, 4), [1, 0, 0, 0]);
    g.write("mem", table, [0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual(g.read("mem", table, 4), [0xfc, 0xff, 0xff, 0xff]);
    assert.deepEqual(g.read("mem", table, 8), [0xfc, 0xff, 0xff, 0xff, 0, 0, 0, 0], "a qword read of the address");
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0);
    assert.equal(msiHeld(m).length, 0);
    assert.equal(f.signalMsi(5), false);
    m.host.checkConsistency();
  });

  it("the PBA reads the pending bits and ignores writes; the device never sees table or PBA accesses", () => {
    const { m, g, f, dev, cap, entry, pba } = plugged(70);
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0xc000);
    entry(1, 1, false);
    entry(65, 1, false);
    f.signalMsi(1);
    f.signalMsi(65);
    assert.deepEqual(g.read("mem", pba, 16), [0x02, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0]);
    g.write("mem", pba, [0, 0, 0, 0]);
    assert.deepEqual(g.read("mem", pba, 1), [0x02]);
    assert.deepEqual(dev.accesses, []);
    assert.deepEqual(g.read("mem", pba + 16n, 1), [0x40], "past the PBA is the device's again");
    void m;
  });

  it("unplugging gives back every held GSI", () => {
    const { m, g, cap, entry } = plugged();
    g.configWrite("cf8", 0, 1, 0, cap + 2, 2, 0x8000);
    for (const v of [0, 1, 7]) entry(v, v, false);
    assert.equal(msiHeld(m).length, 3);
    m.host.unplug("00:01.0");
    assert.equal(msiHeld(m).length, 0);
    assert.equal(m.host.heldVectors, 0);
  });

  it("an exhausted MSI pool leaves vectors without a GSI, reported, never thrown into the guest", () => {
    const layout = { ...PC_X86_64, msi: { first: 24, last: 25 } };
    const m = machine({}, layout);
    const g = new Guest(m.dm);
    const f = m.host.plug(new TestPciDevice("x", 1, 1, 0, { bars: [{ kind: "mem32", size: 0x1000 }], msix: { vectors: 4, tableBar: 0 } }));
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    g.configWrite("cf8", 0, 1, 0, f.msix!.offset + 2, 2, 0x8000);
    const table = f.bars()[0]!.range.start;
    for (let v = 0; v < 3; v++) g.write("mem", table + BigInt(16 * v + 12), [0, 0, 0, 0]);
    assert.deepEqual([0, 1, 2].map((v) => f.msix!.gsiOf(v)), [24, 25, -1]);
    assert.equal(m.failures.length, 1);
    assert.deepEqual([m.failures[0]!.action, m.failures[0]!.owner, m.failures[0]!.vector], ["hold", "x 0000:00:01.0 MSI-X", 2]);
    assert.equal((m.failures[0]!.error as { code: string }).code, "ResourceNotAvailable");
    assert.equal(m.host.vectorFailures, 1);
    assert.equal(f.signalMsi(2), false);
    // Once a GSI is free, unmasking again takes it.
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    g.write("mem", table + 12n, [1, 0, 0, 0]);
    g.configWrite("cf8", 0, 1, 0, f.msix!.offset + 2, 2, 0);
    g.configWrite("cf8", 0, 1, 0, f.msix!.offset + 2, 2, 0x8000);
    assert.deepEqual([0, 1, 2].map((v) => f.msix!.gsiOf(v)), [-1, 24, 25]);
    m.host.checkConsistency();
  });

  it("without an irq callback, enabled vectors get no GSI and say why", () => {
    const sys = new DefaultSystemAllocator(PC_X86_64);
    const dm = DeviceManager.fromSystemAllocator(sys);
    const failures: unknown[] = [];
    const host = new PciRootComplex({ deviceManager: dm, onVectorFailure: (f) => failures.push(f.error) });
    const f = host.plug(new TestPciDevice("x", 1, 1, 0, { msi: { vectors: 1 } }));
    host.configWrite(f.address, f.msi!.offset + 2, 2, 1);
    assert.deepEqual(f.msi!.gsis(), [-1]);
    assert.match(String((failures[0] as Error).message), /no irq callback/);
    host.configWrite(f.address, f.msi!.offset + 2, 2, 0);
    assert.equal(host.heldVectors, 0);
  });

  it("rejects MSI-X declarations whose table or PBA is not inside a memory BAR of the device", () => {
    const m = machine();
    const bad = (extra: ConstructorParameters<typeof TestPciDevice>[4], re: RegExp) => assert.throws(() => m.host.plug(new TestPciDevice("x", 1, 1, 0, extra)), code("InvalidArgument", re));
    bad({ msix: { vectors: 4, tableBar: 0 } }, /BAR 0, which is not a memory BAR/);
    bad({ bars: [{ kind: "io", size: 0x40 }], msix: { vectors: 4, tableBar: 0 } }, /not a memory BAR/);
    bad({ bars: [{ kind: "mem32", size: 0x40 }], msix: { vectors: 4, tableBar: 0 } }, /PBA \(0x8 bytes at 0x40\) does not fit in BAR 0 of 0x40 bytes/);
    bad({ bars: [{ kind: "mem32", size: 0x1000 }], msix: { vectors: 4, tableBar: 0, pbaOffset: 0x20 } }, /overlaps the table/);
    bad({ bars: [{ kind: "mem32", size: 0x1000 }], msix: { vectors: 4, tableBar: 0, tableOffset: 4 } }, /multiple of 8/);
    bad({ bars: [{ kind: "mem32", size: 0x10_0000 }], msix: { vectors: 2049, tableBar: 0 } }, /from 1 to 2048/);
    bad({ msi: { vectors: 3 } }, /1, 2, 4, 8, 16 or 32/);
    assert.equal(m.host.size, 0);
  });
});
