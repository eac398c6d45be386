/**
 * Layout files: what `vm-allocator plan FILE` reads. A layout names a preset system layout,
 * optionally overrides its pools, adds reservations, and lists the devices with their resource
 * requests:
 *
 * ```json
 * {
 *   "preset": "firecracker-x86_64",
 *   "layout": { "mmio64": null },
 *   "reserved": [ { "pool": "mmio32", "start": "0xd0000000", "size": "0x1000", "owner": "ioapic" } ],
 *   "devices": [ { "name": "virtio-blk0", "requests": [ { "kind": "mmio", "size": "0x1000" }, { "kind": "irq" } ] } ]
 * }
 * ```
 *
 * `"parameters": { "ramSize": "0x200000000", "physAddressBits": 40 }` gives the preset's layout
 * parameters (the guest's RAM size, its physical address width), for the presets that take them.
 *
 * Reading checks the whole file and records every problem with its field path before anything
 * is allocated; only the checks that need the allocator (overlaps, exhausted pools) are left to
 * planning. Validation is this module's own, so that every problem is found, not just the
 * first; the library's validators run afterwards as a backstop so that nothing they would reject
 * can reach the allocator.
 */
import { normalizeResourceRequests, MAX_MSI_VECTORS, REQUEST_FIELDS, type NormalizedResourceRequest, type ResourceRequest } from "../src/devices/device.js";
import { isAllocatorError } from "../src/core/errors.js";
import { hex } from "../src/core/u64.js";
import { MMIO_POOLS } from "../src/system/allocation-callbacks.js";
import {
  getPreset,
  isAddressPool,
  LAYOUT_KEYS,
  layoutNames,
  layoutToJSON,
  POOL_NAMES,
  resolveLayout,
  resolveParameters,
  resolveReservation,
  type LayoutName,
  type PoolName,
  type ResolvedLayout,
  type ResolvedReservation,
  type SystemLayout,
} from "../src/system/layouts.js";
import type { LayoutParameters, ResolvedParameters } from "../src/system/presets/preset.js";
import { describeJson, field, item, type Problems } from "./diagnostics.js";
import { isJsonObject, type JsonObject } from "./json-source.js";
import { readInteger, readU32 } from "./numbers.js";
import { readPciDevice, type PciDeviceSpec } from "./pci-layout.js";

/** The preset used when a layout file names none. */
export const DEFAULT_PRESET: LayoutName = "firecracker-x86_64";

/** A device of a layout file. */
export interface DeviceSpec {
  /** Tells it from a PCI device (see `pci-layout.ts`). */
  readonly kind: "device";
  readonly name: string;
  /** Where it is in the file (`devices[3]`), for messages. */
  readonly path: string;
  /** The requests with exact numbers, as `DeviceManager.fullRegisterDevice` takes them. */
  readonly requests: readonly ResourceRequest[];
  /** The same requests, validated by the library. */
  readonly normalized: readonly NormalizedResourceRequest[];
}

/** A reservation of the system layout and where it came from. */
export interface ReservationSpec extends ResolvedReservation {
  /** `reserved[2]`, `layout.reserved[0]`, or `preset firecracker-x86_64, reserved[1]`. */
  readonly path: string;
}

/** A validated layout file. */
export interface LayoutFile {
  readonly description: string | undefined;
  readonly preset: LayoutName;
  /** The preset's parameters, defaults filled in. */
  readonly parameters: ResolvedParameters;
  /** The parameters the file gave, as it gave them (for the plan snapshot). */
  readonly givenParameters: LayoutParameters;
  /** The pools and reservations, preset and overrides merged, every number exact. */
  readonly system: ResolvedLayout;
  /** `system.reserved` with their paths, in the same order. */
  readonly reserved: readonly ReservationSpec[];
  /** Devices with resource requests and PCI devices, in file order. */
  readonly devices: readonly (DeviceSpec | PciDeviceSpec)[];
}

const TOP_KEYS = ["description", "preset", "parameters", "layout", "reserved", "devices"];
const OPTIONAL_POOLS = ["pio", "systemMemory", "mmio64", "pastMmio64"];
const RESERVATION_KEYS = ["pool", "start", "end", "size", "owner"];
const DEVICE_KEYS = ["name", "requests"];
/** Longest device name: it is part of every owner string and must fit in a table. */
const MAX_NAME = 64;

