/**
 * Snapshots of a PCI root complex: what the guest has programmed (command registers, BAR bases,
 * MSI and MSI-X enables and the GSIs its vectors hold), where each BAR is held and whether it is
 * routed, the slots, and the BAR writes still waiting for their collision to go away.
 *
 * `PciRootComplex.fromJSON` restores one (with its device manager) next to a system allocator
 * restored from the same VM snapshot; {@link verifyPciRootComplexSnapshot} checks that a live
 * root complex (restored, or rebuilt by replugging and replaying the guest's writes) is in
 * exactly the recorded state and names the first field that differs. The functions' own state
 * (device registers behind their handlers) belongs to device code and is not part of the
 * snapshot; the MSI-X table and PBA, which the PCI layer implements, are.
 */
import { AllocatorError } from "../core/errors.js";
import { hex, parseHexU64 } from "../core/u64.js";
import { PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT, PciSlotAllocator, type PciSlotAllocatorSnapshot } from "./slot-allocator.js";
import type { PciFunction } from "./pci-function.js";

/** Format tag of a root-complex snapshot. */
export const PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT = "vm-allocator/pci-root-complex";
/** The version this release writes and verifies. */
export const PCI_ROOT_COMPLEX_SNAPSHOT_VERSION = 1;

/** One BAR in a snapshot; addresses are `"0x..."` strings. */
export interface PciBarSnapshot {
  /** Register number, 0-5. */
  readonly index: number;
  /** I/O, 32-bit or 64-bit memory. */
  readonly kind: "io" | "mem32" | "mem64";
  /** The prefetchable flag of a memory BAR. */
  readonly prefetchable: boolean;
  /** Bytes (ports for an I/O BAR). */
  readonly size: string;
  /** What the guest's register names (the sizing mask while it sizes). */
  readonly base: string;
  /** First address of the place the BAR holds in the allocator. */
  readonly start: string;
  /** True while accesses reach the function. */
  readonly routed: boolean;
  /** A guest-written base waiting for its collision to go away, or null. */
  readonly pending: string | null;
  /** Device-manager instance id of the BAR. */
  readonly instanceId: number;
}

/** One function in a snapshot. */
export interface PciFunctionSnapshot {
  /** `0000:00:03.0`. */
  readonly address: string;
  /** The device's name. */
  readonly name: string;
  /** Device-manager instance id of the function. */
  readonly instanceId: number;
  /** Configuration dword 0: device id << 16 | vendor id. */
  readonly ids: number;
  /** Configuration dword 8: class code << 8 | revision. */
  readonly classRevision: number;
  /** The command register (decode enables, bus master, INTx disable). */
  readonly command: number;
  /** The first 256 bytes of configuration space as the PCI layer holds them, 512 hex digits (device-owned bytes are 0 here). */
  readonly config: string;
  /** True while the device asserts its INTx pin. */
  readonly intxAsserted: boolean;
  /** The INTx GSI, or null without a pin. */
  readonly intxLine: number | null;
  /** The BARs, in register order. */
  readonly bars: readonly PciBarSnapshot[];
  /** MSI, or null without it. */
  readonly msi: PciMsiSnapshot | null;
  /** MSI-X, or null without it. */
  readonly msix: PciMsixSnapshot | null;
}

/** The MSI state of a function in a snapshot. */
export interface PciMsiSnapshot {
  /** True while the guest has MSI enabled. */
  readonly enabled: boolean;
  /** The GSI of each enabled vector (-1 when the pool refused one). */
  readonly gsis: readonly number[];
}

/** The MSI-X state of a function in a snapshot. */
export interface PciMsixSnapshot {
  /** True while the guest has MSI-X enabled. */
  readonly enabled: boolean;
  /** True while the guest masks the whole function. */
  readonly functionMasked: boolean;
  /** Each vector holding a GSI, as [vector, gsi], by vector. */
  readonly held: readonly (readonly [number, number])[];
  /** Each table entry the guest changed from its reset state (zeros, masked), as [vector, address low, address high, data, control]. */
  readonly table: readonly (readonly [number, number, number, number, number])[];
  /** The vectors whose pending bit is set. */
  readonly pending: readonly number[];
}

/** Configuration mechanism #1 in a snapshot. */
export interface PciConfigMechanismSnapshot {
  /** The address register's port (0xcf8). */
  readonly port: number;
  /** Its device-manager name. */
  readonly name: string;
  /** Its device-manager instance id. */
  readonly instanceId: number;
}

