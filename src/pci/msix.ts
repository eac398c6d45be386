/**
 * The MSI-X capability (id 0x11) with its vector table and pending-bit array (PBA), which live in
 * the function's BARs and are routed like any other BAR region.
 *
 * Each vector's GSI is held when the guest has MSI-X enabled, the function unmasked and the
 * vector unmasked; masking it again keeps the GSI (drivers mask vectors around every affinity
 * change), and disabling MSI-X or unplugging the function gives every GSI back. A message
 * signalled while its vector (or the whole function) is masked sets its pending bit and is sent
 * when the vector is unmasked.
 *
 * Table entries are 16 bytes: message address (low, high), message data, vector control (bit 0:
 * masked; every vector starts masked). The PBA holds one bit per vector in qwords.
 */
import { AllocatorError } from "../core/errors.js";
import type { PciConfigSpace } from "./config-space.js";
import type { PciMsiMessage, PciVectorSource } from "./vectors.js";

/** Capability id of MSI-X. */
export const PCI_CAP_ID_MSIX = 0x11;
/** Bytes of the MSI-X capability. */
export const PCI_MSIX_CAPABILITY_SIZE = 12;
/** The most vectors an MSI-X table has. */
export const PCI_MSIX_MAX_VECTORS = 2048;

/** What a device declares about MSI-X. */
export interface PciMsixSpec {
  /** Table entries: 1 to 2048. */
  readonly vectors: number;
  /** The BAR holding the table. */
  readonly tableBar: number;
  /** Where the table starts in that BAR; a multiple of 8, defaults to 0. */
  readonly tableOffset?: number;
  /** The BAR holding the PBA; defaults to `tableBar`. */
  readonly pbaBar?: number;
  /** Where the PBA starts in that BAR; a multiple of 8, defaults to right after the table. */
  readonly pbaOffset?: number;
}

/** A validated MSI-X spec. */
export interface NormalizedMsixSpec {
  /** Table entries: 1 to 2048. */
  readonly vectors: number;
  /** The BAR holding the table, 0-5: a memory BAR of the device. */
  readonly tableBar: number;
  /**
   * Where the table starts in that BAR, in bytes: a multiple of 8 (0 when the spec left it out).
   */
  readonly tableOffset: number;
  /** The BAR holding the PBA, 0-5 (`tableBar` when the spec left it out). */
  readonly pbaBar: number;
  /**
   * Where the PBA starts in that BAR, in bytes: a multiple of 8 (right after the table when it
   * shares its BAR and the spec left it out, else 0).
   */
  readonly pbaOffset: number;
}

const ENABLE = 0x8000;
const FUNCTION_MASK = 0x4000;
const VECTOR_MASKED = 0x1;

function offsetField(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffff_fff8 || value % 8 !== 0) {
    throw new AllocatorError("InvalidArgument", `msix.${name} must be a multiple of 8 below 2^32, got ${String(value)}`);
  }
  return value;
}

/** Bytes of a table of `vectors` entries. */
export const msixTableSize = (vectors: number): number => vectors * 16;
/** Bytes of the PBA of `vectors` entries (whole qwords). */
export const msixPbaSize = (vectors: number): number => Math.ceil(vectors / 64) * 8;

/** Checks an MSI-X spec (the BARs themselves are checked by the function). @throws AllocatorError `InvalidArgument`. */
export function normalizeMsixSpec(spec: unknown): NormalizedMsixSpec {
  if (typeof spec !== "object" || spec === null) throw new AllocatorError("InvalidArgument", "msix must be an object { vectors, tableBar, tableOffset?, pbaBar?, pbaOffset? }");
  const s = spec as Record<string, unknown>;
  for (const k of Object.keys(s)) {
    if (!["vectors", "tableBar", "tableOffset", "pbaBar", "pbaOffset"].includes(k)) throw new AllocatorError("InvalidArgument", `msix has unknown field ${JSON.stringify(k)}`);
  }
  const vectors = s["vectors"];
  if (typeof vectors !== "number" || !Number.isInteger(vectors) || vectors < 1 || vectors > PCI_MSIX_MAX_VECTORS) {
    throw new AllocatorError("InvalidArgument", `msix.vectors must be an integer from 1 to ${PCI_MSIX_MAX_VECTORS}, got ${String(vectors)}`);
  }
  const bar = (value: unknown, name: string): number => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 5) throw new AllocatorError("InvalidArgument", `msix.${name} must be a BAR number from 0 to 5, got ${String(value)}`);
    return value;
  };
  const tableBar = bar(s["tableBar"], "tableBar");
  const pbaBar = s["pbaBar"] === undefined ? tableBar : bar(s["pbaBar"], "pbaBar");
  const tableOffset = offsetField(s["tableOffset"], "tableOffset", 0);
  const pbaOffset = offsetField(s["pbaOffset"], "pbaOffset", pbaBar === tableBar ? tableOffset + msixTableSize(vectors) : 0);
  if (pbaBar === tableBar && pbaOffset < tableOffset + msixTableSize(vectors) && tableOffset < pbaOffset + msixPbaSize(vectors)) {
    throw new AllocatorError("InvalidArgument", `the MSI-X PBA at 0x${pbaOffset.toString(16)} overlaps the table at 0x${tableOffset.toString(16)} (${msixTableSize(vectors)} bytes) in BAR ${tableBar}`);
  }
  return { vectors, tableBar, tableOffset, pbaBar, pbaOffset };
}

