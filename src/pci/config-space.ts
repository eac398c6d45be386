/**
 * The configuration space of one PCI function: 4 KiB of registers (the first 256 bytes reachable
 * through configuration mechanism #1, all of it through ECAM) with per-bit write masks, after
 * QEMU's model: each byte has a value, a mask of the bits a guest may write, and a mask of the
 * bits a guest clears by writing one (status error bits). Read-only bits keep their value
 * whatever is written, and reserved bits read zero because nothing ever sets them.
 *
 * The type-0 header (0x00-0x3f) and the capabilities the PCI layer implements (MSI, MSI-X) live
 * here. Every other byte (device-specific registers from 0x40, the body of the device's own
 * capabilities, extended space from 0x100) belongs to the device: reads and writes of those
 * bytes go to its {@link PciConfigHandler}, and read zero without one.
 */
import { AllocatorError } from "../core/errors.js";

/** Bytes of configuration space per function (PCI Express). */
export const PCI_CONFIG_SPACE_SIZE = 0x1000;
/** Bytes reachable through configuration mechanism #1. */
export const PCI_LEGACY_CONFIG_SPACE_SIZE = 0x100;

/**
 * Register offsets of the type-0 header. Frozen, like the bit tables below: the emulation reads
 * them.
 * @enum
 */
export const PciConfigRegister = Object.freeze({
  /** Vendor ID, 16 bits at 0x00 (read-only; 0xffff reads mean "no function"). */
  VendorId: 0x00,
  /** Device ID, 16 bits at 0x02 (read-only). */
  DeviceId: 0x02,
  /** Command register, 16 bits at 0x04; the bits are {@link PciCommand}. */
  Command: 0x04,
  /**
   * Status register, 16 bits at 0x06; the bits are {@link PciStatus}, error bits cleared by writing
   * one.
   */
  Status: 0x06,
  /** Revision ID, 8 bits at 0x08 (read-only). */
  Revision: 0x08,
  /** Class code, 24 bits at 0x09-0x0b: programming interface, subclass, base class (read-only). */
  ClassCode: 0x09,
  /** Cache line size, 8 bits at 0x0c, in dwords; writable, with no effect on the model. */
  CacheLineSize: 0x0c,
  /** Latency timer, 8 bits at 0x0d; reads zero here (it means nothing on PCI Express). */
  LatencyTimer: 0x0d,
  /**
   * Header type, 8 bits at 0x0e: 0 for a type-0 (endpoint) header, bit 7 for a multi-function
   * device.
   */
  HeaderType: 0x0e,
  /** BIST (built-in self test), 8 bits at 0x0f; reads zero here (no self test). */
  Bist: 0x0f,
  /** The first of the six 32-bit base address registers, 0x10-0x27 (BAR n at `Bar0 + 4 * n`). */
  Bar0: 0x10,
  /** Subsystem vendor ID, 16 bits at 0x2c (read-only). */
  SubsystemVendorId: 0x2c,
  /** Subsystem ID, 16 bits at 0x2e (read-only). */
  SubsystemId: 0x2e,
  /** Expansion ROM base address, 32 bits at 0x30; reads zero here (the model has no option ROMs). */
  ExpansionRom: 0x30,
  /** Capabilities pointer, 8 bits at 0x34: offset of the first capability, 0 when there is none. */
  CapabilitiesPointer: 0x34,
  /**
   * Interrupt line, 8 bits at 0x3c: scratch for firmware and the OS, set at plug to the low byte of
   * the function's INTx GSI; writing it has no effect on routing.
   */
  InterruptLine: 0x3c,
  /** Interrupt pin, 8 bits at 0x3d (read-only): 0 for none, 1-4 for INTA-INTD. */
  InterruptPin: 0x3d,
} as const);

/**
 * Command register bits.
 * @enum
 */
export const PciCommand = Object.freeze({
  /** Bit 0: the function decodes its I/O BARs. */
  IoSpace: 0x1,
  /** Bit 1: the function decodes its memory BARs. */
  MemorySpace: 0x2,
  /** Bit 2: the function may master the bus (DMA and MSI writes). */
  BusMaster: 0x4,
  /** Bit 6: parity error response. */
  ParityErrorResponse: 0x40,
  /** Bit 8: SERR# enable. */
  Serr: 0x100,
  /** Bit 10: the function must not assert INTx. */
  InterruptDisable: 0x400,
} as const);

/**
 * Status register bits.
 * @enum
 */
export const PciStatus = Object.freeze({
  /**
   * Bit 3: an INTx interrupt is pending (read-only, reported even while `InterruptDisable` is set).
   */
  Interrupt: 0x8,
  /** Bit 4: the capabilities pointer (0x34) heads a capability list (read-only). */
  CapabilitiesList: 0x10,
} as const);

/** The header-type bit saying a device has more functions than function 0. */
export const PCI_HEADER_TYPE_MULTI_FUNCTION = 0x80;

