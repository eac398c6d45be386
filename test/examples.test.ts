/**
 * Runs the compiled examples and checks what they print against the facts they claim: ranges
 * inside their pools and disjoint, IRQs from the right pools, and "everything given back".
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

function run(name: string): string[] {
  const file = fileURLToPath(new URL(`../examples/${name}.js`, import.meta.url));
  const out = execFileSync(process.execPath, [file], { encoding: "utf8", timeout: 20_000 });
  return out.trimEnd().split("\n");
}

/** The one line matching `re`, with its groups. */
function line(lines: readonly string[], re: RegExp): RegExpMatchArray {
  const hits = lines.map((l) => l.match(re)).filter((m): m is RegExpMatchArray => m !== null);
  assert.equal(hits.length, 1, `expected one line matching ${re}, got ${hits.length}:\n${lines.join("\n")}`);
  return hits[0]!;
}

type Span = { kind: "io" | "mem"; start: bigint; end: bigint };

/** Every `[io a-b]` / `[mem a-b]` in `text`. */
function spans(text: string): Span[] {
  return [...text.matchAll(/\[(io|mem) (0x[0-9a-f]+)-(0x[0-9a-f]+)\]/g)].map((m) => ({ kind: m[1] as "io" | "mem", start: BigInt(m[2]!), end: BigInt(m[3]!) }));
}

function assertDisjoint(list: readonly Span[]): void {
  for (let i = 0; i < list.length; i++) {
    for (let j = i + 1; j < list.length; j++) {
      const a = list[i]!;
      const b = list[j]!;
      assert.ok(a.kind !== b.kind || a.end < b.start || b.end < a.start, `[${a.kind} ${a.start}-${a.end}] overlaps [${b.kind} ${b.start}-${b.end}]`);
    }
  }
}

const inside = (s: Span, lo: bigint, hi: bigint) => s.start <= s.end && s.start >= lo && s.end <= hi;

