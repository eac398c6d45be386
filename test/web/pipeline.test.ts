/**
 * The playground's modules in Node: what the page plans and prints is what the command plans
 * and prints (the same layouts give the same SVG, tables and /proc/iomem, and the same problem
 * lines as `vm-allocator check`), field paths are found in the editor's text, and the bundler
 * takes exactly the browser-safe modules.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../../cli/run.js";
import { ENTRY, moduleGraph, OPTIONAL, stripWhitespace } from "../../web/bundle.js";
import { locatePath } from "../../web/json-locate.js";
import { InputError } from "../../cli/diagnostics.js";
import { guestText, loadGuest, loadSavedText, locate, planText, render, savedPlanText } from "../../web/pipeline.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DIST = join(ROOT, "dist");
const LAYOUTS = join(ROOT, "examples", "layouts");
const env = { env: {}, stdout: {}, stderr: {}, readStdin: () => Buffer.alloc(0) };
const examples = readdirSync(LAYOUTS).filter((f) => f.endsWith(".json")).sort();

describe("the playground plans as the command does", () => {
  it("has example layouts to test with, one of them broken", () => {
    assert.ok(examples.length >= 4, examples.join(", "));
    assert.ok(examples.includes("broken.json"));
  });

  for (const name of examples) {
    it(`${name}: the same output as plan, or the same problems as check`, () => {
      const file = join(LAYOUTS, name);
      const outcome = planText(readFileSync(file, "utf8"), file);
      const check = run(["check", file], env);
      if (outcome.plan === undefined) {
        assert.equal(check.status, 2);
        assert.deepEqual(locate(outcome.problems, file).map((p) => p.line), check.stderr.trimEnd().split("\n"));
        return;
      }
      assert.equal(check.status, 0, check.stderr);
      const r = render(outcome.plan);
      for (const [format, text] of [["svg", r.svg], ["text", r.text], ["iomem", r.iomem]] as const) {
        const cli = run(["plan", file, "--format", format, "--no-color"], env);
        assert.equal(cli.status, 0, cli.stderr);
        assert.equal(text, cli.stdout, format);
      }
    });
  }

  it("a bad value is one problem with its field path, and the line the command prints", () => {
    const layout = { preset: "firecracker-x86_64", devices: [{ name: "blk", requests: [{ kind: "mmio", size: -4096 }] }] };
    const outcome = planText(JSON.stringify(layout), "layout.json");
    assert.equal(outcome.plan, undefined);
    assert.deepEqual(locate(outcome.problems, "layout.json"), [
      { path: "devices[0].requests[0].size", message: "must not be negative, got -4096", line: "layout.json: devices[0].requests[0].size: must not be negative, got -4096" },
    ]);
  });

  it("JSON syntax errors are problems at line:column; a repeated key is one too", () => {
    const broken = planText('{\n  "devices": [\n    { "name": "a" ]\n}', "layout.json");
    assert.equal(broken.plan, undefined);
    assert.match(broken.problems[0]!.path, /^3:\d+$/);
    assert.match(locate(broken.problems, "layout.json")[0]!.line, /^layout\.json: 3:\d+: invalid JSON: /);
    const twice = planText('{ "devices": [], "devices": [] }', "layout.json");
    assert.equal(twice.plan, undefined);
    assert.match(twice.problems[0]!.message, /devices/);
  });

  it("a saved plan loads back to the same renderings; layouts and plans are not mixed up", () => {
    const outcome = planText(readFileSync(join(LAYOUTS, "pc-q35.json"), "utf8"), "pc-q35.json");
    assert.ok(outcome.plan !== undefined);
    const saved = savedPlanText(outcome.plan.snapshot);
    assert.deepEqual(JSON.parse(saved), JSON.parse(JSON.stringify(outcome.plan.snapshot)));
    const back = loadSavedText(saved, "pc-q35.plan.json");
    assert.ok(back.plan !== undefined, JSON.stringify(back.problems));
    assert.deepEqual(render(back.plan), render(outcome.plan));
    // The --format json report is accepted too, as `show` accepts it.
    const report = run(["plan", join(LAYOUTS, "pc-q35.json"), "--format", "json"], env).stdout;
    assert.ok(loadSavedText(report, "report.json").plan !== undefined);

    const asLayout = planText(saved, "pc-q35.plan.json");
    assert.equal(asLayout.plan, undefined);
    assert.match(asLayout.problems[0]!.message, /is a saved plan, not a layout/);
    const asPlan = loadSavedText(readFileSync(join(LAYOUTS, "pc-q35.json"), "utf8"), "pc-q35.json");
    assert.equal(asPlan.plan, undefined);
    assert.match(asPlan.problems[0]!.message, /is not a saved plan; pc-q35\.json looks like a layout/);
    // A tampered plan is refused with the field that is wrong.
    const tampered = JSON.parse(saved) as { devices: { owner: string }[] };
    tampered.devices[0]!.owner = "someone-else@0";
    const refused = loadSavedText(JSON.stringify(tampered), "t.json");
    assert.equal(refused.plan, undefined);
    assert.ok(refused.problems.some((p) => p.path.startsWith("devices[0]")), JSON.stringify(refused.problems));
  });
});

describe("the guest view", () => {
  it("is loaded when this build has the guest renderers", async () => {
    const guest = await loadGuest();
    assert.equal(guest !== undefined, existsSync(join(DIST, "cli", "render", "guest.js")));
  });

  it("shows a renderer's text, the command's refusal, or an internal error, and never throws", () => {
    assert.deepEqual(guestText(() => "console=ttyS0"), { text: "console=ttyS0" });
    assert.deepEqual(guestText(() => { throw InputError.of("is an x86_64 machine", "layout.json"); }), { error: "is an x86_64 machine" });
    assert.deepEqual(guestText(() => { throw new TypeError("x is undefined"); }), { error: "internal error: x is undefined" });
  });
});

describe("locatePath", () => {
  const text = '{\n  "preset": "pc-x86_64",\n  "devices": [\n    { "name": "a", "requests": [ { "kind": "mmio", "size": -1 } ] },\n    { "name": "b\\"c", "requests": [] }\n  ]\n}\n';
  const at = (path: string) => {
    const s = locatePath(text, path);
    return s === undefined ? undefined : text.slice(s.start, s.end);
  };

  it("finds the value a field path names", () => {
    assert.equal(at("devices[0].requests[0].size"), "-1");
    assert.equal(at("devices[0].requests[0].kind"), '"mmio"');
    assert.equal(at("devices[1].name"), '"b\\"c"');
    assert.equal(at("devices[1].requests"), "[]");
    assert.equal(at("preset"), '"pc-x86_64"');
  });

  it("falls back to the nearest value that exists (a missing field is in its object)", () => {
    assert.equal(at("devices[0].requests[0].alignment"), '{ "kind": "mmio", "size": -1 }');
    assert.equal(at("devices[7].name"), text.slice(text.indexOf("["), text.lastIndexOf("]") + 1));
    assert.equal(at("layout.mmio32.size"), undefined);
  });

  it("points at line:column, and at nothing for the file as a whole or a path it cannot read", () => {
    assert.equal(at("2:3"), '"');
    assert.equal(at("4:5"), "{");
    assert.equal(at("1:1"), "{");
    assert.deepEqual(locatePath(text, "99:1"), { start: text.length, end: text.length }); // past the end: the end
    assert.equal(at(""), undefined);
    assert.equal(at("devices[x]"), undefined);
    assert.equal(locatePath("not json", "devices[0]"), undefined);
  });
});

describe("the bundler", () => {
  it("takes the page's modules and nothing that needs Node", () => {
    const modules = moduleGraph(DIST, ENTRY, OPTIONAL);
    assert.ok(modules.includes(ENTRY));
    for (const m of ["src/core/address-allocator.js", "cli/layout-file.js", "cli/plan.js", "cli/view.js", "cli/render/svg.js", "cli/render/text.js"]) {
      assert.ok(modules.includes(m), m);
    }
    for (const m of ["cli/run.js", "cli/args.js", "cli/main.js", "web/server.js", "web/bundle.js"]) assert.ok(!modules.includes(m), m);
    for (const m of modules) {
      const text = readFileSync(join(DIST, m), "utf8");
      assert.doesNotMatch(text, /from\s+"node:|import\("node:/, m);
    }
    // The guest renderers are in the bundle exactly when this build has them.
    for (const o of OPTIONAL) assert.equal(modules.includes(o), existsSync(join(DIST, o)), o);
  });

  it("refuses a module graph that leaves dist/ or imports a package", () => {
    assert.throws(() => moduleGraph(DIST, "web/no-such-module.js", []), /not in/);
    assert.throws(() => moduleGraph(DIST, "web/bundle.js", []), /can only bundle relative imports/);
  });

  it("drops indentation and blank lines but never inside a string or template literal", () => {
    const code = 'function f() {\n    const a = `x\n    y`;\n\n    const b = "p\\\n    q";\n    return /  a/.test(a) + b;\n}\n';
    const out = stripWhitespace(code);
    assert.equal(out, 'function f() {\nconst a = `x\n    y`;\nconst b = "p\\\n    q";\nreturn /  a/.test(a) + b;\n}');
    // Same behaviour: the literals kept every character.
    const fn = (source: string) => new Function(`${source}; return f();`)() as string;
    assert.equal(fn(out), fn(code));
  });
});
