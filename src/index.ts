export { AllocatorError, AllocatorErrorCode, isAllocatorError } from "./errors.js";
export { hex, isPowerOfTwo, parseHexU64, toU32, toU64, U32_MAX, U64_MAX, type U32Input, type U64Input } from "./u64.js";
export { formatRange, RangeInclusive, type RangeKind } from "./range.js";
export {
  AllocPolicy,
  type AddressRequest,
  type AddressWindow,
  type AnyResource,
  type IdRequest,
  type InstanceIdResource,
  type LegacyIrqResource,
  type MmioRangeResource,
  type MsiResource,
  type PioRangeResource,
  type Resource,
  type ResourceAllocator,
  type ResourceKind,
  type ResourceSize,
} from "./resource.js";
export type {
  AddrAllocateFunc,
  AddrAllocateParams,
  AllocationCallbacks,
  IdAllocateFunc,
  IdAllocateParams,
  IrqPool,
} from "./allocation-callbacks.js";
export {
  AddressAllocator,
  type AddressAllocatorSnapshot,
  type AllocateOptions,
  type Allocation,
  type SnapshotBlock,
  MAX_ALIGNMENT_CLASSES,
} from "./address-allocator.js";
export {
  ID_ALLOCATOR_SNAPSHOT_FORMAT,
  IdAllocator,
  type IdAllocatorSnapshot,
  type IdRun,
} from "./id-allocator.js";
