import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { formatPciAddress, parsePciAddress, pciAddressKey, pciAddressOfKey, toPciAddress } from "../../src/pci/address.js";
import { PciSlotAllocator } from "../../src/pci/slot-allocator.js";
import { code } from "./helpers.js";

describe("PCI addresses", () => {
  it("parse and print as Linux does, with the segment optional", () => {
    assert.deepEqual(parsePciAddress("0000:00:1f.3"), { segment: 0, bus: 0, device: 0x1f, function: 3 });
    assert.deepEqual(parsePciAddress("01:02.7"), { segment: 0, bus: 1, device: 2, function: 7 });
    assert.deepEqual(parsePciAddress("ffff:ff:1f.7"), { segment: 0xffff, bus: 0xff, device: 0x1f, function: 7 });
    assert.equal(formatPciAddress({ segment: 0xa, bus: 0xb, device: 0x1f, function: 0 }), "000a:0b:1f.0");
    for (const bad of ["00:20.0", "00:00.8", "0:0", "10000:00:00.0", "", "00:1f.0 "]) assert.throws(() => parsePciAddress(bad), code("InvalidArgument"), bad);
  });

  it("objects are checked field by field", () => {
    assert.deepEqual(toPciAddress({ bus: 0, device: 3, function: 0 }), { segment: 0, bus: 0, device: 3, function: 0 });
    assert.throws(() => toPciAddress({ bus: 256, device: 0, function: 0 }), code("InvalidArgument", /bus must be an integer from 0 to 255/));
    assert.throws(() => toPciAddress({ bus: 0, device: 32, function: 0 }), code("InvalidArgument", /device/));
    assert.throws(() => toPciAddress({ bus: 0, device: 0, function: 8 }), code("InvalidArgument", /function/));
    assert.throws(() => toPciAddress({ bus: 0, device: 0, function: 0, dev: 1 }), code("InvalidArgument", /unknown field "dev"/));
    assert.throws(() => toPciAddress({ bus: 0.5, device: 0, function: 0 }), code("InvalidArgument"));
    assert.throws(() => toPciAddress(null), code("InvalidArgument"));
  });

  it("keys are unique, ordered like the addresses, and invert", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 7 }), (segment, bus, device, fn) => {
        const a = { segment, bus, device, function: fn };
        assert.deepEqual(pciAddressOfKey(pciAddressKey(a)), a);
        assert.deepEqual(parsePciAddress(formatPciAddress(a)), a);
      }),
    );
    assert.equal(pciAddressKey({ segment: 0xffff, bus: 255, device: 31, function: 7 }), 0xffff_ffff);
  });
});

