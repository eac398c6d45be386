/**
 * The dependency rules of the design, checked on the sources, one rule per folder of src/:
 *
 * - `core/` (u64, errors, ranges, the resource model, the address and id allocators) imports
 *   only `core/`;
 * - `system/` (layouts and presets, the callback types, the system allocator) builds on `core/`;
 * - `devices/` (device shapes, buses, the device manager) and `pci/` know allocation only through
 *   the callback types and the `SystemAllocator` interface, never a concrete allocator;
 * - `shared/` (thread sharing) builds on everything below it;
 * - `guest/` (the guest's view of a plan: kernel command line, device tree) builds on `core/`,
 *   `system/` and `devices/`;
 * - `index.ts` only re-exports;
 * - nothing in src/ imports `node:*`, a package, or anything outside src/ (the CLI, the web page).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, posix, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const srcDir = join(root, "src");

/** Every .ts file below `dir`, as a path relative to src/ with forward slashes and no extension. */
function modulesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) out.push(...modulesBelow(full));
    else if (entry.endsWith(".ts")) out.push(relative(srcDir, full).split(sep).join("/").replace(/\.ts$/, ""));
  }
  return out;
}
const modules = modulesBelow(srcDir);

function importsOf(module: string): string[] {
  const text = readFileSync(join(srcDir, `${module}.ts`), "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}
/** The module an import of `module` names, relative to src/, or undefined when it leaves src/. */
function target(module: string, specifier: string): string | undefined {
  if (!specifier.startsWith(".")) return undefined;
  const resolved = posix.normalize(posix.join(posix.dirname(module), specifier)).replace(/\.js$/, "");
  return resolved.startsWith("..") ? undefined : resolved;
}
const folderOf = (module: string): string => (module.includes("/") ? module.slice(0, module.indexOf("/")) : "");

/** The callback types and the interface: all that devices/ and pci/ may know of allocation. */
const ALLOCATION_CONTRACT = ["system/allocation-callbacks", "system/system-allocator-interface"];

/** For each folder, what its modules may import: whole folders, or single modules. */
const ALLOWED: Record<string, { folders: string[]; modules: string[] }> = {
  core: { folders: ["core"], modules: [] },
  system: { folders: ["core", "system"], modules: [] },
  devices: { folders: ["core", "devices"], modules: ALLOCATION_CONTRACT },
  pci: { folders: ["core", "devices", "pci"], modules: ALLOCATION_CONTRACT },
  shared: { folders: ["core", "system", "devices", "shared"], modules: [] },
  guest: { folders: ["core", "system", "devices", "guest"], modules: [] },
};

describe("architecture", () => {
  it("every module of src/ is in a layer folder, except the entry point", () => {
    for (const m of modules) {
      if (m === "index") continue;
      assert.ok(folderOf(m) in ALLOWED, `src/${m}.ts is not in one of ${Object.keys(ALLOWED).join(", ")}`);
    }
    for (const layer of ["core", "system", "devices"]) {
      assert.ok(modules.some((m) => folderOf(m) === layer), `src/${layer}/ has no module`);
    }
  });

  it("no library module imports from node:*, a package, or outside src/", () => {
    for (const m of modules) {
      for (const spec of importsOf(m)) assert.ok(target(m, spec) !== undefined, `src/${m}.ts imports ${spec}`);
    }
  });

  for (const [folder, allowed] of Object.entries(ALLOWED)) {
    it(`src/${folder}/ imports only ${[...allowed.folders.map((f) => `${f}/`), ...allowed.modules].join(", ")}`, () => {
      for (const m of modules.filter((x) => folderOf(x) === folder)) {
        for (const spec of importsOf(m)) {
          const t = target(m, spec)!;
          const ok = allowed.folders.includes(folderOf(t)) || allowed.modules.includes(t);
          assert.ok(ok, `src/${m}.ts imports ${spec} (${t})`);
        }
      }
    });
  }

  it("devices/ never names a concrete allocator", () => {
    for (const m of modules.filter((x) => ["devices", "pci"].includes(folderOf(x)))) {
      const text = readFileSync(join(srcDir, `${m}.ts`), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      for (const name of ["DefaultSystemAllocator", "AddressAllocator", "IdAllocator"]) {
        assert.ok(!new RegExp(`\\b${name}\\b`).test(text), `src/${m}.ts names ${name}`);
      }
    }
  });

  it("index.ts only re-exports", () => {
    const text = readFileSync(join(srcDir, "index.ts"), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    const statements = text.split(";").map((s) => s.trim()).filter((s) => s.length > 0);
    for (const s of statements) assert.match(s, /^export (type )?(\{[\s\S]*\}|\*) from "\.\/[a-z0-9/-]+\.js"$/, s);
  });

  it("nothing outside the CLI imports the CLI or the web page", () => {
    const dirs = ["src", "bench", "examples"].map((d) => join(root, d));
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((e) => {
        const full = join(dir, e);
        return statSync(full).isDirectory() ? files(full) : e.endsWith(".ts") ? [full] : [];
      });
    for (const file of dirs.flatMap(files)) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
        const resolved = resolve(dirname(file), m[1]!);
        for (const top of ["cli", "web"]) {
          assert.ok(!resolved.startsWith(join(root, top) + sep), `${relative(root, file)} imports ${m[1]}`);
        }
      }
    }
  });
});
