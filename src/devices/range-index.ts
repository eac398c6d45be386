/**
 * The exact record of a bus: its routes sorted by start address, searched by binary search over
 * typed arrays. Everything the fast tables cannot answer (an address above 2^53, a page shared by
 * several mappings, a miss in the high hash) is answered here, and the tables are rebuilt from it.
 *
 * The bounds live in typed arrays rather than on the route objects, because V8 compares bigints
 * held in a `BigInt64Array` about as fast as numbers while bigints held in plain arrays or object
 * fields cost an order of magnitude more. Two parallel layouts are kept:
 *
 * - `BigInt64Array`s holding `value ^ 2^63`, so that signed comparison gives unsigned u64 order
 *   (a `BigUint64Array` is as fast only while values stay below 2^63);
 * - `Float64Array`s holding `Number(value)`, for addresses passed as numbers: converting a number
 *   to a bigint costs more than the whole search. For a safe-integer address the float search is
 *   exact, since every bound at or above 2^53 rounds to at least 2^53, above any safe address.
 *
 * Insertion and removal shift the arrays (O(n)); a VMM maps devices rarely and dispatches often.
 */
import type { BusMapping } from "./bus.js";
import type { Route } from "./route.js";

const BIAS = 1n << 63n;
const INITIAL_CAPACITY = 16;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Index of the low and high u32 half of a u64 in a `Uint32Array` view. */
export const LO = LITTLE_ENDIAN ? 0 : 1;
/** @see LO */
export const HI = 1 - LO;

/**
 * Search keys passed through memory instead of as values: `SEARCH[0]` is the key searched for,
 * `SEARCH[1]` receives an offset. A bigint that crosses a call V8 does not inline is a heap
 * object; a typed-array element is a machine word, so the dispatch path above 2^53 allocates
 * nothing. `SEARCH_U32` views the same words as u32 halves (indices {@link LO}/{@link HI}, +2
 * for the second word).
 */
export const SEARCH = new BigInt64Array(2);
/** @see SEARCH */
export const SEARCH_U32 = new Uint32Array(SEARCH.buffer);
const WIDTH_MINUS_ONE: readonly bigint[] = [0n, 0n, 1n, 2n, 3n];

/**
 * A number address passed through memory, for the same reason as {@link SEARCH}: a number at or
 * above 2^31 that crosses a call V8 does not inline is a heap object.
 */
export const ARG = new Float64Array(1);

/**
 * The order-preserving signed image of a u64: `value - 2^63`. Differences of keys equal
 * differences of values, and computing them as `BigInt.asUintN(64, a - b)` keeps V8 on its
 * int64 fast path, which subtracting values at or above 2^63 would leave.
 */
export function key(value: bigint): bigint {
  return BigInt.asIntN(64, value ^ BIAS);
}

/** Sorted, disjoint routes with O(log n) search by bigint key or by safe-integer number. */
export class RangeIndex<D> {
  #n = 0;
  #startKey = new BigInt64Array(INITIAL_CAPACITY);
  #endKey = new BigInt64Array(INITIAL_CAPACITY);
  #startNum = new Float64Array(INITIAL_CAPACITY);
  #endNum = new Float64Array(INITIAL_CAPACITY);
  /**
   * Parallel to the other arrays: the slab index of each route. Routes live in an unordered slab
   * because moving object references in a plain array (splice) costs ten times more than moving
   * the same number of slots in a typed array.
   */
  #slot = new Int32Array(INITIAL_CAPACITY);
  #slab: (Route<D> | undefined)[] = [];
  /**
   * The public mapping of each slab entry, kept apart so that a lookup reads one small frozen
   * object per hit, as it did before routes existed (a route is wide: reading its mapping through
   * it costs a second cache miss per random lookup).
   */
  #mappings: (BusMapping<D> | undefined)[] = [];
  #freeSlabs: number[] = [];

  /** Number of routes. */
  get size(): number {
    return this.#n;
  }

  /** The route at sorted position `i` (which must be below the size). */
  at(i: number): Route<D> {
    return this.#slab[this.#slot[i]!]!;
  }

  /** The public mapping of the route at sorted position `i`. */
  mappingAt(i: number): BusMapping<D> {
    return this.#mappings[this.#slot[i]!]!;
  }