/** Command bits a guest may change: decode enables, bus master, parity and SERR response, INTx disable. */
const COMMAND_WRITABLE = 0x0547;
/** Status bits a guest clears by writing one: the error bits 8 and 11-15. */
const STATUS_WRITE_ONE_TO_CLEAR = 0xf900;
/** The first byte after the header: capabilities and device-specific registers start here. */
export const PCI_CAPABILITIES_START = 0x40;

/**
 * Device code's handler of device-specific configuration registers. `offset` is from the start
 * of the function's configuration space; `size` is 1 to 4 bytes and `value` little-endian.
 */
export interface PciConfigHandler {
  /** Reads `size` (1, 2 or 4) bytes of a device-specific register at `offset`, little-endian. */
  configRead?(offset: number, size: number): number;
  /** Writes `size` (1, 2 or 4) bytes of a device-specific register at `offset`, little-endian. */
  configWrite?(offset: number, size: number, value: number): void;
}

/** The identity a function's header shows. */
export interface PciHeaderIds {
  /** Vendor ID, 16 bits (0x8086 for Intel, 0x1af4 for virtio). */
  readonly vendorId: number;
  /** Device ID, 16 bits. */
  readonly deviceId: number;
  /** 24-bit class code: base class, subclass, programming interface (`0x010802` for NVMe). */
  readonly classCode: number;
  /** Revision ID, 8 bits. */
  readonly revision: number;
  /** Subsystem vendor ID, 16 bits. */
  readonly subsystemVendorId: number;
  /** Subsystem ID, 16 bits. */
  readonly subsystemId: number;
  /** 0 for none, 1-4 for INTA-INTD. */
  readonly interruptPin: number;
}

/** One function's configuration registers with their masks. */
export class PciConfigSpace {
  readonly #bytes = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly #wmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly #w1c = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  /** 1 where the device's handler answers. */
  readonly #external = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly #handler: PciConfigHandler | undefined;
  #lastCapability = 0;
  /** [start, end) of every capability, for overlap checks. */
  readonly #capabilities: [number, number][] = [];
  #nextCapability = PCI_CAPABILITIES_START;

  /**
   * A function's configuration space with a type-0 header.
   * @param ids the header's identity (vendor, device, class, revision, ...).
   * @param handler the device's own registers, reached for offsets the header does not define.
   */
  constructor(ids: PciHeaderIds, handler?: PciConfigHandler) {
    this.#handler = handler;
    this.#external.fill(1, PCI_CAPABILITIES_START);
    this.setRaw(PciConfigRegister.VendorId, 2, ids.vendorId);
    this.setRaw(PciConfigRegister.DeviceId, 2, ids.deviceId);
    this.setRaw(PciConfigRegister.Revision, 1, ids.revision);
    this.setRaw(PciConfigRegister.ClassCode, 3, ids.classCode);
    this.setRaw(PciConfigRegister.SubsystemVendorId, 2, ids.subsystemVendorId);
    this.setRaw(PciConfigRegister.SubsystemId, 2, ids.subsystemId);
    this.setRaw(PciConfigRegister.InterruptPin, 1, ids.interruptPin);
    this.setMask(PciConfigRegister.Command, 2, COMMAND_WRITABLE);
    this.setWriteOneToClear(PciConfigRegister.Status, 2, STATUS_WRITE_ONE_TO_CLEAR);
    this.setMask(PciConfigRegister.CacheLineSize, 1, 0xff);
    this.setMask(PciConfigRegister.InterruptLine, 1, 0xff);
  }

  /** The value of `size` (1 to 4) bytes at `offset` as the model holds them (device-owned bytes read 0). */
  getRaw(offset: number, size: number): number {
    const b = this.#bytes;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | b[offset + i]!;
    return v >>> 0;
  }

  /** Sets bytes directly, masks ignored: for the PCI layer's own state (ids, status bits, BAR flags). */
  setRaw(offset: number, size: number, value: number): void {
    for (let i = 0; i < size; i++) this.#bytes[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  /** Sets which bits of `size` bytes at `offset` the guest may write. */
  setMask(offset: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) {
      this.#wmask[offset + i] = (mask >>> (8 * i)) & 0xff;
      this.#external[offset + i] = 0;
    }
  }

  /** Sets which bits of `size` bytes at `offset` the guest clears by writing one. */
  setWriteOneToClear(offset: number, size: number, mask: number): void {
    for (let i = 0; i < size; i++) {
      this.#w1c[offset + i] = (mask >>> (8 * i)) & 0xff;
      this.#external[offset + i] = 0;
    }
  }

  /** Makes bytes part of the model (read-only until a mask says otherwise) instead of the device's. */
  claim(offset: number, size: number): void {
    this.#external.fill(0, offset, offset + size);
  }

