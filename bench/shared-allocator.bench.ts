/**
 * The cost of sharing a system allocator between threads: allocate+free pairs (an MMIO 4 KiB
 * range, an MSI line) through the callbacks, single-thread on DefaultSystemAllocator (the
 * baseline), on SharedSystemAllocator from one thread, and with 1, 2 and 4 worker_threads
 * hammering one SharedSystemAllocator at once. Every pool starts with 64 devices' worth of
 * holdings. Prints ns per pair and the ratio to the baseline; for the workers, ns per pair as one
 * worker sees it and the aggregate (wall time / all pairs).
 *
 * Last, the floor of the design not chosen (one owner thread answering every call over
 * `Atomics.wait`/`notify`): the bare round trip to a thread that answers at once, with no
 * allocation in it. Each allocator call of that design would pay it on top of the call itself.
 */
import { Worker } from "node:worker_threads";
import { SharedSystemAllocator } from "../src/shared/shared-system-allocator.js";
import { getLayout } from "../src/system/layouts.js";
import { DefaultSystemAllocator } from "../src/system/system-allocator.js";
import type { SystemAllocator } from "../src/system/system-allocator-interface.js";
import { formatRate, runPhases } from "./harness.js";
import { irqPairs, mmioPairs } from "./shared-allocator-pairs.js";

const LAYOUT = getLayout("pc-x86_64");
const PAIRS = 2000;
const WORKER_PAIRS = 5000;
const WORKER = new URL("./shared-allocator-worker.js", import.meta.url);

function preload(sys: SystemAllocator): void {
  for (let i = 0; i < 64; i++) {
    sys.mmioAddressCallback()!({ action: "allocate", owner: `dev${i}`, size: 0x1000n });
    sys.irqCallback()!({ action: "allocate", owner: `dev${i}`, pool: "msi" });
  }
}

const plain = new DefaultSystemAllocator(LAYOUT);
preload(plain);
const solo = SharedSystemAllocator.create(LAYOUT);
preload(solo);
const kinds = ["mmio", "irq"] as const;
const pairsOf = (sys: SystemAllocator, kind: (typeof kinds)[number]) => (kind === "mmio" ? mmioPairs(sys, "hot") : irqPairs(sys, "hot"));

const single = runPhases(
  kinds.flatMap((kind) => [
    { name: `${kind} pair, DefaultSystemAllocator`, ops: PAIRS, run: () => pairsOf(plain, kind)(PAIRS) },
    { name: `${kind} pair, SharedSystemAllocator, 1 thread`, ops: PAIRS, run: () => pairsOf(solo, kind)(PAIRS) },
  ]),
  { iterations: 20, statistic: "min" },
);
const baseline = new Map(kinds.map((k, i) => [k, single[2 * i]!.nsPerOp] as const));
for (const [i, kind] of kinds.entries()) {
  console.log(`ratio ${kind}: SharedSystemAllocator 1 thread / DefaultSystemAllocator = ${(single[2 * i + 1]!.nsPerOp / baseline.get(kind)!).toFixed(2)}x`);
}

/** Runs `n` workers of `kind` at once on a fresh shared allocator; best of `rounds`. */
async function workers(kind: (typeof kinds)[number], n: number, rounds: number): Promise<{ perWorker: number; aggregate: number }> {
  let best = { perWorker: Infinity, aggregate: Infinity };
  for (let round = 0; round < rounds; round++) {
    const shared = SharedSystemAllocator.create(LAYOUT);
    preload(shared);
    const go = new Int32Array(new SharedArrayBuffer(4));
    const started = Array.from({ length: n }, (_, i) => {
      const w = new Worker(WORKER, { workerData: { handle: shared.handle, kind, pairs: WORKER_PAIRS, owner: `w${i}`, go } });
      const ready = new Promise<void>((resolve) => w.once("message", () => resolve()));
      const done = ready.then(() => new Promise<number>((resolve, reject) => (w.once("message", resolve), w.once("error", reject))));
      return { w, ready, done };
    });
    await Promise.all(started.map((s) => s.ready));
    const t0 = process.hrtime.bigint();
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    const elapsed = await Promise.all(started.map((s) => s.done));
    const wall = Number(process.hrtime.bigint() - t0);
    await Promise.all(started.map((s) => s.w.terminate()));
    shared.checkValid();
    const perWorker = elapsed.reduce((a, b) => a + b, 0) / n / WORKER_PAIRS;
    const aggregate = wall / (n * WORKER_PAIRS);
    if (aggregate < best.aggregate) best = { perWorker, aggregate };
  }
  return best;
}

for (const kind of kinds) {
  for (const n of [1, 2, 4]) {
    const r = await workers(kind, n, 3);
    const base = baseline.get(kind)!;
    console.log(
      `${`${kind} pair, ${n} worker${n > 1 ? "s" : ""} at once`.padEnd(44)} ${r.perWorker.toFixed(0).padStart(8)} ns/pair per worker (${(r.perWorker / base).toFixed(1)}x)` +
        `  aggregate ${r.aggregate.toFixed(0)} ns/pair = ${formatRate(1e9 / r.aggregate)} pairs/s (${(r.aggregate / base).toFixed(1)}x the single-thread baseline)`,
    );
  }
}

/** ns per synchronous round trip to a worker that answers at once (best of `rounds`). */
async function pingPong(trips: number, rounds: number): Promise<number> {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const server = new Worker(new URL("./atomics-ping-worker.js", import.meta.url), { workerData: { words } });
  await new Promise((resolve) => server.once("online", resolve));
  let best = Infinity;
  let request = 0;
  for (let round = 0; round < rounds; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < trips; i++) {
      request++;
      Atomics.store(words, 0, request);
      Atomics.notify(words, 0);
      while (Atomics.load(words, 1) !== request) Atomics.wait(words, 1, request - 1, 1000);
    }
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / trips);
  }
  Atomics.store(words, 0, -1);
  Atomics.notify(words, 0);
  await new Promise((resolve) => server.once("exit", resolve));
  return best;
}
const trip = await pingPong(20_000, 5);
console.log(
  `owner-thread design, bare Atomics.wait/notify round trip (no allocation): ${trip.toFixed(0)} ns/call = ${(2 * trip).toFixed(0)} ns per pair before any work; ` +
    `the shared allocator from one thread: ${(single[1]!.nsPerOp / 2).toFixed(0)} ns per mmio call with the work`,
);
