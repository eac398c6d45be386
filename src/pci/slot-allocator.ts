/**
 * The bus/device/function allocator: which functions of which buses are held, and by whom.
 *
 * A VMM reserves the addresses it fixes first (a host bridge at 00:00.0, an ISA bridge at
 * 00:1f.0), then asks for the lowest free device slot for everything else, as crosvm and
 * cloud-hypervisor do. A multi-function device takes several functions of one slot. Each bus may
 * restrict the slots handed out automatically (crosvm starts bus 0 at device 1); explicit
 * reservations may use any slot of a bus the allocator knows.
 *
 * A slot is *free* when none of its eight functions is held: automatic allocation never puts a
 * device next to the functions of another one.
 */
import { AllocatorError } from "../core/errors.js";
import {
  formatPciAddress,
  formatPciBus,
  PCI_BUSES,
  PCI_DEVICES_PER_BUS,
  PCI_FUNCTIONS_PER_DEVICE,
  PCI_MAX_SEGMENT,
  pciAddressKey,
  pciAddressOfKey,
  toPciAddress,
  type PciAddress,
  type PciAddressInput,
} from "./address.js";

/** One bus the allocator serves, and the device slots it hands out by itself. */
export interface PciBusSpec {
  /** Defaults to 0. */
  readonly segment?: number;
  /** Bus number, 0 to 255. */
  readonly bus: number;
  /** Lowest device slot {@link PciSlotAllocator.allocate} hands out; defaults to 0. */
  readonly firstDevice?: number;
  /** Highest device slot it hands out; defaults to 31. */
  readonly lastDevice?: number;
}

/** One held function. */
export interface PciSlotHolding {
  /** The function held (segment, bus, device, function). */
  readonly address: PciAddress;
  /** Who holds it (a root complex uses the device's `name`, `virtio-blk`). */
  readonly owner: string;
}

/** Snapshot format tag of {@link PciSlotAllocator.toJSON}. */
export const PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT = "vm-allocator/pci-slots";

/** The JSON form of a {@link PciSlotAllocator}. */
export interface PciSlotAllocatorSnapshot {
  /**
   * Always `"vm-allocator/pci-slots"` ({@link PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT}); restoring
   * refuses any other value.
   */
  readonly format: typeof PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT;
  /** The snapshot format version, 1; restoring refuses any other. */
  readonly version: 1;
  /**
   * Every bus, in (segment, bus) order, with its automatic slot range.
   * @property segment Segment (domain), 0 to 0xffff.
   * @property bus Bus number, 0 to 255.
   * @property firstDevice Lowest device slot handed out automatically, 0 to 31.
   * @property lastDevice Highest device slot handed out automatically, inclusive, from
   * `firstDevice` to 31.
   */
  readonly buses: readonly { readonly segment: number; readonly bus: number; readonly firstDevice: number; readonly lastDevice: number }[];
  /**
   * Every held function, in address order, as `"ssss:bb:dd.f"`.
   * @property address The function, as `"ssss:bb:dd.f"` (`"0000:00:1f.3"`).
   * @property owner Who holds it.
   */
  readonly held: readonly { readonly address: string; readonly owner: string }[];
}

interface BusState {
  readonly segment: number;
  readonly bus: number;
  readonly firstDevice: number;
  readonly lastDevice: number;
  /** Owner of each function, indexed by `device * 8 + function`. */
  readonly owners: (string | undefined)[];
  /** How many functions of each device are held. */
  readonly used: Uint8Array;
}

const busKey = (segment: number, bus: number): number => segment * PCI_BUSES + bus;

function invalid(message: string): AllocatorError {
  return new AllocatorError("InvalidArgument", message);
}

function checkOwner(owner: unknown): string {
  if (typeof owner !== "string" || owner.length === 0) throw invalid("owner must be a non-empty string");
  return owner;
}

