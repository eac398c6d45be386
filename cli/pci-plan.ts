/**
 * Planning the PCI devices of a layout: a `PciRootComplex` on the plan's device manager, with the
 * preset's host bridge (its ECAM window, the 0xcf8 ports on x86, its INTx rule), exactly as a VMM
 * would build one. Fixed slots are reserved first, in file order, so that a function without a
 * slot never takes one a later entry names; each function is then plugged in file order, which
 * places its BARs in the pools of their kinds and holds its INTx share.
 *
 * Errors carry the field path of what failed: `slot` for a taken slot (naming its holder and
 * where it is in the file), `bars[j]` for a BAR no pool has room for, `interruptPin` for a line
 * the allocator refused.
 */
import { isAllocatorError } from "../src/core/errors.js";
import { hex } from "../src/core/u64.js";
import type { DeviceManager } from "../src/devices/device-manager.js";
import { formatPciAddress } from "../src/pci/address.js";
import { PciRootComplex } from "../src/pci/root-complex.js";
import { Q35_INTX_ROUTING } from "../src/pci/intx.js";
import type { DefaultSystemAllocator } from "../src/system/system-allocator.js";
import { field, type Problem } from "./diagnostics.js";
import type { LayoutFile } from "./layout-file.js";
import { pciHostOf, type CliPciHost } from "./pci-host.js";
import { pciDeviceOf, type PciDeviceSpec } from "./pci-layout.js";
import type { PlanPci, PlanPciFunction } from "./pci-snapshot.js";


/** Plans the PCI devices of one layout on one device manager. */
export class PciPlanner {
  readonly #dm: DeviceManager;
  readonly #host: CliPciHost;
  readonly #rc: PciRootComplex;
  /** The layout's specs by device name, for the ids the plan records. */
  readonly #specs = new Map<string, PciDeviceSpec>();
  /** Specs whose fixed slot could not be reserved: they are not plugged. */
  readonly #refused = new Set<PciDeviceSpec>();

