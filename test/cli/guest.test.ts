/**
 * The command's guest formats (`--format cmdline`, `--format dts`), layout parameters, and the
 * labels of layouts that change a preset.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assertCompiles, dtcSkip } from "../helpers/dtc.js";
import { runCli } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "vm-allocator-guest-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** Writes `layout` to a fresh file and returns its path. */
function file(layout: unknown): string {
  const path = join(dir, `layout-${n++}.json`);
  writeFileSync(path, JSON.stringify(layout));
  return path;
}
const virtio = (name: string) => ({ name, requests: [{ kind: "irq" }, { kind: "mmio", size: "0x1000", alignment: "0x1000" }] });

describe("--format cmdline and dts", () => {
  it("prints Firecracker's virtio_mmio.device arguments for the default plan", async () => {
    const r = await runCli(["plan", "--format", "cmdline"]);
    assert.equal(r.status, 0, r.stderr);
    // Eight transports from MEM_32BIT_DEVICES_START (0xc0001000), 4 KiB each, GSIs from 5.
    const want = Array.from({ length: 8 }, (_, i) => `virtio_mmio.device=4K@0x${(0xc000_1000 + i * 0x1000).toString(16)}:${5 + i}`).join(" ");
    assert.equal(r.stdout, `${want}\n`);
  });

  it("refuses a device tree for an x86 plan, saying what to use instead, and prints nothing", async () => {
    const r = await runCli(["plan", "--format", "dts"]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^vm-allocator: error: built-in default: firecracker-x86_64 is an x86_64 machine, .*`--format cmdline` prints the command line\n$/);
  });

  it("show prints a saved plan's command line and device tree exactly as plan did", { skip: dtcSkip }, async () => {
    const saved = join(dir, "saved-aarch64.json");
    const args = ["examples/layouts/firecracker-aarch64.json"];
    const made = await runCli(["plan", ...args, "--save", saved, "--format", "dts"]);
    assert.equal(made.status, 0, made.stderr);
    assertCompiles(made.stdout, "plan --format dts");
    for (const format of ["dts", "cmdline", "text"]) {
      const [planned, shown] = await Promise.all([runCli(["plan", ...args, "--format", format]), runCli(["show", saved, "--format", format])]);
      assert.equal(shown.status, 0, shown.stderr);
      assert.equal(shown.stdout, planned.stdout, format);
    }
    // The parameters went into the saved plan.
    assert.deepEqual(JSON.parse(readFileSync(saved, "utf8")).parameters, { ramSize: "0x20000000" });
  });
});

describe("layout parameters", () => {
  it("moves pc-x86_64's 64-bit window with the RAM size and names the parameters in the heading", async () => {
    const path = file({ preset: "pc-x86_64", parameters: { ramSize: "0x2_0000_0000" }, devices: [] });
    const r = await runCli(["plan", path, "--format", "iomem"]);
    assert.equal(r.status, 0, r.stderr);
    // 8 GiB: 2 GiB below 4 GiB, 6 GiB above, so the window starts at 10 GiB.
    assert.match(r.stdout, /^280000000-a7fffffff : mmio64$/m);
    const text = await runCli(["plan", path]);
    assert.match(text.stdout, /^Plan of .* \(preset pc-x86_64, ramSize 0x200000000\)$/m);
  });

  it("reports parameters a preset does not take, bad values and unknown fields, with their paths", async () => {
    const cases: [unknown, RegExp][] = [
      [{ preset: "firecracker-x86_64", parameters: { ramSize: 4096 } }, /: parameters\.ramSize: preset firecracker-x86_64 takes no parameters: its pools are fixed$/m],
      [{ preset: "pc-x86_64", parameters: { ramSize: 100 } }, /: parameters\.ramSize: must be a multiple of 4 KiB/m],
      [{ preset: "pc-x86_64", parameters: { ram: 1 } }, /: parameters\.ram: unknown field \(expected one of: ramSize, physAddressBits\)$/m],
      [{ preset: "cloud-hypervisor-x86_64", parameters: { physAddressBits: 60 } }, /: parameters\.physAddressBits: must be an integer from 36 to 52/m],
      [{ preset: "cloud-hypervisor-x86_64", parameters: { ramSize: "0x10_0000_0000", physAddressBits: 36 } }, /: parameters: .*give fewer RAM or more physAddressBits$/m],
      [{ preset: "pc-x86_64", parameters: [] }, /: parameters: must be an object/m],
    ];
    for (const [layout, re] of cases) {
      const r = await runCli(["check", file({ ...(layout as object), devices: [] })]);
      assert.equal(r.status, 2, JSON.stringify(layout));
      assert.match(r.stderr, re);
    }
  });

  it("check finds a saved plan's parameters its preset refuses", async () => {
    const saved = join(dir, "saved-pc.json");
    assert.equal((await runCli(["plan", file({ preset: "pc-x86_64", parameters: { ramSize: "0x2_0000_0000" }, devices: [] }), "--save", saved])).status, 0);
    const plan = JSON.parse(readFileSync(saved, "utf8"));
    plan.parameters = { ramSize: 12, physAddressBits: 40 };
    const tampered = join(dir, "tampered-pc.json");
    writeFileSync(tampered, JSON.stringify(plan));
    const r = await runCli(["check", tampered]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /tampered-pc\.json: parameters\.ramSize: must be a "0x\.\.\." hex string, got 12$/m);
    // Parameters each fine but together impossible are bad input too, never an internal error.
    const saved2 = join(dir, "saved-ch.json");
    assert.equal((await runCli(["plan", file({ preset: "cloud-hypervisor-x86_64", devices: [] }), "--save", saved2])).status, 0);
    const ch = JSON.parse(readFileSync(saved2, "utf8"));
    ch.parameters = { ramSize: "0x1000000000", physAddressBits: 36 };
    writeFileSync(saved2, JSON.stringify(ch));
    for (const command of ["check", "show"]) {
      const bad = await runCli([command, saved2]);
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /parameters: .*give fewer RAM or more physAddressBits/);
    }
  });
});

