/**
 * A whole VM for device-manager tests: a DefaultSystemAllocator on a preset, a DeviceManager on
 * its callbacks, devices that record what reaches them, and the VM snapshot (the pair, as JSON
 * text) with its restore.
 */
import assert from "node:assert/strict";
import type { Device } from "../../src/devices/device.js";
import { DeviceManager, type DeviceManagerRestoreOptions, type DeviceResources } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";
import { getLayout, type LayoutName, type SystemLayout } from "../../src/system/layouts.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";

/** One access a {@link ProbeDevice} saw. */
export interface ProbeAccess {
  readonly op: "read" | "write";
  readonly base: bigint;
  readonly offset: bigint;
  readonly len: number;
}

/** A device that fills reads with its own byte and records every access. */
export class ProbeDevice implements Device {
  readonly accesses: ProbeAccess[] = [];
  constructor(
    readonly name: string,
    readonly fill = 0x5a,
  ) {}
  read(base: bigint, offset: bigint, data: Uint8Array): void {
    data.fill(this.fill);
    this.accesses.push({ op: "read", base, offset, len: data.length });
  }
  write(base: bigint, offset: bigint, data: Uint8Array): void {
    this.accesses.push({ op: "write", base, offset, len: data.length });
  }
}

/**
 * A PC-like layout of the tests' own, so that their exact addresses do not follow the presets:
 * ports [0x0, 0xffff] with the ISA block reserved (a serial port there is a use of it), 32-bit
 * MMIO [0xb000_0000, 4 GiB) with MMCONFIG and the IOAPIC reserved, 32 GiB of 64-bit MMIO at
 * 64 GiB, legacy lines 5..23 with 8 and 9 reserved (line 4 is below the pool), MSI 24..4095.
 */
export const TEST_LAYOUT: SystemLayout = Object.freeze<SystemLayout>({
  name: "test-pc",
  pio: { base: 0x0, size: 0x1_0000 },
  mmio32: { base: 0xb000_0000, size: 0x5000_0000 },
  mmio64: { base: 0x10_0000_0000n, size: 0x8_0000_0000n },
  legacyIrq: { first: 5, last: 23 },
  msi: { first: 24, last: 4095 },
  instanceId: { first: 0, last: 0xffff_ffff },
  reserved: [
    { pool: "pio", start: 0x0, end: 0xfff, owner: "isa-legacy" },
    { pool: "mmio32", start: 0xb000_0000, end: 0xbfff_ffff, owner: "pci-mmconfig" },
    { pool: "mmio32", start: 0xfec0_0000, end: 0xfec0_0fff, owner: "ioapic" },
    { pool: "legacyIrq", start: 8, owner: "rtc" },
    { pool: "legacyIrq", start: 9, owner: "acpi-sci" },
  ],
});

/** A fresh VM on a preset, or on {@link TEST_LAYOUT} unless told. */
export function newVm(layout: LayoutName | SystemLayout = TEST_LAYOUT): { sys: DefaultSystemAllocator; dm: DeviceManager } {
  const sys = new DefaultSystemAllocator(typeof layout === "string" ? getLayout(layout) : layout);
  return { sys, dm: DeviceManager.fromSystemAllocator(sys) };
}

/** The VM snapshot: both halves, as the text a VMM would write to disk. */
export function vmSnapshot(sys: DefaultSystemAllocator, dm: DeviceManager): string {
  return JSON.stringify({ system: sys.toJSON(), devices: dm.toJSON() });
}

/** Restores both halves of {@link vmSnapshot} text, the allocator first. */
export function restoreVm(text: string, devices: DeviceManagerRestoreOptions["devices"]): { sys: DefaultSystemAllocator; dm: DeviceManager } {
  const vm = JSON.parse(text) as { system: unknown; devices: unknown };
  const sys = DefaultSystemAllocator.fromJSON(vm.system);
  return { sys, dm: DeviceManager.fromJSON(vm.devices, { systemAllocator: sys, devices }) };
}

/** What a device holds, as plain comparable data (everything but the device object). */
export function plainResources(res: DeviceResources) {
  return {
    instanceId: res.instanceId,
    instanceIdAllocated: res.instanceIdAllocated,
    instanceIdFixed: res.instanceIdFixed,
    name: res.name,
    owner: res.owner,
    registration: res.registration,
    irqs: res.irqs.map((q) => ({ ...q })),
    msi: res.msi.map((m) => ({ ...m })),
    pio: res.pio.map((s) => ({ range: s.range.toString("io"), allocated: s.allocated, fixed: s.fixed })),
    mmio: res.mmio.map((s) => ({ range: s.range.toString("mem"), allocated: s.allocated, fixed: s.fixed })),
  };
}

/** An `assert.throws` validator for an AllocatorError with `code` and, optionally, a message. */
export const allocatorError = (code: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError ${code}, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (message !== undefined) assert.match(e.message, message);
  return true;
};

/** Runs `fn`, which must throw; returns what it threw. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected a throw");
}
