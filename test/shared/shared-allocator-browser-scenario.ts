/**
 * The browser test's scenario, run on the page's main thread (loaded with `import()` from the
 * isolated page): four module Web Workers make random calls on one shared system allocator while
 * the page's main thread (where `Atomics.wait` is not allowed, so the lock spins) calls and
 * snapshots too; then the same end checks as the Node test, made here, summarised as plain data.
 */
import { SharedSystemAllocator } from "../../src/shared/shared-system-allocator.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { getLayout } from "../../src/system/layouts.js";
import { doubleHolding, inCommitOrder, replay, viewMismatch, Workload, type WorkloadReport } from "./shared-allocator-workload.js";

/** A module worker, typed by hand: the project compiles without the DOM library. */
interface PageWorker {
  onmessage: ((event: { data: { report?: WorkloadReport; error?: string } }) => void) | null;
  onerror: ((event: { message?: string }) => void) | null;
  postMessage(message: unknown): void;
  terminate(): void;
}

/** What the scenario found; every `problem` is undefined when all is well. */
export interface ScenarioResult {
  readonly committed: number;
  readonly mainCalls: number;
  readonly snapshots: number;
  readonly checkpoints: number;
  /** Atomics.wait threw on this thread: the lock had to spin here. */
  readonly mainThreadSpins: boolean;
  readonly problems: readonly string[];
}

export async function runScenario(workerUrl: string, workers: number, calls: number): Promise<ScenarioResult> {
  const Worker = (globalThis as unknown as { Worker: new (url: string, options: { type: "module" }) => PageWorker }).Worker;
  const layout = getLayout("pc-x86_64");
  const shared = SharedSystemAllocator.create(layout, { logBytes: 64 << 10 });
  const problems: string[] = [];
  let mainThreadSpins = false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
  } catch {
    mainThreadSpins = true;
  }
  const prefixes = Array.from({ length: workers }, (_, i) => `w${i}`);
  const started = prefixes.map((prefix, i) => {
    const worker = new Worker(workerUrl, { type: "module" });
    const done = new Promise<WorkloadReport>((resolve, reject) => {
      worker.onmessage = ({ data }) => (data.report !== undefined ? resolve(data.report) : reject(new Error(data.error)));
      worker.onerror = (e) => reject(new Error(`worker ${prefix} failed: ${e.message ?? "unknown error"}`));
    });
    worker.postMessage({ handle: shared.handle, participantId: shared.reserveParticipantId(), prefix, seed: 0x2545f491 * (i + 1), calls });
    return { worker, done };
  });
  const main = new Workload(shared, "main", 4242);
  let finished = false;
  const all = Promise.all(started.map((s) => s.done)).finally(() => (finished = true));
  let snapshots = 0;
  const epochs = new Set<number>();
  while (!finished) {
    for (let i = 0; i < 20; i++) main.step();
    const double = doubleHolding(shared.holdingsCallback()());
    if (double !== undefined) problems.push(`while running: ${double}`);
    try {
      DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(shared.toJSON()))).checkValid();
    } catch (error) {
      problems.push(`snapshot: ${String(error)}`);
    }
    epochs.add(shared.committedLog().checkpointSequence);
    snapshots++;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const reports = await all;
  for (const s of started) s.worker.terminate();
  const { calls: ordered, gap } = inCommitOrder([...reports.map((r) => r.committed), main.committed]);
  if (gap !== undefined) problems.push(gap);
  const fresh = new DefaultSystemAllocator(layout);
  const mismatch = replay(fresh, ordered);
  if (mismatch !== undefined) problems.push(mismatch);
  if (JSON.stringify(fresh.toJSON()) !== JSON.stringify(shared.toJSON())) problems.push("the final state differs from the single-threaded replay");
  const holdings = shared.holdingsCallback()();
  const double = doubleHolding(holdings);
  if (double !== undefined) problems.push(double);
  try {
    shared.checkValid();
  } catch (error) {
    problems.push(`checkValid: ${String(error)}`);
  }
  prefixes.forEach((p, i) => {
    const m = viewMismatch(holdings, p, reports[i]!.held);
    if (m !== undefined) problems.push(m);
  });
  const m = viewMismatch(holdings, "main", main.held());
  if (m !== undefined) problems.push(m);
  return { committed: ordered.length, mainCalls: main.committed.length, snapshots, checkpoints: epochs.size, mainThreadSpins, problems };
}
