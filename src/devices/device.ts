/**
 * What a device looks like to the buses and the device manager, and the resource requests a
 * device makes when it is registered.
 *
 * Requests are plain objects so that a device can return a literal from `resourceRequest()`;
 * {@link normalizeResourceRequests} checks them once, up front, so that a malformed request never
 * reaches an allocator callback.
 */
import { AllocatorError } from "../core/errors.js";
import { hex, isPowerOfTwo, toU32, toU64, U64_MAX, type U32Input, type U64Input } from "../core/u64.js";
import { MMIO_POOLS, type MmioPool, type Placement } from "../system/allocation-callbacks.js";

/**
 * An emulated device the buses dispatch guest accesses to. A device chooses its shape: the
 * generic byte-buffer methods {@link Device.read} / {@link Device.write}, the width methods
 * (`read8` ... `write32`, which take and return numbers and cost no allocation), or both. The bus
 * adapts whatever is missing, little-endian: a 4-byte buffer access to a width device calls
 * `read32`, a `read32` of a generic device passes it a 4-byte buffer, a width the device lacks is
 * composed of narrower ones (`read32` as two `read16`s, or four `read8`s), and a buffer longer
 * than 4 bytes is served in 4-, 2- and 1-byte pieces at ascending offsets. An access the device
 * has no way to serve (a 1-byte access to a device with only `read32`) is served as unmapped with
 * the reason `"unsupported"`. When a device has both shapes, buffer accesses go to
 * `read`/`write` and width accesses to the width methods, and a missing width prefers the
 * generic method over composition, so one guest access stays one device call.
 *
 * `base` is the first address of the mapping the access hit (a device mapped at several ranges
 * can tell them apart by it) and `offset` is the distance of the access from `base`. An access
 * always lies entirely inside the mapping: the bus serves one that runs past its end as unmapped
 * without calling the device.
 *
 * Width methods receive the offset from the mapping's base as a number, and values as unsigned
 * numbers of their width; what they return is truncated to their width (`-1` from `read32` is
 * 0xffffffff). A `read32` that returns a signed int32 (`value | 0`) spares V8 a heap number for
 * values at or above 2^31 when the call is not inlined. The methods are called with the device as
 * `this`.
 *
 * @example
 * ```ts
 * const rtc: Device = {
 *   name: "cmos",
 *   index: 0,
 *   read8(offset: number): number { return offset === 1 ? 0x20 : this.index; },
 *   write8(offset: number, value: number): void { if (offset === 0) this.index = value & 0x7f; },
 * } as Device & { index: number };
 * ```
 */
export interface Device {
  /** Fills `data` with `data.length` bytes read at `base + offset`. */
  read?(base: bigint, offset: bigint, data: Uint8Array): void;
  /** Consumes `data.length` bytes written at `base + offset`. */
  write?(base: bigint, offset: bigint, data: Uint8Array): void;
  /** One byte at `offset` from the mapping's base. */
  read8?(offset: number): number;
  /** Two bytes, little-endian, at `offset` from the mapping's base. */
  read16?(offset: number): number;
  /** Four bytes, little-endian, at `offset` from the mapping's base. */
  read32?(offset: number): number;
  /** Writes the byte `value` (0..0xff) at `offset` from the mapping's base. */
  write8?(offset: number, value: number): void;
  /** Writes the 16-bit `value` at `offset`. */
  write16?(offset: number, value: number): void;
  /** Writes the 32-bit `value` (0..0xffffffff) at `offset`. */
  write32?(offset: number, value: number): void;
  /** Short name used in owner strings and error messages (`virtio-blk`). Defaults to `device`. */
  readonly name?: string;
  /** The resources the device needs; used by `DeviceManager.fullRegisterDevice` when no list is passed. */
  resourceRequest?(): readonly ResourceRequest[];
}

