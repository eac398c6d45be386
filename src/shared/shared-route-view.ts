/**
 * The reading side of a shared route table: any thread (a vCPU worker, a device backend) that
 * holds the table's buffer finds which handle owns an address, with no lock and no message.
 *
 * ## Why a reader never sees a torn table
 *
 * The writer keeps two buffers and a publish counter SEQ; the buffer whose number is SEQ's
 * parity is the active one. To publish, it fills the inactive buffer (SEQ + 1's parity), then
 * increments SEQ, which makes that buffer active in one atomic step. A lookup loads SEQ, reads the
 * buffer of its parity, loads SEQ again, and keeps the answer only when both loads are equal;
 * otherwise it retries.
 *
 * The argument, in the terms of the ECMAScript memory model. The words an answer is made of
 * (SEQ, the count, the bounds and handles) are read with `Atomics.load` and written with
 * `Atomics.store`/`Atomics.add`: all sequentially consistent, and an SC read that reads from an
 * SC write synchronizes with it. Suppose both loads of SEQ read k. (1) Every word of table k was
 * written before the increment that made SEQ k (program order), which happens before the first
 * load: so a later read cannot return an older value of that word (coherence). (2) The writer
 * writes this buffer again only for table k + 2, after its increment to k + 1. If a read
 * returned such a write, that write happens before the read, so the increment to k + 1 happens
 * before the second load, which therefore cannot return k. So equal loads prove that every
 * word read is table k's.
 *
 * Plain typed-array reads would not be enough: a racing non-atomic read creates no
 * happens-before edge, so the spec (like weakly ordered hardware such as ARM, where a load may
 * be satisfied after a later load-acquire) lets it see a newer write than the second load of SEQ
 * does. But `Atomics.load` is a call into V8 (about 4x a plain load), and a binary search makes
 * 20 or more. So the search runs on a plain float64 copy of the starts, as a hint only, and the
 * answer is then proved on atomic words: a hit is an entry containing the address, which in a
 * sorted disjoint table is the only answer (the writer leaves the entries past the count empty);
 * a miss is entry i ending before the address with entry i + 1 (or nothing) starting after it. When the hint does not prove out
 * (only possible when the plain reads raced with a publish), the same step searches on atomic
 * words alone. A hit costs seven atomic loads whatever the table's size, a miss nine.
 *
 * The writer never touches the active buffer, so a reader retries only when a whole publish
 * completes between its two loads of SEQ (a retry means a newer table exists), and a lookup
 * never waits for a writer that stalls. Because SEQ only grows, a reader's generations never go
 * backwards. SEQ wraps at 2^32; a lookup would need to stall across 2^32 publishes to be fooled.
 */
import { AllocatorError } from "../core/errors.js";
import { describeValue } from "../core/arguments.js";
import { hex, U64_MAX, type U64Input } from "../core/u64.js";
import type { BusKind } from "../devices/bus.js";
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
  ROUTE_STALE,
  ROUTE_UNMAPPED,
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
import { parseSharedRouteSnapshot, SHARED_ROUTES_SNAPSHOT_FORMAT, type SharedRouteEntry, type SharedRouteSnapshot } from "./shared-route-snapshot.js";

const TWO32 = 4294967296;

/**
 * An atomic load of a u32 word. Through an Int32Array, as the value is an int32 to V8 (a u32 at
 * or above 2^31 read from a Uint32Array would come back from the builtin as a heap number).
 */
function u32(w: Int32Array, index: number): number {
  return Atomics.load(w, index) >>> 0;
}
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function invalidAddress(address: unknown): AllocatorError {
  return new AllocatorError("InvalidArgument", `address must be an integer from 0 to 2^64-1 (a bigint or a safe-integer number), got ${describeValue(address)}`);
}

function isBuffer(value: unknown): value is SharedArrayBuffer | ArrayBuffer {
  const tag = Object.prototype.toString.call(value);
  return tag === "[object SharedArrayBuffer]" || tag === "[object ArrayBuffer]";
}

/**
 * Something a view can attach to: a table's buffer, or an object that has one (a `SharedRouteTable`).
 * @property buffer The table's buffer: a `SharedArrayBuffer` to share with workers, or the
 *   `ArrayBuffer` of a table made where shared memory is unavailable (usable in its own thread only).
 */