describe("examples", () => {
  it("01-lightweight-vmm allocates an id and an IRQ itself and dispatches port accesses", () => {
    const out = run("01-lightweight-vmm");
    const id = Number(line(out, /^instance id: (\d+)$/)[1]);
    const irq = Number(line(out, /^irq: (\d+)$/)[1]);
    assert.ok(irq >= 5 && irq <= 23);
    const reg = line(out, /^registered pci-config at (\[io \S+\]) \(instance (\d+), irq (\d+)\)$/);
    assert.equal(reg[1], "[io 0xcf8-0xcff]");
    assert.deepEqual([Number(reg[2]), Number(reg[3])], [id, irq]);
    line(out, /^write 0x80000000 to \[io 0xcf8\]: handled true$/);
    // The value read back is the host bridge's vendor (0x8086) and device (0x29c0) id.
    line(out, /^read \[io 0xcfc\]: 0x29c08086 handled true$/);
    line(out, /^read \[io 0x80\]: 0xff handled false$/);
    line(out, /^unregistered; ids given back: true$/);
  });

  it("02-full-vmm allocates through a DefaultSystemAllocator and gets everything back on unplug", () => {
    const out = run("02-full-vmm");
    line(out, /^layout: pc-x86_64$/);
    const devices = out.filter((l) => l.startsWith("device "));
    assert.equal(devices.length, 3);
    const all: Span[] = [];
    const irqs: number[] = [];
    const gsis: number[] = [];
    for (const d of devices) {
      all.push(...spans(d));
      irqs.push(...[...d.matchAll(/\[irq (\d+)\]/g)].map((m) => Number(m[1])));
      const msi = d.match(/ msi ([\d,]+)/);
      if (msi !== null) gsis.push(...msi[1]!.split(",").map(Number));
    }
    assertDisjoint(all);
    // Legacy IRQs from 5..15 but not the PC's reserved ISA lines (16..23 are PIRQ A-H, derived for
    // PCI INTx, never allocated); GSIs from 24..4095; all distinct.
    assert.equal(new Set(irqs).size, irqs.length);
    assert.ok(irqs.every((q) => q >= 5 && q <= 15 && ![7, 8, 9, 12].includes(q)));
    assert.equal(new Set(gsis).size, 4);
    assert.ok(gsis.every((g) => g >= 24 && g <= 4095));
    for (const s of all) {
      if (s.kind === "io") assert.ok(inside(s, 0xc000n, 0xffffn), "ports come from SeaBIOS's I/O window");
      // With the default 128 MiB of RAM the 64-bit window starts at 4 GiB and is 32 GiB long.
      else assert.ok(inside(s, 0xc000_0000n, 0xfebf_ffffn) || inside(s, 4n << 30n, (36n << 30n) - 1n), "MMIO in the PCI hole or the 64-bit pool");
    }
    const nvme = line(out, /^device (nvme@\d+): (.*)$/);
    const bar = spans(nvme[2]!).find((s) => s.kind === "mem")!;
    assert.ok(bar.start >= 4n << 30n && (bar.start & 0x3fffn) === 0n && bar.end - bar.start === 0x3fffn, "the 64-bit BAR is aligned and in the 64-bit pool");
    const resources = spans(nvme[2]!).length + (nvme[2]!.match(/msi ([\d,]+)/)?.[1]!.split(",").length ?? 0);
    const holds = out.filter((l) => l.startsWith(`allocator holds for ${nvme[1]}:`)).map((l) => Number(l.match(/: (\d+) resources$/)![1]));
    // Its ranges, its vectors and its instance id: everything under one owner.
    assert.deepEqual(holds, [resources + 1, 0]);
    const counts = (label: string) => Object.fromEntries([...line(out, new RegExp(`^held ${label}: (.*)$`))[1]!.matchAll(/(\w+) (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    const before = counts("before plugging nvme");
    const during = counts("with nvme");
    const after = counts("after unplugging nvme");
    assert.deepEqual(after, before);
    assert.deepEqual(during, { ...before, pio: before["pio"]! + 1, mmio64: before["mmio64"]! + 1, msi: before["msi"]! + 4, ids: before["ids"]! + 1 });
    line(out, /^mmio read at nvme BAR handled true$/);
    line(out, /^everything given back: true$/);
  });

  it("03-firmware-fixed maps fixed MMIO and allocates ports, and refusals change nothing", () => {
    const out = run("03-firmware-fixed");
    const devices = out.filter((l) => l.startsWith("device "));
    assert.equal(devices.length, 3);
    const all = devices.flatMap(spans);
    assertDisjoint(all);
    for (const d of devices) {
      const m = d.match(/^device (\w+)@\d+: (\[mem \S+\]) fixed true, (\[io \S+\]) allocated true, \[irq (\d+)\]$/);
      assert.ok(m !== null, d);
      const port = spans(m[3]!)[0]!;
      assert.ok(inside(port, 0x1000n, 0xffffn) && port.start % 8n === 0n && port.end - port.start === 7n);
    }
    const mem = all.filter((s) => s.kind === "mem");
    assert.deepEqual(mem.map((s) => s.start), [0xd000_0000n, 0xd000_1000n, 0xd000_2000n]);
    line(out, /^unfixed mmio request refused: MissingAllocator$/);
    line(out, /^conflicting fixed range refused: Overlap \(uart2@3: requests\[0\] \(mmio, 0x1000 bytes, at 0xd0000000\): \[mem 0xd0000000-0xd0000fff\] conflicts with uart@0 \[mem 0xd0000000-0xd0000fff\]\)$/);
    line(out, /^allocator unchanged by the refusals: true$/);
    line(out, /^reserved by firmware: 3 ranges$/);
  });

  it("04-q35-pci plugs a q35-like machine, routes every BAR in its pool and holds only the MSI-X vectors the guest unmasked", () => {
    const out = run("04-q35-pci");
    line(out, /^enumerated via ecam: 5 functions$/);
    line(out, /^enumerated via cf8: 5 functions$/);
    const fns = out.filter((l) => l.startsWith("function "));
    assert.deepEqual(fns.map((l) => l.split(" ").slice(1, 4).join(" ")), [
      "0000:00:00.0 q35-host-bridge [8086:29c0]",
      "0000:00:01.0 virtio-blk [1af4:1042]",
      "0000:00:02.0 virtio-net [1af4:1041]",
      "0000:00:03.0 nvme [1b36:0010]",
      "0000:00:1f.0 ich9-lpc [8086:2918]",
    ]);
    assert.ok(fns.every((l) => !l.includes("unrouted")), "decoding enabled everywhere");
    const all = fns.flatMap(spans);
    assertDisjoint(all);
    for (const l of fns) {
      for (const [, index, kind, a, b] of l.matchAll(/BAR (\d) \[(io|mem) (0x[0-9a-f]+)-(0x[0-9a-f]+)\]/g)) {
        const s = { kind: kind as "io" | "mem", start: BigInt(a!), end: BigInt(b!) };
        const size = s.end - s.start + 1n;
        assert.equal(s.start % size, 0n, `BAR ${index} naturally aligned`);
        // The virtio BAR 4 is 64-bit prefetchable: the 64-bit pool; everything else below 4 GiB, in the PCI hole.
        if (index === "4") assert.ok(inside(s, 4n << 30n, (36n << 30n) - 1n), l);
        else assert.ok(inside(s, 0xc000_0000n, 0xfebf_ffffn), l);
      }
    }
    // INTA of slots 1-3 on q35: PIRQ F, G, H (GSIs 21-23); the bridges have no pin.
    assert.deepEqual(fns.map((l) => l.match(/ irq (\S+)/)![1]), ["-", "21", "22", "23", "-"]);
    const nvme = line(out, /^nvme: 2048 MSI-X vectors, 9 hold GSIs: ([\d,]+)$/);
    const gsis = nvme[1]!.split(",").map(Number);
    assert.equal(new Set(gsis).size, 9);
    assert.ok(gsis.every((g) => g >= 24 && g <= 4095));
    line(out, /^messages sent: 9$/);
    line(out, /^nvme register read: 0x5a5a5a5a, device saw 1 access\(es\)$/);
    line(out, /^closed; allocator back to its start: true$/);
  });

  it("quickstart prints a consistent table", () => {
    const out = run("quickstart");
    line(out, /^layout firecracker-x86_64$/);
    const rows = out.filter((l) => /^\S+@\d+ /.test(l));
    assert.deepEqual(rows.map((l) => l.split(/\s+/)[0]!.replace(/@\d+$/, "")), ["virtio-blk", "virtio-net", "virtio-vsock", "serial", "i8042"]);
    const irqOf = (row: string) => row.split(/\s+/)[1]!;
    const virtio = rows.slice(0, 3);
    const vIrqs = virtio.map((l) => Number(irqOf(l)));
    assert.equal(new Set(vIrqs).size, 3);
    assert.ok(vIrqs.every((q) => q >= 5 && q <= 23));
    const mmio = virtio.flatMap(spans);
    assertDisjoint(mmio);
    // Firecracker's device window: after the boot timer slot, below PCI MMCONFIG; 4 KiB each, aligned.
    assert.ok(mmio.every((s) => s.kind === "mem" && inside(s, 0xc000_1000n, 0xeebf_ffffn) && s.end - s.start === 0xfffn && s.start % 0x1000n === 0n));
    assert.deepEqual([irqOf(rows[3]!), spans(rows[3]!)], ["4", [{ kind: "io", start: 0x3f8n, end: 0x3ffn }]]);
    assert.deepEqual([irqOf(rows[4]!), spans(rows[4]!)], ["1", [{ kind: "io", start: 0x60n, end: 0x64n }]]);
    const free = line(out, /^free 32-bit MMIO: (\d+) bytes \((0x[0-9a-f]+)\); free legacy IRQs: (\d+)$/);
    assert.equal(BigInt(free[1]!), BigInt(free[2]!));
    // The pool minus the boot timer slot, MMCONFIG and three 4 KiB devices.
    assert.equal(BigInt(free[1]!), 0xfec0_0000n - 0xc000_0000n - 0x1000n - 0x1000_0000n - 3n * 0x1000n);
    assert.equal(Number(free[3]), 19 - 3);
  });
});
