/**
 * Planning: turns a validated layout into allocations, through the library exactly as a VMM
 * would use it: a `DefaultSystemAllocator` built from the layout, and a `DeviceManager` on top of
 * it that registers each device with `fullRegisterDevice`.
 *
 * **Fixed resources.** The device manager holds every fixed value through the allocator when it
 * registers the device. Registration follows the file's order, so before any device is
 * registered every fixed resource of every device is checked against the pools and set aside:
 *
 * - inside free space of a pool, it is reserved under a placeholder until its device registers
 *   (and then released just before, so that the device manager holds it for the device): an
 *   allocation for an earlier device can never take it;
 * - inside a reservation of the layout (a serial port inside the ISA port block, a device on an
 *   IRQ line the platform set aside), it is used as the platform meant it;
 * - outside every pool (Firecracker's serial IRQ 4, below its IRQ pool), it is only mapped;
 * - anything else is a conflict, reported with both field paths.
 *
 * Legacy IRQ lines may be shared by devices that say `shared: true` (Firecracker's COM1 and COM3
 * on IRQ 4); an MSI GSI, an instance id or a range never is.
 *
 * **Errors** carry the field path of the request that failed: the device manager's errors name
 * the request (`error.requestIndex`).
 */
import type { Device, NormalizedAddressRequest } from "../src/devices/device.js";
import { DeviceManager } from "../src/devices/device-manager.js";
import { AddressAllocator } from "../src/core/address-allocator.js";
import { hex } from "../src/core/u64.js";
import { isAllocatorError, type AllocatorError } from "../src/core/errors.js";
import { AllocPolicy } from "../src/core/resource.js";
import { layoutToJSON, MEMORY_POOL_NAMES, type AddressPoolName, type IdPoolName, type SystemLayout } from "../src/system/layouts.js";
import { DefaultSystemAllocator, type AddressPoolView, type IdPoolView } from "../src/system/system-allocator.js";
import { field, item, type Problem } from "./diagnostics.js";
import type { DeviceSpec, LayoutFile } from "./layout-file.js";
import { PciPlanner } from "./pci-plan.js";
import { PLAN_FORMAT, PLAN_VERSION, type PlanDevice, type PlanParameters, type PlanSnapshot } from "./snapshot.js";

/** What planning produced: a snapshot when everything was allocated, and every problem found. */
export interface PlanOutcome {
  readonly snapshot: PlanSnapshot | undefined;
  readonly problems: readonly Problem[];
}

/** Options of {@link planLayout}. */
export interface PlanOptions {
  /** Where the layout came from, recorded in the snapshot for headings. */
  readonly source: string;
  /**
   * Keep going after a failure to find more problems (`check`): a device that fails is skipped
   * and the others are still planned. Without it planning stops at the first device that
   * cannot be registered (the fixed resources of all devices are still checked first).
   */
  readonly keepGoing?: boolean;
}

/** Dummy device: the CLI plans resources and never dispatches accesses. */
function placeholder(name: string): Device {
  return { name, read: () => undefined, write: () => undefined };
}


/** A fixed resource reserved for a device before its instance id (and so its owner) is known. */
interface Pending {
  readonly pool: AddressPoolName | IdPoolName;
  readonly start: bigint;
  readonly end: bigint;
  /** The owner it is reserved under, when not the device's placeholder. */
  readonly owner?: string;
}

/**
 * Plans `layout`. Never throws for bad input: every problem is returned with its field path.
 * @throws Error only for an internal error (a bug), never for an `AllocatorError`.
 */
