/**
 * The callback types through which a device manager asks for resources without knowing which
 * allocator serves them. One callback both allocates and frees; its parameter says which.
 *
 * A callback throws an `AllocatorError` when it cannot do what it is asked, and must then have
 * changed nothing.
 *
 * **Fixed values.** `fixed` means "exactly this, or fail": the callback holds that id or range
 * for the owner, so that it is never offered to anyone else, and the owner frees it later like
 * anything else it holds. A callback may satisfy a fixed request in two more ways: when the value
 * lies inside a platform reservation and the request says `allowReserved`, it may let the owner
 * *use* that part of the reservation (the reservation stays; the use is freed later like an
 * allocation); and when it lies entirely outside every pool the callback serves it returns
 * `null`: nothing is held and nothing is to be freed (a firmware-placed serial IRQ below the
 * VMM's IRQ pool). A device manager says `allowReserved` when it registers a device with fixed
 * values (a serial port in the ISA block), never when a guest moves a BAR: a guest must not be
 * able to place a device on top of the IOAPIC.
 *
 * **Undoing an allocation.** A free with `undo: true` rolls back an allocation this callback has
 * just made (a step of a registration or a move that failed further on): the callback must leave
 * its state exactly as it was before that allocation, down to what its snapshot records (an id
 * pool that remembers released ids, to tell `AlreadyReleased` from `NeverAllocated`, forgets that
 * the id was handed out at all). It is only ever sent for the most recent allocation of that
 * value to that owner, with nothing in between that touched the value, in the same synchronous
 * call of the device manager. A callback without history may treat it as a plain free; one that
 * does not know the field frees as usual, which is correct apart from that history. All params
 * are plain data (strings, numbers, bigints, booleans, ranges), so that a callback can forward or
 * replay them elsewhere (another thread's allocator).
 */
import type { RangeInclusive } from "../core/range.js";

/**
 * The memory pools an MMIO request can name (`pool` of {@link AddrAllocateParams}): below 4 GiB,
 * the 64-bit window, the region past it (Firecracker's `past_mmio64_memory`: pmem and
 * virtio-mem backing; cloud-hypervisor's platform MMIO area) and system memory (Firecracker's
 * `system_memory`: ACPI tables, vmgenid, vmclock).
 */
export type MmioPool = "mmio32" | "mmio64" | "pastMmio64" | "systemMemory";

/** Every {@link MmioPool}, in address order of a typical layout. */
export const MMIO_POOLS: readonly MmioPool[] = Object.freeze(["systemMemory", "mmio32", "mmio64", "pastMmio64"]);

/**
 * Where in its pool a range is placed: `"first"` is the lowest fitting address (rust-vmm's
 * `AllocPolicy::FirstMatch`, the default), `"last"` the highest (`LastMatch`, cloud-hypervisor's
 * top-down allocator).
 */
export type Placement = "first" | "last";

/** Which id pool an {@link IdAllocateFunc} for interrupts is asked about. */
export type IrqPool = "legacy" | "msi";

/** Parameters of an {@link IdAllocateFunc} call. */
export type IdAllocateParams =
  | {
      /** `"allocate"`: hold one id for `owner` and return it. */
      readonly action: "allocate";
      /** Who will hold the id. */
      readonly owner: string;
      /** Take exactly this id (firmware or the user chose it), or fail; otherwise the lowest free id. */
      readonly fixed?: number;
      /** With `fixed`: a reserved id may be used as its reservation allows (see the module documentation). */
      readonly allowReserved?: boolean;
      /** For interrupt callbacks: the legacy IRQ pool or the MSI/GSI pool. Defaults to legacy. */
      readonly pool?: IrqPool;
      /**
       * Legacy IRQs only: the line may be shared with other holders that also say so; it is held
       * once, and freed when its last holder frees it. Two holders that do not both share are an
       * `Overlap`.
       */
      readonly shared?: boolean;
      /**
       * Hold the id under `` `${owner}@${id}` `` rather than `owner`: a device manager allocating
       * an instance id names its owner after the id it is given.
       */
      readonly appendIdToOwner?: boolean;
    }
  | {
      /** `"free"`: give back one id held for `owner` and return it. */
      readonly action: "free";
      /** The owner it was allocated to (for `appendIdToOwner`, the full `name@id`). */
      readonly owner: string;
      /** The id to give back. */
      readonly id: number;
      /** The pool the id was allocated from, as given at allocation; defaults to legacy. */
      readonly pool?: IrqPool;
      /**
       * This free rolls back the allocation just made: restore the exact prior state, including
       * whether the id counted as released before (see the module documentation).
       */
      readonly undo?: boolean;
    };

/**
 * Allocates (returns the id) or frees (returns the freed id) one id. An allocation with `fixed`
 * outside every pool of the callback may return `null`: nothing was held.
 */
export type IdAllocateFunc = (params: IdAllocateParams) => number | null;

