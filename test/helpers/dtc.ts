/**
 * Compiling devicetree sources with Debian's `dtc` (package device-tree-compiler), which .ci/run
 * installs. Every DTS a test produces goes through {@link assertCompiles}: it must compile to a
 * blob with no warning at all. Without `dtc` those tests are skipped, except on CI, where a
 * missing compiler must fail rather than pass vacuously.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

const probe = spawnSync("dtc", ["--version"], { encoding: "utf8" });
/** True when `dtc` runs here. */
export const HAVE_DTC = probe.status === 0;
/** A `skip` option for tests that need `dtc`: never on CI. */
export const dtcSkip: string | false = HAVE_DTC || process.env["CI"] ? false : "dtc (Debian device-tree-compiler) is not installed";

/** Compiles `source` (DTS) to a blob; `stderr` holds every warning and error. */
export function compileDts(source: string): { status: number | null; stderr: string; blob: Buffer } {
  const r = spawnSync("dtc", ["-I", "dts", "-O", "dtb", "-o", "-", "-"], { input: source });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stderr: r.stderr.toString("utf8"), blob: r.stdout };
}

/** Asserts that `source` compiles with `dtc -I dts -O dtb` with no warnings; `what` names it in failures. */
export function assertCompiles(source: string, what: string): Buffer {
  const r = compileDts(source);
  assert.equal(r.stderr, "", `dtc warned about ${what}:\n${r.stderr}\n--- source ---\n${source}`);
  assert.equal(r.status, 0, `dtc failed on ${what}`);
  // A flattened devicetree starts with the magic 0xd00dfeed.
  assert.equal(r.blob.readUInt32BE(0), 0xd00dfeed);
  return r.blob;
}
