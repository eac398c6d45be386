/**
 * The resource model: what a VM hands out (a {@link Resource}), how much of it a request asks
 * for (a {@link ResourceSize}), and the interface every allocator implements
 * ({@link ResourceAllocator}). Both concrete allocators implement it through typed request
 * objects, so generic code can allocate and free without knowing which allocator it holds.
 */
import type { RangeInclusive } from "./range.js";
import { toU64, type U32Input, type U64Input } from "./u64.js";

/** The kinds of guest resources a VMM hands to devices. */
export type ResourceKind = "pio" | "mmio" | "legacyIrq" | "msi" | "instanceId";

/** Something an allocator has handed out. */
export interface Resource {
  /** Which kind of resource this is; the discriminant of {@link AnyResource}. */
  readonly kind: ResourceKind;
}

/** How much of a resource a request asks for; a marker for request objects. */
export interface ResourceSize {
  /** Who will hold the resource; errors about conflicts name it. */
  readonly owner?: string;
}

/**
 * Allocates resources of type `R` described by requests of type `S`, and takes them back.
 * @typeParam R what the allocator hands out (an id, a range).
 * @typeParam S the request type `allocate` takes.
 */
export interface ResourceAllocator<R, S extends ResourceSize> {
  /** Hands out a resource; throws an `AllocatorError` and changes nothing when it cannot. */
  allocate(request: S): R;
  /** Gives back exactly a resource that `allocate` returned. */
  free(resource: R): void;
}

/** A range of port-I/O space. */
export interface PioRangeResource extends Resource {
  /** Discriminant of {@link AnyResource}: `"pio"` for a port range. */
  readonly kind: "pio";
  /** The ports held, inclusive at both ends (port I/O space is 0 to 0xffff on x86). */
  readonly range: RangeInclusive;
}

/** A range of memory-mapped I/O space. */
export interface MmioRangeResource extends Resource {
  /** Discriminant of {@link AnyResource}: `"mmio"` for a memory-mapped range. */
  readonly kind: "mmio";
  /**
   * The guest-physical addresses held, inclusive at both ends; `range.size` is the length in bytes.
   */
  readonly range: RangeInclusive;
}

/** A legacy (pin-based) interrupt line. */
export interface LegacyIrqResource extends Resource {
  /** Discriminant of {@link AnyResource}: `"legacyIrq"` for a pin-based line. */
  readonly kind: "legacyIrq";
  /** The interrupt line number, as the interrupt controller numbers its inputs. */
  readonly irq: number;
}

/** A message-signalled interrupt routed to a GSI. */
export interface MsiResource extends Resource {
  /** Discriminant of {@link AnyResource}: `"msi"` for a message-signalled interrupt. */
  readonly kind: "msi";
  /** The global system interrupt the message is routed to. */
  readonly gsi: number;
}

/** The instance id of a device. */
export interface InstanceIdResource extends Resource {
  /** Discriminant of {@link AnyResource}: `"instanceId"` for a device instance id. */
  readonly kind: "instanceId";
  /** The id, a u32 unique among the devices of the allocator that handed it out. */
  readonly id: number;
}

/** Any concrete resource. */
export type AnyResource =
  | PioRangeResource
  | MmioRangeResource
  | LegacyIrqResource
  | MsiResource
  | InstanceIdResource;

/** An inclusive window a placement must stay inside (a 32-bit BAR below 4 GiB, say). */
export interface AddressWindow {
  /** Lowest address the placement may use, inclusive; a bigint or safe integer u64. */
  readonly min: U64Input;
  /** Highest address the placement may use, inclusive (the range's last byte must not pass it). */
  readonly max: U64Input;
}

/** A request to an address allocator. */
export interface AddressRequest extends ResourceSize {
  /** Bytes to allocate, at least 1. */
  readonly size: U64Input;
  /** Power of two from 1 to 2^63; defaults to 1. */
  readonly alignment?: U64Input;
  /** Where to place the range; defaults to first match. */
  readonly policy?: AllocPolicy;
  /** The range must lie inside this window. */
  readonly window?: AddressWindow;
}

/** A request to an id allocator. */
export interface IdRequest extends ResourceSize {
  /** Take exactly this id instead of the lowest free one. */
  readonly fixed?: U32Input;
}

/**
 * Where an address allocator places a range.
 * @property kind Which placement: the lowest fit (`FirstMatch`), the highest fit (`LastMatch`) or
 * one exact address (`ExactMatch`).
 * @property address For `ExactMatch`: the first address of the range, a u64 that must be aligned
 * and free for the whole size.
 */
export type AllocPolicy =
  | { readonly kind: "FirstMatch" }
  | { readonly kind: "LastMatch" }
  | { readonly kind: "ExactMatch"; readonly address: bigint };

/**
 * Placement policies, named as in rust-vmm's vm-allocator. Frozen, like both constant policies:
 * allocators take `AllocPolicy.FirstMatch` as their default, so it must stay what it is.
 */
export const AllocPolicy = {
  /** The lowest-addressed free block whose aligned start fits. */
  FirstMatch: { kind: "FirstMatch" } as AllocPolicy,
  /** The highest-addressed free block that fits; the range is placed as high as alignment allows. */
  LastMatch: { kind: "LastMatch" } as AllocPolicy,
  /** Exactly at `address`, which must be aligned and free for the whole size. */
  ExactMatch(address: U64Input): AllocPolicy {
    return Object.freeze({ kind: "ExactMatch", address: toU64(address, "address") }) as AllocPolicy;
  },
} as const;
Object.freeze(AllocPolicy.FirstMatch);
Object.freeze(AllocPolicy.LastMatch);
Object.freeze(AllocPolicy);
