/**
 * The PCI root complex: ties slots, configuration access, BARs and interrupts to a
 * device manager.
 *
 * - Functions are plugged at a reserved address or at the lowest free slot (a
 *   {@link PciSlotAllocator}), all or nothing, and unplugged, giving back their slot, their BARs
 *   and their vectors.
 * - Configuration mechanism #1 (0xcf8/0xcfc) and ECAM windows are registered with the device
 *   manager at their fixed places and reach the same per-function configuration spaces; absent
 *   functions read all ones.
 * - Each function is a device-manager device holding its INTx line (a shared fixed legacy IRQ
 *   derived from its slot and pin), and each BAR is one holding one range, so the allocator sees
 *   everything PCI holds; MSI and MSI-X GSIs are held through the `irq` callback while the guest
 *   uses them.
 *
 * It knows allocation only through the device manager and the `irq` callback, never an
 * allocator class.
 *
 * Owners in the allocator: `virtio-blk 0000:00:03.0@7` (the function, its INTx share),
 * `virtio-blk 0000:00:03.0 BAR 0@8` (a BAR), `virtio-blk 0000:00:03.0 MSI-X` (its vectors).
 */
import { AllocatorError } from "../core/errors.js";
import type { DeviceManager } from "../devices/device-manager.js";
import type { Device, ResourceRequest } from "../devices/device.js";
import type { IdAllocateFunc } from "../system/allocation-callbacks.js";
import type { SystemAllocator } from "../system/system-allocator-interface.js";
import { hex, toU64 } from "../core/u64.js";
import { formatPciAddress, pciRoutingId, toPciAddress, type PciAddress, type PciAddressInput } from "./address.js";
import type { PciIoWindow } from "./bar.js";
import { PciBarMapper, type PciBarConflict } from "./bar-mapper.js";
import { PCI_CONFIG_SPACE_SIZE, type PciConfigTarget } from "./config-space.js";
import { PciConfigMechanism1 } from "./config-mechanism.js";
import { PciEcam, type PciEcamOptions } from "./ecam.js";
import { intxLine, IntxLines, Q35_INTX_ROUTING, type PciIntxRouting } from "./intx.js";
import { normalizePciDevice, PciFunction, type NormalizedPciDevice, type PciDevice, type PciFunctionContext } from "./pci-function.js";
import { PciSlotAllocator, type PciBusSpec } from "./slot-allocator.js";
import { pciRootComplexSnapshot, verifyPciRootComplexSnapshot, type PciHostSnapshot, type PciRootComplexSnapshot } from "./root-complex-snapshot.js";
import { restoreRootComplex } from "./root-complex-restore.js";
import { PciVectorSource, type PciMsiMessage, type PciVectorFailure } from "./vectors.js";

/** Options of a {@link PciRootComplex}. */
export interface PciRootComplexOptions {
  /** Where BARs, INTx lines and the configuration mechanisms are held and mapped. */
  readonly deviceManager: DeviceManager;
  /** Source of MSI/MSI-X GSIs (`pool: "msi"`); without one, enabled vectors get none. */
  readonly irq?: IdAllocateFunc;
  /** Buses and their automatic slot ranges; defaults to bus 0 from device 1 (crosvm's rule). */
  readonly buses?: readonly PciBusSpec[];
  /** The chipset's INTx wiring; defaults to {@link Q35_INTX_ROUTING}. */
  readonly intxRouting?: PciIntxRouting;
  /** Ports I/O BARs are allocated and may be moved in; defaults to 0xc000-0xffff (SeaBIOS's). */
  readonly ioWindow?: PciIoWindow;
  /**
   * Register configuration mechanism #1 (default true; `{ port }` to move it).
   * @property port The port of the address register; defaults to 0xcf8.
   */
  readonly configMechanism?: boolean | { readonly port?: number };
  /** ECAM windows to register (the q35 preset's is `{ base: 0xb000_0000 }`); none by default. */
  readonly ecam?: PciEcamOptions | readonly PciEcamOptions[];
  /** Told about each guest-written BAR base that cannot be mapped (see `bar-mapper.ts`). */
  readonly onBarConflict?: (conflict: PciBarConflict) => void;
  /** Told about each MSI GSI the pool refused or would not take back. */
  readonly onVectorFailure?: (failure: PciVectorFailure) => void;
  /** Receives every MSI/MSI-X message a function sends. */
  readonly onMsi?: (message: PciMsiMessage) => void;
  /** Receives level changes of the shared INTx lines. */
  readonly onIntx?: (gsi: number, level: boolean) => void;
}

