import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { barHighMask, barIsSizing, barLowMask, normalizeBars, type PciBar } from "../../src/pci/bar.js";
import { PC_X86_64 } from "../../src/system/layouts.js";
import { Guest, machine, MMIO64_BASE, TestPciDevice, code, type Machine } from "./helpers.js";

const bar = (kind: PciBar["kind"], size: bigint, prefetchable = false): PciBar => ({ index: 0, kind, size, prefetchable });

describe("BAR declarations", () => {
  it("accept I/O 4-256 ports, memory from 16 bytes, powers of two; 64-bit BARs take two registers", () => {
    assert.deepEqual(normalizeBars([{ kind: "mem64", size: 0x4000, prefetchable: true }, { kind: "io", size: 4 }, { kind: "mem32", index: 5, size: 16 }]), [
      { index: 0, kind: "mem64", size: 0x4000n, prefetchable: true },
      { index: 2, kind: "io", size: 4n, prefetchable: false },
      { index: 5, kind: "mem32", size: 16n, prefetchable: false },
    ]);
    assert.equal(normalizeBars([{ kind: "mem64", size: 1n << 63n }])[0]!.size, 1n << 63n);
    assert.equal(normalizeBars([{ kind: "mem32", size: 1n << 31n }])[0]!.size, 1n << 31n);
    assert.deepEqual(normalizeBars(undefined), []);
  });

  it("reject what the specification does not allow, naming the BAR", () => {
    const bad = (bars: unknown, c: string, re: RegExp) => assert.throws(() => normalizeBars(bars), code(c, re));
    bad([{ kind: "io", size: 2 }], "InvalidSize", /bars\[0\]\.size must be a power of two from 0x4 to 0x100 for a io BAR, got 0x2/);
    bad([{ kind: "io", size: 512 }], "InvalidSize", /0x200/);
    bad([{ kind: "mem32", size: 8 }], "InvalidSize", /from 0x10/);
    bad([{ kind: "mem32", size: 0x3000 }], "InvalidSize", /0x3000/);
    bad([{ kind: "mem32", size: 1n << 32n }], "InvalidSize", /0x80000000/);
    bad([{ kind: "mem64", size: 0 }], "InvalidSize", /got 0x0/);
    bad([{ kind: "mem64", index: 5, size: 16 }], "InvalidArgument", /cannot start at BAR 5/);
    bad([{ kind: "mem64", size: 16 }, { kind: "io", index: 1, size: 4 }], "InvalidArgument", /register BAR 1 is already used by bars\[0\]/);
    bad([{ kind: "io", size: 4, prefetchable: true }], "InvalidArgument", /unknown field "prefetchable"/);
    bad([{ kind: "rom", size: 4 }], "InvalidArgument", /kind/);
    bad([{ kind: "io", size: 4, index: 6 }], "InvalidArgument", /index/);
    bad(Array.from({ length: 7 }, () => ({ kind: "io", size: 4 })), "InvalidArgument", /no register left/);
    bad({}, "InvalidArgument", /array/);
  });

  it("register masks at the size edges", () => {
    assert.equal(barLowMask(bar("io", 4n)), 0xfffc);
    assert.equal(barLowMask(bar("io", 256n)), 0xff00);
    assert.equal(barLowMask(bar("mem32", 16n)), 0xffff_fff0);
    assert.equal(barLowMask(bar("mem32", 1n << 31n)), 0x8000_0000);
    assert.equal(barLowMask(bar("mem64", 1n << 32n)), 0);
    assert.equal(barHighMask(bar("mem64", 1n << 32n)), 0xffff_ffff);
    assert.equal(barHighMask(bar("mem64", 1n << 33n)), 0xffff_fffe);
    assert.equal(barHighMask(bar("mem64", 1n << 63n)), 0x8000_0000);
    assert.equal(barHighMask(bar("mem64", 16n)), 0xffff_ffff);
    assert.equal(barHighMask(bar("mem32", 16n)), 0);
    // Sizing is recognised by all writable bits set in either half, never by a vacuous mask.
    assert.ok(barIsSizing(bar("mem64", 1n << 32n), 0, 0xffff_ffff));
    assert.ok(!barIsSizing(bar("mem64", 1n << 32n), 0xffff_ffff, 0));
    assert.ok(barIsSizing(bar("mem32", 0x1000n), 0xffff_f000, 0));
    assert.ok(!barIsSizing(bar("mem32", 0x1000n), 0xffff_e000, 0));
  });
});

