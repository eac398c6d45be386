/**
 * System layouts: which resource pools a VM has and what is fixed inside them, as plain objects
 * that can be written by hand, read from JSON files and handed to `DefaultSystemAllocator`.
 *
 * A layout names up to eight pools:
 *
 * | pool           | kind    | what it hands out                                              |
 * | -------------- | ------- | -------------------------------------------------------------- |
 * | `pio`          | address | port I/O, inside [0x0, 0xffff]; optional                       |
 * | `systemMemory` | address | guest memory for firmware data (ACPI tables, vmgenid); optional |
 * | `mmio32`       | address | MMIO below 4 GiB (32-bit BARs, virtio-mmio slots)              |
 * | `mmio64`       | address | MMIO at or above 4 GiB, above RAM (64-bit BARs); optional      |
 * | `pastMmio64`   | address | the region past the 64-bit MMIO (pmem backing); optional       |
 * | `legacyIrq`    | id      | pin-based interrupt lines                                      |
 * | `msi`          | id      | GSIs for message-signalled interrupts                          |
 * | `instanceId`   | id      | device instance ids; defaults to 0..2^32-1                     |
 *
 * and a list of reservations: firmware-fixed ranges, fixed IRQs and holes that are never handed
 * out (`{ pool: "mmio32", start: 0xfec00000, size: 0x1000, owner: "ioapic" }`).
 *
 * Numbers in a layout may be bigints, non-negative safe-integer numbers, or `"0x..."` hex strings
 * (JSON has neither bigints nor hex literals, and addresses read best in hex); underscores may
 * separate hex digits (`"0xfec0_0000"`). {@link resolveLayout} validates a layout and
 * {@link layoutToJSON} writes its canonical JSON form. The presets (one file each under
 * `presets/`) are such layouts, some computed from {@link LayoutParameters}.
 */
import { AllocatorError } from "../core/errors.js";
import { formatRange, type RangeKind } from "../core/range.js";
import { hex, toU64, U32_MAX, U64_MAX } from "../core/u64.js";
import type { LayoutParameters, Preset, ResolvedParameters } from "./presets/preset.js";
import { CLOUD_HYPERVISOR_X86_64_PRESET } from "./presets/cloud-hypervisor-x86_64.js";
import { CROSVM_X86_64_PRESET } from "./presets/crosvm-x86_64.js";
import { FIRECRACKER_AARCH64_PRESET } from "./presets/firecracker-aarch64.js";
import { FIRECRACKER_X86_64_PRESET } from "./presets/firecracker-x86_64.js";
import { PC_X86_64_PRESET } from "./presets/pc-x86_64.js";
import { RISCV64_VIRT_PRESET } from "./presets/riscv64-virt.js";

/** The pools of a system allocator. */
export type PoolName = "pio" | "systemMemory" | "mmio32" | "mmio64" | "pastMmio64" | "legacyIrq" | "msi" | "instanceId";
/** Pools of address ranges. */
export type AddressPoolName = "pio" | "systemMemory" | "mmio32" | "mmio64" | "pastMmio64";
/** Pools of guest-physical memory addresses (every address pool but `pio`). */
export type MemoryPoolName = Exclude<AddressPoolName, "pio">;
/** Pools of ids. */
export type IdPoolName = "legacyIrq" | "msi" | "instanceId";

/** Every pool name, in the order pools are listed in snapshots and reports. */
export const POOL_NAMES: readonly PoolName[] = Object.freeze([
  "pio",
  "systemMemory",
  "mmio32",
  "mmio64",
  "pastMmio64",
  "legacyIrq",
  "msi",
  "instanceId",
]);

/** The address pools, in the order of {@link POOL_NAMES}. */
export const ADDRESS_POOL_NAMES: readonly AddressPoolName[] = Object.freeze(["pio", "systemMemory", "mmio32", "mmio64", "pastMmio64"]);
/** The memory pools, in the order of {@link POOL_NAMES}. */
export const MEMORY_POOL_NAMES: readonly MemoryPoolName[] = Object.freeze(["systemMemory", "mmio32", "mmio64", "pastMmio64"]);
/** The address pools a layout may leave out. */
const OPTIONAL_ADDRESS_POOLS: readonly AddressPoolName[] = ["pio", "systemMemory", "mmio64", "pastMmio64"];

