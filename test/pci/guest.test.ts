/**
 * A guest plays firmware and Linux against a q35-like machine: it enumerates through mechanism
 * #1 and through ECAM, sizes every BAR, assigns its own bases (a permutation of the VMM's),
 * enables decoding and MSI-X, drives MMIO and I/O into the BARs, moves a BAR live, and survives
 * an unplug and a replug. A second run writes a colliding BAR.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RangeInclusive } from "../../src/core/range.js";
import { Guest, machine, MMIO64_BASE, MMIO64_END, TestPciDevice, type ConfigMode, type Machine } from "./helpers.js";

const MSIX_ADDRESS = 0xfee0_0000;

function q35(): { m: Machine; g: Guest; blk: TestPciDevice; net: TestPciDevice; nvme: TestPciDevice } {
  const m = machine();
  const g = new Guest(m.dm);
  m.host.plug(new TestPciDevice("q35-host-bridge", 0x8086, 0x29c0, 0x060000), { address: "00:00.0" });
  m.host.plug(new TestPciDevice("ich9-lpc", 0x8086, 0x2918, 0x060100), { address: "00:1f.0" });
  const blk = new TestPciDevice("virtio-blk", 0x1af4, 0x1042, 0x010000, {
    interruptPin: 1,
    bars: [
      { kind: "mem32", index: 1, size: 0x1000 },
      { kind: "mem64", index: 4, size: 0x4000, prefetchable: true },
    ],
    msix: { vectors: 2, tableBar: 1, tableOffset: 0, pbaOffset: 0x800 },
  }, 0x10);
  const net = new TestPciDevice("virtio-net", 0x1af4, 0x1041, 0x020000, {
    interruptPin: 1,
    bars: [
      { kind: "io", index: 0, size: 0x20 },
      { kind: "mem32", index: 1, size: 0x1000 },
      { kind: "mem64", index: 4, size: 0x4000, prefetchable: true },
    ],
    msix: { vectors: 3, tableBar: 1 },
  }, 0x20);
  const nvme = new TestPciDevice("nvme", 0x1b36, 0x0010, 0x010802, {
    interruptPin: 1,
    bars: [{ kind: "mem64", index: 0, size: 0x10000 }],
    msix: { vectors: 2048, tableBar: 0, tableOffset: 0x2000, pbaOffset: 0xa000 },
  }, 0x30);
  for (const d of [blk, net, nvme]) m.host.plug(d);
  m.host.checkConsistency();
  return { m, g, blk, net, nvme };
}

interface Found {
  bus: number;
  dev: number;
  fn: number;
  bars: { index: number; io: boolean; is64: boolean; prefetchable: boolean; size: bigint; base: bigint }[];
}

/** Every routed BAR range of the host, pairwise disjoint per space. */
function assertNoRoutedOverlap(m: Machine): void {
  const routed = m.host.functions().flatMap((f) => f.bars().filter((b) => b.routed).map((b) => ({ io: b.kind === "io", r: b.range, who: `${f.name} BAR ${b.index}` })));
  for (let i = 0; i < routed.length; i++) {
    for (let j = i + 1; j < routed.length; j++) {
      const a = routed[i]!;
      const b = routed[j]!;
      assert.ok(a.io !== b.io || !a.r.overlaps(b.r), `${a.who} ${a.r.toString()} overlaps ${b.who} ${b.r.toString()}`);
    }
  }
}

/** Assigns bases as SeaBIOS does (largest first, from the bottom of each window), decode off. */
function assignBases(g: Guest, mode: ConfigMode, found: Found[], order: "forward" | "reverse"): Map<string, bigint> {
  const bases = new Map<string, bigint>();
  const list = found.flatMap((f) => f.bars.map((b) => ({ f, b })));
  if (order === "reverse") list.reverse();
  list.sort((x, y) => (x.b.size === y.b.size ? 0 : x.b.size > y.b.size ? -1 : 1));
  let io = 0xd000n;
  let mem32 = 0xc000_0000n;
  let mem64 = MMIO64_BASE + (1n << 30n); // inside the preset's 64-bit window, 1 GiB in
  for (const { f, b } of list) {
    const align = (x: bigint) => (x + b.size - 1n) & ~(b.size - 1n);
    let base: bigint;
    if (b.io) {
      base = align(io);
      io = base + b.size;
    } else if (b.prefetchable && b.is64) {
      base = align(mem64);
      mem64 = base + b.size;
    } else {
      base = align(mem32);
      mem32 = base + b.size;
    }
    g.setBar(mode, f.bus, f.dev, f.fn, b.index, base, b.is64);
    bases.set(`${f.dev}.${f.fn}/${b.index}`, base);
  }
  return bases;
}