/** The methods by which a {@link Device} can be reached; it needs at least one. */
export const DEVICE_METHODS: readonly string[] = Object.freeze(["read", "write", "read8", "read16", "read32", "write8", "write16", "write32"]);

/**
 * True when `device` is an object with at least one of the {@link DEVICE_METHODS}. A direction
 * or width it lacks is adapted or served as unmapped (see {@link Device}), so a read-only device
 * needs no write method; an object with none of them is a mistake.
 */
export function isDevice(device: unknown): device is Device {
  if (typeof device !== "object" || device === null) return false;
  const d = device as Record<string, unknown>;
  return DEVICE_METHODS.some((m) => typeof d[m] === "function");
}

/** An inclusive address window a placement must stay inside. */
export interface RequestWindow {
  /** Lowest address (or port) the range may start at, inclusive; a bigint or safe integer u64. */
  readonly min: U64Input;
  /** Highest address (or port) the range's last byte may be at, inclusive; not below `min`. */
  readonly max: U64Input;
}

/** A range of port-I/O space. */
export interface PioRequest {
  /** `"pio"`: ports, held through the `pio` callback and mapped on the PIO bus. */
  readonly kind: "pio";
  /** Number of ports, at least 1. */
  readonly size: U64Input;
  /** Power of two from 1 to 2^63; defaults to 1. */
  readonly alignment?: U64Input;
  /** Firmware-assigned base: held exactly (through the callback when there is one) and mapped. */
  readonly fixed?: U64Input;
  /** The range must lie inside [min, max]. */
  readonly window?: RequestWindow;
  /** Lowest (`"first"`, the default) or highest (`"last"`) fitting address. */
  readonly placement?: Placement;
}

/** A range of memory-mapped I/O space. */
export interface MmioRequest {
  /** `"mmio"`: guest-physical addresses, held through the `mmio` callback, mapped on the MMIO bus. */
  readonly kind: "mmio";
  /** Number of bytes, at least 1. */
  readonly size: U64Input;
  /** Power of two from 1 to 2^63; defaults to 1. */
  readonly alignment?: U64Input;
  /** Firmware-assigned base: held exactly (through the callback when there is one) and mapped. */
  readonly fixed?: U64Input;
  /** The range must lie inside [min, max]. */
  readonly window?: RequestWindow;
  /** Place in 64-bit MMIO space rather than below 4 GiB. */
  readonly mmio64?: boolean;
  /** With `mmio64`: fall back to 32-bit space when 64-bit space is full. */
  readonly allowFallback?: boolean;
  /**
   * The memory pool to place in (`"pastMmio64"` for a pmem backing region, `"systemMemory"` for
   * an ACPI table); `mmio64: true` is the same as `pool: "mmio64"`. Defaults to 32-bit MMIO.
   */
  readonly pool?: MmioPool;
  /** Lowest (`"first"`, the default) or highest (`"last"`) fitting address. */
  readonly placement?: Placement;
}

/** One legacy (pin-based) interrupt line. */
export interface IrqRequest {
  /** `"irq"`: one legacy line, held through the `irq` callback (legacy pool). */
  readonly kind: "irq";
  /** Firmware-assigned line: held exactly (through the irq callback when there is one). */
  readonly fixed?: U32Input;
  /**
   * The line may be shared with other devices that also say so (Firecracker's COM1 and COM3,
   * PCI INTx lines); it is held once and freed when its last holder unplugs. Two holders of one
   * line that do not both share it are an `Overlap`.
   */
  readonly shared?: boolean;
}

/** `count` message-signalled interrupts (GSIs). */
export interface MsiRequest {
  /** `"msi"`: GSIs, held through the `irq` callback with `pool: "msi"`. */
  readonly kind: "msi";
  /** Number of vectors, from 1 to {@link MAX_MSI_VECTORS}. */
  readonly count: U32Input;
  /** Firmware-assigned GSIs, exactly `count` distinct values: recorded as is. */
  readonly fixed?: readonly U32Input[];
}

