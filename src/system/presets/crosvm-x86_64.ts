/**
 * `crosvm-x86_64`: crosvm on x86_64 with its default PCI configuration, for a given RAM size and
 * guest physical address width.
 *
 * Sources (google/crosvm, main as of 2026-08): `x86_64/src/lib.rs` (`create_arch_memory_layout`,
 * `get_system_allocator_config`, `get_high_mmio_range`, `get_pcie_vcfg_mmio_range`,
 * `arch_memory_regions`, the IRQ constants), `resources/src/system_allocator.rs`
 * (`SystemAllocator::new`: the pools and their minimum alignments), `hypervisor/src/x86_64.rs`
 * (`NUM_IOAPIC_PINS`).
 *
 * - `pio`: [0xc000, 0xffff], so legacy ports are never handed out. crosvm's port allocator has a
 *   minimum alignment of 0x400; its MMIO pools of one page.
 * - `mmio32`: the low MMIO window from min(ECAM start, 4 GiB - `MEM_32BIT_GAP_SIZE`) to
 *   `DEFAULT_PCI_MEM_END`, with the ECAM (`DEFAULT_PCIE_CFG_MMIO_*`, 64 MiB below the 128 MiB
 *   `RESERVED_MEM_SIZE` under 4 GiB) reserved inside it as crosvm's `reserve_mmio` does.
 * - `mmio64`: from the end of the PCIe virtual-config region (twice the ECAM, at RAM end rounded
 *   up to 2 MiB or 4 GiB, whichever is higher) to min(2^phys_bits - 1, `HIGH_MMIO_MAX_END`).
 * - IRQs: crosvm hands out legacy lines and MSI routes from one pool, `first_irq` =
 *   `X86_64_IRQ_BASE` (9, since the CMOS RTC holds 8) to 1023. This layout splits that pool at
 *   the IOAPIC's pin count: 9..23 for pin-based lines, 24..1023 for MSI. (crosvm itself would give
 *   an MSI route a number below 24 once the lines before it are taken; a plan here never does.)
 *   The ACPI SCI is IRQ 5 (`X86_64_SCI_IRQ`), below the pool. PCI INTx takes at most four lines,
 *   allocated in device order and then shared (`generate_pci_root` with `max_irqs` = 4).
 */
