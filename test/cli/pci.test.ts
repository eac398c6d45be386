/**
 * PCI devices in layout files: planned through the PCI root complex with the preset's host
 * bridge, shown with their slots, BARs and interrupts in every format, read back from saved
 * plans (which are checked against the preset's INTx rule), and refused with field paths when
 * they cannot be planned.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { intxLine, Q35_INTX_ROUTING } from "../../src/pci/intx.js";
import { assertCompiles, dtcSkip } from "../helpers/dtc.js";
import { EXAMPLES, runCli } from "./helpers.js";

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vm-allocator-pci-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const Q35 = join(EXAMPLES, "q35-pci.json");

/** Writes `value` as a layout file and returns its path. */
function file(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value));
  return path;
}

const pciLayout = (preset: string, devices: unknown[]) => ({ preset, devices });
const fn = (name: string, more: Record<string, unknown> = {}) => ({ name, kind: "pci", ...more });

interface SavedPlan {
  version: number;
  devices: { owner: string; name: string; irqs: { irq: number }[]; mmio: { start: string; end: string }[] }[];
  pci: {
    routing: string | null;
    functions: { address: string; name: string; owner: string; interruptPin: number; gsi: number | null; msixVectors: number; bars: { index: number; kind: string; prefetchable: boolean; start: string; end: string; owner: string }[] }[];
  };
}

async function saved(layout: string): Promise<SavedPlan> {
  const out = join(dir, `saved-${Math.random().toString(16).slice(2)}.json`);
  const r = await runCli(["plan", layout, "--save", out, "--format", "text"]);
  assert.equal(r.stderr, "");
  assert.equal(r.status, 0);
  return JSON.parse(readFileSync(out, "utf8")) as SavedPlan;
}

async function problems(value: unknown): Promise<string[]> {
  const r = await runCli(["check", "-"], { input: JSON.stringify(value) });
  assert.equal(r.status, 2, r.stdout);
  assert.equal(r.stdout, "");
  return r.stderr.trimEnd().split("\n").map((l) => l.replace(/^stdin: /, ""));
}

