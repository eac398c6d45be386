/**
 * One PCI function: what device code declares ({@link PciDevice}) and the live state built from
 * it ({@link PciFunction}): its configuration space, its BARs, its interrupts.
 *
 * Device code supplies its ids, its BAR sizes and flags, its interrupt pin, optional MSI and
 * MSI-X capabilities, and handlers for its BARs and its device-specific configuration registers;
 * the PCI layer implements everything the specification fixes (header masks, BAR sizing and
 * moves, decode enables, capability list, MSI and MSI-X).
 */
import { AllocatorError } from "../core/errors.js";
import type { RangeInclusive } from "../core/range.js";
import type { Device } from "../devices/device.js";
import { formatPciAddress, type PciAddress } from "./address.js";
import { barBase, barFlags, barHighMask, barIsSizing, barLowMask, normalizeBars, PCI_BAR_COUNT, type PciBar, type PciBarSpec } from "./bar.js";
import type { PciBarMapper } from "./bar-mapper.js";
import { PciBarRegion, type PciBarHandler } from "./bar-region.js";
import {
  PCI_HEADER_TYPE_MULTI_FUNCTION,
  PciCommand,
  PciConfigRegister,
  PciConfigSpace,
  PciStatus,
  type PciConfigHandler,
  type PciHeaderIds,
} from "./config-space.js";
import type { IntxLines } from "./intx.js";
import { normalizeMsiSpec, PCI_CAP_ID_MSI, PciMsiCapability, type PciMsiSpec } from "./msi.js";
import { msixPbaSize, msixTableSize, normalizeMsixSpec, PCI_CAP_ID_MSIX, PCI_MSIX_CAPABILITY_SIZE, PciMsixCapability, type NormalizedMsixSpec, type PciMsixSpec } from "./msix.js";
import type { PciMsiMessage, PciVectorSource } from "./vectors.js";

/** A capability whose body device code implements (a virtio vendor capability, PCI Express). */
export interface PciCapabilitySpec {
  /** Capability id, 0 to 255. */
  readonly id: number;
  /** Bytes including the id and next bytes: 2 to 192. */
  readonly length: number;
  /** A fixed offset (dword aligned, 0x40-0xfc); defaults to the next free one. */
  readonly offset?: number;
}

/**
 * What device code declares and implements for one function. Reads and writes of its BARs and of
 * its configuration registers outside what the PCI layer implements reach its handlers; without
 * a handler, reads return zeros and writes are dropped.
 */
export interface PciDevice extends PciConfigHandler, PciBarHandler {
  /** Short name for owners and messages (`virtio-blk`). */
  readonly name: string;
  /** Vendor ID, 0 to 0xfffe (0xffff is what an absent function reads, so it is refused). */
  readonly vendorId: number;
  /** Device ID, 0 to 0xffff. */
  readonly deviceId: number;
  /** 24-bit class code (`0x010802` NVMe, `0x020000` Ethernet, `0x060000` host bridge). */
  readonly classCode: number;
  /** Revision ID, 0 to 0xff; defaults to 0. */
  readonly revision?: number;
  /** Subsystem vendor ID, 0 to 0xffff; defaults to 0. */
  readonly subsystemVendorId?: number;
  /** Subsystem ID, 0 to 0xffff; defaults to 0. */
  readonly subsystemId?: number;
  /** 0 (no INTx, the default) or 1-4 for INTA-INTD. */
  readonly interruptPin?: number;
  /**
   * The BARs, at most six registers' worth; each is allocated from its pool when the function is
   * plugged. None by default.
   */
  readonly bars?: readonly PciBarSpec[];
  /** An MSI capability; none by default. */
  readonly msi?: PciMsiSpec;
  /** An MSI-X capability, its table and PBA inside memory BARs of `bars`; none by default. */
  readonly msix?: PciMsixSpec;
  /** Capabilities whose bodies the device's config handler implements, linked after MSI-X and MSI. */
  readonly capabilities?: readonly PciCapabilitySpec[];
}

/** What one BAR looks like now. */
export interface PciBarInfo {
  /** The register number, 0-5. */
  readonly index: number;
  /** The BAR's kind, as declared. */
  readonly kind: "io" | "mem32" | "mem64";
  /** The size: ports for `io`, bytes otherwise; a power of two. */
  readonly size: bigint;
  /** True for a prefetchable memory BAR. */
  readonly prefetchable: boolean;
  /** The place the BAR holds in the allocator and on the bus. */
  readonly range: RangeInclusive;
  /** The base the guest's register names (the sizing mask while it sizes). */
  readonly base: bigint;
  /** True while accesses reach the function. */
  readonly routed: boolean;
  /** The base the guest wrote that could not be mapped yet. */
  readonly pending: bigint | undefined;
  /** Device-manager instance id of the BAR. */
  readonly instanceId: number;
}

