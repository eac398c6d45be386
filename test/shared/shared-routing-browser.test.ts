/**
 * Torn reads in a browser: headless Chromium, a cross-origin-isolated page (see
 * test/helpers/isolated-browser.ts), 4 module Web Workers reading a SharedRouteTable while the
 * page's main thread changes the bus for about a second: the scenario of
 * shared-routing-workers.test.ts, with real Web Workers.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { browserSkip, openIsolatedPage, type IsolatedPage } from "../helpers/isolated-browser.js";
import type { ReaderReport } from "./shared-routing-scenario.js";

const READERS = 4;
const OPS = 1500;
const SEED = 0xb0b;

interface Outcome {
  readonly published: number;
  readonly generation: number;
  readonly shared: boolean;
  readonly valid: string;
  readonly reports: ReaderReport[];
}

describe("shared routing across Web Workers (headless Chromium)", { skip: browserSkip("the shared routing browser test") }, () => {
  let opened: IsolatedPage | undefined;
  before(async () => {
    opened = await openIsolatedPage();
  });
  after(async () => {
    await opened?.close();
  });

  it("readers never see a torn table while the page's main thread changes the bus", async () => {
    const { page, origin, errors } = opened!;
    const outcome: Outcome = await page.evaluate(
      async ({ origin, readers, ops, seed }) => {
        // Runs in the page.
        const lib = (await import(`${origin}/src/index.js`)) as typeof import("../../src/index.js");
        const sc = (await import(`${origin}/test/shared/shared-routing-scenario.js`)) as typeof import("./shared-routing-scenario.js");
        type W = { postMessage(m: unknown): void; terminate(): void; onmessage: ((e: { data: { ready?: boolean; report?: ReaderReport } }) => void) | null; onerror: ((e: { message: string }) => void) | null };
        const WorkerCtor = (globalThis as unknown as { Worker: new (url: string, options: { type: "module" }) => W }).Worker;
        const bus = new lib.Bus<import("./shared-routing-scenario.js").ScenarioDevice>("mem");
        const table = new lib.SharedRouteTable(bus, sc.scenarioHandle, { capacity: 128 });
        const control = new SharedArrayBuffer(4 * sc.CONTROL_WORDS);
        const workers: W[] = [];
        const ready: Promise<void>[] = [];
        const reports: Promise<ReaderReport>[] = [];
        for (let reader = 0; reader < readers; reader++) {
          const w = new WorkerCtor(`${origin}/test/shared/shared-routing-browser-worker.js`, { type: "module" });
          workers.push(w);
          let onReady!: () => void;
          let onReport!: (r: ReaderReport) => void;
          let onError!: (e: Error) => void;
          ready.push(new Promise<void>((resolve, reject) => ((onReady = resolve), (onError = reject))));
          reports.push(new Promise<ReaderReport>((resolve, reject) => ((onReport = resolve), (onError = reject))));
          w.onmessage = (e) => (e.data.ready === true ? onReady() : onReport(e.data.report!));
          w.onerror = (e) => onError(new Error(e.message));
          w.postMessage({ buffer: table.buffer, control, seed, ops, reader });
        }
        await Promise.all(ready);
        const published = sc.write(bus, sc.scenarioOps(seed, ops), new Int32Array(control), 0.2, 1200, () => performance.now());
        const done = await Promise.all(reports);
        for (const w of workers) w.terminate();
        let valid = "ok";
        try {
          table.checkValid();
        } catch (e) {
          valid = String(e);
        }
        return { published, generation: table.generation, shared: table.buffer instanceof SharedArrayBuffer, valid, reports: done };
      },
      { origin, readers: READERS, ops: OPS, seed: SEED },
    );
    assert.deepEqual(errors, []);
    assert.equal(outcome.shared, true, "the page is cross-origin isolated, so the table is in a SharedArrayBuffer");
    assert.equal(outcome.valid, "ok");
    assert.ok(outcome.published >= 100, `only ${outcome.published} changes published`);
    assert.equal(outcome.generation, outcome.published);
    for (const [i, r] of outcome.reports.entries()) {
      assert.deepEqual(r.errors, [], `reader ${i}`);
      assert.ok(r.reads >= 20_000, `reader ${i} read only ${r.reads} times`);
      assert.ok(r.generationsSeen >= 10, `reader ${i} saw only ${r.generationsSeen} generations`);
      assert.equal(r.lastGeneration, outcome.published, `reader ${i} ended on the final table`);
    }
    const seen = outcome.reports.reduce((s, r) => s + r.generationsSeen, 0);
    assert.ok(seen >= 60, `the readers saw only ${seen} generations between them`);
    const reads = outcome.reports.reduce((s, r) => s + r.reads, 0);
    const retries = outcome.reports.reduce((s, r) => s + r.retries, 0);
    console.log(`# ${READERS} Web Workers: ${reads} reads, ${retries} retries, generations seen ${outcome.reports.map((r) => r.generationsSeen).join("/")} of ${outcome.published}`);
  });
});
