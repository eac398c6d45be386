/**
 * The API reference: `typedoc` (configured by typedoc.json, as `npm run docs` runs it) builds with
 * no warning at all (missing documentation and broken links are warnings, and warnings fail the
 * build), every public export of src/index.ts has a page, the README is the front page, and the
 * classes the README tour uses link to its examples. Built into a temporary folder, so docs/api/
 * is left alone.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { headingAnchor, tourSections } from "../../web/typedoc-tour-links.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const TYPEDOC = join(ROOT, "node_modules", "typedoc", "bin", "typedoc");

/** Every name src/index.ts exports. */
function publicNames(): string[] {
  const file = ts.createSourceFile("index.ts", readFileSync(join(ROOT, "src", "index.ts"), "utf8"), ts.ScriptTarget.ES2022);
  const names: string[] = [];
  for (const s of file.statements) {
    assert.ok(ts.isExportDeclaration(s) && s.exportClause !== undefined && ts.isNamedExports(s.exportClause), "src/index.ts has only named re-exports");
    for (const e of s.exportClause.elements) names.push(e.name.text);
  }
  return names;
}

describe("the API reference", () => {
  let out = "";
  let result: { code: number; output: string } = { code: -1, output: "" };

  before(async () => {
    out = mkdtempSync(join(tmpdir(), "vm-allocator-docs-"));
    result = await new Promise((resolve) => {
      execFile(process.execPath, [TYPEDOC, "--out", out], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, output: `${stdout}${stderr}` });
      });
    });
  });

  after(() => rmSync(out, { recursive: true, force: true }));

  it("builds with typedoc.json and no warning or error", () => {
    assert.equal(result.code, 0, result.output);
    assert.doesNotMatch(result.output, /warning|error/i, result.output);
    assert.match(result.output, /Loaded plugin .*typedoc-tour-links\.js/);
    assert.ok(existsSync(join(out, "index.html")));
  });

  it("treats missing documentation and broken links as errors", () => {
    const config = JSON.parse(readFileSync(join(ROOT, "typedoc.json"), "utf8")) as Record<string, unknown>;
    assert.equal(config["treatWarningsAsErrors"], true);
    assert.deepEqual(config["validation"], { notExported: true, invalidLink: true, invalidPath: true, rewrittenLink: true, notDocumented: true });
    for (const kind of ["Class", "Interface", "Function", "Variable", "TypeAlias", "Method", "Accessor", "Constructor", "Enum"]) {
      assert.ok((config["requiredToBeDocumented"] as string[]).includes(kind), kind);
    }
  });

  it("has a page for every public export of src/index.ts", () => {
    const names = publicNames();
    assert.ok(names.length > 100, `${names.length} exports`);
    const pages = new Set<string>();
    for (const dir of readdirSync(out, { withFileTypes: true })) {
      if (dir.isDirectory() && dir.name !== "assets") for (const f of readdirSync(join(out, dir.name))) pages.add(f.replace(/\.html$/, ""));
    }
    const missing = names.filter((n) => !pages.has(n));
    assert.deepEqual(missing, []);
  });

  it("has the README as its front page", () => {
    const index = readFileSync(join(out, "index.html"), "utf8");
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const heading of readme.matchAll(/^##+ (.+)$/gm)) {
      assert.match(index, new RegExp(`id="${headingAnchor(heading[1]!)}"`), heading[1]);
    }
  });

  it("resolves the README's links to its own headings, on GitHub and on the front page alike", () => {
    const index = readFileSync(join(out, "index.html"), "utf8");
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const links = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]!);
    assert.ok(links.length > 0);
    for (const anchor of links) assert.match(index, new RegExp(`id="${anchor}"`), `#${anchor}`);
  });

  it("links each class the README tour uses to the tour's examples", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const sections = tourSections(readme);
    assert.ok(sections.length >= 5, JSON.stringify(sections));
    const classes = new Set(readdirSync(join(out, "classes")).map((f) => f.replace(/\.html$/, "")));
    let linked = 0;
    for (const section of sections) {
      for (const name of section.names.filter((n) => classes.has(n))) {
        const page = readFileSync(join(out, "classes", `${name}.html`), "utf8");
        assert.ok(page.includes(`<a href="../#${headingAnchor(section.heading)}">${section.heading}</a>`), `${name} links to "${section.heading}"`);
        linked++;
      }
    }
    // The tour uses at least AddressAllocator, IdAllocator, RangeInclusive, DefaultSystemAllocator and DeviceManager.
    for (const name of ["AddressAllocator", "IdAllocator", "RangeInclusive", "DefaultSystemAllocator", "DeviceManager"]) {
      assert.ok(sections.some((s) => s.names.includes(name)), name);
    }
    assert.ok(linked >= 7, `${linked} links`);
  });

  it("reads the tour's sections and imports, and names anchors as typedoc does", () => {
    const readme = "# x\n\n## API tour\n\n### One: a `b`\n\n```js\nimport { A, type B, C as D } from \"vm-allocator\";\n```\n\n### Prose only\n\n## Next\n\n### Not tour\n\n```js\nimport { E } from \"vm-allocator\";\n```\n";
    assert.deepEqual(tourSections(readme), [{ heading: "One: a `b`", names: ["A", "B", "C"] }]);
    assert.deepEqual(tourSections("# no tour\n"), []);
    assert.equal(headingAnchor("A whole VM: system allocator and device manager"), "a-whole-vm-system-allocator-and-device-manager");
    assert.equal(headingAnchor("Command line: vm-allocator"), "command-line-vm-allocator");
    assert.equal(headingAnchor("The `vm-allocator` command"), "the-command");
  });
});
