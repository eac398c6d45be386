/**
 * `pc-x86_64`: QEMU's q35 machine with SeaBIOS, as a Linux guest sees it, for a given RAM size.
 *
 * Sources: qemu/qemu `hw/i386/pc_q35.c` (`pc_q35_init`: the RAM split below and above 4 GiB),
 * `hw/i386/pc.c` (`pc_pci_hole64_start`), `hw/pci-host/q35.c` and `include/hw/pci-host/q35.h`
 * (MMCONFIG, the 64-bit hole size), `include/hw/southbridge/ich9.h` (PIRQ lines, RCBA size),
 * `target/i386/kvm/kvm.c` (`kvm_arch_init`: identity map and TSS); coreboot/seabios
 * `src/fw/pciinit.c` (the 32-bit window, I/O BARs from 0xc000), `src/fw/dev-q35.h`,
 * `src/config.h`.
 *
 * - `mmio32` covers [MMCONFIG, 4 GiB). Firmware places 32-bit BARs in [0xc000_0000, 0xfec0_0000)
 *   (SeaBIOS `mch_mem_addr_setup`: `pcimem_start` = MMCONFIG end; `BUILD_PCIMEM_END`); the fixed
 *   regions above it are named reservations, the gaps between them `system-area`.
 * - `mmio64`: QEMU's 64-bit PCI hole, right after the RAM above 4 GiB (at 4 GiB when there is
 *   none), rounded up to 1 GiB, `Q35_PCI_HOST_HOLE64_SIZE_DEFAULT` = 32 GiB long. (SeaBIOS may map
 *   64-bit BARs higher when it knows the CPU's address width, and QEMU then widens the hole; this
 *   preset keeps QEMU's default window.)
 * - `pio` is SeaBIOS's root-bus I/O window [0xc000, 0xffff]; the ISA devices below it are fixed.
 * - Legacy lines 5..23 (IOAPIC pins). Reserved: LPT1's 7, the RTC's 8, the ACPI SCI's 9, the
 *   PS/2 mouse's 12, and PIRQ A-H = GSIs 16-23, which PCI INTx is derived onto, never allocated:
 *   slots 0-23 rotate over PIRQ E-H = GSIs 20-23 as `(slot + pin) mod 4`, the chipset devices at
 *   00:19-00:1f use PIRQ A-D (see `Q35_INTX_ROUTING`). MSI GSIs 24..4095 as under KVM.
 */
