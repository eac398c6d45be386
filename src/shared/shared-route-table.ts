/**
 * The writing side of a shared route table: a bus's routing mirrored into a `SharedArrayBuffer`,
 * kept in step with the bus through its change feed, for {@link SharedRouteView}s in other
 * threads. The layout is in route-layout.ts and the publish protocol in shared-route-view.ts.
 */
import { AllocatorError } from "../core/errors.js";
import { describeValue, readFields } from "../core/arguments.js";
import { Bus, type BusKind, type BusMapping } from "../devices/bus.js";
import type { Device } from "../devices/device.js";
import { DeviceManager } from "../devices/device-manager.js";
import {
  B_COUNT,
  bufferBase,
  emptyEntries,
  entriesBase,
  ENTRY_WORDS,
  handlesBase,
  keysBase,
  HI,
  kindCode,
  LAYOUT_VERSION,
  LO,
  MAGIC,
  MAX_CAPACITY,
  newTableBuffer,
  SCRATCH_U32,
  SCRATCH_U64,
  STALE_COUNT,
  tableBytes,
  W_CAPACITY,
  W_KIND,
  W_LAYOUT,
  W_MAGIC,
  W_SEQ,
} from "./route-layout.js";
import type { SharedRouteSnapshot } from "./shared-route-snapshot.js";
import { SharedRouteView } from "./shared-route-view.js";

/**
 * Gives a mapping its handle: a u32 (0 to 2^32-1) the VMM maps to the device, or to the
 * `MessagePort` of the worker that serves it. Asked once per mapping (a moved mapping is a new
 * one); {@link SharedRouteTable.publish} asks again for all.
 * @typeParam D The device type of the bus's mappings.
 */
export type RouteHandleOf<D = Device> = (mapping: BusMapping<D>) => number;

/** Options of a {@link SharedRouteTable}. */
export interface SharedRouteTableOptions {
  /** Most routes the table holds, 0 to 2^20; default {@link DEFAULT_ROUTE_CAPACITY}. Fixed for the table's life. */
  readonly capacity?: number;
}

/** The capacity of a table made without one: 1 024 routes, 40 KiB of buffer. */
export const DEFAULT_ROUTE_CAPACITY = 1024;

/** The cached words of one mapping. */
interface RouteWords {
  readonly sh: number;
  readonly sl: number;
  readonly eh: number;
  readonly el: number;
  readonly handle: number;
  /** The start rounded to a double: `sh * 2^32 + sl`. */
  readonly key: number;
}

/** The instance id in an owner `name@id`, the shape a device manager gives its devices' mappings. */
const MANAGED_OWNER = /@(0|[1-9][0-9]{0,9})$/;

/**
 * A bus's routing in shared memory, for lock-free lookups from other threads through
 * {@link SharedRouteView}. Only the thread that owns the bus writes it: the table subscribes to
 * the bus, and every insert, removal and move publishes a new whole table before the changing
 * call returns. Readers see the table before or after each change, never a mix.
 *
 * The table never desynchronizes silently: when the bus holds more mappings than
 * {@link capacity}, when `handleOf` throws or returns something that is not a u32, and after
 * {@link close}, it publishes a *stale* table, where every lookup answers `ROUTE_STALE` so that
 * readers ask the owning thread instead; {@link stale} and {@link staleReason} say so here. The
 * next change that fits (or {@link publish}) makes it exact again.
 *
 * The table object, like its bus, belongs to the bus's thread; only {@link buffer} goes to other
 * threads. A publish rebuilds the inactive buffer from the bus, O(n) in its mappings (handles are
 * cached per mapping, and words that already hold their value are not stored again); about 30 us
 * for 1 000 mappings. {@link close} ends the subscription to the bus. Where `SharedArrayBuffer` is unavailable (a page that is not cross-origin
 * isolated) the table uses a plain `ArrayBuffer`, readable only in its own thread.
 *
 * @example
 * ```ts
 * const dm = new DeviceManager();
 * const table = SharedRouteTable.forDeviceManager(dm, "mmio"); // handle = instance id
 * worker.postMessage(table.buffer); // the worker: SharedRouteView.attach(buffer).find(address)
 * dm.moveRange(3, oldRange, 0xe000_0000n); // published before moveRange returns
 * ```
 *
 * @typeParam D what the bus maps.
 */
export class SharedRouteTable<D = Device> {
  /** The table's memory: post it to workers and {@link SharedRouteView.attach} it there. */
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  /** The kind of the bus mirrored. */
  readonly kind: BusKind;
  /** Most routes the table holds. */
  readonly capacity: number;

  readonly #bus: Bus<D>;
  readonly #handleOf: RouteHandleOf<D>;
  readonly #w: Uint32Array;
  readonly #keys: Float64Array;
  #cache = new WeakMap<BusMapping<D>, RouteWords>();
  readonly #unsubscribe: () => void;
  #closed = false;
  /** Per buffer, how many entries may be non-empty: the count of the last table written there. */
  readonly #filled = [0, 0];
  #staleReason: string | undefined;
  #view: SharedRouteView | undefined;