  /**
   * Links a capability into the list (the capabilities-pointer register, the previous one's
   * next pointer, the status bit) and returns its offset. Its id and next bytes are read-only;
   * its body belongs to the device unless `model` is true (the PCI layer then sets its masks).
   * @param at a fixed offset (dword aligned, at least 0x40); defaults to the next free one.
   * @throws AllocatorError `InvalidArgument` when it does not fit below 0x100 or overlaps another.
   */
  addCapability(id: number, length: number, model: boolean, at?: number): number {
    const offset = at ?? this.#nextCapability;
    if (!Number.isInteger(offset) || offset % 4 !== 0 || offset < PCI_CAPABILITIES_START || offset + length > PCI_LEGACY_CONFIG_SPACE_SIZE) {
      throw new AllocatorError("InvalidArgument", `capability 0x${id.toString(16)} of ${length} bytes does not fit at offset 0x${offset.toString(16)} (capabilities live in 0x40-0xff, dword aligned)`);
    }
    for (const [start, end] of this.#capabilities) {
      if (offset < end && start < offset + length) {
        throw new AllocatorError("InvalidArgument", `capability 0x${id.toString(16)} at 0x${offset.toString(16)} (${length} bytes) overlaps the capability at 0x${start.toString(16)}`);
      }
    }
    this.#capabilities.push([offset, offset + length]);
    this.claim(offset, model ? length : 2);
    this.#bytes[offset] = id;
    if (this.#lastCapability === 0) this.#bytes[PciConfigRegister.CapabilitiesPointer] = offset;
    else this.#bytes[this.#lastCapability + 1] = offset;
    this.#lastCapability = offset;
    this.#bytes[PciConfigRegister.Status] = this.#bytes[PciConfigRegister.Status]! | PciStatus.CapabilitiesList;
    this.#nextCapability = Math.max(this.#nextCapability, (offset + length + 3) & ~3);
    return offset;
  }

  /**
   * What the guest reads: `size` (1 to 4) bytes at `offset`, little-endian; the device's bytes
   * from its handler. The caller keeps the access inside the space.
   */
  read(offset: number, size: number): number {
    const ext = this.#external;
    let any = 0;
    for (let i = 0; i < size; i++) any |= ext[offset + i]!;
    if (any === 0) return this.getRaw(offset, size);
    let value = 0;
    for (let i = 0; i < size; ) {
      let n = 1;
      const e = ext[offset + i]!;
      while (i + n < size && ext[offset + i + n] === e) n++;
      const part = e === 0 ? this.getRaw(offset + i, n) : this.#deviceRead(offset + i, n);
      value = (value | (part << (8 * i))) >>> 0;
      i += n;
    }
    return value;
  }

  /** What the guest writes, through the masks; the device's bytes go to its handler. */
  write(offset: number, size: number, value: number): void {
    const ext = this.#external;
    const bytes = this.#bytes;
    const wmask = this.#wmask;
    const w1c = this.#w1c;
    for (let i = 0; i < size; ) {
      const e = ext[offset + i]!;
      if (e === 0) {
        const k = offset + i;
        const v = (value >>> (8 * i)) & 0xff;
        const wm = wmask[k]!;
        bytes[k] = ((bytes[k]! & ~wm) | (v & wm)) & ~(v & w1c[k]!);
        i++;
        continue;
      }
      let n = 1;
      while (i + n < size && ext[offset + i + n] === 1) n++;
      this.#deviceWrite(offset + i, n, n === 4 ? value >>> 0 : (value >>> (8 * i)) & ((1 << (8 * n)) - 1));
      i += n;
    }
  }

  #deviceRead(offset: number, size: number): number {
    const h = this.#handler;
    if (h?.configRead === undefined) return 0;
    const v: unknown = h.configRead(offset, size);
    // A handler returning garbage must not leak it to the guest as a non-integer.
    if (typeof v !== "number" || !Number.isFinite(v)) return 0;
    const m = 2 ** (8 * size);
    const t = Math.trunc(v) % m;
    return t < 0 ? t + m : t;
  }

  #deviceWrite(offset: number, size: number, value: number): void {
    this.#handler?.configWrite?.(offset, size, value);
  }
}

/**
 * Where the configuration mechanisms send accesses: a function is named by its segment and its
 * 16-bit routing id (`bus << 8 | device << 3 | function`). An absent function reads all ones
 * and ignores writes, so that probe loops see vendor id 0xffff as on hardware.
 */
export interface PciConfigTarget {
  /** `size` (1, 2 or 4) bytes at `offset` (the access stays inside the 4 KiB space), little-endian. */
  readConfig(segment: number, routingId: number, offset: number, size: number): number;
  /** Writes `size` (1, 2 or 4) bytes at `offset`, little-endian; ignored for an absent function. */
  writeConfig(segment: number, routingId: number, offset: number, size: number, value: number): void;
}
