/**
 * Builds the playground (`npm run build` runs it after `tsc`): dist/playground/index.html and
 * dist/playground/playground.js, two static files that work offline, from any static host and
 * from `file://`.
 *
 * Why a bundle: browsers refuse ES module scripts from `file://` (the page's origin is opaque), so
 * the compiled modules under dist/ (the library in dist/src and the command's browser-safe
 * modules in dist/cli) are joined into one classic script. Each module is turned into a function
 * by TypeScript's own CommonJS transform (no regex rewriting of imports), registered under its
 * path in dist/, and `require`d from a table; the page's single dynamic import (the guest
 * renderers, which a build may not have) resolves against the same table and fails cleanly
 * when the module is absent. Comments and indentation are dropped (outside string and template
 * literals); names are left alone, so stack traces stay readable.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import ts from "typescript";
import { GUEST_MODULE } from "./pipeline.js";

/** The page's entry module, relative to dist/. */
export const ENTRY = "web/playground.js";
/** Modules the page loads only if this build has them, relative to dist/. */
export const OPTIONAL = [posix.join("web", GUEST_MODULE)];

/** Removes indentation and blank lines, except where a line starts inside a string or template literal. */
export function stripWhitespace(code: string): string {
  const file = ts.createSourceFile("m.js", code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.JS);
  const literals: [number, number][] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateExpression(node) || ts.isRegularExpressionLiteral(node)) {
      literals.push([node.getStart(file), node.end]);
      return;
    }
    node.forEachChild(visit);
  };
  visit(file);
  const inLiteral = (offset: number) => literals.some(([s, e]) => offset > s && offset < e);
  const out: string[] = [];
  let offset = 0;
  for (const line of code.split("\n")) {
    if (inLiteral(offset)) out.push(line);
    else if (line.trim() !== "") out.push(line.trimStart());
    offset += line.length + 1;
  }
  return out.join("\n");
}

/** The modules reachable from `entry` (and the optional ones that exist), as paths relative to `dist`. */
export function moduleGraph(dist: string, entry: string, optional: readonly string[]): string[] {
  const seen = new Set<string>();
  const visit = (id: string, required: boolean, from: string): void => {
    if (seen.has(id)) return;
    if (!existsSync(join(dist, id))) {
      if (required) throw new Error(`${from} imports ${id}, which is not in ${dist}`);
      return;
    }
    seen.add(id);
    const text = readFileSync(join(dist, id), "utf8");
    for (const f of ts.preProcessFile(text, true, true).importedFiles) {
      if (!f.fileName.startsWith(".")) throw new Error(`${id} imports ${f.fileName}: the page can only bundle relative imports`);
      visit(posix.normalize(posix.join(posix.dirname(id), f.fileName)), true, id);
    }
  };
  visit(entry, true, "the entry point");
  for (const id of optional) visit(id, false, "");
  return [...seen];
}

/** One classic script holding `modules` (paths relative to `dist`) that runs `entry`. */
export function bundle(dist: string, modules: readonly string[], entry: string): string {
  const defs = modules.map((id) => {
    const { outputText } = ts.transpileModule(readFileSync(join(dist, id), "utf8"), {
      fileName: id,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, removeComments: true, esModuleInterop: false, sourceMap: false },
    });
    return `${JSON.stringify(id)}: function (exports, require, module) {\n${stripWhitespace(outputText)}\n}`;
  });
  return `${[
    "(() => {",
    '"use strict";',
    `const defs = {\n${defs.join(",\n")}\n};`,
    "const cache = {};",
    "const resolve = (dir, spec) => {",
    "const parts = dir === \"\" ? [] : dir.split(\"/\");",
    "for (const p of spec.split(\"/\")) { if (p === \"..\") parts.pop(); else if (p !== \".\") parts.push(p); }",
    "return parts.join(\"/\");",
    "};",
    "const load = (id) => {",
    "if (id in cache) return cache[id].exports;",
    'if (!Object.hasOwn(defs, id)) throw new Error(`module ${id} is not in this build`);',
    "const module = { exports: {} };",
    "cache[id] = module;",
    'const dir = id.includes("/") ? id.slice(0, id.lastIndexOf("/")) : "";',
    "defs[id].call(module.exports, module.exports, (spec) => load(resolve(dir, spec)), module);",
    "return module.exports;",
    "};",
    `load(${JSON.stringify(entry)});`,
    "})();",
  ].join("\n")}\n`;
}

/** Text for a `<script type="application/json">`: `<` escaped so no `</script>` can end it early. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

/** The example layouts shown in the page's menu: every examples/layouts/*.json. */
export function exampleLayouts(root: string): { name: string; text: string }[] {
  const dir = join(root, "examples", "layouts");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), "utf8") }));
}

/** Writes dist/playground/ and returns its files' sizes. */
export function buildPlayground(root: string): { files: Record<string, number>; gzipped: number } {
  const dist = join(root, "dist");
  const out = join(dist, "playground");
  const modules = moduleGraph(dist, ENTRY, OPTIONAL);
  const script = bundle(dist, modules, ENTRY);
  const template = readFileSync(join(root, "web", "index.html"), "utf8");
  const html = template
    .replace("<!--EXAMPLES-->", () => `<script type="application/json" id="examples">${scriptJson(exampleLayouts(root))}</script>`)
    .replace("<!--SCRIPT-->", '<script src="playground.js"></script>');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "index.html"), html);
  writeFileSync(join(out, "playground.js"), script);
  const files = { "index.html": Buffer.byteLength(html), "playground.js": Buffer.byteLength(script) };
  return { files, gzipped: gzipSync(html, { level: 9 }).length + gzipSync(script, { level: 9 }).length };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const { files, gzipped } = buildPlayground(root);
  const total = Object.values(files).reduce((a, b) => a + b, 0);
  console.log(`dist/playground: ${Object.entries(files).map(([f, n]) => `${f} ${n}`).join(", ")} bytes; ${total} in all, ${gzipped} gzipped`);
}
