/**
 * A VMM whose firmware fixed the MMIO resources (as a device tree or ACPI table would), while
 * port I/O, IRQs and instance ids still come from allocator callbacks. The device manager gets
 * no MMIO callback at all: MMIO requests must carry `fixed` addresses.
 *
 * The firmware-fixed ranges are also reserved in the system allocator, so the allocator's view
 * of the machine is complete and nothing could ever be handed out on top of them.
 *
 * Run: `node dist/examples/03-firmware-fixed.js`
 */
import type { Device, ResourceRequest } from "../src/index.js";
import { DeviceManager } from "../src/index.js";
import { isAllocatorError } from "../src/index.js";
import { getLayout } from "../src/index.js";
import { DefaultSystemAllocator } from "../src/index.js";

class Stub implements Device {
  constructor(readonly name: string) {}
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    data.fill(0);
  }
  write(): void {}
}

// What the firmware decided, in its own table.
const firmware = [
  { name: "uart", base: 0xd000_0000, size: 0x1000 },
  { name: "rtc", base: 0xd000_1000, size: 0x1000 },
  { name: "gpio", base: 0xd000_2000, size: 0x100 },
];

const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
const pio = sys.pioAddressCallback();
if (pio === undefined) throw new Error("the layout has no port I/O");
const dm = new DeviceManager({ pio, deviceId: sys.deviceIdCallback(), irq: sys.irqCallback() });

for (const fw of firmware) {
  sys.reserve("mmio32", { start: fw.base, size: fw.size }, `firmware:${fw.name}`);
  const requests: ResourceRequest[] = [
    { kind: "mmio", size: fw.size, fixed: fw.base },
    { kind: "pio", size: 8, alignment: 8 },
    { kind: "irq" },
  ];
  const id = dm.fullRegisterDevice(new Stub(fw.name), requests);
  const r = dm.resourcesOf(id);
  const mmio = r.mmio[0]!;
  const port = r.pio[0]!;
  console.log(
    `device ${r.owner}: ${mmio.range.toString("mem")} fixed ${!mmio.allocated}, ${port.range.toString("io")} allocated ${port.allocated}, [irq ${r.irqs[0]!.irq}]`,
  );
}

// Without a fixed address there is no one to place an MMIO range: refused before anything is taken.
const snapshot = (): string => JSON.stringify(sys.holdings().map((h) => ("range" in h ? [h.pool, h.range, h.owner] : [h.pool, h.id, h.owner])));
const held = snapshot();
try {
  dm.fullRegisterDevice(new Stub("virtio-blk"), [{ kind: "mmio", size: 0x1000 }]);
} catch (e) {
  if (!isAllocatorError(e)) throw e;
  console.log(`unfixed mmio request refused: ${e.code}`);
}
// Two devices cannot share a fixed range: the bus refuses, and the allocations made are undone.
try {
  dm.fullRegisterDevice(new Stub("uart2"), [{ kind: "mmio", size: 0x1000, fixed: 0xd000_0000 }, { kind: "pio", size: 8 }]);
} catch (e) {
  if (!isAllocatorError(e)) throw e;
  console.log(`conflicting fixed range refused: ${e.code} (${e.message})`);
}
console.log(`allocator unchanged by the refusals: ${snapshot() === held}`);
console.log(`reserved by firmware: ${sys.reservations().filter((h) => h.owner.startsWith("firmware:")).length} ranges`);
sys.checkValid();
dm.checkConsistency();
