/**
 * The shared system allocator across real `worker_threads`: four workers making random calls
 * while the main thread operates and snapshots, checked against a single-threaded replay of the
 * committed calls; and workers terminated at random points inside calls, after which the pools
 * stay consistent and usable.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { SharedSystemAllocator } from "../../src/shared/shared-system-allocator.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { getLayout } from "../../src/system/layouts.js";
import type { CallbackHolding } from "../../src/system/allocation-callbacks.js";
import type { SystemAllocator } from "../../src/system/system-allocator-interface.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { SharedRouteTable } from "../../src/shared/shared-route-table.js";
import { SharedRouteView } from "../../src/shared/shared-route-view.js";
import { doubleHolding, inCommitOrder, replay, viewMismatch, Workload, type CallName, type Committed, type Held, type WorkloadReport } from "./shared-allocator-workload.js";

const WORKER = new URL("./shared-allocator-node-worker.js", import.meta.url);
const LAYOUT = getLayout("pc-x86_64");

function assertNoDoubleHolding(holdings: readonly CallbackHolding[]): void {
  assert.equal(doubleHolding(holdings), undefined);
}

/** Each participant's own view equals what the allocator holds under its owners. */
function assertViews(shared: SharedSystemAllocator, views: ReadonlyMap<string, readonly Held[]>): void {
  const all = shared.holdingsCallback()();
  for (const [prefix, held] of views) assert.equal(viewMismatch(all, prefix, held), undefined);
}

/**
 * The shared allocator as a device manager sees it, recording every call that commits (with its
 * commit sequence number) in the vocabulary of the workload, so that the main thread's device
 * manager takes part in the single-threaded replay.
 */
function recording(shared: SharedSystemAllocator, committed: Committed[]): SystemAllocator {
  const wrap = <P extends object, R>(call: CallName, cb: (p: P) => R): ((p: P) => R) => (params) => {
    const result = cb(params);
    const wireParams = Object.fromEntries(
      Object.entries(params).map(([k, v]) => [k, v instanceof RangeInclusive ? { start: v.start, end: v.end } : v]),
    );
    const wireResult = result instanceof RangeInclusive ? { start: result.start, end: result.end } : (result as number | null);
    committed.push({ seq: shared.lastCommitSequence, call, params: wireParams, result: wireResult });
    return result;
  };
  return {
    deviceIdCallback: () => wrap("deviceId", shared.deviceIdCallback()),
    irqCallback: () => wrap("irq", shared.irqCallback()),
    pioAddressCallback: () => wrap("pio", shared.pioAddressCallback()!),
    mmioAddressCallback: () => wrap("mmio", shared.mmioAddressCallback()),
    holdingsCallback: () => shared.holdingsCallback(),
  };
}

function start(data: Record<string, unknown>): { worker: Worker; done: Promise<WorkloadReport> } {
  const worker = new Worker(WORKER, { workerData: data });
  const done = new Promise<WorkloadReport>((resolve, reject) => {
    worker.on("message", (m: unknown) => {
      if (m !== "started") resolve(m as WorkloadReport);
    });
    worker.on("error", reject);
    worker.on("exit", (code) => reject(new Error(`worker ${String(data["prefix"])} exited (${code}) before reporting`)));
  });
  return { worker, done };
}

