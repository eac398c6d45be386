/**
 * Builds the renderers' {@link PlanView} from a validated plan snapshot: each pool tiled into
 * held and free segments, each held thing labelled with how it came to be held, fixed device
 * ranges nested in the platform reservation they sit in, and those outside every pool listed
 * apart.
 */
import {
  ADDRESS_POOL_NAMES,
  getPreset,
  LAYOUT_KEYS,
  layoutToJSON,
  resolveLayout,
  resolveParameters,
  type AddressPoolName,
  type IdPoolName,
} from "../src/system/layouts.js";
import type { Origin, PlanView, Region, Segment, IdAssignment, AddressSpaceView, IdSpaceView, DeviceView, PciView, PciFunctionView, PciBarView } from "./model.js";
import type { PlanPci } from "./pci-snapshot.js";
import type { LoadedPlan, PlanDevice, PlanSnapshot } from "./snapshot.js";

const ADDRESS_TITLES: Readonly<Record<AddressPoolName, string>> = {
  pio: "Port I/O",
  systemMemory: "System memory",
  mmio32: "MMIO below 4 GiB",
  mmio64: "MMIO above 4 GiB",
  pastMmio64: "Past the 64-bit MMIO",
};

const ID_TITLES: Readonly<Record<IdPoolName, string>> = {
  legacyIrq: "Legacy IRQs",
  msi: "MSI GSIs",
  instanceId: "Device instance ids",
};

