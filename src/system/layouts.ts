/**
 * System layouts: which resource pools a VM has and what is fixed inside them, as plain objects
 * that can be written by hand, read from JSON files and handed to `DefaultSystemAllocator`.
 *
 * A layout names up to six pools:
 *
 * | pool         | kind    | what it hands out                                         |
 * | ------------ | ------- | --------------------------------------------------------- |
 * | `pio`        | address | x86 port I/O, inside [0x0, 0xffff]; optional              |
 * | `mmio32`     | address | MMIO below 4 GiB (32-bit BARs, virtio-mmio slots)         |
 * | `mmio64`     | address | MMIO at or above 4 GiB, above RAM (64-bit BARs); optional |
 * | `legacyIrq`  | id      | pin-based interrupt lines                                 |
 * | `msi`        | id      | GSIs for message-signalled interrupts                     |
 * | `instanceId` | id      | device instance ids; defaults to 0..2^32-1                |
 *
 * and a list of reservations: firmware-fixed ranges, fixed IRQs and holes that are never handed
 * out (`{ pool: "mmio32", start: 0xfec00000, size: 0x1000, owner: "ioapic" }`).
 *
 * Numbers in a layout may be bigints, non-negative safe-integer numbers, or `"0x..."` hex strings
 * (JSON has neither bigints nor hex literals, and addresses read best in hex); underscores may
 * separate hex digits (`"0xfec0_0000"`). {@link resolveLayout} validates a layout and
 * {@link layoutToJSON} writes its canonical JSON form.
 */
import { AllocatorError } from "../core/errors.js";
import { formatRange, type RangeKind } from "../core/range.js";
import { hex, toU64, U32_MAX, U64_MAX } from "../core/u64.js";

/** The pools of a system allocator. */
export type PoolName = "pio" | "mmio32" | "mmio64" | "legacyIrq" | "msi" | "instanceId";
/** Pools of address ranges. */
export type AddressPoolName = "pio" | "mmio32" | "mmio64";
/** Pools of ids. */
export type IdPoolName = "legacyIrq" | "msi" | "instanceId";

/** Every pool name, in the order pools are listed in snapshots and reports. */
export const POOL_NAMES: readonly PoolName[] = Object.freeze(["pio", "mmio32", "mmio64", "legacyIrq", "msi", "instanceId"]);

/** True when `pool` is an address pool. */
export function isAddressPool(pool: PoolName): pool is AddressPoolName {
  return pool === "pio" || pool === "mmio32" || pool === "mmio64";
}

/** A number in a layout: a bigint, a non-negative safe integer, or a `"0x..."` hex string. */
export type LayoutNumber = bigint | number | string;

/** An address pool: `size` addresses from `base`. */
export interface AddressWindowLayout {
  readonly base: LayoutNumber;
  readonly size: LayoutNumber;
}

/** An id pool: the ids `first..=last`. */
export interface IdRangeLayout {
  readonly first: LayoutNumber;
  readonly last: LayoutNumber;
}

/**
 * Space that is never handed out: `start` plus either `end` (inclusive) or `size`. In an id
 * pool both may be left out to reserve the single id `start`.
 */
export interface ReservationLayout {
  readonly pool: PoolName;
  readonly start: LayoutNumber;
  readonly end?: LayoutNumber;
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
  /** MMIO below 4 GiB; must end at or below 0xffff_ffff. */
  readonly mmio32: AddressWindowLayout;
  /** MMIO at or above 4 GiB. Leave out when the VM has no 64-bit MMIO space. */
  readonly mmio64?: AddressWindowLayout;
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
  readonly base: string;
  readonly size: string;
}

/** An id pool in canonical JSON form. */
export interface IdRangeJSON {
  readonly first: number;
  readonly last: number;
}

/** A reservation in canonical JSON form: hex strings in address pools, numbers in id pools. */
export interface ReservationJSON {
  readonly pool: PoolName;
  readonly start: string | number;
  readonly end: string | number;
  readonly owner: string;
}

/** The canonical JSON form of a layout: every default filled in, addresses as hex strings. */
export interface SystemLayoutJSON {
  readonly name?: string;
  readonly pio?: AddressWindowJSON;
  readonly mmio32: AddressWindowJSON;
  readonly mmio64?: AddressWindowJSON;
  readonly legacyIrq: IdRangeJSON;
  readonly msi: IdRangeJSON;
  readonly instanceId: IdRangeJSON;
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
  if (pool === "mmio32" || pool === "mmio64") return "mem";
  if (pool === "legacyIrq" || pool === "msi") return "irq";
  return "id";
}

/**
 * The most ids one reservation may cover. Reserved ids are held one by one, so a reservation of
 * the whole 2^32 id space would take minutes and gigabytes; no real machine fixes that many.
 */
