import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Bus, type BusMapping, type UnmappedAccess } from "../../src/devices/bus.js";
import type { Device } from "../../src/devices/device.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import { U64_MAX } from "../../src/core/u64.js";
import { code } from "../helpers/assert-code.js";


const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);
const TWO53 = 2n ** 53n;

interface Access {
  op: "read" | "write";
  base: bigint;
  offset: bigint;
  bytes: number[];
}

/** Records accesses; reads return `fill`. */
class Recorder implements Device {
  readonly accesses: Access[] = [];
  constructor(
    readonly name: string,
    readonly fill = 0x5a,
  ) {}
  read(base: bigint, offset: bigint, data: Uint8Array): void {
    data.fill(this.fill);
    this.accesses.push({ op: "read", base, offset, bytes: [...data] });
  }
  write(base: bigint, offset: bigint, data: Uint8Array): void {
    this.accesses.push({ op: "write", base, offset, bytes: [...data] });
  }
}

function shape<D>(bus: Bus<D>): [string, string][] {
  return bus.mappings().map((m) => [m.range.toString(bus.kind), m.owner]);
}

describe("Bus: insert, lookup, remove", () => {
  it("looks up the containing mapping with its offset, for bigint and number addresses", () => {
    const bus = new Bus("mem");
    const a = new Recorder("a");
    const b = new Recorder("b");
    bus.insert(r(0x1000, 0x1fff), a, "a0");
    bus.insert(r(0x3000, 0x3000), b);
    assert.equal(bus.size, 2);
    for (const addr of [0x1000, 0x1000n]) {
      const hit = bus.lookup(addr);
      assert.ok(hit !== undefined);
      assert.equal(hit.device, a);
      assert.equal(hit.owner, "a0");
      assert.equal(hit.offset, 0n);
      assert.ok(hit.range.equals(r(0x1000, 0x1fff)));
    }
    assert.equal(bus.lookup(0x1fff)?.offset, 0xfffn);
    assert.equal(bus.lookup(0x1fffn)?.offset, 0xfffn);
    assert.equal(bus.lookup(0x3000)?.device, b);
    assert.equal(bus.lookup(0x3000)?.owner, "b", "the owner defaults to device.name");
    for (const miss of [0, 0xfff, 0x2000, 0x2fff, 0x3001, 0x3001n, U64_MAX]) assert.equal(bus.lookup(miss), undefined);
  });

  it("defaults the owner to <unnamed> for a device without a name", () => {
    const bus = new Bus("io");
    const m = bus.insert(r(1, 1), { read() {}, write() {} });
    assert.equal(m.owner, "<unnamed>");
  });

  it("handles address 0, 1-byte ranges and a range ending at 2^64-1", () => {
    const bus = new Bus("mem");
    const low = new Recorder("low");
    const top = new Recorder("top");
    const one = new Recorder("one");
    bus.insert(r(0, 0), low);
    bus.insert(r(U64_MAX - 0xfffn, U64_MAX), top);
    bus.insert(r(1n << 63n, 1n << 63n), one);
    assert.equal(bus.lookup(0)?.device, low);
    assert.equal(bus.lookup(0n)?.device, low);
    assert.equal(bus.lookup(1), undefined);
    assert.equal(bus.lookup(U64_MAX)?.device, top);
    assert.equal(bus.lookup(U64_MAX)?.offset, 0xfffn);
    assert.equal(bus.lookup(U64_MAX - 0x1000n), undefined);
    assert.equal(bus.lookup(1n << 63n)?.device, one);
    assert.equal(bus.lookup((1n << 63n) - 1n), undefined, "the sign-bias boundary must not confuse the search");
    assert.equal(bus.lookup((1n << 63n) + 1n), undefined);
    bus.checkValid();
  });

  it("number addresses near 2^53 agree with bigint addresses despite float rounding", () => {
    const bus = new Bus("mem");
    const d = new Recorder("d");
    const above = new Recorder("above");
    bus.insert(r(TWO53 - 4n, TWO53 + 1n), d);
    bus.insert(r(TWO53 + 3n, TWO53 + 3n), above); // Number() rounds this start to 2^53+4
    const max = Number.MAX_SAFE_INTEGER;
    assert.equal(bus.lookup(max)?.device, d);
    assert.equal(bus.lookup(max)?.offset, 3n);
    assert.equal(bus.lookup(BigInt(max))?.offset, 3n);
    assert.equal(bus.lookup(TWO53 + 3n)?.device, above);
    assert.equal(bus.lookup(TWO53 + 2n), undefined);
  });

  it("rejects an overlapping range, naming the holder and both ranges, and changes nothing", () => {
    const bus = new Bus("mem");
    bus.insert(r(0x1000, 0x1fff), new Recorder("x"), "virtio-blk0");
    bus.insert(r(0x4000, 0x4fff), new Recorder("y"), "virtio-net0");
    const before = shape(bus);
    assert.throws(
      () => bus.insert(r(0x1000, 0x1fff), new Recorder("z")),
      (e: unknown) => {
        assert.ok(e instanceof AllocatorError);
        assert.equal(e.code, "Overlap");
        assert.equal(e.message, "[mem 0x1000-0x1fff] conflicts with virtio-blk0 [mem 0x1000-0x1fff]");
        assert.equal(e.owner, "virtio-blk0");
        return true;
      },
    );
    assert.throws(() => bus.insert(r(0x0, 0x1000), new Recorder("z")), code("Overlap", /^\[mem 0x0-0x1000\] conflicts with virtio-blk0/));
    assert.throws(() => bus.insert(r(0x1fff, 0x2000), new Recorder("z")), code("Overlap", /virtio-blk0/));
    assert.throws(() => bus.insert(r(0x1800, 0x1800), new Recorder("z")), code("Overlap", /virtio-blk0/));
    assert.throws(() => bus.insert(r(0x3fff, 0x4000), new Recorder("z")), code("Overlap", /virtio-net0 \[mem 0x4000-0x4fff\]$/));
    // Spanning both: the lower holder is named.
    assert.throws(() => bus.insert(r(0x0, 0xffff), new Recorder("z")), code("Overlap", /virtio-blk0/));
    assert.throws(() => bus.insert(r(0x2000, 0x4fff), new Recorder("z")), code("Overlap", /virtio-net0/));
    assert.deepEqual(shape(bus), before);
    // Adjacent ranges do not overlap.
    bus.insert(r(0x2000, 0x3fff), new Recorder("gap"));
    bus.insert(r(0x0, 0xfff), new Recorder("below"));
    assert.equal(bus.size, 4);
    bus.checkValid();
  });

  it("prints io ranges for a PIO bus", () => {
    const bus = new Bus("io");
    bus.insert(r(0x3f8, 0x3ff), new Recorder("serial"), "serial0");
    assert.throws(() => bus.insert(r(0x3f8, 0x3f8), new Recorder("z")), code("Overlap", /^\[io 0x3f8-0x3f8\] conflicts with serial0 \[io 0x3f8-0x3ff\]$/));
  });

  it("removes by exact range or by any address inside, returning the mapping", () => {
    const bus = new Bus("io");
    const a = new Recorder("a");
    const b = new Recorder("b");
    bus.insert(r(0x10, 0x1f), a);
    bus.insert(r(0x20, 0x2f), b);
    const removed = bus.remove(r(0x10, 0x1f));
    assert.equal(removed.device, a);
    assert.ok(removed.range.equals(r(0x10, 0x1f)));
    assert.equal(bus.lookup(0x10), undefined);
    assert.equal(bus.remove(0x2a).device, b);
    assert.equal(bus.size, 0);
    bus.checkValid();
  });

  it("remove throws NotFound for a range that is not mapped exactly or an unmapped address, changing nothing", () => {
    const bus = new Bus("io");
    bus.insert(r(0x10, 0x1f), new Recorder("a"), "a0");
    assert.throws(() => bus.remove(r(0x10, 0x17)), code("NotFound", /^\[io 0x10-0x17\] is not mapped on the PIO bus; a0 \[io 0x10-0x1f\] overlaps it$/));
    assert.throws(() => bus.remove(r(0x0, 0x1f)), code("NotFound", /a0/));
    assert.throws(() => bus.remove(r(0x30, 0x3f)), code("NotFound", /^\[io 0x30-0x3f\] is not mapped on the PIO bus$/));
    assert.throws(() => bus.remove(0x20), code("NotFound", /^nothing is mapped at 0x20 on the PIO bus$/));
    assert.throws(() => bus.remove(-1), code("InvalidArgument", /^address must be/));
    assert.equal(bus.size, 1);
  });

  it("validates its inputs", () => {
    const bus = new Bus("mem");
    const d = new Recorder("d");
    assert.throws(() => new Bus("pci" as "io"), code("InvalidArgument"));
    assert.throws(() => new Bus("io", { onUnmapped: 5 as unknown as () => void }), code("InvalidArgument", /onUnmapped/));
    assert.throws(() => bus.insert({ start: 0n, end: 1n } as RangeInclusive, d), code("InvalidArgument", /range/));
    assert.throws(() => bus.insert(r(0, 1), undefined as unknown as Device), code("InvalidArgument", /device/));
    assert.throws(() => bus.insert(r(0, 1), d, ""), code("InvalidArgument", /owner/));
    for (const bad of [-1, 1.5, 2 ** 53, Number.NaN, -1n, U64_MAX + 1n, "16", null]) {
      assert.throws(() => bus.lookup(bad as number), code("InvalidArgument", /^address must be/));
      assert.throws(() => bus.read(bad as number, new Uint8Array(1)), code("InvalidArgument", /^address must be/));
      assert.throws(() => bus.write(bad as number, new Uint8Array(1)), code("InvalidArgument", /^address must be/));
    }
    assert.throws(() => bus.write(0, [1] as unknown as Uint8Array), code("InvalidArgument", /data/));
    assert.throws(() => bus.read(0n, "ab" as unknown as Uint8Array), code("InvalidArgument", /data/));
    assert.throws(() => bus.overlapping([0, 1] as unknown as RangeInclusive), code("InvalidArgument"));
    assert.equal(bus.size, 0);
    assert.equal(bus.unmappedReads + bus.unmappedWrites, 0, "rejected accesses are not counted");
  });
});

