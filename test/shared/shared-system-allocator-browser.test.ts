/**
 * The shared system allocator in headless Chromium: four real module Web Workers and the page's
 * main thread (which cannot `Atomics.wait`, so its lock spins) on one allocator, on a
 * cross-origin-isolated page, with the end checks of the Node test (see
 * shared-allocator-browser-scenario.ts, which runs in the page).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { browserSkip, openIsolatedPage, type IsolatedPage } from "../helpers/isolated-browser.js";
import type { ScenarioResult } from "./shared-allocator-browser-scenario.js";

const WORKERS = 4;
const CALLS = 10_000;

describe("SharedSystemAllocator in a browser, across Web Workers", { skip: browserSkip("the shared allocator browser test") }, () => {
  let isolated: IsolatedPage;
  before(async () => {
    isolated = await openIsolatedPage();
  });
  after(async () => {
    await isolated?.close();
  });

  it(`${WORKERS} module workers x ${CALLS} random calls and the page's main thread: equal to a single-threaded replay`, async () => {
    const { page, origin } = isolated;
    const result = (await page.evaluate(
      async ({ origin, workers, calls }) => {
        const scenario = (await import(`${origin}/test/shared/shared-allocator-browser-scenario.js`)) as {
          runScenario(url: string, workers: number, calls: number): Promise<unknown>;
        };
        return scenario.runScenario(`${origin}/test/shared/shared-allocator-browser-worker.js`, workers, calls);
      },
      { origin, workers: WORKERS, calls: CALLS },
    )) as ScenarioResult;
    console.log(`# ${result.committed} calls committed (${result.mainCalls} by the page, ${result.moves} mapping moves), ${result.snapshots} snapshots, ${result.checkpoints} checkpoints seen`);
    assert.deepEqual(result.problems, []);
    assert.deepEqual(isolated.errors, []);
    assert.equal(result.mainThreadSpins, true, "Atomics.wait was allowed on the page's main thread");
    assert.ok(result.committed > WORKERS * CALLS * 0.5, `only ${result.committed} calls committed`);
    assert.ok(result.mainCalls > 0 && result.moves > 0 && result.snapshots > 0);
    assert.ok(result.checkpoints > 1, "the log never wrapped");
  });
});
