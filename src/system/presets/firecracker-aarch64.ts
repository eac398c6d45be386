/**
 * `firecracker-aarch64`: a Firecracker v1.16 microVM on aarch64, with the six pools of its
 * `ResourceAllocator::new()` (firecracker-microvm/firecracker v1.16.1,
 * `src/vmm/src/vstate/resources.rs`) over the constants of `src/vmm/src/arch/aarch64/layout.rs`.
 *
 * Outside the pools, at fixed addresses: the GICv3 below `MMIO32_MEM_START`
 * (`src/vmm/src/arch/aarch64/gic/gicv3/mod.rs`), the boot-timer page at `BOOT_DEVICE_MEM_START`,
 * the PL031 RTC at `RTC_MEM_START` and the 16550 serial at `SERIAL_MEM_START` (each taking the
 * next legacy GSI when `attach_legacy_devices_aarch64` runs, after the virtio devices), and the
 * PCIe MMCONFIG window from `PCI_MMCONFIG_START` up to RAM. The system-memory pool is the first
 * 2 MiB of RAM, which the device tree's memory node leaves out (`fdt.rs` `create_memory_node`).
 *
 * GSIs here are SPI numbers counted from the first SPI (KVM adds `SPI_START`); a device tree
 * writes them as `<GIC_SPI gsi flags>`.
 */
