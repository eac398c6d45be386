import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AddrAllocateParams, AllocationCallbacks, IdAllocateParams } from "../../src/system/allocation-callbacks.js";
import type { Device, ResourceRequest } from "../../src/devices/device.js";
import { DeviceManager, type DeviceResources } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import type { SystemAllocator } from "../../src/system/system-allocator-interface.js";
import { U64_MAX } from "../../src/core/u64.js";
import { FakeAddressAllocator, FakeIdAllocator, fakeHoldings, type FakeAllocation } from "../helpers/fake-allocators.js";

const code = (c: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message !== undefined) assert.match(e.message, message);
  return true;
};
const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);

interface Access {
  op: "read" | "write";
  base: bigint;
  offset: bigint;
  len: number;
}

class TestDevice implements Device {
  readonly accesses: Access[] = [];
  onAccess: ((op: "read" | "write", base: bigint, offset: bigint, data: Uint8Array) => void) | undefined;
  constructor(
    readonly name: string,
    readonly requests: readonly ResourceRequest[] = [],
    readonly fill = 0x5a,
  ) {}
  resourceRequest(): readonly ResourceRequest[] {
    return this.requests;
  }
  read(base: bigint, offset: bigint, data: Uint8Array): void {
    data.fill(this.fill);
    this.accesses.push({ op: "read", base, offset, len: data.length });
    this.onAccess?.("read", base, offset, data);
  }
  write(base: bigint, offset: bigint, data: Uint8Array): void {
    this.accesses.push({ op: "write", base, offset, len: data.length });
    this.onAccess?.("write", base, offset, data);
  }
}

const PIO_POOL = [0x1000n, 0x1fffn] as const;
const MMIO_LOW = [0xd000_0000n, 0xd00f_ffffn] as const;
const MMIO_HIGH = [0x10_0000_0000n, 0x10_000f_ffffn] as const;

function world(options: { without?: (keyof AllocationCallbacks)[]; irqPools?: Record<string, readonly [number, number]> } = {}) {
  const ids = new FakeIdAllocator({ default: [0, 63] });
  const irqs = new FakeIdAllocator(options.irqPools ?? { legacy: [5, 15], msi: [32, 95] });
  const pio = new FakeAddressAllocator("io", PIO_POOL);
  const mmio = new FakeAddressAllocator("mem", MMIO_LOW, MMIO_HIGH);
  const all: Partial<Record<keyof AllocationCallbacks, unknown>> = {
    deviceId: ids.callback,
    irq: irqs.callback,
    pio: pio.callback,
    mmio: mmio.callback,
    holdings: fakeHoldings(ids, irqs, pio, mmio),
  };
  for (const k of options.without ?? []) delete all[k];
  const dm = new DeviceManager(all as AllocationCallbacks);
  const fakes = [ids, irqs, pio, mmio] as const;
  /** Everything observable, as plain data. */
  const state = () => ({
    ids: ids.snapshot(),
    irqs: irqs.snapshot(),
    pio: pio.snapshot(),
    mmio: mmio.snapshot(),
    pioBus: dm.pioBus.mappings().map((m) => [m.range.toString("io"), m.owner]),
    mmioBus: dm.mmioBus.mappings().map((m) => [m.range.toString("mem"), m.owner]),
    devices: dm.instanceIds().map((id) => plain(dm.resourcesOf(id))),
  });
  const calls = () => fakes.reduce((n, f) => n + f.calls.length, 0);
  const setInject = (fn: ((params: { action: string }, index: number) => void) | undefined) => {
    for (const f of fakes) f.inject = fn;
  };
  return { ids, irqs, pio, mmio, dm, state, calls, setInject, fakes };
}

function plain(res: DeviceResources) {
  return {
    instanceId: res.instanceId,
    instanceIdAllocated: res.instanceIdAllocated,
    owner: res.owner,
    registration: res.registration,
    irqs: res.irqs.map((q) => [q.irq, q.allocated]),
    msi: res.msi.map((m) => [m.gsi, m.allocated]),
    pio: res.pio.map((s) => [s.range.toString("io"), s.allocated]),
    mmio: res.mmio.map((s) => [s.range.toString("mem"), s.allocated]),
  };
}

/** What the fakes should hold given the manager's records (the "one source of truth" check). */
function expectedAllocations(dm: DeviceManager) {
  const ids: FakeAllocation[] = [];
  const irqs: FakeAllocation[] = [];
  const pio: FakeAllocation[] = [];
  const mmio: FakeAllocation[] = [];
  for (const id of dm.instanceIds()) {
    const res = dm.resourcesOf(id);
    if (res.instanceIdAllocated) ids.push({ pool: "default", value: String(id), owner: res.owner });
    for (const q of res.irqs) if (q.allocated) irqs.push({ pool: "legacy", value: String(q.irq), owner: res.owner });
    for (const m of res.msi) if (m.allocated) irqs.push({ pool: "msi", value: String(m.gsi), owner: res.owner });
    for (const s of res.pio) if (s.allocated) pio.push({ pool: "io", value: s.range.toString("io"), owner: res.owner });
    for (const s of res.mmio) if (s.allocated) mmio.push({ pool: "mem", value: s.range.toString("mem"), owner: res.owner });
  }
  const sort = (a: FakeAllocation[]) =>
    a.sort((x, y) => (x.pool !== y.pool ? (x.pool < y.pool ? -1 : 1) : x.value === y.value ? 0 : Number(x.value) - Number(y.value)));
  const byStart = (a: FakeAllocation[]) => a.sort((x, y) => (rangeStart(x.value) < rangeStart(y.value) ? -1 : 1));
  return { ids: sort(ids), irqs: sort(irqs), pio: byStart(pio), mmio: byStart(mmio) };
}
function rangeStart(text: string): bigint {
  return BigInt(/0x[0-9a-f]+/.exec(text)![0]);
}
function assertAllocationsMatch(w: ReturnType<typeof world>): void {
  const want = expectedAllocations(w.dm);
  assert.deepEqual({ ids: w.ids.snapshot(), irqs: w.irqs.snapshot(), pio: w.pio.snapshot(), mmio: w.mmio.snapshot() }, want);
}

/** A device needing one of everything, twice. */
const RICH: readonly ResourceRequest[] = [
  { kind: "irq" },
  { kind: "pio", size: 8, alignment: 8 },
  { kind: "mmio", size: 0x1000, alignment: 0x1000 },
  { kind: "msi", count: 2 },
  { kind: "irq" },
  { kind: "pio", size: 0x10 },
  { kind: "mmio", size: 0x2000, mmio64: true },
];
const RICH_CALLS = 1 + 2 + 2 + 2 + 2;

describe("DeviceManager: construction", () => {
  it("validates callbacks and takes them from a system allocator", () => {
    assert.throws(() => new DeviceManager({ irq: 5 as unknown as NonNullable<AllocationCallbacks["irq"]> }), code("InvalidArgument", /callbacks\.irq/));
    assert.throws(() => new DeviceManager(null as unknown as AllocationCallbacks), code("InvalidArgument"));
    const ids = new FakeIdAllocator({ default: [7, 9] });
    const sys: SystemAllocator = {
      deviceIdCallback: () => ids.callback,
      irqCallback: () => undefined,
      pioAddressCallback: () => undefined,
      mmioAddressCallback: () => undefined,
    };
    const dm = DeviceManager.fromSystemAllocator(sys);
    assert.equal(dm.fullRegisterDevice(new TestDevice("a")), 7);
    assert.throws(() => dm.fullRegisterDevice(new TestDevice("b", [{ kind: "irq" }])), code("MissingAllocator", /irq allocator/));
    assert.equal(dm.fullRegisterDevice(new TestDevice("c", [{ kind: "irq", fixed: 4 }])), 8);
    assert.throws(() => DeviceManager.fromSystemAllocator({} as SystemAllocator), code("InvalidArgument", /deviceIdCallback/));
  });

  it("exposes a PIO bus and an MMIO bus", () => {
    const dm = new DeviceManager();
    assert.equal(dm.pioBus.kind, "io");
    assert.equal(dm.mmioBus.kind, "mem");
    assert.equal(dm.size, 0);
  });
});

/** No callbacks at all: a lightweight VMM that allocates by itself. */
const NONE: (keyof AllocationCallbacks)[] = ["deviceId", "irq", "pio", "mmio", "holdings"];

