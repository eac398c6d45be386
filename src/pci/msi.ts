/**
 * The MSI capability (id 0x05), 64-bit, with optional per-vector masking: a function may ask for
 * 1 to 32 vectors (Multiple Message Capable); the guest enables 2^MME of them at once. Their
 * GSIs are held when the guest sets the enable bit (or changes the count while enabled) and given
 * back when it clears it, so that vectors cost nothing while the driver is not using them.
 *
 * Layout: +0 id, +1 next, +2 message control, +4 address (low), +8 address (high), +0xc data,
 * and with per-vector masking +0x10 mask bits, +0x14 pending bits.
 */
import { AllocatorError } from "../core/errors.js";
import type { PciConfigSpace } from "./config-space.js";
import type { PciMsiMessage, PciVectorSource } from "./vectors.js";

/** Capability id of MSI. */
export const PCI_CAP_ID_MSI = 0x05;

/** What a device declares about MSI. */
export interface PciMsiSpec {
  /** Vectors the function can use: 1, 2, 4, 8, 16 or 32. */
  readonly vectors: number;
  /** Per-vector mask and pending bits. Defaults to false. */
  readonly perVectorMask?: boolean;
}

const ENABLE = 0x1;
const IS_64_BIT = 0x80;
const PER_VECTOR_MASK = 0x100;

/**
 * Checks an MSI spec. @throws AllocatorError `InvalidArgument`.
 * @property vectors Vectors the function can use: 1, 2, 4, 8, 16 or 32.
 * @property perVectorMask Per-vector mask and pending bits; false when the spec left it out.
 */
export function normalizeMsiSpec(spec: unknown): { readonly vectors: number; readonly perVectorMask: boolean } {
  if (typeof spec !== "object" || spec === null) throw new AllocatorError("InvalidArgument", "msi must be an object { vectors, perVectorMask? }");
  const s = spec as Record<string, unknown>;
  for (const k of Object.keys(s)) if (k !== "vectors" && k !== "perVectorMask") throw new AllocatorError("InvalidArgument", `msi has unknown field ${JSON.stringify(k)}`);
  const v = s["vectors"];
  if (typeof v !== "number" || ![1, 2, 4, 8, 16, 32].includes(v)) throw new AllocatorError("InvalidArgument", `msi.vectors must be 1, 2, 4, 8, 16 or 32, got ${String(v)}`);
  const p = s["perVectorMask"];
  if (p !== undefined && typeof p !== "boolean") throw new AllocatorError("InvalidArgument", "msi.perVectorMask must be a boolean");
  return { vectors: v, perVectorMask: p === true };
}

/** The MSI capability of one function. */
export class PciMsiCapability {
  /**
   * Offset of the capability in the function's configuration space (dword aligned, at or above
   * 0x40).
   */
  readonly offset: number;
  /**
   * Vectors the function can use (Multiple Message Capable): 1, 2, 4, 8, 16 or 32; the guest
   * enables a power of two of them.
   */
  readonly vectors: number;
  /**
   * True when the capability has per-vector mask and pending bits (0x18 bytes rather than 0x0e).
   */
  readonly perVectorMask: boolean;
  readonly #config: PciConfigSpace;
  readonly #source: PciVectorSource;
  readonly #owner: string;
  readonly #deliver: (message: PciMsiMessage) => void;
  /** The GSI of each enabled vector (-1: refused); empty while disabled. */
  #gsis: number[] = [];

  /** Bytes the capability takes. */
  static size(perVectorMask: boolean): number {
    return perVectorMask ? 0x18 : 0x0e;
  }