/** One ECAM window in a snapshot. */
export interface PciEcamSnapshot {
  /** First byte of the window, `"0x..."`. */
  readonly base: string;
  /** The segment it serves. */
  readonly segment: number;
  /** The bus at the window's base. */
  readonly firstBus: number;
  /** The last bus. */
  readonly lastBus: number;
  /** Its device-manager name. */
  readonly name: string;
  /** Its device-manager instance id. */
  readonly instanceId: number;
}

/** How a root complex was built: what a restore must build again. */
export interface PciHostSnapshot {
  /** The port window of I/O BARs, inclusive, `"0x..."` strings. */
  readonly ioWindow: {
    /** First port. */
    readonly min: string;
    /** Last port. */
    readonly max: string;
  };
  /** Configuration mechanism #1, or null without it. */
  readonly configMechanism: PciConfigMechanismSnapshot | null;
  /** The ECAM windows. */
  readonly ecams: readonly PciEcamSnapshot[];
  /** The INTx rule by name and lines (its function cannot be saved: a restore is given the same rule). */
  readonly intxRouting: {
    /** The rule's name (`q35`). */
    readonly name: string;
    /** The GSI of each PIRQ line. */
    readonly lines: readonly number[];
  };
}

/** The JSON form of a root complex. */
export interface PciRootComplexSnapshot {
  /** {@link PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT}. */
  readonly format: typeof PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT;
  /** {@link PCI_ROOT_COMPLEX_SNAPSHOT_VERSION}. */
  readonly version: typeof PCI_ROOT_COMPLEX_SNAPSHOT_VERSION;
  /** How the root complex was built. */
  readonly host: PciHostSnapshot;
  /** The slot allocator's snapshot. */
  readonly slots: PciSlotAllocatorSnapshot;
  /** Configuration mechanism #1's address register (what the guest last wrote to 0xcf8), or null without the mechanism. */
  readonly configAddress: number | null;
  /** In address order. */
  readonly functions: readonly PciFunctionSnapshot[];
  /** Guest-written BAR bases that could not be mapped, counted. */
  readonly barConflicts: number;
  /** Stale BAR allocations re-placed to make room for a guest-written base. */
  readonly barEvictions: number;
  /** MSI GSIs held over all functions. */
  readonly heldVectors: number;
}

/** What {@link pciRootComplexSnapshot} reads of a root complex (a `PciRootComplex` is one). */
export interface PciRootComplexState {
  /** The slot allocator. */
  readonly slots: PciSlotAllocator;
  /** Guest-written BAR bases that could not be mapped, counted. */
  readonly barConflicts: number;
  /** Stale BAR allocations re-placed. */
  readonly barEvictions: number;
  /** MSI GSIs held over all functions. */
  readonly heldVectors: number;
  /** Configuration mechanism #1, when registered. */
  readonly configMechanism:
    | {
        /** Its address register, as the guest last wrote it. */
        readonly address: number;
      }
    | undefined;
  /** Every plugged function, in address order. */
  functions(): PciFunction[];
  /** How the root complex was built. */
  hostSnapshot(): PciHostSnapshot;
}


function functionSnapshot(fn: PciFunction): PciFunctionSnapshot {
  const msix = fn.msix;
  const held: [number, number][] = [];
  const table: [number, number, number, number, number][] = [];
  const pending: number[] = [];
  if (msix !== undefined) {
    for (let v = 0; v < msix.vectors; v++) {
      if (msix.gsiOf(v) >= 0) held.push([v, msix.gsiOf(v)]);
      const e = msix.tableEntry(v)!;
      if (e[0] !== 0 || e[1] !== 0 || e[2] !== 0 || e[3] !== 1) table.push([v, ...e]);
      if (msix.isPending(v)) pending.push(v);
    }
  }
  return {
    address: fn.bdf,
    name: fn.device.name,
    instanceId: fn.instanceId,
    // Header registers the PCI layer answers itself: reading them reaches no device code.
    ids: fn.configRead(0x00, 4),
    classRevision: fn.configRead(0x08, 4),
    command: fn.command,
    config: fn.rawConfig().map((b) => b.toString(16).padStart(2, "0")).join(""),
    intxAsserted: fn.intxAsserted,
    intxLine: fn.intxLine ?? null,
    bars: fn.bars().map((b) => ({
      index: b.index,
      kind: b.kind,
      prefetchable: b.prefetchable,
      size: hex(b.size),
      base: hex(b.base),
      start: hex(b.range.start),
      routed: b.routed,
      pending: b.pending === undefined ? null : hex(b.pending),
      instanceId: b.instanceId,
    })),
    msi: fn.msi === undefined ? null : { enabled: fn.msi.enabled, gsis: [...fn.msi.gsis()] },
    msix: msix === undefined ? null : { enabled: msix.enabled, functionMasked: msix.functionMasked, held, table, pending },
  };
}

