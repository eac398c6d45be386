/**
 * Run as `node --expose-gc dist/test/helpers/alloc-probe.js` by test/devices/dispatch-alloc.test.ts:
 * for each kind of number access it warms the path up, collects garbage, then makes 10^6
 * accesses and reports on stdout, as one JSON line per kind, how much the heap grew and how many
 * garbage collections ran meanwhile (PerformanceObserver `gc` entries).
 */
import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";
import { Bus } from "../../src/devices/bus.js";
import type { Device } from "../../src/devices/device.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { RangeInclusive } from "../../src/core/range.js";

const ACCESSES = 1_000_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --expose-gc");

let collections = 0;
const observer = new PerformanceObserver((list) => {
  collections += list.getEntries().length;
});
observer.observe({ entryTypes: ["gc"] });
const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

/** Registers returning values that span the whole u32 range, 0xffffffff included. */
class Regs implements Device {
  readonly words = new Uint32Array([0xffffffff, 0x80000001, 0x12345678, 0]);
  readonly bytes = new Uint8Array(this.words.buffer);
  read8(o: number): number {
    return this.bytes[o & 15]!;
  }
  read16(o: number): number {
    return this.bytes[o & 14]! | (this.bytes[(o & 14) + 1]! << 8);
  }
  read32(o: number): number {
    return this.words[(o >>> 2) & 3]! | 0; // signed, as the Device documentation advises
  }
  write8(o: number, v: number): void {
    this.bytes[o & 15] = v;
  }
  write16(o: number, v: number): void {
    this.bytes[o & 14] = v;
    this.bytes[(o & 14) + 1] = v >>> 8;
  }
  write32(o: number, v: number): void {
    this.words[(o >>> 2) & 3] = v;
  }
}

/** The same registers behind the generic shape only. */
class GenericRegs implements Device {
  readonly bytes = new Uint8Array(16).fill(0xa5);
  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset) & 15;
    for (let i = 0; i < data.length; i++) data[i] = this.bytes[(o + i) & 15]!;
  }
  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    const o = Number(offset) & 15;
    for (let i = 0; i < data.length; i++) this.bytes[(o + i) & 15] = data[i]!;
  }
}

const LOW = 0xfee0_0000; // above 2^31: addresses are not small integers
const HIGH = 0x40_0000_0000;
const TOP = 0xffff_ffff_0000_0000n; // above 2^53: only the pair and bigint forms reach it

const io = new Bus("io");
io.insert(new RangeInclusive(0x3f8, 0x3ff), new Regs(), "uart");
io.insert(new RangeInclusive(0x500, 0x50f), new GenericRegs(), "generic");
const mem = new Bus("mem");
mem.insert(RangeInclusive.withSize(LOW, 0x1000), new Regs(), "lapic");
mem.insert(RangeInclusive.withSize(LOW + 0x1000, 0x1000), new GenericRegs(), "generic-low");
mem.insert(RangeInclusive.withSize(HIGH, 0x1000), new Regs(), "bar-high");
mem.insert(RangeInclusive.withSize(TOP, 0x1000), new Regs(), "bar-top");
const dm = new DeviceManager();
dm.pioBus.insert(new RangeInclusive(0x60, 0x67), new Regs(), "i8042");
dm.mmioBus.insert(RangeInclusive.withSize(0xd000_0000, 0x1000), new Regs(), "virtio");
const topHigh = Number(TOP >> 32n);
const bigLow = BigInt(LOW) + 4n;
const bigTop = TOP + 8n;
const bigTopUnmapped = TOP + 0x10000n;

let sink = 0;
/**
 * The kinds, by group. A `*` marks the kinds that keep every number inside int32 (ports, values,
 * split halves, bigint addresses): those allocate nothing even with inlining disabled. The others
 * pass an address at or above 2^31 as a double, which the caller boxes unless V8 inlines the
 * accessor into it (as it does for a monomorphic call site like these).
 */
