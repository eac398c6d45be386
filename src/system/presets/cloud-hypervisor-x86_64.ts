/**
 * `cloud-hypervisor-x86_64`: cloud-hypervisor v53 on x86_64, for a given RAM size and guest
 * physical address width.
 *
 * Sources (cloud-hypervisor/cloud-hypervisor v53.0): `arch/src/x86_64/layout.rs` (the 32-bit
 * device area and MMCONFIG), `vmm/src/memory_manager.rs` (`MemoryManager::new`: the system
 * allocator, the platform area, the start of the device area), `vm-allocator/src/system.rs` and
 * `vm-allocator/src/gsi.rs` (I/O space, platform MMIO, IRQs and GSIs), `vmm/src/device_manager.rs`
 * and `vmm/src/pci_segment.rs` (the PCI windows of segment 0, the eight INTx lines).
 *
 * - `pio`: the whole 16-bit port space (`SystemAllocator::new(GuestAddress(0), 1 << 16, ..)`).
 * - `mmio32`: PCI segment 0's 32-bit window, `MEM_32BIT_DEVICES_START`, 640 MiB; MMCONFIG, the
 *   KVM TSS and identity map follow it, outside the pool.
 * - `mmio64`: the device area, from the end of RAM above 4 GiB (4 GiB when all RAM fits below
 *   `MEM_32BIT_RESERVED_START`) up to the platform area.
 * - `pastMmio64`: the platform MMIO area (ACPI device registers), `PLATFORM_DEVICE_AREA_SIZE`
 *   = 1 MiB just below `mmio_address_space_size(phys_bits)` = 2^phys_bits - 64 KiB.
 * - IRQs 5..23 (`X86_64_IRQ_BASE`, `NUM_IOAPIC_PINS`), GSIs for MSI from 24 to 4095. The first
 *   eight IRQs are taken by `reserve_legacy_interrupts_for_pci_devices` before any device and
 *   shared by the 32 slots of the bus: they are reserved here as `pci-intx`.
 *
 * cloud-hypervisor's address allocator places top-down (`vm-allocator/src/address.rs`
 * `first_available_range` walks the ranges in reverse): give its requests `placement: "last"`.
 * Platform MMIO allocations default to page alignment (`get_page_size`).
 */