export type SharedRouteSource = SharedArrayBuffer | ArrayBuffer | { readonly buffer: SharedArrayBuffer | ArrayBuffer };

/**
 * A lock-free reader of a {@link SharedRouteTable}, in this thread or any other: post the table's
 * `buffer` to a worker and {@link attach} there. Lookups take no lock, send no message, never
 * block the writer, and see either the table before an update or the one after it, never a mix
 * (the argument is in the module documentation).
 *
 * A lookup costs a binary search over the sorted routes, O(log n), and allocates nothing: the
 * offset of a hit is left in {@link lastOffset}. Each view keeps its own last-hit fields, so use
 * one view per thread (they are cheap; all views of one buffer share the table).
 *
 * @example
 * ```ts
 * // In a worker that received `buffer` (a SharedArrayBuffer) from the VMM:
 * const routes = SharedRouteView.attach(buffer);
 * const handle = routes.find(0xd000_0010);
 * if (handle >= 0) ports[handle].postMessage({ offset: routes.lastOffset }); // the device's worker
 * else if (handle === ROUTE_STALE) askTheMainThread(0xd000_0010); // the table cannot answer
 * // else ROUTE_UNMAPPED: reads all-ones, writes are dropped
 * ```
 */
export class SharedRouteView {
  /** The table's memory; post it to another worker to attach a view there. */
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  /** The kind of the bus the table mirrors. */
  readonly kind: BusKind;
  /** How many routes a table holds at most; a bus with more makes the table stale. */
  readonly capacity: number;

  readonly #w: Int32Array;
  /** The same memory as float64s, for the keys. */
  readonly #keys: Float64Array;
  readonly #b0: number;
  readonly #b1: number;
  #offset = 0;
  #generation = 0;
  #retries = 0;
  /** How the last hit was found: false for a number search, true for a search on u32 halves. */
  #pairHit = false;
  #addrHi = 0;
  #addrLo = 0;
  #startHi = 0;
  #startLo = 0;

  private constructor(buffer: SharedArrayBuffer | ArrayBuffer) {
    // Whole words only: a typed array over a buffer of another length would throw a RangeError.
    const words = buffer.byteLength % 8 === 0 ? new Int32Array(buffer) : new Int32Array(0);
    const capacity = words.length >= 16 ? words[W_CAPACITY]! >>> 0 : 0;
    if (
      words.length < 16 ||
      words[W_MAGIC]! >>> 0 !== MAGIC ||
      words[W_LAYOUT] !== LAYOUT_VERSION ||
      capacity > MAX_CAPACITY ||
      words[W_KIND]! >>> 0 > 1 ||
      buffer.byteLength !== tableBytes(capacity)
    ) {
      throw new AllocatorError("InvalidArgument", `buffer is not a shared route table (layout ${LAYOUT_VERSION}) of its length ${buffer.byteLength}`);
    }
    this.buffer = buffer;
    this.#w = words;
    this.#keys = new Float64Array(buffer);
    this.capacity = capacity;
    this.kind = words[W_KIND] === 0 ? "io" : "mem";
    this.#b0 = bufferBase(capacity, 0);
    this.#b1 = bufferBase(capacity, 1);
  }

  /**
   * A view of the table in `source`: its buffer (as posted to this worker), or the table itself.
   * @throws AllocatorError `InvalidArgument` when `source` is not the buffer of a route table.
   */
  static attach(source: SharedRouteSource): SharedRouteView {
    let buffer: unknown;
    try {
      buffer = isBuffer(source) ? source : typeof source === "object" && source !== null ? (source as { buffer?: unknown }).buffer : undefined;
      if (!isBuffer(buffer)) buffer = undefined;
    } catch {
      // A proxy's trap, a throwing getter: not a table.
      buffer = undefined;
    }
    if (buffer === undefined) throw new AllocatorError("InvalidArgument", `source must be a route table's SharedArrayBuffer or a SharedRouteTable, got ${describeValue(source)}`);
    return new SharedRouteView(buffer as SharedArrayBuffer | ArrayBuffer);
  }

