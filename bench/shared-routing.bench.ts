/**
 * Shared routing (issue 11): what a lookup through a SharedRouteView costs, in the owning thread
 * against `Bus.lookup` and from 1, 2 and 4 worker_threads at once against the same view in one
 * thread, and what a change of the bus costs the writer once a SharedRouteTable mirrors it.
 *
 * Buses of 16 and 1 000 MMIO mappings of 4 KiB with 4 KiB gaps; addresses drawn inside the
 * mappings (hits) from a fixed xorshift stream, as numbers and as bigints. Times are the fastest
 * of several samples (other processes only ever add time). The same file is the worker: started
 * with workerData, it attaches to the table, waits for the start word, times its lookups and
 * posts ns per lookup. A plain-read seqlock over the same buffer (unsound, see plainFind) shows
 * what proving each answer on atomic words costs.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { RangeInclusive } from "../src/core/range.js";
import { Bus, type BusMapping } from "../src/devices/bus.js";
import { SharedRouteTable } from "../src/shared/shared-route-table.js";
import { SharedRouteView } from "../src/shared/shared-route-view.js";
import { B_COUNT, bufferBase, entriesBase, ENTRY_WORDS, handlesBase, keysBase, W_SEQ } from "../src/shared/route-layout.js";
import { runPhases, XorShift64, type Phase } from "./harness.js";

const BASE = 0xc000_0000;
const STRIDE = 0x2000;
const SIZE = 0x1000;
const LOOKUPS = 1 << 16;
const WORKER_LOOKUPS = 1 << 21;

interface Dev {
  readonly name: string;
  readonly id: number;
  read(): void;
  write(): void;
}
const handleOf = (m: BusMapping<Dev>): number => m.device.id;

function makeBus(n: number): Bus<Dev> {
  const bus = new Bus<Dev>("mem");
  for (let i = 0; i < n; i++) bus.insert(RangeInclusive.withSize(BASE + i * STRIDE, SIZE), { name: `d${i}`, id: i, read() {}, write() {} });
  return bus;
}

function hitAddresses(n: number, count: number, seed: bigint): Float64Array {
  const rng = new XorShift64(seed);
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = BASE + rng.below(n) * STRIDE + rng.below(SIZE);
  return out;
}

/** Runs `lookups` finds over `addresses`, returning a checksum so nothing is optimized away. */
function findNumbers(view: SharedRouteView, addresses: Float64Array, lookups: number): number {
  let sum = 0;
  const mask = addresses.length - 1;
  for (let i = 0; i < lookups; i++) sum += view.find(addresses[i & mask]!) + view.lastOffset;
  return sum;
}

/**
 * The reference the proof is measured against: the same seqlock with every data word read
 * plainly and only SEQ read with Atomics (what the ECMAScript memory model does not guarantee;
 * see src/shared/shared-route-view.ts). Number addresses below 2^53 only; not for use.
 */
function plainFind(words: Int32Array, keys: Float64Array, capacity: number, a: number): number {
  for (;;) {
    const seq = Atomics.load(words, W_SEQ) >>> 0;
    const base = bufferBase(capacity, seq & 1);
    const n = Math.min(words[base + B_COUNT]! >>> 0, capacity);
    const k = keysBase(base) >>> 1;
    let at = 0;
    for (let m = n; m > 1; ) {
      const half = m >>> 1;
      if (keys[k + at + half]! <= a) at += half;
      m -= half;
    }
    const e = entriesBase(capacity, base) + ENTRY_WORDS * at;
    const start = (words[e]! >>> 0) * 4294967296 + (words[e + 1]! >>> 0);
    const hit = n > 0 && start <= a && a <= (words[e + 2]! >>> 0) * 4294967296 + (words[e + 3]! >>> 0);
    const result = hit ? words[handlesBase(capacity, base) + at]! >>> 0 : -1;
    if (Atomics.load(words, W_SEQ) >>> 0 === seq) return result;
  }
}