/** Index of the first range in `list` (sorted by start) that starts at or after `at`. */
function firstAtOrAfter(list: readonly Region[], at: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.start < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The view of a loaded plan. */
export function planView(plan: LoadedPlan): PlanView {
  const { snapshot, sys } = plan;
  const devices = [...snapshot.devices].sort((a, b) => a.instanceId - b.instanceId);
  const byOwner = new Map(devices.map((d) => [d.owner, d]));
  const reserved = new Set<string>();
  const reservedIds = new Set<string>();
  for (const h of sys.reservations()) {
    if ("range" in h) reserved.add(`${h.pool}:${h.range.start}`);
    else reservedIds.add(`${h.pool}:${h.id}`);
  }
  // A device's fixed values are held like its allocations; the device's record says which is which.
  const fixedKeys = new Set<string>();
  for (const d of devices) {
    for (const family of ["pio", "mmio"] as const) for (const r of d[family]) if (r.fixed) fixedKeys.add(`${d.owner} ${family}:${BigInt(r.start)}`);
    for (const q of d.irqs) if (q.fixed) fixedKeys.add(`${d.owner} legacyIrq:${q.irq}`);
    for (const m of d.msi) if (m.fixed) fixedKeys.add(`${d.owner} msi:${m.gsi}`);
    if (d.instanceIdFixed) fixedKeys.add(`${d.owner} instanceId:${d.instanceId}`);
  }
  const origin = (isReserved: boolean, owner: string, key: string): Origin =>
    isReserved && !byOwner.has(owner) ? "reserved" : fixedKeys.has(`${owner} ${key}`) ? "fixed" : "allocated";

  // Every fixed device range, per family, in address order.
  const fixedRanges: Record<"pio" | "mmio", Region[]> = { pio: [], mmio: [] };
  for (const d of devices) {
    for (const family of ["pio", "mmio"] as const) {
      for (const r of d[family]) if (r.fixed) fixedRanges[family].push({ start: BigInt(r.start), end: BigInt(r.end), owner: d.owner, origin: "fixed" });
    }
  }
  for (const list of Object.values(fixedRanges)) list.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));

  const addressSpaces: AddressSpaceView[] = [];
  const nested = new Set<Region>();
  for (const name of ADDRESS_POOL_NAMES) {
    const pool = sys.pool(name);
    if (pool === undefined) continue;
    const kind = name === "pio" ? "io" : "mem";
    const family = name === "pio" ? "pio" : "mmio";
    const held = pool.allocations().map((a): Segment => {
      const owner = a.owner ?? "";
      const isReserved = reserved.has(`${name}:${a.range.start}`);
      const o = origin(isReserved, owner, `${family}:${a.range.start}`);
      // Fixed device ranges inside a platform reservation are its children.
      const children: Region[] = [];
      if (o === "reserved") {
        const list = fixedRanges[family];
        for (let i = firstAtOrAfter(list, a.range.start); i < list.length && list[i]!.start <= a.range.end; i++) {
          const r = list[i]!;
          if (r.end > a.range.end) continue;
          children.push({ start: r.start, end: r.end, owner: r.owner, origin: "fixed" });
          nested.add(r);
        }
      }
      return { start: a.range.start, end: a.range.end, owner, origin: o, children };
    });
    const free = pool.freeRanges().map((r): Segment => ({ start: r.start, end: r.end, owner: undefined, origin: undefined, children: [] }));
    const segments = [...held, ...free].sort((x, y) => (x.start < y.start ? -1 : 1));
    addressSpaces.push({ name, title: ADDRESS_TITLES[name], kind, start: pool.base, end: pool.end, segments });
  }

  // Fixed device ranges that are neither a pool allocation nor nested: outside every pool.
  const unpooled: (Region & { kind: "io" | "mem" })[] = [];
  for (const family of ["pio", "mmio"] as const) {
    const kind = family === "pio" ? "io" : "mem";
    for (const r of fixedRanges[family]) {
      if (nested.has(r)) continue;
      const inPool = addressSpaces.some((s) => s.kind === kind && s.start <= r.start && r.start <= s.end);
      if (!inPool) unpooled.push({ ...r, kind });
    }
  }

  const idSpaces: IdSpaceView[] = [];
  for (const name of ["legacyIrq", "msi", "instanceId"] as const) {
    const pool = sys.pool(name);
    const assignments: IdAssignment[] = [];
    const seen = new Set<string>();
    for (const id of pool.allocatedIds()) {
      const owner = pool.ownerOf(id) ?? "";
      const isReserved = reservedIds.has(`${name}:${id}`);
      const o = origin(isReserved, owner, `${name}:${id}`);
      assignments.push({ id, owner, origin: o, outsidePool: false, sharedWith: undefined });
      seen.add(`${owner}:${id}`);
    }
    // Fixed ids a device holds that the pool does not show under its owner: outside the pool,
    // or a legacy line shared with whoever the pool shows.
    for (const d of devices) {
      const ids = name === "legacyIrq" ? d.irqs.map((q) => ({ id: q.irq, fixed: q.fixed })) : name === "msi" ? d.msi.map((m) => ({ id: m.gsi, fixed: m.fixed })) : [{ id: d.instanceId, fixed: d.instanceIdFixed }];
      const owner = d.owner;
      for (const { id } of ids) {
        if (seen.has(`${owner}:${id}`)) continue;
        seen.add(`${owner}:${id}`);
        const outside = id < pool.first || id > pool.last;
        assignments.push({ id, owner, origin: "fixed", outsidePool: outside, sharedWith: outside ? undefined : pool.ownerOf(id) });
      }
    }
    // By id; on a shared line the pool's own holder first, then the others in instance-id order.
    const rank = (a: IdAssignment) => (a.sharedWith === undefined && !a.outsidePool ? 0 : 1);
    assignments.sort((a, b) => a.id - b.id || rank(a) - rank(b));
    idSpaces.push({ name, title: ID_TITLES[name], first: pool.first, last: pool.last, assignments });
  }

  return {
    source: snapshot.source,
    description: snapshot.description,
    preset: snapshot.preset,
    parameters: parameterText(snapshot),
    presetChanges: presetChanges(snapshot),
    addressSpaces,
    unpooled,
    idSpaces,
    devices: devices.map(deviceView),
    pci: snapshot.pci === undefined ? undefined : pciView(snapshot.pci),
  };
}