/** True when `pool` is an address pool. */
export function isAddressPool(pool: PoolName): pool is AddressPoolName {
  return (ADDRESS_POOL_NAMES as readonly string[]).includes(pool);
}

/** A number in a layout: a bigint, a non-negative safe integer, or a `"0x..."` hex string. */
export type LayoutNumber = bigint | number | string;

/** An address pool: `size` addresses from `base`. */
export interface AddressWindowLayout {
  /** First address (or port) of the pool. */
  readonly base: LayoutNumber;
  /** Number of addresses (bytes, or ports for `pio`), at least 1; the pool must end by 2^64-1. */
  readonly size: LayoutNumber;
}

/** An id pool: the ids `first..=last`. */
export interface IdRangeLayout {
  /** Lowest id of the pool, a u32. */
  readonly first: LayoutNumber;
  /** Highest id of the pool, inclusive, a u32 not below `first`. */
  readonly last: LayoutNumber;
}

/**
 * Space that is never handed out: `start` plus either `end` (inclusive) or `size`. In an id
 * pool both may be left out to reserve the single id `start`.
 */
export interface ReservationLayout {
  /** The pool the space is taken from; the reservation must lie inside it. */
  readonly pool: PoolName;
  /** First address (or id) reserved. */
  readonly start: LayoutNumber;
  /**
   * Last address (or id) reserved, inclusive, not below `start`; give this or `size`, not both (in
   * an id pool, neither reserves the single id `start`).
   */
  readonly end?: LayoutNumber;
  /** Number of addresses (or ids) reserved, at least 1; give this or `end`, not both. */
  readonly size?: LayoutNumber;
  /** Who holds the space; conflicts name it. */
  readonly owner: string;
}

/** The pools of a VM and what is fixed in them. */
export interface SystemLayout {
  /** A label for reports, such as `"firecracker-x86_64"`. */
  readonly name?: string;
  /** Port I/O; must lie inside [0x0, 0xffff]. Leave out on architectures without port I/O. */
  readonly pio?: AddressWindowLayout;
  /** Guest memory for firmware data (ACPI tables, MP table, vmgenid, vmclock). Optional. */
  readonly systemMemory?: AddressWindowLayout;
  /** MMIO below 4 GiB; must end at or below 0xffff_ffff. */
  readonly mmio32: AddressWindowLayout;
  /** MMIO at or above 4 GiB. Leave out when the VM has no 64-bit MMIO space. */
  readonly mmio64?: AddressWindowLayout;
  /** The region past the 64-bit MMIO (pmem and virtio-mem backing); at or above 4 GiB. Optional. */
  readonly pastMmio64?: AddressWindowLayout;
  /** Legacy (pin-based) IRQ lines. */
  readonly legacyIrq: IdRangeLayout;
  /** MSI GSIs; must not overlap `legacyIrq` (both are GSI numbers to a hypervisor). */
  readonly msi: IdRangeLayout;
  /** Device instance ids; defaults to 0..2^32-1. */
  readonly instanceId?: IdRangeLayout;
  /** Fixed ranges, ids and holes, held from the start. They must not overlap each other. */
  readonly reserved?: readonly ReservationLayout[];
}

/** An address pool in canonical JSON form. */
export interface AddressWindowJSON {
  /** First address (or port) of the pool, as canonical lowercase hex. */
  readonly base: string;
  /** Number of addresses (bytes, or ports for `pio`) in the pool, as canonical lowercase hex. */
  readonly size: string;
}

/** An id pool in canonical JSON form. */
export interface IdRangeJSON {
  /** Lowest id of the pool. */
  readonly first: number;
  /** Highest id of the pool, inclusive. */
  readonly last: number;
}