import { AllocatorError } from "../../core/errors.js";
import type { SystemLayout } from "../layouts.js";
import { deepFreeze, FOUR_GIB, KiB, MiB, TiB, U32_LAST, x86Board, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** arch/src/x86_64/layout.rs `MEM_32BIT_RESERVED_START` = 3 GiB = `MEM_32BIT_DEVICES_START`. */
const MEM_32BIT_RESERVED_START = 0xc000_0000n;
/** layout.rs `MEM_32BIT_DEVICES_SIZE` = 640 << 20. */
const MEM_32BIT_DEVICES_SIZE = 640n * MiB;
/** layout.rs `RAM_64BIT_START`. */
const RAM_64BIT_START = FOUR_GIB;
/** layout.rs `IOAPIC_START`. */
const IOAPIC_START = 0xfec0_0000n;
/** vmm/src/memory_manager.rs `PLATFORM_DEVICE_AREA_SIZE` = 1 << 20. */
const PLATFORM_DEVICE_AREA_SIZE = 1n * MiB;
/** memory_manager.rs `X86_64_IRQ_BASE` = 5; devices/src/ioapic.rs `NUM_IOAPIC_PINS` = 24. */
const X86_64_IRQ_BASE = 5;
const NUM_IOAPIC_PINS = 24;
/** vm-allocator/src/gsi.rs `MAX_GUEST_IRQS` = max(`KVM_MAX_IRQ_ROUTES`, `MSHV_MAX_GUEST_IRQS`) = 4096. */
const MAX_GUEST_IRQS = 4096;
/** vmm/src/pci_segment.rs `reserve_legacy_interrupts_for_pci_devices`: `num_irqs` = 8. */
const PCI_INTX_IRQS = 8;
/** vmm/src/vm_config.rs `DEFAULT_MEMORY_MB` = 512 and `DEFAULT_MAX_PHYS_BITS` = 46 (phys_bits = min(host, max), vm.rs `physical_bits`). */
const DEFAULT_MEMORY = 512n * MiB;
const DEFAULT_MAX_PHYS_BITS = 46;

/** memory_manager.rs `mmio_address_space_size`: (1 << phys_bits) - (1 << 16). */
function mmioAddressSpaceSize(physBits: number): bigint {
  return (1n << BigInt(physBits)) - (1n << 16n);
}

/**
 * memory_manager.rs `start_addr` without memory hotplug: the address after the last byte of RAM,
 * or `RAM_64BIT_START` when RAM ends below `MEM_32BIT_RESERVED_START` (`arch_memory_regions`
 * puts RAM below 3 GiB first, the rest from 4 GiB).
 */
export function cloudHypervisorDeviceAreaStart(ramSize: bigint): bigint {
  if (ramSize <= MEM_32BIT_RESERVED_START) return RAM_64BIT_START;
  return RAM_64BIT_START + (ramSize - MEM_32BIT_RESERVED_START);
}

function layout(p: ResolvedParameters): SystemLayout {
  const platformStart = mmioAddressSpaceSize(p.physAddressBits) - PLATFORM_DEVICE_AREA_SIZE;
  const deviceArea = cloudHypervisorDeviceAreaStart(p.ramSize);
  if (deviceArea >= platformStart) {
    throw new AllocatorError(
      "InvalidArgument",
      `parameters: ${p.ramSize >> 20n} MiB of RAM ends at 0x${deviceArea.toString(16)}, past the platform area at 0x${platformStart.toString(16)} of a ${p.physAddressBits}-bit guest; give fewer RAM or more physAddressBits`,
    );
  }
  return deepFreeze({
    name: "cloud-hypervisor-x86_64",
    pio: { base: 0n, size: 1n << 16n },
    mmio32: { base: MEM_32BIT_RESERVED_START, size: MEM_32BIT_DEVICES_SIZE },
    mmio64: { base: deviceArea, size: platformStart - deviceArea },
    pastMmio64: { base: platformStart, size: PLATFORM_DEVICE_AREA_SIZE },
    legacyIrq: { first: X86_64_IRQ_BASE, last: NUM_IOAPIC_PINS - 1 },
    msi: { first: NUM_IOAPIC_PINS, last: MAX_GUEST_IRQS - 1 },
    instanceId: { first: 0, last: U32_LAST },
    reserved: [{ pool: "legacyIrq", start: X86_64_IRQ_BASE, end: X86_64_IRQ_BASE + PCI_INTX_IRQS - 1, owner: "pci-intx" }],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  // arch/src/x86_64/mod.rs `arch_memory_regions`: RAM below 3 GiB, the rest from RAM_64BIT_START.
  return x86Board(p.ramSize, MEM_32BIT_RESERVED_START, IOAPIC_START);
}

/** The `cloud-hypervisor-x86_64` preset. */
export const CLOUD_HYPERVISOR_X86_64_PRESET: Preset = deepFreeze({
  name: "cloud-hypervisor-x86_64",
  machine: "cloud-hypervisor v53",
  arch: "x86_64",
  source: "cloud-hypervisor/cloud-hypervisor v53.0: arch/src/x86_64/layout.rs, vmm/src/memory_manager.rs, vm-allocator/src/system.rs, vmm/src/device_manager.rs",
  parameters: ["ramSize", "physAddressBits"],
  defaults: { ramSize: DEFAULT_MEMORY, physAddressBits: DEFAULT_MAX_PHYS_BITS },
  limits: { minRamSize: 4n * KiB, maxRamSize: 16n * TiB, physAddressBits: [36, 52] },
  layout,
  board,
} satisfies Preset);
