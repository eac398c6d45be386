/**
 * The plan snapshot that `plan --save` writes and `show` and `check` read: the whole allocator
 * state plus what each device holds.
 *
 * ```json
 * {
 *   "format": "vm-allocator/plan",
 *   "version": 2,
 *   "source": "examples/layouts/microvm.json",
 *   "preset": "firecracker-x86_64",
 *   "system": { ...DefaultSystemAllocator.toJSON()... },
 *   "devices": [
 *     { "instanceId": 0, "name": "serial0", "owner": "serial0@0", "instanceIdFixed": false,
 *       "pio": [ { "start": "0x3f8", "end": "0x3ff", "fixed": true } ], "mmio": [],
 *       "irqs": [ { "irq": 4, "fixed": true } ], "msi": [] }
 *   ]
 * }
 * ```
 *
 * Addresses are `"0x..."` strings (exact u64); ids are numbers. `fixed` says whether the layout
 * fixed a resource or the allocator chose it. Reading validates everything, the system part by
 * `DefaultSystemAllocator.fromJSON` and the devices against it, and records every problem found.
 */
import { AddressAllocator } from "../src/core/address-allocator.js";
import { isAllocatorError } from "../src/core/errors.js";
import { IdAllocator } from "../src/core/id-allocator.js";
import { getPreset, isAddressPool, layoutNames, MEMORY_POOL_NAMES, resolveLayout, resolveParameters, type AddressPoolName, type IdPoolName, type PoolName } from "../src/system/layouts.js";
import { DefaultSystemAllocator, type Holding, type SystemAllocatorSnapshot } from "../src/system/system-allocator.js";
import { hex, parseHexU64 } from "../src/core/u64.js";
import { describeJson, field, item, Problems } from "./diagnostics.js";
import { isJsonObject, type JsonObject } from "./json-source.js";
import { readPlanPci, type PlanPci } from "./pci-snapshot.js";

/** `format` of a plan snapshot. */
export const PLAN_FORMAT = "vm-allocator/plan";
/**
 * The `version` this release writes. Version 3 added the optional `pci` part; version 2 plans
 * (which cannot have one) are still read.
 */
export const PLAN_VERSION = 3;
/** The versions this release reads. */
export const PLAN_VERSIONS_READ: readonly number[] = [2, 3];

/** A range a device holds. */
export interface PlanRange {
  readonly start: string;
  readonly end: string;
  readonly fixed: boolean;
}

/** A device of a plan and what it holds. */
export interface PlanDevice {
  readonly instanceId: number;
  readonly name: string;
  /** `name@instanceId`: the owner of everything it holds but its instance id (held under `name`). */
  readonly owner: string;
  readonly instanceIdFixed: boolean;
  readonly pio: readonly PlanRange[];
  readonly mmio: readonly PlanRange[];
  readonly irqs: readonly { readonly irq: number; readonly fixed: boolean }[];
  readonly msi: readonly { readonly gsi: number; readonly fixed: boolean }[];
}

/** Layout parameters as a plan records them. */
export interface PlanParameters {
  readonly ramSize?: string;
  readonly physAddressBits?: number;
}

/** A saved plan. */
export interface PlanSnapshot {
  readonly format: typeof PLAN_FORMAT;
  /** {@link PLAN_VERSION} when written; 2 for a plan of an earlier release. */
  readonly version: typeof PLAN_VERSION | 2;
  /** Where the layout came from (a file name, or `built-in default`). */
  readonly source: string;
  readonly description?: string;
  /** The preset the layout started from. */
  readonly preset: string;
  /** The preset's parameters the layout gave (`ramSize` as a hex string); absent when none. */
  readonly parameters?: PlanParameters;
  readonly system: SystemAllocatorSnapshot;
  /** Sorted by instance id. */
  readonly devices: readonly PlanDevice[];
  /** The PCI functions, when the layout had PCI devices (version 3 on). */
  readonly pci?: PlanPci;
}

/** A validated snapshot and the system allocator restored from it. */
export interface LoadedPlan {
  readonly snapshot: PlanSnapshot;
  readonly sys: DefaultSystemAllocator;
}

