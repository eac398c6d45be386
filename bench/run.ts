/**
 * Runs every `*.bench.js` workload next to this file, each in its own Node process so one
 * workload's heap and JIT state cannot colour another's. `npm run bench -- w1 bus` runs only the
 * workloads whose file names contain one of the words.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.js"))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();

console.log(`node ${process.version}, ${process.platform} ${process.arch}`);
let failed = 0;
for (const file of files) {
  console.log(`\n== ${file.replace(/\.bench\.js$/, "")}`);
  const r = spawnSync(process.execPath, ["--expose-gc", join(here, file)], { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
if (failed > 0) {
  console.error(`${failed} workload(s) failed`);
  process.exit(1);
}