describe("DeviceManager: simple registration (resources handed over by the VMM)", () => {
  it("without callbacks, maps what it is given, records nothing as held, and calls no callback", () => {
    const w = world({ without: NONE });
    const serial = new TestDevice("serial");
    assert.equal(w.dm.simpleRegisterDevice(serial, 3, 4, r(0x3f8, 0x3ff)), 3);
    const blk = new TestDevice("blk");
    w.dm.simpleRegisterDevice(blk, 9n, [10, 11], [r(0x100, 0x107), r(0x200, 0x203)], r(0xfe00_0000, 0xfe00_0fff));
    assert.equal(w.calls(), 0);
    assert.deepEqual(plain(w.dm.resourcesOf(9)), {
      instanceId: 9,
      instanceIdAllocated: false,
      owner: "blk@9",
      registration: "simple",
      irqs: [
        [10, false],
        [11, false],
      ],
      msi: [],
      pio: [
        ["[io 0x100-0x107]", false],
        ["[io 0x200-0x203]", false],
      ],
      mmio: [["[mem 0xfe000000-0xfe000fff]", false]],
    });
    assert.equal(w.dm.pioBus.lookup(0x3f9)?.device, serial);
    assert.equal(w.dm.mmioBus.lookup(0xfe00_0010)?.owner, "blk@9");
    assert.deepEqual(w.dm.instanceIds(), [3, 9]);
    w.dm.checkConsistency();
  });

  it("with callbacks, holds every value it is given exactly, and frees it on fullUnregisterDevice", () => {
    const w = world();
    const blk = new TestDevice("blk");
    w.dm.simpleRegisterDevice(blk, 9, [10, { irq: 11, shared: true }], r(0x1100, 0x1107), r(0xd000_1000, 0xd000_1fff));
    assert.deepEqual(w.ids.calls, [{ action: "allocate", owner: "blk", fixed: 9, allowReserved: true, appendIdToOwner: true }]);
    assert.deepEqual(w.irqs.calls, [
      { action: "allocate", owner: "blk@9", pool: "legacy", fixed: 10, allowReserved: true },
      { action: "allocate", owner: "blk@9", pool: "legacy", fixed: 11, allowReserved: true, shared: true },
    ]);
    assert.deepEqual(w.pio.calls, [{ action: "allocate", owner: "blk@9", size: 8n, fixed: 0x1100n, allowReserved: true }]);
    assert.deepEqual(plain(w.dm.resourcesOf(9)), {
      instanceId: 9,
      instanceIdAllocated: true,
      owner: "blk@9",
      registration: "simple",
      irqs: [
        [10, true],
        [11, true],
      ],
      msi: [],
      pio: [["[io 0x1100-0x1107]", true]],
      mmio: [["[mem 0xd0001000-0xd0001fff]", true]],
    });
    assert.deepEqual(w.dm.resourcesOf(9).irqs.map((q) => [q.fixed, q.shared]), [
      [true, false],
      [true, true],
    ]);
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
    // Values outside the callbacks' pools are only mapped.
    w.dm.simpleRegisterDevice(new TestDevice("serial"), 3, 4, r(0x3f8, 0x3ff));
    assert.deepEqual(plain(w.dm.resourcesOf(3)).irqs, [[4, false]]);
    assert.deepEqual(plain(w.dm.resourcesOf(3)).pio, [["[io 0x3f8-0x3ff]", false]]);
    assert.throws(() => w.dm.unregisterDevice(9), code("InvalidState", /use fullUnregisterDevice/));
    w.dm.fullUnregisterDevice(9);
    w.dm.fullUnregisterDevice(3);
    assert.equal(w.ids.heldCount + w.irqs.heldCount + w.pio.heldCount + w.mmio.heldCount, 0);
    w.dm.checkConsistency();
  });

  it("rejects a taken instance id and a conflicting range, undoing partial mappings", () => {
    const w = world({ without: NONE });
    w.dm.simpleRegisterDevice(new TestDevice("serial"), 3, 4, r(0x3f8, 0x3ff));
    w.dm.simpleRegisterDevice(new TestDevice("rtc"), 4, undefined, undefined, r(0x1000, 0x1fff));
    const before = w.state();
    assert.throws(() => w.dm.simpleRegisterDevice(new TestDevice("x"), 3), code("Overlap", /^x: instanceId: instance id 3 for x is already held by serial@3$/));
    // The PIO range maps first and must be taken down when the MMIO range conflicts.
    assert.throws(
      () => w.dm.simpleRegisterDevice(new TestDevice("x"), 5, undefined, r(0x60, 0x64), r(0x1800, 0x2800)),
      code("Overlap", /^x@5: mmioRange: \[mem 0x1800-0x2800\] conflicts with rtc@4 \[mem 0x1000-0x1fff\]$/),
    );
    assert.throws(
      () => w.dm.simpleRegisterDevice(new TestDevice("x"), 5, undefined, [r(0x60, 0x64), r(0x64, 0x68)]),
      code("Overlap", /^x@5: pioRange\[1\]: \[io 0x64-0x68\] conflicts with x@5 \[io 0x60-0x64\]$/),
    );
    assert.deepEqual(w.state(), before);
    assert.throws(() => w.dm.simpleRegisterDevice(new TestDevice("x"), -1), code("InvalidArgument", /^instanceId must be/));
    assert.throws(() => w.dm.simpleRegisterDevice(new TestDevice("x"), 6, [1, -2]), code("InvalidArgument", /^irq\[1\] must be/));
    assert.throws(() => w.dm.simpleRegisterDevice(new TestDevice("x"), 6, 1, [r(0, 1), 5 as unknown as RangeInclusive]), code("InvalidArgument", /^pioRange\[1\]/));
    assert.throws(() => w.dm.simpleRegisterDevice({ name: "x" } as unknown as Device, 6), code("InvalidArgument", /at least one of the methods read, write, read8/));
    assert.throws(() => w.dm.simpleRegisterDevice({ name: "", read() {}, write() {} }, 6), code("InvalidArgument", /device\.name/));
    assert.deepEqual(w.state(), before);
  });

  it("unregisterDevice unmaps; an unknown id is NotFound", () => {
    const w = world({ without: NONE });
    const d = new TestDevice("serial");
    w.dm.simpleRegisterDevice(d, 3, 4, r(0x3f8, 0x3ff));
    const gone = w.dm.unregisterDevice(3);
    assert.equal(gone.device, d);
    assert.equal(w.dm.pioBus.size, 0);
    assert.equal(w.dm.has(3), false);
    assert.throws(() => w.dm.unregisterDevice(3), code("NotFound", /^no device is registered with instance id 3$/));
    assert.throws(() => w.dm.resourcesOf(3), code("NotFound"));
    assert.throws(() => w.dm.fullUnregisterDevice(77), code("NotFound"));
    assert.throws(() => w.dm.moveRange(77, r(0, 1), 4), code("NotFound"));
    assert.equal(w.calls(), 0);
  });

  it("keeps its records right through heavy churn of distinct and repeated ids", () => {
    // Many distinct dead ids with few live ones make the record table rebuild itself repeatedly;
    // ids 7 (registered first) and the kept ones must survive every rebuild.
    const dm = new DeviceManager();
    const keeper = new TestDevice("keeper");
    dm.simpleRegisterDevice(keeper, 7, 3, r(0xf000_0000, 0xf000_00ff));
    const live = new Set<number>([7]);
    for (let i = 0; i < 1500; i++) {
      const id = 1000 + i * 13;
      dm.simpleRegisterDevice(new TestDevice(`d${i}`), id, undefined, r(BigInt(id) * 0x10n, BigInt(id) * 0x10n + 0xfn));
      if (i % 100 === 0) live.add(id);
      else dm.unregisterDevice(id);
      // The same id over and over as well.
      dm.simpleRegisterDevice(new TestDevice("same"), 8, undefined, r(0xf100_0000, 0xf100_00ff));
      dm.unregisterDevice(8);
    }
    assert.equal(dm.size, live.size);
    assert.deepEqual(dm.instanceIds(), [...live].sort((a, b) => a - b));
    assert.equal(dm.resourcesOf(7).device, keeper);
    assert.deepEqual(plain(dm.resourcesOf(7)).irqs, [[3, false]]);
    for (const id of live) assert.equal(dm.resourcesOf(id).owner.endsWith(`@${id}`), true);
    assert.equal(dm.has(1000 + 3 * 13), false);
    assert.throws(() => dm.resourcesOf(1000 + 3 * 13), code("NotFound"));
    assert.throws(() => dm.simpleRegisterDevice(new TestDevice("dup"), 7), code("Overlap", /keeper@7/));
    dm.checkConsistency();
    assert.equal(dm.pioBus.size, live.size);
  });

  it("allows the same device object twice under different ids", () => {
    const dm = new DeviceManager();
    const d = new TestDevice("dual");
    dm.simpleRegisterDevice(d, 1, undefined, r(0x10, 0x1f));
    dm.simpleRegisterDevice(d, 2, undefined, r(0x20, 0x2f));
    dm.pioRead(0x12, new Uint8Array(1));
    dm.pioRead(0x21, new Uint8Array(1));
    assert.deepEqual(
      d.accesses.map((a) => [a.base, a.offset]),
      [
        [0x10n, 2n],
        [0x20n, 1n],
      ],
    );
    dm.checkConsistency();
  });
});