const TOP_KEYS = ["format", "version", "source", "description", "preset", "parameters", "system", "devices", "pci"];
const DEVICE_KEYS = ["instanceId", "name", "owner", "instanceIdFixed", "pio", "mmio", "irqs", "msi"];

/** True when `value` looks like a plan snapshot rather than a layout (it says it is one). */
export function isPlanSnapshot(value: unknown): boolean {
  return isJsonObject(value) && value["format"] === PLAN_FORMAT;
}

/**
 * Validates a parsed snapshot, recording every problem found in `problems`.
 * @returns the plan, or undefined when there was any problem.
 */
export function readPlanSnapshot(value: unknown, problems: Problems): LoadedPlan | undefined {
  const before = problems.list.length;
  if (!isJsonObject(value)) {
    problems.add("", `a plan snapshot must be a JSON object, got ${describeJson(value)}`);
    return undefined;
  }
  for (const key of Object.keys(value)) if (!TOP_KEYS.includes(key)) problems.add(key, `unknown field (expected one of: ${TOP_KEYS.join(", ")})`);
  if (value["format"] !== PLAN_FORMAT) problems.add("format", `must be "${PLAN_FORMAT}", got ${describeJson(value["format"])}`);
  if (typeof value["version"] !== "number" || !PLAN_VERSIONS_READ.includes(value["version"])) {
    problems.add("version", `unsupported version ${describeJson(value["version"])}; this vm-allocator reads versions ${PLAN_VERSIONS_READ.join(" and ")}`);
    return undefined; // another version may mean anything; checking its fields would only mislead
  }
  if (typeof value["source"] !== "string") problems.add("source", `must be a string, got ${describeJson(value["source"])}`);
  if (value["description"] !== undefined && typeof value["description"] !== "string") {
    problems.add("description", `must be a string, got ${describeJson(value["description"])}`);
  }
  const preset = value["preset"];
  if (typeof preset !== "string" || !(layoutNames as readonly string[]).includes(preset)) {
    problems.add("preset", `must be one of ${layoutNames.map((n) => JSON.stringify(n)).join(", ")}, got ${describeJson(preset)}`);
  }
  if (value["parameters"] !== undefined) readParameters(value["parameters"], typeof preset === "string" ? preset : undefined, problems);
  const sys = readSystem(value["system"], problems);
  const devices = readDevices(value["devices"], problems);
  if (sys !== undefined && devices !== undefined) crossCheck(sys, devices.valid, devices.complete, problems);
  if (value["pci"] !== undefined) {
    if (value["version"] === 2) problems.add("pci", "unknown field in a version 2 plan (PCI functions came with version 3)");
    else if (typeof preset === "string" && (layoutNames as readonly string[]).includes(preset) && devices !== undefined) {
      readPlanPci(value["pci"], preset, planParameters(value["parameters"]), devices.valid.map((d) => d.device), problems);
    }
  }
  if (problems.list.length > before || sys === undefined || devices === undefined) return undefined;
  return { snapshot: value as unknown as PlanSnapshot, sys };
}

/** A plan's `parameters` as a preset takes them (bad values are reported by {@link readParameters}). */
function planParameters(value: unknown): { ramSize?: bigint; physAddressBits?: number } {
  if (!isJsonObject(value)) return {};
  const ramSize = parseHexU64(value["ramSize"]);
  const bits = value["physAddressBits"];
  return { ...(ramSize === undefined ? {} : { ramSize }), ...(typeof bits === "number" ? { physAddressBits: bits } : {}) };
}

