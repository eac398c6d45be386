/**
 * The JSON form of a device manager (`DeviceManager.toJSON`) and its parser. The parser checks
 * shape and spelling only (every field, canonical hex, no unknown keys); the manager's restore
 * checks the meaning: that the devices fit together, agree with the allocator and have objects.
 */
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import { hex, parseHexU64 } from "../core/u64.js";
import type { DeviceRecord, HeldBy, IdSlot, RangeSlot } from "./device-records.js";

/** The `format` tag of a {@link DeviceManagerSnapshot}. */
export const DEVICE_MANAGER_SNAPSHOT_FORMAT = "vm-allocator/device-manager";

/** An id a device holds, in a snapshot. */
export interface IdSlotJSON {
  /** The id: the instance id, the legacy interrupt line or the MSI GSI, a u32. */
  readonly value: number;
  /** True when the request (or the VMM) fixed the value, rather than the allocator choosing it. */
  readonly fixed: boolean;
  /**
   * True when the line is shared with other devices that also share it (legacy lines only; false
   * otherwise).
   */
  readonly shared: boolean;
  /** How the id is held, and so whether unplugging frees it through the allocator callback. */
  readonly heldBy: HeldBy;
}

/** A range a device holds, in a snapshot; u64 values as canonical `"0x..."` strings. */
export interface RangeSlotJSON {
  /** First port or address of the range, as canonical lowercase hex. */
  readonly start: string;
  /** Last port or address of the range, inclusive, as canonical lowercase hex. */
  readonly end: string;
  /** True when the request (or the VMM) fixed the place, rather than the allocator choosing it. */
  readonly fixed: boolean;
  /**
   * How the range is held, and so whether unplugging or a move goes through the allocator callback.
   */
  readonly heldBy: HeldBy;
  /** The alignment it was requested with (moves keep it), if any. */
  readonly alignment?: string;
  /**
   * The window it was requested with (moves keep it), if any.
   * @property min Lowest address the range may start at, inclusive, as canonical lowercase hex.
   * @property max Highest address the range may end at, inclusive, as canonical lowercase hex.
   */
  readonly window?: { readonly min: string; readonly max: string };
  /**
   * MMIO only: true when the range was asked for in 64-bit MMIO space (above RAM), which a move
   * must keep; false for PIO.
   */
  readonly mmio64: boolean;
}

/** One device of a {@link DeviceManagerSnapshot}. */
export interface DeviceJSON {
  /** The device's name (`device.name`, or `device`), as in messages. */
  readonly name: string;
  /**
   * `${name}@${instanceId}`: the owner of everything the device holds, in the allocator and on the
   * buses.
   */
  readonly owner: string;
  /**
   * Which method registered the device: `simpleRegisterDevice` (`"simple"`) or `fullRegisterDevice`
   * (`"full"`).
   */
  readonly registration: "simple" | "full";
  /** The device's instance id and how it is held. */
  readonly instanceId: IdSlotJSON;
  /** The legacy interrupt lines held, in the order they were requested. */
  readonly irqs: readonly IdSlotJSON[];
  /** The MSI GSIs held, in the order they were requested. */
  readonly msi: readonly IdSlotJSON[];
  /** The port ranges held, in the order they were requested. */
  readonly pio: readonly RangeSlotJSON[];
  /** The MMIO ranges held, in the order they were requested. */
  readonly mmio: readonly RangeSlotJSON[];
}

/**
 * The JSON form of a `DeviceManager`: every live device, by ascending instance id, with every
 * resource it holds and how (`heldBy`: `"allocator"`, `"outside"` or `"unmanaged"`; see
 * `HeldBy`). The device objects themselves are not in it: a restore attaches them again.
 */
export interface DeviceManagerSnapshot {
  /**
   * Always `"vm-allocator/device-manager"` ({@link DEVICE_MANAGER_SNAPSHOT_FORMAT}); restoring
   * refuses any other value.
   */
  readonly format: typeof DEVICE_MANAGER_SNAPSHOT_FORMAT;
  /** The snapshot format version, 1; restoring refuses any other. */
  readonly version: 1;
  /** Every live device, by ascending instance id. */
  readonly devices: readonly DeviceJSON[];
}

