/**
 * The guest's view of a plan: `--format cmdline` (the kernel command-line fragment for the
 * virtio-mmio devices, one `virtio_mmio.device=` per device in instance-id order, which is the
 * order a layout attaches them; PCI functions need no entry, the kernel enumerates the bus) and
 * `--format dts` (a devicetree source, with the PCI host bridge node when the plan has PCI
 * functions, and no node per function). Both are the library's
 * functions (`src/guest/`) applied to the plan; this module only turns the saved plan into their
 * plain input, naming each device's kind from its name (`guestDeviceKind`).
 */
import { isAllocatorError } from "../../src/core/errors.js";
import { devicetreeSource } from "../../src/guest/devicetree.js";
import { guestDeviceKind, type GuestDevice, type GuestMachine } from "../../src/guest/guest-device.js";
import { virtioMmioCmdline } from "../../src/guest/kernel-cmdline.js";
import { getPreset, type LayoutName } from "../../src/system/layouts.js";
import { InputError } from "../diagnostics.js";
import type { LoadedPlan } from "../snapshot.js";

/**
 * The owners of what the PCI host registered: its configuration windows, its functions and their
 * BARs. The guest finds those by enumerating the bus, so they get no command-line entry and no
 * device-tree node of their own (the host bridge node describes the bus).
 */
function pciOwners(plan: LoadedPlan): Set<string> {
  const pci = plan.snapshot.pci;
  if (pci === undefined) return new Set();
  return new Set([pci.ecam.owner, ...(pci.configPorts === null ? [] : [pci.configPorts.owner]), ...pci.functions.flatMap((f) => [f.owner, ...f.bars.map((b) => b.owner)])]);
}

/** The plan's devices as the guest functions take them, in instance-id order; PCI functions are left out (the guest enumerates them). */
function guestDevices(plan: LoadedPlan): GuestDevice[] {
  const pci = pciOwners(plan);
  return [...plan.snapshot.devices]
    .filter((d) => !pci.has(d.owner))
    .sort((a, b) => a.instanceId - b.instanceId)
    .map((d) => {
      const mmio = d.mmio.map((r) => ({ start: BigInt(r.start), end: BigInt(r.end) }));
      const irqs = d.irqs.map((q) => q.irq);
      return { name: d.owner, kind: guestDeviceKind(d.name, mmio.length, irqs.length), mmio, irqs };
    });
}

function machine(plan: LoadedPlan): GuestMachine {
  const p = plan.snapshot.parameters ?? {};
  return {
    preset: plan.snapshot.preset as LayoutName,
    parameters: { ...(p.ramSize === undefined ? {} : { ramSize: p.ramSize }), ...(p.physAddressBits === undefined ? {} : { physAddressBits: p.physAddressBits }) },
    layout: plan.snapshot.system.layout,
  };
}

/** Runs a guest function; a refusal (an x86 device tree, a malformed transport) is bad input, not a bug. */
function guarded(plan: LoadedPlan, f: () => string): string {
  try {
    return f();
  } catch (error) {
    if (isAllocatorError(error)) throw InputError.of(error.message, plan.snapshot.source);
    throw error;
  }
}

/** `--format cmdline`: the fragment and a newline, or nothing when the plan has no virtio-mmio device. */
export function renderCmdline(plan: LoadedPlan): string {
  const text = guarded(plan, () => virtioMmioCmdline(guestDevices(plan)));
  return text === "" ? "" : `${text}\n`;
}

/** `--format dts`: a devicetree source for `dtc -I dts -O dtb`. */
export function renderDts(plan: LoadedPlan): string {
  const preset = getPreset(plan.snapshot.preset);
  if (preset.arch === "x86_64") {
    throw InputError.of(
      `${preset.name} is an x86_64 machine, whose guests find their devices through ACPI tables and the kernel command line, not a device tree; \`--format cmdline\` prints the command line`,
      plan.snapshot.source,
    );
  }
  // A plan with PCI functions has the host bridge even where the machine has it only on request
  // (Firecracker's --enable-pci).
  const options = plan.snapshot.pci === undefined ? {} : { pci: true };
  return guarded(plan, () => devicetreeSource(machine(plan), guestDevices(plan), options));
}
