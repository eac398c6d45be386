/**
 * Allocation of ranges of an exact unsigned 64-bit address space.
 *
 * Each live allocation is one node of an AVL tree keyed by start address, and each node also
 * owns the free gap that follows it (up to the next allocation or the end of the pool); the gap
 * before the first allocation is kept apart. Free space therefore coalesces by construction, and
 * a node costs 53 bytes in typed arrays (plus 4 per alignment class), with no per-node object;
 * a node's start and child links share one 16-byte record so that a descent misses the cache
 * once per level.
 *
 * Every subtree records an upper bound of its largest gap (float32, rounded up; gap lengths are
 * also cached as numbers so most fit checks never touch a bigint), so FirstMatch and LastMatch
 * skip whole subtrees that
 * cannot hold a request instead of scanning in order (the O(n) step of rust-vmm's allocator).
 * Alignment is where such trees usually go approximate or slow: a gap can be long enough yet
 * hold no aligned start. So for every alignment in use that some gap start does not already
 * satisfy, the tree keeps a second annotation, the largest *usable* length at that alignment,
 * and the descent is exact and O(log n) for it too. Such an annotation is built in one O(n) pass
 * the first time its alignment is requested and then maintained on every update; at most
 * {@link MAX_ALIGNMENT_CLASSES} are kept, least recently used first out.
 *
 * Addresses are stored as `value - 2^63` in `BigInt64Array`s: signed order then equals
 * unsigned order, and V8 keeps `BigInt.asIntN(64, ...)` arithmetic on typed-array values in
 * machine registers, exact over 0..2^64-1. A bigint held in a variable or passed to another
 * method is a heap object, which is why the hot paths pass their bigints through the Q slots
 * and write some steps out inline.
 */
import { checkOwner, describeValue, readBounds, readFields } from "./arguments.js";
import { AllocatorError } from "./errors.js";
import { formatRange, RangeInclusive } from "./range.js";
import { AllocPolicy, type AddressRequest, type AddressWindow, type ResourceAllocator } from "./resource.js";
import { hex, parseHexU64, toU64, U64_MAX, type U64Input } from "./u64.js";

/** Options of one allocation besides size, alignment and policy. */
export interface AllocateOptions {
  /** Who will hold the range; conflicts name it, and `allocationsOf` / `releaseOwner` find it. */
  readonly owner?: string;
  /** The range must lie inside [min, max] (inclusive). */
  readonly window?: AddressWindow;
}

/** One live allocation as reported by queries. */
export interface Allocation {
  /** The allocated range, inclusive at both ends; its size in bytes (or ports) is `range.size`. */
  readonly range: RangeInclusive;
  /** The owner given at allocation, or `undefined` when the range was allocated without one. */
  readonly owner: string | undefined;
}

/** The plain-JSON snapshot of an {@link AddressAllocator}. */
export interface AddressAllocatorSnapshot {
  /** Always `"vm-allocator/address-allocator"`; restoring refuses any other value. */
  readonly format: typeof SNAPSHOT_FORMAT;
  /** The snapshot format version, 1; restoring refuses any other. */
  readonly version: typeof SNAPSHOT_VERSION;
  /** First address of the pool. */
  readonly base: string;
  /** Last address of the pool (inclusive), so the whole 2^64 space is representable. */
  readonly end: string;
  /** Segments tiling [base, end] in address order; free neighbours never touch. */
  readonly blocks: readonly SnapshotBlock[];
}

/** One segment of a snapshot. `owner` only on allocated blocks that have one. */
export interface SnapshotBlock {
  /** First address of the segment, as canonical lowercase hex (`"0x1000"`). */
  readonly start: string;
  /** Last address of the segment, inclusive, as canonical lowercase hex. */
  readonly end: string;
  /**
   * Whether the segment is free or held by one allocation (adjacent allocations are separate
   * blocks).
   */
  readonly state: "free" | "allocated";
  /**
   * The owner of an allocated segment; absent on free segments and on allocations made without an
   * owner.
   */
  readonly owner?: string;
}

const SNAPSHOT_FORMAT = "vm-allocator/address-allocator";
const SNAPSHOT_VERSION = 1;

/** Bias between u64 values and their stored int64 form. */
const MIN = -(1n << 63n);
const MAX = (1n << 63n) - 1n;
const TWO63 = 1n << 63n;
const NIL = 0;
/** Placement target meaning "the gap before the first allocation". */
const LEAD = -1;
/** `owner` of an allocation without owner; k > 0 indexes #ownerNames. */
const NO_OWNER = 0;
const INITIAL_CAPACITY = 8;
/** AVL height stays below 1.45 log2(2^31) < 48; the path stack is sized with margin. */
const MAX_DEPTH = 96;
/** How many entries a V8 Map or Set holds at most (adding one more throws a RangeError). */
const MAX_COLLECTION_SIZE = 1 << 24;
/** How many alignment annotations a tree keeps at most. */
export const MAX_ALIGNMENT_CLASSES = 8;

/*
 * Query scratch, shared by the search routines so the recursive calls carry one argument.
 * JavaScript runs one call at a time and the searches call nothing outside this module.
 */
let qLen = 0; // size as a number, saturated at 2^53: compared with the annotations
/*
 * The bigint query parameters live in a typed array rather than in variables: V8 keeps a bigint
 * read from or written to a BigInt64Array unboxed, while one kept in a variable is a heap object.
 * Slots: size - 1; lowest stored gap end that can hold the size; alignment - 1; -alignment (the
 * rounding-down mask); highest stored start that can be aligned up without passing 2^64-1; the
 * window's stored bounds; and the start found by the last successful search.
 */
const Q = new BigInt64Array(15);
const SIZE_M1 = 0;
const MIN_END = 1;
const ALIGN_M1 = 2;
const NEG_ALIGN = 3;
const MAX_START = 4;
const WIN_MIN = 5;
const WIN_MAX = 6;
const RESULT = 7;
const ARG_START = 8;
const ARG_END = 9;
/** Last address of the allocation #take just recorded. */
const LAST = 10;
/** The request's size and alignment modulo 2^64. */
const SIZE = 11;
const ALIGN = 12;
/** Stored form of the room above an ExactMatch address (2^64-1 - address). */
const ROOM = 13;
/** The argument of #floorPath. */
const FLOOR = 14;
let qAnn: Float32Array = new Float32Array(1); // the annotation that prunes this query
/** alignment - 1 when a gap can be judged on numbers alone (no window, small size and alignment), else -1. */
let qMask = -1;
/** Whether the current query has a window narrower than the pool. */
let qWindow = false;
/** The current query's window as the caller gave it, for messages. */
let qCallerMin = 0n;
let qCallerMax = 0n;
/** The address of the ExactMatch policy policyKind just read. */
let policyAddress: unknown;
/** Predecessor found by the last #locate. */
let qPrev = NIL;
/** Length of the root-to-node path the last #locate left in PATH (0 when no node starts there). */
let qDepth = 0;
/** Index in PATH of qPrev when it is an ancestor of the node #locate found, else -1. */
let qPrevIndex = -1;
/** Root-to-node path scratch of the iterative tree walks, shared for the same reason. */
const PATH = new Int32Array(MAX_DEPTH);
/** Scratch for #refreshRightSpine. */
const SPINE = new Int32Array(MAX_DEPTH);
/** Backtracking stack of the first-fit walk. */
const BACKTRACK = new Int32Array(MAX_DEPTH);
/** Whether the last #update changed its node's height or annotations (read by #retrace). */
let updateChanged = false;

const toStored = (u: bigint): bigint => u + MIN;
const fromStored = (b: bigint): bigint => b - MIN;

/** A maintained "largest usable gap at alignment 2^shift" annotation. */
interface AlignmentClass {
  readonly shift: number;
  /** alignment - 1 when the alignment is at most 2^31 (computed on 32-bit integers), else -1. */
  readonly mask: number;
  /** [alignment - 1, -alignment, highest stored start that can be aligned up], for the exact path. */
  readonly params: BigInt64Array<ArrayBuffer>;
  max: Float32Array<ArrayBuffer>;
  lastUse: number;
}

/**
 * Allocates ranges of [base, base + size - 1] with alignment and first-, last- or exact-match
 * placement, in O(log n) per operation for n live allocations (see the module comment for the
 * one-time cost of a new alignment).
 *
 * A call that throws an {@link AllocatorError} leaves the allocator exactly as it was.
 */
export class AddressAllocator implements ResourceAllocator<RangeInclusive, AddressRequest> {
  readonly #baseB: bigint;
  readonly #endB: bigint;

  /**
   * What a descent reads of a node sits in one 16-byte record, [start: i64 | left: i32 |
   * right: i32], viewed as #key (start at 2n) and #link (left at 4n+2, right at 4n+3): a lookup
   * in a large tree then misses the cache once per level instead of three times.
   */
  #nodes = new ArrayBuffer(INITIAL_CAPACITY * 16);
  #key = new BigInt64Array(this.#nodes);
  #link = new Int32Array(this.#nodes);
  #capacity = INITIAL_CAPACITY;
  #end = new BigInt64Array(INITIAL_CAPACITY);
  /** Last free address of the gap after each allocation; equal to #end when there is no gap. */
  #gapEnd = new BigInt64Array(INITIAL_CAPACITY);
  /** Gap length after each allocation as a number, saturated at 2^53; 0 when there is no gap. */
  #gapLen = new Float64Array(INITIAL_CAPACITY);
  /** Low 32 bits of each gap's first address, enough to compute alignment waste up to 2^31. */
  #gapLo = new Int32Array(INITIAL_CAPACITY);
  /**
   * Upper bound of the largest gap length in the subtree, in float32 (rounded up, see up32);
   * 0 when none. Pruning with an upper bound never skips a fit, and float32 halves the memory.
   */
  #maxGap = new Float32Array(INITIAL_CAPACITY);
  #height = new Uint8Array(INITIAL_CAPACITY);
  #owner = new Int32Array(INITIAL_CAPACITY);
  #root = NIL;
  /** Next never-used node slot; slot 0 is the NIL sentinel. */
  #nextSlot = 1;
  /** Head of the list of recycled node slots, chained through the left links. */
  #recycled = NIL;