export const MAX_ID_RESERVATION = 65536;

const FOUR_GIB = 0x1_0000_0000n;
const LAYOUT_KEYS = ["name", "pio", "mmio32", "mmio64", "legacyIrq", "msi", "instanceId", "reserved"];
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
  if (pool === "mmio64" && base < FOUR_GIB) {
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
 *   `legacyIrq` and `msi`, a reservation in a pool the layout does not have), `InvalidSize`
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
  for (const pool of ["pio", "mmio32", "mmio64"] as const) {
    const w = r[pool];
    if (w === undefined) {
      if (pool === "mmio32") throw new AllocatorError("InvalidArgument", `${name}.mmio32 is missing: every layout needs a 32-bit MMIO pool`);
      continue;
    }
    pools[pool] = addressWindow(w, `${name}.${pool}`, pool);
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
    mmio32: window(p.mmio32!),
    ...(p.mmio64 === undefined ? {} : { mmio64: window(p.mmio64) }),
    legacyIrq: ids(p.legacyIrq!),
    msi: ids(p.msi!),
    instanceId: ids(p.instanceId!),
    reserved: layout.reserved.map(reservationToJSON),
  };
}

// ---- presets -----------------------------------------------------------------------------------

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/**
 * A Firecracker-like x86_64 microVM. Numbers from Firecracker's `src/vmm/src/arch/x86_64/layout.rs`
 * as of its 2025 releases with PCI support (the constants have moved between releases):
 *
 * - `MMIO32_MEM_START` = 4 GiB - 1 GiB = 0xc000_0000. Firecracker hands out 32-bit device MMIO
 *   from `MEM_32BIT_DEVICES_START` = 0xc000_1000 (after one 4 KiB `MMIO_LEN` slot for the boot
 *   timer device at `BOOT_DEVICE_MEM_START` = 0xc000_0000) up to `PCI_MMCONFIG_START` =
 *   `IOAPIC_ADDR` - 256 MiB = 0xeec0_0000, the 256 MiB PCIe MMCONFIG window. The pool here ends
 *   below `IOAPIC_ADDR` = 0xfec0_0000, so the system area above it (IOAPIC, LAPIC 0xfee0_0000,
 *   the KVM TSS at 0xfffb_d000) is outside the pool and never handed out; the boot timer slot and
 *   MMCONFIG are reservations inside it.
 * - `MMIO64_MEM_START` = 256 GiB, `MMIO64_MEM_SIZE` = 256 GiB.
 * - Legacy IRQs `GSI_LEGACY_START`..`GSI_LEGACY_END` = 5..23 (0-4 are taken by the PIC, timer,
 *   i8042 and serial ports); MSI `GSI_MSI_START`..`GSI_MSI_END` = 24..4095 (4095: KVM's
 *   `KVM_MAX_IRQ_ROUTES` = 4096).
 * - Port I/O: the whole 16-bit space. Firecracker allocates no ports; its legacy devices sit at
 *   fixed ISA ports (i8042 at 0x60, COM1-COM4 at 0x3f8/0x2f8/0x3e8/0x2e8, PCI config at 0xcf8),
 *   so 0x0-0xfff is reserved for them and ports are handed out from 0x1000, the lowest port PCI
 *   I/O BARs conventionally use.
 */
export const FIRECRACKER_X86_64: SystemLayout = deepFreeze({
  name: "firecracker-x86_64",
  pio: { base: 0x0, size: 0x1_0000 },
  mmio32: { base: 0xc000_0000, size: 0xfec0_0000 - 0xc000_0000 },
  mmio64: { base: 256 * GiB, size: 256 * GiB },
  legacyIrq: { first: 5, last: 23 },
  msi: { first: 24, last: 4095 },
  instanceId: { first: 0, last: U32_MAX },
  reserved: [
    { pool: "pio", start: 0x0, end: 0xfff, owner: "isa-legacy" },
    { pool: "mmio32", start: 0xc000_0000, size: 4 * KiB, owner: "boot-timer" },
    { pool: "mmio32", start: 0xeec0_0000, size: 256 * MiB, owner: "pci-mmconfig" },
  ],
} satisfies SystemLayout);