/** Checks a plan's `parameters` as its preset would take them. */
function readParameters(value: unknown, preset: string | undefined, problems: Problems): void {
  if (!isJsonObject(value)) {
    problems.add("parameters", `must be an object { ramSize?, physAddressBits? }, got ${describeJson(value)}`);
    return;
  }
  const given: { ramSize?: bigint; physAddressBits?: unknown } = {};
  for (const key of Object.keys(value)) {
    if (key === "ramSize") {
      const v = value[key];
      const n = typeof v === "string" ? parseHexU64(v) : undefined;
      if (n === undefined) problems.add("parameters.ramSize", `must be a "0x..." hex string, got ${describeJson(v)}`);
      else given.ramSize = n;
    } else if (key === "physAddressBits") given.physAddressBits = value[key];
    else problems.add(field("parameters", key), "unknown field (expected one of: ramSize, physAddressBits)");
  }
  if (preset === undefined || !(layoutNames as readonly string[]).includes(preset)) return;
  try {
    // The layout too: some parameter pairs leave a preset no room (more RAM than address bits).
    getPreset(preset).layout(resolveParameters(preset, given as { ramSize?: bigint; physAddressBits?: number }, "parameters"));
  } catch (e) {
    if (!isAllocatorError(e)) throw e;
    const m = /^(parameters(?:\.\w+)?):?\s*(.*)$/s.exec(e.message);
    problems.add(m?.[1] ?? "parameters", m?.[2] ?? e.message);
  }
}

const KNOWN_FIELDS = new Set(["format", "version", "layout", "pools", "reserved", "claims", "uses", "base", "end", "blocks", "first", "last", "allocated", "released", "owners"]);

/**
 * A library snapshot error as `path: reason`: the wrapper's own prefixes are dropped and a
 * leading field path (`blocks[3]`, `pools.mmio32`) is moved into the path.
 */
function snapshotProblem(message: string, path: string, problems: Problems): void {
  let rest = message.replace(/^invalid [\w -]+ snapshot: /, "");
  let at = path;
  for (;;) {
    const m = /^([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*|\[\d+\])*)(?::\s+|\s+)(.*)$/s.exec(rest);
    if (m === null) break;
    const token = m[1]!;
    const name = /^[A-Za-z_$][\w$]*/.exec(token)![0];
    if (!(token !== name || KNOWN_FIELDS.has(name))) break;
    at = field(at, token);
    rest = m[2]!.replace(/^invalid [\w -]+ snapshot: /, "");
  }
  problems.add(at, rest);
}

/**
 * Most ids one id pool of a saved plan may hold or have released. A plan holds a few per device;
 * restoring runs of billions of ids (an instance-id pool spans 2^32) takes the library minutes
 * and more memory than a machine has, so such a file is refused up front.
 */
const MAX_SNAPSHOT_IDS = 1 << 20;

/** Reports id pools whose runs cover more than {@link MAX_SNAPSHOT_IDS} ids. */
function checkIdVolume(value: unknown, problems: Problems): boolean {
  const pools = isJsonObject(value) ? value["pools"] : undefined;
  if (!isJsonObject(pools)) return true;
  let ok = true;
  for (const pool of ["legacyIrq", "msi", "instanceId"]) {
    const snap = pools[pool];
    if (!isJsonObject(snap)) continue;
    for (const key of ["allocated", "released"]) {
      const runs = snap[key];
      if (!Array.isArray(runs)) continue;
      let total = 0;
      for (const run of runs) {
        if (Array.isArray(run) && typeof run[0] === "number" && typeof run[1] === "number" && run[1] >= run[0]) total += run[1] - run[0] + 1;
      }
      if (total > MAX_SNAPSHOT_IDS) {
        problems.add(`system.pools.${pool}.${key}`, `covers ${total} ids; a saved plan may hold at most ${MAX_SNAPSHOT_IDS} ids per pool`);
        ok = false;
      }
    }
  }
  return ok;
}