/** Parameters of an {@link AddrAllocateFunc} call. All numbers are exact u64 bigints. */
export type AddrAllocateParams =
  | {
      /** `"allocate"`: hold one range for `owner` and return it. */
      readonly action: "allocate";
      /** Who will hold the range; conflict messages name it, and `holdings(owner)` lists it. */
      readonly owner: string;
      /** Bytes (or ports) to allocate, at least 1. */
      readonly size: bigint;
      /** Power of two; defaults to 1. */
      readonly alignment?: bigint;
      /** Place the range exactly here, or fail. */
      readonly fixed?: bigint;
      /** With `fixed`: a range inside one reservation may use it (see the module documentation). */
      readonly allowReserved?: boolean;
      /**
       * The range must lie inside [min, max].
       * @property min Lowest address (or port) the range may start at, inclusive.
       * @property max Highest address (or port) the range's last byte may be at, inclusive.
       */
      readonly window?: { readonly min: bigint; readonly max: bigint };
      /** MMIO only: place in 64-bit MMIO space (above RAM) rather than below 4 GiB. */
      readonly mmio64?: boolean;
      /** MMIO only, with `mmio64`: fall back to 32-bit space when 64-bit space is full. */
      readonly allowFallback?: boolean;
      /** MMIO only: the pool to place in; `mmio64: true` is the same as `pool: "mmio64"`. */
      readonly pool?: MmioPool;
      /** Lowest (`"first"`, the default) or highest (`"last"`) fitting address. */
      readonly placement?: Placement;
    }
  | {
      /** `"free"`: give back one range held for `owner` and return it. */
      readonly action: "free";
      /** The owner it was allocated to. */
      readonly owner: string;
      /** Exactly a range this callback returned. */
      readonly range: RangeInclusive;
      /** This free rolls back the allocation just made (see the module documentation). */
      readonly undo?: boolean;
    };

/**
 * Allocates (returns the range) or frees (returns the freed range) one address range. An
 * allocation with `fixed` entirely outside every pool of the callback may return `null`.
 */
export type AddrAllocateFunc = (params: AddrAllocateParams) => RangeInclusive | null;

/** One thing an allocator holds for an owner, as {@link HoldingsFunc} reports it. */
export type CallbackHolding =
  | {
      /**
       * Which address space the range is in: ports (`"pio"`) or guest-physical memory (`"mmio"`,
       * any pool).
       */
      readonly kind: "pio" | "mmio";
      /** Who holds it (for a device manager's devices, `name@id`). */
      readonly owner: string;
      /** The range held, inclusive at both ends. */
      readonly range: RangeInclusive;
    }
  | {
      /** Which id pool the id is in: device instance ids, legacy interrupt lines or MSI GSIs. */
      readonly kind: "instanceId" | "irq" | "msi";
      /** Who holds it (for a device manager's devices, `name@id`). */
      readonly owner: string;
      /** The id held, a u32. */
      readonly id: number;
      /** A legacy line held shared with other owners. */
      readonly shared: boolean;
    };

/**
 * Lists what the allocator behind the other callbacks holds for `owner` (allocations, fixed
 * holdings, uses of reservations, shared lines; not the platform's own reservations), or for
 * every owner when `owner` is undefined. A device manager uses it to prove that it and the
 * allocator agree (`checkConsistency`) and to validate a restored snapshot.
 */
export type HoldingsFunc = (owner?: string) => readonly CallbackHolding[];

/** What an {@link OutsideFunc} is asked about: one id of a kind, or one range. Plain data. */
export type OutsideQuery =
  | {
      /** Which id pool: instance ids, legacy IRQ lines or MSI GSIs. */
      readonly kind: "instanceId" | "irq" | "msi";
      /** The id asked about (u32). */
      readonly id: number;
    }
  | {
      /** Which address space: port I/O or MMIO. */
      readonly kind: "pio" | "mmio";
      /** The range asked about, inclusive; outside means no byte of it lies in a pool. */
      readonly range: RangeInclusive;
    };

/**
 * True when the value lies entirely outside every pool the allocator serves for its kind: exactly
 * when a `fixed` allocation of it would be answered with `null` (nothing held). It changes
 * nothing. A device manager records such values as held "outside" and holds nothing for them, so
 * it uses this probe to check a restored snapshot (and `checkConsistency`) that claims a value is
 * outside: a value inside a pool must be held, or anyone could be handed it.
 */
export type OutsideFunc = (query: OutsideQuery) => boolean;

/** The optional callbacks a device manager is built with. */
export interface AllocationCallbacks {
  /**
   * Allocates and frees device instance ids; without it every device must bring a fixed
   * `instanceId`, recorded as unmanaged.
   */
  readonly deviceId?: IdAllocateFunc;
  /**
   * Allocates and frees legacy interrupt lines and MSI GSIs (the `pool` parameter says which);
   * without it, IRQ and MSI requests must be fixed, and are only recorded.
   */
  readonly irq?: IdAllocateFunc;
  /**
   * Allocates and frees port ranges; without it, PIO requests must be fixed, and are only mapped.
   */
  readonly pio?: AddrAllocateFunc;
  /**
   * Allocates and frees MMIO ranges in every memory pool; without it, MMIO requests must be fixed,
   * and are only mapped.
   */
  readonly mmio?: AddrAllocateFunc;
  /** What the allocator holds; enables the allocator side of `checkConsistency` and restores. */
  readonly holdings?: HoldingsFunc;
  /** Whether a value lies outside every pool; lets `checkConsistency` and restores verify "outside" records. */
  readonly outside?: OutsideFunc;
}
