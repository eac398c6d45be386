/** W1: 100 000 FirstMatch allocations, free half in shuffled order, 50 000 new allocations. */
import { AllocPolicy, type AddressAllocator, type RangeInclusive } from "../src/index.js";
import { allocateAll, churn, churnInput, newPool } from "./address-workloads.js";
import { formatRate, printTarget, runPhases } from "./harness.js";

const N = 100_000;
const input = churnInput(N);
let pool: AddressAllocator = newPool();
let ranges: RangeInclusive[] = [];

const results = runPhases([
  {
    name: "W1 whole churn (A+B+C)",
    ops: N * 2,
    run: () => {
      churn(input);
    },
  },
  {
    name: "W1 phase A: 100k FirstMatch allocate",
    ops: N,
    setup: () => {
      pool = newPool();
      ranges = new Array(N);
    },
    run: () => allocateAll(pool, input.a, AllocPolicy.FirstMatch, ranges),
  },
  {
    name: "W1 phase B: 50k free (shuffled)",
    ops: N / 2,
    setup: () => {
      pool = newPool();
      ranges = new Array(N);
      allocateAll(pool, input.a, AllocPolicy.FirstMatch, ranges);
    },
    run: () => {
      for (let i = 0; i < N / 2; i++) pool.free(ranges[input.order[i]!]!);
    },
  },
  {
    name: "W1 phase C: 50k FirstMatch into holes",
    ops: N / 2,
    setup: () => {
      pool = newPool();
      ranges = new Array(N);
      allocateAll(pool, input.a, AllocPolicy.FirstMatch, ranges);
      for (let i = 0; i < N / 2; i++) pool.free(ranges[input.order[i]!]!);
    },
    run: () => {
      const { sizes, aligns } = input.c;
      for (let i = 0; i < sizes.length; i++) pool.allocate(sizes[i]!, aligns[i]!);
    },
  },
]);
const whole = results[0]!;
printTarget("W1 churn >= 1 000 000 ops/s", whole.opsPerSec >= 1e6, `${formatRate(whole.opsPerSec)} ops/s`);
