/**
 * Dispatch through the fast tables: number accessors (number, u32-pair and bigint addresses),
 * device shapes and their adaptation, the guest-proof rules, device errors, the change feed and
 * moves. The model test in dispatch.model.test.ts checks the same paths against a reference under
 * random changes; dispatch-alloc.test.ts checks that they allocate nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Bus, type BusChange, type DeviceErrorReport, type UnmappedAccess } from "../../src/devices/bus.js";
import type { Device } from "../../src/devices/device.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { U64_MAX } from "../../src/core/u64.js";
import { code } from "../helpers/assert-code.js";

const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);
const TWO32 = 2n ** 32n;
const TWO53 = 2n ** 53n;
const TWO63 = 2n ** 63n;

/** Little-endian value of `width` bytes of `bytes` at `offset`, as a number accessor returns it (32 bits signed). */
function le(bytes: Uint8Array, offset: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = v * 256 + bytes[offset + i]!;
  return width === 4 ? v | 0 : v;
}

function pattern(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 37 + 0x91 + seed * 11) & 0xff);
}

/** Registers behind the width methods; every call is logged. read32 returns the unsigned value, which the bus must normalize. */
class WidthFile implements Device {
  readonly calls: string[] = [];
  constructor(
    readonly name: string,
    readonly bytes: Uint8Array,
  ) {}
  read8(o: number): number {
    this.calls.push(`read8 ${o}`);
    return this.bytes[o]!;
  }
  read16(o: number): number {
    this.calls.push(`read16 ${o}`);
    return this.bytes[o]! | (this.bytes[o + 1]! << 8);
  }
  read32(o: number): number {
    this.calls.push(`read32 ${o}`);
    return (this.bytes[o]! | (this.bytes[o + 1]! << 8) | (this.bytes[o + 2]! << 16) | (this.bytes[o + 3]! << 24)) >>> 0;
  }
  write8(o: number, v: number): void {
    this.calls.push(`write8 ${o} ${v}`);
    this.bytes[o] = v;
  }
  write16(o: number, v: number): void {
    this.calls.push(`write16 ${o} ${v}`);
    this.bytes[o] = v;
    this.bytes[o + 1] = v >>> 8;
  }
  write32(o: number, v: number): void {
    this.calls.push(`write32 ${o} ${v}`);
    for (let i = 0; i < 4; i++) this.bytes[o + i] = v >>> (8 * i);
  }
}

/** The same registers behind the generic methods. */
class GenericFile implements Device {
  readonly calls: string[] = [];
  constructor(
    readonly name: string,
    readonly bytes: Uint8Array,
  ) {}
  read(base: bigint, offset: bigint, data: Uint8Array): void {
    this.calls.push(`read ${base} ${offset} ${data.length}`);
    data.set(this.bytes.subarray(Number(offset), Number(offset) + data.length));
  }
  write(base: bigint, offset: bigint, data: Uint8Array): void {
    this.calls.push(`write ${base} ${offset} ${data.length}`);
    this.bytes.set(data, Number(offset));
  }
}

/** Both shapes over the same bytes. */
class BothFile extends WidthFile {
  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    this.calls.push(`read ${offset} ${data.length}`);
    data.set(this.bytes.subarray(Number(offset), Number(offset) + data.length));
  }
  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    this.calls.push(`write ${offset} ${data.length}`);
    this.bytes.set(data, Number(offset));
  }
}

type Shape = "width" | "generic" | "both";
function file(shape: Shape, bytes: Uint8Array): WidthFile | GenericFile {
  return shape === "width" ? new WidthFile(shape, bytes) : shape === "generic" ? new GenericFile(shape, bytes) : new BothFile(shape, bytes);
}

/** Every way a bus can be asked for a read of `width` bytes at `address`, as numbers. */
function readsAt(bus: Bus, address: bigint, width: 1 | 2 | 4): number[] {
  const out: number[] = [];
  const high = Number(address >> 32n);
  const low = Number(address & 0xffff_ffffn);
  if (address <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const a = Number(address);
    out.push(width === 1 ? bus.read8(a) : width === 2 ? bus.read16(a) : bus.read32(a));
    const buf = new Uint8Array(width);
    bus.read(a, buf);
    out.push(le(buf, 0, width));
  }
  out.push(width === 1 ? bus.read8Pair(high, low) : width === 2 ? bus.read16Pair(high, low) : bus.read32Pair(high, low));
  out.push(width === 1 ? bus.read8Pair(high | 0, low | 0) : width === 2 ? bus.read16Pair(high | 0, low | 0) : bus.read32Pair(high | 0, low | 0));
  out.push(width === 1 ? bus.read8Big(address) : width === 2 ? bus.read16Big(address) : bus.read32Big(address));
  const buf = new Uint8Array(width);
  bus.read(address, buf);
  out.push(le(buf, 0, width));
  return out;
}

/** Every way to write `value` (`width` bytes) at `address`. */
const writers: [string, (bus: Bus, address: bigint, width: 1 | 2 | 4, value: number) => void][] = [
  [
    "number",
    (bus, a, w, v) => {
      if (a > BigInt(Number.MAX_SAFE_INTEGER)) return writers[1]![1](bus, a, w, v);
      if (w === 1) bus.write8(Number(a), v);
      else if (w === 2) bus.write16(Number(a), v);
      else bus.write32(Number(a), v);
    },
  ],
  [
    "pair",
    (bus, a, w, v) => {
      const h = Number(a >> 32n);
      const l = Number(a & 0xffff_ffffn);
      if (w === 1) bus.write8Pair(h, l, v);
      else if (w === 2) bus.write16Pair(h, l, v);
      else bus.write32Pair(h, l, v);
    },
  ],
  [
    "bigint",
    (bus, a, w, v) => {
      if (w === 1) bus.write8Big(a, v);
      else if (w === 2) bus.write16Big(a, v);
      else bus.write32Big(a, v);
    },
  ],
  [
    "buffer",
    (bus, a, w, v) => {
      const data = new Uint8Array(w);
      for (let i = 0; i < w; i++) data[i] = v >>> (8 * i);
      bus.write(a, data);
    },
  ],
];