/** Reports unknown keys of `object` at `path`; a typo must never be silently ignored. */
function checkKeys(object: JsonObject, allowed: readonly string[], path: string, problems: Problems): void {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      problems.add(field(path, key), `unknown field (expected one of: ${allowed.join(", ")})`);
    }
  }
}

function expectObject(value: unknown, path: string, problems: Problems, what = "an object"): JsonObject | undefined {
  if (isJsonObject(value)) return value;
  problems.add(path, `must be ${what}, got ${describeJson(value)}`);
  return undefined;
}

function expectArray(value: unknown, path: string, problems: Problems): unknown[] | undefined {
  if (Array.isArray(value)) return value;
  problems.add(path, `must be an array, got ${describeJson(value)}`);
  return undefined;
}

/** Checks a name used as (part of) an owner string. */
function readName(value: unknown, path: string, problems: Problems, device: boolean): string | undefined {
  if (typeof value !== "string" || value.length === 0) {
    problems.add(path, `must be a non-empty string, got ${describeJson(value)}`);
    return undefined;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) {
    problems.add(path, "must not contain control characters");
    return undefined;
  }
  if (value.length > MAX_NAME) {
    problems.add(path, `must be at most ${MAX_NAME} characters, got ${value.length}`);
    return undefined;
  }
  if (device && value.includes("@")) {
    // The device manager names owners `name@instanceId`; a second @ would make them ambiguous.
    problems.add(path, `must not contain "@" (owners are written name@instanceId), got ${describeJson(value)}`);
    return undefined;
  }
  return value;
}

/** Options of {@link readLayout}. */
export interface ReadLayoutOptions {
  /**
   * Return the layout even when some devices are invalid, without them, so that `check` can
   * still plan the others and report their problems too. Removing a device only frees space,
   * so planning the rest never reports a problem the full layout would not have.
   */
  readonly partial?: boolean;
}

/**
 * Validates a parsed layout file, recording every problem in `problems`.
 * @returns the layout, or undefined when there was any problem (see `options.partial`).
 */
export function readLayout(value: unknown, problems: Problems, options: ReadLayoutOptions = {}): LayoutFile | undefined {
  const before = problems.list.length;
  const top = expectObject(value, "", problems, "a JSON object with a devices list");
  if (top === undefined) return undefined;
  checkKeys(top, TOP_KEYS, "", problems);

  let description: string | undefined;
  if (top["description"] !== undefined) {
    if (typeof top["description"] === "string") description = top["description"];
    else problems.add("description", `must be a string, got ${describeJson(top["description"])}`);
  }

  let preset: LayoutName = DEFAULT_PRESET;
  const presetValue = top["preset"];
  if (presetValue !== undefined) {
    if (typeof presetValue === "string" && (layoutNames as readonly string[]).includes(presetValue)) preset = presetValue as LayoutName;
    else problems.add("preset", `must be one of ${layoutNames.map((n) => JSON.stringify(n)).join(", ")}, got ${describeJson(presetValue)}`);
  }

  const params = readParameters(top["parameters"], preset, problems);
  const system = params === undefined ? undefined : readSystem(top, preset, params.resolved, problems, options.partial === true);
  const devices = readDevices(top["devices"], preset, params?.given ?? {}, problems);
  if (params === undefined || system === undefined || devices === undefined) return undefined;
  if (problems.list.length > before && options.partial !== true) return undefined;
  return { description, preset, parameters: params.resolved, givenParameters: params.given, system: system.resolved, reserved: system.reserved, devices };
}

/** The file's `parameters`, checked against what the preset takes. */
function readParameters(value: unknown, preset: LayoutName, problems: Problems): { given: LayoutParameters; resolved: ResolvedParameters } | undefined {
  if (value === undefined) return { given: {}, resolved: resolveParameters(preset) };
  const o = expectObject(value, "parameters", problems, "an object { ramSize?, physAddressBits? }");
  if (o === undefined) return undefined;
  const before = problems.list.length;
  checkKeys(o, ["ramSize", "physAddressBits"], "parameters", problems);
  const given: { ramSize?: bigint; physAddressBits?: number } = {};
  if (o["ramSize"] !== undefined) {
    const v = readInteger(o["ramSize"], "parameters.ramSize", problems);
    if (v !== undefined) given.ramSize = v;
  }
  if (o["physAddressBits"] !== undefined) {
    const v = readU32(o["physAddressBits"], "parameters.physAddressBits", problems);
    if (v !== undefined) given.physAddressBits = v;
  }
  if (problems.list.length > before) return undefined;
  try {
    return { given, resolved: resolveParameters(preset, given, "parameters") };
  } catch (error) {
    addLibraryProblem(error, problems, "parameters");
    return undefined;
  }
}