  /**
   * Mirrors `bus` from now on; the table of the bus as it is now is generation 0.
   * @param handleOf the handle of each mapping (see {@link RouteHandleOf}); called as a plain function.
   * @throws AllocatorError `InvalidArgument` for a bus that is not a `Bus`, a `handleOf` that is
   *   not a function, or a bad capacity.
   */
  constructor(bus: Bus<D>, handleOf: RouteHandleOf<D>, options: SharedRouteTableOptions = {}) {
    if (!(bus instanceof Bus)) throw new AllocatorError("InvalidArgument", `bus must be a Bus, got ${describeValue(bus)}`);
    if (typeof handleOf !== "function") throw new AllocatorError("InvalidArgument", `handleOf must be a function, got ${describeValue(handleOf)}`);
    const [cap] = readFields(options, "options", ["capacity"]);
    const capacity = cap === undefined ? DEFAULT_ROUTE_CAPACITY : cap;
    if (typeof capacity !== "number" || !Number.isInteger(capacity) || capacity < 0 || capacity > MAX_CAPACITY) {
      throw new AllocatorError("InvalidArgument", `options.capacity must be an integer from 0 to ${MAX_CAPACITY}, got ${describeValue(capacity)}`);
    }
    this.#bus = bus;
    this.#handleOf = handleOf;
    this.kind = bus.kind;
    this.capacity = capacity;
    this.buffer = newTableBuffer(tableBytes(capacity));
    const w = new Uint32Array(this.buffer);
    this.#w = w;
    this.#keys = new Float64Array(this.buffer);
    w[W_MAGIC] = MAGIC;
    w[W_LAYOUT] = LAYOUT_VERSION;
    w[W_CAPACITY] = capacity;
    w[W_KIND] = kindCode(bus.kind);
    // Every entry starts empty (see #fill); generation 0 goes into buffer 0 before anyone else
    // can see the buffer.
    emptyEntries(w, capacity);
    this.#fill(0);
    this.#unsubscribe = bus.subscribe(() => this.#publish());
  }

  /**
   * A table of one of a device manager's buses whose handles are the devices' instance ids,
   * read from the `name@id` owner the manager gives each mapping. A mapping put on the bus
   * behind the manager's back with another owner makes the table stale.
   * @throws AllocatorError `InvalidArgument` for a bad manager, bus name or options.
   */
  static forDeviceManager(dm: DeviceManager, bus: "pio" | "mmio", options: SharedRouteTableOptions = {}): SharedRouteTable<Device> {
    if (!(dm instanceof DeviceManager)) throw new AllocatorError("InvalidArgument", `dm must be a DeviceManager, got ${describeValue(dm)}`);
    if (bus !== "pio" && bus !== "mmio") throw new AllocatorError("InvalidArgument", `bus must be "pio" or "mmio", got ${describeValue(bus)}`);
    return new SharedRouteTable<Device>(bus === "pio" ? dm.pioBus : dm.mmioBus, instanceIdOfOwner, options);
  }