/** The device's instance id. One is always assigned, whether requested or not. */
export interface InstanceIdRequest {
  /** `"instanceId"`: the id the device is known by, held through the `deviceId` callback. */
  readonly kind: "instanceId";
  /** Use exactly this id instead of asking the device-id allocator. */
  readonly fixed?: U32Input;
}

/** Any resource request. */
export type ResourceRequest = PioRequest | MmioRequest | IrqRequest | MsiRequest | InstanceIdRequest;

/** The largest MSI `count`: an MSI-X table holds at most 2048 entries. */
export const MAX_MSI_VECTORS = 2048;

/** A validated address request; every number is an exact bigint. */
export interface NormalizedAddressRequest {
  /** Which request this was: a port range or an MMIO range. */
  readonly kind: "pio" | "mmio";
  /** Position in the caller's list, for messages. */
  readonly index: number;
  /** Number of ports or bytes, at least 1. */
  readonly size: bigint;
  /**
   * The power-of-two alignment asked for, or `undefined` when none was (placement then aligns to
   * 1).
   */
  readonly alignment: bigint | undefined;
  /**
   * The firmware-assigned base, checked to be aligned, inside `window` and to end by 2^64-1;
   * `undefined` when the allocator places the range.
   */
  readonly fixed: bigint | undefined;
  /**
   * The window asked for, checked to have `min <= max`; `undefined` when none was.
   * @property min Lowest address the range may start at, inclusive.
   * @property max Highest address the range's last byte may be at, inclusive.
   */
  readonly window: { readonly min: bigint; readonly max: bigint } | undefined;
  /**
   * True when the range goes to 64-bit MMIO space (`mmio64: true` or `pool: "mmio64"`); always
   * false for PIO.
   */
  readonly mmio64: boolean;
  /** True when a full 64-bit space may fall back to 32-bit space; only ever true with `mmio64`. */
  readonly allowFallback: boolean;
  /** The pool named by `pool` (or `"mmio64"` for `mmio64: true`); undefined for the default. */
  readonly pool: MmioPool | undefined;
  /** Lowest (`"first"`, the default when none was given) or highest (`"last"`) fitting address. */
  readonly placement: Placement;
}

/** A validated IRQ or instance-id request. */
export interface NormalizedIdRequest {
  /** Which request this was: a legacy interrupt line or the instance id. */
  readonly kind: "irq" | "instanceId";
  /** Position in the caller's list, for messages. */
  readonly index: number;
  /** The firmware-assigned line or id, a u32; `undefined` when the allocator picks one. */
  readonly fixed: number | undefined;
  /** IRQs only: the line may be shared. */
  readonly shared: boolean;
}

/** A validated MSI request. */
export interface NormalizedMsiRequest {
  /** `"msi"`, as in {@link MsiRequest}. */
  readonly kind: "msi";
  /** Position in the caller's list, for messages. */
  readonly index: number;
  /** Number of vectors, from 1 to {@link MAX_MSI_VECTORS}. */
  readonly count: number;
  /**
   * The firmware-assigned GSIs, exactly `count` distinct u32 values, recorded as is; `undefined`
   * when the allocator picks them.
   */
  readonly fixed: readonly number[] | undefined;
}

/** A request after {@link normalizeResourceRequests}. */
export type NormalizedResourceRequest = NormalizedAddressRequest | NormalizedIdRequest | NormalizedMsiRequest;

/** The fields each kind of {@link ResourceRequest} may have; anything else is rejected. */
export const REQUEST_FIELDS: Readonly<Record<ResourceRequest["kind"], readonly string[]>> = {
  pio: ["kind", "size", "alignment", "fixed", "window", "placement"],
  mmio: ["kind", "size", "alignment", "fixed", "window", "mmio64", "allowFallback", "pool", "placement"],
  irq: ["kind", "fixed", "shared"],
  msi: ["kind", "count", "fixed"],
  instanceId: ["kind", "fixed"],
};
for (const fields of Object.values(Object.freeze(REQUEST_FIELDS))) Object.freeze(fields); // read-only: validation reads it

