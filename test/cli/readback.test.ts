/**
 * The command reads what it writes. Everything `plan` writes for programs (the saved plan of
 * `--save`, and the `json` report, which carries that plan) goes back into `show` and `check`
 * through a pipe (`-`) and as a file, and `show` then prints exactly what `plan` prints, in
 * every format (the committed expected outputs of examples.test.ts). The formats for people are refused cleanly. A report whose derived part has
 * been edited away from the plan it carries is refused, naming each difference.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FORMATS, type Format } from "../../cli/args.js";
import { EXAMPLE_RUNS, EXPECTED, runCli } from "./helpers.js";

/** The formats of `plan` written for programs; `plan --help` says so of these. */
const MACHINE_READABLE: ReadonlySet<Format> = new Set(["json"]);
/** The extension of each format's expected outputs. */
const EXTENSION: Readonly<Record<Format, string>> = { text: "txt", iomem: "iomem", json: "json", svg: "svg", cmdline: "cmdline", dts: "dts" };
/** The formats that show the whole plan (cmdline and dts are the guest's view, dts only on some machines). */
const PLAN_FORMATS: readonly Format[] = ["text", "iomem", "json", "svg"];

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vm-allocator-readback-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The parts of a json report these tests edit. */
interface Report {
  [key: string]: unknown;
  plan: Record<string, unknown>;
  addressSpaces: { segments: unknown[] }[];
  idSpaces: { assignments: { origin: string; owner?: string }[] }[];
  devices: { name: string; owner: string }[];
}