function enableMsix(g: Guest, mode: ConfigMode, m: Machine, dev: number, vectors: number[]): void {
  const fn = m.host.function({ bus: 0, device: dev, function: 0 })!;
  const cap = fn.msix!;
  // Walk the capability list as a driver does.
  let p = g.configRead(mode, 0, dev, 0, 0x34, 1);
  while (p !== 0 && g.configRead(mode, 0, dev, 0, p, 1) !== 0x11) p = g.configRead(mode, 0, dev, 0, p + 1, 1);
  assert.equal(p, cap.offset);
  const control = g.configRead(mode, 0, dev, 0, p + 2, 2);
  assert.equal((control & 0x7ff) + 1, cap.vectors);
  const tableReg = g.configRead(mode, 0, dev, 0, p + 4);
  const bar = fn.bars().find((b) => b.index === (tableReg & 7))!;
  const table = bar.range.start + BigInt(tableReg & ~7);
  // Enable with the function masked, program, unmask vectors, unmask the function (Linux's order).
  g.configWrite(mode, 0, dev, 0, p + 2, 2, 0xc000);
  for (const v of vectors) {
    const e = table + BigInt(16 * v);
    g.write("mem", e, [0x00, 0x00, 0xe0, 0xfe]);
    g.write("mem", e + 4n, [0, 0, 0, 0]);
    g.write("mem", e + 8n, [v & 0xff, v >> 8, 0, 0]);
    g.write("mem", e + 12n, [0, 0, 0, 0]);
  }
  g.configWrite(mode, 0, dev, 0, p + 2, 2, 0x8000);
}