// Bases that exercise each table: the port table, the low block map, the high hash, the exact
// index above 2^53 and above 2^63, and the last page of the space.
const PLACES: { kind: "io" | "mem"; base: bigint }[] = [
  { kind: "io", base: 0x3f0n },
  { kind: "mem", base: 0xfee0_0ff8n }, // straddles a 4 KiB page
  { kind: "mem", base: 0x1_0001_fff8n }, // above 2^32, straddles a 128 KiB block
  { kind: "mem", base: TWO53 - 8n }, // straddles 2^53
  { kind: "mem", base: TWO63 - 8n },
  { kind: "mem", base: U64_MAX - 15n },
];

describe("dispatch: both device shapes observe the same bytes", () => {
  it("reads of every width at every offset agree across shapes and accessors, little-endian", () => {
    for (const { kind, base } of PLACES) {
      for (const shape of ["width", "generic", "both"] as const) {
        const bytes = pattern(16, Number(base & 0xffn));
        const bus = new Bus(kind);
        bus.insert(r(base, base + 15n), file(shape, bytes));
        for (const width of [1, 2, 4] as const) {
          for (let offset = 0; offset + width <= 16; offset++) {
            const expected = le(bytes, offset, width);
            for (const got of readsAt(bus, base + BigInt(offset), width)) {
              assert.equal(got, expected, `${kind} ${base} ${shape} read${width * 8} at +${offset}`);
            }
          }
        }
        assert.equal(bus.unmappedReads + bus.rejectedReads, 0);
        assert.deepEqual(bytes, pattern(16, Number(base & 0xffn)), "reads change nothing");
      }
    }
  });

  it("writes of every width at every offset leave the same bytes in both shapes, whatever the accessor", () => {
    for (const { kind, base } of PLACES) {
      for (const [how, write] of writers) {
        for (const width of [1, 2, 4] as const) {
          for (let offset = 0; offset + width <= 16; offset++) {
            const value = (0x9abcdef1 * (offset + 1) * width) >>> 0;
            const results = (["width", "generic", "both"] as const).map((shape) => {
              const bytes = pattern(16);
              const bus = new Bus(kind);
              bus.insert(r(base, base + 15n), file(shape, bytes));
              write(bus, base + BigInt(offset), width, value);
              return [...bytes];
            });
            const expected = [...pattern(16)];
            for (let i = 0; i < width; i++) expected[offset + i] = (value >>> (8 * i)) & 0xff;
            for (const got of results) assert.deepEqual(got, expected, `${kind} ${base} ${how} write${width * 8} at +${offset}`);
          }
        }
      }
    }
  });

  it("buffers of 1 to 16 bytes read the same bytes from both shapes; width devices are served in 4-, 2- and 1-byte pieces", () => {
    for (const shape of ["width", "generic", "both"] as const) {
      for (let length = 1; length <= 16; length++) {
        for (let offset = 0; offset + length <= 16; offset++) {
          const bytes = pattern(16);
          const device = file(shape, bytes);
          const bus = new Bus("mem");
          bus.insert(r(0x2000, 0x200f), device);
          const data = new Uint8Array(length);
          assert.equal(bus.read(0x2000 + offset, data), true);
          assert.deepEqual([...data], [...bytes.subarray(offset, offset + length)]);
          if (shape === "width") {
            const expected: string[] = [];
            let i = 0;
            for (; length - i >= 4; i += 4) expected.push(`read32 ${offset + i}`);
            if (length - i >= 2) expected.push(`read16 ${offset + i}`), (i += 2);
            if (i < length) expected.push(`read8 ${offset + i}`);
            assert.deepEqual(device.calls, expected, `pieces of ${length} bytes at +${offset}`);
          } else {
            assert.deepEqual(device.calls.length, 1, "one guest access is one call of the generic method");
          }
        }
      }
    }
  });

  it("passes a generic device the mapping's base and the offset from it, for every kind of address", () => {
    const bytes = pattern(0x40);
    const g = new GenericFile("g", bytes);
    const bus = new Bus("mem");
    bus.insert(r(TWO63 + 0x100n, TWO63 + 0x13fn), g);
    bus.read32Big(TWO63 + 0x104n);
    bus.write16Pair(0x8000_0000, 0x13e, 0xbeef);
    bus.read(TWO63 + 0x110n, new Uint8Array(8));
    assert.deepEqual(g.calls, [`read ${TWO63 + 0x100n} 4 4`, `write ${TWO63 + 0x100n} 62 2`, `read ${TWO63 + 0x100n} 16 8`]);
    assert.deepEqual([bytes[0x3e], bytes[0x3f]], [0xef, 0xbe]);
  });
});