/** A reservation in canonical JSON form: hex strings in address pools, numbers in id pools. */
export interface ReservationJSON {
  /** The pool the space is taken from. */
  readonly pool: PoolName;
  /** First address (hex string) or id (number) reserved. */
  readonly start: string | number;
  /**
   * Last address (hex string) or id (number) reserved, inclusive: a `size` is always given back as
   * an `end`.
   */
  readonly end: string | number;
  /** Who holds the space; conflicts name it. */
  readonly owner: string;
}

/** The canonical JSON form of a layout: every default filled in, addresses as hex strings. */
export interface SystemLayoutJSON {
  /** The layout's label, when it has one. */
  readonly name?: string;
  /** Port I/O, when the layout has it. */
  readonly pio?: AddressWindowJSON;
  /** Guest memory for firmware data, when the layout has it. */
  readonly systemMemory?: AddressWindowJSON;
  /** MMIO below 4 GiB. */
  readonly mmio32: AddressWindowJSON;
  /** MMIO at or above 4 GiB, when the layout has it. */
  readonly mmio64?: AddressWindowJSON;
  /** The region past the 64-bit MMIO, when the layout has it. */
  readonly pastMmio64?: AddressWindowJSON;
  /** Legacy (pin-based) IRQ lines. */
  readonly legacyIrq: IdRangeJSON;
  /** MSI GSIs. */
  readonly msi: IdRangeJSON;
  /** Device instance ids; always present (the default 0..2^32-1 filled in). */
  readonly instanceId: IdRangeJSON;
  /**
   * Fixed ranges, ids and holes, in the order the layout gives them; always present, possibly
   * empty.
   */
  readonly reserved: readonly ReservationJSON[];
}

/** One validated reservation; `start..=end` lies inside its pool. */
export interface ResolvedReservation {
  readonly pool: PoolName;
  readonly start: bigint;
  readonly end: bigint;
  readonly owner: string;
}

/** A validated layout with every number exact and every default filled in. */
export interface ResolvedLayout {
  readonly name: string | undefined;
  /** Inclusive bounds of each pool; absent pools are missing from the record. */
  readonly pools: Readonly<Partial<Record<PoolName, { readonly start: bigint; readonly end: bigint }>>>;
  /** In the order given. */
  readonly reserved: readonly ResolvedReservation[];
}

/** How ranges of each pool are printed (`[io ...]`, `[mem ...]`, `[irq ...]`, `[id ...]`). */
export function poolRangeKind(pool: PoolName): RangeKind {
  if (pool === "pio") return "io";
  if (isAddressPool(pool)) return "mem";
  if (pool === "legacyIrq" || pool === "msi") return "irq";
  return "id";
}

/**
 * The most ids one reservation may cover. Reserved ids are held one by one, so a reservation of
 * the whole 2^32 id space would take minutes and gigabytes; no real machine fixes that many.
 */
export const MAX_ID_RESERVATION = 65536;

const FOUR_GIB = 0x1_0000_0000n;
/** The keys of a {@link SystemLayout}, in the order the type lists them. */
export const LAYOUT_KEYS: readonly string[] = Object.freeze(["name", ...ADDRESS_POOL_NAMES, "legacyIrq", "msi", "instanceId", "reserved"]);
const RESERVATION_KEYS = ["pool", "start", "end", "size", "owner"];

function show(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  return Array.isArray(value) ? "an array" : typeof value;
}

/** Reads a layout number (see {@link LayoutNumber}) as a u64, naming `path` when it is not one. */
export function parseLayoutNumber(value: unknown, path: string): bigint {
  if (typeof value === "string") {
    if (/^0x[0-9a-f]+(?:_[0-9a-f]+)*$/i.test(value)) {
      const v = BigInt(value.replaceAll("_", ""));
      if (v <= U64_MAX) return v;
    }
    throw new AllocatorError(
      "InvalidArgument",
      `${path} must be an integer from 0 to 2^64-1 (a bigint, a safe-integer number or a "0x..." hex string), got ${show(value)}`,
    );
  }
  if (typeof value === "bigint" || typeof value === "number") return toU64(value, path);
  throw new AllocatorError(
    "InvalidArgument",
    `${path} must be an integer from 0 to 2^64-1 (a bigint, a safe-integer number or a "0x..." hex string), got ${show(value)}`,
  );
}

