/**
 * Shared benchmark plumbing: the workload PRNG the issues specify, and a tinybench runner that
 * times whole phases (each iteration re-runs its setup untimed) and prints ns/op and ops/s.
 */
import { Bench } from "tinybench";

/** u64 xorshift (x ^= x << 13; x ^= x >> 7; x ^= x << 17, mod 2^64), as the issues specify. */
export class XorShift64 {
  #x: bigint;
  constructor(seed: bigint = 0x9e3779b97f4a7c15n) {
    this.#x = BigInt.asUintN(64, seed);
  }
  /** Next u64 as a bigint. */
  next(): bigint {
    let x = this.#x;
    x = BigInt.asUintN(64, x ^ (x << 13n));
    x ^= x >> 7n;
    x = BigInt.asUintN(64, x ^ (x << 17n));
    this.#x = x;
    return x;
  }
  /** next() % n as a number (n a safe integer). */
  below(n: number): number {
    return Number(this.next() % BigInt(n));
  }
}

/** One timed phase. `ops` is the number of operations one call of `run` performs. */
export interface Phase {
  readonly name: string;
  readonly ops: number;
  /** Untimed preparation before every timed run. */
  readonly setup?: () => void;
  /** The timed work. */
  readonly run: () => void;
}

/** What a phase measured. */
export interface PhaseResult {
  readonly name: string;
  readonly ops: number;
  readonly nsPerOp: number;
  readonly opsPerSec: number;
  readonly samples: number;
}

/**
 * Times each phase with tinybench and prints one line per phase: the median of the samples, or
 * with `statistic: "min"` the fastest sample, which is what a comparison of two paths on a
 * loaded machine should use (other processes only ever add time).
 */
export function runPhases(phases: readonly Phase[], options: { iterations?: number; time?: number; statistic?: "p50" | "min" } = {}): PhaseResult[] {
  const bench = new Bench({
    iterations: options.iterations ?? 5,
    time: options.time ?? 0,
    warmupIterations: 1,
    warmupTime: 0,
  });
  for (const phase of phases) {
    bench.add(phase.name, phase.run, phase.setup === undefined ? {} : { beforeEach: phase.setup });
  }
  bench.runSync();
  const results: PhaseResult[] = [];
  for (const [i, task] of bench.tasks.entries()) {
    const phase = phases[i];
    const result = task.result;
    if (phase === undefined) continue;
    if (result.state !== "completed") throw new Error(`benchmark ${phase.name} did not complete: ${result.state}`);
    const ms = options.statistic === "min" ? result.latency.min : result.latency.p50;
    const nsPerOp = (ms * 1e6) / phase.ops;
    const r = { name: phase.name, ops: phase.ops, nsPerOp, opsPerSec: 1e9 / nsPerOp, samples: result.latency.samplesCount ?? 0 };
    results.push(r);
    printResult(r);
  }
  return results;
}

/** Prints one result line in the common format. */
export function printResult(r: PhaseResult): void {
  console.log(
    `${r.name.padEnd(44)} ${r.nsPerOp.toFixed(1).padStart(10)} ns/op ${formatRate(r.opsPerSec).padStart(12)} ops/s  (${r.ops} ops/iteration)`,
  );
}

/** 1234567 -> "1.23 M". */
export function formatRate(opsPerSec: number): string {
  if (opsPerSec >= 1e6) return `${(opsPerSec / 1e6).toFixed(2)} M`;
  if (opsPerSec >= 1e3) return `${(opsPerSec / 1e3).toFixed(1)} k`;
  return opsPerSec.toFixed(0);
}

/** Prints a target check line: `target: W1 >= 1000000 ops/s ... ok`. */
export function printTarget(label: string, ok: boolean, detail: string): void {
  console.log(`target ${ok ? "MET    " : "MISSED "} ${label}: ${detail}`);
}