/** The snapshot of a root complex (what `PciRootComplex.toJSON` returns). */
export function pciRootComplexSnapshot(rc: PciRootComplexState): PciRootComplexSnapshot {
  return {
    format: PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT,
    version: PCI_ROOT_COMPLEX_SNAPSHOT_VERSION,
    host: rc.hostSnapshot(),
    slots: rc.slots.toJSON(),
    configAddress: rc.configMechanism?.address ?? null,
    functions: rc.functions().map(functionSnapshot),
    barConflicts: rc.barConflicts,
    barEvictions: rc.barEvictions,
    heldVectors: rc.heldVectors,
  };
}

/** The first path where `a` (the snapshot) and `b` (the live state) differ, with both values. */
function difference(a: unknown, b: unknown, path: string): string | undefined {
  if (Array.isArray(b)) {
    if (!Array.isArray(a)) return `${path || "snapshot"} must be an array`;
    if (a.length !== b.length) return `${path} has ${a.length} entries, the root complex ${b.length}`;
    for (let i = 0; i < b.length; i++) {
      const d = difference(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (typeof b === "object" && b !== null) {
    if (typeof a !== "object" || a === null || Array.isArray(a)) return `${path || "snapshot"} must be an object`;
    const o = a as Record<string, unknown>;
    const live = b as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!Object.hasOwn(live, k)) return `${path === "" ? "" : `${path}.`}${k} is an unknown field`;
    for (const k of Object.keys(live)) {
      const d = difference(o[k], live[k], path === "" ? k : `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (a !== b) return `${path} is ${JSON.stringify(a) ?? "missing"} in the snapshot but ${JSON.stringify(b)} in the root complex`;
  return undefined;
}

/**
 * Checks a snapshot and that `rc` is in exactly the state it records (verify-only restore; see
 * the module documentation). Changes nothing.
 * @throws AllocatorError `InvalidSnapshot` naming what is wrong: the format, the version, the
 *   slots part (as `PciSlotAllocator.fromJSON` finds it), or the first field where the snapshot
 *   and the root complex differ.
 */
export function verifyPciRootComplexSnapshot(snapshot: unknown, rc: PciRootComplexState): void {
  const bad = (what: string, cause?: unknown): AllocatorError =>
    new AllocatorError("InvalidSnapshot", `invalid PCI root complex snapshot: ${what}`, cause === undefined ? undefined : { cause });
  if (typeof snapshot !== "object" || snapshot === null || Array.isArray(snapshot)) throw bad("expected an object");
  const s = snapshot as Record<string, unknown>;
  if (s["format"] !== PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT) throw bad(`format must be "${PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT}"`);
  if (s["version"] !== PCI_ROOT_COMPLEX_SNAPSHOT_VERSION) throw bad(`unsupported version ${String(s["version"])}; this library reads version ${PCI_ROOT_COMPLEX_SNAPSHOT_VERSION}`);
  const slots = s["slots"];
  if (typeof slots !== "object" || slots === null || (slots as { format?: unknown }).format !== PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT) throw bad(`slots must be a "${PCI_SLOT_ALLOCATOR_SNAPSHOT_FORMAT}" snapshot`);
  try {
    PciSlotAllocator.fromJSON(slots);
  } catch (error) {
    throw bad(`slots: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  const d = difference(snapshot, pciRootComplexSnapshot(rc), "");
  if (d !== undefined) throw bad(d);
}

/**
 * Checks the shape of a root-complex snapshot field by field, as a restore needs it.
 * @throws AllocatorError `InvalidSnapshot` naming the first bad field.
 */
export function parsePciRootComplexSnapshot(snapshot: unknown): PciRootComplexSnapshot {
  const bad = (what: string, cause?: unknown): AllocatorError =>
    new AllocatorError("InvalidSnapshot", `invalid PCI root complex snapshot: ${what}`, cause === undefined ? undefined : { cause });
  const obj = (v: unknown, path: string, keys: readonly string[]): Record<string, unknown> => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad(`${path || "snapshot"} must be an object`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`${path === "" ? "" : `${path}.`}${k} is an unknown field`);
    for (const k of keys) if (!(k in o)) throw bad(`${path === "" ? "" : `${path}.`}${k} is missing`);
    return o;
  };
  const arr = (v: unknown, path: string): unknown[] => {
    if (!Array.isArray(v)) throw bad(`${path} must be an array`);
    return v;
  };
  const int = (v: unknown, path: string, min: number, max: number): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(`${path} must be an integer from ${min} to ${max}, got ${JSON.stringify(v) ?? String(v)}`);
    return v;
  };
  const bool = (v: unknown, path: string): boolean => {
    if (typeof v !== "boolean") throw bad(`${path} must be true or false`);
    return v;
  };
  const str = (v: unknown, path: string): string => {
    if (typeof v !== "string" || v.length === 0) throw bad(`${path} must be a non-empty string`);
    return v;
  };
  const hexOf = (v: unknown, path: string): bigint => {
    const value = parseHexU64(v);
    if (value === undefined) throw bad(`${path} must be a canonical "0x..." u64 string`);
    return value;
  };
  const U32 = 0xffff_ffff;
  const s = obj(snapshot, "", ["format", "version", "host", "slots", "configAddress", "functions", "barConflicts", "barEvictions", "heldVectors"]);
  if (s["format"] !== PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT) throw bad(`format must be "${PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT}"`);
  if (s["version"] !== PCI_ROOT_COMPLEX_SNAPSHOT_VERSION) throw bad(`unsupported version ${String(s["version"])}; this library reads version ${PCI_ROOT_COMPLEX_SNAPSHOT_VERSION}`);
  const host = obj(s["host"], "host", ["ioWindow", "configMechanism", "ecams", "intxRouting"]);
  const w = obj(host["ioWindow"], "host.ioWindow", ["min", "max"]);
  if (hexOf(w["min"], "host.ioWindow.min") > hexOf(w["max"], "host.ioWindow.max") || BigInt(w["max"] as string) > 0xffffn) throw bad("host.ioWindow must have min <= max <= 0xffff");
  if (host["configMechanism"] !== null) {
    const m = obj(host["configMechanism"], "host.configMechanism", ["port", "name", "instanceId"]);
    int(m["port"], "host.configMechanism.port", 0, 0xfff8);
    str(m["name"], "host.configMechanism.name");
    int(m["instanceId"], "host.configMechanism.instanceId", 0, U32);
  }
  arr(host["ecams"], "host.ecams").forEach((e, i) => {
    const at = `host.ecams[${i}]`;
    const o = obj(e, at, ["base", "segment", "firstBus", "lastBus", "name", "instanceId"]);
    hexOf(o["base"], `${at}.base`);
    int(o["segment"], `${at}.segment`, 0, 0xffff);
    int(o["lastBus"], `${at}.lastBus`, int(o["firstBus"], `${at}.firstBus`, 0, 255), 255);
    str(o["name"], `${at}.name`);
    int(o["instanceId"], `${at}.instanceId`, 0, U32);
  });
  const r = obj(host["intxRouting"], "host.intxRouting", ["name", "lines"]);
  str(r["name"], "host.intxRouting.name");
  arr(r["lines"], "host.intxRouting.lines").forEach((l, i) => int(l, `host.intxRouting.lines[${i}]`, 0, U32));
  try {
    PciSlotAllocator.fromJSON(s["slots"]);
  } catch (error) {
    throw bad(`slots: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  if (s["configAddress"] !== null) int(s["configAddress"], "configAddress", 0, U32);
  for (const k of ["barConflicts", "barEvictions", "heldVectors"]) int(s[k], k, 0, Number.MAX_SAFE_INTEGER);
  let previous = "";
  arr(s["functions"], "functions").forEach((f, i) => {
    const at = `functions[${i}]`;
    const o = obj(f, at, ["address", "name", "instanceId", "ids", "classRevision", "command", "config", "intxAsserted", "intxLine", "bars", "msi", "msix"]);
    const address = str(o["address"], `${at}.address`);
    if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/.test(address)) throw bad(`${at}.address must be like "0000:00:03.0"`);
    if (address <= previous) throw bad(`${at}.address ${address} is not after the previous function (duplicate or out of order)`);
    previous = address;
    str(o["name"], `${at}.name`);
    int(o["instanceId"], `${at}.instanceId`, 0, U32);
    int(o["ids"], `${at}.ids`, 0, U32);
    int(o["classRevision"], `${at}.classRevision`, 0, U32);
    int(o["command"], `${at}.command`, 0, 0xffff);
    if (typeof o["config"] !== "string" || !/^[0-9a-f]{512}$/.test(o["config"])) throw bad(`${at}.config must be 512 lower-case hex digits`);
    bool(o["intxAsserted"], `${at}.intxAsserted`);
    if (o["intxLine"] !== null) int(o["intxLine"], `${at}.intxLine`, 0, U32);
    arr(o["bars"], `${at}.bars`).forEach((b, j) => {
      const bp = `${at}.bars[${j}]`;
      const bo = obj(b, bp, ["index", "kind", "prefetchable", "size", "base", "start", "routed", "pending", "instanceId"]);
      int(bo["index"], `${bp}.index`, 0, 5);
      if (bo["kind"] !== "io" && bo["kind"] !== "mem32" && bo["kind"] !== "mem64") throw bad(`${bp}.kind must be "io", "mem32" or "mem64"`);
      bool(bo["prefetchable"], `${bp}.prefetchable`);
      const size = hexOf(bo["size"], `${bp}.size`);
      hexOf(bo["base"], `${bp}.base`);
      const start = hexOf(bo["start"], `${bp}.start`);
      if (size === 0n || (size & (size - 1n)) !== 0n || start % size !== 0n) throw bad(`${bp}: start ${bo["start"] as string} is not a multiple of the power-of-two size ${bo["size"] as string}`);
      bool(bo["routed"], `${bp}.routed`);
      if (bo["pending"] !== null) hexOf(bo["pending"], `${bp}.pending`);
      if (bo["routed"] === true && bo["pending"] !== null) throw bad(`${bp} is both routed and pending`);
      int(bo["instanceId"], `${bp}.instanceId`, 0, U32);
    });
    if (o["msi"] !== null) {
      const m = obj(o["msi"], `${at}.msi`, ["enabled", "gsis"]);
      bool(m["enabled"], `${at}.msi.enabled`);
      arr(m["gsis"], `${at}.msi.gsis`).forEach((g, j) => int(g, `${at}.msi.gsis[${j}]`, -1, 0x7fff_ffff));
    }
    if (o["msix"] !== null) {
      const m = obj(o["msix"], `${at}.msix`, ["enabled", "functionMasked", "held", "table", "pending"]);
      bool(m["enabled"], `${at}.msix.enabled`);
      bool(m["functionMasked"], `${at}.msix.functionMasked`);
      let last = -1;
      arr(m["held"], `${at}.msix.held`).forEach((h, j) => {
        const e = arr(h, `${at}.msix.held[${j}]`);
        if (e.length !== 2) throw bad(`${at}.msix.held[${j}] must be [vector, gsi]`);
        const v = int(e[0], `${at}.msix.held[${j}][0]`, 0, 2047);
        if (v <= last) throw bad(`${at}.msix.held[${j}]: vector ${v} is not after the previous one`);
        last = v;
        int(e[1], `${at}.msix.held[${j}][1]`, 0, 0x7fff_ffff);
      });
      last = -1;
      arr(m["table"], `${at}.msix.table`).forEach((t, j) => {
        const e = arr(t, `${at}.msix.table[${j}]`);
        if (e.length !== 5) throw bad(`${at}.msix.table[${j}] must be [vector, address low, address high, data, control]`);
        const v = int(e[0], `${at}.msix.table[${j}][0]`, 0, 2047);
        if (v <= last) throw bad(`${at}.msix.table[${j}]: vector ${v} is not after the previous one`);
        last = v;
        for (let k = 1; k < 5; k++) int(e[k], `${at}.msix.table[${j}][${k}]`, 0, U32);
      });
      last = -1;
      arr(m["pending"], `${at}.msix.pending`).forEach((p, j) => {
        const v = int(p, `${at}.msix.pending[${j}]`, 0, 2047);
        if (v <= last) throw bad(`${at}.msix.pending[${j}]: vector ${v} is not after the previous one`);
        last = v;
      });
    }
  });
  return snapshot as PciRootComplexSnapshot;
}