/** `plan` of the built-in default as a json report, parsed. */
async function defaultReport(): Promise<Report> {
  const r = await runCli(["plan", "--format", "json"]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Report;
}

/** Runs `check -` on `value` and returns its problem lines without the `stdin: ` prefix. */
async function checkProblems(value: unknown): Promise<string[]> {
  const r = await runCli(["check", "-"], { input: JSON.stringify(value) });
  assert.equal(r.status, 2, r.stdout);
  assert.equal(r.stdout, "");
  return r.stderr.trimEnd().split("\n").map((l) => l.replace(/^stdin: /, ""));
}

describe("everything plan writes for programs reads back into show and check", { concurrency: true }, () => {
  it("the machine-readable formats are the ones plan --help calls machine-readable", async () => {
    const help = (await runCli(["plan", "--help"])).stdout;
    for (const format of FORMATS) {
      assert.equal(new RegExp(`\\b${format} \\(machine-readable`).test(help), MACHINE_READABLE.has(format), format);
    }
  });

  for (const { name, args } of EXAMPLE_RUNS) {
    it(`${name}: the json report and the saved plan, piped and as files`, async () => {
      const saved = join(dir, `${name}.plan.json`);
      const reportFile = join(dir, `${name}.report.json`);
      const planned = await runCli(["plan", ...args, "--format", "json", "--save", saved]);
      assert.equal(planned.status, 0, planned.stderr);
      const report = planned.stdout;
      const printed = PLAN_FORMATS.map((format) => readFileSync(join(EXPECTED, `${name}.${EXTENSION[format]}`), "utf8"));
      assert.equal(report, printed[PLAN_FORMATS.indexOf("json")]);
      writeFileSync(reportFile, report);
      const plan = readFileSync(saved, "utf8");
      assert.deepEqual((JSON.parse(report) as { plan: unknown }).plan, JSON.parse(plan), "the report carries the saved plan");

      const inputs = [
        { kind: "plan report", text: report },
        { kind: "saved plan", text: plan },
      ];
      const devices = (JSON.parse(plan) as { devices: unknown[] }).devices.length;
      await Promise.all(
        inputs.map(async ({ kind, text }) => {
          const shown = await Promise.all(PLAN_FORMATS.map((format) => runCli(["show", "-", "--format", format], { input: text })));
          shown.forEach((r, i) => {
            assert.equal(r.stderr, "", `${kind} | show --format ${PLAN_FORMATS[i]}`);
            assert.equal(r.status, 0);
            assert.equal(r.stdout, printed[i], `${kind} | show --format ${PLAN_FORMATS[i]} prints what plan prints`);
          });
          const checked = await runCli(["check", "-"], { input: text });
          assert.equal(checked.stderr, "");
          assert.equal(checked.stdout, `stdin: ok (${kind}, ${devices} devices)\n`);
        }),
      );
      const files = await runCli(["check", reportFile, saved]);
      assert.equal(files.stderr, "");
      assert.equal(files.stdout, `${reportFile}: ok (plan report, ${devices} devices)\n${saved}: ok (saved plan, ${devices} devices)\n`);
    });
  }

  // dts is refused for the default (x86) plan, so it is not among these.
  for (const format of FORMATS.filter((f) => !MACHINE_READABLE.has(f) && f !== "dts")) {
    it(`the ${format} format, written for people, is refused by show and check in one line`, async () => {
      const out = await runCli(["plan", "--format", format]);
      assert.equal(out.status, 0);
      for (const command of ["show", "check"]) {
        const r = await runCli([command, "-"], { input: out.stdout });
        assert.equal(r.status, 2, command);
        assert.equal(r.stdout, "");
        assert.match(r.stderr, /^(?:vm-allocator: error: )?stdin: 1:1: invalid JSON: [^\n]+\n$/);
      }
    });
  }
});

describe("a report must say what the plan it carries says", { concurrency: true }, () => {
  it("check lists every difference by its path; show refuses in one line", async () => {
    const report = await defaultReport();
    report.devices[2]!.owner = "intruder";
    report.addressSpaces[1]!.segments.pop();
    report.idSpaces[0]!.assignments[1]!.origin = "reserved";
    delete report.idSpaces[0]!.assignments[0]!.owner;
    report["extra"] = 1;
    assert.deepEqual(await checkProblems(report), [
      "extra: unknown field",
      "addressSpaces[1].segments: has 8 entries, but the plan in this report gives 9",
      'idSpaces[0].assignments[0].owner: is missing; the plan in this report gives "i8042@1"',
      'idSpaces[0].assignments[1].origin: is "reserved", but the plan in this report gives "fixed"',
      'devices[2].owner: is "intruder", but the plan in this report gives "virtio-balloon0@2"',
    ]);
    const shown = await runCli(["show", "-"], { input: JSON.stringify(report) });
    assert.equal(shown.status, 2);
    assert.equal(shown.stdout, "");
    assert.equal(shown.stderr, "vm-allocator: error: stdin: extra: unknown field (and 4 more problems; `vm-allocator check` lists them all)\n");
  });

  it("lists at most 20 differences, then says how many more", async () => {
    // Renaming and re-owning all 14 devices: 28 differences.
    const report = await defaultReport();
    for (const d of report.devices) {
      d.name += "-x";
      d.owner += "-x";
    }
    const lines = await checkProblems(report);
    assert.equal(lines.length, 21);
    assert.deepEqual(lines.slice(0, 2), [
      'devices[0].name: is "serial0-x", but the plan in this report gives "serial0"',
      'devices[0].owner: is "serial0@0-x", but the plan in this report gives "serial0@0"',
    ]);
    assert.equal(lines[20], "and 4 more differences between the report and its plan");
  });

  it("a problem in the plan it carries is named under plan, and nothing else is compared", async () => {
    const report = await defaultReport();
    (report.plan["devices"] as { owner: string }[])[2]!.owner = "nope";
    report.devices[3]!.owner = "also wrong, but not reported";
    assert.deepEqual(await checkProblems(report), ['plan.devices[2].owner: must be "virtio-balloon0@2" (name@instanceId), got "nope"']);
    report.plan = { ...report.plan, version: 7 };
    assert.deepEqual(await checkProblems(report), ["plan.version: unsupported version 7; this vm-allocator reads versions 2 and 3"]);
  });

  it("a report without its plan, or of another version, says what to do", async () => {
    const report = await defaultReport();
    const withoutPlan: Record<string, unknown> = { ...report };
    delete withoutPlan["plan"];
    assert.deepEqual(await checkProblems(withoutPlan), [
      "plan: is missing: the report has no saved plan to read back; write the report again with `vm-allocator plan --format json`",
    ]);
    assert.deepEqual(await checkProblems({ ...report, version: 2 }), ["version: unsupported version 2; this vm-allocator reads version 1"]);
  });

  it("plan refuses a report as its layout, pointing to show", async () => {
    const file = join(dir, "report-as-layout.json");
    writeFileSync(file, JSON.stringify(await defaultReport()));
    const r = await runCli(["plan", file]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `vm-allocator: error: ${file}: is a plan report, not a layout; print it with \`vm-allocator show ${file}\`\n`);
  });
});
