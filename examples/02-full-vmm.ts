/**
 * A VMM whose device manager allocates everything through the callbacks of a
 * `DefaultSystemAllocator`: devices only say what they need (`ResourceRequest`s), and unplugging
 * one gives every resource back.
 *
 * Run: `node dist/examples/02-full-vmm.js`
 */
import type { Device, ResourceRequest } from "../src/index.js";
import { DeviceManager, type DeviceResources } from "../src/index.js";
import { getLayout } from "../src/index.js";
import { DefaultSystemAllocator, type Holding } from "../src/index.js";

/** A device that only records that it was reached. */
class Stub implements Device {
  accesses = 0;
  constructor(
    readonly name: string,
    readonly requests: readonly ResourceRequest[],
  ) {}
  resourceRequest(): readonly ResourceRequest[] {
    return this.requests;
  }
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    this.accesses++;
    data.fill(0);
  }
  write(): void {
    this.accesses++;
  }
}

function describe(r: DeviceResources): string {
  const parts = [`id ${r.instanceId}`];
  for (const q of r.irqs) parts.push(`[irq ${q.irq}]`);
  if (r.msi.length > 0) parts.push(`msi ${r.msi.map((m) => m.gsi).join(",")}`);
  for (const s of r.pio) parts.push(s.range.toString("io"));
  for (const s of r.mmio) parts.push(s.range.toString("mem"));
  return `${r.owner}: ${parts.join(" ")}`;
}

const key = (h: Holding): string => ("range" in h ? `${h.pool} ${h.range.toString()} ${h.owner}` : `${h.pool} ${h.id} ${h.owner}`);

const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
const dm = DeviceManager.fromSystemAllocator(sys);
console.log(`layout: ${sys.name}`);

const blk = dm.fullRegisterDevice(new Stub("virtio-blk", [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "irq" }]));
const rng = dm.fullRegisterDevice(new Stub("virtio-rng", [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "irq" }]));
const before = sys.holdings().map(key);
const counts = () =>
  [
    `pio ${sys.pio!.allocationCount}`,
    `mmio32 ${sys.mmio32.allocationCount}`,
    `mmio64 ${sys.mmio64!.allocationCount}`,
    `irq ${sys.legacyIrq.allocatedCount}`,
    `msi ${sys.msi.allocatedCount}`,
    `ids ${sys.instanceId.allocatedCount}`,
  ].join(", ");
console.log(`held before plugging nvme: ${counts()}`);

// A PCI device with a 64-bit BAR (falling back below 4 GiB if need be), an I/O BAR and MSI-X.
const nvme = dm.fullRegisterDevice(
  new Stub("nvme", [
    { kind: "mmio", size: 0x4000, alignment: 0x4000, mmio64: true, allowFallback: true },
    { kind: "pio", size: 0x20, alignment: 0x20 },
    { kind: "msi", count: 4 },
  ]),
);
for (const id of [blk, rng, nvme]) console.log(`device ${describe(dm.resourcesOf(id))}`);
console.log(`held with nvme: ${counts()}`);
console.log(`allocator holds for nvme@${nvme}: ${sys.allocationsOf(`nvme@${nvme}`).length} resources`);

const bar = dm.resourcesOf(nvme).mmio[0]!.range;
const reached = dm.mmioRead(bar.start + 0x10n, new Uint8Array(4));
console.log(`mmio read at nvme BAR handled ${reached}`);

const gone = dm.fullUnregisterDevice(nvme);
console.log(`unplugged ${gone.owner}`);
console.log(`held after unplugging nvme: ${counts()}`);
const after = sys.holdings().map(key);
const same = before.length === after.length && before.every((h, i) => h === after[i]);
console.log(`allocator holds for nvme@${nvme}: ${sys.allocationsOf(`nvme@${nvme}`).length} resources`);
console.log(`everything given back: ${same && sys.allocationsOf("nvme").length === 0}`);
sys.checkValid();
dm.checkConsistency();
