/**
 * What a preset is: one machine as a real VMM builds it. A preset turns its parameters (the
 * guest's RAM size, its physical address width) into a {@link SystemLayout} for the allocator
 * and into a {@link Board}: the fixed, guest-visible facts (RAM, interrupt controller, PCI host
 * bridge) that a device tree or an ACPI table describes next to the allocated devices.
 *
 * Every number of a preset carries a comment naming the repository, the file and the constant it
 * comes from, so that a reader can check it against the source.
 */
import type { LayoutName, LayoutNumber, SystemLayout } from "../layouts.js";

/** Layout parameters a preset may take; each preset names the ones that move its pools. */
export interface LayoutParameters {
  /** The guest's RAM in bytes, a multiple of 4 KiB. */
  readonly ramSize?: LayoutNumber;
  /** The guest's physical address width in bits (CPUID leaf 0x80000008 on x86). */
  readonly physAddressBits?: number;
}

/** The name of a {@link LayoutParameters} field. */
export type ParameterName = keyof LayoutParameters;

/** Parameters with every default filled in. */
export interface ResolvedParameters {
  /** The guest's RAM in bytes, a multiple of 4 KiB inside the preset's `limits`. */
  readonly ramSize: bigint;
  /** The guest's physical address width in bits, inside the preset's `limits`. */
  readonly physAddressBits: number;
}

/** The architectures presets exist for. */
export type Architecture = "x86_64" | "aarch64" | "riscv64";

/** A guest-physical range: `size` bytes from `base`. */
export interface PhysicalRange {
  /** First guest-physical address of the range. */
  readonly base: bigint;
  /** Length of the range in bytes, at least 1. */
  readonly size: bigint;
}

/** The interrupt controller a guest is told about. */
export type InterruptController =
  | {
      /** ARM GICv3: one distributor, one redistributor frame pair per vCPU below it, an ITS below those. */
      readonly kind: "gic-v3";
      /** The distributor's register frame (GICD); the redistributors and the ITS lie below it. */
      readonly distributor: PhysicalRange;
      /** Redistributor bytes per vCPU; the frames of all vCPUs end where the distributor starts. */
      readonly redistributorPerCpu: bigint;
      /** Size of the ITS (MSI controller) frame, which ends where the redistributors start. */
      readonly itsSize: bigint;
      /** The PPI of the virtual GIC maintenance interrupt. */
      readonly maintenancePpi: number;
    }
  | {
      /** The RISC-V platform-level interrupt controller. */
      readonly kind: "plic";
      /** The PLIC's register block. */
      readonly range: PhysicalRange;
      /** Number of interrupt sources the guest may use (`riscv,ndev`). */
      readonly sources: number;
    }
  | {
      /** The x86 IOAPIC; x86 guests learn of it from ACPI or the MP table. */
      readonly kind: "ioapic";
      /** Guest-physical address of the IOAPIC's registers (0xfec00000 on every x86 preset). */
      readonly base: bigint;
    };

/** A PCI host bridge with an ECAM window. */
export interface PciHost {
  /** The configuration window (1 MiB per bus). */
  readonly ecam: PhysicalRange;
  /** Last bus number decoded. */
  readonly lastBus: number;
  /** Where PCI I/O space (PCI address 0) appears in CPU space; absent when the bridge has none. */
  readonly ioCpuBase?: bigint;
  /**
   * Legacy INTx: the first interrupt of the 4 lines the slots rotate over (QEMU's swizzle). On
   * q35 that is PIRQ E (GSI 20), which slots 0-23 rotate over; its chipset slots use PIRQ A-D.
   */
  readonly intxBase?: number;
  /** True when PCI MSIs go to the interrupt controller's ITS (`msi-map`). */
  readonly msiThroughIts?: boolean;
  /** Whether the machine has the bridge unless told otherwise (Firecracker: only with --enable-pci). */
  readonly presentByDefault: boolean;
}

