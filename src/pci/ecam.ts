/**
 * ECAM (the PCI Express enhanced configuration access mechanism, MMCONFIG): a memory window in
 * which each function's 4 KiB configuration space has its own page, `bus << 20 | device << 15 |
 * function << 12` from the window's base, 1 MiB per bus. The base and the bus range come from
 * the machine (q35: 0xb0000000, 256 MiB, buses 0-255; the ACPI MCFG table tells the guest).
 *
 * An access that stays inside one dword goes through as one configuration access; a longer or
 * unaligned one (a qword read) is split at dword boundaries, low address first, as a root complex
 * splits it into dword requests.
 */
import { AllocatorError } from "../core/errors.js";
import { hex, toU64, type U64Input } from "../core/u64.js";
import type { Device, ResourceRequest } from "../devices/device.js";
import { PCI_BUSES, PCI_MAX_SEGMENT } from "./address.js";
import type { PciConfigTarget } from "./config-space.js";
import { loadLE, storeLE } from "./config-mechanism.js";

/** Bytes of ECAM per bus. */
export const PCI_ECAM_BUS_SIZE = 1n << 20n;

/** Where an ECAM window is and what it reaches. */
export interface PciEcamOptions {
  /** First byte of the window: a multiple of 1 MiB. */
  readonly base: U64Input;
  /** The segment it serves; defaults to 0. */
  readonly segment?: number;
  /** The bus at the window's base; defaults to 0. */
  readonly firstBus?: number;
  /** The last bus; defaults to 255. */
  readonly lastBus?: number;
  /** Device name; defaults to `pci-ecam`. */
  readonly name?: string;
}

/** The ECAM device: one MMIO range, registered with the device manager at its fixed base. */
export class PciEcam implements Device {
  readonly name: string;
  /** Guest-physical address of the window, a multiple of 1 MiB; it holds `firstBus`. */
  readonly base: bigint;
  /**
   * Bytes of the window: 1 MiB (4 KiB per function, 256 functions) per bus from `firstBus` to
   * `lastBus`.
   */
  readonly size: bigint;
  /** The segment (PCI domain) the window serves, 0 to 0xffff. */
  readonly segment: number;
  /** The bus at the window's base, 0 to 255. */
  readonly firstBus: number;
  /** The last bus the window decodes, inclusive, from `firstBus` to 255. */
  readonly lastBus: number;
  #target: PciConfigTarget;
  readonly #ridBase: number;
  readonly #scratch = new Uint8Array(4);

  /** @throws AllocatorError `InvalidArgument` for a bad base, segment or bus range. */
  constructor(target: PciConfigTarget, options: PciEcamOptions) {
    if (typeof options !== "object" || options === null) throw new AllocatorError("InvalidArgument", "options must be an object { base, segment?, firstBus?, lastBus? }");
    const base = toU64(options.base, "options.base");
    if (base % PCI_ECAM_BUS_SIZE !== 0n) throw new AllocatorError("InvalidArgument", `options.base ${hex(base)} must be a multiple of 1 MiB`);
    const int = (v: unknown, name: string, fallback: number, max: number): number => {
      if (v === undefined) return fallback;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) throw new AllocatorError("InvalidArgument", `options.${name} must be an integer from 0 to ${max}`);
      return v;
    };
    this.segment = int(options.segment, "segment", 0, PCI_MAX_SEGMENT);
    this.firstBus = int(options.firstBus, "firstBus", 0, PCI_BUSES - 1);
    this.lastBus = int(options.lastBus, "lastBus", PCI_BUSES - 1, PCI_BUSES - 1);
    if (this.lastBus < this.firstBus) throw new AllocatorError("InvalidArgument", `options.lastBus ${this.lastBus} is below firstBus ${this.firstBus}`);
    this.base = base;
    this.size = BigInt(this.lastBus - this.firstBus + 1) * PCI_ECAM_BUS_SIZE;
    this.name = options.name ?? "pci-ecam";
    this.#target = target;
    this.#ridBase = this.firstBus << 8;
  }

  /** @internal Restore: where accesses go. */
  retarget(target: PciConfigTarget): void {
    this.#target = target;
  }

  /** The window, fixed. */
  resourceRequest(): readonly ResourceRequest[] {
    return [{ kind: "mmio", size: this.size, fixed: this.base }];
  }

  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset);
    const n = data.length;
    if (n <= 4 && (o & 3) + n <= 4) {
      storeLE(data, this.#target.readConfig(this.segment, this.#ridBase + (o >>> 12), o & 0xfff, n));
      return;
    }
    for (let i = 0; i < n; ) {
      const at = o + i;
      const k = Math.min(n - i, 4 - (at & 3));
      const part = data.subarray(i, i + k);
      storeLE(part, this.#target.readConfig(this.segment, this.#ridBase + Math.floor(at / 4096), at & 0xfff, k));
      i += k;
    }
  }

  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset);
    const n = data.length;
    if (n <= 4 && (o & 3) + n <= 4) {
      this.#target.writeConfig(this.segment, this.#ridBase + (o >>> 12), o & 0xfff, n, loadLE(data));
      return;
    }
    for (let i = 0; i < n; ) {
      const at = o + i;
      const k = Math.min(n - i, 4 - (at & 3));
      const part = this.#scratch.subarray(0, k);
      part.set(data.subarray(i, i + k));
      this.#target.writeConfig(this.segment, this.#ridBase + Math.floor(at / 4096), at & 0xfff, k, loadLE(part));
      i += k;
    }
  }
}