function readSystem(value: unknown, problems: Problems): DefaultSystemAllocator | undefined {
  if (value === undefined) {
    problems.add("system", "is missing");
    return undefined;
  }
  if (!checkIdVolume(value, problems)) return undefined;
  try {
    return DefaultSystemAllocator.fromJSON(value);
  } catch (error) {
    if (!isAllocatorError(error)) throw error;
    // fromJSON stops at the first problem; check the parts on their own to report each one.
    const found = new Problems();
    if (isJsonObject(value)) {
      try {
        resolveLayout(value["layout"], "layout");
      } catch (e) {
        if (!isAllocatorError(e)) throw e;
        snapshotProblem(e.message, "system", found);
      }
      const pools = value["pools"];
      if (isJsonObject(pools)) {
        for (const [pool, snap] of Object.entries(pools)) {
          try {
            if (isAddressPool(pool as PoolName)) AddressAllocator.fromJSON(snap);
            else if (pool === "legacyIrq" || pool === "msi" || pool === "instanceId") IdAllocator.fromJSON(snap);
          } catch (e) {
            if (!isAllocatorError(e)) throw e;
            snapshotProblem(e.message, `system.pools.${pool}`, found);
          }
        }
      }
    }
    const whole = new Problems();
    snapshotProblem(error.message, "system", whole);
    const first = whole.list[0]!;
    if (!found.list.some((p) => p.path === first.path && p.message === first.message)) found.list.unshift(first);
    problems.list.push(...found.list);
    return undefined;
  }
}

/** The well-formed devices (with their index), and whether that is all of them. */
function readDevices(value: unknown, problems: Problems): { valid: { device: PlanDevice; index: number }[]; complete: boolean } | undefined {
  if (!Array.isArray(value)) {
    problems.add("devices", value === undefined ? "is missing" : `must be an array, got ${describeJson(value)}`);
    return undefined;
  }
  const valid: { device: PlanDevice; index: number }[] = [];
  value.forEach((entry, index) => {
    const device = readDevice(entry, item("devices", index), problems);
    if (device !== undefined) valid.push({ device, index });
  });
  return { valid, complete: valid.length === value.length };
}

function readDevice(value: unknown, path: string, problems: Problems): PlanDevice | undefined {
  if (!isJsonObject(value)) {
    problems.add(path, `must be an object, got ${describeJson(value)}`);
    return undefined;
  }
  const before = problems.list.length;
  for (const key of Object.keys(value)) if (!DEVICE_KEYS.includes(key)) problems.add(field(path, key), "unknown field");
  const id = readId(value["instanceId"], field(path, "instanceId"), problems);
  const name = value["name"];
  if (typeof name !== "string" || name.length === 0 || name.includes("@")) {
    problems.add(field(path, "name"), `must be a non-empty string without "@", got ${describeJson(name)}`);
  }
  const owner = value["owner"];
  if (typeof name === "string" && id !== undefined && owner !== `${name}@${id}`) {
    problems.add(field(path, "owner"), `must be "${name}@${id}" (name@instanceId), got ${describeJson(owner)}`);
  }
  readBoolean(value, "instanceIdFixed", path, problems);
  for (const kind of ["pio", "mmio"] as const) {
    list(value, kind, path, problems, (r, at) => {
      if (!isJsonObject(r)) return problems.add(at, `must be an object { start, end, fixed }, got ${describeJson(r)}`);
      for (const key of Object.keys(r)) if (!["start", "end", "fixed"].includes(key)) problems.add(field(at, key), "unknown field");
      const start = parseHexU64(r["start"]);
      const end = parseHexU64(r["end"]);
      if (start === undefined) problems.add(field(at, "start"), `must be a hex string like "0x1000", got ${describeJson(r["start"])}`);
      if (end === undefined) problems.add(field(at, "end"), `must be a hex string like "0x1fff", got ${describeJson(r["end"])}`);
      if (start !== undefined && end !== undefined && start > end) problems.add(at, `start ${r["start"] as string} is above end ${r["end"] as string}`);
      readBoolean(r, "fixed", at, problems);
    });
  }
  for (const [kind, key] of [["irqs", "irq"], ["msi", "gsi"]] as const) {
    list(value, kind, path, problems, (r, at) => {
      if (!isJsonObject(r)) return problems.add(at, `must be an object { ${key}, fixed }, got ${describeJson(r)}`);
      for (const k of Object.keys(r)) if (![key, "fixed"].includes(k)) problems.add(field(at, k), "unknown field");
      readId(r[key], field(at, key), problems);
      readBoolean(r, "fixed", at, problems);
    });
  }
  return problems.list.length > before ? undefined : (value as unknown as PlanDevice);
}