describe("dispatch: adapting what a device lacks", () => {
  it("composes a missing width from narrower ones, little-endian, lower offset first", () => {
    const bytes = pattern(8);
    const calls: string[] = [];
    const narrow: Device = {
      read8: (o) => (calls.push(`r8 ${o}`), bytes[o]!),
      write8: (o, v) => {
        calls.push(`w8 ${o} ${v}`);
        bytes[o] = v;
      },
    };
    const bus = new Bus("io");
    bus.insert(r(0x60, 0x67), narrow);
    assert.equal(bus.read16(0x62), le(bytes, 2, 2));
    assert.equal(bus.read32(0x64), le(bytes, 4, 4));
    assert.deepEqual(calls.splice(0), ["r8 2", "r8 3", "r8 4", "r8 5", "r8 6", "r8 7"]);
    bus.write32(0x60, 0x44332211);
    assert.deepEqual(calls.splice(0), ["w8 0 17", "w8 1 34", "w8 2 51", "w8 3 68"]);
    assert.deepEqual([...bytes.subarray(0, 4)], [0x11, 0x22, 0x33, 0x44]);
  });

  it("prefers a device's generic method to composition, so one access stays one call", () => {
    const calls: string[] = [];
    const mixed: Device = {
      read8: () => (calls.push("read8"), 1),
      read: (_b, o, d) => {
        calls.push(`read ${o} ${d.length}`);
        d.fill(2);
      },
      write: () => {},
    };
    const bus = new Bus("mem");
    bus.insert(r(0x1000, 0x1fff), mixed);
    assert.equal(bus.read8(0x1000), 1, "an own width method wins");
    assert.equal(bus.read16(0x1002), 0x0202);
    assert.equal(bus.read32(0x1004), 0x02020202);
    assert.deepEqual(calls, ["read8", "read 2 2", "read 4 4"]);
  });

  it("serves a width the device cannot serve as unmapped, with the reason unsupported", () => {
    const words = new Uint32Array([0x11223344, 0x55667788]);
    const device: Device = { read32: (o) => words[o >>> 2]!, write32: (o, v) => void (words[o >>> 2] = v) };
    const seen: string[] = [];
    const bus = new Bus("mem", { onUnmapped: (a) => void seen.push(`${a.kind} ${a.reason} ${a.owner} ${a.data.length}`) });
    bus.insert(r(0x1000, 0x1007), device, "regs");
    assert.equal(bus.read32(0x1000), 0x11223344);
    assert.equal(bus.read8(0x1000), 0xff);
    assert.equal(bus.read16(0x1000), 0xffff);
    bus.write8(0x1000, 0);
    const three = new Uint8Array(3);
    assert.equal(bus.read(0x1000, three), false);
    assert.deepEqual([...three], [0xff, 0xff, 0xff]);
    const eight = new Uint8Array(8);
    assert.equal(bus.read(0x1000, eight), true, "8 bytes are two 32-bit pieces");
    assert.deepEqual([...eight], [0x44, 0x33, 0x22, 0x11, 0x88, 0x77, 0x66, 0x55]);
    assert.equal(words[0], 0x11223344, "the unsupported write was dropped");
    assert.deepEqual(seen, ["read unsupported regs 1", "read unsupported regs 2", "write unsupported regs 1", "read unsupported regs 3"]);
    assert.equal(bus.rejectedReads, 3);
    assert.equal(bus.rejectedWrites, 1);
    assert.equal(bus.unmappedReads + bus.unmappedWrites, 0);
  });

  it("truncates values to their width both ways, and hands write32 a signed int32", () => {
    const got: number[] = [];
    const device: Device = {
      read8: () => 0x1ff,
      read16: () => -1,
      read32: () => 0x1_2345_6789,
      write8: (_o, v) => void got.push(v),
      write16: (_o, v) => void got.push(v),
      write32: (_o, v) => void got.push(v),
    };
    const bus = new Bus("io");
    bus.insert(r(0, 7), device);
    assert.deepEqual([bus.read8(0), bus.read16(0), bus.read32(0)], [0xff, 0xffff, 0x23456789]);
    bus.write8(0, 0x1ff);
    bus.write16(0, -1);
    bus.write32(0, 0xffff_ffff);
    bus.write32(0, 0x8000_0000);
    bus.write8(0, Number.NaN);
    assert.deepEqual(got, [0xff, 0xffff, -1, -0x8000_0000, 0]);
  });
});

