import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PciConfigSpace, PciStatus } from "../../src/pci/config-space.js";
import { PciEcam } from "../../src/pci/ecam.js";
import { Guest, machine, TestPciDevice, code, ECAM_BASE } from "./helpers.js";

const ids = { vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x010000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 2, interruptPin: 1 };

describe("type-0 header", () => {
  it("read-only registers keep their values, reserved ones read zero, writable bits are exactly the documented ones", () => {
    const m = machine();
    const d = new TestPciDevice("virtio-blk", 0x1af4, 0x1042, 0x010000, { interruptPin: 2, bars: [{ kind: "mem32", size: 0x1000 }] });
    m.host.plug(d);
    const g = new Guest(m.dm);
    const before = Array.from({ length: 16 }, (_, i) => g.configRead("cf8", 0, 1, 0, 4 * i));
    for (let reg = 0; reg < 0x40; reg += 4) g.configWrite("cf8", 0, 1, 0, reg, 4, 0xffff_ffff);
    const after = Array.from({ length: 16 }, (_, i) => g.configRead("cf8", 0, 1, 0, 4 * i));
    assert.equal(after[0], 0x1042_1af4, "ids");
    assert.equal(after[1], 0x0000_0547, "command: IO, memory, master, parity, SERR, INTx disable; status bits untouched");
    assert.equal(after[2], before[2], "class and revision");
    assert.equal(after[3], 0x0000_00ff, "cache line size writable, latency, header type and BIST read-only");
    assert.equal(after[4], 0xffff_f000, "BAR 0 sizing mask, flags 0");
    for (const r of [5, 6, 7, 8, 9, 10, 12, 14]) assert.equal(after[r], 0, `reserved or unimplemented register 0x${(4 * r).toString(16)}`);
    assert.equal(after[11], before[11], "subsystem ids");
    assert.equal(after[13], before[13], "capabilities pointer");
    assert.equal(after[15], 0x0000_02ff, "interrupt line writable, pin read-only (INTB), min_gnt/max_lat zero");
  });

  it("status error bits are cleared by writing one; the capabilities bit stays", () => {
    const c = new PciConfigSpace(ids);
    c.addCapability(0x09, 8, false);
    c.setRaw(6, 2, c.getRaw(6, 2) | 0x8100 | PciStatus.Interrupt);
    c.write(6, 2, 0x8000 | PciStatus.CapabilitiesList | PciStatus.Interrupt);
    assert.equal(c.getRaw(6, 2), 0x0100 | PciStatus.CapabilitiesList | PciStatus.Interrupt);
    c.write(4, 4, 0x0100_0000); // the status half of a dword write
    assert.equal(c.getRaw(6, 2), PciStatus.CapabilitiesList | PciStatus.Interrupt);
  });

  it("the capability list links MSI-X, MSI and device capabilities; device bytes go to the handler", () => {
    const m = machine();
    const d = new (class extends TestPciDevice {
      capabilities = [{ id: 0x09, length: 0x10 }, { id: 0x10, length: 0x3c, offset: 0x80 }];
    })("virtio-net", 0x1af4, 0x1041, 0x020000, { bars: [{ kind: "mem32", size: 0x4000 }], msix: { vectors: 4, tableBar: 0 }, msi: { vectors: 4, perVectorMask: true } });
    d.registers.set(0xc2, 0x1234);
    const fn = m.host.plug(d);
    const g = new Guest(m.dm);
    assert.ok(g.configRead("cf8", 0, 1, 0, 6, 2) & 0x10, "status says there is a list");
    const caps: [number, number][] = [];
    for (let p = g.configRead("cf8", 0, 1, 0, 0x34, 1); p !== 0; p = g.configRead("cf8", 0, 1, 0, p + 1, 1)) caps.push([p, g.configRead("cf8", 0, 1, 0, p, 1)]);
    assert.deepEqual(caps, [[0x40, 0x11], [0x4c, 0x05], [0x64, 0x09], [0x80, 0x10]]);
    assert.deepEqual(fn.capabilityOffsets, [0x64, 0x80]);
    // id/next of a device capability are the model's and read-only; its body is the device's.
    g.configWrite("cf8", 0, 1, 0, 0x64, 2, 0xffff);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x64, 2), 0x8009);
    assert.deepEqual(d.configWrites, []);
    d.registers.set(0x66, 0xab);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x64), 0x00ab_8009, "a dword spanning model and device bytes");
    g.configWrite("cf8", 0, 1, 0, 0x64, 4, 0x5678_0000);
    assert.deepEqual(d.configWrites, [{ offset: 0x66, size: 2, value: 0x5678 }]);
    // Device-specific registers outside any capability.
    assert.equal(g.configRead("cf8", 0, 1, 0, 0xc2, 2), 0x1234);
    g.configWrite("cf8", 0, 1, 0, 0xf0, 1, 0x7f);
    assert.deepEqual(d.configWrites.at(-1), { offset: 0xf0, size: 1, value: 0x7f });
    // MSI-X capability: table size read-only, table/PBA location read-only, only enable and mask writable.
    g.configWrite("cf8", 0, 1, 0, 0x40, 4, 0xffff_ffff);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x40), 0xc003_4c11);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x44), 0);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x48), 0x40, "PBA right after the 4-entry table, BAR 0");
    // MSI: 64-bit, per-vector mask, 4 vectors capable; address low bits read zero.
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x4e, 2), 0x0184);
    g.configWrite("cf8", 0, 1, 0, 0x50, 4, 0xffff_ffff);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x50), 0xffff_fffc);
    g.configWrite("cf8", 0, 1, 0, 0x5c, 4, 0xffff_ffff);
    assert.equal(g.configRead("cf8", 0, 1, 0, 0x5c), 0xf, "mask bits of the 4 vectors only");
  });

  it("rejects capabilities that do not fit or overlap", () => {
    const c = new PciConfigSpace(ids);
    c.addCapability(0x09, 0x10, false, 0x40);
    assert.throws(() => c.addCapability(0x09, 8, false, 0x48), code("InvalidArgument", /overlaps/));
    assert.throws(() => c.addCapability(0x09, 8, false, 0x42), code("InvalidArgument", /does not fit/));
    assert.throws(() => c.addCapability(0x09, 0x20, false, 0xf0), code("InvalidArgument", /does not fit/));
    assert.throws(() => c.addCapability(0x09, 8, false, 0x3c), code("InvalidArgument"));
    const m = machine();
    const d = Object.assign(new TestPciDevice("x", 1, 2, 3), { capabilities: [{ id: 9, length: 0xc0, offset: 0x44 }] });
    assert.throws(() => m.host.plug(d), code("InvalidArgument"));
    assert.equal(m.host.size, 0);
  });

  it("a handler returning garbage reads as zero or wraps to the access size, never as a non-integer", () => {
    const c = new PciConfigSpace(ids, { configRead: (o) => (o === 0x40 ? -1 : o === 0x44 ? Number.NaN : 0x1_0000_0102) });
    assert.equal(c.read(0x40, 1), 0xff);
    assert.equal(c.read(0x44, 4), 0);
    assert.equal(c.read(0x48, 2), 0x0102);
  });
});

