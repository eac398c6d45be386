/**
 * Runs every ```js block of README.md against the built library, so the API tour cannot drift
 * from the code. Each block runs in its own Node process, with `vm-allocator` resolved to dist.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const library = pathToFileURL(join(root, "dist", "src", "index.js")).href;
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe("README API tour", () => {
  it("has code blocks to run", () => {
    assert.ok(blocks.length >= 5, `found ${blocks.length} js blocks`);
  });
  const dir = mkdtempSync(join(tmpdir(), "vm-allocator-readme-"));
  blocks.forEach((code, i) => {
    const firstLine = code.split("\n").find((l) => l.startsWith("//")) ?? "";
    it(`block ${i + 1} runs ${firstLine}`, () => {
      const file = join(dir, `block-${i + 1}.mjs`);
      writeFileSync(file, code.replaceAll('from "vm-allocator"', `from ${JSON.stringify(library)}`));
      execFileSync(process.execPath, [file], { stdio: "pipe" });
    });
  });
  it("cleans up", () => rmSync(dir, { recursive: true, force: true }));
});