function withBars(m: Machine, bars: TestPciDevice["bars"], name = "dev"): ReturnType<Machine["host"]["plug"]> {
  return m.host.plug(new TestPciDevice(name, 0x1af4, 0x1000, 0x020000, bars === undefined ? {} : { bars }));
}

describe("BAR placement", () => {
  it("sizing reads back the mask with the flags for every kind, and writing the base back restores it", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "io", size: 0x100 }, { kind: "mem32", size: 16, prefetchable: true }, { kind: "mem64", size: 1n << 33n, prefetchable: true }]);
    const g = new Guest(m.dm);
    const sized = g.sizeBars("ecam", 0, 1, 0);
    assert.deepEqual(sized.map((s) => [s.index, s.io, s.is64, s.prefetchable, s.size]), [[0, true, false, false, 0x100n], [1, false, false, true, 16n], [2, false, true, true, 1n << 33n]]);
    assert.deepEqual(sized.map((s) => s.base), fn.bars().map((b) => b.range.start));
    assert.equal(g.configRead("ecam", 0, 1, 0, 0x10), 0xc001, "I/O flag bit");
    assert.equal(g.configRead("ecam", 0, 1, 0, 0x14) & 0xf, 0x8, "32-bit prefetchable");
    assert.equal(g.configRead("ecam", 0, 1, 0, 0x18) & 0xf, 0xc, "64-bit prefetchable");
    // An 8 GiB BAR: the low half has no writable address bit, the high half reads ~1.
    g.configWrite("ecam", 0, 1, 0, 0x18, 4, 0xffff_ffff);
    g.configWrite("ecam", 0, 1, 0, 0x1c, 4, 0xffff_ffff);
    assert.deepEqual([g.configRead("ecam", 0, 1, 0, 0x18), g.configRead("ecam", 0, 1, 0, 0x1c)], [0xc, 0xffff_fffe]);
  });

  it("pools by kind: I/O from 0xc000, non-prefetchable below 4 GiB (64-bit ones too), prefetchable 64-bit high, naturally aligned", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "io", size: 0x80 }, { kind: "mem32", size: 0x10_0000 }, { kind: "mem64", size: 0x20_0000 }, { kind: "mem64", size: 0x40_0000, prefetchable: true }]);
    const [io, m32, m64, pref] = fn.bars();
    assert.equal(io!.range.start, 0xc000n);
    assert.equal(m32!.range.start, 0xc000_0000n);
    assert.equal(m64!.range.start, 0xc020_0000n, "aligned to its 2 MiB size, after the 1 MiB one");
    assert.equal(pref!.range.start, MMIO64_BASE);
    const owners = m.sys.holdings().filter((h) => "range" in h && h.owner.startsWith("dev 0000:00:01.0 BAR")).map((h) => h.owner.replace(/@\d+$/, ""));
    assert.deepEqual(owners.sort(), ["dev 0000:00:01.0 BAR 0", "dev 0000:00:01.0 BAR 1", "dev 0000:00:01.0 BAR 2", "dev 0000:00:01.0 BAR 4"]);
  });

  it("prefetchable 64-bit BARs fall back to 32-bit space when 64-bit space is full, never the reverse", () => {
    const layout = { ...PC_X86_64, mmio64: { base: MMIO64_BASE, size: 0x10_0000 } };
    const m = machine({}, layout);
    const a = withBars(m, [{ kind: "mem64", size: 0x10_0000, prefetchable: true }], "a");
    const b = withBars(m, [{ kind: "mem64", size: 0x10_0000, prefetchable: true }], "b");
    assert.equal(a.bars()[0]!.range.start, MMIO64_BASE);
    assert.equal(b.bars()[0]!.range.start, 0xc000_0000n, "fell back below 4 GiB");
    const small = { ...PC_X86_64, mmio32: { base: 0xb000_0000, size: 0x1010_0000 }, reserved: PC_X86_64.reserved!.filter((r) => r.owner === "pci-mmconfig" || r.pool !== "mmio32") };
    const n = machine({}, small);
    withBars(n, [{ kind: "mem32", size: 0x10_0000 }], "fills-32");
    const before = JSON.stringify(n.sys.holdings());
    assert.throws(() => withBars(n, [{ kind: "mem64", size: 0x10_0000 }], "np"), code("ResourceNotAvailable", /^cannot plug np 0000:00:02\.0 BAR 0 \(mem 64bit, 0x100000 bytes\): no free space/));
    assert.equal(JSON.stringify(n.sys.holdings()), before, "nothing held after the failed plug");
    assert.equal(n.host.slots.holderOf("00:02.0"), undefined);
    assert.equal(n.host.size, 1);
  });

  it("decode bits unmap and map the BARs of their kind, keeping the allocations", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "io", size: 0x20 }, { kind: "mem32", size: 0x1000 }]);
    const g = new Guest(m.dm);
    const [io, mem] = fn.bars();
    const held = JSON.stringify(m.sys.toJSON());
    assert.deepEqual(g.read("mem", mem!.range.start, 1), [0xff], "decode is off after plug");
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x3);
    assert.deepEqual(g.read("mem", mem!.range.start, 1), [0x41]);
    assert.deepEqual(g.read("io", io!.range.start, 1), [0x40]);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x1);
    assert.deepEqual(g.read("mem", mem!.range.start, 1), [0xff]);
    assert.deepEqual(g.read("io", io!.range.start, 1), [0x40], "I/O stays routed");
    assert.ok(!g.write("mem", mem!.range.start, [1]) || fn.device !== undefined);
    assert.equal(JSON.stringify(m.sys.toJSON()), held, "the allocations stay");
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    assert.deepEqual(g.read("mem", mem!.range.start, 1), [0x41]);
    assert.deepEqual(g.read("io", io!.range.start, 1), [0xff]);
    assert.equal(m.conflicts.length, 0);
    m.host.checkConsistency();
  });

  it("sizing with decoding on unroutes the BAR without a conflict; restoring routes it again", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "mem64", size: 0x4000 }]);
    const g = new Guest(m.dm);
    g.configWrite("ecam", 0, 1, 0, 4, 2, 0x2);
    const base = fn.bars()[0]!.range.start;
    g.configWrite("ecam", 0, 1, 0, 0x10, 4, 0xffff_ffff);
    assert.ok(!fn.bars()[0]!.routed);
    assert.equal(g.configRead("ecam", 0, 1, 0, 0x10), 0xffff_c004);
    g.configWrite("ecam", 0, 1, 0, 0x10, 4, Number(base));
    g.configWrite("ecam", 0, 1, 0, 0x14, 4, 0xffff_ffff);
    assert.ok(!fn.bars()[0]!.routed, "the high half being sized");
    g.configWrite("ecam", 0, 1, 0, 0x14, 4, 0);
    assert.ok(fn.bars()[0]!.routed);
    assert.equal(fn.bars()[0]!.range.start, base, "never moved");
    assert.equal(m.conflicts.length, 0);
  });

  it("moving to the current base does nothing; a move outside every pool is only mapped; unaligned bits cannot be written", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "mem32", size: 0x1000 }]);
    const g = new Guest(m.dm);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    const id = fn.bars()[0]!.instanceId;
    g.setBar("cf8", 0, 1, 0, 0, fn.bars()[0]!.range.start, false);
    assert.equal(fn.bars()[0]!.instanceId, id);
    g.configWrite("cf8", 0, 1, 0, 0x10, 4, 0x1000_0fff); // in RAM, below every MMIO pool; low bits dropped
    const b = fn.bars()[0]!;
    assert.equal(b.range.start, 0x1000_0000n);
    assert.ok(b.routed);
    assert.equal(m.dm.resourcesOf(b.instanceId).mmio[0]!.allocated, false, "outside every pool: only mapped");
    assert.deepEqual(g.read("mem", 0x1000_0010n, 1), [0x40]);
    m.host.checkConsistency();
  });

  it("64-bit BARs go anywhere the guest puts them, up to the top of the space; the all-ones pattern is never mapped", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "mem64", size: 0x4000 }]);
    const g = new Guest(m.dm);
    g.configWrite("ecam", 0, 1, 0, 4, 2, 0x2);
    for (const base of [1n << 63n, 0xffff_fffe_ffff_8000n, 0x100_0000_0000n]) {
      g.setBar("ecam", 0, 1, 0, 0, base, true);
      const b = fn.bars()[0]!;
      assert.ok(b.routed, `at ${base.toString(16)}`);
      assert.equal(b.range.start, base);
      assert.deepEqual(g.read("mem", base + 0x3fffn, 1), [0x40]);
    }
    // 0xffff_ffff_ffff_c000 is what sizing leaves in both halves: unrouted, no move, no report.
    g.setBar("ecam", 0, 1, 0, 0, 0xffff_ffff_ffff_c000n, true);
    assert.ok(!fn.bars()[0]!.routed);
    assert.equal(fn.bars()[0]!.range.start, 0x100_0000_0000n);
    assert.equal(m.conflicts.length, 0);
    // Just below 4 GiB is the BIOS's: refused, naming it.
    g.setBar("ecam", 0, 1, 0, 0, 0xffff_8000n, true);
    assert.equal(m.conflicts.length, 1, "while the high half still reads all ones the BAR counts as being sized");
    assert.match(m.conflicts[0]!.message, /\[mem 0xffff8000-0xffffbfff 64bit\]: can't map: .*conflicts with bios \[mem 0xfffc0000-0xffffffff\]/);
    m.host.checkConsistency();
  });

  it("an I/O BAR moves only inside the I/O window", () => {
    const m = machine();
    const fn = withBars(m, [{ kind: "io", size: 0x20 }]);
    const g = new Guest(m.dm);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x1);
    g.configWrite("cf8", 0, 1, 0, 0x10, 4, 0xd000);
    assert.equal(fn.bars()[0]!.range.start, 0xd000n);
    g.configWrite("cf8", 0, 1, 0, 0x10, 4, 0x1000);
    assert.equal(m.conflicts.length, 1);
    assert.equal(m.conflicts[0]!.error.code, "OutOfRange");
    assert.match(m.conflicts[0]!.message, /^0000:00:01\.0: BAR 0 \[io 0x1000-0x101f\]: can't map: /);
    const wide = machine({ ioWindow: { min: 0x1000, max: 0xffff } }, { ...PC_X86_64, pio: { base: 0x1000, size: 0xf000 } });
    assert.equal(withBars(wide, [{ kind: "io", size: 0x20 }]).bars()[0]!.range.start, 0x1000n);
    assert.throws(() => machine({ ioWindow: { min: 0, max: 0x1_0000 } }), code("InvalidArgument"));
  });

  it("swapping two BARs with decoding off and enabling them ends with both routed (stale allocations are re-placed)", () => {
    const m = machine();
    const a = withBars(m, [{ kind: "mem32", size: 0x1000 }], "a");
    const b = withBars(m, [{ kind: "mem32", size: 0x1000 }], "b");
    const g = new Guest(m.dm);
    const [x, y] = [a.bars()[0]!.range.start, b.bars()[0]!.range.start];
    g.setBar("cf8", 0, 1, 0, 0, y, false);
    g.setBar("cf8", 0, 2, 0, 0, x, false);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    g.configWrite("cf8", 0, 2, 0, 4, 2, 0x2);
    assert.equal(m.conflicts.length, 0);
    assert.deepEqual([a.bars()[0]!.range.start, b.bars()[0]!.range.start], [y, x]);
    assert.ok(a.bars()[0]!.routed && b.bars()[0]!.routed);
    assert.equal(m.host.barEvictions, 1);
    m.host.checkConsistency();
  });

  it("a BAR of an enabled device is not evicted: the newcomer waits", () => {
    const m = machine();
    const a = withBars(m, [{ kind: "mem32", size: 0x1000 }], "a");
    const b = withBars(m, [{ kind: "mem32", size: 0x1000 }], "b");
    const g = new Guest(m.dm);
    g.configWrite("cf8", 0, 1, 0, 4, 2, 0x2);
    g.setBar("cf8", 0, 2, 0, 0, a.bars()[0]!.range.start, false);
    g.configWrite("cf8", 0, 2, 0, 4, 2, 0x2);
    assert.equal(m.conflicts.length, 1);
    assert.ok(a.bars()[0]!.routed && !b.bars()[0]!.routed);
    // The guest moves a away: b maps at once.
    g.setBar("cf8", 0, 1, 0, 0, 0xc100_0000n, false);
    assert.ok(a.bars()[0]!.routed && b.bars()[0]!.routed);
    assert.equal(b.bars()[0]!.range.start, 0xc000_0000n);
    assert.deepEqual(m.host.pendingBars(), []);
  });

  it("whatever the guest programs, routed BARs never overlap, every routed BAR is where its register says, and a clean layout ends fully routed", () => {
    const specs: TestPciDevice["bars"][] = [
      [{ kind: "mem32", size: 0x1000 }, { kind: "io", size: 0x20 }],
      [{ kind: "mem32", size: 0x2000 }, { kind: "mem64", size: 0x4000, prefetchable: true }],
      [{ kind: "mem64", size: 0x1000 }],
      [{ kind: "io", size: 0x40 }, { kind: "mem32", size: 0x1000 }],
    ];
    const memBases = [0xc000_0000n, 0xc000_1000n, 0xc000_2000n, 0xc000_4000n, 0xfec0_0000n, 0xb000_0000n, MMIO64_BASE, 0x100_0000_0000n];
    const ioBases = [0xc000n, 0xc020n, 0xc040n, 0xc080n, 0x1000n];
    const action = fc.oneof(
      fc.record({ t: fc.constant("bar" as const), dev: fc.integer({ min: 1, max: 4 }), which: fc.nat(), base: fc.nat(), half: fc.boolean() }),
      fc.record({ t: fc.constant("cmd" as const), dev: fc.integer({ min: 1, max: 4 }), value: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ t: fc.constant("size" as const), dev: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ t: fc.constant("replug" as const), dev: fc.integer({ min: 1, max: 4 }) }),
    );
    fc.assert(
      fc.property(fc.array(action, { maxLength: 40 }), (actions) => {
        const m = machine();
        const g = new Guest(m.dm);
        specs.forEach((s, i) => withBars(m, s, `d${i + 1}`));
        const check = () => {
          m.host.checkConsistency();
          const routed = m.host.functions().flatMap((f) => f.bars().filter((b) => b.routed).map((b) => ({ io: b.kind === "io", r: b.range, base: b.base })));
          for (const x of routed) assert.equal(x.r.start, x.base);
          for (let i = 0; i < routed.length; i++) for (let j = i + 1; j < routed.length; j++) assert.ok(routed[i]!.io !== routed[j]!.io || !routed[i]!.r.overlaps(routed[j]!.r));
        };
        for (const a of actions) {
          if (a.t === "bar") {
            const fn = m.host.function({ bus: 0, device: a.dev, function: 0 })!;
            const b = fn.bars()[a.which % fn.bars().length]!;
            const list = b.kind === "io" ? ioBases : memBases;
            const base = list[a.base % list.length]!;
            const reg = 0x10 + 4 * b.index;
            if (b.kind === "mem64" && a.half) g.configWrite("ecam", 0, a.dev, 0, reg + 4, 4, Number(base >> 32n));
            else g.configWrite("ecam", 0, a.dev, 0, reg, 4, Number(base & 0xffff_ffffn));
          } else if (a.t === "cmd") {
            g.configWrite("cf8", 0, a.dev, 0, 4, 2, a.value);
          } else if (a.t === "size") {
            g.sizeBars("cf8", 0, a.dev, 0);
          } else {
            m.host.unplug({ bus: 0, device: a.dev, function: 0 });
            m.host.plug(new TestPciDevice(`d${a.dev}`, 0x1af4, 0x1000, 0x020000, { bars: specs[a.dev - 1]! }), { address: { bus: 0, device: a.dev, function: 0 } });
          }
          check();
        }
        // Linux's sequence with a clean layout: decode off, program, enable.
        const conflicts = m.conflicts.length;
        let mem = 0xc100_0000n;
        let io = 0xd000n;
        for (let dev = 1; dev <= 4; dev++) g.configWrite("cf8", 0, dev, 0, 4, 2, 0);
        for (let dev = 1; dev <= 4; dev++) {
          for (const b of m.host.function({ bus: 0, device: dev, function: 0 })!.bars()) {
            const base = b.kind === "io" ? io : mem;
            if (b.kind === "io") io += 0x100n;
            else mem += 0x10_0000n;
            g.setBar("cf8", 0, dev, 0, b.index, base, b.kind === "mem64");
          }
        }
        for (let dev = 1; dev <= 4; dev++) g.configWrite("cf8", 0, dev, 0, 4, 2, 0x3);
        check();
        assert.equal(m.conflicts.length, conflicts, m.conflicts.slice(conflicts).map((c) => c.message).join("\n"));
        for (const f of m.host.functions()) for (const b of f.bars()) assert.ok(b.routed, `${f.name} BAR ${b.index}`);
      }),
      { numRuns: 80 },
    );
  });
});