describe("DeviceManager: full registration", () => {
  it("allocates through the callbacks in order with documented owners, then maps", () => {
    const w = world();
    const dev = new TestDevice("virtio-blk", RICH);
    const id = w.dm.fullRegisterDevice(dev);
    assert.equal(id, 0);
    const order = [...w.ids.calls, ...w.irqs.calls, ...w.pio.calls, ...w.mmio.calls];
    assert.equal(order.length, RICH_CALLS);
    // The instance id is held under the owner everything else has (`virtio-blk@0`).
    assert.deepEqual(w.ids.calls, [{ action: "allocate", owner: "virtio-blk", appendIdToOwner: true }]);
    assert.deepEqual(w.ids.allocations(), [{ pool: "default", value: "0", owner: "virtio-blk@0" }]);
    assert.deepEqual(w.irqs.calls, [
      { action: "allocate", owner: "virtio-blk@0", pool: "legacy" },
      { action: "allocate", owner: "virtio-blk@0", pool: "legacy" },
      { action: "allocate", owner: "virtio-blk@0", pool: "msi" },
      { action: "allocate", owner: "virtio-blk@0", pool: "msi" },
    ]);
    assert.deepEqual(w.pio.calls, [
      { action: "allocate", owner: "virtio-blk@0", size: 8n, alignment: 8n },
      { action: "allocate", owner: "virtio-blk@0", size: 0x10n },
    ]);
    assert.deepEqual(w.mmio.calls, [
      { action: "allocate", owner: "virtio-blk@0", size: 0x1000n, alignment: 0x1000n },
      { action: "allocate", owner: "virtio-blk@0", size: 0x2000n, mmio64: true },
    ]);
    assert.deepEqual(plain(w.dm.resourcesOf(id)), {
      instanceId: 0,
      instanceIdAllocated: true,
      owner: "virtio-blk@0",
      registration: "full",
      irqs: [
        [5, true],
        [6, true],
      ],
      msi: [
        [32, true],
        [33, true],
      ],
      pio: [
        ["[io 0x1000-0x1007]", true],
        ["[io 0x1008-0x1017]", true],
      ],
      mmio: [
        ["[mem 0xd0000000-0xd0000fff]", true],
        ["[mem 0x1000000000-0x1000001fff]", true],
      ],
    });
    assert.deepEqual(
      w.dm.pioBus.mappings().map((m) => [m.range.toString("io"), m.owner, m.device === dev]),
      [
        ["[io 0x1000-0x1007]", "virtio-blk@0", true],
        ["[io 0x1008-0x1017]", "virtio-blk@0", true],
      ],
    );
    assert.equal(w.dm.mmioBus.size, 2);
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
    // A snapshot is a copy: scribbling on it does not reach the manager.
    const res = w.dm.resourcesOf(0) as unknown as { irqs: { irq: number; allocated: boolean }[]; pio: unknown[] };
    res.irqs[0]!.allocated = false;
    res.pio.length = 0;
    assertAllocationsMatch(w);
    assert.equal(w.dm.resourcesOf(0).pio.length, 2);
    w.dm.checkConsistency();
  });

  it("always assigns an instance id; explicit requests override resourceRequest()", () => {
    const w = world();
    const dev = new TestDevice("quiet", [{ kind: "irq" }]);
    assert.equal(w.dm.fullRegisterDevice(dev, []), 0);
    assert.equal(w.irqs.calls.length, 0, "the explicit empty list wins over resourceRequest()");
    assert.equal(w.dm.fullRegisterDevice({ read() {}, write() {} }), 1);
    assert.equal(w.dm.resourcesOf(1).name, "device");
    assert.equal(w.dm.resourcesOf(1).owner, "device@1");
    assert.deepEqual(w.ids.allocations(), [
      { pool: "default", value: "0", owner: "quiet@0" },
      { pool: "default", value: "1", owner: "device@1" },
    ]);
  });

  it("holds fixed values exactly through the callbacks, and only maps those outside every pool", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(
      new TestDevice("fw", [
        { kind: "instanceId", fixed: 40 },
        { kind: "irq", fixed: 4 },
        { kind: "msi", count: 2, fixed: [100, 33] },
        { kind: "pio", size: 8, fixed: 0x3f8 },
        { kind: "mmio", size: 0x1000, fixed: 0xd000_4000n },
        { kind: "irq" },
      ]),
    );
    assert.equal(id, 40);
    assert.deepEqual(w.ids.calls, [{ action: "allocate", owner: "fw", fixed: 40, allowReserved: true, appendIdToOwner: true }]);
    assert.deepEqual(w.irqs.calls, [
      { action: "allocate", owner: "fw@40", pool: "legacy", fixed: 4, allowReserved: true },
      { action: "allocate", owner: "fw@40", pool: "legacy" },
      { action: "allocate", owner: "fw@40", pool: "msi", fixed: 100, allowReserved: true },
      { action: "allocate", owner: "fw@40", pool: "msi", fixed: 33, allowReserved: true },
    ]);
    const held = w.dm.resourcesOf(40);
    assert.equal(held.instanceIdAllocated, true);
    assert.equal(held.instanceIdFixed, true);
    // IRQ 4, GSI 100 and port 0x3f8 are outside the pools (the callbacks said null): only recorded.
    assert.deepEqual(plain(held).irqs, [
      [4, false],
      [5, true],
    ]);
    assert.deepEqual(plain(held).msi, [
      [100, false],
      [33, true],
    ]);
    assert.deepEqual(plain(held).pio, [["[io 0x3f8-0x3ff]", false]]);
    assert.deepEqual(plain(held).mmio, [["[mem 0xd0004000-0xd0004fff]", true]]);
    assert.deepEqual(held.mmio.map((m) => m.fixed), [true]);
    assert.equal(w.dm.pioBus.lookup(0x3ff)?.owner, "fw@40");
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
    // Never offered to anyone else while the device lives.
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("late", [{ kind: "mmio", size: 0x1000, fixed: 0xd000_4000n }])), code("Overlap", /conflicts with fw@40/));
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("late", [{ kind: "instanceId", fixed: 40 }])), code("Overlap", /instance id 40/));
    // Unplugging gives back exactly what the allocator held.
    const seen = w.fakes.map((f) => f.calls.length);
    w.dm.fullUnregisterDevice(40);
    assert.deepEqual(
      (w.fakes as readonly { calls: readonly (IdAllocateParams | AddrAllocateParams)[] }[])
        .flatMap((f, i) => f.calls.slice(seen[i]))
        .map((c) => (c.action !== "free" ? undefined : "range" in c ? c.range.toString() : `${c.id}`))
        .filter((c) => c !== undefined),
      ["40", "33", "5", "[mem 0xd0004000-0xd0004fff]"],
    );
    assert.equal(w.ids.heldCount + w.irqs.heldCount + w.pio.heldCount + w.mmio.heldCount, 0);
    assert.equal(w.dm.pioBus.size + w.dm.mmioBus.size, 0);
  });

  it("works with no callbacks at all when everything is fixed (case 3)", () => {
    const dm = new DeviceManager();
    const id = dm.fullRegisterDevice(
      new TestDevice("fw", [
        { kind: "instanceId", fixed: 1 },
        { kind: "pio", size: 8, fixed: 0x3f8 },
      ]),
    );
    assert.equal(id, 1);
    assert.deepEqual(dm.unregisterDevice(1).pio.map((s) => s.allocated), [false], "nothing allocated: unregisterDevice suffices");
  });

  it("fails with MissingAllocator, before calling anything, when a request has neither callback nor fixed value", () => {
    const cases: [keyof AllocationCallbacks, ResourceRequest[], RegExp][] = [
      ["deviceId", [], /^cannot register dev: no device-id allocator callback was provided and no instanceId request carries a fixed id$/],
      ["irq", [{ kind: "pio", size: 1 }, { kind: "irq" }], /^cannot register dev: requests\[1\] \(irq\) has no fixed IRQ and no irq allocator callback was provided$/],
      ["irq", [{ kind: "msi", count: 1 }], /requests\[0\] \(msi\) has no fixed GSIs and no irq allocator/],
      ["pio", [{ kind: "irq" }, { kind: "pio", size: 16 }], /requests\[1\] \(pio, size 0x10\) has no fixed address and no pio allocator/],
      ["mmio", [{ kind: "mmio", size: 0x1000 }], /requests\[0\] \(mmio, size 0x1000\) has no fixed address and no mmio allocator/],
    ];
    for (const [missing, reqs, message] of cases) {
      const w = world({ without: [missing] });
      assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("dev"), reqs), code("MissingAllocator", message));
      assert.equal(w.calls(), 0, `no callback may run (${missing})`);
      assert.equal(w.dm.size, 0);
    }
  });

  it("validates requests, naming the offending field, before calling anything", () => {
    const w = world();
    const cases: [unknown, string, RegExp][] = [
      [{ notAnArray: true }, "InvalidArgument", /^requests must be an array/],
      [[null], "InvalidArgument", /^requests\[0\] must be a resource request object$/],
      [[{ kind: "dma" }], "InvalidArgument", /^requests\[0\]\.kind must be one of/],
      [[{ kind: 5n }], "InvalidArgument", /^requests\[0\]\.kind must be one of .* got bigint$/],
      [[{ kind: "irq" }, { kind: "irq" }, { kind: "pio", size: -1 }], "InvalidArgument", /^requests\[2\]\.size must be an integer/],
      [[{ kind: "pio", size: 0 }], "InvalidSize", /^requests\[0\]\.size must be at least 1$/],
      [[{ kind: "mmio", size: 16, alignment: 3 }], "InvalidAlignment", /^requests\[0\]\.alignment must be a power of two/],
      [[{ kind: "mmio", size: 16, alignment: 0 }], "InvalidAlignment", /requests\[0\]\.alignment/],
      [[{ kind: "mmio", size: 16, alignment: 16, fixed: 8 }], "UnalignedAddress", /^requests\[0\]\.fixed 0x8 is not a multiple of the alignment 0x10$/],
      [[{ kind: "mmio", size: 16, fixed: U64_MAX - 14n }], "Overflow", /^requests\[0\]: range at 0xfffffffffffffff1 of size 0x10 would end past/],
      [[{ kind: "mmio", size: 16, fixed: U64_MAX - 15n }], "MissingAllocator", /device-id/], // fits exactly: passes validation
      [[{ kind: "pio", size: 1, window: { min: 5, max: 4 } }], "InvalidRange", /^requests\[0\]\.window: min 0x5 is above max 0x4$/],
      [[{ kind: "pio", size: 1, window: { min: 1.5, max: 4 } }], "InvalidArgument", /^requests\[0\]\.window\.min must be/],
      [[{ kind: "pio", size: 1, window: 7 }], "InvalidArgument", /^requests\[0\]\.window must be an object/],
      [[{ kind: "pio", size: 4, fixed: 0x10, window: { min: 0, max: 0x12 } }], "OutOfRange", /^requests\[0\]\.fixed 0x10 of size 0x4 is outside the window 0x0-0x12$/],
      [[{ kind: "pio", size: 4, mmio64: true }], "InvalidArgument", /^requests\[0\] \(pio\) has unknown property "mmio64"$/],
      [[{ kind: "pio", size: 4, fixd: 0x60 }], "InvalidArgument", /unknown property "fixd"/],
      [[{ kind: "mmio", size: 4, allowFallback: true }], "InvalidArgument", /^requests\[0\]\.allowFallback requires mmio64: true$/],
      [[{ kind: "mmio", size: 4, mmio64: "yes" }], "InvalidArgument", /^requests\[0\]\.mmio64 must be a boolean/],
      [[{ kind: "mmio", size: 4, pool: "mmio128" }], "InvalidArgument", /^requests\[0\]\.pool must be one of "systemMemory", "mmio32", "mmio64", "pastMmio64", got "mmio128"$/],
      [[{ kind: "mmio", size: 4, pool: 3 }], "InvalidArgument", /^requests\[0\]\.pool must be one of .*, got number$/],
      [[{ kind: "mmio", size: 4, mmio64: true, pool: "pastMmio64" }], "InvalidArgument", /^requests\[0\] gives mmio64: true and pool "pastMmio64"; give one$/],
      [[{ kind: "mmio", size: 4, pool: "mmio32", allowFallback: true }], "InvalidArgument", /^requests\[0\]\.allowFallback requires mmio64: true$/],
      [[{ kind: "mmio", size: 4, placement: "top" }], "InvalidArgument", /^requests\[0\]\.placement must be "first" or "last", got "top"$/],
      [[{ kind: "pio", size: 4, pool: "mmio32" }], "InvalidArgument", /^requests\[0\] \(pio\) has unknown property "pool"$/],
      [[{ kind: "irq", fixed: 2 ** 32 }], "InvalidArgument", /^requests\[0\]\.fixed must be an integer from 0 to 2\^32-1/],
      [[{ kind: "instanceId" }, { kind: "instanceId" }], "InvalidArgument", /^requests\[1\] is a second instanceId request/],
      [[{ kind: "msi", count: 0 }], "InvalidSize", /^requests\[0\]\.count must be at least 1$/],
      [[{ kind: "msi", count: 2049 }], "InvalidArgument", /^requests\[0\]\.count must be at most 2048/],
      [[{ kind: "msi", count: 2, fixed: [1] }], "InvalidArgument", /^requests\[0\]\.fixed must hold count \(2\) GSIs, got 1$/],
      [[{ kind: "msi", count: 2, fixed: [1, 1] }], "InvalidArgument", /^requests\[0\]\.fixed\[1\] repeats GSI 1$/],
      [[{ kind: "msi", count: 1, fixed: [1] }, { kind: "msi", count: 1, fixed: [1] }], "InvalidArgument", /^requests\[1\]\.fixed\[0\] repeats GSI 1$/],
      [[{ kind: "msi", count: 1, fixed: 1 }], "InvalidArgument", /^requests\[0\]\.fixed must be an array/],
    ];
    const dmNoId = world({ without: ["deviceId"] }).dm;
    for (const [reqs, c, message] of cases) {
      const target = c === "MissingAllocator" ? dmNoId : w.dm;
      assert.throws(() => target.fullRegisterDevice(new TestDevice("dev"), reqs as ResourceRequest[]), code(c, message));
    }
    assert.equal(w.calls(), 0);
    assert.equal(w.dm.size, 0);
    assert.throws(() => w.dm.fullRegisterDevice({ read() {}, write() {}, resourceRequest: 3 } as unknown as Device), code("InvalidArgument", /resourceRequest/));
  });

  it("rejects what a callback returns when it does not satisfy the request, giving it back", () => {
    const cases: { name: string; cb: Partial<AllocationCallbacks>; reqs: ResourceRequest[]; message: RegExp }[] = [];
    const w0 = world();
    const wrongSize = (p: Parameters<NonNullable<AllocationCallbacks["mmio"]>>[0]) =>
      p.action === "allocate" ? w0.mmio.callback({ ...p, size: p.size * 2n }) : w0.mmio.callback(p);
    cases.push({ name: "size", cb: { mmio: wrongSize }, reqs: [{ kind: "mmio", size: 0x100 }], message: /returned \[mem 0xd0000000-0xd00001ff\] for dev@0, which does not satisfy requests\[0\] \(size 0x100\)/ });
    for (const c of cases) {
      const dm = new DeviceManager({ deviceId: w0.ids.callback, mmio: c.cb.mmio! });
      const before = [w0.ids.snapshot(), w0.mmio.snapshot()];
      assert.throws(() => dm.fullRegisterDevice(new TestDevice("dev"), c.reqs), code("InvalidState", c.message));
      assert.deepEqual([w0.ids.snapshot(), w0.mmio.snapshot()], before, "the bad range and the id were given back");
      assert.equal(dm.mmioBus.size, 0);
    }
    // Misaligned, outside the window, not a range, not an id.
    const w = world();
    const misaligned = new DeviceManager({
      deviceId: w.ids.callback,
      pio: (p) => (p.action === "allocate" ? w.pio.callback({ ...p, alignment: 1n, fixed: 0x1001n }) : w.pio.callback(p)),
    });
    assert.throws(() => misaligned.fullRegisterDevice(new TestDevice("dev"), [{ kind: "pio", size: 4, alignment: 4 }]), code("InvalidState", /\[io 0x1001-0x1004\].*alignment 0x4/));
    const outside = new DeviceManager({
      deviceId: w.ids.callback,
      pio: (p) => (p.action === "allocate" ? w.pio.callback({ action: "allocate", owner: p.owner, size: p.size, fixed: 0x1800n }) : w.pio.callback(p)),
    });
    assert.throws(
      () => outside.fullRegisterDevice(new TestDevice("dev"), [{ kind: "pio", size: 4, window: { min: 0x1000, max: 0x10ff } }]),
      code("InvalidState", /window 0x1000-0x10ff/),
    );
    const notRange = new DeviceManager({ deviceId: w.ids.callback, pio: () => ({ start: 0n, end: 3n }) as RangeInclusive });
    assert.throws(() => notRange.fullRegisterDevice(new TestDevice("dev"), [{ kind: "pio", size: 4 }]), code("InvalidState", /PIO allocator returned object for dev@0, not a RangeInclusive/));
    const notId = new DeviceManager({ deviceId: () => 1.5 });
    assert.throws(() => notId.fullRegisterDevice(new TestDevice("dev")), code("InvalidState", /instance id allocator returned 1\.5 for dev/));
    const negIrq = new DeviceManager({ deviceId: w.ids.callback, irq: () => -1 });
    assert.throws(() => negIrq.fullRegisterDevice(new TestDevice("dev"), [{ kind: "irq" }]), code("InvalidState", /IRQ allocator returned -1/));
    assert.deepEqual([w.ids.snapshot(), w.pio.snapshot()], [[], []]);
  });

  it("passes windows and mmio64/allowFallback to the callback", () => {
    const w = world();
    w.dm.fullRegisterDevice(new TestDevice("d"), [
      { kind: "mmio", size: 0x1000, window: { min: 0xd008_0000n, max: 0xd00f_ffffn } },
      { kind: "mmio", size: 0x1000, mmio64: true, allowFallback: true },
    ]);
    assert.deepEqual(w.mmio.calls[0], { action: "allocate", owner: "d@0", size: 0x1000n, window: { min: 0xd008_0000n, max: 0xd00f_ffffn } });
    assert.deepEqual(w.mmio.calls[1], { action: "allocate", owner: "d@0", size: 0x1000n, mmio64: true, allowFallback: true });
    assert.deepEqual(
      w.dm.resourcesOf(0).mmio.map((s) => s.range.start),
      [0xd008_0000n, 0x10_0000_0000n],
    );
  });
});