/** The MSI-X capability, table and PBA of one function. */
export class PciMsixCapability {
  /**
   * Offset of the capability in the function's configuration space (dword aligned, at or above
   * 0x40).
   */
  readonly offset: number;
  /** The validated spec: vector count and where the table and the PBA lie. */
  readonly spec: NormalizedMsixSpec;
  readonly #config: PciConfigSpace;
  readonly #source: PciVectorSource;
  readonly #owner: string;
  readonly #deliver: (message: PciMsiMessage) => void;
  readonly #table: Uint32Array;
  readonly #tableBytes: Uint8Array;
  readonly #pba: Uint8Array;
  /** GSI of each vector, -1 when none is held. */
  readonly #gsis: Int32Array;
  #held = 0;

  /**
   * An MSI-X capability at `offset` of `config` whose table and PBA live in a BAR, holding a GSI
   * from `source` under `owner` for each vector the guest unmasks, and raising messages through `deliver`.
   */
  constructor(config: PciConfigSpace, offset: number, spec: NormalizedMsixSpec, source: PciVectorSource, owner: string, deliver: (message: PciMsiMessage) => void) {
    this.#config = config;
    this.offset = offset;
    this.spec = spec;
    this.#source = source;
    this.#owner = owner;
    this.#deliver = deliver;
    this.#table = new Uint32Array(spec.vectors * 4);
    for (let v = 0; v < spec.vectors; v++) this.#table[v * 4 + 3] = VECTOR_MASKED;
    this.#tableBytes = new Uint8Array(this.#table.buffer);
    this.#pba = new Uint8Array(msixPbaSize(spec.vectors));
    this.#gsis = new Int32Array(spec.vectors).fill(-1);
    config.setRaw(offset + 2, 2, spec.vectors - 1);
    config.setMask(offset + 2, 2, ENABLE | FUNCTION_MASK);
    config.setRaw(offset + 4, 4, spec.tableOffset + spec.tableBar);
    config.setRaw(offset + 8, 4, spec.pbaOffset + spec.pbaBar);
    config.claim(offset + 4, 8);
  }

  /** Table entries. */
  get vectors(): number {
    return this.spec.vectors;
  }

