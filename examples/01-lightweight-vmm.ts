/**
 * A lightweight VMM that allocates everything itself: two plain `IdAllocator`s serve as its whole
 * "system allocator", and the device is handed over ready-made with `simpleRegisterDevice`, so
 * the device manager never calls an allocator.
 *
 * The device is a toy PCI configuration mechanism #1 (the `0xcf8` address / `0xcfc` data port
 * pair): the guest writes a config address to 0xcf8 and reads the register through 0xcfc.
 *
 * Run: `node dist/examples/01-lightweight-vmm.js`
 */
import type { Device } from "../src/index.js";
import { DeviceManager } from "../src/index.js";
import { IdAllocator } from "../src/index.js";
import { RangeInclusive } from "../src/index.js";
import { hex } from "../src/index.js";

/** Answers config reads for one host bridge: vendor 0x8086, device 0x29c0 at bus 0, device 0, function 0, register 0. */
class PciConfigPorts implements Device {
  readonly name = "pci-config";
  #address = 0;

  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (offset === 0n && data.length === 4) {
      view.setUint32(0, this.#address, true);
    } else if (offset === 4n && data.length === 4) {
      const enabled = (this.#address & 0x8000_0000) !== 0;
      const register = this.#address & 0xfc;
      const bdf = (this.#address >>> 8) & 0xffff;
      view.setUint32(0, enabled && bdf === 0 && register === 0 ? 0x29c0_8086 : 0xffff_ffff, true);
    } else {
      data.fill(0xff);
    }
  }

  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    if (offset === 0n && data.length === 4) this.#address = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  }
}

// The VMM's own allocators: instance ids from 0, IRQ lines 5..23 as on x86.
const instanceIds = new IdAllocator(0, 0xffff);
const irqs = new IdAllocator(5, 23);

const device = new PciConfigPorts();
const id = instanceIds.allocateId(device.name);
const irq = irqs.allocateId(`${device.name}@${id}`);
const ports = RangeInclusive.withSize(0xcf8, 8);
console.log(`instance id: ${id}`);
console.log(`irq: ${irq}`);

// No callbacks: this manager can only take what it is given.
const dm = new DeviceManager();
dm.simpleRegisterDevice(device, id, irq, ports);
console.log(`registered ${device.name} at ${ports.toString("io")} (instance ${id}, irq ${irq})`);

// A guest selects bus 0, device 0, function 0, register 0 and reads the vendor/device id.
const address = new Uint8Array(4);
new DataView(address.buffer).setUint32(0, 0x8000_0000, true);
const wrote = dm.pioWrite(0xcf8, address);
console.log(`write ${hex(0x8000_0000)} to [io 0xcf8]: handled ${wrote}`);
const value = new Uint8Array(4);
const read = dm.pioRead(0xcfc, value);
console.log(`read [io 0xcfc]: ${hex(new DataView(value.buffer).getUint32(0, true))} handled ${read}`);
const stray = new Uint8Array(1);
const strayHandled = dm.pioRead(0x80, stray);
console.log(`read [io 0x80]: ${hex(stray[0]!)} handled ${strayHandled}`);

// Unplug: the manager allocated nothing, so the VMM gives its ids back itself.
const held = dm.unregisterDevice(id);
irqs.freeId(held.irqs[0]!.irq);
instanceIds.freeId(held.instanceId);
console.log(`unregistered; ids given back: ${instanceIds.allocatedCount === 0 && irqs.allocatedCount === 0 && dm.size === 0}`);
