/**
 * MMIO in near-O(1): a block map from addresses below 2^53 to routes.
 *
 * The space is cut into blocks of 128 KiB (v86's MMIO granule) of 32 pages of 4 KiB. A block's
 * slot holds the one route that touches the block (whole or in part), the unmapped sentinel when
 * none does, or, when several do, a node whose `sub` holds 32 page slots with the same rule, a
 * page touched by several routes holding a mixed-page marker that lists them (exact sub-page
 * ranges, resolved by the bus's exact path). The bus confirms every candidate with the route's
 * bounds (`lo <= address && address + width - 1 <= hi`), so a slot never has to be split just
 * because its route ends inside it: a device on its own in a block is one load away, as in a
 * hand-written block map, and the unmapped rest of the block fails the check and takes the exact
 * path.
 *
 * - Below 4 GiB the 32 768 block slots are a plain array (`low[address >>> 17]`): 256 KiB, made
 *   on the first mapping below 4 GiB.
 * - From 4 GiB to 2^53 the blocks that hold anything live in an open-addressing hash keyed by
 *   block number. A miss means "ask the exact index", never "unmapped", which lets the interior
 *   of a huge mapping (more than {@link HUGE_BLOCKS} blocks, 8 GiB) stay out of the hash: those
 *   accesses take the exact path, O(log n).
 * - At and above 2^53 there is no table: numbers cannot hold those addresses exactly, and the
 *   exact index answers.
 *
 * Updates recompute, from the exact index, only the (at most two) blocks where the changed
 * mapping starts and ends; blocks it covers whole are set in one store each.
 */
import type { RangeIndex } from "./range-index.js";
import { Route } from "./route.js";

/** Bits of a page: 4 KiB. */
const PAGE_BITS = 12;
/** Bits of a block: 128 KiB, 32 pages. */
export const BLOCK_BITS = 17;
const PAGE = 2 ** PAGE_BITS;
const BLOCK = 2 ** BLOCK_BITS;
/** Pages in a block. */
export const PAGES_PER_BLOCK = BLOCK / PAGE;
/** Blocks below 4 GiB, held in the direct array. */
const LOW_BLOCKS = 2 ** (32 - BLOCK_BITS);
/** First address the map does not cover: 2^53. */
const LIMIT = 2 ** 53;
/** A mapping covering more high blocks than this (8 GiB) keeps its interior out of the hash. */
const HUGE_BLOCKS = 1 << 16;
/** Hash keys are block numbers, below 2^36; -1 marks a free slot. */
const EMPTY_KEY = -1;

function hashOf(b: number): number {
  // The block number's two halves, mixed; Math.imul keeps it in int32 arithmetic.
  return Math.imul((b >>> 0) ^ Math.imul(Math.floor(b / 4294967296), 0x85ebca6b), 0x9e3779b1);
}

/** Blocks and pages of the MMIO space below 2^53, pointing at routes. */
export class MmioPageMap<D> {
  /**
   * Block slots below 4 GiB, read by the bus's hot path. Empty (length 0) until the first
   * mapping below 4 GiB, so that a bus that maps nothing there costs nothing.
   */
  low: Route<D>[] = [];
  /** Low slots holding something other than the sentinel, so that {@link violation} need not scan them all. */
  #lowHeld = 0;
  readonly #unmapped: Route<D>;
  readonly #miss: Route<D>;
  #keys = new Float64Array(64).fill(EMPTY_KEY);
  #vals: (Route<D> | undefined)[] = new Array<Route<D> | undefined>(64).fill(undefined);
  #shift = 32 - 6;
  #count = 0;

  /**
   * @param unmapped the sentinel of unmapped space.
   * @param miss returned by {@link high} for a block the hash does not hold.
   */
  constructor(unmapped: Route<D>, miss: Route<D>) {
    this.#unmapped = unmapped;
    this.#miss = miss;
  }

  /** Blocks held by the high hash (for tests and memory accounting). */
  get highBlocks(): number {
    return this.#count;
  }