  /** True while the guest has MSI-X enabled. */
  get enabled(): boolean {
    return (this.#control() & ENABLE) !== 0;
  }

  /** True while the guest masks the whole function. */
  get functionMasked(): boolean {
    return (this.#control() & FUNCTION_MASK) !== 0;
  }

  /** Vectors that hold a GSI. */
  get heldVectors(): number {
    return this.#held;
  }

  /** The GSI vector `v` holds, or -1. */
  gsiOf(v: number): number {
    return v >= 0 && v < this.spec.vectors ? this.#gsis[v]! : -1;
  }

  /** True when vector `v` is masked in its table entry. */
  isMasked(v: number): boolean {
    return (this.#table[v * 4 + 3]! & VECTOR_MASKED) !== 0;
  }

  /**
   * Table entry `v` as the guest programmed it: message address low and high, data, vector
   * control; undefined outside the table.
   */
  tableEntry(v: number): readonly [number, number, number, number] | undefined {
    if (!(Number.isInteger(v) && v >= 0 && v < this.spec.vectors)) return undefined;
    const t = this.#table;
    return [t[v * 4]!, t[v * 4 + 1]!, t[v * 4 + 2]!, t[v * 4 + 3]!];
  }

  /**
   * @internal Restore: the table entries the guest changed (`[vector, address low, address high,
   * data, control]`), the pending vectors and the held GSIs (`[vector, gsi]`), the capability's
   * registers having been restored with the configuration space. The GSIs are already held by
   * the restored allocator; they are counted with `source.adopt`.
   */
  restoreState(table: readonly (readonly number[])[], pending: readonly number[], held: readonly (readonly number[])[]): void {
    for (const [v, lo, hi, data, control] of table) {
      const i = v! * 4;
      this.#table[i] = lo!;
      this.#table[i + 1] = hi!;
      this.#table[i + 2] = data!;
      this.#table[i + 3] = control!;
    }
    for (const v of pending) this.#pba[v >> 3] = this.#pba[v >> 3]! | (1 << (v & 7));
    for (const [v, gsi] of held) this.#gsis[v!] = gsi!;
    this.#held = held.length;
    this.#source.adopt(held.length);
  }

  /** True when vector `v`'s pending bit is set. */
  isPending(v: number): boolean {
    return ((this.#pba[v >> 3]! >> (v & 7)) & 1) !== 0;
  }

  /** Reacts to a guest write to the message control register. */
  written(): void {
    if (!this.enabled) {
      this.releaseAll();
      return;
    }
    if (this.functionMasked) return;
    for (let v = 0; v < this.spec.vectors; v++) this.#evaluate(v);
  }

  /** A guest read inside the table; bytes past its end read 0. */
  tableRead(offset: number, data: Uint8Array): void {
    this.#copyOut(this.#tableBytes, offset, data);
  }

  /** A guest write inside the table; read-only bits stay, bytes past its end are dropped. */
  tableWrite(offset: number, data: Uint8Array): void {
    const bytes = this.#tableBytes;
    const end = Math.min(offset + data.length, bytes.length);
    for (let p = offset; p < end; p++) {
      let v = data[p - offset]!;
      const field = (p >> 2) & 3;
      if (field === 0 && (p & 3) === 0) v &= 0xfc; // message addresses are dword aligned
      if (field === 3) v = (p & 3) === 0 ? v & VECTOR_MASKED : 0; // vector control: only the mask bit
      bytes[p] = v;
    }
    const first = offset >> 4;
    const last = (end - 1) >> 4;
    for (let v = first; v <= last && v < this.spec.vectors; v++) this.#evaluate(v);
  }

  /** A guest read inside the PBA; bytes past its end read 0. */
  pbaRead(offset: number, data: Uint8Array): void {
    this.#copyOut(this.#pba, offset, data);
  }

  /**
   * Signals vector `v`: sent when enabled and unmasked, recorded as pending when masked, dropped
   * when MSI-X is disabled or the vector has no GSI.
   * @returns true when a message was sent.
   */
  signal(v: number): boolean {
    if (!(v >= 0 && v < this.spec.vectors) || !this.enabled) return false;
    if (this.functionMasked || this.isMasked(v)) {
      this.#pba[v >> 3] = this.#pba[v >> 3]! | (1 << (v & 7));
      return false;
    }
    return this.#send(v);
  }

  /** Gives back every held GSI, highest vector first. */
  releaseAll(): void {
    for (let v = this.spec.vectors - 1; v >= 0; v--) {
      const gsi = this.#gsis[v]!;
      if (gsi < 0) continue;
      this.#gsis[v] = -1;
      this.#held--;
      this.#source.release(this.#owner, v, gsi);
    }
  }

  /** Holds a GSI for an unmasked vector and sends what is pending on it. */
  #evaluate(v: number): void {
    if (!this.enabled || this.functionMasked || this.isMasked(v)) return;
    if (this.#gsis[v]! < 0) {
      const gsi = this.#source.hold(this.#owner, v);
      if (gsi >= 0) {
        this.#gsis[v] = gsi;
        this.#held++;
      }
    }
    if (this.isPending(v)) {
      this.#pba[v >> 3] = this.#pba[v >> 3]! & ~(1 << (v & 7));
      this.#send(v);
    }
  }

  #send(v: number): boolean {
    const gsi = this.#gsis[v]!;
    if (gsi < 0) return false;
    const t = this.#table;
    const address = (BigInt(t[v * 4 + 1]!) << 32n) | BigInt(t[v * 4]!);
    this.#deliver({ gsi, address, data: t[v * 4 + 2]!, vector: v, capability: "msix", owner: this.#owner });
    return true;
  }

  #control(): number {
    return this.#config.getRaw(this.offset + 2, 2);
  }

  #copyOut(from: Uint8Array, offset: number, data: Uint8Array): void {
    const n = Math.max(0, Math.min(data.length, from.length - offset));
    data.set(from.subarray(offset, offset + n));
    if (n < data.length) data.fill(0, n);
  }
}
