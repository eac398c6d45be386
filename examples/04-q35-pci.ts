/**
 * A q35-like PC with PCI: a host bridge at 00:00.0 and an ISA (LPC) bridge at 00:1f.0 reserved
 * first, then virtio-blk, virtio-net and an NVMe-like controller with 2 048 MSI-X vectors in the
 * lowest free slots. The "guest" here enumerates through ECAM and through 0xcf8/0xcfc, enables
 * decoding and MSI-X, and unmasks 9 of the controller's vectors: only those 9 hold GSIs.
 *
 * Run: `node dist/examples/04-q35-pci.js`
 */
import { DefaultSystemAllocator, DeviceManager, getLayout, getPreset, PciRootComplex, type PciDevice, type PciFunction } from "../src/index.js";

/** A PCI function whose BARs answer with a fixed byte and count what they see. */
class Fn implements PciDevice {
  accesses = 0;
  constructor(
    readonly name: string,
    readonly vendorId: number,
    readonly deviceId: number,
    readonly classCode: number,
    more: Partial<Pick<PciDevice, "bars" | "msix" | "interruptPin">> = {},
  ) {
    Object.assign(this, more);
  }
  barRead(_bar: number, _offset: bigint, data: Uint8Array): void {
    this.accesses++;
    data.fill(0x5a);
  }
  barWrite(): void {
    this.accesses++;
  }
}

const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
const dm = DeviceManager.fromSystemAllocator(sys);
const start = JSON.stringify(sys.holdings());
let messages = 0;
// The ECAM window and its buses come from the preset's board (q35: 0xb0000000, buses 0-255); the
// layout reserves the same range as "pci-mmconfig", which the window uses.
const q35 = getPreset("pc-x86_64");
const host = q35.board(q35.defaults).pci!;
const pci = PciRootComplex.fromSystemAllocator(sys, dm, { ecam: { base: host.ecam.base, lastBus: host.lastBus }, onMsi: () => messages++ });
const ecamBase = host.ecam.base;

pci.plug(new Fn("q35-host-bridge", 0x8086, 0x29c0, 0x060000), { address: "00:00.0" });
pci.plug(new Fn("ich9-lpc", 0x8086, 0x2918, 0x060100), { address: "00:1f.0" });
const virtioBars = [
  { kind: "mem32", index: 1, size: 0x1000 },
  { kind: "mem64", index: 4, size: 0x4000, prefetchable: true },
] as const;
pci.plug(new Fn("virtio-blk", 0x1af4, 0x1042, 0x010000, { interruptPin: 1, bars: virtioBars, msix: { vectors: 2, tableBar: 1 } }));
pci.plug(new Fn("virtio-net", 0x1af4, 0x1041, 0x020000, { interruptPin: 1, bars: virtioBars, msix: { vectors: 3, tableBar: 1 } }));
const nvmeDevice = new Fn("nvme", 0x1b36, 0x0010, 0x010802, {
  interruptPin: 1,
  bars: [{ kind: "mem64", index: 0, size: 0x1_0000 }],
  msix: { vectors: 2048, tableBar: 0, tableOffset: 0x2000, pbaOffset: 0xa000 },
});
const nvme = pci.plug(nvmeDevice);

// --- the guest ---------------------------------------------------------------------------------
const ecam = (bdf: PciFunction["address"], reg: number) => ecamBase + BigInt((bdf.bus << 20) | (bdf.device << 15) | (bdf.function << 12) | reg);
const le = (v: number, n: number) => Uint8Array.from({ length: n }, (_, i) => (v >>> (8 * i)) & 0xff);
const value = (d: Uint8Array) => d.reduceRight((v, b) => v * 256 + b, 0);
function probe(via: "ecam" | "cf8"): number {
  let found = 0;
  for (let dev = 0; dev < 32; dev++) {
    const d = new Uint8Array(2);
    if (via === "ecam") dm.mmioRead(ecam({ segment: 0, bus: 0, device: dev, function: 0 }, 0), d);
    else {
      dm.pioWrite(0xcf8, le((0x8000_0000 | (dev << 11)) >>> 0, 4));
      dm.pioRead(0xcfc, d);
    }
    if (value(d) !== 0xffff) found++;
  }
  return found;
}
console.log(`enumerated via ecam: ${probe("ecam")} functions`);
console.log(`enumerated via cf8: ${probe("cf8")} functions`);

for (const fn of pci.functions()) {
  dm.mmioWrite(ecam(fn.address, 4), le(0x7, 2)); // I/O, memory, bus master
  const bars = fn.bars().map((b) => ` BAR ${b.index} ${b.range.toString(b.kind === "io" ? "io" : "mem")}${b.routed ? "" : " (unrouted)"}`);
  const id = fn.configRead(0, 4);
  const ids = `${(id & 0xffff).toString(16).padStart(4, "0")}:${(id >>> 16).toString(16).padStart(4, "0")}`;
  console.log(`function ${fn.bdf} ${fn.device.name} [${ids}] irq ${fn.intxLine ?? "-"}${bars.join("")}`);
}

// MSI-X on the controller: enable with the function masked, unmask 9 vectors, unmask the function.
const cap = nvme.msix!.offset;
dm.mmioWrite(ecam(nvme.address, cap + 2), le(0xc000, 2));
const table = nvme.bars()[0]!.range.start + 0x2000n;
const enabled = [0, 1, 2, 3, 4, 5, 6, 7, 8];
for (const v of enabled) {
  dm.mmioWrite(table + BigInt(16 * v), le(0xfee0_0000, 4));
  dm.mmioWrite(table + BigInt(16 * v + 8), le(0x30 + v, 4));
  dm.mmioWrite(table + BigInt(16 * v + 12), le(0, 4));
}
dm.mmioWrite(ecam(nvme.address, cap + 2), le(0x8000, 2));
const gsis = enabled.map((v) => nvme.msix!.gsiOf(v));
console.log(`nvme: ${nvme.msix!.vectors} MSI-X vectors, ${nvme.msix!.heldVectors} hold GSIs: ${gsis.join(",")}`);
for (const v of enabled) nvme.signalMsi(v);
console.log(`messages sent: ${messages}`);
const d = new Uint8Array(4);
dm.mmioRead(nvme.bars()[0]!.range.start, d);
console.log(`nvme register read: 0x${value(d).toString(16)}, device saw ${nvmeDevice.accesses} access(es)`);
pci.checkConsistency();

pci.close();
console.log(`closed; allocator back to its start: ${JSON.stringify(sys.holdings()) === start}`);
