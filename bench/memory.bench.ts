/**
 * Memory: the allocator's own heap bytes per live allocation at 1M allocations (the ranges
 * handed to the caller are dropped before measuring), and the footprint of an empty allocator.
 * Run under --expose-gc (bench/run.js does).
 */
import { AddressAllocator, AllocPolicy } from "../src/index.js";
import { draw, newPool } from "./address-workloads.js";
import { printTarget, XorShift64 } from "./harness.js";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");
function used(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const N = 1_000_000;
// Draw in chunks so that no large input array sits on the heap while it is measured.
const rng = new XorShift64();
const before = used();
const pool = newPool();
for (let done = 0; done < N; done += 10_000) {
  const d = draw(rng, 10_000);
  for (let i = 0; i < 10_000; i++) pool.allocate(d.sizes[i]!, d.aligns[i]!, AllocPolicy.FirstMatch);
}
const after = used();
const perAllocation = (after - before) / pool.allocationCount;
console.log(`memory: ${pool.allocationCount} live allocations: ${((after - before) / 2 ** 20).toFixed(1)} MiB = ${perAllocation.toFixed(1)} bytes per allocation (heap + typed arrays, capacity slack included)`);
printTarget("memory < 100 bytes per live allocation", perAllocation < 100, `${perAllocation.toFixed(1)} bytes`);

const COUNT = 10_000;
const keep: AddressAllocator[] = [];
const b0 = used();
for (let i = 0; i < COUNT; i++) keep.push(new AddressAllocator(0, 1n << 64n));
const b1 = used();
console.log(`memory: empty AddressAllocator: ${((b1 - b0) / COUNT).toFixed(0)} bytes (mean of ${COUNT})`);
if (keep.length !== COUNT || pool.allocationCount !== N) throw new Error("unreachable");
