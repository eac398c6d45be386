/**
 * A worker of bench/shared-allocator.bench.ts: attaches to the shared allocator, waits for the
 * start signal, makes `pairs` allocate+free pairs of one kind as fast as it can, and posts how
 * long they took (ns).
 */
import { parentPort, workerData } from "node:worker_threads";
import { SharedSystemAllocator, type SharedSystemAllocatorHandle } from "../src/shared/shared-system-allocator.js";
import { irqPairs, mmioPairs } from "./shared-allocator-pairs.js";

const data = workerData as { handle: SharedSystemAllocatorHandle; kind: "mmio" | "irq"; pairs: number; owner: string; go: Int32Array };
const sys = SharedSystemAllocator.attach(data.handle);
const work = data.kind === "mmio" ? mmioPairs(sys, data.owner) : irqPairs(sys, data.owner);
// A fresh worker runs cold for a few thousand calls: warm its JIT up before the clock starts.
work(3000);
parentPort!.postMessage("ready");
Atomics.wait(data.go, 0, 0);
const t0 = process.hrtime.bigint();
work(data.pairs);
parentPort!.postMessage(Number(process.hrtime.bigint() - t0));
