/**
 * The device manager: registers devices, obtains their resources through allocation callbacks,
 * maps them on a PIO bus and an MMIO bus, and routes guest accesses (VM exits) to them.
 *
 * It knows allocation only through the callback types of `allocation-callbacks.ts`, never through
 * an allocator class, so a VMM can plug in any allocator, or none:
 *
 * 1. A lightweight VMM allocates everything itself and hands it over with
 *    {@link DeviceManager.simpleRegisterDevice}.
 * 2. A VMM with allocators passes callbacks and lets {@link DeviceManager.fullRegisterDevice}
 *    allocate what each device requests.
 * 3. Firmware-assigned resources are requested with `fixed` values and mapped without calling
 *    an allocator; a callback is only required for requests without one.
 *
 * **Owners.** Every callback call names an owner. The instance id is allocated (and freed) with
 * the device name as owner, since the id is not known yet; every other resource of the device,
 * and its bus mappings, use `` `${name}@${instanceId}` `` (`virtio-blk@3`), which is unique among
 * registered devices. `name` is `device.name`, or `device` when the device has none. A resource
 * is always freed with the owner it was allocated with.
 *
 * **Atomicity.** Every method is synchronous, so it is atomic with respect to the event loop. A
 * mutating method that fails has changed nothing: a registration undoes everything it did, in
 * reverse order, whatever a callback throws. Errors from callbacks and devices reach the caller
 * unchanged; only if undoing itself fails (a callback refuses to free what it handed out) is the
 * error replaced by an `InvalidState` error whose `cause` is the original.
 *
 * **Re-entrancy.** While a mutating method runs (and so while it calls an allocator callback),
 * another mutating call on the same manager throws `InvalidState`; queries and dispatch are
 * allowed and see the state before the call. Dispatch itself is not a mutation: a device may
 * unregister itself, register another device or move its own range from inside `read`/`write`.
 * The access in progress has already been routed, so such a change applies to later accesses.
 */
import type { AddrAllocateFunc, AllocationCallbacks, IdAllocateFunc, IrqPool, MmioPool, Placement } from "../system/allocation-callbacks.js";
import { Bus } from "./bus.js";
import {
  normalizeResourceRequests,
  type Device,
  type NormalizedAddressRequest,
  type NormalizedIdRequest,
  type NormalizedResourceRequest,
  type ResourceRequest,
} from "./device.js";
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import type { SystemAllocator } from "../system/system-allocator-interface.js";
import { hex, toU32, toU64, U32_MAX, type U32Input, type U64Input } from "../core/u64.js";

/** A legacy IRQ a device holds. */
export interface HeldIrq {
  readonly irq: number;
  /** True when the manager allocated it (and will free it); false when fixed or handed over. */
  readonly allocated: boolean;
}

/** An MSI GSI a device holds. */
export interface HeldMsi {
  readonly gsi: number;
  /** True when the manager allocated it (and will free it); false when fixed. */
  readonly allocated: boolean;
}

/** A PIO or MMIO range a device holds and is mapped at. */
export interface HeldRange {
  readonly range: RangeInclusive;
  /** True when the manager allocated it (and will free it); false when fixed or handed over. */
  readonly allocated: boolean;
}

/** What a registered device holds: a copy, taken when it was asked for. */
export interface DeviceResources {
  readonly instanceId: number;
  /** True when the manager allocated the instance id (and will free it). */
  readonly instanceIdAllocated: boolean;
  /** `device.name`, or `device`. */
  readonly name: string;
  /** `${name}@${instanceId}`: the owner of the device's bus mappings and allocated resources. */
  readonly owner: string;
  readonly device: Device;
  /** Which method registered the device. */
  readonly registration: "simple" | "full";
  readonly irqs: readonly HeldIrq[];
  readonly msi: readonly HeldMsi[];
  readonly pio: readonly HeldRange[];
  readonly mmio: readonly HeldRange[];
}

/** A held range plus the constraints a move must keep. */
interface RangeSlot {
  range: RangeInclusive;
  allocated: boolean;
  readonly alignment: bigint | undefined;
  readonly window: { readonly min: bigint; readonly max: bigint } | undefined;
}

interface DeviceRecord {
  readonly device: Device;
  readonly name: string;
  readonly owner: string;
  readonly instanceId: number;
  readonly instanceIdAllocated: boolean;
  readonly registration: "simple" | "full";
  readonly irqs: HeldIrq[];
  readonly msi: HeldMsi[];
  readonly pio: RangeSlot[];
  readonly mmio: RangeSlot[];
}

