/**
 * `riscv64-virt`: QEMU's RISC-V `virt` board (64-bit harts, the PLIC), for a given RAM size.
 *
 * Sources: qemu/qemu `hw/riscv/virt.c` (`virt_memmap`, `virt_machine_init`: the high PCIe window,
 * `create_fdt_*`: the device-tree nodes) and `include/hw/riscv/virt.h` (interrupt numbers, PLIC
 * geometry).
 *
 * - The eight virtio-mmio transports sit at fixed addresses, `virt_memmap[VIRT_VIRTIO]` =
 *   0x10001000 plus 0x1000 per transport, on PLIC sources `VIRTIO_IRQ` + n = 1..8; QEMU creates all
 *   eight. They are not allocated: a plan gives each device its transport as a fixed range and IRQ
 *   (the PLIC sources 1..8 are reserved here as `virtio-mmio` for them).
 * - `mmio32` is the PCIe 32-bit window `VIRT_PCIE_MMIO`; `mmio64` the 64-bit one, 16 GiB
 *   (`VIRT64_HIGH_PCIE_MMIO_SIZE`) at the end of RAM rounded up to its size; `pio` is PCI I/O
 *   space 0..0xffff, which the CPU sees at `VIRT_PCIE_PIO`.
 * - Legacy lines are PLIC sources 1..95 (`VIRT_IRQCHIP_NUM_SOURCES` = 96; source 0 means none).
 *   Reserved: the transports' 1..8, UART0's 10, the RTC's 11, PCIe INTx's 32..35 (`PCIE_IRQ`,
 *   derived from slot and pin, never allocated) and the platform bus's 64..95.
 * - The PLIC machine has no MSIs. The `msi` pool stands for the 255 IMSIC identities of the
 *   `aia=aplic-imsic` variant (`VIRT_IRQCHIP_NUM_MSIS`), numbered 96..350, after the wired sources,
 *   so that the two never share a number; subtract 95 for the identity a guest sees.
 */
import type { SystemLayout } from "../layouts.js";
import { alignUp, deepFreeze, GiB, KiB, MiB, TiB, U32_LAST, type Board, type Preset, type ResolvedParameters } from "./preset.js";

/** virt.c `virt_memmap[VIRT_PCIE_PIO]` = { 0x3000000, 0x10000 }. */
const VIRT_PCIE_PIO = 0x300_0000n;
const VIRT_PCIE_PIO_SIZE = 0x1_0000n;
/** virt.c `virt_memmap[VIRT_PLIC]` = { 0xc000000, `VIRT_PLIC_SIZE(VIRT_CPUS_MAX * 2)` }. */
const VIRT_PLIC = 0xc00_0000n;
/** virt.h `VIRT_PLIC_CONTEXT_BASE` 0x200000 + contexts * `VIRT_PLIC_CONTEXT_STRIDE` 0x1000, `VIRT_CPUS_MAX` = 1 << `VIRT_CPUS_MAX_BITS` (9). */
const VIRT_PLIC_SIZE = 0x20_0000n + BigInt((1 << 9) * 2) * 0x1000n;
/** virt.c `virt_memmap[VIRT_UART0]` = { 0x10000000, 0x100 }. */
export const RISCV_VIRT_UART0 = 0x1000_0000n;
export const RISCV_VIRT_UART0_SIZE = 0x100n;
/** virt.c `virt_memmap[VIRT_VIRTIO]` = { 0x10001000, 0x1000 }, one per transport; virt.h `VIRTIO_COUNT` = 8. */
export const RISCV_VIRT_VIRTIO = 0x1000_1000n;
export const RISCV_VIRT_VIRTIO_SIZE = 0x1000n;
export const RISCV_VIRT_VIRTIO_COUNT = 8;
/** virt.c `virt_memmap[VIRT_PCIE_ECAM]` = { 0x30000000, 0x10000000 }: 256 buses. */
const VIRT_PCIE_ECAM = 0x3000_0000n;
const VIRT_PCIE_ECAM_SIZE = 0x1000_0000n;
/** virt.c `virt_memmap[VIRT_PCIE_MMIO]` = { 0x40000000, 0x40000000 }. */
const VIRT_PCIE_MMIO = 0x4000_0000n;
const VIRT_PCIE_MMIO_SIZE = 0x4000_0000n;
/** virt.c `virt_memmap[VIRT_DRAM]` base. */
const VIRT_DRAM = 0x8000_0000n;
/** virt.c `VIRT64_HIGH_PCIE_MMIO_SIZE` = 16 GiB; `virt_machine_init` puts it at ROUND_UP(DRAM base + ram_size, size). */
const VIRT64_HIGH_PCIE_MMIO_SIZE = 16n * GiB;
/** virt.h: `VIRTIO_IRQ` = 1 ("1 to 8"), `UART0_IRQ` = 10, `RTC_IRQ` = 11, `PCIE_IRQ` = 0x20 ("32 to 35"), `VIRT_PLATFORM_BUS_IRQ` = 64 ("64 to 95"). */
export const RISCV_VIRT_VIRTIO_IRQ = 1;
export const RISCV_VIRT_UART0_IRQ = 10;
const RTC_IRQ = 11;
const PCIE_IRQ = 0x20;
const VIRT_PLATFORM_BUS_IRQ = 64;
/** virt.h `VIRT_IRQCHIP_NUM_SOURCES` = 96 and `VIRT_IRQCHIP_NUM_MSIS` = 255. */
const VIRT_IRQCHIP_NUM_SOURCES = 96;
const VIRT_IRQCHIP_NUM_MSIS = 255;
/** virt.c `create_fdt_uart`: `clock-frequency` 3686400; target/riscv `RISCV_ACLINT_DEFAULT_TIMEBASE_FREQ` 10 MHz. */
const UART_CLOCK = 3_686_400;
const TIMEBASE = 10_000_000;
/** qemu hw/core/machine.c `machine_class_init`: `default_ram_size` = 128 MiB. */
const DEFAULT_RAM_SIZE = 128n * MiB;

