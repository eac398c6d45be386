/**
 * A reader of the browser torn-read test (shared-routing-browser.test.ts), run as a module Web
 * Worker on the cross-origin-isolated page: the same steps as shared-routing-node-worker.ts,
 * over postMessage.
 */
import { SharedRouteView } from "../../src/index.js";
import { hammer, timeline } from "./shared-routing-scenario.js";

interface Start {
  readonly buffer: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly seed: number;
  readonly ops: number;
  readonly reader: number;
}
/** The worker global, typed here since the project compiles without the DOM library. */
const scope = globalThis as unknown as { onmessage: ((e: { data: Start }) => void) | null; postMessage(message: unknown): void };

scope.onmessage = (e) => {
  const { buffer, control, seed, ops, reader } = e.data;
  const view = SharedRouteView.attach(buffer);
  const tables = timeline(seed, ops);
  scope.postMessage({ ready: true });
  scope.postMessage({ report: hammer(view, tables, new Int32Array(control), seed * 31 + reader) });
};