describe("PCI devices in layout files", { concurrency: true }, () => {
  it("the q35 example: fixed slots first, then the lowest free ones from slot 1; INTx through the ICH9 rule; BARs aligned in their pools", async () => {
    const plan = await saved(Q35);
    assert.equal(plan.version, 3);
    assert.equal(plan.pci.routing, "q35");
    const byName = new Map(plan.pci.functions.map((f) => [f.name, f]));
    assert.deepEqual(
      plan.pci.functions.map((f) => [f.address, f.name]),
      [
        ["0000:00:00.0", "q35-host-bridge"],
        ["0000:00:01.0", "virtio-blk0"],
        ["0000:00:02.0", "virtio-net0"],
        ["0000:00:03.0", "nvme0"],
        ["0000:00:1f.0", "ich9-lpc"],
      ],
    );
    for (const f of plan.pci.functions) {
      const slot = Number.parseInt(f.address.slice(8, 10), 16);
      assert.equal(f.gsi, f.interruptPin === 0 ? null : intxLine(Q35_INTX_ROUTING, slot, f.interruptPin), f.address);
      const device = plan.devices.find((d) => d.owner === f.owner)!;
      assert.equal(device.name, `${f.name} ${f.address}`);
      assert.deepEqual(device.irqs.map((q) => q.irq), f.gsi === null ? [] : [f.gsi]);
      for (const b of f.bars) {
        const start = BigInt(b.start);
        const size = BigInt(b.end) - start + 1n;
        assert.equal(size & (size - 1n), 0n, `${f.name} BAR ${b.index} size`);
        assert.equal(start % size, 0n, `${f.name} BAR ${b.index} alignment`);
        // Non-prefetchable memory BARs stay below 4 GiB; prefetchable 64-bit ones go above.
        if (b.kind !== "io" && !b.prefetchable) assert.ok(BigInt(b.end) < 1n << 32n, `${f.name} BAR ${b.index} below 4 GiB`);
        if (b.kind === "mem64" && b.prefetchable) assert.ok(start >= 1n << 32n, `${f.name} BAR ${b.index} above 4 GiB`);
        if (b.kind === "io") assert.ok(start >= 0xc000n, "I/O BARs from SeaBIOS's 0xc000");
        assert.deepEqual(plan.devices.find((d) => d.owner === b.owner)!.name, `${f.name} ${f.address} BAR ${b.index}`);
      }
    }
    assert.equal(byName.get("nvme0")!.msixVectors, 2048);
    // No MSI GSI is held by a plan: a guest holds them when it enables the vectors.
    assert.ok(plan.devices.every((d) => (d as unknown as { msi: unknown[] }).msi.length === 0));
  });

  it("text lists slot, ids, class, interrupt and each BAR with Linux's flags", async () => {
    const r = await runCli(["plan", Q35]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^PCI bus 0000:00 \(q35 INTx routing, ECAM \[mem 0xb0000000-0xbfffffff\], config ports 0xcf8-0xcff\): 5 functions$/m);
    assert.match(r.stdout, /^ {2}00:03\.0 {2}nvme0 +1b36:0010 {2}010802 {2}INTA -> GSI 23, MSI-X 2048 {2}BAR 0 \[mem 0xc[0-9a-f]+-0xc[0-9a-f]+ 64bit\]$/m);
    assert.match(r.stdout, /BAR 4 \[mem 0x1[0-9a-f]{8}-0x1[0-9a-f]{8} 64bit pref\]/);
    assert.match(r.stdout, /BAR 0 \[io {2}0xc000-0xc01f\]/);
  });

  it("iomem nests BARs under PCI Bus 0000:00, named by their function, as /proc/iomem does", async () => {
    const r = await runCli(["plan", Q35, "--format", "iomem"]);
    assert.equal(r.status, 0);
    const lines = r.stdout.split("\n");
    const bus = lines.indexOf("  c0000000-febfffff : PCI Bus 0000:00");
    assert.ok(bus > 0, r.stdout);
    assert.match(lines[bus + 1]!, /^ {4}c[0-9a-f]{7}-c[0-9a-f]{7} : 0000:00:0[1-3]\.0$/);
    assert.match(lines[bus + 2]!, /^ {6}c[0-9a-f]{7}-c[0-9a-f]{7} : \S+ 0000:00:0[1-3]\.0 BAR \d@\d+$/);
    assert.ok(lines.includes("  c000-ffff : PCI Bus 0000:00"));
    assert.ok(lines.includes("  100000000-8ffffffff : PCI Bus 0000:00"));
  });

  it("json and svg carry each BAR's range, flags and owner", async () => {
    const [json, svg] = await Promise.all([runCli(["plan", Q35, "--format", "json"]), runCli(["plan", Q35, "--format", "svg"])]);
    const report = JSON.parse(json.stdout) as { pci: { functions: { slot: string; interruptPin: string | null; bars: { flags: string; start: string; end: string; owner: string }[] }[] } };
    const blk = report.pci.functions.find((f) => f.slot === "00:01.0")!;
    assert.equal(blk.interruptPin, "INTA");
    assert.deepEqual(blk.bars.map((b) => b.flags), ["", "64bit pref"]);
    for (const b of blk.bars) {
      assert.ok(svg.stdout.includes(`${b.owner} [mem 0x`), b.owner);
    }
    assert.match(svg.stdout, /BAR 4 of 0000:00:01\.0 virtio-blk0, mem 64bit pref/);
    assert.match(svg.stdout, />PCI bus 0000:00</);
  });

  it("the kernel command line gets no entry for PCI functions", async () => {
    const r = await runCli(["plan", file("pci-only.json", pciLayout("pc-x86_64", [fn("virtio-blk0", { interruptPin: "A", bars: [{ kind: "mem32", size: "0x1000" }] })])), "--format", "cmdline"]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, "");
  });

  it("riscv64-virt: the swizzle over PLIC 32-35, and a devicetree with the host bridge that dtc compiles", { skip: dtcSkip }, async () => {
    const layout = file("rv.json", pciLayout("riscv64-virt", [fn("a", { slot: 2, interruptPin: "B", bars: [{ kind: "io", size: 32 }, { kind: "mem64", size: "0x4000", prefetchable: true }] })]));
    const plan = await saved(layout);
    // QEMU's gpex swizzle: slot 2, INTB -> line 32 + (2 + 1) mod 4.
    assert.equal(plan.pci.functions[0]!.gsi, 35);
    const r = await runCli(["plan", layout, "--format", "dts"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /compatible = "pci-host-ecam-generic";/);
    assert.match(r.stdout, /<0x1000 0x0 0x0 0x2 &plic 0x23>/);
    assertCompiles(r.stdout, "riscv64-virt with PCI");
  });

  it("firecracker-aarch64: PCI functions bring the host bridge (MSI-X through the ITS) into the devicetree", { skip: dtcSkip }, async () => {
    const layout = file("fc.json", pciLayout("firecracker-aarch64", [fn("a", { bars: [{ kind: "mem64", size: "0x4000", prefetchable: true }], msix: { vectors: 4, bar: 0 } })]));
    const [with_, without] = await Promise.all([runCli(["plan", layout, "--format", "dts"]), runCli(["plan", file("fc0.json", pciLayout("firecracker-aarch64", [])), "--format", "dts"])]);
    assert.equal(with_.status, 0, with_.stderr);
    assert.match(with_.stdout, /pci@70000000 \{/);
    assert.match(with_.stdout, /msi-map = <0x0 &its 0x0 0x100>;/);
    assert.doesNotMatch(without.stdout, /pci@/);
    assertCompiles(with_.stdout, "firecracker-aarch64 with PCI");
  });

  it("a saved plan of version 2 (before PCI) still reads; one with a pci part does not", async () => {
    const plan = (await saved(join(EXAMPLES, "pc-q35.json"))) as unknown as Record<string, unknown>;
    const v2 = { ...plan, version: 2 };
    const r = await runCli(["show", "-"], { input: JSON.stringify(v2) });
    assert.equal(r.status, 0, r.stderr);
    const pci = await saved(Q35);
    assert.deepEqual(await problems({ ...pci, version: 2 }), ["pci: unknown field in a version 2 plan (PCI functions came with version 3)"]);
  });

  it("a saved plan whose pci part disagrees with its devices or the INTx rule is refused, naming each field", async () => {
    const plan = await saved(Q35);
    const f = plan.pci.functions;
    f[1]!.gsi = 16;
    f[2]!.bars[0]!.start = "0xc100";
    f[3]!.bars[0]!.owner = "nobody@99";
    f[4]!.address = "0000:00:1f.0x";
    assert.deepEqual(await problems(plan), [
      "pci.functions[1].gsi: must be 21: the q35 rule wires INTA of slot 1 to it, got 16",
      "pci.functions[2].bars[0]: start 0xc100 is above end 0xc01f",
      "pci.functions[3].bars[0].owner: must name a device of this plan, got \"nobody@99\"",
      "pci.functions[4].address: must be a PCI address like \"0000:00:03.0\", got \"0000:00:1f.0x\"",
    ]);
    // A BAR moved off its natural alignment is refused too.
    const again = await saved(Q35);
    again.pci.functions[1]!.bars[0]!.start = "0xc0000800";
    again.pci.functions[1]!.bars[0]!.end = "0xc00017ff";
    const found = await problems(again);
    assert.ok(found.includes("pci.functions[1].bars[0]: [0xc0000800-0xc00017ff] is not a power-of-two size at a multiple of it, as a BAR is"), found.join("\n"));
  });
});

describe("PCI devices that cannot be planned are refused with their field paths", { concurrency: true }, () => {
  const cases: { name: string; devices: unknown[]; preset?: string; expect: string[] }[] = [
    { name: "a slot taken, naming the holder", devices: [fn("a", { slot: 3 }), fn("b", { slot: 3 })], expect: ["devices[1].slot: 0000:00:03.0 is already held by a (devices[0])"] },
    {
      name: "a BAR too large for its pool",
      devices: [fn("a", { bars: [{ kind: "mem32", size: "0x80000000" }] })],
      expect: ["devices[0].bars[0]: a 0000:00:01.0 BAR 0 (mem, 0x80000000 bytes): no free space for 0x80000000 bytes aligned to 0x80000000 in pool [mem 0xb0000000-0xffffffff]"],
    },
    { name: "a BAR size not a power of two", devices: [fn("a", { bars: [{ kind: "mem32", size: "0x1000" }, { kind: "mem64", size: "0x3000" }] })], expect: ['devices[0].bars[1].size: must be a power of two (a BAR is placed at a multiple of its size), got "0x3000"'] },
    { name: "an I/O BAR past 256 ports", devices: [fn("a", { bars: [{ kind: "io", size: "0x200" }] })], expect: ["devices[0].bars[0].size: must be a power of two from 0x4 to 0x100 for a io BAR, got 0x200"] },
    { name: "a pin out of range", devices: [fn("a", { interruptPin: 5 }), fn("b", { interruptPin: "E" })], expect: ['devices[0].interruptPin: must be "A" to "D" (INTA-INTD), 1 to 4, or 0 / "none" for no INTx, got 5', 'devices[1].interruptPin: must be "A" to "D" (INTA-INTD), 1 to 4, or 0 / "none" for no INTx, got "E"'] },
    { name: "a slot and a function out of range", devices: [fn("a", { slot: 32, function: 8 })], expect: ["devices[0].slot: must be a device slot from 0 to 31 (0x1f), got 32", "devices[0].function: must be a function number from 0 to 7, got 8"] },
    { name: "an MSI-X table that does not fit its BAR", devices: [fn("a", { bars: [{ kind: "mem32", size: "0x1000" }], msix: { vectors: 2048, bar: 0 } })], expect: ["devices[0].msix: the MSI-X table (0x8000 bytes at 0x0) does not fit in BAR 0 of 0x1000 bytes"] },
    { name: "a preset without PCI", preset: "crosvm-x86_64", devices: [fn("a")], expect: ["devices[0].kind: preset crosvm-x86_64 has no PCI host bridge; PCI devices need one of the presets pc-x86_64, firecracker-aarch64, riscv64-virt"] },
    { name: "a pin on a host without INTx", preset: "firecracker-aarch64", devices: [fn("a", { interruptPin: "A" })], expect: ["devices[0].interruptPin: preset firecracker-aarch64's PCI host routes no INTx (its functions interrupt through MSI-X only); leave interruptPin out"] },
    { name: "an unknown field", devices: [fn("a", { bar: [] })], expect: ["devices[0].bar: unknown field (expected one of: name, kind, slot, function, vendorId, deviceId, classCode, interruptPin, bars, msix)"] },
    {
      name: "a device on the configuration ports",
      devices: [fn("a"), { name: "x", requests: [{ kind: "pio", size: 8, fixed: "0xcf8" }] }],
      expect: ["devices[1].requests[0]: [io 0xcf8-0xcff] conflicts with pci-config@0 [io 0xcf8-0xcff]"],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const layout = pciLayout(c.preset ?? "pc-x86_64", c.devices);
      assert.deepEqual(await problems(layout), c.expect);
      // plan prints the first problem alone and writes nothing.
      const out = join(dir, `not-written-${c.name.replace(/[^a-z0-9]+/gi, "-")}.json`);
      const r = await runCli(["plan", file(`${c.name.replace(/[^a-z0-9]+/gi, "-")}.json`, layout), "--save", out]);
      assert.equal(r.status, 2);
      assert.equal(r.stdout, "");
      assert.equal(r.stderr.trimEnd().split("\n").length, 1);
      assert.equal(existsSync(out), false);
    });
  }
});
