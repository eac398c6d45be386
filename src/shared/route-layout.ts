/**
 * The memory layout of a shared route table: one `SharedArrayBuffer` of u32 words that a
 * {@link SharedRouteTable} writes and any number of {@link SharedRouteView}s read.
 *
 * ```
 * header (16 words, one cache line):
 *   [0] MAGIC   [1] LAYOUT_VERSION   [2] capacity   [3] kind (0 io, 1 mem)
 *   [4] SEQ: number of tables published, modulo 2^32; its parity is the active buffer
 * buffer 0, then buffer 1, each:
 *   [0] count, or STALE_COUNT   ... 15 words of padding
 *   capacity keys: each start as a float64 (rounded above 2^53), a search hint only
 *   capacity entries of 4 words: start hi, start lo, end hi, end lo (u32 halves of u64s)
 *   capacity handles (u32), padded to an even number of words
 * ```
 *
 * The u32 words are read and written with `Atomics`; the keys with plain accesses, since a
 * reader only uses them to guess a position that it then proves on the words (see
 * shared-route-view.ts for why).
 */
import type { BusKind } from "../devices/bus.js";

/** First header word: `vROU`, so that a view refuses a buffer that is not a route table. */
export const MAGIC = 0x76524f55;
/** Second header word; a view refuses other layouts. */
export const LAYOUT_VERSION = 1;
export const W_MAGIC = 0;
export const W_LAYOUT = 1;
export const W_CAPACITY = 2;
export const W_KIND = 3;
export const W_SEQ = 4;
const HEADER_WORDS = 16;
/** Offsets inside one buffer. */
export const B_COUNT = 0;
const B_KEYS = 16;
export const ENTRY_WORDS = 4;
/** The count of a buffer whose table must not be trusted: every lookup answers {@link ROUTE_STALE}. */
export const STALE_COUNT = 0xffffffff;
/** The largest capacity a table accepts (2^20 routes: 40 MiB of buffer). */
export const MAX_CAPACITY = 1 << 20;

/**
 * What {@link SharedRouteView.find} returns for an address no mapping contains. Handles are
 * u32s, so no handle is negative.
 */
export const ROUTE_UNMAPPED = -1;

/**
 * What {@link SharedRouteView.find} returns when the table cannot answer: the bus outgrew the
 * table's capacity, a handle could not be computed, or the table was closed (see
 * {@link SharedRouteTable.stale}). The reader must ask the owning thread instead.
 */
export const ROUTE_STALE = -2;

/** Words of one buffer of a table of `capacity` routes (even, so that every key is 8-byte aligned). */
function bufferWords(capacity: number): number {
  return B_KEYS + capacity * (2 + ENTRY_WORDS + 1) + (capacity & 1);
}

/** Word offset of the keys of the buffer at `base` (divide by 2 for the float64 index). */
export function keysBase(base: number): number {
  return base + B_KEYS;
}

/** Word offset of the entries of the buffer at `base`. */
export function entriesBase(capacity: number, base: number): number {
  return base + B_KEYS + 2 * capacity;
}

/** Word offset of buffer `parity` (0 or 1). */
export function bufferBase(capacity: number, parity: number): number {
  return HEADER_WORDS + parity * bufferWords(capacity);
}

/** Word offset of the handles of the buffer at `base`. */
export function handlesBase(capacity: number, base: number): number {
  return base + B_KEYS + capacity * (2 + ENTRY_WORDS);
}

/** Bytes of a whole table of `capacity` routes. */
export function tableBytes(capacity: number): number {
  return 4 * (HEADER_WORDS + 2 * bufferWords(capacity));
}

export function kindCode(kind: BusKind): number {
  return kind === "io" ? 0 : 1;
}

/** A shared buffer where the host has one (cross-origin-isolated pages, Node), else a plain one (single thread only). */
export function newTableBuffer(bytes: number): SharedArrayBuffer | ArrayBuffer {
  return typeof SharedArrayBuffer === "function" ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
}

/** u32 halves of a u64, through a scratch word: `[hi, lo]` indices of the platform's byte order. */
export const SCRATCH_U64 = new BigUint64Array(1);
export const SCRATCH_U32 = new Uint32Array(SCRATCH_U64.buffer);
const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
export const HI = LITTLE ? 1 : 0;
export const LO = LITTLE ? 0 : 1;

/**
 * Makes every entry of both buffers empty (start 2^64-1, end 0: no address fits), as a new table
 * must be before anyone reads it: readers rely on entries past the count being empty.
 */
export function emptyEntries(words: Uint32Array, capacity: number): void {
  for (let parity = 0; parity < 2; parity++) {
    const entries = entriesBase(capacity, bufferBase(capacity, parity));
    for (let i = 0; i < capacity; i++) {
      const e = entries + ENTRY_WORDS * i;
      words[e] = 0xffffffff;
      words[e + 1] = 0xffffffff;
    }
  }
}
