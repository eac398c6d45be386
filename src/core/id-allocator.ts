/**
 * Allocation of unsigned 32-bit ids: legacy IRQ lines, MSI/GSI numbers, device instance ids.
 *
 * The state is a hierarchical bitmap that is only materialised where ids have been touched, so
 * an allocator over the whole space [0, 2^32-1] costs a few hundred bytes until it is used:
 *
 * - a *word* holds 32 ids (bit set = allocated); a parallel *history* word records, for a free
 *   id, whether it was ever allocated (so that freeing can tell `NeverAllocated` from
 *   `AlreadyReleased`) and, for an allocated id, whether it had been released before this
 *   allocation (so that {@link IdAllocator.unallocateId} can roll an allocation back exactly);
 * - a *page* is 32 words (1024 ids) plus one summary word whose bit i says "word i is full";
 *   pages live in slots of shared pooled typed arrays (one object per page would cost more in
 *   headers than the bits themselves);
 * - a *chunk* covers 1024 pages (2^20 ids): a page -> slot directory, a "page is full" bitmap
 *   and one word saying which words of that bitmap are full;
 * - at most 4096 chunks, created on first touch, plus a hint below which every chunk is full.
 *
 * Finding the lowest free id is therefore a handful of count-trailing-zeros steps from the
 * hint, whatever the range. Everything is indexed by the offset `id - first`, so pages do not
 * depend on the alignment of `first`.
 *
 * Owners are kept out of the bitmap, and cost nothing until an owner is given: owner names are
 * interned into records (index >= 1), and the owner of each id is that index in *owner pages* of
 * 256 ids, an Int32Array, or one number when the whole page has one owner (as a snapshot's long
 * owned runs restore: a run costs one entry per page it covers, not one per id). Each record keeps
 * the ids given to it one by one (a Set) and the runs it was restored with; the pages are the
 * truth, so an id of a run that was freed since is simply skipped.
 */
import { checkOwner, readFields } from "./arguments.js";
import { AllocatorError } from "./errors.js";
import { formatRange } from "./range.js";
import type { IdRequest, ResourceAllocator } from "./resource.js";
import { toU32, type U32Input } from "./u64.js";

const WORD_SHIFT = 5;
const PAGE_SHIFT = 10;
const CHUNK_SHIFT = 20;
const WORDS_PER_PAGE = 32;
const PAGES_PER_CHUNK = 1024;
const CHUNK_IDS = 1 << CHUNK_SHIFT;
/** Ids per owner page. Small, so that a lone owned id costs 1 KiB at most. */
const OWNER_PAGE_SHIFT = 8;
const OWNER_PAGE = 1 << OWNER_PAGE_SHIFT;
const OWNER_PAGE_MASK = OWNER_PAGE - 1;

/** What an allocator without owners shares (never written: #intern replaces them first). */
const NO_RECORDS: readonly (OwnerRecord | undefined)[] = Object.freeze([undefined]);
const NO_FREE_RECORDS: readonly number[] = Object.freeze([]);

/** One interned owner. */
interface OwnerRecord {
  readonly name: string;
  /** Ids that have this owner now. */
  count: number;
  /** Ids given to this owner one by one (absolute ids); some may be in `runs` too. */
  readonly ids: Set<number>;
  /** Runs it was restored with (absolute ids); ids freed since are still listed, the pages tell. */
  runs: IdRun[];
}

/** Index of the lowest set bit of a non-zero int32. */
function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** The bits [lo, hi] of a word (0 <= lo <= hi <= 31) as an int32 mask. */
function bitRange(lo: number, hi: number): number {
  const width = hi - lo + 1;
  return width === 32 ? -1 : ((1 << width) - 1) << lo;
}

/** Number of set bits of an int32. */
function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

const EMPTY = new Int32Array(0);

/*
 * A page-directory entry: 1 + the page's slot in the pool when the page has storage, else one
 * of these. The two implicit states let a snapshot claim whole pages (and, with the shared
 * chunks below, whole chunks) in constant memory; a page gets storage when an id in it changes.
 * Implicit pages and shared chunks always lie entirely inside the range.
 */
/** Never touched: every id free and never allocated. */
const UNTOUCHED = 0;
/** Every id allocated (hence ever allocated); no storage. */
const FULL_PAGE = -1;
/** Every id free but allocated once (freeing one reports AlreadyReleased); no storage. */
const RELEASED_PAGE = -2;

/** 2^20 ids: which of its pages exist, and which are full. */
class Chunk {
  /** Page index -> 1 + its slot in the pool, or UNTOUCHED, FULL_PAGE, RELEASED_PAGE. */
  readonly slots: Int32Array;
  /** Bit (p & 31) of word (p >>> 5) is set when page p is full. */
  readonly pageFull: Int32Array;
  /** Bit j is set when pageFull[j] is all ones; -1 means the chunk is full. */
  fullMask: number;
  /**
   * True for the two chunks every allocator shares (FULL_CHUNK and RELEASED_CHUNK). They are
   * never written: the allocator replaces one with a copy of its own before changing an id in it.
   */
  readonly shared: boolean;

  constructor(slots: Int32Array, pageFull: Int32Array, fullMask: number, shared = false) {
    this.slots = slots;
    this.pageFull = pageFull;
    this.fullMask = fullMask;
    this.shared = shared;
  }

  static empty(): Chunk {
    return new Chunk(new Int32Array(PAGES_PER_CHUNK), new Int32Array(PAGES_PER_CHUNK / 32), 0);
  }

  /** A copy that may be written. */
  copy(): Chunk {
    return new Chunk(this.slots.slice(), this.pageFull.slice(), this.fullMask);
  }

  /** A copy for another allocator: the shared chunks are shared with it too. */
  clone(): Chunk {
    return this.shared ? this : this.copy();
  }
}

/** A chunk whose 2^20 ids are all allocated, shared by every allocator. */
const FULL_CHUNK = new Chunk(new Int32Array(PAGES_PER_CHUNK).fill(FULL_PAGE), new Int32Array(PAGES_PER_CHUNK / 32).fill(-1), -1, true);
/** A chunk whose 2^20 ids were all allocated once and are all free, shared by every allocator. */
const RELEASED_CHUNK = new Chunk(new Int32Array(PAGES_PER_CHUNK).fill(RELEASED_PAGE), new Int32Array(PAGES_PER_CHUNK / 32), 0, true);

/** What #release reports. */
const FREED = 0;
const WAS_NEVER_ALLOCATED = 1;
const WAS_RELEASED = 2;

/** An inclusive run of ids `[first, last]` in a snapshot. */
export type IdRun = [first: number, last: number];

/**
 * The JSON form of an {@link IdAllocator}. Canonical: equal allocators give equal snapshots.
 *
 * - `allocated`: the allocated ids as ascending, disjoint, non-adjacent inclusive runs.
 * - `released`: ids allocated at some point and free now, in the same form. Ids in neither list
 *   were never allocated, so freeing them reports `NeverAllocated` rather than `AlreadyReleased`.
 * - `owners`: `[name, runs]` for every owner, ordered by each owner's lowest id; the runs are in
 *   the same form and inside `allocated`. Allocated ids in no owner's runs have no owner.
 */
export interface IdAllocatorSnapshot {
  /**
   * Always `"vm-allocator/id-allocator"` ({@link ID_ALLOCATOR_SNAPSHOT_FORMAT}); restoring refuses
   * any other value.
   */
  format: "vm-allocator/id-allocator";
  /** The snapshot format version, 1; restoring refuses any other. */
  version: 1;
  /** Lowest id of the pool, a u32 (0 to 2^32-1). */
  first: number;
  /** Highest id of the pool, inclusive, a u32 not below `first`. */
  last: number;
  /** The allocated ids as ascending, disjoint, non-adjacent inclusive runs. */
  allocated: IdRun[];
  /**
   * Ids that were allocated once and are free now, in the same form as `allocated`, so freeing one
   * again still reports `AlreadyReleased` after a restore.
   */
  released: IdRun[];
  /**
   * `[name, runs]` for every owner, ordered by each owner's lowest id; the runs lie inside
   * `allocated`.
   */
  owners: [owner: string, runs: IdRun[]][];
}

/** The `format` tag of an {@link IdAllocatorSnapshot}. */
export const ID_ALLOCATOR_SNAPSHOT_FORMAT = "vm-allocator/id-allocator";

