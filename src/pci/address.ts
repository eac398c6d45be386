/**
 * PCI addresses: segment (PCI domain), bus, device and function, printed the way Linux prints
 * them (`0000:00:1f.3`).
 *
 * A configuration access identifies a function by its bus, device and function numbers packed
 * into 16 bits (`bus << 8 | device << 3 | function`, the "routing id" or "BDF"); the segment
 * selects one ECAM window. {@link pciAddressKey} packs all four into one number so that tables of
 * functions can be plain arrays and maps keyed by numbers.
 */
import { AllocatorError } from "../core/errors.js";

/** Segments (PCI domains) are 16-bit. */
export const PCI_MAX_SEGMENT = 0xffff;
/** Buses per segment. */
export const PCI_BUSES = 256;
/** Device slots per bus. */
export const PCI_DEVICES_PER_BUS = 32;
/** Functions per device. */
export const PCI_FUNCTIONS_PER_DEVICE = 8;

/** One PCI function. */
export interface PciAddress {
  /** Segment (domain), 0 to 0xffff. */
  readonly segment: number;
  /** Bus, 0 to 255. */
  readonly bus: number;
  /** Device (slot), 0 to 31. */
  readonly device: number;
  /** Function, 0 to 7. */
  readonly function: number;
}

/**
 * What the public API accepts as an address: a {@link PciAddress} (the segment may be left out,
 * meaning 0) or its text form, `"0000:00:1f.3"` or `"00:1f.3"`.
  * @property segment Segment (domain), 0 to 0xffff; 0 when left out.
  * @property bus Bus, 0 to 255.
  * @property device Device (slot), 0 to 31.
  * @property function Function, 0 to 7.
 */
export type PciAddressInput = string | { readonly segment?: number; readonly bus: number; readonly device: number; readonly function: number };

function field(value: unknown, name: string, max: number, at: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new AllocatorError("InvalidArgument", `${at}.${name} must be an integer from 0 to ${max}, got ${typeof value === "number" ? value : typeof value}`);
  }
  return value;
}

/**
 * A validated, frozen {@link PciAddress}.
 * @throws AllocatorError `InvalidArgument` for a field out of range.
 */
export function pciAddress(segment: number, bus: number, device: number, fn: number): PciAddress {
  return toPciAddress({ segment, bus, device, function: fn });
}

/**
 * Reads a {@link PciAddressInput}.
 * @param name how the value is named in messages.
 * @throws AllocatorError `InvalidArgument` for anything that is not a valid address.
 */
export function toPciAddress(value: unknown, name = "address"): PciAddress {
  if (typeof value === "string") return parsePciAddress(value, name);
  if (typeof value !== "object" || value === null) throw new AllocatorError("InvalidArgument", `${name} must be a PCI address ("0000:00:1f.3" or { bus, device, function }), got ${value === null ? "null" : typeof value}`);
  const v = value as Record<string, unknown>;
  for (const k of Object.keys(v)) {
    if (!["segment", "bus", "device", "function"].includes(k)) throw new AllocatorError("InvalidArgument", `${name} has unknown field ${JSON.stringify(k)}`);
  }
  return Object.freeze({
    segment: v["segment"] === undefined ? 0 : field(v["segment"], "segment", PCI_MAX_SEGMENT, name),
    bus: field(v["bus"], "bus", PCI_BUSES - 1, name),
    device: field(v["device"], "device", PCI_DEVICES_PER_BUS - 1, name),
    function: field(v["function"], "function", PCI_FUNCTIONS_PER_DEVICE - 1, name),
  });
}

/**
 * Parses `"ssss:bb:dd.f"` or `"bb:dd.f"` (hex, as Linux prints them; the segment defaults to 0).
 * @throws AllocatorError `InvalidArgument` naming `name`.
 */
export function parsePciAddress(text: string, name = "address"): PciAddress {
  const m = typeof text === "string" ? /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(text) : null;
  const device = m === null ? NaN : parseInt(m[3]!, 16);
  if (m === null || device >= PCI_DEVICES_PER_BUS) {
    throw new AllocatorError("InvalidArgument", `${name} must be a PCI address like "0000:00:1f.3" (segment:bus:device.function, hex, device at most 1f), got ${JSON.stringify(String(text).slice(0, 40))}`);
  }
  return Object.freeze({ segment: m[1] === undefined ? 0 : parseInt(m[1], 16), bus: parseInt(m[2]!, 16), device, function: parseInt(m[4]!, 16) });
}

const hex2 = (n: number): string => n.toString(16).padStart(2, "0");

/** `0000:00:1f.3`. */
export function formatPciAddress(a: PciAddress): string {
  return `${a.segment.toString(16).padStart(4, "0")}:${hex2(a.bus)}:${hex2(a.device)}.${a.function}`;
}

/** `0000:00` (a bus as Linux names it). */
export function formatPciBus(segment: number, bus: number): string {
  return `${segment.toString(16).padStart(4, "0")}:${hex2(bus)}`;
}

/** The 16-bit routing id of a function inside its segment: `bus << 8 | device << 3 | function`. */
export function pciRoutingId(a: PciAddress): number {
  return (a.bus << 8) | (a.device << 3) | a.function;
}

/** One number for a whole address (`segment * 2^16 + routing id`), unique and ordered like the addresses. */
export function pciAddressKey(a: PciAddress): number {
  return a.segment * 0x1_0000 + pciRoutingId(a);
}

/** The address of a {@link pciAddressKey}. */
export function pciAddressOfKey(key: number): PciAddress {
  return Object.freeze({ segment: Math.floor(key / 0x1_0000), bus: (key >> 8) & 0xff, device: (key >> 3) & 0x1f, function: key & 7 });
}
