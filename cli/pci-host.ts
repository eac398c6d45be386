/**
 * The PCI host bridge a preset gives a layout's PCI devices: where its ECAM window is, whether
 * it has the 0xcf8/0xcfc ports and PCI I/O space, and how INTx pins reach interrupt lines.
 *
 * Planning, reading a saved plan back and rendering all take the host from here, so that the
 * line a plan records for a pin is always the one its preset's rule gives.
 */
import { intxLine, Q35_INTX_ROUTING, swizzledIntxRouting, type PciIntxRouting } from "../src/pci/intx.js";
import { getPreset, layoutNames, resolveParameters, type LayoutName } from "../src/system/layouts.js";
import type { LayoutParameters } from "../src/system/presets/preset.js";

/** A preset's PCI host bridge, as the CLI plans with it. */
export interface CliPciHost {
  /** The ECAM window's first byte. */
  readonly ecamBase: bigint;
  /** Bytes of the ECAM window (1 MiB per bus). */
  readonly ecamSize: bigint;
  /** Last bus the window decodes (the CLI plans bus 0 only). */
  readonly lastBus: number;
  /** True on x86, where configuration mechanism #1 answers at ports 0xcf8-0xcff. */
  readonly configPorts: boolean;
  /** True when the host forwards PCI I/O space, so that I/O BARs can be placed. */
  readonly io: boolean;
  /** The INTx wiring, or undefined when the host routes no INTx (Firecracker's: MSI-X only). */
  readonly routing: PciIntxRouting | undefined;
}

/** The presets with a PCI host bridge, for messages. */
export function pciPresets(): string[] {
  return layoutNames.filter((n) => getPreset(n).board(getPreset(n).defaults).pci !== undefined);
}

/**
 * The host bridge of `preset` with `parameters`, or undefined when the preset has none.
 *
 * The INTx rule: q35's ICH9 wiring on `pc-x86_64` (slots 0-23 rotate over PIRQ E-H = GSIs
 * 20-23, the devices at 00:19-00:1f take PIRQ A-D); the textbook swizzle over the four lines from
 * the board's `intxBase` elsewhere (QEMU's gpex on `riscv64-virt`, the same rule its devicetree
 * `interrupt-map` states).
 */
export function pciHostOf(preset: LayoutName, parameters: LayoutParameters = {}): CliPciHost | undefined {
  const p = getPreset(preset);
  const board = p.board(resolveParameters(preset, parameters));
  const pci = board.pci;
  if (pci === undefined) return undefined;
  const x86 = p.arch === "x86_64";
  let routing: PciIntxRouting | undefined;
  if (preset === "pc-x86_64") routing = Q35_INTX_ROUTING;
  else if (pci.intxBase !== undefined) {
    const base = pci.intxBase;
    routing = swizzledIntxRouting(preset, [base, base + 1, base + 2, base + 3]);
  }
  return { ecamBase: pci.ecam.base, ecamSize: pci.ecam.size, lastBus: pci.lastBus, configPorts: x86, io: x86 || pci.ioCpuBase !== undefined, routing };
}

/** The GSI pin `pin` (1-4) of device slot `slot` raises on `host`, or undefined without INTx. */
export function pciIntxGsi(host: CliPciHost, slot: number, pin: number): number | undefined {
  if (host.routing === undefined || pin === 0) return undefined;
  return intxLine(host.routing, slot, pin);
}
