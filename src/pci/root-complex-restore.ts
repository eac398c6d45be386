/**
 * Restoring a PCI root complex from its snapshot (`PciRootComplex.fromJSON`).
 *
 * The PCI layer's device-manager devices (the configuration windows, each function, each BAR)
 * must exist before the device manager can be restored with them attached, and they need the
 * manager to move BARs later: so the objects are built first, from the snapshot and the device
 * code the VMM hands back, the manager is restored with them, and the root complex then adopts
 * both. Every check runs before anything is kept: the snapshot's shape, each function's
 * declaration against what was recorded, each BAR and line against the restored manager, each
 * MSI GSI against the allocator's holdings, and finally the whole rebuilt state against the
 * snapshot. Nothing is allocated or freed: the allocator was restored from the same VM snapshot.
 */
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import type { Device } from "../devices/device.js";
import { DeviceManager } from "../devices/device-manager.js";
import { toPciAddress } from "./address.js";
import { PciBarMapper } from "./bar-mapper.js";
import type { PciConfigTarget } from "./config-space.js";
import { PciConfigMechanism1 } from "./config-mechanism.js";
import { PciEcam } from "./ecam.js";
import { intxLine, IntxLines, Q35_INTX_ROUTING } from "./intx.js";
import { normalizePciDevice, PciFunction, type PciFunctionContext } from "./pci-function.js";
import { PciRootComplex, type PciRootComplexRestoreOptions } from "./root-complex.js";
import { parsePciRootComplexSnapshot, verifyPciRootComplexSnapshot } from "./root-complex-snapshot.js";
import { PciSlotAllocator } from "./slot-allocator.js";
import { PciVectorSource } from "./vectors.js";

function bad(what: string, cause?: unknown): AllocatorError {
  return new AllocatorError("InvalidSnapshot", `invalid PCI root complex snapshot: ${what}`, cause === undefined ? undefined : { cause });
}

/** A configuration target that forwards to the root complex once it exists. */
class LateTarget implements PciConfigTarget {
  target: PciConfigTarget | undefined;
  readConfig(segment: number, routingId: number, offset: number, size: number): number {
    return this.target === undefined ? [0, 0xff, 0xffff, 0xff_ffff, 0xffff_ffff][size]! : this.target.readConfig(segment, routingId, offset, size);
  }
  writeConfig(segment: number, routingId: number, offset: number, size: number, value: number): void {
    this.target?.writeConfig(segment, routingId, offset, size, value);
  }
}