describe("dispatch: number accessors", () => {
  it("return all ones where nothing is mapped, count, and remember the address", () => {
    const bus = new Bus("mem");
    assert.deepEqual([bus.read8(0x10), bus.read16(0x10), bus.read32(0x10)], [0xff, 0xffff, -1]);
    assert.equal(bus.read32(0x10) >>> 0, 0xffff_ffff);
    bus.write32(0x20, 5);
    assert.equal(bus.read32Pair(0xffff_ffff, 0xffff_fffc), -1);
    assert.equal(bus.read8Big(U64_MAX), 0xff);
    assert.equal(bus.unmappedReads, 6);
    assert.equal(bus.unmappedWrites, 1);
    assert.equal(bus.lastUnmappedAddress, U64_MAX);
    bus.write8Pair(0, 0xffff_fff0 | 0, 1);
    assert.equal(bus.lastUnmappedAddress, 0xffff_fff0n, "a signed low half is its two's complement");
  });

  it("reject addresses no guest can produce with InvalidArgument, counting nothing", () => {
    const bus = new Bus("io");
    bus.insert(r(0, 0xff), new WidthFile("d", new Uint8Array(0x100)));
    const bad: unknown[] = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, "16", 16n, null, undefined];
    for (const a of bad) {
      for (const call of [
        () => bus.read8(a as number),
        () => bus.read16(a as number),
        () => bus.read32(a as number),
        () => bus.write8(a as number, 0),
        () => bus.write16(a as number, 0),
        () => bus.write32(a as number, 0),
      ]) {
        assert.throws(call, code("InvalidArgument", /^address must be/), String(a));
      }
    }
    for (const [h, l] of [
      [2 ** 32, 0],
      [0, 2 ** 32],
      [-(2 ** 31) - 1, 0],
      [0.5, 0],
      [0, Number.NaN],
    ] as const) {
      assert.throws(() => bus.read32Pair(h, l), code("InvalidArgument", /^(high|low) must be an integer/));
      assert.throws(() => bus.write8Pair(h, l, 0), code("InvalidArgument"));
    }
    for (const a of [-1n, U64_MAX + 1n, 5 as unknown as bigint]) {
      assert.throws(() => bus.read16Big(a), code("InvalidArgument", /^address must be/));
      assert.throws(() => bus.write32Big(a, 0), code("InvalidArgument"));
    }
    assert.equal(bus.unmappedReads + bus.unmappedWrites + bus.rejectedReads + bus.rejectedWrites, 0);
  });

  it("reach the same device at the edges of every table: 2^31, 2^32, a block boundary, 2^53, 2^63, 2^64-1", () => {
    const bus = new Bus("mem");
    const spans: [bigint, bigint][] = [
      [0x7fff_fff0n, 0x8000_000fn],
      [0xffff_f000n, 0x1_0000_0fffn],
      [0x1_0001_fffcn, 0x1_0002_0003n],
      [TWO53 - 0x10n, TWO53 + 0xfn],
      [TWO63 - 0x10n, TWO63 + 0xfn],
      [U64_MAX - 0xfn, U64_MAX],
    ];
    for (const [s, e] of spans) bus.insert(r(s, e), new WidthFile(`at ${s}`, pattern(Number(e - s + 1n))));
    bus.checkValid();
    for (const [s, e] of spans) {
      const bytes = (bus.lookup(s)!.device as WidthFile).bytes;
      for (let a = s; a + 3n <= e; a += 1n) {
        for (const got of readsAt(bus, a, 4)) assert.equal(got, le(bytes, Number(a - s), 4), `read32 at ${a}`);
      }
      // Just outside on both sides: nothing.
      for (const a of [s - 1n, e + 1n]) if (a >= 0n && a <= U64_MAX) assert.equal(bus.read8Big(a), 0xff);
    }
    assert.equal(bus.rejectedReads, 0);
  });

  it("go through the device manager too", () => {
    const dm = new DeviceManager();
    const uart = new WidthFile("uart", pattern(8));
    const bar = new WidthFile("bar", pattern(0x1000));
    const high = new GenericFile("high", pattern(0x1000, 1));
    dm.pioBus.insert(r(0x3f8, 0x3ff), uart);
    dm.mmioBus.insert(r(0xd000_0000, 0xd000_0fff), bar);
    dm.mmioBus.insert(r(TWO63, TWO63 + 0xfffn), high);
    assert.deepEqual([dm.pioRead8(0x3f9), dm.pioRead16(0x3fa), dm.pioRead32(0x3fc)], [le(uart.bytes, 1, 1), le(uart.bytes, 2, 2), le(uart.bytes, 4, 4)]);
    dm.pioWrite8(0x3f8, 1);
    dm.pioWrite16(0x3fa, 0x0302);
    dm.pioWrite32(0x3fc, 0x07060504);
    assert.deepEqual([...uart.bytes], [1, uart.bytes[1], 2, 3, 4, 5, 6, 7]);
    dm.mmioWrite8(0xd000_0010, 0xaa);
    dm.mmioWrite16(0xd000_0012, 0xccbb);
    dm.mmioWrite32(0xd000_0014, 0x11223344);
    assert.equal(dm.mmioRead8(0xd000_0010), 0xaa);
    assert.equal(dm.mmioRead16(0xd000_0012), 0xccbb);
    assert.equal(dm.mmioRead32(0xd000_0014), 0x11223344);
    dm.mmioWrite8Pair(0, 0xd000_0020 | 0, 1);
    dm.mmioWrite16Pair(0, 0xd000_0022, 0x0302);
    dm.mmioWrite32Pair(0, 0xd000_0024, -1);
    assert.deepEqual([dm.mmioRead8Pair(0, 0xd000_0020), dm.mmioRead16Pair(0, 0xd000_0022), dm.mmioRead32Pair(0, 0xd000_0024)], [1, 0x0302, -1]);
    dm.mmioWrite8Big(TWO63 + 1n, 9);
    dm.mmioWrite16Big(TWO63 + 2n, 0x0b0a);
    dm.mmioWrite32Big(TWO63 + 4n, 0x0f0e0d0c);
    assert.deepEqual([dm.mmioRead8Big(TWO63 + 1n), dm.mmioRead16Big(TWO63 + 2n), dm.mmioRead32Big(TWO63 + 4n)], [9, 0x0b0a, 0x0f0e0d0c]);
    assert.deepEqual([...high.bytes.subarray(1, 8)], [9, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f]);
    assert.equal(dm.mmioRead32(0xe000_0000), -1);
    assert.equal(dm.mmioBus.unmappedReads, 1);
  });
});