/** A validated {@link PciDevice} declaration. */
export interface NormalizedPciDevice {
  /** The device's `name`. */
  readonly name: string;
  /** The BARs in register order. */
  readonly bars: readonly PciBar[];
  /** 0 (no INTx) or 1-4 for INTA-INTD. */
  readonly interruptPin: number;
  /**
   * The MSI spec, or `undefined` without MSI.
   * @property vectors Vectors the function can use: 1, 2, 4, 8, 16 or 32.
   * @property perVectorMask Per-vector mask and pending bits.
   */
  readonly msi: { readonly vectors: number; readonly perVectorMask: boolean } | undefined;
  /** The MSI-X spec, or `undefined` without MSI-X. */
  readonly msix: NormalizedMsixSpec | undefined;
  /** The device's own capabilities, in declaration order (none: an empty list). */
  readonly capabilities: readonly PciCapabilitySpec[];
  /** The header ids with defaults filled in (revision and subsystem ids 0). */
  readonly ids: Omit<PciHeaderIds, "interruptPin">;
}

function int(value: unknown, name: string, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new AllocatorError("InvalidArgument", `${name} must be an integer from 0 to 0x${max.toString(16)}, got ${String(value)}`);
  }
  return value;
}

/**
 * Checks a device's declaration: ids, BARs, pin, MSI, MSI-X (its table and PBA inside memory
 * BARs of the device) and capabilities.
 * @throws AllocatorError `InvalidArgument` or `InvalidSize` naming the field.
 */
export function normalizePciDevice(device: unknown): NormalizedPciDevice {
  if (typeof device !== "object" || device === null) throw new AllocatorError("InvalidArgument", "device must be a PCI device object");
  const d = device as PciDevice;
  if (typeof d.name !== "string" || d.name.length === 0) throw new AllocatorError("InvalidArgument", "device.name must be a non-empty string");
  for (const m of ["barRead", "barWrite", "configRead", "configWrite"] as const) {
    if (d[m] !== undefined && typeof d[m] !== "function") throw new AllocatorError("InvalidArgument", `${d.name}: device.${m} must be a method`);
  }
  const at = (what: string): string => `${d.name}: ${what}`;
  const ids = {
    vendorId: int(d.vendorId, at("vendorId"), 0xffff),
    deviceId: int(d.deviceId, at("deviceId"), 0xffff),
    classCode: int(d.classCode, at("classCode"), 0xff_ffff),
    revision: int(d.revision, at("revision"), 0xff, 0),
    subsystemVendorId: int(d.subsystemVendorId, at("subsystemVendorId"), 0xffff, 0),
    subsystemId: int(d.subsystemId, at("subsystemId"), 0xffff, 0),
  };
  // 0xffff is what an absent function reads: a device claiming it would vanish from every probe.
  if (ids.vendorId === 0xffff) throw new AllocatorError("InvalidArgument", at("vendorId 0xffff is reserved (absent functions read it)"));
  const interruptPin = int(d.interruptPin, at("interruptPin"), 4, 0);
  let bars: PciBar[];
  try {
    bars = normalizeBars(d.bars);
  } catch (error) {
    throw error instanceof AllocatorError ? new AllocatorError(error.code, at(error.message), { cause: error }) : error;
  }
  const msi = d.msi === undefined ? undefined : normalizeMsiSpec(d.msi);
  let msix: NormalizedMsixSpec | undefined;
  if (d.msix !== undefined) {
    msix = normalizeMsixSpec(d.msix);
    const inBar = (index: number, offset: number, size: number, what: string): void => {
      const bar = bars.find((b) => b.index === index);
      if (bar === undefined || bar.kind === "io") throw new AllocatorError("InvalidArgument", at(`the MSI-X ${what} is in BAR ${index}, which is not a memory BAR of the device`));
      if (BigInt(offset + size) > bar.size) throw new AllocatorError("InvalidArgument", at(`the MSI-X ${what} (0x${size.toString(16)} bytes at 0x${offset.toString(16)}) does not fit in BAR ${index} of 0x${bar.size.toString(16)} bytes`));
    };
    inBar(msix.tableBar, msix.tableOffset, msixTableSize(msix.vectors), "table");
    inBar(msix.pbaBar, msix.pbaOffset, msixPbaSize(msix.vectors), "PBA");
  }
  const capabilities: PciCapabilitySpec[] = [];
  const caps: unknown = d.capabilities;
  if (caps !== undefined) {
    if (!Array.isArray(caps)) throw new AllocatorError("InvalidArgument", at("capabilities must be an array of { id, length, offset? }"));
    caps.forEach((c: unknown, i) => {
      if (typeof c !== "object" || c === null) throw new AllocatorError("InvalidArgument", at(`capabilities[${i}] must be an object`));
      const r = c as Record<string, unknown>;
      for (const k of Object.keys(r)) if (!["id", "length", "offset"].includes(k)) throw new AllocatorError("InvalidArgument", at(`capabilities[${i}] has unknown field ${JSON.stringify(k)}`));
      const id = int(r["id"], at(`capabilities[${i}].id`), 0xff);
      const length = int(r["length"], at(`capabilities[${i}].length`), 0xc0);
      if (length < 2) throw new AllocatorError("InvalidArgument", at(`capabilities[${i}].length must be at least 2`));
      capabilities.push(r["offset"] === undefined ? { id, length } : { id, length, offset: int(r["offset"], at(`capabilities[${i}].offset`), 0xfc) });
    });
  }
  return { name: d.name, bars, interruptPin, msi, msix, capabilities, ids };
}