  /**
   * A view of a frozen table rebuilt from a snapshot, in a new buffer that no writer changes: a
   * table to hand to workers when replaying a recorded VM, or the read side of a restore until
   * the buses are rebuilt. A live table is never restored: a {@link SharedRouteTable} always
   * mirrors its bus, so after a VM restore, make a new one from the restored bus.
   * @throws AllocatorError `InvalidSnapshot` naming the first problem.
   */
  static fromJSON(snapshot: unknown): SharedRouteView {
    const parsed = parseSharedRouteSnapshot(snapshot);
    const n = parsed.starts.length;
    const capacity = Math.max(1, n);
    const buffer = newTableBuffer(tableBytes(capacity));
    const w = new Uint32Array(buffer);
    w[W_MAGIC] = MAGIC;
    w[W_LAYOUT] = LAYOUT_VERSION;
    w[W_CAPACITY] = capacity;
    w[W_KIND] = kindCode(parsed.kind);
    w[W_SEQ] = parsed.generation;
    emptyEntries(w, capacity);
    const base = bufferBase(capacity, parsed.generation & 1);
    const entries = entriesBase(capacity, base);
    const handles = handlesBase(capacity, base);
    const keys = new Float64Array(buffer);
    for (let i = 0; i < n; i++) {
      const e = entries + ENTRY_WORDS * i;
      keys[(keysBase(base) >>> 1) + i] = Number(parsed.starts[i]!);
      SCRATCH_U64[0] = parsed.starts[i]!;
      w[e] = SCRATCH_U32[HI]!;
      w[e + 1] = SCRATCH_U32[LO]!;
      SCRATCH_U64[0] = parsed.ends[i]!;
      w[e + 2] = SCRATCH_U32[HI]!;
      w[e + 3] = SCRATCH_U32[LO]!;
      w[handles + i] = parsed.handles[i]!;
    }
    w[base + B_COUNT] = parsed.stale ? STALE_COUNT : n;
    return new SharedRouteView(buffer);
  }

  /**
   * The handle of the mapping containing `address`, {@link ROUTE_UNMAPPED} when none does, or
   * {@link ROUTE_STALE} when the table cannot answer (the bus outgrew its capacity, a handle was
   * invalid, or the table was closed). On a hit, {@link lastOffset} holds `address - start`.
   *
   * A number address takes a float search; a bigint is exact over 0..2^64-1 (below 2^53 it takes
   * the same search, above it a search on u32 halves). Never throws for a u64, whatever the
   * buffer holds.
   * @throws AllocatorError `InvalidArgument` when `address` is not a bigint from 0 to 2^64-1 or a
   *   safe-integer number from 0 (this is a VMM programming error; no guest value produces it).
   */
  find(address: U64Input): number {
    if (typeof address === "number") {
      if (!(address >= 0 && address <= MAX_SAFE && Math.floor(address) === address)) throw invalidAddress(address);
      return this.#findNumber(address);
    }
    if (typeof address !== "bigint" || !(address >= 0n && address <= U64_MAX)) throw invalidAddress(address);
    // Split through the scratch word: `address >> 32n` would allocate.
    SCRATCH_U64[0] = address;
    const hi = SCRATCH_U32[HI]!;
    const lo = SCRATCH_U32[LO]!;
    return hi < 0x200000 ? this.#findNumber(hi * TWO32 + lo) : this.#findPair(hi, lo);
  }

  /**
   * `address - start` of the mapping the last {@link find} hit (0 after a miss). Exact whenever it
   * is below 2^53, which is always the case for a number address; {@link lastOffsetBig} is exact
   * for any hit.
   */
  get lastOffset(): number {
    return this.#offset;
  }