describe("dispatch: guest-proof rules", () => {
  function world() {
    const seen: UnmappedAccess[] = [];
    const bus = new Bus("mem", { onUnmapped: (a) => void seen.push(a) });
    const a = new GenericFile("a", pattern(0x100));
    const b = new WidthFile("b", pattern(0x100));
    const c = new GenericFile("c", pattern(0x100));
    bus.insert(r(0x1000, 0x10ff), a, "a@1");
    bus.insert(r(0x1100, 0x11ff), b, "b@2");
    bus.insert(r(0x1300, 0x13ff), c, "c@3");
    bus.insert(r(U64_MAX - 0xffn, U64_MAX), new GenericFile("top", pattern(0x100)), "top@4");
    return { bus, seen, a, b, c };
  }

  it("serves an empty access as unmapped, reason empty, mapped or not", () => {
    const { bus, seen, a } = world();
    assert.equal(bus.read(0x1000, new Uint8Array(0)), false);
    assert.equal(bus.write(0x1000n, new Uint8Array(0)), false);
    assert.equal(bus.read(0x9000, new Uint8Array(0)), false);
    assert.equal(bus.read(TWO63, new Uint8Array(0)), false);
    assert.deepEqual(
      seen.map((s) => [s.kind, s.address, s.reason, s.data.length]),
      [
        ["read", 0x1000n, "empty", 0],
        ["write", 0x1000n, "empty", 0],
        ["read", 0x9000n, "empty", 0],
        ["read", TWO63, "empty", 0],
      ],
    );
    assert.equal(a.calls.length, 0);
    assert.equal(bus.rejectedReads, 3);
    assert.equal(bus.rejectedWrites, 1);
  });

  it("tells past-end from straddling, across a gap too, and past 2^64-1", () => {
    const { bus, seen, a, b, c } = world();
    const cases: [bigint, number, string, string][] = [
      [0x10fcn, 8, "straddle", "a@1"], // a into b
      [0x11fen, 4, "past-end", "b@2"], // b into the gap
      [0x11f0n, 0x120, "straddle", "b@2"], // b, over the gap, into c
      [0x13fen, 3, "past-end", "c@3"],
      [U64_MAX - 1n, 4, "past-end", "top@4"], // would wrap past 2^64-1
      [U64_MAX, 16, "past-end", "top@4"],
    ];
    for (const [address, length, reason, owner] of cases) {
      for (const addr of address <= BigInt(Number.MAX_SAFE_INTEGER) ? [address, Number(address)] : [address]) {
        seen.length = 0;
        const data = new Uint8Array(length).fill(7);
        assert.equal(bus.read(addr, data), false, `${address} ${length}`);
        assert.ok(data.every((x) => x === 0xff));
        assert.equal(bus.write(addr, new Uint8Array(length)), false);
        assert.deepEqual(
          seen.map((s) => `${s.kind} ${s.reason} ${s.owner}`),
          [`read ${reason} ${owner}`, `write ${reason} ${owner}`],
          `${address} ${length}`,
        );
      }
    }
    // The same through the width accessors.
    seen.length = 0;
    assert.equal(bus.read32(0x10fe), -1);
    assert.equal(bus.read16Pair(0, 0x11ff), 0xffff);
    bus.write32Big(U64_MAX - 2n, 0);
    assert.deepEqual(
      seen.map((s) => `${s.kind} ${s.reason} ${s.owner} ${s.data.length}`),
      ["read straddle a@1 4", "read past-end b@2 2", "write past-end top@4 4"],
    );
    assert.deepEqual([a.calls.length, b.calls.length, c.calls.length], [0, 0, 0], "no device saw a misfit access");
    assert.equal(bus.unmappedReads + bus.unmappedWrites, 0);
  });

  it("still serves an access whose first byte is unmapped as plain unmapped, even if its tail reaches a mapping", () => {
    const { bus, seen } = world();
    assert.equal(bus.read(0xffc, new Uint8Array(8)), false);
    assert.equal(seen[0]?.reason, "unmapped");
    assert.equal(seen[0]?.owner, undefined);
    assert.equal(bus.unmappedReads, 1);
    assert.equal(bus.rejectedReads, 0);
  });

  it("dispatches long accesses that fit, and accesses crossing pages and blocks inside one mapping", () => {
    const bus = new Bus("mem");
    const big = new GenericFile("big", pattern(0x40000));
    const w = new WidthFile("w", pattern(0x40000, 3));
    bus.insert(r(0x10_0000, 0x13_ffff), big);
    bus.insert(r(0x1_0000_0000n, 0x1_0003_ffffn), w);
    const data = new Uint8Array(64);
    assert.equal(bus.read(0x10_0ff0, data), true);
    assert.deepEqual([...data], [...big.bytes.subarray(0xff0, 0x1030)]);
    assert.equal(bus.read32(0x11_fffe), le(big.bytes, 0x1fffe, 4), "across a 128 KiB block");
    assert.equal(bus.read32(0x1_0001_fffe), le(w.bytes, 0x1fffe, 4));
    assert.equal(bus.read16(0x1_0000_0fff), le(w.bytes, 0xfff, 2), "across a 4 KiB page above 2^32");
    assert.equal(bus.rejectedReads + bus.unmappedReads, 0);
  });

  it("resolves sub-page mappings that share a page exactly", () => {
    const bus = new Bus("mem");
    const devices = Array.from({ length: 16 }, (_, i) => new WidthFile(`d${i}`, pattern(0x40, i)));
    // 16 mappings of 0x40 bytes with 0x40-byte holes in one page, plus one spanning into the next page.
    devices.forEach((d, i) => bus.insert(r(0xfed0_0000 + i * 0x80, 0xfed0_003f + i * 0x80), d));
    const tail = new WidthFile("tail", pattern(0x100, 99));
    bus.insert(r(0xfed0_0f80, 0xfed0_107f), tail);
    bus.checkValid();
    for (let i = 0; i < 16; i++) {
      for (let o = 0; o < 0x40; o += 4) assert.equal(bus.read32(0xfed0_0000 + i * 0x80 + o), le(devices[i]!.bytes, o, 4));
      assert.equal(bus.read8(0xfed0_0040 + i * 0x80), 0xff, "the hole after each");
    }
    assert.equal(bus.read32(0xfed0_0ffe), le(tail.bytes, 0x7e, 4), "across the page, inside tail");
    assert.equal(bus.read8(0xfed0_1080), 0xff);
    for (let i = 0; i < 16; i += 2) bus.remove(0xfed0_0000 + i * 0x80);
    bus.checkValid();
    assert.equal(bus.read8(0xfed0_0000), 0xff);
    assert.equal(bus.read8(0xfed0_0080), le(devices[1]!.bytes, 0, 1));
  });

  it("serves the interior of a mapping too large for the high hash from the exact index", () => {
    const bus = new Bus("mem");
    const huge = new GenericFile("huge", pattern(16));
    // 64 GiB: past the 8 GiB beyond which a mapping's interior stays out of the hash.
    const start = 0x40_0000_0000n;
    const end = start + 0x10_0000_0000n - 1n;
    const reads: bigint[] = [];
    huge.read = (_b, o, d) => {
      reads.push(o);
      d.fill(0x5a);
    };
    bus.insert(r(start, end), huge);
    bus.insert(r(end + 1n, end + 0x1000n), new WidthFile("next", pattern(0x1000)));
    bus.checkValid();
    for (const a of [start, start + 0x8_0000_0000n, end - 3n]) assert.equal(bus.read32Big(a), 0x5a5a5a5a);
    assert.deepEqual(reads, [0n, 0x8_0000_0000n, end - 3n - start]);
    assert.equal(bus.read32(Number(end - 1n)), -1, "straddling into next");
    assert.equal(bus.rejectedReads, 1);
    bus.remove(start);
    bus.checkValid();
    assert.equal(bus.read8Big(start + 0x8_0000_0000n), 0xff);
  });

  it("refuses nothing a guest can send: 100 000 hostile accesses, none throws, every one is served or counted", () => {
    const bus = new Bus("mem");
    const io = new Bus("io");
    let handled = 0;
    const count = (d: Device): Device => {
      const wrapped: Device = { name: d.name ?? "d" };
      for (const m of ["read", "write", "read8", "read16", "read32", "write8", "write16", "write32"] as const) {
        const f = (d as Record<string, unknown>)[m];
        if (typeof f === "function") {
          (wrapped as Record<string, unknown>)[m] = (...args: unknown[]) => {
            handled++;
            return (f as (...a: unknown[]) => unknown).apply(d, args);
          };
        }
      }
      return wrapped;
    };
    const edges: bigint[] = [0n, 0xfffn, 0x1_0000n, TWO32 - 0x100n, TWO32, TWO53 - 0x40n, TWO53, TWO63 - 0x40n, TWO63, U64_MAX - 0x3fn];
    let seed = 0x1234_5678;
    const rand = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    for (const [i, s] of edges.entries()) {
      const shape = (["width", "generic", "both"] as const)[i % 3]!;
      bus.insert(r(s, s + 0x3fn), count(file(shape, new Uint8Array(0x40))), `m${i}`);
      if (s < 0x10000n) io.insert(r(s, s + 0x3fn), count(file(shape, new Uint8Array(0x40))), `p${i}`);
    }
    // Narrow devices too, so that "unsupported" is reached.
    bus.insert(r(0x5000, 0x503f), count({ read32: () => 0, write32: () => {} }), "words");
    io.insert(r(0x5000, 0x503f), count({ read8: () => 0, write8: () => {} }), "bytes");
    const pick = (): bigint => {
      switch (rand(4)) {
        case 0:
          return BigInt(rand(0x10000)); // anywhere low
        case 1:
          return edges[rand(edges.length)]! + BigInt(rand(0x50)) - 8n; // around a mapping
        case 2:
          return (BigInt(rand(2 ** 32)) << 32n) | BigInt(rand(2 ** 32)); // anywhere at all
        default:
          return 0x5000n + BigInt(rand(0x48)) - 4n;
      }
    };
    let accesses = 0;
    for (let n = 0; n < 100_000; n++) {
      let a = pick();
      if (a < 0n) a = 0n;
      if (a > U64_MAX) a = U64_MAX;
      const length = rand(17);
      const target = rand(2) === 0 ? bus : io;
      const safe = a <= BigInt(Number.MAX_SAFE_INTEGER);
      const h = Number(a >> 32n);
      const l = Number(a & 0xffff_ffffn);
      const w = ([1, 2, 4] as const)[rand(3)]!;
      switch (rand(6)) {
        case 0:
          target.read(safe && rand(2) === 0 ? Number(a) : a, new Uint8Array(length));
          break;
        case 1:
          target.write(safe && rand(2) === 0 ? Number(a) : a, new Uint8Array(length).fill(rand(256)));
          break;
        case 2:
          if (safe) void (w === 1 ? target.read8(Number(a)) : w === 2 ? target.read16(Number(a)) : target.read32(Number(a)));
          else void target.read32Big(a);
          break;
        case 3:
          if (w === 1) target.write8Pair(h, l, rand(256));
          else if (w === 2) target.write16Pair(h | 0, l | 0, rand(65536));
          else target.write32Pair(h, l, rand(2 ** 32));
          break;
        case 4:
          void (w === 1 ? target.read8Big(a) : w === 2 ? target.read16Big(a) : target.read32Big(a));
          break;
        default:
          void (w === 1 ? target.read8Pair(h, l) : w === 2 ? target.read16Pair(h, l | 0) : target.read32Pair(h | 0, l));
      }
      accesses++;
    }
    const served = (b: Bus) => b.unmappedReads + b.unmappedWrites + b.rejectedReads + b.rejectedWrites;
    assert.equal(accesses, 100_000);
    assert.ok(handled > 1000 && served(bus) + served(io) > 1000, `handled ${handled}, served as unmapped ${served(bus) + served(io)}`);
    assert.ok(bus.rejectedReads > 0 && bus.rejectedWrites > 0 && io.rejectedReads > 0);
    bus.checkValid();
    io.checkValid();
  });
});