import type { SystemLayout } from "../layouts.js";
import { alignUp, deepFreeze, FOUR_GIB, GiB, KiB, MiB, TiB, U32_LAST, x86Board, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** qemu include/hw/pci-host/q35.h `MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT` (SeaBIOS dev-q35.h `Q35_HOST_BRIDGE_PCIEXBAR_ADDR`). */
const PCIEXBAR_DEFAULT = 0xb000_0000n;
/** qemu q35.h `MCH_HOST_BRIDGE_PCIEXBAR_MAX` = 256 MiB (SeaBIOS `Q35_HOST_BRIDGE_PCIEXBAR_SIZE`). */
const PCIEXBAR_MAX = 256n * MiB;
/** qemu pc_q35.c `pc_q35_init`: RAM of at least 0xb0000000 bytes is split, 2 GiB below 4 GiB (1 GiB aligned). */
const SPLIT_THRESHOLD = 0xb000_0000n;
const LOWMEM_WHEN_SPLIT = 0x8000_0000n;
/** qemu hw/pci-host/q35.c `Q35_PCI_HOST_HOLE64_SIZE_DEFAULT` = 1 << 35. */
const HOLE64_SIZE_DEFAULT = 1n << 35n;
/** qemu include/hw/intc/ioapic.h `IO_APIC_DEFAULT_ADDRESS` (SeaBIOS config.h `BUILD_IOAPIC_ADDR`); its region is one page. */
const IOAPIC_ADDRESS = 0xfec0_0000n;
/** qemu include/hw/timer/hpet.h `HPET_BASE` (SeaBIOS `BUILD_HPET_ADDRESS`), `HPET_LEN` = 0x400. */
const HPET_BASE = 0xfed0_0000n;
const HPET_LEN = 0x400n;
/** SeaBIOS dev-q35.h `ICH9_LPC_RCBA_ADDR` (the root complex register block); qemu ich9.h `ICH9_CC_SIZE` = 16 KiB. */
const RCBA_ADDR = 0xfed1_c000n;
const RCBA_SIZE = 16n * KiB;
/** qemu target/i386/cpu.h `APIC_DEFAULT_ADDRESS`, `APIC_SPACE_SIZE` = 1 MiB: the local APIC and the MSI address window. */
const APIC_DEFAULT_ADDRESS = 0xfee0_0000n;
/** qemu target/i386/kvm/kvm.c `kvm_arch_init`: identity map at 0xfeffc000, TSS one page above, 0x4000 in all (e820 reserved). */
const KVM_IDENTITY_BASE = 0xfeff_c000n;
const KVM_IDENTITY_SIZE = 0x4000n;
/** qemu hw/i386/x86-common.c (hw/i386/x86.c in older releases) `x86_bios_rom_init`: the BIOS image ends at 4 GiB; SeaBIOS bios-256k.bin is 256 KiB. */
const BIOS_SIZE = 256n * KiB;
/** SeaBIOS pciinit.c `pci_bios_init_root_regions_io`: I/O BARs from 0xc000 when they fit below 0x10000. */
const PCI_IO_BASE = 0xc000n;
/** qemu ich9.h `ICH9_LPC_PIC_NUM_PINS` = 16: PIRQ A-H are GSIs 16..23 (`ICH9_LPC_NB_PIRQS` = 8). */
const PIRQ_FIRST_GSI = 16;
const PIRQ_COUNT = 8;
/** qemu hw/core/machine.c `machine_class_init`: `default_ram_size` = 128 MiB. */
const DEFAULT_RAM_SIZE = 128n * MiB;

/** The 64-bit window of q35 for `ramSize` bytes of RAM (qemu pc.c `pc_pci_hole64_start`). */
export function pcHole64Start(ramSize: bigint): bigint {
  const below4g = ramSize >= SPLIT_THRESHOLD ? LOWMEM_WHEN_SPLIT : ramSize;
  return alignUp(FOUR_GIB + (ramSize - below4g), 1n * GiB);
}

function layout(p: ResolvedParameters): SystemLayout {
  const systemArea = (start: bigint, end: bigint) => ({ pool: "mmio32" as const, start, end, owner: "system-area" });
  const biosStart = FOUR_GIB - BIOS_SIZE;
  return deepFreeze({
    name: "pc-x86_64",
    pio: { base: PCI_IO_BASE, size: 0x1_0000n - PCI_IO_BASE },
    mmio32: { base: PCIEXBAR_DEFAULT, size: FOUR_GIB - PCIEXBAR_DEFAULT },
    mmio64: { base: pcHole64Start(p.ramSize), size: HOLE64_SIZE_DEFAULT },
    legacyIrq: { first: 5, last: 23 },
    msi: { first: 24, last: 4095 },
    instanceId: { first: 0, last: U32_LAST },
    reserved: [
      { pool: "mmio32", start: PCIEXBAR_DEFAULT, size: PCIEXBAR_MAX, owner: "pci-mmconfig" },
      { pool: "mmio32", start: IOAPIC_ADDRESS, size: 4n * KiB, owner: "ioapic" },
      systemArea(IOAPIC_ADDRESS + 4n * KiB, HPET_BASE - 1n),
      { pool: "mmio32", start: HPET_BASE, size: HPET_LEN, owner: "hpet" },
      systemArea(HPET_BASE + HPET_LEN, RCBA_ADDR - 1n),
      { pool: "mmio32", start: RCBA_ADDR, size: RCBA_SIZE, owner: "ich9-rcba" },
      systemArea(RCBA_ADDR + RCBA_SIZE, APIC_DEFAULT_ADDRESS - 1n),
      { pool: "mmio32", start: APIC_DEFAULT_ADDRESS, size: 1n * MiB, owner: "lapic" },
      systemArea(APIC_DEFAULT_ADDRESS + 1n * MiB, KVM_IDENTITY_BASE - 1n),
      { pool: "mmio32", start: KVM_IDENTITY_BASE, size: KVM_IDENTITY_SIZE, owner: "kvm-identity-map-tss" },
      systemArea(KVM_IDENTITY_BASE + KVM_IDENTITY_SIZE, biosStart - 1n),
      { pool: "mmio32", start: biosStart, size: BIOS_SIZE, owner: "bios" },
      // hw/char/parallel-isa.c, hw/rtc/mc146818rtc.c (`RTC_ISA_IRQ`), hw/isa/lpc_ich9.c (SCI on 9), hw/input/pckbd.c (mouse on 12).
      { pool: "legacyIrq", start: 7, owner: "lpt1" },
      { pool: "legacyIrq", start: 8, owner: "rtc" },
      { pool: "legacyIrq", start: 9, owner: "acpi-sci" },
      { pool: "legacyIrq", start: 12, owner: "ps2-mouse" },
      { pool: "legacyIrq", start: PIRQ_FIRST_GSI, end: PIRQ_FIRST_GSI + PIRQ_COUNT - 1, owner: "pci-intx" },
    ],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  const below4g = p.ramSize >= SPLIT_THRESHOLD ? LOWMEM_WHEN_SPLIT : p.ramSize;
  // Slots 0-23 rotate over PIRQ E-H (qemu hw/isa/lpc_ich9.c `ich9_cc_init`: `(slot + intx) % 4 + 4`),
  // GSIs 20-23; the full wiring, with 00:19-00:1f on PIRQ A-D, is `Q35_INTX_ROUTING` (src/pci/intx.ts).
  return x86Board(p.ramSize, below4g, IOAPIC_ADDRESS, { ecam: { base: PCIEXBAR_DEFAULT, size: PCIEXBAR_MAX }, lastBus: 255, ioCpuBase: 0n, intxBase: PIRQ_FIRST_GSI + 4, presentByDefault: true });
}

/** The `pc-x86_64` preset. */
export const PC_X86_64_PRESET: Preset = deepFreeze({
  name: "pc-x86_64",
  machine: "QEMU q35 + SeaBIOS",
  arch: "x86_64",
  source: "qemu/qemu: hw/i386/pc_q35.c, hw/i386/pc.c, hw/pci-host/q35.c, include/hw/southbridge/ich9.h; coreboot/seabios: src/fw/pciinit.c",
  parameters: ["ramSize"],
  defaults: { ramSize: DEFAULT_RAM_SIZE, physAddressBits: 40 },
  // The 64-bit hole must stay below 2^64; QEMU's own limit is far lower, this is the allocator's.
  limits: { minRamSize: 4n * KiB, maxRamSize: 16n * TiB, physAddressBits: [40, 40] },
  layout,
  board,
} satisfies Preset);