  /** {@link lastOffset} as an exact bigint (allocates; for offsets that may pass 2^53). */
  get lastOffsetBig(): bigint {
    if (!this.#pairHit) return BigInt(this.#offset);
    return ((BigInt(this.#addrHi) << 32n) | BigInt(this.#addrLo)) - ((BigInt(this.#startHi) << 32n) | BigInt(this.#startLo));
  }

  /**
   * Which table answered the last {@link find} or {@link snapshot}: how many tables the writer
   * had published before it, modulo 2^32. Never decreases for one view (until the wrap).
   */
  get lastGeneration(): number {
    return this.#generation;
  }

  /** The generation of the table published now (see {@link lastGeneration}). */
  get generation(): number {
    return u32(this.#w, W_SEQ);
  }

  /** Lookups (and snapshots) of this view that read during a publish and had to read again. */
  get retries(): number {
    return this.#retries;
  }

  /**
   * The table published now, read whole under the same protocol as {@link find}, so that it is
   * exactly one published table even while the writer keeps publishing.
   */
  snapshot(): SharedRouteSnapshot {
    const w = this.#w;
    for (;;) {
      const seq = u32(w, W_SEQ);
      const base = (seq & 1) === 0 ? this.#b0 : this.#b1;
      const count = u32(w, base + B_COUNT);
      const stale = count === STALE_COUNT;
      const n = stale ? 0 : Math.min(count, this.capacity);
      const words = new Array<number>(n * ENTRY_WORDS);
      const handles = new Array<number>(n);
      const h = handlesBase(this.capacity, base);
      const entries = entriesBase(this.capacity, base);
      for (let i = 0; i < n * ENTRY_WORDS; i++) words[i] = u32(w, entries + i);
      for (let i = 0; i < n; i++) handles[i] = u32(w, h + i);
      if (u32(w, W_SEQ) !== seq) {
        this.#retries++;
        continue;
      }
      this.#generation = seq;
      const routes: SharedRouteEntry[] = [];
      for (let i = 0; i < n; i++) {
        const e = ENTRY_WORDS * i;
        const start = (BigInt(words[e]!) << 32n) | BigInt(words[e + 1]!);
        const end = (BigInt(words[e + 2]!) << 32n) | BigInt(words[e + 3]!);
        routes.push({ start: hex(start), end: hex(end), handle: handles[i]! });
      }
      return { format: SHARED_ROUTES_SNAPSHOT_FORMAT, version: 1, kind: this.kind, generation: seq, stale, routes };
    }
  }

  /** Same as {@link snapshot}, so that `JSON.stringify(view)` writes the table. */
  toJSON(): SharedRouteSnapshot {
    return this.snapshot();
  }

  /**
   * Lookup of a number address below 2^53: a plain search of the keys for a hint, proved (or,
   * failing that, replaced by {@link #searchNumber}) on atomic words, under the SEQ check.
   *
   * A bound is compared as `hi * 2^32 + lo`, the bound rounded to the nearest double (`hi * 2^32`
   * is exact, the addition rounds once); the keys hold the same values. That is exact below 2^53,
   * and comparisons with an address below 2^53 stay exact above it: rounding is monotonic and
   * 2^53 is a double, so a bound at or above 2^53 rounds to at least 2^53 and compares greater
   * than the address, as the bound itself does.
   */
  #findNumber(a: number): number {
    const w = this.#w;
    const keys = this.#keys;
    const capacity = this.capacity;
    for (;;) {
      const seq = u32(w, W_SEQ);
      const base = (seq & 1) === 0 ? this.#b0 : this.#b1;
      let result = ROUTE_UNMAPPED;
      let offset = 0;
      // The search runs on plain reads (the count too): it only guesses a position `at`.
      const count = w[base + B_COUNT]! >>> 0;
      const n = count < capacity ? count : capacity;
      const k = keysBase(base) >>> 1;
      let at = 0;
      for (let m = n; m > 1; ) {
        const half = m >>> 1;
        if (keys[k + at + half]! <= a) at += half;
        m -= half;
      }
      // The proof, on atomic words. The writer leaves every entry past the count empty (start
      // 2^64-1, end 0), and all of them in a stale table, so: an entry containing `a` is the
      // answer, wherever it is; an entry starting at or before `a` is a real one, and if it ends
      // before `a` while the next one (real or empty) starts after it, no entry contains `a`;
      // neither does any when the first entry starts after it. Only a miss needs the count, to
      // tell a stale table from an exact one.
      let proved = false;
      if (capacity > 0) {
        const e = entriesBase(capacity, base) + ENTRY_WORDS * at;
        const start = u32(w, e) * TWO32 + u32(w, e + 1);
        if (start <= a) {
          if (a <= u32(w, e + 2) * TWO32 + u32(w, e + 3)) {
            result = u32(w, handlesBase(capacity, base) + at);
            offset = a - start;
            proved = true;
          } else {
            proved = at + 1 === capacity || u32(w, e + ENTRY_WORDS) * TWO32 + u32(w, e + ENTRY_WORDS + 1) > a;
          }
        } else {
          proved = at === 0;
        }
        if (proved && result === ROUTE_UNMAPPED && u32(w, base + B_COUNT) === STALE_COUNT) result = ROUTE_STALE;
      }
      if (!proved) {
        result = this.#searchNumber(base, a);
        offset = this.#searchOffset;
      }
      if (u32(w, W_SEQ) === seq) {
        this.#offset = offset;
        this.#pairHit = false;
        this.#generation = seq;
        return result;
      }
      this.#retries++;
    }
  }

  #searchOffset = 0;

  /**
   * The exact lookup of {@link #findNumber} on atomic words alone, count included, in the buffer
   * at `base`: for misses, stale tables and hints that did not prove out (only possible when the
   * plain reads raced with a publish). Leaves the offset of a hit in `#searchOffset`.
   */
  #searchNumber(base: number, a: number): number {
    const w = this.#w;
    this.#searchOffset = 0;
    const count = u32(w, base + B_COUNT);
    if (count === STALE_COUNT) return ROUTE_STALE;
    const n = count < this.capacity ? count : this.capacity;
    if (n === 0) return ROUTE_UNMAPPED;
    const entries = entriesBase(this.capacity, base);
    let at = 0;
    for (let m = n; m > 1; ) {
      const half = m >>> 1;
      const e = entries + ENTRY_WORDS * (at + half);
      if (u32(w, e) * TWO32 + u32(w, e + 1) <= a) at += half;
      m -= half;
    }
    const e = entries + ENTRY_WORDS * at;
    const start = u32(w, e) * TWO32 + u32(w, e + 1);
    if (!(start <= a && a <= u32(w, e + 2) * TWO32 + u32(w, e + 3))) return ROUTE_UNMAPPED;
    this.#searchOffset = a - start;
    return u32(w, handlesBase(this.capacity, base) + at);
  }

  /** Binary search for an address at or above 2^53, given as u32 halves, comparing halves. */
  #findPair(hi: number, lo: number): number {
    const w = this.#w;
    for (;;) {
      const seq = u32(w, W_SEQ);
      const base = (seq & 1) === 0 ? this.#b0 : this.#b1;
      let result = ROUTE_UNMAPPED;
      let sh = 0;
      let sl = 0;
      const count = u32(w, base + B_COUNT);
      let n = count < this.capacity ? count : this.capacity;
      if (count === STALE_COUNT) {
        result = ROUTE_STALE;
      } else if (n > 0) {
        const entries = entriesBase(this.capacity, base);
        let at = 0;
        while (n > 1) {
          const half = n >>> 1;
          const e = entries + ENTRY_WORDS * (at + half);
          const h = u32(w, e);
          if (h < hi || (h === hi && u32(w, e + 1) <= lo)) at += half;
          n -= half;
        }
        const e = entries + ENTRY_WORDS * at;
        sh = u32(w, e);
        sl = u32(w, e + 1);
        const eh = u32(w, e + 2);
        const el = u32(w, e + 3);
        if ((sh < hi || (sh === hi && sl <= lo)) && (eh > hi || (eh === hi && el >= lo))) {
          result = u32(w, handlesBase(this.capacity, base) + at);
        }
      }
      if (u32(w, W_SEQ) === seq) {
        this.#generation = seq;
        if (result >= 0) {
          this.#pairHit = true;
          this.#addrHi = hi;
          this.#addrLo = lo;
          this.#startHi = sh;
          this.#startLo = sl;
          this.#offset = (hi - sh) * TWO32 + (lo - sl);
        } else {
          this.#pairHit = false;
          this.#offset = 0;
        }
        return result;
      }
      this.#retries++;
    }
  }
}