/** The preset with the file's overrides and extra reservations applied and validated. */
function readSystem(
  top: JsonObject,
  preset: LayoutName,
  parameters: ResolvedParameters,
  problems: Problems,
  partial: boolean,
): { resolved: ResolvedLayout; reserved: ReservationSpec[] } | undefined {
  const before = problems.list.length;
  let base: SystemLayout;
  try {
    // In canonical JSON form: presets hold bigints, which a file (and its reader) never does.
    base = layoutToJSON(resolveLayout(getPreset(preset).layout(parameters)));
  } catch (error) {
    addLibraryProblem(error, problems, "parameters");
    return undefined;
  }
  // Pools: the preset's, each replaced by the file's override (null removes an optional pool).
  const merged: Record<string, unknown> = {};
  for (const key of LAYOUT_KEYS) {
    const v = (base as unknown as Record<string, unknown>)[key];
    if (v !== undefined && key !== "reserved") merged[key] = v;
  }
  const overrides = top["layout"] === undefined ? undefined : expectObject(top["layout"], "layout", problems);
  let reservedSource: { list: unknown[]; path: string } = {
    list: [...(base.reserved ?? [])],
    path: `preset ${preset}, reserved`,
  };
  let removed: string[] = [];
  if (overrides !== undefined) {
    checkKeys(overrides, LAYOUT_KEYS, "layout", problems);
    for (const key of LAYOUT_KEYS) {
      const v = overrides[key];
      if (v === undefined) continue;
      const at = `layout.${key}`;
      if (key === "name") {
        const name = readName(v, at, problems, false);
        if (name !== undefined) merged["name"] = name;
      } else if (key === "reserved") {
        const list = expectArray(v, at, problems);
        if (list !== undefined) reservedSource = { list, path: at };
      } else if (v === null) {
        if (OPTIONAL_POOLS.includes(key)) {
          delete merged[key];
          removed = [...removed, key];
        } else {
          problems.add(at, `cannot be removed: every layout needs a ${key} pool`);
        }
      } else {
        const pool = isAddressPool(key as PoolName) ? readWindow(v, at, problems) : readIdRange(v, at, problems);
        if (pool !== undefined) merged[key] = pool;
      }
    }
  }
  const extra = top["reserved"] === undefined ? [] : expectArray(top["reserved"], "reserved", problems);
  if (problems.list.length > before) return undefined;

  // Pools first, alone: their own problems are reported once, not once per reservation.
  let pools: ResolvedLayout;
  try {
    pools = resolveLayout({ ...merged, reserved: [] }, "layout");
  } catch (error) {
    addLibraryProblem(error, problems, "layout");
    return undefined;
  }
  // Removing a pool removes the preset's reservations in it; reservations the file lists stay
  // (and are reported if they name a pool the layout no longer has).
  const fromPreset = reservedSource.path !== "layout.reserved";
  const entries: { value: unknown; path: string }[] = [
    ...reservedSource.list
      .map((value, i) => ({ value, path: item(reservedSource.path, i) }))
      .filter(({ value }) => !(fromPreset && removed.includes((value as { pool?: string }).pool ?? ""))),
    ...(extra ?? []).map((value, i) => ({ value, path: item("reserved", i) })),
  ];
  const reserved: ReservationSpec[] = [];
  const overridden = new Set(overrides === undefined ? [] : Object.keys(overrides).filter((k) => overrides[k] !== undefined && overrides[k] !== null));
  for (const { value, path } of entries) {
    if (fromPreset && path.startsWith("preset ") && !presetReservationFits(value, path, pools, overridden, preset, problems)) continue;
    const r = readReservation(value, path, pools, problems);
    if (r !== undefined) reserved.push(r);
  }
  const kept = checkDisjoint(reserved, problems);
  // A bad reservation is left out when partial: that only frees space (see ReadLayoutOptions).
  if (problems.list.length > before && !partial) return undefined;
  let resolved: ResolvedLayout;
  try {
    resolved = resolveLayout({ ...merged, reserved: kept.map(({ pool, start, end, owner }) => ({ pool, start, end, owner })) }, "layout");
  } catch (error) {
    addLibraryProblem(error, problems, "layout");
    return undefined;
  }
  return { resolved, reserved: kept };
}