function invalidArgument(message: string): AllocatorError {
  return new AllocatorError("InvalidArgument", message);
}

function optionalBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw invalidArgument(`${name} must be a boolean, got ${typeof value}`);
  return value;
}

function normalizeAddress(req: Record<string, unknown>, kind: "pio" | "mmio", index: number, at: string): NormalizedAddressRequest {
  const size = toU64(req["size"], `${at}.size`);
  if (size === 0n) throw new AllocatorError("InvalidSize", `${at}.size must be at least 1`);
  let alignment: bigint | undefined;
  if (req["alignment"] !== undefined) {
    alignment = toU64(req["alignment"], `${at}.alignment`);
    if (!isPowerOfTwo(alignment)) {
      throw new AllocatorError("InvalidAlignment", `${at}.alignment must be a power of two from 1 to 2^63, got ${hex(alignment)}`);
    }
  }
  let window: { min: bigint; max: bigint } | undefined;
  const w = req["window"];
  if (w !== undefined) {
    if (typeof w !== "object" || w === null) throw invalidArgument(`${at}.window must be an object { min, max }`);
    const min = toU64((w as Record<string, unknown>)["min"], `${at}.window.min`);
    const max = toU64((w as Record<string, unknown>)["max"], `${at}.window.max`);
    if (min > max) throw new AllocatorError("InvalidRange", `${at}.window: min ${hex(min)} is above max ${hex(max)}`);
    window = { min, max };
  }
  let fixed: bigint | undefined;
  if (req["fixed"] !== undefined) {
    fixed = toU64(req["fixed"], `${at}.fixed`);
    if (alignment !== undefined && fixed % alignment !== 0n) {
      throw new AllocatorError("UnalignedAddress", `${at}.fixed ${hex(fixed)} is not a multiple of the alignment ${hex(alignment)}`);
    }
    if (size - 1n > U64_MAX - fixed) {
      throw new AllocatorError("Overflow", `${at}: range at ${hex(fixed)} of size ${hex(size)} would end past 0xffffffffffffffff`);
    }
    if (window !== undefined && (fixed < window.min || fixed + size - 1n > window.max)) {
      throw new AllocatorError(
        "OutOfRange",
        `${at}.fixed ${hex(fixed)} of size ${hex(size)} is outside the window ${hex(window.min)}-${hex(window.max)}`,
      );
    }
  }
  let mmio64 = false;
  let allowFallback = false;
  let pool: MmioPool | undefined;
  if (kind === "mmio") {
    mmio64 = optionalBoolean(req["mmio64"], `${at}.mmio64`);
    allowFallback = optionalBoolean(req["allowFallback"], `${at}.allowFallback`);
    const p = req["pool"];
    if (p !== undefined) {
      if (typeof p !== "string" || !(MMIO_POOLS as readonly string[]).includes(p)) {
        throw invalidArgument(`${at}.pool must be one of ${MMIO_POOLS.map((x) => JSON.stringify(x)).join(", ")}, got ${typeof p === "string" ? JSON.stringify(p) : typeof p}`);
      }
      pool = p as MmioPool;
      if (mmio64 && pool !== "mmio64") throw invalidArgument(`${at} gives mmio64: true and pool ${JSON.stringify(pool)}; give one`);
    }
    if (mmio64) pool = "mmio64";
    // A fallback from 64-bit space means nothing without 64-bit space; saying it is a mistake.
    if (allowFallback && pool !== "mmio64") throw invalidArgument(`${at}.allowFallback requires mmio64: true`);
  }
  const placement = req["placement"] ?? "first";
  if (placement !== "first" && placement !== "last") {
    throw invalidArgument(`${at}.placement must be "first" or "last", got ${typeof placement === "string" ? JSON.stringify(placement) : typeof placement}`);
  }
  return { kind, index, size, alignment, fixed, window, mmio64: pool === "mmio64", allowFallback, pool, placement };
}

