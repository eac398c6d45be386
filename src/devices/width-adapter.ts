/**
 * How the bus reaches a device whatever its shape. For each width and direction a route holds a
 * *target*: an object whose method of that name the bus calls (`target.read32(offset)`). The
 * target is the device itself when it has the method, or an adapter object built once, when the
 * device is mapped, so that dispatch never asks which shape a device has. Calling a method on an
 * object keeps V8 on its inline caches; calling a stored function with `.call(device, ...)` was
 * measured at twice the cost of the whole table lookup.
 *
 * Order of preference for a width the device lacks: its generic method (one guest access stays
 * one device call), then two accesses of half the width (little-endian, lower offset first).
 * A width that can be neither has no target (`null`): the bus serves such an access as unmapped
 * with the reason `"unsupported"`. Buffer accesses to a device without `read`/`write` are split
 * into 4-, 2- and 1-byte pieces at ascending offsets ({@link readPieces}, {@link writePieces}).
 */

/** Has `read8`. */
export interface Read8 {
  read8(offset: number): number;
}
/** Has `read16`. */
export interface Read16 {
  read16(offset: number): number;
}
/** Has `read32`. */
export interface Read32 {
  read32(offset: number): number;
}
/** Has `write8`. */
export interface Write8 {
  write8(offset: number, value: number): void;
}
/** Has `write16`. */
export interface Write16 {
  write16(offset: number, value: number): void;
}
/** Has `write32`. */
export interface Write32 {
  write32(offset: number, value: number): void;
}
/** Has the generic `read`. */
export interface BufferRead {
  read(base: bigint, offset: bigint, data: Uint8Array): void;
}
/** Has the generic `write`. */
export interface BufferWrite {
  write(base: bigint, offset: bigint, data: Uint8Array): void;
}

/** The targets of one mapped device. */
export interface Targets {
  readonly t8: Read8 | null;
  readonly t16: Read16 | null;
  readonly t32: Read32 | null;
  readonly u8: Write8 | null;
  readonly u16: Write16 | null;
  readonly u32: Write32 | null;
  /** The device, when it has its own generic `read`. */
  readonly gr: BufferRead | null;
  /** The device, when it has its own generic `write`. */
  readonly gw: BufferWrite | null;
}

/**
 * Offsets below 64 Ki as bigints, made on first use: a generic device is passed a bigint offset,
 * and `BigInt(n)` allocates, so a register file's few offsets are made once and reused.
 */
const SMALL_OFFSETS: bigint[] = new Array<bigint>(0x10000);

/** `BigInt(offset)`, allocation-free for offsets below 64 Ki after their first use. */
export function offsetBigint(offset: number): bigint {
  if (offset < 0x10000) {
    let b = SMALL_OFFSETS[offset];
    if (b === undefined) SMALL_OFFSETS[offset] = b = BigInt(offset);
    return b;
  }
  return BigInt(offset);
}

/**
 * Width accesses to a device that has only the generic methods. Buffers of its own, made on first
 * use (mapping a device stays cheap), so that a device that re-enters the bus from inside an
 * access cannot clobber another's bytes.
 */
