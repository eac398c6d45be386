/**
 * Base address registers: what a device declares, how the register encodes it, and which pool
 * a BAR's space comes from.
 *
 * A BAR is an I/O BAR (a power of two from 4 to 256 ports, PCI 3.0 section 6.2.5.1) or a memory
 * BAR (a power of two of at least 16 bytes; 32-bit BARs at most 2 GiB, 64-bit ones at most
 * 2^63), always placed at a multiple of its size. The register's writable bits are exactly the
 * address bits at or above the size, so the sizing protocol falls out of the masks: writing all
 * ones reads back `~(size - 1)` with the read-only flag bits, and writing a base back restores it.
 *
 * I/O BARs decode 16 bits (the upper half of the register reads zero, as the specification allows
 * for devices on x86, whose port space is 64 KiB).
 *
 * Pools, by kind:
 * - I/O BARs from the PCI port window (SeaBIOS starts at 0xc000);
 * - non-prefetchable memory BARs below 4 GiB, 64-bit ones too (root-port non-prefetchable
 *   windows are 32-bit only, Firecracker's reason for moving them there in 2026);
 * - prefetchable 64-bit BARs from 64-bit MMIO, falling back to 32-bit space when it is full
 *   (never the reverse, crosvm's rule); prefetchable 32-bit BARs below 4 GiB.
 */
import { AllocatorError } from "../core/errors.js";
import { hex, isPowerOfTwo, toU64, type U64Input } from "../core/u64.js";
import type { MmioRequest, PioRequest } from "../devices/device.js";

/** Number of BAR registers in a type-0 header. */
export const PCI_BAR_COUNT = 6;

/** What a device declares about one BAR. */
export type PciBarSpec =
  | {
      /** `io`: a port-I/O BAR (one register, 16 address bits decoded). */
      readonly kind: "io";
      /** Register number 0-5; defaults to the next free one. */
      readonly index?: number;
      /** Ports: a power of two from 4 to 256. */
      readonly size: U64Input;
    }
  | {
      /** `mem32` takes one register, `mem64` two (this one and the next). */
      readonly kind: "mem32" | "mem64";
      /**
       * Register number 0-5 (at most 4 for `mem64`, which also takes the next one); defaults to the
       * next free one.
       */
      readonly index?: number;
      /** Bytes: a power of two, at least 16; at most 2 GiB for `mem32`, 2^63 for `mem64`. */
      readonly size: U64Input;
      /**
       * True for prefetchable memory (no read side effects): a 64-bit prefetchable BAR goes to
       * 64-bit MMIO, falling back to 32-bit space. Defaults to false.
       */
      readonly prefetchable?: boolean;
    };

/** A validated BAR. */
export interface PciBar {
  /** The register number, 0-5 (a `mem64` BAR also takes `index + 1`). */
  readonly index: number;
  /** The BAR's kind, which sets the register's flag bits and its pool. */
  readonly kind: "io" | "mem32" | "mem64";
  /**
   * The size: ports for `io`, bytes otherwise; a power of two, and the BAR is placed at a multiple
   * of it.
   */
  readonly size: bigint;
  /** True for a prefetchable memory BAR; always false for `io`. */
  readonly prefetchable: boolean;
}

/** The size and the pool rules of each kind, for messages. */
const LIMITS = { io: { min: 4n, max: 256n }, mem32: { min: 16n, max: 1n << 31n }, mem64: { min: 16n, max: 1n << 63n } } as const;

/**
 * Checks a device's BAR list: kinds, sizes, indexes (a 64-bit BAR also takes the next register,
 * and must not start at register 5), no register used twice.
 * @returns the BARs in register order.
 * @throws AllocatorError `InvalidArgument` or `InvalidSize` naming the BAR.
 */
