export { AllocatorError, AllocatorErrorCode, isAllocatorError } from "./core/errors.js";
export { hex, isPowerOfTwo, parseHexU64, toU32, toU64, U32_MAX, U64_MAX, type U32Input, type U64Input } from "./core/u64.js";
export { formatRange, RangeInclusive, type RangeKind } from "./core/range.js";
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
} from "./core/resource.js";
export type {
  AddrAllocateFunc,
  AddrAllocateParams,
  AllocationCallbacks,
  CallbackHolding,
  HoldingsFunc,
  IdAllocateFunc,
  IdAllocateParams,
  IrqPool,
  MmioPool,
  OutsideFunc,
  OutsideQuery,
  Placement,
} from "./system/allocation-callbacks.js";
export { MMIO_POOLS } from "./system/allocation-callbacks.js";
export {
  AddressAllocator,
  type AddressAllocatorSnapshot,
  type AllocateOptions,
  type Allocation,
  type SnapshotBlock,
  MAX_ALIGNMENT_CLASSES,
} from "./core/address-allocator.js";
export {
  ID_ALLOCATOR_SNAPSHOT_FORMAT,
  IdAllocator,
  MAX_IDS_PER_CALL,
  MAX_OWNED_IDS,
  type IdAllocatorSnapshot,
  type IdRun,
} from "./core/id-allocator.js";
export type { SystemAllocator } from "./system/system-allocator-interface.js";
export {
  DEVICE_METHODS,
  isDevice,
  MAX_MSI_VECTORS,
  normalizeResourceRequests,
  REQUEST_FIELDS,
  type Device,
  type InstanceIdRequest,
  type IrqRequest,
  type MmioRequest,
  type MsiRequest,
  type NormalizedAddressRequest,
  type NormalizedIdRequest,
  type NormalizedMsiRequest,
  type NormalizedResourceRequest,
  type PioRequest,
  type RequestWindow,
  type ResourceRequest,
} from "./devices/device.js";
export {
  Bus,
  type BusChange,
  type BusChangeListener,
  type BusKind,
  type BusLookupResult,
  type BusMapping,
  type BusOptions,
  type DeviceErrorHook,
  type DeviceErrorReport,
  type UnmappedAccess,
  type UnmappedHook,
  type UnmappedReason,
} from "./devices/bus.js";
export {
  DeviceManager,
  type DeviceManagerOptions,
  type DeviceManagerRestoreOptions,
  type DeviceResources,
  type HeldBy,
  type HeldIrq,
  type HeldMsi,
  type HeldRange,
} from "./devices/device-manager.js";
export {
  DEVICE_MANAGER_SNAPSHOT_FORMAT,
  type DeviceJSON,
  type DeviceManagerSnapshot,
  type IdSlotJSON,
  type RangeSlotJSON,
} from "./devices/device-manager-snapshot.js";
export {
  ADDRESS_POOL_NAMES,
  CLOUD_HYPERVISOR_X86_64,
  CROSVM_X86_64,
  DEFAULT_LAYOUT_NAME,
  FIRECRACKER_AARCH64,
  FIRECRACKER_X86_64,
  getLayout,
  getPreset,
  LAYOUTS,
  layoutNames,
  MAX_ID_RESERVATION,
  MEMORY_POOL_NAMES,
  PC_X86_64,
  POOL_NAMES,
  resolveParameters,
  RISCV64_VIRT,
  type AddressPoolName,
  type AddressWindowJSON,
  type AddressWindowLayout,
  type IdPoolName,
  type IdRangeJSON,
  type IdRangeLayout,
  type LayoutName,
  type LayoutNumber,
  type MemoryPoolName,
  type PoolName,
  type ReservationJSON,
  type ReservationLayout,
  type SystemLayout,
  type SystemLayoutJSON,
} from "./system/layouts.js";
export type {
  Architecture,
  Board,
  InterruptController,
  LayoutParameters,
  ParameterName,
  PciHost,
  PhysicalRange,
  Preset,
  ResolvedParameters,
} from "./system/presets/preset.js";
export {
  DefaultSystemAllocator,
  SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT,
  type AddressHolding,
  type AddressPoolView,
  type Holding,
  type IdClaimJSON,
  type IdHolding,
  type IdPoolView,
  type RangeUseJSON,
  type ReserveTarget,
  type SystemAllocatorSnapshot,
} from "./system/system-allocator.js";
// ---- Threads (src/shared) ----
export {
  SHARED_SYSTEM_ALLOCATOR_FORMAT,
  SharedSystemAllocator,
  type SharedCommittedLog,
  type SharedSystemAllocatorAttachOptions,
  type SharedSystemAllocatorHandle,
  type SharedSystemAllocatorOptions,
} from "./shared/shared-system-allocator.js";
export type { SharedOperation, SharedOperationName } from "./shared/operation-codec.js";
export { guestDeviceKind, type GuestDevice, type GuestDeviceKind, type GuestMachine, type GuestRange } from "./guest/guest-device.js";
export { virtioMmioArgument, virtioMmioCmdline } from "./guest/kernel-cmdline.js";
export { devicetreeSource, type DevicetreeOptions } from "./guest/devicetree.js";
// ---- PCI (src/pci) ----
export {
  formatPciAddress,
  formatPciBus,
  parsePciAddress,
  PCI_BUSES,
  PCI_DEVICES_PER_BUS,
  PCI_FUNCTIONS_PER_DEVICE,
  PCI_MAX_SEGMENT,
  pciAddress,
  pciAddressKey,
  pciAddressOfKey,
  pciRoutingId,
  toPciAddress,
  type PciAddress,
  type PciAddressInput,
} from "./pci/address.js";
export {
  PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT,
  PciSlotAllocator,
  type PciBusSpec,
  type PciSlotAllocatorSnapshot,
  type PciSlotHolding,
} from "./pci/slot-allocator.js";
export {
  barBase,
  barFlags,
  barHighMask,
  barIsSizing,
  barLowMask,
  barRequest,
  describeBarKind,
  normalizeBars,
  PCI_BAR_COUNT,
  type PciBar,
  type PciBarSpec,
  type PciIoWindow,
} from "./pci/bar.js";
export {
  PCI_CAPABILITIES_START,
  PCI_CONFIG_SPACE_SIZE,
  PCI_HEADER_TYPE_MULTI_FUNCTION,
  PCI_LEGACY_CONFIG_SPACE_SIZE,
  PciCommand,
  PciConfigRegister,
  PciConfigSpace,
  PciStatus,
  type PciConfigHandler,
  type PciConfigTarget,
  type PciHeaderIds,
} from "./pci/config-space.js";
export { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT, PciConfigMechanism1 } from "./pci/config-mechanism.js";
export { PCI_ECAM_BUS_SIZE, PciEcam, type PciEcamOptions } from "./pci/ecam.js";
export { intxLine, IntxLines, Q35_INTX_ROUTING, swizzledIntxRouting, type PciIntxRouting } from "./pci/intx.js";
export { normalizeMsiSpec, PCI_CAP_ID_MSI, PciMsiCapability, type PciMsiSpec } from "./pci/msi.js";
export {
  msixPbaSize,
  msixTableSize,
  normalizeMsixSpec,
  PCI_CAP_ID_MSIX,
  PCI_MSIX_CAPABILITY_SIZE,
  PCI_MSIX_MAX_VECTORS,
  PciMsixCapability,
  type NormalizedMsixSpec,
  type PciMsixSpec,
} from "./pci/msix.js";
export { PciVectorSource, type PciMsiMessage, type PciVectorFailure } from "./pci/vectors.js";
export { PciBarRegion, type PciBarHandler } from "./pci/bar-region.js";
export { PciBarMapper, type PciBarConflict } from "./pci/bar-mapper.js";
export {
  normalizePciDevice,
  PciFunction,
  type NormalizedPciDevice,
  type PciBarInfo,
  type PciCapabilitySpec,
  type PciDevice,
  type PciFunctionContext,
} from "./pci/pci-function.js";
export { PciRootComplex, type PciRootComplexOptions, type PciPlugOptions, type PciRootComplexRestoreOptions, type PciRootComplexRestored } from "./pci/root-complex.js";
export {
  PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT,
  PCI_ROOT_COMPLEX_SNAPSHOT_VERSION,
  pciRootComplexSnapshot,
  verifyPciRootComplexSnapshot,
  type PciBarSnapshot,
  type PciFunctionSnapshot,
  type PciHostSnapshot,
  type PciMsiSnapshot,
  type PciMsixSnapshot,
  type PciConfigMechanismSnapshot,
  type PciEcamSnapshot,
  type PciRootComplexSnapshot,
  type PciRootComplexState,
} from "./pci/root-complex-snapshot.js";
export { ROUTE_STALE, ROUTE_UNMAPPED } from "./shared/route-layout.js";
export { SharedRouteView, type SharedRouteSource } from "./shared/shared-route-view.js";
export { DEFAULT_ROUTE_CAPACITY, SharedRouteTable, type RouteHandleOf, type SharedRouteTableOptions } from "./shared/shared-route-table.js";
export { SHARED_ROUTES_SNAPSHOT_FORMAT, type SharedRouteEntry, type SharedRouteSnapshot } from "./shared/shared-route-snapshot.js";