/** What a function needs from its host. */
export interface PciFunctionContext {
  /** Places, moves and re-places the function's BARs through the device manager. */
  readonly mapper: PciBarMapper;
  /** Holds and gives back the GSIs of the function's MSI and MSI-X vectors. */
  readonly vectors: PciVectorSource;
  /** The host's INTx lines, wired-OR over the functions that assert them. */
  readonly lines: IntxLines;
  /** Signals an MSI or MSI-X message the function raised. */
  readonly deliver: (message: PciMsiMessage) => void;
}

const barRegister = (index: number): number => PciConfigRegister.Bar0 + 4 * index;

/**
 * The live state of one plugged function. Device code gets it from `PciRootComplex.plug` and uses it
 * to raise interrupts; the host uses it to answer configuration accesses.
 *
 * It is also the device-manager device that holds the function's INTx line (it maps no range).
 */
export class PciFunction implements Device {
  /** The function's segment, bus, device and function numbers. */
  readonly address: PciAddress;
  /** `0000:00:03.0`. */
  readonly bdf: string;
  /**
   * The declaration the function was plugged with (the same object), whose handlers serve its BARs
   * and registers.
   */
  readonly device: PciDevice;
  /** Device-manager name: `virtio-blk 0000:00:03.0`. */
  readonly name: string;
  /** The GSI the function's INTx pin raises, or undefined without a pin. */
  readonly intxLine: number | undefined;
  /** The MSI capability, or `undefined` when the device declared none. */
  readonly msi: PciMsiCapability | undefined;
  /** The MSI-X capability, or `undefined` when the device declared none. */
  readonly msix: PciMsixCapability | undefined;
  /** Offsets of the device's own capabilities, in declaration order. */
  readonly capabilityOffsets: readonly number[];
  /** Device-manager instance id of the function (set when plugged). */
  instanceId = -1;
  readonly #config: PciConfigSpace;
  readonly #ctx: PciFunctionContext;
  readonly #regions: (PciBarRegion | undefined)[] = new Array<PciBarRegion | undefined>(PCI_BAR_COUNT).fill(undefined);
  readonly #list: PciBarRegion[] = [];
  #intxLevel = false;
  #intxDriven = false;