/**
 * How many ids may have an owner at once, in a live allocator and in a snapshot (the ids given to
 * an owner one by one are kept in a Set, and a V8 Set holds at most 2^24 entries; a snapshot's
 * owned runs restore in one entry per 256 ids, so 2^16 entries at this limit). A call that would pass it is refused up front
 * with `ResourceNotAvailable`; a snapshot that names more is `InvalidSnapshot`.
 */
export const MAX_OWNED_IDS = 1 << 24;

/**
 * How many ids one {@link IdAllocator.allocateIds} call hands out at most: its result is an array
 * of that many numbers (128 MiB at the limit). A larger count is refused up front with
 * `InvalidArgument`; call again for more.
 */
export const MAX_IDS_PER_CALL = 1 << 24;

const SNAPSHOT_FIELDS = ["format", "version", "first", "last", "allocated", "released", "owners"] as const;

/** Accumulates ascending offsets or bit runs into merged inclusive runs of ids. */
class RunBuilder {
  readonly runs: IdRun[] = [];
  #start = -1;
  #end = -2;
  readonly #base: number;

  constructor(base: number) {
    this.#base = base;
  }

  /** Adds offsets [a, b]; calls come in ascending order. */
  add(a: number, b: number): void {
    if (a === this.#end + 1) {
      this.#end = b;
      return;
    }
    this.#flush();
    this.#start = a;
    this.#end = b;
  }

  /** Adds the set bits of `word`, whose bit 0 is offset `offset`. */
  addWord(offset: number, word: number): void {
    if (word === -1) {
      this.add(offset, offset + 31);
      return;
    }
    let w = word;
    while (w !== 0) {
      const lo = ctz(w);
      // Length of the run of ones starting at lo: the lowest zero of w above lo.
      const rest = ~(w >>> lo);
      const len = rest === 0 ? 32 - lo : ctz(rest);
      this.add(offset + lo, offset + lo + len - 1);
      w &= ~bitRange(lo, lo + len - 1);
    }
  }

  finish(): IdRun[] {
    this.#flush();
    this.#start = -1;
    this.#end = -2;
    return this.runs;
  }

  #flush(): void {
    if (this.#start >= 0) this.runs.push([this.#base + this.#start, this.#base + this.#end]);
  }
}

/**
 * Hands out unsigned 32-bit ids from an inclusive range, lowest free id first.
 *
 * Memory grows with the ids actually touched (about 2 bits per id in touched 1024-id pages, plus
 * 4 KiB per touched 2^20-id chunk), never with the size of the range; whole pages and chunks that
 * a snapshot restores as all allocated or all released take no storage until an id in them
 * changes. Every failed call throws an {@link AllocatorError} and leaves the allocator exactly as
 * it was.
 *
 * Ids that have never been allocated since construction (or since the snapshot was taken) are
 * told apart from ids that were allocated and freed: freeing them reports `NeverAllocated` and
 * `AlreadyReleased` respectively.
 *
 * ```ts
 * const irqs = new IdAllocator(5, 23);
 * irqs.allocateId("virtio-blk@0"); // 5
 * irqs.allocateIdAt(9, "acpi");    // 9
 * irqs.freeOwner("virtio-blk@0");  // [5]
 * ```
 */
export class IdAllocator implements ResourceAllocator<number, IdRequest> {
  readonly #first: number;
  readonly #last: number;
  /** Number of ids in the range, 1 to 2^32. */
  readonly #size: number;

  #chunks: (Chunk | undefined)[] = [];
  /** Every chunk below this index exists and is full. */
  #lowChunk = 0;

  /** Allocated bits, 32 words per slot. */
  #bits: Int32Array = EMPTY;
  /**
   * History bits, same layout as #bits. For a free id: allocated once and released since. For an
   * allocated id: it had been released before its current allocation (the state
   * {@link unallocateId} restores). An allocation leaves the bit alone; a free sets it.
   */
  #ever: Int32Array = EMPTY;
  /** One word per slot: bit i set when word i of the slot is full. */
  #wordFull: Int32Array = EMPTY;
  #slotCount = 0;

  #allocated = 0;
  /** Counts changes, so that an iterator can tell that the bitmap changed under it. */
  #version = 0;

  /** Owner page number (offset >>> OWNER_PAGE_SHIFT) -> the record index of each id, 0 for none. */
  #ownerPages: Map<number, Int32Array | number> | undefined;
  /** Records by index; index 0 is never used (0 in a page means no owner). Shared until an owner is given. */
  #records: (OwnerRecord | undefined)[] = NO_RECORDS as (OwnerRecord | undefined)[];
  /** Owner name -> record index, records of owners holding nothing now included (see #dropOwner). */
  #recordIndex: Map<string, number> | undefined;
  /** Record indices free for reuse (shared and empty until an owner is given). */
  #freeRecords: number[] = NO_FREE_RECORDS as number[];
  /** Ids that have an owner now. */
  #owned = 0;
  /** Owners that hold at least one id now. */
  #liveOwners = 0;

  /**
   * An allocator over the ids `first..=last`, all free.
   * @param first Lowest id, a number or bigint in [0, 2^32-1].
   * @param last Highest id (inclusive), a number or bigint in [first, 2^32-1].
   * @throws AllocatorError `InvalidArgument` when a bound is not a u32, `InvalidRange` when `first > last`.
   */
  constructor(first: U32Input, last: U32Input) {
    const f = toU32(first, "first");
    const l = toU32(last, "last");
    if (f > l) throw new AllocatorError("InvalidRange", `invalid id range: first ${f} is above last ${l}`);
    this.#first = f + 0; // + 0 turns -0 into 0
    this.#last = l + 0;
    this.#size = l - f + 1;
  }

  /** Lowest id of the range. */
  get first(): number {
    return this.#first;
  }

  /** Highest id of the range (inclusive). */
  get last(): number {
    return this.#last;
  }

  /** Number of ids currently allocated. */
  get allocatedCount(): number {
    return this.#allocated;
  }

  /** Number of ids currently free (up to 2^32). */
  get availableCount(): number {
    return this.#size - this.#allocated;
  }

  /**
   * Allocates the lowest free id.
   * @param owner Who holds the id; conflicts and {@link ownerOf} report it. A non-empty string.
   * @throws AllocatorError `ResourceNotAvailable` when every id is allocated (or, with an owner,
   *   when {@link MAX_OWNED_IDS} ids already have one), `InvalidArgument` for a bad owner.
   */
  allocateId(owner?: string): number {
    if (owner !== undefined) this.#roomForOwned(checkOwner(owner), 1);
    const off = this.#takeLowest();
    if (off < 0) throw this.#exhausted(1);
    const id = this.#first + off;
    if (owner !== undefined) this.#setOwner(id, owner);
    return id;
  }

  /**
   * Allocates exactly `id`.
   * @throws AllocatorError `InvalidArgument` when `id` is not a u32 or the owner is bad, `OutOfRange` when
   * it lies outside [first, last], `Overlap` when it is already allocated (the message and the
   * error's `owner` name the holder), `ResourceNotAvailable` when an owner is given and
   * {@link MAX_OWNED_IDS} ids already have one.
   */
  allocateIdAt(id: U32Input, owner?: string): number {
    const v = this.#checkId(id, "id");
    if (owner !== undefined) checkOwner(owner);
    const off = v - this.#first;
    if (this.#isSet(off)) {
      const holder = this.#ownerName(off);
      throw new AllocatorError(
        "Overlap",
        holder === undefined ? `id ${v} is already allocated` : `id ${v} is already allocated to ${holder}`,
        { owner: holder },
      );
    }
    if (owner !== undefined) this.#roomForOwned(owner, 1);
    this.#setBit(off);
    if (owner !== undefined) this.#setOwner(v, owner);
    return v;
  }