import { AllocatorError } from "../../core/errors.js";
import type { SystemLayout } from "../layouts.js";
import { alignUp, deepFreeze, FOUR_GIB, KiB, MiB, TiB, U32_LAST, x86Board, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** x86_64/src/lib.rs `MEM_32BIT_GAP_SIZE` = 768 MiB. */
const MEM_32BIT_GAP_SIZE = 768n * MiB;
/** lib.rs `RESERVED_MEM_SIZE` = 0x800_0000, `DEFAULT_PCI_MEM_END` = `FIRST_ADDR_PAST_32BITS` - `RESERVED_MEM_SIZE` - 1. */
const RESERVED_MEM_SIZE = 0x800_0000n;
const DEFAULT_PCI_MEM_END = FOUR_GIB - RESERVED_MEM_SIZE - 1n;
/** lib.rs `DEFAULT_PCIE_CFG_MMIO_SIZE` = 0x400_0000, `DEFAULT_PCIE_CFG_MMIO_END` = `DEFAULT_PCI_MEM_END`. */
const DEFAULT_PCIE_CFG_MMIO_SIZE = 0x400_0000n;
const DEFAULT_PCIE_CFG_MMIO_END = DEFAULT_PCI_MEM_END;
const DEFAULT_PCIE_CFG_MMIO_START = DEFAULT_PCIE_CFG_MMIO_END - DEFAULT_PCIE_CFG_MMIO_SIZE + 1n;
/** lib.rs `HIGH_MMIO_MAX_END` = (1 << 46) - 1. */
const HIGH_MMIO_MAX_END = (1n << 46n) - 1n;
/** lib.rs `get_system_allocator_config`: `io` = 0xc000..=0xffff. */
const IO_START = 0xc000n;
/** lib.rs `X86_64_IRQ_BASE` = 9 ("The CMOS RTC uses IRQ 8; start allocating IRQs at 9"). */
const X86_64_IRQ_BASE = 9;
/** resources/src/system_allocator.rs `SystemAllocator::new`: `irq_allocator` ends at 1023. */
const LAST_IRQ = 1023;
/** hypervisor/src/x86_64.rs `NUM_IOAPIC_PINS` = 24. */
const NUM_IOAPIC_PINS = 24;
/** The IOAPIC crosvm's irqchip emulates: devices/src/irqchip/ioapic.rs `IOAPIC_BASE_ADDRESS`. */
const IOAPIC_BASE_ADDRESS = 0xfec0_0000n;
/** src/crosvm/sys/linux.rs `setup_vm_components`: `memory_size` defaults to 256 MiB. */
const DEFAULT_MEMORY = 256n * MiB;
const DEFAULT_PHYS_BITS = 46;

/** The low MMIO window's start: `pcie_cfg_mmio.start.min(FIRST_ADDR_PAST_32BITS - MEM_32BIT_GAP_SIZE)`. */
const LOW_MMIO_START = DEFAULT_PCIE_CFG_MMIO_START < FOUR_GIB - MEM_32BIT_GAP_SIZE ? DEFAULT_PCIE_CFG_MMIO_START : FOUR_GIB - MEM_32BIT_GAP_SIZE;

/** lib.rs `arch_memory_regions`: the end of RAM, which runs up to the low MMIO window and continues at 4 GiB. */
function ramEnd(ramSize: bigint): bigint {
  return ramSize <= LOW_MMIO_START ? ramSize : FOUR_GIB + (ramSize - LOW_MMIO_START);
}

/** lib.rs `get_high_mmio_range`'s start: after the virtual-config region at max(RAM end rounded up to 2 MiB, 4 GiB). */
export function crosvmHighMmioStart(ramSize: bigint): bigint {
  const rounded = alignUp(ramEnd(ramSize), 2n * MiB);
  const vcfgStart = rounded > FOUR_GIB ? rounded : FOUR_GIB;
  return vcfgStart + DEFAULT_PCIE_CFG_MMIO_SIZE * 2n;
}

function layout(p: ResolvedParameters): SystemLayout {
  const physEnd = (1n << BigInt(p.physAddressBits)) - 1n;
  const highEnd = physEnd < HIGH_MMIO_MAX_END ? physEnd : HIGH_MMIO_MAX_END;
  const highStart = crosvmHighMmioStart(p.ramSize);
  if (highStart > highEnd) {
    throw new AllocatorError(
      "InvalidArgument",
      `parameters: ${p.ramSize >> 20n} MiB of RAM leaves no high MMIO below 2^${p.physAddressBits}; give fewer RAM or more physAddressBits`,
    );
  }
  return deepFreeze({
    name: "crosvm-x86_64",
    pio: { base: IO_START, size: 0x1_0000n - IO_START },
    mmio32: { base: LOW_MMIO_START, size: DEFAULT_PCI_MEM_END - LOW_MMIO_START + 1n },
    mmio64: { base: highStart, size: highEnd - highStart + 1n },
    legacyIrq: { first: X86_64_IRQ_BASE, last: NUM_IOAPIC_PINS - 1 },
    msi: { first: NUM_IOAPIC_PINS, last: LAST_IRQ },
    instanceId: { first: 0, last: U32_LAST },
    // lib.rs `build_vm`: "punch pcie config mmio from pci low mmio".
    reserved: [{ pool: "mmio32", start: DEFAULT_PCIE_CFG_MMIO_START, end: DEFAULT_PCIE_CFG_MMIO_END, owner: "pcie-ecam" }],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  return x86Board(p.ramSize, LOW_MMIO_START, IOAPIC_BASE_ADDRESS);
}

/** The `crosvm-x86_64` preset. */
export const CROSVM_X86_64_PRESET: Preset = deepFreeze({
  name: "crosvm-x86_64",
  machine: "crosvm",
  arch: "x86_64",
  source: "google/crosvm: x86_64/src/lib.rs, resources/src/system_allocator.rs",
  parameters: ["ramSize", "physAddressBits"],
  defaults: { ramSize: DEFAULT_MEMORY, physAddressBits: DEFAULT_PHYS_BITS },
  limits: { minRamSize: 4n * KiB, maxRamSize: 16n * TiB, physAddressBits: [36, 52] },
  layout,
  board,
} satisfies Preset);
