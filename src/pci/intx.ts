/**
 * Legacy (pin-based) PCI interrupts: INTx is derived, not allocated. A chipset wires each
 * device slot's INTA-INTD pins to a handful of interrupt lines (PIRQs) by a fixed rule, and the
 * firmware describes that rule to the guest (ACPI `_PRT`); the VMM must use the same rule, so the
 * routing is a preset, not a choice.
 *
 * Several functions share each line. The PCI host holds the line for each function through the
 * device manager as a shared fixed legacy IRQ, so the sharing is explicit in the allocator.
 */
import { AllocatorError } from "../core/errors.js";

/** The rule wiring device slots and pins to interrupt lines. */
export interface PciIntxRouting {
  /** A name for messages and reports (`"q35"`). */
  readonly name: string;
  /** The GSI of each PIRQ line: index 0 is PIRQ A. */
  readonly lines: readonly number[];
  /**
   * Which PIRQ (an index into `lines`) pin `pin` (0 = INTA ... 3 = INTD) of device slot `slot`
   * (0 to 31) raises.
   */
  readonly pirq: (slot: number, pin: number) => number;
}

/**
 * QEMU's q35 (ICH9) wiring, as its ACPI tables describe it with the default `D<N>IR` values:
 * PIRQ A-H are GSIs 16-23; slots 0-23 rotate over PIRQ E-H as `(slot + pin) mod 4`; slot 24 and
 * slot 30 (the PCIe-to-PCI bridge) take E-H from INTA, slots 25-29 and 31 (the LPC/ISA bridge,
 * SATA, SMBus at 00:1f) take A-D from INTA.
 */
export const Q35_INTX_ROUTING: PciIntxRouting = Object.freeze({
  name: "q35",
  lines: Object.freeze([16, 17, 18, 19, 20, 21, 22, 23]),
  pirq: (slot: number, pin: number): number => {
    if (slot < 0x18) return 4 + ((slot + pin) & 3);
    if (slot === 0x18 || slot === 0x1e) return 4 + pin;
    return pin;
  },
});

/**
 * The textbook swizzle over `lines`: pin `pin` of slot `slot` raises line `(slot + pin) mod n`
 * (what a PCI-to-PCI bridge does to its secondary bus, and what simple VMMs use).
 * @throws AllocatorError `InvalidArgument` for an empty or bad line list.
 */
export function swizzledIntxRouting(name: string, lines: readonly number[]): PciIntxRouting {
  if (!Array.isArray(lines) || lines.length === 0 || !lines.every((l) => Number.isInteger(l) && l >= 0 && l <= 0xffff_ffff)) {
    throw new AllocatorError("InvalidArgument", "lines must be a non-empty array of GSIs");
  }
  const copy = Object.freeze([...lines]);
  return Object.freeze({ name, lines: copy, pirq: (slot: number, pin: number): number => (slot + pin) % copy.length });
}

/**
 * The GSI that pin `pin` (1 = INTA ... 4 = INTD, as in the interrupt-pin register) of slot
 * `slot` raises under `routing`.
 * @throws AllocatorError `InvalidState` when the routing's rule gives no line.
 */
export function intxLine(routing: PciIntxRouting, slot: number, pin: number): number {
  const index = routing.pirq(slot, pin - 1);
  const gsi = routing.lines[index];
  if (gsi === undefined || !Number.isInteger(index)) {
    throw new AllocatorError("InvalidState", `the ${routing.name} INTx routing gives PIRQ ${String(index)} for slot ${slot} INT${"ABCD"[pin - 1]}, which is not one of its ${routing.lines.length} lines`);
  }
  return gsi;
}

/**
 * The level of each shared line: a line is asserted while any function on it asserts it (the
 * lines are level-triggered and wired-OR).
 */
export class IntxLines {
  readonly #asserted = new Map<number, number>();
  readonly #sink: ((gsi: number, level: boolean) => void) | undefined;

  /**
   * The INTx lines of one host, wired-OR over the functions that assert them.
   * @param sink told of every change of a line's level (asserted by at least one function, or by none).
   */
  constructor(sink?: (gsi: number, level: boolean) => void) {
    this.#sink = sink;
  }

  /** True while some function asserts `gsi`. */
  isAsserted(gsi: number): boolean {
    return (this.#asserted.get(gsi) ?? 0) > 0;
  }

  /** @internal Restore: one function asserts `gsi`, as the snapshot recorded; the sink is not told (the interrupt controller is restored on its own). */
  restoreAsserted(gsi: number): void {
    this.#asserted.set(gsi, (this.#asserted.get(gsi) ?? 0) + 1);
  }

  /** One function starts (true) or stops (false) asserting `gsi`; the sink hears level changes. */
  change(gsi: number, up: boolean): void {
    const n = this.#asserted.get(gsi) ?? 0;
    const next = up ? n + 1 : n - 1;
    if (next <= 0) this.#asserted.delete(gsi);
    else this.#asserted.set(gsi, next);
    if ((n === 0) !== (next <= 0)) this.#sink?.(gsi, next > 0);
  }
}
