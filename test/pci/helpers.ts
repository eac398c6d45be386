/**
 * A q35-like machine (DefaultSystemAllocator with the pc-x86_64 preset, a device manager, a PCI
 * host with mechanism #1 and ECAM at 0xb0000000) and a guest that drives it only through port
 * and MMIO accesses, as firmware and Linux do.
 */
import assert from "node:assert/strict";
import { AllocatorError } from "../../src/core/errors.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { getLayout, getPreset } from "../../src/system/layouts.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import type { PciBarConflict } from "../../src/pci/bar-mapper.js";
import type { PciDevice } from "../../src/pci/pci-function.js";
import { PciRootComplex, type PciRootComplexOptions } from "../../src/pci/root-complex.js";
import type { PciMsiMessage, PciVectorFailure } from "../../src/pci/vectors.js";
import type { PciBarSpec } from "../../src/pci/bar.js";
import type { PciMsixSpec } from "../../src/pci/msix.js";
import type { PciMsiSpec } from "../../src/pci/msi.js";

const q35 = getPreset("pc-x86_64");
/** The preset's ECAM window (q35: 0xb0000000, 256 MiB for buses 0-255). */
export const ECAM_BASE = q35.board(q35.defaults).pci!.ecam.base;
/** The preset's 64-bit MMIO pool: where prefetchable 64-bit BARs go. */
export const MMIO64_BASE = BigInt(getLayout("pc-x86_64").mmio64!.base);
export const MMIO64_END = MMIO64_BASE + BigInt(getLayout("pc-x86_64").mmio64!.size) - 1n;

export const code = (c: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message !== undefined) assert.match(e.message, message);
  return true;
};

export interface Machine {
  readonly sys: DefaultSystemAllocator;
  readonly dm: DeviceManager;
  readonly host: PciRootComplex;
  readonly conflicts: PciBarConflict[];
  readonly messages: PciMsiMessage[];
  readonly failures: PciVectorFailure[];
  readonly intx: { gsi: number; level: boolean }[];
}

export function machine(options: Partial<Omit<PciRootComplexOptions, "deviceManager" | "irq">> = {}, layout = getLayout("pc-x86_64")): Machine {
  const sys = new DefaultSystemAllocator(layout);
  const dm = DeviceManager.fromSystemAllocator(sys);
  const conflicts: PciBarConflict[] = [];
  const messages: PciMsiMessage[] = [];
  const failures: PciVectorFailure[] = [];
  const intx: { gsi: number; level: boolean }[] = [];
  const host = PciRootComplex.fromSystemAllocator(sys, dm, {
    ecam: { base: ECAM_BASE },
    onBarConflict: (c) => conflicts.push(c),
    onMsi: (m) => messages.push(m),
    onVectorFailure: (f) => failures.push(f),
    onIntx: (gsi, level) => intx.push({ gsi, level }),
    ...options,
  });
  return { sys, dm, host, conflicts, messages, failures, intx };
}

/** One recorded BAR access. */
export interface BarAccess {
  readonly op: "read" | "write";
  readonly bar: number;
  readonly offset: bigint;
  readonly data: number[];
}

/** A device that records its BAR accesses and answers reads with `fill + bar`. */
export class TestPciDevice implements PciDevice {
  readonly accesses: BarAccess[] = [];
  readonly configWrites: { offset: number; size: number; value: number }[] = [];
  readonly registers = new Map<number, number>();
  interruptPin?: number;
  bars?: readonly PciBarSpec[];
  msix?: PciMsixSpec;
  msi?: PciMsiSpec;
  constructor(
    readonly name: string,
    readonly vendorId: number,
    readonly deviceId: number,
    readonly classCode: number,
    extra: { bars?: readonly PciBarSpec[]; interruptPin?: number; msix?: PciMsixSpec; msi?: PciMsiSpec } = {},
    readonly fill = 0x40,
  ) {
    if (extra.bars !== undefined) this.bars = extra.bars;
    if (extra.interruptPin !== undefined) this.interruptPin = extra.interruptPin;
    if (extra.msix !== undefined) this.msix = extra.msix;
    if (extra.msi !== undefined) this.msi = extra.msi;
  }
  barRead(bar: number, offset: bigint, data: Uint8Array): void {
    data.fill(this.fill + bar);
    this.accesses.push({ op: "read", bar, offset, data: [...data] });
  }
  barWrite(bar: number, offset: bigint, data: Uint8Array): void {
    this.accesses.push({ op: "write", bar, offset, data: [...data] });
  }
  configRead(offset: number, size: number): number {
    return (this.registers.get(offset) ?? 0) % 2 ** (8 * size);
  }
  configWrite(offset: number, size: number, value: number): void {
    this.configWrites.push({ offset, size, value });
    this.registers.set(offset, value);
  }
}

/** Config access modes a guest has. */
export type ConfigMode = "cf8" | "ecam";

function le(value: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  for (let i = 0; i < size; i++) d[i] = (value >>> (8 * i)) & 0xff;
  return d;
}
const val = (d: Uint8Array): number => d.reduceRight((v, b) => v * 256 + b, 0);

/** A guest: every access goes through the device manager's buses. */
export class Guest {
  constructor(readonly dm: DeviceManager, readonly ecamBase = ECAM_BASE) {}

