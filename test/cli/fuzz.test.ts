/**
 * Property tests, in process through `run` (the command minus the process plumbing): whatever
 * the input, the command exits 0 or 2, never crashes, and on 2 prints one line and no result.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { run, type Outcome } from "../../cli/run.js";
import { EXAMPLES } from "./helpers.js";

/** Runs `vm-allocator ...args` with `input` on stdin (the file name `-`). */
function cli(args: readonly string[], input: string): Outcome {
  return run(args, { env: {}, stdout: {}, stderr: {}, readStdin: () => Buffer.from(input) });
}

function assertClean(o: Outcome): void {
  assert.ok(o.status === 0 || o.status === 2, `status ${o.status}`);
  if (o.status === 2) {
    assert.equal(o.stdout, "");
    assert.match(o.stderr, /^vm-allocator: error: [^\n]+\n$/);
  } else {
    assert.notEqual(o.stdout, "");
    assert.equal(o.stderr, "");
  }
}

/** Numbers a layout would plausibly hold: sizes, alignments and addresses that exist. */
const plausible = fc.oneof(
  fc.integer({ min: 1, max: 0x10000 }),
  fc.integer({ min: 1, max: 64 }).map((n) => `0x${(n * 0x1000).toString(16)}`),
  fc.constantFrom("0x1000", "4096", "0xc0001000", "0xfec00000", "0x3f8", "0x60", "0x4000000000", "0xd0000000"),
);
/** Numbers as a careless or hostile file might hold them. */
const wild = fc.oneof(
  { arbitrary: plausible, weight: 4 },
  { arbitrary: fc.constantFrom(0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER), weight: 1 },
  { arbitrary: fc.bigInt({ min: 0n, max: (1n << 65n) - 1n }).map((v) => `0x${v.toString(16)}`), weight: 1 },
  { arbitrary: fc.constantFrom("0xffff_ffff", "-0x10", "0x", "1e3", "", "0x_1"), weight: 1 },
  { arbitrary: fc.constantFrom(null, true, [], {}), weight: 1 },
);
/** Mostly absent optional fields, as in real layouts. */
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
/** Drops the keys whose value is undefined. */
const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/** Layouts whose numbers come from `number`; `hostile` adds bad kinds, names, pools and fields. */
function layouts(number: fc.Arbitrary<unknown>, hostile: boolean): fc.Arbitrary<object> {
  const alignment = hostile ? fc.constantFrom(1, 0x1000, "0x10000", 3, 0) : fc.constantFrom(1, 0x1000, "0x10000");
  const kinds: fc.WeightedArbitrary<object>[] = [
    {
      arbitrary: fc
        .record({
          kind: fc.constantFrom("pio", "mmio"),
          size: number,
          alignment: maybe(alignment),
          fixed: maybe(number),
          window: maybe(fc.record({ min: number, max: number })),
          mmio64: maybe(hostile ? fc.oneof(fc.boolean(), number) : fc.boolean()),
        })
        .map(defined),
      weight: 4,
    },
    { arbitrary: fc.record({ kind: fc.constantFrom("irq", "instanceId"), fixed: maybe(number) }).map(defined), weight: 3 },
    {
      arbitrary: fc.record({ kind: fc.constant("msi"), count: fc.integer({ min: hostile ? 0 : 1, max: 40 }), fixed: maybe(fc.array(number, { maxLength: 4 })) }).map(defined),
      weight: 1,
    },
  ];
  if (hostile) kinds.push({ arbitrary: fc.record({ kind: fc.string({ maxLength: 5 }), junk: number }, { requiredKeys: [] }), weight: 1 });
  const names = hostile ? fc.option(fc.oneof(fc.constantFrom("a", "d@1", ""), fc.string({ maxLength: 8 })), { freq: 8 }) : fc.constant(null);
  const device = fc.tuple(names, fc.array(fc.oneof(...kinds), { maxLength: 4 }));
  const pools = hostile ? fc.constantFrom("pio", "mmio32", "mmio64", "legacyIrq", "msi", "x") : fc.constantFrom("pio", "mmio32", "mmio64", "legacyIrq", "msi");
  return fc
    .record({
      preset: maybe(hostile ? fc.constantFrom("firecracker-x86_64", "pc-x86_64", "other") : fc.constantFrom("firecracker-x86_64", "pc-x86_64")),
      layout: maybe(
        fc.record(
          {
            pio: fc.constantFrom<unknown>(null, { base: 0, size: "0x10000" }, ...(hostile ? [{ base: "0x1000", size: 16 }] : [])),
            mmio64: fc.constantFrom<unknown>(null, { base: "0x100_0000_0000", size: "0x100_0000_0000" }, ...(hostile ? [{ base: 0, size: 1 }] : [])),
            legacyIrq: hostile ? fc.record({ first: number, last: number }) : fc.constant({ first: 5, last: 23 }),
          },
          { requiredKeys: [] },
        ),
      ),
      reserved: maybe(fc.array(fc.record({ pool: pools, start: number, size: number, owner: hostile ? fc.constantFrom("fw", "", "a@0") : fc.constant("fw") }), { maxLength: 2 })),
      devices: fc.array(device, { maxLength: 6 }).map((list) => list.map(([name, requests], i) => ({ name: name ?? `dev${i}`, requests }))),
    })
    .map(defined);
}