describe("Bus: dispatch", () => {
  it("routes reads and writes with the mapping base and the offset", () => {
    const bus = new Bus("io");
    const d = new Recorder("d", 0x42);
    bus.insert(r(0x3f8, 0x3ff), d);
    const data = new Uint8Array(2);
    assert.equal(bus.read(0x3fa, data), true);
    assert.deepEqual([...data], [0x42, 0x42]);
    assert.equal(bus.write(0x3fcn, Uint8Array.of(1, 2, 3, 4)), true);
    assert.deepEqual(d.accesses, [
      { op: "read", base: 0x3f8n, offset: 2n, bytes: [0x42, 0x42] },
      { op: "write", base: 0x3f8n, offset: 4n, bytes: [1, 2, 3, 4] },
    ]);
  });

  it("accepts an access ending exactly at the end and serves one a byte past as unmapped, without calling the device", () => {
    for (const start of [0x1000n, TWO53 - 8n, U64_MAX - 7n]) {
      const bus = new Bus("mem");
      const d = new Recorder("d");
      const range = r(start, start + 7n);
      bus.insert(range, d, "dev0");
      const reasons: string[] = [];
      bus.onUnmapped = (a) => {
        reasons.push(`${a.kind} ${a.reason} ${a.owner ?? "-"}`);
      };
      const addrs: (bigint | number)[] = [start + 4n];
      if (start + 4n <= BigInt(Number.MAX_SAFE_INTEGER)) addrs.push(Number(start + 4n));
      for (const addr of addrs) {
        assert.equal(bus.read(addr, new Uint8Array(4)), true);
        assert.equal(bus.write(addr, new Uint8Array(4)), true);
        const five = Uint8Array.of(1, 2, 3, 4, 5);
        assert.equal(bus.read(addr, five), false);
        assert.deepEqual([...five], [0xff, 0xff, 0xff, 0xff, 0xff]);
        assert.equal(bus.write(addr, new Uint8Array(5)), false);
      }
      // At the very last byte: 1 byte fits, 2 do not.
      const lastAddrs: (bigint | number)[] = [start + 7n];
      if (start + 7n <= BigInt(Number.MAX_SAFE_INTEGER)) lastAddrs.push(Number(start + 7n));
      for (const addr of lastAddrs) {
        assert.equal(bus.read(addr, new Uint8Array(1)), true);
        assert.equal(bus.read(addr, new Uint8Array(2)), false);
        assert.equal(bus.write(addr, new Uint8Array(2)), false);
      }
      assert.equal(d.accesses.length, 2 * addrs.length + lastAddrs.length);
      assert.equal(d.accesses.at(-1)?.offset, 7n);
      assert.equal(bus.unmappedReads + bus.unmappedWrites, 0, "past-end accesses are not plain unmapped ones");
      assert.equal(bus.rejectedReads, addrs.length + lastAddrs.length);
      assert.equal(bus.rejectedWrites, addrs.length + lastAddrs.length);
      assert.ok(reasons.length > 0 && reasons.every((x) => / past-end dev0$/.test(x)), reasons.join(", "));
    }
  });

  it("checks the end exactly for number addresses when the range end is above 2^53", () => {
    // The end 2^53+3 rounds up to the double 2^53+4, so a float comparison would let an access
    // ending at 2^53+4 through.
    const bus = new Bus("mem");
    const d = new Recorder("d");
    bus.insert(r(TWO53 - 4n, TWO53 + 3n), d);
    const addr = Number.MAX_SAFE_INTEGER - 1; // 2^53-2
    assert.equal(bus.read(addr, new Uint8Array(6)), true); // ends at 2^53+3
    assert.equal(bus.read(addr, new Uint8Array(7)), false);
    assert.equal(bus.write(addr, new Uint8Array(7)), false);
    assert.equal(bus.rejectedReads + bus.rejectedWrites, 2);
    assert.equal(d.accesses.length, 1);
    assert.equal(d.accesses[0]?.offset, 2n);
  });

  it("reads all ones where nothing is mapped, drops writes, and counts both", () => {
    const bus = new Bus("mem");
    const d = new Recorder("d");
    bus.insert(r(0x1000, 0x1fff), d);
    const data = Uint8Array.of(1, 2, 3, 4);
    assert.equal(bus.read(0x2000, data), false);
    assert.deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
    assert.equal(bus.unmappedReads, 1);
    assert.equal(bus.lastUnmappedAddress, 0x2000n);
    // An access that starts unmapped is unmapped even if its tail reaches a device.
    const tail = new Uint8Array(8);
    assert.equal(bus.read(0xffcn, tail), false);
    assert.deepEqual([...tail], Array(8).fill(0xff));
    const w = Uint8Array.of(9, 9);
    assert.equal(bus.write(U64_MAX - 1n, w), false);
    assert.deepEqual([...w], [9, 9], "a dropped write leaves its data alone");
    assert.equal(bus.unmappedReads, 2);
    assert.equal(bus.unmappedWrites, 1);
    assert.equal(bus.lastUnmappedAddress, U64_MAX - 1n);
    assert.equal(d.accesses.length, 0);
    bus.resetUnmappedCounters();
    assert.equal(bus.unmappedReads, 0);
    assert.equal(bus.unmappedWrites, 0);
    assert.equal(bus.lastUnmappedAddress, undefined);
  });

  it("reports unmapped accesses to the hook, which may change the read data", () => {
    const seen: { kind: string; address: bigint; bytes: number[] }[] = [];
    const bus = new Bus("io", {
      onUnmapped: (a: UnmappedAccess) => {
        seen.push({ kind: a.kind, address: a.address, bytes: [...a.data] });
        if (a.kind === "read") a.data[0] = 0x00;
      },
    });
    const data = new Uint8Array(2);
    bus.read(0x80, data);
    bus.write(0x81n, Uint8Array.of(7));
    assert.deepEqual(seen, [
      { kind: "read", address: 0x80n, bytes: [0xff, 0xff] },
      { kind: "write", address: 0x81n, bytes: [7] },
    ]);
    assert.deepEqual([...data], [0x00, 0xff]);
    bus.onUnmapped = undefined;
    bus.read(0x80, data);
    assert.equal(seen.length, 2);
    assert.equal(bus.unmappedReads, 2);
  });

  it("lets errors from devices and the hook through unchanged", () => {
    const boom = new Error("device fault");
    const bus = new Bus("mem", {
      onUnmapped: () => {
        throw boom;
      },
    });
    bus.insert(r(0, 0xf), {
      read() {
        throw boom;
      },
      write() {},
    });
    assert.throws(() => bus.read(0, new Uint8Array(1)), (e) => e === boom);
    assert.throws(() => bus.read(0x10, new Uint8Array(1)), (e) => e === boom);
    assert.equal(bus.unmappedReads, 1, "counted before the hook ran");
  });

  it("lets a device remap itself or others during an access; the change applies to later accesses", () => {
    const bus = new Bus("mem");
    const child = new Recorder("child", 0x11);
    const self: Device & { calls: number } = {
      name: "self",
      calls: 0,
      read(base: bigint, offset: bigint, data: Uint8Array) {
        this.calls++;
        bus.remove(base);
        bus.insert(r(0x1000, 0x10ff), child);
        bus.insert(r(0x9000, 0x90ff), this);
        data[0] = Number(offset);
      },
      write() {},
    };
    bus.insert(r(0x1000, 0x10ff), self);
    const data = new Uint8Array(1);
    assert.equal(bus.read(0x1005, data), true);
    assert.equal(data[0], 5, "the access in progress completed against the old target");
    assert.equal(bus.read(0x1005, data), true);
    assert.equal(data[0], 0x11, "the next access reaches the new mapping");
    assert.equal(bus.lookup(0x9001)?.device, self);
    assert.equal(self.calls, 1);
    bus.checkValid();
  });

  it("lets the hook map a device on demand", () => {
    const bus = new Bus("io");
    const lazy = new Recorder("lazy", 0x33);
    bus.onUnmapped = (a) => {
      if (bus.lookup(a.address) === undefined) bus.insert(r(a.address, a.address + 3n), lazy);
    };
    const data = new Uint8Array(1);
    assert.equal(bus.read(0x60, data), false);
    assert.equal(data[0], 0xff);
    assert.equal(bus.read(0x61, data), true);
    assert.equal(data[0], 0x33);
  });

  it("types: a bus of a Device subtype dispatches and returns the subtype", () => {
    const bus = new Bus<Recorder>("mem");
    const d = new Recorder("sub");
    bus.insert(r(0, 0xff), d);
    const hit: Recorder | undefined = bus.lookup(1)?.device;
    assert.equal(hit?.name, "sub");
    assert.equal(bus.read(1, new Uint8Array(1)), true);
    // A bus of non-devices can map and look up, but not dispatch (a compile-time error); at run
    // time such an access finds no method and is served as unmapped, "unsupported".
    const table = new Bus<string>("io");
    table.insert(r(0, 0), "zero", "z");
    assert.equal(table.lookup(0)?.device, "zero");
    // @ts-expect-error strings are not Devices
    assert.equal(table.read(0, new Uint8Array(1)), false);
    assert.equal(table.read8(0), 0xff);
    assert.equal(table.rejectedReads, 2);
  });
});