  configRead(mode: ConfigMode, bus: number, dev: number, fn: number, reg: number, size: 1 | 2 | 4 = 4): number {
    const d = new Uint8Array(size);
    if (mode === "cf8") {
      this.outl(0xcf8, (0x8000_0000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
      this.dm.pioRead(0xcfc + (reg & 3), d);
    } else {
      this.dm.mmioRead(this.ecamBase + BigInt((bus << 20) | (dev << 15) | (fn << 12) | reg), d);
    }
    return val(d);
  }

  configWrite(mode: ConfigMode, bus: number, dev: number, fn: number, reg: number, size: 1 | 2 | 4, value: number): void {
    if (mode === "cf8") {
      this.outl(0xcf8, (0x8000_0000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
      this.dm.pioWrite(0xcfc + (reg & 3), le(value, size));
    } else {
      this.dm.mmioWrite(this.ecamBase + BigInt((bus << 20) | (dev << 15) | (fn << 12) | reg), le(value, size));
    }
  }

  outl(port: number, value: number): void {
    this.dm.pioWrite(port, le(value, 4));
  }

  /** Reads `size` bytes at `address` of MMIO (or a port when `io`). */
  read(space: "io" | "mem", address: bigint, size: number): number[] {
    const d = new Uint8Array(size);
    if (space === "io") this.dm.pioRead(address, d);
    else this.dm.mmioRead(address, d);
    return [...d];
  }

  write(space: "io" | "mem", address: bigint, bytes: readonly number[]): boolean {
    const d = Uint8Array.from(bytes);
    return space === "io" ? this.dm.pioWrite(address, d) : this.dm.mmioWrite(address, d);
  }

  /** Linux-style probe of every function of buses 0..lastBus: [bus, dev, fn, vendor, device, headerType]. */
  enumerate(mode: ConfigMode, lastBus = 0): { bus: number; dev: number; fn: number; vendor: number; device: number; headerType: number }[] {
    const out: { bus: number; dev: number; fn: number; vendor: number; device: number; headerType: number }[] = [];
    for (let bus = 0; bus <= lastBus; bus++) {
      for (let dev = 0; dev < 32; dev++) {
        const id0 = this.configRead(mode, bus, dev, 0, 0);
        if ((id0 & 0xffff) === 0xffff) continue;
        const ht = this.configRead(mode, bus, dev, 0, 0x0e, 1);
        const fns = ht & 0x80 ? 8 : 1;
        for (let fn = 0; fn < fns; fn++) {
          const id = this.configRead(mode, bus, dev, fn, 0);
          if ((id & 0xffff) === 0xffff) continue;
          out.push({ bus, dev, fn, vendor: id & 0xffff, device: id >>> 16, headerType: this.configRead(mode, bus, dev, fn, 0x0e, 1) });
        }
      }
    }
    return out;
  }

  /**
   * Sizes every BAR of a function as Linux does (decode off, all ones, read back, restore):
   * [{ index, io, is64, prefetchable, size, base }].
   */
  sizeBars(mode: ConfigMode, bus: number, dev: number, fn: number): { index: number; io: boolean; is64: boolean; prefetchable: boolean; size: bigint; base: bigint }[] {
    const cmd = this.configRead(mode, bus, dev, fn, 4, 2);
    this.configWrite(mode, bus, dev, fn, 4, 2, cmd & ~0x3);
    const out: { index: number; io: boolean; is64: boolean; prefetchable: boolean; size: bigint; base: bigint }[] = [];
    for (let i = 0; i < 6; i++) {
      const reg = 0x10 + 4 * i;
      const orig = this.configRead(mode, bus, dev, fn, reg);
      this.configWrite(mode, bus, dev, fn, reg, 4, 0xffff_ffff);
      const mask = this.configRead(mode, bus, dev, fn, reg);
      this.configWrite(mode, bus, dev, fn, reg, 4, orig);
      if (mask === 0) continue;
      const io = (mask & 1) === 1;
      const is64 = !io && (mask & 6) === 4;
      let sizeMask = BigInt(io ? mask & ~3 : mask & ~0xf) & 0xffff_ffffn;
      let base = BigInt(io ? orig & ~3 : orig & ~0xf) & 0xffff_ffffn;
      if (is64) {
        const hreg = reg + 4;
        const horig = this.configRead(mode, bus, dev, fn, hreg);
        this.configWrite(mode, bus, dev, fn, hreg, 4, 0xffff_ffff);
        const hmask = this.configRead(mode, bus, dev, fn, hreg);
        this.configWrite(mode, bus, dev, fn, hreg, 4, horig);
        sizeMask |= BigInt(hmask) << 32n;
        base |= BigInt(horig) << 32n;
      } else if (!io) {
        sizeMask |= 0xffff_ffff_0000_0000n;
      } else {
        sizeMask |= 0xffff_ffff_ffff_0000n;
      }
      const size = BigInt.asUintN(64, ~sizeMask) + 1n;
      out.push({ index: i, io, is64, prefetchable: !io && (mask & 8) !== 0, size, base });
      if (is64) i++;
    }
    this.configWrite(mode, bus, dev, fn, 4, 2, cmd);
    return out;
  }

  /** Writes a BAR's base (both halves of a 64-bit one, low first). */
  setBar(mode: ConfigMode, bus: number, dev: number, fn: number, index: number, base: bigint, is64: boolean): void {
    const reg = 0x10 + 4 * index;
    this.configWrite(mode, bus, dev, fn, reg, 4, Number(base & 0xffff_ffffn));
    if (is64) this.configWrite(mode, bus, dev, fn, reg + 4, 4, Number(base >> 32n));
  }
}