/** The base of the high PCIe window for `ramSize` bytes of RAM. */
export function riscvHighPcieBase(ramSize: bigint): bigint {
  return alignUp(VIRT_DRAM + ramSize, VIRT64_HIGH_PCIE_MMIO_SIZE);
}

function layout(p: ResolvedParameters): SystemLayout {
  return deepFreeze({
    name: "riscv64-virt",
    pio: { base: 0n, size: VIRT_PCIE_PIO_SIZE },
    mmio32: { base: VIRT_PCIE_MMIO, size: VIRT_PCIE_MMIO_SIZE },
    mmio64: { base: riscvHighPcieBase(p.ramSize), size: VIRT64_HIGH_PCIE_MMIO_SIZE },
    legacyIrq: { first: 1, last: VIRT_IRQCHIP_NUM_SOURCES - 1 },
    msi: { first: VIRT_IRQCHIP_NUM_SOURCES, last: VIRT_IRQCHIP_NUM_SOURCES + VIRT_IRQCHIP_NUM_MSIS - 1 },
    instanceId: { first: 0, last: U32_LAST },
    reserved: [
      { pool: "legacyIrq", start: RISCV_VIRT_VIRTIO_IRQ, end: RISCV_VIRT_VIRTIO_IRQ + RISCV_VIRT_VIRTIO_COUNT - 1, owner: "virtio-mmio" },
      { pool: "legacyIrq", start: RISCV_VIRT_UART0_IRQ, owner: "uart0" },
      { pool: "legacyIrq", start: RTC_IRQ, owner: "rtc" },
      { pool: "legacyIrq", start: PCIE_IRQ, end: PCIE_IRQ + 3, owner: "pcie-intx" },
      { pool: "legacyIrq", start: VIRT_PLATFORM_BUS_IRQ, end: VIRT_IRQCHIP_NUM_SOURCES - 1, owner: "platform-bus" },
    ],
  } satisfies SystemLayout);
}

function board(p: ResolvedParameters): Board {
  return deepFreeze({
    arch: "riscv64",
    // virt.c `create_fdt`: root `compatible`.
    compatible: "riscv-virtio",
    memory: [{ base: VIRT_DRAM, size: p.ramSize }],
    // virt.c `create_fdt_socket_plic`: `riscv,ndev` = `VIRT_IRQCHIP_NUM_SOURCES` - 1.
    interruptController: { kind: "plic", range: { base: VIRT_PLIC, size: VIRT_PLIC_SIZE }, sources: VIRT_IRQCHIP_NUM_SOURCES - 1 },
    // virt.c `create_fdt_pcie`: the gpex host, 256 buses, I/O at VIRT_PCIE_PIO, INTx on PCIE_IRQ..+3.
    pci: { ecam: { base: VIRT_PCIE_ECAM, size: VIRT_PCIE_ECAM_SIZE }, lastBus: 255, ioCpuBase: VIRT_PCIE_PIO, intxBase: PCIE_IRQ, presentByDefault: true },
    uartClock: { kind: "frequency", hz: UART_CLOCK },
    timebaseHz: TIMEBASE,
  } satisfies Board);
}

/** The `riscv64-virt` preset. */
export const RISCV64_VIRT_PRESET: Preset = deepFreeze({
  name: "riscv64-virt",
  machine: "QEMU virt (RISC-V, PLIC)",
  arch: "riscv64",
  source: "qemu/qemu: hw/riscv/virt.c, include/hw/riscv/virt.h",
  parameters: ["ramSize"],
  defaults: { ramSize: DEFAULT_RAM_SIZE, physAddressBits: 48 },
  limits: { minRamSize: 4n * KiB, maxRamSize: 16n * TiB, physAddressBits: [48, 48] },
  layout,
  board,
} satisfies Preset);
