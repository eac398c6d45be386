/**
 * `firecracker-x86_64`: a Firecracker v1.16 microVM on x86_64, with exactly the six pools of its
 * `ResourceAllocator::new()` (firecracker-microvm/firecracker v1.16.1,
 * `src/vmm/src/vstate/resources.rs`) and the constants of `src/vmm/src/arch/x86_64/layout.rs`.
 *
 * What Firecracker places itself, outside every pool: the boot-timer page at
 * `BOOT_DEVICE_MEM_START` (when `boot_timer` is on), the PCIe MMCONFIG window from
 * `PCI_MMCONFIG_START` up to the IOAPIC, the IOAPIC (`IOAPIC_ADDR`), the local APIC
 * (`APIC_ADDR`), the KVM TSS (`KVM_TSS_ADDRESS`), and the legacy devices of
 * `src/vmm/src/device_manager/legacy.rs`: COM1 at port 0x3f8 on GSI 4 and the i8042 at 0x60 on
 * GSI 1. Firecracker has no port allocator, so this preset has no `pio` pool: those two are fixed
 * devices of a plan. Nothing inside the pools is reserved.
 */
import type { SystemLayout } from "../layouts.js";
import { deepFreeze, FOUR_GIB, GiB, KiB, MiB, U32_LAST, x86Board, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** firecracker src/vmm/src/device_manager/mmio.rs `MMIO_LEN`: one virtio-mmio slot. */
export const FC_MMIO_LEN = 0x1000n;
/** layout.rs `MMIO32_MEM_SIZE` = 1024 MiB, `MMIO32_MEM_START` = `FIRST_ADDR_PAST_32BITS` - `MMIO32_MEM_SIZE`. */
const MMIO32_MEM_START = FOUR_GIB - 1024n * MiB;
/** layout.rs `BOOT_DEVICE_MEM_START` = `MMIO32_MEM_START` (the boot timer's page). */
const BOOT_DEVICE_MEM_START = MMIO32_MEM_START;
/** layout.rs `MEM_32BIT_DEVICES_START` = `BOOT_DEVICE_MEM_START` + `MMIO_LEN`. */
const MEM_32BIT_DEVICES_START = BOOT_DEVICE_MEM_START + FC_MMIO_LEN;
/** layout.rs `IOAPIC_ADDR`. */
const IOAPIC_ADDR = 0xfec0_0000n;
/** layout.rs `PCI_MMCONFIG_SIZE` = 256 << 20, `PCI_MMCONFIG_START` = `IOAPIC_ADDR` - `PCI_MMCONFIG_SIZE`. */
const PCI_MMCONFIG_START = IOAPIC_ADDR - 256n * MiB;
/** layout.rs `MEM_32BIT_DEVICES_SIZE` = `PCI_MMCONFIG_START` - `MEM_32BIT_DEVICES_START`. */
const MEM_32BIT_DEVICES_SIZE = PCI_MMCONFIG_START - MEM_32BIT_DEVICES_START;
/** layout.rs `MMIO64_MEM_START` = 256 << 30 = `MEM_64BIT_DEVICES_START`. */
const MEM_64BIT_DEVICES_START = 256n * GiB;
/** layout.rs `MMIO64_MEM_SIZE` = 256 << 30 = `MEM_64BIT_DEVICES_SIZE`. */
const MEM_64BIT_DEVICES_SIZE = 256n * GiB;
/** layout.rs `FIRST_ADDR_PAST_64BITS_MMIO` = `MMIO64_MEM_START` + `MMIO64_MEM_SIZE`. */
const FIRST_ADDR_PAST_64BITS_MMIO = MEM_64BIT_DEVICES_START + MEM_64BIT_DEVICES_SIZE;
/** layout.rs `PAST_64BITS_MMIO_SIZE` = 512 << 30. */
const PAST_64BITS_MMIO_SIZE = 512n * GiB;
/** layout.rs `SYSTEM_MEM_START`: where the EBDA starts, the last 1 KiB below 640 KiB. */
const SYSTEM_MEM_START = 0x9_fc00n;
/** layout.rs `RSDP_ADDR`; `SYSTEM_MEM_SIZE` = `RSDP_ADDR` - `SYSTEM_MEM_START`. */
const RSDP_ADDR = 0xe_0000n;
/** layout.rs `GSI_LEGACY_START` and `GSI_LEGACY_END` (0-4 are the PIC, timer, i8042 and COM lines). */
const GSI_LEGACY_START = 5;
const GSI_LEGACY_END = 23;
/** layout.rs `GSI_MSI_START` = `GSI_LEGACY_END` + 1, `GSI_MSI_END` = 4095 (KVM_MAX_IRQ_ROUTES = 4096). */
const GSI_MSI_START = GSI_LEGACY_END + 1;
const GSI_MSI_END = 4095;
/** firecracker src/vmm/src/vmm_config/machine_config.rs `DEFAULT_MEM_SIZE_MIB` = 128. */
const DEFAULT_MEM_SIZE = 128n * MiB;

function layout(): SystemLayout {
  return deepFreeze({
    name: "firecracker-x86_64",
    // resources.rs `system_memory`: [SYSTEM_MEM_START, RSDP_ADDR) for ACPI tables, the MP table, vmgenid, vmclock.
    systemMemory: { base: SYSTEM_MEM_START, size: RSDP_ADDR - SYSTEM_MEM_START },
    // resources.rs `mmio32_memory`: [MEM_32BIT_DEVICES_START, PCI_MMCONFIG_START).
    mmio32: { base: MEM_32BIT_DEVICES_START, size: MEM_32BIT_DEVICES_SIZE },
    // resources.rs `mmio64_memory`.
    mmio64: { base: MEM_64BIT_DEVICES_START, size: MEM_64BIT_DEVICES_SIZE },
    // resources.rs `past_mmio64_memory`: pmem backing (2 MiB aligned) and virtio-mem (slot aligned).
    pastMmio64: { base: FIRST_ADDR_PAST_64BITS_MMIO, size: PAST_64BITS_MMIO_SIZE },
    // resources.rs `gsi_legacy_allocator` and `gsi_msi_allocator`.
    legacyIrq: { first: GSI_LEGACY_START, last: GSI_LEGACY_END },
    msi: { first: GSI_MSI_START, last: GSI_MSI_END },
    instanceId: { first: 0, last: U32_LAST },
    reserved: [],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  // arch/x86_64/mod.rs `arch_memory_regions`: RAM up to MMIO32_MEM_START, the rest from 4 GiB.
  return x86Board(p.ramSize, MMIO32_MEM_START, IOAPIC_ADDR);
}

/** The `firecracker-x86_64` preset. */
export const FIRECRACKER_X86_64_PRESET: Preset = deepFreeze({
  name: "firecracker-x86_64",
  machine: "Firecracker v1.16 microVM",
  arch: "x86_64",
  source: "firecracker-microvm/firecracker v1.16.1: src/vmm/src/arch/x86_64/layout.rs, src/vmm/src/vstate/resources.rs",
  parameters: [],
  defaults: { ramSize: DEFAULT_MEM_SIZE, physAddressBits: 46 },
  limits: { minRamSize: 4n * KiB, maxRamSize: MEM_64BIT_DEVICES_START - FOUR_GIB + MMIO32_MEM_START, physAddressBits: [46, 46] },
  layout,
  board,
} satisfies Preset);