describe("Bus: iteration and overlap queries", () => {
  it("iterates in address order over a snapshot", () => {
    const bus = new Bus("mem");
    for (const s of [0x5000, 0x1000, 0x3000]) bus.insert(r(s, s + 0xff), new Recorder(`d${s.toString(16)}`));
    const seen: bigint[] = [];
    for (const m of bus) {
      seen.push(m.range.start);
      if (m.range.start === 0x1000n) bus.remove(0x3000); // does not disturb the iteration
    }
    assert.deepEqual(seen, [0x1000n, 0x3000n, 0x5000n]);
    assert.deepEqual(
      bus.mappings().map((m) => m.owner),
      ["d1000", "d5000"],
    );
    const snap = bus.mappings();
    bus.remove(0x1000);
    assert.equal(snap.length, 2);
    assert.ok(Object.isFrozen(snap[0]));
  });

  it("get finds a mapping only by its exact range", () => {
    const bus = new Bus("mem");
    const d = new Recorder("d");
    bus.insert(r(0x1000, 0x1fff), d);
    bus.insert(r(U64_MAX, U64_MAX), d, "top");
    assert.equal(bus.get(r(0x1000, 0x1fff))?.device, d);
    assert.equal(bus.get(r(U64_MAX, U64_MAX))?.owner, "top");
    assert.equal(bus.get(r(0x1000, 0x1ffe)), undefined);
    assert.equal(bus.get(r(0x1001, 0x1fff)), undefined);
    assert.equal(bus.get(r(0x2000, 0x2fff)), undefined);
    assert.throws(() => bus.get(0x1000 as unknown as RangeInclusive), code("InvalidArgument"));
  });

  it("overlapping returns every mapping touching a range", () => {
    const bus = new Bus("mem");
    for (const s of [0x1000, 0x2000, 0x3000]) bus.insert(r(s, s + 0xff), new Recorder(`d${s.toString(16)}`));
    const owners = (a: number, b: number) => bus.overlapping(r(a, b)).map((m) => m.owner);
    assert.deepEqual(owners(0, 0xfff), []);
    assert.deepEqual(owners(0x10ff, 0x10ff), ["d1000"]);
    assert.deepEqual(owners(0x1100, 0x1fff), []);
    assert.deepEqual(owners(0x1080, 0x3000), ["d1000", "d2000", "d3000"]);
    assert.deepEqual(owners(0x2000, 0xffff), ["d2000", "d3000"]);
  });
});

