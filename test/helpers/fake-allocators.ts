/**
 * Small, obviously-correct allocators for tests, honouring the callback contract of
 * `allocation-callbacks.ts`: allocate (lowest free id / first fit, or exactly `fixed`), free
 * exactly what was handed out with the same owner, throw an `AllocatorError` and change nothing
 * on failure. Each records its calls, can be told to fail (`inject`), and exports its state as
 * plain data for before/after comparisons.
 */
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive, type RangeKind } from "../../src/core/range.js";
import type {
  AddrAllocateFunc,
  AddrAllocateParams,
  CallbackHolding,
  HoldingsFunc,
  IdAllocateFunc,
  IdAllocateParams,
} from "../../src/system/allocation-callbacks.js";
import { hex, U64_MAX } from "../../src/core/u64.js";

/** An inclusive pool of ids. */
export type IdPool = readonly [min: number, max: number];

/** One allocation as reported by the fakes, for comparison with a device manager's records. */
export interface FakeAllocation {
  readonly pool: string;
  readonly value: string;
  readonly owner: string;
}

/**
 * Ids from named pools. `params.pool` selects the pool; without it the `default` pool is used,
 * or `legacy` when there is no default (the IRQ callback convention).
 */
export class FakeIdAllocator {
  readonly #pools: Map<string, IdPool>;
  readonly #held = new Map<string, Map<number, string>>();
  /** Holders of shared lines after the first (the first is in #held), by pool and id. */
  readonly #sharers = new Map<string, Map<number, string[]>>();
  /** Every call, in order (shallow copies of the params). */
  readonly calls: IdAllocateParams[] = [];
  /** Runs first on every call; throwing from it makes the call fail with no effect. */
  inject: ((params: IdAllocateParams, callIndex: number) => void) | undefined;

  constructor(pools: Readonly<Record<string, IdPool>>) {
    this.#pools = new Map(Object.entries(pools));
    for (const name of this.#pools.keys()) {
      this.#held.set(name, new Map());
      this.#sharers.set(name, new Map());
    }
  }