  /** Search key of the start of the route at `i`. */
  startKeyAt(i: number): bigint {
    return this.#startKey[i]!;
  }

  /** Search key of the end of the route at `i`. */
  endKeyAt(i: number): bigint {
    return this.#endKey[i]!;
  }

  /** Number of routes whose start key is at most `k`: the insertion point of a start `k`. */
  upperBound(k: bigint): number {
    const keys = this.#startKey;
    let lo = 0;
    let hi = this.#n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid]! <= k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Inserts `route` at sorted position `pos` (from {@link upperBound}); the caller checked disjointness. */
  insertAt(pos: number, route: Route<D>): void {
    if (this.#n === this.#startKey.length) this.#grow();
    const n = this.#n;
    this.#startKey.copyWithin(pos + 1, pos, n);
    this.#endKey.copyWithin(pos + 1, pos, n);
    this.#startNum.copyWithin(pos + 1, pos, n);
    this.#endNum.copyWithin(pos + 1, pos, n);
    this.#slot.copyWithin(pos + 1, pos, n);
    const slab = this.#freeSlabs.pop() ?? this.#slab.length;
    this.#slab[slab] = route;
    this.#mappings[slab] = route.mapping;
    this.#slot[pos] = slab;
    this.#startKey[pos] = key(route.start);
    this.#endKey[pos] = key(route.end);
    this.#startNum[pos] = Number(route.start);
    this.#endNum[pos] = Number(route.end);
    this.#n = n + 1;
  }

  /** Removes and returns the route at sorted position `i`. */
  removeAt(i: number): Route<D> {
    const route = this.at(i);
    const slab = this.#slot[i]!;
    this.#slab[slab] = undefined;
    this.#mappings[slab] = undefined;
    this.#freeSlabs.push(slab);
    const n = this.#n;
    this.#startKey.copyWithin(i, i + 1, n);
    this.#endKey.copyWithin(i, i + 1, n);
    this.#startNum.copyWithin(i, i + 1, n);
    this.#endNum.copyWithin(i, i + 1, n);
    this.#slot.copyWithin(i, i + 1, n);
    this.#n = n - 1;
    return route;
  }

  // The two searches below step by `half * +(comparison)` instead of branching: with random
  // addresses a branchy binary search mispredicts about every other step, which costs more than
  // the search itself (~55 ns against ~20 ns at 2 048 mappings). `base + half < n` always holds,
  // so slots past the count are never read.

  /**
   * Index of the route containing the address whose search key is `k`, or -1. The same search as
   * {@link indexOfSearchKey}, kept apart: passing `k` through `SEARCH` made lookups 15% slower,
   * and passing `SEARCH[0]` to this would make a heap bigint on the dispatch path.
   */
  indexOfKey(k: bigint): number {
    let len = this.#n;
    if (len === 0) return -1;
    const keys = this.#startKey;
    let base = 0;
    while (len > 1) {
      const half = len >>> 1;
      base += half * +(keys[base + half]! <= k);
      len -= half;
    }
    return keys[base]! <= k && this.#endKey[base]! >= k ? base : -1;
  }

  /**
   * {@link indexOfKey} of the key in `SEARCH[0]`: the form the dispatch path calls, so that no
   * key is passed as a value (callers read `SEARCH` before calling out to anything).
   */
  indexOfSearchKey(): number {
    const k = SEARCH[0]!;
    let len = this.#n;
    if (len === 0) return -1;
    const keys = this.#startKey;
    let base = 0;
    while (len > 1) {
      const half = len >>> 1;
      base += half * +(keys[base + half]! <= k);
      len -= half;
    }
    return keys[base]! <= k && this.#endKey[base]! >= k ? base : -1;
  }

  /** True when a `width`-byte access (1, 2 or 4) at the key in `SEARCH[0]` ends inside route `i`. */
  searchKeyFits(i: number, width: number): boolean {
    return BigInt.asUintN(64, this.#endKey[i]! - SEARCH[0]!) >= WIDTH_MINUS_ONE[width]!;
  }

  /**
   * The offset of the key in `SEARCH[0]` from route `i`'s start, as a number, or -1 when it is
   * 2^53 or more (only in a mapping longer than 2^53 bytes). Also left in `SEARCH[1]`.
   */
  searchKeyOffset(i: number): number {
    // asIntN keeps the subtraction in a machine word; without it V8 makes a heap bigint first.
    SEARCH[1] = BigInt.asIntN(64, SEARCH[0]! - this.#startKey[i]!);
    const h = SEARCH_U32[2 + HI]!;
    return h < 0x200000 ? h * 4294967296 + SEARCH_U32[2 + LO]! : -1;
  }

  /** Index of the route containing the safe-integer `address`, or -1. */
  indexOfNum(address: number): number {
    ARG[0] = address;
    return this.indexOfArg();
  }

  /**
   * {@link indexOfNum} of the address in `ARG[0]`: the form the dispatch path calls, so that no
   * address is passed as a value (callers read `ARG` before calling out to anything).
   */
  indexOfArg(): number {
    const address = ARG[0]!;
    let len = this.#n;
    if (len === 0) return -1;
    const starts = this.#startNum;
    let base = 0;
    while (len > 1) {
      const half = len >>> 1;
      base += half * +(starts[base + half]! <= address);
      len -= half;
    }
    return starts[base]! <= address && this.#endNum[base]! >= address ? base : -1;
  }

  /**
   * Index of the first route ending at or after the safe-integer `address` (the size when none
   * does): with {@link endNumAt}/{@link startNumAt}, a walk over the routes touching a span.
   */
  firstEndingAtOrAfter(address: number): number {
    const ends = this.#endNum;
    let lo = 0;
    let hi = this.#n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! < address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Start of the route at `i` as a number (exact below 2^53). */
  startNumAt(i: number): number {
    return this.#startNum[i]!;
  }

  /** End of the route at `i` as a number (exact below 2^53). */
  endNumAt(i: number): number {
    return this.#endNum[i]!;
  }

  /**
   * Checks the arrays against the routes they index.
   * @returns a description of the first violation, or undefined.
   */
  violation(kind: string): string | undefined {
    const cap = this.#startKey.length;
    if (this.#endKey.length !== cap || this.#startNum.length !== cap || this.#endNum.length !== cap || this.#slot.length !== cap || this.#n > cap) {
      return "search arrays of different capacities";
    }
    const live = this.#slab.filter((m) => m !== undefined).length;
    if (live !== this.#n || this.#slab.length - live !== this.#freeSlabs.length) {
      return `${live} live mappings, ${this.#freeSlabs.length} free slots and a count of ${this.#n}`;
    }
    const seen = new Set<number>();
    let prevEnd: bigint | undefined;
    for (let i = 0; i < this.#n; i++) {
      const slab = this.#slot[i]!;
      if (seen.has(slab)) return `slab slot ${slab} is indexed twice`;
      seen.add(slab);
      const m = this.#slab[slab];
      if (m === undefined || m.mapping === undefined) return `mapping ${i} is missing`;
      if (this.#mappings[slab] !== m.mapping) return `the mapping of slab slot ${slab} is stale`;
      const { start, end } = m;
      if (m.mapping.range.start !== start || m.mapping.range.end !== end) return `route ${i} disagrees with its mapping`;
      if (prevEnd !== undefined && start <= prevEnd) return `mapping ${i} ${m.mapping.range.toString(kind === "io" ? "io" : "mem")} is not after its predecessor`;
      if (this.#startKey[i] !== key(start) || this.#endKey[i] !== key(end)) return `bigint search keys of mapping ${i} are stale`;
      if (this.#startNum[i] !== Number(start) || this.#endNum[i] !== Number(end)) return `number search keys of mapping ${i} are stale`;
      prevEnd = end;
    }
    return undefined;
  }

  #grow(): void {
    const cap = this.#startKey.length * 2;
    const grow64 = (old: BigInt64Array) => {
      const a = new BigInt64Array(cap);
      a.set(old);
      return a;
    };
    const growF = (old: Float64Array) => {
      const a = new Float64Array(cap);
      a.set(old);
      return a;
    };
    this.#startKey = grow64(this.#startKey);
    this.#endKey = grow64(this.#endKey);
    this.#startNum = growF(this.#startNum);
    this.#endNum = growF(this.#endNum);
    const slot = new Int32Array(cap);
    slot.set(this.#slot);
    this.#slot = slot;
  }
}