type AllocateParams = {
  action: "allocate";
  owner: string;
  size: bigint;
  alignment?: bigint;
  fixed?: bigint;
  window?: { readonly min: bigint; readonly max: bigint };
  mmio64?: boolean;
  allowFallback?: boolean;
  pool?: MmioPool;
  placement?: Placement;
};

type Undo = () => void;

function describeValue(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  if (value instanceof RangeInclusive) return value.toString();
  return typeof value;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return typeof error;
  }
}

function deviceName(device: unknown): string {
  if (typeof device !== "object" || device === null) throw new AllocatorError("InvalidArgument", "device must be an object");
  const d = device as Record<string, unknown>;
  if (typeof d["read"] !== "function" || typeof d["write"] !== "function") {
    throw new AllocatorError("InvalidArgument", "device must have read and write methods");
  }
  const name = d["name"];
  if (name === undefined) return "device";
  if (typeof name !== "string" || name.length === 0) throw new AllocatorError("InvalidArgument", "device.name must be a non-empty string");
  return name;
}

function checkCallback(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== "function") throw new AllocatorError("InvalidArgument", `${name} must be a function`);
}

/** Normalises `x | x[] | undefined` into a list, naming each element for messages. */
function listOf<T>(value: T | readonly T[] | undefined): { item: T; at: string }[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return (value as readonly T[]).map((item, i) => ({ item, at: `[${i}]` }));
  return [{ item: value as T, at: "" }];
}

/**
 * Records by instance id. A plain `Map` degrades badly when one key is deleted and set again over
 * and over (V8 keeps each deleted entry in the key's hash chain until the table is rebuilt, so a
 * register/unregister loop reusing id 1000 slowed to microseconds per lookup). Entries are
 * therefore never deleted but set to undefined, and the table is rebuilt once the dead entries
 * outnumber the live ones, which keeps every pattern of ids amortised O(1).
 */
class IdTable<V> {
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

/**
 * Registers devices, allocates their resources through callbacks, maps them on two buses and
 * dispatches guest accesses. See the module documentation for owners, atomicity and re-entrancy.
 */
export class DeviceManager {
  /** Port I/O; change it only through the manager ({@link checkConsistency} detects foreign mappings). */
  readonly pioBus: Bus<Device> = new Bus<Device>("io");
  /** Memory-mapped I/O; change it only through the manager. */
  readonly mmioBus: Bus<Device> = new Bus<Device>("mem");

  readonly #deviceId: IdAllocateFunc | undefined;
  readonly #irq: IdAllocateFunc | undefined;
  readonly #pio: AddrAllocateFunc | undefined;
  readonly #mmio: AddrAllocateFunc | undefined;
  readonly #devices = new IdTable<DeviceRecord>();
  /** The mutating call in progress, for the re-entrancy error message. */
  #busy: string | undefined;

  /**
   * @param callbacks allocation callbacks, each optional. They are called as plain functions
   *   (pass bound functions) and are read once, here.
   * @throws AllocatorError `InvalidArgument` when a callback is present but not a function.
   */
  constructor(callbacks: AllocationCallbacks = {}) {
    if (typeof callbacks !== "object" || callbacks === null) throw new AllocatorError("InvalidArgument", "callbacks must be an object");
    checkCallback(callbacks.deviceId, "callbacks.deviceId");
    checkCallback(callbacks.irq, "callbacks.irq");
    checkCallback(callbacks.pio, "callbacks.pio");
    checkCallback(callbacks.mmio, "callbacks.mmio");
    this.#deviceId = callbacks.deviceId;
    this.#irq = callbacks.irq;
    this.#pio = callbacks.pio;
    this.#mmio = callbacks.mmio;
  }

  /**
   * A manager using the callbacks of a system allocator (any object of the
   * {@link SystemAllocator} shape).
   * @throws AllocatorError `InvalidArgument` when `sys` lacks one of the four methods.
   */
  static fromSystemAllocator(sys: SystemAllocator): DeviceManager {
    if (typeof sys !== "object" || sys === null) throw new AllocatorError("InvalidArgument", "sys must be a system allocator object");
    for (const m of ["deviceIdCallback", "irqCallback", "pioAddressCallback", "mmioAddressCallback"] as const) {
      if (typeof sys[m] !== "function") throw new AllocatorError("InvalidArgument", `sys.${m} must be a function`);
    }
    const callbacks: { -readonly [K in keyof AllocationCallbacks]: AllocationCallbacks[K] } = {};
    const deviceId = sys.deviceIdCallback();
    const irq = sys.irqCallback();
    const pio = sys.pioAddressCallback();
    const mmio = sys.mmioAddressCallback();
    if (deviceId !== undefined) callbacks.deviceId = deviceId;
    if (irq !== undefined) callbacks.irq = irq;
    if (pio !== undefined) callbacks.pio = pio;
    if (mmio !== undefined) callbacks.mmio = mmio;
    return new DeviceManager(callbacks);
  }

