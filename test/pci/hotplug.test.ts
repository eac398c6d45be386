import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { PciRootComplex } from "../../src/pci/root-complex.js";
import { PC_X86_64 } from "../../src/system/layouts.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import type { PciBarSpec } from "../../src/pci/bar.js";
import { Guest, machine, MMIO64_BASE, TestPciDevice, code, type Machine } from "./helpers.js";

const state = (m: Machine) => JSON.stringify({ held: m.sys.holdings(), devices: m.dm.toJSON(), slots: m.host.slots.toJSON(), size: m.host.size });

describe("hotplug", () => {
  it("a taken address fails naming its holder and changes nothing", () => {
    const m = machine();
    m.host.plug(new TestPciDevice("ich9-lpc", 0x8086, 0x2918, 0x060100), { address: "00:1f.0" });
    const before = state(m);
    assert.throws(() => m.host.plug(new TestPciDevice("x", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }] }), { address: "00:1f.0" }), code("Overlap", /^cannot plug x: 0000:00:1f\.0 for x is already held by ich9-lpc$/));
    assert.equal(state(m), before);
    assert.throws(() => m.host.plug(new TestPciDevice("x", 1, 1, 0), { address: "00:1f.0", bus: 0 }), code("InvalidArgument"));
    assert.throws(() => m.host.plug(new TestPciDevice("x", 1, 1, 0), { slot: 3 } as never), code("InvalidArgument", /unknown field "slot"/));
    assert.throws(() => m.host.plug(new TestPciDevice("x", 0xffff, 1, 0)), code("InvalidArgument", /vendorId 0xffff is reserved/));
    assert.throws(() => m.host.plug(new TestPciDevice("", 1, 1, 0)), code("InvalidArgument", /name/));
    assert.throws(() => m.host.plug(new TestPciDevice("x", 1, 1, 0, { interruptPin: 5 })), code("InvalidArgument", /interruptPin/));
    assert.equal(state(m), before);
  });

  it("a function whose last BAR does not fit is not plugged at all: slot, line and earlier BARs are given back", () => {
    const layout = { ...PC_X86_64, mmio64: { base: MMIO64_BASE, size: 0x10_0000 } };
    const m = machine({}, layout);
    const before = state(m);
    const bars: PciBarSpec[] = [{ kind: "io", size: 0x40 }, { kind: "mem32", size: 0x1000 }, { kind: "mem64", index: 2, size: 1n << 40n, prefetchable: true }];
    assert.throws(() => m.host.plug(new TestPciDevice("big", 1, 1, 0, { interruptPin: 1, bars })), code("ResourceNotAvailable", /^cannot plug big 0000:00:01\.0 BAR 2 \(mem 64bit pref, 0x10000000000 bytes\): no free space for 0x10000000000 bytes .*; falling back to 32-bit MMIO: /));
    assert.deepEqual(JSON.parse(state(m)).held, JSON.parse(before).held);
    assert.equal(m.host.size, 0);
    assert.equal(m.host.slots.size, 0);
    assert.equal(m.dm.size, 2, "only the configuration mechanisms");
    m.host.checkConsistency();
  });

  it("what a callback throws that is not an AllocatorError reaches the caller unchanged, after the rollback", () => {
    const sys = new DefaultSystemAllocator(PC_X86_64);
    const mmio = sys.mmioAddressCallback();
    let calls = 0;
    const boom = new TypeError("the VMM's allocator crashed");
    const dm = new DeviceManager({
      deviceId: sys.deviceIdCallback()!,
      irq: sys.irqCallback()!,
      pio: sys.pioAddressCallback()!,
      mmio: (p) => {
        if (p.action === "allocate" && p.fixed === undefined && ++calls === 2) throw boom;
        return mmio!(p);
      },
      holdings: sys.holdingsCallback()!,
    });
    const host = new PciRootComplex({ deviceManager: dm, ecam: { base: 0xb000_0000 } });
    const before = JSON.stringify(sys.holdings());
    assert.throws(() => host.plug(new TestPciDevice("x", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }, { kind: "mem32", size: 0x1000 }] })), (e) => e === boom);
    assert.equal(JSON.stringify(sys.holdings()), before);
    host.checkConsistency();
  });

  it("a multi-function device takes functions 0..n-1 of one slot and sets the multi-function bit while it has company", () => {
    const m = machine();
    const g = new Guest(m.dm);
    m.host.plug(new TestPciDevice("bridge", 0x8086, 0x29c0, 0x060000), { address: "00:00.0" });
    const fns = m.host.plugMultiFunction([
      new TestPciDevice("lpc", 0x8086, 0x2918, 0x060100),
      new TestPciDevice("sata", 0x8086, 0x2922, 0x010601, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }] }),
      new TestPciDevice("smbus", 0x8086, 0x2930, 0x0c0500, { interruptPin: 2, bars: [{ kind: "io", size: 0x40, index: 4 }] }),
    ], { address: "00:1f.0" });
    assert.deepEqual(fns.map((f) => f.bdf), ["0000:00:1f.0", "0000:00:1f.1", "0000:00:1f.2"]);
    assert.deepEqual(fns.map((f) => f.intxLine), [undefined, 16, 17]);
    assert.deepEqual(g.enumerate("ecam").map((f) => [f.dev, f.fn, f.headerType]), [[0, 0, 0], [0x1f, 0, 0x80], [0x1f, 1, 0], [0x1f, 2, 0]]);
    assert.deepEqual(m.host.slots.holdings().map((h) => h.owner), ["bridge", "lpc", "sata", "smbus"]);
    m.host.unplug("00:1f.1");
    assert.equal(g.configRead("cf8", 0, 0x1f, 0, 0x0e, 1), 0x80, "function 2 is still there");
    m.host.unplug("00:1f.2");
    assert.equal(g.configRead("cf8", 0, 0x1f, 0, 0x0e, 1), 0, "alone again");
    // A function hot-plugged next to function 0 sets the bit again.
    m.host.plug(new TestPciDevice("audio", 0x8086, 0x293e, 0x040300), { address: "00:1f.3" });
    assert.equal(g.configRead("cf8", 0, 0x1f, 0, 0x0e, 1), 0x80);
    // Lowest free slot for a multi-function device.
    const two = m.host.plugMultiFunction([new TestPciDevice("nic0", 1, 1, 0), new TestPciDevice("nic1", 1, 1, 0)]);
    assert.deepEqual(two.map((f) => f.bdf), ["0000:00:01.0", "0000:00:01.1"]);
    assert.deepEqual(m.host.slots.holdings().filter((h) => h.address.device === 1).map((h) => h.owner), ["nic0", "nic1"]);
    assert.throws(() => m.host.plugMultiFunction([new TestPciDevice("a", 1, 1, 0), new TestPciDevice("b", 1, 1, 0)], { address: "00:05.1" }), code("InvalidArgument", /starts at function 0/));
    assert.throws(() => m.host.plugMultiFunction([]), code("InvalidArgument"));
    m.host.checkConsistency();
  });

  it("a multi-function device with one function that cannot be plugged is not plugged at all", () => {
    const layout = { ...PC_X86_64, mmio64: { base: MMIO64_BASE, size: 0x10_0000 } };
    const m = machine({}, layout);
    const before = state(m);
    assert.throws(
      () => m.host.plugMultiFunction([
        new TestPciDevice("a", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }] }),
        new TestPciDevice("b", 1, 1, 0, { interruptPin: 2, bars: [{ kind: "mem64", size: 1n << 40n, prefetchable: true }] }),
      ]),
      code("ResourceNotAvailable", /^cannot plug b 0000:00:01\.1 BAR 0 /),
    );
    assert.deepEqual(JSON.parse(state(m)).held, JSON.parse(before).held);
    assert.equal(m.host.slots.size, 0);
  });

  it("a failed plug after a function and its BARs were registered leaves the allocator's snapshot byte-identical", () => {
    const layout = { ...PC_X86_64, mmio64: { base: MMIO64_BASE, size: 0x10_0000 } };
    const m = machine({}, layout);
    // History first, so that the id pools have released ids next to fresh ones.
    m.host.unplug(m.host.plug(new TestPciDevice("old", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }] })));
    const before = JSON.stringify(m.sys.toJSON());
    const devices = JSON.stringify(m.dm.toJSON());
    assert.throws(
      () => m.host.plugMultiFunction([
        new TestPciDevice("a", 1, 1, 0, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x1000 }, { kind: "io", size: 0x20 }] }),
        new TestPciDevice("b", 1, 1, 0, { interruptPin: 2, bars: [{ kind: "mem64", size: 1n << 40n, prefetchable: true }] }),
      ]),
      code("ResourceNotAvailable"),
    );
    assert.equal(JSON.stringify(m.sys.toJSON()), before, "function a's instance id, INTx line and BARs were rolled back with undo");
    assert.equal(JSON.stringify(m.dm.toJSON()), devices);
    m.dm.checkConsistency();
  });

  it("unplugging what is not plugged is NotFound; a stale function object too", () => {
    const m = machine();
    assert.throws(() => m.host.unplug("00:03.0"), code("NotFound", /no PCI function is plugged at 0000:00:03\.0/));
    const f = m.host.plug(new TestPciDevice("x", 1, 1, 0));
    m.host.unplug(f);
    m.host.plug(new TestPciDevice("y", 1, 1, 0));
    assert.throws(() => m.host.unplug(f), code("NotFound"));
    assert.equal(m.host.size, 1);
  });

  it("random plug/unplug with guest activity never leaks: after everything is unplugged the allocator holds what it held at the start", () => {
    const barSpec = fc.oneof(
      fc.record({ kind: fc.constant("io" as const), size: fc.constantFrom(4, 0x20, 0x100) }),
      fc.record({ kind: fc.constant("mem32" as const), size: fc.constantFrom(16, 0x1000, 0x10_0000), prefetchable: fc.boolean() }),
      fc.record({ kind: fc.constant("mem64" as const), size: fc.constantFrom(0x1000, 0x4000_0000, 1 << 52), prefetchable: fc.boolean() }),
    );
    const device = fc.record({ bars: fc.array(barSpec, { maxLength: 3 }), pin: fc.integer({ min: 0, max: 4 }), msix: fc.boolean(), slot: fc.option(fc.integer({ min: 0, max: 31 }), { nil: undefined }) });
    const op = fc.oneof(
      fc.record({ t: fc.constant("plug" as const), d: device }),
      fc.record({ t: fc.constant("unplug" as const), i: fc.nat() }),
      fc.record({ t: fc.constant("guest" as const), i: fc.nat(), v: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const m = machine();
        const g = new Guest(m.dm);
        const start = JSON.stringify(m.sys.holdings());
        let n = 0;
        for (const o of ops) {
          if (o.t === "plug") {
            const bars: PciBarSpec[] = o.d.bars.filter((_, i, all) => all.slice(0, i + 1).reduce((k, x) => k + (x.kind === "mem64" ? 2 : 1), 0) <= 6);
            const mem = bars.findIndex((b) => b.kind !== "io" && BigInt(b.size) >= 0x1000n);
            const extra = { bars, interruptPin: o.d.pin, ...(o.d.msix && mem >= 0 ? { msix: { vectors: 4, tableBar: normalizeIndex(bars, mem) } } : {}) };
            const before = state(m);
            try {
              m.host.plug(new TestPciDevice(`d${n++}`, 0x1af4, 1, 0, extra), o.d.slot === undefined ? {} : { address: { bus: 0, device: o.d.slot, function: 0 } });
            } catch (error) {
              assert.ok(["Overlap", "ResourceNotAvailable"].includes((error as { code?: string }).code ?? ""), String(error));
              assert.deepEqual(JSON.parse(state(m)).held, JSON.parse(before).held, "a failed plug changes nothing");
            }
          } else if (o.t === "unplug") {
            const fns = m.host.functions();
            if (fns.length > 0) m.host.unplug(fns[o.i % fns.length]!);
          } else {
            const fns = m.host.functions();
            if (fns.length === 0) continue;
            const f = fns[o.i % fns.length]!;
            g.configWrite("ecam", 0, f.address.device, 0, 4, 2, 0x7);
            if (f.msix !== undefined) {
              g.configWrite("ecam", 0, f.address.device, 0, f.msix.offset + 2, 2, 0x8000);
              const t = f.bars().find((b) => b.index === f.msix!.spec.tableBar)!;
              g.write("mem", t.range.start + BigInt(16 * (o.v % 4) + 12), [0, 0, 0, 0]);
            }
            f.setIntx(o.v % 2 === 0);
          }
          m.host.checkConsistency();
        }
        for (const f of m.host.functions()) m.host.unplug(f);
        assert.equal(JSON.stringify(m.sys.holdings()), start);
        assert.equal(m.host.heldVectors, 0);
        m.host.close();
        assert.equal(m.dm.size, 0);
      }),
      { numRuns: 60 },
    );
  });
});

/** The register index of the `i`-th BAR of a list without explicit indexes. */
function normalizeIndex(bars: readonly PciBarSpec[], i: number): number {
  let index = 0;
  for (let j = 0; j < i; j++) index += bars[j]!.kind === "mem64" ? 2 : 1;
  return index;
}