/** A device as the parser returns it: exact values, no device object yet. */
export type ParsedDevice = Omit<DeviceRecord, "device">;

const HELD_BY: readonly HeldBy[] = ["allocator", "outside", "unmanaged"];

function idSlotToJSON(s: IdSlot): IdSlotJSON {
  return { value: s.value, fixed: s.fixed, shared: s.shared, heldBy: s.heldBy };
}

function rangeSlotToJSON(s: RangeSlot): RangeSlotJSON {
  const out: { -readonly [K in keyof RangeSlotJSON]: RangeSlotJSON[K] } = {
    start: hex(s.range.start),
    end: hex(s.range.end),
    fixed: s.fixed,
    heldBy: s.heldBy,
    mmio64: s.mmio64,
  };
  if (s.alignment !== undefined) out.alignment = hex(s.alignment);
  if (s.window !== undefined) out.window = { min: hex(s.window.min), max: hex(s.window.max) };
  return out;
}

export function recordToJSON(r: DeviceRecord): DeviceJSON {
  return {
    name: r.name,
    owner: r.owner,
    registration: r.registration,
    instanceId: idSlotToJSON(r.instanceId),
    irqs: r.irqs.map(idSlotToJSON),
    msi: r.msi.map(idSlotToJSON),
    pio: r.pio.map(rangeSlotToJSON),
    mmio: r.mmio.map(rangeSlotToJSON),
  };
}

export function invalidSnapshot(what: string, device?: string): AllocatorError {
  return new AllocatorError("InvalidSnapshot", `invalid device-manager snapshot: ${what}`, device === undefined ? undefined : { device });
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function object(value: unknown, at: string, required: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidSnapshot(`${at} must be an object, got ${describe(value)}`);
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) throw invalidSnapshot(`${at} has unknown field ${JSON.stringify(k)}`);
  for (const k of required) if (!Object.hasOwn(o, k)) throw invalidSnapshot(`${at} is missing "${k}"`);
  return o;
}

function boolean(value: unknown, at: string): boolean {
  if (typeof value !== "boolean") throw invalidSnapshot(`${at} must be a boolean, got ${describe(value)}`);
  return value;
}

function u32(value: unknown, at: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw invalidSnapshot(`${at} must be an integer from 0 to 2^32-1, got ${describe(value)}`);
  }
  return value;
}

function u64(value: unknown, at: string): bigint {
  const v = parseHexU64(value);
  if (v === undefined) throw invalidSnapshot(`${at} must be canonical hex ("0x1f"), got ${describe(value)}`);
  return v;
}

function heldBy(value: unknown, at: string): HeldBy {
  if (typeof value !== "string" || !(HELD_BY as readonly string[]).includes(value)) {
    throw invalidSnapshot(`${at} must be one of ${HELD_BY.map((h) => JSON.stringify(h)).join(", ")}, got ${describe(value)}`);
  }
  return value as HeldBy;
}

function list(value: unknown, at: string): unknown[] {
  if (!Array.isArray(value)) throw invalidSnapshot(`${at} must be an array, got ${describe(value)}`);
  return value;
}

function parseIdSlot(value: unknown, at: string): IdSlot {
  const o = object(value, at, ["value", "fixed", "shared", "heldBy"]);
  return { value: u32(o["value"], `${at}.value`), fixed: boolean(o["fixed"], `${at}.fixed`), shared: boolean(o["shared"], `${at}.shared`), heldBy: heldBy(o["heldBy"], `${at}.heldBy`) };
}

