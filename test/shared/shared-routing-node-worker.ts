/**
 * A reader of the Node torn-read test (shared-routing-workers.test.ts), run in a worker_threads
 * worker: attaches a view to the table's buffer, replays the scenario, says it is ready, then
 * hammers until the writer is done and posts its report.
 */
import { parentPort, workerData } from "node:worker_threads";
import { SharedRouteView } from "../../src/index.js";
import { hammer, timeline } from "./shared-routing-scenario.js";

const { buffer, control, seed, ops, reader } = workerData as { buffer: SharedArrayBuffer; control: SharedArrayBuffer; seed: number; ops: number; reader: number };
const view = SharedRouteView.attach(buffer);
const tables = timeline(seed, ops);
parentPort!.postMessage({ ready: true });
parentPort!.postMessage({ report: hammer(view, tables, new Int32Array(control), seed * 31 + reader) });
