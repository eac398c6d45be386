/**
 * Torn reads, in Node: 4 worker_threads readers hammer `SharedRouteView.find` and `snapshot`
 * while the main thread inserts, removes and moves mappings for 1.5 s (up to 1 500 tables). Every
 * answer is checked against the exact table of the generation that gave it (see
 * shared-routing-scenario.ts), generations never go backwards for a reader, and every reader
 * must have read many times across many generations.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { Bus } from "../../src/devices/bus.js";
import { SharedRouteTable, SharedRouteView } from "../../src/index.js";
import { CONTROL_WORDS, scenarioHandle, scenarioOps, timeline, write, type ReaderReport, type ScenarioDevice } from "./shared-routing-scenario.js";

const READERS = 4;
const OPS = 1500;
const SEED = 0x5eed;

describe("shared routing across worker_threads", () => {
  it("readers never see a torn table while the main thread changes the bus", async () => {
    const bus = new Bus<ScenarioDevice>("mem");
    const table = new SharedRouteTable(bus, scenarioHandle, { capacity: 128 });
    const control = new SharedArrayBuffer(4 * CONTROL_WORDS);
    const url = new URL("./shared-routing-node-worker.js", import.meta.url);
    const workers = Array.from({ length: READERS }, (_, reader) => new Worker(url, { workerData: { buffer: table.buffer, control, seed: SEED, ops: OPS, reader } }));
    try {
      const ready = workers.map((w) => new Promise<void>((resolve, reject) => {
        w.once("message", () => resolve());
        w.once("error", reject);
      }));
      const t0 = performance.now();
      await Promise.all(ready);
      const t1 = performance.now();
      const reports = workers.map((w) => new Promise<ReaderReport>((resolve, reject) => {
        w.once("message", (m: { report: ReaderReport }) => resolve(m.report));
        w.once("error", reject);
      }));
      // 1.5 s of changes, so that every reader runs through hundreds of generations.
      const published = write(bus, scenarioOps(SEED, OPS), new Int32Array(control), 0.2, 1500, () => performance.now());
      assert.ok(published >= 200, `only ${published} changes published`);
      assert.equal(table.generation, published);
      table.checkValid();
      const t2 = performance.now();
      const done = await Promise.all(reports);
      console.log(`# ready ${(t1 - t0).toFixed(0)} ms, writing ${(t2 - t1).toFixed(0)} ms, reports ${(performance.now() - t2).toFixed(0)} ms`);
      const tables = timeline(SEED, OPS);
      assert.deepEqual(SharedRouteView.attach(table).snapshot().routes.map((r) => r.handle), tables[published]!.handles);
      for (const [i, r] of done.entries()) {
        assert.deepEqual(r.errors, [], `reader ${i}`);
        assert.ok(r.reads >= 20_000, `reader ${i} read only ${r.reads} times`);
        assert.ok(r.generationsSeen >= 10, `reader ${i} saw only ${r.generationsSeen} generations`);
        assert.equal(r.lastGeneration, published, `reader ${i} ended on the final table`);
      }
      const seen = done.reduce((s, r) => s + r.generationsSeen, 0);
      assert.ok(seen >= 60, `the readers saw only ${seen} generations between them`);
      const reads = done.reduce((s, r) => s + r.reads, 0);
      const retries = done.reduce((s, r) => s + r.retries, 0);
      console.log(`# ${READERS} readers: ${reads} reads, ${retries} retries, ${done.reduce((s, r) => s + r.snapshots, 0)} snapshots, generations seen ${done.map((r) => r.generationsSeen).join("/")} of ${published}`);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});