function checkInt(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}, got ${typeof value === "number" ? value : typeof value}`);
  }
  return value;
}

/**
 * Hands out PCI functions per segment and bus: explicit reservations, then the lowest free slot.
 *
 * ```ts
 * const slots = new PciSlotAllocator([{ bus: 0, firstDevice: 1 }]);
 * slots.reserve("00:00.0", "host-bridge");
 * slots.reserve("00:1f.0", "ich9-lpc");
 * slots.allocate("virtio-blk");                  // 0000:00:01.0
 * slots.allocate("nic", { functions: 2 });       // 0000:00:02.0 and 0000:00:02.1
 * ```
 *
 * A failed call changes nothing.
 */
export class PciSlotAllocator {
  readonly #buses = new Map<number, BusState>();
  #held = 0;

  /**
   * @param buses the buses served; defaults to bus 0 of segment 0 with every slot.
   * @throws AllocatorError `InvalidArgument` for a bad spec, a bus listed twice, or an empty slot range.
   */
  constructor(buses: readonly PciBusSpec[] = [{ bus: 0 }]) {
    if (!Array.isArray(buses)) throw invalid("buses must be an array of { segment?, bus, firstDevice?, lastDevice? }");
    for (let i = 0; i < buses.length; i++) {
      const spec: unknown = buses[i];
      const at = `buses[${i}]`;
      if (typeof spec !== "object" || spec === null) throw invalid(`${at} must be an object`);
      const s = spec as Record<string, unknown>;
      for (const k of Object.keys(s)) if (!["segment", "bus", "firstDevice", "lastDevice"].includes(k)) throw invalid(`${at} has unknown field ${JSON.stringify(k)}`);
      const segment = s["segment"] === undefined ? 0 : checkInt(s["segment"], `${at}.segment`, 0, PCI_MAX_SEGMENT);
      const bus = checkInt(s["bus"], `${at}.bus`, 0, PCI_BUSES - 1);
      const firstDevice = s["firstDevice"] === undefined ? 0 : checkInt(s["firstDevice"], `${at}.firstDevice`, 0, PCI_DEVICES_PER_BUS - 1);
      const lastDevice = s["lastDevice"] === undefined ? PCI_DEVICES_PER_BUS - 1 : checkInt(s["lastDevice"], `${at}.lastDevice`, 0, PCI_DEVICES_PER_BUS - 1);
      if (firstDevice > lastDevice) throw invalid(`${at}: firstDevice ${firstDevice} is above lastDevice ${lastDevice}`);
      const key = busKey(segment, bus);
      if (this.#buses.has(key)) throw invalid(`${at}: bus ${formatPciBus(segment, bus)} is listed twice`);
      this.#buses.set(key, {
        segment,
        bus,
        firstDevice,
        lastDevice,
        owners: new Array<string | undefined>(PCI_DEVICES_PER_BUS * PCI_FUNCTIONS_PER_DEVICE).fill(undefined),
        used: new Uint8Array(PCI_DEVICES_PER_BUS),
      });
    }
  }

  /** Number of held functions. */
  get size(): number {
    return this.#held;
  }

  /** The buses served, in (segment, bus) order, with their automatic slot ranges. */
  buses(): Required<PciBusSpec>[] {
    return [...this.#buses.values()]
      .sort((a, b) => busKey(a.segment, a.bus) - busKey(b.segment, b.bus))
      .map((b) => ({ segment: b.segment, bus: b.bus, firstDevice: b.firstDevice, lastDevice: b.lastDevice }));
  }

  /**
   * Holds exactly `functions` consecutive functions from `address` for `owner`, all or nothing.
   * Any slot of a known bus may be reserved, inside the automatic range or not.
   * @returns the address of the first function held.
   * @throws AllocatorError `NotFound` (a bus the allocator does not serve), `Overlap` naming the
   *   holder of a taken function, `InvalidArgument` (bad address, owner or count, or functions
   *   past 7).
   */
  reserve(address: PciAddressInput, owner: string, functions = 1): PciAddress {
    const a = toPciAddress(address);
    checkOwner(owner);
    checkInt(functions, "functions", 1, PCI_FUNCTIONS_PER_DEVICE);
    if (a.function + functions > PCI_FUNCTIONS_PER_DEVICE) {
      throw invalid(`${functions} functions from ${formatPciAddress(a)} would pass function 7`);
    }
    const b = this.#bus(a.segment, a.bus);
    for (let f = a.function; f < a.function + functions; f++) {
      const holder = b.owners[a.device * PCI_FUNCTIONS_PER_DEVICE + f];
      if (holder !== undefined) {
        const at = formatPciAddress({ ...a, function: f });
        throw new AllocatorError("Overlap", `${at} for ${owner} is already held by ${holder}`, { owner: holder });
      }
    }
    this.#take(b, a.device, a.function, functions, owner);
    return a;
  }

  /**
   * Holds the lowest free device slot of a bus (inside its automatic range) for `owner`: its
   * functions 0 to `functions - 1`.
   * @returns the address of function 0.
   * @throws AllocatorError `NotFound` (unknown bus), `ResourceNotAvailable` (no free slot),
   *   `InvalidArgument`.
   */
  allocate(owner: string, options: { readonly segment?: number; readonly bus?: number; readonly functions?: number } = {}): PciAddress {
    checkOwner(owner);
    if (typeof options !== "object" || options === null) throw invalid("options must be an object { segment?, bus?, functions? }");
    for (const k of Object.keys(options)) if (!["segment", "bus", "functions"].includes(k)) throw invalid(`options has unknown field ${JSON.stringify(k)}`);
    const segment = options.segment === undefined ? 0 : checkInt(options.segment, "options.segment", 0, PCI_MAX_SEGMENT);
    const busNumber = options.bus === undefined ? 0 : checkInt(options.bus, "options.bus", 0, PCI_BUSES - 1);
    const functions = options.functions === undefined ? 1 : checkInt(options.functions, "options.functions", 1, PCI_FUNCTIONS_PER_DEVICE);
    const b = this.#bus(segment, busNumber);
    for (let d = b.firstDevice; d <= b.lastDevice; d++) {
      if (b.used[d] !== 0) continue;
      this.#take(b, d, 0, functions, owner);
      return Object.freeze({ segment, bus: busNumber, device: d, function: 0 });
    }
    throw new AllocatorError(
      "ResourceNotAvailable",
      `no free device slot for ${owner} on bus ${formatPciBus(segment, busNumber)} (devices ${b.firstDevice.toString(16)}-${b.lastDevice.toString(16)} are all taken)`,
    );
  }

  /**
   * Gives back one function held by `owner`.
   * @throws AllocatorError `NotFound` (unknown bus), `NeverAllocated` (not held),
   *   `InvalidArgument` (held by someone else; the message names the holder).
   */
  free(address: PciAddressInput, owner: string): PciAddress {
    const a = toPciAddress(address);
    checkOwner(owner);
    const b = this.#bus(a.segment, a.bus);
    const i = a.device * PCI_FUNCTIONS_PER_DEVICE + a.function;
    const holder = b.owners[i];
    if (holder === undefined) throw new AllocatorError("NeverAllocated", `${formatPciAddress(a)} is not held`);
    if (holder !== owner) throw new AllocatorError("InvalidArgument", `${formatPciAddress(a)} is held by ${holder}, not ${owner}`, { owner: holder });
    b.owners[i] = undefined;
    b.used[a.device]!--;
    this.#held--;
    return a;
  }

  /** Who holds `address`, or undefined (also for a bus the allocator does not serve). */
  holderOf(address: PciAddressInput): string | undefined {
    const a = toPciAddress(address);
    return this.#buses.get(busKey(a.segment, a.bus))?.owners[a.device * PCI_FUNCTIONS_PER_DEVICE + a.function];
  }

  /** Every held function in address order, or those of one owner. */
  holdings(owner?: string): PciSlotHolding[] {
    const out: { key: number; owner: string }[] = [];
    for (const b of this.#buses.values()) {
      b.owners.forEach((o, i) => {
        if (o !== undefined && (owner === undefined || o === owner)) out.push({ key: busKey(b.segment, b.bus) * 256 + i, owner: o });
      });
    }
    return out.sort((x, y) => x.key - y.key).map((h) => ({ address: pciAddressOfKey(h.key), owner: h.owner }));
  }

  /** A plain JSON snapshot; {@link PciSlotAllocator.fromJSON} restores it. */
  toJSON(): PciSlotAllocatorSnapshot {
    return {
      format: PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT,
      version: 1,
      buses: this.buses(),
      held: this.holdings().map((h) => ({ address: formatPciAddress(h.address), owner: h.owner })),
    };
  }

  /**
   * Rebuilds an allocator from {@link toJSON} output.
   * @throws AllocatorError `InvalidSnapshot` naming what is wrong (format, version, a bad bus,
   *   an address on an unknown bus, a function held twice, an empty owner); never a half-built one.
   */
  static fromJSON(snapshot: unknown): PciSlotAllocator {
    const bad = (what: string, cause?: unknown): AllocatorError =>
      new AllocatorError("InvalidSnapshot", `invalid PCI slot snapshot: ${what}`, cause === undefined ? undefined : { cause });
    if (typeof snapshot !== "object" || snapshot === null || Array.isArray(snapshot)) throw bad("expected an object");
    const s = snapshot as Record<string, unknown>;
    for (const k of Object.keys(s)) if (!["format", "version", "buses", "held"].includes(k)) throw bad(`unknown field ${JSON.stringify(k)}`);
    if (s["format"] !== PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT) throw bad(`format must be "${PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT}"`);
    if (s["version"] !== 1) throw bad(`unsupported version ${String(s["version"])}; this library reads version 1`);
    if (!Array.isArray(s["buses"])) throw bad("buses must be an array");
    if (!Array.isArray(s["held"])) throw bad("held must be an array");
    let out: PciSlotAllocator;
    try {
      out = new PciSlotAllocator(s["buses"] as PciBusSpec[]);
    } catch (error) {
      throw bad(error instanceof Error ? error.message : String(error), error);
    }
    let previous = -1;
    for (let i = 0; i < s["held"].length; i++) {
      const h: unknown = s["held"][i];
      if (typeof h !== "object" || h === null || Array.isArray(h)) throw bad(`held[${i}] must be an object { address, owner }`);
      const r = h as Record<string, unknown>;
      for (const k of Object.keys(r)) if (k !== "address" && k !== "owner") throw bad(`held[${i}] has unknown field ${JSON.stringify(k)}`);
      if (typeof r["address"] !== "string") throw bad(`held[${i}].address must be a string`);
      let a: PciAddress;
      try {
        a = toPciAddress(r["address"], `held[${i}].address`);
      } catch (error) {
        throw bad(error instanceof Error ? error.message : String(error), error);
      }
      const key = pciAddressKey(a);
      if (key <= previous) throw bad(`held[${i}] ${formatPciAddress(a)} is not after the previous entry (duplicate or out of order)`);
      previous = key;
      try {
        out.reserve(a, r["owner"] as string);
      } catch (error) {
        throw bad(`held[${i}]: ${error instanceof Error ? error.message : String(error)}`, error);
      }
    }
    return out;
  }

  #bus(segment: number, bus: number): BusState {
    const b = this.#buses.get(busKey(segment, bus));
    if (b === undefined) throw new AllocatorError("NotFound", `bus ${formatPciBus(segment, bus)} is not served by this PCI slot allocator`);
    return b;
  }

  #take(b: BusState, device: number, first: number, count: number, owner: string): void {
    for (let f = first; f < first + count; f++) b.owners[device * PCI_FUNCTIONS_PER_DEVICE + f] = owner;
    b.used[device]! += count;
    this.#held += count;
  }
}
