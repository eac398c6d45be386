/**
 * The API reference: `typedoc` (configured by typedoc.json, as `npm run docs` runs it) builds with
 * no warning at all (missing documentation and broken links are warnings, and warnings fail the
 * build), every public export of src/index.ts has a page, the README is the front page, and the
 * classes the README tour uses link to its examples. Properties (members of inline object types
 * included), enum members and type parameters are documented too, and their comments reach the
 * pages. Built into a temporary folder, so docs/api/ is left alone.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { ReflectionKind } from "typedoc";
import { headingAnchor, tourSections } from "../../web/typedoc-tour-links.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const TYPEDOC = join(ROOT, "node_modules", "typedoc", "bin", "typedoc");

/** A reflection of typedoc's JSON output, as far as these tests read it. */
interface JsonReflection {
  readonly name: string;
  readonly kind: number;
  readonly flags?: { readonly isExternal?: boolean };
  readonly comment?: { readonly summary: readonly { readonly text: string }[] };
  readonly children?: readonly JsonReflection[];
  readonly signatures?: readonly JsonReflection[];
  readonly typeParameters?: readonly JsonReflection[];
  readonly type?: JsonType;
}

/** A type of typedoc's JSON output: only the parts that can hold reflections. */
interface JsonType {
  readonly type: string;
  readonly declaration?: JsonReflection;
  readonly types?: readonly JsonType[];
  readonly elementType?: JsonType;
  readonly target?: JsonType | number;
  readonly typeArguments?: readonly JsonType[];
}

/** Every reflection of `kinds` under `node` (object types of properties and return types included), with its dotted path. */
function reflectionsOf(node: JsonReflection, kinds: number, path = ""): { path: string; reflection: JsonReflection }[] {
  const out: { path: string; reflection: JsonReflection }[] = [];
  const here = node.kind === ReflectionKind.Project ? "" : path === "" ? node.name : `${path}.${node.name}`;
  if ((node.kind & kinds) !== 0) out.push({ path: here, reflection: node });
  const inType = (t: JsonType | number | undefined): void => {
    if (t === undefined || typeof t === "number") return;
    if (t.declaration !== undefined) out.push(...reflectionsOf(t.declaration, kinds, here));
    for (const u of [...(t.types ?? []), ...(t.typeArguments ?? [])]) inType(u);
    inType(t.elementType);
    inType(t.target);
  };
  for (const c of [...(node.children ?? []), ...(node.typeParameters ?? [])]) out.push(...reflectionsOf(c, kinds, here));
  inType(node.type);
  for (const s of node.signatures ?? []) {
    for (const t of s.typeParameters ?? []) out.push(...reflectionsOf(t, kinds, here));
    inType(s.type);
  }
  return out;
}

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
      execFile(process.execPath, [TYPEDOC, "--out", out, "--json", join(out, "api.json")], { cwd: ROOT, env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } }, (error, stdout, stderr) => {
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
    for (const kind of ["Class", "Interface", "Function", "Variable", "TypeAlias", "Method", "Accessor", "Constructor", "Enum", "EnumMember", "Property", "TypeParameter"]) {
      assert.ok((config["requiredToBeDocumented"] as string[]).includes(kind), kind);
    }
    assert.ok((config["plugin"] as string[]).includes("./dist/web/typedoc-member-tags.js"));
  });

  it("documents every property, enum member and type parameter, members of inline object types included", () => {
    const project = JSON.parse(readFileSync(join(out, "api.json"), "utf8")) as JsonReflection;
    const found = reflectionsOf(project, ReflectionKind.Property | ReflectionKind.EnumMember | ReflectionKind.TypeParameter);
    // Inherited from the standard library (Error.stack, ...): not ours to document.
    const ours = found.filter((f) => f.reflection.flags?.isExternal !== true);
    const undocumented = ours.filter((f) => (f.reflection.comment?.summary ?? []).every((p) => p.text.trim() === "")).map((f) => f.path);
    assert.deepEqual(undocumented, []);
    assert.ok(ours.filter((f) => f.reflection.kind === ReflectionKind.Property).length > 500, `${ours.length} documented`);
    // A member of a one-line object type, documented by a @property tag of its holder (the plugin).
    const start = ours.find((f) => f.path === "RangeInclusive.toJSON.__type.start");
    assert.match(start?.reflection.comment?.summary.map((p) => p.text).join("") ?? "", /first value/i);
  });

  it("shows the comments of inline object members on the pages", () => {
    const text = (file: string) => readFileSync(join(out, file), "utf8").replace(/<[^>]+>/g, "").replace(/\s+/g, " ");
    // A property of a one-line return type, shown under the method.
    assert.match(text("classes/RangeInclusive.html"), /end: string.*The last value, inclusive/);
    // Members of a readonly array of objects, which the theme does not expand: listed in the holder's comment.
    assert.match(text("interfaces/PciSlotAllocatorSnapshot.html"), /firstDevice: Lowest device slot handed out automatically/);
    // Members of frozen constant tables, shown as enumeration members.
    assert.match(text("enums/AllocatorErrorCode.html"), /NotFound.*A device, owner or mapping that does not exist/);
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