describe("dispatch: a device's own exception", () => {
  const boom = new Error("device fault");
  const faulty = (): Device => ({
    read8: () => {
      throw boom;
    },
    write32: () => {
      throw boom;
    },
    read: () => {
      throw boom;
    },
  });

  it("propagates unchanged by default, leaving the bus and its counters as they were", () => {
    const bus = new Bus("mem");
    bus.insert(r(0x1000, 0x1fff), faulty(), "f@1");
    bus.insert(r(0x2000, 0x2fff), new WidthFile("ok", pattern(0x1000)));
    for (const call of [
      () => bus.read8(0x1000),
      () => bus.read8Pair(0, 0x1001),
      () => bus.read8Big(0x1002n),
      () => bus.write32(0x1004, 1),
      () => bus.read(0x1000, new Uint8Array(4)),
      () => bus.read32(0x1000), // through the generic read
    ]) {
      assert.throws(call, (e) => e === boom);
    }
    assert.equal(bus.deviceErrors, 0);
    assert.equal(bus.unmappedReads + bus.rejectedReads + bus.unmappedWrites + bus.rejectedWrites, 0);
    bus.checkValid();
    assert.equal(bus.read8(0x2000), pattern(1)[0], "the bus keeps working");
  });

  it("leaves a consistent bus when the device changed the map before throwing", () => {
    const bus = new Bus("mem");
    const self: Device = {
      read8: () => {
        bus.remove(0x1000);
        bus.insert(r(0x8000, 0x80ff), new WidthFile("child", pattern(0x100)));
        throw boom;
      },
    };
    bus.insert(r(0x1000, 0x10ff), self);
    assert.throws(() => bus.read8(0x1000), (e) => e === boom);
    bus.checkValid();
    assert.equal(bus.read8(0x1000), 0xff);
    assert.equal(bus.read8(0x8000), pattern(1)[0]);
  });

  it("is contained and reported when onDeviceError is set: the access completes as unmapped", () => {
    const reports: DeviceErrorReport[] = [];
    const bus = new Bus("mem", { onDeviceError: (report) => void reports.push(report) });
    bus.insert(r(0x1000, 0x1fff), faulty(), "f@1");
    bus.insert(r(TWO63, TWO63 + 0xfffn), faulty(), "f@2");
    assert.equal(bus.read8(0x1001), 0xff);
    assert.equal(bus.read32(0x1004), -1);
    bus.write32(0x1008, 7);
    const data = Uint8Array.of(1, 2, 3);
    assert.equal(bus.read(0x100c, data), false);
    assert.deepEqual([...data], [0xff, 0xff, 0xff]);
    assert.equal(bus.read8Big(TWO63 + 1n), 0xff);
    assert.equal(bus.deviceErrors, 5);
    assert.deepEqual(
      reports.map((x) => [x.kind, x.address, x.length, x.owner, x.error === boom]),
      [
        ["read", 0x1001n, 1, "f@1", true],
        ["read", 0x1004n, 4, "f@1", true],
        ["write", 0x1008n, 4, "f@1", true],
        ["read", 0x100cn, 3, "f@1", true],
        ["read", TWO63 + 1n, 1, "f@2", true],
      ],
    );
    assert.equal(bus.unmappedReads + bus.rejectedReads, 0, "a contained error is not an unmapped access");
    bus.resetUnmappedCounters();
    assert.equal(bus.deviceErrors, 0);
    // What the hook throws reaches the caller; clearing the hook restores propagation.
    const own = new Error("hook");
    bus.onDeviceError = () => {
      throw own;
    };
    assert.throws(() => bus.read8(0x1000), (e) => e === own);
    bus.onDeviceError = undefined;
    assert.throws(() => bus.read8(0x1000), (e) => e === boom);
    assert.throws(() => new Bus("mem", { onDeviceError: 1 as unknown as () => void }), code("InvalidArgument", /onDeviceError/));
  });
});