  /**
   * Allocates the `count` lowest free ids, in ascending order (not necessarily contiguous).
   * All or nothing, and refused before any work when it cannot succeed.
   * @param count Number of ids, an integer from 0 to {@link MAX_IDS_PER_CALL}; 0 returns an empty array.
   * @throws AllocatorError `InvalidArgument` for a bad count or owner, or a count above
   *   {@link MAX_IDS_PER_CALL}; `ResourceNotAvailable` when fewer than `count` ids are free, or
   *   when an owner is given and the ids with an owner would pass {@link MAX_OWNED_IDS}.
   */
  allocateIds(count: U32Input, owner?: string): number[] {
    const n = toU32(count, "count");
    if (owner !== undefined) checkOwner(owner);
    if (n > MAX_IDS_PER_CALL) {
      throw new AllocatorError(
        "InvalidArgument",
        `count ${n} is above ${MAX_IDS_PER_CALL} (MAX_IDS_PER_CALL), the most ids one call returns; call allocateIds again for more`,
      );
    }
    if (n > this.availableCount) throw this.#exhausted(n);
    if (owner !== undefined) this.#roomForOwned(owner, n);
    // Room for every page the ids can fall in, taken first: the loop below then cannot fail
    // half-way on a growing pool (the ids span at most n / 1024 pages plus two partial ones).
    if (n > 0) this.#reserveSlots(Math.ceil(n / 1024) + 1);
    const ids = new Array<number>(n);
    const first = this.#first;
    for (let i = 0; i < n; i++) ids[i] = first + this.#takeLowest();
    if (owner !== undefined) for (const id of ids) this.#setOwner(id, owner);
    return ids;
  }