  /** @internal Built by the host from a normalized declaration; see `PciRootComplex.plug`. */
  constructor(address: PciAddress, device: PciDevice, spec: NormalizedPciDevice, intxLine: number | undefined, ctx: PciFunctionContext) {
    this.address = address;
    this.bdf = formatPciAddress(address);
    this.device = device;
    this.name = `${spec.name} ${this.bdf}`;
    this.intxLine = spec.interruptPin === 0 ? undefined : intxLine;
    this.#ctx = ctx;
    const config = new PciConfigSpace({ ...spec.ids, interruptPin: spec.interruptPin }, device);
    this.#config = config;
    if (this.intxLine !== undefined) config.setRaw(PciConfigRegister.InterruptLine, 1, this.intxLine & 0xff);
    const deliver = ctx.deliver;
    const owner = this.name;
    let msix: PciMsixCapability | undefined;
    if (spec.msix !== undefined) {
      const offset = config.addCapability(PCI_CAP_ID_MSIX, PCI_MSIX_CAPABILITY_SIZE, true);
      msix = new PciMsixCapability(config, offset, spec.msix, ctx.vectors, `${owner} MSI-X`, deliver);
    }
    this.msix = msix;
    if (spec.msi !== undefined) {
      const offset = config.addCapability(PCI_CAP_ID_MSI, PciMsiCapability.size(spec.msi.perVectorMask), true);
      this.msi = new PciMsiCapability(config, offset, spec.msi, ctx.vectors, `${owner} MSI`, deliver);
    } else {
      this.msi = undefined;
    }
    this.capabilityOffsets = spec.capabilities.map((c) => config.addCapability(c.id, c.length, false, c.offset));
    for (const bar of spec.bars) {
      const region = new PciBarRegion(
        this.bdf,
        spec.name,
        bar,
        device,
        () => this.#target(bar),
        () => this.#stale(bar),
      );
      this.#regions[bar.index] = region;
      this.#list.push(region);
      config.setMask(barRegister(bar.index), 4, barLowMask(bar));
      if (bar.kind === "mem64") config.setMask(barRegister(bar.index + 1), 4, barHighMask(bar));
    }
    if (msix !== undefined) {
      const s = msix.spec;
      for (const region of this.#list) {
        const i = region.bar.index;
        const table = i === s.tableBar ? { start: s.tableOffset, end: s.tableOffset + msixTableSize(s.vectors) } : undefined;
        const pba = i === s.pbaBar ? { start: s.pbaOffset, end: s.pbaOffset + msixPbaSize(s.vectors) } : undefined;
        if (table !== undefined || pba !== undefined) region.attachMsix(msix, table, pba);
      }
    }
  }

  /** The BAR regions, in register order. */
  get regions(): readonly PciBarRegion[] {
    return this.#list;
  }

  /** The command register. */
  get command(): number {
    return this.#config.getRaw(PciConfigRegister.Command, 2);
  }

  /** True while the device asserts its INTx pin (whether or not INTx is disabled in the command register). */
  get intxAsserted(): boolean {
    return this.#intxLevel;
  }