describe("a guest on a q35-like machine", () => {
  for (const mode of ["cf8", "ecam"] as const) {
    it(`enumerates, sizes, assigns, enables and drives every BAR (configuration through ${mode})`, () => {
      const { m, g, blk, net, nvme } = q35();
      // Enumeration: both mechanisms see the same functions; absent ones read all ones.
      const cf8 = g.enumerate("cf8");
      const ecam = g.enumerate("ecam");
      assert.deepEqual(ecam, cf8);
      assert.deepEqual(cf8.map((f) => [f.dev, f.vendor.toString(16), f.device.toString(16)]), [
        [0, "8086", "29c0"],
        [1, "1af4", "1042"],
        [2, "1af4", "1041"],
        [3, "1b36", "10"],
        [0x1f, "8086", "2918"],
      ]);
      assert.equal(g.configRead(mode, 0, 5, 0, 0), 0xffff_ffff);
      assert.equal(g.configRead(mode, 0, 1, 1, 0, 2), 0xffff);
      // The interrupt line register holds the q35 PIRQ of each slot's INTA: E-H rotate from slot 0.
      assert.deepEqual([1, 2, 3].map((d) => g.configRead(mode, 0, d, 0, 0x3c, 1)), [21, 22, 23]);

      // Sizing: every BAR reads back its declared size and flags, and its VMM-assigned base.
      const found: Found[] = cf8.map((f) => ({ bus: f.bus, dev: f.dev, fn: f.fn, bars: g.sizeBars(mode, f.bus, f.dev, f.fn) }));
      const byDev = (d: number) => found.find((f) => f.dev === d)!.bars;
      assert.deepEqual(byDev(0), []);
      assert.deepEqual(byDev(1).map((b) => [b.index, b.io, b.is64, b.prefetchable, b.size]), [[1, false, false, false, 0x1000n], [4, false, true, true, 0x4000n]]);
      assert.deepEqual(byDev(2).map((b) => [b.index, b.io, b.is64, b.prefetchable, b.size]), [[0, true, false, false, 0x20n], [1, false, false, false, 0x1000n], [4, false, true, true, 0x4000n]]);
      assert.deepEqual(byDev(3).map((b) => [b.index, b.io, b.is64, b.prefetchable, b.size]), [[0, false, true, false, 0x10000n]]);
      for (const f of found) {
        const fn = m.host.function({ bus: 0, device: f.dev, function: 0 })!;
        assert.deepEqual(f.bars.map((b) => b.base), fn.bars().map((b) => b.range.start), "the register holds the VMM's base");
      }
      // Pools: I/O from 0xc000, non-prefetchable below 4 GiB, prefetchable 64-bit from the 64-bit pool.
      for (const f of found) {
        for (const b of f.bars) {
          assert.equal(b.base % b.size, 0n, "naturally aligned");
          if (b.io) assert.ok(b.base >= 0xc000n && b.base + b.size - 1n <= 0xffffn);
          else if (b.prefetchable) assert.ok(b.base >= MMIO64_BASE && b.base + b.size - 1n <= MMIO64_END);
          else assert.ok(b.base >= 0xc000_0000n && b.base + b.size <= 0xfec0_0000n);
        }
      }
      m.host.checkConsistency();

      // Assignment in another order than the VMM's (a permutation of its places), decode off.
      const bases = assignBases(g, mode, found, "reverse");
      for (const f of found) {
        const fn = m.host.function({ bus: 0, device: f.dev, function: 0 })!;
        assert.ok(fn.bars().every((b) => !b.routed), "nothing is routed before decoding is enabled");
      }
      for (const f of found) g.configWrite(mode, f.bus, f.dev, f.fn, 4, 2, 0x7);
      assert.equal(m.conflicts.length, 0, m.conflicts.map((c) => c.message).join("\n"));
      for (const f of found) {
        const fn = m.host.function({ bus: 0, device: f.dev, function: 0 })!;
        for (const b of fn.bars()) {
          assert.ok(b.routed, `${fn.name} BAR ${b.index} is routed`);
          assert.equal(b.range.start, bases.get(`${f.dev}.0/${b.index}`), `${fn.name} BAR ${b.index} sits where the guest put it`);
        }
      }
      assertNoRoutedOverlap(m);
      m.host.checkConsistency();

      // MSI-X: blk both vectors, net all three, the NVMe-like device 9 of its 2048.
      const nvmeVectors = [0, 1, 2, 3, 4, 5, 6, 7, 2047];
      enableMsix(g, mode, m, 1, [0, 1]);
      enableMsix(g, mode, m, 2, [0, 1, 2]);
      enableMsix(g, mode, m, 3, nvmeVectors);
      assert.equal(m.host.function("00:03.0")!.msix!.heldVectors, 9);
      assert.equal(m.host.heldVectors, 14);
      const msi = m.sys.holdings().filter((h) => "pool" in h && h.pool === "msi" && !h.reserved);
      assert.equal(msi.length, 14);
      assert.equal(msi.filter((h) => h.owner === "nvme 0000:00:03.0 MSI-X").length, 9);
      m.host.checkConsistency();

      // MMIO and I/O into every BAR reach the right function, the right BAR and offset.
      for (const [dev, d] of [[1, blk], [2, net], [3, nvme]] as const) {
        const fn = m.host.function({ bus: 0, device: dev, function: 0 })!;
        for (const b of fn.bars()) {
          const s = fn.msix!.spec;
          const offset = b.index === s.tableBar ? BigInt(s.pbaOffset) + 0x100n + 8n : 0x10n;
          const space = b.kind === "io" ? "io" : "mem";
          const o = b.kind === "io" ? 0x10n : offset;
          if (o + 4n > b.size) continue;
          d.accesses.length = 0;
          assert.deepEqual(g.read(space, b.range.start + o, 4), [d.fill + b.index, d.fill + b.index, d.fill + b.index, d.fill + b.index]);
          assert.ok(g.write(space, b.range.start + o, [1, 2]));
          assert.deepEqual(d.accesses, [
            { op: "read", bar: b.index, offset: o, data: [d.fill + b.index, d.fill + b.index, d.fill + b.index, d.fill + b.index] },
            { op: "write", bar: b.index, offset: o, data: [1, 2] },
          ]);
        }
      }
      assert.equal(m.dm.mmioBus.unmappedReads + m.dm.pioBus.unmappedReads, 0);
      // The MSI-X table reads back through the BAR; the device never sees table accesses.
      const nvmeFn = m.host.function("00:03.0")!;
      const nvmeTable = nvmeFn.bars()[0]!.range.start + 0x2000n;
      nvme.accesses.length = 0;
      assert.deepEqual(g.read("mem", nvmeTable + 16n * 2047n, 16), [0x00, 0x00, 0xe0, 0xfe, 0, 0, 0, 0, 0xff, 0x07, 0, 0, 0, 0, 0, 0]);
      assert.deepEqual(g.read("mem", nvmeTable + 16n * 9n + 12n, 4), [1, 0, 0, 0], "an untouched vector stays masked");
      assert.deepEqual(nvme.accesses, []);
      // Messages carry the programmed address and data and the vector's GSI.
      assert.ok(nvmeFn.signalMsi(2047));
      const msg = m.messages.at(-1)!;
      assert.deepEqual([msg.address, msg.data, msg.vector, msg.gsi], [BigInt(MSIX_ADDRESS), 2047, 2047, nvmeFn.msix!.gsiOf(2047)]);
      assert.equal(nvmeFn.signalMsi(9), false, "a masked vector's message is left pending");
      assert.ok(nvmeFn.msix!.isPending(9));

      // Move a BAR while the device is live: the old place is gone, the new one answers.
      const netFn = m.host.function("00:02.0")!;
      const old = netFn.bars().find((b) => b.index === 1)!.range;
      const moved = 0xc800_0000n;
      g.setBar(mode, 0, 2, 0, 1, moved, false);
      const now = netFn.bars().find((b) => b.index === 1)!;
      assert.ok(now.routed);
      assert.equal(now.range.start, moved);
      assert.deepEqual(g.read("mem", old.start + 0x10n, 1), [0xff]);
      assert.equal(m.dm.mmioBus.lookup(old.start), undefined);
      net.accesses.length = 0;
      assert.deepEqual(g.read("mem", moved + 0x810n, 1), [0x21]);
      assert.equal(net.accesses[0]!.offset, 0x810n);
      // The MSI-X table moved with its BAR.
      assert.deepEqual(g.read("mem", moved + 12n, 4), [0, 0, 0, 0], "net vector 0 unmasked, at the new place");
      assert.ok(m.sys.holdings().some((h) => "range" in h && h.range.start === moved && h.owner.startsWith("virtio-net 0000:00:02.0 BAR 1@")));
      m.host.checkConsistency();

      // Unplug a function: its slot, BARs and GSIs go back; replug another in its slot.
      const blkFn = m.host.function("00:01.0")!;
      const blkRanges = blkFn.bars().map((b) => b.range);
      m.host.unplug("00:01.0");
      assert.equal(g.configRead(mode, 0, 1, 0, 0), 0xffff_ffff);
      assert.equal(m.host.heldVectors, 12);
      assert.ok(!m.sys.holdings().some((h) => h.owner.startsWith("virtio-blk")));
      for (const r of blkRanges) assert.equal(m.dm.mmioBus.overlapping(r).length, 0);
      const scsi = new TestPciDevice("virtio-scsi", 0x1af4, 0x1048, 0x010000, { interruptPin: 1, bars: [{ kind: "mem32", size: 0x2000 }] }, 0x50);
      const scsiFn = m.host.plug(scsi);
      assert.equal(scsiFn.bdf, "0000:00:01.0", "the lowest free slot is the one just freed");
      assert.deepEqual(g.enumerate(mode).map((f) => f.dev), [0, 1, 2, 3, 0x1f]);
      assert.equal(g.configRead(mode, 0, 1, 0, 0), 0x1048_1af4);
      g.configWrite(mode, 0, 1, 0, 4, 2, 0x2);
      assert.deepEqual(g.read("mem", scsiFn.bars()[0]!.range.start, 2), [0x50, 0x50]);
      assertNoRoutedOverlap(m);
      m.host.checkConsistency();
    });
  }

  it("a guest-written BAR that collides stays in the register, unmapped and reported, and maps once the collision is gone", () => {
    const { m, g } = q35();
    for (const dev of [1, 2, 3]) g.configWrite("cf8", 0, dev, 0, 4, 2, 0x7);
    const blkBar = m.host.function("00:01.0")!.bars().find((b) => b.index === 1)!;
    const netFn = m.host.function("00:02.0")!;
    const before = netFn.bars().find((b) => b.index === 1)!.range;
    // virtio-net's BAR 1 onto virtio-blk's BAR 1, with decoding on.
    g.setBar("cf8", 0, 2, 0, 1, blkBar.range.start, false);
    assert.equal(m.conflicts.length, 1);
    const c = m.conflicts[0]!;
    assert.equal(c.error.code, "Overlap");
    assert.match(c.message, /^0000:00:02\.0: BAR 1 \[mem 0xc0000000-0xc0000fff\]: can't map: .*conflicts with virtio-blk 0000:00:01\.0 BAR 1@\d+ \[mem 0xc0000000-0xc0000fff\]/);
    assert.equal(m.host.barConflicts, 1);
    const net1 = netFn.bars().find((b) => b.index === 1)!;
    assert.equal(net1.base, blkBar.range.start, "the register keeps what the guest wrote");
    assert.equal(net1.pending, blkBar.range.start);
    assert.ok(!net1.routed);
    assert.ok(net1.range.equals(before), "the allocation stays where it was");
    assert.equal((g.configRead("cf8", 0, 2, 0, 0x14) & ~0xf) >>> 0, Number(blkBar.range.start));
    // Nothing overlaps: blk still answers at its place, net answers nowhere.
    assert.deepEqual(g.read("mem", blkBar.range.start + 0x900n, 1), [0x11]);
    assert.deepEqual(g.read("mem", before.start + 0x900n, 1), [0xff]);
    assertNoRoutedOverlap(m);
    m.host.checkConsistency();
    // Writing the same value again is not a new conflict.
    g.setBar("cf8", 0, 2, 0, 1, blkBar.range.start, false);
    assert.equal(m.conflicts.length, 1);
    // A guest cannot put a BAR on the IOAPIC (a reservation), nor on MMCONFIG.
    g.setBar("cf8", 0, 2, 0, 4, 0xfec0_0000n, true);
    g.setBar("cf8", 0, 1, 0, 1, 0xb000_0000n, false);
    // (The low half alone moved BAR 4 inside the 64-bit pool; the high half then hit the IOAPIC.)
    assert.equal(m.conflicts.length, 3, m.conflicts.map((x) => x.message).join("\n"));
    assert.match(m.conflicts[1]!.message, /^0000:00:02\.0: BAR 4 \[mem 0xfec00000-0xfec03fff 64bit pref\]: can't map: .*conflicts with ioapic \[mem 0xfec00000-0xfec00fff\]$/);
    assert.match(m.conflicts[2]!.message, /conflicts with pci-ecam@\d+ \[mem 0xb0000000-0xbfffffff\]$/);
    assert.ok(!m.dm.mmioBus.overlapping(new RangeInclusive(0xfec0_0000n, 0xfec0_0fffn)).length);
    assert.ok(!m.dm.mmioBus.overlapping(new RangeInclusive(0xb000_0000n, 0xb000_0fffn)).some((x) => x.owner.includes("BAR")));
    // The collision goes away (blk is unplugged): net's BAR 1 maps at the base the guest wrote.
    m.host.unplug("00:01.0");
    const after = netFn.bars().find((b) => b.index === 1)!;
    assert.ok(after.routed);
    assert.equal(after.pending, undefined);
    assert.equal(after.range.start, blkBar.range.start);
    assert.deepEqual(g.read("mem", blkBar.range.start + 0x900n, 1), [0x21]);
    assertNoRoutedOverlap(m);
    m.host.checkConsistency();
  });
});
