/**
 * Command-line conventions: help for the command and each subcommand, the version, colour only
 * on a terminal and never with NO_COLOR or --no-color, results on stdout, diagnostics on stderr.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { useColor } from "../../cli/color.js";
import { MAIN, ROOT, runCli } from "./helpers.js";

const ESC = "\u001b[";

describe("help and version", { concurrency: true }, () => {
  for (const args of [["--help"], ["-h"], ["help"]]) {
    it(`${args.join(" ")} prints the overview on stdout`, async () => {
      const r = await runCli(args);
      assert.equal(r.status, 0);
      assert.equal(r.stderr, "");
      assert.match(r.stdout, /^usage: vm-allocator <command> \[options\]/);
      for (const command of ["plan", "check", "show"]) assert.match(r.stdout, new RegExp(`\\n  ${command} `));
    });
  }
  for (const command of ["plan", "check", "show"]) {
    it(`${command} --help and help ${command} print that command's help`, async () => {
      const [a, b] = await Promise.all([runCli([command, "--help"]), runCli(["help", command])]);
      assert.equal(a.status, 0);
      assert.equal(a.stderr, "");
      assert.match(a.stdout, new RegExp(`^usage: vm-allocator ${command} `));
      assert.equal(a.stdout, b.stdout);
    });
  }
  it("--help wins over other arguments, even bad ones", async () => {
    const r = await runCli(["plan", "no-such-file.json", "--help"]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^usage: vm-allocator plan /);
  });
  it("--version prints the version from package.json", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const r = await runCli([flag]);
      assert.equal(r.status, 0);
      assert.equal(r.stdout, `${version}\n`);
    }
  });
  it("package.json names dist/cli/main.js as the vm-allocator bin, and it starts with a shebang", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin?: Record<string, string>; files?: string[] };
    assert.equal(pkg.bin?.["vm-allocator"], "dist/cli/main.js");
    assert.ok(pkg.files?.includes("dist/cli"));
    assert.match(readFileSync(MAIN, "utf8"), /^#!\/usr\/bin\/env node\n/);
  });
});

describe("colour", { concurrency: true }, () => {
  it("is decided by the terminal, NO_COLOR, TERM and --no-color", () => {
    const tty = { isTTY: true };
    assert.equal(useColor(tty, {}, true), true);
    assert.equal(useColor({ isTTY: false }, {}, true), false);
    assert.equal(useColor({}, {}, true), false);
    assert.equal(useColor(tty, {}, false), false);
    assert.equal(useColor(tty, { NO_COLOR: "1" }, true), false);
    assert.equal(useColor(tty, { NO_COLOR: "" }, true), true, "an empty NO_COLOR does not count (no-color.org)");
    assert.equal(useColor(tty, { TERM: "dumb" }, true), false);
  });

  it("never reaches a pipe", async () => {
    const [ok, bad] = await Promise.all([runCli(["plan"]), runCli(["plan", "nope.json"])]);
    assert.ok(!ok.stdout.includes(ESC));
    assert.ok(!bad.stderr.includes(ESC));
  });

  // A real terminal, through util-linux's script(1), which every Debian system has.
  const script = "/usr/bin/script";
  const onTerminal = (args: string, env: NodeJS.ProcessEnv): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(
        script,
        ["-qec", `${JSON.stringify(process.execPath)} ${JSON.stringify(MAIN)} ${args}`, "/dev/null"],
        { cwd: ROOT, env: { ...env, TERM: "xterm" }, encoding: "utf8", timeout: 20_000 },
        (error, stdout) => (error !== null && typeof error.code !== "number" ? reject(error) : resolve(stdout)),
      );
    });
  const skip = existsSync(script) ? false : "script(1) is not installed";
  const env = { ...process.env };
  delete env["NO_COLOR"];
  it("is used on a terminal", { skip }, async () => {
    const out = await onTerminal("plan", env);
    assert.ok(out.includes(ESC), "expected ANSI colour on a terminal");
    assert.ok(out.includes("virtio-blk0@3"));
  });
  it("is not used on a terminal with NO_COLOR set", { skip }, async () => {
    const out = await onTerminal("plan", { ...env, NO_COLOR: "1" });
    assert.ok(out.includes("virtio-blk0@3"));
    assert.ok(!out.includes(ESC));
  });
  it("is not used on a terminal with --no-color", { skip }, async () => {
    const out = await onTerminal("plan --no-color", env);
    assert.ok(out.includes("virtio-blk0@3"));
    assert.ok(!out.includes(ESC));
  });
  it("marks errors on a terminal, and the text stays the same without it", { skip }, async () => {
    const [coloured, plain] = await Promise.all([onTerminal("plan nope.json", env), onTerminal("plan nope.json", { ...env, NO_COLOR: "1" })]);
    assert.ok(coloured.includes(ESC));
    // eslint-disable-next-line no-control-regex
    assert.equal(coloured.replace(/\u001b\[[0-9;]*m/g, ""), plain);
  });
});
