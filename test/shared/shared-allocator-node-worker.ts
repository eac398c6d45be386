/**
 * A `worker_threads` worker of the shared-allocator tests and benchmark: attaches to the shared
 * allocator it is given and runs {@link Workload} steps, then posts its report.
 *
 * workerData: `{ handle, participantId, prefix, seed, calls, stop?, started? }`. With `stop` (an
 * Int32Array over shared memory) it runs until `stop[0]` becomes non-zero, else `calls` steps.
 * With `started` it posts "started" once attached, before the first call (the termination test
 * kills it some time after that). With `batch`, a `stop` run sleeps 1 ms every `batch` calls.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SharedSystemAllocator, type SharedSystemAllocatorHandle } from "../../src/shared/shared-system-allocator.js";
import { Workload } from "./shared-allocator-workload.js";

interface Data {
  readonly handle: SharedSystemAllocatorHandle;
  readonly participantId: number;
  readonly prefix: string;
  readonly seed: number;
  readonly calls: number;
  readonly stop?: Int32Array;
  readonly started?: boolean;
  /** With `stop`: sleep 1 ms after every `batch` calls, leaving the CPU to others. */
  readonly batch?: number;
}

const data = workerData as Data;
const sys = SharedSystemAllocator.attach(data.handle, { participantId: data.participantId });
const work = new Workload(sys, data.prefix, data.seed);
if (data.started === true) parentPort!.postMessage("started");
if (data.stop !== undefined) {
  for (let i = 1; Atomics.load(data.stop, 0) === 0; i++) {
    work.step();
    if (data.batch !== undefined && i % data.batch === 0) Atomics.wait(data.stop, 0, 0, 1);
  }
} else {
  for (let i = 0; i < data.calls; i++) work.step();
}
parentPort!.postMessage(work.report());
