/**
 * The guest's view of a plan, as plain data: which machine (a preset, its parameters and the
 * pools as planned) and which devices, with the ranges and interrupts each was given. The kernel
 * command line and the device tree are both functions of this, so that they can be produced
 * from a live VM, a saved plan or hand-written data alike.
 */
import type { LayoutName, SystemLayout } from "../system/layouts.js";
import type { LayoutParameters } from "../system/presets/preset.js";

/** What a device is to the guest, which decides how it is described. */
export type GuestDeviceKind = "virtio-mmio" | "serial" | "rtc" | "vmgenid" | "vmclock" | "other";

/** A guest-physical range, `start..=end`. */
export interface GuestRange {
  /** First guest-physical address of the range. */
  readonly start: bigint;
  /** Last guest-physical address of the range, inclusive (`end - start + 1` bytes). */
  readonly end: bigint;
}

/** A planned device as the guest sees it. */
export interface GuestDevice {
  /**
   * The device's name in the plan (`virtio-blk0`, `serial0`), which names its node and messages.
   */
  readonly name: string;
  /**
   * What the device is to the guest, which decides how the command line and device tree describe
   * it.
   */
  readonly kind: GuestDeviceKind;
  /**
   * Its memory-mapped ranges, register block first; a virtio-mmio device's further ranges are
   * memory it owns (a pmem backing region) and are not part of the transport.
   */
  readonly mmio: readonly GuestRange[];
  /** Its legacy interrupt lines (GSIs; SPI numbers from the first SPI on a GIC; PLIC sources). */
  readonly irqs: readonly number[];
}

/** The machine a plan is for. */
export interface GuestMachine {
  /**
   * The preset the plan was made for, which gives the architecture, interrupt controller and board.
   */
  readonly preset: LayoutName;
  /** The preset's parameters, as the plan used them; defaults where left out. */
  readonly parameters?: LayoutParameters;
  /**
   * The pools as planned, when a layout overrides the preset's (a PCI host's windows follow
   * them); the preset's own layout when left out.
   */
  readonly layout?: SystemLayout;
}

/**
 * The kind of a device from its name, for plans whose devices carry only names (layout files):
 * `virtio*` with MMIO ranges and one interrupt is a virtio-mmio transport (its first range the
 * register block, any other memory it owns, as a pmem backing region), `serial*`,
 * `uart*` and `ttyS*` a 16550 UART, `rtc*` an RTC, `vmgenid*` and `vmclock*` those devices;
 * anything else is `"other"`.
 *
 * ```ts
 * guestDeviceKind("virtio-blk0", 1, 1); // "virtio-mmio"
 * ```
 */
export function guestDeviceKind(name: string, mmioRanges: number, irqs: number): GuestDeviceKind {
  const n = name.toLowerCase();
  if (n.startsWith("virtio")) return mmioRanges >= 1 && irqs === 1 ? "virtio-mmio" : "other";
  if (n.startsWith("serial") || n.startsWith("uart") || n.startsWith("ttys")) return "serial";
  if (n.startsWith("rtc")) return "rtc";
  if (n.startsWith("vmgenid")) return "vmgenid";
  if (n.startsWith("vmclock")) return "vmclock";
  return "other";
}
