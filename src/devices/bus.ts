/**
 * A bus maps disjoint address ranges to devices and dispatches guest accesses to them: one
 * instance serves port I/O (`"io"`), another memory-mapped I/O (`"mem"`).
 *
 * Three structures, one truth:
 *
 * - the exact index ({@link RangeIndex}): routes sorted by address, binary search over typed
 *   arrays, for every address in 0..2^64-1; it decides overlaps, lookups and everything the fast
 *   tables cannot;
 * - a fast table per kind: a direct 64 Ki-entry port table ({@link PortTable}) for I/O, a
 *   page-granular map below 2^53 ({@link MmioPageMap}) for MMIO. A table holds candidate routes;
 *   `route.lo <= address && address + width - 1 <= route.hi` proves a hit, so a table load and two
 *   compares dispatch most accesses, and everything else takes the exact path;
 * - the routes ({@link Route}): a mapping with its device's functions resolved once at insert
 *   (own width methods, or adapters, see {@link adaptDevice}).
 *
 * Every insert, removal and move updates the index first and then the table from it, and
 * {@link Bus.checkValid} proves them equal.
 *
 * Guest-proof: no address, length or access pattern makes a dispatch throw. An access that is
 * malformed (length 0), runs past its mapping's end, straddles two mappings, or has a width the
 * device cannot serve is served as unmapped (reads all-ones, writes dropped), counted in
 * {@link Bus.rejectedReads}/{@link Bus.rejectedWrites} apart from plain unmapped accesses, and
 * reported to {@link Bus.onUnmapped} with its reason. Only arguments that no guest can produce
 * (an address that is not a u64, data that is not a `Uint8Array`) are `InvalidArgument`.
 */
import type { Device } from "./device.js";
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import { hex, toU64, U64_MAX, type U64Input } from "../core/u64.js";
import { ChangeFeed, type BusChange, type BusChangeListener } from "./change-feed.js";
import { MmioPageMap } from "./mmio-page-map.js";
import { PortTable } from "./port-table.js";
import { ARG, HI, key, LO, RangeIndex, SEARCH, SEARCH_U32 } from "./range-index.js";
import { Route } from "./route.js";
import { offsetBigint, piecesFit, readPieces, writePieces } from "./width-adapter.js";

/** Which address space a bus serves, as printed in messages: `[io 0x3f8-0x3ff]`, `[mem ...]`. */
export type BusKind = "io" | "mem";

/**
 * One mapping: `device` answers every address in `range`.
 * @typeParam D what is mapped, as in {@link Bus}.
 */
export interface BusMapping<D = Device> {
  /**
   * The addresses the device answers, inclusive at both ends (ports on an `"io"` bus,
   * guest-physical addresses on a `"mem"` bus).
   */
  readonly range: RangeInclusive;
  /** The device accesses in `range` are dispatched to, with offsets relative to `range.start`. */
  readonly device: D;
  /** Who holds the mapping; conflict messages name it. */
  readonly owner: string;
}

/**
 * A mapping found by {@link Bus.lookup}, with the address's distance from the range start.
 * @typeParam D what is mapped, as in {@link Bus}.
 */
export interface BusLookupResult<D = Device> extends BusMapping<D> {
  /** The looked-up address minus `range.start`: the offset the device would be called with. */
  readonly offset: bigint;
}

/**
 * Why an access was served as unmapped:
 * - `"unmapped"`: its first byte hits no mapping (counted in `unmappedReads`/`unmappedWrites`);
 * - `"past-end"`: it starts in a mapping and runs past its end into unmapped space (or past
 *   2^64-1);
 * - `"straddle"`: it starts in one mapping and ends in another;
 * - `"empty"`: it has length 0;
 * - `"unsupported"`: its device has no method for its width (see {@link Device}).
 *
 * All but `"unmapped"` are counted in `rejectedReads`/`rejectedWrites`.
 */
export type UnmappedReason = "unmapped" | "past-end" | "straddle" | "empty" | "unsupported";

/** An access served as unmapped, as reported to {@link Bus.onUnmapped}. */
export interface UnmappedAccess {
  /** Whether the guest read or wrote. */
  readonly kind: "read" | "write";
  /** The first address of the access, a u64 (port or guest-physical address, as the bus serves). */
  readonly address: bigint;
  /**
   * The bytes of the access. For a read, already filled with 0xff; the hook may overwrite it and
   * the read returns what it holds. For a width access (`read32`...), a buffer of that width.
   */
  readonly data: Uint8Array;
  /** Why the access was served as unmapped. */
  readonly reason: UnmappedReason;
  /** For every reason but `"unmapped"` and `"empty"`: the owner of the mapping the access starts in. */
  readonly owner?: string;
}

/** Called after an unmapped access has been counted (and, for a read, filled with 0xff). */
export type UnmappedHook = (access: UnmappedAccess) => void;

/** A device's exception caught by the bus, as reported to {@link Bus.onDeviceError}. */
export interface DeviceErrorReport {
  /** Whether the guest read or wrote. */
  readonly kind: "read" | "write";
  /** The first address of the access, a u64 (port or guest-physical address, as the bus serves). */
  readonly address: bigint;
  /** Bytes of the access. */
  readonly length: number;
  /** Owner of the mapping whose device threw. */
  readonly owner: string;
  /** What the device threw, unchanged. */
  readonly error: unknown;
}

/**
 * Contains a device's exception: called instead of letting it reach the caller of the access,
 * which then completes as unmapped (reads all-ones, writes dropped). What the hook throws reaches
 * the caller.
 */
export type DeviceErrorHook = (report: DeviceErrorReport) => void;

export type { BusChange, BusChangeListener };