/**
 * False, with a problem at the overridden pool that says what to do, when a reservation the
 * preset makes no longer lies inside a pool the file overrode (a `layout.mmio32` that leaves out
 * the preset's IOAPIC).
 */
function presetReservationFits(value: unknown, path: string, pools: ResolvedLayout, overridden: Set<string>, preset: LayoutName, problems: Problems): boolean {
  const r = value as { pool?: unknown; start?: unknown; end?: unknown; size?: unknown; owner?: unknown };
  if (typeof r.pool !== "string" || !overridden.has(r.pool)) return true;
  let spec: ResolvedReservation;
  try {
    spec = resolveReservation(value, path, { ...pools.pools, [r.pool]: { start: 0n, end: 0xffff_ffff_ffff_ffffn } });
  } catch {
    return true; // not a range problem; readReservation reports it
  }
  const bounds = pools.pools[spec.pool];
  if (bounds !== undefined && spec.start >= bounds.start && spec.end <= bounds.end) return true;
  const where = bounds === undefined ? "" : ` ${showSpan({ pool: spec.pool, start: bounds.start, end: bounds.end })}`;
  problems.add(
    `layout.${spec.pool}`,
    `preset ${preset} reserves ${showSpan(spec)} for ${spec.owner} (${path}), which the overridden layout.${spec.pool}${where} no longer holds; ` +
      `give layout.${spec.pool} a window that covers it, or list the reservations you keep in layout.reserved (the preset's, without this one)`,
  );
  return false;
}

function readWindow(value: unknown, path: string, problems: Problems): { base: bigint; size: bigint } | undefined {
  const o = expectObject(value, path, problems, "an object { base, size } (or null to remove an optional pool)");
  if (o === undefined) return undefined;
  checkKeys(o, ["base", "size"], path, problems);
  const base = required(o, "base", path, problems, (v, p) => readInteger(v, p, problems));
  const size = required(o, "size", path, problems, (v, p) => readInteger(v, p, problems));
  if (size === 0n) problems.add(field(path, "size"), "must be at least 1");
  return base === undefined || size === undefined ? undefined : { base, size };
}

function readIdRange(value: unknown, path: string, problems: Problems): { first: number; last: number } | undefined {
  const o = expectObject(value, path, problems, "an object { first, last }");
  if (o === undefined) return undefined;
  checkKeys(o, ["first", "last"], path, problems);
  const first = required(o, "first", path, problems, (v, p) => readU32(v, p, problems));
  const last = required(o, "last", path, problems, (v, p) => readU32(v, p, problems));
  return first === undefined || last === undefined ? undefined : { first, last };
}

function required<T>(o: JsonObject, key: string, path: string, problems: Problems, read: (v: unknown, p: string) => T | undefined): T | undefined {
  if (o[key] === undefined) {
    problems.add(field(path, key), "is missing");
    return undefined;
  }
  return read(o[key], field(path, key));
}

function readReservation(value: unknown, path: string, pools: ResolvedLayout, problems: Problems): ReservationSpec | undefined {
  const o = expectObject(value, path, problems, "an object { pool, start, end or size, owner }");
  if (o === undefined) return undefined;
  const before = problems.list.length;
  checkKeys(o, RESERVATION_KEYS, path, problems);
  const pool = o["pool"];
  if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool)) {
    problems.add(field(path, "pool"), `must be one of ${POOL_NAMES.join(", ")}, got ${describeJson(pool)}`);
  }
  if (o["owner"] === undefined) problems.add(field(path, "owner"), "is missing");
  else readName(o["owner"], field(path, "owner"), problems, false);
  const isId = typeof pool === "string" && !isAddressPool(pool as PoolName);
  const exact: Record<string, unknown> = { pool, owner: o["owner"] };
  if (o["start"] === undefined) problems.add(field(path, "start"), "is missing");
  for (const key of ["start", "end", "size"]) {
    if (o[key] === undefined) continue;
    const v = isId && key !== "size" ? readU32(o[key], field(path, key), problems) : readInteger(o[key], field(path, key), problems);
    exact[key] = typeof v === "number" ? BigInt(v) : v;
  }
  if (problems.list.length > before) return undefined;
  try {
    return { ...resolveReservation(exact, path, pools.pools), path };
  } catch (error) {
    addLibraryProblem(error, problems, path);
    return undefined;
  }
}

