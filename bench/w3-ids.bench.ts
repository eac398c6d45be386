/**
 * W3: IdAllocator over [1, 1_000_000]. Allocate all 1M ids lowest-first, free the odd ids in
 * ascending order, then allocate 500 000 ids again (which must be exactly the odd ids, lowest
 * first). Target: >= 30M ops/s over the 2M operations. Also reports memory: an empty allocator
 * over the whole u32 space and over the W3 range, and bytes per allocated id at 1M ids.
 *
 * Run: `npx tsc -p . && node --expose-gc dist/bench/w3-ids.bench.js`
 */
import { IdAllocator } from "../src/core/id-allocator.js";
import { printTarget, runPhases } from "./harness.js";

const FIRST = 1;
const LAST = 1_000_000;
const N = LAST - FIRST + 1;
const TARGET = 30_000_000;

function allocateAll(a: IdAllocator): void {
  for (let i = 0; i < N; i++) a.allocateId();
}

function freeOdd(a: IdAllocator): void {
  for (let id = 1; id <= LAST; id += 2) a.freeId(id);
}

function reallocate(a: IdAllocator): number {
  // Summing the results keeps the work observable so it cannot be optimised away.
  let sum = 0;
  for (let i = 0; i < N / 2; i++) sum += a.allocateId();
  return sum;
}

// Correctness check of the workload itself, once, untimed.
{
  const a = new IdAllocator(FIRST, LAST);
  for (let i = 0; i < N; i++) {
    if (a.allocateId() !== FIRST + i) throw new Error(`W3: allocation ${i} did not return ${FIRST + i}`);
  }
  freeOdd(a);
  for (let id = 1; id <= LAST; id += 2) {
    const got = a.allocateId();
    if (got !== id) throw new Error(`W3: re-allocation returned ${got}, expected ${id}`);
  }
  if (a.availableCount !== 0) throw new Error("W3: allocator should be full");
  a.checkValid();
}

let state = new IdAllocator(FIRST, LAST);
let sink = 0;
const results = runPhases(
  [
    {
      name: "W3 allocateId x1M (empty -> full)",
      ops: N,
      setup: () => {
        state = new IdAllocator(FIRST, LAST);
      },
      run: () => allocateAll(state),
    },
    {
      name: "W3 freeId odd ids ascending x500k",
      ops: N / 2,
      setup: () => {
        state = new IdAllocator(FIRST, LAST);
        allocateAll(state);
      },
      run: () => freeOdd(state),
    },
    {
      name: "W3 allocateId x500k (refill odd ids)",
      ops: N / 2,
      setup: () => {
        state = new IdAllocator(FIRST, LAST);
        allocateAll(state);
        freeOdd(state);
      },
      run: () => {
        sink += reallocate(state);
      },
    },
  ],
  { iterations: 15 },
);
if (sink === 0) console.log("(sink)");

const totalOps = results.reduce((s, r) => s + r.ops, 0);
const totalNs = results.reduce((s, r) => s + r.nsPerOp * r.ops, 0);
const overall = (totalOps * 1e9) / totalNs;
console.log(`W3 overall: ${totalOps} ops in ${(totalNs / 1e6).toFixed(1)} ms = ${(overall / 1e6).toFixed(2)} M ops/s`);
printTarget("W3 >= 30M ops/s", overall >= TARGET, `${(overall / 1e6).toFixed(2)} M ops/s`);

// ---- memory ----

const gc = (globalThis as { gc?: () => void }).gc;
function used(): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Mean bytes retained per object made by `make`, over `copies` objects; a first pass warms up. */
function bytesPerCopy(copies: number, make: () => unknown): number {
  let result = 0;
  for (let pass = 0; pass < 2; pass++) {
    const keep: unknown[] = [];
    const before = used();
    for (let i = 0; i < copies; i++) keep.push(make());
    const after = used();
    if (keep.length !== copies) throw new Error("unreachable");
    result = (after - before) / copies;
  }
  return result;
}

if (gc === undefined) {
  console.log("memory: skipped (run with node --expose-gc)");
} else {
  const empty32 = bytesPerCopy(10_000, () => new IdAllocator(0, 0xffff_ffff));
  console.log(`memory: empty IdAllocator over [0, 2^32-1]: ${empty32.toFixed(0)} bytes (mean of 10000)`);
  const emptyW3 = bytesPerCopy(10_000, () => new IdAllocator(FIRST, LAST));
  console.log(`memory: empty IdAllocator over [1, 1_000_000]: ${emptyW3.toFixed(0)} bytes (mean of 10000)`);
  const full = bytesPerCopy(3, () => {
    const a = new IdAllocator(FIRST, LAST);
    allocateAll(a);
    return a;
  });
  console.log(`memory: IdAllocator over [1, 1_000_000] with all ${N} ids allocated: ${full.toFixed(0)} bytes = ${(full / N).toFixed(3)} bytes/id`);
  const scattered = bytesPerCopy(100, () => {
    const a = new IdAllocator(0, 0xffff_ffff);
    a.allocateIdAt(0xffff_ffff);
    a.allocateIdAt(0x8000_0000);
    a.allocateId();
    return a;
  });
  console.log(`memory: IdAllocator over [0, 2^32-1] with 3 ids in 3 far-apart 2^20-id chunks: ${scattered.toFixed(0)} bytes (mean of 100)`);
}
