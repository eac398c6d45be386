/** W4: phase A of W1 with LastMatch placement (100 000 allocations into a fresh pool). */
import { AllocPolicy, type AddressAllocator, type RangeInclusive } from "../src/index.js";
import { allocateAll, draw, newPool } from "./address-workloads.js";
import { runPhases, XorShift64 } from "./harness.js";

const N = 100_000;
const d = draw(new XorShift64(), N);
let pool: AddressAllocator = newPool();
runPhases([
  {
    name: "W4 100k LastMatch allocate",
    ops: N,
    setup: () => {
      pool = newPool();
    },
    run: () => allocateAll(pool, d, AllocPolicy.LastMatch, new Array<RangeInclusive>(N)),
  },
]);