describe("SharedSystemAllocator across worker_threads", () => {
  it("4 workers x 10 000 random calls, the main thread operating and snapshotting: equal to a single-threaded replay", async () => {
    const shared = SharedSystemAllocator.create(LAYOUT, { logBytes: 256 << 10 });
    const prefixes = ["w0", "w1", "w2", "w3"];
    const runs = prefixes.map((prefix, i) =>
      start({ handle: shared.handle, participantId: shared.reserveParticipantId(), prefix, seed: 0x9e3779b1 * (i + 1), calls: 10_000 }),
    );
    const main = new Workload(shared, "main", 12345);
    // The main thread also runs a device manager on the shared allocator and moves its mappings
    // (a guest reprogramming BARs), each move an exact allocation racing the workers' calls, with
    // the routing published to a view as a vCPU worker would read it.
    const dmCalls: Committed[] = [];
    const dm = DeviceManager.fromSystemAllocator(recording(shared, dmCalls), { otherManagers: true });
    const movers = [0, 1, 2, 3].map((i) => dm.fullRegisterDevice({ name: `mover${i}`, read() {}, write() {} }, [{ kind: "mmio", size: 0x1000 }]));
    const routes = SharedRouteTable.forDeviceManager(dm, "mmio");
    const view = SharedRouteView.attach(routes.buffer);
    let moves = 0;
    let refusedMoves = 0;
    let pick = 7;
    const moveOne = (): void => {
      pick = (pick * 1103515245 + 12345) >>> 0;
      const id = movers[pick % movers.length]!;
      const from = dm.resourcesOf(id).mmio[0]!.range;
      const base = 0xc000_0000 + ((pick >>> 4) % 0x1000) * 0x1000;
      try {
        const to = dm.moveRange(id, from, base);
        moves++;
        assert.equal(view.find(to.start), id);
        assert.equal(view.lastOffset, 0);
        if (!to.containsValue(from.start)) assert.notEqual(view.find(from.start), id);
      } catch (error) {
        if (!(error instanceof AllocatorError)) throw error;
        refusedMoves++;
        assert.equal(view.find(from.start), id); // a refused move changes nothing
      }
    };
    let finished = false;
    const all = Promise.all(runs.map((r) => r.done)).finally(() => (finished = true));
    let snapshots = 0;
    while (!finished) {
      for (let i = 0; i < 20; i++) main.step();
      for (let i = 0; i < 4; i++) moveOne();
      assertNoDoubleHolding(shared.holdingsCallback()());
      // A snapshot taken while the workers run is a consistent state.
      const snapshot = shared.toJSON();
      DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(snapshot))).checkValid();
      snapshots++;
      await yieldToLoop();
    }
    const reports = await all;
    const { calls, gap } = inCommitOrder([...reports.map((r) => r.committed), main.committed, dmCalls]);
    assert.equal(gap, undefined);
    assert.ok(moves > 0, `no move succeeded (${refusedMoves} refused)`);
    dm.checkConsistency();
    routes.checkValid();
    assert.ok(calls.length > 30_000, `only ${calls.length} calls committed`);
    assert.ok(snapshots > 0);
    // The log (256 KiB) wrapped: checkpoints and reloads were exercised.
    assert.ok(shared.committedLog().checkpointSequence > 0, "no checkpoint was taken");
    const fresh = new DefaultSystemAllocator(LAYOUT);
    assert.equal(replay(fresh, calls), undefined);
    assert.deepEqual(shared.holdings(), fresh.holdings());
    assert.deepEqual(shared.toJSON(), fresh.toJSON());
    assertNoDoubleHolding(shared.holdingsCallback()());
    shared.checkValid();
    assertViews(shared, new Map([...prefixes.map((p, i) => [p, reports[i]!.held] as const), ["main", main.held()]]));
  });

  it("workers terminated at random points inside calls 200 times leave the pools consistent and usable", async () => {
    // A small log: checkpoints are frequent, so workers also die while writing one, and a new
    // worker has little to replay when it attaches.
    const shared = SharedSystemAllocator.create(LAYOUT, { logBytes: 32 << 10 });
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const survivors = ["s0", "s1"].map((prefix, i) =>
      start({ handle: shared.handle, participantId: shared.reserveParticipantId(), prefix, seed: 777 + i, calls: 0, stop, batch: 5 }),
    );
    const KILLS = 200;
    const PARALLEL = 4;
    let next = 0;
    let recovered = 0;
    let seed = 99;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const dead: string[] = [];
    const killOne = async (): Promise<void> => {
      const n = next++;
      const prefix = `k${n}`;
      const participantId = shared.reserveParticipantId();
      const worker = new Worker(WORKER, { workerData: { handle: shared.handle, participantId, prefix, seed: n + 1, calls: 5_000, started: true } });
      const exited = new Promise<void>((resolve) => worker.on("exit", () => resolve()));
      worker.on("error", () => undefined);
      await new Promise<void>((resolve) => worker.once("message", () => resolve()));
      await new Promise((resolve) => setTimeout(resolve, rand(8)));
      await worker.terminate();
      await exited;
      // The supervisor's rule: after a worker exits, recover its participant id.
      if (shared.recoverFrom(participantId)) recovered++;
      dead.push(prefix);
    };
    const lanes = Array.from({ length: PARALLEL }, async () => {
      while (next < KILLS) await killOne();
    });
    await Promise.all(lanes);
    Atomics.store(stop, 0, 1);
    const reports = await Promise.all(survivors.map((s) => s.done));
    assert.equal(dead.length, KILLS);
    console.log(`# ${KILLS} workers terminated, ${recovered} of them while holding the lock`);
    // Some workers died holding the lock (inside a call), and recovery released it.
    assert.ok(recovered > 0, "no worker was terminated while holding the lock");
    shared.checkValid();
    assertNoDoubleHolding(shared.holdingsCallback()());
    // The checkpoint and the log after it, replayed here on a fresh allocator, give the same
    // state; and the survivors' results at their sequence numbers are what the replay computes.
    const { checkpoint, checkpointSequence, operations } = shared.committedLog();
    assert.ok(operations.length > 0);
    const fresh = DefaultSystemAllocator.fromJSON(checkpoint);
    const cb = { deviceId: fresh.deviceIdCallback(), irq: fresh.irqCallback(), pio: fresh.pioAddressCallback()!, mmio: fresh.mmioAddressCallback() } as Record<string, (p: unknown) => unknown>;
    const bySeq = new Map(reports.flatMap((r) => r.committed).map((c) => [c.seq, c] as const));
    let checked = 0;
    operations.forEach((op, i) => {
      assert.equal(op.sequence, checkpointSequence + i + 1);
      const recorded = bySeq.get(op.sequence);
      if (recorded !== undefined) {
        assert.equal(op.operation, recorded.call);
        assert.equal(replay(fresh, [recorded]), undefined);
        checked++;
      } else if (op.operation === "releaseAll") fresh.releaseAll(op.args[0] as string);
      else cb[op.operation]!(op.args[0]);
    });
    assert.ok(checked > 0, "no survivor call in the last log");
    assert.deepEqual(shared.toJSON(), fresh.toJSON());
    // Every survivor call committed before the checkpoint is part of it: sequence numbers agree.
    assert.ok([...bySeq.keys()].every((s) => s <= checkpointSequence + operations.length));
    assertViews(shared, new Map(["s0", "s1"].map((p, i) => [p, reports[i]!.held] as const)));
    // What the dead held stays held under their owners until the supervisor frees it.
    for (const prefix of dead) for (let d = 0; d < 4; d++) shared.releaseAll(`${prefix}-dev${d}`);
    for (const h of shared.holdingsCallback()()) {
      // Instance ids taken with appendIdToOwner are held under `name@id`.
      if (h.owner.startsWith("k") && h.owner.includes("@")) shared.releaseAll(h.owner);
    }
    assert.deepEqual(
      shared.holdingsCallback()().filter((h) => h.owner.startsWith("k")),
      [],
    );
    // And the allocator goes on working for everyone.
    const more = new Workload(shared, "after", 5);
    for (let i = 0; i < 500; i++) more.step();
    assert.ok(more.committed.length > 0);
    shared.checkValid();
  });
});
