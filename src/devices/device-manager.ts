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
 * 3. Firmware-assigned resources are requested with `fixed` values; a callback is only required
 *    for requests without one.
 *
 * **One truth.** Every value that reaches the manager, fixed or not, is held in the allocator
 * when a callback exists for its kind: a fixed value is asked for with `fixed` ("exactly this,
 * or fail"), so that it is never offered to anyone else while the device lives, and it is freed
 * on unplug like everything else. A callback may answer a fixed request with `null` (the value
 * lies outside every pool it serves: Firecracker's serial IRQ below its IRQ pool); that value is
 * only mapped. Without a callback for a kind, values are only mapped and recorded. Legacy IRQ
 * lines are shared only when every holder says `shared: true`; MSI GSIs and instance ids are never
 * shared. {@link DeviceManager.checkConsistency} proves the records, the buses and (with a
 * `holdings` callback) the allocator agree, in both directions.
 *
 * **Owners.** Everything a device holds, its instance id included, is held under one owner,
 * `` `${name}@${instanceId}` `` (`virtio-blk@3`), unique among registered devices: the instance
 * id is asked for with `appendIdToOwner`. `name` is `device.name`, or `device`.
 *
 * **Atomicity.** Every method is synchronous, so it is atomic with respect to the event loop. A
 * mutating method that fails has changed nothing: a registration undoes everything it did, in
 * reverse order, whatever a callback throws, freeing what it took with `undo: true` so that the
 * allocator forgets it was ever handed out (its snapshot is byte-identical to before). An `AllocatorError` from a step of a registration is
 * re-issued with the same code, naming the device and the request
 * (`virtio-blk@3: requests[1] (mmio, 0x1000 bytes): ...`, with `device` and `requestIndex`
 * fields and the original as `cause`); anything else a callback throws reaches the caller
 * unchanged. If undoing itself fails, the error is an `InvalidState` whose `cause` is the original.
 *
 * **Re-entrancy.** While a mutating method runs (and so while it calls an allocator callback),
 * another mutating call on the same manager throws `InvalidState`; queries and dispatch are
 * allowed and see the state before the call. Dispatch itself is not a mutation: a device may
 * unregister itself, register another device or move its own range from inside `read`/`write`.
 * The access in progress has already been routed, so such a change applies to later accesses.
 */
import type {
  AddrAllocateFunc,
  AllocationCallbacks,
  CallbackHolding,
  HoldingsFunc,
  IdAllocateFunc,
  MmioPool,
  OutsideFunc,
  Placement,
} from "../system/allocation-callbacks.js";
import { Bus } from "./bus.js";
import {
  DEVICE_METHODS,
  isDevice,
  normalizeResourceRequests,
  type Device,
  type NormalizedAddressRequest,
  type NormalizedIdRequest,
  type NormalizedResourceRequest,
  type ResourceRequest,
} from "./device.js";
import {
  DEVICE_MANAGER_SNAPSHOT_FORMAT,
  invalidSnapshot,
  parseDeviceManagerSnapshot,
  recordToJSON,
  type DeviceManagerSnapshot,
} from "./device-manager-snapshot.js";
import {
  IdTable,
  LineTable,
  resourcesOfRecord,
  type DeviceRecord,
  type DeviceResources,
  type HeldBy,
  type IdSlot,
  type RangeSlot,
} from "./device-records.js";
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import type { SystemAllocator } from "../system/system-allocator-interface.js";
import { hex, toU32, toU64, U32_MAX, type U32Input, type U64Input } from "../core/u64.js";

export type { DeviceResources, HeldBy, HeldIrq, HeldMsi, HeldRange } from "./device-records.js";

type AllocateParams = {
  action: "allocate";
  owner: string;
  size: bigint;
  alignment?: bigint;
  fixed?: bigint;
  allowReserved?: boolean;
  window?: { readonly min: bigint; readonly max: bigint };
  mmio64?: boolean;
  allowFallback?: boolean;
  pool?: MmioPool;
  placement?: Placement;
};

type Undo = () => void;
type IdKind = "instanceId" | "irq" | "msi";
type Kind = IdKind | "pio" | "mmio";

/** Options of a {@link DeviceManager}: the constructor's second argument, {@link DeviceManager.fromSystemAllocator}'s and {@link DeviceManager.fromJSON}'s. */
export interface DeviceManagerOptions {
  /**
   * Other device managers register devices on the same allocator (one per worker on a
   * `SharedSystemAllocator`). `checkConsistency()` and `fromJSON` then take what the allocator
   * holds under a `name@id` owner this manager does not know for another manager's live device
   * while that owner holds its own instance id `id`, rather than for a leak; anything else held
   * under an unknown `name@id` owner is still a leak. Default false: one manager per allocator,
   * and every unknown `name@id` holding is a leak.
   */
  readonly otherManagers?: boolean;
}

/** Options of {@link DeviceManager.fromJSON}. */
export interface DeviceManagerRestoreOptions extends DeviceManagerOptions {
  /** The callbacks of the restored manager (as for the constructor); or give `systemAllocator`. */
  readonly callbacks?: AllocationCallbacks;
  /** A system allocator (restored from the same VM snapshot) to take the callbacks from. */
  readonly systemAllocator?: SystemAllocator;
  /**
   * The device object of each recorded device: a map from instance id, or a function of the
   * recorded instance id, name and owner. A device whose object is missing, or whose name is not
   * the recorded one, makes the restore fail.
   */
  readonly devices:
    | ReadonlyMap<number, Device>
    | ((entry: { readonly instanceId: number; readonly name: string; readonly owner: string }) => Device | undefined);
}

/** Validates {@link DeviceManagerOptions}; returns `otherManagers`. */
function readManagerOptions(options: unknown, label: string): boolean {
  if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", `${label} must be an object`);
  for (const k of Object.keys(options)) {
    if (k !== "otherManagers") throw new AllocatorError("InvalidArgument", `${label} has unknown field ${JSON.stringify(k)}`);
  }
  const other = (options as { otherManagers?: unknown }).otherManagers;
  if (other !== undefined && typeof other !== "boolean") throw new AllocatorError("InvalidArgument", `${label}.otherManagers must be a boolean`);
  return other === true;
}

const KIND_LABEL: Readonly<Record<Kind, string>> = { instanceId: "instance id", irq: "IRQ", msi: "MSI", pio: "PIO", mmio: "MMIO" };
/** The callback that serves each kind, as `AllocationCallbacks` names it. */
const CALLBACK_NAME: Readonly<Record<Kind, string>> = { instanceId: "deviceId", irq: "irq", msi: "irq", pio: "pio", mmio: "mmio" };

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
  if (!isDevice(device)) throw new AllocatorError("InvalidArgument", `device must have at least one of the methods ${DEVICE_METHODS.join(", ")}`);
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

/** How a request is named in messages: `requests[1] (mmio, 0x1000 bytes, mmio64)`. */
function describeRequest(r: NormalizedResourceRequest, label: string): string {
  const parts: string[] = [];
  switch (r.kind) {
    case "pio":
    case "mmio":
      parts.push(r.kind, `${hex(r.size)} ${r.kind === "pio" ? "ports" : "bytes"}`);
      if (r.fixed !== undefined) parts.push(`at ${hex(r.fixed)}`);
      if (r.alignment !== undefined && r.alignment > 1n) parts.push(`aligned ${hex(r.alignment)}`);
      if (r.mmio64) parts.push("mmio64");
      break;
    case "irq":
      parts.push(r.fixed === undefined ? "irq" : `irq ${r.fixed}`);
      if (r.shared) parts.push("shared");
      break;
    case "msi":
      parts.push("msi", `${r.count} vector${r.count === 1 ? "" : "s"}`);
      break;
    case "instanceId":
      parts.push(r.fixed === undefined ? "instanceId" : `instanceId ${r.fixed}`);
      break;
  }
  return `${label} (${parts.join(", ")})`;
}

/** Holdings as comparable text, per owner. */
function holdingKey(h: CallbackHolding): string {
  return "range" in h ? `${h.kind} ${hex(h.range.start)}-${hex(h.range.end)}` : `${h.kind} ${h.id}${h.shared ? " shared" : ""}`;
}

/** What a record says the allocator holds for its device, as {@link holdingKey} prints it. */
function expectedHoldings(r: Omit<DeviceRecord, "device">): string[] {
  const out: string[] = [];
  if (r.instanceId.heldBy === "allocator") out.push(`instanceId ${r.instanceId.value}`);
  for (const q of r.irqs) if (q.heldBy === "allocator") out.push(`irq ${q.value}${q.shared ? " shared" : ""}`);
  for (const m of r.msi) if (m.heldBy === "allocator") out.push(`msi ${m.value}`);
  for (const s of r.pio) if (s.heldBy === "allocator") out.push(`pio ${hex(s.range.start)}-${hex(s.range.end)}`);
  for (const s of r.mmio) if (s.heldBy === "allocator") out.push(`mmio ${hex(s.range.start)}-${hex(s.range.end)}`);
  return out.sort();
}

/** True for an owner string of the `name@id` shape the manager gives its devices. */
const DEVICE_OWNER = /^(.+)@(0|[1-9][0-9]*)$/;

/**
 * Registers devices, holds their resources through callbacks, maps them on two buses and
 * dispatches guest accesses. See the module documentation for owners, atomicity and re-entrancy.
 *
 * ```ts
 * const sys = new DefaultSystemAllocator();
 * const dm = DeviceManager.fromSystemAllocator(sys);
 * const id = dm.fullRegisterDevice(uart, [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4, shared: true }]);
 * const vm = { system: sys.toJSON(), devices: dm.toJSON() }; // a whole-VM snapshot
 * ```
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
  readonly #holdings: HoldingsFunc | undefined;
  readonly #outside: OutsideFunc | undefined;
  readonly #otherManagers: boolean;
  readonly #devices = new IdTable<DeviceRecord>();
  /** Which devices hold each legacy line, and each MSI GSI. */
  readonly #lines = new LineTable();
  readonly #gsis = new LineTable();
  /** The mutating call in progress, for the re-entrancy error message. */
  #busy: string | undefined;

  /**
   * @param callbacks allocation callbacks, each optional. They are called as plain functions
   *   (pass bound functions) and are read once, here.
   * @param options see {@link DeviceManagerOptions}.
   * @throws AllocatorError `InvalidArgument` when a callback is present but not a function, or
   *   `options` is not an object of known fields.
   */
  constructor(callbacks: AllocationCallbacks = {}, options: DeviceManagerOptions = {}) {
    if (typeof callbacks !== "object" || callbacks === null) throw new AllocatorError("InvalidArgument", "callbacks must be an object");
    this.#otherManagers = readManagerOptions(options, "options");
    for (const k of Object.keys(callbacks)) {
      if (!["deviceId", "irq", "pio", "mmio", "holdings", "outside"].includes(k)) throw new AllocatorError("InvalidArgument", `callbacks has unknown field ${JSON.stringify(k)}`);
    }
    checkCallback(callbacks.deviceId, "callbacks.deviceId");
    checkCallback(callbacks.irq, "callbacks.irq");
    checkCallback(callbacks.pio, "callbacks.pio");
    checkCallback(callbacks.mmio, "callbacks.mmio");
    checkCallback(callbacks.holdings, "callbacks.holdings");
    checkCallback(callbacks.outside, "callbacks.outside");
    this.#deviceId = callbacks.deviceId;
    this.#irq = callbacks.irq;
    this.#pio = callbacks.pio;
    this.#mmio = callbacks.mmio;
    this.#holdings = callbacks.holdings;
    this.#outside = callbacks.outside;
  }

  /**
   * A manager using the callbacks of a system allocator (any object of the
   * {@link SystemAllocator} shape), its `holdingsCallback` and `outsideCallback` included when it
   * has them.
   * @param options see {@link DeviceManagerOptions}.
   * @throws AllocatorError `InvalidArgument` when `sys` lacks one of the four methods.
   */
  static fromSystemAllocator(sys: SystemAllocator, options: DeviceManagerOptions = {}): DeviceManager {
    return new DeviceManager(callbacksOf(sys), options);
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
   * Registers a device with resources the VMM chose itself, and maps it. Each value is fixed: where
   * a callback exists for its kind, the allocator is asked to hold exactly it (and it is freed by
   * {@link fullUnregisterDevice}); otherwise it is only mapped and recorded.
   * @param instanceId unique among registered devices.
   * @param irq none, one or several legacy IRQs; `{ irq, shared: true }` for a line shared with
   *   other devices that also share it.
   * @param pioRange none, one or several port ranges; `mmioRange` likewise.
   * @returns `instanceId`.
   * @throws AllocatorError `Overlap` when the instance id, a line or a range is taken,
   *   `InvalidArgument` for bad arguments, `InvalidState` when re-entered, and what a callback
   *   throws, naming the device and the argument.
   */
  simpleRegisterDevice(
    device: Device,
    instanceId: U32Input,
    irq?: U32Input | { readonly irq: U32Input; readonly shared?: boolean } | readonly (U32Input | { readonly irq: U32Input; readonly shared?: boolean })[],
    pioRange?: RangeInclusive | readonly RangeInclusive[],
    mmioRange?: RangeInclusive | readonly RangeInclusive[],
  ): number {
    this.#assertIdle("simpleRegisterDevice");
    const name = deviceName(device);
    const requests: ResourceRequest[] = [{ kind: "instanceId", fixed: toU32(instanceId, "instanceId") }];
    const labels = ["instanceId"];
    for (const { item, at } of listOf(irq as unknown)) {
      if (typeof item === "object" && item !== null && !Array.isArray(item)) {
        const o = item as Record<string, unknown>;
        for (const k of Object.keys(o)) if (k !== "irq" && k !== "shared") throw new AllocatorError("InvalidArgument", `irq${at} has unknown field ${JSON.stringify(k)}`);
        const shared = o["shared"];
        if (shared !== undefined && typeof shared !== "boolean") throw new AllocatorError("InvalidArgument", `irq${at}.shared must be a boolean`);
        requests.push({ kind: "irq", fixed: toU32(o["irq"], `irq${at}.irq`), shared: shared === true });
      } else {
        requests.push({ kind: "irq", fixed: toU32(item as U32Input, `irq${at}`) });
      }
      labels.push(`irq${at}`);
    }
    const ranges = (value: RangeInclusive | readonly RangeInclusive[] | undefined, param: string, kind: "pio" | "mmio"): void => {
      for (const { item, at } of listOf(value)) {
        if (!(item instanceof RangeInclusive)) throw new AllocatorError("InvalidArgument", `${param}${at} must be a RangeInclusive`);
        requests.push({ kind, fixed: item.start, size: item.len() });
        labels.push(`${param}${at}`);
      }
    };
    ranges(pioRange, "pioRange", "pio");
    ranges(mmioRange, "mmioRange", "mmio");
    return this.#register(device, name, normalizeResourceRequests(requests, "requests"), "simple", labels);
  }

  /**
   * Holds what `device` requests through the callbacks, then maps it: instance id, legacy IRQs,
   * MSI GSIs, PIO ranges and MMIO ranges, in that order (each kind in request order).
   *
   * An instance id is always assigned, even if not requested. A request with a `fixed` value is
   * held exactly (or only mapped, as the module documentation says). IRQs use the `irq` callback
   * with `pool: "legacy"`, MSI vectors with `pool: "msi"`, one call per vector. What a callback
   * returns is checked against the request.
   *
   * All or nothing: if any step fails, everything done so far is undone in reverse order.
   *
   * @param requests defaults to `device.resourceRequest()`, or none.
   * @returns the instance id.
   * @throws AllocatorError `MissingAllocator` (checked before anything is allocated) when a request
   *   without a fixed value has no callback; `Overlap` when a range is already mapped, a line is
   *   held unshared or the instance id is in use; `InvalidState` when re-entered, when a callback
   *   returns something that does not satisfy the request, or when undoing a failure failed; the
   *   request validation errors of `normalizeResourceRequests`; and whatever a callback throws.
   *   Errors of a step name the device and the request (`error.device`, `error.requestIndex`).
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
    return this.#register(device, name, reqs, "full", reqs.map((r) => `requests[${r.index}]`));
  }

  /**
   * Unmaps and forgets a device that holds nothing in the allocator (a device whose resources
   * were all mapped without a callback, or outside every pool).
   * @returns what the device held.
   * @throws AllocatorError `NotFound` for an unknown id; `InvalidState` when the allocator holds
   *   something for the device (use {@link fullUnregisterDevice}, which frees it) or when re-entered.
   */
  unregisterDevice(instanceId: U32Input): DeviceResources {
    this.#assertIdle("unregisterDevice");
    const record = this.#record(instanceId);
    const held = this.#heldSummary(record);
    if (held.length > 0) {
      throw new AllocatorError(
        "InvalidState",
        `${record.owner} holds resources in the allocator (${held.join(", ")}); use fullUnregisterDevice, which frees them`,
        { device: record.owner },
      );
    }
    this.#forget(record);
    return resourcesOfRecord(record);
  }

  /**
   * Unmaps and forgets a device, then frees through the callbacks exactly what the allocator
   * holds for it (in reverse order of registration); what was only mapped is never freed. Works
   * for every registration, and for restored devices.
   *
   * The device is removed before the first callback runs, so callbacks see it gone. Should a
   * callback refuse to free, the remaining frees still happen and the device stays unregistered;
   * the call then throws `InvalidState` (cause: the callback's error) to report the leak.
   *
   * `options.undo` rolls back a registration instead (a caller undoing a larger operation that
   * failed, like a PCI plug of several functions): everything is freed with `undo: true`, so the
   * allocator forgets it was ever handed out. Only for the device registered last by the same
   * synchronous operation, with nothing in between that touched what it holds.
   * @returns what the device held.
   * @throws AllocatorError `NotFound` for an unknown id, `InvalidArgument` for bad options,
   *   `InvalidState` when re-entered or when a free failed as described.
   */
  fullUnregisterDevice(instanceId: U32Input, options?: { readonly undo?: boolean }): DeviceResources {
    this.#assertIdle("fullUnregisterDevice");
    let undo = false;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { undo? }");
      for (const k of Object.keys(options)) if (k !== "undo") throw new AllocatorError("InvalidArgument", `options has unknown field ${JSON.stringify(k)}`);
      if (options.undo !== undefined && typeof options.undo !== "boolean") throw new AllocatorError("InvalidArgument", `options.undo must be a boolean, got ${describeValue(options.undo)}`);
      undo = options.undo === true;
    }
    // Plain data, and only when asked, so that callbacks written before `undo` see what they knew.
    const extra: { undo?: true } = undo ? { undo: true } : {};
    const record = this.#record(instanceId);
    const failures: { what: string; error: unknown }[] = [];
    this.#busy = `fullUnregisterDevice(${record.owner})`;
    try {
      this.#forget(record);
      const attempt = (what: string, free: () => void): void => {
        try {
          free();
        } catch (error) {
          failures.push({ what, error });
        }
      };
      const { owner } = record;
      for (let i = record.mmio.length - 1; i >= 0; i--) {
        const slot = record.mmio[i]!;
        if (slot.heldBy === "allocator") attempt(slot.range.toString("mem"), () => this.#mmio!({ action: "free", owner, range: slot.range, ...extra }));
      }
      for (let i = record.pio.length - 1; i >= 0; i--) {
        const slot = record.pio[i]!;
        if (slot.heldBy === "allocator") attempt(slot.range.toString("io"), () => this.#pio!({ action: "free", owner, range: slot.range, ...extra }));
      }
      for (let i = record.msi.length - 1; i >= 0; i--) {
        const m = record.msi[i]!;
        if (m.heldBy === "allocator") attempt(`MSI GSI ${m.value}`, () => this.#irq!({ action: "free", owner, id: m.value, pool: "msi", ...extra }));
      }
      for (let i = record.irqs.length - 1; i >= 0; i--) {
        const q = record.irqs[i]!;
        if (q.heldBy === "allocator") attempt(`[irq ${q.value}]`, () => this.#irq!({ action: "free", owner, id: q.value, pool: "legacy", ...extra }));
      }
      const id = record.instanceId;
      if (id.heldBy === "allocator") attempt(`instance id ${id.value}`, () => this.#deviceId!({ action: "free", owner, id: id.value, ...extra }));
    } finally {
      this.#busy = undefined;
    }
    if (failures.length > 0) {
      const first = failures[0]!;
      throw new AllocatorError(
        "InvalidState",
        `${record.owner} was unregistered, but freeing ${failures.map((f) => `${f.what} (${describeError(f.error)})`).join(", ")} failed`,
        { cause: failures.length === 1 ? first.error : new AggregateError(failures.map((f) => f.error)), owner: record.owner, device: record.owner },
      );
    }
    return resourcesOfRecord(record);
  }

  /**
   * What a registered device holds, and for each resource whether the allocator holds it.
   * @throws AllocatorError `NotFound` for an unknown id.
   */
  resourcesOf(instanceId: U32Input): DeviceResources {
    return resourcesOfRecord(this.#record(instanceId));
  }

  /**
   * Moves one of a device's ranges so that it starts at `newBase` (a guest reprogramming a PCI
   * BAR), keeping its size and the alignment and window it was requested with.
   *
   * With a callback for the kind, the allocator is asked to hold the new place (`fixed: newBase`)
   * before the old one is freed; when the two overlap, the old one is freed first and taken back
   * if the new one is refused. The new place may also be outside every pool (only mapped then).
   * Without a callback the range is only re-mapped. Either way, the call changes nothing when the
   * new place is taken, on the bus or in the allocator. Moving to the current base does nothing.
   *
   * @param kind which of the device's ranges is meant; needed only when `oldRange` is both one of
   *   its PIO ranges and one of its MMIO ranges.
   * @returns the new range.
   * @throws AllocatorError `NotFound` (unknown id, or the device holds no such range),
   *   `InvalidArgument` (bad argument, or an ambiguous range without `kind`), `Overflow`,
   *   `UnalignedAddress`, `OutOfRange` (outside the requested window), `Overlap` (taken on the
   *   bus or in the allocator), `InvalidState` (re-entered, the bus no longer maps the range as
   *   recorded, a callback returned the wrong range, or undoing failed), and what the callback throws.
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
    if (base === old.start) return old;
    const newRange = RangeInclusive.withSize(base, old.len());
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
    const cb = isPio ? this.#pio : this.#mmio;
    let heldBy: HeldBy = slot.heldBy;
    if (cb !== undefined) {
      this.#busy = `moveRange(${record.owner})`;
      try {
        heldBy = this.#reallocate(cb, isPio ? "pio" : "mmio", record.owner, slot, newRange);
      } finally {
        this.#busy = undefined;
      }
    }
    // Both bus steps were checked above, so the re-map cannot fail half way.
    bus.move(old, base);
    slot.range = newRange;
    slot.heldBy = heldBy;
    return newRange;
  }

  // Dispatch. Nothing a guest controls makes these throw: an unmapped, empty, misfit or
  // unsupported access is served as unmapped and counted on the bus (see Bus.read). Only an
  // address that is not a u64, a buffer that is not a Uint8Array, or what a device (or a bus
  // hook) throws reaches the caller.

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

  // Number accessors: the allocation-free dispatch path of emulators (see Bus.read8). They never
  // throw for a guest's address or value; an address that is not an integer is InvalidArgument.

  /** Reads one byte from `port`; see {@link Bus.read8} (unmapped: 0xff). */
  pioRead8(port: number): number {
    return this.pioBus.read8(port);
  }

  /** Reads two bytes from `port`, little-endian; see {@link Bus.read16}. */
  pioRead16(port: number): number {
    return this.pioBus.read16(port);
  }

  /** Reads four bytes from `port`, little-endian; see {@link Bus.read32}. */
  pioRead32(port: number): number {
    return this.pioBus.read32(port);
  }

  /** Writes one byte to `port`; see {@link Bus.write8}. */
  pioWrite8(port: number, value: number): void {
    this.pioBus.write8(port, value);
  }

  /** Writes two bytes to `port`; see {@link Bus.write16}. */
  pioWrite16(port: number, value: number): void {
    this.pioBus.write16(port, value);
  }

  /** Writes four bytes to `port`; see {@link Bus.write32}. */
  pioWrite32(port: number, value: number): void {
    this.pioBus.write32(port, value);
  }

  /** Reads one byte of MMIO at a safe-integer `address`; see {@link Bus.read8}. */
  mmioRead8(address: number): number {
    return this.mmioBus.read8(address);
  }

  /** Reads two bytes of MMIO; see {@link Bus.read16}. */
  mmioRead16(address: number): number {
    return this.mmioBus.read16(address);
  }

  /** Reads four bytes of MMIO; see {@link Bus.read32}. */
  mmioRead32(address: number): number {
    return this.mmioBus.read32(address);
  }

  /** Writes one byte of MMIO; see {@link Bus.write8}. */
  mmioWrite8(address: number, value: number): void {
    this.mmioBus.write8(address, value);
  }

  /** Writes two bytes of MMIO; see {@link Bus.write16}. */
  mmioWrite16(address: number, value: number): void {
    this.mmioBus.write16(address, value);
  }

  /** Writes four bytes of MMIO; see {@link Bus.write32}. */
  mmioWrite32(address: number, value: number): void {
    this.mmioBus.write32(address, value);
  }

  /** Reads one byte of MMIO at `high * 2^32 + low` (the whole u64 space); see {@link Bus.read8Pair}. */
  mmioRead8Pair(high: number, low: number): number {
    return this.mmioBus.read8Pair(high, low);
  }

  /** Reads two bytes of MMIO at `high * 2^32 + low`; see {@link Bus.read16Pair}. */
  mmioRead16Pair(high: number, low: number): number {
    return this.mmioBus.read16Pair(high, low);
  }

  /** Reads four bytes of MMIO at `high * 2^32 + low`; see {@link Bus.read32Pair}. */
  mmioRead32Pair(high: number, low: number): number {
    return this.mmioBus.read32Pair(high, low);
  }

  /** Writes one byte of MMIO at `high * 2^32 + low`; see {@link Bus.write8Pair}. */
  mmioWrite8Pair(high: number, low: number, value: number): void {
    this.mmioBus.write8Pair(high, low, value);
  }

  /** Writes two bytes of MMIO at `high * 2^32 + low`; see {@link Bus.write16Pair}. */
  mmioWrite16Pair(high: number, low: number, value: number): void {
    this.mmioBus.write16Pair(high, low, value);
  }

  /** Writes four bytes of MMIO at `high * 2^32 + low`; see {@link Bus.write32Pair}. */
  mmioWrite32Pair(high: number, low: number, value: number): void {
    this.mmioBus.write32Pair(high, low, value);
  }

  /** Reads one byte of MMIO at a bigint `address`; see {@link Bus.read8Big}. */
  mmioRead8Big(address: bigint): number {
    return this.mmioBus.read8Big(address);
  }

  /** Reads two bytes of MMIO at a bigint `address`; see {@link Bus.read16Big}. */
  mmioRead16Big(address: bigint): number {
    return this.mmioBus.read16Big(address);
  }

  /** Reads four bytes of MMIO at a bigint `address`; see {@link Bus.read32Big}. */
  mmioRead32Big(address: bigint): number {
    return this.mmioBus.read32Big(address);
  }

  /** Writes one byte of MMIO at a bigint `address`; see {@link Bus.write8Big}. */
  mmioWrite8Big(address: bigint, value: number): void {
    this.mmioBus.write8Big(address, value);
  }

  /** Writes two bytes of MMIO at a bigint `address`; see {@link Bus.write16Big}. */
  mmioWrite16Big(address: bigint, value: number): void {
    this.mmioBus.write16Big(address, value);
  }

  /** Writes four bytes of MMIO at a bigint `address`; see {@link Bus.write32Big}. */
  mmioWrite32Big(address: bigint, value: number): void {
    this.mmioBus.write32Big(address, value);
  }

  /**
   * Verifies that the buses, the device records and the allocator agree, in both directions:
   * both buses are valid; every mapping belongs to a registered device (same device object and
   * owner) and equals one of its recorded ranges, and every recorded range is mapped; no legacy
   * line is held by two devices that do not both share it, and no MSI GSI by two; every resource of
   * a kind that has a callback is held by the allocator or was reported outside its pools, and
   * (with an `outside` callback) what is recorded as outside really lies outside every pool; and,
   * when the manager has a `holdings` callback (and no mutation is in progress), the allocator
   * holds under each device's owner exactly what the device's record says, and holds nothing
   * under a `name@id` owner that is not a registered device (with the `otherManagers` option:
   * unless that owner still holds its instance id `id`, a live device of another manager on the
   * same allocator, which that manager checks).
   * @throws AllocatorError `InvalidState` describing the first disagreement.
   */
  checkConsistency(): void {
    const broken = (what: string, device?: string): never => {
      throw new AllocatorError("InvalidState", what, device === undefined ? undefined : { device });
    };
    this.pioBus.checkValid();
    this.mmioBus.checkValid();
    const byOwner = new Map<string, DeviceRecord>();
    for (const [id, r] of this.#devices.entries()) {
      if (r.instanceId.value !== id || r.owner !== `${r.name}@${id}`) broken(`device record ${id} is corrupt`);
      byOwner.set(r.owner, r);
    }
    const check = (bus: Bus<Device>, slotsOf: (r: DeviceRecord) => RangeSlot[]): void => {
      let recorded = 0;
      for (const [, r] of this.#devices.entries()) recorded += slotsOf(r).length;
      for (const m of bus) {
        const r = byOwner.get(m.owner);
        const where = `${m.range.toString(bus.kind)} of ${m.owner}`;
        if (r === undefined) broken(`the bus maps ${where}, which is not a registered device`);
        if (r!.device !== m.device) broken(`the bus maps ${where} to another device object`, m.owner);
        if (!slotsOf(r!).some((s) => s.range.equals(m.range))) broken(`the bus maps ${where}, which is not among its recorded resources`, m.owner);
      }
      // Mappings are disjoint, so each one matched a different recorded range: equal counts mean
      // every recorded range is mapped.
      if (recorded !== bus.size) broken(`${recorded} ${bus.kind} ranges are recorded but the bus maps ${bus.size}`);
    };
    check(this.pioBus, (r) => r.pio);
    check(this.mmioBus, (r) => r.mmio);

    // Lines and GSIs: the tables are derived state; rebuild them from the records and compare.
    const lines = new Map<number, { holders: string[]; shared: boolean[] }>();
    const gsis = new Map<number, string>();
    for (const r of byOwner.values()) {
      for (const q of r.irqs) {
        const l = lines.get(q.value) ?? { holders: [], shared: [] };
        l.holders.push(r.owner);
        l.shared.push(q.shared);
        lines.set(q.value, l);
      }
      for (const m of r.msi) {
        const other = gsis.get(m.value);
        if (other !== undefined) broken(`MSI GSI ${m.value} is recorded for both ${other} and ${r.owner}`, r.owner);
        gsis.set(m.value, r.owner);
      }
    }
    for (const [line, l] of lines) {
      if (l.holders.length > 1 && l.shared.some((s) => !s)) {
        broken(`[irq ${line}] is held by ${l.holders.join(", ")}, not all of which share it`, l.holders[0]);
      }
      if (new Set(l.holders).size !== l.holders.length) broken(`[irq ${line}] is recorded twice for one device`, l.holders[0]);
    }
    const table = new Map(this.#lines.entries());
    if (table.size !== lines.size || [...lines].some(([line, l]) => table.get(line)?.holders.length !== l.holders.length)) {
      broken("the line table does not match the device records");
    }
    if (this.#gsis.size !== gsis.size) broken("the MSI table does not match the device records");

    // Every resource of a kind with a callback went through the callback.
    for (const r of byOwner.values()) {
      const expect = (heldBy: HeldBy, cb: unknown, what: string): void => {
        const ok = cb === undefined ? heldBy === "unmanaged" : heldBy !== "unmanaged";
        if (!ok) {
          broken(
            cb === undefined
              ? `${r.owner} records ${what} as held by the allocator, but there is no callback for it`
              : `${r.owner} records ${what} as not held, but a callback exists for it: the allocator never heard of it`,
            r.owner,
          );
        }
      };
      expect(r.instanceId.heldBy, this.#deviceId, `instance id ${r.instanceId.value}`);
      for (const q of r.irqs) expect(q.heldBy, this.#irq, `[irq ${q.value}]`);
      for (const m of r.msi) expect(m.heldBy, this.#irq, `MSI GSI ${m.value}`);
      for (const s of r.pio) expect(s.heldBy, this.#pio, s.range.toString("io"));
      for (const s of r.mmio) expect(s.heldBy, this.#mmio, s.range.toString("mem"));
    }
    // A value recorded as outside every pool is held by no one: the allocator must agree that it
    // could not hold it, or it would hand it to someone else.
    const outside = this.#outsideProblem([...byOwner.values()]);
    if (outside !== undefined) broken(outside.what, outside.device);
    // During a mutation the allocator already holds part of the device being registered (or
    // still holds the one being unplugged): only the manager's own state is checked then.
    if (this.#holdings !== undefined && this.#busy === undefined) {
      const problem = this.#disagreement([...byOwner.values()], this.#holdings);
      if (problem !== undefined) broken(problem.what, problem.device);
    }
  }

  /**
   * A plain JSON snapshot of every live device and what it holds; restore it with
   * {@link DeviceManager.fromJSON}, next to the system allocator's snapshot of the same moment.
   */
  toJSON(): DeviceManagerSnapshot {
    const devices = this.instanceIds().map((id) => recordToJSON(this.#devices.get(id)!));
    return { format: DEVICE_MANAGER_SNAPSHOT_FORMAT, version: 1, devices };
  }

  /**
   * Rebuilds a manager from {@link toJSON} output, attaching `options.devices` to the recorded
   * devices: every device comes back at exactly its places, with its instance id, and routing
   * works at once. Nothing is allocated: the allocator behind the callbacks is expected to hold
   * what the snapshot says (restore it from the same VM snapshot first), and with a `holdings`
   * callback that is checked, both ways; with an `outside` callback, so is every resource the
   * snapshot records as outside every pool (held by no one). Unplugging a restored device frees exactly what it
   * would have freed had there been no snapshot.
   *
   * ```ts
   * const sys = DefaultSystemAllocator.fromJSON(vm.system);
   * const dm = DeviceManager.fromJSON(vm.devices, { systemAllocator: sys, devices: new Map([[0, uart]]) });
   * ```
   * @throws AllocatorError `InvalidSnapshot` naming what is wrong (malformed, devices that
   *   collide, a resource held by the allocator without a callback for it, disagreement with the
   *   allocator, an "outside" resource that lies in a pool, a missing or misnamed device object); never a half-built manager, and nothing is
   *   held or freed.
   */
  static fromJSON(snapshot: unknown, options: DeviceManagerRestoreOptions): DeviceManager {
    try {
      return DeviceManager.#restore(snapshot, options);
    } catch (error) {
      if (error instanceof AllocatorError && error.code === "InvalidSnapshot") throw error;
      throw new AllocatorError("InvalidSnapshot", `invalid device-manager snapshot: could not be restored (${describeError(error)})`, {
        cause: error,
        device: error instanceof AllocatorError ? error.device : undefined,
      });
    }
  }

  static #restore(snapshot: unknown, options: DeviceManagerRestoreOptions): DeviceManager {
    if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { callbacks | systemAllocator, devices }");
    if (options.callbacks !== undefined && options.systemAllocator !== undefined) {
      throw new AllocatorError("InvalidArgument", "options takes callbacks or systemAllocator, not both");
    }
    for (const k of Object.keys(options)) {
      if (!["callbacks", "systemAllocator", "devices", "otherManagers"].includes(k)) throw new AllocatorError("InvalidArgument", `options has unknown field ${JSON.stringify(k)}`);
    }
    const dm = new DeviceManager(options.systemAllocator !== undefined ? callbacksOf(options.systemAllocator) : (options.callbacks ?? {}), {
      otherManagers: readManagerOptions({ otherManagers: options.otherManagers }, "options"),
    });
    const resolve = options.devices;
    if (!(resolve instanceof Map) && typeof resolve !== "function") throw new AllocatorError("InvalidArgument", "options.devices must be a Map or a function");
    const parsed = parseDeviceManagerSnapshot(snapshot);
    const callbackFor: Record<Kind, unknown> = { instanceId: dm.#deviceId, irq: dm.#irq, msi: dm.#irq, pio: dm.#pio, mmio: dm.#mmio };
    let previousId = -1;
    for (const p of parsed) {
      const id = p.instanceId.value;
      if (id <= previousId) throw invalidSnapshot(`devices are not in ascending instance-id order at ${p.owner}`, p.owner);
      previousId = id;
      const heldOk = (heldBy: HeldBy, kind: Kind, what: string): void => {
        const cb = callbackFor[kind];
        if (heldBy !== "unmanaged" && cb === undefined) throw invalidSnapshot(`${p.owner}: ${what} is ${heldBy === "allocator" ? "held by the allocator" : "reported outside the pools"}, but no ${CALLBACK_NAME[kind]} callback was given`, p.owner);
        if (heldBy === "unmanaged" && cb !== undefined) throw invalidSnapshot(`${p.owner}: ${what} was recorded without an allocator (no ${CALLBACK_NAME[kind]} callback), but a ${CALLBACK_NAME[kind]} callback was given`, p.owner);
      };
      heldOk(p.instanceId.heldBy, "instanceId", `instance id ${id}`);
      for (const q of p.irqs) heldOk(q.heldBy, "irq", `[irq ${q.value}]`);
      for (const m of p.msi) heldOk(m.heldBy, "msi", `MSI GSI ${m.value}`);
      for (const s of p.pio) heldOk(s.heldBy, "pio", s.range.toString("io"));
      for (const s of p.mmio) heldOk(s.heldBy, "mmio", s.range.toString("mem"));
      for (const q of p.irqs) {
        const c = dm.#lines.conflict(q.value, p.owner, q.shared);
        if (c !== undefined) throw invalidSnapshot(`${p.owner}: [irq ${q.value}] is ${c.why}`, p.owner);
        dm.#lines.add(q.value, p.owner, q.shared);
      }
      for (const m of p.msi) {
        const c = dm.#gsis.conflict(m.value, p.owner, false);
        if (c !== undefined) throw invalidSnapshot(`${p.owner}: MSI GSI ${m.value} is ${c.why}`, p.owner);
        dm.#gsis.add(m.value, p.owner, false);
      }
      const entry = { instanceId: id, name: p.name, owner: p.owner };
      const device = resolve instanceof Map ? resolve.get(id) : resolve(entry);
      if (device === undefined) throw invalidSnapshot(`no device object was given for ${p.owner}`, p.owner);
      let name: string;
      try {
        name = deviceName(device);
      } catch (error) {
        throw invalidSnapshot(`the device object given for ${p.owner} is not a device: ${describeError(error)}`, p.owner);
      }
      if (name !== p.name) throw invalidSnapshot(`the device object given for ${p.owner} is named ${JSON.stringify(name)}, not ${JSON.stringify(p.name)}`, p.owner);
      const record: DeviceRecord = { ...p, device };
      for (const [bus, slots] of [[dm.pioBus, record.pio], [dm.mmioBus, record.mmio]] as const) {
        for (const s of slots) {
          const clash = bus.overlapping(s.range)[0];
          if (clash !== undefined) {
            throw invalidSnapshot(`${p.owner}: ${s.range.toString(bus.kind)} conflicts with ${clash.owner} ${clash.range.toString(bus.kind)}`, p.owner);
          }
          bus.insert(s.range, device, p.owner);
        }
      }
      dm.#devices.set(id, record);
    }
    const outside = dm.#outsideProblem(parsed);
    if (outside !== undefined) throw invalidSnapshot(`it disagrees with the allocator: ${outside.what}`, outside.device);
    if (dm.#holdings !== undefined) {
      const problem = dm.#disagreement(parsed, dm.#holdings);
      if (problem !== undefined) throw invalidSnapshot(`it disagrees with the allocator: ${problem.what}`, problem.device);
    }
    return dm;
  }

  /**
   * With an `outside` callback, the first resource recorded as held outside every pool that the
   * allocator says lies in one of its pools (a corrupted snapshot could otherwise map an in-pool
   * range without holding it); undefined when there is none or no callback to ask.
   */
  #outsideProblem(records: readonly Omit<DeviceRecord, "device">[]): { what: string; device: string } | undefined {
    const probe = this.#outside;
    if (probe === undefined) return undefined;
    const inPool = (query: Parameters<OutsideFunc>[0]): boolean => {
      const answer: unknown = probe(query);
      if (typeof answer !== "boolean") throw new AllocatorError("InvalidState", `the outside callback returned ${describeValue(answer)}, not a boolean`);
      return !answer;
    };
    for (const r of records) {
      const found = (what: string) => ({ what: `${r.owner} records ${what} as outside every pool, but it lies in the allocator's pools (it would have to be held)`, device: r.owner });
      if (r.instanceId.heldBy === "outside" && inPool({ kind: "instanceId", id: r.instanceId.value })) return found(`instance id ${r.instanceId.value}`);
      for (const q of r.irqs) if (q.heldBy === "outside" && inPool({ kind: "irq", id: q.value })) return found(`[irq ${q.value}]`);
      for (const m of r.msi) if (m.heldBy === "outside" && inPool({ kind: "msi", id: m.value })) return found(`MSI GSI ${m.value}`);
      for (const x of r.pio) if (x.heldBy === "outside" && inPool({ kind: "pio", range: x.range })) return found(x.range.toString("io"));
      for (const x of r.mmio) if (x.heldBy === "outside" && inPool({ kind: "mmio", range: x.range })) return found(x.range.toString("mem"));
    }
    return undefined;
  }

  /** Compares the records with the allocator's holdings; the first difference, or undefined. */
  #disagreement(records: readonly Omit<DeviceRecord, "device">[], holdings: HoldingsFunc): { what: string; device: string | undefined } | undefined {
    const live = new Set(records.map((r) => r.owner));
    for (const r of records) {
      const want = expectedHoldings(r);
      const have = holdings(r.owner).map(holdingKey).sort();
      const missing = want.filter((w) => !have.includes(w));
      const extra = have.filter((h) => !want.includes(h));
      if (missing.length > 0) return { what: `${r.owner} records ${missing.join(", ")}, which the allocator does not hold for it`, device: r.owner };
      if (extra.length > 0) return { what: `the allocator holds ${extra.join(", ")} for ${r.owner}, which its record does not list`, device: r.owner };
      if (want.length !== have.length) return { what: `the allocator holds something twice for ${r.owner}`, device: r.owner };
    }
    // With other managers on the allocator (each in its worker), a `name@id` owner this manager
    // does not know is another manager's live device when it still holds its own instance id
    // `id`; anything else held under such an owner outlived its device: a leak.
    const all = holdings();
    const alive = new Set<string>();
    if (this.#otherManagers) {
      for (const h of all) {
        if (h.kind === "instanceId" && !live.has(h.owner) && h.owner.endsWith(`@${h.id}`)) alive.add(h.owner);
      }
    }
    for (const h of all) {
      if (DEVICE_OWNER.test(h.owner) && !live.has(h.owner) && !alive.has(h.owner)) {
        return { what: `the allocator holds ${holdingKey(h)} for ${h.owner}, which is not a registered device (leaked)`, device: h.owner };
      }
    }
    return undefined;
  }

  /** The engine of both registrations: holds every request in order, maps, records; all or nothing. */
  #register(device: Device, name: string, reqs: readonly NormalizedResourceRequest[], registration: "simple" | "full", labels: readonly string[]): number {
    this.#checkCallbacksFor(reqs, name, labels);
    const undo: Undo[] = [];
    let who = name;
    let step: NormalizedResourceRequest | undefined;
    let vector: string | undefined;
    this.#busy = `${registration === "simple" ? "simpleRegisterDevice" : "fullRegisterDevice"}(${name})`;
    try {
      const idReq = reqs.find((r): r is NormalizedIdRequest => r.kind === "instanceId");
      step = idReq;
      const instanceId = this.#takeInstanceId(name, idReq?.fixed, undo);
      const owner = `${name}@${instanceId.value}`;
      who = owner;
      const record: DeviceRecord = { device, name, owner, instanceId, registration, irqs: [], msi: [], pio: [], mmio: [] };
      for (const r of reqs) {
        if (r.kind !== "irq") continue;
        step = r;
        record.irqs.push(this.#takeLine(owner, r.fixed, r.shared, undo));
      }
      for (const r of reqs) {
        if (r.kind !== "msi") continue;
        step = r;
        for (let v = 0; v < r.count; v++) {
          vector = r.count > 1 ? `vector ${v + 1} of ${r.count}` : undefined;
          record.msi.push(this.#takeGsi(owner, r.fixed?.[v], undo));
        }
        vector = undefined;
      }
      const mapped: { slot: RangeSlot; request: NormalizedAddressRequest }[] = [];
      for (const kind of ["pio", "mmio"] as const) {
        for (const r of reqs) {
          if (r.kind !== kind) continue;
          step = r;
          const slot = this.#takeRange(r, owner, undo);
          (kind === "pio" ? record.pio : record.mmio).push(slot);
          mapped.push({ slot, request: r });
        }
      }
      for (const { slot, request } of mapped) {
        step = request;
        const bus = request.kind === "pio" ? this.pioBus : this.mmioBus;
        bus.insert(slot.range, device, owner);
        undo.push(() => bus.remove(slot.range));
      }
      step = undefined;
      this.#devices.set(instanceId.value, record);
      return instanceId.value;
    } catch (error) {
      // A full registration's requests are described (`requests[1] (mmio, 0x1000 bytes)`); the
      // arguments of a simple one are named (`mmioRange[0]`), since the caller wrote them out.
      const label = step === undefined ? "instance id" : (labels[step.index] ?? `requests[${step.index}]`);
      let what = step === undefined || registration === "simple" ? label : describeRequest(step, label);
      if (vector !== undefined) what = `${what}: ${vector}`;
      // A simple registration's arguments are not a request list: the label names the argument.
      return this.#rollback(undo, this.#withContext(error, who, what, registration === "simple" ? undefined : step?.index));
    } finally {
      this.#busy = undefined;
    }
  }

  /** Re-issues an AllocatorError naming the device and the request; anything else passes through. */
  #withContext(error: unknown, device: string, what: string, requestIndex: number | undefined): unknown {
    if (!(error instanceof AllocatorError)) return error;
    return new AllocatorError(error.code, `${device}: ${what}: ${error.message}`, { cause: error, owner: error.owner, device, requestIndex });
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

  /** Unmaps a device and drops it from every table (nothing is freed here). */
  #forget(record: DeviceRecord): void {
    const unmap = (bus: Bus<Device>, slots: RangeSlot[]): void => {
      for (let i = slots.length - 1; i >= 0; i--) {
        const range = slots[i]!.range;
        const m = bus.get(range);
        if (m !== undefined && m.owner === record.owner && m.device === record.device) bus.remove(range);
      }
    };
    unmap(this.mmioBus, record.mmio);
    unmap(this.pioBus, record.pio);
    for (const q of record.irqs) this.#lines.remove(q.value, record.owner);
    for (const m of record.msi) this.#gsis.remove(m.value, record.owner);
    this.#devices.delete(record.instanceId.value);
  }

  #checkCallbacksFor(reqs: readonly NormalizedResourceRequest[], name: string, labels: readonly string[]): void {
    const missing = (what: string, index?: number): never => {
      throw new AllocatorError("MissingAllocator", `cannot register ${name}: ${what}`, { device: name, requestIndex: index });
    };
    if (this.#deviceId === undefined && !reqs.some((r) => r.kind === "instanceId" && r.fixed !== undefined)) {
      missing("no device-id allocator callback was provided and no instanceId request carries a fixed id");
    }
    for (const r of reqs) {
      if (r.fixed !== undefined) continue;
      const at = labels[r.index] ?? `requests[${r.index}]`;
      if (r.kind === "irq" && this.#irq === undefined) missing(`${at} (irq) has no fixed IRQ and no irq allocator callback was provided`, r.index);
      if (r.kind === "msi" && this.#irq === undefined) missing(`${at} (msi) has no fixed GSIs and no irq allocator callback was provided`, r.index);
      if (r.kind === "pio" && this.#pio === undefined) {
        missing(`${at} (pio, size ${hex(r.size)}) has no fixed address and no pio allocator callback was provided`, r.index);
      }
      if (r.kind === "mmio" && this.#mmio === undefined) {
        missing(`${at} (mmio, size ${hex(r.size)}) has no fixed address and no mmio allocator callback was provided`, r.index);
      }
    }
  }

  /** Calls an id callback and checks the answer: an id, or `null` (only for a fixed request). */
  #callId(cb: IdAllocateFunc, kind: IdKind, params: Parameters<IdAllocateFunc>[0], owner: string): number | null {
    const id: unknown = cb(params);
    const fixed = params.action === "allocate" ? params.fixed : undefined;
    if (id === null && fixed !== undefined) return null;
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > U32_MAX || (fixed !== undefined && id !== fixed)) {
      throw new AllocatorError(
        "InvalidState",
        `the ${KIND_LABEL[kind]} allocator returned ${describeValue(id)} for ${owner}, not ${fixed === undefined ? "an id from 0 to 2^32-1" : `${fixed}${kind === "irq" ? "" : " or null"}`}`,
      );
    }
    return id;
  }

  #takeInstanceId(name: string, fixed: number | undefined, undo: Undo[]): IdSlot {
    if (fixed !== undefined) this.#assertIdFree(fixed, name);
    const cb = this.#deviceId;
    if (cb === undefined) return { value: fixed!, fixed: true, shared: false, heldBy: "unmanaged" };
    const params =
      fixed === undefined
        ? { action: "allocate" as const, owner: name, appendIdToOwner: true }
        : { action: "allocate" as const, owner: name, fixed, allowReserved: true, appendIdToOwner: true };
    const got = this.#callId(cb, "instanceId", params, name);
    if (got === null) return { value: fixed!, fixed: true, shared: false, heldBy: "outside" };
    undo.push(() => cb({ action: "free", owner: `${name}@${got}`, id: got, undo: true }));
    // A VMM mixing simple and full registration can hand out an id the callback also has.
    this.#assertIdFree(got, name);
    return { value: got, fixed: fixed !== undefined, shared: false, heldBy: "allocator" };
  }

  #assertIdFree(id: number, name: string): void {
    const holder = this.#devices.get(id);
    if (holder !== undefined) {
      throw new AllocatorError("Overlap", `instance id ${id} for ${name} is already held by ${holder.owner}`, { owner: holder.owner });
    }
  }

  /** Holds a legacy line for `owner` and records it in the line table. */
  #takeLine(owner: string, fixed: number | undefined, shared: boolean, undo: Undo[]): IdSlot {
    if (fixed !== undefined) {
      const c = this.#lines.conflict(fixed, owner, shared);
      if (c !== undefined) throw new AllocatorError("Overlap", `[irq ${fixed}] is ${c.why}`, { owner: c.holder });
    }
    const cb = this.#irq;
    let slot: IdSlot;
    if (cb === undefined) {
      slot = { value: fixed!, fixed: true, shared, heldBy: "unmanaged" };
    } else {
      const params: Parameters<IdAllocateFunc>[0] = { action: "allocate", owner, pool: "legacy", ...(fixed === undefined ? {} : { fixed, allowReserved: true }), ...(shared ? { shared } : {}) };
      const got = this.#callId(cb, "irq", params, owner);
      if (got === null) slot = { value: fixed!, fixed: true, shared, heldBy: "outside" };
      else {
        undo.push(() => cb({ action: "free", owner, id: got, pool: "legacy", undo: true }));
        slot = { value: got, fixed: fixed !== undefined, shared, heldBy: "allocator" };
        const c = this.#lines.conflict(got, owner, shared);
        if (c !== undefined) throw new AllocatorError("InvalidState", `the IRQ allocator handed [irq ${got}] to ${owner}, but it is ${c.why}`, { owner: c.holder });
      }
    }
    this.#lines.add(slot.value, owner, shared);
    undo.push(() => this.#lines.remove(slot.value, owner));
    return slot;
  }

  /** Holds one MSI GSI for `owner`. */
  #takeGsi(owner: string, fixed: number | undefined, undo: Undo[]): IdSlot {
    if (fixed !== undefined) {
      const c = this.#gsis.conflict(fixed, owner, false);
      if (c !== undefined) throw new AllocatorError("Overlap", `MSI GSI ${fixed} is ${c.why}`, { owner: c.holder });
    }
    const cb = this.#irq;
    let slot: IdSlot;
    if (cb === undefined) {
      slot = { value: fixed!, fixed: true, shared: false, heldBy: "unmanaged" };
    } else {
      const got = this.#callId(cb, "msi", { action: "allocate", owner, pool: "msi", ...(fixed === undefined ? {} : { fixed, allowReserved: true }) }, owner);
      if (got === null) slot = { value: fixed!, fixed: true, shared: false, heldBy: "outside" };
      else {
        undo.push(() => cb({ action: "free", owner, id: got, pool: "msi", undo: true }));
        slot = { value: got, fixed: fixed !== undefined, shared: false, heldBy: "allocator" };
        const c = this.#gsis.conflict(got, owner, false);
        if (c !== undefined) throw new AllocatorError("InvalidState", `the IRQ allocator handed MSI GSI ${got} to ${owner}, but it is ${c.why}`, { owner: c.holder });
      }
    }
    this.#gsis.add(slot.value, owner, false);
    undo.push(() => this.#gsis.remove(slot.value, owner));
    return slot;
  }

  /** A range from the callback (fixed or not) checked against the request, or a fixed one only mapped. */
  #takeRange(r: NormalizedAddressRequest, owner: string, undo: Undo[]): RangeSlot {
    const slot = (range: RangeInclusive, heldBy: HeldBy): RangeSlot => ({
      range,
      heldBy,
      fixed: r.fixed !== undefined,
      alignment: r.alignment,
      window: r.window,
      mmio64: r.mmio64,
    });
    const cb = r.kind === "pio" ? this.#pio : this.#mmio;
    if (cb === undefined) return slot(RangeInclusive.withSize(r.fixed!, r.size), "unmanaged");
    const params: AllocateParams = { action: "allocate", owner, size: r.size };
    if (r.alignment !== undefined) params.alignment = r.alignment;
    // A copy: the slot keeps the request's window for later moves, and the callback must not reach it.
    if (r.window !== undefined) params.window = { min: r.window.min, max: r.window.max };
    if (r.mmio64) params.mmio64 = true;
    if (r.allowFallback) params.allowFallback = true;
    if (r.fixed !== undefined) {
      params.fixed = r.fixed;
      params.allowReserved = true;
    }
    // Only what differs from the defaults, so that a callback written before these existed works.
    if (r.pool !== undefined && r.pool !== "mmio64") params.pool = r.pool;
    if (r.placement === "last") params.placement = "last";
    const range = this.#allocateRange(cb, r.kind, params, undo, `requests[${r.index}]`);
    return range === null ? slot(RangeInclusive.withSize(r.fixed!, r.size), "outside") : slot(range, "allocator");
  }

  /**
   * Calls an address callback and checks the result; once the callback has handed out a range,
   * its free is registered in `undo` before any check can throw. `null` is accepted for a fixed
   * request only: nothing was held.
   */
  #allocateRange(cb: AddrAllocateFunc, kind: "pio" | "mmio", params: AllocateParams, undo: Undo[], what: string): RangeInclusive | null {
    const got: unknown = cb(params);
    const label = kind === "pio" ? "PIO" : "MMIO";
    if (got === null && params.fixed !== undefined) return null;
    if (!(got instanceof RangeInclusive)) {
      throw new AllocatorError("InvalidState", `the ${label} allocator returned ${describeValue(got)} for ${params.owner}, not a RangeInclusive`);
    }
    const { owner } = params;
    undo.push(() => cb({ action: "free", owner, range: got, undo: true }));
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

  /**
   * Moves a range in the allocator: holds the new place, gives back the old one if it was held.
   * On failure the allocator is as before. Returns how the new place is held.
   */
  #reallocate(cb: AddrAllocateFunc, kind: "pio" | "mmio", owner: string, slot: RangeSlot, to: RangeInclusive): HeldBy {
    const from = slot.range;
    const wasHeld = slot.heldBy === "allocator";
    const params: AllocateParams = { action: "allocate", owner, size: to.len(), fixed: to.start };
    if (slot.alignment !== undefined) params.alignment = slot.alignment;
    const undo: Undo[] = [];
    try {
      if (!wasHeld || !to.overlaps(from)) {
        const got = this.#allocateRange(cb, kind, params, undo, "the move");
        if (wasHeld) cb({ action: "free", owner, range: from });
        return got === null ? "outside" : "allocator";
      }
      // The allocator would see the new place as taken by the old one: free first.
      cb({ action: "free", owner, range: from });
      undo.push(() => {
        // Exactly what was there, a use of a reservation included.
        const back: AllocateParams = { action: "allocate", owner, size: from.len(), fixed: from.start, allowReserved: true };
        try {
          this.#allocateRange(cb, kind, back, [], "taking back the old range");
        } catch (error) {
          // The allocator no longer holds it for us: stop claiming it, so it is never freed twice.
          slot.heldBy = "outside";
          throw error;
        }
      });
      const got = this.#allocateRange(cb, kind, params, undo, "the move");
      return got === null ? "outside" : "allocator";
    } catch (error) {
      return this.#rollback(undo, error, `moving ${from.toString(kind === "pio" ? "io" : "mem")} of ${owner}`);
    }
  }

  /** Undoes in reverse order, then rethrows `error` (or reports that undoing failed). */
  #rollback(undo: Undo[], error: unknown, what?: string): never {
    const failures: unknown[] = [];
    for (let i = undo.length - 1; i >= 0; i--) {
      try {
        undo[i]!();
      } catch (e) {
        failures.push(e);
      }
    }
    if (failures.length === 0) throw error;
    const device = error instanceof AllocatorError ? error.device : undefined;
    throw new AllocatorError(
      "InvalidState",
      `${what === undefined ? "" : `${what}: `}${describeError(error)}; undoing it failed too (${failures.map(describeError).join("; ")}): the allocator may have leaked`,
      { cause: error, device },
    );
  }

  #heldSummary(record: DeviceRecord): string[] {
    const out: string[] = [];
    if (record.instanceId.heldBy === "allocator") out.push(`instance id ${record.instanceId.value}`);
    for (const q of record.irqs) if (q.heldBy === "allocator") out.push(`[irq ${q.value}]`);
    for (const m of record.msi) if (m.heldBy === "allocator") out.push(`MSI GSI ${m.value}`);
    for (const s of record.pio) if (s.heldBy === "allocator") out.push(s.range.toString("io"));
    for (const s of record.mmio) if (s.heldBy === "allocator") out.push(s.range.toString("mem"));
    return out;
  }
}

/** The callbacks of a system allocator, as the constructor takes them. */
function callbacksOf(sys: SystemAllocator): AllocationCallbacks {
  if (typeof sys !== "object" || sys === null) throw new AllocatorError("InvalidArgument", "sys must be a system allocator object");
  for (const m of ["deviceIdCallback", "irqCallback", "pioAddressCallback", "mmioAddressCallback"] as const) {
    if (typeof sys[m] !== "function") throw new AllocatorError("InvalidArgument", `sys.${m} must be a function`);
  }
  if (sys.holdingsCallback !== undefined && typeof sys.holdingsCallback !== "function") {
    throw new AllocatorError("InvalidArgument", "sys.holdingsCallback must be a function");
  }
  if (sys.outsideCallback !== undefined && typeof sys.outsideCallback !== "function") {
    throw new AllocatorError("InvalidArgument", "sys.outsideCallback must be a function");
  }
  const callbacks: { -readonly [K in keyof AllocationCallbacks]: AllocationCallbacks[K] } = {};
  const deviceId = sys.deviceIdCallback();
  const irq = sys.irqCallback();
  const pio = sys.pioAddressCallback();
  const mmio = sys.mmioAddressCallback();
  const holdings = sys.holdingsCallback?.();
  const outside = sys.outsideCallback?.();
  if (deviceId !== undefined) callbacks.deviceId = deviceId;
  if (irq !== undefined) callbacks.irq = irq;
  if (pio !== undefined) callbacks.pio = pio;
  if (mmio !== undefined) callbacks.mmio = mmio;
  if (holdings !== undefined) callbacks.holdings = holdings;
  if (outside !== undefined) callbacks.outside = outside;
  return callbacks;
}