describe("DeviceManager: all or nothing", () => {
  const throwables: [string, () => unknown][] = [
    ["an AllocatorError", () => new AllocatorError("ResourceNotAvailable", "injected")],
    ["an Error", () => new TypeError("callback bug")],
    ["a string", () => "plain string"],
    ["undefined", () => undefined],
  ];

  it("undoes everything when any allocation step throws anything; rethrows it unchanged, or an AllocatorError naming the device and request", () => {
    for (let step = 0; step < RICH_CALLS; step++) {
      for (const [label, make] of throwables) {
        const w = world();
        w.dm.fullRegisterDevice(new TestDevice("pre", [{ kind: "irq" }, { kind: "pio", size: 4 }]));
        const before = w.state();
        const thrown = make();
        let seen = 0;
        w.setInject((p) => {
          if (p.action === "allocate" && seen++ === step) throw thrown;
        });
        assert.throws(
          () => w.dm.fullRegisterDevice(new TestDevice("victim", RICH)),
          (e) =>
            thrown instanceof AllocatorError
              ? e instanceof AllocatorError && e.cause === thrown && e.code === thrown.code && /^victim(@1)?: .*: injected$/.test(e.message) && e.device !== undefined
              : e === thrown,
          `step ${step}, ${label}`,
        );
        w.setInject(undefined);
        assert.deepEqual(w.state(), before, `state after failing step ${step} with ${label}`);
        assert.equal(w.ids.count("free") + w.irqs.count("free") + w.pio.count("free") + w.mmio.count("free"), step, "every earlier allocation was freed");
        w.dm.checkConsistency();
        // Nothing leaked: the same device registers fine afterwards, with the same resources as a clean run.
        w.dm.fullRegisterDevice(new TestDevice("victim", RICH));
        assertAllocationsMatch(w);
      }
    }
  });

  it("undoes everything when an exhausted pool refuses", () => {
    const w = world({ irqPools: { legacy: [5, 5], msi: [32, 95] } });
    const before = w.state();
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("two-irqs", [{ kind: "irq" }, { kind: "irq" }])), code("ResourceNotAvailable", /legacy pool 5-5 is exhausted/));
    assert.deepEqual(w.state(), before);
    const w2 = world();
    w2.dm.fullRegisterDevice(new TestDevice("a", [{ kind: "pio", size: 0x800 }]));
    const before2 = w2.state();
    assert.throws(() => w2.dm.fullRegisterDevice(new TestDevice("b", [{ kind: "pio", size: 0x100 }, { kind: "pio", size: 0x801 }])), code("ResourceNotAvailable"));
    assert.deepEqual(w2.state(), before2);
  });

  it("undoes allocations and earlier mappings when mapping on a bus fails", () => {
    const w = world();
    // The allocator forgets a range the manager mapped (freed behind the manager's back), so it
    // offers it again: the bus refuses, and everything is undone.
    w.dm.simpleRegisterDevice(new TestDevice("legacy"), 50, undefined, undefined, r(0xd000_1000n, 0xd000_1fffn));
    w.mmio.callback({ action: "free", owner: "legacy@50", range: r(0xd000_1000n, 0xd000_1fffn) });
    assert.throws(() => w.dm.checkConsistency(), code("InvalidState", /legacy@50 records mmio 0xd0001000-0xd0001fff, which the allocator does not hold for it/));
    const before = w.state();
    const reqs: ResourceRequest[] = [{ kind: "irq" }, { kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }, { kind: "mmio", size: 0x1000 }];
    assert.throws(
      () => w.dm.fullRegisterDevice(new TestDevice("victim"), reqs),
      code("Overlap", /^victim@0: requests\[3\] \(mmio, 0x1000 bytes\): \[mem 0xd0001000-0xd0001fff\] conflicts with legacy@50 \[mem 0xd0001000-0xd0001fff\]$/),
    );
    assert.deepEqual(w.state(), before);
    assert.equal(w.mmio.count("free"), 3, "the forgetful free, then the two ranges handed out");
    // A fixed range conflicting with a mapping is undone the same way.
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("victim"), [{ kind: "irq" }, { kind: "mmio", size: 1, fixed: 0xd000_1800n }]), code("Overlap", /legacy@50/));
    assert.deepEqual(w.state(), before);
  });

  it("frees an instance id the callback hands out when it is already in use by a simple registration", () => {
    const w = world();
    w.dm.simpleRegisterDevice(new TestDevice("handed"), 0);
    // An allocator that lost the id (freed behind the manager's back) hands it out again.
    w.ids.callback({ action: "free", owner: "handed@0", id: 0 });
    const before = w.state();
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("late")), code("Overlap", /^late: instance id: instance id 0 for late is already held by handed@0$/));
    assert.deepEqual(w.state(), before);
    assert.deepEqual(w.ids.calls.at(-1), { action: "free", owner: "late@0", id: 0, undo: true });
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("fixed", [{ kind: "instanceId", fixed: 0 }])), code("Overlap", /handed@0/));
  });

  it("reports InvalidState, keeping the original error as cause, when undoing itself fails", () => {
    const w = world();
    const original = new AllocatorError("ResourceNotAvailable", "no MMIO left");
    w.mmio.inject = (p) => {
      if (p.action === "allocate") throw original;
    };
    w.pio.inject = (p) => {
      if (p.action === "free") throw new AllocatorError("NeverAllocated", "lost it");
    };
    assert.throws(
      () => w.dm.fullRegisterDevice(new TestDevice("d", [{ kind: "irq" }, { kind: "pio", size: 4 }, { kind: "mmio", size: 4 }])),
      (e: unknown) => {
        assert.ok(e instanceof AllocatorError);
        assert.equal(e.code, "InvalidState");
        assert.equal((e.cause as AllocatorError).cause, original);
        assert.equal(e.device, "d@0");
        assert.match(e.message, /^d@0: requests\[2\] \(mmio, 0x4 bytes\): no MMIO left; undoing it failed too \(lost it\): the allocator may have leaked$/);
        return true;
      },
    );
    // Every other step was still undone; the manager itself is clean.
    assert.deepEqual(w.irqs.snapshot(), []);
    assert.deepEqual(w.ids.snapshot(), []);
    assert.equal(w.dm.size, 0);
    assert.equal(w.dm.pioBus.size, 0);
  });
});

