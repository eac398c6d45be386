/**
 * Releasing an owner against freeing its ids one by one: N ids allocated under one owner in an
 * IdAllocator over [0, 2^32-1], then `freeOwner` versus a `freeId` loop over the same ids (and, for
 * reference, a `freeId` loop over ids without owner). Target: freeOwner costs no more per id than
 * the freeId loop.
 *
 * Run: `npm run bench -- id-owners`
 */
import { IdAllocator } from "../src/core/id-allocator.js";
import { printTarget, runPhases } from "./harness.js";

const N = 1 << 19;
let a = new IdAllocator(0, 0xffff_ffff);
let ids: number[] = [];

function owned(): void {
  a = new IdAllocator(0, 0xffff_ffff);
  ids = a.allocateIds(N, "virtio-net@1");
}

// Correctness of the workload, once, untimed: both ways leave the same state.
{
  owned();
  const other = a.clone();
  if (a.freeOwner("virtio-net@1").length !== N) throw new Error("freeOwner did not free every id");
  for (const id of ids) other.freeId(id);
  if (JSON.stringify(a.toJSON()) !== JSON.stringify(other.toJSON())) throw new Error("freeOwner and freeId disagree");
}

const [byOwner, shared, oneByOne, plain] = runPhases(
  [
    { name: `freeOwner (${N} ids of one owner)`, ops: N, setup: owned, run: () => a.freeOwner("virtio-net@1") },
    {
      name: `freeOwner (${N} ids, another owner keeps ${N})`,
      ops: N,
      setup: () => {
        owned();
        a.allocateIds(N, "virtio-blk@2");
      },
      run: () => a.freeOwner("virtio-net@1"),
    },
    {
      name: `freeId x${N} (the same owned ids)`,
      ops: N,
      setup: owned,
      run: () => {
        for (let i = 0; i < ids.length; i++) a.freeId(ids[i]!);
      },
    },
    {
      name: `freeId x${N} (ids without owner)`,
      ops: N,
      setup: () => {
        a = new IdAllocator(0, 0xffff_ffff);
        ids = a.allocateIds(N);
      },
      run: () => {
        for (let i = 0; i < ids.length; i++) a.freeId(ids[i]!);
      },
    },
  ],
  { iterations: 3 },
);
const worst = Math.max(byOwner!.nsPerOp, shared!.nsPerOp);
const ratio = worst / oneByOne!.nsPerOp;
console.log(
  `freeOwner ${byOwner!.nsPerOp.toFixed(1)} ns/id (sole owner), ${shared!.nsPerOp.toFixed(1)} ns/id (one of two); ` +
    `freeId ${oneByOne!.nsPerOp.toFixed(1)} ns/id (owned), ${plain!.nsPerOp.toFixed(1)} ns/id (no owner): freeOwner/freeId = ${ratio.toFixed(2)}`,
);
printTarget("freeOwner <= freeId per id", ratio <= 1, `ratio ${ratio.toFixed(2)}`);
