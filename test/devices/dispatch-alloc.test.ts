/**
 * The number accessors allocate nothing: 10^6 accesses of each kind (every width, read and write,
 * number, u32-pair and bigint addresses, below and above 2^32 and 2^53, mapped and unmapped,
 * width and generic devices, on buses and through the device manager) run no garbage collection
 * and grow the heap by less than one byte per access (1 MB; what grows is V8's own code and
 * feedback for the loop, while one 16-byte object per access would be 16 MB and start the
 * scavenger several times). Measured by test/helpers/alloc-probe.ts in child processes
 * under `--expose-gc` (v8.getHeapStatistics and PerformanceObserver `gc` entries).
 *
 * The kinds whose numbers all stay in int32 (ports, split halves, bigint addresses) run grouped,
 * with the optimizer as usual and again with inlining disabled (`--no-turbo-inlining`): they must
 * allocate nothing even when no call is inlined. The others pass an address at or above 2^31 as a
 * double, which V8 boxes at any call it does not inline; they are allocation-free when the
 * accessor is inlined into its caller, as at a monomorphic call site (README, "Design"). Whether
 * V8 inlines it varies from run to run (concurrent compilation), so each of those kinds runs in a
 * process of its own, as one emulator's access loop would, up to three times: one clean run
 * proves that the path itself allocates nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const probe = join(dirname(fileURLToPath(import.meta.url)), "..", "helpers", "alloc-probe.js");
const run = promisify(execFile);
const MAX_GROWTH = 1_000_000;

interface Report {
  readonly group: string;
  readonly kind: string;
  readonly strict: boolean;
  readonly accesses?: number;
  readonly heapGrowth?: number;
  readonly collections?: number;
}

async function probeRun(flags: string[], args: string[]): Promise<Report[]> {
  const { stdout } = await run(process.execPath, [...flags, "--expose-gc", probe, ...args], { maxBuffer: 1 << 20 });
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Report);
}

function check(reports: Report[]): void {
  assert.ok(reports.length > 0);
  const bad = reports.filter((r) => r.accesses !== 1_000_000 || r.collections !== 0 || (r.heapGrowth ?? Infinity) >= MAX_GROWTH);
  assert.deepEqual(bad, [], bad.map((r) => `${r.kind}: ${r.collections} collections, heap +${r.heapGrowth} bytes`).join("; "));
}

describe("dispatch allocates nothing per access", () => {
  it("10^6 accesses of each int32-only kind: no garbage collection, heap growth under a byte per access", async () => {
    const groups = ["io", "mem", "pair", "big", "manager"];
    const reports = (await Promise.all(groups.map((g) => probeRun([], [g, "strict"])))).flat();
    assert.ok(reports.every((r) => r.strict) && reports.length >= 30, `${reports.length} kinds`);
    check(reports);
  });

  it("the same with inlining disabled", async () => {
    const reports = await probeRun(["--no-turbo-inlining"], ["all", "strict"]);
    assert.ok(reports.every((r) => r.strict) && reports.length >= 30, `${reports.length} kinds`);
    check(reports);
  });

  it("10^6 accesses of each kind with a number address at or above 2^31, each in its own process", async () => {
    const loose = (await probeRun([], ["list"])).filter((k) => !k.strict);
    assert.ok(loose.length >= 10, `${loose.length} kinds`);
    const clean = (r: Report) => r.accesses === 1_000_000 && r.collections === 0 && (r.heapGrowth ?? Infinity) < MAX_GROWTH;
    const reports: Report[] = [];
    // Two at a time: the machine's cores, not a queue of a dozen processes.
    for (let i = 0; i < loose.length; i += 2) {
      const batch = loose.slice(i, i + 2).map(async (k) => {
        let last: Report[] = [];
        for (let attempt = 0; attempt < 3; attempt++) {
          last = await probeRun([], [k.group, k.kind]);
          if (last.length === 1 && clean(last[0]!)) break;
        }
        return last;
      });
      reports.push(...(await Promise.all(batch)).flat());
    }
    assert.equal(reports.length, loose.length);
    check(reports);
  });
});