/** The fixed, guest-visible parts of a machine. */
export interface Board {
  /** The guest's architecture, which decides how a device tree or ACPI table describes the rest. */
  readonly arch: Architecture;
  /** The root node's `compatible` (aarch64 and riscv64). */
  readonly compatible: string;
  /** Guest RAM as the guest's memory map shows it, in address order. */
  readonly memory: readonly PhysicalRange[];
  /** The interrupt controller the guest is told about, with its guest-physical place. */
  readonly interruptController: InterruptController;
  /** The PCI host bridge, when the machine can have one. */
  readonly pci?: PciHost;
  /**
   * A 16550 UART's input clock: a fixed-clock node (Firecracker's apb-pclk) or a frequency property
   * (QEMU).
   * @property kind `"clock-node"`: a fixed-clock node the UART points at; `"frequency"`: a
   * `clock-frequency` property on the UART node.
   * @property hz The clock rate in hertz.
   */
  readonly uartClock: { readonly kind: "clock-node"; readonly hz: number } | { readonly kind: "frequency"; readonly hz: number };
  /** riscv64: the `timebase-frequency` of the CPUs. */
  readonly timebaseHz?: number;
}

/** A machine a real VMM builds, as data and functions of its parameters. */
export interface Preset {
  /** The preset's name, as `--layout` and {@link getPreset} take it (`firecracker-x86_64`). */
  readonly name: LayoutName;
  /** A few words for people (`Firecracker v1.16 microVM`). */
  readonly machine: string;
  /** The guest's architecture. */
  readonly arch: Architecture;
  /** The repository, version and files the numbers come from. */
  readonly source: string;
  /** The parameters this preset takes (others are refused). */
  readonly parameters: readonly ParameterName[];
  /** The parameters used when a caller leaves them out. */
  readonly defaults: ResolvedParameters;
  /**
   * Bounds the parameters must keep for the layout to be valid.
   * @property minRamSize Smallest `ramSize` accepted, in bytes, inclusive.
   * @property maxRamSize Largest `ramSize` accepted, in bytes, inclusive.
   * @property physAddressBits Smallest and largest `physAddressBits` accepted, inclusive.
   */
  readonly limits: { readonly minRamSize: bigint; readonly maxRamSize: bigint; readonly physAddressBits: readonly [number, number] };
  /** The allocator's pools and reservations for `parameters`. */
  layout(parameters: ResolvedParameters): SystemLayout;
  /** The guest-visible machine for `parameters`. */
  board(parameters: ResolvedParameters): Board;
}

export const KiB = 0x400n;
export const MiB = 0x10_0000n;
export const GiB = 0x4000_0000n;
export const TiB = 0x100_0000_0000n;
/** The first address past 32 bits. */
export const FOUR_GIB = 0x1_0000_0000n;
/** The largest device instance id, the default `instanceId` pool's end. */
export const U32_LAST = 0xffff_ffff;

/**
 * The board of a PC-style x86_64 machine: `below4g` bytes of RAM from 0, the rest of `ramSize`
 * from 4 GiB, and an IOAPIC. x86 guests learn all this from e820 and ACPI, not a device tree.
 */
export function x86Board(ramSize: bigint, below4g: bigint, ioapic: bigint, pci?: PciHost): Board {
  const low = ramSize < below4g ? ramSize : below4g;
  return deepFreeze({
    arch: "x86_64",
    compatible: "",
    memory: [{ base: 0n, size: low }, ...(ramSize > low ? [{ base: FOUR_GIB, size: ramSize - low }] : [])],
    interruptController: { kind: "ioapic", base: ioapic },
    ...(pci === undefined ? {} : { pci }),
    // The 16550's usual 1.8432 MHz crystal; unused, since x86 boards get no device tree.
    uartClock: { kind: "frequency", hz: 1_843_200 },
  } satisfies Board);
}

/** `value` rounded up to a multiple of `alignment` (a power of two). */
export function alignUp(value: bigint, alignment: bigint): bigint {
  return (value + alignment - 1n) & ~(alignment - 1n);
}

/** Freezes a value and everything inside it, so that a preset cannot be changed by accident. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