function parseId(value: unknown, path: string): bigint {
  const v = parseLayoutNumber(value, path);
  if (v > BigInt(U32_MAX)) throw new AllocatorError("InvalidArgument", `${path} must be an id from 0 to 2^32-1, got ${v}`);
  return v;
}

function record(value: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AllocatorError("InvalidArgument", `${path} must be an object, got ${show(value)}`);
  }
  const r = value as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    // A misspelt key would otherwise silently drop a pool or a reservation.
    if (!allowed.includes(key)) throw new AllocatorError("InvalidArgument", `${path} has unknown field ${JSON.stringify(key)}`);
  }
  return r;
}

function addressWindow(value: unknown, path: string, pool: AddressPoolName): { start: bigint; end: bigint } {
  const r = record(value, path, ["base", "size"]);
  const base = parseLayoutNumber(r["base"], `${path}.base`);
  const size = parseLayoutNumber(r["size"], `${path}.size`);
  if (size === 0n) throw new AllocatorError("InvalidSize", `${path}.size must be at least 1`);
  if (size - 1n > U64_MAX - base) {
    throw new AllocatorError("Overflow", `${path}: ${hex(size)} bytes at ${hex(base)} would end past 0xffffffffffffffff`);
  }
  const end = base + size - 1n;
  const kind = pool === "pio" ? "io" : "mem";
  const shown = formatRange(base, end, kind);
  if (pool === "pio" && end > 0xffffn) {
    throw new AllocatorError("OutOfRange", `${path} ${shown} must lie inside the 16-bit port space [io 0x0-0xffff]`);
  }
  if (pool === "mmio32" && end >= FOUR_GIB) {
    throw new AllocatorError("OutOfRange", `${path} ${shown} must lie below 4 GiB (end at or below 0xffffffff)`);
  }
  if ((pool === "mmio64" || pool === "pastMmio64") && base < FOUR_GIB) {
    throw new AllocatorError("OutOfRange", `${path} ${shown} must start at or above 4 GiB (0x100000000)`);
  }
  return { start: base, end };
}

function idRange(value: unknown, path: string): { start: bigint; end: bigint } {
  const r = record(value, path, ["first", "last"]);
  const first = parseId(r["first"], `${path}.first`);
  const last = parseId(r["last"], `${path}.last`);
  if (first > last) throw new AllocatorError("InvalidRange", `${path}: first ${first} is above last ${last}`);
  return { start: first, end: last };
}

/**
 * Validates a layout and returns it with exact numbers and defaults filled in. Messages name the
 * offending field (`layout.mmio32.size`, `layout.reserved[3].owner`).
 *
 * @param name how the layout is named in messages.
 * @throws AllocatorError `InvalidArgument` (wrong type, unknown field, missing pool, overlapping
 *   `legacyIrq` and `msi`, overlapping memory pools, a reservation in a pool the layout does not
 *   have), `InvalidSize`
 *   (size 0), `Overflow` (a window past 2^64-1), `InvalidRange` (first above last, end below
 *   start), `OutOfRange` (a window outside its address space, a reservation outside its pool),
 *   `Overlap` (two reservations share space; the message names both owners).
 */