/**
 * Checks a list of {@link ResourceRequest}s and returns it with every number converted to its
 * exact form. Unknown properties are rejected so that a typo (`fixd`) cannot silently turn a
 * firmware-assigned resource into an allocated one.
 *
 * @param requests the list; anything else is rejected.
 * @param name how the list is named in messages (`requests[2].size must be ...`).
 * @throws AllocatorError `InvalidArgument` (wrong type, unknown kind or property, a second
 *   instanceId request, a repeated MSI GSI), `InvalidSize` (size or count of 0),
 *   `InvalidAlignment`, `UnalignedAddress` (fixed base not aligned), `Overflow` (fixed range past
 *   2^64-1), `InvalidRange` (window min above max), `OutOfRange` (fixed range outside its window).
 */
export function normalizeResourceRequests(requests: unknown, name = "requests"): NormalizedResourceRequest[] {
  if (!Array.isArray(requests)) throw invalidArgument(`${name} must be an array of resource requests`);
  const out: NormalizedResourceRequest[] = [];
  let sawInstanceId = false;
  const msiGsis = new Set<number>();
  for (let index = 0; index < requests.length; index++) {
    const at = `${name}[${index}]`;
    const req: unknown = requests[index];
    if (typeof req !== "object" || req === null) throw invalidArgument(`${at} must be a resource request object`);
    const r = req as Record<string, unknown>;
    const kind = r["kind"];
    if (typeof kind !== "string" || !Object.hasOwn(REQUEST_FIELDS, kind)) {
      throw invalidArgument(`${at}.kind must be one of "pio", "mmio", "irq", "msi", "instanceId", got ${typeof kind === "string" ? JSON.stringify(kind) : typeof kind}`);
    }
    const k = kind as ResourceRequest["kind"];
    for (const key of Object.keys(r)) {
      if (!REQUEST_FIELDS[k].includes(key)) throw invalidArgument(`${at} (${k}) has unknown property ${JSON.stringify(key)}`);
    }
    switch (k) {
      case "pio":
      case "mmio":
        out.push(normalizeAddress(r, k, index, at));
        break;
      case "irq":
      case "instanceId": {
        if (k === "instanceId") {
          if (sawInstanceId) throw invalidArgument(`${at} is a second instanceId request; a device has one instance id`);
          sawInstanceId = true;
        }
        const fixed = r["fixed"] === undefined ? undefined : toU32(r["fixed"], `${at}.fixed`);
        const shared = k === "irq" ? optionalBoolean(r["shared"], `${at}.shared`) : false;
        out.push({ kind: k, index, fixed, shared });
        break;
      }
      case "msi": {
        const count = toU32(r["count"], `${at}.count`);
        if (count === 0) throw new AllocatorError("InvalidSize", `${at}.count must be at least 1`);
        if (count > MAX_MSI_VECTORS) throw invalidArgument(`${at}.count must be at most ${MAX_MSI_VECTORS}, got ${count}`);
        let fixed: number[] | undefined;
        const f = r["fixed"];
        if (f !== undefined) {
          if (!Array.isArray(f)) throw invalidArgument(`${at}.fixed must be an array of ${count} GSIs`);
          if (f.length !== count) throw invalidArgument(`${at}.fixed must hold count (${count}) GSIs, got ${f.length}`);
          fixed = [];
          for (let j = 0; j < f.length; j++) {
            const gsi = toU32(f[j], `${at}.fixed[${j}]`);
            if (msiGsis.has(gsi)) throw invalidArgument(`${at}.fixed[${j}] repeats GSI ${gsi}`);
            msiGsis.add(gsi);
            fixed.push(gsi);
          }
        }
        out.push({ kind: "msi", index, count, fixed });
        break;
      }
    }
  }
  return out;
}