describe("configuration mechanism #1", () => {
  it("latches the address only from a dword write at 0xcf8 and reads it back masked", () => {
    const m = machine();
    const g = new Guest(m.dm);
    g.outl(0xcf8, 0xffff_ffff);
    const d = new Uint8Array(4);
    m.dm.pioRead(0xcf8, d);
    assert.deepEqual([...d], [0xfc, 0xff, 0xff, 0x80], "bits 30-24 and 1-0 read zero");
    m.dm.pioWrite(0xcf8, Uint8Array.of(0)); // a byte write there is another register
    m.dm.pioRead(0xcf8, d);
    assert.deepEqual([...d], [0xfc, 0xff, 0xff, 0x80]);
    const b = new Uint8Array(1);
    m.dm.pioRead(0xcf9, b);
    assert.deepEqual([...b], [0xff]);
    assert.equal(m.host.configMechanism!.address, 0x80ff_fffc);
  });

  it("byte, word and dword accesses at any offset of the data window; disabled reads all ones", () => {
    const m = machine();
    m.host.plug(new TestPciDevice("x", 0x1234, 0x5678, 0x020000));
    const g = new Guest(m.dm);
    g.outl(0xcf8, 0x8000_0800);
    const read = (port: number, n: number) => {
      const d = new Uint8Array(n);
      m.dm.pioRead(port, d);
      return [...d];
    };
    assert.deepEqual(read(0xcfc, 4), [0x34, 0x12, 0x78, 0x56]);
    assert.deepEqual(read(0xcfd, 1), [0x12]);
    assert.deepEqual(read(0xcfe, 2), [0x78, 0x56]);
    assert.deepEqual(read(0xcfd, 2), [0x12, 0x78], "an unaligned word inside the window");
    assert.deepEqual(read(0xcfd, 3), [0x12, 0x78, 0x56]);
    assert.deepEqual(read(0xcff, 1), [0x56]);
    // A byte write at 0xcfd reaches the command register's high byte (INTx disable).
    g.outl(0xcf8, 0x8000_0804);
    m.dm.pioWrite(0xcfd, Uint8Array.of(0x04));
    assert.equal(m.host.configRead("00:01.0", 4, 2), 0x0400);
    g.outl(0xcf8, 0x0000_0800);
    assert.deepEqual(read(0xcfc, 4), [0xff, 0xff, 0xff, 0xff]);
    m.dm.pioWrite(0xcfc, Uint8Array.of(0xff, 0xff));
    assert.equal(m.host.configRead("00:01.0", 4, 2), 0x0400, "a write with the enable bit clear is dropped");
    // Only 256 bytes and segment 0 are reachable; absent functions read all ones.
    g.outl(0xcf8, 0x8001_0000);
    assert.deepEqual(read(0xcfc, 4), [0xff, 0xff, 0xff, 0xff]);
  });

  it("can be left out or moved", () => {
    const m = machine({ configMechanism: false });
    assert.equal(m.host.configMechanism, undefined);
    assert.equal(m.dm.pioBus.lookup(0xcf8), undefined);
    const n = machine({ configMechanism: { port: 0x1cf8 } });
    assert.equal(n.dm.pioBus.lookup(0x1cf8)!.owner, "pci-config@0");
  });
});

