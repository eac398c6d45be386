/**
 * The server half of the round trip `shared-allocator.bench.ts` measures for the design it did
 * not choose (one owner thread answering synchronous calls): it waits for a request number in
 * word 0, answers by writing it to word 1 and waking the caller, until it reads -1.
 */
import { workerData } from "node:worker_threads";

const words = (workerData as { words: Int32Array }).words;
let seen = 0;
for (;;) {
  Atomics.wait(words, 0, seen);
  const request = Atomics.load(words, 0);
  if (request === -1) break;
  seen = request;
  Atomics.store(words, 1, request);
  Atomics.notify(words, 1);
}