export function planLayout(layout: LayoutFile, options: PlanOptions): PlanOutcome {
  const problems: Problem[] = [];
  const keepGoing = options.keepGoing === true;
  const sys = new DefaultSystemAllocator(layoutToJSON(layout.system) as SystemLayout);
  const dm = DeviceManager.fromSystemAllocator(sys);
  const fixed = new FixedResources(sys, layout);

  // Phase 1: every fixed resource of every device, before anything is allocated.
  const skip = new Set<number>();
  layout.devices.forEach((device, i) => {
    if (device.kind !== "device") return;
    const found = fixed.claim(device);
    if (found.length > 0) {
      problems.push(...found);
      skip.add(i);
    }
  });
  if (problems.length > 0 && !keepGoing) return { snapshot: undefined, problems };
  // The PCI host's fixed windows and the layout's fixed slots, still before any allocation.
  const pci = PciPlanner.create(sys, dm, layout, problems);
  if (problems.length > 0 && !keepGoing) return { snapshot: undefined, problems };

  // Phase 2: register the devices in file order; the allocator fills in everything not fixed.
  layout.devices.forEach((device, i) => {
    if (skip.has(i) || (problems.length > 0 && !keepGoing)) return;
    if (device.kind === "pci") {
      pci?.plug(device, problems);
      return;
    }
    // What phase 1 set aside for this device is released now, for the device manager to hold.
    const setAside = fixed.release(device);
    try {
      dm.fullRegisterDevice(placeholder(device.name), device.requests);
    } catch (error) {
      if (!isAllocatorError(error)) throw error;
      fixed.restore(setAside);
      // The library names the device and the request; the field path says both here, so only a
      // detail after the request's description (which MSI vector) is kept.
      const reason = error.message.replace(/^[^:]*: (?:requests\[\d+\] \([^)]*\)|instance id): /, "");
      if (error.requestIndex === undefined) problems.push({ path: device.path, message: `cannot register ${device.name}: ${reason}` });
      else problems.push({ path: item(field(device.path, "requests"), error.requestIndex), message: reason });
    }
  });
  // Every device the device manager holds: the layout's, and the PCI host's windows, functions and BARs.
  const devices: PlanDevice[] = dm.instanceIds().map((id) => {
    const held = dm.resourcesOf(id);
    return {
      instanceId: held.instanceId,
      name: held.name,
      owner: held.owner,
      instanceIdFixed: held.instanceIdFixed,
      pio: held.pio.map((r) => ({ start: hex(r.range.start), end: hex(r.range.end), fixed: r.fixed })),
      mmio: held.mmio.map((r) => ({ start: hex(r.range.start), end: hex(r.range.end), fixed: r.fixed })),
      irqs: held.irqs.map((q) => ({ irq: q.irq, fixed: q.fixed })),
      msi: held.msi.map((m) => ({ gsi: m.gsi, fixed: m.fixed })),
    };
  });
  if (problems.length > 0) return { snapshot: undefined, problems };
  devices.sort((a, b) => a.instanceId - b.instanceId);
  const snapshot: PlanSnapshot = {
    format: PLAN_FORMAT,
    version: PLAN_VERSION,
    source: options.source,
    ...(layout.description === undefined ? {} : { description: layout.description }),
    preset: layout.preset,
    ...(Object.keys(layout.givenParameters).length === 0 ? {} : { parameters: planParameters(layout) }),
    system: sys.toJSON(),
    devices,
    ...(pci === undefined ? {} : { pci: pci.snapshot() }),
  };
  return { snapshot, problems };
}

/** The parameters a layout file gave, as a plan records them. */
function planParameters(layout: LayoutFile): PlanParameters {
  const { ramSize, physAddressBits } = layout.givenParameters;
  return {
    ...(ramSize === undefined ? {} : { ramSize: hex(BigInt(ramSize)) }),
    ...(physAddressBits === undefined ? {} : { physAddressBits }),
  };
}

/**
 * The fixed resources of all devices: checks them against the pools and each other, reserves
 * those in free space, and hands the reservations to each device's owner once it is known.
 */
class FixedResources {
  readonly #sys: DefaultSystemAllocator;
  /** Owners of the layout's reservations -> their paths, for messages. */
  readonly #platform = new Map<string, string>();
  /** Device owners (placeholders, `name@id`, and names as instance-id owners) -> device paths. */
  readonly #devices = new Map<string, string>();
  readonly #pending = new Map<string, Pending[]>();
  /** Fixed ranges outside every pool, per kind, held under their device's placeholder owner. */
  readonly #unpooled: { pio?: AddressAllocator; mmio?: AddressAllocator } = {};
  /** Devices that hold a fixed instance id, by name (the owner instance ids are held under). */
  readonly #instanceOwners = new Map<string, string>();
  /** Fixed ids outside their pool: `pool:id` -> path. */
  readonly #outsideIds = new Map<string, string>();