  /** How many tables have been published since generation 0, modulo 2^32. */
  get generation(): number {
    return Atomics.load(this.#w, W_SEQ);
  }

  /** True when the published table is stale (see the class documentation). */
  get stale(): boolean {
    return this.#staleReason !== undefined;
  }

  /** Why the published table is stale, or undefined when it is exact. */
  get staleReason(): string | undefined {
    return this.#staleReason;
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Publishes the bus's table now, asking `handleOf` again for every mapping: for when the
   * handles changed (a device moved to another worker) while the mappings did not.
   * @throws AllocatorError `InvalidState` after {@link close}.
   */
  publish(): void {
    if (this.closed) throw new AllocatorError("InvalidState", "the shared route table is closed");
    this.#cache = new WeakMap();
    this.#publish();
  }

  /**
   * Stops following the bus and publishes a stale table, so that readers stop trusting a table
   * nobody maintains. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    this.#publish();
  }

  /** The table published now, as {@link SharedRouteView.snapshot} reads it. */
  toJSON(): SharedRouteSnapshot {
    this.#view ??= SharedRouteView.attach(this.buffer);
    return this.#view.snapshot();
  }

  /**
   * Checks that the published table is the bus's routing (or is stale, with a reason).
   * @throws AllocatorError `InvalidState` describing the first difference.
   */
  checkValid(): void {
    const snap = this.toJSON();
    const bad = (what: string): AllocatorError => new AllocatorError("InvalidState", `shared route table of the ${this.kind} bus is out of step: ${what}`);
    if (snap.stale !== this.stale) throw bad(`the buffer says stale=${snap.stale}, the table ${this.stale}`);
    if (snap.stale) return;
    const mappings = this.#bus.mappings();
    if (mappings.length !== snap.routes.length) throw bad(`${snap.routes.length} routes for ${mappings.length} mappings`);
    mappings.forEach((m, i) => {
      const r = snap.routes[i]!;
      const words = this.#cache.get(m);
      if (BigInt(r.start) !== m.range.start || BigInt(r.end) !== m.range.end || words === undefined || r.handle !== words.handle) {
        throw bad(`route ${i} ${r.start}-${r.end} handle ${r.handle} is not ${m.owner} ${m.range.toString(this.kind)}`);
      }
    });
  }

  /** Fills the inactive buffer and makes it active. */
  #publish(): void {
    const w = this.#w;
    const seq = Atomics.load(w, W_SEQ);
    this.#fill((seq + 1) & 1);
    // The publish: one SC increment flips the active buffer (see shared-route-view.ts).
    Atomics.add(w, W_SEQ, 1);
  }

  /** Writes the bus's table, or a stale one, into buffer `parity` (which no reader trusts now). */
  #fill(parity: number): void {
    const w = this.#w;
    const base = bufferBase(this.capacity, parity);
    let reason: string | undefined;
    let n = 0;
    if (this.#closed) {
      reason = "closed";
    } else if (this.#bus.size > this.capacity) {
      reason = `the bus has ${this.#bus.size} mappings, more than the capacity ${this.capacity}`;
    } else {
      const mappings = this.#bus.mappings();
      const handles = handlesBase(this.capacity, base);
      const entries = entriesBase(this.capacity, base);
      const keys = keysBase(base) >>> 1;
      for (; n < mappings.length; n++) {
        const m = mappings[n]!;
        const r = this.#words(m);
        if (typeof r === "string") {
          reason = r;
          break;
        }
        const e = entries + ENTRY_WORDS * n;
        // The key is a hint (see shared-route-view.ts): a plain store. A word that already holds
        // its value is not stored again: the buffer held table k - 1, and a reader of table k + 1
        // that reads that older write still reads the right value (it happened before the
        // publish of k + 1). A move rewrites a few entries, an insert at the front all of them.
        this.#keys[keys + n] = r.key;
        if (w[e] !== r.sh) Atomics.store(w, e, r.sh);
        if (w[e + 1] !== r.sl) Atomics.store(w, e + 1, r.sl);
        if (w[e + 2] !== r.eh) Atomics.store(w, e + 2, r.eh);
        if (w[e + 3] !== r.el) Atomics.store(w, e + 3, r.el);
        if (w[handles + n] !== r.handle) Atomics.store(w, handles + n, r.handle);
      }
    }
    // Entries past the count are left empty (start 2^64-1, end 0: no address fits), all of them
    // in a stale table: a reader's proof of a hit relies on it (see shared-route-view.ts).
    const live = reason === undefined ? n : 0;
    const dirty = Math.max(this.#filled[parity]!, n);
    const tail = entriesBase(this.capacity, base);
    for (let i = live; i < dirty; i++) {
      const e = tail + ENTRY_WORDS * i;
      Atomics.store(w, e, 0xffffffff);
      Atomics.store(w, e + 1, 0xffffffff);
      Atomics.store(w, e + 2, 0);
      Atomics.store(w, e + 3, 0);
    }
    this.#filled[parity] = live;
    Atomics.store(w, base + B_COUNT, reason === undefined ? n : STALE_COUNT);
    this.#staleReason = reason;
  }

  /** The words of a mapping, cached; a string says why its handle is unusable. */
  #words(m: BusMapping<D>): RouteWords | string {
    const cached = this.#cache.get(m);
    if (cached !== undefined) return cached;
    let handle: unknown;
    try {
      handle = (0, this.#handleOf)(m);
    } catch (error) {
      return `handleOf threw for ${m.owner} ${m.range.toString(this.kind)}: ${error instanceof Error ? error.message : describeValue(error)}`;
    }
    if (typeof handle !== "number" || !Number.isInteger(handle) || handle < 0 || handle > 0xffffffff) {
      return `handleOf returned ${describeValue(handle)} for ${m.owner} ${m.range.toString(this.kind)}, not a u32`;
    }
    SCRATCH_U64[0] = m.range.start;
    const sh = SCRATCH_U32[HI]!;
    const sl = SCRATCH_U32[LO]!;
    SCRATCH_U64[0] = m.range.end;
    const words: RouteWords = { sh, sl, eh: SCRATCH_U32[HI]!, el: SCRATCH_U32[LO]!, handle, key: sh * 4294967296 + sl };
    this.#cache.set(m, words);
    return words;
  }
}

/** {@link RouteHandleOf} of {@link SharedRouteTable.forDeviceManager}. */
function instanceIdOfOwner(mapping: BusMapping<Device>): number {
  const m = MANAGED_OWNER.exec(mapping.owner);
  const id = m === null ? NaN : Number(m[1]);
  if (!(id <= 0xffffffff)) throw new AllocatorError("InvalidArgument", `${mapping.owner} is not a device manager's owner (name@instanceId)`);
  return id;
}