  /**
   * The block slot of the address `high * 2^32 + low` in [2^32, 2^53), given as `high` and the
   * low half's block bits `low >>> 17` (small integers, so that the call allocates nothing): a
   * route, a node (resolve its page as `sub[(low >>> 12) & 31]`), or the miss sentinel.
   */
  high(high: number, lowBlock: number): Route<D> {
    // LOW_BLOCKS, not `2 ** ...`: TurboFan does not fold `**` and would call pow per lookup.
    const i = this.#find(high * LOW_BLOCKS + lowBlock);
    return i < 0 ? this.#miss : this.#vals[i]!;
  }

  /** Where block `b` is in the hash, or -1. */
  #find(b: number): number {
    const keys = this.#keys;
    const mask = keys.length - 1;
    for (let i = hashOf(b) >>> this.#shift; ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === b) return i;
      if (k === EMPTY_KEY) return -1;
    }
  }

  /** Points the map at a route just added to `index`. */
  map(route: Route<D>, index: RangeIndex<D>): void {
    this.#update(route, index, route);
  }

  /** Forgets a route just removed from `index`. */
  unmap(route: Route<D>, index: RangeIndex<D>): void {
    this.#update(route, index, undefined);
  }

  #update(route: Route<D>, index: RangeIndex<D>, whole: Route<D> | undefined): void {
    if (route.start >= BigInt(LIMIT)) return;
    const s = Number(route.start);
    const e = route.end >= BigInt(LIMIT) ? LIMIT - 1 : Number(route.end);
    if (s < 2 ** 32 && this.low.length === 0) this.low = new Array<Route<D>>(LOW_BLOCKS).fill(this.#unmapped);
    const b0 = Math.floor(s / BLOCK);
    const b1 = Math.floor(e / BLOCK);
    // Blocks the range covers whole get the route (or lose it) in one store; the block where it
    // starts and the one where it ends, when covered only in part, are recomputed.
    const firstWhole = Math.ceil(s / BLOCK);
    const lastWhole = Math.floor((e + 1) / BLOCK) - 1;
    if (b0 < firstWhole || b0 > lastWhole) this.#refresh(b0, s, Math.min(e, (b0 + 1) * BLOCK - 1), index);
    if (b1 !== b0 && b1 > lastWhole) this.#refresh(b1, b1 * BLOCK, e, index);
    for (let b = firstWhole, last = Math.min(lastWhole, LOW_BLOCKS - 1); b <= last; b++) this.#setLow(b, whole ?? this.#unmapped);
    const highFirst = Math.max(firstWhole, LOW_BLOCKS);
    if (lastWhole >= highFirst && lastWhole - highFirst < HUGE_BLOCKS) {
      for (let b = highFirst; b <= lastWhole; b++) {
        if (whole === undefined) this.#delete(b);
        else this.#set(b, whole);
      }
    }
  }

  /**
   * Recomputes block `b` from the index after a change of [from, to] inside it. When the block
   * was and stays shared, only the pages of that span are recomputed, in its node.
   */
  #refresh(b: number, from: number, to: number, index: RangeIndex<D>): void {
    const lo = b * BLOCK;
    const current = b < LOW_BLOCKS ? this.low[b]! : this.#get(b);
    const one = this.#soleRoute(index, index.firstEndingAtOrAfter(lo), lo + BLOCK - 1);
    if (one === undefined && current.sub !== null) {
      this.#computePages(current.sub, lo, Math.floor((from - lo) / PAGE), Math.floor((to - lo) / PAGE), index);
      return;
    }
    const slot = one ?? this.#blockFromIndex(b, index);
    if (b < LOW_BLOCKS) this.#setLow(b, slot);
    else if (slot === this.#unmapped) this.#delete(b);
    else this.#set(b, slot);
  }

  /** Sets pages `first..last` of the block at `lo` from the index, in one merge walk. */
  #computePages(pages: Route<D>[], lo: number, first: number, last: number, index: RangeIndex<D>): void {
    let i = index.firstEndingAtOrAfter(lo + first * PAGE);
    for (let p = first; p <= last; p++) {
      const pageLo = lo + p * PAGE;
      while (i < index.size && index.endNumAt(i) < pageLo) i++;
      pages[p] = this.#soleRoute(index, i, pageLo + PAGE - 1) ?? this.#mixed(index, i, pageLo + PAGE - 1);
    }
  }

  #get(b: number): Route<D> {
    const i = this.#find(b);
    return i < 0 ? this.#unmapped : this.#vals[i]!;
  }

  #setLow(b: number, slot: Route<D>): void {
    const old = this.low[b]!;
    if (old === this.#unmapped && slot !== this.#unmapped) this.#lowHeld++;
    else if (old !== this.#unmapped && slot === this.#unmapped) this.#lowHeld--;
    this.low[b] = slot;
  }

  /** What block `b`'s slot must hold: the sentinel, its one route, or a new node. */
  #blockFromIndex(b: number, index: RangeIndex<D>): Route<D> {
    const lo = b * BLOCK;
    const first = index.firstEndingAtOrAfter(lo);
    const one = this.#soleRoute(index, first, lo + BLOCK - 1);
    if (one !== undefined) return one;
    const node = Route.marker<D>("block");
    node.sub = new Array<Route<D>>(PAGES_PER_BLOCK);
    this.#computePages(node.sub, lo, 0, PAGES_PER_BLOCK - 1, index);
    return node;
  }

  /**
   * For the span [lo, hi], given the first index route `i` ending at or after `lo`: the sentinel
   * when no route touches it, the route when exactly one does, undefined when several do.
   */
  #soleRoute(index: RangeIndex<D>, i: number, hi: number): Route<D> | undefined {
    if (i >= index.size || index.startNumAt(i) > hi) return this.#unmapped;
    if (i + 1 >= index.size || index.startNumAt(i + 1) > hi) return index.at(i);
    return undefined;
  }

  /** A mixed-page marker listing the routes from `i` that start by `hi`. */
  #mixed(index: RangeIndex<D>, i: number, hi: number): Route<D> {
    const mixed = Route.marker<D>("mixed page");
    const list: Route<D>[] = [];
    for (let j = i; j < index.size && index.startNumAt(j) <= hi; j++) list.push(index.at(j));
    const bounds = new Float64Array(2 * list.length);
    list.forEach((r, k) => {
      bounds[2 * k] = r.lo;
      bounds[2 * k + 1] = r.hi;
    });
    mixed.list = list;
    mixed.bounds = bounds;
    return mixed;
  }

  #set(b: number, route: Route<D>): void {
    if ((this.#count + 1) * 2 > this.#keys.length) this.#rehash(this.#keys.length * 2);
    const keys = this.#keys;
    const mask = keys.length - 1;
    let i = hashOf(b) >>> this.#shift;
    while (keys[i] !== EMPTY_KEY && keys[i] !== b) i = (i + 1) & mask;
    if (keys[i] === EMPTY_KEY) this.#count++;
    keys[i] = b;
    this.#vals[i] = route;
  }

  /** Linear-probing deletion by backward shift, so that no tombstones slow later probes. */
  #delete(b: number): void {
    const i = this.#find(b);
    if (i < 0) return;
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = keys.length - 1;
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== EMPTY_KEY; j = (j + 1) & mask) {
      const home = hashOf(keys[j]!) >>> this.#shift;
      // Move j into the hole unless its home lies cyclically in (hole, j].
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = keys[j]!;
        vals[hole] = vals[j];
        hole = j;
      }
    }
    keys[hole] = EMPTY_KEY;
    vals[hole] = undefined;
    this.#count--;
    if (keys.length > 64 && this.#count * 8 < keys.length) this.#rehash(keys.length / 2);
  }

  #rehash(capacity: number): void {
    const oldKeys = this.#keys;
    const oldVals = this.#vals;
    this.#keys = new Float64Array(capacity).fill(EMPTY_KEY);
    this.#vals = new Array<Route<D> | undefined>(capacity).fill(undefined);
    this.#shift = 32 - Math.log2(capacity);
    this.#count = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== EMPTY_KEY) this.#set(oldKeys[i]!, oldVals[i]!);
  }

  /**
   * Checks every block slot below 4 GiB and every block in the hash against the index, and the
   * hash's own structure.
   * @returns a description of the first violation, or undefined.
   */
  violation(index: RangeIndex<D>): string | undefined {
    if (this.low.length !== 0 && this.low.length !== LOW_BLOCKS) return `the low block table has ${this.low.length} slots`;
    if (this.low.length === 0 && index.size > 0 && index.startNumAt(0) < 2 ** 32) return "a mapping below 4 GiB has no block table";
    // The blocks below 4 GiB that some route touches, each once, in order; every other slot must
    // be the sentinel, which the count of held slots proves without visiting them.
    let touched = 0;
    let lastBlock = -1;
    for (let i = 0; i < index.size && index.startNumAt(i) < 2 ** 32; i++) {
      const first = Math.max(Math.floor(index.startNumAt(i) / BLOCK), lastBlock + 1);
      const last = Math.min(Math.floor(index.endNumAt(i) / BLOCK), LOW_BLOCKS - 1);
      for (let b = first; b <= last; b++) {
        const bad = this.#blockViolation(b, this.low[b]!, index);
        if (bad !== undefined) return bad;
        touched++;
      }
      lastBlock = Math.max(lastBlock, last);
    }
    if (touched !== this.#lowHeld) return `${this.#lowHeld} low block slots are held, the mappings touch ${touched}`;
    let count = 0;
    const keys = this.#keys;
    const mask = keys.length - 1;
    for (let i = 0; i < keys.length; i++) {
      const b = keys[i]!;
      if (b === EMPTY_KEY) continue;
      count++;
      if (!Number.isInteger(b) || b < LOW_BLOCKS || b >= LIMIT / BLOCK) return `the high hash holds block ${b}`;
      // Every slot from the key's home to it is occupied, or lookups would stop early.
      for (let j = hashOf(b) >>> this.#shift; j !== i; j = (j + 1) & mask) {
        if (keys[j] === EMPTY_KEY) return `block ${b} of the high hash is unreachable`;
      }
      const route = this.#vals[i];
      if (route === undefined || route === this.#unmapped) return `block ${b} of the high hash is held but empty`;
      const bad = this.#blockViolation(b, route, index);
      if (bad !== undefined) return bad;
    }
    if (count !== this.#count) return `the high hash counts ${this.#count} blocks and holds ${count}`;
    return undefined;
  }

  #blockViolation(b: number, slot: Route<D>, index: RangeIndex<D>): string | undefined {
    const expected = this.#blockFromIndex(b, index);
    const at = `block 0x${(b * BLOCK).toString(16)}`;
    if (expected.sub === null) return slot === expected ? undefined : `${at} routes to ${slot.owner} instead of ${expected.owner}`;
    if (slot.sub === null || slot.isMapping || slot.list !== null || slot.sub.length !== PAGES_PER_BLOCK) return `${at} should be a node of ${PAGES_PER_BLOCK} pages`;
    for (let p = 0; p < PAGES_PER_BLOCK; p++) {
      const want = expected.sub[p]!;
      const got = slot.sub[p]!;
      const page = `page 0x${(b * BLOCK + p * PAGE).toString(16)}`;
      if (want.list === null) {
        if (got !== want) return `${page} routes to ${got.owner} instead of ${want.owner}`;
      } else if (
        got.list === null ||
        got.bounds === null ||
        got.isMapping ||
        got.list.length !== want.list.length ||
        got.list.some((r, k) => r !== want.list![k] || got.bounds![2 * k] !== r.lo || got.bounds![2 * k + 1] !== r.hi)
      ) {
        return `${page} does not list the mappings sharing it`;
      }
    }
    return undefined;
  }
}
