/**
 * The guest's view of a plan: `--format cmdline` (the kernel command-line fragment for the
 * virtio-mmio devices, one `virtio_mmio.device=` per device in instance-id order, which is the
 * order a layout attaches them) and `--format dts` (a devicetree source). Both are the library's
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

/** The plan's devices as the guest functions take them, in instance-id order. */
function guestDevices(plan: LoadedPlan): GuestDevice[] {
  return [...plan.snapshot.devices]
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
  return guarded(plan, () => devicetreeSource(machine(plan), guestDevices(plan)));
}
