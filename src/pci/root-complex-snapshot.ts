/**
 * Snapshots of a PCI root complex: what the guest has programmed (command registers, BAR bases,
 * MSI and MSI-X enables and the GSIs its vectors hold), where each BAR is held and whether it is
 * routed, the slots, and the BAR writes still waiting for their collision to go away.
 *
 * Restoring is verify-only: a VMM rebuilds its root complex by plugging the same functions and
 * replaying the guest's configuration writes (or restoring the device manager and its allocator,
 * which hold every range, line and GSI), then {@link verifyPciRootComplexSnapshot} checks that
 * the rebuilt one is in exactly the recorded state and names the first field that differs. The
 * functions' own state (device registers, MSI-X table contents) belongs to device code and is
 * not part of the snapshot.
 */
import { AllocatorError } from "../core/errors.js";
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
  readonly kind: "io" | "mem32" | "mem64";
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
  /** The INTx GSI, or null without a pin. */
  readonly intxLine: number | null;
  readonly bars: readonly PciBarSnapshot[];
  /** MSI: enabled, and the GSI of each vector (-1 when none is held); null without MSI. */
  readonly msi: { readonly enabled: boolean; readonly gsis: readonly number[] } | null;
  /**
   * MSI-X: enabled, function-masked, each vector holding a GSI as [vector, gsi], each table entry
   * the guest changed from its reset state (zeros, masked) as [vector, address low, address high,
   * data, control], and the vectors with their pending bit set; null without MSI-X.
   */
  readonly msix: {
    readonly enabled: boolean;
    readonly functionMasked: boolean;
    readonly held: readonly (readonly [number, number])[];
    readonly table: readonly (readonly [number, number, number, number, number])[];
    readonly pending: readonly number[];
  } | null;
}

/** The JSON form of a root complex. */
export interface PciRootComplexSnapshot {
  readonly format: typeof PCI_ROOT_COMPLEX_SNAPSHOT_FORMAT;
  readonly version: typeof PCI_ROOT_COMPLEX_SNAPSHOT_VERSION;
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
  /** Configuration mechanism #1 and its address register, when registered. */
  readonly configMechanism: { readonly address: number } | undefined;
  /** Every plugged function, in address order. */
  functions(): PciFunction[];
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

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
