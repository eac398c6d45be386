/**
 * What the device manager records for each registered device, and the public copies of it.
 *
 * Every resource says how it is held, because the device manager and the allocator must agree on
 * it (`DeviceManager.checkConsistency` proves they do):
 *
 * - `"allocator"`: the allocator behind the callbacks holds it under the device's owner; it is
 *   freed through the callback on unplug;
 * - `"outside"`: a fixed value the callback reported as outside every pool it serves (returned
 *   `null`): only mapped or recorded, never freed;
 * - `"unmanaged"`: no callback existed for the kind (a lightweight VMM, or firmware placement
 *   without an allocator): only mapped or recorded.
 */
import { lineSharingConflict } from "../core/line-sharing.js";
import type { RangeInclusive } from "../core/range.js";
import type { Device } from "./device.js";

/** How a resource of a device is held; see the module documentation. */
export type HeldBy = "allocator" | "outside" | "unmanaged";

/** A legacy IRQ a device holds. */
export interface HeldIrq {
  /** The interrupt line number (the interrupt controller's input). */
  readonly irq: number;
  /** True when the allocator holds it for this device (the manager frees it on unplug). */
  readonly allocated: boolean;
  /** True when the request (or the VMM) fixed the line. */
  readonly fixed: boolean;
  /** True when the line is shared with other devices that also share it. */
  readonly shared: boolean;
}

/** An MSI GSI a device holds. */
export interface HeldMsi {
  /** The global system interrupt the device's messages are routed to. */
  readonly gsi: number;
  /** True when the allocator holds it for this device (the manager frees it on unplug). */
  readonly allocated: boolean;
  /** True when the request fixed it. */
  readonly fixed: boolean;
}

/** A PIO or MMIO range a device holds and is mapped at. */
export interface HeldRange {
  /**
   * The ports (PIO) or guest-physical addresses (MMIO) held, inclusive at both ends; the device is
   * mapped on the bus at exactly this range.
   */
  readonly range: RangeInclusive;
  /** True when the allocator holds it for this device (the manager frees it on unplug). */
  readonly allocated: boolean;
  /** True when the request (or the VMM) fixed its place. */
  readonly fixed: boolean;
}

/** What a registered device holds: a copy, taken when it was asked for. */
export interface DeviceResources {
  /**
   * The device's instance id, a u32; also the `@id` suffix of `owner` and the key every
   * `DeviceManager` method takes.
   */
  readonly instanceId: number;
  /** True when the allocator holds the instance id for this device. */
  readonly instanceIdAllocated: boolean;
  /** True when the request (or the VMM) fixed the instance id. */
  readonly instanceIdFixed: boolean;
  /** `device.name`, or `device`. */
  readonly name: string;
  /** `${name}@${instanceId}`: the owner of everything the device holds, in the allocator and on the buses. */
  readonly owner: string;
  /** The device object registered (the same object, not a copy), which the buses dispatch to. */
  readonly device: Device;
  /** Which method registered the device (a restored device keeps the original one). */
  readonly registration: "simple" | "full";
  /** The legacy interrupt lines held, in the order they were requested. */
  readonly irqs: readonly HeldIrq[];
  /** The MSI GSIs held, in the order they were requested. */
  readonly msi: readonly HeldMsi[];
  /** The port ranges held (and mapped on the PIO bus), in the order they were requested. */
  readonly pio: readonly HeldRange[];
  /** The MMIO ranges held (and mapped on the MMIO bus), in the order they were requested. */
  readonly mmio: readonly HeldRange[];
}

/** One id a device holds (its instance id, a legacy line or an MSI GSI). */
export interface IdSlot {
  readonly value: number;
  readonly fixed: boolean;
  readonly shared: boolean;
  readonly heldBy: HeldBy;
}

/** A held range plus the constraints a move must keep. */
export interface RangeSlot {
  range: RangeInclusive;
  heldBy: HeldBy;
  readonly fixed: boolean;
  readonly alignment: bigint | undefined;
  readonly window: { readonly min: bigint; readonly max: bigint } | undefined;
  readonly mmio64: boolean;
}

/** The manager's record of one device. */
export interface DeviceRecord {
  readonly device: Device;
  readonly name: string;
  readonly owner: string;
  readonly instanceId: IdSlot;
  readonly registration: "simple" | "full";
  readonly irqs: IdSlot[];
  readonly msi: IdSlot[];
  readonly pio: RangeSlot[];
  readonly mmio: RangeSlot[];
}

