/**
 * The `json` format: the plan for programs. Addresses and sizes are u64 and go out as `"0x..."`
 * strings (a JSON number above 2^53 would be rounded by most readers); ids and IRQs are 32-bit
 * and go out as numbers. Free space is listed as segments without owner so a reader sees each
 * pool tiled in order. This is a report and may gain fields. Its last field, `plan`, is the saved
 * plan it was made from (what `plan --save` writes), so that `show` and `check` read the report
 * back (see `report.ts`) and a program can restore the allocator from it.
 */
import { hex } from "../../src/core/u64.js";
import type { DeviceRange, Origin, PciView, PlanView, Region } from "../model.js";
import type { PlanSnapshot } from "../snapshot.js";

/** `format` of the JSON report. */
export const REPORT_FORMAT = "vm-allocator/plan-report";
/** `version` of the JSON report. */
export const REPORT_VERSION = 1;


/** The PCI functions for programs: each with its slot, ids, interrupt and BARs with Linux's flags. */
function pciReport(pci: PciView): unknown {
  const window = (r: Region) => ({ start: hex(r.start), end: hex(r.end), size: hex(r.end - r.start + 1n), owner: r.owner });
  return {
    bus: pci.bus,
    routing: pci.routing ?? null,
    ecam: window(pci.ecam),
    configPorts: pci.configPorts === undefined ? null : window(pci.configPorts),
    functions: pci.functions.map((f) => ({
      address: f.address,
      slot: f.slot,
      name: f.name,
      owner: f.owner,
      vendorId: f.vendorId,
      deviceId: f.deviceId,
      classCode: f.classCode,
      interruptPin: f.interruptPin === 0 ? null : `INT${"ABCD"[f.interruptPin - 1]!}`,
      gsi: f.gsi ?? null,
      msixVectors: f.msixVectors,
      bars: f.bars.map((b) => ({ index: b.index, kind: b.kind, prefetchable: b.prefetchable, flags: b.flags, start: hex(b.start), end: hex(b.end), size: hex(b.end - b.start + 1n), owner: b.owner })),
    })),
  };
}

/** Renders `view`, the view of `plan`, as pretty-printed JSON that carries `plan` itself. */
export function renderJson(view: PlanView, plan: PlanSnapshot): string {
  const region = (r: Region) => ({ start: hex(r.start), end: hex(r.end), size: hex(r.end - r.start + 1n), owner: r.owner, origin: r.origin });
  const range = (r: DeviceRange) => ({ start: hex(r.start), end: hex(r.end), size: hex(r.end - r.start + 1n), fixed: r.fixed });
  const report = {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    source: view.source,
    description: view.description ?? null,
    preset: view.preset ?? null,
    addressSpaces: view.addressSpaces.map((s) => ({
      name: s.name,
      title: s.title,
      kind: s.kind,
      start: hex(s.start),
      end: hex(s.end),
      size: hex(s.end - s.start + 1n),
      segments: s.segments.map((g) => {
        const base = { start: hex(g.start), end: hex(g.end), size: hex(g.end - g.start + 1n) };
        if (g.owner === undefined) return { ...base, state: "free" };
        return { ...base, state: "held", owner: g.owner, origin: g.origin satisfies Origin | undefined, children: g.children.map(region) };
      }),
    })),
    unpooled: view.unpooled.map((r) => ({ kind: r.kind, ...region(r) })),
    idSpaces: view.idSpaces.map((s) => ({
      name: s.name,
      title: s.title,
      first: s.first,
      last: s.last,
      assignments: s.assignments.map((a) => ({ id: a.id, owner: a.owner, origin: a.origin, outsidePool: a.outsidePool, sharedWith: a.sharedWith ?? null })),
    })),
    devices: view.devices.map((d) => ({
      instanceId: d.instanceId,
      name: d.name,
      owner: d.owner,
      pio: d.pio.map(range),
      mmio: d.mmio.map(range),
      irqs: d.irqs.map((q) => ({ irq: q.irq, fixed: q.fixed })),
      msi: d.msi.map((m) => ({ gsi: m.gsi, fixed: m.fixed })),
    })),
    // Only in plans with PCI functions, so that other reports keep their shape.
    ...(view.pci === undefined ? {} : { pci: pciReport(view.pci) }),
    plan,
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}