describe("ECAM", () => {
  it("4 KiB per function and 1 MiB per bus reach the same configuration space as mechanism #1", () => {
    const m = machine({ buses: [{ bus: 0, firstDevice: 1 }, { bus: 1 }] });
    m.host.plug(new TestPciDevice("a", 0x1111, 0x0001, 0x020000), { address: "00:03.2" });
    m.host.plug(new TestPciDevice("b", 0x2222, 0x0002, 0x020000), { bus: 1 });
    const g = new Guest(m.dm);
    const read = (addr: bigint, n: number) => {
      const d = new Uint8Array(n);
      m.dm.mmioRead(addr, d);
      return [...d];
    };
    assert.deepEqual(read(ECAM_BASE + (3n << 15n) + (2n << 12n), 4), [0x11, 0x11, 0x01, 0x00]);
    assert.deepEqual(read(ECAM_BASE + (1n << 20n), 2), [0x22, 0x22], "bus 1 device 0 function 0");
    assert.equal(g.configRead("cf8", 1, 0, 0, 0), g.configRead("ecam", 1, 0, 0, 0));
    // Writes through one mechanism are seen through the other.
    g.configWrite("ecam", 0, 3, 2, 0x3c, 1, 0x0b);
    assert.equal(g.configRead("cf8", 0, 3, 2, 0x3c, 1), 0x0b);
    // Extended space: ECAM only; the device has no handler beyond 0x100 in use, so it reads 0.
    assert.deepEqual(read(ECAM_BASE + (3n << 15n) + (2n << 12n) + 0x100n, 4), [0, 0, 0, 0]);
    // A qword read is split at the dword boundary; one that crosses into an absent function reads its half as all ones.
    assert.deepEqual(read(ECAM_BASE + (3n << 15n) + (2n << 12n), 8), [0x11, 0x11, 0x01, 0x00, 0, 0, 0, 0]);
    assert.deepEqual(read(ECAM_BASE + (3n << 15n) + (2n << 12n) + 0xffcn, 8), [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual(read(ECAM_BASE + (3n << 15n) + (2n << 12n) + 0xffen, 4), [0, 0, 0xff, 0xff]);
    // Absent functions and buses read all ones at every size.
    assert.deepEqual(read(ECAM_BASE + (5n << 20n), 8), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual(read(ECAM_BASE + 0xfff_fffn, 1), [0xff]);
  });

  it("checks its options and serves a bus range", () => {
    const m = machine({ ecam: { base: 0xe000_0000n, firstBus: 2, lastBus: 3 }, buses: [{ bus: 2 }] });
    assert.equal(m.host.ecams[0]!.size, 2n << 20n);
    m.host.plug(new TestPciDevice("a", 0x3333, 1, 0), { bus: 2 });
    const d = new Uint8Array(2);
    m.dm.mmioRead(0xe000_0000n, d);
    assert.deepEqual([...d], [0x33, 0x33]);
    const target = { readConfig: () => 0, writeConfig: () => {} };
    assert.throws(() => new PciEcam(target, { base: 0x1000 }), code("InvalidArgument", /multiple of 1 MiB/));
    assert.throws(() => new PciEcam(target, { base: 0, firstBus: 3, lastBus: 2 }), code("InvalidArgument"));
    assert.throws(() => new PciEcam(target, { base: 0, lastBus: 256 }), code("InvalidArgument"));
  });

  it("a taken window makes the host fail and leaves nothing registered", () => {
    const m = machine();
    const before = JSON.stringify(m.dm.toJSON());
    assert.throws(() => machineOn(m), code("Overlap"));
    assert.equal(JSON.stringify(m.dm.toJSON()), before);
  });
});

function machineOn(m: ReturnType<typeof machine>): void {
  // A second host on the same device manager: 0xcf8 is free only if the first one had none.
  void new (m.host.constructor as typeof import("../../src/pci/root-complex.js").PciRootComplex)({ deviceManager: m.dm, configMechanism: false, ecam: { base: ECAM_BASE } });
}

describe("whatever the guest writes", () => {
  it("configuration accesses of any offset, size and value through either mechanism never throw; read-only fields stay", () => {
    const m = machine();
    const d = new TestPciDevice("nvme", 0x1b36, 0x10, 0x010802, { interruptPin: 1, bars: [{ kind: "mem64", size: 0x4000 }, { kind: "io", index: 2, size: 0x10 }], msix: { vectors: 16, tableBar: 0, tableOffset: 0x1000 }, msi: { vectors: 8, perVectorMask: true } });
    m.host.plug(d);
    m.host.plug(new TestPciDevice("other", 0x1af4, 0x1041, 0x020000, { bars: [{ kind: "mem32", size: 0x1000 }, { kind: "mem64", index: 2, size: 0x1_0000_0000n, prefetchable: true }] }));
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            mode: fc.constantFrom("cf8" as const, "ecam" as const),
            dev: fc.integer({ min: 0, max: 3 }),
            reg: fc.integer({ min: 0, max: 0xfff }),
            size: fc.constantFrom(1 as const, 2 as const, 4 as const),
            value: fc.oneof(fc.constant(0xffff_ffff), fc.constant(0), fc.integer({ min: 0, max: 0xffff_ffff })),
          }),
          { maxLength: 60 },
        ),
        (ops) => {
          const g = new Guest(m.dm);
          for (const o of ops) {
            const reg = o.mode === "cf8" ? o.reg & 0xff : o.reg;
            const size = (reg & 3) + o.size > 4 ? 1 : o.size;
            g.configWrite(o.mode, 0, o.dev, 0, reg, size, o.value % 2 ** (8 * size));
            g.configRead(o.mode, 0, o.dev, 0, reg, size);
          }
          assert.equal(g.configRead("ecam", 0, 1, 0, 0), 0x0010_1b36);
          assert.equal(g.configRead("ecam", 0, 1, 0, 8) >>> 8, 0x010802);
          assert.equal(g.configRead("ecam", 0, 1, 0, 0x3d, 1), 1);
          m.host.checkConsistency();
        },
      ),
      { numRuns: 60 },
    );
  });
});