describe("DeviceManager: unregistering", () => {
  it("fullUnregisterDevice frees exactly what was allocated, in reverse order, with the allocation owners", () => {
    const w = world();
    const initial = w.state();
    const id = w.dm.fullRegisterDevice(new TestDevice("virtio-blk", [...RICH, { kind: "irq", fixed: 3 }, { kind: "pio", size: 2, fixed: 0x60 }]));
    const n = w.calls();
    const res = w.dm.fullUnregisterDevice(id);
    assert.equal(res.owner, "virtio-blk@0");
    const frees = [...w.ids.calls, ...w.irqs.calls, ...w.pio.calls, ...w.mmio.calls].filter((c) => c.action === "free");
    // IRQ 3 and port 0x60 are outside the pools (the callbacks answered null): never freed.
    assert.equal(frees.length, n - 2, "one free per held resource, none for what is only mapped");
    assert.deepEqual(w.irqs.calls.filter((c) => c.action === "free"), [
      { action: "free", owner: "virtio-blk@0", id: 33, pool: "msi" },
      { action: "free", owner: "virtio-blk@0", id: 32, pool: "msi" },
      { action: "free", owner: "virtio-blk@0", id: 6, pool: "legacy" },
      { action: "free", owner: "virtio-blk@0", id: 5, pool: "legacy" },
    ]);
    assert.deepEqual(w.ids.calls.at(-1), { action: "free", owner: "virtio-blk@0", id: 0 });
    assert.deepEqual(w.state(), initial);
    assert.throws(() => w.dm.fullUnregisterDevice(id), code("NotFound"));
  });

  it("unregisterDevice refuses a device holding allocated resources, which would leak", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d", [{ kind: "irq" }]));
    const before = w.state();
    assert.throws(() => w.dm.unregisterDevice(id), code("InvalidState", /^d@0 holds resources in the allocator \(instance id 0, \[irq 5\]\); use fullUnregisterDevice/));
    assert.deepEqual(w.state(), before);
  });

  it("fullUnregisterDevice on a simple registration without callbacks just unmaps", () => {
    const w = world({ without: NONE });
    w.dm.simpleRegisterDevice(new TestDevice("s"), 7, 5, r(0x1000, 0x1007));
    w.dm.fullUnregisterDevice(7);
    assert.equal(w.calls(), 0);
    assert.equal(w.dm.pioBus.size, 0);
  });

  it("completes the unregistration even when a free fails, then reports the leak", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d", [{ kind: "irq" }, { kind: "pio", size: 4 }, { kind: "mmio", size: 4 }]));
    const refusal = new AllocatorError("NeverAllocated", "pio says no");
    w.pio.inject = (p) => {
      if (p.action === "free") throw refusal;
    };
    assert.throws(
      () => w.dm.fullUnregisterDevice(id),
      (e: unknown) => {
        assert.ok(e instanceof AllocatorError);
        assert.equal(e.code, "InvalidState");
        assert.equal(e.cause, refusal);
        assert.match(e.message, /^d@0 was unregistered, but freeing \[io 0x1000-0x1003\] \(pio says no\) failed$/);
        return true;
      },
    );
    assert.equal(w.dm.size, 0);
    assert.equal(w.dm.pioBus.size + w.dm.mmioBus.size, 0);
    assert.deepEqual([w.ids.snapshot(), w.irqs.snapshot(), w.mmio.snapshot()], [[], [], []], "the other frees happened");
    assert.equal(w.pio.heldCount, 1);
  });
});