function parseRangeSlot(value: unknown, at: string, kind: "pio" | "mmio"): RangeSlot {
  const o = object(value, at, ["start", "end", "fixed", "heldBy", "mmio64"], ["alignment", "window"]);
  const start = u64(o["start"], `${at}.start`);
  const end = u64(o["end"], `${at}.end`);
  if (start > end) throw invalidSnapshot(`${at}: start ${hex(start)} is above end ${hex(end)}`);
  let alignment: bigint | undefined;
  if (o["alignment"] !== undefined) {
    alignment = u64(o["alignment"], `${at}.alignment`);
    if (alignment === 0n || (alignment & (alignment - 1n)) !== 0n) throw invalidSnapshot(`${at}.alignment must be a power of two, got ${hex(alignment)}`);
  }
  let window: { min: bigint; max: bigint } | undefined;
  if (o["window"] !== undefined) {
    const w = object(o["window"], `${at}.window`, ["min", "max"]);
    window = { min: u64(w["min"], `${at}.window.min`), max: u64(w["max"], `${at}.window.max`) };
    if (window.min > window.max) throw invalidSnapshot(`${at}.window: min is above max`);
  }
  const mmio64 = boolean(o["mmio64"], `${at}.mmio64`);
  if (kind === "pio" && mmio64) throw invalidSnapshot(`${at}.mmio64 is true for a port range`);
  return { range: new RangeInclusive(start, end), fixed: boolean(o["fixed"], `${at}.fixed`), heldBy: heldBy(o["heldBy"], `${at}.heldBy`), alignment, window, mmio64 };
}

/**
 * Parses a snapshot's text-level structure.
 * @throws AllocatorError `InvalidSnapshot` naming the field.
 */
export function parseDeviceManagerSnapshot(snapshot: unknown): ParsedDevice[] {
  const x = object(snapshot, "the snapshot", ["format", "version", "devices"]);
  if (x["format"] !== DEVICE_MANAGER_SNAPSHOT_FORMAT) throw invalidSnapshot(`format must be "${DEVICE_MANAGER_SNAPSHOT_FORMAT}", got ${describe(x["format"])}`);
  if (x["version"] !== 1) throw invalidSnapshot(`unsupported version ${describe(x["version"])} (supported: 1)`);
  const out: ParsedDevice[] = [];
  const devices = list(x["devices"], "devices");
  for (let i = 0; i < devices.length; i++) {
    const at = `devices[${i}]`;
    const d = object(devices[i], at, ["name", "owner", "registration", "instanceId", "irqs", "msi", "pio", "mmio"]);
    const name = d["name"];
    if (typeof name !== "string" || name.length === 0) throw invalidSnapshot(`${at}.name must be a non-empty string, got ${describe(name)}`);
    const registration = d["registration"];
    if (registration !== "simple" && registration !== "full") throw invalidSnapshot(`${at}.registration must be "simple" or "full", got ${describe(registration)}`);
    const instanceId = parseIdSlot(d["instanceId"], `${at}.instanceId`);
    if (instanceId.shared) throw invalidSnapshot(`${at}.instanceId.shared must be false: instance ids are never shared`);
    const owner = `${name}@${instanceId.value}`;
    if (d["owner"] !== owner) throw invalidSnapshot(`${at}.owner must be ${JSON.stringify(owner)}, got ${describe(d["owner"])}`, owner);
    const msi = list(d["msi"], `${at}.msi`).map((v, j) => parseIdSlot(v, `${at}.msi[${j}]`));
    for (let j = 0; j < msi.length; j++) if (msi[j]!.shared) throw invalidSnapshot(`${at}.msi[${j}].shared must be false: MSI GSIs are never shared`, owner);
    out.push({
      name,
      owner,
      registration,
      instanceId,
      irqs: list(d["irqs"], `${at}.irqs`).map((v, j) => parseIdSlot(v, `${at}.irqs[${j}]`)),
      msi,
      pio: list(d["pio"], `${at}.pio`).map((v, j) => parseRangeSlot(v, `${at}.pio[${j}]`, "pio")),
      mmio: list(d["mmio"], `${at}.mmio`).map((v, j) => parseRangeSlot(v, `${at}.mmio[${j}]`, "mmio")),
    });
  }
  return out;
}