if (!isMainThread && (workerData as { echo?: boolean }).echo === true) {
  // The baseline a view saves: a worker that answers each message, as an owning thread would.
  parentPort!.on("message", (m: number) => parentPort!.postMessage(m + 1));
} else if (!isMainThread) {
  // A worker: attach, replay the addresses, wait for the start word, time, report.
  const { buffer, control, n, seed } = workerData as { buffer: SharedArrayBuffer; control: SharedArrayBuffer; n: number; seed: bigint };
  const view = SharedRouteView.attach(buffer);
  const addresses = hitAddresses(n, LOOKUPS, seed);
  findNumbers(view, addresses, LOOKUPS * 4); // warm up
  const start = new Int32Array(control);
  parentPort!.postMessage({ ready: true });
  Atomics.wait(start, 0, 0);
  let best = Infinity;
  let sum = 0;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    sum += findNumbers(view, addresses, WORKER_LOOKUPS);
    best = Math.min(best, ((performance.now() - t0) * 1e6) / WORKER_LOOKUPS);
  }
  Atomics.add(start, 1, 1); // tells a writing owner that this reader is done
  parentPort!.postMessage({ nsPerLookup: best, sum, retries: view.retries });
} else {
  await main();
}

async function main(): Promise<void> {
  const single = new Map<number, number>();
  console.log("# lookups in one thread (hits; ns per lookup)");
  for (const n of [16, 1000]) {
    const bus = makeBus(n);
    const table = new SharedRouteTable(bus, handleOf, { capacity: 1024 });
    const view = SharedRouteView.attach(table);
    const nums = hitAddresses(n, LOOKUPS, 0x5eedn);
    const bigs = Array.from(nums, (a) => BigInt(a));
    let sink = 0;
    const words = new Int32Array(table.buffer);
    const keys = new Float64Array(table.buffer);
    const phases: Phase[] = [
      { name: `view.find number, ${n} mappings`, ops: LOOKUPS, run: () => void (sink += findNumbers(view, nums, LOOKUPS)) },
      {
        name: `bus.lookup number, ${n} mappings`,
        ops: LOOKUPS,
        run: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += Number(bus.lookup(nums[i]!)!.offset);
        },
      },
      {
        name: `view.find bigint, ${n} mappings`,
        ops: LOOKUPS,
        run: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += view.find(bigs[i]!) + view.lastOffset;
        },
      },
      {
        name: `bus.lookup bigint, ${n} mappings`,
        ops: LOOKUPS,
        run: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += Number(bus.lookup(bigs[i]!)!.offset);
        },
      },
      {
        name: `reference: plain-read seqlock, ${n} mappings`,
        ops: LOOKUPS,
        run: () => {
          for (let i = 0; i < LOOKUPS; i++) sink += plainFind(words, keys, 1024, nums[i]!);
        },
      },
    ];
    const r = runPhases(phases, { iterations: 20, statistic: "min" });
    const [vn, bn, vb, bb, pn] = r.map((x) => x.nsPerOp) as [number, number, number, number, number];
    single.set(n, vn);
    console.log(
      `ratio view/bus.lookup, ${n} mappings: number ${(vn / bn).toFixed(2)}, bigint ${(vb / bb).toFixed(2)}; view/plain-read reference ${(vn / pn).toFixed(2)} (checksum ${sink % 7})`,
    );
  }

  console.log("\n# lookups from worker_threads at once (number addresses, hits; ns per lookup per worker)");
  for (const n of [16, 1000]) {
    const bus = makeBus(n);
    const table = new SharedRouteTable(bus, handleOf, { capacity: 1024 });
    for (const count of [1, 2, 4]) {
      const results = await runWorkers(table, n, count);
      const mean = results.reduce((s, x) => s + x, 0) / results.length;
      const base = single.get(n)!;
      console.log(
        `${count} worker(s), ${n} mappings: ${results.map((x) => x.toFixed(1)).join(" / ")} ns per lookup, mean ${mean.toFixed(1)}; ratio to one thread ${(mean / base).toFixed(2)}`,
      );
    }
  }

  console.log("\n# 2 workers reading while the owning thread moves a mapping every 100 us (1 000 mappings)");
  {
    const bus = makeBus(1000);
    const table = new SharedRouteTable(bus, handleOf, { capacity: 1024 });
    const a = new RangeInclusive(BASE + 7 * STRIDE, BASE + 7 * STRIDE + SIZE - 1);
    let at = a;
    const writer = {
      change: () => {
        at = bus.move(at, at.start === a.start ? a.start + 0x800n : a.start).range;
      },
      spacingUs: 100,
      retries: 0,
      changes: 0,
    };
    const results = await runWorkers(table, 1000, 2, writer);
    const mean = results.reduce((s, x) => s + x, 0) / results.length;
    const lookups = 2 * 3 * WORKER_LOOKUPS;
    console.log(
      `${results.map((x) => x.toFixed(1)).join(" / ")} ns per lookup, ratio to one thread ${(mean / single.get(1000)!).toFixed(2)}; ${writer.changes} changes published, ${writer.retries} retries in ${lookups} lookups (${((writer.retries / lookups) * 1e6).toFixed(0)} per million)`,
    );
  }

  console.log("\n# the message a view saves: postMessage to another thread and back (the owning thread answering)");
  console.log(`round trip: ${(await roundTrip()).toFixed(0)} ns`);

  console.log("\n# writer: one change of a bus of 1 000 mappings, with and without a table (ns per change)");
  const plain = makeBus(1000);
  const mirrored = makeBus(1000);
  const table = new SharedRouteTable(mirrored, handleOf, { capacity: 1024 });
  const CHANGES = 200;
  const mid = new RangeInclusive(BASE + 500 * STRIDE, BASE + 500 * STRIDE + SIZE - 1);
  const moved = new RangeInclusive(BASE + 500 * STRIDE + 0x800, BASE + 500 * STRIDE + 0x800 + SIZE - 1);
  const front = new RangeInclusive(BASE - STRIDE, BASE - STRIDE + SIZE - 1);
  const extra: Dev = { name: "extra", id: 5000, read() {}, write() {} };
  const movePair = (bus: Bus<Dev>) => () => {
    for (let i = 0; i < CHANGES / 2; i++) {
      bus.move(mid, moved.start);
      bus.move(moved, mid.start);
    }
  };
  const insertRemove = (bus: Bus<Dev>) => () => {
    for (let i = 0; i < CHANGES / 2; i++) {
      bus.insert(front, extra);
      bus.remove(front);
    }
  };
  const w = runPhases(
    [
      { name: "move in the middle, bus alone", ops: CHANGES, run: movePair(plain) },
      { name: "move in the middle, with a table", ops: CHANGES, run: movePair(mirrored) },
      { name: "insert/remove at the front, bus alone", ops: CHANGES, run: insertRemove(plain) },
      { name: "insert/remove at the front, with a table", ops: CHANGES, run: insertRemove(mirrored) },
    ],
    { iterations: 10, statistic: "min" },
  );
  table.checkValid();
  const [mp, mt, ip, it] = w.map((x) => x.nsPerOp) as [number, number, number, number];
  console.log(`publish cost per change: move ${((mt - mp) / 1000).toFixed(1)} us, insert/remove at the front ${((it - ip) / 1000).toFixed(1)} us (generation ${table.generation})`);
}