/** A fresh copy for callers: changing it cannot reach the record. */
export function resourcesOfRecord(r: DeviceRecord): DeviceResources {
  return {
    instanceId: r.instanceId.value,
    instanceIdAllocated: r.instanceId.heldBy === "allocator",
    instanceIdFixed: r.instanceId.fixed,
    name: r.name,
    owner: r.owner,
    device: r.device,
    registration: r.registration,
    irqs: r.irqs.map((q) => ({ irq: q.value, allocated: q.heldBy === "allocator", fixed: q.fixed, shared: q.shared })),
    msi: r.msi.map((m) => ({ gsi: m.value, allocated: m.heldBy === "allocator", fixed: m.fixed })),
    pio: r.pio.map((s) => ({ range: s.range, allocated: s.heldBy === "allocator", fixed: s.fixed })),
    mmio: r.mmio.map((s) => ({ range: s.range, allocated: s.heldBy === "allocator", fixed: s.fixed })),
  };
}

/**
 * Records by instance id. A plain `Map` degrades badly when one key is deleted and set again over
 * and over (V8 keeps each deleted entry in the key's hash chain until the table is rebuilt, so a
 * register/unregister loop reusing id 1000 slowed to microseconds per lookup). Entries are
 * therefore never deleted but set to undefined, and the table is rebuilt once the dead entries
 * outnumber the live ones, which keeps every pattern of ids amortised O(1).
 */
export class IdTable<V> {
  #map = new Map<number, V | undefined>();
  #live = 0;

  get size(): number {
    return this.#live;
  }

  get(id: number): V | undefined {
    return this.#map.get(id);
  }

  set(id: number, value: V): void {
    if (this.#map.get(id) === undefined) this.#live++;
    this.#map.set(id, value);
  }

  delete(id: number): void {
    if (this.#map.get(id) === undefined) return;
    this.#map.set(id, undefined);
    this.#live--;
    if (this.#map.size - this.#live > this.#live + 64) {
      const fresh = new Map<number, V | undefined>();
      for (const [k, v] of this.#map) if (v !== undefined) fresh.set(k, v);
      this.#map = fresh;
    }
  }

  *entries(): Generator<[number, V]> {
    for (const [k, v] of this.#map) if (v !== undefined) yield [k, v];
  }
}

/** The instance id an owner `name@id` ends with. */
function instanceIdOf(owner: string): number {
  return Number(owner.slice(owner.lastIndexOf("@") + 1));
}

/**
 * Which devices hold each legacy line and each MSI GSI, so that sharing rules hold even for
 * lines no allocator sees (firmware lines outside the pool, a VMM without an irq callback).
 */
export class LineTable {
  // An IdTable, not a Map: a device replugged over and over takes and frees the same line, the
  // pattern that degrades a plain Map (measured: 1.6 µs per lookup after a few thousand pairs).
  readonly #lines = new IdTable<{ holders: string[]; shared: boolean }>();

  /** Why `owner` cannot take `line` (for an Overlap message), or undefined when it can. */
  conflict(line: number, owner: string, shared: boolean): { why: string; holder: string } | undefined {
    const l = this.#lines.get(line);
    if (l === undefined) return undefined;
    const why = lineSharingConflict(l.holders, l.shared, owner, shared);
    if (why === undefined) return undefined;
    return { why, holder: l.holders.includes(owner) ? owner : l.holders[0]! };
  }

  /**
   * Adds a holder. Holders are kept by ascending instance id (the `@id` that ends every owner),
   * not in the order they came: a restored manager adds them in id order, and must name the same
   * holders in the same order (in messages and `error.owner`) as the manager it was taken from.
   */
  add(line: number, owner: string, shared: boolean): void {
    const l = this.#lines.get(line);
    if (l === undefined) {
      this.#lines.set(line, { holders: [owner], shared });
      return;
    }
    const id = instanceIdOf(owner);
    let i = l.holders.length;
    while (i > 0 && instanceIdOf(l.holders[i - 1]!) > id) i--;
    l.holders.splice(i, 0, owner);
  }

  remove(line: number, owner: string): void {
    const l = this.#lines.get(line);
    if (l === undefined) return;
    const i = l.holders.indexOf(owner);
    if (i >= 0) l.holders.splice(i, 1);
    if (l.holders.length === 0) this.#lines.delete(line);
  }

  get size(): number {
    return this.#lines.size;
  }

  /** Every line with its holders. */
  entries(): [number, { readonly holders: readonly string[]; readonly shared: boolean }][] {
    return [...this.#lines.entries()];
  }
}
