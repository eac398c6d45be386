/**
 * The example layouts through the real command, compared with the committed expected outputs
 * in examples/layouts/expected/ (regenerate with UPDATE_EXPECTED=1 and review the diff).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_LAYOUT } from "../../cli/default-layout.js";
import { assertCompiles, dtcSkip } from "../helpers/dtc.js";
import { EXAMPLE_RUNS, EXAMPLES, matchExpected, runCli } from "./helpers.js";

/** The guest's view: the kernel command line of every example, the device tree of the non-x86 ones. */
const GUEST_RUNS: readonly { name: string; args: readonly string[]; format: "cmdline" | "dts" }[] = [
  ...EXAMPLE_RUNS.map((e) => ({ ...e, format: "cmdline" as const })),
  { name: "firecracker-aarch64", args: ["examples/layouts/firecracker-aarch64.json"], format: "dts" },
  { name: "riscv64-virt", args: ["examples/layouts/riscv64-virt.json"], format: "dts" },
];
const FORMATS = [
  { format: "text", ext: "txt" },
  { format: "iomem", ext: "iomem" },
  { format: "json", ext: "json" },
  { format: "svg", ext: "svg" },
] as const;

describe("plan on the example layouts", { concurrency: true }, () => {
  for (const { name, args } of EXAMPLE_RUNS) {
    for (const { format, ext } of FORMATS) {
      it(`${name} --format ${format} matches expected/${name}.${ext}`, async () => {
        const r = await runCli(["plan", ...args, "--format", format]);
        assert.equal(r.stderr, "");
        assert.equal(r.status, 0);
        matchExpected(`${name}.${ext}`, r.stdout);
      });
    }
  }

  for (const { name, args, format } of GUEST_RUNS) {
    it(`${name} --format ${format} matches expected/${name}.${format}${format === "dts" ? " and dtc compiles it without a warning" : ""}`, { skip: format === "dts" ? dtcSkip : false }, async () => {
      const r = await runCli(["plan", ...args, "--format", format]);
      assert.equal(r.stderr, "");
      assert.equal(r.status, 0);
      matchExpected(`${name}.${format}`, r.stdout);
      if (format === "dts") assertCompiles(r.stdout, `plan ${args.join(" ")} --format dts`);
    });
  }

  it("text is the default format", async () => {
    const [plain, text] = await Promise.all([runCli(["plan"]), runCli(["plan", "--format", "text"])]);
    assert.equal(plain.status, 0);
    assert.equal(plain.stdout, text.stdout);
  });

  it("the built-in default is examples/layouts/firecracker-default.json", () => {
    const file: unknown = JSON.parse(readFileSync(join(EXAMPLES, "firecracker-default.json"), "utf8"));
    assert.deepEqual(file, JSON.parse(JSON.stringify(DEFAULT_LAYOUT)));
  });

  it("a layout on stdin ('-') plans like the file", async () => {
    const text = readFileSync(join(EXAMPLES, "pc-q35.json"), "utf8");
    const [fromStdin, fromFile] = await Promise.all([runCli(["plan", "-", "-f", "iomem"], { input: text }), runCli(["plan", "examples/layouts/pc-q35.json", "-f", "iomem"])]);
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, fromFile.stdout);
  });

  it("check accepts every example layout", async () => {
    const counts = { "firecracker-default": 12, "pc-q35": 9, "large-mmio64": 7, "firecracker-aarch64": 7, "riscv64-virt": 4 };
    const files = Object.keys(counts).map((n) => `examples/layouts/${n}.json`);
    const r = await runCli(["check", ...files]);
    assert.equal(r.stderr, "");
    assert.equal(r.status, 0);
    assert.deepEqual(
      r.stdout.trimEnd().split("\n"),
      Object.entries(counts).map(([n, c]) => `examples/layouts/${n}.json: ok (layout, ${c} devices planned)`),
    );
  });

  it("check lists every problem of examples/layouts/broken.json, one per line", async () => {
    const r = await runCli(["check", "examples/layouts/broken.json"]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    matchExpected("broken.check.txt", r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    assert.ok(lines.length >= 8, `expected every problem, got ${lines.length}`);
    for (const line of lines) assert.match(line, /^examples\/layouts\/broken\.json: (?:reserved|devices)\[\d+\][\w.[\]]*: \S/);
  });
});

describe("the json format", () => {
  it("writes u64 values as hex strings and tiles every pool without gap or overlap", async () => {
    const r = await runCli(["plan", "examples/layouts/large-mmio64.json", "-f", "json"]);
    assert.equal(r.status, 0);
    const report = JSON.parse(r.stdout) as {
      format: string;
      addressSpaces: { start: string; end: string; segments: { start: string; end: string; size: string }[] }[];
    };
    assert.equal(report.format, "vm-allocator/plan-report");
    for (const space of report.addressSpaces) {
      let next = BigInt(space.start);
      for (const s of space.segments) {
        for (const v of [s.start, s.end, s.size]) assert.match(v, /^0x[0-9a-f]+$/);
        assert.equal(BigInt(s.start), next);
        assert.equal(BigInt(s.size), BigInt(s.end) - BigInt(s.start) + 1n);
        next = BigInt(s.end) + 1n;
      }
      assert.equal(next - 1n, BigInt(space.end));
    }
  });
});