describe("dispatch: the change feed", () => {
  it("reports added, removed and moved mappings with owner and range, in order, and stops when unsubscribed", () => {
    const bus = new Bus("io");
    const seen: string[] = [];
    const show = (c: BusChange) =>
      c.type === "moved" ? `moved ${c.from.owner} ${c.from.range.toString("io")} -> ${c.mapping.range.toString("io")}` : `${c.type} ${c.mapping.owner} ${c.mapping.range.toString("io")}`;
    const stop = bus.subscribe((c) => void seen.push(show(c)));
    const d = new WidthFile("uart", new Uint8Array(8));
    bus.insert(r(0x3f8, 0x3ff), d, "uart@0");
    bus.move(r(0x3f8, 0x3ff), 0x2f8);
    bus.remove(0x2f8);
    assert.throws(() => bus.remove(0x2f8), code("NotFound"));
    stop();
    stop();
    bus.insert(r(0x60, 0x60), d);
    assert.deepEqual(seen, ["added uart@0 [io 0x3f8-0x3ff]", "moved uart@0 [io 0x3f8-0x3ff] -> [io 0x2f8-0x2ff]", "removed uart@0 [io 0x2f8-0x2ff]"]);
    assert.throws(() => bus.subscribe(5 as unknown as () => void), code("InvalidArgument"));
  });

  it("delivers changes a listener makes after the current one, to every listener, in order", () => {
    const bus = new Bus("mem");
    const a: string[] = [];
    const b: string[] = [];
    bus.subscribe((c) => {
      a.push(`${c.type} ${c.mapping.owner}`);
      if (c.type === "added" && c.mapping.owner === "first") bus.insert(r(0x2000, 0x2fff), new WidthFile("x", new Uint8Array(0x1000)), "second");
    });
    bus.subscribe((c) => void b.push(`${c.type} ${c.mapping.owner}`));
    bus.insert(r(0x1000, 0x1fff), new WidthFile("x", new Uint8Array(0x1000)), "first");
    assert.deepEqual(a, ["added first", "added second"]);
    assert.deepEqual(b, ["added first", "added second"]);
  });

  it("rethrows a listener's exception from a microtask, after the change and the other listeners", () => {
    const bus = new Bus("mem");
    const queued: (() => void)[] = [];
    const saved = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (f) => void queued.push(f);
    const oops = new Error("listener bug");
    const later: string[] = [];
    try {
      bus.subscribe(() => {
        throw oops;
      });
      bus.subscribe((c) => void later.push(c.type));
      const m = bus.insert(r(0, 0xfff), new WidthFile("x", new Uint8Array(0x1000)));
      assert.equal(bus.get(m.range), m, "the insert happened and returned");
    } finally {
      globalThis.queueMicrotask = saved;
    }
    assert.deepEqual(later, ["added"]);
    assert.equal(queued.length, 1);
    assert.throws(() => queued[0]!(), (e) => e === oops);
  });

  it("keeps a table an emulator maintains itself in sync", () => {
    const bus = new Bus("io");
    const mirror = new Map<number, string>();
    const apply = (c: BusChange) => {
      if (c.type !== "added") for (let p = Number(c.type === "moved" ? c.from.range.start : c.mapping.range.start); p <= Number(c.type === "moved" ? c.from.range.end : c.mapping.range.end); p++) mirror.delete(p);
      if (c.type !== "removed") for (let p = Number(c.mapping.range.start); p <= Number(c.mapping.range.end); p++) mirror.set(p, c.mapping.owner);
    };
    for (const m of bus.mappings()) apply({ type: "added", mapping: m });
    bus.subscribe(apply);
    let seed = 9;
    const rand = (n: number) => (seed = (Math.imul(seed, 48271) >>> 0) % 2147483647) % n;
    for (let i = 0; i < 2000; i++) {
      const base = rand(0x400);
      const len = 1 + rand(8);
      try {
        if (rand(3) === 0 && bus.size > 0) bus.remove(bus.mappings()[rand(bus.size)]!.range);
        else if (rand(2) === 0 && bus.size > 0) bus.move(bus.mappings()[rand(bus.size)]!.range, base);
        else bus.insert(r(base, base + len - 1), new WidthFile("x", new Uint8Array(8)), `o${i}`);
      } catch (e) {
        assert.ok(e instanceof AllocatorError && (e.code === "Overlap" || e.code === "Overflow"), String(e));
      }
    }
    const expected = new Map<number, string>();
    for (const m of bus.mappings()) for (let p = Number(m.range.start); p <= Number(m.range.end); p++) expected.set(p, m.owner);
    assert.deepEqual([...mirror.entries()].sort((x, y) => x[0] - y[0]), [...expected.entries()].sort((x, y) => x[0] - y[0]));
    bus.checkValid();
  });
});

