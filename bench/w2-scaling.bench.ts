/** W2: phase A of W1 (FirstMatch allocations into a fresh pool) for N = 1k, 10k, 100k, 1M. */
import { AllocPolicy, type RangeInclusive } from "../src/index.js";
import { allocateAll, draw, newPool, type Draws } from "./address-workloads.js";
import { formatRate, printResult, printTarget, XorShift64 } from "./harness.js";

const sizes = [1_000, 10_000, 100_000, 1_000_000];
const perOp = new Map<number, number>();
for (const n of sizes) {
  const d: Draws = draw(new XorShift64(), n);
  // Small N is timed over more repetitions so the figure is not dominated by timer noise and JIT warm-up.
  const repeats = Math.max(3, Math.min(200, Math.floor(2_000_000 / n)));
  const samples: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const pool = newPool();
    const out: RangeInclusive[] = new Array(n);
    const t0 = process.hrtime.bigint();
    allocateAll(pool, d, AllocPolicy.FirstMatch, out);
    const ns = Number(process.hrtime.bigint() - t0);
    if (r > 0) samples.push(ns / n);
  }
  samples.sort((a, b) => a - b);
  const median = samples[samples.length >> 1]!;
  perOp.set(n, median);
  printResult({ name: `W2 phase A, N = ${n}`, ops: n, nsPerOp: median, opsPerSec: 1e9 / median, samples: samples.length });
}
const ratio = perOp.get(1_000_000)! / perOp.get(1_000)!;
console.log(`W2 per-op cost at 1M / at 1k = ${ratio.toFixed(2)} (${formatRate(1e9 / perOp.get(1_000_000)!)} ops/s at 1M)`);
printTarget("W2 ratio <= 2.5", ratio <= 2.5, ratio.toFixed(2));
