/**
 * Root-complex snapshots: what the guest programmed is recorded, a twin rebuilt by the same
 * plugs and guest operations verifies against it, and a corrupted snapshot or a diverged twin is
 * refused with `InvalidSnapshot` naming the field.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT, type PciRootComplexSnapshot } from "../../src/pci/root-complex-snapshot.js";
import { code, Guest, machine, MMIO64_BASE, TestPciDevice, type Machine } from "./helpers.js";

/** A machine with three functions, driven by a guest: decode, a BAR move, MSI-X with two vectors unmasked, a colliding BAR write. */
function driven(extra?: (m: Machine, g: Guest) => void): Machine {
  const m = machine();
  const g = new Guest(m.dm);
  m.host.plug(new TestPciDevice("host-bridge", 0x8086, 0x29c0, 0x060000), { address: "00:00.0" });
  const blk = m.host.plug(new TestPciDevice("virtio-blk", 0x1af4, 0x1042, 0x010000, { interruptPin: 1, bars: [{ kind: "mem32", index: 1, size: 0x1000 }, { kind: "mem64", index: 4, size: 0x4000, prefetchable: true }], msix: { vectors: 4, tableBar: 1 } }));
  const net = m.host.plug(new TestPciDevice("virtio-net", 0x1af4, 0x1041, 0x020000, { interruptPin: 1, bars: [{ kind: "io", size: 0x20 }, { kind: "mem32", size: 0x1000 }] }));
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
});