/** Where {@link PciRootComplex.plug} puts a function. */
export interface PciPlugOptions {
  /** Exactly this address; otherwise function 0 of the lowest free slot of `segment`/`bus`. */
  readonly address?: PciAddressInput;
  /** The segment to pick a slot in, 0 to 0xffff; defaults to 0. Not with `address`. */
  readonly segment?: number;
  /** The bus to pick a slot in, 0 to 255; defaults to 0. Not with `address`. */
  readonly bus?: number;
}

const ALL_ONES = [0, 0xff, 0xffff, 0xff_ffff, 0xffff_ffff];

/** @internal What {@link PciRootComplex.fromJSON} builds before the device manager exists, for the constructor to adopt. */
export interface RestoreParts {
  readonly slots: PciSlotAllocator;
  readonly ioWindow: { readonly min: bigint; readonly max: bigint };
  readonly mapper: PciBarMapper;
  readonly vectors: PciVectorSource;
  readonly lines: IntxLines;
  readonly ctx: PciFunctionContext;
  readonly mechanism: PciConfigMechanism1 | undefined;
  readonly ecams: readonly PciEcam[];
  readonly mechanismIds: readonly number[];
  readonly functions: readonly PciFunction[];
}

/** Set by {@link PciRootComplex.fromJSON} for the one constructor call it makes. */
let restoring: RestoreParts | undefined;

/** What {@link PciRootComplex.fromJSON} returns. */
export interface PciRootComplexRestored {
  /** The restored root complex. */
  readonly rootComplex: PciRootComplex;
  /** The restored device manager it lives on, with the PCI layer's devices and the VMM's attached. */
  readonly deviceManager: DeviceManager;
}

/** Options of {@link PciRootComplex.fromJSON}. */
export interface PciRootComplexRestoreOptions {
  /** The system allocator restored from the same VM snapshot: the device manager's callbacks, the MSI GSIs' `irq` callback and holdings. */
  readonly systemAllocator: SystemAllocator;
  /** `DeviceManager.toJSON()` of the same moment: restored here, with the PCI layer's devices attached. */
  readonly deviceManager: unknown;
  /** The device objects of the manager's other devices (as `DeviceManager.fromJSON` takes them). */
  readonly devices: ReadonlyMap<number, Device> | ((entry: { readonly instanceId: number; readonly name: string; readonly owner: string }) => Device | undefined);
  /** The device code of each function, by address (`"0000:00:03.0"`); it must declare what it declared when plugged. */
  readonly functions: ReadonlyMap<string, PciDevice>;
  /** The INTx rule the root complex was built with (checked by name and lines); defaults to {@link Q35_INTX_ROUTING}. */
  readonly intxRouting?: PciIntxRouting;
  /** As {@link PciRootComplexOptions.onBarConflict}. */
  readonly onBarConflict?: (conflict: PciBarConflict) => void;
  /** As {@link PciRootComplexOptions.onVectorFailure}. */
  readonly onVectorFailure?: (failure: PciVectorFailure) => void;
  /** As {@link PciRootComplexOptions.onMsi}. */
  readonly onMsi?: (message: PciMsiMessage) => void;
  /** As {@link PciRootComplexOptions.onIntx}; not told of the lines a restore asserts again. */
  readonly onIntx?: (gsi: number, level: boolean) => void;
}

/**
 * A PCI root complex on a device manager.
 *
 * ```ts
 * const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
 * const dm = DeviceManager.fromSystemAllocator(sys);
 * const pci = PciRootComplex.fromSystemAllocator(sys, dm, { ecam: { base: 0xb000_0000 } });
 * pci.plug(hostBridge, { address: "00:00.0" });
 * const blk = pci.plug(virtioBlk);                    // 0000:00:01.0, BARs allocated
 * blk.signalMsi(0);                                   // once the guest enabled MSI-X
 * pci.unplug(blk);                                    // slot, BARs and vectors given back
 * ```
 */