  /** The gap before the first allocation is [base, #leadEndB] when #hasLead. */
  #hasLead = true;
  #leadEndB: bigint;

  #classes: AlignmentClass[] = [];
  #useClock = 0;
  /** How many gap starts (allocation ends + 1, and the base) have each count of trailing zeros. */
  #tzCount = new Int32Array(65);

  #allocationCount = 0;
  /** Counts changes, so that an iterator can tell that the tree moved under it. */
  #version = 0;
  /**
   * Allocated bytes modulo 2^64, kept in a typed array so updates stay unboxed; the only
   * ambiguous value, 0 with live allocations, means the whole 2^64 space.
   */
  #bytes = new BigInt64Array(1);

  #ownerNames: (string | undefined)[] = [undefined];
  #ownerIndex = new Map<string, number>();
  /** Node slots held by each owner, indexed like #ownerNames. */
  #ownerNodes: (Set<number> | undefined)[] = [undefined];
  #recycledOwners: number[] = [];
  /** Owners holding at least one allocation; the others in #ownerIndex are tombstones. */
  #liveOwners = 0;

  /**
   * Manages [base, base + size - 1]. `size` may be 2^64 when `base` is 0 (the whole space).
   * @throws AllocatorError `InvalidArgument` for malformed numbers, `InvalidSize` for size 0,
   *   `Overflow` when base + size - 1 passes 2^64 - 1.
   */
  constructor(base: U64Input, size: U64Input) {
    const b = toU64(base, "base");
    let s: bigint;
    // 2^64 is the one size above u64 that makes sense: the whole space from 0 (else Overflow below).
    if (typeof size === "bigint" && size === 1n << 64n) s = size;
    else s = toU64(size, "size");
    if (s === 0n) throw new AllocatorError("InvalidSize", "an address pool needs a size of at least 1");
    if (s - 1n > U64_MAX - b) {
      throw new AllocatorError("Overflow", `pool at ${hex(b)} of size ${hex(s)} would end past 0xffffffffffffffff`);
    }
    this.#baseB = toStored(b);
    this.#endB = toStored(b + s - 1n);
    this.#leadEndB = this.#endB;
    this.#tzCount[trailingZeros(this.#baseB)]!++;
  }

