/**
 * The dependency rules of the design, checked on the sources: the core imports nothing else of
 * ours and nothing from Node; the system allocator builds on the core only; the buses and the
 * device manager know allocation only through the callback types; nothing in the library
 * imports the CLI; and the entry point only re-exports.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const srcDir = join(root, "src");
const modules = readdirSync(srcDir).filter((f) => f.endsWith(".ts")).map((f) => f.replace(/\.ts$/, ""));

function importsOf(module: string): string[] {
  const text = readFileSync(join(srcDir, `${module}.ts`), "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}
const local = (specifier: string): string | undefined =>
  specifier.startsWith("./") ? specifier.slice(2).replace(/\.js$/, "") : undefined;

const CORE = ["errors", "u64", "range", "resource", "allocation-callbacks", "address-allocator", "id-allocator"];
const SYSTEM = ["layouts", "system-allocator", "system-allocator-interface"];
const DEVICES = ["device", "bus", "device-manager"];
const CONCRETE_ALLOCATORS = ["address-allocator", "id-allocator", "system-allocator", "layouts"];

describe("architecture", () => {
  it("every module of src/ is in exactly one layer", () => {
    for (const m of modules) {
      const layers = [CORE, SYSTEM, DEVICES, ["index"]].filter((layer) => layer.includes(m));
      assert.equal(layers.length, 1, `${m} belongs to ${layers.length} layers`);
    }
  });

  it("no library module imports from node:* or from outside src/", () => {
    for (const m of modules) {
      for (const spec of importsOf(m)) {
        assert.ok(local(spec) !== undefined, `src/${m}.ts imports ${spec}`);
        assert.ok(!spec.includes(".."), `src/${m}.ts imports ${spec}`);
      }
    }
  });

  it("the core imports only the core", () => {
    for (const m of CORE) {
      for (const spec of importsOf(m)) assert.ok(CORE.includes(local(spec)!), `core module ${m} imports ${spec}`);
    }
  });

  it("the system allocator builds on the core only", () => {
    for (const m of SYSTEM) {
      for (const spec of importsOf(m)) {
        const target = local(spec)!;
        assert.ok(CORE.includes(target) || SYSTEM.includes(target), `${m} imports ${spec}`);
      }
    }
  });

  it("buses and the device manager know allocation only through the callback types", () => {
    for (const m of DEVICES) {
      for (const spec of importsOf(m)) {
        assert.ok(!CONCRETE_ALLOCATORS.includes(local(spec)!), `${m} imports the concrete allocator module ${spec}`);
      }
    }
  });

  it("index.ts only re-exports", () => {
    const text = readFileSync(join(srcDir, "index.ts"), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    const statements = text.split(";").map((s) => s.trim()).filter((s) => s.length > 0);
    for (const s of statements) assert.match(s, /^export (type )?(\{[\s\S]*\}|\*) from "\.\/[a-z0-9-]+\.js"$/, s);
  });
});