/** The PCI part of a plan as renderers draw it. */
function pciView(pci: PlanPci): PciView {
  const barsByOwner = new Map<string, { function: PciFunctionView; bar: PciBarView }>();
  const window = (w: { start: string; end: string; owner: string }, origin: Origin): Region => ({ start: BigInt(w.start), end: BigInt(w.end), owner: w.owner, origin });
  const functions = pci.functions.map((f): PciFunctionView => {
    const bars = f.bars.map((b): PciBarView => {
      const start = BigInt(b.start);
      const end = BigInt(b.end);
      const flags = [...(b.kind === "mem64" ? ["64bit"] : []), ...(b.prefetchable ? ["pref"] : [])].join(" ");
      const label = b.kind === "io" ? "io " : "mem";
      return { index: b.index, kind: b.kind, prefetchable: b.prefetchable, start, end, owner: b.owner, flags, text: `[${label} 0x${start.toString(16)}-0x${end.toString(16)}${flags === "" ? "" : ` ${flags}`}]` };
    });
    const parts = [...(f.gsi === null ? [] : [`INT${"ABCD"[f.interruptPin - 1]!} -> GSI ${f.gsi}`]), ...(f.msixVectors > 0 ? [`MSI-X ${f.msixVectors}`] : [])];
    const view: PciFunctionView = {
      address: f.address,
      slot: f.address.slice(5),
      name: f.name,
      owner: f.owner,
      vendorId: f.vendorId,
      deviceId: f.deviceId,
      classCode: f.classCode,
      interruptPin: f.interruptPin,
      gsi: f.gsi ?? undefined,
      msixVectors: f.msixVectors,
      interrupt: parts.length === 0 ? "-" : parts.join(", "),
      bars,
    };
    for (const bar of bars) barsByOwner.set(bar.owner, { function: view, bar });
    return view;
  });
  return {
    bus: pci.bus,
    routing: pci.routing ?? undefined,
    ecam: window(pci.ecam, "fixed"),
    configPorts: pci.configPorts === null ? undefined : window(pci.configPorts, "fixed"),
    functions,
    barsByOwner,
  };
}

function parameterText(snapshot: PlanSnapshot): string | undefined {
  const p = snapshot.parameters;
  if (p === undefined) return undefined;
  const parts = [...(p.ramSize === undefined ? [] : [`ramSize ${p.ramSize}`]), ...(p.physAddressBits === undefined ? [] : [`physAddressBits ${p.physAddressBits}`])];
  return parts.length === 0 ? undefined : parts.join(", ");
}

/** The layout keys (pools, `reserved`) where the plan's layout differs from its preset's, in layout order. */
function presetChanges(snapshot: PlanSnapshot): string[] {
  const p = snapshot.parameters ?? {};
  const preset = getPreset(snapshot.preset);
  const own = layoutToJSON(
    resolveLayout(preset.layout(resolveParameters(preset.name, { ...(p.ramSize === undefined ? {} : { ramSize: p.ramSize }), ...(p.physAddressBits === undefined ? {} : { physAddressBits: p.physAddressBits }) }))),
  ) as unknown as Record<string, unknown>;
  const planned = snapshot.system.layout as unknown as Record<string, unknown>;
  // A new name alone changes nothing the guest sees.
  return LAYOUT_KEYS.filter((k) => k !== "name" && JSON.stringify(own[k]) !== JSON.stringify(planned[k]));
}

/** How a heading names the plan's machine: `preset pc-x86_64`, or `derived from preset ...: pio, mmio64 changed`. */
export function presetLabel(view: PlanView): string | undefined {
  if (view.preset === undefined) return undefined;
  const params = view.parameters === undefined ? "" : `, ${view.parameters}`;
  if (view.presetChanges.length === 0) return `preset ${view.preset}${params}`;
  return `derived from preset ${view.preset}${params}: ${view.presetChanges.join(", ")} changed`;
}

function deviceView(d: PlanDevice): DeviceView {
  const range = (r: { start: string; end: string; fixed: boolean }) => ({ start: BigInt(r.start), end: BigInt(r.end), fixed: r.fixed });
  return {
    instanceId: d.instanceId,
    name: d.name,
    owner: d.owner,
    pio: d.pio.map(range),
    mmio: d.mmio.map(range),
    irqs: d.irqs.map((q) => ({ irq: q.irq, fixed: q.fixed })),
    msi: d.msi.map((m) => ({ gsi: m.gsi, fixed: m.fixed })),
  };
}
