/**
 * Bad input never crashes and never half-succeeds: exit status 2, exactly one line on stderr
 * naming the file, the field path and the reason, nothing on stdout, and no file written.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "./helpers.js";

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vm-allocator-errors-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A layout with the given devices (and extra top-level fields). */
const layout = (devices: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ ...extra, devices });
const mmio = (size: unknown, more: Record<string, unknown> = {}) => ({ kind: "mmio", size, ...more });
const dev = (name: string, ...requests: unknown[]) => ({ name, requests });
/** Three harmless devices, so the bad one is devices[3] as in the spec's example. */
const three = [dev("a", mmio("0x1000")), dev("b", mmio("0x1000")), dev("c", { kind: "irq" })];

interface Case {
  readonly name: string;
  /** File content (a string, or bytes); written to `bad.json` in a temporary directory. */
  readonly content?: string | Buffer;
  /** Arguments; `FILE` is replaced by the temporary file's path. Defaults to `plan FILE`. */
  readonly args?: readonly string[];
  /** What the single line must contain: the field path (or position) and the reason. */
  readonly path: string;
  readonly reason: RegExp;
}

const CASES: readonly Case[] = [
  { name: "a missing file", args: ["plan", "no/such/layout.json"], path: "no/such/layout.json: ", reason: /cannot read: no such file or directory/ },
  { name: "a directory", args: ["plan", "examples"], path: "examples: ", reason: /is a directory/ },
  { name: "an empty file", content: "", path: "1:1: ", reason: /invalid JSON: the file is empty/ },
  { name: "invalid JSON", content: '{\n  "devices": [\n    { "name": "a", }\n  ]\n}', path: "3:20: ", reason: /invalid JSON: unexpected character "}"; expected a double-quoted property name/ },
  { name: "trailing garbage", content: '{"devices": []} x', path: "1:17: ", reason: /invalid JSON: unexpected character "x"/ },
  { name: "a repeated key", content: '{"devices": [], "devices": []}', path: "1:17: ", reason: /"devices" appears twice/ },
  { name: "bytes that are not UTF-8", content: Buffer.from([0x7b, 0xff, 0x7d]), path: "bad.json: ", reason: /not valid UTF-8/ },
  { name: "deep nesting", content: `${"[".repeat(5000)}${"]".repeat(5000)}`, path: "1:258: ", reason: /nested more than 256 levels/ },
  { name: "a top-level array", content: "[]", path: "bad.json: ", reason: /must be a JSON object with a devices list, got an array/ },
  { name: "no devices list", content: "{}", path: "devices: ", reason: /is missing/ },
  { name: "an unknown top-level field", content: layout([], { devics: [] }), path: "devics: ", reason: /unknown field/ },
  { name: "an unknown request field", content: layout([...three, dev("d", mmio("0x1000", { fixd: "0x1000" }))]), path: "devices[3].requests[0].fixd: ", reason: /unknown field \(expected one of: kind, size/ },
  { name: "a negative size", content: layout([...three, dev("d", mmio(-4096))]), path: "devices[3].requests[0].size: ", reason: /must not be negative, got -4096/ },
  { name: "a fractional size", content: layout([...three, dev("d", mmio(4096.5))]), path: "devices[3].requests[0].size: ", reason: /must be an integer, got 4096\.5/ },
  { name: "a malformed number", content: layout([...three, dev("d", mmio("0x10g0"))]), path: "devices[3].requests[0].size: ", reason: /is not an integer.*got "0x10g0"/ },
  { name: "a negative hex string", content: layout([dev("d", mmio("-0x1000"))]), path: "devices[0].requests[0].size: ", reason: /must not be negative/ },
  { name: "a number past 2^64-1", content: layout([dev("d", mmio("0x1_0000_0000_0000_0000"))]), path: "devices[0].requests[0].size: ", reason: /must be at most 0xffffffffffffffff/ },
  { name: "a JSON number past 2^53-1", content: '{"devices": [{"name": "d", "requests": [{"kind": "mmio", "size": 9007199254740993}]}]}', path: "devices[0].requests[0].size: ", reason: /above 2\^53-1.*hex string/ },
  { name: "a size of 0", content: layout([dev("d", mmio(0))]), path: "devices[0].requests[0].size: ", reason: /must be at least 1/ },
  { name: "an alignment that is not a power of two", content: layout([dev("d", mmio("0x1000", { alignment: 3000 }))]), path: "devices[0].requests[0].alignment: ", reason: /power of two, got 3000/ },
  { name: "an unknown request kind", content: layout([dev("d", { kind: "dma" })]), path: "devices[0].requests[0].kind: ", reason: /must be one of pio, mmio, irq, msi, instanceId, got "dma"/ },
  { name: "a wrongly typed flag", content: layout([dev("d", mmio("0x1000", { mmio64: "yes" }))]), path: "devices[0].requests[0].mmio64: ", reason: /must be true or false/ },
  { name: "allowFallback without mmio64", content: layout([dev("d", mmio("0x1000", { allowFallback: true }))]), path: "devices[0].requests[0].allowFallback: ", reason: /requires mmio64: true/ },
  { name: "too many MSI vectors", content: layout([dev("d", { kind: "msi", count: 5000 })]), path: "devices[0].requests[0].count: ", reason: /from 1 to 2048/ },
  { name: "two instanceId requests", content: layout([dev("d", { kind: "instanceId" }, { kind: "instanceId" })]), path: "devices[0].requests[1]: ", reason: /second instanceId request/ },
  { name: "a duplicate device name", content: layout([dev("d"), dev("d")]), path: "devices[1].name: ", reason: /already the name of devices\[0\]/ },
  { name: "an @ in a device name", content: layout([dev("a@b")]), path: "devices[0].name: ", reason: /must not contain "@"/ },
  { name: "an unknown preset", content: layout([], { preset: "qemu-virt" }), path: "preset: ", reason: /must be one of "firecracker-x86_64", "pc-x86_64", .*"riscv64-virt", got "qemu-virt"/ },
  { name: "a bad pool override", content: layout([], { layout: { mmio32: { base: "0xc0000000", size: "0x80000000" } } }), path: "layout.mmio32: ", reason: /must lie below 4 GiB/ },
  { name: "removing a required pool", content: layout([], { layout: { msi: null } }), path: "layout.msi: ", reason: /cannot be removed/ },
  { name: "a reservation outside its pool", content: layout([], { reserved: [{ pool: "mmio32", start: "0x1000", size: "0x1000", owner: "fw" }] }), path: "reserved[0]: ", reason: /outside the mmio32 pool/ },
  {
    name: "overlapping reservations",
    content: layout([], { preset: "cloud-hypervisor-x86_64", reserved: [{ pool: "pio", start: "0x2000", size: 16, owner: "a" }, { pool: "pio", start: "0x2008", size: 16, owner: "b" }] }),
    path: "reserved[1]: ",
    reason: /\[io 0x2008-0x2017\] overlaps a \[io 0x2000-0x200f\] \(reserved\[0\]\)/,
  },
  {
    name: "overlapping fixed ranges",
    content: layout([dev("uart-a", { kind: "pio", size: 16, fixed: "0x1000" }), dev("uart-b", { kind: "pio", size: 8, fixed: "0x1008" })]),
    path: "devices[1].requests[0].fixed: ",
    reason: /\[io 0x1008-0x100f\] conflicts with uart-a \(devices\[0\]\) \[io 0x1000-0x100f\]/,
  },
  {
    name: "a fixed range across a pool's edge",
    content: layout([dev("d", mmio("0x2000", { fixed: "0xc0000000" }))]),
    path: "devices[0].requests[0].fixed: ",
    reason: /straddles the edge of the mmio32 pool/,
  },
  {
    name: "a fixed range overlapping a platform reservation",
    content: layout([dev("d", mmio("0x2000", { fixed: "0xbffff000" }))], { preset: "pc-x86_64" }),
    path: "devices[0].requests[0].fixed: ",
    reason: /conflicts with pci-mmconfig \(preset pc-x86_64, reserved\[0\]\)/,
  },
  { name: "a fixed IRQ in the MSI pool", content: layout([dev("d", { kind: "irq", fixed: 30 })]), path: "devices[0].requests[0].fixed: ", reason: /inside the MSI pool/ },
  {
    name: "a fixed MSI GSI held by another device",
    content: layout([dev("a", { kind: "msi", count: 1, fixed: [100] }), dev("b", { kind: "msi", count: 1, fixed: [100] })]),
    path: "devices[1].requests[0].fixed[0]: ",
    reason: /MSI GSI 100 is already held by a \(devices\[0\]\)/,
  },
  {
    name: "a fixed instance id taken twice",
    content: layout([dev("a", { kind: "instanceId", fixed: 7 }), dev("b", { kind: "instanceId", fixed: 7 })]),
    path: "devices[1].requests[0].fixed: ",
    reason: /instance id 7 is already held by a \(devices\[0\]\)/,
  },
  { name: "a request no pool can satisfy", content: layout([...three, dev("huge", mmio("0x100000000"))]), path: "devices[3].requests[0]: ", reason: /no free space for 0x100000000 bytes/ },
  {
    name: "an exhausted IRQ pool",
    content: layout(Array.from({ length: 20 }, (_, i) => dev(`d${i}`, { kind: "irq" }))),
    path: "devices[19].requests[0]: ",
    reason: /legacy IRQ pool/,
  },
  {
    name: "an exhausted MSI pool, naming the vector",
    content: layout([dev("a", { kind: "msi", count: 2048 }), dev("b", { kind: "msi", count: 2048 })]),
    path: "devices[1].requests[0]: ",
    reason: /^vector 2025 of 2048: /,
  },
  { name: "64-bit MMIO in a layout without it", content: layout([dev("d", mmio("0x1000", { mmio64: true }))], { layout: { mmio64: null } }), path: "devices[0].requests[0]: ", reason: /no 64-bit MMIO pool/ },
  { name: "a saved plan given to plan", content: '{"format": "vm-allocator/plan", "version": 1}', path: "bad.json: ", reason: /is a saved plan, not a layout/ },
  { name: "a layout given to show", content: layout([]), args: ["show", "FILE"], path: "bad.json: ", reason: /is a layout, not a saved plan/ },
  { name: "a snapshot of another version", content: '{"format": "vm-allocator/plan", "version": 4}', args: ["show", "FILE"], path: "version: ", reason: /unsupported version 4; this vm-allocator reads versions 2 and 3/ },
  { name: "an unknown command", args: ["plna"], path: "vm-allocator: error: ", reason: /unknown command "plna"/ },
  { name: "an unknown option", args: ["plan", "--colour"], path: "vm-allocator: error: ", reason: /unknown option --colour/ },
  { name: "an unknown format", args: ["plan", "--format", "yaml"], path: "vm-allocator: error: ", reason: /--format must be one of text, iomem, json, svg, cmdline, dts, got "yaml"/ },
  { name: "an option without its value", args: ["plan", "--save"], path: "vm-allocator: error: ", reason: /option --save needs a value/ },
  { name: "show without a file", args: ["show"], path: "vm-allocator: error: ", reason: /show needs the plan file/ },
  { name: "no command at all", args: [], path: "vm-allocator: error: ", reason: /no command given/ },
];

describe("bad input: exit 2, one line on stderr with the field path, nothing on stdout", { concurrency: true }, () => {
  CASES.forEach((c, i) => {
    it(c.name, async () => {
      const sub = join(dir, `case-${i}`);
      mkdirSync(sub, { recursive: true });
      const file = join(sub, "bad.json");
      if (c.content !== undefined) writeFileSync(file, c.content);
      const args = (c.args ?? ["plan", "FILE"]).map((a) => (a === "FILE" ? file : a));
      const r = await runCli(args);
      assert.equal(r.stdout, "", "stdout must stay empty");
      assert.equal(r.status, 2, `exit status (stderr: ${r.stderr})`);
      const lines = r.stderr.split("\n");
      assert.equal(lines.length, 2, `exactly one line on stderr, got ${JSON.stringify(r.stderr)}`);
      const line = lines[0]!;
      assert.match(line, /^vm-allocator: error: /);
      assert.ok(line.includes(c.path), `${JSON.stringify(line)} should name ${JSON.stringify(c.path)}`);
      const reason = line.slice(line.indexOf(c.path) + c.path.length);
      assert.match(reason, c.reason);
    });
  });

  it("several problems still make one line, which says how many more there are", async () => {
    const file = join(dir, "many.json");
    writeFileSync(file, layout([dev("a", mmio(-1)), dev("b", mmio(1.5)), dev("c", mmio("x"))]));
    const r = await runCli(["plan", file]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.split("\n").length, 2);
    assert.match(r.stderr, /devices\[0\]\.requests\[0\]\.size: must not be negative, got -1 \(and 2 more problems; `vm-allocator check` lists them all\)\n$/);
  });
});

describe("--save writes its file only on success", { concurrency: true }, () => {
  it("not when the layout is bad", async () => {
    const file = join(dir, "bad-for-save.json");
    const out = join(dir, "never.json");
    writeFileSync(file, layout([dev("huge", mmio("0x100000000"))]));
    const r = await runCli(["plan", file, "--save", out]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.equal(existsSync(out), false);
  });

  it("not when the file cannot be written, and then prints nothing on stdout", async () => {
    const out = join(dir, "no", "such", "dir", "plan.json");
    const r = await runCli(["plan", "--save", out]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^vm-allocator: error: .*plan\.json: cannot write the plan: no such file or directory\n$/);
  });

  it("replaces an existing file whole", async () => {
    const out = join(dir, "replace.json");
    writeFileSync(out, "old");
    const r = await runCli(["plan", "--save", out, "--format", "iomem"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(readFileSync(out, "utf8")) as { format: string }).format, "vm-allocator/plan");
  });
});

describe("check reports every problem of a saved plan", () => {
  it("tampered devices and pools, one line each, exit 2", async () => {
    const saved = join(dir, "saved.json");
    const made = await runCli(["plan", "--save", saved]);
    assert.equal(made.status, 0, made.stderr);
    const plan = JSON.parse(readFileSync(saved, "utf8")) as {
      devices: { owner: string; irqs: { irq: number }[]; mmio: { start: string; fixed: boolean }[]; msi: { gsi: number; fixed: boolean }[] }[];
      system: { pools: { mmio32: { blocks: { owner?: string }[] } } };
      extra?: number;
    };
    plan.devices[2]!.owner = "nope";
    plan.devices[7]!.irqs[0]!.irq = 20;
    plan.devices[9]!.msi = [{ gsi: 30, fixed: false }];
    plan.system.pools.mmio32.blocks[3]!.owner = "intruder";
    plan.extra = 1;
    const tampered = join(dir, "tampered.json");
    writeFileSync(tampered, JSON.stringify(plan));
    const r = await runCli(["check", tampered]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    const lines = r.stderr.trimEnd().split("\n").map((l) => l.slice(tampered.length + 2));
    assert.deepEqual(lines, [
      "extra: unknown field (expected one of: format, version, source, description, preset, parameters, system, devices, pci)",
      'devices[2].owner: must be "virtio-balloon0@2" (name@instanceId), got "nope"',
      "devices[5].mmio[0]: [mem 0xc0004000-0xc0004fff] is held by intruder [mem 0xc0004000-0xc0004fff] in system.pools.mmio32, not held by virtio-net0@5",
      "devices[7].irqs[0]: [irq 20] is free in system.pools.legacyIrq, not held by virtio-pmem0@7",
      "devices[9].msi[0]: MSI GSI 30 is free in system.pools.msi, not held by virtio-rng0@9",
    ]);
    const shown = await runCli(["show", tampered]);
    assert.equal(shown.status, 2);
    assert.equal(shown.stdout, "");
    assert.match(shown.stderr, /^vm-allocator: error: .*tampered\.json: extra: unknown field .*\(and 4 more problems; `vm-allocator check` lists them all\)\n$/);
  });

  it("a broken system part, naming the pool and block", async () => {
    const saved = join(dir, "saved2.json");
    assert.equal((await runCli(["plan", "--save", saved])).status, 0);
    const plan = JSON.parse(readFileSync(saved, "utf8")) as { system: { pools: { mmio32: { blocks: { end: string }[] }; legacyIrq: { first: number } } } };
    plan.system.pools.mmio32.blocks[2]!.end = "0xc0001ffe";
    plan.system.pools.legacyIrq.first = -1;
    const broken = join(dir, "broken-system.json");
    writeFileSync(broken, JSON.stringify(plan));
    const r = await runCli(["check", broken]);
    assert.equal(r.status, 2);
    const lines = r.stderr.trimEnd().split("\n").map((l) => l.slice(broken.length + 2));
    assert.deepEqual(lines, [
      "system.pools.mmio32.blocks[2]: is reversed: start 0xc0003000 is above end 0xc0001ffe",
      "system.pools.legacyIrq.first: -1 is not an id (an integer from 0 to 2^32-1)",
    ]);
  });

  it("several files: each problem names its file, and valid files are not reported", async () => {
    const good = "examples/layouts/pc-q35.json";
    const bad = join(dir, "check-bad.json");
    writeFileSync(bad, layout([dev("a", mmio(-1)), dev("b", mmio(0))]));
    const r = await runCli(["check", good, bad, "no-such.json"]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.deepEqual(r.stderr.trimEnd().split("\n"), [
      `${bad}: devices[0].requests[0].size: must not be negative, got -1`,
      `${bad}: devices[1].requests[0].size: must be at least 1`,
      "no-such.json: cannot read: no such file or directory",
    ]);
  });
});
