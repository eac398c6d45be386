/**
 * The default system allocator: the resource pools of one VM (port I/O, 32- and 64-bit MMIO,
 * legacy IRQs, MSI GSIs, device instance ids) built from a {@link SystemLayout}, with owner
 * bookkeeping across pools, firmware-fixed reservations, and the allocation callbacks a device
 * manager consumes.
 *
 * It builds on the core allocators only. The device manager sees it through the structural
 * `SystemAllocator` interface, and this module knows nothing of buses or devices.
 *
 * **Owners.** Every allocation and reservation carries an owner string. A callback frees only
 * what was allocated under the owner it names; {@link DefaultSystemAllocator.allocationsOf} and
 * {@link DefaultSystemAllocator.releaseAll} work across all pools.
 *
 * **Reservations** are held space that callbacks never hand out and never free: firmware-fixed
 * ranges (an IOAPIC, a serial port), fixed IRQs and holes. They come from the layout or from
 * {@link DefaultSystemAllocator.reserve}, before or after other allocations.
 *
 * **Atomicity.** A call that throws an `AllocatorError` has changed nothing.
 */
import { AddressAllocator, type AddressAllocatorSnapshot, type Allocation } from "../core/address-allocator.js";
import type { AddrAllocateFunc, CallbackHolding, HoldingsFunc, IdAllocateFunc, OutsideFunc } from "./allocation-callbacks.js";
import { IdClaims, RangeUses, type IdClaim } from "./claims.js";
import { readBounds } from "../core/arguments.js";
import { AllocatorError } from "../core/errors.js";
import { IdAllocator, type IdAllocatorSnapshot } from "../core/id-allocator.js";
import {
  ADDRESS_POOL_NAMES,
  DEFAULT_LAYOUT_NAME,
  isAddressPool,
  LAYOUTS,
  layoutToJSON,
  MAX_ID_RESERVATION,
  MEMORY_POOL_NAMES,
  POOL_NAMES,
  poolRangeKind,
  reservationToJSON,
  resolveLayout,
  resolveReservation,
  type AddressPoolName,
  type IdPoolName,
  type LayoutNumber,
  type MemoryPoolName,
  type PoolName,
  type ReservationJSON,
  type ResolvedLayout,
  type SystemLayout,
  type SystemLayoutJSON,
} from "./layouts.js";
import { formatRange, RangeInclusive } from "../core/range.js";
import { AllocPolicy } from "../core/resource.js";
import type { SystemAllocator } from "./system-allocator-interface.js";
import { checkCanonicalLayout, checkCanonicalReservation } from "./canonical-layout.js";
import { hex, parseHexU64, toU32, toU64, U64_MAX, type U32Input, type U64Input } from "../core/u64.js";

/** A range held in an address pool. */
export interface AddressHolding {
  /** The address pool the range is in. */
  readonly pool: AddressPoolName;
  /** The range held, inclusive at both ends. */
  readonly range: RangeInclusive;
  /**
   * Who holds it: the owner given to the callback (`name@id` for a device manager's devices) or the
   * reservation's owner.
   */
  readonly owner: string;
  /** True for a reservation, false for an allocation made through a callback. */
  readonly reserved: boolean;
  /** Present when the owner uses part of a reservation: the reservation's owner. */
  readonly within?: string;
}

/** An id held in an id pool. */
export interface IdHolding {
  /** The id pool the id is in. */
  readonly pool: IdPoolName;
  /** The id held, a u32. */
  readonly id: number;
  /**
   * Who holds it: the owner given to the callback (`name@id` for a device manager's devices) or the
   * reservation's owner.
   */
  readonly owner: string;
  /** True for a reservation, false for an allocation made through a callback. */
  readonly reserved: boolean;
  /** Present (true) when the line is shared: each of its holders has a holding of it. */
  readonly shared?: true;
  /** Present when the owner uses a reserved id: the reservation's owner. */
  readonly within?: string;
}

/** Something held in one of the pools. */
export type Holding = AddressHolding | IdHolding;

/**
 * What {@link DefaultSystemAllocator.reserve} takes: a range (`RangeInclusive`, `{ start, end }`
 * or `{ start, size }`), or in an id pool a single id. Numbers as in a layout.
  * @property start First address (or id) to reserve.
  * @property end Last address (or id) to reserve, inclusive; give this or `size`, not both (in an
  * id pool, neither reserves the single id `start`).
  * @property size Number of addresses (or ids) to reserve, at least 1; give this or `end`, not
  * both.
 */
export type ReserveTarget =
  | RangeInclusive
  | { readonly start: LayoutNumber; readonly end?: LayoutNumber; readonly size?: LayoutNumber }
  | LayoutNumber;

/**
 * A read-only view of an address pool. It reads the live pool, so it always shows the current
 * state, but offers no way to change it: allocate and free through the callbacks so that owners
 * and reservations stay consistent.
 */
export interface AddressPoolView {
  /** Which address pool this is. */
  readonly pool: AddressPoolName;
  /** First address of the pool. */
  readonly base: bigint;
  /** Last address of the pool (inclusive). */
  readonly end: bigint;
  /** Number of addresses in the pool. */
  readonly size: bigint;
  /** The pool as a range. */
  readonly range: RangeInclusive;
  /** Number of live allocations, reservations included. */
  readonly allocationCount: number;
  /** Addresses held, reservations included. */
  readonly allocatedSize: bigint;
  /** Free addresses. */
  readonly availableSize: bigint;
  /** The allocation containing `address`, or undefined. */
  find(address: U64Input): Allocation | undefined;
  /** True when `range` is exactly a live allocation or reservation. */
  isAllocated(range: RangeInclusive | { readonly start: U64Input; readonly end: U64Input }): boolean;
  /** Live allocations and reservations in address order (a copy). */
  allocations(): Allocation[];
  /** Free ranges in address order (a copy). */
  freeRanges(): RangeInclusive[];
  /** The ranges `owner` holds here, in address order. */
  allocationsOf(owner: string): RangeInclusive[];
  /** Owners holding something here, sorted. */
  owners(): string[];
  /** The pool's own snapshot. */
  toJSON(): AddressAllocatorSnapshot;
  /** An independent, mutable copy of the pool (for experiments; it does not affect this one). */
  clone(): AddressAllocator;
}

/** A read-only view of an id pool; see {@link AddressPoolView}. */
export interface IdPoolView {
  /** Which id pool this is. */
  readonly pool: IdPoolName;
  /** Lowest id of the pool. */
  readonly first: number;
  /** Highest id of the pool (inclusive). */
  readonly last: number;
  /** Ids held, reservations included. */
  readonly allocatedCount: number;
  /** Free ids. */
  readonly availableCount: number;
  /** True when `id` is held. */
  isAllocated(id: U32Input): boolean;
  /** Who holds `id`, or undefined. */
  ownerOf(id: U32Input): string | undefined;
  /** The ids `owner` holds here, ascending. */
  idsOf(owner: string): number[];
  /** Every held id, ascending (a copy). */
  allocatedIds(): number[];
  /** The pool's own snapshot. */
  toJSON(): IdAllocatorSnapshot;
  /** An independent, mutable copy of the pool. */
  clone(): IdAllocator;
}

/** The `format` tag of a {@link SystemAllocatorSnapshot}. */
export const SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT = "vm-allocator/system-allocator";

/**
 * The JSON form of a {@link DefaultSystemAllocator}.
 *
 * - `layout`: the layout it was built with, in canonical form (its `reserved` lists the
 *   reservations made at construction, some of which may have been released since).
 * - `pools`: each pool's own snapshot, exactly for the pools the layout has.
 * - `reserved`: the reservations held now, in pool order then address order; in id pools,
 *   consecutive ids of one owner form one entry.
 * - `claims` (version 2): ids held by several owners (shared legacy lines) or used inside a
 *   reservation, with their holders in the order they came.
 * - `uses` (version 2): parts of reserved ranges that owners use.
 *
 * Version 1 snapshots (no `claims`, no `uses`) are still read.
 */
export interface SystemAllocatorSnapshot {
  /**
   * Always `"vm-allocator/system-allocator"` ({@link SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT}); restoring
   * refuses any other value.
   */
  readonly format: typeof SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT;
  /** The snapshot format version written, 2; restoring also reads version 1. */
  readonly version: 2;
  /**
   * The layout the allocator was built with, in canonical form; its `reserved` lists the
   * reservations made at construction.
   */
  readonly layout: SystemLayoutJSON;
  /** Each pool's own snapshot, exactly for the pools the layout has. */
  readonly pools: {
    /** Port I/O, when the layout has it. */
    readonly pio?: AddressAllocatorSnapshot;
    /** Guest memory for firmware data, when the layout has it. */
    readonly systemMemory?: AddressAllocatorSnapshot;
    /** MMIO below 4 GiB. */
    readonly mmio32: AddressAllocatorSnapshot;
    /** MMIO at or above 4 GiB, when the layout has it. */
    readonly mmio64?: AddressAllocatorSnapshot;
    /** The region past the 64-bit MMIO, when the layout has it. */
    readonly pastMmio64?: AddressAllocatorSnapshot;
    /** Legacy (pin-based) IRQ lines. */
    readonly legacyIrq: IdAllocatorSnapshot;
    /** MSI GSIs. */
    readonly msi: IdAllocatorSnapshot;
    /** Device instance ids. */
    readonly instanceId: IdAllocatorSnapshot;
  };
  /**
   * The reservations held now, in pool order then address order; in id pools, consecutive ids of
   * one owner form one entry.
   */
  readonly reserved: readonly ReservationJSON[];
  /** Ids held by several owners (shared legacy lines) or used inside a reservation (new in version 2). */
  readonly claims: readonly IdClaimJSON[];
  /** Parts of reserved ranges that owners use (new in version 2). */
  readonly uses: readonly RangeUseJSON[];
}