export function resolveLayout(layout: unknown, name = "layout"): ResolvedLayout {
  const r = record(layout, name, LAYOUT_KEYS);
  let label: string | undefined;
  if (r["name"] !== undefined) {
    if (typeof r["name"] !== "string" || r["name"].length === 0) {
      throw new AllocatorError("InvalidArgument", `${name}.name must be a non-empty string, got ${show(r["name"])}`);
    }
    label = r["name"];
  }
  const pools: Partial<Record<PoolName, { start: bigint; end: bigint }>> = {};
  for (const pool of ADDRESS_POOL_NAMES) {
    const w = r[pool];
    if (w === undefined) {
      if (!OPTIONAL_ADDRESS_POOLS.includes(pool)) throw new AllocatorError("InvalidArgument", `${name}.mmio32 is missing: every layout needs a 32-bit MMIO pool`);
      continue;
    }
    pools[pool] = addressWindow(w, `${name}.${pool}`, pool);
  }
  // Memory pools share one address space: an address in two pools could be handed out twice.
  for (let i = 0; i < MEMORY_POOL_NAMES.length; i++) {
    for (let j = i + 1; j < MEMORY_POOL_NAMES.length; j++) {
      const a = pools[MEMORY_POOL_NAMES[i]!];
      const b = pools[MEMORY_POOL_NAMES[j]!];
      if (a === undefined || b === undefined || a.end < b.start || b.end < a.start) continue;
      throw new AllocatorError(
        "InvalidArgument",
        `${name}.${MEMORY_POOL_NAMES[j]} ${formatRange(b.start, b.end, "mem")} overlaps ${name}.${MEMORY_POOL_NAMES[i]} ${formatRange(a.start, a.end, "mem")}: memory pools must be disjoint`,
      );
    }
  }
  for (const pool of ["legacyIrq", "msi", "instanceId"] as const) {
    const w = r[pool];
    if (w === undefined) {
      if (pool === "instanceId") {
        pools.instanceId = { start: 0n, end: BigInt(U32_MAX) };
        continue;
      }
      throw new AllocatorError("InvalidArgument", `${name}.${pool} is missing: give it as { first, last }`);
    }
    pools[pool] = idRange(w, `${name}.${pool}`);
  }
  const irq = pools.legacyIrq!;
  const msi = pools.msi!;
  if (irq.start <= msi.end && msi.start <= irq.end) {
    throw new AllocatorError(
      "InvalidArgument",
      `${name}.legacyIrq ${formatRange(irq.start, irq.end, "irq")} overlaps ${name}.msi ${formatRange(msi.start, msi.end, "irq")}: both are GSI numbers`,
    );
  }

  const reserved: ResolvedReservation[] = [];
  const list = r["reserved"];
  if (list !== undefined) {
    if (!Array.isArray(list)) throw new AllocatorError("InvalidArgument", `${name}.reserved must be an array, got ${show(list)}`);
    for (let i = 0; i < list.length; i++) {
      reserved.push(resolveReservation(list[i], `${name}.reserved[${i}]`, pools));
    }
  }
  checkReservationsDisjoint(reserved, name);
  return { name: label, pools, reserved };
}

/**
 * Validates one reservation against the pools of a resolved layout.
 * @throws AllocatorError as {@link resolveLayout}, naming `path`.
 */