describe("Bus.move", () => {
  it("moves a mapping in one step, keeping device and owner, and the tables follow", () => {
    const bus = new Bus("mem");
    const d = new WidthFile("bar", pattern(0x1000));
    bus.insert(r(0xc000_0000, 0xc000_0fff), d, "nic@1");
    const moved = bus.move(r(0xc000_0000, 0xc000_0fff), 0x1_0000_0000n);
    assert.ok(moved.range.equals(r(0x1_0000_0000n, 0x1_0000_0fffn)));
    assert.equal(moved.device, d);
    assert.equal(moved.owner, "nic@1");
    assert.equal(bus.read8(0xc000_0000), 0xff);
    assert.equal(bus.read32(0x1_0000_0004), le(d.bytes, 4, 4));
    // Overlapping its own old place is fine.
    bus.move(moved.range, 0x1_0000_0800n);
    assert.equal(bus.read8(0x1_0000_0800), d.bytes[0]);
    assert.equal(bus.read8(0x1_0000_07ff), 0xff);
    bus.checkValid();
    const same = bus.get(r(0x1_0000_0800n, 0x1_0000_17ffn))!;
    assert.equal(bus.move(same.range, 0x1_0000_0800n), same, "a move to the same base is no change");
  });

  it("fails without changing anything: overlap naming the holder, no such mapping, past 2^64-1, bad arguments", () => {
    const bus = new Bus("mem");
    bus.insert(r(0x1000, 0x1fff), new WidthFile("a", pattern(0x1000)), "a@1");
    bus.insert(r(0x3000, 0x3fff), new WidthFile("b", pattern(0x1000)), "b@2");
    const changes: string[] = [];
    bus.subscribe((c) => void changes.push(c.type));
    const before = bus.mappings();
    assert.throws(() => bus.move(r(0x1000, 0x1fff), 0x3800), code("Overlap", /^\[mem 0x3800-0x47ff\] conflicts with b@2 \[mem 0x3000-0x3fff\]$/));
    assert.throws(() => bus.move(r(0x1000, 0x1ffe), 0x8000), code("NotFound", /a@1/));
    assert.throws(() => bus.move(r(0x1000, 0x1fff), U64_MAX - 0xffen), code("Overflow"));
    assert.throws(() => bus.move({ start: 0x1000n, end: 0x1fffn } as RangeInclusive, 0), code("InvalidArgument"));
    assert.throws(() => bus.move(r(0x1000, 0x1fff), -1), code("InvalidArgument", /newBase/));
    assert.deepEqual(bus.mappings(), before);
    assert.deepEqual(changes, []);
    assert.equal(bus.read8(0x1000), pattern(1)[0]);
    bus.checkValid();
  });

  it("is what DeviceManager.moveRange uses, so a BAR move is one moved change", () => {
    let next = 0xd000_0000n;
    const dm = new DeviceManager({
      deviceId: (p) => (p.action === "free" ? p.id : 1),
      mmio: (p) => {
        if (p.action === "free") return p.range;
        if (p.fixed !== undefined) return RangeInclusive.withSize(p.fixed, p.size);
        const got = RangeInclusive.withSize(next, p.size);
        next += p.size;
        return got;
      },
    });
    const changes: string[] = [];
    dm.mmioBus.subscribe((c) => void changes.push(c.type === "moved" ? `moved ${c.from.range.start} ${c.mapping.range.start}` : c.type));
    const device = new WidthFile("nic", pattern(0x1000));
    const id = dm.fullRegisterDevice(device, [{ kind: "mmio", size: 0x1000 }]);
    const bar = dm.resourcesOf(id).mmio[0]!.range;
    dm.moveRange(id, bar, 0xe000_0000n);
    assert.deepEqual(changes, ["added", `moved ${0xd000_0000n} ${0xe000_0000n}`]);
    assert.equal(dm.mmioRead32(0xe000_0000), le(device.bytes, 0, 4));
    dm.checkConsistency();
  });
});
