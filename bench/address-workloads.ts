/**
 * The address-allocator workloads of issue #2, shared by the W1/W2/W4/W5 and memory benchmarks.
 * Inputs are drawn before timing with the specified xorshift generator.
 */
import { AddressAllocator, AllocPolicy, type RangeInclusive } from "../src/index.js";
import { XorShift64 } from "./harness.js";

export const POOL_BASE = 0x1_0000_0000n;
export const POOL_SIZE = 1n << 40n;

/** Pre-drawn (size, alignment) pairs: size = 0x1000 * (1 + next() % 16), align = 0x1000 << (next() % 4). */
export interface Draws {
  readonly sizes: bigint[];
  readonly aligns: bigint[];
}

export function draw(rng: XorShift64, n: number): Draws {
  const sizes: bigint[] = new Array(n);
  const aligns: bigint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    sizes[i] = 0x1000n * (1n + (rng.next() % 16n));
    aligns[i] = 0x1000n << rng.next() % 4n;
  }
  return { sizes, aligns };
}

/** Fisher–Yates shuffle of 0..n-1 driven by the same generator (j = next() % (i + 1)). */
export function shuffle(rng: XorShift64, n: number): Int32Array {
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i >= 1; i--) {
    const j = rng.below(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

export function newPool(): AddressAllocator {
  return new AddressAllocator(POOL_BASE, POOL_SIZE);
}

/** Phase A: allocate every draw with `policy`, keeping the ranges. */
export function allocateAll(a: AddressAllocator, d: Draws, policy: AllocPolicy, out: RangeInclusive[]): void {
  const { sizes, aligns } = d;
  for (let i = 0; i < sizes.length; i++) out[i] = a.allocate(sizes[i]!, aligns[i]!, policy);
}

/** The whole W1 input: N draws for phase A, the shuffle, N/2 draws for phase C. */
export interface ChurnInput {
  readonly n: number;
  readonly a: Draws;
  readonly order: Int32Array;
  readonly c: Draws;
}

export function churnInput(n: number): ChurnInput {
  const rng = new XorShift64();
  const a = draw(rng, n);
  const order = shuffle(rng, n);
  const c = draw(rng, n / 2);
  return { n, a, order, c };
}

/** Runs W1 phases A, B and C on a fresh pool; returns the allocator. */
export function churn(input: ChurnInput): AddressAllocator {
  const pool = newPool();
  const ranges: RangeInclusive[] = new Array(input.n);
  allocateAll(pool, input.a, AllocPolicy.FirstMatch, ranges);
  for (let i = 0; i < input.n / 2; i++) pool.free(ranges[input.order[i]!]!);
  const { sizes, aligns } = input.c;
  for (let i = 0; i < sizes.length; i++) pool.allocate(sizes[i]!, aligns[i]!);
  return pool;
}