  /** First address of the pool. */
  get base(): bigint {
    return fromStored(this.#baseB);
  }

  /** Last address of the pool (inclusive). */
  get end(): bigint {
    return fromStored(this.#endB);
  }

  /** Number of addresses in the pool, from 1 to 2^64. */
  get size(): bigint {
    return this.#endB - this.#baseB + 1n;
  }

  /** The pool as a range. */
  get range(): RangeInclusive {
    return new RangeInclusive(this.base, this.end);
  }

  /** Number of live allocations. */
  get allocationCount(): number {
    return this.#allocationCount;
  }

  /** Total bytes held by live allocations. */
  get allocatedSize(): bigint {
    return this.#allocatedBytesExact();
  }

  /** Total free bytes. */
  get availableSize(): bigint {
    return this.size - this.#allocatedBytesExact();
  }

  #allocatedBytesExact(): bigint {
    const bytes = BigInt.asUintN(64, this.#bytes[0]!);
    return bytes === 0n && this.#allocationCount > 0 ? 1n << 64n : bytes;
  }

  /**
   * Allocates `size` bytes aligned to `alignment` (a power of two from 1 to 2^63) where
   * `policy` says. The request form `allocate({ size, alignment, policy, owner, window })`
   * is the {@link ResourceAllocator} interface.
   *
   * @throws AllocatorError `InvalidArgument`, `InvalidSize` (size 0), `InvalidAlignment`,
   *   `UnalignedAddress` (ExactMatch address not aligned), `Overflow` (ExactMatch range past
   *   2^64-1), `OutOfRange` (ExactMatch outside the pool or window), `Overlap` (ExactMatch on
   *   held space, naming its owner), `ResourceNotAvailable` (nothing fits), `InvalidRange`
   *   (window with min > max).
   */
  allocate(request: AddressRequest): RangeInclusive;
  allocate(size: U64Input, alignment?: U64Input, policy?: AllocPolicy, options?: AllocateOptions): RangeInclusive;
  allocate(
    sizeOrRequest: U64Input | AddressRequest,
    alignment?: U64Input,
    policy?: AllocPolicy,
    options?: AllocateOptions,
  ): RangeInclusive {
    if (typeof sizeOrRequest === "object" && sizeOrRequest !== null) {
      if (alignment !== undefined || policy !== undefined || options !== undefined) {
        throw new AllocatorError("InvalidArgument", "allocate(request) takes the request alone: put alignment, policy, owner and window in it");
      }
      const [size, align, pol, owner, window] = readFields(sizeOrRequest, "request", REQUEST_FIELDS);
      // Only a missing field takes the default: null is as invalid here as in the positional form.
      return this.#allocate(size, align === undefined ? 1n : align, pol === undefined ? AllocPolicy.FirstMatch : pol, owner, window, true);
    }
    let owner: unknown;
    let window: unknown;
    if (options !== undefined) [owner, window] = readFields(options, "options", OPTION_FIELDS);
    return this.#allocate(
      sizeOrRequest,
      alignment === undefined ? 1n : alignment,
      policy === undefined ? AllocPolicy.FirstMatch : policy,
      owner,
      window,
      false,
    );
  }

  /** `request` says whether the arguments came in a request object, for the names in messages. */
  #allocate(sizeIn: unknown, alignIn: unknown, policy: unknown, owner: unknown, window: unknown, request: boolean): RangeInclusive {
    const size = toU64(sizeIn, request ? "request.size" : "size");
    const align = toU64(alignIn, request ? "request.alignment" : "alignment");
    if (size === 0n) throw new AllocatorError("InvalidSize", "cannot allocate 0 bytes");
    // A power of two: non-zero with a single bit set (computed on 64 bits so it stays unboxed).
    if (align === 0n || BigInt.asIntN(64, align & BigInt.asIntN(64, align - 1n)) !== 0n || align > TWO63) {
      throw new AllocatorError("InvalidAlignment", `alignment ${hex(align)} is not a power of two from 0x1 to 0x8000000000000000`);
    }
    const kind = policyKind(policy, request ? "request.policy" : "policy");
    const ownerName = owner === undefined ? undefined : checkOwner(owner, request ? "request.owner" : "options.owner");
    let winMinB = this.#baseB;
    let winMaxB = this.#endB;
    if (window !== undefined) {
      const name = request ? "request.window" : "options.window";
      const [min, max] = readFields(window, name, WINDOW_FIELDS);
      const wMin = toU64(min, `${name}.min`);
      const wMax = toU64(max, `${name}.max`);
      if (wMin > wMax) throw new AllocatorError("InvalidRange", `window min ${hex(wMin)} is above window max ${hex(wMax)}`);
      qCallerMin = wMin;
      qCallerMax = wMax;
      if (toStored(wMin) > winMinB) winMinB = toStored(wMin);
      if (toStored(wMax) < winMaxB) winMaxB = toStored(wMax);
    }

    if (kind === "ExactMatch") {
      const address = toU64(policyAddress, request ? "request.policy.address" : "policy.address");
      return this.#allocateAt(address, size, align, winMinB, winMaxB, window !== undefined, ownerName);
    }

    // The derived parameters are computed from the typed-array copies (size and alignment taken
    // modulo 2^64, exact since every result fits in 64 bits): V8 then keeps the arithmetic on
    // machine integers instead of allocating a bigint per step.
    Q[SIZE] = size;
    Q[ALIGN] = align;
    Q[SIZE_M1] = BigInt.asIntN(64, Q[SIZE]! - 1n); // wrapped above 2^63: only used in wrapping arithmetic
    qLen = size >= 0x20000000000000n ? TWO53 : Number(size);
    Q[MIN_END] = BigInt.asIntN(64, Q[SIZE_M1]! - 0x7fffffffffffffffn - 1n);
    Q[ALIGN_M1] = BigInt.asIntN(64, Q[ALIGN]! - 1n);
    Q[NEG_ALIGN] = BigInt.asIntN(64, -Q[ALIGN]!);
    Q[MAX_START] = BigInt.asIntN(64, 0x7fffffffffffffffn - Q[ALIGN_M1]!);
    Q[WIN_MIN] = winMinB;
    Q[WIN_MAX] = winMaxB;
    qWindow = window !== undefined;
    // One conversion to a number serves the shift, the mask and the class lookup.
    const alignNumber = align <= 0x8000_0000n ? Number(align) : -1;
    qAnn = this.#annotationFor(align, alignNumber);
    qMask = alignNumber > 0 && size < 0x20000000000000n && window === undefined ? alignNumber - 1 : -1;
    let target = NIL;
    if (winMinB <= winMaxB) {
      if (kind === "FirstMatch") {
        if (this.#hasLead && fitsFirst(this.#baseB, this.#leadEndB)) target = LEAD;
        else target = this.#firstFit();
      } else {
        target = this.#lastFit();
        if (target === NIL && this.#hasLead && fitsLast(this.#baseB, this.#leadEndB)) target = LEAD;
      }
    }
    if (target === NIL) {
      // The caller's window, not its intersection with the pool (which may be empty).
      const where = window === undefined ? "" : ` inside ${this.#windowText(winMinB, winMaxB)}`;
      throw new AllocatorError(
        "ResourceNotAvailable",
        `no free space for ${hex(size)} bytes aligned to ${hex(align)} in ${this.#poolText()}${where}`,
      );
    }
    this.#take(target, size, ownerName);
    return new RangeInclusive(Q[RESULT]! - MIN, Q[LAST]! - MIN);
  }

  #allocateAt(
    address: bigint,
    size: bigint,
    align: bigint,
    winMinB: bigint,
    winMaxB: bigint,
    hasWindow: boolean,
    owner: string | undefined,
  ): RangeInclusive {
    // The checks run on the stored forms in the Q slots, as in the search path: V8 keeps that
    // arithmetic on machine integers instead of allocating a bigint per step (W5 runs this).
    Q[ARG_START] = BigInt.asIntN(64, address + MIN);
    Q[ALIGN_M1] = BigInt.asIntN(64, align - 1n);
    // The alignment divides 2^63, so the stored form has the address's low bits.
    if (BigInt.asIntN(64, Q[ARG_START]! & Q[ALIGN_M1]!) !== 0n) {
      throw new AllocatorError("UnalignedAddress", `address ${hex(address)} is not aligned to ${hex(align)}`);
    }
    // Overflow when size - 1 > 2^64-1 - address. Compared in stored form: that of 2^64-1 - address
    // is -1 - (the stored address), that of size - 1 is size - 1 - 2^63.
    Q[SIZE_M1] = BigInt.asIntN(64, size - 1n);
    Q[ROOM] = BigInt.asIntN(64, -1n - Q[ARG_START]!);
    Q[ARG_END] = BigInt.asIntN(64, Q[SIZE_M1]! + MIN);
    if (Q[ARG_END]! > Q[ROOM]!) {
      throw new AllocatorError("Overflow", `${hex(size)} bytes at ${hex(address)} would end past 0xffffffffffffffff`);
    }
    Q[ARG_END] = BigInt.asIntN(64, Q[ARG_START]! + Q[SIZE_M1]!);
    if (Q[ARG_START]! < this.#baseB || Q[ARG_END]! > this.#endB) {
      throw new AllocatorError("OutOfRange", `${formatRange(address, fromStored(Q[ARG_END]!))} is outside ${this.#poolText()}`);
    }
    if (hasWindow && (Q[ARG_START]! < winMinB || Q[ARG_END]! > winMaxB)) {
      throw new AllocatorError("OutOfRange", `${formatRange(address, fromStored(Q[ARG_END]!))} is outside ${this.#windowText(winMinB, winMaxB)}`);
    }
    Q[FLOOR] = Q[ARG_START]!;
    const p = this.#floorPath();
    let holder: number;
    if (p !== NIL && Q[ARG_START]! <= this.#end[p]!) {
      holder = p;
    } else {
      const gapEndB = p === NIL ? this.#leadEndB : this.#gapEnd[p]!;
      if (Q[ARG_END]! <= gapEndB) {
        Q[RESULT] = Q[ARG_START]!;
        this.#take(p === NIL ? LEAD : p, size, owner);
        return new RangeInclusive(address, Q[LAST]! - MIN);
      }
      Q[FLOOR] = BigInt.asIntN(64, gapEndB + 1n);
      holder = this.#floorPath();
    }
    const held = this.#ownerOfNode(holder);
    throw new AllocatorError(
      "Overlap",
      `${formatRange(address, fromStored(Q[ARG_END]!))} conflicts with ${held ?? "an allocation"} ${this.#rangeText(holder)}`,
      { owner: held },
    );
  }

  /**
   * Frees exactly a range that {@link allocate} returned.
   * @throws AllocatorError `OutOfRange` (outside the pool), `NeverAllocated` (free space: never
   *   allocated or already freed), `InvalidRange` (a part of an allocation, or a range spanning
   *   several), `InvalidArgument` (not a range).
   */
  free(range: RangeInclusive | { readonly start: U64Input; readonly end: U64Input }): void {
    this.#checkRange(range);
    this.#release(this.#liveAllocation());
  }

  /**
   * Frees every allocation of `owner` and returns their ranges in address order; empty for an
   * owner that holds nothing.
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string.
   */
  releaseOwner(owner: string): RangeInclusive[] {
    const index = this.#ownerIndex.get(checkOwner(owner));
    if (index === undefined || this.#ownerNodes[index]!.size === 0) return [];
    const held = this.#ownerNodes[index]!.size;
    // Removing k of n nodes one by one costs k log n rotations and refreshes; relinking the
    // survivors into a new balanced tree costs n. The latter wins from about k > n / 8.
    if (held * 8 > this.#allocationCount) return this.#releaseByRebuild(index);
    const nodes = this.#nodesOf(index);
    const ranges = nodes.map((n) => this.#rangeOf(n));
    for (const n of nodes) {
      Q[ARG_START] = this.#key[2 * n]!;
      this.#release(this.#locate());
    }
    return ranges;
  }

  /**
   * releaseOwner for an owner holding a large share of the allocations: one in-order pass drops
   * its nodes (recycling their slots, their gaps joining the gap before), then the surviving
   * nodes, which keep their slots (so other owners' indexes stay valid), are relinked into a
   * balanced tree and their annotations rebuilt bottom-up.
   */
  #releaseByRebuild(index: number): RangeInclusive[] {
    const released: RangeInclusive[] = [];
    const survivors: number[] = [];
    const owner = this.#owner;
    const key = this.#key;
    const end = this.#end;
    // The order is taken first, so links may be reused (recycling) during the pass.
    for (const n of this.#slotsInOrder()) {
      if (owner[n] !== index) {
        // The gap of the survivor before reaches up to this one.
        const prev = survivors[survivors.length - 1];
        if (prev !== undefined) this.#setGapEnd(prev, BigInt.asIntN(64, key[2 * n]! - 1n));
        survivors.push(n);
        continue;
      }
      released.push(this.#rangeOf(n));
      if (end[n]! < this.#endB) {
        const lo = this.#gapLo[n]!;
        this.#tzCount[lo !== 0 ? 31 - Math.clz32(lo & -lo) : trailingZeros(BigInt.asIntN(64, end[n]! + 1n))]!--;
      }
      this.#bytes[0] = BigInt.asIntN(64, this.#bytes[0]! - end[n]! + key[2 * n]! - 1n);
      this.#link[4 * n + 2] = this.#recycled;
      this.#recycled = n;
    }
    this.#allocationCount -= released.length;
    const lastSurvivor = survivors[survivors.length - 1];
    if (lastSurvivor !== undefined) this.#setGapEnd(lastSurvivor, this.#endB);
    const first = survivors[0];
    this.#hasLead = first === undefined || this.#key[2 * first]! > this.#baseB;
    this.#leadEndB = first === undefined ? this.#endB : BigInt.asIntN(64, this.#key[2 * first]! - 1n);
    const build = (lo: number, hi: number): number => {
      if (lo > hi) return NIL;
      const mid = (lo + hi) >>> 1;
      const n = survivors[mid]!;
      this.#link[4 * n + 2] = build(lo, mid - 1);
      this.#link[4 * n + 3] = build(mid + 1, hi);
      this.#update(n);
      return n;
    };
    this.#root = build(0, survivors.length - 1);
    this.#ownerNodes[index]!.clear();
    this.#liveOwners--;
    if (this.#ownerIndex.size > 2 * this.#liveOwners + 64) this.#sweepOwners();
    this.#version++;
    return released;
  }

  /**
   * The ranges held by `owner`, in address order (a new array).
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string.
   */
  allocationsOf(owner: string): RangeInclusive[] {
    const index = this.#ownerIndex.get(checkOwner(owner));
    if (index === undefined) return [];
    return this.#nodesOf(index).map((n) => this.#rangeOf(n));
  }

  /** The node slots of owner `index` in address order. */
  #nodesOf(index: number): number[] {
    const set = this.#ownerNodes[index]!;
    // A walk of the whole tree beats sorting with a comparator once the owner holds a good share.
    if (set.size * 8 > this.#allocationCount) {
      const owner = this.#owner;
      const out: number[] = [];
      for (const n of this.#slotsInOrder()) if (owner[n] === index) out.push(n);
      return out;
    }
    const nodes = [...set];
    const key = this.#key;
    nodes.sort((a, b) => (key[2 * a]! < key[2 * b]! ? -1 : 1));
    return nodes;
  }

  /** Owners that hold at least one allocation, in no particular order. */
  owners(): string[] {
    return [...this.#ownerIndex].filter(([, index]) => this.#ownerNodes[index]!.size > 0).map(([name]) => name);
  }

  /** The live allocation containing `address`, or undefined when the address is free or outside the pool. */
  find(address: U64Input): Allocation | undefined {
    const aB = toStored(toU64(address, "address"));
    if (aB < this.#baseB || aB > this.#endB) return undefined;
    Q[FLOOR] = aB;
    const n = this.#floorPath();
    if (n === NIL || aB > this.#end[n]!) return undefined;
    return { range: this.#rangeOf(n), owner: this.#ownerOfNode(n) };
  }

  /**
   * True when `range` is exactly a live allocation.
   * @throws AllocatorError `InvalidArgument` when `range` is not a range, `InvalidRange` when its
   *   start is above its end.
   */
  isAllocated(range: RangeInclusive | { readonly start: U64Input; readonly end: U64Input }): boolean {
    const [start, end] = readBounds(range, "range");
    const su = toU64(start, "range.start");
    const eu = toU64(end, "range.end");
    if (su > eu) throw new AllocatorError("InvalidRange", `invalid range: start ${hex(su)} is above end ${hex(eu)}`);
    const s = toStored(su);
    const e = toStored(eu);
    Q[FLOOR] = s;
    const n = this.#floorPath();
    return n !== NIL && this.#key[2 * n] === s && this.#end[n] === e;
  }

  /**
   * Live allocations in address order, read lazily. Changing the allocator while iterating makes
   * the next step throw `InvalidState` (iterate over a copy, `[...a.allocations()]`, to change it
   * meanwhile) rather than walk a tree that has moved under the iterator.
   */
  *allocations(): IterableIterator<Allocation> {
    for (const n of this.#inOrder(true)) yield { range: this.#rangeOf(n), owner: this.#ownerOfNode(n) };
  }

  /**
   * Free ranges in address order (maximal: free neighbours are always coalesced), read lazily;
   * changing the allocator meanwhile makes the next step throw `InvalidState`, as {@link allocations}.
   */
  *freeRanges(): IterableIterator<RangeInclusive> {
    const version = this.#version;
    if (this.#hasLead) yield new RangeInclusive(this.base, fromStored(this.#leadEndB));
    if (this.#version !== version) throw changedWhileIterating();
    for (const n of this.#inOrder(true)) {
      if (this.#gapEnd[n]! > this.#end[n]!) {
        yield new RangeInclusive(fromStored(this.#end[n]!) + 1n, fromStored(this.#gapEnd[n]!));
      }
    }
  }

  /** An independent copy with the same state. */
  clone(): AddressAllocator {
    return AddressAllocator.fromJSON(this.toJSON());
  }

  /** A plain JSON-safe snapshot (u64 values as `"0x..."` strings). */
  toJSON(): AddressAllocatorSnapshot {
    const blocks: SnapshotBlock[] = [];
    if (this.#hasLead) blocks.push({ start: hex(this.base), end: hex(fromStored(this.#leadEndB)), state: "free" });
    for (const n of this.#inOrder()) {
      const e = fromStored(this.#end[n]!);
      const start = hex(fromStored(this.#key[2 * n]!));
      const owner = this.#ownerOfNode(n);
      blocks.push(owner === undefined ? { start, end: hex(e), state: "allocated" } : { start, end: hex(e), state: "allocated", owner });
      const g = fromStored(this.#gapEnd[n]!);
      if (g > e) blocks.push({ start: hex(e + 1n), end: hex(g), state: "free" });
    }
    return { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, base: hex(this.base), end: hex(this.end), blocks };
  }

  /**
   * Rebuilds an allocator from {@link toJSON} output, validating everything: format, version,
   * bounds, order, coverage of the pool without gap or overlap, states, merged free
   * neighbours and owners.
   * @throws AllocatorError `InvalidSnapshot` naming the first problem; never a partial allocator.
   */
  static fromJSON(snapshot: unknown): AddressAllocator {
    try {
      return AddressAllocator.#restore(snapshot);
    } catch (error) {
      if (error instanceof AllocatorError && error.code === "InvalidSnapshot") throw error;
      // A getter or proxy in the input threw; the contract is still a single error type.
      const why = error instanceof Error ? error.message : "it threw";
      throw new AllocatorError("InvalidSnapshot", `invalid address allocator snapshot: could not be read (${why})`, { cause: error });
    }
  }

  static #restore(snapshot: unknown): AddressAllocator {
    const bad = (what: string): AllocatorError =>
      new AllocatorError("InvalidSnapshot", `invalid address allocator snapshot: ${what}`);
    if (typeof snapshot !== "object" || snapshot === null || Array.isArray(snapshot)) throw bad("not an object");
    const s = snapshot as Record<string, unknown>;
    checkKeys(s, ["format", "version", "base", "end", "blocks"], "", bad);
    if (s["format"] !== SNAPSHOT_FORMAT) throw bad(`format must be "${SNAPSHOT_FORMAT}"`);
    if (s["version"] !== SNAPSHOT_VERSION) throw bad(`unsupported version ${describeValue(s["version"])} (supported: 1)`);
    const base = parseHexU64(s["base"]);
    if (base === undefined) throw bad('base must be a hex string like "0x1000"');
    const end = parseHexU64(s["end"]);
    if (end === undefined) throw bad('end must be a hex string like "0xffff"');
    if (base > end) throw bad(`base ${hex(base)} is above end ${hex(end)}`);
    const blocks = s["blocks"];
    if (!Array.isArray(blocks)) throw bad("blocks must be an array");
    if (blocks.length === 0) throw bad("blocks is empty: the blocks must cover the pool");

    const starts: bigint[] = [];
    const ends: bigint[] = [];
    const gapEnds: bigint[] = [];
    const owners: (string | undefined)[] = [];
    let leadEnd: bigint | undefined;
    let expected = base;
    let previousFree = false;
    for (let i = 0; i < blocks.length; i++) {
      const block: unknown = blocks[i];
      const at = `blocks[${i}]`;
      if (typeof block !== "object" || block === null || Array.isArray(block)) throw bad(`${at} is not an object`);
      const b = block as Record<string, unknown>;
      checkKeys(b, ["start", "end", "state", "owner"], `${at}.`, bad);
      const bs = parseHexU64(b["start"]);
      const be = parseHexU64(b["end"]);
      if (bs === undefined) throw bad(`${at}.start must be a hex string`);
      if (be === undefined) throw bad(`${at}.end must be a hex string`);
      if (bs > be) throw bad(`${at} is reversed: start ${hex(bs)} is above end ${hex(be)}`);
      if (bs !== expected) {
        throw bad(
          bs > expected
            ? `${at} starts at ${hex(bs)}, leaving ${formatRange(expected, bs - 1n)} uncovered`
            : `${at} starts at ${hex(bs)}, overlapping the block before it (expected ${hex(expected)})`,
        );
      }
      if (be > end) throw bad(`${at} ends at ${hex(be)}, past the pool end ${hex(end)}`);
      const state = b["state"];
      if (state !== "free" && state !== "allocated") throw bad(`${at}.state must be "free" or "allocated"`);
      const owner = b["owner"];
      if (state === "free") {
        if (owner !== undefined) throw bad(`${at} is free but has an owner`);
        if (previousFree) throw bad(`${at} is free and follows a free block: free neighbours must be merged`);
        if (i === 0) leadEnd = be;
        else gapEnds[gapEnds.length - 1] = be;
      } else {
        if (owner !== undefined && (typeof owner !== "string" || owner.length === 0)) {
          throw bad(`${at}.owner must be a non-empty string`);
        }
        starts.push(bs);
        ends.push(be);
        gapEnds.push(be);
        owners.push(owner as string | undefined);
      }
      previousFree = state === "free";
      if (be === end) {
        if (i !== blocks.length - 1) throw bad(`${at} reaches the pool end but ${blocks.length - 1 - i} more block(s) follow`);
      } else {
        expected = be + 1n;
      }
      if (i === blocks.length - 1 && be !== end) throw bad(`blocks end at ${hex(be)}, leaving ${formatRange(be + 1n, end)} uncovered`);
    }
    const allocator = new AddressAllocator(base, end - base + 1n);
    allocator.#load(starts, ends, gapEnds, owners, leadEnd);
    return allocator;
  }

  /**
   * Verifies every internal invariant and throws an Error naming the first violation: search
   * order, AVL balance and heights, the gap annotations (plain and per alignment), allocations
   * and gaps tiling the pool, the running totals and the owner index.
   */
  checkValid(): void {
    const fail = (what: string): never => {
      throw new Error(`AddressAllocator invariant violated: ${what}`);
    };
    const check = (n: number, lo: bigint | undefined, hi: bigint | undefined, depth: number): number => {
      if (n === NIL) return 0;
      if (depth > MAX_DEPTH) fail("tree too deep (cycle?)");
      const s = this.#key[2 * n]!;
      if ((lo !== undefined && s <= lo) || (hi !== undefined && s >= hi)) fail(`node ${n} is out of search order`);
      const l = this.#link[4 * n + 2]!;
      const r = this.#link[4 * n + 3]!;
      const hl = check(l, lo, s, depth + 1);
      const hr = check(r, s, hi, depth + 1);
      if (Math.abs(hl - hr) > 1) fail(`node ${n} is unbalanced (${hl} vs ${hr})`);
      const h = 1 + Math.max(hl, hr);
      if (this.#height[n] !== h) fail(`node ${n} height ${this.#height[n]} should be ${h}`);
      const e = this.#end[n]!;
      const g = this.#gapEnd[n]!;
      if (this.#gapLen[n] !== lengthAsNumber(e, g)) fail(`node ${n} gap length is stale`);
      if (this.#gapLo[n] !== Number(BigInt.asIntN(32, e + 1n))) fail(`node ${n} gap start bits are stale`);
      const own = this.#gapLen[n]!;
      if (this.#maxGap[n] !== Math.fround(Math.max(up32(own), this.#maxGap[l]!, this.#maxGap[r]!))) {
        fail(`node ${n} largest-gap annotation is stale`);
      }
      for (const c of this.#classes) {
        const u = this.#classOwn(n, c);
        const expected = Math.fround(Math.max(u > 0 ? up32(u) : 0, c.max[l]!, c.max[r]!));
        if (c.max[n] !== expected) fail(`node ${n} annotation for alignment 2^${c.shift} is stale`);
        if (own > 0 && own < TWO53 && Math.max(u, 0) !== Number(usableLength(BigInt.asIntN(64, e + 1n), g, c.params))) {
          fail(`node ${n} usable length at alignment 2^${c.shift} is wrong`);
        }
      }
      return h;
    };
    check(this.#root, undefined, undefined, 0);
    for (const c of this.#classes) if (c.max[NIL] !== 0) fail("NIL annotation changed");
    if (this.#maxGap[NIL] !== 0 || this.#gapLen[NIL] !== 0 || this.#height[NIL] !== 0) fail("NIL sentinel changed");

    let count = 0;
    let bytes = 0n;
    let previousGapEnd: bigint | undefined;
    const tz = new Int32Array(65);
    tz[trailingZeros(this.#baseB)]!++;
    const seenOwners = new Map<number, number>();
    for (const n of this.#inOrder()) {
      const s = this.#key[2 * n]!;
      const e = this.#end[n]!;
      if (e < s) fail(`allocation at node ${n} is reversed`);
      if (e > this.#gapEnd[n]! || this.#gapEnd[n]! > this.#endB) fail(`gap of node ${n} is malformed`);
      if (previousGapEnd === undefined) {
        if (s < this.#baseB) fail("an allocation starts below the pool");
        if (this.#hasLead !== s > this.#baseB) fail("leading gap flag is wrong");
        if (this.#hasLead && this.#leadEndB !== BigInt.asIntN(64, s - 1n)) fail("leading gap end is wrong");
      } else if (BigInt.asIntN(64, previousGapEnd + 1n) !== s) {
        fail(`allocation at ${hex(fromStored(s))} does not follow the gap before it`);
      }
      previousGapEnd = this.#gapEnd[n]!;
      if (e < this.#endB) tz[trailingZeros(BigInt.asIntN(64, e + 1n))]!++;
      count++;
      bytes += e - s + 1n;
      const o = this.#owner[n]!;
      if (o !== NO_OWNER) {
        if (this.#ownerNames[o] === undefined || !this.#ownerNodes[o]!.has(n)) fail(`owner index misses node ${n}`);
        seenOwners.set(o, (seenOwners.get(o) ?? 0) + 1);
      }
    }
    if (previousGapEnd === undefined) {
      if (!this.#hasLead || this.#leadEndB !== this.#endB) fail("an empty pool must be one free gap");
    } else if (previousGapEnd !== this.#endB) {
      fail("the last gap does not reach the end of the pool");
    }
    for (let t = 0; t < 65; t++) if (tz[t] !== this.#tzCount[t]) fail(`gap-start alignment count for 2^${t} is stale`);
    if (count !== this.#allocationCount) fail(`allocation count ${this.#allocationCount} should be ${count}`);
    if (bytes !== this.#allocatedBytesExact()) fail(`allocated size ${this.#allocatedBytesExact()} should be ${bytes}`);
    let live = 0;
    for (const [name, index] of this.#ownerIndex) {
      if (this.#ownerNames[index] !== name) fail(`owner index of ${name} is stale`);
      const size = this.#ownerNodes[index]!.size;
      if ((seenOwners.get(index) ?? 0) !== size) fail(`owner ${name} has stale nodes`);
      if (size > 0) live++;
    }
    if (seenOwners.size !== live || live !== this.#liveOwners) fail("owner index has missing owners");
    if (this.#ownerIndex.size > 2 * this.#liveOwners + 64) fail("owner tombstones were not swept");
  }

  // ---- placement -------------------------------------------------------------------------

  /** The annotation that prunes queries at `align`: the plain one when every gap start is aligned. */
  #annotationFor(align: bigint, alignNumber: number): Float32Array {
    const shift = alignNumber > 0 ? 31 - Math.clz32(alignNumber) : bitLength(align) - 1;
    let misaligned = false;
    for (let t = 0; t < shift; t++) {
      if (this.#tzCount[t] !== 0) {
        misaligned = true;
        break;
      }
    }
    if (!misaligned) return this.#maxGap;
    this.#useClock++;
    for (const c of this.#classes) {
      if (c.shift === shift) {
        c.lastUse = this.#useClock;
        return c.max;
      }
    }
    if (this.#classes.length >= MAX_ALIGNMENT_CLASSES) {
      let oldest = 0;
      for (let i = 1; i < this.#classes.length; i++) if (this.#classes[i]!.lastUse < this.#classes[oldest]!.lastUse) oldest = i;
      this.#classes.splice(oldest, 1);
    }
    const alignM1 = align - 1n;
    const params = new BigInt64Array(3);
    params[0] = alignM1;
    params[1] = BigInt.asIntN(64, -align);
    params[2] = MAX - alignM1;
    const c: AlignmentClass = {
      shift,
      mask: shift <= 31 ? Number(alignM1) : -1,
      params,
      max: new Float32Array(this.#capacity),
      lastUse: this.#useClock,
    };
    this.#classes.push(c);
    this.#buildClass(this.#root, c);
    return c.max;
  }

  #buildClass(n: number, c: AlignmentClass): void {
    if (n === NIL) return;
    this.#buildClass(this.#link[4 * n + 2]!, c);
    this.#buildClass(this.#link[4 * n + 3]!, c);
    const u = this.#classOwn(n, c);
    c.max[n] = Math.max(u > 0 ? up32(u) : 0, c.max[this.#link[4 * n + 2]!]!, c.max[this.#link[4 * n + 3]!]!);
  }

  /**
   * Lowest gap that can hold the query: an in-order walk that skips every subtree whose
   * annotation is below the size. Sets Q[RESULT], and the path to the node in PATH[0 .. qDepth-1].
   * Iterative: BACKTRACK holds the path depths of the nodes whose left subtree is being searched.
   */
  #firstFit(): number {
    const ann = qAnn;
    const len = qLen;
    const key = this.#key;
    const link = this.#link;
    const gapEnd = this.#gapEnd;
    const path = PATH;
    const backtrack = BACKTRACK;
    let sp = 0;
    let depth = 0;
    let n = this.#root;
    for (;;) {
      while (n !== NIL && ann[n]! >= len) {
        path[depth++] = n;
        const l = link[4 * n + 2]!;
        // Without a window every key is inside it: a node with a left child starts above the
        // base, and only the last node, which has no right child, reaches the end.
        if (l !== NIL && ann[l]! >= len && (!qWindow || key[2 * n]! > Q[WIN_MIN]!)) {
          backtrack[sp++] = depth;
          n = l;
          continue;
        }
        if (this.#fitsFirstAt(n)) {
          qDepth = depth;
          return n;
        }
        n = !qWindow || gapEnd[n]! < Q[WIN_MAX]! ? link[4 * n + 3]! : NIL;
      }
      if (sp === 0) return NIL;
      depth = backtrack[--sp]!;
      n = path[depth - 1]!;
      if (this.#fitsFirstAt(n)) {
        qDepth = depth;
        return n;
      }
      n = !qWindow || gapEnd[n]! < Q[WIN_MAX]! ? link[4 * n + 3]! : NIL;
    }
  }

  /** Does the gap of node `n` hold the query at its lowest aligned start? Sets Q[RESULT]. */
  #fitsFirstAt(n: number): boolean {
    const own = this.#gapLen[n]!;
    if (own === 0) return false;
    if (qMask >= 0 && own < TWO53) {
      // Judged on numbers: the usable length after the alignment waste at the gap start.
      if (own - (-this.#gapLo[n]! & qMask) < qLen) return false;
      Q[RESULT] = BigInt.asIntN(64, (this.#end[n]! + 1n + Q[ALIGN_M1]!) & Q[NEG_ALIGN]!);
      return true;
    }
    return fitsFirst(BigInt.asIntN(64, this.#end[n]! + 1n), this.#gapEnd[n]!);
  }

  /** The mirror of #firstFit: the highest gap that can hold the query. */
  #lastFit(): number {
    const ann = qAnn;
    const len = qLen;
    const key = this.#key;
    const link = this.#link;
    const gapEnd = this.#gapEnd;
    const path = PATH;
    const backtrack = BACKTRACK;
    let sp = 0;
    let depth = 0;
    let n = this.#root;
    for (;;) {
      while (n !== NIL && ann[n]! >= len) {
        path[depth++] = n;
        const r = link[4 * n + 3]!;
        if (r !== NIL && ann[r]! >= len && (!qWindow || gapEnd[n]! < Q[WIN_MAX]!)) {
          backtrack[sp++] = depth;
          n = r;
          continue;
        }
        if (this.#fitsLastAt(n)) {
          qDepth = depth;
          return n;
        }
        n = !qWindow || key[2 * n]! > Q[WIN_MIN]! ? link[4 * n + 2]! : NIL;
      }
      if (sp === 0) return NIL;
      depth = backtrack[--sp]!;
      n = path[depth - 1]!;
      if (this.#fitsLastAt(n)) {
        qDepth = depth;
        return n;
      }
      n = key[2 * n]! > Q[WIN_MIN]! ? link[4 * n + 2]! : NIL;
    }
  }

  /** Does the gap of node `n` hold the query at its highest aligned start? Sets Q[RESULT]. */
  #fitsLastAt(n: number): boolean {
    const own = this.#gapLen[n]!;
    if (own === 0) return false;
    const g = this.#gapEnd[n]!;
    if (qMask >= 0 && own < TWO53) {
      // The highest aligned start is (gap end - size + 1) rounded down; it fits if the
      // rounding does not take it below the gap start.
      const slack = own - qLen;
      if (slack < 0 || slack < ((this.#gapLo[n]! + slack) & qMask)) return false;
      Q[RESULT] = BigInt.asIntN(64, (g - Q[SIZE_M1]!) & Q[NEG_ALIGN]!);
      return true;
    }
    return fitsLast(BigInt.asIntN(64, this.#end[n]! + 1n), g);
  }


  /** Records allocation [aB, lB] carved from the gap of `target` (a node, or LEAD). */
  /** `target` was found by a search that left the path to it in PATH[0 .. qDepth-1]. */
  #take(target: number, size: bigint, owner: string | undefined): void {
    // Written out inline, with inputs from Q: a bigint handed to another method is boxed on the
    // heap, and this runs once per allocation.
    // The only steps that can fail come first, before anything changes: room for a node, then
    // the owner's limits.
    if (this.#recycled === NIL && this.#nextSlot === this.#capacity) this.#grow();
    const ownerIndex = owner === undefined ? NO_OWNER : this.#ownerFor(owner);
    const aB = Q[RESULT]!;
    const lB = BigInt.asIntN(64, aB + Q[SIZE_M1]!);
    Q[LAST] = lB;
    let gapEnd: bigint;
    if (target === LEAD) {
      gapEnd = this.#leadEndB;
      if (aB === this.#baseB) this.#hasLead = false;
      else this.#leadEndB = BigInt.asIntN(64, aB - 1n);
    } else {
      // The new node becomes the in-order successor of `target`, so the insertion path runs
      // through `target` and its ancestors and refreshes their annotations.
      gapEnd = this.#gapEnd[target]!;
      const targetGapEnd = BigInt.asIntN(64, aB - 1n);
      this.#gapEnd[target] = targetGapEnd;
      const e = this.#end[target]!;
      const d = BigInt.asIntN(64, targetGapEnd - e);
      this.#gapLen[target] = targetGapEnd <= e ? 0 : d < 0n || d >= 0x20000000000000n ? TWO53 : Number(d);
    }
    const n = this.#slot();
    this.#key[2 * n] = aB;
    this.#end[n] = lB;
    this.#gapEnd[n] = gapEnd;
    const len = BigInt.asIntN(64, gapEnd - lB);
    this.#gapLen[n] = gapEnd <= lB ? 0 : len < 0n || len >= 0x20000000000000n ? TWO53 : Number(len);
    const lo = Number(BigInt.asIntN(32, lB + 1n));
    this.#gapLo[n] = lo;
    this.#owner[n] = ownerIndex;
    this.#link[4 * n + 2] = NIL;
    this.#link[4 * n + 3] = NIL;
    this.#update(n);
    this.#insertAfter(target, n);
    if (lB < this.#endB) this.#tzCount[lo !== 0 ? 31 - Math.clz32(lo & -lo) : trailingZeros(BigInt.asIntN(64, lB + 1n))]!++;
    if (ownerIndex !== NO_OWNER) this.#addOwned(ownerIndex, n);
    this.#allocationCount++;
    this.#version++;
    this.#bytes[0] = BigInt.asIntN(64, this.#bytes[0]! + size);
  }


  /** Frees allocation `node`; its space and its gap join the gap before it. */
  /** Frees allocation `node`, which the last #locate found (its predecessor is in qPrev). */
  #release(node: number): void {
    const prev = qPrev;
    const s = this.#key[2 * node]!;
    const e = this.#end[node]!;
    const o = this.#owner[node]!;
    if (e < this.#endB) {
      const lo = this.#gapLo[node]!;
      this.#tzCount[lo !== 0 ? 31 - Math.clz32(lo & -lo) : trailingZeros(BigInt.asIntN(64, e + 1n))]!--;
    }
    if (o !== NO_OWNER) this.#dropOwner(o, node);
    this.#allocationCount--;
    this.#version++;
    this.#bytes[0] = BigInt.asIntN(64, this.#bytes[0]! - e + s - 1n);
    // The freed space and its gap join the predecessor's gap (or the leading gap). The
    // predecessor is either an ancestor on the removal path, refreshed by the removal itself, or
    // the last node of the left subtree's right spine, refreshed here first.
    if (prev === NIL) {
      this.#hasLead = true;
      this.#leadEndB = this.#gapEnd[node]!;
    } else {
      const g = this.#gapEnd[node]!;
      this.#gapEnd[prev] = g;
      const len = BigInt.asIntN(64, g - this.#end[prev]!);
      this.#gapLen[prev] = len < 0n || len >= 0x20000000000000n ? TWO53 : Number(len);
      const l = this.#link[4 * node + 2]!;
      if (l !== NIL) this.#refreshRightSpine(l);
    }
    // Nothing at or below the replaced node, nor the predecessor when it is an ancestor, may
    // be skipped by the early stop of the retrace.
    this.#removeAt(qDepth, prev !== NIL && this.#link[4 * node + 2] === NIL ? qPrevIndex : qDepth - 1);
  }

  /** Recomputes the annotations of the right spine of subtree `n`, bottom-up. */
  #refreshRightSpine(n: number): void {
    const spine = SPINE;
    let depth = 0;
    while (n !== NIL) {
      spine[depth++] = n;
      n = this.#link[4 * n + 3]!;
    }
    // The bottom node's own gap changed; above it, stop once nothing changes any more.
    this.#update(spine[--depth]!);
    while (depth > 0 && updateChanged) this.#update(spine[--depth]!);
  }

  // ---- lookups -----------------------------------------------------------------------------

  /**
   * The allocation with the largest start <= Q[FLOOR] (a stored address), or NIL; also leaves
   * the root-to-node path in PATH[0 .. qDepth-1] for an insertion that follows.
   */
  #floorPath(): number {
    const aB = Q[FLOOR]!;
    const path = PATH;
    const key = this.#key;
    let n = this.#root;
    let best = NIL;
    let depth = 0;
    let bestDepth = 0;
    while (n !== NIL) {
      path[depth++] = n;
      if (key[2 * n]! <= aB) {
        best = n;
        bestDepth = depth;
        n = this.#link[4 * n + 3]!;
      } else {
        n = this.#link[4 * n + 2]!;
      }
    }
    qDepth = bestDepth;
    return best;
  }

  /**
   * Like #floorPath for Q[ARG_START], and also leaves in qPrev the allocation with the largest
   * start below it (the predecessor that a free merges into) and, when a node starts exactly
   * there, the root-to-node path in PATH[0 .. qDepth-1], all in the same descent.
   */
  #locate(): number {
    const aB = Q[ARG_START]!;
    const key = this.#key;
    const link = this.#link;
    const path = PATH;
    let n = this.#root;
    let best = NIL;
    let found = NIL;
    let prev = NIL;
    let prevIndex = -1;
    let depth = 0;
    while (n !== NIL) {
      const s = key[2 * n]!;
      if (found === NIL) path[depth++] = n;
      if (s < aB) {
        prev = n;
        if (found === NIL) {
          best = n;
          prevIndex = depth - 1;
        } else {
          prevIndex = -1;
        }
        n = link[4 * n + 3]!;
      } else if (s > aB) {
        n = link[4 * n + 2]!;
      } else {
        found = n;
        n = link[4 * n + 2]!;
      }
    }
    qPrev = prev;
    qPrevIndex = prevIndex;
    qDepth = found !== NIL ? depth : 0;
    return found !== NIL ? found : best;
  }

  /** Validates a range argument and leaves its stored bounds in Q[ARG_START] and Q[ARG_END]. */
  #checkRange(range: unknown): void {
    let start: bigint;
    let end: bigint;
    if (range instanceof RangeInclusive) {
      start = range.start;
      end = range.end;
    } else {
      const [s, e] = readBounds(range, "range");
      start = toU64(s, "range.start");
      end = toU64(e, "range.end");
    }
    if (start > end) throw new AllocatorError("InvalidRange", `invalid range: start ${hex(start)} is above end ${hex(end)}`);
    Q[ARG_START] = BigInt.asIntN(64, start + MIN);
    Q[ARG_END] = BigInt.asIntN(64, end + MIN);
    if (Q[ARG_START]! < this.#baseB || Q[ARG_END]! > this.#endB) {
      throw new AllocatorError("OutOfRange", `${formatRange(start, end)} is outside ${this.#poolText()}`);
    }
  }

  /** The node that is exactly the allocation [Q[ARG_START], Q[ARG_END]], or throws explaining why not. */
  #liveAllocation(): number {
    const n = this.#locate();
    if (n !== NIL && this.#key[2 * n] === Q[ARG_START] && this.#end[n] === Q[ARG_END]) return n;
    const startB = Q[ARG_START]!;
    const endB = Q[ARG_END]!;
    const text = formatRange(fromStored(startB), fromStored(endB));
    let holder = n;
    if (n === NIL || startB > this.#end[n]!) {
      const gapEndB = n === NIL ? this.#leadEndB : this.#gapEnd[n]!;
      if (endB <= gapEndB) {
        throw new AllocatorError("NeverAllocated", `${text} is not allocated (never allocated, or already freed)`);
      }
      Q[FLOOR] = BigInt.asIntN(64, gapEndB + 1n);
      holder = this.#floorPath();
    }
    const held = this.#ownerOfNode(holder);
    throw new AllocatorError(
      "InvalidRange",
      `${text} is not an allocation: it overlaps ${held ?? "the allocation"} ${this.#rangeText(holder)}; free takes exactly a range that allocate returned`,
      { owner: held },
    );
  }

  #rangeOf(n: number): RangeInclusive {
    return new RangeInclusive(fromStored(this.#key[2 * n]!), fromStored(this.#end[n]!));
  }

  #rangeText(n: number): string {
    return formatRange(fromStored(this.#key[2 * n]!), fromStored(this.#end[n]!));
  }

  #ownerOfNode(n: number): string | undefined {
    const o = this.#owner[n]!;
    return o > 0 ? this.#ownerNames[o] : undefined;
  }

  /** Sets the last free address of node `n`'s gap (and the cached length). */
  #setGapEnd(n: number, gapEndB: bigint): void {
    this.#gapEnd[n] = gapEndB;
    this.#gapLen[n] = lengthAsNumber(this.#end[n]!, gapEndB);
  }

  /** Every node slot in address order, as an array: cheaper than #inOrder for a whole pass. */
  #slotsInOrder(): number[] {
    const out: number[] = [];
    const stack = BACKTRACK;
    const link = this.#link;
    let sp = 0;
    let n = this.#root;
    while (n !== NIL || sp > 0) {
      while (n !== NIL) {
        stack[sp++] = n;
        n = link[4 * n + 2]!;
      }
      n = stack[--sp]!;
      out.push(n);
      n = link[4 * n + 3]!;
    }
    return out;
  }

  /** Node slots in address order; with `guard`, throws InvalidState once the tree has changed. */
  *#inOrder(guard = false): Generator<number> {
    const version = this.#version;
    const stack: number[] = [];
    let n = this.#root;
    while (n !== NIL || stack.length > 0) {
      while (n !== NIL) {
        stack.push(n);
        n = this.#link[4 * n + 2]!;
      }
      n = stack.pop()!;
      yield n;
      if (guard && this.#version !== version) throw changedWhileIterating();
      n = this.#link[4 * n + 3]!;
    }
  }

  /** The caller's window as given (its part inside the pool, [winMinB, winMaxB], may be empty). */
  #windowText(winMinB: bigint, winMaxB: bigint): string {
    return `window ${formatRange(qCallerMin, qCallerMax)}${winMinB > winMaxB ? ", which does not overlap the pool" : ""}`;
  }

  #poolText(): string {
    return `pool ${formatRange(fromStored(this.#baseB), fromStored(this.#endB))}`;
  }

  // ---- owners --------------------------------------------------------------------------------

  /**
   * The index of owner `name`, created when new. Checks, before changing anything, the limits of
   * the V8 collections behind the owner index (2^24 entries each), so that an allocation is refused
   * up front instead of failing half-way with a RangeError.
   */
  #ownerFor(name: string): number {
    let index = this.#ownerIndex.get(name);
    if (index !== undefined) {
      if (this.#ownerNodes[index]!.size >= MAX_COLLECTION_SIZE) {
        throw new AllocatorError("ResourceNotAvailable", `${name} already holds ${MAX_COLLECTION_SIZE} allocations, the most one owner can hold`, {
          owner: name,
        });
      }
      return index;
    }
    if (this.#ownerIndex.size >= MAX_COLLECTION_SIZE) {
      this.#sweepOwners();
      if (this.#ownerIndex.size >= MAX_COLLECTION_SIZE) {
        throw new AllocatorError("ResourceNotAvailable", `${MAX_COLLECTION_SIZE} owners hold allocations, the most an allocator can name`);
      }
    }
    index = this.#recycledOwners.pop() ?? this.#ownerNames.length;
    this.#ownerIndex.set(name, index);
    this.#ownerNames[index] = name;
    this.#ownerNodes[index] = new Set();
    return index;
  }

  #addOwned(index: number, node: number): void {
    const nodes = this.#ownerNodes[index]!;
    if (nodes.size === 0) this.#liveOwners++;
    nodes.add(node);
  }

  /*
   * An owner left with nothing stays in #ownerIndex as a tombstone instead of being deleted: V8's
   * Map slows to microseconds per call when one key is deleted and set again over and over
   * (measured here: 3.3 µs per allocate/free pair for a device replugged under the same owner,
   * 0.5 µs without owner). Tombstones are swept once they outnumber the live owners.
   */
  #dropOwner(index: number, node: number): void {
    const nodes = this.#ownerNodes[index]!;
    nodes.delete(node);
    if (nodes.size > 0) return;
    this.#liveOwners--;
    if (this.#ownerIndex.size <= 2 * this.#liveOwners + 64) return;
    this.#sweepOwners();
  }

  /** Drops the owners that hold nothing (tombstones) from #ownerIndex, recycling their indices. */
  #sweepOwners(): void {
    const live = new Map<string, number>();
    for (const [name, i] of this.#ownerIndex) {
      if (this.#ownerNodes[i]!.size > 0) {
        live.set(name, i);
      } else {
        this.#ownerNames[i] = undefined;
        this.#ownerNodes[i] = undefined;
        this.#recycledOwners.push(i);
      }
    }
    this.#ownerIndex = live;
  }

  // ---- the AVL tree --------------------------------------------------------------------------

  /** A free node slot: a recycled one, or the next never-used one (growing the arrays). */
  #slot(): number {
    let n = this.#recycled;
    if (n !== NIL) {
      this.#recycled = this.#link[4 * n + 2]!;
    } else {
      if (this.#nextSlot === this.#capacity) this.#grow();
      n = this.#nextSlot++;
    }
    return n;
  }

  #newNode(startB: bigint, endB: bigint, gapEndB: bigint, owner: number): number {
    const n = this.#slot();
    this.#key[2 * n] = startB;
    this.#end[n] = endB;
    this.#gapEnd[n] = gapEndB;
    this.#gapLen[n] = lengthAsNumber(endB, gapEndB);
    this.#gapLo[n] = Number(BigInt.asIntN(32, endB + 1n));
    this.#owner[n] = owner;
    this.#link[4 * n + 2] = NIL;
    this.#link[4 * n + 3] = NIL;
    this.#update(n);
    return n;
  }

  /**
   * Grows every per-node array by half. All new arrays are made before any replaces its old one,
   * so running out of memory leaves the allocator as it was.
   * @throws AllocatorError `ResourceNotAvailable` when memory runs out.
   */
  #grow(): void {
    const capacity = this.#capacity + (this.#capacity >> 1) + 8;
    let nodes: ArrayBuffer;
    let end: BigInt64Array<ArrayBuffer>;
    let gapEnd: BigInt64Array<ArrayBuffer>;
    let gapLen: Float64Array<ArrayBuffer>;
    let gapLo: Int32Array<ArrayBuffer>;
    let maxGap: Float32Array<ArrayBuffer>;
    let classMax: Float32Array<ArrayBuffer>[];
    let owner: Int32Array<ArrayBuffer>;
    let height: Uint8Array<ArrayBuffer>;
    try {
      nodes = new ArrayBuffer(capacity * 16);
      new Int32Array(nodes).set(this.#link);
      end = grow64(this.#end, capacity);
      gapEnd = grow64(this.#gapEnd, capacity);
      gapLen = new Float64Array(capacity);
      gapLen.set(this.#gapLen);
      gapLo = new Int32Array(capacity);
      gapLo.set(this.#gapLo);
      maxGap = grow32f(this.#maxGap, capacity);
      classMax = this.#classes.map((c) => grow32f(c.max, capacity));
      owner = new Int32Array(capacity);
      owner.set(this.#owner);
      height = new Uint8Array(capacity);
      height.set(this.#height);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new AllocatorError("ResourceNotAvailable", `cannot grow past ${this.#capacity - 1} allocations: out of memory (${error.message})`, {
        cause: error,
      });
    }
    this.#nodes = nodes;
    this.#key = new BigInt64Array(nodes);
    this.#link = new Int32Array(nodes);
    this.#capacity = capacity;
    this.#end = end;
    this.#gapEnd = gapEnd;
    this.#gapLen = gapLen;
    this.#gapLo = gapLo;
    this.#maxGap = maxGap;
    for (let i = 0; i < classMax.length; i++) this.#classes[i]!.max = classMax[i]!;
    this.#owner = owner;
    this.#height = height;
  }

  /**
   * Links `node` in as the in-order successor of `target` (the first node when `target` is LEAD),
   * continuing the root-to-target path in PATH[0 .. qDepth-1] instead of searching again, then
   * rebalances and refreshes the path bottom-up.
   */
  #insertAfter(target: number, node: number): void {
    const path = PATH;
    const link = this.#link;
    let depth: number;
    let n: number;
    if (target === LEAD) {
      n = this.#root;
      if (n === NIL) {
        this.#root = node;
        return;
      }
      depth = 0;
      path[depth++] = n;
      while (link[4 * n + 2] !== NIL) {
        n = link[4 * n + 2]!;
        path[depth++] = n;
      }
      link[4 * n + 2] = node;
    } else {
      depth = qDepth;
      const r = link[4 * target + 3]!;
      if (r === NIL) {
        link[4 * target + 3] = node;
      } else {
        n = r;
        path[depth++] = n;
        while (link[4 * n + 2] !== NIL) {
          n = link[4 * n + 2]!;
          path[depth++] = n;
        }
        link[4 * n + 2] = node;
      }
    }
    this.#retrace(depth, target === LEAD ? depth : qDepth - 1);
  }

  /**
   * Rebalances and refreshes PATH[0 .. depth-1] bottom-up after a structural change at its end.
   * Above index `dirty` (a node whose own gap changed) the walk stops at the first node whose
   * height and annotations come out unchanged without a rotation: nothing above can change.
   * (#rebalance ends in #update for the node when it does not rotate, which sets updateChanged.)
   */
  #retrace(depth: number, dirty: number): void {
    const path = PATH;
    const link = this.#link;
    for (let i = depth - 1; i >= 0; i--) {
      const p = path[i]!;
      const q = this.#rebalance(p);
      if (q !== p) {
        if (i === 0) this.#root = q;
        else {
          const parent = path[i - 1]!;
          if (link[4 * parent + 2] === p) link[4 * parent + 2] = q;
          else link[4 * parent + 3] = q;
        }
      } else if (!updateChanged && i < dirty) {
        return;
      }
    }
  }

  /**
   * Unlinks the node at the end of the root-to-node path PATH[0 .. depth-1] (as #locate left it),
   * then rebalances and refreshes the path bottom-up.
   */
  #removeAt(pathLength: number, dirty: number): void {
    const path = PATH;
    const link = this.#link;
    let depth = pathLength;
    const at = depth - 1;
    const n = path[at]!;
    const l = link[4 * n + 2]!;
    const r = link[4 * n + 3]!;
    let replacement: number;
    if (l === NIL || r === NIL) {
      replacement = l === NIL ? r : l;
      depth = at;
    } else {
      // Relink the successor in n's place instead of copying it, so the slots of live
      // allocations never change (the owner index refers to them).
      let m = r;
      path[depth++] = m;
      while (link[4 * m + 2] !== NIL) {
        m = link[4 * m + 2]!;
        path[depth++] = m;
      }
      depth--;
      if (m !== r) {
        link[4 * path[depth - 1]! + 2] = link[4 * m + 3]!;
        link[4 * m + 3] = r;
      }
      link[4 * m + 2] = l;
      path[at] = m;
      replacement = m;
    }
    if (at === 0) this.#root = replacement;
    else {
      const parent = path[at - 1]!;
      if (link[4 * parent + 2] === n) link[4 * parent + 2] = replacement;
      else link[4 * parent + 3] = replacement;
    }
    link[4 * n + 2] = this.#recycled;
    this.#recycled = n;
    this.#retrace(depth, dirty < at ? dirty : at);
  }

  /*
   * Hot: runs on every node of every insertion, removal and refresh path. Everything is written
   * inline on locals because a bigint that crosses a call boundary is boxed on the heap, while
   * one that stays inside a function lives in a register.
   */
  #update(n: number): void {
    const l = this.#link[4 * n + 2]!;
    const r = this.#link[4 * n + 3]!;
    const height = this.#height;
    const hl = height[l]!;
    const hr = height[r]!;
    const oldHeight = height[n];
    height[n] = (hl > hr ? hl : hr) + 1;
    const own = this.#gapLen[n]!;
    const maxGap = this.#maxGap;
    let m = maxGap[l]!;
    const mr = maxGap[r]!;
    if (mr > m) m = mr;
    const ownUp = own < FLOAT32_EXACT ? own : own * UP32;
    const oldMax = maxGap[n];
    maxGap[n] = ownUp > m ? ownUp : m;
    let changed = oldHeight !== height[n] || oldMax !== maxGap[n];
    const classes = this.#classes;
    if (classes.length === 0) {
      updateChanged = changed;
      return;
    }
    const lo = this.#gapLo[n]!;
    for (let i = 0; i < classes.length; i++) {
      const c = classes[i]!;
      const max = c.max;
      let cm = max[l]!;
      const cr = max[r]!;
      if (cr > cm) cm = cr;
      if (own !== 0) {
        const u = own >= TWO53 ? TWO53 : c.mask >= 0 ? own - (-lo & c.mask) : this.#classOwn(n, c);
        if (u > 0) {
          const uUp = u < FLOAT32_EXACT ? u : u * UP32;
          if (uUp > cm) cm = uUp;
        }
      }
      const old = max[n];
      max[n] = cm;
      if (!changed && old !== max[n]) changed = true;
    }
    updateChanged = changed;
  }

  /** Usable length of node `n`'s gap at the alignment of `c`, as #update computes it (may be <= 0). */
  #classOwn(n: number, c: AlignmentClass): number {
    const own = this.#gapLen[n]!;
    if (own === 0) return 0;
    if (own >= TWO53) return TWO53;
    if (c.mask >= 0) return own - (-this.#gapLo[n]! & c.mask);
    return Number(usableLength(BigInt.asIntN(64, this.#end[n]! + 1n), this.#gapEnd[n]!, c.params));
  }

  #rebalance(n: number): number {
    const link = this.#link;
    const height = this.#height;
    const balance = height[link[4 * n + 2]!]! - height[link[4 * n + 3]!]!;
    if (balance > 1) {
      const l = link[4 * n + 2]!;
      if (height[link[4 * l + 2]!]! < height[link[4 * l + 3]!]!) link[4 * n + 2] = this.#rotateLeft(l);
      return this.#rotateRight(n);
    }
    if (balance < -1) {
      const r = link[4 * n + 3]!;
      if (height[link[4 * r + 3]!]! < height[link[4 * r + 2]!]!) link[4 * n + 3] = this.#rotateRight(r);
      return this.#rotateLeft(n);
    }
    this.#update(n);
    return n;
  }

  #rotateRight(n: number): number {
    const l = this.#link[4 * n + 2]!;
    this.#link[4 * n + 2] = this.#link[4 * l + 3]!;
    this.#link[4 * l + 3] = n;
    this.#update(n);
    this.#update(l);
    return l;
  }

  #rotateLeft(n: number): number {
    const r = this.#link[4 * n + 3]!;
    this.#link[4 * n + 3] = this.#link[4 * r + 2]!;
    this.#link[4 * r + 2] = n;
    this.#update(n);
    this.#update(r);
    return r;
  }

  /** Fills a new, empty allocator with validated snapshot allocations (stored in address order). */
  #load(
    starts: readonly bigint[],
    ends: readonly bigint[],
    gapEnds: readonly bigint[],
    owners: readonly (string | undefined)[],
    leadEnd: bigint | undefined,
  ): void {
    const count = starts.length;
    while (this.#capacity < count + 1) this.#grow();
    this.#hasLead = leadEnd !== undefined;
    this.#leadEndB = leadEnd === undefined ? this.#endB : toStored(leadEnd);
    for (let i = 0; i < count; i++) {
      const owner = owners[i];
      const index = owner === undefined ? NO_OWNER : this.#ownerFor(owner);
      const endB = toStored(ends[i]!);
      const n = this.#newNode(toStored(starts[i]!), endB, toStored(gapEnds[i]!), index);
      if (index !== NO_OWNER) this.#addOwned(index, n);
      if (endB < this.#endB) this.#tzCount[trailingZeros(BigInt.asIntN(64, endB + 1n))]!++;
      this.#allocationCount++;
      this.#bytes[0] = BigInt.asIntN(64, this.#bytes[0]! + ends[i]! - starts[i]! + 1n);
    }
    // Slots 1..count hold the allocations in address order: link them into a balanced tree.
    const build = (lo: number, hi: number): number => {
      if (lo > hi) return NIL;
      const mid = (lo + hi) >>> 1;
      this.#link[4 * mid + 2] = build(lo, mid - 1);
      this.#link[4 * mid + 3] = build(mid + 1, hi);
      this.#update(mid);
      return mid;
    };
    this.#root = build(1, count);
  }
}

function changedWhileIterating(): AllocatorError {
  return new AllocatorError(
    "InvalidState",
    "the allocator changed while being iterated; iterate over a copy ([...allocator.allocations()]) to change it meanwhile",
  );
}

/** Does [g0, g1], clipped to the query window, hold the query at its lowest aligned start? */
function fitsFirst(g0: bigint, g1: bigint): boolean {
  const lo = g0 > Q[WIN_MIN]! ? g0 : Q[WIN_MIN]!;
  const hi = g1 < Q[WIN_MAX]! ? g1 : Q[WIN_MAX]!;
  if (hi < Q[MIN_END]! || lo > Q[MAX_START]!) return false;
  const x = BigInt.asIntN(64, (lo + Q[ALIGN_M1]!) & Q[NEG_ALIGN]!);
  if (x > BigInt.asIntN(64, hi - Q[SIZE_M1]!)) return false;
  Q[RESULT] = x;
  return true;
}

/** Does [g0, g1], clipped to the query window, hold the query at its highest aligned start? */
function fitsLast(g0: bigint, g1: bigint): boolean {
  const lo = g0 > Q[WIN_MIN]! ? g0 : Q[WIN_MIN]!;
  const hi = g1 < Q[WIN_MAX]! ? g1 : Q[WIN_MAX]!;
  if (hi < Q[MIN_END]!) return false;
  const x = BigInt.asIntN(64, BigInt.asIntN(64, hi - Q[SIZE_M1]!) & Q[NEG_ALIGN]!);
  if (x < lo) return false;
  Q[RESULT] = x;
  return true;
}

/** Length of [g0, g1] from its first start aligned by `params`, saturated at 2^63-1; 0 if none. */
function usableLength(g0: bigint, g1: bigint, params: BigInt64Array): bigint {
  if (g0 > params[2]!) return 0n;
  const x = BigInt.asIntN(64, (g0 + params[0]!) & params[1]!);
  return x > g1 ? 0n : gapLength(x, g1);
}

/** Trailing zero bits of the u64 whose stored form is `b` (64 for 0). */
function trailingZeros(b: bigint): number {
  const lo = Number(BigInt.asUintN(32, b));
  if (lo !== 0) return 31 - Math.clz32(lo & -lo);
  const hi = Number(BigInt.asUintN(32, b >> 32n)) ^ 0x8000_0000;
  if (hi !== 0) return 63 - Math.clz32(hi & -hi);
  return 64;
}

/** Number of bits of a power of two up to 2^63, i.e. log2 + 1. */
function bitLength(v: bigint): number {
  if (v <= 0x20000000000000n) return Math.log2(Number(v)) + 1;
  let bits = 54;
  while (v >> BigInt(bits) !== 0n) bits++;
  return bits;
}

function grow64(a: BigInt64Array<ArrayBuffer>, capacity: number): BigInt64Array<ArrayBuffer> {
  const b = new BigInt64Array(capacity);
  b.set(a);
  return b;
}

const TWO53 = 2 ** 53;
/** Integers below 2^24 are exact in float32. */
const FLOAT32_EXACT = 2 ** 24;
/** Scaling above 1 + 2^-22, so that a value rounded to the nearest float32 is still >= the original. */
const UP32 = 1.0000003;

/** An upper bound of `x` that stays an upper bound when stored in a Float32Array. */
function up32(x: number): number {
  return x < FLOAT32_EXACT ? x : x * UP32;
}

/** Length of the gap after an allocation ending at `eB` up to `gB` (stored forms), saturated at 2^53; 0 if none. */
function lengthAsNumber(eB: bigint, gB: bigint): number {
  if (gB <= eB) return 0;
  const d = BigInt.asIntN(64, gB - eB);
  return d < 0n || d >= 0x20000000000000n ? TWO53 : Number(d);
}

function grow32f(a: Float32Array<ArrayBuffer>, capacity: number): Float32Array<ArrayBuffer> {
  const b = new Float32Array(capacity);
  b.set(a);
  return b;
}

/** Length of [g0, g1] (stored form) saturated at 2^63-1. */
function gapLength(g0: bigint, g1: bigint): bigint {
  const len = g1 - g0 + 1n;
  return len > MAX ? MAX : len;
}

/**
 * The kind of `policy`; for ExactMatch also leaves its address in `policyAddress`. The frozen
 * AllocPolicy constants are recognised by identity; anything else is read once, field by field.
 */
function policyKind(policy: unknown, name: string): AllocPolicy["kind"] {
  if (policy === AllocPolicy.FirstMatch) return "FirstMatch";
  if (policy === AllocPolicy.LastMatch) return "LastMatch";
  if (typeof policy === "object" && policy !== null) {
    let kind: unknown;
    try {
      kind = (policy as { kind?: unknown }).kind;
      if (kind === "ExactMatch") policyAddress = (policy as { address?: unknown }).address;
    } catch (error) {
      throw new AllocatorError("InvalidArgument", `${name} could not be read (${error instanceof Error ? error.message : "it threw"})`, { cause: error });
    }
    if (kind === "FirstMatch" || kind === "LastMatch" || kind === "ExactMatch") return kind;
  }
  throw new AllocatorError(
    "InvalidArgument",
    `${name} must be AllocPolicy.FirstMatch, AllocPolicy.LastMatch or AllocPolicy.ExactMatch(address), got ${describeValue(policy)}`,
  );
}

/** The fields of the request form of `allocate`, in the order #allocate takes them. */
const REQUEST_FIELDS: readonly string[] = Object.freeze(["size", "alignment", "policy", "owner", "window"]);
const OPTION_FIELDS: readonly string[] = Object.freeze(["owner", "window"]);
const WINDOW_FIELDS: readonly string[] = Object.freeze(["min", "max"]);

function checkKeys(
  object: Record<string, unknown>,
  allowed: readonly string[],
  prefix: string,
  bad: (what: string) => AllocatorError,
): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw bad(`unknown field ${prefix}${key}`);
  }
}