export class PciRootComplex implements PciConfigTarget {
  /**
   * The device manager the complex holds BARs, INTx lines and its configuration devices through
   * (from the options).
   */
  readonly deviceManager: DeviceManager;
  /** The slot allocator; reserve addresses here for functions plugged later by other code. */
  readonly slots: PciSlotAllocator;
  /** The chipset's INTx wiring the functions' pins are routed by. */
  readonly intxRouting: PciIntxRouting;
  /** The 0xcf8/0xcfc device, when registered. */
  readonly configMechanism: PciConfigMechanism1 | undefined;
  /** The ECAM windows registered. */
  readonly ecams: readonly PciEcam[];
  readonly #mapper: PciBarMapper;
  readonly #vectors: PciVectorSource;
  readonly #lines: IntxLines;
  readonly #ctx: PciFunctionContext;
  /** Functions by segment, each an array indexed by routing id. */
  readonly #segments = new Map<number, (PciFunction | undefined)[]>();
  #segment0: (PciFunction | undefined)[] | undefined;
  readonly #mechanismIds: number[] = [];
  readonly #ioWindow: { readonly min: bigint; readonly max: bigint };
  #count = 0;

  /**
   * Registers the configuration mechanisms with the device manager.
   * @throws AllocatorError `InvalidArgument` for bad options, and what the device manager throws
   *   when a mechanism's fixed range is taken (nothing stays registered then).
   */
  constructor(options: PciRootComplexOptions) {
    if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { deviceManager, ... }");
    const known = ["deviceManager", "irq", "buses", "intxRouting", "ioWindow", "configMechanism", "ecam", "onBarConflict", "onVectorFailure", "onMsi", "onIntx"];
    for (const k of Object.keys(options)) if (!known.includes(k)) throw new AllocatorError("InvalidArgument", `options has unknown field ${JSON.stringify(k)}`);
    const dm = options.deviceManager;
    if (typeof dm !== "object" || dm === null || typeof dm.moveRange !== "function") throw new AllocatorError("InvalidArgument", "options.deviceManager must be a DeviceManager");
    for (const k of ["irq", "onBarConflict", "onVectorFailure", "onMsi", "onIntx"] as const) {
      if (options[k] !== undefined && typeof options[k] !== "function") throw new AllocatorError("InvalidArgument", `options.${k} must be a function`);
    }
    this.deviceManager = dm;
    this.intxRouting = options.intxRouting ?? Q35_INTX_ROUTING;
    const parts = restoring;
    restoring = undefined;
    if (parts !== undefined) {
      // A restore: everything was built and checked by fromJSON, and the device manager holds it.
      this.slots = parts.slots;
      this.#ioWindow = parts.ioWindow;
      this.#mapper = parts.mapper;
      this.#vectors = parts.vectors;
      this.#lines = parts.lines;
      this.#ctx = parts.ctx;
      this.configMechanism = parts.mechanism;
      this.ecams = Object.freeze([...parts.ecams]);
      this.#mechanismIds.push(...parts.mechanismIds);
      for (const fn of parts.functions) this.#route(fn);
      return;
    }
    this.slots = new PciSlotAllocator(options.buses ?? [{ bus: 0, firstDevice: 1 }]);
    const w = options.ioWindow ?? { min: 0xc000, max: 0xffff };
    const ioWindow = { min: toU64(w.min, "options.ioWindow.min"), max: toU64(w.max, "options.ioWindow.max") };
    if (ioWindow.min > ioWindow.max || ioWindow.max > 0xffffn) throw new AllocatorError("InvalidArgument", "options.ioWindow must be { min, max } with min <= max <= 0xffff");
    this.#ioWindow = ioWindow;
    this.#mapper = new PciBarMapper(dm, ioWindow, options.onBarConflict);
    this.#vectors = new PciVectorSource(options.irq, options.onVectorFailure);
    this.#lines = new IntxLines(options.onIntx);
    const onMsi = options.onMsi;
    this.#ctx = { mapper: this.#mapper, vectors: this.#vectors, lines: this.#lines, deliver: onMsi ?? (() => {}) };

    const cm = options.configMechanism ?? true;
    const mechanism = cm === false ? undefined : new PciConfigMechanism1(this, cm === true ? {} : cm);
    const ecamList = options.ecam === undefined ? [] : Array.isArray(options.ecam) ? options.ecam : [options.ecam as PciEcamOptions];
    const ecams = ecamList.map((e) => new PciEcam(this, e));
    try {
      if (mechanism !== undefined) this.#mechanismIds.push(dm.fullRegisterDevice(mechanism));
      for (const e of ecams) this.#mechanismIds.push(dm.fullRegisterDevice(e));
    } catch (error) {
      for (const id of this.#mechanismIds.reverse()) dm.fullUnregisterDevice(id);
      throw error;
    }
    this.configMechanism = mechanism;
    this.ecams = Object.freeze(ecams);
  }

  /** A host taking the `irq` callback of a system allocator (any object of its shape). */
  static fromSystemAllocator(sys: SystemAllocator, deviceManager: DeviceManager, options: Omit<PciRootComplexOptions, "deviceManager" | "irq"> = {}): PciRootComplex {
    if (typeof sys !== "object" || sys === null || typeof sys.irqCallback !== "function") throw new AllocatorError("InvalidArgument", "sys must be a system allocator with irqCallback()");
    const irq = sys.irqCallback();
    return new PciRootComplex({ ...options, deviceManager, ...(irq === undefined ? {} : { irq }) });
  }

  /** Number of plugged functions. */
  get size(): number {
    return this.#count;
  }

  /** Guest-written BAR bases that could not be mapped, counted once per base written. */
  get barConflicts(): number {
    return this.#mapper.conflicts;
  }

  /** Stale BAR allocations re-placed to make room for a guest-written base. */
  get barEvictions(): number {
    return this.#mapper.evictions;
  }

  /** MSI GSIs the pool refused or would not take back. */
  get vectorFailures(): number {
    return this.#vectors.failures;
  }

  /** MSI GSIs held now, over all functions. */
  get heldVectors(): number {
    return this.#vectors.held;
  }

  /**
   * Plugs one function: holds its address (given, or function 0 of the lowest free slot), its
   * INTx line, and a naturally aligned allocation for each BAR in its pool; writes the BARs'
   * bases into their registers, as firmware would. Decoding stays off until the guest enables it.
   * All or nothing.
   * @returns the live function, through which device code raises interrupts.
   * @throws AllocatorError for a bad declaration (`InvalidArgument`, `InvalidSize`), a taken
   *   address (`Overlap` naming the holder), no free slot, and what the device manager throws
   *   for the line or a BAR (`ResourceNotAvailable`, `Overlap`), prefixed with the function.
   */
  plug(device: PciDevice, options: PciPlugOptions = {}): PciFunction {
    return this.#plug([device], options)[0]!;
  }

  /**
   * Plugs a multi-function device: `devices[i]` becomes function i of one slot (given by
   * `options.address`, which must name function 0, or the lowest free one). All or nothing.
   */
  plugMultiFunction(devices: readonly PciDevice[], options: PciPlugOptions = {}): PciFunction[] {
    if (!Array.isArray(devices) || devices.length < 1 || devices.length > 8) throw new AllocatorError("InvalidArgument", "devices must be an array of 1 to 8 PCI devices");
    return this.#plug(devices, options);
  }

  /**
   * Unplugs a function: it vanishes from configuration space at once, its vectors and INTx share
   * are given back, its BARs unmapped and freed, its slot freed; BARs waiting for space are
   * retried. Should the allocator refuse a free, the function is gone anyway and the call throws
   * `InvalidState` to report the leak.
   * @throws AllocatorError `NotFound` when nothing is plugged there.
   */
  unplug(target: PciAddressInput | PciFunction): void {
    const a = target instanceof PciFunction ? target.address : toPciAddress(target);
    const table = this.#segments.get(a.segment);
    const fn = table?.[pciRoutingId(a)];
    if (fn === undefined || (target instanceof PciFunction && fn !== target)) throw new AllocatorError("NotFound", `no PCI function is plugged at ${formatPciAddress(a)}`);
    table![pciRoutingId(a)] = undefined;
    this.#count--;
    fn.quiesce();
    const failures = runAll([
      ...[...fn.regions].reverse().map((r) => () => this.#mapper.remove(r)),
      () => this.deviceManager.fullUnregisterDevice(fn.instanceId),
      () => this.slots.free(a, fn.device.name),
    ]);
    this.#updateMultiFunction(a);
    this.#mapper.retryPending();
    if (failures.length > 0) {
      throw new AllocatorError("InvalidState", `${fn.name} was unplugged, but giving back its resources failed: ${failures.map(describe).join("; ")}`, {
        cause: failures[0],
        device: fn.name,
      });
    }
  }

  /** The function plugged at `address`, or undefined. */
  function(address: PciAddressInput): PciFunction | undefined {
    const a = toPciAddress(address);
    return this.#segments.get(a.segment)?.[pciRoutingId(a)];
  }

  /** Every plugged function, in address order. */
  functions(): PciFunction[] {
    const out: PciFunction[] = [];
    for (const s of [...this.#segments.keys()].sort((x, y) => x - y)) for (const f of this.#segments.get(s)!) if (f !== undefined) out.push(f);
    return out;
  }

  /**
   * The BARs waiting for their collision to go away.
   * @property function The function whose BAR waits.
   * @property bar The BAR's register number, 0-5.
   * @property base The base the guest wrote, which the BAR is mapped at once nothing else holds it.
   */
  pendingBars(): { readonly function: PciFunction; readonly bar: number; readonly base: bigint }[] {
    const out: { function: PciFunction; bar: number; base: bigint }[] = [];
    for (const fn of this.functions()) for (const r of fn.regions) if (r.pending !== undefined) out.push({ function: fn, bar: r.bar.index, base: r.pending });
    return out;
  }

  /** {@link PciConfigTarget}: what the configuration mechanisms call. */
  readConfig(segment: number, routingId: number, offset: number, size: number): number {
    const fn = (segment === 0 ? this.#segment0 : this.#segments.get(segment))?.[routingId];
    return fn === undefined ? ALL_ONES[size]! : fn.configRead(offset, size);
  }

  /** {@link PciConfigTarget}: what the configuration mechanisms call. */
  writeConfig(segment: number, routingId: number, offset: number, size: number, value: number): void {
    (segment === 0 ? this.#segment0 : this.#segments.get(segment))?.[routingId]?.configWrite(offset, size, value);
  }

  /**
   * A configuration read as the VMM makes it (firmware emulation, tests): `size` 1, 2 or 4 bytes
   * at `offset`, inside the 4 KiB space.
   * @throws AllocatorError `InvalidArgument` for a bad address, offset or size.
   */
  configRead(address: PciAddressInput, offset: number, size: 1 | 2 | 4 = 4): number {
    const a = toPciAddress(address);
    checkAccess(offset, size);
    return this.readConfig(a.segment, pciRoutingId(a), offset, size);
  }

  /** A configuration write as the VMM makes it; see {@link configRead}. */
  configWrite(address: PciAddressInput, offset: number, size: 1 | 2 | 4, value: number): void {
    const a = toPciAddress(address);
    checkAccess(offset, size);
    if (!Number.isInteger(value) || value < 0 || value > ALL_ONES[size]!) throw new AllocatorError("InvalidArgument", `value must fit in ${size} bytes`);
    this.writeConfig(a.segment, pciRoutingId(a), offset, size, value);
  }

  /**
   * Verifies that the functions, their BARs, the slot allocator and the device manager agree:
   * every function and BAR is registered with the ranges recorded here, every routed BAR sits
   * where its register says, every slot is held, no MSI GSI is held twice; then the device
   * manager's own `checkConsistency`.
   * @throws AllocatorError `InvalidState` describing the first disagreement.
   */
  checkConsistency(): void {
    const broken = (what: string): never => {
      throw new AllocatorError("InvalidState", what);
    };
    const dm = this.deviceManager;
    const gsis = new Map<number, string>();
    let count = 0;
    for (const fn of this.functions()) {
      count++;
      if (this.slots.holderOf(fn.address) !== fn.device.name) broken(`${fn.name} is plugged but its slot is held by ${this.slots.holderOf(fn.address) ?? "nobody"}`);
      if (!dm.has(fn.instanceId)) broken(`${fn.name} is not registered with the device manager`);
      const core = dm.resourcesOf(fn.instanceId);
      const lines = core.irqs.map((q) => q.irq);
      if (lines.length !== (fn.intxLine === undefined ? 0 : 1) || (fn.intxLine !== undefined && lines[0] !== fn.intxLine)) {
        broken(`${fn.name} holds lines [${lines.join(", ")}] in the device manager, not its INTx line ${fn.intxLine ?? "(none)"}`);
      }
      for (const r of fn.regions) {
        if (!dm.has(r.instanceId)) broken(`${r.name} is not registered with the device manager`);
        const res = dm.resourcesOf(r.instanceId);
        const ranges = [...res.pio, ...res.mmio];
        if (ranges.length !== 1 || !ranges[0]!.range.equals(r.range)) broken(`${r.name} is recorded at ${r.range.toString()} but the device manager holds ${ranges.map((x) => x.range.toString()).join(", ")}`);
        if (r.routed && r.target() !== r.range.start) broken(`${r.name} is routed but its register does not name ${r.range.toString()}`);
        if (r.routed && r.pending !== undefined) broken(`${r.name} is both routed and pending`);
      }
      const held: number[] = [];
      if (fn.msix !== undefined) for (let v = 0; v < fn.msix.vectors; v++) if (fn.msix.gsiOf(v) >= 0) held.push(fn.msix.gsiOf(v));
      if (fn.msi !== undefined) held.push(...fn.msi.gsis().filter((g) => g >= 0));
      for (const g of held) {
        const other = gsis.get(g);
        if (other !== undefined) broken(`MSI GSI ${g} is held by both ${other} and ${fn.name}`);
        gsis.set(g, fn.name);
      }
    }
    if (count !== this.#count) broken(`${count} functions are in the tables but ${this.#count} are counted`);
    if (gsis.size !== this.#vectors.held) broken(`${gsis.size} MSI GSIs are held by functions but the vector source counts ${this.#vectors.held}`);
    dm.checkConsistency();
  }

  /**
   * A plain JSON snapshot: slots, each function's ids, command register, BAR registers and
   * placements, MSI/MSI-X enables and held GSIs, and the conflict counters. See
   * `root-complex-snapshot.ts`.
   */
  toJSON(): PciRootComplexSnapshot {
    return pciRootComplexSnapshot(this);
  }

  /** How this root complex was built (the `host` part of {@link toJSON}). */
  hostSnapshot(): PciHostSnapshot {
    const ids = [...this.#mechanismIds];
    const m = this.configMechanism;
    return {
      ioWindow: { min: hex(this.#ioWindow.min), max: hex(this.#ioWindow.max) },
      configMechanism: m === undefined ? null : { port: m.port, name: m.name, instanceId: ids.shift()! },
      ecams: this.ecams.map((e) => ({ base: hex(e.base), segment: e.segment, firstBus: e.firstBus, lastBus: e.lastBus, name: e.name, instanceId: ids.shift()! })),
      intxRouting: { name: this.intxRouting.name, lines: [...this.intxRouting.lines] },
    };
  }

  /**
   * Rebuilds a root complex, and the device manager it lives on, from {@link toJSON} output and
   * `DeviceManager.toJSON()` of the same moment, next to a system allocator restored from the
   * same VM snapshot: every function at its address with its configuration registers, BARs at
   * their places and routed as they were, pending BAR writes still pending, MSI and MSI-X vectors
   * holding the GSIs they held (the allocator already holds them: nothing is allocated), INTx
   * levels, the 0xcf8 address latch and the counters. Device code's own state is its own.
   *
   * ```ts
   * const sys = DefaultSystemAllocator.fromJSON(vm.system);
   * const { rootComplex, deviceManager } = PciRootComplex.fromJSON(vm.pci, {
   *   systemAllocator: sys, deviceManager: vm.devices, devices: new Map([[2, uart]]),
   *   functions: new Map([["0000:00:01.0", virtioBlk]]),
   * });
   * ```
   * @throws AllocatorError `InvalidSnapshot` naming what is wrong: a malformed snapshot, a
   *   function without device code or whose declaration differs, a BAR the device manager holds
   *   elsewhere, a GSI the allocator does not hold for its vector, what `DeviceManager.fromJSON`
   *   refuses. Nothing is half-built, held or freed.
   */
  static fromJSON(snapshot: unknown, options: PciRootComplexRestoreOptions): PciRootComplexRestored {
    try {
      return restoreRootComplex(snapshot, options);
    } catch (error) {
      if (error instanceof AllocatorError && error.code === "InvalidSnapshot") throw error;
      if (error instanceof AllocatorError && error.code === "InvalidArgument" && /^options/.test(error.message)) throw error;
      throw new AllocatorError("InvalidSnapshot", `invalid PCI root complex snapshot: could not be restored (${describe(error)})`, { cause: error });
    }
  }

  /** @internal Used by {@link fromJSON}: the constructor adopts `parts` instead of building and registering. */
  static withParts(parts: RestoreParts, options: PciRootComplexOptions): PciRootComplex {
    restoring = parts;
    try {
      return new PciRootComplex(options);
    } finally {
      restoring = undefined;
    }
  }

  /**
   * Verify-only restore: checks that `snapshot` is valid and that this root complex (rebuilt by
   * replugging the functions and replaying the guest's configuration writes) is in exactly the
   * state it records. Changes nothing.
   * @throws AllocatorError `InvalidSnapshot` naming the first problem or difference.
   */
  verifySnapshot(snapshot: unknown): void {
    verifyPciRootComplexSnapshot(snapshot, this);
  }

  /**
   * Unplugs every function and unregisters the configuration mechanisms.
   * @throws AllocatorError `InvalidState` when a free was refused (everything is gone anyway).
   */
  close(): void {
    const failures = runAll([
      ...this.functions().reverse().map((fn) => () => this.unplug(fn)),
      ...this.#mechanismIds.splice(0).reverse().map((id) => () => void this.deviceManager.fullUnregisterDevice(id)),
    ]);
    if (failures.length > 0) throw new AllocatorError("InvalidState", `closing the PCI root complex left leaks: ${failures.map(describe).join("; ")}`, { cause: failures[0] });
  }

  #plug(devices: readonly PciDevice[], options: PciPlugOptions): PciFunction[] {
    if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { address?, segment?, bus? }");
    for (const k of Object.keys(options)) if (!["address", "segment", "bus"].includes(k)) throw new AllocatorError("InvalidArgument", `options has unknown field ${JSON.stringify(k)}`);
    const specs: NormalizedPciDevice[] = devices.map((d) => normalizePciDevice(d));
    const owner = specs[0]!.name;
    const undo: (() => void)[] = [];
    const plugged: PciFunction[] = [];
    let what = owner;
    try {
      let first: PciAddress;
      if (options.address !== undefined) {
        if (options.segment !== undefined || options.bus !== undefined) throw new AllocatorError("InvalidArgument", "options takes address, or segment and bus, not both");
        first = toPciAddress(options.address, "options.address");
        if (devices.length > 1 && first.function !== 0) throw new AllocatorError("InvalidArgument", `a multi-function device starts at function 0, not ${formatPciAddress(first)}`);
        // Each function is held under its own device's name.
        specs.forEach((s, i) => {
          const a = this.slots.reserve({ ...first, function: first.function + i }, s.name);
          undo.push(() => this.slots.free(a, s.name));
        });
      } else {
        const spot = { ...(options.segment === undefined ? {} : { segment: options.segment }), ...(options.bus === undefined ? {} : { bus: options.bus }) };
        first = this.slots.allocate(owner, { ...spot, functions: devices.length });
        // The allocator held every function under the first name: rename the others.
        for (let i = 1; i < specs.length; i++) {
          this.slots.free({ ...first, function: i }, owner);
          this.slots.reserve({ ...first, function: i }, specs[i]!.name);
        }
        specs.forEach((s, i) => undo.push(() => this.slots.free({ ...first, function: i }, s.name)));
      }
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i]!;
        const address = Object.freeze({ ...first, function: first.function + i });
        what = `${spec.name} ${formatPciAddress(address)}`;
        const line = spec.interruptPin === 0 ? undefined : intxLine(this.intxRouting, address.device, spec.interruptPin);
        const fn = new PciFunction(address, devices[i]!, spec, line, this.#ctx);
        const requests: ResourceRequest[] = line === undefined ? [] : [{ kind: "irq", fixed: line, shared: true }];
        try {
          fn.instanceId = this.deviceManager.fullRegisterDevice(fn, requests);
        } catch (error) {
          if (!(error instanceof AllocatorError) || line === undefined) throw error;
          const why = error.cause instanceof AllocatorError ? error.cause : error;
          throw new AllocatorError(error.code, `${fn.name} INT${"ABCD"[spec.interruptPin - 1]} (${this.intxRouting.name} line ${line}): ${why.message}`, { cause: error, owner: error.owner });
        }
        // Undone with `undo`, so that a failed plug leaves the allocator's snapshot as it was.
        undo.push(() => this.deviceManager.fullUnregisterDevice(fn.instanceId, { undo: true }));
        for (const r of fn.regions) {
          this.#mapper.place(r);
          undo.push(() => this.#mapper.remove(r, true));
        }
        fn.programBars();
        plugged.push(fn);
      }
    } catch (error) {
      const failures = runAll(undo.reverse());
      if (failures.length > 0) {
        throw new AllocatorError("InvalidState", `cannot plug ${what}: ${describe(error)}; undoing it failed too (${failures.map(describe).join("; ")}): the allocator may have leaked`, { cause: error, device: what });
      }
      if (!(error instanceof AllocatorError)) throw error;
      // The device manager's errors already begin with the BAR's or function's owner name.
      const message = error.message.startsWith(what) ? `cannot plug ${error.message}` : `cannot plug ${what}: ${error.message}`;
      throw new AllocatorError(error.code, message, { cause: error, owner: error.owner, device: what });
    }
    for (const fn of plugged) this.#route(fn);
    this.#updateMultiFunction(plugged[0]!.address);
    return plugged;
  }

  /** Sets function 0's multi-function bit when its slot has other functions. */
  /** Makes `fn` reachable by configuration accesses (its segment's routing table, made on first use). */
  #route(fn: PciFunction): void {
    let table = this.#segments.get(fn.address.segment);
    if (table === undefined) {
      table = new Array<PciFunction | undefined>(0x1_0000).fill(undefined);
      this.#segments.set(fn.address.segment, table);
      if (fn.address.segment === 0) this.#segment0 = table;
    }
    table[pciRoutingId(fn.address)] = fn;
    this.#count++;
  }

  #updateMultiFunction(a: PciAddress): void {
    const table = this.#segments.get(a.segment);
    if (table === undefined) return;
    const base = pciRoutingId({ ...a, function: 0 });
    const f0 = table[base];
    if (f0 === undefined) return;
    let others = false;
    for (let f = 1; f < 8; f++) if (table[base + f] !== undefined) others = true;
    f0.setMultiFunction(others);
  }
}

/** Runs every step, whatever the others throw; returns what they threw. */
function runAll(steps: readonly (() => void)[]): unknown[] {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      step();
    } catch (error) {
      failures.push(error);
    }
  }
  return failures;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkAccess(offset: number, size: number): void {
  if (size !== 1 && size !== 2 && size !== 4) throw new AllocatorError("InvalidArgument", `size must be 1, 2 or 4, got ${String(size)}`);
  if (!Number.isInteger(offset) || offset < 0 || offset + size > PCI_CONFIG_SPACE_SIZE) {
    throw new AllocatorError("InvalidArgument", `offset must be an integer with offset + size at most 0x1000, got ${String(offset)}`);
  }
}