const groups: Record<string, Record<string, (i: number) => void>> = {
  io: {
    "*io read8": (i) => (sink ^= io.read8(0x3f8 + (i & 7))),
    "*io read16": (i) => (sink ^= io.read16(0x3f8 + (i & 6))),
    "*io read32": (i) => (sink ^= io.read32(0x3f8 + (i & 4))),
    "*io write8": (i) => io.write8(0x3f8 + (i & 7), i),
    "*io write16": (i) => io.write16(0x3f8 + (i & 6), i),
    "*io write32": (i) => io.write32(0x3f8 + (i & 4), (i * 0x10001) | 0),
    "*io read32 unmapped": (i) => (sink ^= io.read32(0x80 + (i & 4))),
    "*io write32 unmapped": (i) => io.write32(0x80 + (i & 4), i),
    "*io read32 generic device": (i) => (sink ^= io.read32(0x500 + (i & 12))),
    "*io write32 generic device": (i) => io.write32(0x500 + (i & 12), i),
    "*io read 4-byte buffer": (i) => {
      io.read(0x3f8 + (i & 4), buffer4);
      sink ^= buffer4[0]!;
    },
    "*io read 4-byte buffer, generic device": (i) => {
      io.read(0x500 + (i & 12), buffer4);
      sink ^= buffer4[0]!;
    },
  },
  mem: {
    "mem read8": (i) => (sink ^= mem.read8(LOW + (i & 0xfff))),
    "mem read16": (i) => (sink ^= mem.read16(LOW + (i & 0xffe))),
    "mem read32": (i) => (sink ^= mem.read32(LOW + (i & 0xffc))),
    "mem write8": (i) => mem.write8(LOW + (i & 0xfff), i),
    "mem write16": (i) => mem.write16(LOW + (i & 0xffe), i),
    "mem write32": (i) => mem.write32(LOW + (i & 0xffc), (0xffff0000 + i) | 0),
    "mem read32 unmapped": (i) => (sink ^= mem.read32(0xe000_0000 + (i & 0xffc))),
    "mem read32 generic device": (i) => (sink ^= mem.read32(LOW + 0x1000 + (i & 0xffc))),
    "mem write32 generic device": (i) => mem.write32(LOW + 0x1000 + (i & 0xffc), i),
    "mem read32 above 2^32": (i) => (sink ^= mem.read32(HIGH + (i & 0xffc))),
    "mem write32 above 2^32": (i) => mem.write32(HIGH + (i & 0xffc), i),
  },
  pair: {
    "*mem read8Pair": (i) => (sink ^= mem.read8Pair(0, (LOW + (i & 0xfff)) | 0)),
    "*mem read32Pair": (i) => (sink ^= mem.read32Pair(0, (LOW + (i & 0xffc)) | 0)),
    "*mem write32Pair": (i) => mem.write32Pair(0, (LOW + (i & 0xffc)) | 0, i),
    "*mem read32Pair above 2^32": (i) => (sink ^= mem.read32Pair(0x40, i & 0xffc)),
    "*mem write16Pair above 2^32": (i) => mem.write16Pair(0x40, i & 0xffe, i),
    "*mem read32Pair unmapped": (i) => (sink ^= mem.read32Pair(0x7, i & 0xffc)),
    "*mem read32Pair above 2^53": (i) => (sink ^= mem.read32Pair(topHigh, i & 0xffc)),
    "*mem write32Pair above 2^53": (i) => mem.write32Pair(topHigh, i & 0xffc, i),
    "*mem read8Pair above 2^53": (i) => (sink ^= mem.read8Pair(topHigh, i & 0xfff)),
  },
  big: {
    "*mem read32Big": () => (sink ^= mem.read32Big(bigLow)),
    "*mem write32Big": (i) => mem.write32Big(bigLow, i),
    "*mem read32Big above 2^53": () => (sink ^= mem.read32Big(bigTop)),
    "*mem write32Big above 2^53": (i) => mem.write32Big(bigTop, i),
    "*mem read16Big unmapped above 2^53": () => (sink ^= mem.read16Big(bigTopUnmapped)),
    "*mem read 4-byte buffer, bigint address": () => {
      mem.read(bigLow, buffer4);
      sink ^= buffer4[0]!;
    },
  },
  manager: {
    "*DeviceManager pioRead8": (i) => (sink ^= dm.pioRead8(0x60 + (i & 7))),
    "*DeviceManager pioWrite16": (i) => dm.pioWrite16(0x60 + (i & 6), i),
    "*DeviceManager pioRead32": () => (sink ^= dm.pioRead32(0x64)),
    "DeviceManager mmioRead32": (i) => (sink ^= dm.mmioRead32(0xd000_0000 + (i & 0xffc))),
    "DeviceManager mmioWrite32": (i) => dm.mmioWrite32(0xd000_0000 + (i & 0xffc), i),
    "*DeviceManager mmioRead32Pair": (i) => (sink ^= dm.mmioRead32Pair(0, (0xd000_0000 + (i & 0xffc)) | 0)),
    "*DeviceManager mmioWrite8Pair": (i) => dm.mmioWrite8Pair(0, (0xd000_0000 + (i & 0xfff)) | 0, i),
    "*DeviceManager mmioRead32Big": () => (sink ^= dm.mmioRead32Big(0xd000_0010n)),
  },
};
const buffer4 = new Uint8Array(4);

// argv: "list" (print the kinds), a group name or "all", then "strict" (only the `*` kinds) or
// "loose" (only the others) or a kind's name (only that kind).
const group = process.argv[2] ?? "all";
const filter = process.argv[3];
if (group === "list") {
  for (const [g, kinds] of Object.entries(groups)) {
    for (const label of Object.keys(kinds)) console.log(JSON.stringify({ group: g, kind: label.replace(/^\*/, ""), strict: label.startsWith("*") }));
  }
}
for (const [g, kinds] of Object.entries(groups)) {
  if (group !== "all" && group !== g) continue;
  for (const [label, access] of Object.entries(kinds)) {
    const strict = label.startsWith("*");
    const kind = strict ? label.slice(1) : label;
    if (filter === "strict" ? !strict : filter === "loose" ? strict : filter !== undefined && filter !== kind) continue;
    // (sink ^= keeps the sink a small integer: a growing double would allocate in the probe itself.)
    // A loop of its own per kind, so that each is optimized for its one access and not shared.
    const loop = new Function("access", "n", "for (let i = 0; i < n; i++) access(i);") as (access: (i: number) => void, n: number) => void;
    loop(access, 100_000);
    loop(access, 100_000);
    // Measured twice, keeping the better attempt: a one-off (V8 finishing a compilation during
    // the first) cannot fail a kind, while an allocation per access shows in both.
    let best = { heapGrowth: Infinity, collections: Infinity };
    for (let attempt = 0; attempt < 2 && (best.collections > 0 || best.heapGrowth > 100_000); attempt++) {
      gc();
      await settle();
      collections = 0;
      const before = v8.getHeapStatistics().used_heap_size;
      loop(access, ACCESSES);
      const after = v8.getHeapStatistics().used_heap_size;
      await settle();
      if (collections < best.collections || (collections === best.collections && after - before < best.heapGrowth)) best = { heapGrowth: after - before, collections };
    }
    console.log(JSON.stringify({ group: g, kind, strict, accesses: ACCESSES, ...best }));
  }
}
observer.disconnect();
if (sink === 0.5) console.log("unreachable");