class GenericWidths implements Read8, Read16, Read32, Write8, Write16, Write32 {
  #b1: Uint8Array | undefined;
  #b2: Uint8Array | undefined;
  #b4: Uint8Array | undefined;
  constructor(
    readonly device: BufferRead & BufferWrite,
    readonly base: bigint,
  ) {}
  read8(offset: number): number {
    const b = (this.#b1 ??= new Uint8Array(1));
    this.device.read(this.base, offsetBigint(offset), b);
    return b[0]!;
  }
  read16(offset: number): number {
    const b = (this.#b2 ??= new Uint8Array(2));
    this.device.read(this.base, offsetBigint(offset), b);
    return b[0]! | (b[1]! << 8);
  }
  read32(offset: number): number {
    const b = (this.#b4 ??= new Uint8Array(4));
    this.device.read(this.base, offsetBigint(offset), b);
    // Signed: see Bus.read32.
    return b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
  }
  write8(offset: number, value: number): void {
    const b = (this.#b1 ??= new Uint8Array(1));
    b[0] = value;
    this.device.write(this.base, offsetBigint(offset), b);
  }
  write16(offset: number, value: number): void {
    const b = (this.#b2 ??= new Uint8Array(2));
    b[0] = value;
    b[1] = value >>> 8;
    this.device.write(this.base, offsetBigint(offset), b);
  }
  write32(offset: number, value: number): void {
    const b = (this.#b4 ??= new Uint8Array(4));
    b[0] = value;
    b[1] = value >>> 8;
    b[2] = value >>> 16;
    b[3] = value >>> 24;
    this.device.write(this.base, offsetBigint(offset), b);
  }
}

/** A width as two accesses of half of it, little-endian. */
class Halves implements Read16, Read32, Write16, Write32 {
  constructor(
    readonly r8: Read8 | null,
    readonly r16: Read16 | null,
    readonly w8: Write8 | null,
    readonly w16: Write16 | null,
  ) {}
  read16(offset: number): number {
    return (this.r8!.read8(offset) & 0xff) | ((this.r8!.read8(offset + 1) & 0xff) << 8);
  }
  read32(offset: number): number {
    return (this.r16!.read16(offset) & 0xffff) | ((this.r16!.read16(offset + 2) & 0xffff) << 16);
  }
  write16(offset: number, value: number): void {
    this.w8!.write8(offset, value & 0xff);
    this.w8!.write8(offset + 1, (value >>> 8) & 0xff);
  }
  write32(offset: number, value: number): void {
    this.w16!.write16(offset, value & 0xffff);
    this.w16!.write16(offset + 2, value >>> 16);
  }
}

/** Resolves the targets for `device` mapped at `base`. */
export function adaptDevice(device: unknown, base: bigint): Targets {
  if (typeof device !== "object" || device === null) return { t8: null, t16: null, t32: null, u8: null, u16: null, u32: null, gr: null, gw: null };
  // Named property reads rather than a loop over names: a keyed read per name is several times
  // slower, and this runs on every insert and move.
  const d = device as Partial<Read8 & Read16 & Read32 & Write8 & Write16 & Write32 & BufferRead & BufferWrite>;
  const all = device as Read8 & Read16 & Read32 & Write8 & Write16 & Write32 & BufferRead & BufferWrite;
  const gr = typeof d.read === "function" ? all : null;
  const gw = typeof d.write === "function" ? all : null;
  const generic = gr !== null || gw !== null ? new GenericWidths(all, base) : null;
  const t8: Read8 | null = typeof d.read8 === "function" ? all : gr !== null ? generic : null;
  const u8: Write8 | null = typeof d.write8 === "function" ? all : gw !== null ? generic : null;
  let t16: Read16 | null = typeof d.read16 === "function" ? all : gr !== null ? generic : null;
  let u16: Write16 | null = typeof d.write16 === "function" ? all : gw !== null ? generic : null;
  if ((t16 === null && t8 !== null) || (u16 === null && u8 !== null)) {
    const halves = new Halves(t8, null, u8, null);
    t16 ??= t8 !== null ? halves : null;
    u16 ??= u8 !== null ? halves : null;
  }
  let t32: Read32 | null = typeof d.read32 === "function" ? all : gr !== null ? generic : null;
  let u32: Write32 | null = typeof d.write32 === "function" ? all : gw !== null ? generic : null;
  if ((t32 === null && t16 !== null) || (u32 === null && u16 !== null)) {
    const halves = new Halves(null, t16, null, u16);
    t32 ??= t16 !== null ? halves : null;
    u32 ??= u16 !== null ? halves : null;
  }
  return { t8, t16, t32, u8, u16, u32, gr, gw };
}

/** True when a buffer of `length` bytes (at least 1) can be served in pieces by these targets. */
export function piecesFit(t: Targets, length: number, write: boolean): boolean {
  const one = write ? t.u8 : t.t8;
  const two = write ? t.u16 : t.t16;
  const four = write ? t.u32 : t.t32;
  return (length < 4 || four !== null) && ((length & 2) === 0 || two !== null) && ((length & 1) === 0 || one !== null);
}

/**
 * Fills `data` from width reads at `offset`, `offset + 4`, ...: 4-byte pieces, then a 2-byte and
 * a 1-byte piece for the rest, little-endian. Check {@link piecesFit} first.
 */
export function readPieces(t: Targets, offset: number, data: Uint8Array): void {
  const n = data.length;
  let i = 0;
  for (; n - i >= 4; i += 4) {
    const v = t.t32!.read32(offset + i);
    data[i] = v;
    data[i + 1] = v >>> 8;
    data[i + 2] = v >>> 16;
    data[i + 3] = v >>> 24;
  }
  if (n - i >= 2) {
    const v = t.t16!.read16(offset + i);
    data[i] = v;
    data[i + 1] = v >>> 8;
    i += 2;
  }
  if (i < n) data[i] = t.t8!.read8(offset + i);
}

/** Passes `data` to width writes, in the pieces {@link readPieces} uses. */
export function writePieces(t: Targets, offset: number, data: Uint8Array): void {
  const n = data.length;
  let i = 0;
  for (; n - i >= 4; i += 4) {
    t.u32!.write32(offset + i, data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
  }
  if (n - i >= 2) {
    t.u16!.write16(offset + i, (data[i]! | (data[i + 1]! << 8)) & 0xffff);
    i += 2;
  }
  if (i < n) t.u8!.write8(offset + i, data[i]!);
}