describe("DeviceManager: dispatch", () => {
  it("routes VM exits to the owning device with the offset in its range", () => {
    const w = world();
    const a = new TestDevice("a", [{ kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }], 0x11);
    const b = new TestDevice("b", [{ kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }], 0x22);
    w.dm.fullRegisterDevice(a);
    w.dm.fullRegisterDevice(b);
    const data = new Uint8Array(2);
    assert.equal(w.dm.pioRead(0x1009, data), true);
    assert.deepEqual([...data], [0x22, 0x22]);
    assert.equal(w.dm.pioWrite(0x1000n, Uint8Array.of(1)), true);
    assert.equal(w.dm.mmioRead(0xd000_0ffc, new Uint8Array(4)), true);
    assert.equal(w.dm.mmioWrite(0xd000_1000n, new Uint8Array(8)), true);
    assert.deepEqual(
      a.accesses.map((x) => [x.op, x.base, x.offset, x.len]),
      [
        ["write", 0x1000n, 0n, 1],
        ["read", 0xd000_0000n, 0xffcn, 4],
      ],
    );
    assert.deepEqual(
      b.accesses.map((x) => [x.op, x.base, x.offset, x.len]),
      [
        ["read", 0x1008n, 1n, 2],
        ["write", 0xd000_1000n, 0n, 8],
      ],
    );
    const miss = new Uint8Array(4);
    assert.equal(w.dm.mmioRead(0xd000_2000, miss), false);
    assert.deepEqual([...miss], [0xff, 0xff, 0xff, 0xff]);
    assert.equal(w.dm.pioWrite(0x2000, miss), false);
    assert.equal(w.dm.mmioBus.unmappedReads, 1);
    assert.equal(w.dm.pioBus.unmappedWrites, 1);
    // A guest access running past b@1's end is served as unmapped, never thrown (issue 7).
    const past = Uint8Array.of(1, 2, 3, 4);
    assert.equal(w.dm.mmioRead(0xd000_1ffe, past), false);
    assert.deepEqual([...past], [0xff, 0xff, 0xff, 0xff]);
    assert.equal(w.dm.mmioBus.rejectedReads, 1);
    assert.equal(b.accesses.length, 2, "the device was not called");
  });
});

describe("DeviceManager: moveRange", () => {
  function barWorld() {
    const w = world();
    const dev = new TestDevice("nic", [
      { kind: "mmio", size: 0x1000, alignment: 0x1000 },
      { kind: "pio", size: 8 },
    ]);
    const id = w.dm.fullRegisterDevice(dev);
    return { ...w, dev, id, bar: r(0xd000_0000n, 0xd000_0fffn) };
  }

  it("re-allocates at the new base, re-maps, then frees the old place", () => {
    const w = barWorld();
    const moved = w.dm.moveRange(w.id, w.bar, 0xd008_0000n);
    assert.ok(moved.equals(r(0xd008_0000n, 0xd008_0fffn)));
    assert.deepEqual(w.mmio.calls.slice(1), [
      { action: "allocate", owner: "nic@0", size: 0x1000n, fixed: 0xd008_0000n, alignment: 0x1000n },
      { action: "free", owner: "nic@0", range: w.bar },
    ]);
    assert.deepEqual(w.mmio.allocations(), [{ pool: "mem", value: "[mem 0xd0080000-0xd0080fff]", owner: "nic@0" }]);
    assert.equal(w.dm.mmioRead(0xd000_0000n, new Uint8Array(1)), false);
    assert.equal(w.dm.mmioRead(0xd008_0004, new Uint8Array(1)), true);
    assert.deepEqual(w.dev.accesses.at(-1), { op: "read", base: 0xd008_0000n, offset: 4n, len: 1 });
    assert.deepEqual(plain(w.dm.resourcesOf(w.id)).mmio, [["[mem 0xd0080000-0xd0080fff]", true]]);
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
    // Moving to where it is does nothing.
    const calls = w.calls();
    assert.ok(w.dm.moveRange(w.id, moved, 0xd008_0000n).equals(moved));
    assert.equal(w.calls(), calls);
  });

  it("changes nothing when the new place is taken on the bus (without asking the allocator) or in the allocator", () => {
    const w = barWorld();
    w.dm.simpleRegisterDevice(new TestDevice("fw"), 60, undefined, undefined, r(0xd004_0000n, 0xd004_0fffn));
    const before = w.state();
    const calls = w.calls();
    assert.throws(() => w.dm.moveRange(w.id, w.bar, 0xd004_0000n), code("Overlap", /^\[mem 0xd0040000-0xd0040fff\] conflicts with fw@60 \[mem 0xd0040000-0xd0040fff\]$/));
    assert.equal(w.calls(), calls);
    // Taken in the allocator only (reserved by someone who never mapped it).
    w.mmio.callback({ action: "allocate", owner: "firmware", size: 0x1000n, fixed: 0xd005_0000n });
    const before2 = w.state();
    assert.throws(() => w.dm.moveRange(w.id, w.bar, 0xd005_0000n), code("Overlap", /conflicts with firmware/));
    assert.deepEqual(w.state(), before2);
    assert.notDeepEqual(before2, before);
    assert.equal(w.dm.mmioRead(0xd000_0000n, new Uint8Array(1)), true);
  });

  it("keeps the requested alignment and window, and rejects overflow", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d"), [{ kind: "mmio", size: 0x1000, alignment: 0x1000, window: { min: 0xd000_0000n, max: 0xd00f_ffffn } }]);
    const bar = w.dm.resourcesOf(id).mmio[0]!.range;
    const before = w.state();
    assert.throws(() => w.dm.moveRange(id, bar, 0xd000_0800n), code("UnalignedAddress", /^newBase 0xd0000800 is not a multiple of the alignment 0x1000 d@0 requested$/));
    assert.throws(() => w.dm.moveRange(id, bar, 0xd010_0000n), code("OutOfRange", /^\[mem 0xd0100000-0xd0100fff\] is outside the window 0xd0000000-0xd00fffff d@0 requested$/));
    assert.throws(() => w.dm.moveRange(id, bar, U64_MAX), code("Overflow"));
    assert.throws(() => w.dm.moveRange(id, bar, -5), code("InvalidArgument", /^newBase must be/));
    assert.throws(() => w.dm.moveRange(id, r(0, 0xfff), 0), code("NotFound", /^d@0 holds no range \[io 0x0-0xfff\] or \[mem 0x0-0xfff\]$/));
    assert.throws(() => w.dm.moveRange(id, bar, 0, "pio"), code("NotFound", /^d@0 holds no range \[io 0xd0000000-0xd0000fff\]$/));
    assert.throws(() => w.dm.moveRange(id, bar, 0, "dma" as "pio"), code("InvalidArgument"));
    assert.throws(() => w.dm.moveRange(id, { start: 0n, end: 1n } as RangeInclusive, 0), code("InvalidArgument"));
    assert.deepEqual(w.state(), before);
  });

  it("moves a range onto part of itself by freeing first, and takes the old place back when refused", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d"), [{ kind: "pio", size: 8 }]);
    const old = r(0x1000, 0x1007);
    const moved = w.dm.moveRange(id, old, 0x1004);
    assert.ok(moved.equals(r(0x1004, 0x100b)));
    assert.deepEqual(w.pio.calls.slice(1), [
      { action: "free", owner: "d@0", range: old },
      { action: "allocate", owner: "d@0", size: 8n, fixed: 0x1004n },
    ]);
    assertAllocationsMatch(w);
    // Now make the new place partly taken in the allocator: the old place must be taken back.
    w.pio.callback({ action: "allocate", owner: "other", size: 1n, fixed: 0x100en });
    const before = w.state();
    assert.throws(() => w.dm.moveRange(id, moved, 0x1008), code("Overlap", /conflicts with other/));
    assert.deepEqual(w.state(), before);
    assert.deepEqual(w.pio.calls.slice(-3).map((c) => c.action), ["free", "allocate", "allocate"]);
  });

  it("stops claiming a range it could not take back, and says so", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d"), [{ kind: "pio", size: 8 }]);
    const old = r(0x1000, 0x1007);
    let n = 0;
    w.pio.inject = (p) => {
      if (p.action === "allocate" && n++ < 2) throw new AllocatorError("ResourceNotAvailable", `refused ${n}`);
    };
    assert.throws(
      () => w.dm.moveRange(id, old, 0x1004),
      (e: unknown) => e instanceof AllocatorError && e.code === "InvalidState" && /refused 1.*refused 2/.test(e.message) && e.cause instanceof AllocatorError,
    );
    w.pio.inject = undefined;
    const res = w.dm.resourcesOf(id);
    assert.deepEqual(plain(res).pio, [["[io 0x1000-0x1007]", false]], "no longer recorded as allocated");
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
    w.dm.fullUnregisterDevice(id);
    assert.equal(w.pio.count("free"), 1, "never freed twice");
  });

  it("frees the new place again when the allocator refuses to free the old one", () => {
    const w = barWorld();
    const before = w.state();
    const refusal = new Error("free refused");
    w.mmio.inject = (p) => {
      if (p.action === "free" && p.range.start === 0xd000_0000n) throw refusal;
    };
    assert.throws(() => w.dm.moveRange(w.id, w.bar, 0xd001_0000n), (e) => e === refusal);
    assert.deepEqual(w.state(), before);
  });

  it("only re-maps ranges no callback holds, checking the bus", () => {
    const w = world({ without: ["pio", "mmio", "holdings"] });
    const id = w.dm.fullRegisterDevice(new TestDevice("fw", [{ kind: "instanceId", fixed: 2 }, { kind: "mmio", size: 0x100, fixed: 0xfe00_0000n }]));
    w.dm.simpleRegisterDevice(new TestDevice("s"), 3, undefined, r(0x60, 0x60), r(0xfe00_1000n, 0xfe00_10ffn));
    const calls = w.calls();
    const moved = w.dm.moveRange(id, r(0xfe00_0000n, 0xfe00_00ffn), 0xfe00_2000n);
    assert.ok(moved.equals(r(0xfe00_2000n, 0xfe00_20ffn)));
    assert.throws(() => w.dm.moveRange(id, moved, 0xfe00_1080n), code("Overlap", /s@3/));
    assert.ok(w.dm.moveRange(3, r(0x60, 0x60), 0x64).equals(r(0x64, 0x64)));
    assert.equal(w.calls(), calls);
    assert.equal(w.dm.pioBus.lookup(0x64)?.owner, "s@3");
    w.dm.checkConsistency();
  });

  it("needs kind when a range is both a PIO and an MMIO range of the device", () => {
    const dm = new DeviceManager();
    dm.simpleRegisterDevice(new TestDevice("d"), 1, undefined, r(0x10, 0x1f), r(0x10, 0x1f));
    assert.throws(() => dm.moveRange(1, r(0x10, 0x1f), 0x20), code("InvalidArgument", /pass kind/));
    dm.moveRange(1, r(0x10, 0x1f), 0x20, "mmio");
    assert.equal(dm.mmioBus.lookup(0x20)?.owner, "d@1");
    assert.equal(dm.pioBus.lookup(0x10)?.owner, "d@1");
  });

  it("refuses to move a range the bus no longer maps as recorded", () => {
    const dm = new DeviceManager();
    dm.simpleRegisterDevice(new TestDevice("d"), 1, undefined, r(0x10, 0x1f));
    dm.pioBus.remove(0x10);
    assert.throws(() => dm.moveRange(1, r(0x10, 0x1f), 0x20), code("InvalidState", /no longer maps/));
  });
});

