/** W5: 100 000 ExactMatch(base + i * 0x2000) allocations of 0x1000 bytes aligned to 0x1000. */
import { AllocPolicy, type AddressAllocator } from "../src/index.js";
import { newPool, POOL_BASE } from "./address-workloads.js";
import { printTarget, runPhases } from "./harness.js";

const N = 100_000;
const policies = Array.from({ length: N }, (_, i) => AllocPolicy.ExactMatch(POOL_BASE + BigInt(i) * 0x2000n));
let pool: AddressAllocator = newPool();
const [r] = runPhases([
  {
    name: "W5 100k ExactMatch allocate",
    ops: N,
    setup: () => {
      pool = newPool();
    },
    run: () => {
      for (let i = 0; i < N; i++) pool.allocate(0x1000n, 0x1000n, policies[i]!);
    },
  },
]);
printTarget("W5 <= 400 ns/op", r!.nsPerOp <= 400, `${r!.nsPerOp.toFixed(0)} ns/op`);