/** An id several owners hold, or owners use inside a reservation. */
export interface IdClaimJSON {
  /** The id pool the id is in. */
  readonly pool: IdPoolName;
  /** The id, a u32. */
  readonly id: number;
  /**
   * Every holder, in the order they took it; the first is the pool's owner of a shared line that is
   * not reserved.
   */
  readonly holders: readonly string[];
  /**
   * True when every holder asked for a shared line; otherwise there is exactly one holder (a use of
   * a reserved id).
   */
  readonly shared: boolean;
}

/** A part of a reserved range that an owner uses; `start` and `end` in canonical hex. */
export interface RangeUseJSON {
  /** The address pool the reservation is in. */
  readonly pool: AddressPoolName;
  /** First address used, as canonical lowercase hex. */
  readonly start: string;
  /** Last address used, inclusive, as canonical lowercase hex. */
  readonly end: string;
  /** Who uses the range (`name@id` for a device manager's devices). */
  readonly owner: string;
}

const SNAPSHOT_KEYS_V1 = ["format", "version", "layout", "pools", "reserved"];
const SNAPSHOT_KEYS = [...SNAPSHOT_KEYS_V1, "claims", "uses"];

const POOL_TEXT: Readonly<Record<PoolName, string>> = {
  pio: "port I/O",
  systemMemory: "system memory",
  mmio32: "32-bit MMIO",
  mmio64: "64-bit MMIO",
  pastMmio64: "past-64-bit MMIO",
  legacyIrq: "legacy IRQ",
  msi: "MSI",
  instanceId: "instance id",
};

/** How one id of a pool is named in messages, matching the device manager's wording. */
function idText(pool: IdPoolName, id: number): string {
  if (pool === "legacyIrq") return `[irq ${id}]`;
  if (pool === "msi") return `MSI GSI ${id}`;
  return `instance id ${id}`;
}

function rangeText(pool: AddressPoolName, start: bigint, end: bigint): string {
  return formatRange(start, end, pool === "pio" ? "io" : "mem");
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  return typeof value;
}

function invalidArgument(message: string, owner?: string): AllocatorError {
  return new AllocatorError("InvalidArgument", message, owner === undefined ? undefined : { owner });
}

function checkOwner(owner: unknown, name: string): string {
  if (typeof owner !== "string" || owner.length === 0) throw invalidArgument(`${name} must be a non-empty string, got ${describe(owner)}`);
  return owner;
}

function paramsRecord(params: unknown, name = "params"): Record<string, unknown> {
  if (typeof params !== "object" || params === null) throw invalidArgument(`${name} must be an object`);
  return params as Record<string, unknown>;
}