/**
 * An x86_64 PC modelled on QEMU's q35 machine with SeaBIOS, with at most 2.75 GiB of RAM below
 * 4 GiB (QEMU moves low RAM down to 2 GiB for larger guests, which this preset does not model):
 *
 * - `mmio32` = [0xb000_0000, 0xffff_ffff]: everything above low RAM.
 *   - 0xb000_0000, 256 MiB: PCIe MMCONFIG/ECAM (`MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT` in QEMU's
 *     q35, 256 MiB for 256 buses).
 *   - [0xc000_0000, 0xfebf_ffff] stays free: the 32-bit PCI hole QEMU's q35 reports (from the end
 *     of MMCONFIG to the IOAPIC; SeaBIOS's `BUILD_PCIMEM_END` = 0xfec0_0000 likewise).
 *   - 0xfec0_0000, 4 KiB: IOAPIC (`IO_APIC_DEFAULT_ADDRESS`). 0xfed0_0000, 1 KiB: HPET (QEMU's
 *     `HPET_BASE`). 0xfee0_0000, 1 MiB: local APIC and the MSI address window (writes there are
 *     interrupts, never device MMIO). 0xff00_0000, 16 MiB: firmware flash (the top-16 MiB BIOS
 *     decode range of PC chipsets; QEMU maps SeaBIOS or OVMF at its top). The gaps between these
 *     are reserved as `system-area`: firmware never places BARs above 0xfec0_0000.
 * - `mmio64`: 64 GiB, 32 GiB. QEMU places its 64-bit PCI hole right after RAM above 4 GiB with a
 *   default size of 32 GiB (`Q35_PCI_HOST_HOLE64_SIZE_DEFAULT` = 1 << 35); the base here assumes
 *   at most 60 GiB of RAM above 4 GiB.
 * - Port I/O: 0x0-0xfff reserved for ISA/legacy devices (PIC, PIT, i8042, RTC, serial ports, ACPI
 *   PM at 0x600 on q35, PCI config at 0xcf8); ports are handed out from 0x1000 as on PCs (SeaBIOS
 *   itself places I/O BARs from 0xc000 when they fit).
 * - Legacy IRQs 5..23 (IOAPIC pins; 0-4 are timer, keyboard, cascade and COM2/COM1), with ISA
 *   lines of q35 reserved: 8 RTC, 9 ACPI SCI, 12 PS/2 mouse. MSI GSIs 24..4095 as under KVM
 *   (`KVM_MAX_IRQ_ROUTES` = 4096).
 */
export const PC_X86_64: SystemLayout = deepFreeze({
  name: "pc-x86_64",
  pio: { base: 0x0, size: 0x1_0000 },
  mmio32: { base: 0xb000_0000, size: 0x5000_0000 },
  mmio64: { base: 64 * GiB, size: 32 * GiB },
  legacyIrq: { first: 5, last: 23 },
  msi: { first: 24, last: 4095 },
  instanceId: { first: 0, last: U32_MAX },
  reserved: [
    { pool: "pio", start: 0x0, end: 0xfff, owner: "isa-legacy" },
    { pool: "mmio32", start: 0xb000_0000, size: 256 * MiB, owner: "pci-mmconfig" },
    { pool: "mmio32", start: 0xfec0_0000, size: 4 * KiB, owner: "ioapic" },
    { pool: "mmio32", start: 0xfec0_1000, end: 0xfecf_ffff, owner: "system-area" },
    { pool: "mmio32", start: 0xfed0_0000, size: 1 * KiB, owner: "hpet" },
    { pool: "mmio32", start: 0xfed0_0400, end: 0xfedf_ffff, owner: "system-area" },
    { pool: "mmio32", start: 0xfee0_0000, size: 1 * MiB, owner: "lapic" },
    { pool: "mmio32", start: 0xfef0_0000, end: 0xfeff_ffff, owner: "system-area" },
    { pool: "mmio32", start: 0xff00_0000, size: 16 * MiB, owner: "firmware" },
    { pool: "legacyIrq", start: 8, owner: "rtc" },
    { pool: "legacyIrq", start: 9, owner: "acpi-sci" },
    { pool: "legacyIrq", start: 12, owner: "ps2-mouse" },
  ],
} satisfies SystemLayout);

/** The preset names. */
export type LayoutName = "firecracker-x86_64" | "pc-x86_64";

/** The presets by name. Frozen: copy one (`{ ...LAYOUTS[name], ... }`) to change it. */
export const LAYOUTS: Readonly<Record<LayoutName, SystemLayout>> = Object.freeze({
  "firecracker-x86_64": FIRECRACKER_X86_64,
  "pc-x86_64": PC_X86_64,
});

/** The preset names, in a stable order. */
export const layoutNames: readonly LayoutName[] = Object.freeze(["firecracker-x86_64", "pc-x86_64"]);

/** The layout a `DefaultSystemAllocator` uses when given none. */
export const DEFAULT_LAYOUT_NAME: LayoutName = "firecracker-x86_64";

/**
 * The preset called `name`.
 * @throws AllocatorError `NotFound` for an unknown name (the message lists the known ones).
 */
export function getLayout(name: string): SystemLayout {
  if (typeof name === "string" && Object.hasOwn(LAYOUTS, name)) return LAYOUTS[name as LayoutName];
  throw new AllocatorError("NotFound", `no layout named ${show(name)}; known layouts: ${layoutNames.join(", ")}`);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