describe("DeviceManager: re-entrancy", () => {
  it("rejects mutating calls from inside an allocator callback with InvalidState; queries and dispatch work", () => {
    const w = world();
    const existing = new TestDevice("existing", [{ kind: "pio", size: 4 }]);
    w.dm.fullRegisterDevice(existing);
    const errors: unknown[] = [];
    let observed: unknown;
    w.irqs.inject = (p) => {
      if (p.action !== "allocate") return;
      for (const attempt of [
        () => w.dm.fullRegisterDevice(new TestDevice("nested")),
        () => w.dm.simpleRegisterDevice(new TestDevice("nested"), 30),
        () => w.dm.unregisterDevice(0),
        () => w.dm.fullUnregisterDevice(0),
        () => w.dm.moveRange(0, r(0x1000, 0x1003), 0x1100),
      ]) {
        try {
          attempt();
        } catch (e) {
          errors.push(e);
        }
      }
      const data = new Uint8Array(1);
      observed = { read: w.dm.pioRead(0x1000, data), size: w.dm.size, has: w.dm.has(1) };
      w.dm.checkConsistency(); // the state seen from a callback is the committed one
    };
    const id = w.dm.fullRegisterDevice(new TestDevice("outer", [{ kind: "irq" }]));
    assert.equal(id, 1);
    assert.equal(errors.length, 5);
    for (const e of errors) assert.ok(code("InvalidState", /cannot run while fullRegisterDevice\(outer\) is in progress/)(e));
    assert.deepEqual(observed, { read: true, size: 1, has: false });
    w.irqs.inject = undefined;
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
  });

  it("rolls back the outer registration when the callback lets the re-entry error through", () => {
    const w = world();
    const before = w.state();
    w.pio.inject = (p) => {
      if (p.action === "allocate") w.dm.simpleRegisterDevice(new TestDevice("nested"), 30);
    };
    assert.throws(() => w.dm.fullRegisterDevice(new TestDevice("outer", [{ kind: "irq" }, { kind: "pio", size: 4 }])), code("InvalidState", /simpleRegisterDevice cannot run/));
    w.pio.inject = undefined;
    assert.deepEqual(w.state(), before);
  });

  it("rejects re-entry from callbacks during fullUnregisterDevice and moveRange", () => {
    const w = world();
    const id = w.dm.fullRegisterDevice(new TestDevice("d", [{ kind: "mmio", size: 0x1000 }]));
    const seen: unknown[] = [];
    w.mmio.inject = () => {
      try {
        w.dm.fullRegisterDevice(new TestDevice("nested"));
      } catch (e) {
        seen.push(e);
      }
    };
    w.dm.moveRange(id, r(0xd000_0000n, 0xd000_0fffn), 0xd001_0000n);
    w.dm.fullUnregisterDevice(id);
    assert.equal(seen.length, 3);
    assert.ok(code("InvalidState", /while moveRange\(d@0\)/)(seen[0]));
    assert.ok(code("InvalidState", /while fullUnregisterDevice\(d@0\)/)(seen[2]));
    assert.equal(w.dm.size, 0, "nothing nested was registered");
  });

  it("lets a device unplug itself from inside its own read; later accesses are unmapped", () => {
    const w = world();
    const dev = new TestDevice("hotplug", [{ kind: "irq" }, { kind: "mmio", size: 0x100 }], 0x77);
    const id = w.dm.fullRegisterDevice(dev);
    dev.onAccess = (op) => {
      if (op === "read") w.dm.fullUnregisterDevice(id);
    };
    const data = new Uint8Array(4);
    assert.equal(w.dm.mmioRead(0xd000_0010n, data), true);
    assert.deepEqual([...data], [0x77, 0x77, 0x77, 0x77], "the access in progress completes");
    assert.equal(w.dm.has(id), false);
    assert.equal(w.dm.mmioRead(0xd000_0010n, data), false);
    assert.deepEqual([...data], [0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual([w.ids.snapshot(), w.irqs.snapshot(), w.mmio.snapshot()], [[], [], []]);
    w.dm.checkConsistency();
  });

  it("lets a device register a child and move its own BAR from inside write", () => {
    const w = world();
    const parent = new TestDevice("bridge", [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }]);
    const id = w.dm.fullRegisterDevice(parent);
    const child = new TestDevice("child", [{ kind: "pio", size: 4 }], 0x44);
    let childId = -1;
    parent.onAccess = (op, base, offset) => {
      if (op !== "write") return;
      if (offset === 0n) childId = w.dm.fullRegisterDevice(child);
      if (offset === 0x10n) w.dm.moveRange(id, r(base, base + 0xfffn), 0xd002_0000n);
    };
    w.dm.mmioWrite(0xd000_0000n, new Uint8Array(4));
    assert.equal(childId, 1);
    const data = new Uint8Array(1);
    assert.equal(w.dm.pioRead(0x1000, data), true);
    assert.equal(data[0], 0x44);
    w.dm.mmioWrite(0xd000_0010n, new Uint8Array(4));
    assert.deepEqual(parent.accesses.at(-1), { op: "write", base: 0xd000_0000n, offset: 0x10n, len: 4 }, "dispatched against the old BAR");
    assert.equal(w.dm.mmioRead(0xd000_0010n, data), false);
    assert.equal(w.dm.mmioRead(0xd002_0010n, data), true);
    assertAllocationsMatch(w);
    w.dm.checkConsistency();
  });

  it("calls resourceRequest() before the registration starts, so it may itself register a device", () => {
    const w = world();
    const inner = new TestDevice("inner");
    const outer: Device = {
      name: "outer",
      read() {},
      write() {},
      resourceRequest: () => {
        w.dm.fullRegisterDevice(inner);
        return [{ kind: "irq" }];
      },
    };
    assert.equal(w.dm.fullRegisterDevice(outer), 1);
    assert.equal(w.dm.resourcesOf(0).device, inner);
  });
});

describe("DeviceManager: checkConsistency", () => {
  it("detects a mapping that belongs to no device and a recorded range that is not mapped", () => {
    const dm = new DeviceManager();
    const d = new TestDevice("d");
    dm.simpleRegisterDevice(d, 1, undefined, r(0x10, 0x1f));
    dm.checkConsistency();
    dm.pioBus.insert(r(0x40, 0x4f), d, "ghost@9");
    assert.throws(() => dm.checkConsistency(), code("InvalidState", /\[io 0x40-0x4f\] of ghost@9, which is not a registered device/));
    dm.pioBus.remove(0x40);
    dm.pioBus.insert(r(0x40, 0x4f), d, "d@1");
    assert.throws(() => dm.checkConsistency(), code("InvalidState", /not among its recorded resources/));
    dm.pioBus.remove(0x40);
    dm.pioBus.remove(0x10);
    assert.throws(() => dm.checkConsistency(), code("InvalidState", /1 io ranges are recorded but the bus maps 0/));
    dm.pioBus.insert(r(0x10, 0x1f), new TestDevice("d"), "d@1");
    assert.throws(() => dm.checkConsistency(), code("InvalidState", /another device object/));
    // Unregistering still completes, taking down only what is its own.
    dm.fullUnregisterDevice(1);
    assert.equal(dm.pioBus.size, 1);
  });
});

describe("DeviceManager: random sequences (model-based)", () => {
  type Op =
    | { op: "full"; reqs: ResourceRequest[]; failAt: number | undefined; failWith: number }
    | { op: "simple"; id: number; port: number; mmioSlot: number }
    | { op: "unregister"; pick: number; full: boolean }
    | { op: "move"; pick: number; slot: number; failAt: number | undefined };

  const addrReq = fc.oneof(
    fc.record({ kind: fc.constant("pio" as const), size: fc.constantFrom(1, 4, 8, 0x100), alignment: fc.constantFrom(1, 4, 8) }),
    fc.record({ kind: fc.constant("pio" as const), size: fc.constantFrom(1, 8), fixed: fc.integer({ min: 0x1000, max: 0x1020 }).map((x) => x & ~7) }),
    fc.record({ kind: fc.constant("mmio" as const), size: fc.constantFrom(0x1000, 0x4000), alignment: fc.constant(0x1000), mmio64: fc.boolean() }),
    fc.record({ kind: fc.constant("mmio" as const), size: fc.constant(0x1000), fixed: fc.integer({ min: 0, max: 7 }).map((k) => 0xd000_0000 + k * 0x1000) }),
  );
  const idReq = fc.oneof(
    fc.constant({ kind: "irq" as const }),
    fc.record({ kind: fc.constant("irq" as const), fixed: fc.integer({ min: 0, max: 20 }) }),
    fc.record({ kind: fc.constant("msi" as const), count: fc.integer({ min: 1, max: 3 }) }),
  );
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("full" as const),
        reqs: fc.array(fc.oneof(addrReq, idReq), { maxLength: 5 }) as fc.Arbitrary<ResourceRequest[]>,
        failAt: fc.option(fc.integer({ min: 0, max: 8 }), { nil: undefined }),
        failWith: fc.integer({ min: 0, max: 2 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({
        op: fc.constant("simple" as const),
        id: fc.integer({ min: 0, max: 3 }),
        // Half inside the PIO allocator's pool, so handed-over and allocated ranges collide.
        port: fc.integer({ min: 0, max: 0x30 }).map((x) => (x < 0x18 ? 0x1000 + x : x)),
        mmioSlot: fc.integer({ min: 0, max: 7 }),
      }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("unregister" as const), pick: fc.nat(), full: fc.boolean() }) },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("move" as const), pick: fc.nat(), slot: fc.integer({ min: 0, max: 15 }), failAt: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }) }),
    },
  );

  it("keeps buses, records and allocators in agreement; every failed call changes nothing", () => {
    const outcomes: Record<string, { ok: number; failed: number }> = {};
    const tally = (op: string, ok: boolean) => {
      const t = (outcomes[op] ??= { ok: 0, failed: 0 });
      if (ok) t.ok++;
      else t.failed++;
    };
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const w = world({ irqPools: { legacy: [5, 9], msi: [32, 39] } });
        let n = 0;
        for (const o of ops) {
          const before = w.state();
          try {
            switch (o.op) {
              case "full": {
                let k = 0;
                const thrown = [new AllocatorError("ResourceNotAvailable", "injected"), new Error("boom"), "str"][o.failWith];
                w.setInject((p) => {
                  if (p.action === "allocate" && k++ === o.failAt) throw thrown;
                });
                w.dm.fullRegisterDevice(new TestDevice(`dev${n++ % 3}`), o.reqs);
                break;
              }
              case "simple":
                w.dm.simpleRegisterDevice(new TestDevice("vmm"), o.id + 100, 4, r(o.port, o.port + 3), r(0xd000_0000 + o.mmioSlot * 0x1000, 0xd000_0fff + o.mmioSlot * 0x1000));
                break;
              case "unregister": {
                const ids = w.dm.instanceIds();
                if (ids.length === 0) continue;
                const id = ids[o.pick % ids.length]!;
                if (o.full) w.dm.fullUnregisterDevice(id);
                else w.dm.unregisterDevice(id);
                break;
              }
              case "move": {
                const ids = w.dm.instanceIds();
                if (ids.length === 0) continue;
                const res = w.dm.resourcesOf(ids[o.pick % ids.length]!);
                const slots = [...res.pio.map((s) => ["pio", s] as const), ...res.mmio.map((s) => ["mmio", s] as const)];
                const chosen = slots[o.pick % Math.max(1, slots.length)];
                if (chosen === undefined) continue;
                const [kind, s] = chosen;
                const base = kind === "pio" ? 0x1000n + BigInt(o.slot) * 8n : 0xd000_0000n + BigInt(o.slot) * 0x1000n;
                let k = 0;
                w.setInject(() => {
                  if (k++ === o.failAt) throw new AllocatorError("ResourceNotAvailable", "injected");
                });
                w.dm.moveRange(res.instanceId, s.range, base, kind);
                break;
              }
            }
            tally(o.op, true);
          } catch (e) {
            tally(o.op, false);
            assert.ok(e === "str" || e instanceof Error, `unexpected throw ${String(e)}`);
            assert.deepEqual(w.state(), before, `${o.op} failed (${String(e)}) but changed state`);
          } finally {
            w.setInject(undefined);
          }
          w.dm.checkConsistency();
          assertAllocationsMatch(w);
        }
        // Tear everything down: the allocators end empty.
        for (const id of w.dm.instanceIds()) w.dm.fullUnregisterDevice(id);
        assert.deepEqual([w.ids.heldCount, w.irqs.heldCount, w.pio.heldCount, w.mmio.heldCount], [0, 0, 0, 0]);
        assert.equal(w.dm.pioBus.size + w.dm.mmioBus.size, 0);
      }),
      { numRuns: 250 },
    );
    // The sequences must exercise both paths of every operation, or the test proves little.
    for (const op of ["full", "simple", "unregister", "move"]) {
      assert.ok((outcomes[op]?.ok ?? 0) >= 10 && (outcomes[op]?.failed ?? 0) >= 10, `${op}: ${JSON.stringify(outcomes[op])}`);
    }
  });
});