function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw invalidArgument(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/**
 * Re-issues a pool's error in the terms of this allocator: port ranges print as `[io ...]`
 * (the core pool only knows memory), ids of IRQ pools as `[irq ...]`, and `prefix` says which
 * pool or step failed. Anything else passes through.
 */
function relabel(error: unknown, pool: PoolName, prefix?: string): unknown {
  if (!(error instanceof AllocatorError)) return error;
  let message = error.message;
  if (pool === "pio") message = message.replaceAll("[mem ", "[io ");
  if (pool === "legacyIrq" || pool === "msi") message = message.replaceAll("[id ", "[irq ");
  if (prefix !== undefined) message = `${prefix}: ${message}`;
  if (message === error.message) return error;
  return new AllocatorError(error.code, message, { owner: error.owner });
}

function invalidSnapshot(what: string): AllocatorError {
  return new AllocatorError("InvalidSnapshot", `invalid system-allocator snapshot: ${what}`);
}

type Bounds = { readonly start: bigint; readonly end: bigint };

class AddressView implements AddressPoolView {
  readonly pool: AddressPoolName;
  readonly #get: () => AddressAllocator;

  constructor(pool: AddressPoolName, get: () => AddressAllocator) {
    this.pool = pool;
    this.#get = get;
    Object.freeze(this);
  }

  get base(): bigint {
    return this.#get().base;
  }
  get end(): bigint {
    return this.#get().end;
  }
  get size(): bigint {
    return this.#get().size;
  }
  get range(): RangeInclusive {
    return this.#get().range;
  }
  get allocationCount(): number {
    return this.#get().allocationCount;
  }
  get allocatedSize(): bigint {
    return this.#get().allocatedSize;
  }
  get availableSize(): bigint {
    return this.#get().availableSize;
  }
  find(address: U64Input): Allocation | undefined {
    return this.#get().find(address);
  }
  isAllocated(range: RangeInclusive | { readonly start: U64Input; readonly end: U64Input }): boolean {
    return this.#get().isAllocated(range);
  }
  allocations(): Allocation[] {
    return [...this.#get().allocations()];
  }
  freeRanges(): RangeInclusive[] {
    return [...this.#get().freeRanges()];
  }
  allocationsOf(owner: string): RangeInclusive[] {
    return this.#get().allocationsOf(checkOwner(owner, "owner"));
  }
  owners(): string[] {
    return this.#get().owners().sort();
  }
  toJSON(): AddressAllocatorSnapshot {
    return this.#get().toJSON();
  }
  clone(): AddressAllocator {
    return this.#get().clone();
  }
}

class IdView implements IdPoolView {
  readonly pool: IdPoolName;
  readonly #get: () => IdAllocator;

  constructor(pool: IdPoolName, get: () => IdAllocator) {
    this.pool = pool;
    this.#get = get;
    Object.freeze(this);
  }

  get first(): number {
    return this.#get().first;
  }
  get last(): number {
    return this.#get().last;
  }
  get allocatedCount(): number {
    return this.#get().allocatedCount;
  }
  get availableCount(): number {
    return this.#get().availableCount;
  }
  isAllocated(id: U32Input): boolean {
    return this.#get().isAllocated(toU32(id, "id"));
  }
  ownerOf(id: U32Input): string | undefined {
    return this.#get().ownerOf(toU32(id, "id"));
  }
  idsOf(owner: string): number[] {
    return this.#get().idsOf(checkOwner(owner, "owner"));
  }
  allocatedIds(): number[] {
    return [...this.#get().allocatedIds()];
  }
  toJSON(): IdAllocatorSnapshot {
    return this.#get().toJSON();
  }
  clone(): IdAllocator {
    return this.#get().clone();
  }
}

/** Pools and reservation marks, the whole mutable state; swapped as one by `fromJSON`. */
interface State {
  readonly address: Partial<Record<AddressPoolName, AddressAllocator>>;
  readonly ids: Record<IdPoolName, IdAllocator>;
  /** Start -> end of every reservation in each address pool. */
  readonly reservedRanges: Record<AddressPoolName, Map<bigint, bigint>>;
  /** Reserved ids of each id pool. */
  readonly reservedIds: Record<IdPoolName, Set<number>>;
  /** Shared lines and uses of reserved ids (see claims.ts). */
  readonly idClaims: Record<IdPoolName, IdClaims>;
  /** Uses of reserved ranges. */
  readonly rangeUses: Record<AddressPoolName, RangeUses>;
}

function emptyState(layout: ResolvedLayout): State {
  const p = layout.pools;
  const address: Partial<Record<AddressPoolName, AddressAllocator>> = {};
  for (const pool of ADDRESS_POOL_NAMES) {
    const b = p[pool];
    if (b !== undefined) address[pool] = new AddressAllocator(b.start, b.end - b.start + 1n);
  }
  const ids = (b: Bounds | undefined): IdAllocator => new IdAllocator(b!.start, b!.end);
  return {
    address,
    ids: { legacyIrq: ids(p.legacyIrq), msi: ids(p.msi), instanceId: ids(p.instanceId) },
    reservedRanges: { pio: new Map(), systemMemory: new Map(), mmio32: new Map(), mmio64: new Map(), pastMmio64: new Map() },
    reservedIds: { legacyIrq: new Set(), msi: new Set(), instanceId: new Set() },
    idClaims: { legacyIrq: new IdClaims(), msi: new IdClaims(), instanceId: new IdClaims() },
    rangeUses: { pio: new RangeUses(), systemMemory: new RangeUses(), mmio32: new RangeUses(), mmio64: new RangeUses(), pastMmio64: new RangeUses() },
  };
}

/**
 * The resource pools of one VM, with owner bookkeeping, reservations and allocation callbacks.
 * Implements the `SystemAllocator` interface the device manager consumes:
 *
 * ```ts
 * const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
 * const dm = DeviceManager.fromSystemAllocator(sys);
 * ```
 */
export class DefaultSystemAllocator implements SystemAllocator {
  readonly #layout: ResolvedLayout;
  readonly #layoutJSON: SystemLayoutJSON;
  #state: State;
  readonly #views: Partial<Record<PoolName, AddressPoolView | IdPoolView>> = {};
  readonly #deviceIdCallback: IdAllocateFunc;
  readonly #irqCallback: IdAllocateFunc;
  readonly #pioCallback: AddrAllocateFunc | undefined;
  readonly #mmioCallback: AddrAllocateFunc;
  readonly #holdingsCallback: HoldingsFunc = (owner) => this.#holdingsOf(owner);
  readonly #outsideCallback: OutsideFunc = (query) => this.#isOutside(query);

  /**
   * Builds the pools of `layout` and takes its reservations.
   * @param layout defaults to the `firecracker-x86_64` preset.
   * @throws AllocatorError for an invalid layout (`InvalidArgument`, `InvalidSize`, `Overflow`,
   *   `InvalidRange`, `OutOfRange`, `Overlap`), naming the field (`layout.mmio32.size`).
   */
  constructor(layout: SystemLayout = LAYOUTS[DEFAULT_LAYOUT_NAME]) {
    this.#layout = resolveLayout(layout, "layout");
    this.#layoutJSON = deepFreeze(layoutToJSON(this.#layout));
    this.#state = emptyState(this.#layout);
    for (let i = 0; i < this.#layout.reserved.length; i++) {
      // resolveLayout checked bounds and disjointness, so these cannot fail.
      this.#take(this.#layout.reserved[i]!, `layout.reserved[${i}]`);
    }
    for (const pool of POOL_NAMES) {
      if (isAddressPool(pool)) {
        if (this.#layout.pools[pool] !== undefined) this.#views[pool] = new AddressView(pool, () => this.#state.address[pool]!);
      } else {
        this.#views[pool] = new IdView(pool, () => this.#state.ids[pool]);
      }
    }
    this.#deviceIdCallback = (params) => this.#idCall(params, false);
    this.#irqCallback = (params) => this.#idCall(params, true);
    this.#pioCallback = this.#state.address.pio === undefined ? undefined : (params) => this.#addressCall(params, "pio");
    this.#mmioCallback = (params) => this.#addressCall(params, "mmio");
  }

  /** The layout's `name`, if it has one. */
  get name(): string | undefined {
    return this.#layout.name;
  }

  /** The layout this allocator was built with, in canonical JSON form (frozen). */
  get layout(): SystemLayoutJSON {
    return this.#layoutJSON;
  }

  /** True when the layout has `pool` (every address pool but `mmio32` is optional). */
  hasPool(pool: PoolName): boolean {
    return typeof pool === "string" && Object.hasOwn(this.#views, pool);
  }

  /** Port I/O, or undefined when the layout has none. */
  get pio(): AddressPoolView | undefined {
    return this.#views.pio as AddressPoolView | undefined;
  }
  /** MMIO below 4 GiB. */
  get mmio32(): AddressPoolView {
    return this.#views.mmio32 as AddressPoolView;
  }
  /** MMIO above 4 GiB, or undefined when the layout has none. */
  get mmio64(): AddressPoolView | undefined {
    return this.#views.mmio64 as AddressPoolView | undefined;
  }
  /** The region past the 64-bit MMIO, or undefined when the layout has none. */
  get pastMmio64(): AddressPoolView | undefined {
    return this.#views.pastMmio64 as AddressPoolView | undefined;
  }
  /** System memory for firmware data, or undefined when the layout has none. */
  get systemMemory(): AddressPoolView | undefined {
    return this.#views.systemMemory as AddressPoolView | undefined;
  }
  /** Legacy IRQ lines. */
  get legacyIrq(): IdPoolView {
    return this.#views.legacyIrq as IdPoolView;
  }
  /** MSI GSIs. */
  get msi(): IdPoolView {
    return this.#views.msi as IdPoolView;
  }
  /** Device instance ids. */
  get instanceId(): IdPoolView {
    return this.#views.instanceId as IdPoolView;
  }

  /** A read-only view of the pool called `name`, or undefined when the layout lacks it. */
  pool(name: AddressPoolName): AddressPoolView | undefined;
  pool(name: IdPoolName): IdPoolView;
  pool(name: PoolName): AddressPoolView | IdPoolView | undefined;
  pool(name: PoolName): AddressPoolView | IdPoolView | undefined {
    return this.#views[this.#poolName(name, "name")];
  }

  // ---- callbacks -------------------------------------------------------------------------------

  /**
   * Allocates and frees device instance ids from the `instanceId` pool: the lowest free id, or
   * exactly `params.fixed`. A free must name the owner the id was allocated to.
   */
  deviceIdCallback(): IdAllocateFunc {
    return this.#deviceIdCallback;
  }

  /**
   * Allocates and frees interrupt lines: `params.pool` `"legacy"` (the default) uses the
   * `legacyIrq` pool, `"msi"` the `msi` pool. Otherwise as {@link deviceIdCallback}.
   */
  irqCallback(): IdAllocateFunc {
    return this.#irqCallback;
  }

  /**
   * Allocates (first fit, honouring `size`, `alignment`, `window` and `fixed`) and frees port
   * ranges from the `pio` pool; undefined when the layout has no port I/O.
   */
  pioAddressCallback(): AddrAllocateFunc | undefined {
    return this.#pioCallback;
  }

  /**
   * Allocates and frees MMIO ranges. Without `mmio64` a range comes from the 32-bit pool; with
   * `mmio64: true` from the 64-bit pool, and with `allowFallback: true` too from the 32-bit pool
   * when the 64-bit one is full or the layout has none; with `pool` from the memory pool it names
   * (`"pastMmio64"`, `"systemMemory"`). `placement: "last"` takes the highest fitting address.
   * A `fixed` range is taken in whichever memory pool contains it (`mmio64` and `pool` are then
   * ignored, so that a device manager can move a range by its address alone).
   */
  mmioAddressCallback(): AddrAllocateFunc {
    return this.#mmioCallback;
  }

  /**
   * Lists what each owner holds, in the callback vocabulary (`pio`, `mmio`, `irq`, `msi`,
   * `instanceId`), leaving out the platform's reservations: what a device manager compares its
   * records with.
   */
  holdingsCallback(): HoldingsFunc {
    return this.#holdingsCallback;
  }

  /**
   * Says whether a value lies entirely outside every pool of its kind, exactly when a `fixed`
   * allocation of it through the callbacks would return `null`; changes nothing. `kind` is
   * `"instanceId"`, `"irq"` (legacy lines), `"msi"` with an `id`, or `"pio"`, `"mmio"` with a
   * `range` (`RangeInclusive` or `{ start, end }`).
   */
  outsideCallback(): OutsideFunc {
    return this.#outsideCallback;
  }

  #isOutside(query: unknown): boolean {
    const q = paramsRecord(query, "query");
    const kind = q["kind"];
    if (kind === "instanceId" || kind === "irq" || kind === "msi") {
      const id = toU32(q["id"], "query.id");
      const ids = this.#state.ids[kind === "irq" ? "legacyIrq" : kind];
      return id < ids.first || id > ids.last;
    }
    if (kind === "pio" || kind === "mmio") {
      const [rawStart, rawEnd] = readBounds(q["range"], "query.range");
      const start = toU64(rawStart, "query.range.start");
      const end = toU64(rawEnd, "query.range.end");
      if (start > end) throw new AllocatorError("InvalidRange", `invalid range: start ${hex(start)} is above end ${hex(end)}`);
      return this.#outsideEveryPool(kind, start, end);
    }
    throw invalidArgument(`query.kind must be "instanceId", "irq", "msi", "pio" or "mmio", got ${describe(kind)}`);
  }

  #holdingsOf(owner: unknown): CallbackHolding[] {
    const o = owner === undefined ? undefined : checkOwner(owner, "owner");
    const out: CallbackHolding[] = [];
    for (const h of this.#collect(o)) {
      if (h.reserved) continue;
      if ("range" in h) out.push({ kind: h.pool === "pio" ? "pio" : "mmio", owner: h.owner, range: h.range });
      else out.push({ kind: h.pool === "legacyIrq" ? "irq" : h.pool, owner: h.owner, id: h.id, shared: h.shared === true });
    }
    return out;
  }

  #idCall(params: unknown, irq: boolean): number | null {
    const p = paramsRecord(params);
    const action = p["action"];
    const owner = checkOwner(p["owner"], "params.owner");
    let pool: IdPoolName;
    if (irq) {
      const which = p["pool"];
      if (which === undefined || which === "legacy") pool = "legacyIrq";
      else if (which === "msi") pool = "msi";
      else throw invalidArgument(`params.pool must be "legacy" or "msi", got ${describe(which)}`);
    } else {
      if (p["pool"] !== undefined) throw invalidArgument("params.pool is only for the IRQ callback: device instance ids have one pool");
      pool = "instanceId";
    }
    if (action === "allocate") {
      const shared = optionalBoolean(p["shared"], "params.shared");
      if (shared && pool !== "legacyIrq") throw invalidArgument(`params.shared is for legacy IRQ lines only, not the ${POOL_TEXT[pool]} pool`);
      const appendId = optionalBoolean(p["appendIdToOwner"], "params.appendIdToOwner");
      const allowReserved = optionalBoolean(p["allowReserved"], "params.allowReserved");
      const fixed = p["fixed"] === undefined ? undefined : toU32(p["fixed"], "params.fixed");
      return this.#holdId(pool, owner, fixed, shared, appendId, allowReserved);
    }
    if (action === "free") {
      const id = toU32(p["id"], "params.id");
      return this.#releaseId(pool, owner, id, optionalBoolean(p["undo"], "params.undo"));
    }
    throw invalidArgument(`params.action must be "allocate" or "free", got ${describe(action)}`);
  }

  /**
   * Holds an id for `owner`: the lowest free one, or exactly `fixed` (null when `fixed` lies
   * outside the pool: nothing is held). A fixed id that is reserved is used as the reservation
   * allows; a shared line is joined when its holders share it too.
   */
  #holdId(pool: IdPoolName, owner: string, fixed: number | undefined, shared: boolean, appendId: boolean, allowReserved: boolean): number | null {
    const s = this.#state;
    const ids = s.ids[pool];
    const claims = s.idClaims[pool];
    if (fixed === undefined) {
      let id: number;
      try {
        id = ids.allocateId(appendId ? undefined : owner);
      } catch (error) {
        throw relabel(error, pool, `${POOL_TEXT[pool]} pool`);
      }
      if (appendId) {
        // The owner names the id, which is only known now: roll the allocation back (keeping
        // what the id was before) and take it named.
        ids.unallocateId(id);
        ids.allocateIdAt(id, `${owner}@${id}`);
      }
      if (shared) claims.open(id, owner, true);
      return id;
    }
    if (fixed < ids.first || fixed > ids.last) return null;
    const holder = appendId ? `${owner}@${fixed}` : owner;
    if (s.reservedIds[pool].has(fixed)) {
      if (!allowReserved) this.#checkIdFree(pool, fixed); // throws Overlap naming the reservation
      const reservedBy = ids.ownerOf(fixed) ?? "an unnamed owner";
      if (claims.get(fixed) === undefined) {
        claims.open(fixed, holder, shared);
        return fixed;
      }
      const why = claims.join(fixed, holder, shared);
      if (why !== undefined) {
        throw new AllocatorError("Overlap", `${idText(pool, fixed)} (reserved by ${reservedBy}) is ${why}`, { owner: claims.get(fixed)!.holders[0]! });
      }
      return fixed;
    }
    if (ids.isAllocated(fixed)) {
      const claim = claims.get(fixed);
      if (claim !== undefined) {
        const why = claims.join(fixed, holder, shared);
        if (why === undefined) return fixed;
        throw new AllocatorError("Overlap", `${idText(pool, fixed)} is ${why}`, { owner: claim.holders[0]! });
      }
      this.#checkIdFree(pool, fixed); // throws Overlap naming the holder
    }
    ids.allocateIdAt(fixed, holder);
    if (shared) claims.open(fixed, holder, true);
    return fixed;
  }

  /**
   * Gives back `owner`'s hold on `id`: its allocation, its share of a line, or its use of a
   * reservation. With `undo` the id pool is left exactly as before the allocation (see
   * `IdAllocator.unallocateId`), so that a rolled-back registration leaves no trace.
   */
  #releaseId(pool: IdPoolName, owner: string, id: number, undo: boolean): number {
    const s = this.#state;
    const ids = s.ids[pool];
    const claims = s.idClaims[pool];
    const claim = claims.get(id);
    if (claim !== undefined) {
      const wasFirst = claim.holders[0] === owner;
      const left = claims.leave(id, owner);
      if (left === undefined) {
        const by = s.reservedIds[pool].has(id) ? `used by ${claim.holders.join(", ")}` : `shared by ${claim.holders.join(", ")}`;
        throw invalidArgument(`${idText(pool, id)} is ${by}, not ${owner}`, claim.holders[0]);
      }
      if (s.reservedIds[pool].has(id)) return id; // the reservation stays
      if (left.length === 0) {
        if (undo) ids.unallocateId(id);
        else ids.freeId(id);
      } else if (wasFirst) {
        // The pool names one owner per id: the next holder takes over the line, which stays
        // allocated (so its history is kept, not marked released).
        ids.unallocateId(id);
        ids.allocateIdAt(id, left[0]!);
      }
      return id;
    }
    this.#checkIdHeld(pool, id, owner);
    if (undo) ids.unallocateId(id);
    else ids.freeId(id);
    return id;
  }

  #addressCall(params: unknown, family: "pio" | "mmio"): RangeInclusive | null {
    const p = paramsRecord(params);
    const action = p["action"];
    const owner = checkOwner(p["owner"], "params.owner");
    if (action === "allocate") return this.#allocateRange(p, family, owner);
    if (action === "free") {
      // An address pool keeps no history of freed ranges, so undoing an allocation is freeing it.
      optionalBoolean(p["undo"], "params.undo");
      const range = p["range"];
      if (typeof range !== "object" || range === null) throw invalidArgument("params.range must be a RangeInclusive or { start, end }");
      const r = range as Record<string, unknown>;
      const start = toU64(r["start"], "params.range.start");
      const end = toU64(r["end"], "params.range.end");
      if (start > end) throw new AllocatorError("InvalidRange", `invalid range: start ${hex(start)} is above end ${hex(end)}`);
      const pool = this.#addressPoolFor(family, start, end);
      const use = this.#state.rangeUses[pool].exactly(start, end);
      if (use !== undefined) {
        if (use.owner !== owner) throw invalidArgument(`${rangeText(pool, start, end)} is used by ${use.owner}, not ${owner}`, use.owner);
        this.#state.rangeUses[pool].delete(start);
        return new RangeInclusive(start, end);
      }
      this.#checkRangeHeld(pool, start, end, owner);
      this.#state.address[pool]!.free({ start, end });
      return new RangeInclusive(start, end);
    }
    throw invalidArgument(`params.action must be "allocate" or "free", got ${describe(action)}`);
  }

  #allocateRange(p: Record<string, unknown>, family: "pio" | "mmio", owner: string): RangeInclusive | null {
    const size = toU64(p["size"], "params.size");
    const alignment = p["alignment"] === undefined ? 1n : toU64(p["alignment"], "params.alignment");
    let window: { min: bigint; max: bigint } | undefined;
    const w = p["window"];
    if (w !== undefined) {
      if (typeof w !== "object" || w === null) throw invalidArgument("params.window must be an object { min, max }");
      const min = toU64((w as Record<string, unknown>)["min"], "params.window.min");
      const max = toU64((w as Record<string, unknown>)["max"], "params.window.max");
      window = { min, max };
    }
    let mmio64 = optionalBoolean(p["mmio64"], "params.mmio64");
    const allowFallback = optionalBoolean(p["allowFallback"], "params.allowFallback");
    const named = this.#namedPool(p["pool"], family, mmio64);
    if (named === "mmio64") mmio64 = true;
    const placement = p["placement"] ?? "first";
    if (placement !== "first" && placement !== "last") throw invalidArgument(`params.placement must be "first" or "last", got ${describe(placement)}`);
    const policy = placement === "last" ? AllocPolicy.LastMatch : AllocPolicy.FirstMatch;
    if (family === "pio" && (mmio64 || allowFallback)) throw invalidArgument("params.mmio64 and params.allowFallback are for MMIO ranges only");
    if (allowFallback && !mmio64) throw invalidArgument("params.allowFallback requires params.mmio64: true");
    const options = window === undefined ? { owner } : { owner, window };
    const fixedValue = p["fixed"];

    const attempt = (pool: AddressPoolName, policy: AllocPolicy): RangeInclusive => {
      try {
        return this.#state.address[pool]!.allocate(size, alignment, policy, options);
      } catch (error) {
        throw relabel(error, pool);
      }
    };
    if (fixedValue !== undefined) {
      const fixed = toU64(fixedValue, "params.fixed");
      if (size === 0n) throw new AllocatorError("InvalidSize", "params.size must be at least 1");
      if (size - 1n > U64_MAX - fixed) {
        throw new AllocatorError("Overflow", `a range of ${hex(size)} at ${hex(fixed)} would end past 0xffffffffffffffff`);
      }
      const last = fixed + size - 1n;
      if (this.#outsideEveryPool(family, fixed, last)) return null;
      const pool = this.#addressPoolFor(family, fixed, last);
      if (optionalBoolean(p["allowReserved"], "params.allowReserved")) {
        const used = this.#useReservation(pool, fixed, last, alignment, owner);
        if (used !== undefined) return used;
      }
      return attempt(pool, AllocPolicy.ExactMatch(fixed));
    }
    if (family === "pio") return attempt("pio", policy);
    if (named !== undefined && named !== "mmio64") return attempt(named, policy);
    if (!mmio64) return attempt("mmio32", policy);
    if (this.#state.address.mmio64 === undefined) {
      if (allowFallback) return attempt("mmio32", policy);
      throw new AllocatorError(
        "ResourceNotAvailable",
        `no 64-bit MMIO pool in this layout for ${hex(size)} bytes (owner ${owner}); pass allowFallback: true to use 32-bit MMIO`,
      );
    }
    try {
      return attempt("mmio64", policy);
    } catch (error) {
      if (!allowFallback || !(error instanceof AllocatorError) || error.code !== "ResourceNotAvailable") throw error;
      try {
        return attempt("mmio32", policy);
      } catch (fallbackError) {
        if (!(fallbackError instanceof AllocatorError)) throw fallbackError;
        throw new AllocatorError(fallbackError.code, `${error.message}; falling back to 32-bit MMIO: ${fallbackError.message}`, {
          owner: fallbackError.owner,
        });
      }
    }
  }

  /** True when [start, end] meets no pool of `family`. */
  #outsideEveryPool(family: "pio" | "mmio", start: bigint, end: bigint): boolean {
    const candidates: readonly AddressPoolName[] = family === "pio" ? ["pio"] : MEMORY_POOL_NAMES;
    return candidates.every((pool) => {
      const a = this.#state.address[pool];
      return a === undefined || end < a.base || start > a.end;
    });
  }

  /**
   * When [start, end] lies inside one reservation of `pool`, records `owner`'s use of it (refusing
   * a part another device already uses) and returns it; undefined when it is not in a reservation.
   */
  #useReservation(pool: AddressPoolName, start: bigint, end: bigint, alignment: bigint, owner: string): RangeInclusive | undefined {
    const s = this.#state;
    const held = s.address[pool]!.find(start);
    if (held === undefined || s.reservedRanges[pool].get(held.range.start) !== held.range.end || end > held.range.end) return undefined;
    const shown = rangeText(pool, start, end);
    if (start % alignment !== 0n) throw new AllocatorError("UnalignedAddress", `${shown} is not aligned to ${hex(alignment)}`);
    const other = s.rangeUses[pool].overlapping(start, end);
    if (other !== undefined) {
      throw new AllocatorError(
        "Overlap",
        `${shown} conflicts with ${other.owner} ${rangeText(pool, other.start, other.end)} (inside ${held.owner ?? "a reservation"} ${held.range.toString(poolRangeKind(pool))})`,
        { owner: other.owner },
      );
    }
    s.rangeUses[pool].add({ start, end, owner });
    return new RangeInclusive(start, end);
  }

  /** The memory pool `params.pool` names, checked against the layout; undefined when not given. */
  #namedPool(value: unknown, family: "pio" | "mmio", mmio64: boolean): MemoryPoolName | undefined {
    if (value === undefined) return undefined;
    if (family === "pio") throw invalidArgument("params.pool is for MMIO ranges only");
    if (typeof value !== "string" || !(MEMORY_POOL_NAMES as readonly string[]).includes(value)) {
      throw invalidArgument(`params.pool must be one of ${MEMORY_POOL_NAMES.map((x) => JSON.stringify(x)).join(", ")}, got ${describe(value)}`);
    }
    const pool = value as MemoryPoolName;
    if (mmio64 && pool !== "mmio64") throw invalidArgument(`params.mmio64 is true but params.pool is ${JSON.stringify(pool)}; give one`);
    if (pool !== "mmio64" && this.#state.address[pool] === undefined) {
      throw new AllocatorError("ResourceNotAvailable", `no ${POOL_TEXT[pool]} pool (${pool}) in this layout`);
    }
    return pool;
  }

  /** The pool of `family` containing `start` (the pool then checks `end`), or OutOfRange. */
  #addressPoolFor(family: "pio" | "mmio", start: bigint, end: bigint): AddressPoolName {
    const candidates: readonly AddressPoolName[] = family === "pio" ? ["pio"] : MEMORY_POOL_NAMES;
    for (const pool of candidates) {
      const a = this.#state.address[pool];
      if (a !== undefined && a.base <= start && start <= a.end) return pool;
    }
    const pools = candidates
      .map((pool) => this.#state.address[pool])
      .filter((a): a is AddressAllocator => a !== undefined)
      .map((a) => rangeText(candidates[0]!, a.base, a.end));
    const kind = family === "pio" ? "io" : "mem";
    throw new AllocatorError(
      "OutOfRange",
      `${formatRange(start, end < start ? start : end, kind)} is outside the ${family === "pio" ? "port I/O pool" : "MMIO pools"} ${pools.join(" and ")}`,
    );
  }

  #checkIdFree(pool: IdPoolName, id: number): void {
    const ids = this.#state.ids[pool];
    if (id < ids.first || id > ids.last) {
      throw new AllocatorError("OutOfRange", `${idText(pool, id)} is outside the ${POOL_TEXT[pool]} pool ${this.#idPoolText(pool)}`);
    }
    if (ids.isAllocated(id)) {
      const holder = ids.ownerOf(id);
      const how = this.#state.reservedIds[pool].has(id) ? "reserved by" : "held by";
      throw new AllocatorError("Overlap", `${idText(pool, id)} is already ${how} ${holder ?? "an unnamed owner"}`, { owner: holder });
    }
  }

  /** Checks that `id` is an allocation (not a reservation) of `owner`, or throws saying what it is. */
  #checkIdHeld(pool: IdPoolName, id: number, owner: string): void {
    const ids = this.#state.ids[pool];
    if (id < ids.first || id > ids.last) {
      throw new AllocatorError("OutOfRange", `${idText(pool, id)} is outside the ${POOL_TEXT[pool]} pool ${this.#idPoolText(pool)}`);
    }
    if (!ids.isAllocated(id)) {
      try {
        ids.freeId(id); // throws NeverAllocated or AlreadyReleased, telling the two apart
      } catch (error) {
        if (error instanceof AllocatorError) {
          const what = error.code === "AlreadyReleased" ? "was already released" : "was never allocated";
          throw new AllocatorError(error.code, `${idText(pool, id)} ${what}`);
        }
        throw error;
      }
      throw new AllocatorError("InvalidState", `${idText(pool, id)} is free, yet freeing it succeeded`);
    }
    const holder = ids.ownerOf(id);
    if (this.#state.reservedIds[pool].has(id)) {
      throw invalidArgument(`${idText(pool, id)} is reserved by ${holder ?? "an unnamed owner"}, not allocated; use unreserve or releaseAll`, holder);
    }
    if (holder !== owner) throw invalidArgument(`${idText(pool, id)} is held by ${holder ?? "an unnamed owner"}, not ${owner}`, holder);
  }

  /** Checks that [start, end] is exactly an allocation (not a reservation) of `owner`. */
  #checkRangeHeld(pool: AddressPoolName, start: bigint, end: bigint, owner: string): void {
    const a = this.#state.address[pool]!;
    // One lookup answers both "is [start, end] exactly an allocation?" and "whose?".
    const held = a.find(start);
    if (held === undefined || held.range.start !== start || held.range.end !== end) {
      try {
        a.free({ start, end }); // throws the precise reason: NeverAllocated, InvalidRange, OutOfRange
      } catch (error) {
        throw relabel(error, pool);
      }
      throw new AllocatorError("InvalidState", `${rangeText(pool, start, end)} is not allocated, yet freeing it succeeded`);
    }
    const holder = held.owner;
    if (this.#state.reservedRanges[pool].get(start) === end) {
      throw invalidArgument(
        `${rangeText(pool, start, end)} is reserved by ${holder ?? "an unnamed owner"}, not allocated; use unreserve or releaseAll`,
        holder,
      );
    }
    if (holder !== owner) throw invalidArgument(`${rangeText(pool, start, end)} is held by ${holder ?? "an unnamed owner"}, not ${owner}`, holder);
  }

  #idPoolText(pool: IdPoolName): string {
    const ids = this.#state.ids[pool];
    return formatRange(BigInt(ids.first), BigInt(ids.last), poolRangeKind(pool));
  }

  // ---- reservations and owners ----------------------------------------------------------------

  /**
   * Reserves space that no callback will hand out or free: a firmware-fixed range, a fixed IRQ, a
   * hole. Works before or after other allocations.
   *
   * @param target a range (`{ start, end }`, `{ start, size }` or a `RangeInclusive`); in an id
   *   pool also a single id. Every id of an id range is reserved separately (at most
   *   `MAX_ID_RESERVATION` = 65536 at once).
   * @returns what was reserved (one holding per id in an id pool).
   * @throws AllocatorError `InvalidArgument` (unknown pool or one the layout lacks, bad owner or
   *   target), `InvalidSize`, `InvalidRange`, `Overflow`, `OutOfRange` (outside the pool),
   *   `Overlap` (the space is held; the message and `error.owner` name the holder).
   */
  reserve(pool: PoolName, target: ReserveTarget, owner: string): Holding[] {
    const p = this.#poolName(pool, "pool");
    const o = checkOwner(owner, "owner");
    const r = this.#target(p, target, o);
    if (isAddressPool(p)) {
      this.#take(r);
      return [{ pool: p, range: new RangeInclusive(r.start, r.end), owner: o, reserved: true }];
    }
    for (let id = Number(r.start); id <= Number(r.end); id++) this.#checkIdFree(p, id);
    this.#take(r);
    const out: Holding[] = [];
    for (let id = Number(r.start); id <= Number(r.end); id++) out.push({ pool: p, id, owner: o, reserved: true });
    return out;
  }

  /**
   * Releases a reservation: exactly a reserved range, or reserved ids (each id of an id range
   * must be reserved).
   * @returns what was released.
   * @throws AllocatorError `InvalidArgument` (bad arguments, or the space is an allocation rather
   *   than a reservation), `NeverAllocated` (nothing is held there), `InvalidRange` (a range that
   *   is part of a reservation or spans several), `OutOfRange`.
   */
  unreserve(pool: PoolName, target: ReserveTarget): Holding[] {
    const p = this.#poolName(pool, "pool");
    // The owner is not known yet; a placeholder satisfies the reservation parser.
    const r = this.#target(p, target, "-");
    if (isAddressPool(p)) {
      const a = this.#state.address[p]!;
      const shown = rangeText(p, r.start, r.end);
      if (!a.isAllocated(r)) {
        try {
          a.free(r);
        } catch (error) {
          throw relabel(error, p);
        }
        throw new AllocatorError("InvalidState", `${shown} is not allocated, yet freeing it succeeded`);
      }
      const holder = a.find(r.start)!.owner ?? "an unnamed owner";
      if (this.#state.reservedRanges[p].get(r.start) !== r.end) {
        throw invalidArgument(`${shown} is allocated to ${holder}, not reserved; its owner frees it through the callback`, holder);
      }
      this.#assertReservationUnused({ pool: p, range: new RangeInclusive(r.start, r.end), owner: holder, reserved: true });
      a.free(r);
      this.#state.reservedRanges[p].delete(r.start);
      return [{ pool: p, range: new RangeInclusive(r.start, r.end), owner: holder, reserved: true }];
    }
    const ids = this.#state.ids[p];
    const reserved = this.#state.reservedIds[p];
    for (let id = Number(r.start); id <= Number(r.end); id++) {
      if (reserved.has(id)) continue;
      const holder = ids.ownerOf(id);
      if (ids.isAllocated(id)) throw invalidArgument(`${idText(p, id)} is allocated to ${holder ?? "an unnamed owner"}, not reserved`, holder);
      throw new AllocatorError("NeverAllocated", `${idText(p, id)} is not reserved`);
    }
    for (let id = Number(r.start); id <= Number(r.end); id++) {
      this.#assertReservationUnused({ pool: p, id, owner: ids.ownerOf(id) ?? "", reserved: true });
    }
    const out: Holding[] = [];
    for (let id = Number(r.start); id <= Number(r.end); id++) {
      out.push({ pool: p, id, owner: ids.ownerOf(id) ?? "", reserved: true });
      ids.freeId(id);
      reserved.delete(id);
    }
    return out;
  }

  /** Every reservation, in pool order then address order. */
  reservations(): Holding[] {
    return this.holdings().filter((h) => h.reserved);
  }

  /**
   * Everything held (allocations, reservations, uses of reservations, shares of lines), in pool
   * order then address order; a shared line or a used reservation appears once per holder.
   */
  holdings(): Holding[] {
    return this.#collect(undefined);
  }

  /**
   * Everything `owner` holds across all pools (allocations, reservations, uses of reservations
   * and shares of lines), in pool order then address order.
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string.
   */
  allocationsOf(owner: string): Holding[] {
    return this.#collect(checkOwner(owner, "owner"));
  }

  /** The holdings of `owner`, or of everyone. */
  #collect(owner: string | undefined): Holding[] {
    const s = this.#state;
    const out: Holding[] = [];
    const byStart = (a: AddressHolding, b: AddressHolding): number => (a.range.start < b.range.start ? -1 : a.range.start > b.range.start ? 1 : 0);
    for (const pool of POOL_NAMES) {
      if (isAddressPool(pool)) {
        const a = s.address[pool];
        if (a === undefined) continue;
        const marks = s.reservedRanges[pool];
        const list: AddressHolding[] = [];
        const allocations = owner === undefined ? a.allocations() : a.allocationsOf(owner).map((range) => ({ range, owner }));
        for (const { range, owner: o } of allocations) list.push({ pool, range, owner: o ?? "", reserved: marks.get(range.start) === range.end });
        for (const u of owner === undefined ? s.rangeUses[pool].all() : s.rangeUses[pool].of(owner)) {
          list.push({ pool, range: new RangeInclusive(u.start, u.end), owner: u.owner, reserved: false, within: a.find(u.start)?.owner ?? "" });
        }
        out.push(...list.sort(byStart));
      } else {
        const ids = s.ids[pool];
        const claims = s.idClaims[pool];
        const reserved = s.reservedIds[pool];
        const list: IdHolding[] = [];
        for (const id of owner === undefined ? ids.allocatedIds() : ids.idsOf(owner)) {
          const claim = claims.get(id);
          if (claim !== undefined && !reserved.has(id)) continue; // a shared line: listed per holder below
          list.push({ pool, id, owner: ids.ownerOf(id) ?? "", reserved: reserved.has(id) });
        }
        // One owner's claims come from the index; everyone's, by walking them all.
        const claimed: [number, IdClaim][] = owner === undefined ? claims.entries() : claims.idsOf(owner).map((id) => [id, claims.get(id)!]);
        for (const [id, claim] of claimed) {
          const inReservation = reserved.has(id);
          for (const holder of claim.holders) {
            if (owner !== undefined && holder !== owner) continue;
            const h: { -readonly [K in keyof IdHolding]: IdHolding[K] } = { pool, id, owner: holder, reserved: false };
            if (claim.shared) h.shared = true;
            if (inReservation) h.within = ids.ownerOf(id) ?? "";
            list.push(h);
          }
        }
        // Stable sort: at one id, the pool's own holding (a reservation) comes before its uses.
        out.push(...list.sort((x, y) => x.id - y.id));
      }
    }
    return out;
  }

  /**
   * Frees everything `owner` holds across all pools: its allocations and reservations, its uses
   * of reservations and its shares of lines.
   * @returns what was freed, as {@link allocationsOf} listed it.
   * @throws AllocatorError `InvalidArgument` when `owner` is not a non-empty string;
   *   `InvalidState` (changing nothing) when a reservation of `owner` is in use by a device.
   */
  releaseAll(owner: string): Holding[] {
    const held = this.allocationsOf(owner);
    const s = this.#state;
    for (const h of held) if (h.reserved) this.#assertReservationUnused(h, owner);
    for (const h of held) {
      if ("range" in h) {
        if (h.within !== undefined) s.rangeUses[h.pool].delete(h.range.start);
        else {
          s.address[h.pool]!.free(h.range);
          if (h.reserved) s.reservedRanges[h.pool].delete(h.range.start);
        }
      } else if (h.reserved) {
        s.ids[h.pool].freeId(h.id);
        s.reservedIds[h.pool].delete(h.id);
      } else {
        this.#releaseId(h.pool, owner, h.id, false);
      }
    }
    return held;
  }

  /** Refuses to drop a reservation some device (other than `releasing`, which lets go too) is using. */
  #assertReservationUnused(h: Holding, releasing?: string): void {
    const s = this.#state;
    if ("range" in h) {
      const use = s.rangeUses[h.pool].all().find((u) => u.owner !== releasing && u.start <= h.range.end && h.range.start <= u.end);
      if (use !== undefined) {
        throw new AllocatorError(
          "InvalidState",
          `${h.range.toString(poolRangeKind(h.pool))} of ${h.owner} is in use by ${use.owner} ${rangeText(h.pool, use.start, use.end)}; free that first`,
          { owner: use.owner },
        );
      }
    } else {
      const claim = s.idClaims[h.pool].get(h.id);
      if (claim !== undefined && claim.holders.some((o) => o !== releasing)) {
        throw new AllocatorError("InvalidState", `${idText(h.pool, h.id)} of ${h.owner} is in use by ${claim.holders.join(", ")}; free that first`, {
          owner: claim.holders[0]!,
        });
      }
    }
  }

  /** Every owner holding something in any pool, sorted. */
  owners(): string[] {
    const names = new Set<string>();
    const s = this.#state;
    for (const pool of ADDRESS_POOL_NAMES) {
      for (const o of s.address[pool]?.owners() ?? []) names.add(o);
      for (const u of s.rangeUses[pool].all()) names.add(u.owner);
    }
    for (const pool of ["legacyIrq", "msi", "instanceId"] as const) {
      const ids = s.ids[pool];
      for (const id of ids.allocatedIds()) {
        const o = ids.ownerOf(id);
        if (o !== undefined) names.add(o);
      }
      for (const [, claim] of s.idClaims[pool].entries()) for (const o of claim.holders) names.add(o);
    }
    return [...names].sort();
  }

  #poolName(pool: unknown, name: string): PoolName {
    if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool)) {
      throw invalidArgument(`${name} must be one of ${POOL_NAMES.map((p) => JSON.stringify(p)).join(", ")}, got ${describe(pool)}`);
    }
    return pool as PoolName;
  }

  /** Validates a reserve/unreserve target against pool `p`, which may be missing from the layout. */
  #target(p: PoolName, target: unknown, owner: string): { pool: PoolName; start: bigint; end: bigint; owner: string } {
    if (this.#layout.pools[p] === undefined) throw invalidArgument(`this layout has no ${p} pool`);
    let entry: Record<string, unknown>;
    if (typeof target === "object" && target !== null) {
      entry = target instanceof RangeInclusive ? { start: target.start, end: target.end } : { ...(target as Record<string, unknown>) };
      if (Object.hasOwn(entry, "pool") || Object.hasOwn(entry, "owner")) throw invalidArgument("range must be { start, end } or { start, size }");
    } else {
      entry = { start: target };
    }
    return resolveReservation({ ...entry, pool: p, owner }, "range", this.#layout.pools);
  }

  /** Takes a validated reservation that is known to be free. */
  #take(r: { pool: PoolName; start: bigint; end: bigint; owner: string }, where?: string): void {
    const s = this.#state;
    if (isAddressPool(r.pool)) {
      try {
        s.address[r.pool]!.allocate(r.end - r.start + 1n, 1n, AllocPolicy.ExactMatch(r.start), { owner: r.owner });
      } catch (error) {
        throw relabel(error, r.pool, where);
      }
      s.reservedRanges[r.pool].set(r.start, r.end);
    } else {
      const ids = s.ids[r.pool];
      for (let id = Number(r.start); id <= Number(r.end); id++) {
        ids.allocateIdAt(id, r.owner);
        s.reservedIds[r.pool].add(id);
      }
    }
  }

  // ---- snapshots and checks --------------------------------------------------------------------

  /** A plain JSON-safe snapshot; {@link DefaultSystemAllocator.fromJSON} restores it. */
  toJSON(): SystemAllocatorSnapshot {
    const s = this.#state;
    const pools: {
      pio?: AddressAllocatorSnapshot;
      systemMemory?: AddressAllocatorSnapshot;
      mmio32?: AddressAllocatorSnapshot;
      mmio64?: AddressAllocatorSnapshot;
      pastMmio64?: AddressAllocatorSnapshot;
      legacyIrq?: IdAllocatorSnapshot;
      msi?: IdAllocatorSnapshot;
      instanceId?: IdAllocatorSnapshot;
    } = {};
    for (const pool of POOL_NAMES) {
      if (isAddressPool(pool)) {
        const a = s.address[pool];
        if (a !== undefined) pools[pool] = a.toJSON();
      } else {
        pools[pool] = s.ids[pool].toJSON();
      }
    }
    const reserved: ReservationJSON[] = [];
    for (const pool of POOL_NAMES) {
      if (isAddressPool(pool)) {
        const a = s.address[pool];
        if (a === undefined) continue;
        const starts = [...s.reservedRanges[pool].keys()].sort((x, y) => (x < y ? -1 : 1));
        for (const start of starts) {
          const end = s.reservedRanges[pool].get(start)!;
          reserved.push(reservationToJSON({ pool, start, end, owner: a.find(start)!.owner! }));
        }
      } else {
        const ids = s.ids[pool];
        const sorted = [...s.reservedIds[pool]].sort((x, y) => x - y);
        let run: { start: number; end: number; owner: string } | undefined;
        for (const id of sorted) {
          const owner = ids.ownerOf(id)!;
          // Runs stay within what one reservation may cover, so that fromJSON accepts them.
          if (run !== undefined && id === run.end + 1 && owner === run.owner && id - run.start < MAX_ID_RESERVATION) {
            run.end = id;
            continue;
          }
          if (run !== undefined) reserved.push({ pool, start: run.start, end: run.end, owner: run.owner });
          run = { start: id, end: id, owner };
        }
        if (run !== undefined) reserved.push({ pool, start: run.start, end: run.end, owner: run.owner });
      }
    }
    const claims: IdClaimJSON[] = [];
    const uses: RangeUseJSON[] = [];
    for (const pool of POOL_NAMES) {
      if (isAddressPool(pool)) {
        for (const u of s.rangeUses[pool].all()) uses.push({ pool, start: hex(u.start), end: hex(u.end), owner: u.owner });
      } else {
        for (const [id, c] of s.idClaims[pool].entries()) claims.push({ pool, id, holders: [...c.holders], shared: c.shared });
      }
    }
    return {
      format: SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT,
      version: 2,
      // A fresh copy: the snapshot is the caller's to change.
      layout: layoutToJSON(this.#layout),
      pools: pools as SystemAllocatorSnapshot["pools"],
      reserved,
      claims,
      uses,
    };
  }

  /**
   * Rebuilds an allocator from {@link toJSON} output (also after `JSON.stringify`/`JSON.parse`),
   * validating everything: format and version, the layout, each pool's snapshot and its bounds
   * against the layout, that every held range and id has an owner, and that every reservation is
   * exactly a held range or id of its owner.
   * @throws AllocatorError `InvalidSnapshot` naming the first problem; never a partial allocator.
   */
  static fromJSON(snapshot: unknown): DefaultSystemAllocator {
    try {
      return DefaultSystemAllocator.#restore(snapshot);
    } catch (error) {
      if (error instanceof AllocatorError && error.code === "InvalidSnapshot") throw error;
      // A getter or proxy in the input threw; the contract is still a single error type.
      const why = error instanceof Error ? error.message : String(error);
      throw new AllocatorError("InvalidSnapshot", `invalid system-allocator snapshot: could not be read (${why})`, { cause: error });
    }
  }

  static #restore(snapshot: unknown): DefaultSystemAllocator {
    if (typeof snapshot !== "object" || snapshot === null || Array.isArray(snapshot)) throw invalidSnapshot(`expected an object, got ${describe(snapshot)}`);
    const x = snapshot as Record<string, unknown>;
    if (x["format"] !== SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT) {
      throw invalidSnapshot(`format must be "${SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT}", got ${describe(x["format"])}`);
    }
    if (x["version"] !== 1 && x["version"] !== 2) throw invalidSnapshot(`unsupported version ${describe(x["version"])} (supported: 1, 2)`);
    const keys = x["version"] === 1 ? SNAPSHOT_KEYS_V1 : SNAPSHOT_KEYS;
    for (const key of Object.keys(x)) if (!keys.includes(key)) throw invalidSnapshot(`unknown field ${JSON.stringify(key)}`);
    for (const key of keys) if (!Object.hasOwn(x, key)) throw invalidSnapshot(`missing field "${key}"`);
    // Snapshots carry numbers in one canonical form only, as the pools' own snapshots do.
    checkCanonicalLayout(x["layout"], "layout", invalidSnapshot);
    let layout: ResolvedLayout;
    try {
      layout = resolveLayout(x["layout"], "layout");
    } catch (error) {
      if (error instanceof AllocatorError) throw invalidSnapshot(error.message);
      throw error;
    }

    const poolsValue = x["pools"];
    if (typeof poolsValue !== "object" || poolsValue === null || Array.isArray(poolsValue)) {
      throw invalidSnapshot(`pools must be an object, got ${describe(poolsValue)}`);
    }
    const pools = poolsValue as Record<string, unknown>;
    for (const key of Object.keys(pools)) {
      if (!(POOL_NAMES as readonly string[]).includes(key)) throw invalidSnapshot(`pools has unknown field ${JSON.stringify(key)}`);
      if (layout.pools[key as PoolName] === undefined) throw invalidSnapshot(`pools.${key} is present but the layout has no ${key} pool`);
    }
    const state = emptyState(layout);
    for (const pool of POOL_NAMES) {
      const bounds = layout.pools[pool];
      if (bounds === undefined) continue;
      if (!Object.hasOwn(pools, pool)) throw invalidSnapshot(`pools.${pool} is missing`);
      const kind = poolRangeKind(pool);
      const layoutText = formatRange(bounds.start, bounds.end, kind);
      const fromPool = (error: unknown): unknown => (error instanceof AllocatorError ? invalidSnapshot(`pools.${pool}: ${error.message}`) : error);
      if (isAddressPool(pool)) {
        let a: AddressAllocator;
        try {
          a = AddressAllocator.fromJSON(pools[pool]);
        } catch (error) {
          throw fromPool(error);
        }
        if (a.base !== bounds.start || a.end !== bounds.end) {
          throw invalidSnapshot(`pools.${pool} covers ${formatRange(a.base, a.end, kind)}, but the layout says ${layoutText}`);
        }
        for (const { range, owner } of a.allocations()) {
          if (owner === undefined) throw invalidSnapshot(`pools.${pool}: ${range.toString(kind)} has no owner; everything a system allocator holds has one`);
        }
        state.address[pool] = a;
      } else {
        let ids: IdAllocator;
        try {
          ids = IdAllocator.fromJSON(pools[pool]);
        } catch (error) {
          throw fromPool(error);
        }
        if (BigInt(ids.first) !== bounds.start || BigInt(ids.last) !== bounds.end) {
          throw invalidSnapshot(`pools.${pool} covers ${formatRange(BigInt(ids.first), BigInt(ids.last), kind)}, but the layout says ${layoutText}`);
        }
        for (const id of ids.allocatedIds()) {
          if (ids.ownerOf(id) === undefined) throw invalidSnapshot(`pools.${pool}: ${idText(pool, id)} has no owner; everything a system allocator holds has one`);
        }
        state.ids[pool] = ids;
      }
    }

    const list = x["reserved"];
    if (!Array.isArray(list)) throw invalidSnapshot(`reserved must be an array, got ${describe(list)}`);
    for (let i = 0; i < list.length; i++) {
      const at = `reserved[${i}]`;
      const item: unknown = list[i];
      if (typeof item !== "object" || item === null || Array.isArray(item)) throw invalidSnapshot(`${at} must be an object, got ${describe(item)}`);
      const e = item as Record<string, unknown>;
      if (!Object.hasOwn(e, "end")) throw invalidSnapshot(`${at} is missing "end"`);
      if (Object.hasOwn(e, "size")) throw invalidSnapshot(`${at} has unknown field "size" (snapshots give start and end)`);
      checkCanonicalReservation(e, at, invalidSnapshot);
      let r: ReturnType<typeof resolveReservation>;
      try {
        r = resolveReservation(e, at, layout.pools);
      } catch (error) {
        if (error instanceof AllocatorError) throw invalidSnapshot(error.message);
        throw error;
      }
      const kind = poolRangeKind(r.pool);
      const shown = formatRange(r.start, r.end, kind);
      if (isAddressPool(r.pool)) {
        const a = state.address[r.pool]!;
        const marks = state.reservedRanges[r.pool];
        if (!a.isAllocated(r)) throw invalidSnapshot(`${at}: ${shown} is not a held range of pools.${r.pool}`);
        const holder = a.find(r.start)!.owner;
        if (holder !== r.owner) throw invalidSnapshot(`${at}: ${shown} is held by ${describe(holder)}, not ${JSON.stringify(r.owner)}`);
        if (marks.has(r.start)) throw invalidSnapshot(`${at}: ${shown} is listed twice`);
        marks.set(r.start, r.end);
      } else {
        const ids = state.ids[r.pool];
        const marks = state.reservedIds[r.pool];
        for (let id = Number(r.start); id <= Number(r.end); id++) {
          const holder = ids.ownerOf(id);
          if (!ids.isAllocated(id)) throw invalidSnapshot(`${at}: ${idText(r.pool, id)} is not held in pools.${r.pool}`);
          if (holder !== r.owner) throw invalidSnapshot(`${at}: ${idText(r.pool, id)} is held by ${describe(holder)}, not ${JSON.stringify(r.owner)}`);
          if (marks.has(id)) throw invalidSnapshot(`${at}: ${idText(r.pool, id)} is listed twice`);
          marks.add(id);
        }
      }
    }
    if (x["version"] === 2) restoreClaims(state, x["claims"], x["uses"]);
    // Everything is validated: build from the layout (whose reservations cannot fail), then adopt.
    const sys = new DefaultSystemAllocator(layoutToJSON(layout));
    sys.#state = state;
    return sys;
  }

  /** An independent copy with the same state. */
  clone(): DefaultSystemAllocator {
    return DefaultSystemAllocator.fromJSON(this.toJSON());
  }

  /**
   * Verifies every pool's internal invariants and the cross-pool bookkeeping: pool bounds match
   * the layout, the MMIO pools are disjoint, every held range and id has an owner, and every
   * reservation mark is a held range or id. Linear in what is held; meant for tests.
   * @throws AllocatorError `InvalidState` describing the first violation (`cause`: the pool's error).
   */
  checkValid(): void {
    const broken = (what: string, cause?: unknown): never => {
      throw new AllocatorError("InvalidState", `system allocator is corrupt: ${what}`, cause === undefined ? undefined : { cause });
    };
    const s = this.#state;
    for (const pool of POOL_NAMES) {
      const bounds = this.#layout.pools[pool];
      if (isAddressPool(pool)) {
        const a = s.address[pool];
        if ((a === undefined) !== (bounds === undefined)) broken(`pool ${pool} ${a === undefined ? "is missing" : "is not in the layout"}`);
        if (a === undefined || bounds === undefined) {
          if (s.reservedRanges[pool].size > 0) broken(`pool ${pool} does not exist but has reservations`);
          continue;
        }
        try {
          a.checkValid();
        } catch (error) {
          broken(`pool ${pool}: ${error instanceof Error ? error.message : String(error)}`, error);
        }
        if (a.base !== bounds.start || a.end !== bounds.end) broken(`pool ${pool} does not match the layout`);
        for (const { range, owner } of a.allocations()) if (owner === undefined) broken(`${range.toString(poolRangeKind(pool))} in ${pool} has no owner`);
        for (const [start, end] of s.reservedRanges[pool]) {
          if (!a.isAllocated({ start, end })) broken(`reservation ${rangeText(pool, start, end)} in ${pool} is not held`);
        }
      } else {
        const ids = s.ids[pool];
        try {
          ids.checkValid();
        } catch (error) {
          broken(`pool ${pool}: ${error instanceof Error ? error.message : String(error)}`, error);
        }
        if (BigInt(ids.first) !== bounds!.start || BigInt(ids.last) !== bounds!.end) broken(`pool ${pool} does not match the layout`);
        for (const id of ids.allocatedIds()) if (ids.ownerOf(id) === undefined) broken(`${idText(pool, id)} has no owner`);
        for (const id of s.reservedIds[pool]) if (!ids.isAllocated(id)) broken(`reserved ${idText(pool, id)} is not held`);
      }
    }
    try {
      checkClaims(s);
    } catch (error) {
      broken(error instanceof Error ? error.message : String(error), error);
    }
    for (const a of MEMORY_POOL_NAMES) {
      for (const b of MEMORY_POOL_NAMES) {
        const x = s.address[a];
        const y = s.address[b];
        if (a < b && x !== undefined && y !== undefined && x.base <= y.end && y.base <= x.end) broken(`the ${a} and ${b} pools overlap`);
      }
    }
    const irq = s.ids.legacyIrq;
    const msi = s.ids.msi;
    if (irq.first <= msi.last && msi.first <= irq.last) broken("the legacy IRQ and MSI pools overlap");
  }
}