export function normalizeBars(bars: unknown): PciBar[] {
  if (bars === undefined) return [];
  if (!Array.isArray(bars)) throw new AllocatorError("InvalidArgument", "bars must be an array of BAR specs");
  const used: (number | undefined)[] = new Array<number | undefined>(PCI_BAR_COUNT).fill(undefined);
  const out: PciBar[] = [];
  let next = 0;
  for (let i = 0; i < bars.length; i++) {
    const at = `bars[${i}]`;
    const b: unknown = bars[i];
    if (typeof b !== "object" || b === null) throw new AllocatorError("InvalidArgument", `${at} must be an object { kind, size, index?, prefetchable? }`);
    const r = b as Record<string, unknown>;
    const kind = r["kind"];
    if (kind !== "io" && kind !== "mem32" && kind !== "mem64") throw new AllocatorError("InvalidArgument", `${at}.kind must be "io", "mem32" or "mem64", got ${JSON.stringify(kind)}`);
    for (const k of Object.keys(r)) {
      if (!["kind", "index", "size", ...(kind === "io" ? [] : ["prefetchable"])].includes(k)) {
        throw new AllocatorError("InvalidArgument", `${at} (${kind}) has unknown field ${JSON.stringify(k)}`);
      }
    }
    let index = next;
    if (r["index"] !== undefined) {
      const v = r["index"];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= PCI_BAR_COUNT) {
        throw new AllocatorError("InvalidArgument", `${at}.index must be an integer from 0 to 5, got ${String(v)}`);
      }
      index = v;
    }
    if (index >= PCI_BAR_COUNT) throw new AllocatorError("InvalidArgument", `${at} has no register left (a type-0 header has 6 BARs)`);
    const width = kind === "mem64" ? 2 : 1;
    if (index + width > PCI_BAR_COUNT) throw new AllocatorError("InvalidArgument", `${at}: a 64-bit BAR takes two registers and cannot start at BAR 5`);
    for (let j = index; j < index + width; j++) {
      if (used[j] !== undefined) throw new AllocatorError("InvalidArgument", `${at}: register BAR ${j} is already used by bars[${used[j]}]`);
    }
    const size = toU64(r["size"], `${at}.size`);
    const { min, max } = LIMITS[kind];
    if (!isPowerOfTwo(size) || size < min || size > max) {
      throw new AllocatorError("InvalidSize", `${at}.size must be a power of two from ${hex(min)} to ${hex(max)} for a ${kind} BAR, got ${hex(size)}`);
    }
    const p = r["prefetchable"];
    if (p !== undefined && typeof p !== "boolean") throw new AllocatorError("InvalidArgument", `${at}.prefetchable must be a boolean`);
    for (let j = index; j < index + width; j++) used[j] = i;
    out.push(Object.freeze({ index, kind, size, prefetchable: p === true }));
    next = index + width;
  }
  return out.sort((a, b) => a.index - b.index);
}

/** The read-only low bits of the register: space indicator, type, prefetchable. */
export function barFlags(bar: PciBar): number {
  if (bar.kind === "io") return 0x1;
  return (bar.kind === "mem64" ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
}

/** The writable bits of the BAR's first register (the low dword). */
export function barLowMask(bar: PciBar): number {
  const sizeMask = bar.size >= 1n << 32n ? 0 : Number(((1n << 32n) - bar.size) & 0xffff_ffffn);
  return (bar.kind === "io" ? sizeMask & 0xffff & ~0x3 : sizeMask & ~0xf) >>> 0;
}

/** The writable bits of a 64-bit BAR's second register (the high dword). */
export function barHighMask(bar: PciBar): number {
  if (bar.kind !== "mem64") return 0;
  return Number((~(bar.size - 1n) >> 32n) & 0xffff_ffffn) >>> 0;
}

/** The base a register pair encodes: the address bits of `low` (and `high` for a 64-bit BAR). */
export function barBase(bar: PciBar, low: number, high: number): bigint {
  const lowBits = BigInt((low & barLowMask(bar)) >>> 0);
  return bar.kind === "mem64" ? (BigInt((high & barHighMask(bar)) >>> 0) << 32n) | lowBits : lowBits;
}

/**
 * True while the guest sizes the BAR: every writable bit of the low register (or, for a 64-bit
 * BAR, of the high one) is set. No real placement has all those bits set (it would be the very
 * top of the space: the BIOS area below 4 GiB), so such a value is never mapped or reported.
 */
export function barIsSizing(bar: PciBar, low: number, high: number): boolean {
  const lm = barLowMask(bar);
  if (lm !== 0 && ((low & lm) >>> 0) === lm) return true;
  const hm = barHighMask(bar);
  return bar.kind === "mem64" && hm !== 0 && ((high & hm) >>> 0) === hm;
}

/** The inclusive port window I/O BARs are allocated in (and may be moved in). */
export interface PciIoWindow {
  /** Lowest port an I/O BAR may start at, inclusive. */
  readonly min: U64Input;
  /**
   * Highest port an I/O BAR's last port may be at, inclusive (at most 0xffff: I/O BARs decode 16
   * bits).
   */
  readonly max: U64Input;
}

/**
 * The resource request that places a BAR in its pool (see the module documentation), naturally
 * aligned. `ioWindow` bounds I/O BARs; the device manager keeps that window for later moves.
 */
export function barRequest(bar: PciBar, ioWindow: { readonly min: bigint; readonly max: bigint }): PioRequest | MmioRequest {
  if (bar.kind === "io") return { kind: "pio", size: bar.size, alignment: bar.size, window: ioWindow };
  if (bar.kind === "mem64" && bar.prefetchable) return { kind: "mmio", size: bar.size, alignment: bar.size, mmio64: true, allowFallback: true };
  // The 32-bit pool: non-prefetchable windows are 32-bit. No window, so that a guest may still move
  // a 64-bit BAR above 4 GiB (a 32-bit register cannot encode more anyway).
  return { kind: "mmio", size: bar.size, alignment: bar.size };
}

/** How Linux prints a BAR's kind: `io`, `mem`, `mem 64bit pref`. */
export function describeBarKind(bar: PciBar): string {
  if (bar.kind === "io") return "io";
  return ["mem", ...(bar.kind === "mem64" ? ["64bit"] : []), ...(bar.prefetchable ? ["pref"] : [])].join(" ");
}