  /** The callback to hand to a device manager. */
  readonly callback: IdAllocateFunc = (params) => {
    this.calls.push({ ...params });
    this.inject?.(params, this.calls.length - 1);
    const poolName = params.pool ?? (this.#pools.has("default") ? "default" : "legacy");
    const pool = this.#pools.get(poolName);
    const held = this.#held.get(poolName);
    if (pool === undefined || held === undefined) throw new AllocatorError("OutOfRange", `no ${poolName} pool`);
    const sharers = this.#sharers.get(poolName)!;
    if (params.action === "free") {
      const owner = held.get(params.id);
      if (owner === undefined) throw new AllocatorError("NeverAllocated", `${poolName} id ${params.id} was never allocated`);
      const others = sharers.get(params.id);
      if (others !== undefined && others.length > 0 && owner !== params.owner) {
        const i = others.indexOf(params.owner);
        if (i < 0) throw new AllocatorError("InvalidArgument", `${poolName} id ${params.id} is shared by ${owner}, ${others.join(", ")}, not ${params.owner}`, { owner });
        others.splice(i, 1);
        return params.id;
      }
      if (owner !== params.owner) {
        throw new AllocatorError("InvalidArgument", `${poolName} id ${params.id} is held by ${owner}, not ${params.owner}`, { owner });
      }
      if (others !== undefined && others.length > 0) held.set(params.id, others.shift()!);
      else {
        held.delete(params.id);
        sharers.delete(params.id);
      }
      return params.id;
    }
    const ownerFor = (id: number): string => (params.appendIdToOwner === true ? `${params.owner}@${id}` : params.owner);
    const take = (id: number): number => {
      held.set(id, ownerFor(id));
      if (params.shared === true) sharers.set(id, []);
      return id;
    };
    if (params.fixed !== undefined) {
      const id = params.fixed;
      if (id < pool[0] || id > pool[1]) return null; // outside the pool: nothing is held
      const owner = held.get(id);
      if (owner !== undefined) {
        const others = sharers.get(id);
        if (params.shared === true && others !== undefined && owner !== params.owner && !others.includes(params.owner)) {
          others.push(params.owner);
          return id;
        }
        throw new AllocatorError("Overlap", `${poolName} id ${id} is held by ${owner}`, { owner });
      }
      return take(id);
    }
    for (let id = pool[0]; id <= pool[1]; id++) if (!held.has(id)) return take(id);
    throw new AllocatorError("ResourceNotAvailable", `${poolName} pool ${pool[0]}-${pool[1]} is exhausted`);
  };

  /** Number of ids currently held (a shared line counts once). */
  get heldCount(): number {
    let n = 0;
    for (const h of this.#held.values()) n += h.size;
    return n;
  }

  /** The holdings of one id pool in the callback vocabulary (`kind`), for {@link fakeHoldings}. */
  holdingsOf(pool: string, kind: "instanceId" | "irq" | "msi"): CallbackHolding[] {
    const out: CallbackHolding[] = [];
    const held = this.#held.get(pool);
    if (held === undefined) return out;
    for (const [id, owner] of held) {
      const others = this.#sharers.get(pool)!.get(id);
      const shared = others !== undefined;
      out.push({ kind, owner, id, shared });
      for (const o of others ?? []) out.push({ kind, owner: o, id, shared });
    }
    return out;
  }

  /** Every held id with its owner, sorted. */
  allocations(): FakeAllocation[] {
    const out: FakeAllocation[] = [];
    for (const [pool, held] of this.#held) {
      for (const [id, owner] of held) {
        out.push({ pool, value: String(id), owner });
        for (const other of this.#sharers.get(pool)!.get(id) ?? []) out.push({ pool, value: String(id), owner: other });
      }
    }
    return out.sort(compareAllocations);
  }

  /** Plain-data state for `deepEqual`. */
  snapshot(): FakeAllocation[] {
    return this.allocations();
  }

  /** Number of calls with the given action. */
  count(action: "allocate" | "free"): number {
    return this.calls.filter((c) => c.action === action).length;
  }
}

/** An inclusive address pool. */
export type AddressPool = readonly [min: bigint, max: bigint];

function alignUp(value: bigint, alignment: bigint): bigint {
  return ((value + alignment - 1n) / alignment) * alignment;
}

/**
 * First-fit address allocator over a low pool and an optional high (64-bit MMIO) pool; `mmio64`
 * requests go to the high pool, falling back to the low one with `allowFallback`.
 */
export class FakeAddressAllocator {
  readonly #kind: RangeKind;
  readonly #low: AddressPool;
  readonly #high: AddressPool | undefined;
  /** Sorted by start, disjoint. */
  #held: { range: RangeInclusive; owner: string }[] = [];
  readonly calls: AddrAllocateParams[] = [];
  inject: ((params: AddrAllocateParams, callIndex: number) => void) | undefined;

  constructor(kind: "io" | "mem", low: AddressPool, high?: AddressPool) {
    this.#kind = kind;
    this.#low = low;
    this.#high = high;
  }

  readonly callback: AddrAllocateFunc = (params) => {
    this.calls.push({ ...params });
    this.inject?.(params, this.calls.length - 1);
    if (params.action === "free") {
      const i = this.#held.findIndex((h) => h.range.equals(params.range));
      const h = this.#held[i];
      if (h === undefined) throw new AllocatorError("NeverAllocated", `${params.range.toString(this.#kind)} was never allocated`);
      if (h.owner !== params.owner) {
        throw new AllocatorError("InvalidArgument", `${h.range.toString(this.#kind)} is held by ${h.owner}, not ${params.owner}`, { owner: h.owner });
      }
      this.#held.splice(i, 1);
      return h.range;
    }
    const alignment = params.alignment ?? 1n;
    const window = params.window;
    if (params.fixed !== undefined) {
      if (params.fixed % alignment !== 0n) throw new AllocatorError("UnalignedAddress", `${hex(params.fixed)} is not aligned to ${hex(alignment)}`);
      const range = RangeInclusive.withSize(params.fixed, params.size);
      const outside = [this.#low, this.#high].every((p) => p === undefined || range.end < p[0] || range.start > p[1]);
      if (outside) return null; // outside every pool: nothing is held
      const inPool = [this.#low, this.#high].some((p) => p !== undefined && range.start >= p[0] && range.end <= p[1]);
      if (!inPool || (window !== undefined && (range.start < window.min || range.end > window.max))) {
        throw new AllocatorError("OutOfRange", `${range.toString(this.#kind)} is outside the pools or the window`);
      }
      const clash = this.#held.find((h) => h.range.overlaps(range));
      if (clash !== undefined) {
        throw new AllocatorError("Overlap", `${range.toString(this.#kind)} conflicts with ${clash.owner} ${clash.range.toString(this.#kind)}`, {
          owner: clash.owner,
        });
      }
      return this.#take(range, params.owner);
    }
    const pools: AddressPool[] = [];
    if (params.mmio64 === true) {
      if (this.#high !== undefined) pools.push(this.#high);
      if (params.allowFallback === true) pools.push(this.#low);
    } else {
      pools.push(this.#low);
    }
    for (const pool of pools) {
      const lo = window === undefined || window.min < pool[0] ? pool[0] : window.min;
      const hi = window === undefined || window.max > pool[1] ? pool[1] : window.max;
      let candidate = alignUp(lo, alignment);
      for (const h of this.#held) {
        if (candidate + params.size - 1n > hi) break;
        if (h.range.end < candidate) continue;
        if (h.range.start > candidate + params.size - 1n) break;
        candidate = alignUp(h.range.end + 1n, alignment);
      }
      if (candidate + params.size - 1n <= hi && candidate + params.size - 1n <= U64_MAX) {
        return this.#take(RangeInclusive.withSize(candidate, params.size), params.owner);
      }
    }
    throw new AllocatorError("ResourceNotAvailable", `no free ${this.#kind} range of size ${hex(params.size)}`);
  };

  #take(range: RangeInclusive, owner: string): RangeInclusive {
    const i = this.#held.findIndex((h) => h.range.start > range.start);
    this.#held.splice(i < 0 ? this.#held.length : i, 0, { range, owner });
    return range;
  }

  /** Number of ranges currently held. */
  get heldCount(): number {
    return this.#held.length;
  }

  /** The holdings in the callback vocabulary, for {@link fakeHoldings}. */
  holdingsAs(kind: "pio" | "mmio"): CallbackHolding[] {
    return this.#held.map((h) => ({ kind, owner: h.owner, range: h.range }));
  }

  /** Every held range with its owner, in address order. */
  allocations(): FakeAllocation[] {
    return this.#held.map((h) => ({ pool: this.#kind, value: h.range.toString(this.#kind), owner: h.owner }));
  }

  /** Plain-data state for `deepEqual`. */
  snapshot(): FakeAllocation[] {
    return this.allocations();
  }

  count(action: "allocate" | "free"): number {
    return this.calls.filter((c) => c.action === action).length;
  }
}

function compareAllocations(a: FakeAllocation, b: FakeAllocation): number {
  if (a.pool !== b.pool) return a.pool < b.pool ? -1 : 1;
  const x = Number(a.value);
  const y = Number(b.value);
  if (x !== y) return x - y;
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}

/** A `holdings` callback over the four fakes a device manager test builds. */
export function fakeHoldings(ids: FakeIdAllocator, irqs: FakeIdAllocator, pio: FakeAddressAllocator, mmio: FakeAddressAllocator): HoldingsFunc {
  return (owner) => {
    const all = [
      ...ids.holdingsOf("default", "instanceId"),
      ...irqs.holdingsOf("legacy", "irq"),
      ...irqs.holdingsOf("msi", "msi"),
      ...pio.holdingsAs("pio"),
      ...mmio.holdingsAs("mmio"),
    ];
    return owner === undefined ? all : all.filter((h) => h.owner === owner);
  };
}