  /**
   * An MSI capability at `offset` of `config`, holding its GSIs from `source` under `owner` while
   * the guest enables it, and raising messages through `deliver`.
   */
  constructor(
    config: PciConfigSpace,
    offset: number,
    spec: { readonly vectors: number; readonly perVectorMask: boolean },
    source: PciVectorSource,
    owner: string,
    deliver: (message: PciMsiMessage) => void,
  ) {
    this.#config = config;
    this.offset = offset;
    this.vectors = spec.vectors;
    this.perVectorMask = spec.perVectorMask;
    this.#source = source;
    this.#owner = owner;
    this.#deliver = deliver;
    const mmc = Math.log2(spec.vectors);
    config.setRaw(offset + 2, 2, (mmc << 1) | IS_64_BIT | (spec.perVectorMask ? PER_VECTOR_MASK : 0));
    config.setMask(offset + 2, 2, ENABLE | 0x70);
    config.setMask(offset + 4, 4, 0xffff_fffc);
    config.setMask(offset + 8, 4, 0xffff_ffff);
    config.setMask(offset + 0xc, 2, 0xffff);
    if (spec.perVectorMask) {
      config.claim(offset + 0xe, 2);
      config.setMask(offset + 0x10, 4, spec.vectors === 32 ? 0xffff_ffff : 2 ** spec.vectors - 1);
      config.claim(offset + 0x14, 4);
    }
  }

  /** True while the guest has MSI enabled. */
  get enabled(): boolean {
    return (this.#config.getRaw(this.offset + 2, 2) & ENABLE) !== 0;
  }

  /** The GSIs of the enabled vectors, in vector order (-1 for one the pool refused). */
  gsis(): readonly number[] {
    return [...this.#gsis];
  }

  /**
   * @internal Restore: the GSI of each enabled vector (-1: refused), already held by the restored
   * allocator and counted with `source.adopt`; the registers come back with the configuration space.
   */
  restoreState(gsis: readonly number[]): void {
    this.#gsis = [...gsis];
    this.#source.adopt(gsis.filter((g) => g >= 0).length);
  }

  /** Reacts to a guest write inside the capability: enable, count, masks. */
  written(): void {
    const control = this.#config.getRaw(this.offset + 2, 2);
    const want = (control & ENABLE) === 0 ? 0 : Math.min(1 << ((control >> 4) & 7), this.vectors);
    if (want !== this.#gsis.length) {
      this.releaseAll();
      for (let v = 0; v < want; v++) this.#gsis.push(this.#source.hold(this.#owner, v));
    }
    if (this.perVectorMask && this.#gsis.length > 0) {
      // Unmasking a vector whose message is pending sends it now.
      const pending = this.#config.getRaw(this.offset + 0x14, 4);
      const mask = this.#config.getRaw(this.offset + 0x10, 4);
      const due = pending & ~mask;
      if (due !== 0) {
        this.#config.setRaw(this.offset + 0x14, 4, (pending & mask) >>> 0);
        for (let v = 0; v < this.#gsis.length; v++) if ((due >>> v) & 1) this.#send(v);
      }
    }
  }

  /**
   * Signals vector `v`: sent when enabled and unmasked, recorded as pending when masked, dropped
   * otherwise (disabled, beyond the enabled count, or without a GSI).
   * @returns true when a message was sent.
   */
  signal(v: number): boolean {
    if (!(v >= 0 && v < this.#gsis.length)) return false;
    if (this.perVectorMask && ((this.#config.getRaw(this.offset + 0x10, 4) >>> v) & 1) !== 0) {
      this.#config.setRaw(this.offset + 0x14, 4, (this.#config.getRaw(this.offset + 0x14, 4) | (1 << v)) >>> 0);
      return false;
    }
    return this.#send(v);
  }

  /** Gives back every held GSI (the guest disabled MSI, or the function is unplugged). */
  releaseAll(): void {
    const held = this.#gsis;
    this.#gsis = [];
    for (let v = held.length - 1; v >= 0; v--) if (held[v]! >= 0) this.#source.release(this.#owner, v, held[v]!);
  }

  #send(v: number): boolean {
    const gsi = this.#gsis[v]!;
    if (gsi < 0) return false;
    const c = this.#config;
    const address = (BigInt(c.getRaw(this.offset + 8, 4)) << 32n) | BigInt(c.getRaw(this.offset + 4, 4));
    const count = this.#gsis.length;
    const data = (c.getRaw(this.offset + 0xc, 2) & ~(count - 1)) | v;
    this.#deliver({ gsi, address, data, vector: v, capability: "msi", owner: this.#owner });
    return true;
  }
}