  /**
   * Creates the root complex (which registers its configuration windows) and reserves every
   * fixed slot; the problems found are added to `problems`.
   * @throws AllocatorError when the host's windows cannot be registered (the caller reports it).
   */
  private constructor(sys: DefaultSystemAllocator, dm: DeviceManager, host: CliPciHost, specs: readonly PciDeviceSpec[], problems: Problem[]) {
    this.#dm = dm;
    this.#host = host;
    const pio = sys.pool("pio");
    this.#rc = PciRootComplex.fromSystemAllocator(sys, dm, {
      ecam: { base: host.ecamBase, lastBus: host.lastBus },
      configMechanism: host.configPorts,
      // The routing only matters for pins, which the layout refuses without one.
      intxRouting: host.routing ?? Q35_INTX_ROUTING,
      ...(pio === undefined ? {} : { ioWindow: { min: pio.base, max: pio.end } }),
    });
    const holders = new Map<string, string>();
    for (const spec of specs) {
      this.#specs.set(spec.name, spec);
      if (spec.slot === undefined) continue;
      const address = { segment: 0, bus: 0, device: spec.slot, function: spec.function };
      const holder = this.#rc.slots.holderOf(address);
      if (holder !== undefined) {
        problems.push({ path: field(spec.path, "slot"), message: `${formatPciAddress(address)} is already held by ${holder} (${holders.get(holder) ?? "?"})` });
        this.#refused.add(spec);
        continue;
      }
      this.#rc.slots.reserve(address, spec.name);
      holders.set(spec.name, spec.path);
    }
  }

  /**
   * A planner for `layout`'s PCI devices, or undefined when it has none. Problems (taken slots, a
   * host whose windows are taken) are added to `problems`; with a host that cannot be built, the
   * planner is undefined and every PCI device is left out.
   */
  static create(sys: DefaultSystemAllocator, dm: DeviceManager, layout: LayoutFile, problems: Problem[]): PciPlanner | undefined {
    const specs = layout.devices.filter((d): d is PciDeviceSpec => d.kind === "pci");
    if (specs.length === 0) return undefined;
    const host = pciHostOf(layout.preset, layout.givenParameters);
    if (host === undefined) {
      // The layout reader refuses PCI devices on such a preset; this is a backstop.
      problems.push({ path: field(specs[0]!.path, "kind"), message: `preset ${layout.preset} has no PCI host bridge` });
      return undefined;
    }
    try {
      return new PciPlanner(sys, dm, host, specs, problems);
    } catch (error) {
      if (!isAllocatorError(error)) throw error;
      problems.push({ path: specs[0]!.path, message: `cannot set up preset ${layout.preset}'s PCI host bridge: ${error.message}` });
      return undefined;
    }
  }

  /**
   * Plugs one function; a failure is added to `problems` with the path of the field concerned.
   * @returns false when the function could not be plugged.
   */
  plug(spec: PciDeviceSpec, problems: Problem[]): boolean {
    if (this.#refused.has(spec)) return false;
    const address = spec.slot === undefined ? undefined : { segment: 0, bus: 0, device: spec.slot, function: spec.function };
    if (address !== undefined) this.#rc.slots.free(address, spec.name);
    try {
      this.#rc.plug(pciDeviceOf(spec), address === undefined ? {} : { address });
      return true;
    } catch (error) {
      if (!isAllocatorError(error)) throw error;
      if (address !== undefined) this.#rc.slots.reserve(address, spec.name);
      problems.push(this.#problem(spec, error.message));
      return false;
    }
  }

  /** The problem of a failed plug, at the field it concerns. */
  #problem(spec: PciDeviceSpec, message: string): Problem {
    // `cannot plug nvme0 0000:00:03.0 BAR 0: ...`, `cannot plug nvme0 0000:00:03.0 INTA (q35 line 23): ...`
    const reason = message.replace(/^cannot plug /, "");
    const rest = reason.startsWith(`${spec.name} `) ? reason.slice(spec.name.length + 1) : "";
    const bar = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] BAR (\d)\b/.exec(rest);
    if (bar !== null) {
      const path = spec.barPaths.get(Number(bar[1]));
      if (path !== undefined) return { path, message: reason };
    }
    if (/ INT[A-D] \(/.test(reason)) return { path: field(spec.path, "interruptPin"), message: reason };
    if (/no free device slot/.test(reason)) return { path: spec.path, message: reason };
    return { path: spec.path, message: `cannot plug ${reason}` };
  }

  /** The PCI part of the plan. */
  snapshot(): PlanPci {
    const owner = (id: number) => this.#dm.resourcesOf(id).owner;
    const mechanism = this.#rc.configMechanism;
    const ecam = this.#rc.ecams[0]!;
    const ids = new Map(this.#dm.instanceIds().map((id) => [this.#dm.resourcesOf(id).owner, id]));
    const ownerOfName = (name: string): string => [...ids.keys()].find((o) => o.slice(0, o.lastIndexOf("@")) === name)!;
    const functions = this.#rc.functions().map((fn): PlanPciFunction => {
      const spec = this.#specs.get(fn.device.name)!;
      return {
        address: fn.bdf,
        name: spec.name,
        owner: owner(fn.instanceId),
        vendorId: spec.vendorId,
        deviceId: spec.deviceId,
        classCode: spec.classCode,
        interruptPin: spec.interruptPin,
        gsi: fn.intxLine ?? null,
        msixVectors: spec.msix?.vectors ?? 0,
        bars: fn.bars().map((b) => ({ index: b.index, kind: b.kind, prefetchable: b.prefetchable, start: hex(b.range.start), end: hex(b.range.end), owner: owner(b.instanceId) })),
      };
    });
    return {
      bus: "0000:00",
      routing: this.#host.routing?.name ?? null,
      ecam: { start: hex(ecam.base), end: hex(ecam.base + ecam.size - 1n), owner: ownerOfName(ecam.name) },
      configPorts: mechanism === undefined ? null : { start: "0xcf8", end: "0xcff", owner: ownerOfName(mechanism.name) },
      functions,
    };
  }
}