function readId(value: unknown, path: string, problems: Problems): number | undefined {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff) return value;
  problems.add(path, `must be an integer from 0 to 4294967295, got ${describeJson(value)}`);
  return undefined;
}

function readBoolean(o: JsonObject, key: string, path: string, problems: Problems): void {
  if (typeof o[key] !== "boolean") problems.add(field(path, key), `must be true or false, got ${describeJson(o[key])}`);
}

function list(o: JsonObject, key: string, path: string, problems: Problems, each: (value: unknown, at: string) => void): void {
  const v = o[key];
  if (!Array.isArray(v)) {
    problems.add(field(path, key), `must be an array, got ${describeJson(v)}`);
    return;
  }
  v.forEach((entry, i) => each(entry, item(field(path, key), i)));
}


/**
 * Checks that the devices and the system allocator tell the same story: each device's resources
 * are held for it (or, when fixed, sit inside a platform reservation or outside every pool), no
 * two devices share a range, and everything the allocator holds for a device is listed.
 */
function crossCheck(
  sys: DefaultSystemAllocator,
  entries: readonly { device: PlanDevice; index: number }[],
  complete: boolean,
  problems: Problems,
): void {
  const devices = entries.map((e) => e.device);
  const pathOf = new Map(entries.map((e) => [e.device, item("devices", e.index)]));
  const byOwner = new Map<string, { device: PlanDevice; path: string }>();
  const byId = new Map<number, string>();
  const byName = new Map<string, PlanDevice>();
  const byIdDevice = new Map<number, PlanDevice>();
  devices.forEach((d) => {
    const path = pathOf.get(d)!;
    const other = byId.get(d.instanceId);
    if (other !== undefined) problems.add(field(path, "instanceId"), `instance id ${d.instanceId} is also the id of ${other}`);
    byId.set(d.instanceId, path);
    byIdDevice.set(d.instanceId, d);
    byOwner.set(d.owner, { device: d, path });
    if (!byName.has(d.name)) byName.set(d.name, d);
  });
  const ranges: Record<"pio" | "mmio", { start: bigint; end: bigint; owner: string; at: string }[]> = { pio: [], mmio: [] };
  const holdingKey = (h: Holding): string => ("range" in h ? `${h.pool === "pio" ? "pio" : "mmio"}:${h.range.start}-${h.range.end}` : `${h.pool}#${h.id}`);

  devices.forEach((d) => {
    const path = pathOf.get(d)!;
    // Everything a device holds is held under its owner: allocations, fixed values, uses of
    // reservations and shares of lines alike.
    const held = new Set(sys.allocationsOf(d.owner).filter((h) => !h.reserved).map(holdingKey));
    const inIdPool = (pool: IdPoolName, id: number): boolean => id >= sys.pool(pool).first && id <= sys.pool(pool).last;
    if (inIdPool("instanceId", d.instanceId)) {
      if (!held.has(`instanceId#${d.instanceId}`)) {
        const holder = sys.instanceId.ownerOf(d.instanceId);
        problems.add(field(path, "instanceId"), `instance id ${d.instanceId} is held by ${holder ?? "nobody"} in system.pools.instanceId, not ${d.owner}`);
      }
    } else if (!d.instanceIdFixed) {
      problems.add(field(path, "instanceId"), `instance id ${d.instanceId} is outside the instanceId pool, yet not marked fixed`);
    }
    for (const kind of ["pio", "mmio"] as const) {
      const pools: readonly AddressPoolName[] = kind === "pio" ? ["pio"] : MEMORY_POOL_NAMES;
      const label = kind === "pio" ? "io" : "mem";
      d[kind].forEach((r, j) => {
        const at = item(field(path, kind), j);
        const start = BigInt(r.start);
        const end = BigInt(r.end);
        const shown = `[${label} ${hex(start)}-${hex(end)}]`;
        ranges[kind].push({ start, end, owner: d.owner, at });
        const view = pools.map((p) => ({ p, v: sys.pool(p) })).find((x) => x.v !== undefined && start <= x.v.end && end >= x.v.base);
        if (view === undefined || view.v === undefined) {
          if (!r.fixed) problems.add(at, `${shown} is outside every ${kind} pool, yet not marked fixed`);
          return;
        }
        if (held.has(`${kind}:${start}-${end}`)) return;
        const holder = view.v.find(start);
        const what = holder === undefined ? "free" : `held by ${holder.owner ?? "nobody"} ${holder.range.toString(label)}`;
        problems.add(at, `${shown} is ${what} in system.pools.${view.p}, not held by ${d.owner}`);
      });
    }
    for (const [kind, pool] of [["irqs", "legacyIrq"], ["msi", "msi"]] as const) {
      const entries: { id: number; fixed: boolean }[] = kind === "irqs" ? d.irqs.map((q) => ({ id: q.irq, fixed: q.fixed })) : d.msi.map((m) => ({ id: m.gsi, fixed: m.fixed }));
      entries.forEach((e, j) => {
        const at = item(field(path, kind), j);
        const shown = kind === "irqs" ? `[irq ${e.id}]` : `MSI GSI ${e.id}`;
        if (!inIdPool(pool, e.id)) {
          if (!e.fixed) problems.add(at, `${shown} is outside the ${pool} pool, yet not marked fixed`);
          return;
        }
        if (held.has(`${pool}#${e.id}`)) return;
        const holder = sys.pool(pool).ownerOf(e.id);
        problems.add(at, `${shown} is ${holder === undefined ? "free" : `held by ${holder}`} in system.pools.${pool}, not held by ${d.owner}`);
      });
    }
  });
  // No two devices share a range; sorted, each range can only overlap one that starts earlier
  // and reaches furthest.
  for (const kind of ["pio", "mmio"] as const) {
    const label = kind === "pio" ? "io" : "mem";
    const sorted = [...ranges[kind]].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    let furthest: (typeof sorted)[number] | undefined;
    for (const r of sorted) {
      if (furthest !== undefined && r.start <= furthest.end) {
        problems.add(r.at, `[${label} ${hex(r.start)}-${hex(r.end)}] overlaps ${furthest.owner} [${label} ${hex(furthest.start)}-${hex(furthest.end)}] (${furthest.at})`);
      }
      if (furthest === undefined || r.end > furthest.end) furthest = r;
    }
  }

  // The other way round: whatever the allocator holds for a device must be listed with it.
  // With a malformed device that cannot be told, and would only repeat its problem.
  if (!complete) return;
  const listed = new Map<PlanDevice, Set<string>>();
  const listedOf = (d: PlanDevice): Set<string> => {
    let keys = listed.get(d);
    if (keys === undefined) {
      keys = new Set([
        `instanceId#${d.instanceId}`,
        ...d.pio.map((r) => `pio:${BigInt(r.start)}-${BigInt(r.end)}`),
        ...d.mmio.map((r) => `mmio:${BigInt(r.start)}-${BigInt(r.end)}`),
        ...d.irqs.map((q) => `legacyIrq#${q.irq}`),
        ...d.msi.map((m) => `msi#${m.gsi}`),
      ]);
      listed.set(d, keys);
    }
    return keys;
  };
  for (const h of sys.holdings()) {
    if (h.reserved) continue;
    const what = "range" in h ? h.range.toString(h.pool === "pio" ? "io" : "mem") : h.pool === "legacyIrq" ? `[irq ${h.id}]` : h.pool === "msi" ? `MSI GSI ${h.id}` : `instance id ${h.id}`;
    const entry = byOwner.get(h.owner);
    if (entry === undefined) {
      problems.add(`system.pools.${h.pool}`, `${what} is allocated to ${h.owner}, which is not a device of this plan`);
      continue;
    }
    if (!listedOf(entry.device).has(holdingKey(h))) problems.add(`system.pools.${h.pool}`, `${what} is held by ${h.owner}, but ${entry.path} does not list it`);
  }
}