  constructor(sys: DefaultSystemAllocator, layout: LayoutFile) {
    this.#sys = sys;
    for (const r of layout.reserved) if (!this.#platform.has(r.owner)) this.#platform.set(r.owner, r.path);
  }

  /** The owner the device's fixed resources are reserved under until it is registered. */
  static placeholderOwner(device: DeviceSpec): string {
    const id = device.normalized.find((r) => r.kind === "instanceId")?.fixed;
    return id === undefined ? `${device.name}@?` : `${device.name}@${id}`;
  }

  /** Checks and reserves the fixed resources of one device; returns its problems. */
  claim(device: DeviceSpec): Problem[] {
    const owner = FixedResources.placeholderOwner(device);
    this.#devices.set(owner, device.path);
    const problems: Problem[] = [];
    const pending: Pending[] = [];
    this.#pending.set(device.path, pending);
    for (const r of device.normalized) {
      if (r.fixed === undefined) continue;
      const at = field(item(field(device.path, "requests"), r.index), "fixed");
      try {
        if (r.kind === "pio" || r.kind === "mmio") {
          const a = r as NormalizedAddressRequest & { fixed: bigint };
          this.#claimRange(a.kind, a.fixed, a.fixed + a.size - 1n, owner, at, pending, problems);
        } else if (r.kind === "msi") {
          r.fixed.forEach((gsi, k) => this.#claimGsi(gsi, owner, item(at, k), pending, problems));
        } else if (r.kind === "instanceId") {
          this.#claimInstanceId(r.fixed as number, device, at, problems);
        } else {
          this.#claimIrq(r.fixed as number, owner, at, pending, problems);
        }
      } catch (error) {
        if (!isAllocatorError(error)) throw error;
        problems.push({ path: at, message: error.message });
      }
    }
    return problems;
  }

  /** Releases what was set aside for `device`, just before it registers; returns it for {@link restore}. */
  release(device: DeviceSpec): { pending: Pending[]; owner: string } {
    const pending = this.#pending.get(device.path) ?? [];
    this.#pending.delete(device.path);
    const owner = FixedResources.placeholderOwner(device);
    for (const p of pending) this.#sys.unreserve(p.pool, { start: p.start, end: p.end });
    return { pending, owner };
  }

  /** Sets aside again what {@link release} released, when the device failed to register (`check`). */
  restore(setAside: { pending: Pending[]; owner: string }): void {
    for (const p of setAside.pending) this.#sys.reserve(p.pool, { start: p.start, end: p.end }, p.pool === "instanceId" ? p.owner ?? setAside.owner : setAside.owner);
  }

  /** `owner (path)` for an owner the layout or a device introduced, else just the owner. */
  #describe(owner: string | undefined): string {
    if (owner === undefined) return "an unnamed owner";
    const path = this.#devices.get(owner) ?? this.#platform.get(owner);
    const shown = owner.endsWith("@?") ? owner.slice(0, -2) : owner;
    return path === undefined ? shown : `${shown} (${path})`;
  }

  #claimInstanceId(id: number, device: DeviceSpec, at: string, problems: Problem[]): void {
    const pool = this.#sys.instanceId;
    if (id < pool.first || id > pool.last) {
      const key = `instanceId:${id}`;
      const other = this.#outsideIds.get(key);
      if (other !== undefined) problems.push({ path: at, message: `instance id ${id} is already fixed by ${other}` });
      else this.#outsideIds.set(key, at);
      return;
    }
    if (pool.isAllocated(id)) {
      const holder = pool.ownerOf(id);
      const who = holder !== undefined && this.#instanceOwners.has(holder) ? `${holder} (${this.#instanceOwners.get(holder)!})` : this.#describe(holder);
      problems.push({ path: at, message: `instance id ${id} is already held by ${who}` });
      return;
    }
    this.#instanceOwners.set(device.name, device.path);
    this.#sys.reserve("instanceId", id, device.name);
    this.#pending.get(device.path)!.push({ pool: "instanceId", start: BigInt(id), end: BigInt(id), owner: device.name });
  }

