/**
 * PCI configuration access as a guest makes it: a dword read through configuration mechanism #1
 * (write the address to 0xcf8, read 0xcfc: two port exits) and through ECAM (one MMIO exit), and
 * a Linux-style enumeration of a bus holding 32 devices (probe all 32 slots, read each present
 * function's header and size its six BARs with decoding off), through each mechanism.
 *
 * Everything goes through `DeviceManager.pioRead/pioWrite/mmioRead/mmioWrite`, as VM exits do.
 */
import { DeviceManager } from "../src/devices/device-manager.js";
import { PciRootComplex } from "../src/pci/root-complex.js";
import type { PciDevice } from "../src/pci/pci-function.js";
import { getLayout } from "../src/system/layouts.js";
import { DefaultSystemAllocator } from "../src/system/system-allocator.js";
import { runPhases, type Phase } from "./harness.js";

const READS = 1 << 15;
const ENUMERATIONS = 20;
const ECAM = 0xb000_0000n;

class Fn implements PciDevice {
  readonly interruptPin = 1;
  readonly bars = [
    { kind: "mem32", index: 1, size: 0x1000 },
    { kind: "mem64", index: 4, size: 0x4000, prefetchable: true },
  ] as const;
  readonly msix = { vectors: 4, tableBar: 1 };
  constructor(
    readonly name: string,
    readonly vendorId = 0x1af4,
    readonly deviceId = 0x1042,
    readonly classCode = 0x010000,
  ) {}
}

const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
const dm = DeviceManager.fromSystemAllocator(sys);
const pci = PciRootComplex.fromSystemAllocator(sys, dm, { ecam: { base: ECAM }, buses: [{ bus: 0 }] });
pci.plug(new Fn("host-bridge", 0x8086, 0x29c0, 0x060000), { address: "00:00.0" });
for (let i = 1; i < 32; i++) pci.plug(new Fn(`virtio-${i}`));
pci.checkConsistency();

const word = new Uint8Array(4);
const half = new Uint8Array(2);
const byte = new Uint8Array(1);
const set32 = (d: Uint8Array, v: number): Uint8Array => {
  d[0] = v & 0xff;
  d[1] = (v >>> 8) & 0xff;
  d[2] = (v >>> 16) & 0xff;
  d[3] = v >>> 24;
  return d;
};
const get = (d: Uint8Array): number => (d.length === 4 ? (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0 : d.length === 2 ? d[0]! | (d[1]! << 8) : d[0]!);
const addr = new Uint8Array(4);
let sink = 0;

type Access = { read(dev: number, reg: number, d: Uint8Array): number; write(dev: number, reg: number, d: Uint8Array): void };
const cf8: Access = {
  read(dev, reg, d) {
    dm.pioWrite(0xcf8, set32(addr, (0x8000_0000 | (dev << 11) | (reg & 0xfc)) >>> 0));
    dm.pioRead(0xcfc + (reg & 3), d);
    return get(d);
  },
  write(dev, reg, d) {
    dm.pioWrite(0xcf8, set32(addr, (0x8000_0000 | (dev << 11) | (reg & 0xfc)) >>> 0));
    dm.pioWrite(0xcfc + (reg & 3), d);
  },
};
const ecamBases = Array.from({ length: 32 }, (_, dev) => ECAM + BigInt(dev << 15));
const ecam: Access = {
  read(dev, reg, d) {
    dm.mmioRead(ecamBases[dev]! + BigInt(reg), d);
    return get(d);
  },
  write(dev, reg, d) {
    dm.mmioWrite(ecamBases[dev]! + BigInt(reg), d);
  },
};

/** Probes every slot; for each present function reads its header and sizes its BARs. */
function enumerate(a: Access): number {
  let found = 0;
  for (let dev = 0; dev < 32; dev++) {
    if ((a.read(dev, 0, word) & 0xffff) === 0xffff) continue;
    found++;
    a.read(dev, 0x0e, byte);
    a.read(dev, 0x08, word);
    const cmd = a.read(dev, 0x04, half);
    half[0] = cmd & ~3;
    half[1] = cmd >> 8;
    a.write(dev, 0x04, half);
    for (let bar = 0; bar < 6; bar++) {
      const reg = 0x10 + 4 * bar;
      const orig = a.read(dev, reg, word);
      a.write(dev, reg, set32(word, 0xffff_ffff));
      sink += a.read(dev, reg, word);
      a.write(dev, reg, set32(word, orig));
    }
    half[0] = cmd & 0xff;
    half[1] = cmd >> 8;
    a.write(dev, 0x04, half);
  }
  return found;
}
if (enumerate(cf8) !== 32 || enumerate(ecam) !== 32) throw new Error("enumeration did not find 32 devices");

const phases: Phase[] = [
  {
    name: "config dword read via 0xcf8/0xcfc (2 exits)",
    ops: READS,
    run: () => {
      for (let i = 0; i < READS; i++) sink += cf8.read(i & 31, 0, word);
    },
  },
  {
    name: "config dword read via ECAM (1 exit)",
    ops: READS,
    run: () => {
      for (let i = 0; i < READS; i++) sink += ecam.read(i & 31, 0, word);
    },
  },
  {
    name: "enumerate 32 devices via 0xcf8/0xcfc",
    ops: ENUMERATIONS,
    run: () => {
      for (let i = 0; i < ENUMERATIONS; i++) enumerate(cf8);
    },
  },
  {
    name: "enumerate 32 devices via ECAM",
    ops: ENUMERATIONS,
    run: () => {
      for (let i = 0; i < ENUMERATIONS; i++) enumerate(ecam);
    },
  },
];

runPhases(phases, { iterations: 20 });
pci.checkConsistency();
if (pci.barConflicts !== 0) throw new Error(`sizing caused ${pci.barConflicts} BAR conflicts`);
if (sink === -1) console.log("unreachable");