  /**
   * Frees `id` and returns it (as a number).
   * @throws AllocatorError `InvalidArgument` when `id` is not a u32, `OutOfRange` when outside [first, last],
   * `NeverAllocated` when it has not been allocated since construction or restore,
   * `AlreadyReleased` when it was allocated and has been freed since.
   */
  freeId(id: U32Input): number {
    let v: number;
    // Fast path for the common case; anything unusual goes through the full validation.
    if (typeof id === "number" && id >= this.#first && id <= this.#last && Number.isInteger(id)) v = id + 0;
    else v = this.#checkId(id, "id");
    const r = this.#release(v - this.#first, true);
    if (r !== FREED) throw this.#notAllocated(v, r === WAS_RELEASED);
    if (this.#owned !== 0) this.#dropOwner(v);
    return v;
  }

  /**
   * Rolls back the allocation of `id`: frees it and restores what it was before that allocation,
   * so that {@link toJSON} is exactly as before the id was allocated. An id that had never been
   * allocated before counts as never allocated again (freeing it reports `NeverAllocated`); one
   * that had been released counts as released. Meant for undoing a step of a failed operation;
   * an unrelated free is {@link freeId}.
   *
   * The prior state is kept in the bitmap itself, not in snapshots: for an id allocated before a
   * restore (or restored allocated), the prior state is "released".
   *
   * ```ts
   * const ids = new IdAllocator(0, 7);
   * const id = ids.allocateId("x"); // 0
   * ids.unallocateId(id);           // as if never allocated: toJSON() equals a fresh allocator's
   * ```
   * @throws AllocatorError as {@link freeId}: `InvalidArgument`, `OutOfRange`, `NeverAllocated`,
   *   `AlreadyReleased`.
   */
  unallocateId(id: U32Input): number {
    const v = this.#checkId(id, "id");
    const r = this.#release(v - this.#first, false);
    if (r !== FREED) throw this.#notAllocated(v, r === WAS_RELEASED);
    if (this.#owned !== 0) this.#dropOwner(v);
    return v;
  }

  /**
   * True when `id` is allocated. Ids outside [first, last] are never allocated.
   * @throws AllocatorError `InvalidArgument` when `id` is not a u32.
   */
  isAllocated(id: U32Input): boolean {
    const v = toU32(id, "id");
    if (v < this.#first || v > this.#last) return false;
    return this.#isSet(v - this.#first);
  }

  /**
   * The owner `id` was allocated to, or undefined when it is free, has no owner, or is outside the range.
   * @throws AllocatorError `InvalidArgument` when `id` is not a u32.
   */
  ownerOf(id: U32Input): string | undefined {
    const v = toU32(id, "id");
    if (this.#owned === 0 || v < this.#first || v > this.#last) return undefined;
    return this.#ownerName(v - this.#first);
  }

  /**
   * The ids held by `owner`, ascending (a new array); empty for an unknown owner.
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string.
   */
  idsOf(owner: string): number[] {
    const rec = this.#recordOf(checkOwner(owner));
    return rec === undefined ? [] : this.#idsOfRecord(rec[1], rec[0]);
  }

  /**
   * Frees every id held by `owner` and returns them ascending; empty for an unknown owner. Costs
   * less than freeing the ids one by one: the owner's records are dropped as a whole.
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string.
   */
  freeOwner(owner: string): number[] {
    const found = this.#recordOf(checkOwner(owner));
    if (found === undefined) return [];
    const [index, rec] = found;
    const ids = this.#idsOfRecord(rec, index);
    const first = this.#first;
    // Cannot fail: every id of an owner is allocated (an invariant checkValid verifies).
    for (let i = 0; i < ids.length; i++) this.#release(ids[i]! - first, true);
    if (rec.count === this.#owned) {
      // The owner held every owned id: start the records afresh instead of emptying them.
      this.#resetOwners();
      return ids;
    }
    // Page by page (the ids ascend): a page r owns whole goes at once.
    const pages = this.#ownerPages!;
    for (let i = 0; i < ids.length; ) {
      const off = ids[i]! - first;
      const p = off >>> OWNER_PAGE_SHIFT;
      const e = pages.get(p)!;
      if (typeof e === "number") {
        pages.delete(p);
        while (i < ids.length && (ids[i]! - first) >>> OWNER_PAGE_SHIFT === p) i++;
        continue;
      }
      for (; i < ids.length && (ids[i]! - first) >>> OWNER_PAGE_SHIFT === p; i++) e[(ids[i]! - first) & OWNER_PAGE_MASK] = 0;
    }
    this.#owned -= ids.length;
    this.#retire(rec);
    return ids;
  }

  /**
   * The allocated ids in ascending order, read lazily. Changing the allocator while iterating
   * makes the next step throw `InvalidState` (iterate over a copy to change it meanwhile).
   */
  *allocatedIds(): Generator<number, void, undefined> {
    const first = this.#first;
    const version = this.#version;
    for (const [offset, index, length] of this.#parts()) {
      if (index === FULL_PAGE) {
        for (let i = 0; i < length; i++) {
          yield first + offset + i;
          if (this.#version !== version) throw changedWhileIterating();
        }
      } else if (index >= 0) {
        let w = this.#bits[index]!;
        while (w !== 0) {
          const b = ctz(w);
          w &= w - 1;
          yield first + offset + b;
          if (this.#version !== version) throw changedWhileIterating();
        }
      }
    }
  }

  /**
   * The bitmap in id order, in pieces: `[offset, word index, 32]` for each word of a page with
   * storage, `[offset, FULL_PAGE or RELEASED_PAGE, length]` for an implicit page or shared chunk.
   * Offsets count from `first`.
   */
  *#parts(): Generator<[offset: number, index: number, length: number], void, undefined> {
    const chunks = this.#chunks;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      if (chunk === undefined) continue;
      if (chunk === FULL_CHUNK || chunk === RELEASED_CHUNK) {
        yield [c * CHUNK_IDS, chunk === FULL_CHUNK ? FULL_PAGE : RELEASED_PAGE, CHUNK_IDS];
        continue;
      }
      for (let p = 0; p < PAGES_PER_CHUNK; p++) {
        const s = chunk.slots[p]!;
        if (s === UNTOUCHED) continue;
        const offset = c * CHUNK_IDS + (p << PAGE_SHIFT);
        if (s < 0) {
          yield [offset, s, 1 << PAGE_SHIFT];
          continue;
        }
        const base = (s - 1) << WORD_SHIFT;
        for (let wi = 0; wi < WORDS_PER_PAGE; wi++) yield [offset + (wi << WORD_SHIFT), base + wi, 32];
      }
    }
  }

  /** An independent copy with the same state, owners and ever-allocated history. */
  clone(): IdAllocator {
    const copy = new IdAllocator(this.#first, this.#last);
    copy.#chunks = this.#chunks.map((chunk) => chunk?.clone());
    copy.#lowChunk = this.#lowChunk;
    const words = this.#slotCount * WORDS_PER_PAGE;
    copy.#bits = this.#bits.slice(0, words);
    copy.#ever = this.#ever.slice(0, words);
    copy.#wordFull = this.#wordFull.slice(0, this.#slotCount);
    copy.#slotCount = this.#slotCount;
    copy.#allocated = this.#allocated;
    if (this.#ownerPages !== undefined && this.#recordIndex !== undefined) {
      copy.#ownerPages = new Map([...this.#ownerPages].map(([p, e]) => [p, typeof e === "number" ? e : e.slice()]));
      copy.#records = this.#records.map((r) => (r === undefined ? undefined : { name: r.name, count: r.count, ids: new Set(r.ids), runs: r.runs.map(([x, y]): IdRun => [x, y]) }));
      copy.#recordIndex = new Map(this.#recordIndex);
      copy.#freeRecords = [...this.#freeRecords];
      copy.#owned = this.#owned;
      copy.#liveOwners = this.#liveOwners;
    }
    return copy;
  }

  /**
   * {@link ResourceAllocator} entry point: `fixed` takes that id, otherwise the lowest free one.
   * @throws AllocatorError `InvalidArgument` when `request` is not a plain object `{ fixed?, owner? }`
   *   (an unknown field is refused, so a typo is not silently ignored), and as
   *   {@link allocateId} / {@link allocateIdAt}.
   */
  allocate(request: IdRequest = {}): number {
    const [fixed, owner] = readFields(request, "request", ID_REQUEST_FIELDS);
    if (owner !== undefined) checkOwner(owner, "request.owner");
    if (fixed === undefined) return this.allocateId(owner as string | undefined);
    return this.allocateIdAt(this.#checkId(fixed, "request.fixed"), owner as string | undefined);
  }

  /** {@link ResourceAllocator} entry point: frees an id returned by {@link allocate}. */
  free(id: number): void {
    this.freeId(id);
  }

  /**
   * Verifies every internal invariant and throws a plain `Error` describing the first violation.
   * Linear in the memory in use; meant for tests and debugging.
   */
  checkValid(): void {
    const fail = (what: string): never => {
      throw new Error(`IdAllocator invariant violated: ${what}`);
    };
    const size = this.#size;
    const chunkCount = Math.ceil(size / CHUNK_IDS);
    const chunks = this.#chunks;
    if (chunks.length > chunkCount) fail(`${chunks.length} chunks for a range needing ${chunkCount}`);
    if (this.#bits.length !== this.#ever.length || this.#bits.length !== this.#wordFull.length * WORDS_PER_PAGE) {
      fail("pool arrays have inconsistent lengths");
    }
    if (this.#slotCount > this.#wordFull.length) fail("slot count exceeds the pool");
    for (const [shared, page, full] of [[FULL_CHUNK, FULL_PAGE, -1], [RELEASED_CHUNK, RELEASED_PAGE, 0]] as const) {
      if (shared.fullMask !== full || shared.slots.some((s) => s !== page) || shared.pageFull.some((w) => w !== full)) {
        fail("a shared chunk was written to");
      }
    }
    const slotSeen = new Uint8Array(this.#slotCount);
    let counted = 0;
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c];
      if (chunk === undefined) {
        if (c < this.#lowChunk) fail(`chunk ${c} is below the full-chunk hint ${this.#lowChunk} but does not exist`);
        continue;
      }
      if (chunk.shared) {
        if (chunk !== FULL_CHUNK && chunk !== RELEASED_CHUNK) fail(`chunk ${c} is shared but not one of the shared chunks`);
        if ((c + 1) * CHUNK_IDS > size) fail(`chunk ${c} is shared but passes the end of the range`);
        if (chunk === FULL_CHUNK) counted += CHUNK_IDS;
        else if (c < this.#lowChunk) fail(`chunk ${c} is below the full-chunk hint ${this.#lowChunk} but not full`);
        continue;
      }
      let fullMask = 0;
      for (let j = 0; j < PAGES_PER_CHUNK / 32; j++) {
        let pageFull = 0;
        for (let q = 0; q < 32; q++) {
          const p = (j << 5) | q;
          const s = chunk.slots[p]!;
          if (s === UNTOUCHED) continue;
          const pageOffset = c * CHUNK_IDS + (p << PAGE_SHIFT);
          if (s === FULL_PAGE || s === RELEASED_PAGE) {
            if (pageOffset + (1 << PAGE_SHIFT) > size) fail(`chunk ${c} page ${p} is implicit but passes the end of the range`);
            if (s === FULL_PAGE) {
              pageFull |= 1 << q;
              counted += 1 << PAGE_SHIFT;
            }
            continue;
          }
          if (s < 0 || s > this.#slotCount) fail(`chunk ${c} page ${p} points at slot ${s - 1} of ${this.#slotCount}`);
          if (slotSeen[s - 1] !== 0) fail(`slot ${s - 1} is used by two pages`);
          slotSeen[s - 1] = 1;
          const base = (s - 1) << WORD_SHIFT;
          let wordFull = 0;
          for (let wi = 0; wi < WORDS_PER_PAGE; wi++) {
            const w = this.#bits[base + wi]!;
            const e = this.#ever[base + wi]!;
            const offset = pageOffset + (wi << WORD_SHIFT);
            if (offset + 32 > size) {
              const outside = offset >= size ? -1 : ~bitRange(0, size - offset - 1);
              if (((w | e) & outside) !== 0) fail(`offset ${offset}: bits set beyond the end of the range`);
            }
            if (w === -1) wordFull |= 1 << wi;
            counted += popcount(w);
          }
          // A page may have storage and no history: one whose every allocation was rolled back
          // (unallocateId) keeps its slot, all zero, the same state as an untouched page.
          if (this.#wordFull[s - 1] !== wordFull) {
            fail(`chunk ${c} page ${p}: full-word summary ${this.#wordFull[s - 1]} should be ${wordFull}`);
          }
          if (wordFull === -1) pageFull |= 1 << q;
        }
        if (chunk.pageFull[j] !== pageFull) fail(`chunk ${c}: full-page word ${j} is ${chunk.pageFull[j]}, should be ${pageFull}`);
        if (pageFull === -1) fullMask |= 1 << j;
      }
      if (chunk.fullMask !== fullMask) fail(`chunk ${c}: full mask ${chunk.fullMask} should be ${fullMask}`);
      if (c < this.#lowChunk && fullMask !== -1) fail(`chunk ${c} is below the full-chunk hint ${this.#lowChunk} but not full`);
    }
    if (this.#lowChunk > chunkCount) fail(`full-chunk hint ${this.#lowChunk} is past the last chunk`);
    for (let s = 0; s < this.#slotCount; s++) if (slotSeen[s] === 0) fail(`slot ${s} is not used by any page`);
    for (let i = this.#slotCount * WORDS_PER_PAGE; i < this.#bits.length; i++) {
      if (this.#bits[i] !== 0 || this.#ever[i] !== 0) fail(`unused pool word ${i} is not zero`);
    }
    for (let s = this.#slotCount; s < this.#wordFull.length; s++) if (this.#wordFull[s] !== 0) fail(`unused slot ${s} summary is not zero`);
    if (counted !== this.#allocated) fail(`allocated count ${this.#allocated} but ${counted} bits are set`);

    const pages = this.#ownerPages;
    const index = this.#recordIndex;
    if ((pages === undefined) !== (index === undefined)) fail("owner records exist only half");
    if (pages !== undefined && index !== undefined) {
      const records = this.#records;
      if (records[0] !== undefined) fail("owner record 0 is used");
      const perRecord = new Array<number>(records.length).fill(0);
      let owned = 0;
      for (const [p, e] of pages) {
        if (!Number.isInteger(p) || p < 0 || p * OWNER_PAGE >= size) fail(`owner page ${p} is outside the range`);
        for (let i = 0; i < OWNER_PAGE; i++) {
          const r = typeof e === "number" ? e : e[i]!;
          if (r === 0) continue;
          const off = p * OWNER_PAGE + i;
          if (off >= size) fail(`owner page ${p} names an owner past the end of the range`);
          if (r < 0 || r >= records.length || records[r] === undefined) fail(`offset ${off} names owner record ${r}, which does not exist`);
          if (!this.#isSet(off)) fail(`id ${this.#first + off} has an owner but is not allocated`);
          perRecord[r]!++;
          owned++;
        }
      }
      if (owned !== this.#owned) fail(`${this.#owned} owned ids counted but ${owned} recorded`);
      if (owned > MAX_OWNED_IDS) fail(`${owned} ids have an owner, more than MAX_OWNED_IDS`);
      let live = 0;
      let inIndex = 0;
      for (let r = 1; r < records.length; r++) {
        const rec = records[r];
        if (rec === undefined) {
          if (!this.#freeRecords.includes(r)) fail(`owner record ${r} is neither used nor free`);
          continue;
        }
        inIndex++;
        if (typeof rec.name !== "string" || rec.name.length === 0) fail(`owner name ${JSON.stringify(rec.name)} is not a non-empty string`);
        if (index.get(rec.name) !== r) fail(`owner ${rec.name} is record ${r} but indexed as ${String(index.get(rec.name))}`);
        if (rec.count !== perRecord[r]) fail(`owner ${rec.name} counts ${rec.count} ids but the pages give it ${perRecord[r]}`);
        if (rec.count > 0) live++;
        else if (rec.ids.size > 0 || rec.runs.length > 0) fail(`owner ${rec.name} holds nothing but keeps ids or runs`);
        for (const id of rec.ids) {
          if (!Number.isInteger(id) || id < this.#first || id > this.#last) fail(`owner ${rec.name} lists id ${id}, outside the range`);
          if (this.#ownerIndexAt(id - this.#first) !== r) fail(`id ${id} is listed under ${rec.name} but owned by record ${this.#ownerIndexAt(id - this.#first)}`);
        }
        let covered = 0;
        for (const [x, y] of rec.runs) {
          if (x > y || x < this.#first || y > this.#last) fail(`owner ${rec.name} has a bad run [${x}, ${y}]`);
          for (let id = x; id <= y; id++) if (this.#ownerIndexAt(id - this.#first) === r && !rec.ids.has(id)) covered++;
        }
        if (rec.ids.size + covered !== rec.count) fail(`owner ${rec.name}: ${rec.ids.size} ids and ${covered} in runs, but ${rec.count} counted`);
      }
      for (const r of this.#freeRecords) if (records[r] !== undefined) fail(`owner record ${r} is free and used`);
      if (index.size !== inIndex) fail(`${index.size} owner names indexed but ${inIndex} records`);
      if (live !== this.#liveOwners) fail(`${this.#liveOwners} owners counted but ${live} hold ids`);
    }
  }

  /** The canonical JSON-safe snapshot; {@link IdAllocator.fromJSON} restores it. */
  toJSON(): IdAllocatorSnapshot {
    const allocated = new RunBuilder(this.#first);
    const released = new RunBuilder(this.#first);
    for (const [offset, index, length] of this.#parts()) {
      if (index === FULL_PAGE) {
        allocated.add(offset, offset + length - 1);
      } else if (index === RELEASED_PAGE) {
        released.add(offset, offset + length - 1);
      } else {
        const w = this.#bits[index]!;
        allocated.addWord(offset, w);
        released.addWord(offset, this.#ever[index]! & ~w);
      }
    }
    const owners: [string, IdRun[]][] = [];
    const records = this.#records;
    for (let r = 1; r < records.length; r++) {
      const rec = records[r];
      if (rec === undefined || rec.count === 0) continue;
      const runs = new RunBuilder(0);
      for (const id of this.#idsOfRecord(rec, r)) runs.add(id, id);
      owners.push([rec.name, runs.finish()]);
    }
    owners.sort((a, b) => a[1][0]![0] - b[1][0]![0]);
    return {
      format: ID_ALLOCATOR_SNAPSHOT_FORMAT,
      version: 1,
      first: this.#first,
      last: this.#last,
      allocated: allocated.finish(),
      released: released.finish(),
      owners,
    };
  }

  /**
   * Restores an allocator from {@link toJSON} output (possibly after `JSON.stringify`/`JSON.parse`).
   * Every field is validated; anything malformed or inconsistent is rejected as a whole.
   *
   * Time and memory are proportional to the snapshot, not to the ids it covers: a run of
   * allocated or released ids costs its two ends, whatever its length (a snapshot claiming all
   * 2^32 ids allocated restores in constant memory). A run of owned ids costs one entry per 256
   * ids it covers (an owner page with one owner), up to {@link MAX_OWNED_IDS} owned ids: 2^16
   * entries at most.
   * @throws AllocatorError `InvalidSnapshot` naming the first problem found.
   */
  static fromJSON(snapshot: unknown): IdAllocator {
    let parsed: ParsedSnapshot;
    try {
      parsed = parseSnapshot(snapshot);
    } catch (e) {
      if (e instanceof AllocatorError && e.code === "InvalidSnapshot") throw e;
      // A getter or proxy in the input threw; the contract is still a single error type.
      const why = e instanceof Error ? e.message : String(e);
      throw new AllocatorError("InvalidSnapshot", `invalid id-allocator snapshot: could not be read (${why})`, { cause: e });
    }
    // The same limit as the live path, refused before any work.
    let owned = 0;
    for (const [, runs] of parsed.owners) for (const [x, y] of runs) owned += y - x + 1;
    if (owned > MAX_OWNED_IDS) {
      throw new AllocatorError(
        "InvalidSnapshot",
        `invalid id-allocator snapshot: owners hold ${owned} ids; at most ${MAX_OWNED_IDS} ids with an owner are supported`,
      );
    }
    const a = new IdAllocator(parsed.first, parsed.last);
    const base = parsed.first;
    try {
      for (const [x, y] of parsed.allocated) {
        a.#fillRun(x - base, y - base, true);
        a.#allocated += y - x + 1;
      }
      for (const [x, y] of parsed.released) a.#fillRun(x - base, y - base, false);
      a.#rebuildSummaries();
      for (const [owner, runs] of parsed.owners) a.#restoreOwner(owner, runs);
    } catch (e) {
      // Out of memory for a valid but enormous snapshot: still the one documented error type.
      if (!(e instanceof RangeError)) throw e;
      throw new AllocatorError("InvalidSnapshot", `invalid id-allocator snapshot: too large to restore (${e.message})`, { cause: e });
    }
    return a;
  }

  // ---- internals ----

  /** Validates an id argument: u32 (else InvalidArgument), inside the range (else OutOfRange). */
  #checkId(id: unknown, name: string): number {
    const v = toU32(id, name) + 0;
    if (v < this.#first || v > this.#last) {
      throw new AllocatorError("OutOfRange", `id ${v} is outside ${this.#rangeText()}`);
    }
    return v;
  }

  #rangeText(): string {
    return formatRange(BigInt(this.#first), BigInt(this.#last), "id");
  }

  #exhausted(count: number): AllocatorError {
    const free = this.availableCount;
    return new AllocatorError(
      "ResourceNotAvailable",
      count === 1 ? `no free id in ${this.#rangeText()}` : `cannot allocate ${count} ids: only ${free} free in ${this.#rangeText()}`,
    );
  }

  #notAllocated(id: number, released: boolean): AllocatorError {
    return released
      ? new AllocatorError("AlreadyReleased", `id ${id} was already released`)
      : new AllocatorError("NeverAllocated", `id ${id} was never allocated`);
  }

  /**
   * Checks, before anything changes, that `count` more ids can get an owner (the owned-id limit;
   * the records then have room: a record per owner, a page entry per 256 ids).
   */
  #roomForOwned(owner: string, count: number): void {
    if (this.#owned + count > MAX_OWNED_IDS) {
      throw new AllocatorError(
        "ResourceNotAvailable",
        `cannot give ${count} more id(s) an owner: ${this.#owned} ids have one, and at most ${MAX_OWNED_IDS} (MAX_OWNED_IDS) can`,
        { owner },
      );
    }
  }

  /** Allocates the lowest free offset and returns it, or -1 when the range is exhausted. */
  #takeLowest(): number {
    const chunks = this.#chunks;
    let c = this.#lowChunk;
    let chunk: Chunk | undefined;
    for (;;) {
      chunk = chunks[c];
      if (chunk === undefined) {
        if (c * CHUNK_IDS >= this.#size) {
          this.#lowChunk = c;
          return -1;
        }
        chunk = this.#newChunk(c);
        break;
      }
      if (chunk.fullMask !== -1) break;
      c++;
    }
    this.#lowChunk = c;
    // Every page, word and bit below the lowest non-full one is full, so each level's lowest
    // clear summary bit leads straight to the lowest free id of the chunk.
    const j = ctz(~chunk.fullMask);
    const pf = chunk.pageFull[j]!;
    const p = (j << 5) | ctz(~pf);
    let s = chunk.slots[p]!;
    if (s <= 0) {
      // A range ending exactly on a page boundary leads here once it is full: the page after
      // the end must not be created, or a failed call would have changed the state.
      if (c * CHUNK_IDS + (p << PAGE_SHIFT) >= this.#size) return -1;
      // Not full, so UNTOUCHED or RELEASED_PAGE: give it storage (in a chunk of our own).
      if (chunk.shared) chunk = this.#own(c);
      s = this.#newPage(chunk, p, s === RELEASED_PAGE);
    }
    const slot = s - 1;
    const wf = this.#wordFull[slot]!;
    const wi = ctz(~wf);
    const idx = (slot << WORD_SHIFT) + wi;
    const word = this.#bits[idx]!;
    const b = ctz(~word);
    const off = c * CHUNK_IDS + ((p << PAGE_SHIFT) | (wi << WORD_SHIFT) | b);
    if (off >= this.#size) return -1; // the free bits left are past the end of a partial chunk
    const m = 1 << b;
    const nw = word | m;
    this.#bits[idx] = nw;
    if (nw === -1) {
      const nwf = wf | (1 << wi);
      this.#wordFull[slot] = nwf;
      if (nwf === -1) {
        const npf = pf | (1 << (p & 31));
        chunk.pageFull[j] = npf;
        if (npf === -1) chunk.fullMask |= 1 << j;
      }
    }
    this.#allocated++;
    this.#version++;
    return off;
  }

  /**
   * Frees offset `off` if it is allocated and returns FREED; otherwise changes nothing and
   * returns WAS_NEVER_ALLOCATED or WAS_RELEASED. `markReleased` records the id as released (a
   * free); without it the history bit keeps the state before the allocation (a rollback). Owners
   * are the caller's business.
   */
  #release(off: number, markReleased: boolean): number {
    const c = off >>> CHUNK_SHIFT;
    let chunk = this.#chunks[c];
    if (chunk === undefined) return WAS_NEVER_ALLOCATED;
    const p = (off >>> PAGE_SHIFT) & (PAGES_PER_CHUNK - 1);
    let s = chunk.slots[p]!;
    if (s <= 0) {
      if (s === UNTOUCHED) return WAS_NEVER_ALLOCATED;
      if (s === RELEASED_PAGE) return WAS_RELEASED;
      // A FULL_PAGE: give it storage with every bit set, then clear one below as usual.
      if (chunk.shared) chunk = this.#own(c);
      s = this.#newPage(chunk, p, true);
      this.#bits.fill(-1, (s - 1) << WORD_SHIFT, s << WORD_SHIFT);
      this.#wordFull[s - 1] = -1;
    }
    const wi = (off >>> WORD_SHIFT) & 31;
    const idx = ((s - 1) << WORD_SHIFT) + wi;
    const m = 1 << (off & 31);
    const word = this.#bits[idx]!;
    if ((word & m) === 0) return (this.#ever[idx]! & m) !== 0 ? WAS_RELEASED : WAS_NEVER_ALLOCATED;
    this.#bits[idx] = word & ~m;
    if (markReleased) this.#ever[idx] = this.#ever[idx]! | m;
    if (word === -1) {
      const wf = this.#wordFull[s - 1]!;
      this.#wordFull[s - 1] = wf & ~(1 << wi);
      if (wf === -1) {
        const j = p >>> 5;
        const pf = chunk.pageFull[j]!;
        chunk.pageFull[j] = pf & ~(1 << (p & 31));
        if (pf === -1) chunk.fullMask &= ~(1 << j);
      }
    }
    if (c < this.#lowChunk) this.#lowChunk = c;
    this.#allocated--;
    this.#version++;
    return FREED;
  }

  /** Marks a free offset allocated, creating its chunk and page as needed. */
  #setBit(off: number): void {
    const c = off >>> CHUNK_SHIFT;
    let chunk = this.#chunks[c] ?? this.#newChunk(c);
    const p = (off >>> PAGE_SHIFT) & (PAGES_PER_CHUNK - 1);
    let s = chunk.slots[p]!;
    if (s <= 0) {
      // The offset is free, so the page is UNTOUCHED or RELEASED_PAGE.
      if (chunk.shared) chunk = this.#own(c);
      s = this.#newPage(chunk, p, s === RELEASED_PAGE);
    }
    const slot = s - 1;
    const wi = (off >>> WORD_SHIFT) & 31;
    const idx = (slot << WORD_SHIFT) + wi;
    const m = 1 << (off & 31);
    const nw = this.#bits[idx]! | m;
    this.#bits[idx] = nw;
    if (nw === -1) {
      const nwf = this.#wordFull[slot]! | (1 << wi);
      this.#wordFull[slot] = nwf;
      if (nwf === -1) {
        const j = p >>> 5;
        const npf = chunk.pageFull[j]! | (1 << (p & 31));
        chunk.pageFull[j] = npf;
        if (npf === -1) chunk.fullMask |= 1 << j;
      }
    }
    this.#allocated++;
    this.#version++;
  }

  /** True when offset `off` is allocated; untouched pages read as free. */
  #isSet(off: number): boolean {
    const chunk = this.#chunks[off >>> CHUNK_SHIFT];
    if (chunk === undefined) return false;
    const s = chunk.slots[(off >>> PAGE_SHIFT) & (PAGES_PER_CHUNK - 1)]!;
    if (s <= 0) return s === FULL_PAGE;
    return (this.#bits[((s - 1) << WORD_SHIFT) + ((off >>> WORD_SHIFT) & 31)]! & (1 << (off & 31))) !== 0;
  }

  #newChunk(c: number): Chunk {
    const chunk = Chunk.empty();
    const chunks = this.#chunks;
    while (chunks.length < c) chunks.push(undefined);
    chunks[c] = chunk;
    return chunk;
  }

  /** Replaces shared chunk `c` with a copy of its own, which may be written, and returns it. */
  #own(c: number): Chunk {
    const chunk = this.#chunks[c]!.copy();
    this.#chunks[c] = chunk;
    return chunk;
  }

  /** Makes sure `count` more pages fit in the pool without growing it. */
  #reserveSlots(count: number): void {
    const need = this.#slotCount + count;
    if (need <= this.#wordFull.length) return;
    // Doubling keeps growth amortised O(1); the first pages stay small for sparse users.
    const cap = Math.max(4, this.#wordFull.length * 2, need);
    const bits = new Int32Array(cap * WORDS_PER_PAGE);
    bits.set(this.#bits);
    const ever = new Int32Array(cap * WORDS_PER_PAGE);
    ever.set(this.#ever);
    const wordFull = new Int32Array(cap);
    wordFull.set(this.#wordFull);
    this.#bits = bits;
    this.#ever = ever;
    this.#wordFull = wordFull;
  }

  /**
   * Gives page `p` of `chunk` (which must not be shared) a zeroed slot, with every id marked
   * ever allocated when `released`, and returns 1 + the slot.
   */
  #newPage(chunk: Chunk, p: number, released: boolean): number {
    this.#reserveSlots(1);
    const slot = this.#slotCount;
    this.#slotCount = slot + 1;
    chunk.slots[p] = slot + 1;
    if (released) this.#ever.fill(-1, slot << WORD_SHIFT, (slot + 1) << WORD_SHIFT);
    return slot + 1;
  }

  /**
   * Marks offsets [a, b] allocated (or released) while restoring a snapshot: whole chunks and
   * pages implicitly, only the partial pages at the ends with storage, so a run costs the same
   * whatever its length. Runs are disjoint, so an implicit page or chunk is never touched by
   * another run. Summaries are not updated (see #rebuildSummaries).
   */
  #fillRun(a: number, b: number, allocated: boolean): void {
    let o = a;
    while (o <= b) {
      const c = o >>> CHUNK_SHIFT;
      if ((o & (CHUNK_IDS - 1)) === 0 && o + CHUNK_IDS - 1 <= b) {
        while (this.#chunks.length < c) this.#chunks.push(undefined);
        this.#chunks[c] = allocated ? FULL_CHUNK : RELEASED_CHUNK;
        o += CHUNK_IDS;
        continue;
      }
      const chunk = this.#chunks[c] ?? this.#newChunk(c);
      const p = (o >>> PAGE_SHIFT) & (PAGES_PER_CHUNK - 1);
      if ((o & ((1 << PAGE_SHIFT) - 1)) === 0 && o + (1 << PAGE_SHIFT) - 1 <= b) {
        chunk.slots[p] = allocated ? FULL_PAGE : RELEASED_PAGE;
        o += 1 << PAGE_SHIFT;
        continue;
      }
      const lo = o & 31;
      const wordStart = o - lo;
      const m = bitRange(lo, Math.min(b - wordStart, 31));
      let s = chunk.slots[p]!;
      if (s === UNTOUCHED) s = this.#newPage(chunk, p, false);
      const idx = ((s - 1) << WORD_SHIFT) + ((o >>> WORD_SHIFT) & 31);
      this.#ever[idx] = this.#ever[idx]! | m;
      if (allocated) this.#bits[idx] = this.#bits[idx]! | m;
      o = wordStart + 32;
    }
  }

  /** Recomputes every full-word, full-page and full-chunk summary from the bits. */
  #rebuildSummaries(): void {
    for (const chunk of this.#chunks) {
      if (chunk === undefined || chunk.shared) continue;
      chunk.pageFull.fill(0);
      chunk.fullMask = 0;
      for (let p = 0; p < PAGES_PER_CHUNK; p++) {
        const s = chunk.slots[p]!;
        let full = s === FULL_PAGE;
        if (s > 0) {
          const base = (s - 1) << WORD_SHIFT;
          let wf = 0;
          for (let wi = 0; wi < WORDS_PER_PAGE; wi++) if (this.#bits[base + wi] === -1) wf |= 1 << wi;
          this.#wordFull[s - 1] = wf;
          full = wf === -1;
        }
        if (full) chunk.pageFull[p >>> 5] = chunk.pageFull[p >>> 5]! | (1 << (p & 31));
      }
      for (let j = 0; j < PAGES_PER_CHUNK / 32; j++) if (chunk.pageFull[j] === -1) chunk.fullMask |= 1 << j;
    }
    this.#lowChunk = 0;
  }

  /** Records `owner` for the newly allocated `id`; #roomForOwned has checked the limits. */
  #setOwner(id: number, owner: string): void {
    const r = this.#intern(owner);
    const rec = this.#records[r]!;
    this.#setOwnerIndex(id - this.#first, r);
    rec.ids.add(id);
    if (rec.count++ === 0) this.#liveOwners++;
    this.#owned++;
  }

  /** The record index of `owner`, made (or reused) when it has none. */
  #intern(owner: string): number {
    if (this.#recordIndex === undefined) {
      this.#recordIndex = new Map();
      this.#ownerPages = new Map();
      this.#records = [undefined];
      this.#freeRecords = [];
    }
    const known = this.#recordIndex.get(owner);
    if (known !== undefined) return known;
    const r = this.#freeRecords.pop() ?? this.#records.length;
    this.#records[r] = { name: owner, count: 0, ids: new Set(), runs: [] };
    this.#recordIndex.set(owner, r);
    return r;
  }

  /** The record index and record of `owner` when it holds ids now. */
  #recordOf(owner: string): [number, OwnerRecord] | undefined {
    const r = this.#recordIndex?.get(owner);
    if (r === undefined) return undefined;
    const rec = this.#records[r]!;
    return rec.count === 0 ? undefined : [r, rec];
  }

  /** The record index owning offset `off`, 0 for none. */
  #ownerIndexAt(off: number): number {
    const e = this.#ownerPages?.get(off >>> OWNER_PAGE_SHIFT);
    if (e === undefined) return 0;
    return typeof e === "number" ? e : e[off & OWNER_PAGE_MASK]!;
  }

  #ownerName(off: number): string | undefined {
    const r = this.#ownerIndexAt(off);
    return r === 0 ? undefined : this.#records[r]!.name;
  }

  /** Sets the record index of offset `off` (0: no owner), giving its page storage when it needs it. */
  #setOwnerIndex(off: number, r: number): void {
    const pages = this.#ownerPages!;
    const p = off >>> OWNER_PAGE_SHIFT;
    let e = pages.get(p);
    if (e === undefined) {
      if (r === 0) return;
      e = new Int32Array(OWNER_PAGE);
      pages.set(p, e);
    } else if (typeof e === "number") {
      if (e === r) return;
      e = new Int32Array(OWNER_PAGE).fill(e);
      pages.set(p, e);
    }
    e[off & OWNER_PAGE_MASK] = r;
  }

  /** The ids of record `r` now, ascending: its one-by-one ids and what is left of its runs. */
  #idsOfRecord(rec: OwnerRecord, r: number): number[] {
    const single = sortedIds(rec.ids);
    if (rec.runs.length === 0) return single;
    // Exactly rec.count ids come out: filled by index, never grown.
    const out = new Array<number>(rec.count);
    let n = 0;
    let k = 0;
    const first = this.#first;
    const pages = this.#ownerPages!;
    for (const [x, y] of rec.runs) {
      // Page by page: a page that still has one owner is unchanged since the restore, so all of
      // its part of the run is r's and none of it is among the one-by-one ids.
      let id = x;
      while (id <= y) {
        const off = id - first;
        const p = off >>> OWNER_PAGE_SHIFT;
        const stop = Math.min(y, first + p * OWNER_PAGE + OWNER_PAGE_MASK);
        const e = pages.get(p);
        if (e === r) {
          while (k < single.length && single[k]! < id) out[n++] = single[k++]!;
          for (; id <= stop; id++) out[n++] = id;
        } else if (typeof e === "object") {
          for (; id <= stop; id++) {
            if (e[(id - first) & OWNER_PAGE_MASK] !== r || rec.ids.has(id)) continue;
            while (k < single.length && single[k]! < id) out[n++] = single[k++]!;
            out[n++] = id;
          }
        }
        id = stop + 1;
      }
    }
    while (k < single.length) out[n++] = single[k++]!;
    return out;
  }

  /** Drops the owner of the freed `id`, if it had one. */
  #dropOwner(id: number): void {
    const off = id - this.#first;
    const r = this.#ownerIndexAt(off);
    if (r === 0) return;
    this.#setOwnerIndex(off, 0);
    this.#owned--;
    const rec = this.#records[r]!;
    rec.ids.delete(id);
    if (--rec.count === 0) this.#retire(rec);
  }

  /*
   * A record that holds nothing stays indexed, empty, rather than being deleted: V8's Map slows to
   * microseconds per call when one key is deleted and set again over and over (measured: 1.35 µs
   * for a set/delete pair, 22 ns for a set/overwrite pair), which is exactly what plugging and
   * unplugging a device does to its owner name. The empty records are swept out once they
   * outnumber the live ones, so memory stays proportional to what is held.
   */
  #retire(rec: OwnerRecord): void {
    rec.count = 0;
    rec.ids.clear();
    rec.runs = [];
    this.#liveOwners--;
    const index = this.#recordIndex!;
    if (index.size > 2 * this.#liveOwners + 64) {
      const fresh = new Map<string, number>();
      for (const [name, r] of index) {
        if (this.#records[r]!.count > 0) fresh.set(name, r);
        else {
          this.#records[r] = undefined;
          this.#freeRecords.push(r);
        }
      }
      this.#recordIndex = fresh;
    }
  }

  /** Forgets every owner (when none holds an id any more). */
  #resetOwners(): void {
    this.#ownerPages = new Map();
    this.#records = [undefined];
    this.#recordIndex = new Map();
    this.#freeRecords = [];
    this.#owned = 0;
    this.#liveOwners = 0;
  }

  /**
   * Gives `owner` the ids of `runs` while restoring a validated snapshot (runs of different owners
   * are disjoint): a page a run covers whole gets one number, the others storage.
   */
  #restoreOwner(owner: string, runs: readonly IdRun[]): void {
    const r = this.#intern(owner);
    const rec = this.#records[r]!;
    const pages = this.#ownerPages!;
    const first = this.#first;
    let count = 0;
    for (const [x, y] of runs) {
      count += y - x + 1;
      let o = x - first;
      const end = y - first;
      while (o <= end) {
        const p = o >>> OWNER_PAGE_SHIFT;
        // Offsets reach 2^32-1: multiply, since a shift would wrap to a negative int32.
        const pageEnd = p * OWNER_PAGE + OWNER_PAGE_MASK;
        if ((o & OWNER_PAGE_MASK) === 0 && pageEnd <= end) {
          pages.set(p, r);
          o += OWNER_PAGE;
          continue;
        }
        const stop = Math.min(end, pageEnd);
        let e = pages.get(p);
        if (e === undefined) {
          e = new Int32Array(OWNER_PAGE);
          pages.set(p, e);
        }
        (e as Int32Array).fill(r, o & OWNER_PAGE_MASK, (stop & OWNER_PAGE_MASK) + 1);
        o = stop + 1;
      }
    }
    rec.runs = runs.map(([x, y]): IdRun => [x, y]);
    rec.count = count;
    this.#owned += count;
    this.#liveOwners++;
  }
}

/** The fields of the request form of {@link IdAllocator.allocate}. */
const ID_REQUEST_FIELDS: readonly string[] = Object.freeze(["fixed", "owner"]);

/**
 * The ids of `set` ascending. Sets of ids are usually in allocation order, which is ascending, so
 * that is checked first; otherwise they are sorted as numbers in a typed array, several times
 * faster than a comparator.
 */
function sortedIds(set: ReadonlySet<number>): number[] {
  const ids = Array.from(set);
  for (let i = 1; i < ids.length; i++) {
    if (ids[i - 1]! > ids[i]!) {
      const sorted = Float64Array.from(ids).sort();
      for (let k = 0; k < ids.length; k++) ids[k] = sorted[k]!;
      break;
    }
  }
  return ids;
}

function changedWhileIterating(): AllocatorError {
  return new AllocatorError("InvalidState", "the allocator changed while being iterated; iterate over a copy ([...ids.allocatedIds()]) to change it meanwhile");
}

// ---- snapshot validation ----

interface ParsedSnapshot {
  first: number;
  last: number;
  allocated: IdRun[];
  released: IdRun[];
  owners: [string, IdRun[]][];
}

function invalidSnapshot(what: string): AllocatorError {
  return new AllocatorError("InvalidSnapshot", `invalid id-allocator snapshot: ${what}`);
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function isU32(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff && !Object.is(value, -0);
}

/** Copies `value` into a real array, rejecting non-arrays and holes. */
function readArray(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw invalidSnapshot(`${name} must be an array, got ${show(value)}`);
  const out: unknown[] = [];
  const n: number = value.length;
  for (let i = 0; i < n; i++) {
    if (!(i in value)) throw invalidSnapshot(`${name}[${i}] is missing (sparse array)`);
    out.push(value[i]);
  }
  return out;
}

/** Parses ascending, disjoint, non-adjacent inclusive runs inside [first, last]. */
function readRuns(value: unknown, name: string, first: number, last: number): IdRun[] {
  const items = readArray(value, name);
  const runs: IdRun[] = [];
  let prev: IdRun | undefined;
  for (let i = 0; i < items.length; i++) {
    const at = `${name}[${i}]`;
    const pair = readArray(items[i], at);
    if (pair.length !== 2) throw invalidSnapshot(`${at} must be a [first, last] pair, got ${pair.length} elements`);
    const [a, b] = pair;
    for (const v of [a, b]) {
      if (!isU32(v)) throw invalidSnapshot(`${at}: ${show(v)} is not an id (an integer from 0 to 2^32-1)`);
    }
    const x = a as number;
    const y = b as number;
    if (x > y) throw invalidSnapshot(`${at}: run [${x}, ${y}] is reversed`);
    if (x < first || y > last) throw invalidSnapshot(`${at}: run [${x}, ${y}] is outside [${first}, ${last}]`);
    if (prev !== undefined) {
      if (x <= prev[1]) throw invalidSnapshot(`${at}: run [${x}, ${y}] overlaps or precedes the run before it [${prev[0]}, ${prev[1]}]`);
      if (x === prev[1] + 1) throw invalidSnapshot(`${at}: run [${x}, ${y}] is adjacent to the run before it [${prev[0]}, ${prev[1]}] (runs must be merged)`);
    }
    prev = [x, y];
    runs.push(prev);
  }
  return runs;
}

/** True when [x, y] lies inside one of the sorted disjoint `runs`. */
function insideRuns(runs: readonly IdRun[], x: number, y: number): boolean {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const r = runs[mid]!;
    if (r[1] < x) lo = mid + 1;
    else if (r[0] > x) hi = mid - 1;
    else return y <= r[1];
  }
  return false;
}

function parseSnapshot(x: unknown): ParsedSnapshot {
  if (typeof x !== "object" || x === null || Array.isArray(x)) {
    throw invalidSnapshot(`expected an object, got ${show(x)}`);
  }
  const record = x as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(SNAPSHOT_FIELDS as readonly string[]).includes(key)) throw invalidSnapshot(`unknown field ${JSON.stringify(key)}`);
  }
  const fields: Record<string, unknown> = {};
  for (const key of SNAPSHOT_FIELDS) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) throw invalidSnapshot(`missing field "${key}"`);
    fields[key] = record[key];
  }
  if (fields["format"] !== ID_ALLOCATOR_SNAPSHOT_FORMAT) {
    throw invalidSnapshot(`format must be "${ID_ALLOCATOR_SNAPSHOT_FORMAT}", got ${show(fields["format"])}`);
  }
  if (fields["version"] !== 1) throw invalidSnapshot(`unsupported version ${show(fields["version"])} (expected 1)`);
  const first = fields["first"];
  const last = fields["last"];
  if (!isU32(first)) throw invalidSnapshot(`first: ${show(first)} is not an id (an integer from 0 to 2^32-1)`);
  if (!isU32(last)) throw invalidSnapshot(`last: ${show(last)} is not an id (an integer from 0 to 2^32-1)`);
  if (first > last) throw invalidSnapshot(`first ${first} is above last ${last}`);

  const allocated = readRuns(fields["allocated"], "allocated", first, last);
  const released = readRuns(fields["released"], "released", first, last);
  // Both lists are sorted, so one merge pass finds any id in both.
  let k = 0;
  for (let i = 0; i < released.length; i++) {
    const [x, y] = released[i]!;
    while (k < allocated.length && allocated[k]![1] < x) k++;
    const r = allocated[k];
    if (r !== undefined && r[0] <= y) {
      throw invalidSnapshot(`released[${i}]: run [${x}, ${y}] overlaps allocated run [${r[0]}, ${r[1]}]`);
    }
  }

  const ownerItems = readArray(fields["owners"], "owners");
  const owners: [string, IdRun[]][] = [];
  const names = new Set<string>();
  const allOwned: { x: number; y: number; owner: string }[] = [];
  let prevLowest = -1;
  for (let i = 0; i < ownerItems.length; i++) {
    const at = `owners[${i}]`;
    const entry = readArray(ownerItems[i], at);
    if (entry.length !== 2) throw invalidSnapshot(`${at} must be an [owner, runs] pair, got ${entry.length} elements`);
    const [name, runsValue] = entry;
    if (typeof name !== "string" || name.length === 0) throw invalidSnapshot(`${at}: owner name must be a non-empty string, got ${show(name)}`);
    if (names.has(name)) throw invalidSnapshot(`${at}: owner ${JSON.stringify(name)} appears twice`);
    names.add(name);
    const runs = readRuns(runsValue, `${at}[1]`, first, last);
    if (runs.length === 0) throw invalidSnapshot(`${at}: owner ${JSON.stringify(name)} has no ids`);
    for (let r = 0; r < runs.length; r++) {
      const [x, y] = runs[r]!;
      if (!insideRuns(allocated, x, y)) {
        throw invalidSnapshot(`${at}[1][${r}]: owner ${JSON.stringify(name)} holds run [${x}, ${y}] which is not entirely allocated`);
      }
      allOwned.push({ x, y, owner: name });
    }
    const lowest = runs[0]![0];
    if (lowest <= prevLowest) throw invalidSnapshot(`${at}: owners must be ordered by their lowest id (${lowest} after ${prevLowest})`);
    prevLowest = lowest;
    owners.push([name, runs]);
  }
  allOwned.sort((p, q) => p.x - q.x);
  for (let i = 1; i < allOwned.length; i++) {
    const p = allOwned[i - 1]!;
    const q = allOwned[i]!;
    if (q.x <= p.y) {
      throw invalidSnapshot(`owners: id ${q.x} is held by both ${JSON.stringify(p.owner)} and ${JSON.stringify(q.owner)}`);
    }
  }
  return { first, last, allocated, released, owners };
}
