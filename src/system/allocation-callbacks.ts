/**
 * The callback types through which a device manager asks for resources without knowing which
 * allocator serves them. One callback both allocates and frees; its parameter says which.
 *
 * A callback throws an `AllocatorError` when it cannot do what it is asked, and must then have
 * changed nothing.
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
      readonly action: "allocate";
      /** Who will hold the id. */
      readonly owner: string;
      /** Take exactly this id (firmware or the user chose it); otherwise the lowest free id. */
      readonly fixed?: number;
      /** For interrupt callbacks: the legacy IRQ pool or the MSI/GSI pool. Defaults to legacy. */
      readonly pool?: IrqPool;
    }
  | {
      readonly action: "free";
      readonly owner: string;
      /** The id to give back. */
      readonly id: number;
      readonly pool?: IrqPool;
    };

/** Allocates (returns the id) or frees (returns the freed id) one id. */
export type IdAllocateFunc = (params: IdAllocateParams) => number;

/** Parameters of an {@link AddrAllocateFunc} call. All numbers are exact u64 bigints. */
export type AddrAllocateParams =
  | {
      readonly action: "allocate";
      readonly owner: string;
      /** Bytes (or ports) to allocate, at least 1. */
      readonly size: bigint;
      /** Power of two; defaults to 1. */
      readonly alignment?: bigint;
      /** Place the range exactly here. */
      readonly fixed?: bigint;
      /** The range must lie inside [min, max]. */
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
      readonly action: "free";
      readonly owner: string;
      /** Exactly a range this callback returned. */
      readonly range: RangeInclusive;
    };

/** Allocates (returns the range) or frees (returns the freed range) one address range. */
export type AddrAllocateFunc = (params: AddrAllocateParams) => RangeInclusive;

/** The optional callbacks a device manager is built with. */
export interface AllocationCallbacks {
  readonly deviceId?: IdAllocateFunc;
  readonly irq?: IdAllocateFunc;
  readonly pio?: AddrAllocateFunc;
  readonly mmio?: AddrAllocateFunc;
}
