/**
 * Configuration mechanism #1, the PC's port-I/O way to reach configuration space: a 32-bit
 * address register at 0xcf8 (bit 31 enable, bits 23-16 bus, 15-11 device, 10-8 function, 7-2
 * dword register) and a data window at 0xcfc-0xcff that reads or writes the addressed dword,
 * with byte, word and dword accesses at any offset of the window.
 *
 * As on Intel chipsets, only a dword access at 0xcf8 reaches the address register (byte
 * accesses there are other registers, 0xcf9 being the reset control on ICH9; here they read all
 * ones and are dropped), bits 30-24 and 1-0 read zero, and with the enable bit clear the data
 * window reads all ones. It reaches segment 0 and the first 256 bytes of each function.
 */
import type { Device, ResourceRequest } from "../devices/device.js";
import type { PciConfigTarget } from "./config-space.js";

/** The address register's port. */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/** The first port of the data window. */
export const PCI_CONFIG_DATA_PORT = 0xcfc;

const ENABLE = 0x8000_0000;
/** Enable, bus, device, function and dword register; the rest reads zero. */
const ADDRESS_BITS = 0x80ff_fffc;

/**
 * The 0xcf8/0xcfc device: one 8-port range, registered with the device manager at its fixed
 * ports (`resourceRequest()` says so).
 */
export class PciConfigMechanism1 implements Device {
  readonly name: string;
  /**
   * The first of the 8 ports: the address register (CONFIG_ADDRESS, 0xcf8 by default); the data
   * register (CONFIG_DATA) is at `port + 4`.
   */
  readonly port: number;
  #target: PciConfigTarget;
  #address = 0;

  /**
   * A mechanism #1 port device, to be mapped on the PIO bus at `port` (8 ports).
   * @param target where accesses go (a `PciRootComplex`).
   * @param options `port`: the address register's port (default 0xcf8); `name`: the device name.
   */
  constructor(target: PciConfigTarget, options: { readonly port?: number; readonly name?: string } = {}) {
    this.#target = target;
    this.port = options.port ?? PCI_CONFIG_ADDRESS_PORT;
    this.name = options.name ?? "pci-config";
  }

  /** The address register as the guest last wrote it (masked). */
  get address(): number {
    return this.#address;
  }

  /** @internal Restore: where accesses go, and the address register as the snapshot recorded it. */
  restore(target: PciConfigTarget, address: number): void {
    this.#target = target;
    this.#address = (address & ADDRESS_BITS) >>> 0;
  }

  /** The 8 ports from `port`, fixed. */
  resourceRequest(): readonly ResourceRequest[] {
    return [{ kind: "pio", size: 8, fixed: this.port }];
  }

  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset);
    const n = data.length;
    if (o < 4) {
      if (o === 0 && n === 4) storeLE(data, this.#address);
      else data.fill(0xff);
      return;
    }
    const a = this.#address;
    if ((a & ENABLE) === 0) {
      data.fill(0xff);
      return;
    }
    storeLE(data, this.#target.readConfig(0, (a >>> 8) & 0xffff, (a & 0xfc) + o - 4, n));
  }

  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset);
    const n = data.length;
    if (o < 4) {
      if (o === 0 && n === 4) this.#address = (loadLE(data) & ADDRESS_BITS) >>> 0;
      return;
    }
    const a = this.#address;
    if ((a & ENABLE) === 0) return;
    this.#target.writeConfig(0, (a >>> 8) & 0xffff, (a & 0xfc) + o - 4, n, loadLE(data));
  }
}

/** Little-endian bytes of `value` into `data` (at most 4). */
export function storeLE(data: Uint8Array, value: number): void {
  for (let i = 0; i < data.length; i++) data[i] = (value >>> (8 * i)) & 0xff;
}

/** The little-endian value of `data` (at most 4 bytes), unsigned. */
export function loadLE(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = v * 256 + data[i]!;
  return v;
}
