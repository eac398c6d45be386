/**
 * A module Web Worker of the browser test: attaches to the shared allocator it is posted, runs
 * `calls` {@link Workload} steps and posts its report back. It imports no `node:*`.
 */
import { SharedSystemAllocator, type SharedSystemAllocatorHandle } from "../../src/shared/shared-system-allocator.js";
import { Workload } from "./shared-allocator-workload.js";

interface Start {
  readonly handle: SharedSystemAllocatorHandle;
  readonly participantId: number;
  readonly prefix: string;
  readonly seed: number;
  readonly calls: number;
}

/** The worker's global scope, typed by hand: the project compiles without the DOM library. */
const scope = globalThis as unknown as { onmessage: ((event: { data: Start }) => void) | null; postMessage(message: unknown): void };

scope.onmessage = ({ data }) => {
  try {
    const sys = SharedSystemAllocator.attach(data.handle, { participantId: data.participantId });
    const work = new Workload(sys, data.prefix, data.seed);
    for (let i = 0; i < data.calls; i++) work.step();
    scope.postMessage({ report: work.report() });
  } catch (error) {
    scope.postMessage({ error: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack ?? ""}` : String(error) });
  }
};