/** Options of a {@link Bus}. */
export interface BusOptions {
  /**
   * Initial value of {@link Bus.onUnmapped}, called for every access served as unmapped; absent
   * means no hook.
   */
  readonly onUnmapped?: UnmappedHook;
  /**
   * Initial value of {@link Bus.onDeviceError}; when absent, a device's exception reaches the
   * caller of the access.
   */
  readonly onDeviceError?: DeviceErrorHook;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;
const UNNAMED = "<unnamed>";
/** A bigint address, viewed as a u64 over the search-key words. */
const SEARCH_U64 = new BigUint64Array(SEARCH.buffer, 0, 1);

function describeOwner(device: unknown): string {
  const name = typeof device === "object" && device !== null ? (device as { name?: unknown }).name : undefined;
  return typeof name === "string" && name.length > 0 ? name : UNNAMED;
}

function invalidAddress(address: unknown): AllocatorError {
  try {
    toU64(address, "address");
  } catch (e) {
    return e as AllocatorError;
  }
  return new AllocatorError("InvalidArgument", "address must be an integer from 0 to 2^53-1 for a number accessor");
}

/** A half of a split address: a u32, or a signed int32 read as its two's-complement u32. */
function half(value: number, name: string): number {
  if ((value >>> 0) === value) return value;
  if ((value | 0) === value) return value >>> 0;
  throw new AllocatorError("InvalidArgument", `${name} must be an integer from 0 to 2^32-1 (or a signed 32-bit integer), got ${String(value)}`);
}

/** What an unmapped read of `width` bytes returns: all ones (-1 for 32 bits, see {@link Bus.read32}). */
function allOnes(width: number): number {
  return width === 4 ? -1 : width === 2 ? 0xffff : 0xff;
}

/** The u64 whose halves are the int32s `hi` and `lo`. */
function joinHalves(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** Little-endian value of the first `width` bytes of `data`, as a number access returns it. */
function valueOf(data: Uint8Array, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + data[i]!;
  return width === 4 ? v | 0 : v;
}

/**
 * Disjoint address ranges mapped to devices, with O(1) port dispatch, near-O(1) MMIO dispatch
 * and O(log n) everything else.
 *
 * Every method is synchronous. A device (or a hook) may change the bus while an access is being
 * dispatched to it: the target was resolved before the call, so the change applies to later
 * accesses, and the bus touches none of its structures after calling out.
 *
 * A device's own exception propagates to the caller of the access unchanged, with the bus as it
 * was (no counter moves), unless {@link onDeviceError} is set: then it is caught, counted in
 * {@link deviceErrors}, reported to that hook, and the access completes as unmapped.
 *
 * @example
 * ```ts
 * const bus = new Bus("io");
 * bus.insert(new RangeInclusive(0x70, 0x71), { name: "cmos", read8: (offset: number) => (offset === 1 ? 0x20 : 0) });
 * bus.read8(0x71); // 0x20
 * bus.read8(0x72); // 0xff: unmapped
 * bus.read16(0x71); // 0xffff: runs past the end of cmos, counted in rejectedReads
 * ```
 *
 * @typeParam D what is mapped; dispatch needs a {@link Device}.
 */
export class Bus<D = Device> {
  /** The address space served, used in messages. */
  readonly kind: BusKind;
  /** Called for every access served as unmapped. Errors it throws reach the caller of the access. */
  onUnmapped: UnmappedHook | undefined;
  /** When set, contains exceptions thrown by devices (see the class documentation). */
  onDeviceError: DeviceErrorHook | undefined;

  readonly #index = new RangeIndex<D>();
  readonly #ports: PortTable<D> | null;
  readonly #pages: MmioPageMap<D> | null;
  /** Where the tables hold nothing. */
  readonly #unmapped = Route.marker<D>("unmapped");
  /** What the fast lookup returns for an address it does not cover: ask the index. */
  readonly #miss = Route.marker<D>("miss");
  #unmappedReads = 0;
  #unmappedWrites = 0;
  #rejectedReads = 0;
  #rejectedWrites = 0;
  #deviceErrors = 0;
  #hasLast = false;
  #lastHi = 0;
  #lastLo = 0;
  readonly #feed = new ChangeFeed<D>();

  /**
   * @param kind `"io"` for port I/O, `"mem"` for MMIO.
   * @throws AllocatorError `InvalidArgument` for another kind or a hook that is not a function.
   */
  constructor(kind: BusKind, options: BusOptions = {}) {
    if (kind !== "io" && kind !== "mem") throw new AllocatorError("InvalidArgument", `kind must be "io" or "mem", got ${String(kind)}`);
    for (const name of ["onUnmapped", "onDeviceError"] as const) {
      const hook: unknown = options[name];
      if (hook !== undefined && typeof hook !== "function") throw new AllocatorError("InvalidArgument", `options.${name} must be a function`);
    }
    this.kind = kind;
    this.onUnmapped = options.onUnmapped;
    this.onDeviceError = options.onDeviceError;
    this.#ports = kind === "io" ? new PortTable(this.#unmapped) : null;
    this.#pages = kind === "mem" ? new MmioPageMap(this.#unmapped, this.#miss) : null;
  }

  /** Number of mappings. */
  get size(): number {
    return this.#index.size;
  }

  /** Reads whose first byte hit no mapping since creation or the last {@link resetUnmappedCounters}. */
  get unmappedReads(): number {
    return this.#unmappedReads;
  }

  /** Writes whose first byte hit no mapping (and were dropped) since creation or the last reset. */
  get unmappedWrites(): number {
    return this.#unmappedWrites;
  }

  /** Reads served as unmapped for another {@link UnmappedReason} (past the end, straddling, empty, unsupported width). */
  get rejectedReads(): number {
    return this.#rejectedReads;
  }

  /** Writes dropped for another {@link UnmappedReason} than `"unmapped"`. */
  get rejectedWrites(): number {
    return this.#rejectedWrites;
  }

  /** Device exceptions contained by {@link onDeviceError} since creation or the last reset. */
  get deviceErrors(): number {
    return this.#deviceErrors;
  }

  /** Address of the most recent access served as unmapped (any reason), or undefined if none since the last reset. */
  get lastUnmappedAddress(): bigint | undefined {
    return this.#hasLast ? joinHalves(this.#lastHi, this.#lastLo) : undefined;
  }

  /** Sets every access counter to 0 and forgets the last unmapped address. */
  resetUnmappedCounters(): void {
    this.#unmappedReads = 0;
    this.#unmappedWrites = 0;
    this.#rejectedReads = 0;
    this.#rejectedWrites = 0;
    this.#deviceErrors = 0;
    this.#hasLast = false;
  }

  // ---------------------------------------------------------------------------------------------
  // The map: insert, remove, move, queries, change feed.

  /**
   * Maps `device` at `range`.
   * @param owner who holds the mapping; defaults to `device.name` when it is a non-empty string.
   * @returns the new mapping.
   * @throws AllocatorError `Overlap` when `range` shares an address with a mapping (the message
   *   names its owner and both ranges; `error.owner` is that owner), `InvalidArgument` for a bad
   *   range, device or owner.
   */
  insert(range: RangeInclusive, device: D, owner?: string): BusMapping<D> {
    if (!(range instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", "range must be a RangeInclusive");
    if (device === undefined || device === null) throw new AllocatorError("InvalidArgument", "device must not be null or undefined");
    if (owner !== undefined && (typeof owner !== "string" || owner.length === 0)) {
      throw new AllocatorError("InvalidArgument", "owner must be a non-empty string");
    }
    const pos = this.#insertionPoint(range, -1);
    const mapping: BusMapping<D> = Object.freeze({ range, device, owner: owner ?? describeOwner(device) });
    this.#add(pos, mapping);
    if (this.#feed.active) this.#feed.emit({ type: "added", mapping });
    return mapping;
  }

  /**
   * Unmaps one mapping: the one equal to `rangeOrAddress` when it is a range, or the one
   * containing it when it is an address.
   * @returns the removed mapping.
   * @throws AllocatorError `NotFound` when there is no such mapping (a range must match exactly),
   *   `InvalidArgument` for a bad address.
   */
  remove(rangeOrAddress: RangeInclusive | U64Input): BusMapping<D> {
    const i = this.#find(rangeOrAddress);
    const mapping = this.#drop(i);
    if (this.#feed.active) this.#feed.emit({ type: "removed", mapping });
    return mapping;
  }

  /**
   * Moves the mapping equal to `range` to start at `newBase`, keeping its length, device and
   * owner: one atomic step (on failure nothing changed), reported as one `"moved"` change. A
   * move to the same base returns the mapping unchanged.
   * @returns the mapping at its new place.
   * @throws AllocatorError `NotFound` when no mapping equals `range`, `Overlap` when the new
   *   place shares an address with another mapping (naming its owner), `Overflow` when it would
   *   end past 2^64-1, `InvalidArgument` for bad arguments.
   */
  move(range: RangeInclusive, newBase: U64Input): BusMapping<D> {
    if (!(range instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", "range must be a RangeInclusive");
    const base = toU64(newBase, "newBase");
    const i = this.#find(range);
    const from = this.#index.at(i).mapping!;
    if (base === range.start) return from;
    const to = RangeInclusive.withSize(base, range.len());
    // Check the new place first, ignoring the mapping being moved, so that the move cannot fail
    // half way.
    this.#insertionPoint(to, i);
    this.#drop(i);
    const mapping: BusMapping<D> = Object.freeze({ range: to, device: from.device, owner: from.owner });
    this.#add(this.#index.upperBound(key(to.start)), mapping);
    if (this.#feed.active) this.#feed.emit({ type: "moved", from, mapping });
    return mapping;
  }

  /**
   * Calls `listener` after every later change of the map (`added`, `removed`, `moved`), in the
   * order the changes happened, including changes a listener makes itself (those are delivered
   * after the current one). An emulator that keeps its own tables stays in sync from
   * {@link mappings} plus this feed. A listener's exception cannot undo the change it was told
   * of, so it does not reach the caller that changed the map: it is rethrown from a microtask,
   * where the host reports it as uncaught.
   * @returns a function that unsubscribes `listener`.
   * @throws AllocatorError `InvalidArgument` when `listener` is not a function.
   */
  subscribe(listener: BusChangeListener<D>): () => void {
    return this.#feed.subscribe(listener);
  }


  /**
   * The mapping containing `address`, with `offset = address - range.start`, or undefined.
   * O(log n); a safe-integer number address takes a float search that avoids bigint conversion.
   * @throws AllocatorError `InvalidArgument` when `address` is not a u64.
   */
  lookup(address: U64Input): BusLookupResult<D> | undefined {
    let i: number;
    let offset: bigint;
    if (typeof address === "number") {
      if (!(address >= 0 && Number.isSafeInteger(address))) toU64(address, "address");
      i = this.#index.indexOfNum(address);
      if (i < 0) return undefined;
      // Exact: the start is at most the address, so both are safe integers.
      offset = BigInt(address - this.#index.startNumAt(i));
    } else {
      if (!(typeof address === "bigint" && address >= 0n && address <= U64_MAX)) toU64(address, "address");
      const k = key(address);
      i = this.#index.indexOfKey(k);
      if (i < 0) return undefined;
      offset = BigInt.asUintN(64, k - this.#index.startKeyAt(i));
    }
    const m = this.#index.mappingAt(i);
    return { range: m.range, device: m.device, owner: m.owner, offset };
  }

  /** The mapping whose range equals `range` exactly, or undefined. */
  get(range: RangeInclusive): BusMapping<D> | undefined {
    if (!(range instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", "range must be a RangeInclusive");
    const i = this.#index.indexOfKey(key(range.start));
    if (i < 0) return undefined;
    const r = this.#index.at(i);
    return r.end === range.end && r.start === range.start ? r.mapping : undefined;
  }

  /** Every mapping sharing at least one address with `range`, in address order. */
  overlapping(range: RangeInclusive): BusMapping<D>[] {
    if (!(range instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", "range must be a RangeInclusive");
    const index = this.#index;
    const sKey = key(range.start);
    const eKey = key(range.end);
    let i = index.upperBound(sKey) - 1;
    if (i < 0 || index.endKeyAt(i) < sKey) i++;
    const out: BusMapping<D>[] = [];
    for (; i < index.size && index.startKeyAt(i) <= eKey; i++) out.push(index.at(i).mapping!);
    return out;
  }

  /** A snapshot of every mapping in address order; later changes to the bus do not affect it. */
  mappings(): BusMapping<D>[] {
    const out: BusMapping<D>[] = [];
    for (let i = 0; i < this.#index.size; i++) out.push(this.#index.at(i).mapping!);
    return out;
  }

  /** Iterates over a snapshot of the mappings in address order, so the bus may change meanwhile. */
  [Symbol.iterator](): IterableIterator<BusMapping<D>> {
    return this.mappings()[Symbol.iterator]();
  }

  /**
   * Checks the internal invariants: mappings sorted and disjoint, the search arrays equal to the
   * mappings they index, and the fast table (port table or page map) equal, slot by slot, to
   * what the index says.
   * @throws AllocatorError `InvalidState` describing the first violation.
   */
  checkValid(): void {
    const bad =
      this.#index.violation(this.kind) ??
      (this.#ports !== null ? this.#ports.violation(this.#index) : undefined) ??
      (this.#pages !== null ? this.#pages.violation(this.#index) : undefined);
    if (bad !== undefined) throw new AllocatorError("InvalidState", `${this.#busName()} is corrupt: ${bad}`);
  }

  /** Sorted position for `range`, or `Overlap` naming the first holder other than the one at `ignore`. */
  #insertionPoint(range: RangeInclusive, ignore: number): number {
    const index = this.#index;
    const sKey = key(range.start);
    const eKey = key(range.end);
    let i = index.upperBound(sKey) - 1;
    if (i < 0 || index.endKeyAt(i) < sKey) i++;
    for (; i < index.size && index.startKeyAt(i) <= eKey; i++) {
      if (i === ignore) continue;
      const held = index.at(i);
      throw new AllocatorError("Overlap", `${range.toString(this.kind)} conflicts with ${held.owner} ${held.mapping!.range.toString(this.kind)}`, {
        owner: held.owner,
      });
    }
    return index.upperBound(sKey);
  }

  /** Index of the mapping equal to a range or containing an address, or `NotFound`. */
  #find(rangeOrAddress: RangeInclusive | U64Input): number {
    if (rangeOrAddress instanceof RangeInclusive) {
      const i = this.#index.indexOfKey(key(rangeOrAddress.start));
      const found = i >= 0 ? this.#index.at(i) : undefined;
      if (found === undefined || found.end !== rangeOrAddress.end || found.start !== rangeOrAddress.start) {
        const near = this.overlapping(rangeOrAddress)[0];
        const hint = near === undefined ? "" : `; ${near.owner} ${near.range.toString(this.kind)} overlaps it`;
        throw new AllocatorError("NotFound", `${rangeOrAddress.toString(this.kind)} is not mapped on the ${this.#busName()}${hint}`);
      }
      return i;
    }
    const address = toU64(rangeOrAddress, "address");
    const i = this.#index.indexOfKey(key(address));
    if (i < 0) throw new AllocatorError("NotFound", `nothing is mapped at ${hex(address)} on the ${this.#busName()}`);
    return i;
  }

  #add(pos: number, mapping: BusMapping<D>): void {
    const route = Route.of(mapping);
    this.#index.insertAt(pos, route);
    this.#ports?.map(route);
    this.#pages?.map(route, this.#index);
  }

  #drop(i: number): BusMapping<D> {
    const route = this.#index.removeAt(i);
    this.#ports?.unmap(route);
    this.#pages?.unmap(route, this.#index);
    route.retire();
    return route.mapping!;
  }


  // ---------------------------------------------------------------------------------------------
  // Dispatch: number accessors. The fast path of each is a table load, the candidate route's
  // bounds check and a method call on its target (the device, or its adapter); everything else,
  // and every access while onDeviceError is set, goes to the exact path below. Markers
  // (unmapped, mixed page, miss, block node) have no targets and fail the check.
  //
  // Nothing outside the int32 range crosses a call that V8 might not inline, because such a
  // number is passed as a heap object: 32-bit values are int32 (as in v86 and Int32Array), and
  // an address enters the exact path through the ARG scratch word, split into int32 halves.

  /**
   * Reads one byte at `address` (a safe integer; see {@link read8Pair} and {@link read8Big} for
   * the whole u64 space). No allocation. Unmapped: 0xff.
   * @throws AllocatorError `InvalidArgument` when `address` is not an integer from 0 to 2^53-1.
   */
  read8(address: number): number {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.t8;
      if (t !== null && address >= e.lo && address <= e.hi) return t.read8(address - e.lo) & 0xff;
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    return this.#readArg(1);
  }

  /** Reads two bytes, little-endian, like {@link read8}. Unmapped: 0xffff. */
  read16(address: number): number {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.t16;
      if (t !== null && address >= e.lo && address + 1 <= e.hi) return t.read16(address - e.lo) & 0xffff;
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    return this.#readArg(2);
  }

  /**
   * Reads four bytes, little-endian, as a signed int32 (`-1` when unmapped; `>>> 0` gives the
   * unsigned value), like {@link read8}. Signed because an int32 is a small integer to V8: a
   * value at or above 2^31 would be a heap object wherever the call is not inlined.
   */
  read32(address: number): number {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.t32;
      if (t !== null && address >= e.lo && address + 3 <= e.hi) return t.read32(address - e.lo) | 0;
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    return this.#readArg(4);
  }

  /**
   * Writes the byte `value` at `address` (a safe integer). `value` is truncated to 8 bits, as a
   * typed-array store would. No allocation. Unmapped: dropped.
   * @throws AllocatorError `InvalidArgument` when `address` is not an integer from 0 to 2^53-1.
   */
  write8(address: number, value: number): void {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.u8;
      if (t !== null && address >= e.lo && address <= e.hi) {
        t.write8(address - e.lo, value & 0xff);
        return;
      }
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    this.#writeArg(1, value & 0xff);
  }

  /** Writes two bytes, little-endian, like {@link write8}. */
  write16(address: number, value: number): void {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.u16;
      if (t !== null && address >= e.lo && address + 1 <= e.hi) {
        t.write16(address - e.lo, value & 0xffff);
        return;
      }
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    this.#writeArg(2, value & 0xffff);
  }

  /**
   * Writes four bytes, little-endian, like {@link write8}. `value` may be signed or unsigned; the
   * device's `write32` receives it as a signed int32 (see {@link read32}).
   */
  write32(address: number, value: number): void {
    if (this.onDeviceError === undefined) {
      const e = this.#slot(address);
      const t = e.u32;
      if (t !== null && address >= e.lo && address + 3 <= e.hi) {
        t.write32(address - e.lo, value | 0);
        return;
      }
    }
    if (typeof address !== "number") throw invalidAddress(address);
    ARG[0] = address;
    this.#writeArg(4, value | 0);
  }

  /**
   * Reads one byte at the address `high * 2^32 + low`, for the whole u64 space without
   * allocation. Each half is a u32, or a signed int32 taken as its two's complement.
   * @throws AllocatorError `InvalidArgument` when a half is not such an integer.
   */
  read8Pair(high: number, low: number): number {
    return this.#pairToArg(high, low) ? this.#readArg(1) : this.#readSearch(1);
  }

  /** Reads two bytes at `high * 2^32 + low`, like {@link read8Pair}. */
  read16Pair(high: number, low: number): number {
    return this.#pairToArg(high, low) ? this.#readArg(2) : this.#readSearch(2);
  }

  /** Reads four bytes at `high * 2^32 + low` as a signed int32, like {@link read8Pair} and {@link read32}. */
  read32Pair(high: number, low: number): number {
    return this.#pairToArg(high, low) ? this.#readArg(4) : this.#readSearch(4);
  }

  /** Writes one byte at `high * 2^32 + low`, like {@link read8Pair} and {@link write8}. */
  write8Pair(high: number, low: number, value: number): void {
    if (this.#pairToArg(high, low)) this.#writeArg(1, value & 0xff);
    else this.#writeSearch(1, value & 0xff);
  }

  /** Writes two bytes at `high * 2^32 + low`. */
  write16Pair(high: number, low: number, value: number): void {
    if (this.#pairToArg(high, low)) this.#writeArg(2, value & 0xffff);
    else this.#writeSearch(2, value & 0xffff);
  }

  /** Writes four bytes at `high * 2^32 + low`. */
  write32Pair(high: number, low: number, value: number): void {
    if (this.#pairToArg(high, low)) this.#writeArg(4, value | 0);
    else this.#writeSearch(4, value | 0);
  }

  /**
   * Reads one byte at the bigint `address` (0..2^64-1). No allocation.
   * @throws AllocatorError `InvalidArgument` when `address` is not a u64.
   */
  read8Big(address: bigint): number {
    return this.#bigToArg(address) ? this.#readArg(1) : this.#readSearch(1);
  }

  /** Reads two bytes at the bigint `address`, like {@link read8Big}. */
  read16Big(address: bigint): number {
    return this.#bigToArg(address) ? this.#readArg(2) : this.#readSearch(2);
  }

  /** Reads four bytes at the bigint `address` as a signed int32, like {@link read8Big} and {@link read32}. */
  read32Big(address: bigint): number {
    return this.#bigToArg(address) ? this.#readArg(4) : this.#readSearch(4);
  }

  /** Writes one byte at the bigint `address`, like {@link read8Big} and {@link write8}. */
  write8Big(address: bigint, value: number): void {
    if (this.#bigToArg(address)) this.#writeArg(1, value & 0xff);
    else this.#writeSearch(1, value & 0xff);
  }

  /** Writes two bytes at the bigint `address`. */
  write16Big(address: bigint, value: number): void {
    if (this.#bigToArg(address)) this.#writeArg(2, value & 0xffff);
    else this.#writeSearch(2, value & 0xffff);
  }

  /** Writes four bytes at the bigint `address`. */
  write32Big(address: bigint, value: number): void {
    if (this.#bigToArg(address)) this.#writeArg(4, value | 0);
    else this.#writeSearch(4, value | 0);
  }

  // ---------------------------------------------------------------------------------------------
  // Dispatch: byte buffers.

  /**
   * Dispatches a read of `data.length` bytes at `address` to the device mapped there, with the
   * mapping's start as `base` and the distance from it as `offset`. Where nothing is mapped the
   * read returns all ones (`data` is filled with 0xff), as a bus with no responder does on real
   * hardware; the read is counted and reported to {@link onUnmapped}. An access whose first byte
   * is unmapped is unmapped as a whole, even if its tail reaches a mapping. An access that starts
   * in a mapping but does not fit it, or has length 0, is served the same way with its reason
   * (see {@link UnmappedReason}), without calling any device.
   *
   * @returns true when a device handled the read, false when it was served as unmapped.
   * @throws AllocatorError `InvalidArgument` for an address that is not a u64 or `data` that is
   *   not a Uint8Array. Whatever the device or a hook throws (see the class documentation).
   */
  read(this: Bus<Device>, address: U64Input, data: Uint8Array): boolean {
    // read and write repeat one body with `gr`/`gw`: a shared body that chose by a flag cost 7 ns
    // per access on this path.
    if (!(data instanceof Uint8Array)) throw new AllocatorError("InvalidArgument", "data must be a Uint8Array");
    // The address is read back from ARG on both branches: a variable merging the number argument
    // with a float64 would make V8 box the float64 at the merge.
    let e: Route<Device>;
    if (typeof address === "number") {
      e = this.#slot(address);
      ARG[0] = address;
    } else if (this.#bigToArg(address)) {
      e = this.#slotOfHalves(SEARCH_U32[HI]!, SEARCH_U32[LO]! | 0);
    } else {
      return this.#bufferSearch(data, false);
    }
    if (this.onDeviceError === undefined) {
      const g = e.gr;
      const n = data.length;
      const a = ARG[0]!;
      if (g !== null && n !== 0 && a >= e.lo && a + (n - 1) <= e.hi) {
        g.read(e.start, offsetBigint(a - e.lo), data);
        return true;
      }
    }
    return this.#bufferArg(data, false);
  }

  /**
   * Dispatches a write, like {@link read}. A write served as unmapped is dropped, counted and
   * reported to {@link onUnmapped}.
   * @returns true when a device handled the write, false when it was dropped.
   * @throws AllocatorError as {@link read}.
   */
  write(this: Bus<Device>, address: U64Input, data: Uint8Array): boolean {
    if (!(data instanceof Uint8Array)) throw new AllocatorError("InvalidArgument", "data must be a Uint8Array");
    // The address is read back from ARG on both branches: a variable merging the number argument
    // with a float64 would make V8 box the float64 at the merge.
    let e: Route<Device>;
    if (typeof address === "number") {
      e = this.#slot(address);
      ARG[0] = address;
    } else if (this.#bigToArg(address)) {
      e = this.#slotOfHalves(SEARCH_U32[HI]!, SEARCH_U32[LO]! | 0);
    } else {
      return this.#bufferSearch(data, true);
    }
    if (this.onDeviceError === undefined) {
      const g = e.gw;
      const n = data.length;
      const a = ARG[0]!;
      if (g !== null && n !== 0 && a >= e.lo && a + (n - 1) <= e.hi) {
        g.write(e.start, offsetBigint(a - e.lo), data);
        return true;
      }
    }
    return this.#bufferArg(data, true);
  }

  // ---------------------------------------------------------------------------------------------
  // The tables.

  /**
   * The fast table's candidate route for `a`, whichever the kind: the route of its port, of its
   * block or page, or of the mapping holding `a` in a page several share; the unmapped sentinel;
   * or the miss sentinel where the table has no answer.
   */
  #slot(a: number): Route<D> {
    const ports = this.#ports;
    if (ports !== null) return typeof a === "number" && (a & 0xffff) === a ? ports.slots[a]! : this.#miss;
    const pages = this.#pages!;
    let e: Route<D>;
    if ((a >>> 0) === a) e = pages.low[a >>> 17] ?? this.#unmapped;
    else if (typeof a === "number" && a > 0xffffffff && a <= MAX_SAFE && Number.isInteger(a)) e = pages.high(Math.floor(a / TWO32), a >>> 17);
    else return this.#miss;
    const sub = e.sub;
    if (sub !== null) e = sub[(a >>> 12) & 31]!;
    if (e.bounds === null) return e;
    ARG[0] = a;
    return this.#inPage(e);
  }

  /**
   * The route holding the address in ARG in the page several mappings share whose marker is
   * `page`, or the unmapped sentinel: a branchless search of the page's bounds (with random
   * offsets a scan that stops at the first match mispredicts about every other access).
   */
  #inPage(page: Route<D>): Route<D> {
    const a = ARG[0]!;
    const bounds = page.bounds!;
    let n = bounds.length >>> 1;
    let base = 0;
    while (n > 1) {
      const half = n >>> 1;
      base += half * +(bounds[2 * (base + half)]! <= a);
      n -= half;
    }
    return bounds[2 * base]! <= a && a <= bounds[2 * base + 1]! ? page.list![base]! : this.#unmapped;
  }

  /**
   * Puts the address `high * 2^32 + low` in ARG when it is below 2^53 (true), or its search key
   * in SEARCH when it is above (false).
   * @throws AllocatorError `InvalidArgument` when a half is not an integer of 32 bits.
   */
  #pairToArg(high: number, low: number): boolean {
    if ((high >>> 0) === high && high < 0x200000 && ((low >>> 0) === low || (low | 0) === low)) {
      ARG[0] = high * TWO32 + (low >>> 0);
      return true;
    }
    const h = half(high, "high");
    const l = half(low, "low");
    if (h < 0x200000) {
      ARG[0] = h * TWO32 + l;
      return true;
    }
    SEARCH_U32[HI] = (h ^ 0x80000000) >>> 0;
    SEARCH_U32[LO] = l;
    return false;
  }

  /**
   * Puts a bigint address below 2^53 in ARG as a number (true), or the search key of one above
   * in SEARCH (false). Goes through the scratch words: `Number(big)` would allocate.
   * @throws AllocatorError `InvalidArgument` when `address` is not a u64.
   */
  #bigToArg(address: unknown): boolean {
    // The store wraps any bigint to 64 bits, so the halves only tell where to look; the checks
    // after it prove the value is that u64. Below 2^53 one truncation decides, in a machine word;
    // above, comparisons with 0n and 2^64-1, which make no heap bigint where truncating a value
    // at or above 2^63 would.
    if (typeof address !== "bigint") throw invalidAddress(address);
    SEARCH_U64[0] = address;
    const h = SEARCH_U32[HI]!;
    if (h < 0x200000 && BigInt.asUintN(53, address) === address) {
      ARG[0] = h * TWO32 + SEARCH_U32[LO]!;
      return true;
    }
    if (!(address >= 0n && address <= U64_MAX)) throw invalidAddress(address);
    SEARCH_U32[HI] = h ^ 0x80000000;
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // The exact path, for an address below 2^53 in ARG.

  /**
   * {@link #slot} of the address in ARG, read from its int32 halves `hi` and `lo` so that no
   * number above 2^31 is passed to a call.
   */
  #slotOfHalves(hi: number, lo: number): Route<D> {
    let e: Route<D>;
    const ports = this.#ports;
    if (ports !== null) {
      e = hi === 0 && (lo & 0xffff) === lo ? ports.slots[lo]! : this.#miss;
    } else {
      const pages = this.#pages!;
      e = hi === 0 ? (pages.low[lo >>> 17] ?? this.#unmapped) : pages.high(hi, lo >>> 17);
      if (e.sub !== null) e = e.sub[(lo >>> 12) & 31]!;
    }
    return e.bounds === null ? e : this.#inPage(e);
  }

  /**
   * The route containing the address in ARG (whose int32 halves are `hi` and `lo`), or
   * undefined: the table's answer where it has one, the index's otherwise.
   */
  #locateArg(hi: number, lo: number): Route<D> | undefined {
    const e = this.#slotOfHalves(hi, lo);
    if (e === this.#unmapped) return undefined;
    const a = ARG[0]!;
    // A route in a table is the only one touching its port, block or page.
    if (e.isMapping) return a >= e.lo && a <= e.hi ? e : undefined;
    const i = this.#index.indexOfArg();
    return i < 0 ? undefined : this.#index.at(i);
  }

  /** Checks that ARG holds a safe integer. */
  #checkArg(): void {
    const a = ARG[0]!;
    if (!(a >= 0 && a <= MAX_SAFE && Number.isInteger(a))) throw invalidAddress(a);
  }

  /**
   * Why an access of `length` bytes at ARG, starting inside `r`, does not fit it, or undefined
   * when it fits. Float arithmetic is exact while the sum stays a safe integer; past that, the
   * comparison is made in bigints.
   */
  #misfitArg(r: Route<D>, length: number): UnmappedReason | undefined {
    const a = ARG[0]!;
    // `a + (length - 1)`, not `a + length - 1`: the latter rounds at 2^53 and then steps back inside.
    const last = a + (length - 1);
    if (last <= r.hi) return undefined;
    // Below the cap `hi` is the exact end, and a sum past 2^53 exceeds it however it rounds.
    const lastBig = BigInt(a) + BigInt(length - 1);
    if (r.hi === MAX_SAFE && lastBig <= r.end) return undefined;
    return this.#tailReason(r, lastBig);
  }

  /**
   * For an access that starts in `r` and ends at the byte `last`, past `r`'s end:
   * `"straddle"` when another mapping starts at or before `last`, else `"past-end"`.
   */
  #tailReason(r: Route<D>, last: bigint): UnmappedReason {
    const index = this.#index;
    const next = index.upperBound(key(r.start));
    return last <= U64_MAX && next < index.size && index.startKeyAt(next) <= key(last) ? "straddle" : "past-end";
  }

  #readArg(width: number): number {
    this.#checkArg();
    const a = ARG[0]!;
    const hi = Math.floor(a / TWO32);
    const lo = a | 0;
    const r = this.#locateArg(hi, lo);
    if (r === undefined) return this.#unmappedWidthRead(hi, lo, width, "unmapped", undefined);
    const why = this.#misfitArg(r, width);
    if (why !== undefined) return this.#unmappedWidthRead(hi, lo, width, why, r.owner);
    return this.#callRead(r, a - r.lo, width, hi, lo);
  }

  #writeArg(width: number, value: number): void {
    this.#checkArg();
    const a = ARG[0]!;
    const hi = Math.floor(a / TWO32);
    const lo = a | 0;
    const r = this.#locateArg(hi, lo);
    if (r === undefined) return this.#unmappedWidthWrite(hi, lo, width, value, "unmapped", undefined);
    const why = this.#misfitArg(r, width);
    if (why !== undefined) return this.#unmappedWidthWrite(hi, lo, width, value, why, r.owner);
    this.#callWrite(r, a - r.lo, width, value, hi, lo);
  }

  #bufferArg(data: Uint8Array, isWrite: boolean): boolean {
    this.#checkArg();
    const a = ARG[0]!;
    const hi = Math.floor(a / TWO32);
    const lo = a | 0;
    if (data.length === 0) return this.#unmappedBuffer(hi, lo, data, isWrite, "empty", undefined);
    const r = this.#locateArg(hi, lo);
    if (r === undefined) return this.#unmappedBuffer(hi, lo, data, isWrite, "unmapped", undefined);
    const why = this.#misfitArg(r, data.length);
    if (why !== undefined) return this.#unmappedBuffer(hi, lo, data, isWrite, why, r.owner);
    return this.#callBuffer(r, a - r.lo, undefined, data, isWrite, hi, lo);
  }

  // ---------------------------------------------------------------------------------------------
  // The exact path, for an address at or above 2^53 whose search key is in SEARCH.

  /** The address of the last byte of a `length`-byte access at the address whose key is in SEARCH. */
  #searchLast(length: number): bigint {
    return joinHalves(SEARCH_U32[HI]! ^ 0x80000000, SEARCH_U32[LO]!) + BigInt(length - 1);
  }

  #readSearch(width: number): number {
    const hi = (SEARCH_U32[HI]! ^ 0x80000000) | 0;
    const lo = SEARCH_U32[LO]! | 0;
    const index = this.#index;
    const i = index.indexOfSearchKey();
    if (i < 0) return this.#unmappedWidthRead(hi, lo, width, "unmapped", undefined);
    const r = index.at(i);
    if (!index.searchKeyFits(i, width)) return this.#unmappedWidthRead(hi, lo, width, this.#tailReason(r, this.#searchLast(width)), r.owner);
    const offset = index.searchKeyOffset(i);
    if (offset < 0) return this.#unmappedWidthRead(hi, lo, width, "unsupported", r.owner);
    return this.#callRead(r, offset, width, hi, lo);
  }

  #writeSearch(width: number, value: number): void {
    const hi = (SEARCH_U32[HI]! ^ 0x80000000) | 0;
    const lo = SEARCH_U32[LO]! | 0;
    const index = this.#index;
    const i = index.indexOfSearchKey();
    if (i < 0) return this.#unmappedWidthWrite(hi, lo, width, value, "unmapped", undefined);
    const r = index.at(i);
    if (!index.searchKeyFits(i, width)) return this.#unmappedWidthWrite(hi, lo, width, value, this.#tailReason(r, this.#searchLast(width)), r.owner);
    const offset = index.searchKeyOffset(i);
    if (offset < 0) return this.#unmappedWidthWrite(hi, lo, width, value, "unsupported", r.owner);
    this.#callWrite(r, offset, width, value, hi, lo);
  }

  #bufferSearch(data: Uint8Array, isWrite: boolean): boolean {
    const hi = (SEARCH_U32[HI]! ^ 0x80000000) | 0;
    const lo = SEARCH_U32[LO]! | 0;
    if (data.length === 0) return this.#unmappedBuffer(hi, lo, data, isWrite, "empty", undefined);
    const index = this.#index;
    const i = index.indexOfSearchKey();
    if (i < 0) return this.#unmappedBuffer(hi, lo, data, isWrite, "unmapped", undefined);
    const r = index.at(i);
    const last = this.#searchLast(data.length);
    if (last > r.end) return this.#unmappedBuffer(hi, lo, data, isWrite, this.#tailReason(r, last), r.owner);
    const offset = index.searchKeyOffset(i);
    return this.#callBuffer(r, offset, BigInt.asUintN(64, SEARCH[1]!), data, isWrite, hi, lo);
  }

  // ---------------------------------------------------------------------------------------------
  // Device calls, with containment when onDeviceError is set.

  /** Calls the width read of `r` (the access fits); a width without a target is "unsupported". */
  #callRead(r: Route<D>, offset: number, width: number, hi: number, lo: number): number {
    if (width === 1 ? r.t8 === null : width === 2 ? r.t16 === null : r.t32 === null) {
      return this.#unmappedWidthRead(hi, lo, width, "unsupported", r.owner);
    }
    const contain = this.onDeviceError;
    try {
      return width === 1 ? r.t8!.read8(offset) & 0xff : width === 2 ? r.t16!.read16(offset) & 0xffff : r.t32!.read32(offset) | 0;
    } catch (error) {
      if (contain === undefined) throw error;
      this.#contained(contain, false, hi, lo, width, r.owner, error);
      return allOnes(width);
    }
  }

  #callWrite(r: Route<D>, offset: number, width: number, value: number, hi: number, lo: number): void {
    if (width === 1 ? r.u8 === null : width === 2 ? r.u16 === null : r.u32 === null) {
      return this.#unmappedWidthWrite(hi, lo, width, value, "unsupported", r.owner);
    }
    const contain = this.onDeviceError;
    try {
      if (width === 1) r.u8!.write8(offset, value);
      else if (width === 2) r.u16!.write16(offset, value);
      else r.u32!.write32(offset, value);
    } catch (error) {
      if (contain === undefined) throw error;
      this.#contained(contain, true, hi, lo, width, r.owner, error);
    }
  }

  /**
   * Calls the device's own buffer method, or its width methods in pieces. `offset` is -1 when it
   * does not fit a number (then only an own buffer method can be told it, as `big`).
   */
  #callBuffer(r: Route<D>, offset: number, big: bigint | undefined, data: Uint8Array, isWrite: boolean, hi: number, lo: number): boolean {
    const own = isWrite ? r.gw : r.gr;
    if (own === null && (offset < 0 || !piecesFit(r, data.length, isWrite))) return this.#unmappedBuffer(hi, lo, data, isWrite, "unsupported", r.owner);
    const contain = this.onDeviceError;
    try {
      const off = big ?? offsetBigint(offset);
      if (isWrite) {
        if (r.gw !== null) r.gw.write(r.start, off, data);
        else writePieces(r, offset, data);
      } else if (r.gr !== null) {
        r.gr.read(r.start, off, data);
      } else {
        readPieces(r, offset, data);
      }
    } catch (error) {
      if (contain === undefined) throw error;
      if (!isWrite) data.fill(0xff);
      this.#contained(contain, isWrite, hi, lo, data.length, r.owner, error);
      return false;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Accounting. Addresses arrive as two int32 halves (see the dispatch section).

  #count(isWrite: boolean, reason: UnmappedReason, hi: number, lo: number): void {
    if (reason === "unmapped") {
      if (isWrite) this.#unmappedWrites++;
      else this.#unmappedReads++;
    } else if (isWrite) {
      this.#rejectedWrites++;
    } else {
      this.#rejectedReads++;
    }
    this.#hasLast = true;
    this.#lastHi = hi;
    this.#lastLo = lo;
  }

  #report(isWrite: boolean, hi: number, lo: number, data: Uint8Array, reason: UnmappedReason, owner: string | undefined): void {
    const hook = this.onUnmapped;
    if (hook === undefined) return;
    const address = joinHalves(hi, lo);
    const kind = isWrite ? "write" : "read";
    hook(owner === undefined ? { kind, address, data, reason } : { kind, address, data, reason, owner });
  }

  #unmappedWidthRead(hi: number, lo: number, width: number, reason: UnmappedReason, owner: string | undefined): number {
    this.#count(false, reason, hi, lo);
    if (this.onUnmapped === undefined) return allOnes(width);
    const data = new Uint8Array(width).fill(0xff);
    this.#report(false, hi, lo, data, reason, owner);
    return valueOf(data, width);
  }

  #unmappedWidthWrite(hi: number, lo: number, width: number, value: number, reason: UnmappedReason, owner: string | undefined): void {
    this.#count(true, reason, hi, lo);
    if (this.onUnmapped === undefined) return;
    const data = new Uint8Array(width);
    for (let i = 0; i < width; i++) data[i] = value >>> (8 * i);
    this.#report(true, hi, lo, data, reason, owner);
  }

  #unmappedBuffer(hi: number, lo: number, data: Uint8Array, isWrite: boolean, reason: UnmappedReason, owner: string | undefined): false {
    this.#count(isWrite, reason, hi, lo);
    if (!isWrite) data.fill(0xff);
    this.#report(isWrite, hi, lo, data, reason, owner);
    return false;
  }

  #contained(hook: DeviceErrorHook, isWrite: boolean, hi: number, lo: number, length: number, owner: string, error: unknown): void {
    this.#deviceErrors++;
    hook({ kind: isWrite ? "write" : "read", address: joinHalves(hi, lo), length, owner, error });
  }

  #busName(): string {
    return this.kind === "io" ? "PIO bus" : "MMIO bus";
  }
}
