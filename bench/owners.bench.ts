/**
 * Releasing an owner against freeing what it holds one by one. IdAllocator: N ids allocated
 * under one owner in [0, 2^32-1], then `freeOwner` versus a `freeId` loop over the same ids (and,
 * for reference, a `freeId` loop over ids without owner). AddressAllocator: M ranges of one owner,
 * `releaseOwner` versus a `free` loop. Target: releasing an owner costs no more per item than
 * freeing the items one by one. Then restoring a snapshot whose owners name MAX_OWNED_IDS ids in
 * one run, against the same snapshot without owners.
 *
 * Run: `npm run bench -- owners`
 */
import { AddressAllocator } from "../src/core/address-allocator.js";
import { IdAllocator, MAX_OWNED_IDS, type IdAllocatorSnapshot } from "../src/core/id-allocator.js";
import type { RangeInclusive } from "../src/core/range.js";
import { AllocPolicy } from "../src/core/resource.js";
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

const M = 1 << 16;
let pool = new AddressAllocator(0, 1n << 40n);
let ranges: RangeInclusive[] = [];
function ownedRanges(): void {
  pool = new AddressAllocator(0, 1n << 40n);
  ranges = [];
  // Interleaved with another owner's ranges, so that each release merges into a gap.
  for (let i = 0; i < M; i++) {
    ranges.push(pool.allocate(0x1000n, 0x1000n, AllocPolicy.FirstMatch, { owner: "virtio-net@1" }));
    pool.allocate(0x1000n, 0x1000n, AllocPolicy.FirstMatch, { owner: "virtio-blk@2" });
  }
}
const [release, frees] = runPhases(
  [
    { name: `releaseOwner (${M} ranges of one owner)`, ops: M, setup: ownedRanges, run: () => pool.releaseOwner("virtio-net@1") },
    {
      name: `free x${M} (the same ranges)`,
      ops: M,
      setup: ownedRanges,
      run: () => {
        for (let i = 0; i < ranges.length; i++) pool.free(ranges[i]!);
      },
    },
  ],
  // releaseOwner runs once per iteration, the free loop 65536 times: more iterations, so that
  // both are measured warm.
  { iterations: 9 },
);
const addressRatio = release!.nsPerOp / frees!.nsPerOp;
console.log(`releaseOwner ${release!.nsPerOp.toFixed(1)} ns/range, free ${frees!.nsPerOp.toFixed(1)} ns/range: releaseOwner/free = ${addressRatio.toFixed(2)}`);
printTarget("releaseOwner <= free per range", addressRatio <= 1, `ratio ${addressRatio.toFixed(2)}`);

// Restoring owned ids: a snapshot whose owners name one long run (what a VM snapshot of a big
// MSI or instance-id pool looks like, and what a hostile ~150-byte snapshot can claim), against
// the same snapshot without owners (the bitmap alone, which restores in time proportional to the
// snapshot). Target: the owners add little, whatever the run's length.
const RUN = MAX_OWNED_IDS;
const ownedSnapshot: IdAllocatorSnapshot = {
  format: "vm-allocator/id-allocator",
  version: 1,
  first: 0,
  last: 0xffff_ffff,
  allocated: [[7, 7 + RUN - 1]],
  released: [],
  owners: [["virtio-net@1", [[7, 7 + RUN - 1]]]],
};
const bareSnapshot: IdAllocatorSnapshot = { ...ownedSnapshot, owners: [] };
{
  const r = IdAllocator.fromJSON(ownedSnapshot);
  if (r.ownerOf(7) !== "virtio-net@1" || r.ownerOf(7 + RUN - 1) !== "virtio-net@1" || r.ownerOf(7 + RUN) !== undefined) throw new Error("restored owners are wrong");
}
const [restoreOwned, restoreBare] = runPhases(
  [
    { name: `fromJSON (one run of ${RUN} owned ids, ${JSON.stringify(ownedSnapshot).length}-byte snapshot)`, ops: 1, run: () => IdAllocator.fromJSON(ownedSnapshot) },
    { name: `fromJSON (the same run, no owners)`, ops: 1, run: () => IdAllocator.fromJSON(bareSnapshot) },
  ],
  { iterations: 5 },
);
const restoreRatio = restoreOwned!.nsPerOp / restoreBare!.nsPerOp;
console.log(
  `fromJSON with ${RUN} owned ids: ${(restoreOwned!.nsPerOp / 1e6).toFixed(2)} ms; without owners ${(restoreBare!.nsPerOp / 1e6).toFixed(2)} ms; ratio ${restoreRatio.toFixed(1)}`,
);
printTarget("restoring MAX_OWNED_IDS owned ids takes well under a second", restoreOwned!.nsPerOp < 250e6, `${(restoreOwned!.nsPerOp / 1e6).toFixed(1)} ms`);