describe("PciSlotAllocator", () => {
  it("reserves explicit addresses first, then hands out the lowest free slot in the bus's range", () => {
    const s = new PciSlotAllocator([{ bus: 0, firstDevice: 1 }]);
    s.reserve("00:00.0", "host-bridge");
    s.reserve("00:1f.0", "ich9-lpc");
    assert.equal(formatPciAddress(s.allocate("virtio-blk")), "0000:00:01.0");
    assert.equal(formatPciAddress(s.allocate("virtio-net")), "0000:00:02.0");
    s.free("00:01.0", "virtio-blk");
    assert.equal(formatPciAddress(s.allocate("nvme")), "0000:00:01.0", "the lowest free slot again");
    assert.equal(s.size, 4);
    assert.deepEqual(s.holdings().map((h) => [formatPciAddress(h.address), h.owner]), [
      ["0000:00:00.0", "host-bridge"],
      ["0000:00:01.0", "nvme"],
      ["0000:00:02.0", "virtio-net"],
      ["0000:00:1f.0", "ich9-lpc"],
    ]);
  });

  it("a multi-function device takes several functions of one free slot; a partly used slot is not free", () => {
    const s = new PciSlotAllocator([{ bus: 0, firstDevice: 0, lastDevice: 2 }]);
    s.reserve("00:00.3", "smbus");
    const a = s.allocate("nic", { functions: 4 });
    assert.equal(formatPciAddress(a), "0000:00:01.0");
    assert.deepEqual(s.holdings("nic").map((h) => h.address.function), [0, 1, 2, 3]);
    s.reserve("00:01.4", "other", 4);
    assert.throws(() => s.reserve("00:01.7", "x"), code("Overlap", /^0000:00:01\.7 for x is already held by other$/));
    assert.equal(formatPciAddress(s.allocate("single")), "0000:00:02.0");
    assert.throws(() => s.allocate("late"), code("ResourceNotAvailable", /no free device slot for late on bus 0000:00 \(devices 0-2 are all taken\)/));
  });

  it("the automatic range is restricted but reservations may use any slot", () => {
    const s = new PciSlotAllocator([{ bus: 0, firstDevice: 3, lastDevice: 3 }, { segment: 1, bus: 5 }]);
    s.reserve("00:00.0", "bridge");
    s.reserve("00:1f.0", "lpc");
    assert.equal(formatPciAddress(s.allocate("a")), "0000:00:03.0");
    assert.throws(() => s.allocate("b"), code("ResourceNotAvailable"));
    assert.equal(formatPciAddress(s.allocate("b", { segment: 1, bus: 5 })), "0001:05:00.0");
    assert.throws(() => s.allocate("c", { bus: 1 }), code("NotFound", /bus 0000:01 is not served/));
    assert.throws(() => s.reserve("02:00.0", "c"), code("NotFound"));
  });

  it("errors name the holder and change nothing", () => {
    const s = new PciSlotAllocator();
    s.reserve("00:02.0", "virtio-blk");
    s.reserve("00:01.1", "other");
    const before = JSON.stringify(s.toJSON());
    assert.throws(() => s.reserve("00:01.0", "nic", 2), code("Overlap", /0000:00:01\.1 for nic is already held by other/));
    assert.throws(() => s.reserve("00:02.0", "nic", 2), code("Overlap", /0000:00:02\.0 for nic is already held by virtio-blk/));
    assert.throws(() => s.reserve("00:02.6", "nic", 3), code("InvalidArgument", /would pass function 7/));
    assert.throws(() => s.reserve("00:01.7", "nic", 2), code("InvalidArgument"));
    assert.throws(() => s.reserve("00:03.0", "nic", 0), code("InvalidArgument"));
    assert.throws(() => s.reserve("00:03.0", ""), code("InvalidArgument"));
    assert.throws(() => s.free("00:02.0", "nic"), code("InvalidArgument", /0000:00:02\.0 is held by virtio-blk, not nic/));
    assert.throws(() => s.free("00:03.0", "nic"), code("NeverAllocated"));
    assert.throws(() => s.allocate("x", { functions: 9 }), code("InvalidArgument"));
    assert.throws(() => s.allocate("x", { slot: 1 } as never), code("InvalidArgument", /unknown field "slot"/));
    assert.equal(JSON.stringify(s.toJSON()), before);
    assert.equal(s.holderOf("00:02.0"), "virtio-blk");
    assert.equal(s.holderOf("05:00.0"), undefined);
  });

  it("rejects bad bus lists", () => {
    assert.throws(() => new PciSlotAllocator([{ bus: 0 }, { bus: 0 }]), code("InvalidArgument", /listed twice/));
    assert.throws(() => new PciSlotAllocator([{ bus: 0, firstDevice: 5, lastDevice: 4 }]), code("InvalidArgument"));
    assert.throws(() => new PciSlotAllocator([{ bus: 256 }]), code("InvalidArgument"));
    assert.throws(() => new PciSlotAllocator([{ bus: 0, devices: 3 } as never]), code("InvalidArgument"));
    assert.throws(() => new PciSlotAllocator({} as never), code("InvalidArgument"));
  });

  it("snapshots round-trip and bad ones are refused with a reason", () => {
    const s = new PciSlotAllocator([{ bus: 0, firstDevice: 1 }, { segment: 2, bus: 3, lastDevice: 7 }]);
    s.reserve("00:00.0", "host-bridge");
    s.allocate("nic", { functions: 2 });
    s.allocate("x", { segment: 2, bus: 3 });
    const snap = s.toJSON();
    assert.deepEqual(snap, {
      format: "vm-allocator/pci-slots",
      version: 1,
      buses: [
        { segment: 0, bus: 0, firstDevice: 1, lastDevice: 31 },
        { segment: 2, bus: 3, firstDevice: 0, lastDevice: 7 },
      ],
      held: [
        { address: "0000:00:00.0", owner: "host-bridge" },
        { address: "0000:00:01.0", owner: "nic" },
        { address: "0000:00:01.1", owner: "nic" },
        { address: "0002:03:00.0", owner: "x" },
      ],
    });
    const back = PciSlotAllocator.fromJSON(JSON.parse(JSON.stringify(snap)));
    assert.deepEqual(back.toJSON(), snap);
    assert.equal(formatPciAddress(back.allocate("y")), "0000:00:02.0");
    const bad = (mutate: (x: Record<string, unknown>) => void, re: RegExp) => {
      const x = JSON.parse(JSON.stringify(snap)) as Record<string, unknown>;
      mutate(x);
      assert.throws(() => PciSlotAllocator.fromJSON(x), code("InvalidSnapshot", re));
    };
    bad((x) => (x["format"] = "other"), /format/);
    bad((x) => (x["version"] = 2), /version 2/);
    bad((x) => (x["extra"] = 1), /unknown field "extra"/);
    bad((x) => ((x["held"] as unknown[]).push({ address: "0000:00:01.1", owner: "z" })), /not after the previous entry/);
    bad((x) => ((x["held"] as unknown[])[0] = { address: "0000:09:00.0", owner: "z" }), /not served/);
    bad((x) => ((x["held"] as unknown[])[0] = { address: "0000:00:00.0", owner: "" }), /owner/);
    bad((x) => ((x["held"] as unknown[])[0] = { address: "bogus", owner: "z" }), /PCI address/);
    bad((x) => ((x["buses"] as unknown[]).push({ bus: 0 })), /listed twice/);
    bad((x) => (x["held"] = {}), /held must be an array/);
    assert.throws(() => PciSlotAllocator.fromJSON(null), code("InvalidSnapshot"));
  });

  it("matches a reference model under random reserve/allocate/free sequences, and snapshots replay", () => {
    type Op = { op: "reserve"; dev: number; fn: number; count: number; owner: number } | { op: "allocate"; count: number; owner: number } | { op: "free"; dev: number; fn: number; owner: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant("reserve" as const), dev: fc.integer({ min: 0, max: 7 }), fn: fc.integer({ min: 0, max: 7 }), count: fc.integer({ min: 1, max: 3 }), owner: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ op: fc.constant("allocate" as const), count: fc.integer({ min: 1, max: 8 }), owner: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ op: fc.constant("free" as const), dev: fc.integer({ min: 0, max: 7 }), fn: fc.integer({ min: 0, max: 7 }), owner: fc.integer({ min: 0, max: 3 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const s = new PciSlotAllocator([{ bus: 0, firstDevice: 2, lastDevice: 6 }]);
        const model = new Map<number, string>(); // dev * 8 + fn -> owner
        for (const o of ops) {
          const owner = `o${o.owner}`;
          const before = JSON.stringify(s.toJSON());
          if (o.op === "reserve") {
            const fits = o.fn + o.count <= 8;
            const free = fits && Array.from({ length: o.count }, (_, i) => !model.has(o.dev * 8 + o.fn + i)).every(Boolean);
            if (free) {
              s.reserve({ bus: 0, device: o.dev, function: o.fn }, owner, o.count);
              for (let i = 0; i < o.count; i++) model.set(o.dev * 8 + o.fn + i, owner);
            } else {
              assert.throws(() => s.reserve({ bus: 0, device: o.dev, function: o.fn }, owner, o.count), fits ? code("Overlap") : code("InvalidArgument"));
            }
          } else if (o.op === "allocate") {
            let want: number | undefined;
            for (let d = 2; d <= 6 && want === undefined; d++) if (![0, 1, 2, 3, 4, 5, 6, 7].some((f) => model.has(d * 8 + f))) want = d;
            if (want === undefined) assert.throws(() => s.allocate(owner, { functions: o.count }), code("ResourceNotAvailable"));
            else {
              assert.equal(s.allocate(owner, { functions: o.count }).device, want);
              for (let i = 0; i < o.count; i++) model.set(want * 8 + i, owner);
            }
          } else {
            const k = o.dev * 8 + o.fn;
            const holder = model.get(k);
            if (holder === owner) {
              s.free({ bus: 0, device: o.dev, function: o.fn }, owner);
              model.delete(k);
            } else {
              assert.throws(() => s.free({ bus: 0, device: o.dev, function: o.fn }, owner), holder === undefined ? code("NeverAllocated") : code("InvalidArgument"));
            }
          }
          if (model.size === (JSON.parse(before) as { held: unknown[] }).held.length) assert.equal(JSON.stringify(s.toJSON()), before, "a failed call changes nothing");
          assert.equal(s.size, model.size);
          assert.deepEqual(
            s.holdings().map((h) => [h.address.device * 8 + h.address.function, h.owner]),
            [...model].sort((a, b) => a[0] - b[0]),
          );
        }
        assert.deepEqual(PciSlotAllocator.fromJSON(s.toJSON()).toJSON(), s.toJSON());
      }),
    );
  });
});
