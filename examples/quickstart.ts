/**
 * Quick start: a Firecracker-like microVM with a few virtio-mmio devices and the legacy devices,
 * printed as a table.
 *
 * Run: `npm start` or `node dist/examples/quickstart.js`
 */
import type { Device, ResourceRequest } from "../src/index.js";
import { DeviceManager } from "../src/index.js";
import { DefaultSystemAllocator } from "../src/index.js";
import { hex } from "../src/index.js";

const device = (name: string): Device => ({ name, read: (_b, _o, data) => data.fill(0), write: () => {} });

const sys = new DefaultSystemAllocator(); // the firecracker-x86_64 layout
const dm = DeviceManager.fromSystemAllocator(sys);

const virtio: ResourceRequest[] = [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "irq" }];
for (const name of ["virtio-blk", "virtio-net", "virtio-vsock"]) dm.fullRegisterDevice(device(name), virtio);
// Legacy devices sit where the guest expects them: fixed ports and IRQs, allocated by no one.
dm.fullRegisterDevice(device("serial"), [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4 }]);
dm.fullRegisterDevice(device("i8042"), [{ kind: "pio", size: 5, fixed: 0x60 }, { kind: "irq", fixed: 1 }]);

console.log(`layout ${sys.name}`);
console.log("owner           irq  resources");
for (const id of dm.instanceIds()) {
  const r = dm.resourcesOf(id);
  const ranges = [...r.pio.map((s) => s.range.toString("io")), ...r.mmio.map((s) => s.range.toString("mem"))];
  console.log(`${r.owner.padEnd(16)}${String(r.irqs[0]?.irq ?? "-").padEnd(5)}${ranges.join(" ")}`);
}
console.log(`free 32-bit MMIO: ${sys.mmio32.availableSize} bytes (${hex(sys.mmio32.availableSize)}); free legacy IRQs: ${sys.legacyIrq.availableCount}`);