export function resolveReservation(
  value: unknown,
  path: string,
  pools: ResolvedLayout["pools"],
): ResolvedReservation {
  const e = record(value, path, RESERVATION_KEYS);
  const pool = e["pool"];
  if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool)) {
    throw new AllocatorError("InvalidArgument", `${path}.pool must be one of ${POOL_NAMES.map((p) => JSON.stringify(p)).join(", ")}, got ${show(pool)}`);
  }
  const p = pool as PoolName;
  const bounds = pools[p];
  if (bounds === undefined) throw new AllocatorError("InvalidArgument", `${path}.pool is ${JSON.stringify(p)}, but the layout has no ${p} pool`);
  const owner = e["owner"];
  if (typeof owner !== "string" || owner.length === 0) {
    throw new AllocatorError("InvalidArgument", `${path}.owner must be a non-empty string, got ${show(owner)}`);
  }
  const isAddress = isAddressPool(p);
  const read = isAddress ? parseLayoutNumber : parseId;
  const start = read(e["start"], `${path}.start`);
  const hasEnd = e["end"] !== undefined;
  const hasSize = e["size"] !== undefined;
  if (hasEnd && hasSize) throw new AllocatorError("InvalidArgument", `${path} gives both end and size; give one`);
  let end: bigint;
  if (hasEnd) {
    end = read(e["end"], `${path}.end`);
    if (end < start) throw new AllocatorError("InvalidRange", `${path}: end ${isAddress ? hex(end) : end} is below start ${isAddress ? hex(start) : start}`);
  } else if (hasSize) {
    const size = parseLayoutNumber(e["size"], `${path}.size`);
    if (size === 0n) throw new AllocatorError("InvalidSize", `${path}.size must be at least 1`);
    if (size - 1n > U64_MAX - start) throw new AllocatorError("Overflow", `${path}: ${hex(size)} at ${hex(start)} would end past 0xffffffffffffffff`);
    end = start + size - 1n;
  } else {
    if (isAddress) throw new AllocatorError("InvalidArgument", `${path} needs end or size: an address reservation is a range`);
    end = start;
  }
  const kind = poolRangeKind(p);
  if (!isAddress && end - start + 1n > BigInt(MAX_ID_RESERVATION)) {
    throw new AllocatorError(
      "InvalidArgument",
      `${path} ${formatRange(start, end, kind)} covers ${end - start + 1n} ids; an id reservation covers at most ${MAX_ID_RESERVATION}`,
    );
  }
  if (start < bounds.start || end > bounds.end) {
    throw new AllocatorError(
      "OutOfRange",
      `${path} ${formatRange(start, end, kind)} is outside the ${p} pool ${formatRange(bounds.start, bounds.end, kind)}`,
    );
  }
  return { pool: p, start, end, owner };
}

function checkReservationsDisjoint(reserved: readonly ResolvedReservation[], name: string): void {
  const order = reserved.map((r, i) => ({ r, i }));
  order.sort((a, b) => (a.r.pool < b.r.pool ? -1 : a.r.pool > b.r.pool ? 1 : a.r.start < b.r.start ? -1 : a.r.start > b.r.start ? 1 : 0));
  for (let k = 1; k < order.length; k++) {
    const a = order[k - 1]!;
    const b = order[k]!;
    if (a.r.pool === b.r.pool && b.r.start <= a.r.end) {
      const [first, second] = a.i < b.i ? [a, b] : [b, a];
      const kind = poolRangeKind(a.r.pool);
      throw new AllocatorError(
        "Overlap",
        `${name}.reserved[${second.i}]: ${formatRange(second.r.start, second.r.end, kind)} conflicts with ${first.r.owner} ${formatRange(first.r.start, first.r.end, kind)} (${name}.reserved[${first.i}])`,
        { owner: first.r.owner },
      );
    }
  }
}

/** The canonical JSON form of a reservation. */
export function reservationToJSON(r: ResolvedReservation): ReservationJSON {
  const asText = isAddressPool(r.pool);
  return {
    pool: r.pool,
    start: asText ? hex(r.start) : Number(r.start),
    end: asText ? hex(r.end) : Number(r.end),
    owner: r.owner,
  };
}

/** The canonical JSON form of a resolved layout; {@link resolveLayout} reads it back unchanged. */
export function layoutToJSON(layout: ResolvedLayout): SystemLayoutJSON {
  const window = (b: { start: bigint; end: bigint }): AddressWindowJSON => ({ base: hex(b.start), size: hex(b.end - b.start + 1n) });
  const ids = (b: { start: bigint; end: bigint }): IdRangeJSON => ({ first: Number(b.start), last: Number(b.end) });
  const p = layout.pools;
  // Key order as in the SystemLayout type, so that printed layouts read top-down.
  return {
    ...(layout.name === undefined ? {} : { name: layout.name }),
    ...(p.pio === undefined ? {} : { pio: window(p.pio) }),
    ...(p.systemMemory === undefined ? {} : { systemMemory: window(p.systemMemory) }),
    mmio32: window(p.mmio32!),
    ...(p.mmio64 === undefined ? {} : { mmio64: window(p.mmio64) }),
    ...(p.pastMmio64 === undefined ? {} : { pastMmio64: window(p.pastMmio64) }),
    legacyIrq: ids(p.legacyIrq!),
    msi: ids(p.msi!),
    instanceId: ids(p.instanceId!),
    reserved: layout.reserved.map(reservationToJSON),
  };
}