/** Checks that the claims and uses of `state` agree with its pools; throws a plain Error saying how not. */
function checkClaims(state: State): void {
  for (const pool of POOL_NAMES) {
    if (isAddressPool(pool)) {
      const a = state.address[pool];
      const uses = state.rangeUses[pool].all();
      if (a === undefined) {
        if (uses.length > 0) throw new Error(`pool ${pool} does not exist but has uses`);
        continue;
      }
      let previous: { end: bigint } | undefined;
      for (const u of uses) {
        const shown = rangeText(pool, u.start, u.end);
        if (u.owner.length === 0) throw new Error(`the use ${shown} has no owner`);
        if (u.start > u.end) throw new Error(`the use ${shown} is inverted`);
        if (previous !== undefined && u.start <= previous.end) throw new Error(`the use ${shown} overlaps another`);
        previous = u;
        const held = a.find(u.start);
        if (held === undefined || state.reservedRanges[pool].get(held.range.start) !== held.range.end || u.end > held.range.end) {
          throw new Error(`the use ${shown} of ${u.owner} is not inside one reservation`);
        }
      }
    } else {
      const ids = state.ids[pool];
      if (!state.idClaims[pool].indexAgrees()) throw new Error(`the ${pool} claims' owner index does not match their holders`);
      for (const [id, c] of state.idClaims[pool].entries()) {
        const shown = idText(pool, id);
        if (c.holders.length === 0) throw new Error(`${shown} has a claim without holders`);
        if (new Set(c.holders).size !== c.holders.length || c.holders.some((h) => typeof h !== "string" || h.length === 0)) {
          throw new Error(`${shown} lists a holder twice, or an empty one`);
        }
        if (!c.shared && c.holders.length !== 1) throw new Error(`${shown} is not shared but has ${c.holders.length} holders`);
        if (c.shared && pool !== "legacyIrq") throw new Error(`${shown} is shared, but only legacy lines can be`);
        if (!ids.isAllocated(id)) throw new Error(`${shown} is claimed but not held`);
        if (!state.reservedIds[pool].has(id)) {
          if (!c.shared) throw new Error(`${shown} is claimed unshared outside a reservation`);
          if (ids.ownerOf(id) !== c.holders[0]) throw new Error(`${shown} is held by ${ids.ownerOf(id) ?? "nobody"}, not its first holder ${c.holders[0]!}`);
        }
      }
    }
  }
}