import type { SystemLayout } from "../layouts.js";
import { deepFreeze, GiB, KiB, MiB, U32_LAST, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** firecracker src/vmm/src/device_manager/mmio.rs `MMIO_LEN`. */
const MMIO_LEN = 0x1000n;
/** aarch64/layout.rs `DRAM_MEM_START` (2 GiB) = `SYSTEM_MEM_START`. */
const DRAM_MEM_START = 0x8000_0000n;
/** aarch64/layout.rs `DRAM_MEM_MAX_SIZE` (1022 GiB). */
const DRAM_MEM_MAX_SIZE = 0xff_8000_0000n;
/** aarch64/layout.rs `SYSTEM_MEM_SIZE` (2 MiB: the kernel image follows, 2 MiB aligned). */
const SYSTEM_MEM_SIZE = 0x20_0000n;
/** aarch64/layout.rs `MMIO32_MEM_START` = 1 << 30: the GIC lies below, devices above. */
const MMIO32_MEM_START = 1n * GiB;
/** aarch64/layout.rs `BOOT_DEVICE_MEM_START` = `MMIO32_MEM_START`; `RTC_MEM_START` and `SERIAL_MEM_START` follow, one `MMIO_LEN` each. */
export const FC_AARCH64_BOOT_DEVICE_MEM_START = MMIO32_MEM_START;
export const FC_AARCH64_RTC_MEM_START = FC_AARCH64_BOOT_DEVICE_MEM_START + MMIO_LEN;
export const FC_AARCH64_SERIAL_MEM_START = FC_AARCH64_RTC_MEM_START + MMIO_LEN;
/** aarch64/layout.rs `MEM_32BIT_DEVICES_START` = `SERIAL_MEM_START` + `MMIO_LEN`. */
const MEM_32BIT_DEVICES_START = FC_AARCH64_SERIAL_MEM_START + MMIO_LEN;
/** aarch64/layout.rs `PCI_MMCONFIG_SIZE` = 256 << 20, `PCI_MMCONFIG_START` = `DRAM_MEM_START` - `PCI_MMCONFIG_SIZE`. */
const PCI_MMCONFIG_SIZE = 256n * MiB;
const PCI_MMCONFIG_START = DRAM_MEM_START - PCI_MMCONFIG_SIZE;
/** aarch64/layout.rs `PCI_MMIO_CONFIG_SIZE_PER_SEGMENT` = 4096 * 256 (one bus). */
const PCI_MMIO_CONFIG_SIZE_PER_SEGMENT = 4096n * 256n;
/** aarch64/layout.rs `MEM_64BIT_DEVICES_START` = `MMIO64_MEM_START` = 256 << 30, size `MMIO64_MEM_SIZE` = 256 << 30. */
const MEM_64BIT_DEVICES_START = 256n * GiB;
const MEM_64BIT_DEVICES_SIZE = 256n * GiB;
/** aarch64/layout.rs `FIRST_ADDR_PAST_64BITS_MMIO` and `PAST_64BITS_MMIO_SIZE` = 512 << 30. */
const FIRST_ADDR_PAST_64BITS_MMIO = MEM_64BIT_DEVICES_START + MEM_64BIT_DEVICES_SIZE;
const PAST_64BITS_MMIO_SIZE = 512n * GiB;
/** aarch64/layout.rs `GSI_LEGACY_START` = 0, `GSI_LEGACY_NUM` = `SPI_END` (127) - `SPI_START` (32) + 1 = 96. */
const GSI_LEGACY_START = 0;
const GSI_LEGACY_END = GSI_LEGACY_START + (127 - 32 + 1) - 1;
/** aarch64/layout.rs `GSI_MSI_START` = `GSI_LEGACY_END` + 1, `GSI_MSI_END` = 4095. */
const GSI_MSI_START = GSI_LEGACY_END + 1;
const GSI_MSI_END = 4095;
/** gicv3/mod.rs `KVM_VGIC_V3_DIST_SIZE` = 64 KiB, at `MMIO32_MEM_START` - that size. */
const GIC_DIST_SIZE = 64n * KiB;
/** gicv3/mod.rs `KVM_VGIC_V3_REDIST_SIZE` = 2 * 64 KiB per vCPU, below the distributor. */
const GIC_REDIST_SIZE = 2n * 64n * KiB;
/** gicv3/mod.rs `GIC_V3_ITS_SIZE` = 0x2_0000, below the redistributors. */
const GIC_ITS_SIZE = 0x2_0000n;
/** gicv3/mod.rs `ARCH_GIC_V3_MAINT_IRQ` = 9 (a PPI). */
const GIC_MAINT_IRQ = 9;
/** firecracker src/vmm/src/vmm_config/machine_config.rs `DEFAULT_MEM_SIZE_MIB` = 128. */
const DEFAULT_MEM_SIZE = 128n * MiB;

function layout(): SystemLayout {
  return deepFreeze({
    name: "firecracker-aarch64",
    // resources.rs `system_memory`: [SYSTEM_MEM_START, +SYSTEM_MEM_SIZE), vmgenid, vmclock and pvtime.
    systemMemory: { base: DRAM_MEM_START, size: SYSTEM_MEM_SIZE },
    // resources.rs `mmio32_memory`: [MEM_32BIT_DEVICES_START, PCI_MMCONFIG_START).
    mmio32: { base: MEM_32BIT_DEVICES_START, size: PCI_MMCONFIG_START - MEM_32BIT_DEVICES_START },
    mmio64: { base: MEM_64BIT_DEVICES_START, size: MEM_64BIT_DEVICES_SIZE },
    pastMmio64: { base: FIRST_ADDR_PAST_64BITS_MMIO, size: PAST_64BITS_MMIO_SIZE },
    legacyIrq: { first: GSI_LEGACY_START, last: GSI_LEGACY_END },
    msi: { first: GSI_MSI_START, last: GSI_MSI_END },
    instanceId: { first: 0, last: U32_LAST },
    reserved: [],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  return deepFreeze({
    arch: "aarch64",
    // fdt.rs `create_fdt`: root `compatible`.
    compatible: "linux,dummy-virt",
    // fdt.rs `create_memory_node`: DRAM from DRAM_MEM_START, less the system-memory region at its start.
    memory: [{ base: DRAM_MEM_START + SYSTEM_MEM_SIZE, size: p.ramSize - SYSTEM_MEM_SIZE }],
    interruptController: {
      kind: "gic-v3",
      distributor: { base: MMIO32_MEM_START - GIC_DIST_SIZE, size: GIC_DIST_SIZE },
      redistributorPerCpu: GIC_REDIST_SIZE,
      itsSize: GIC_ITS_SIZE,
      maintenancePpi: GIC_MAINT_IRQ,
    },
    // pci_segment / fdt.rs `create_pci_nodes`: one segment, ECAM at PCI_MMCONFIG_START, bus 0 only, MSIs through the ITS.
    pci: { ecam: { base: PCI_MMCONFIG_START, size: PCI_MMIO_CONFIG_SIZE_PER_SEGMENT }, lastBus: 0, msiThroughIts: true, presentByDefault: false },
    // fdt.rs `create_clock_node`: a 24 MHz fixed clock the UART and RTC use.
    uartClock: { kind: "clock-node", hz: 24_000_000 },
  } satisfies Board);
}

/** The `firecracker-aarch64` preset. */
export const FIRECRACKER_AARCH64_PRESET: Preset = deepFreeze({
  name: "firecracker-aarch64",
  machine: "Firecracker v1.16 microVM",
  arch: "aarch64",
  source: "firecracker-microvm/firecracker v1.16.1: src/vmm/src/arch/aarch64/layout.rs, src/vmm/src/vstate/resources.rs, src/vmm/src/arch/aarch64/fdt.rs",
  parameters: ["ramSize"],
  defaults: { ramSize: DEFAULT_MEM_SIZE, physAddressBits: 40 },
  limits: { minRamSize: SYSTEM_MEM_SIZE + 4n * KiB, maxRamSize: DRAM_MEM_MAX_SIZE, physAddressBits: [40, 40] },
  layout,
  board,
} satisfies Preset);