/**
 * Starts `count` readers of `table` and returns each one's best ns per lookup. With `writer`, the
 * main thread calls it (then spins `spacingUs`) until every reader is done, and `retries`
 * receives the readers' total retries and `changes` the number of writer calls.
 */
async function runWorkers(
  table: SharedRouteTable<Dev>,
  n: number,
  count: number,
  writer?: { readonly change: () => void; readonly spacingUs: number; retries: number; changes: number },
): Promise<number[]> {
  const control = new SharedArrayBuffer(8);
  const file = fileURLToPath(import.meta.url);
  const workers = Array.from({ length: count }, (_, i) => new Worker(file, { workerData: { buffer: table.buffer, control, n, seed: 0x5eedn + BigInt(i) } }));
  try {
    const ready = workers.map((w) => new Promise<void>((resolve, reject) => (w.once("message", () => resolve()), w.once("error", reject))));
    await Promise.all(ready);
    let retries = 0;
    const done = workers.map(
      (w) =>
        new Promise<number>((resolve, reject) => (
          w.once("message", (m: { nsPerLookup: number; retries: number }) => {
            retries += m.retries;
            resolve(m.nsPerLookup);
          }),
          w.once("error", reject)
        )),
    );
    const words = new Int32Array(control);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    if (writer !== undefined) {
      while (Atomics.load(words, 1) < count) {
        writer.change();
        writer.changes++;
        const until = performance.now() + writer.spacingUs / 1000;
        while (performance.now() < until) {
          // spin between changes
        }
      }
    }
    const results = await Promise.all(done);
    if (writer !== undefined) writer.retries = retries;
    return results;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Mean time of a message to a worker and its answer, over 2 000 sequential round trips (best of 3). */
async function roundTrip(): Promise<number> {
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { echo: true } });
  try {
    let best = Infinity;
    for (let round = 0; round < 3; round++) {
      const N = 2000;
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        await new Promise<void>((resolve) => {
          w.once("message", () => resolve());
          w.postMessage(i);
        });
      }
      best = Math.min(best, ((performance.now() - t0) * 1e6) / N);
    }
    return best;
  } finally {
    await w.terminate();
  }
}