/** Reads the `claims` and `uses` of a version 2 snapshot into `state`, validating them. */
function restoreClaims(state: State, claimsValue: unknown, usesValue: unknown): void {
  if (!Array.isArray(claimsValue)) throw invalidSnapshot(`claims must be an array, got ${describe(claimsValue)}`);
  if (!Array.isArray(usesValue)) throw invalidSnapshot(`uses must be an array, got ${describe(usesValue)}`);
  const object = (v: unknown, at: string, keys: readonly string[]): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalidSnapshot(`${at} must be an object, got ${describe(v)}`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keys.includes(k)) throw invalidSnapshot(`${at} has unknown field ${JSON.stringify(k)}`);
    for (const k of keys) if (!Object.hasOwn(o, k)) throw invalidSnapshot(`${at} is missing "${k}"`);
    return o;
  };
  const ownerAt = (v: unknown, at: string): string => {
    if (typeof v !== "string" || v.length === 0) throw invalidSnapshot(`${at} must be a non-empty string, got ${describe(v)}`);
    return v;
  };
  for (let i = 0; i < claimsValue.length; i++) {
    const at = `claims[${i}]`;
    const c = object(claimsValue[i], at, ["pool", "id", "holders", "shared"]);
    const pool = c["pool"];
    if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool) || isAddressPool(pool as PoolName)) {
      throw invalidSnapshot(`${at}.pool must be an id pool, got ${describe(pool)}`);
    }
    const p = pool as IdPoolName;
    const id = c["id"];
    if (typeof id !== "number" || !Number.isInteger(id) || id < state.ids[p].first || id > state.ids[p].last) {
      throw invalidSnapshot(`${at}.id must be an id of pools.${p}, got ${describe(id)}`);
    }
    if (typeof c["shared"] !== "boolean") throw invalidSnapshot(`${at}.shared must be a boolean, got ${describe(c["shared"])}`);
    const holders = c["holders"];
    if (!Array.isArray(holders) || holders.length === 0) throw invalidSnapshot(`${at}.holders must be a non-empty array of owners`);
    const names = holders.map((h: unknown, j: number) => ownerAt(h, `${at}.holders[${j}]`));
    if (state.idClaims[p].get(id) !== undefined) throw invalidSnapshot(`${at}: ${idText(p, id)} is listed twice`);
    state.idClaims[p].open(id, names[0]!, c["shared"]);
    for (const h of names.slice(1)) state.idClaims[p].restoreHolder(id, h);
  }
  for (let i = 0; i < usesValue.length; i++) {
    const at = `uses[${i}]`;
    const u = object(usesValue[i], at, ["pool", "start", "end", "owner"]);
    const pool = u["pool"];
    if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool) || !isAddressPool(pool as PoolName) || state.address[pool as AddressPoolName] === undefined) {
      throw invalidSnapshot(`${at}.pool must be an address pool of the layout, got ${describe(pool)}`);
    }
    const start = parseHexU64(u["start"]);
    const end = parseHexU64(u["end"]);
    if (start === undefined) throw invalidSnapshot(`${at}.start must be canonical hex, got ${describe(u["start"])}`);
    if (end === undefined) throw invalidSnapshot(`${at}.end must be canonical hex, got ${describe(u["end"])}`);
    const uses = state.rangeUses[pool as AddressPoolName];
    if (uses.overlapping(start, end) !== undefined || start > end) throw invalidSnapshot(`${at}: ${rangeText(pool as AddressPoolName, start, end)} is inverted or overlaps another use`);
    uses.add({ start, end, owner: ownerAt(u["owner"], `${at}.owner`) });
  }
  try {
    checkClaims(state);
  } catch (error) {
    throw invalidSnapshot(error instanceof Error ? error.message : String(error));
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