/** See `PciRootComplex.fromJSON`. */
export function restoreRootComplex(snapshot: unknown, options: PciRootComplexRestoreOptions): { rootComplex: PciRootComplex; deviceManager: DeviceManager } {
  if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { systemAllocator, deviceManager, devices, functions }");
  const sys = options.systemAllocator;
  if (typeof sys !== "object" || sys === null || typeof sys.irqCallback !== "function") throw new AllocatorError("InvalidArgument", "options.systemAllocator must be a system allocator");
  if (!(options.functions instanceof Map)) throw new AllocatorError("InvalidArgument", "options.functions must be a Map from address to PCI device");
  const others = options.devices;
  if (!(others instanceof Map) && typeof others !== "function") throw new AllocatorError("InvalidArgument", "options.devices must be a Map or a function");
  const s = parsePciRootComplexSnapshot(snapshot);
  const routing = options.intxRouting ?? Q35_INTX_ROUTING;
  if (routing.name !== s.host.intxRouting.name || JSON.stringify([...routing.lines]) !== JSON.stringify(s.host.intxRouting.lines)) {
    throw bad(`host.intxRouting is ${s.host.intxRouting.name} [${s.host.intxRouting.lines.join(", ")}], but options.intxRouting is ${routing.name} [${routing.lines.join(", ")}]`);
  }

  // 1. The PCI layer's objects, before the device manager exists.
  const ioWindow = { min: BigInt(s.host.ioWindow.min), max: BigInt(s.host.ioWindow.max) };
  const mapper = new PciBarMapper(undefined, ioWindow, options.onBarConflict);
  const irq = sys.irqCallback();
  const vectors = new PciVectorSource(irq, options.onVectorFailure);
  const lines = new IntxLines(options.onIntx);
  const ctx: PciFunctionContext = { mapper, vectors, lines, deliver: options.onMsi ?? (() => {}) };
  const late = new LateTarget();
  const byId = new Map<number, Device>();
  const claim = (id: number, device: Device, what: string): void => {
    if (byId.has(id)) throw bad(`${what}: instance id ${id} is also that of ${(byId.get(id) as { name: string }).name}`);
    byId.set(id, device);
  };
  const mechanismIds: number[] = [];
  let mechanism: PciConfigMechanism1 | undefined;
  if (s.host.configMechanism !== null) {
    const m = s.host.configMechanism;
    mechanism = new PciConfigMechanism1(late, { port: m.port, name: m.name });
    claim(m.instanceId, mechanism, "host.configMechanism");
    mechanismIds.push(m.instanceId);
  }
  const ecams = s.host.ecams.map((e, i) => {
    const ecam = new PciEcam(late, { base: BigInt(e.base), segment: e.segment, firstBus: e.firstBus, lastBus: e.lastBus, name: e.name });
    claim(e.instanceId, ecam, `host.ecams[${i}]`);
    mechanismIds.push(e.instanceId);
    return ecam;
  });
  const functions = s.functions.map((f, i) => {
    const at = `functions[${i}]`;
    const device = options.functions.get(f.address);
    if (device === undefined) throw bad(`${at}: no device code was given for ${f.address} (${f.name}) in options.functions`);
    let spec;
    try {
      spec = normalizePciDevice(device);
    } catch (error) {
      throw bad(`${at}: the device given for ${f.address} is not a valid PCI device: ${error instanceof Error ? error.message : String(error)}`, error);
    }
    if (spec.name !== f.name) throw bad(`${at}: the device given for ${f.address} is named ${JSON.stringify(spec.name)}, not ${JSON.stringify(f.name)}`);
    const declared = spec.bars.map((b) => `${b.index}:${b.kind}:${b.prefetchable}:0x${b.size.toString(16)}`).join(",");
    const recorded = f.bars.map((b) => `${b.index}:${b.kind}:${b.prefetchable}:${b.size}`).join(",");
    if (declared !== recorded) throw bad(`${at}: ${f.name} declares BARs [${declared}], the snapshot records [${recorded}]`);
    if ((spec.msix === undefined) !== (f.msix === null) || (spec.msi === undefined) !== (f.msi === null)) throw bad(`${at}: ${f.name} declares other MSI/MSI-X capabilities than the snapshot records`);
    const address = toPciAddress(f.address, `${at}.address`);
    const line = spec.interruptPin === 0 ? undefined : intxLine(routing, address.device, spec.interruptPin);
    if ((line ?? null) !== f.intxLine) throw bad(`${at}.intxLine is ${String(f.intxLine)}, but ${f.name}'s pin gives ${String(line ?? null)} under ${routing.name}`);
    const fn = new PciFunction(Object.freeze(address), device, spec, line, ctx);
    fn.instanceId = f.instanceId;
    claim(f.instanceId, fn, at);
    fn.regions.forEach((r, j) => {
      const b = f.bars[j]!;
      r.instanceId = b.instanceId;
      const start = BigInt(b.start);
      r.range = new RangeInclusive(start, start + BigInt(b.size) - 1n);
      r.routed = b.routed;
      r.pending = b.pending === null ? undefined : BigInt(b.pending);
      claim(b.instanceId, r, `${at}.bars[${j}]`);
    });
    return fn;
  });

  // 2. The device manager, with those objects attached (it checks itself against the allocator).
  const dm = DeviceManager.fromJSON(options.deviceManager, {
    systemAllocator: sys,
    devices: (entry) => byId.get(entry.instanceId) ?? (others instanceof Map ? others.get(entry.instanceId) : others(entry)),
  });
  for (const [id, device] of byId) {
    if (!dm.has(id)) throw bad(`${(device as { name: string }).name} (instance id ${id}) is not in the device-manager snapshot`);
  }
  functions.forEach((fn, i) => {
    const lines = dm.resourcesOf(fn.instanceId).irqs.map((q) => q.irq);
    if (lines.length !== (fn.intxLine === undefined ? 0 : 1) || (fn.intxLine !== undefined && lines[0] !== fn.intxLine)) {
      throw bad(`functions[${i}]: the device manager holds lines [${lines.join(", ")}] for ${fn.name}, not its INTx line ${fn.intxLine ?? "(none)"}`);
    }
    fn.regions.forEach((r, j) => {
      const held = dm.resourcesOf(r.instanceId);
      const ranges = [...held.pio, ...held.mmio];
      if (ranges.length !== 1 || !ranges[0]!.range.equals(r.range)) throw bad(`functions[${i}].bars[${j}]: the device manager holds ${ranges.map((x) => x.range.toString()).join(", ") || "nothing"} for ${r.name}, not ${r.range.toString()}`);
      r.range = ranges[0]!.range;
    });
  });
  // The GSIs of the vectors: held by the allocator under the capability's owner, exactly.
  const holdings = sys.holdingsCallback?.();
  s.functions.forEach((f, i) => {
    const fn = functions[i]!;
    const check = (owner: string, gsis: readonly number[], what: string): void => {
      if (holdings === undefined) return;
      const held = holdings(owner).filter((h) => h.kind === "msi").map((h) => (h as { id: number }).id).sort((a, b) => a - b);
      const want = gsis.filter((g) => g >= 0).sort((a, b) => a - b);
      if (JSON.stringify(held) !== JSON.stringify(want)) throw bad(`functions[${i}].${what}: the allocator holds MSI GSIs [${held.join(", ")}] for ${owner}, the snapshot [${want.join(", ")}]`);
    };
    if (f.msix !== null) check(`${fn.name} MSI-X`, f.msix.held.map((h) => h[1]), "msix.held");
    if (f.msi !== null) check(`${fn.name} MSI`, f.msi.gsis, "msi.gsis");
  });

  // 3. State into the objects, then the root complex adopts them.
  mapper.bind(dm);
  for (const fn of functions) for (const r of fn.regions) mapper.adopt(r);
  mapper.restoreCounters(s.barConflicts, s.barEvictions);
  s.functions.forEach((f, i) => {
    const fn = functions[i]!;
    const bytes: number[] = [];
    for (let k = 0; k < 0x100; k++) bytes.push(Number.parseInt(f.config.slice(2 * k, 2 * k + 2), 16));
    fn.restoreConfig(bytes, f.intxAsserted);
    if (f.msix !== null) fn.msix!.restoreState(f.msix.table, f.msix.pending, f.msix.held);
    if (f.msi !== null) fn.msi!.restoreState(f.msi.gsis);
  });
  const rc = PciRootComplex.withParts(
    { slots: PciSlotAllocator.fromJSON(s.slots), ioWindow, mapper, vectors, lines, ctx, mechanism, ecams, mechanismIds, functions },
    {
      deviceManager: dm,
      intxRouting: routing,
      ...(options.onBarConflict === undefined ? {} : { onBarConflict: options.onBarConflict }),
      ...(options.onVectorFailure === undefined ? {} : { onVectorFailure: options.onVectorFailure }),
      ...(options.onMsi === undefined ? {} : { onMsi: options.onMsi }),
      ...(options.onIntx === undefined ? {} : { onIntx: options.onIntx }),
    },
  );
  late.target = rc;
  if (mechanism !== undefined) mechanism.restore(rc, s.configAddress ?? 0);
  for (const e of ecams) e.retarget(rc);
  // 4. The whole rebuilt state must be the recorded one, and consistent with the manager.
  verifyPciRootComplexSnapshot(snapshot, rc);
  try {
    rc.checkConsistency();
  } catch (error) {
    throw bad(`the restored root complex is inconsistent: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  return { rootComplex: rc, deviceManager: dm };
}
