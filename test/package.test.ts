/**
 * The package as a user gets it. One test packs the working tree as it is (copied, so that the
 * pack's `prepare` builds from sources and never touches the dist/ these tests run from) and
 * installs the tarball into a new project; the other installs from a git URL of HEAD (so it
 * tests what is committed, not the work tree). Each then imports the library and runs
 * `npx vm-allocator` in that project.
 *
 * npm runs with `--prefer-offline`: the package has no runtime dependencies, and a git
 * install's `prepare` needs only the dev dependencies, which `npm ci` has already put in the
 * npm cache, so neither install asks the registry anything.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; version: string };
const DEFAULT_PLAN = readFileSync(join(ROOT, "examples", "layouts", "expected", "default.txt"), "utf8");
const NPM_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund", "--no-update-notifier"];

/**
 * The environment for npm: ours, without the `npm_*` variables of an `npm test` around us (its
 * package, lifecycle and local prefix belong to the repository, not to the project under /tmp),
 * but keeping the settings a machine needs to reach its cache and registry.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|userconfig|globalconfig|registry|cafile|strict_ssl|proxy|https_proxy|noproxy)$/i;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|init_cwd$)/i.test(k) || keep.test(k)) env[k] = v;
  return env;
}

/** Runs a command to completion; a non-zero exit fails with its output. */
function exec(file: string, args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env: npmEnv(), encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 110_000 }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout);
      else reject(new Error(`${file} ${args.join(" ")} (in ${cwd}) failed: ${error.message}\n${stdout}\n${stderr}`));
    });
  });
}

/** An entry of a tar archive. */
interface TarEntry {
  readonly path: string;
  readonly mode: number;
}

/** The regular files of a .tgz, read from the archive itself rather than from npm's account of it. */
function tarEntries(file: string): TarEntry[] {
  const data = gunzipSync(readFileSync(file));
  const text = (at: number, len: number) => data.toString("utf8", at, at + len).replace(/\0.*$/s, "");
  const octal = (at: number, len: number) => parseInt(text(at, len).trim() || "0", 8);
  const entries: TarEntry[] = [];
  let paxPath: string | undefined;
  for (let at = 0; at + 512 <= data.length && data[at] !== 0; ) {
    const size = octal(at + 124, 12);
    const type = text(at + 156, 1);
    const body = at + 512;
    if (type === "x") {
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8", body, body + size))?.[1];
    } else {
      const prefix = text(at + 345, 155);
      const name = paxPath ?? (prefix === "" ? text(at, 100) : `${prefix}/${text(at, 100)}`);
      if (type === "0" || type === "") entries.push({ path: name, mode: octal(at + 100, 8) });
      paxPath = undefined;
    }
    at = body + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/** Creates an empty ESM project in `dir`, installs `spec` into it and checks the import and the command. */
async function installAndUse(dir: string, spec: string): Promise<void> {
  const project = join(dir, "consumer");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), `${JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module" })}\n`);
  await exec("npm", ["install", ...NPM_FLAGS, spec], project);

  const installed = join(realpathSync(project), "node_modules", pkg.name);
  assert.ok(existsSync(join(installed, "dist", "src", "index.d.ts")), "the types are installed");
  assert.ok((statSync(join(installed, "dist", "cli", "main.js")).mode & 0o111) !== 0, "the command is executable");
  writeFileSync(
    join(project, "use.mjs"),
    [
      'import assert from "node:assert/strict";',
      'import { AddressAllocator, DefaultSystemAllocator, DeviceManager } from "vm-allocator";',
      "const mmio = new AddressAllocator(0xc000_0000n, 0x4000_0000n);",
      'assert.equal(String(mmio.allocate(0x1000n, 0x1000n)), "[mem 0xc0000000-0xc0000fff]");',
      "DeviceManager.fromSystemAllocator(new DefaultSystemAllocator()).checkConsistency();",
      'process.stdout.write(import.meta.resolve("vm-allocator"));',
      "",
    ].join("\n"),
  );
  const resolved = await exec(process.execPath, ["use.mjs"], project);
  assert.ok(resolved.startsWith(pathToFileURL(installed).href + "/"), `vm-allocator resolved to ${resolved}, not to the installed copy`);

  // `--no`: use the project's own bin, never fetch a package named vm-allocator.
  assert.equal(await exec("npx", ["--no", "--", "vm-allocator", "plan"], project), DEFAULT_PLAN);
  assert.equal(await exec("npx", ["--no", "--", "vm-allocator", "--version"], project), `${pkg.version}\n`);
}

describe("the package", { concurrency: true, timeout: 120_000 }, () => {
  it("npm pack of the working tree builds the library and the command; the tarball installs and works", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vm-allocator-pack-"));
    try {
      // The work tree as git sees it (tracked and new files, without ignored ones such as dist/).
      const tree = join(dir, "tree");
      const listed = (await exec("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)).split("\0");
      for (const file of listed) {
        if (file === "" || file === "node_modules" || !existsSync(join(ROOT, file))) continue;
        mkdirSync(dirname(join(tree, file)), { recursive: true });
        copyFileSync(join(ROOT, file), join(tree, file));
      }
      symlinkSync(realpathSync(join(ROOT, "node_modules")), join(tree, "node_modules"), "dir");
      const packed = JSON.parse(await exec("npm", ["pack", "--json", "--pack-destination", dir, ...NPM_FLAGS], tree)) as { filename: string }[];
      const tarball = join(dir, packed[0]!.filename);

      const entries = tarEntries(tarball);
      const paths = new Set(entries.map((e) => e.path));
      for (const required of ["package.json", "README.md", "LICENSE", "dist/src/index.js", "dist/src/index.d.ts", "dist/cli/main.js"]) {
        assert.ok(paths.has(`package/${required}`), `the tarball has ${required}`);
      }
      for (const { path } of entries) {
        assert.match(path, /^package\/(?:package\.json|README\.md|LICENSE|(?:dist\/)?(?:src|cli)\/.+)$/, `${path} does not belong in the package`);
        // Every built file comes from a source that ships with it (no stale output of a removed file).
        const built = /^package\/dist\/((?:src|cli)\/.+?)\.(?:js|d\.ts)(?:\.map)?$/.exec(path);
        if (built !== null) assert.ok(paths.has(`package/${built[1]}.ts`), `${path} has no source in the tarball`);
      }
      const main = entries.find((e) => e.path === "package/dist/cli/main.js")!;
      assert.equal(main.mode & 0o777, 0o755, "the command is executable in the tarball");

      await installAndUse(dir, tarball);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("npm install of a git URL of HEAD builds the package in prepare and works", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vm-allocator-git-"));
    try {
      const head = (await exec("git", ["rev-parse", "HEAD"], ROOT)).trim();
      const repo = join(dir, "repo.git");
      await exec("git", ["clone", "--quiet", "--bare", ROOT, repo], dir);
      await installAndUse(dir, `git+${pathToFileURL(repo).href}#${head}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