// ---- presets -----------------------------------------------------------------------------------

/** The presets, in a stable order; each has its own file under `presets/`, citing its sources. */
const PRESETS: readonly Preset[] = Object.freeze([
  FIRECRACKER_X86_64_PRESET,
  PC_X86_64_PRESET,
  CLOUD_HYPERVISOR_X86_64_PRESET,
  CROSVM_X86_64_PRESET,
  FIRECRACKER_AARCH64_PRESET,
  RISCV64_VIRT_PRESET,
]);

/** The preset names. */
export type LayoutName =
  | "firecracker-x86_64"
  | "pc-x86_64"
  | "cloud-hypervisor-x86_64"
  | "crosvm-x86_64"
  | "firecracker-aarch64"
  | "riscv64-virt";

/** A Firecracker v1.16 x86_64 microVM, all six of its pools; see `presets/firecracker-x86_64.ts`. */
export const FIRECRACKER_X86_64: SystemLayout = FIRECRACKER_X86_64_PRESET.layout(FIRECRACKER_X86_64_PRESET.defaults);
/** QEMU q35 with SeaBIOS and the default 512 MiB of RAM; see `presets/pc-x86_64.ts`. */
export const PC_X86_64: SystemLayout = PC_X86_64_PRESET.layout(PC_X86_64_PRESET.defaults);
/** cloud-hypervisor on x86_64 with its default RAM and a 46-bit guest; see `presets/cloud-hypervisor-x86_64.ts`. */
export const CLOUD_HYPERVISOR_X86_64: SystemLayout = CLOUD_HYPERVISOR_X86_64_PRESET.layout(CLOUD_HYPERVISOR_X86_64_PRESET.defaults);
/** crosvm on x86_64 with its default RAM and a 46-bit guest; see `presets/crosvm-x86_64.ts`. */
export const CROSVM_X86_64: SystemLayout = CROSVM_X86_64_PRESET.layout(CROSVM_X86_64_PRESET.defaults);
/** A Firecracker v1.16 aarch64 microVM; see `presets/firecracker-aarch64.ts`. */
export const FIRECRACKER_AARCH64: SystemLayout = FIRECRACKER_AARCH64_PRESET.layout(FIRECRACKER_AARCH64_PRESET.defaults);
/** QEMU's RISC-V `virt` board with 128 MiB of RAM; see `presets/riscv64-virt.ts`. */
export const RISCV64_VIRT: SystemLayout = RISCV64_VIRT_PRESET.layout(RISCV64_VIRT_PRESET.defaults);

/** The presets by name, each with its default parameters. Frozen: copy one (`{ ...LAYOUTS[name], ... }`) to change it. */
export const LAYOUTS: Readonly<Record<LayoutName, SystemLayout>> = Object.freeze({
  "firecracker-x86_64": FIRECRACKER_X86_64,
  "pc-x86_64": PC_X86_64,
  "cloud-hypervisor-x86_64": CLOUD_HYPERVISOR_X86_64,
  "crosvm-x86_64": CROSVM_X86_64,
  "firecracker-aarch64": FIRECRACKER_AARCH64,
  "riscv64-virt": RISCV64_VIRT,
});

/** The preset names, in a stable order. */
export const layoutNames: readonly LayoutName[] = Object.freeze(PRESETS.map((p) => p.name));

/** The layout a `DefaultSystemAllocator` uses when given none. */
export const DEFAULT_LAYOUT_NAME: LayoutName = "firecracker-x86_64";