describe("Bus: model-based", () => {
  /** A reference bus: a plain list, searched linearly. */
  function modelFind(model: { start: bigint; end: bigint; id: number }[], a: bigint) {
    return model.find((m) => m.start <= a && a <= m.end);
  }

  const bigAddress = fc.oneof(
    fc.bigInt({ min: 0n, max: 0xffffn }),
    fc.bigInt({ min: TWO53 - 0x100n, max: TWO53 + 0x100n }),
    fc.bigInt({ min: (1n << 63n) - 0x100n, max: (1n << 63n) + 0x100n }),
    fc.bigInt({ min: U64_MAX - 0xffffn, max: U64_MAX }),
    fc.bigInt({ min: 0n, max: U64_MAX }),
  );
  const op = fc.oneof(
    fc.record({ kind: fc.constant("insert" as const), start: bigAddress, len: fc.bigInt({ min: 1n, max: 0x40n }) }),
    fc.record({ kind: fc.constant("remove" as const), probe: bigAddress }),
    fc.record({ kind: fc.constant("lookup" as const), probe: bigAddress }),
  );

  it("matches a linear reference under random inserts, removes and lookups, at any u64 address", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const bus = new Bus<{ id: number }>("mem");
        const model: { start: bigint; end: bigint; id: number }[] = [];
        let next = 0;
        for (const o of ops) {
          if (o.kind === "insert") {
            const end = o.start + o.len - 1n > U64_MAX ? U64_MAX : o.start + o.len - 1n;
            const clash = model.some((m) => m.start <= end && o.start <= m.end);
            const dev = { id: next++ };
            if (clash) {
              assert.throws(() => bus.insert(r(o.start, end), dev), code("Overlap"));
            } else {
              bus.insert(r(o.start, end), dev);
              model.push({ start: o.start, end, id: dev.id });
            }
          } else {
            const hit = modelFind(model, o.probe);
            if (o.kind === "remove") {
              if (hit === undefined) assert.throws(() => bus.remove(o.probe), code("NotFound"));
              else {
                assert.equal(bus.remove(o.probe).device.id, hit.id);
                model.splice(model.indexOf(hit), 1);
              }
            }
            for (const probe of [o.probe, o.probe + 1n, o.probe - 1n]) {
              if (probe < 0n || probe > U64_MAX) continue;
              const h = modelFind(model, probe);
              const got = bus.lookup(probe);
              assert.equal(got?.device.id, h?.id);
              if (h !== undefined) assert.equal(got?.offset, probe - h.start);
              if (probe <= BigInt(Number.MAX_SAFE_INTEGER)) {
                const gotN = bus.lookup(Number(probe));
                assert.equal(gotN?.device.id, h?.id);
                assert.equal(gotN?.offset, got?.offset);
              }
            }
          }
          assert.equal(bus.size, model.length);
        }
        bus.checkValid();
        const sorted = [...model].sort((a, b) => (a.start < b.start ? -1 : 1)).map((m) => m.id);
        assert.deepEqual(
          bus.mappings().map((m: BusMapping<{ id: number }>) => m.device.id),
          sorted,
        );
      }),
      { numRuns: 300 },
    );
  });

  it("keeps its arrays valid through growth and shrinking with thousands of mappings", () => {
    const bus = new Bus<number>("mem");
    const n = 5000;
    const order = Array.from({ length: n }, (_, i) => i);
    let seed = 7;
    const rand = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % k;
    };
    for (let i = n - 1; i > 0; i--) {
      const j = rand(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) bus.insert(r(BigInt(i) * 0x100n, BigInt(i) * 0x100n + 0x7fn), i, `d${i}`);
    bus.checkValid();
    for (let i = 0; i < n; i++) {
      assert.equal(bus.lookup(i * 0x100 + 0x7f)?.device, i);
      assert.equal(bus.lookup(i * 0x100 + 0x80), undefined);
    }
    for (const i of order.slice(0, n / 2)) bus.remove(BigInt(i) * 0x100n + 3n);
    bus.checkValid();
    assert.equal(bus.size, n / 2);
    const kept = new Set(order.slice(n / 2));
    for (let i = 0; i < n; i++) assert.equal(bus.lookup(BigInt(i) * 0x100n)?.device, kept.has(i) ? i : undefined);
  });
});