  /** Number of registered devices. */
  get size(): number {
    return this.#devices.size;
  }

  /** True when a device is registered under `instanceId`. */
  has(instanceId: U32Input): boolean {
    return this.#devices.get(toU32(instanceId, "instanceId")) !== undefined;
  }

  /** The instance ids of all registered devices, ascending. */
  instanceIds(): number[] {
    const ids: number[] = [];
    for (const [id] of this.#devices.entries()) ids.push(id);
    return ids.sort((a, b) => a - b);
  }

  /**
   * Registers a device with resources the VMM allocated itself, and maps it. Nothing is recorded
   * as allocated by the manager, so nothing will ever be freed through a callback. IRQs are not
   * checked for conflicts: legacy lines may be shared.
   * @param instanceId unique among registered devices.
   * @param irq none, one or several legacy IRQs.
   * @param pioRange none, one or several port ranges; `mmioRange` likewise.
   * @returns `instanceId`.
   * @throws AllocatorError `Overlap` when the instance id is taken or a range conflicts with a
   *   mapping, `InvalidArgument` for bad arguments, `InvalidState` when re-entered.
   */
  simpleRegisterDevice(
    device: Device,
    instanceId: U32Input,
    irq?: U32Input | readonly U32Input[],
    pioRange?: RangeInclusive | readonly RangeInclusive[],
    mmioRange?: RangeInclusive | readonly RangeInclusive[],
  ): number {
    this.#assertIdle("simpleRegisterDevice");
    const name = deviceName(device);
    const id = toU32(instanceId, "instanceId");
    const irqs = listOf(irq).map(({ item, at }) => ({ irq: toU32(item, `irq${at}`), allocated: false }));
    const ranges = (value: RangeInclusive | readonly RangeInclusive[] | undefined, param: string): RangeSlot[] =>
      listOf(value).map(({ item, at }) => {
        if (!(item instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", `${param}${at} must be a RangeInclusive`);
        return { range: item, allocated: false, alignment: undefined, window: undefined };
      });
    const pio = ranges(pioRange, "pioRange");
    const mmio = ranges(mmioRange, "mmioRange");
    this.#assertIdFree(id, name);
    const record: DeviceRecord = {
      device,
      name,
      owner: `${name}@${id}`,
      instanceId: id,
      instanceIdAllocated: false,
      registration: "simple",
      irqs,
      msi: [],
      pio,
      mmio,
    };
    // No callbacks run here, but mapping can still fail half way through.
    const undo: Undo[] = [];
    try {
      this.#mapAll(record, undo);
    } catch (error) {
      this.#rollback(undo, error, `registering ${name}`);
    }
    this.#devices.set(id, record);
    return id;
  }

  /**
   * Allocates what `device` requests through the callbacks, then maps it: instance id, legacy
   * IRQs, MSI GSIs, PIO ranges and MMIO ranges, in that order (each kind in request order).
   *
   * An instance id is always assigned, even if not requested. A request with a `fixed` value is
   * taken as is, without calling an allocator; a fixed instance id must not be in use. IRQs use
   * the `irq` callback with `pool: "legacy"`, MSI vectors with `pool: "msi"`, one call per vector.
   * What a callback returns is checked against the request.
   *
   * All or nothing: if any step fails, everything done so far is undone in reverse order.
   *
   * @param requests defaults to `device.resourceRequest()`, or none.
   * @returns the instance id.
   * @throws AllocatorError `MissingAllocator` (checked before anything is allocated) when a request
   *   without a fixed value has no callback; `Overlap` when a range is already mapped or the
   *   instance id is in use; `InvalidState` when re-entered, when a callback returns something
   *   that does not satisfy the request, or when undoing a failure failed; the request
   *   validation errors of `normalizeResourceRequests`; and whatever a callback throws.
   */
  fullRegisterDevice(device: Device, requests?: readonly ResourceRequest[]): number {
    this.#assertIdle("fullRegisterDevice");
    const name = deviceName(device);
    let raw: unknown = requests;
    if (raw === undefined) {
      const rr: unknown = device.resourceRequest;
      if (rr !== undefined && typeof rr !== "function") throw new AllocatorError("InvalidArgument", "device.resourceRequest must be a method");
      // Called before the manager is marked busy: re-entering from here is just an earlier call.
      raw = rr === undefined ? [] : device.resourceRequest!();
      this.#assertIdle("fullRegisterDevice");
    }
    const reqs = normalizeResourceRequests(raw, "requests");
    this.#checkCallbacksFor(reqs, name);

    const undo: Undo[] = [];
    this.#busy = `fullRegisterDevice(${name})`;
    try {
      let instanceId: number;
      let instanceIdAllocated = false;
      const idReq = reqs.find((r): r is NormalizedIdRequest => r.kind === "instanceId");
      if (idReq?.fixed !== undefined) {
        instanceId = idReq.fixed;
        this.#assertIdFree(instanceId, name);
      } else {
        const cb = this.#deviceId!;
        const id = this.#allocateId(cb, "device-id", name, undefined);
        undo.push(() => this.#freeId(cb, name, id, undefined));
        // A VMM mixing simple and full registration can hand out an id the callback also has.
        this.#assertIdFree(id, name);
        instanceId = id;
        instanceIdAllocated = true;
      }
      const owner = `${name}@${instanceId}`;
      const record: DeviceRecord = {
        device,
        name,
        owner,
        instanceId,
        instanceIdAllocated,
        registration: "full",
        irqs: [],
        msi: [],
        pio: [],
        mmio: [],
      };
      for (const r of reqs) {
        if (r.kind !== "irq") continue;
        if (r.fixed !== undefined) {
          record.irqs.push({ irq: r.fixed, allocated: false });
          continue;
        }
        const cb = this.#irq!;
        const irq = this.#allocateId(cb, "IRQ", owner, "legacy");
        undo.push(() => this.#freeId(cb, owner, irq, "legacy"));
        record.irqs.push({ irq, allocated: true });
      }
      for (const r of reqs) {
        if (r.kind !== "msi") continue;
        if (r.fixed !== undefined) {
          for (const gsi of r.fixed) record.msi.push({ gsi, allocated: false });
          continue;
        }
        const cb = this.#irq!;
        for (let v = 0; v < r.count; v++) {
          const gsi = this.#allocateId(cb, "MSI", owner, "msi");
          undo.push(() => this.#freeId(cb, owner, gsi, "msi"));
          record.msi.push({ gsi, allocated: true });
        }
      }
      for (const r of reqs) if (r.kind === "pio") record.pio.push(this.#takeRange(r, owner, undo));
      for (const r of reqs) if (r.kind === "mmio") record.mmio.push(this.#takeRange(r, owner, undo));
      this.#mapAll(record, undo);
      this.#devices.set(instanceId, record);
      return instanceId;
    } catch (error) {
      return this.#rollback(undo, error, `registering ${name}`);
    } finally {
      this.#busy = undefined;
    }
  }

  /**
   * Unmaps and forgets a device that holds nothing the manager allocated (a simple registration,
   * or a full one whose resources were all fixed).
   * @returns what the device held.
   * @throws AllocatorError `NotFound` for an unknown id; `InvalidState` when the manager allocated
   *   something for the device (use {@link fullUnregisterDevice}, which frees it) or when re-entered.
   */
  unregisterDevice(instanceId: U32Input): DeviceResources {
    this.#assertIdle("unregisterDevice");
    const record = this.#record(instanceId);
    const allocated = this.#allocatedSummary(record);
    if (allocated.length > 0) {
      throw new AllocatorError(
        "InvalidState",
        `${record.owner} holds resources the manager allocated (${allocated.join(", ")}); use fullUnregisterDevice, which frees them`,
      );
    }
    this.#unmapAll(record);
    this.#devices.delete(record.instanceId);
    return this.#snapshot(record);
  }

  /**
   * Unmaps and forgets a device, then frees through the callbacks exactly what the manager
   * allocated for it (in reverse order of allocation); fixed or handed-over resources are never
   * freed. Works for every registration.
   *
   * The device is removed before the first callback runs, so callbacks see it gone. Should a
   * callback refuse to free, the remaining frees still happen and the device stays unregistered;
   * the call then throws `InvalidState` (cause: the callback's error) to report the leak.
   * @returns what the device held.
   * @throws AllocatorError `NotFound` for an unknown id, `InvalidState` when re-entered or when a
   *   free failed as described.
   */
  fullUnregisterDevice(instanceId: U32Input): DeviceResources {
    this.#assertIdle("fullUnregisterDevice");
    const record = this.#record(instanceId);
    const failures: { what: string; error: unknown }[] = [];
    this.#busy = `fullUnregisterDevice(${record.owner})`;
    try {
      this.#unmapAll(record);
      this.#devices.delete(record.instanceId);
      const attempt = (what: string, free: () => void): void => {
        try {
          free();
        } catch (error) {
          failures.push({ what, error });
        }
      };
      const { owner, name } = record;
      for (let i = record.mmio.length - 1; i >= 0; i--) {
        const slot = record.mmio[i]!;
        if (slot.allocated) attempt(slot.range.toString("mem"), () => this.#freeRange(this.#mmio!, owner, slot.range));
      }
      for (let i = record.pio.length - 1; i >= 0; i--) {
        const slot = record.pio[i]!;
        if (slot.allocated) attempt(slot.range.toString("io"), () => this.#freeRange(this.#pio!, owner, slot.range));
      }
      for (let i = record.msi.length - 1; i >= 0; i--) {
        const m = record.msi[i]!;
        if (m.allocated) attempt(`MSI GSI ${m.gsi}`, () => this.#freeId(this.#irq!, owner, m.gsi, "msi"));
      }
      for (let i = record.irqs.length - 1; i >= 0; i--) {
        const q = record.irqs[i]!;
        if (q.allocated) attempt(`[irq ${q.irq}]`, () => this.#freeId(this.#irq!, owner, q.irq, "legacy"));
      }
      if (record.instanceIdAllocated) {
        attempt(`instance id ${record.instanceId}`, () => this.#freeId(this.#deviceId!, name, record.instanceId, undefined));
      }
    } finally {
      this.#busy = undefined;
    }
    if (failures.length > 0) {
      const first = failures[0]!;
      throw new AllocatorError(
        "InvalidState",
        `${record.owner} was unregistered, but freeing ${failures.map((f) => `${f.what} (${describeError(f.error)})`).join(", ")} failed`,
        { cause: failures.length === 1 ? first.error : new AggregateError(failures.map((f) => f.error)), owner: record.owner },
      );
    }
    return this.#snapshot(record);
  }

  /**
   * What a registered device holds, and for each resource whether the manager allocated it.
   * @throws AllocatorError `NotFound` for an unknown id.
   */
  resourcesOf(instanceId: U32Input): DeviceResources {
    return this.#snapshot(this.#record(instanceId));
  }

  /**
   * Moves one of a device's ranges so that it starts at `newBase` (a guest reprogramming a PCI
   * BAR), keeping its size and the alignment and window it was requested with.
   *
   * For a range the manager allocated, the allocator is asked for the new place
   * (`fixed: newBase`) before the old one is freed; when the two overlap, the old one is freed
   * first and taken back if the new one is refused. A fixed or handed-over range is only re-mapped.
   * Either way, the call changes nothing when the new place is taken, on the bus or in the
   * allocator. Moving to the current base does nothing.
   *
   * @param kind which of the device's ranges is meant; needed only when `oldRange` is both one of
   *   its PIO ranges and one of its MMIO ranges.
   * @returns the new range.
   * @throws AllocatorError `NotFound` (unknown id, or the device holds no such range),
   *   `InvalidArgument` (bad argument, or an ambiguous range without `kind`), `Overflow`,
   *   `UnalignedAddress`, `OutOfRange` (outside the requested window), `Overlap` (taken on the
   *   bus), `InvalidState` (re-entered, the bus no longer maps the range as recorded, a callback
   *   returned the wrong range, or undoing failed), and whatever the callback throws.
   */
  moveRange(instanceId: U32Input, oldRange: RangeInclusive, newBase: U64Input, kind?: "pio" | "mmio"): RangeInclusive {
    this.#assertIdle("moveRange");
    const record = this.#record(instanceId);
    if (!(oldRange instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", "oldRange must be a RangeInclusive");
    const base = toU64(newBase, "newBase");
    if (kind !== undefined && kind !== "pio" && kind !== "mmio") {
      throw new AllocatorError("InvalidArgument", `kind must be "pio" or "mmio", got ${describeValue(kind)}`);
    }
    const inPio = kind === "mmio" ? undefined : record.pio.find((s) => s.range.equals(oldRange));
    const inMmio = kind === "pio" ? undefined : record.mmio.find((s) => s.range.equals(oldRange));
    if (inPio !== undefined && inMmio !== undefined) {
      throw new AllocatorError("InvalidArgument", `${record.owner} holds ${oldRange.toString("io")} and ${oldRange.toString("mem")}; pass kind`);
    }
    const slot = inPio ?? inMmio;
    const isPio = inPio !== undefined;
    const busKind = isPio ? "io" : "mem";
    if (slot === undefined) {
      const shown = kind === "pio" ? oldRange.toString("io") : kind === "mmio" ? oldRange.toString("mem") : `${oldRange.toString("io")} or ${oldRange.toString("mem")}`;
      throw new AllocatorError("NotFound", `${record.owner} holds no range ${shown}`);
    }
    const bus = isPio ? this.pioBus : this.mmioBus;
    const old = slot.range;
    const newRange = RangeInclusive.withSize(base, old.len());
    if (base === old.start) return old;
    if (slot.alignment !== undefined && base % slot.alignment !== 0n) {
      throw new AllocatorError("UnalignedAddress", `newBase ${hex(base)} is not a multiple of the alignment ${hex(slot.alignment)} ${record.owner} requested`);
    }
    if (slot.window !== undefined && (newRange.start < slot.window.min || newRange.end > slot.window.max)) {
      throw new AllocatorError(
        "OutOfRange",
        `${newRange.toString(busKind)} is outside the window ${hex(slot.window.min)}-${hex(slot.window.max)} ${record.owner} requested`,
      );
    }
    const current = bus.get(old);
    if (current === undefined || current.owner !== record.owner || current.device !== record.device) {
      throw new AllocatorError("InvalidState", `the bus no longer maps ${old.toString(busKind)} for ${record.owner}; see checkConsistency()`);
    }
    for (const m of bus.overlapping(newRange)) {
      if (m.owner === record.owner && m.range.equals(old)) continue;
      throw new AllocatorError("Overlap", `${newRange.toString(busKind)} conflicts with ${m.owner} ${m.range.toString(busKind)}`, { owner: m.owner });
    }
    if (slot.allocated) {
      this.#busy = `moveRange(${record.owner})`;
      try {
        this.#reallocate(isPio ? this.#pio! : this.#mmio!, isPio ? "pio" : "mmio", record.owner, slot, newRange);
      } finally {
        this.#busy = undefined;
      }
    }
    // Both bus steps were checked above, so the re-map cannot fail half way.
    bus.remove(old);
    bus.insert(newRange, record.device, record.owner);
    slot.range = newRange;
    return newRange;
  }

  /** Dispatches a port read; see {@link Bus.read} (unmapped ports read as 0xff). */
  pioRead(port: U64Input, data: Uint8Array): boolean {
    return this.pioBus.read(port, data);
  }

  /** Dispatches a port write; see {@link Bus.write} (unmapped writes are dropped). */
  pioWrite(port: U64Input, data: Uint8Array): boolean {
    return this.pioBus.write(port, data);
  }

  /** Dispatches an MMIO read; see {@link Bus.read}. */
  mmioRead(address: U64Input, data: Uint8Array): boolean {
    return this.mmioBus.read(address, data);
  }

  /** Dispatches an MMIO write; see {@link Bus.write}. */
  mmioWrite(address: U64Input, data: Uint8Array): boolean {
    return this.mmioBus.write(address, data);
  }

  /**
   * Verifies that the buses and the device records agree: both buses are valid, every mapping
   * belongs to a registered device (same device object and owner) and equals one of its recorded
   * ranges, and every recorded range is mapped.
   * @throws AllocatorError `InvalidState` describing the first disagreement.
   */
  checkConsistency(): void {
    this.pioBus.checkValid();
    this.mmioBus.checkValid();
    const byOwner = new Map<string, DeviceRecord>();
    for (const [id, r] of this.#devices.entries()) {
      if (r.instanceId !== id || r.owner !== `${r.name}@${id}`) throw new AllocatorError("InvalidState", `device record ${id} is corrupt`);
      byOwner.set(r.owner, r);
    }
    const check = (bus: Bus<Device>, slotsOf: (r: DeviceRecord) => RangeSlot[]): void => {
      let recorded = 0;
      for (const [, r] of this.#devices.entries()) recorded += slotsOf(r).length;
      for (const m of bus) {
        const r = byOwner.get(m.owner);
        const where = `${m.range.toString(bus.kind)} of ${m.owner}`;
        if (r === undefined) throw new AllocatorError("InvalidState", `the bus maps ${where}, which is not a registered device`);
        if (r.device !== m.device) throw new AllocatorError("InvalidState", `the bus maps ${where} to another device object`);
        if (!slotsOf(r).some((s) => s.range.equals(m.range))) {
          throw new AllocatorError("InvalidState", `the bus maps ${where}, which is not among its recorded resources`);
        }
      }
      // Mappings are disjoint, so each one matched a different recorded range: equal counts mean
      // every recorded range is mapped.
      if (recorded !== bus.size) {
        throw new AllocatorError("InvalidState", `${recorded} ${bus.kind} ranges are recorded but the bus maps ${bus.size}`);
      }
    };
    check(this.pioBus, (r) => r.pio);
    check(this.mmioBus, (r) => r.mmio);
  }

  #assertIdle(method: string): void {
    if (this.#busy !== undefined) {
      throw new AllocatorError("InvalidState", `${method} cannot run while ${this.#busy} is in progress (re-entered from a callback)`);
    }
  }

  #record(instanceId: U32Input): DeviceRecord {
    const id = toU32(instanceId, "instanceId");
    const record = this.#devices.get(id);
    if (record === undefined) throw new AllocatorError("NotFound", `no device is registered with instance id ${id}`);
    return record;
  }

  #assertIdFree(id: number, name: string): void {
    const holder = this.#devices.get(id);
    if (holder !== undefined) {
      throw new AllocatorError("Overlap", `instance id ${id} for ${name} is already held by ${holder.owner}`, { owner: holder.owner });
    }
  }

  #checkCallbacksFor(reqs: readonly NormalizedResourceRequest[], name: string): void {
    const missing = (what: string): never => {
      throw new AllocatorError("MissingAllocator", `cannot register ${name}: ${what}`);
    };
    if (this.#deviceId === undefined && !reqs.some((r) => r.kind === "instanceId" && r.fixed !== undefined)) {
      missing("no device-id allocator callback was provided and no instanceId request carries a fixed id");
    }
    for (const r of reqs) {
      if (r.fixed !== undefined) continue;
      const at = `requests[${r.index}]`;
      if (r.kind === "irq" && this.#irq === undefined) missing(`${at} (irq) has no fixed IRQ and no irq allocator callback was provided`);
      if (r.kind === "msi" && this.#irq === undefined) missing(`${at} (msi) has no fixed GSIs and no irq allocator callback was provided`);
      if (r.kind === "pio" && this.#pio === undefined) {
        missing(`${at} (pio, size ${hex(r.size)}) has no fixed address and no pio allocator callback was provided`);
      }
      if (r.kind === "mmio" && this.#mmio === undefined) {
        missing(`${at} (mmio, size ${hex(r.size)}) has no fixed address and no mmio allocator callback was provided`);
      }
    }
  }

  #allocateId(cb: IdAllocateFunc, what: string, owner: string, pool: IrqPool | undefined): number {
    const id: unknown = cb(pool === undefined ? { action: "allocate", owner } : { action: "allocate", owner, pool });
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > U32_MAX) {
      throw new AllocatorError("InvalidState", `the ${what} allocator returned ${describeValue(id)} for ${owner}, not an id from 0 to 2^32-1`);
    }
    return id;
  }

  #freeId(cb: IdAllocateFunc, owner: string, id: number, pool: IrqPool | undefined): void {
    cb(pool === undefined ? { action: "free", owner, id } : { action: "free", owner, id, pool });
  }

  #freeRange(cb: AddrAllocateFunc, owner: string, range: RangeInclusive): void {
    cb({ action: "free", owner, range });
  }

  /** A fixed range as is, or a range from the callback checked against the request. */
  #takeRange(r: NormalizedAddressRequest, owner: string, undo: Undo[]): RangeSlot {
    const slot = (range: RangeInclusive, allocated: boolean): RangeSlot => ({ range, allocated, alignment: r.alignment, window: r.window });
    if (r.fixed !== undefined) return slot(RangeInclusive.withSize(r.fixed, r.size), false);
    const params: AllocateParams = { action: "allocate", owner, size: r.size };
    if (r.alignment !== undefined) params.alignment = r.alignment;
    if (r.window !== undefined) params.window = r.window;
    if (r.mmio64) params.mmio64 = true;
    if (r.allowFallback) params.allowFallback = true;
    // Only what differs from the defaults, so that a callback written before these existed works.
    if (r.pool !== undefined && r.pool !== "mmio64") params.pool = r.pool;
    if (r.placement === "last") params.placement = "last";
    const range = this.#allocateRange(r.kind === "pio" ? this.#pio! : this.#mmio!, r.kind, params, undo, `requests[${r.index}]`);
    return slot(range, true);
  }

  /**
   * Calls an address callback and checks the result; once the callback has handed out a range,
   * its free is registered in `undo` before any check can throw.
   */
  #allocateRange(cb: AddrAllocateFunc, kind: "pio" | "mmio", params: AllocateParams, undo: Undo[], what: string): RangeInclusive {
    const got: unknown = cb(params);
    const label = kind === "pio" ? "PIO" : "MMIO";
    if (!(got instanceof RangeInclusive)) {
      throw new AllocatorError("InvalidState", `the ${label} allocator returned ${describeValue(got)} for ${params.owner}, not a RangeInclusive`);
    }
    const { owner } = params;
    undo.push(() => this.#freeRange(cb, owner, got));
    const { size, alignment, window, fixed } = params;
    const ok =
      got.len() === size &&
      (alignment === undefined || got.start % alignment === 0n) &&
      (window === undefined || (got.start >= window.min && got.end <= window.max)) &&
      (fixed === undefined || got.start === fixed);
    if (!ok) {
      const wants = [`size ${hex(size)}`];
      if (alignment !== undefined) wants.push(`alignment ${hex(alignment)}`);
      if (window !== undefined) wants.push(`window ${hex(window.min)}-${hex(window.max)}`);
      if (fixed !== undefined) wants.push(`at ${hex(fixed)}`);
      throw new AllocatorError(
        "InvalidState",
        `the ${label} allocator returned ${got.toString(kind === "pio" ? "io" : "mem")} for ${owner}, which does not satisfy ${what} (${wants.join(", ")})`,
      );
    }
    return got;
  }

  /** Moves an allocated range in the allocator; on failure the allocator is as before. */
  #reallocate(cb: AddrAllocateFunc, kind: "pio" | "mmio", owner: string, slot: RangeSlot, to: RangeInclusive): void {
    const from = slot.range;
    const params: AllocateParams = { action: "allocate", owner, size: to.len(), fixed: to.start };
    if (slot.alignment !== undefined) params.alignment = slot.alignment;
    const undo: Undo[] = [];
    try {
      if (!to.overlaps(from)) {
        this.#allocateRange(cb, kind, params, undo, "the move");
        this.#freeRange(cb, owner, from);
      } else {
        // The allocator would see the new place as taken by the old one: free first.
        this.#freeRange(cb, owner, from);
        undo.push(() => {
          const back: AllocateParams = { action: "allocate", owner, size: from.len(), fixed: from.start };
          try {
            this.#allocateRange(cb, kind, back, [], "taking back the old range");
          } catch (error) {
            // The allocator no longer holds it for us: stop claiming it, so it is never freed twice.
            slot.allocated = false;
            throw error;
          }
        });
        this.#allocateRange(cb, kind, params, undo, "the move");
      }
    } catch (error) {
      this.#rollback(undo, error, `moving ${from.toString(kind === "pio" ? "io" : "mem")} of ${owner}`);
    }
  }

  #mapAll(record: DeviceRecord, undo: Undo[]): void {
    const { device, owner } = record;
    for (const s of record.pio) {
      this.pioBus.insert(s.range, device, owner);
      undo.push(() => this.pioBus.remove(s.range));
    }
    for (const s of record.mmio) {
      this.mmioBus.insert(s.range, device, owner);
      undo.push(() => this.mmioBus.remove(s.range));
    }
  }

  /** Removes the device's mappings that are still exactly its own. */
  #unmapAll(record: DeviceRecord): void {
    const unmap = (bus: Bus<Device>, slots: RangeSlot[]): void => {
      for (let i = slots.length - 1; i >= 0; i--) {
        const range = slots[i]!.range;
        const m = bus.get(range);
        if (m !== undefined && m.owner === record.owner && m.device === record.device) bus.remove(range);
      }
    };
    unmap(this.mmioBus, record.mmio);
    unmap(this.pioBus, record.pio);
  }

  /** Undoes in reverse order, then rethrows `error` (or reports that undoing failed). */
  #rollback(undo: Undo[], error: unknown, what: string): never {
    const failures: unknown[] = [];
    for (let i = undo.length - 1; i >= 0; i--) {
      try {
        undo[i]!();
      } catch (e) {
        failures.push(e);
      }
    }
    if (failures.length === 0) throw error;
    throw new AllocatorError(
      "InvalidState",
      `${what} failed (${describeError(error)}), and undoing it failed too (${failures.map(describeError).join("; ")}): the allocator may have leaked`,
      { cause: error },
    );
  }

  #allocatedSummary(record: DeviceRecord): string[] {
    const out: string[] = [];
    if (record.instanceIdAllocated) out.push(`instance id ${record.instanceId}`);
    for (const q of record.irqs) if (q.allocated) out.push(`[irq ${q.irq}]`);
    for (const m of record.msi) if (m.allocated) out.push(`MSI GSI ${m.gsi}`);
    for (const s of record.pio) if (s.allocated) out.push(s.range.toString("io"));
    for (const s of record.mmio) if (s.allocated) out.push(s.range.toString("mem"));
    return out;
  }

  /** A fresh copy: changing it cannot reach the records. (Not frozen: freezing costs more than the copy.) */
  #snapshot(r: DeviceRecord): DeviceResources {
    return {
      instanceId: r.instanceId,
      instanceIdAllocated: r.instanceIdAllocated,
      name: r.name,
      owner: r.owner,
      device: r.device,
      registration: r.registration,
      irqs: r.irqs.map((q) => ({ irq: q.irq, allocated: q.allocated })),
      msi: r.msi.map((m) => ({ gsi: m.gsi, allocated: m.allocated })),
      pio: r.pio.map((s) => ({ range: s.range, allocated: s.allocated })),
      mmio: r.mmio.map((s) => ({ range: s.range, allocated: s.allocated })),
    };
  }
}
