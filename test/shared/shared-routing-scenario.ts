/**
 * The torn-read scenario of the shared routing tests, shared by the Node (worker_threads) and
 * browser (Web Workers) versions, so it imports nothing of Node.
 *
 * A writer applies a deterministic sequence of bus changes (inserts, removals, moves, in a low
 * window below 2^32 and a high one just under 2^64), each publishing exactly one table, so table
 * number g is the bus after g changes. Every reader replays the same sequence on its own bus to
 * know each table exactly, then hammers `find` (numbers and bigints) and `snapshot` while the
 * writer runs, and checks every answer against the table of the generation the view says
 * answered it: a torn mix of two tables would differ from both. Inserts and removals at the low
 * end shift every entry of the table, so a mix would differ almost everywhere.
 */
import { Bus, type BusMapping } from "../../src/devices/bus.js";
import { RangeInclusive } from "../../src/core/range.js";
import type { SharedRouteView } from "../../src/shared/shared-route-view.js";

/** Words of the control buffer the writer and the readers share. */
export const CONTROL_DONE = 0;
export const CONTROL_PUBLISHED = 1;
export const CONTROL_WORDS = 4;

const SLOT = 0x1000n;
const SLOTS = 48;
const LOW = 0x1_0000n;
const HIGH = 0xffff_ffff_ffff_ffffn - BigInt(SLOTS) * SLOT + 1n;

/** A device of the scenario: its id is its handle. */
export interface ScenarioDevice {
  readonly name: string;
  readonly id: number;
  read(): void;
  write(): void;
}

export type ScenarioOp =
  | { readonly type: "insert"; readonly start: bigint; readonly size: bigint; readonly id: number }
  | { readonly type: "remove"; readonly start: bigint }
  | { readonly type: "move"; readonly start: bigint; readonly to: bigint };

/** xorshift32, deterministic on every host. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const slotBase = (slot: number): bigint => (slot < SLOTS ? LOW + BigInt(slot) * SLOT : HIGH + BigInt(slot - SLOTS) * SLOT);

/** `count` changes that are all valid in order, from an empty bus. */
export function scenarioOps(seed: number, count: number): ScenarioOp[] {
  const next = rng(seed);
  const occupied = new Map<number, bigint>(); // slot -> start
  const ops: ScenarioOp[] = [];
  let id = 0;
  const free = (): number => {
    for (;;) {
      // Favour the lowest slots, so that many changes shift the whole table.
      const s = next() % 4 === 0 ? next() % 4 : next() % (2 * SLOTS);
      if (!occupied.has(s)) return s;
    }
  };
  while (ops.length < count) {
    const r = next() % 10;
    const slots = [...occupied.keys()];
    if (slots.length < 8 || (r < 4 && slots.length < 2 * SLOTS - 4)) {
      const s = free();
      const offset = BigInt(next() % 0x800);
      const size = 1n + BigInt(next() % 0x800);
      occupied.set(s, slotBase(s) + offset);
      ops.push({ type: "insert", start: slotBase(s) + offset, size, id: id++ });
    } else if (r < 7) {
      const s = slots[next() % slots.length]!;
      ops.push({ type: "remove", start: occupied.get(s)! });
      occupied.delete(s);
    } else {
      const s = slots[next() % slots.length]!;
      const t = free();
      const to = slotBase(t) + BigInt(next() % 0x800);
      ops.push({ type: "move", start: occupied.get(s)!, to });
      occupied.delete(s);
      occupied.set(t, to);
    }
  }
  return ops;
}

/** Applies one change; the mapping to remove or move is the one containing `start`. */
export function applyOp(bus: Bus<ScenarioDevice>, op: ScenarioOp): void {
  if (op.type === "insert") {
    bus.insert(RangeInclusive.withSize(op.start, op.size), { name: `d${op.id}`, id: op.id, read() {}, write() {} });
  } else if (op.type === "remove") {
    bus.remove(op.start);
  } else {
    const m = bus.lookup(op.start)!;
    bus.move(m.range, op.to);
  }
}

/** The handle of a scenario mapping. */
export const scenarioHandle = (m: BusMapping<ScenarioDevice>): number => m.device.id;

/** One table: starts, ends and handles in address order. */
export interface Table {
  readonly starts: bigint[];
  readonly ends: bigint[];
  readonly handles: number[];
}