/** Plans `layout` in `format`, checks the outcome is clean, and that `check` agrees. */
function planAndCheck(layout: object, format: string): Outcome {
  const input = JSON.stringify(layout);
  const outcome = cli(["plan", "-", "--format", format], input);
  assertClean(outcome);
  const checked = cli(["check", "-"], input);
  assert.equal(checked.status, outcome.status, `plan said ${outcome.stderr || "ok"}, check said ${checked.stderr || "ok"}`);
  return outcome;
}

const formats = fc.constantFrom("text", "iomem", "json", "svg");

describe("any layout", () => {
  it("plausible layouts plan cleanly or fail with one line, in every format, and check agrees", () => {
    let planned = 0;
    fc.assert(
      fc.property(layouts(plausible, false), formats, (layout, format) => {
        if (planAndCheck(layout, format).status === 0) planned++;
      }),
      { numRuns: 300 },
    );
    // The generator must reach the planner and the renderers, not only the validator.
    assert.ok(planned >= 60, `only ${planned} of 300 layouts could be planned`);
  });

  it("hostile layouts never crash", () => {
    fc.assert(
      fc.property(layouts(wild, true), formats, (layout, format) => {
        planAndCheck(layout, format);
      }),
      { numRuns: 300 },
    );
  });

  it("any text at all is handled", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (input) => {
        assertClean(cli(["plan", "-"], input));
      }),
      { numRuns: 300 },
    );
  });
});

/** Layouts of PCI functions on the presets with a PCI host, with numbers from `number`. */
function pciLayouts(number: fc.Arbitrary<unknown>, hostile: boolean): fc.Arbitrary<object> {
  const bar = fc
    .record({
      kind: hostile ? fc.constantFrom("io", "mem32", "mem64", "rom") : fc.constantFrom("io", "mem32", "mem64"),
      size: hostile ? number : fc.constantFrom(4, 32, 256, 0x1000, "0x4000", "0x100000", "0x10000000", "0x80000000", "0x400000000"),
      prefetchable: maybe(hostile ? fc.oneof(fc.boolean(), number) : fc.boolean()),
      index: maybe(hostile ? number : fc.integer({ min: 0, max: 5 })),
    })
    .map(defined);
  const fn = fc
    .record({
      slot: maybe(hostile ? number : fc.integer({ min: 0, max: 31 })),
      function: maybe(hostile ? number : fc.integer({ min: 0, max: 7 })),
      vendorId: maybe(hostile ? number : fc.constantFrom("0x1af4", 0x8086)),
      interruptPin: maybe(hostile ? fc.oneof(number, fc.constantFrom("A", "E", "INTD", "none")) : fc.constantFrom("A", "B", "C", "D", 0)),
      bars: maybe(fc.array(bar, { maxLength: 4 })),
      msix: maybe(fc.record({ vectors: hostile ? number : fc.integer({ min: 1, max: 2048 }), bar: hostile ? number : fc.integer({ min: 0, max: 5 }) })),
    })
    .map(defined);
  return fc.record({
    preset: fc.constantFrom("pc-x86_64", "riscv64-virt", "firecracker-aarch64", ...(hostile ? ["crosvm-x86_64"] : [])),
    devices: fc.array(fn, { maxLength: 6 }).map((list) => list.map((f, i) => ({ name: `pci${i}`, kind: "pci", ...f }))),
  });
}

describe("any layout with PCI functions", () => {
  it("plausible ones plan cleanly or fail with one line, in every format, and check agrees", () => {
    let planned = 0;
    fc.assert(
      fc.property(pciLayouts(plausible, false), formats, (layout, format) => {
        if (planAndCheck(layout, format).status === 0) planned++;
      }),
      { numRuns: 200 },
    );
    assert.ok(planned >= 40, `only ${planned} of 200 layouts could be planned`);
  });

  it("hostile ones never crash", () => {
    fc.assert(
      fc.property(pciLayouts(wild, true), formats, (layout, format) => {
        planAndCheck(layout, format);
      }),
      { numRuns: 200 },
    );
  });
});

// What `plan` writes for programs: `show` reads both back.
for (const [what, make] of [
  ["a saved plan", savedPlanOfDefault],
  ["a saved plan with PCI functions", () => JSON.parse(cli(["plan", "--format", "json", join(EXAMPLES, "q35-pci.json")], "").stdout).plan as unknown],
  ["a plan report", () => JSON.parse(cli(["plan", "--format", "json"], "").stdout) as unknown],
] as const) {
  describe(`any damage to ${what}`, () => {
    it("is reported by show as one line, never a crash", () => {
      const base = make();
      const paths = leafPaths(base);
      fc.assert(
        fc.property(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 1 }), (path, value) => {
          const damaged = structuredClone(base);
          setAt(damaged, path, value);
          assertClean(cli(["show", "-"], JSON.stringify(damaged)));
        }),
        { numRuns: 400 },
      );
    });
  });
}

/** What `plan --save` writes for the built-in default. */
function savedPlanOfDefault(): unknown {
  const dir = mkdtempSync(join(tmpdir(), "vm-allocator-fuzz-"));
  try {
    const file = join(dir, "plan.json");
    assert.equal(cli(["plan", "--save", file], "").status, 0);
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Path = (string | number)[];

/** The path of every node of a JSON value, the root included. */
function leafPaths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => leafPaths(v, [...at, i], out));
  else if (typeof value === "object" && value !== null) for (const [k, v] of Object.entries(value)) leafPaths(v, [...at, k], out);
  return out;
}

/** Replaces the node at `path` (the root itself cannot be replaced in place: left as is). */
function setAt(root: unknown, path: Path, value: unknown): void {
  if (path.length === 0) return;
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path[path.length - 1]!] = value;
}