/**
 * Reports every reservation that overlaps an earlier one, naming both.
 * @returns the reservations that overlap no earlier one.
 */
function checkDisjoint(reserved: readonly ReservationSpec[], problems: Problems): ReservationSpec[] {
  const kept: ReservationSpec[] = [];
  for (let i = 0; i < reserved.length; i++) {
    const b = reserved[i]!;
    let clash = false;
    for (let j = 0; j < i; j++) {
      const a = reserved[j]!;
      if (a.pool === b.pool && a.start <= b.end && b.start <= a.end) {
        problems.add(b.path, `${showSpan(b)} overlaps ${a.owner} ${showSpan(a)} (${a.path})`);
        clash = true;
      }
    }
    if (!clash) kept.push(b);
  }
  return kept;
}

/** A reservation's span as the library prints it: `[io 0x0-0xfff]`, `[irq 8]`. */
export function showSpan(r: { pool: PoolName; start: bigint; end: bigint }): string {
  if (isAddressPool(r.pool)) return `[${r.pool === "pio" ? "io" : "mem"} 0x${r.start.toString(16)}-0x${r.end.toString(16)}]`;
  const kind = r.pool === "instanceId" ? "id" : "irq";
  return r.start === r.end ? `[${kind} ${r.start}]` : `[${kind} ${r.start}-${r.end}]`;
}

/**
 * Records a library validation error as a problem. The library starts its messages with the
 * field path (`layout.mmio32 [mem ...] must lie below 4 GiB`); that path is split off so every
 * problem prints as `path: reason`.
 */
export function addLibraryProblem(error: unknown, problems: Problems, fallbackPath: string): void {
  if (!isAllocatorError(error)) throw error;
  let path: string;
  let rest: string;
  if (error.message.startsWith(fallbackPath)) {
    // The message names the path we gave, perhaps with a field after it (`reserved[0].pool is`).
    const m = /^((?:\.[A-Za-z_$][\w$]*|\[\d+\])*)(.*)$/s.exec(error.message.slice(fallbackPath.length))!;
    path = fallbackPath + m[1]!;
    rest = m[2]!;
  } else {
    const m = /^((?:layout|reserved|devices|requests)(?:\.[A-Za-z_$][\w$]*|\[\d+\])*)(.*)$/s.exec(error.message);
    path = m === null ? fallbackPath : m[1]!;
    rest = m === null ? error.message : m[2]!;
  }
  problems.add(path, rest.replace(/^:?\s+/, ""));
}

function readDevices(value: unknown, preset: LayoutName, parameters: LayoutParameters, problems: Problems): (DeviceSpec | PciDeviceSpec)[] | undefined {
  if (value === undefined) {
    problems.add("devices", "is missing (use [] for a layout without devices)");
    return undefined;
  }
  const list = expectArray(value, "devices", problems);
  if (list === undefined) return undefined;
  // Only the valid devices are returned; the caller knows from `problems` whether any was not.
  const out: (DeviceSpec | PciDeviceSpec)[] = [];
  const seen = new Map<string, string>();
  list.forEach((entry, i) => {
    const path = item("devices", i);
    const d = readDevice(entry, path, preset, parameters, problems);
    if (d === undefined) return;
    const first = seen.get(d.name);
    if (first !== undefined) {
      problems.add(field(path, "name"), `${JSON.stringify(d.name)} is already the name of ${first}`);
      return;
    }
    seen.set(d.name, path);
    out.push(d);
  });
  return out;
}