/** Every table the writer will publish: `timeline[g]` is the bus after g changes. */
export function timeline(seed: number, count: number): Table[] {
  const bus = new Bus<ScenarioDevice>("mem");
  const tables: Table[] = [];
  const record = () => {
    const ms = bus.mappings();
    tables.push({ starts: ms.map((m) => m.range.start), ends: ms.map((m) => m.range.end), handles: ms.map((m) => m.device.id) });
  };
  record();
  for (const op of scenarioOps(seed, count)) {
    applyOp(bus, op);
    record();
  }
  return tables;
}

/** The handle and offset `table` gives `a`, or -1. */
function expect(table: Table, a: bigint): [number, bigint] {
  let lo = 0;
  let hi = table.starts.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (table.starts[mid]! <= a) lo = mid + 1;
    else hi = mid - 1;
  }
  const i = lo - 1;
  return i >= 0 && a <= table.ends[i]! ? [table.handles[i]!, a - table.starts[i]!] : [-1, 0n];
}

/** What a reader reports. */
export interface ReaderReport {
  readonly reads: number;
  readonly retries: number;
  readonly snapshots: number;
  /** How many times the generation answering a lookup changed. */
  readonly generationsSeen: number;
  readonly lastGeneration: number;
  /** The first problems found (empty when every answer matched its table). */
  readonly errors: string[];
}

/**
 * Reads until the writer sets CONTROL_DONE, checking every answer against `tables`. Lookups
 * alternate numbers in the low window, bigints in the low window, and bigints in the high one.
 */
export function hammer(view: SharedRouteView, tables: readonly Table[], control: Int32Array, seed: number): ReaderReport {
  const next = rng(seed);
  const errors: string[] = [];
  let reads = 0;
  let snapshots = 0;
  let changes = 0;
  let last = -1;
  const fail = (what: string) => {
    if (errors.length < 5) errors.push(what);
  };
  const lowSpan = Number(BigInt(SLOTS) * SLOT);
  let done = false;
  while (!done && errors.length === 0) {
    done = Atomics.load(control, CONTROL_DONE) === 1; // one more round after the end, on the final table
    for (let i = 0; i < 512; i++) {
      const r = next();
      const kind = r % 3;
      const a = kind === 2 ? HIGH + BigInt(r % lowSpan) : LOW + BigInt(r % lowSpan);
      const handle = kind === 0 ? view.find(Number(a)) : view.find(a);
      const g = view.lastGeneration;
      reads++;
      if (g < last) fail(`generation went back from ${last} to ${g}`);
      if (g !== last) changes++;
      last = g;
      const table = tables[g];
      if (table === undefined) {
        fail(`generation ${g} was never published`);
        continue;
      }
      const [want, offset] = expect(table, a);
      if (handle !== want) fail(`find(0x${a.toString(16)}) at generation ${g} gave ${handle}, table ${g} says ${want}`);
      else if (want >= 0 && BigInt(view.lastOffset) !== offset) fail(`offset at 0x${a.toString(16)} generation ${g}: ${view.lastOffset}, want ${offset}`);
    }
    const snap = view.snapshot();
    snapshots++;
    const t = tables[snap.generation];
    if (snap.generation < last) fail(`snapshot generation ${snap.generation} is before ${last}`);
    last = Math.max(last, snap.generation);
    if (t === undefined) fail(`snapshot generation ${snap.generation} was never published`);
    else if (
      snap.routes.length !== t.starts.length ||
      snap.routes.some((r, i) => BigInt(r.start) !== t.starts[i] || BigInt(r.end) !== t.ends[i] || r.handle !== t.handles[i])
    ) {
      fail(`snapshot at generation ${snap.generation} is not table ${snap.generation}`);
    }
  }
  return { reads, retries: view.retries, snapshots, generationsSeen: changes, lastGeneration: last, errors };
}

/**
 * The writer's side: applies the changes to `bus` (which a table mirrors), spinning about
 * `spacingMs` between them so that readers see many generations, until the changes run out or
 * `budgetMs` has passed; then stores how many it published in CONTROL_PUBLISHED and sets
 * CONTROL_DONE.
 * @returns how many changes were published.
 */
export function write(bus: Bus<ScenarioDevice>, ops: readonly ScenarioOp[], control: Int32Array, spacingMs: number, budgetMs: number, now: () => number): number {
  let n = 0;
  const end = now() + budgetMs;
  for (const op of ops) {
    applyOp(bus, op);
    n++;
    const until = now() + spacingMs;
    while (now() < until) {
      // spin: the readers are running on other cores
    }
    if (now() > end) break;
  }
  Atomics.store(control, CONTROL_PUBLISHED, n);
  Atomics.store(control, CONTROL_DONE, 1);
  return n;
}