function presetNamed(name: unknown): Preset {
  const found = typeof name === "string" ? PRESETS.find((p) => p.name === name) : undefined;
  if (found !== undefined) return found;
  throw new AllocatorError("NotFound", `no layout named ${show(name)}; known layouts: ${layoutNames.join(", ")}`);
}

/**
 * The preset called `name`, describing the machine it imitates: its source, which parameters
 * move its pools, their defaults, its layout and its guest-visible machine.
 *
 * ```ts
 * const pc = getPreset("pc-x86_64");
 * const layout = pc.layout(resolveParameters("pc-x86_64", { ramSize: 8n << 30n }));
 * ```
 * @throws AllocatorError `NotFound` for an unknown name (the message lists the known ones).
 */
export function getPreset(name: string): Preset {
  return presetNamed(name);
}

/**
 * Fills in a preset's default parameters and checks the given ones.
 * @throws AllocatorError `NotFound` (unknown preset), `InvalidArgument` (a parameter the preset
 *   does not take, naming those it takes, or a value out of range).
 */
export function resolveParameters(name: string, parameters: LayoutParameters = {}, path = "parameters"): ResolvedParameters {
  const preset = presetNamed(name);
  if (typeof parameters !== "object" || parameters === null || Array.isArray(parameters)) {
    throw new AllocatorError("InvalidArgument", `${path} must be an object { ramSize?, physAddressBits? }, got ${show(parameters)}`);
  }
  const given = parameters as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (key !== "ramSize" && key !== "physAddressBits") {
      throw new AllocatorError("InvalidArgument", `${path} has unknown field ${JSON.stringify(key)} (parameters are ramSize and physAddressBits)`);
    }
    if (given[key] !== undefined && !preset.parameters.includes(key)) {
      const takes = preset.parameters.length === 0 ? "takes no parameters: its pools are fixed" : `takes only ${preset.parameters.join(" and ")}`;
      throw new AllocatorError("InvalidArgument", `${path}.${key}: preset ${preset.name} ${takes}`);
    }
  }
  let ramSize = preset.defaults.ramSize;
  if (given["ramSize"] !== undefined) {
    ramSize = parseLayoutNumber(given["ramSize"], `${path}.ramSize`);
    const { minRamSize, maxRamSize } = preset.limits;
    if (ramSize % 0x1000n !== 0n || ramSize < minRamSize || ramSize > maxRamSize) {
      throw new AllocatorError(
        "InvalidArgument",
        `${path}.ramSize must be a multiple of 4 KiB from ${hex(minRamSize)} to ${hex(maxRamSize)} for ${preset.name}, got ${hex(ramSize)}`,
      );
    }
  }
  let physAddressBits = preset.defaults.physAddressBits;
  const bits = given["physAddressBits"];
  if (bits !== undefined) {
    const [lo, hi] = preset.limits.physAddressBits;
    if (typeof bits !== "number" || !Number.isInteger(bits) || bits < lo || bits > hi) {
      throw new AllocatorError("InvalidArgument", `${path}.physAddressBits must be an integer from ${lo} to ${hi} for ${preset.name}, got ${show(bits)}`);
    }
    physAddressBits = bits;
  }
  return Object.freeze({ ramSize, physAddressBits });
}

/**
 * The preset called `name`, as a layout; with `parameters`, computed for them (the guest's RAM
 * size moves `pc-x86_64`'s 64-bit window, the physical address width moves cloud-hypervisor's
 * and crosvm's upper bounds).
 *
 * ```ts
 * const sys = new DefaultSystemAllocator(getLayout("pc-x86_64", { ramSize: 0x2_0000_0000n }));
 * ```
 * @throws AllocatorError `NotFound` for an unknown name (the message lists the known ones), and
 *   the errors of {@link resolveParameters}.
 */
export function getLayout(name: string, parameters?: LayoutParameters): SystemLayout {
  const preset = presetNamed(name);
  if (parameters === undefined) return LAYOUTS[preset.name];
  return preset.layout(resolveParameters(preset.name, parameters));
}