function readDevice(value: unknown, path: string, preset: LayoutName, parameters: LayoutParameters, problems: Problems): DeviceSpec | PciDeviceSpec | undefined {
  const o = expectObject(value, path, problems, "an object { name, requests } or { name, kind: \"pci\", ... }");
  if (o === undefined) return undefined;
  const before = problems.list.length;
  let name: string | undefined;
  if (o["name"] === undefined) problems.add(field(path, "name"), "is missing");
  else name = readName(o["name"], field(path, "name"), problems, true);
  if (o["kind"] !== undefined) {
    if (o["kind"] === "pci") return readPciDevice(o, path, name, preset, parameters, problems);
    problems.add(field(path, "kind"), `must be "pci" (a PCI function), or left out for a device with requests, got ${describeJson(o["kind"])}`);
    return undefined;
  }
  checkKeys(o, DEVICE_KEYS, path, problems);
  const requestsPath = field(path, "requests");
  const list = o["requests"] === undefined ? [] : expectArray(o["requests"], requestsPath, problems);
  const requests: ResourceRequest[] = [];
  let sawInstanceId: string | undefined;
  const gsis = new Map<number, string>();
  (list ?? []).forEach((entry, j) => {
    const r = readRequest(entry, item(requestsPath, j), problems);
    if (r === undefined) return;
    if (r.kind === "instanceId") {
      if (sawInstanceId !== undefined) problems.add(item(requestsPath, j), `is a second instanceId request (the first is ${sawInstanceId}); a device has one instance id`);
      sawInstanceId = item(requestsPath, j);
    }
    if (r.kind === "msi" && r.fixed !== undefined) {
      r.fixed.forEach((gsi, k) => {
        const at = item(field(item(requestsPath, j), "fixed"), k);
        const earlier = gsis.get(Number(gsi));
        if (earlier !== undefined) problems.add(at, `repeats GSI ${gsi} (also ${earlier})`);
        gsis.set(Number(gsi), at);
      });
    }
    requests.push(r);
  });
  if (problems.list.length > before || name === undefined) return undefined;
  let normalized: NormalizedResourceRequest[];
  try {
    normalized = normalizeResourceRequests(requests, requestsPath);
  } catch (error) {
    addLibraryProblem(error, problems, requestsPath);
    return undefined;
  }
  return { kind: "device", name, path, requests, normalized };
}