  #claimIrq(irq: number, owner: string, at: string, pending: Pending[], problems: Problem[]): void {
    const msi = this.#sys.msi;
    if (irq >= msi.first && irq <= msi.last) {
      problems.push({ path: at, message: `[irq ${irq}] is inside the MSI pool [irq ${msi.first}-${msi.last}]; legacy IRQs and MSI GSIs share one GSI space` });
      return;
    }
    const pool = this.#sys.legacyIrq;
    if (irq < pool.first || irq > pool.last) return; // outside the pool: legacy lines may be shared
    if (pool.isAllocated(irq)) return; // a layout reservation or another fixed user: shared
    this.#sys.reserve("legacyIrq", irq, owner);
    pending.push({ pool: "legacyIrq", start: BigInt(irq), end: BigInt(irq) });
  }

  #claimGsi(gsi: number, owner: string, at: string, pending: Pending[], problems: Problem[]): void {
    const legacy = this.#sys.legacyIrq;
    if (gsi >= legacy.first && gsi <= legacy.last) {
      problems.push({ path: at, message: `GSI ${gsi} is inside the legacy IRQ pool [irq ${legacy.first}-${legacy.last}]; legacy IRQs and MSI GSIs share one GSI space` });
      return;
    }
    const pool: IdPoolView = this.#sys.msi;
    if (gsi < pool.first || gsi > pool.last) {
      const key = `msi:${gsi}`;
      const other = this.#outsideIds.get(key);
      if (other !== undefined) problems.push({ path: at, message: `MSI GSI ${gsi} is already fixed by ${other}` });
      else this.#outsideIds.set(key, at);
      return;
    }
    if (pool.isAllocated(gsi)) {
      problems.push({ path: at, message: `MSI GSI ${gsi} is already held by ${this.#describe(pool.ownerOf(gsi))}; MSI GSIs are never shared` });
      return;
    }
    this.#sys.reserve("msi", gsi, owner);
    pending.push({ pool: "msi", start: BigInt(gsi), end: BigInt(gsi) });
  }

  #claimRange(
    kind: "pio" | "mmio",
    start: bigint,
    end: bigint,
    owner: string,
    at: string,
    pending: Pending[],
    problems: Problem[],
  ): void {
    const label = kind === "pio" ? "io" : "mem";
    const shown = `[${label} ${hex(start)}-${hex(end)}]`;
    const candidates: readonly AddressPoolName[] = kind === "pio" ? ["pio"] : MEMORY_POOL_NAMES;
    let pool: { name: AddressPoolName; view: AddressPoolView } | undefined;
    for (const name of candidates) {
      const view = this.#sys.pool(name);
      if (view === undefined || end < view.base || start > view.end) continue;
      if (start < view.base || end > view.end) {
        problems.push({ path: at, message: `${shown} straddles the edge of the ${name} pool [${label} ${hex(view.base)}-${hex(view.end)}]` });
        return;
      }
      pool = { name, view };
    }
    if (pool === undefined) {
      // Outside every pool only the bus will know it; an allocator over the whole space finds
      // overlaps among such ranges in O(log n).
      const space = (this.#unpooled[kind] ??= new AddressAllocator(0n, 1n << 64n));
      try {
        space.allocate(end - start + 1n, 1n, AllocPolicy.ExactMatch(start), { owner });
      } catch (error) {
        if (!isAllocatorError(error, "Overlap")) throw error;
        problems.push({ path: at, message: this.#conflict(error, label) });
      }
      return;
    }
    const holder = pool.view.find(start);
    if (holder !== undefined) {
      // In phase 1 the pools hold only the layout's reservations and devices' fixed ranges.
      const platform = holder.owner !== undefined && !this.#isDevice(holder.owner);
      if (platform && holder.range.start <= start && end <= holder.range.end) return; // nested in a platform reservation
      problems.push({ path: at, message: `${shown} conflicts with ${this.#describe(holder.owner)} ${holder.range.toString(label)}` });
      return;
    }
    try {
      this.#sys.reserve(pool.name, { start, end }, owner);
    } catch (error) {
      if (!isAllocatorError(error, "Overlap")) throw error;
      problems.push({ path: at, message: this.#conflict(error, label) });
      return;
    }
    pending.push({ pool: pool.name, start, end });
  }

  /** An `Overlap` error's message with its holder described for people (`uart-a (devices[5])`). */
  #conflict(error: AllocatorError, label: "io" | "mem"): string {
    const message = label === "io" ? error.message.replaceAll("[mem ", "[io ") : error.message;
    const holder = error.owner;
    return holder === undefined ? message : message.replace(`conflicts with ${holder} `, `conflicts with ${this.#describe(holder)} `);
  }

  /** True for an owner that is a device (a placeholder or a registered `name@id`). */
  #isDevice(owner: string): boolean {
    return this.#devices.has(owner);
  }
}