  /** Every BAR as it is now. */
  bars(): PciBarInfo[] {
    return this.#list.map((r) => {
      const low = this.#config.getRaw(barRegister(r.bar.index), 4);
      const high = r.bar.kind === "mem64" ? this.#config.getRaw(barRegister(r.bar.index + 1), 4) : 0;
      return {
        index: r.bar.index,
        kind: r.bar.kind,
        size: r.bar.size,
        prefetchable: r.bar.prefetchable,
        range: r.range,
        base: barBase(r.bar, low, high),
        routed: r.routed,
        pending: r.pending,
        instanceId: r.instanceId,
      };
    });
  }

  /**
   * Sets the level of the function's INTx pin. The line is raised while the pin is asserted and
   * the command register's INTx-disable bit is clear; the status register's interrupt bit shows
   * the pin either way. Does nothing for a function without a pin.
   */
  setIntx(level: boolean): void {
    if (this.intxLine === undefined || level === this.#intxLevel) return;
    this.#intxLevel = level;
    const c = this.#config;
    const status = c.getRaw(PciConfigRegister.Status, 1);
    c.setRaw(PciConfigRegister.Status, 1, level ? status | PciStatus.Interrupt : status & ~PciStatus.Interrupt);
    this.#driveIntx();
  }

  /**
   * Signals message vector `vector`: through MSI-X when the guest enabled it, else through MSI.
   * A masked vector's message is left pending; without an enabled capability or a held GSI the
   * message is dropped.
   * @returns true when a message was sent.
   */
  signalMsi(vector: number): boolean {
    if (this.msix?.enabled === true) return this.msix.signal(vector);
    if (this.msi?.enabled === true) return this.msi.signal(vector);
    return false;
  }

  /** A guest configuration read of `size` (1, 2 or 4) bytes at `offset`, inside the 4 KiB space. */
  configRead(offset: number, size: number): number {
    return this.#config.read(offset, size);
  }

  /** A guest configuration write; every effect (decode, BAR moves, vectors) happens before it returns. */
  configWrite(offset: number, size: number, value: number): void {
    const c = this.#config;
    const end = offset + size;
    const before = c.getRaw(PciConfigRegister.Command, 2);
    c.write(offset, size, value);
    if (offset < PciConfigRegister.Command + 2 && end > PciConfigRegister.Command) {
      const after = c.getRaw(PciConfigRegister.Command, 2);
      const changed = before ^ after;
      if (changed & (PciCommand.IoSpace | PciCommand.MemorySpace)) {
        for (const r of this.#list) {
          if (changed & (r.bar.kind === "io" ? PciCommand.IoSpace : PciCommand.MemorySpace)) this.#ctx.mapper.sync(r);
        }
      }
      if (changed & PciCommand.InterruptDisable) this.#driveIntx();
    }
    if (offset < PciConfigRegister.Bar0 + 4 * PCI_BAR_COUNT && end > PciConfigRegister.Bar0) {
      for (const r of this.#list) {
        const start = barRegister(r.bar.index);
        const stop = start + (r.bar.kind === "mem64" ? 8 : 4);
        if (offset < stop && end > start) this.#ctx.mapper.sync(r);
      }
    }
    const msi = this.msi;
    if (msi !== undefined && offset < msi.offset + PciMsiCapability.size(msi.perVectorMask) && end > msi.offset) msi.written();
    const msix = this.msix;
    if (msix !== undefined && offset < msix.offset + 4 && end > msix.offset + 2) msix.written();
  }

  /** @internal Snapshot: the raw bytes of the first 256 bytes of configuration space (what the PCI layer stores; device-owned bytes read 0 here). */
  rawConfig(): number[] {
    const out: number[] = [];
    for (let i = 0; i < 0x100; i++) out.push(this.#config.getRaw(i, 1));
    return out;
  }

  /**
   * @internal Restore: the raw bytes {@link rawConfig} returned, and the level of the INTx pin
   * (the shared line counts it again, silently: the interrupt controller is restored on its own).
   */
  restoreConfig(bytes: readonly number[], intxAsserted: boolean): void {
    bytes.forEach((b, i) => this.#config.setRaw(i, 1, b));
    this.#intxLevel = intxAsserted && this.intxLine !== undefined;
    this.#intxDriven = this.#intxLevel && (this.command & PciCommand.InterruptDisable) === 0;
    if (this.#intxDriven) this.#ctx.lines.restoreAsserted(this.intxLine!);
  }

  /** @internal The host sets function 0's multi-function bit as functions come and go. */
  setMultiFunction(on: boolean): void {
    const t = this.#config.getRaw(PciConfigRegister.HeaderType, 1);
    this.#config.setRaw(PciConfigRegister.HeaderType, 1, on ? t | PCI_HEADER_TYPE_MULTI_FUNCTION : t & ~PCI_HEADER_TYPE_MULTI_FUNCTION);
  }

  /** @internal Writes each BAR's allocation into its register, as firmware leaves it. */
  programBars(): void {
    for (const r of this.#list) {
      const base = r.range.start;
      this.#config.setRaw(barRegister(r.bar.index), 4, (Number(base & 0xffff_ffffn) | barFlags(r.bar)) >>> 0);
      if (r.bar.kind === "mem64") this.#config.setRaw(barRegister(r.bar.index + 1), 4, Number(base >> 32n));
    }
  }

  /** @internal Unplug: gives back every vector and lowers the INTx line. Never throws for a refused free. */
  quiesce(): void {
    this.msix?.releaseAll();
    this.msi?.releaseAll();
    if (this.#intxDriven) {
      this.#intxDriven = false;
      this.#ctx.lines.change(this.intxLine!, false);
    }
  }

  /** The core device maps no range; the buses never call these. */
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    data.fill(0xff);
  }

  write(): void {}

  #driveIntx(): void {
    const drive = this.#intxLevel && (this.command & PciCommand.InterruptDisable) === 0;
    if (drive === this.#intxDriven) return;
    this.#intxDriven = drive;
    this.#ctx.lines.change(this.intxLine!, drive);
  }

  #registers(bar: PciBar): { low: number; high: number } {
    const low = this.#config.getRaw(barRegister(bar.index), 4);
    return { low, high: bar.kind === "mem64" ? this.#config.getRaw(barRegister(bar.index + 1), 4) : 0 };
  }

  #target(bar: PciBar): bigint | undefined {
    if ((this.command & (bar.kind === "io" ? PciCommand.IoSpace : PciCommand.MemorySpace)) === 0) return undefined;
    const { low, high } = this.#registers(bar);
    return barIsSizing(bar, low, high) ? undefined : barBase(bar, low, high);
  }

  #stale(bar: PciBar): boolean {
    const { low, high } = this.#registers(bar);
    const region = this.#regions[bar.index]!;
    return barIsSizing(bar, low, high) || barBase(bar, low, high) !== region.range.start;
  }
}