describe("labels of layouts that change a preset", () => {
  it("calls a layout with overridden pools or extra reservations derived from the preset, and names what changed", async () => {
    const heading = async (layout: unknown) => (await runCli(["plan", file(layout)])).stdout.split("\n")[0]!;
    assert.match(await heading({ devices: [virtio("virtio-blk0")] }), /\(preset firecracker-x86_64\)$/);
    // A new name alone changes nothing the guest sees.
    assert.match(await heading({ layout: { name: "mine" }, devices: [] }), /\(preset firecracker-x86_64\)$/);
    assert.match(await heading({ layout: { mmio64: null }, devices: [] }), /\(derived from preset firecracker-x86_64: mmio64 changed\)$/);
    assert.match(
      await heading({ layout: { legacyIrq: { first: 5, last: 15 } }, reserved: [{ pool: "mmio32", start: "0xd0000000", size: "0x1000", owner: "fw" }], devices: [] }),
      /\(derived from preset firecracker-x86_64: legacyIrq, reserved changed\)$/,
    );
    assert.match(await heading({ preset: "pc-x86_64", parameters: { ramSize: "0x40000000" }, layout: { pio: null }, devices: [] }), /\(derived from preset pc-x86_64, ramSize 0x40000000: pio changed\)$/);
    const svg = await runCli(["plan", file({ layout: { mmio64: null }, devices: [] }), "--format", "svg"]);
    assert.match(svg.stdout, /<title>vm-allocator plan of .* \(derived from preset firecracker-x86_64: mmio64 changed\)<\/title>/);
  });

  it("says which preset reservations an mmio32 override leaves out, and what to do", async () => {
    const r = await runCli(["check", file({ preset: "pc-x86_64", layout: { mmio32: { base: "0xc0000000", size: "0x3ec00000" } }, devices: [] })]);
    assert.equal(r.status, 2);
    const lines = r.stderr.trimEnd().split("\n");
    // MMCONFIG below the new window, and everything from the IOAPIC up, no longer fit.
    assert.equal(lines.length, 12, r.stderr);
    assert.match(
      lines[0]!,
      /: layout\.mmio32: preset pc-x86_64 reserves \[mem 0xb0000000-0xbfffffff\] for pci-mmconfig \(preset pc-x86_64, reserved\[0\]\), which the overridden layout\.mmio32 \[mem 0xc0000000-0xfebfffff\] no longer holds; give layout\.mmio32 a window that covers it, or list the reservations you keep in layout\.reserved \(the preset's, without this one\)$/,
    );
    assert.ok(lines.every((l) => l.includes(": layout.mmio32: preset pc-x86_64 reserves ")));
    // Following the advice works: the reservations that fit, listed in layout.reserved.
    const ok = await runCli(["check", file({ preset: "pc-x86_64", layout: { mmio32: { base: "0xc0000000", size: "0x3ec00000" }, reserved: [{ pool: "legacyIrq", start: 16, end: 23, owner: "pci-intx" }] }, devices: [] })]);
    assert.equal(ok.status, 0, ok.stderr);
    // A window that still covers them is fine.
    const wide = await runCli(["check", file({ preset: "pc-x86_64", layout: { mmio32: { base: "0xa0000000", size: "0x60000000" } }, devices: [] })]);
    assert.equal(wide.status, 0, wide.stderr);
  });
});