function readRequest(value: unknown, path: string, problems: Problems): ResourceRequest | undefined {
  const o = expectObject(value, path, problems, "a request object with a kind");
  if (o === undefined) return undefined;
  const kinds = Object.keys(REQUEST_FIELDS);
  const kind = o["kind"];
  if (typeof kind !== "string" || !kinds.includes(kind)) {
    problems.add(field(path, "kind"), kind === undefined ? `is missing (one of ${kinds.join(", ")})` : `must be one of ${kinds.join(", ")}, got ${describeJson(kind)}`);
    return undefined;
  }
  const k = kind as ResourceRequest["kind"];
  const before = problems.list.length;
  checkKeys(o, REQUEST_FIELDS[k], path, problems);
  const at = (key: string) => field(path, key);
  switch (k) {
    case "pio":
    case "mmio": {
      const size = required(o, "size", path, problems, (v, p) => readInteger(v, p, problems));
      if (size === 0n) problems.add(at("size"), "must be at least 1");
      let alignment: bigint | undefined;
      if (o["alignment"] !== undefined) {
        alignment = readInteger(o["alignment"], at("alignment"), problems);
        if (alignment !== undefined && (alignment === 0n || (alignment & (alignment - 1n)) !== 0n)) {
          problems.add(at("alignment"), `must be a power of two, got ${describeJson(o["alignment"])}`);
          alignment = undefined;
        }
      }
      const fixed = o["fixed"] === undefined ? undefined : readInteger(o["fixed"], at("fixed"), problems);
      let window: { min: bigint; max: bigint } | undefined;
      if (o["window"] !== undefined) {
        const w = expectObject(o["window"], at("window"), problems, "an object { min, max }");
        if (w !== undefined) {
          checkKeys(w, ["min", "max"], at("window"), problems);
          const min = required(w, "min", at("window"), problems, (v, p) => readInteger(v, p, problems));
          const max = required(w, "max", at("window"), problems, (v, p) => readInteger(v, p, problems));
          if (min !== undefined && max !== undefined) {
            if (min > max) problems.add(at("window"), `min 0x${min.toString(16)} is above max 0x${max.toString(16)}`);
            else window = { min, max };
          }
        }
      }
      const flags: { mmio64?: boolean; allowFallback?: boolean; pool?: (typeof MMIO_POOLS)[number]; placement?: "first" | "last" } = {};
      for (const flag of ["mmio64", "allowFallback"] as const) {
        const v = o[flag];
        if (v === undefined) continue;
        if (typeof v === "boolean") flags[flag] = v;
        else problems.add(at(flag), `must be true or false, got ${describeJson(v)}`);
      }
      const pool = k === "mmio" ? o["pool"] : undefined;
      if (pool !== undefined) {
        if (typeof pool === "string" && (MMIO_POOLS as readonly string[]).includes(pool)) flags.pool = pool as (typeof MMIO_POOLS)[number];
        else problems.add(at("pool"), `must be one of ${MMIO_POOLS.join(", ")}, got ${describeJson(pool)}`);
        if (flags.mmio64 === true && flags.pool !== undefined && flags.pool !== "mmio64") problems.add(at("pool"), `is ${describeJson(pool)} but mmio64 is true; give one`);
      }
      const placement = o["placement"];
      if (placement !== undefined) {
        if (placement === "first" || placement === "last") flags.placement = placement;
        else problems.add(at("placement"), `must be "first" or "last", got ${describeJson(placement)}`);
      }
      if (flags.allowFallback === true && flags.mmio64 !== true && flags.pool !== "mmio64") problems.add(at("allowFallback"), "requires mmio64: true");
      if (size !== undefined && size > 0n && fixed !== undefined) {
        if (alignment !== undefined && fixed % alignment !== 0n) problems.add(at("fixed"), `${hex(fixed)} is not a multiple of the alignment ${hex(alignment)}`);
        if (fixed + size - 1n > 0xffff_ffff_ffff_ffffn) problems.add(path, `${hex(size)} at ${hex(fixed)} would end past 0xffffffffffffffff`);
        else if (window !== undefined && (fixed < window.min || fixed + size - 1n > window.max)) {
          problems.add(at("fixed"), `${hex(fixed)}-${hex(fixed + size - 1n)} is outside the window ${hex(window.min)}-${hex(window.max)}`);
        }
      }
      if (problems.list.length > before || size === undefined) return undefined;
      return {
        kind: k,
        size,
        ...(alignment === undefined ? {} : { alignment }),
        ...(fixed === undefined ? {} : { fixed }),
        ...(window === undefined ? {} : { window }),
        ...flags,
      };
    }
    case "irq":
    case "instanceId": {
      const fixed = o["fixed"] === undefined ? undefined : readU32(o["fixed"], at("fixed"), problems);
      const shared = o["shared"];
      if (shared !== undefined && typeof shared !== "boolean") problems.add(at("shared"), `must be true or false, got ${describeJson(shared)}`);
      if (problems.list.length > before) return undefined;
      const base = fixed === undefined ? { kind: k } : { kind: k, fixed };
      return shared === true ? { ...base, shared: true } : base;
    }
    case "msi": {
      const count = required(o, "count", path, problems, (v, p) => readU32(v, p, problems));
      if (count !== undefined && (count < 1 || count > MAX_MSI_VECTORS)) {
        problems.add(at("count"), `must be from 1 to ${MAX_MSI_VECTORS} (an MSI-X table's limit), got ${count}`);
      }
      let fixed: number[] | undefined;
      if (o["fixed"] !== undefined) {
        const list = expectArray(o["fixed"], at("fixed"), problems);
        if (list !== undefined) {
          fixed = [];
          list.forEach((v, j) => {
            const gsi = readU32(v, item(at("fixed"), j), problems);
            if (gsi !== undefined) fixed!.push(gsi);
          });
          if (count !== undefined && list.length !== count) problems.add(at("fixed"), `must list count (${count}) GSIs, got ${list.length}`);
        }
      }
      if (problems.list.length > before || count === undefined) return undefined;
      return fixed === undefined ? { kind: "msi", count } : { kind: "msi", count, fixed };
    }
  }
}
