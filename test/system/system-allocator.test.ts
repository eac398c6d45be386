import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AddrAllocateParams, IdAllocateParams } from "../../src/system/allocation-callbacks.js";
import type { Device, ResourceRequest } from "../../src/devices/device.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";
import { FIRECRACKER_X86_64, getLayout, MAX_ID_RESERVATION, PC_X86_64, POOL_NAMES, type PoolName, type SystemLayout } from "../../src/system/layouts.js";
import { RangeInclusive } from "../../src/core/range.js";
import {
  DefaultSystemAllocator,
  SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT,
  type Holding,
} from "../../src/system/system-allocator.js";
import type { SystemAllocator } from "../../src/system/system-allocator-interface.js";

const code = (c: string, message?: RegExp, owner?: string) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message !== undefined) assert.match(e.message, message);
  if (owner !== undefined) assert.equal(e.owner, owner);
  return true;
};
const r = (start: bigint | number, end: bigint | number) => new RangeInclusive(start, end);
const FOUR_GIB = 1n << 32n;

/** Small pools, so that exhaustion and fallback are easy to reach. */
const SMALL: SystemLayout = {
  name: "small",
  pio: { base: 0x100, size: 0x100 },
  mmio32: { base: 0x1000, size: 0x1000 },
  mmio64: { base: "0x100000000", size: 0x1000 },
  legacyIrq: { first: 5, last: 12 },
  msi: { first: 24, last: 40 },
  instanceId: { first: 0, last: 15 },
};
/** {@link SMALL} with the two pools Firecracker adds, for the model test. */
const MODEL_LAYOUT: SystemLayout = {
  ...SMALL,
  name: "model",
  systemMemory: { base: 0x10_0000, size: 0x1000 },
  pastMmio64: { base: "0x100100000", size: 0x1000 },
};
const NO_OPTIONAL: SystemLayout = { mmio32: { base: 0x1000, size: 0x1000 }, legacyIrq: { first: 32, last: 40 }, msi: { first: 41, last: 60 } };

const state = (sys: DefaultSystemAllocator): string => JSON.stringify(sys.toJSON());
const show = (h: Holding): string => ("range" in h ? `${h.pool} ${h.range.toString()} ${h.owner}${h.reserved ? " R" : ""}` : `${h.pool} ${h.id} ${h.owner}${h.reserved ? " R" : ""}`);

/** Runs `f`, a fixed request outside every pool, which must hold nothing (return null) and change nothing. */
function holdsNothing(sys: DefaultSystemAllocator, f: () => unknown): void {
  const before = state(sys);
  assert.equal(f(), null);
  assert.equal(state(sys), before);
}

/** Runs `f`, which must throw an AllocatorError with code `c`, and checks that nothing changed. */
function failsCleanly(sys: DefaultSystemAllocator, f: () => unknown, c: string, message?: RegExp, owner?: string): void {
  const before = state(sys);
  assert.throws(f, code(c, message, owner));
  assert.equal(state(sys), before, "a failed call changed the allocator");
  sys.checkValid();
}

describe("DefaultSystemAllocator: construction and layout", () => {
  it("uses the Firecracker microVM preset by default", () => {
    const sys = new DefaultSystemAllocator();
    assert.equal(sys.name, "firecracker-x86_64");
    assert.deepEqual(sys.layout, new DefaultSystemAllocator(FIRECRACKER_X86_64).layout);
    // Firecracker has no port allocator.
    assert.equal(sys.pio, undefined);
    assert.equal(sys.pioAddressCallback(), undefined);
    assert.equal(sys.mmio32.base, 0xc000_1000n);
    assert.equal(sys.mmio32.end, 0xeebf_ffffn);
    assert.equal(sys.mmio64!.base, 256n << 30n);
    assert.equal(sys.mmio64!.size, 256n << 30n);
    assert.equal(sys.pastMmio64!.base, 512n << 30n);
    assert.equal(sys.pastMmio64!.size, 512n << 30n);
    assert.deepEqual([sys.systemMemory!.base, sys.systemMemory!.end], [0x9_fc00n, 0xd_ffffn]);
    assert.deepEqual([sys.legacyIrq.first, sys.legacyIrq.last], [5, 23]);
    assert.deepEqual([sys.msi.first, sys.msi.last], [24, 4095]);
    assert.deepEqual([sys.instanceId.first, sys.instanceId.last], [0, 0xffff_ffff]);
    assert.deepEqual(sys.reservations(), []);
    // First allocations land where Firecracker's would: devices from 0xc000_1000.
    const mmio = sys.mmioAddressCallback();
    assert.deepEqual(mmio({ action: "allocate", owner: "blk", size: 0x1000n }), r(0xc000_1000, 0xc000_1fff));
    assert.deepEqual(mmio({ action: "allocate", owner: "nvme", size: 0x4000n, mmio64: true }), r(256n << 30n, (256n << 30n) + 0x3fffn));
    assert.deepEqual(mmio({ action: "allocate", owner: "pmem", size: 0x20_0000n, alignment: 0x20_0000n, pool: "pastMmio64" }), r(512n << 30n, (512n << 30n) + 0x1f_ffffn));
    // vmgenid: 16 bytes, 8-byte aligned, LastMatch in system memory: right below the RSDP.
    assert.deepEqual(mmio({ action: "allocate", owner: "vmgenid", size: 16n, alignment: 8n, pool: "systemMemory", placement: "last" }), r(0xd_fff0, 0xd_ffff));
    assert.equal(sys.irqCallback()({ action: "allocate", owner: "blk" }), 5);
    assert.equal(sys.irqCallback()({ action: "allocate", owner: "blk", pool: "msi" }), 24);
    assert.equal(sys.deviceIdCallback()({ action: "allocate", owner: "blk" }), 0);
    sys.checkValid();
  });

  it("builds the PC preset with its reservations", () => {
    const sys = new DefaultSystemAllocator(PC_X86_64);
    assert.equal(sys.name, "pc-x86_64");
    assert.equal(sys.mmio32.find(0xfec0_0010)!.owner, "ioapic");
    assert.equal(sys.mmio32.find(0xfee0_0000)!.owner, "lapic");
    assert.equal(sys.mmio32.find(0xb000_0000)!.owner, "pci-mmconfig");
    assert.equal(sys.legacyIrq.ownerOf(8), "rtc");
    assert.equal(sys.legacyIrq.ownerOf(16), "pci-intx");
    // The first 32-bit BAR goes to the start of the PCI hole, right after MMCONFIG; I/O BARs from 0xc000.
    assert.deepEqual(sys.mmioAddressCallback()({ action: "allocate", owner: "gpu", size: 0x100_0000n, alignment: 0x100_0000n }), r(0xc000_0000, 0xc0ff_ffff));
    assert.deepEqual(sys.pioAddressCallback()!({ action: "allocate", owner: "nic", size: 0x20n, alignment: 0x20n }), r(0xc000, 0xc01f));
    // IRQs skip the reserved ISA lines and the PIRQ lines.
    const irqs = Array.from({ length: 6 }, () => sys.irqCallback()({ action: "allocate", owner: "x" }));
    assert.deepEqual(irqs, [5, 6, 10, 11, 13, 14]);
    sys.checkValid();
  });

  it("rejects a bad layout naming the field, and accepts layouts without optional pools", () => {
    assert.throws(() => new DefaultSystemAllocator({ ...SMALL, mmio32: { base: 0x1000, size: 0 } }), code("InvalidSize", /^layout\.mmio32\.size/));
    assert.throws(() => new DefaultSystemAllocator({ ...SMALL, reserved: [{ pool: "pio", start: 0, size: 1, owner: "x" }] }), code("OutOfRange", /^layout\.reserved\[0\]/));
    assert.throws(() => new DefaultSystemAllocator(null as unknown as SystemLayout), code("InvalidArgument", /^layout must be an object/));
    const sys = new DefaultSystemAllocator(NO_OPTIONAL);
    assert.equal(sys.name, undefined);
    assert.equal(sys.pio, undefined);
    assert.equal(sys.mmio64, undefined);
    assert.equal(sys.pioAddressCallback(), undefined);
    assert.equal(sys.hasPool("pio"), false);
    assert.equal(sys.hasPool("mmio64"), false);
    assert.equal(sys.hasPool("mmio32"), true);
    assert.equal(sys.hasPool("instanceId"), true);
    assert.equal(sys.pool("pio"), undefined);
    assert.equal(sys.hasPool("toString" as PoolName), false);
    assert.equal(sys.instanceId.last, 0xffff_ffff);
    sys.checkValid();
  });

  it("exposes a frozen canonical layout", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    assert.ok(Object.isFrozen(sys.layout) && Object.isFrozen(sys.layout.reserved) && Object.isFrozen(sys.layout.mmio32));
    assert.deepEqual(sys.layout.mmio64, { base: "0x100000000", size: "0x1000" });
    assert.deepEqual(sys.layout.instanceId, { first: 0, last: 15 });
  });

  it("implements the SystemAllocator interface with stable callbacks", () => {
    const sys: SystemAllocator = new DefaultSystemAllocator(SMALL);
    assert.equal(sys.deviceIdCallback(), sys.deviceIdCallback());
    assert.equal(sys.irqCallback(), sys.irqCallback());
    assert.equal(sys.pioAddressCallback(), sys.pioAddressCallback());
    assert.equal(sys.mmioAddressCallback(), sys.mmioAddressCallback());
    for (const f of [sys.deviceIdCallback(), sys.irqCallback(), sys.pioAddressCallback(), sys.mmioAddressCallback()]) assert.equal(typeof f, "function");
  });
});

describe("DefaultSystemAllocator: read-only pool views", () => {
  it("show the live pools and offer no way to change them", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const view = sys.mmio32;
    const ids = sys.msi;
    assert.equal(sys.pool("mmio32"), view);
    assert.equal(sys.pool("msi"), ids);
    assert.throws(() => sys.pool("bogus" as PoolName), code("InvalidArgument", /^name must be one of/));
    for (const v of [view, ids, sys.pio!, sys.mmio64!, sys.legacyIrq, sys.instanceId]) {
      assert.ok(Object.isFrozen(v));
      for (const m of ["allocate", "free", "allocateId", "allocateIdAt", "freeId", "releaseOwner", "freeOwner"]) assert.equal(m in v, false, m);
    }
    assert.equal(view.pool, "mmio32");
    assert.equal(view.allocationCount, 0);
    const got = sys.mmioAddressCallback()({ action: "allocate", owner: "a", size: 0x100n })!;
    sys.irqCallback()({ action: "allocate", owner: "a", pool: "msi" });
    assert.equal(view.allocationCount, 1);
    assert.equal(view.allocatedSize, 0x100n);
    assert.equal(view.availableSize, 0xf00n);
    assert.deepEqual(view.range, r(0x1000, 0x1fff));
    assert.deepEqual(view.find(0x1010), { range: got, owner: "a" });
    assert.equal(view.isAllocated(got), true);
    assert.deepEqual(view.allocations(), [{ range: got, owner: "a" }]);
    assert.deepEqual(view.freeRanges(), [r(0x1100, 0x1fff)]);
    assert.deepEqual(view.allocationsOf("a"), [got]);
    assert.deepEqual(view.owners(), ["a"]);
    assert.equal(view.toJSON().format, "vm-allocator/address-allocator");
    assert.deepEqual([ids.first, ids.last, ids.allocatedCount, ids.availableCount], [24, 40, 1, 16]);
    assert.equal(ids.isAllocated(24), true);
    assert.equal(ids.ownerOf(24n), "a");
    assert.deepEqual(ids.idsOf("a"), [24]);
    assert.deepEqual(ids.allocatedIds(), [24]);
    assert.equal(ids.toJSON().format, "vm-allocator/id-allocator");
    // A clone is independent of the pool it came from.
    const copy = view.clone();
    copy.free(got);
    const idCopy = ids.clone();
    idCopy.freeId(24);
    assert.equal(view.allocationCount, 1);
    assert.equal(ids.allocatedCount, 1);
    sys.checkValid();
  });
});

describe("DefaultSystemAllocator: id callbacks", () => {
  it("allocate the lowest free id or a fixed one, and free only with the right owner", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const dev = sys.deviceIdCallback();
    assert.equal(dev({ action: "allocate", owner: "blk" }), 0);
    assert.equal(dev({ action: "allocate", owner: "net", fixed: 7 }), 7);
    assert.equal(dev({ action: "allocate", owner: "net" }), 1);
    failsCleanly(sys, () => dev({ action: "allocate", owner: "x", fixed: 7 }), "Overlap", /^instance id 7 is already held by net$/, "net");
    holdsNothing(sys, () => dev({ action: "allocate", owner: "x", fixed: 16 }));
    failsCleanly(sys, () => dev({ action: "free", owner: "net", id: 0 }), "InvalidArgument", /^instance id 0 is held by blk, not net$/, "blk");
    failsCleanly(sys, () => dev({ action: "free", owner: "net", id: 3 }), "NeverAllocated", /^instance id 3 was never allocated$/);
    failsCleanly(sys, () => dev({ action: "free", owner: "net", id: 99 }), "OutOfRange");
    assert.equal(dev({ action: "free", owner: "net", id: 7 }), 7);
    failsCleanly(sys, () => dev({ action: "free", owner: "net", id: 7 }), "AlreadyReleased", /^instance id 7 was already released$/);
    assert.deepEqual(sys.allocationsOf("net").map(show), ["instanceId 1 net"]);
    sys.checkValid();
  });

  it("route IRQs to the legacy and MSI pools", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const irq = sys.irqCallback();
    assert.equal(irq({ action: "allocate", owner: "a" }), 5);
    assert.equal(irq({ action: "allocate", owner: "a", pool: "legacy" }), 6);
    assert.equal(irq({ action: "allocate", owner: "a", pool: "msi" }), 24);
    assert.equal(irq({ action: "allocate", owner: "a", pool: "msi", fixed: 30 }), 30);
    holdsNothing(sys, () => irq({ action: "allocate", owner: "a", fixed: 30 }));
    failsCleanly(sys, () => irq({ action: "free", owner: "a", id: 24 }), "OutOfRange", /^\[irq 24\] is outside the legacy IRQ pool/);
    assert.equal(irq({ action: "free", owner: "a", id: 24, pool: "msi" }), 24);
    failsCleanly(sys, () => irq({ action: "free", owner: "a", id: 24, pool: "msi" }), "AlreadyReleased", /^MSI GSI 24 was already released$/);
    for (let i = 7; i <= 12; i++) irq({ action: "allocate", owner: "b" });
    failsCleanly(sys, () => irq({ action: "allocate", owner: "c" }), "ResourceNotAvailable", /^legacy IRQ pool: no free id in \[irq 5-12\]$/);
    assert.deepEqual(sys.legacyIrq.idsOf("a"), [5, 6]);
    assert.deepEqual(sys.msi.idsOf("a"), [30]);
  });

  it("reject malformed parameters without changing anything", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const irq = sys.irqCallback();
    const dev = sys.deviceIdCallback();
    const bad = (p: unknown) => p as IdAllocateParams;
    failsCleanly(sys, () => irq(bad(null)), "InvalidArgument", /^params must be an object/);
    failsCleanly(sys, () => irq(bad({ action: "take", owner: "a" })), "InvalidArgument", /^params\.action must be "allocate" or "free", got "take"/);
    failsCleanly(sys, () => irq(bad({ action: "allocate", owner: "" })), "InvalidArgument", /^params\.owner must be a non-empty string/);
    failsCleanly(sys, () => irq(bad({ action: "allocate" })), "InvalidArgument", /^params\.owner/);
    failsCleanly(sys, () => irq(bad({ action: "allocate", owner: "a", pool: "gsi" })), "InvalidArgument", /^params\.pool must be "legacy" or "msi", got "gsi"/);
    failsCleanly(sys, () => irq(bad({ action: "allocate", owner: "a", fixed: -1 })), "InvalidArgument", /^params\.fixed must be/);
    failsCleanly(sys, () => irq(bad({ action: "free", owner: "a", id: 1.5 })), "InvalidArgument", /^params\.id must be/);
    failsCleanly(sys, () => dev(bad({ action: "allocate", owner: "a", pool: "msi" })), "InvalidArgument", /^params\.pool is only for the IRQ callback/);
  });
});

describe("DefaultSystemAllocator: address callbacks", () => {
  it("allocate ports first fit with alignment, window and fixed placement", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const pio = sys.pioAddressCallback()!;
    assert.deepEqual(pio({ action: "allocate", owner: "a", size: 3n }), r(0x100, 0x102));
    assert.deepEqual(pio({ action: "allocate", owner: "a", size: 8n, alignment: 8n }), r(0x108, 0x10f));
    assert.deepEqual(pio({ action: "allocate", owner: "b", size: 4n, window: { min: 0x180n, max: 0x1ffn } }), r(0x180, 0x183));
    assert.deepEqual(pio({ action: "allocate", owner: "b", size: 2n, fixed: 0x103n }), r(0x103, 0x104));
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, fixed: 0x106n }), "Overlap", /^\[io 0x106-0x109\] conflicts with a \[io 0x108-0x10f\]$/, "a");
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, fixed: 0x1fen }), "OutOfRange", /\[io 0x1fe-0x201\] is outside pool \[io 0x100-0x1ff\]/);
    holdsNothing(sys, () => pio({ action: "allocate", owner: "c", size: 4n, fixed: 0x20n }));
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, fixed: 0xfen }), "OutOfRange", /^\[io 0xfe-0x101\] is outside the port I\/O pool \[io 0x100-0x1ff\]$/);
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, fixed: 0x102n, alignment: 4n }), "UnalignedAddress");
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 0x100n }), "ResourceNotAvailable", /in pool \[io 0x100-0x1ff\]/);
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 0n }), "InvalidSize");
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, alignment: 3n }), "InvalidAlignment");
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, mmio64: true }), "InvalidArgument", /for MMIO ranges only/);
    failsCleanly(sys, () => pio({ action: "allocate", owner: "c", size: 4n, window: { min: 0x10n, max: 0x1n } }), "InvalidRange");
    assert.deepEqual(sys.allocationsOf("b").map(show), ["pio [mem 0x103-0x104] b", "pio [mem 0x180-0x183] b"]);
    sys.checkValid();
  });

  it("free exactly an allocation of the named owner", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const pio = sys.pioAddressCallback()!;
    const mmio = sys.mmioAddressCallback();
    const a = pio({ action: "allocate", owner: "a", size: 8n })!;
    const m = mmio({ action: "allocate", owner: "m", size: 0x10n, mmio64: true })!;
    failsCleanly(sys, () => pio({ action: "free", owner: "b", range: a }), "InvalidArgument", /^\[io 0x100-0x107\] is held by a, not b$/, "a");
    failsCleanly(sys, () => pio({ action: "free", owner: "a", range: r(0x100, 0x103) }), "InvalidRange", /^\[io 0x100-0x103\] is not an allocation: it overlaps a \[io 0x100-0x107\]/);
    failsCleanly(sys, () => pio({ action: "free", owner: "a", range: r(0x108, 0x10f) }), "NeverAllocated");
    failsCleanly(sys, () => pio({ action: "free", owner: "a", range: r(0x1000, 0x1007) }), "OutOfRange");
    failsCleanly(sys, () => pio({ action: "free", owner: "a", range: { start: 5n, end: 1n } as RangeInclusive }), "InvalidRange");
    failsCleanly(sys, () => pio({ action: "free", owner: "a" } as unknown as AddrAllocateParams), "InvalidArgument", /^params\.range must be/);
    failsCleanly(sys, () => mmio({ action: "free", owner: "a", range: a }), "OutOfRange", /^\[mem 0x100-0x107\] is outside the MMIO pools \[mem 0x1000-0x1fff\] and \[mem 0x100000000-0x100000fff\]$/);
    assert.deepEqual(pio({ action: "free", owner: "a", range: a }), a);
    failsCleanly(sys, () => pio({ action: "free", owner: "a", range: a }), "NeverAllocated");
    // A plain { start, end } works as well as a RangeInclusive.
    assert.deepEqual(mmio({ action: "free", owner: "m", range: { start: m.start, end: m.end } as RangeInclusive }), m);
    assert.deepEqual(sys.holdings(), []);
    sys.checkValid();
  });

  it("place MMIO in 32-bit space by default and in 64-bit space with mmio64", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const mmio = sys.mmioAddressCallback();
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x100n }), r(0x1000, 0x10ff));
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x100n, mmio64: true }), r(FOUR_GIB, FOUR_GIB + 0xffn));
    // A fixed address picks the pool containing it, whatever mmio64 says (a device manager moves ranges so).
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x10n, fixed: FOUR_GIB + 0x800n }), r(FOUR_GIB + 0x800n, FOUR_GIB + 0x80fn));
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x10n, fixed: 0x1800n, mmio64: true }), r(0x1800, 0x180f));
    holdsNothing(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, fixed: 0x3000n }));
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, fixed: 0xff8n }), "OutOfRange", /is outside the MMIO pools/);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, allowFallback: true }), "InvalidArgument", /allowFallback requires params\.mmio64/);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, mmio64: "yes" } as unknown as AddrAllocateParams), "InvalidArgument", /^params\.mmio64 must be a boolean/);
    assert.deepEqual(mmio({ action: "allocate", owner: "w", size: 0x10n, window: { min: 0x1f00n, max: 0x1fffn } }), r(0x1f00, 0x1f0f));
    // Naming a pool: the layout must have it, and it must agree with mmio64.
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, pool: "pastMmio64" }), "ResourceNotAvailable", /^no past-64-bit MMIO pool \(pastMmio64\) in this layout$/);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, pool: "io" } as unknown as AddrAllocateParams), "InvalidArgument", /^params\.pool must be one of "systemMemory", "mmio32", "mmio64", "pastMmio64", got "io"$/);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, pool: "mmio32", mmio64: true }), "InvalidArgument", /^params\.mmio64 is true but params\.pool is "mmio32"; give one$/);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, placement: "middle" } as unknown as AddrAllocateParams), "InvalidArgument", /^params\.placement must be "first" or "last", got "middle"$/);
    failsCleanly(sys, () => sys.pioAddressCallback()!({ action: "allocate", owner: "a", size: 1n, pool: "mmio32" }), "InvalidArgument", /^params\.pool is for MMIO ranges only$/);
    // pool "mmio64" is mmio64: true; placement "last" takes the highest fitting address, aligned.
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x10n, pool: "mmio64", placement: "last" }), r(FOUR_GIB + 0xff0n, FOUR_GIB + 0xfffn));
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x10n, alignment: 0x100n, placement: "last" }), r(0x1e00, 0x1e0f));
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x10n, pool: "mmio32" }), r(0x1100, 0x110f));
    assert.deepEqual(sys.pioAddressCallback()!({ action: "allocate", owner: "a", size: 1n, placement: "last" }), r(0x1ff, 0x1ff));
  });

  it("fall back from a full 64-bit pool to 32-bit space only when allowed", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const mmio = sys.mmioAddressCallback();
    assert.deepEqual(mmio({ action: "allocate", owner: "big", size: 0xf00n, mmio64: true }), r(FOUR_GIB, FOUR_GIB + 0xeffn));
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "x", size: 0x200n, mmio64: true }), "ResourceNotAvailable", /in pool \[mem 0x100000000-0x100000fff\]$/);
    assert.deepEqual(mmio({ action: "allocate", owner: "x", size: 0x200n, mmio64: true, allowFallback: true }), r(0x1000, 0x11ff));
    // Still fits in 64-bit space: no fallback happens.
    assert.deepEqual(mmio({ action: "allocate", owner: "y", size: 0x100n, mmio64: true, allowFallback: true }), r(FOUR_GIB + 0xf00n, FOUR_GIB + 0xfffn));
    mmio({ action: "allocate", owner: "z", size: 0xe00n });
    failsCleanly(
      sys,
      () => mmio({ action: "allocate", owner: "x", size: 0x200n, mmio64: true, allowFallback: true }),
      "ResourceNotAvailable",
      /pool \[mem 0x100000000-0x100000fff\]; falling back to 32-bit MMIO: .*pool \[mem 0x1000-0x1fff\]/,
    );
    sys.checkValid();
  });

  it("fall back when the layout has no 64-bit pool, and refuse without allowFallback", () => {
    const sys = new DefaultSystemAllocator(NO_OPTIONAL);
    const mmio = sys.mmioAddressCallback();
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "x", size: 0x10n, mmio64: true }), "ResourceNotAvailable", /no 64-bit MMIO pool in this layout/);
    assert.deepEqual(mmio({ action: "allocate", owner: "x", size: 0x10n, mmio64: true, allowFallback: true }), r(0x1000, 0x100f));
  });

  it("never hand out or free reserved space", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    sys.reserve("mmio32", { start: 0x1000, size: 0x800 }, "firmware");
    sys.reserve("legacyIrq", 5, "rtc");
    const mmio = sys.mmioAddressCallback();
    assert.deepEqual(mmio({ action: "allocate", owner: "a", size: 0x100n }), r(0x1800, 0x18ff));
    assert.equal(sys.irqCallback()({ action: "allocate", owner: "a" }), 6);
    failsCleanly(sys, () => mmio({ action: "allocate", owner: "a", size: 0x10n, fixed: 0x17f8n }), "Overlap", /conflicts with firmware \[mem 0x1000-0x17ff\]/, "firmware");
    failsCleanly(sys, () => mmio({ action: "free", owner: "firmware", range: r(0x1000, 0x17ff) }), "InvalidArgument", /is reserved by firmware, not allocated; use unreserve or releaseAll/, "firmware");
    failsCleanly(sys, () => sys.irqCallback()({ action: "free", owner: "rtc", id: 5 }), "InvalidArgument", /^\[irq 5\] is reserved by rtc, not allocated/, "rtc");
    failsCleanly(sys, () => sys.irqCallback()({ action: "allocate", owner: "x", fixed: 5 }), "Overlap", /^\[irq 5\] is already reserved by rtc$/, "rtc");
    // With allowReserved, a fixed request inside a reservation uses it, once.
    assert.equal(sys.irqCallback()({ action: "allocate", owner: "x", fixed: 5, allowReserved: true }), 5);
    failsCleanly(sys, () => sys.irqCallback()({ action: "allocate", owner: "y", fixed: 5, allowReserved: true }), "Overlap", /^\[irq 5\] \(reserved by rtc\) is held by x, which does not share it$/, "x");
  });
});

describe("DefaultSystemAllocator: reservations", () => {
  it("reserve ranges and ids in every accepted form and report them", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    assert.deepEqual(sys.reserve("pio", { start: 0x1f8, end: 0x1ff }, "com1").map(show), ["pio [mem 0x1f8-0x1ff] com1 R"]);
    assert.deepEqual(sys.reserve("mmio32", r(0x1000, 0x1fff), "fw").map(show), ["mmio32 [mem 0x1000-0x1fff] fw R"]);
    assert.deepEqual(sys.reserve("mmio64", { start: "0x1_0000_0800", size: 0x800n }, "fw").map(show), ["mmio64 [mem 0x100000800-0x100000fff] fw R"]);
    assert.deepEqual(sys.reserve("msi", { start: 30, end: 32 }, "ioapic2").map(show), ["msi 30 ioapic2 R", "msi 31 ioapic2 R", "msi 32 ioapic2 R"]);
    assert.deepEqual(sys.reserve("instanceId", 0n, "root").map(show), ["instanceId 0 root R"]);
    assert.deepEqual(sys.reserve("legacyIrq", { start: 6, size: 2 }, "isa").map(show), ["legacyIrq 6 isa R", "legacyIrq 7 isa R"]);
    assert.equal(sys.reservations().length, 9);
    assert.deepEqual(sys.owners(), ["com1", "fw", "ioapic2", "isa", "root"]);
    assert.equal(sys.deviceIdCallback()({ action: "allocate", owner: "d" }), 1);
    // Nothing is left in mmio32: the reservation covers it.
    failsCleanly(sys, () => sys.mmioAddressCallback()({ action: "allocate", owner: "d", size: 1n }), "ResourceNotAvailable");
    sys.checkValid();
  });

  it("conflict with what is held, before or after other allocations, naming the holder", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const got = sys.mmioAddressCallback()({ action: "allocate", owner: "virtio-blk@0", size: 0x100n })!;
    failsCleanly(sys, () => sys.reserve("mmio32", { start: 0x10f0, size: 0x20 }, "fw"), "Overlap", /^\[mem 0x10f0-0x110f\] conflicts with virtio-blk@0 \[mem 0x1000-0x10ff\]$/, "virtio-blk@0");
    sys.reserve("mmio32", { start: got.end + 1n, size: 0x20 }, "fw");
    failsCleanly(sys, () => sys.reserve("mmio32", { start: 0x1100, size: 1 }, "other"), "Overlap", /^\[mem 0x1100-0x1100\] conflicts with fw \[mem 0x1100-0x111f\]$/, "fw");
    sys.pioAddressCallback()!({ action: "allocate", owner: "uart", size: 8n });
    failsCleanly(sys, () => sys.reserve("pio", { start: 0x104, size: 8 }, "x"), "Overlap", /^\[io 0x104-0x10b\] conflicts with uart \[io 0x100-0x107\]$/, "uart");
    sys.reserve("instanceId", 3, "x");
    failsCleanly(sys, () => sys.reserve("instanceId", { start: 2, end: 4 }, "y"), "Overlap", /^instance id 3 is already reserved by x$/, "x");
  });

  it("limit one id reservation to MAX_ID_RESERVATION ids, and snapshot longer runs in pieces", () => {
    const sys = new DefaultSystemAllocator(FIRECRACKER_X86_64);
    failsCleanly(sys, () => sys.reserve("instanceId", { start: 0, size: MAX_ID_RESERVATION + 1 }, "x"), "InvalidArgument", /^range \[id 0-65536\] covers 65537 ids; an id reservation covers at most 65536$/);
    assert.equal(sys.reserve("instanceId", { start: 0, size: MAX_ID_RESERVATION }, "x").length, MAX_ID_RESERVATION);
    sys.reserve("instanceId", { start: MAX_ID_RESERVATION, size: 10 }, "x");
    const snap = sys.toJSON();
    assert.deepEqual(snap.reserved.filter((e) => e.pool === "instanceId"), [
      { pool: "instanceId", start: 0, end: MAX_ID_RESERVATION - 1, owner: "x" },
      { pool: "instanceId", start: MAX_ID_RESERVATION, end: MAX_ID_RESERVATION + 9, owner: "x" },
    ]);
    const copy = DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(snap)));
    assert.equal(copy.reservations().length, sys.reservations().length);
    assert.equal(copy.deviceIdCallback()({ action: "allocate", owner: "d" }), MAX_ID_RESERVATION + 10);
  });

  it("reject bad arguments", () => {
    const sys = new DefaultSystemAllocator(NO_OPTIONAL);
    failsCleanly(sys, () => sys.reserve("pio", { start: 0, size: 1 }, "x"), "InvalidArgument", /^this layout has no pio pool$/);
    failsCleanly(sys, () => sys.reserve("io" as PoolName, { start: 0, size: 1 }, "x"), "InvalidArgument", /^pool must be one of "pio", "systemMemory", "mmio32"/);
    failsCleanly(sys, () => sys.reserve("mmio32", { start: 0x1000, size: 1 }, ""), "InvalidArgument", /^owner must be a non-empty string/);
    failsCleanly(sys, () => sys.reserve("mmio32", 0x1000, "x"), "InvalidArgument", /^range needs end or size/);
    failsCleanly(sys, () => sys.reserve("mmio32", { start: 0x1000, end: 0x1001, size: 2 }, "x"), "InvalidArgument", /both end and size/);
    failsCleanly(sys, () => sys.reserve("mmio32", { start: 0x800, size: 0x1000 }, "x"), "OutOfRange", /^range \[mem 0x800-0x17ff\] is outside the mmio32 pool \[mem 0x1000-0x1fff\]$/);
    failsCleanly(sys, () => sys.reserve("msi", { start: 60, size: 2 }, "x"), "OutOfRange", /^range \[irq 60-61\] is outside the msi pool/);
    failsCleanly(sys, () => sys.reserve("msi", { start: 42, end: 41 }, "x"), "InvalidRange");
    failsCleanly(sys, () => sys.reserve("msi", { start: 42, size: 0 }, "x"), "InvalidSize");
    failsCleanly(sys, () => sys.reserve("msi", { start: 42, owner: "y" } as never, "x"), "InvalidArgument");
    failsCleanly(sys, () => sys.reserve("msi", { start: "42" }, "x"), "InvalidArgument", /^range\.start must be/);
    failsCleanly(sys, () => sys.reserve("msi", null as never, "x"), "InvalidArgument", /^range\.start must be/);
  });

  it("reserve an id range all or nothing", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    sys.irqCallback()({ action: "allocate", owner: "a", pool: "msi", fixed: 33 });
    failsCleanly(sys, () => sys.reserve("msi", { start: 30, end: 35 }, "x"), "Overlap", /^MSI GSI 33 is already held by a$/, "a");
    assert.equal(sys.msi.allocatedCount, 1);
  });

  it("unreserve exactly a reservation", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    sys.reserve("mmio32", { start: 0x1000, size: 0x100 }, "fw");
    sys.reserve("msi", { start: 30, end: 32 }, "fw");
    const m = sys.mmioAddressCallback()({ action: "allocate", owner: "dev", size: 0x10n })!;
    const irq = sys.irqCallback()({ action: "allocate", owner: "dev", pool: "msi" })!;
    failsCleanly(sys, () => sys.unreserve("mmio32", { start: 0x1000, size: 0x80 }), "InvalidRange", /overlaps fw \[mem 0x1000-0x10ff\]/);
    failsCleanly(sys, () => sys.unreserve("mmio32", m), "InvalidArgument", /^\[mem 0x1100-0x110f\] is allocated to dev, not reserved/, "dev");
    failsCleanly(sys, () => sys.unreserve("mmio32", { start: 0x1800, size: 0x10 }), "NeverAllocated");
    failsCleanly(sys, () => sys.unreserve("msi", { start: 30, end: 33 }), "NeverAllocated", /^MSI GSI 33 is not reserved$/);
    failsCleanly(sys, () => sys.unreserve("msi", irq), "InvalidArgument", /^MSI GSI 24 is allocated to dev, not reserved$/, "dev");
    failsCleanly(sys, () => sys.unreserve("pio", { start: 0x100, size: 1 }), "NeverAllocated", /\[io 0x100-0x100\]|\[io 0x100\]/);
    assert.deepEqual(sys.unreserve("msi", 31).map(show), ["msi 31 fw R"]);
    assert.deepEqual(sys.unreserve("mmio32", r(0x1000, 0x10ff)).map(show), ["mmio32 [mem 0x1000-0x10ff] fw R"]);
    assert.deepEqual(sys.reservations().map(show), ["msi 30 fw R", "msi 32 fw R"]);
    // Unreserved space is handed out again.
    assert.deepEqual(sys.mmioAddressCallback()({ action: "allocate", owner: "dev", size: 0x100n }), r(0x1000, 0x10ff));
    sys.checkValid();
  });
});

describe("DefaultSystemAllocator: owners", () => {
  it("list and release everything an owner holds across pools", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const owner = "virtio-net@1";
    sys.deviceIdCallback()({ action: "allocate", owner: "virtio-net" });
    const p = sys.pioAddressCallback()!({ action: "allocate", owner, size: 0x20n })!;
    const m32 = sys.mmioAddressCallback()({ action: "allocate", owner, size: 0x100n })!;
    const m64 = sys.mmioAddressCallback()({ action: "allocate", owner, size: 0x100n, mmio64: true })!;
    sys.irqCallback()({ action: "allocate", owner });
    sys.irqCallback()({ action: "allocate", owner, pool: "msi" });
    sys.irqCallback()({ action: "allocate", owner, pool: "msi" });
    sys.reserve("legacyIrq", 12, owner);
    sys.irqCallback()({ action: "allocate", owner: "other" });
    const held = sys.allocationsOf(owner);
    assert.deepEqual(held.map(show), [
      `pio ${p.toString()} ${owner}`,
      `mmio32 ${m32.toString()} ${owner}`,
      `mmio64 ${m64.toString()} ${owner}`,
      `legacyIrq 5 ${owner}`,
      `legacyIrq 12 ${owner} R`,
      `msi 24 ${owner}`,
      `msi 25 ${owner}`,
    ]);
    assert.deepEqual(sys.owners(), ["other", "virtio-net", "virtio-net@1"]);
    assert.deepEqual(sys.releaseAll(owner), held);
    assert.deepEqual(sys.allocationsOf(owner), []);
    assert.deepEqual(sys.owners(), ["other", "virtio-net"]);
    assert.deepEqual(sys.releaseAll("nobody"), []);
    assert.deepEqual(sys.holdings().map(show), ["legacyIrq 6 other", "instanceId 0 virtio-net"]);
    assert.throws(() => sys.allocationsOf(""), code("InvalidArgument", /^owner must be a non-empty string/));
    assert.throws(() => sys.releaseAll(5 as unknown as string), code("InvalidArgument"));
    sys.checkValid();
  });
});

// ---- model-based property test ------------------------------------------------------------------

interface MItem {
  pool: PoolName;
  start: bigint;
  end: bigint;
  owner: string;
  reserved: boolean;
  /** A fixed request that sits inside a reservation (a use of it). */
  use?: boolean;
}

const OWNERS = ["a", "b", "c"] as const;
const BOUNDS: Record<PoolName, [bigint, bigint]> = {
  pio: [0x100n, 0x1ffn],
  // Far from the others, so that a fixed offset from one never lands in another.
  systemMemory: [0x10_0000n, 0x10_0fffn],
  mmio32: [0x1000n, 0x1fffn],
  mmio64: [FOUR_GIB, FOUR_GIB + 0xfffn],
  pastMmio64: [FOUR_GIB + 0x10_0000n, FOUR_GIB + 0x10_0fffn],
  legacyIrq: [5n, 12n],
  msi: [24n, 40n],
  instanceId: [0n, 15n],
};
const ID_POOL = { instanceId: "device", legacyIrq: "legacy", msi: "msi" } as const;

/** An obviously correct (quadratic) model of the pools: a list of held items. */
class Model {
  items: MItem[] = [];

  inPool(pool: PoolName): MItem[] {
    return this.items.filter((i) => i.pool === pool).sort((x, y) => (x.start < y.start ? -1 : 1));
  }
  isFree(pool: PoolName, start: bigint, end: bigint): boolean {
    return this.items.every((i) => i.pool !== pool || i.end < start || end < i.start);
  }
  /** The reservation wholly containing [start, end], if any. */
  reservationAround(pool: PoolName, start: bigint, end: bigint): MItem | undefined {
    return this.items.find((i) => i.pool === pool && i.reserved && i.start <= start && end <= i.end);
  }
  /** True when some use overlaps [start, end]. */
  isUsed(pool: PoolName, start: bigint, end: bigint): boolean {
    return this.items.some((i) => i.pool === pool && i.use === true && !(i.end < start || end < i.start));
  }
  holder(pool: PoolName, start: bigint, end: bigint): MItem | undefined {
    return this.inPool(pool).find((i) => !(i.end < start || end < i.start));
  }
  firstFit(pool: PoolName, size: bigint, align: bigint, lo: bigint, hi: bigint): bigint | undefined {
    const [base, last] = BOUNDS[pool];
    lo = lo > base ? lo : base;
    hi = hi < last ? hi : last;
    const tryGap = (g0: bigint, g1: bigint): bigint | undefined => {
      const from = g0 > lo ? g0 : lo;
      const s = ((from + align - 1n) / align) * align;
      return s + size - 1n <= (g1 < hi ? g1 : hi) ? s : undefined;
    };
    let cursor = base;
    for (const h of this.inPool(pool)) {
      if (h.start > cursor) {
        const s = tryGap(cursor, h.start - 1n);
        if (s !== undefined) return s;
      }
      if (h.end + 1n > cursor) cursor = h.end + 1n;
    }
    return cursor <= last ? tryGap(cursor, last) : undefined;
  }
  lastFit(pool: PoolName, size: bigint, align: bigint, lo: bigint, hi: bigint): bigint | undefined {
    const [base, last] = BOUNDS[pool];
    lo = lo > base ? lo : base;
    hi = hi < last ? hi : last;
    const tryGap = (g0: bigint, g1: bigint): bigint | undefined => {
      const from = g0 > lo ? g0 : lo;
      const to = g1 < hi ? g1 : hi;
      if (to < from || to - from + 1n < size) return undefined;
      const s = ((to - size + 1n) / align) * align;
      return s >= from ? s : undefined;
    };
    // Gaps from the top down: the first that fits holds the highest placement.
    let ceiling = last;
    for (const h of this.inPool(pool).reverse()) {
      if (h.end < ceiling) {
        const s = tryGap(h.end + 1n, ceiling);
        if (s !== undefined) return s;
      }
      if (h.start === 0n) return undefined;
      if (h.start - 1n < ceiling) ceiling = h.start - 1n;
    }
    return ceiling >= base ? tryGap(base, ceiling) : undefined;
  }
  key(i: MItem): string {
    return `${i.pool} ${i.start}-${i.end} ${i.owner}${i.reserved ? " R" : ""}${i.use === true ? " U" : ""}`;
  }
  of(owner: string): string[] {
    const order = (p: PoolName) => POOL_NAMES.indexOf(p);
    return this.items
      .filter((i) => i.owner === owner)
      .flatMap((i) => (i.pool === "legacyIrq" || i.pool === "msi" || i.pool === "instanceId" ? expandIds(i) : [i]))
      .sort((x, y) => order(x.pool) - order(y.pool) || (x.start < y.start ? -1 : x.start > y.start ? 1 : 0) || Number(x.use === true) - Number(y.use === true))
      .map((i) => this.key(i));
  }
}

function expandIds(i: MItem): MItem[] {
  const out: MItem[] = [];
  for (let id = i.start; id <= i.end; id++) out.push({ ...i, start: id, end: id });
  return out;
}

const holdingKey = (h: Holding): string =>
  ("range" in h ? `${h.pool} ${h.range.start}-${h.range.end} ${h.owner}${h.reserved ? " R" : ""}` : `${h.pool} ${h.id}-${h.id} ${h.owner}${h.reserved ? " R" : ""}`) +
  (h.within !== undefined ? " U" : "");

type Op =
  | { op: "id"; pool: "instanceId" | "legacyIrq" | "msi"; owner: string; fixed: number | undefined; allowReserved: boolean }
  | {
      op: "range";
      family: "pio" | "mmio";
      owner: string;
      size: number;
      alignShift: number;
      mmio64: boolean;
      fallback: boolean;
      target: "default" | "pastMmio64" | "systemMemory";
      last: boolean;
      fixed: { slot: number; skew: number } | undefined;
      allowReserved: boolean;
      window: [number, number] | undefined;
    }
  | { op: "freeHeld"; index: number; wrongOwner: boolean }
  | { op: "reserve"; pool: PoolName; offset: number; len: number; owner: string }
  | { op: "unreserve"; index: number }
  | { op: "releaseAll"; owner: string };

const ownerArb = fc.constantFrom(...OWNERS);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    op: fc.constant("id" as const),
    pool: fc.constantFrom("instanceId" as const, "legacyIrq" as const, "msi" as const),
    owner: ownerArb,
    fixed: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.integer({ min: -1, max: 9 }), weight: 2 }),
    allowReserved: fc.boolean(),
  }),
  fc.record({
    op: fc.constant("range" as const),
    family: fc.constantFrom("pio" as const, "mmio" as const),
    owner: ownerArb,
    size: fc.integer({ min: 1, max: 0x300 }),
    alignShift: fc.integer({ min: 0, max: 9 }),
    mmio64: fc.boolean(),
    fallback: fc.boolean(),
    target: fc.oneof({ arbitrary: fc.constant("default" as const), weight: 4 }, { arbitrary: fc.constantFrom("pastMmio64" as const, "systemMemory" as const), weight: 2 }),
    last: fc.boolean(),
    // Fixed placements: mostly aligned slots near or inside the pool, sometimes off by a few bytes.
    fixed: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 3 },
      { arbitrary: fc.record({ slot: fc.oneof({ arbitrary: fc.integer({ min: -1, max: 3 }), weight: 3 }, { arbitrary: fc.integer({ min: 4, max: 0x1f }), weight: 1 }), skew: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 1 }) }), weight: 2 },
    ),
    allowReserved: fc.boolean(),
    window: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 4 },
      { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0x1000 }), fc.integer({ min: 0, max: 0x1000 })), weight: 1 },
    ),
  }),
  fc.record({ op: fc.constant("freeHeld" as const), index: fc.nat(), wrongOwner: fc.boolean() }),
  fc.record({
    op: fc.constant("reserve" as const),
    pool: fc.constantFrom(...POOL_NAMES),
    offset: fc.integer({ min: 0, max: 0x1000 }),
    len: fc.integer({ min: 1, max: 0x200 }),
    owner: ownerArb,
  }),
  fc.record({ op: fc.constant("unreserve" as const), index: fc.nat() }),
  fc.record({ op: fc.constant("releaseAll" as const), owner: ownerArb }),
);

/**
 * Applies `op` to both the allocator and the model, asserting that the allocator succeeds exactly
 * when the model says it should, with the model's result, and changes nothing when it fails.
 * Returns a description of the outcome, for comparing two allocators.
 */
function step(sys: DefaultSystemAllocator, model: Model, op: Op): string {
  const before = state(sys);
  const expectFailure = (f: () => unknown, c: string): string => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof AllocatorError, String(e));
      assert.equal(e.code, c, `${JSON.stringify(op)}: ${e.message}`);
      assert.equal(state(sys), before, `failed ${op.op} changed the allocator`);
      return `${e.code}: ${e.message}`;
    }
    assert.fail(`${JSON.stringify(op)} should have failed with ${c}`);
  };
  switch (op.op) {
    case "id": {
      const pool = op.pool;
      const cb = pool === "instanceId" ? sys.deviceIdCallback() : sys.irqCallback();
      const [lo, hi] = BOUNDS[pool];
      const base = pool === "instanceId" ? {} : { pool: ID_POOL[pool] };
      if (op.fixed !== undefined) {
        const id = BigInt(op.fixed) + lo;
        const call = () => cb({ action: "allocate", owner: op.owner, fixed: Number(id), ...(op.allowReserved ? { allowReserved: true } : {}), ...base } as IdAllocateParams);
        if (id < 0n) return expectFailure(call, "InvalidArgument");
        if (id < lo || id > hi) {
          // Outside the pool: nothing is held, nothing changes.
          assert.equal(call(), null);
          assert.equal(state(sys), before);
          return "outside";
        }
        if (op.allowReserved && model.reservationAround(pool, id, id) !== undefined) {
          if (model.isUsed(pool, id, id)) return expectFailure(call, "Overlap");
          assert.equal(call(), Number(id));
          model.items.push({ pool, start: id, end: id, owner: op.owner, reserved: false, use: true });
          return `use ${id}`;
        }
        if (!model.isFree(pool, id, id)) return expectFailure(call, "Overlap");
        assert.equal(cb({ action: "allocate", owner: op.owner, fixed: Number(id), ...base } as IdAllocateParams), Number(id));
        model.items.push({ pool, start: id, end: id, owner: op.owner, reserved: false });
        return `id ${id}`;
      }
      let want: bigint | undefined;
      for (let id = lo; id <= hi; id++) {
        if (model.isFree(pool, id, id)) {
          want = id;
          break;
        }
      }
      if (want === undefined) return expectFailure(() => cb({ action: "allocate", owner: op.owner, ...base } as IdAllocateParams), "ResourceNotAvailable");
      assert.equal(cb({ action: "allocate", owner: op.owner, ...base } as IdAllocateParams), Number(want));
      model.items.push({ pool, start: want, end: want, owner: op.owner, reserved: false });
      return `id ${want}`;
    }
    case "range": {
      // Port space is small: scale requests to it so that they fit, collide and run out alike.
      const size = BigInt(op.family === "pio" ? (op.size % 0x30) + 1 : op.size);
      const align = 1n << BigInt(op.family === "pio" ? op.alignShift % 5 : op.alignShift);
      const cb = op.family === "pio" ? sys.pioAddressCallback()! : sys.mmioAddressCallback();
      const named = op.family === "mmio" && op.target !== "default" ? op.target : undefined;
      const mmio64 = op.family === "mmio" && named === undefined && op.mmio64;
      const fallback = mmio64 && op.fallback;
      const params: {
        action: "allocate";
        owner: string;
        size: bigint;
        alignment: bigint;
        mmio64?: boolean;
        allowFallback?: boolean;
        pool?: "pastMmio64" | "systemMemory";
        placement?: "first" | "last";
        fixed?: bigint;
        allowReserved?: boolean;
        window?: { min: bigint; max: bigint };
      } = {
        action: "allocate",
        owner: op.owner,
        size,
        alignment: align,
      };
      if (mmio64) params.mmio64 = true;
      if (fallback) params.allowFallback = true;
      if (named !== undefined) params.pool = named;
      if (op.last) params.placement = "last";
      const primary: PoolName = op.family === "pio" ? "pio" : (named ?? (mmio64 ? "mmio64" : "mmio32"));
      if (op.fixed !== undefined) {
        // Fixed offsets are taken relative to the pool the request would use, and may fall outside it.
        const stride = ((size + align - 1n) / align) * align;
        const fixed = BOUNDS[primary][0] + BigInt(op.fixed.slot) * stride + BigInt(op.fixed.skew);
        if (fixed < 0n) return "skipped";
        params.fixed = fixed;
        if (op.allowReserved) params.allowReserved = true;
        const pools: PoolName[] = op.family === "pio" ? ["pio"] : ["systemMemory", "mmio32", "mmio64", "pastMmio64"];
        const pool = pools.find((p) => BOUNDS[p][0] <= fixed && fixed <= BOUNDS[p][1]);
        const end = fixed + size - 1n;
        if (pool === undefined) {
          if (pools.every((p) => end < BOUNDS[p][0] || fixed > BOUNDS[p][1])) {
            // Entirely outside every pool: nothing is held, nothing changes.
            assert.equal(cb(params), null);
            assert.equal(state(sys), before);
            return "outside";
          }
          return expectFailure(() => cb(params), "OutOfRange");
        }
        if (fixed % align !== 0n) return expectFailure(() => cb(params), "UnalignedAddress");
        if (end > BOUNDS[pool][1]) return expectFailure(() => cb(params), "OutOfRange");
        if (op.allowReserved && model.reservationAround(pool, fixed, end) !== undefined) {
          if (model.isUsed(pool, fixed, end)) return expectFailure(() => cb(params), "Overlap");
          assert.deepEqual(cb(params), r(fixed, end));
          model.items.push({ pool, start: fixed, end, owner: op.owner, reserved: false, use: true });
          return `use ${pool} ${fixed}`;
        }
        if (!model.isFree(pool, fixed, end)) return expectFailure(() => cb(params), "Overlap");
        assert.deepEqual(cb(params), r(fixed, end));
        model.items.push({ pool, start: fixed, end, owner: op.owner, reserved: false });
        return `range ${pool} ${fixed}`;
      }
      let lo = 0n;
      let hi = (1n << 64n) - 1n;
      if (op.window !== undefined) {
        lo = BOUNDS[primary][0] + BigInt(Math.min(...op.window));
        hi = BOUNDS[primary][0] + BigInt(Math.max(...op.window));
        params.window = { min: lo, max: hi };
      }
      const order: PoolName[] = fallback ? ["mmio64", "mmio32"] : [primary];
      for (const pool of order) {
        const at = op.last ? model.lastFit(pool, size, align, lo, hi) : model.firstFit(pool, size, align, lo, hi);
        if (at === undefined) continue;
        assert.deepEqual(cb(params), r(at, at + size - 1n), JSON.stringify(op));
        model.items.push({ pool, start: at, end: at + size - 1n, owner: op.owner, reserved: false });
        return `range ${pool} ${at}`;
      }
      return expectFailure(() => cb(params), "ResourceNotAvailable");
    }
    case "freeHeld": {
      if (model.items.length === 0) return "nothing held";
      const index = op.index % model.items.length;
      const item = model.items[index]!;
      const owner = op.wrongOwner ? `${item.owner}-other` : item.owner;
      const isId = item.pool === "instanceId" || item.pool === "legacyIrq" || item.pool === "msi";
      const free = (): unknown => {
        if (isId) {
          const p = item.pool as "instanceId" | "legacyIrq" | "msi";
          const cb = p === "instanceId" ? sys.deviceIdCallback() : sys.irqCallback();
          return cb({ action: "free", owner, id: Number(item.start), ...(p === "instanceId" ? {} : { pool: ID_POOL[p] }) } as IdAllocateParams);
        }
        const cb = item.pool === "pio" ? sys.pioAddressCallback()! : sys.mmioAddressCallback();
        return cb({ action: "free", owner, range: r(item.start, item.end) });
      };
      // A multi-id reservation is freed one id at a time: only its first id is tried here.
      // Freeing a reservation's exact range frees the freer's own use of it, if it has one.
      const ownUse = model.items.findIndex((u) => u.use === true && u.pool === item.pool && u.start === item.start && u.end === item.end && u.owner === owner);
      if ((item.reserved && ownUse < 0) || op.wrongOwner) return expectFailure(free, "InvalidArgument");
      const got = free();
      assert.deepEqual(got, isId ? Number(item.start) : r(item.start, item.end));
      model.items.splice(item.reserved ? ownUse : index, 1);
      return "freed";
    }
    case "reserve": {
      const [lo, hi] = BOUNDS[op.pool];
      const isId = op.pool === "instanceId" || op.pool === "legacyIrq" || op.pool === "msi";
      const span = Number(hi - lo + 1n);
      const start = lo + BigInt(op.offset % (span + 4));
      const len = BigInt(isId ? (op.len % 4) + 1 : (op.len % (span / 4)) + 1);
      const end = start + len - 1n;
      const target = { start, end };
      if (end > hi) return expectFailure(() => sys.reserve(op.pool, target, op.owner), "OutOfRange");
      if (!model.isFree(op.pool, start, end)) return expectFailure(() => sys.reserve(op.pool, target, op.owner), "Overlap");
      const got = sys.reserve(op.pool, target, op.owner);
      const item = { pool: op.pool, start, end, owner: op.owner, reserved: true };
      assert.deepEqual(got.map(holdingKey), isId ? expandIds(item).map((i) => model.key(i)) : [model.key(item)]);
      if (isId) model.items.push(...expandIds(item));
      else model.items.push(item);
      return `reserved ${start}`;
    }
    case "unreserve": {
      if (model.items.length === 0) return "nothing held";
      const index = op.index % model.items.length;
      const item = model.items[index]!;
      const target = { start: item.start, end: item.end };
      if (item.use === true) {
        // A use is not a reservation: unreserving its range is unreserving (part of) the reservation it sits in.
        const around = model.reservationAround(item.pool, item.start, item.end)!;
        const whole = around.start === item.start && around.end === item.end;
        return expectFailure(() => sys.unreserve(item.pool, target), whole ? "InvalidState" : "InvalidRange");
      }
      if (!item.reserved) return expectFailure(() => sys.unreserve(item.pool, target), "InvalidArgument");
      if (model.isUsed(item.pool, item.start, item.end)) return expectFailure(() => sys.unreserve(item.pool, target), "InvalidState");
      assert.deepEqual(sys.unreserve(item.pool, target).map(holdingKey), [model.key(item)]);
      model.items.splice(index, 1);
      return "unreserved";
    }
    case "releaseAll": {
      const usedByOthers = model.items.some(
        (i) => i.owner === op.owner && i.reserved && model.items.some((u) => u.use === true && u.owner !== op.owner && u.pool === i.pool && !(u.end < i.start || i.end < u.start)),
      );
      if (usedByOthers) return expectFailure(() => sys.releaseAll(op.owner), "InvalidState");
      const want = model.of(op.owner);
      assert.deepEqual(sys.releaseAll(op.owner).map(holdingKey), want);
      model.items = model.items.filter((i) => i.owner !== op.owner);
      return `released ${want.length}`;
    }
  }
}

function checkAgainstModel(sys: DefaultSystemAllocator, model: Model): void {
  for (const o of OWNERS) assert.deepEqual(sys.allocationsOf(o).map(holdingKey), model.of(o), `owner ${o}`);
  assert.deepEqual(sys.owners(), [...new Set(model.items.map((i) => i.owner))].sort());
  assert.equal(sys.holdings().length, model.items.reduce((n, i) => n + (i.pool === "legacyIrq" || i.pool === "msi" || i.pool === "instanceId" ? Number(i.end - i.start + 1n) : 1), 0));
  sys.checkValid();
}

describe("DefaultSystemAllocator: against a model", () => {
  it("allocates, frees, reserves and releases exactly as the model says, and failures change nothing", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 60 }), (ops) => {
        const sys = new DefaultSystemAllocator(MODEL_LAYOUT);
        const model = new Model();
        for (const op of ops) {
          step(sys, model, op);
          checkAgainstModel(sys, model);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("behaves identically after a snapshot round trip", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { minLength: 1, maxLength: 40 }), (before, after) => {
        const sys = new DefaultSystemAllocator(MODEL_LAYOUT);
        const model = new Model();
        for (const op of before) step(sys, model, op);
        const text = JSON.stringify(sys.toJSON());
        const copy = DefaultSystemAllocator.fromJSON(JSON.parse(text));
        assert.equal(JSON.stringify(copy.toJSON()), text);
        const twin = new Model();
        twin.items = model.items.map((i) => ({ ...i }));
        for (const op of after) assert.equal(step(copy, twin, op), step(sys, model, op));
        assert.equal(state(copy), state(sys));
        checkAgainstModel(copy, twin);
      }),
      { numRuns: 100 },
    );
  });
});

// ---- snapshots -----------------------------------------------------------------------------------

function busySystem(): DefaultSystemAllocator {
  const sys = new DefaultSystemAllocator(SMALL);
  sys.deviceIdCallback()({ action: "allocate", owner: "blk" });
  sys.pioAddressCallback()!({ action: "allocate", owner: "blk@0", size: 8n });
  sys.mmioAddressCallback()({ action: "allocate", owner: "blk@0", size: 0x100n });
  sys.mmioAddressCallback()({ action: "allocate", owner: "blk@0", size: 0x100n, mmio64: true });
  sys.irqCallback()({ action: "allocate", owner: "blk@0" });
  const gsi = sys.irqCallback()({ action: "allocate", owner: "blk@0", pool: "msi" })!;
  sys.irqCallback()({ action: "free", owner: "blk@0", pool: "msi", id: gsi });
  sys.reserve("msi", { start: 30, end: 32 }, "fw");
  sys.reserve("mmio32", { start: 0x1800, size: 0x100 }, "fw");
  // A use of the reservation, and a line shared by two owners.
  sys.mmioAddressCallback()({ action: "allocate", owner: "uart@1", size: 0x10n, fixed: 0x1810n, allowReserved: true });
  sys.irqCallback()({ action: "allocate", owner: "com1@2", fixed: 7, shared: true });
  sys.irqCallback()({ action: "allocate", owner: "com3@3", fixed: 7, shared: true });
  return sys;
}

describe("DefaultSystemAllocator: snapshots", () => {
  it("have the documented shape and round-trip through JSON text", () => {
    const sys = busySystem();
    const snap = sys.toJSON();
    assert.equal(snap.format, SYSTEM_ALLOCATOR_SNAPSHOT_FORMAT);
    assert.equal(snap.format, "vm-allocator/system-allocator");
    assert.equal(snap.version, 2);
    assert.deepEqual(Object.keys(snap), ["format", "version", "layout", "pools", "reserved", "claims", "uses"]);
    assert.deepEqual(snap.claims, [{ pool: "legacyIrq", id: 7, holders: ["com1@2", "com3@3"], shared: true }]);
    assert.deepEqual(snap.uses, [{ pool: "mmio32", start: "0x1810", end: "0x181f", owner: "uart@1" }]);
    assert.deepEqual(Object.keys(snap.pools), ["pio", "mmio32", "mmio64", "legacyIrq", "msi", "instanceId"]);
    assert.deepEqual(snap.layout, sys.layout);
    assert.deepEqual(snap.pools.mmio32, sys.mmio32.toJSON());
    assert.deepEqual(snap.reserved, [
      { pool: "mmio32", start: "0x1800", end: "0x18ff", owner: "fw" },
      { pool: "msi", start: 30, end: 32, owner: "fw" },
    ]);
    const text = JSON.stringify(snap);
    const copy = DefaultSystemAllocator.fromJSON(JSON.parse(text));
    assert.equal(JSON.stringify(copy), text);
    copy.checkValid();
    assert.deepEqual(copy.holdings().map(show), sys.holdings().map(show));
    // The freed GSI is remembered as released, not as never allocated.
    assert.throws(() => copy.irqCallback()({ action: "free", owner: "blk@0", pool: "msi", id: 24 }), code("AlreadyReleased"));
    // Uses and shares survive: the reservation cannot go while used, the line is still shared.
    assert.throws(() => copy.releaseAll("fw"), code("InvalidState", /in use by uart@1/, "uart@1"));
    assert.deepEqual(copy.allocationsOf("com3@3"), [{ pool: "legacyIrq", id: 7, owner: "com3@3", reserved: false, shared: true }]);
    // Independent of the original.
    copy.releaseAll("uart@1");
    copy.releaseAll("fw");
    assert.equal(sys.reservations().length, 4);
    assert.equal(sys.allocationsOf("uart@1").length, 1);
    assert.equal(JSON.stringify(sys.clone()), JSON.stringify(sys));
  });

  it("record reservations released after construction", () => {
    const sys = new DefaultSystemAllocator(PC_X86_64);
    sys.unreserve("legacyIrq", 8);
    const copy = DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(sys)));
    assert.equal(copy.legacyIrq.isAllocated(8), false);
    assert.equal(copy.layout.reserved.some((x) => x.owner === "rtc"), true, "the layout still lists what construction reserved");
    assert.equal(copy.irqCallback()({ action: "allocate", owner: "x" }), 5);
  });

  const mutations: [string, (s: Record<string, any>) => unknown, RegExp][] = [
    ["not an object", () => 5, /expected an object, got 5/],
    ["an array", () => [], /expected an object/],
    ["null", () => null, /expected an object, got null/],
    ["unknown field", (s) => ({ ...s, extra: 1 }), /unknown field "extra"/],
    ["missing field", (s) => { delete s["reserved"]; return s; }, /missing field "reserved"/],
    ["wrong format", (s) => ({ ...s, format: "vm-allocator/address-allocator" }), /format must be "vm-allocator\/system-allocator"/],
    ["wrong version", (s) => ({ ...s, version: 3 }), /unsupported version 3/],
    ["bad layout", (s) => { s["layout"]["mmio32"]["size"] = "0x0"; return s; }, /layout\.mmio32\.size must be at least 1/],
    ["layout not an object", (s) => ({ ...s, layout: "small" }), /layout must be an object/],
    ["pools not an object", (s) => ({ ...s, pools: [] }), /pools must be an object/],
    ["pool missing", (s) => { delete s["pools"]["msi"]; return s; }, /pools\.msi is missing/],
    ["unknown pool", (s) => { s["pools"]["gsi"] = s["pools"]["msi"]; return s; }, /pools has unknown field "gsi"/],
    ["pool not in layout", (s) => { delete s["layout"]["pio"]; s["layout"]["reserved"] = []; return s; }, /pools\.pio is present but the layout has no pio pool/],
    ["pool bounds differ", (s) => { s["layout"]["mmio32"]["size"] = "0x2000"; return s; }, /pools\.mmio32 covers \[mem 0x1000-0x1fff\], but the layout says \[mem 0x1000-0x2fff\]/],
    ["id pool bounds differ", (s) => { s["layout"]["msi"]["last"] = 41; return s; }, /pools\.msi covers \[irq 24-40\], but the layout says \[irq 24-41\]/],
    ["corrupt pool", (s) => { s["pools"]["mmio32"]["blocks"][0]["start"] = "0x1001"; return s; }, /^invalid system-allocator snapshot: pools\.mmio32: invalid address allocator snapshot: /],
    ["corrupt id pool", (s) => { s["pools"]["legacyIrq"]["allocated"] = [[5, 99]]; return s; }, /pools\.legacyIrq: invalid id-allocator snapshot/],
    ["range without owner", (s) => { delete s["pools"]["pio"]["blocks"][0]["owner"]; return s; }, /pools\.pio: \[io 0x100-0x107\] has no owner/],
    ["id without owner", (s) => { s["pools"]["instanceId"]["owners"] = []; return s; }, /pools\.instanceId: instance id 0 has no owner/],
    ["reserved not an array", (s) => ({ ...s, reserved: {} }), /reserved must be an array/],
    ["reservation not an object", (s) => { s["reserved"][0] = "x"; return s; }, /reserved\[0\] must be an object/],
    ["reservation without end", (s) => { delete s["reserved"][0]["end"]; return s; }, /reserved\[0\] is missing "end"/],
    ["reservation with size", (s) => { s["reserved"][0]["size"] = "0x100"; return s; }, /reserved\[0\] has unknown field "size"/],
    ["reservation not held", (s) => { s["reserved"][0]["start"] = "0x1900"; s["reserved"][0]["end"] = "0x19ff"; return s; }, /reserved\[0\]: \[mem 0x1900-0x19ff\] is not a held range of pools\.mmio32/],
    ["reservation of part of a range", (s) => { s["reserved"][0]["end"] = "0x187f"; return s; }, /is not a held range/],
    ["reservation of another owner", (s) => { s["reserved"][0]["owner"] = "blk@0"; return s; }, /reserved\[0\]: \[mem 0x1800-0x18ff\] is held by "fw", not "blk@0"/],
    ["id reservation of another owner", (s) => { s["reserved"][1]["owner"] = "blk@0"; return s; }, /reserved\[1\]: MSI GSI 30 is held by "fw", not "blk@0"/],
    ["id reservation not held", (s) => { s["reserved"][1]["end"] = 33; return s; }, /reserved\[1\]: MSI GSI 33 is not held in pools\.msi/],
    ["reservation listed twice", (s) => { s["reserved"].push(s["reserved"][0]); return s; }, /reserved\[2\]: \[mem 0x1800-0x18ff\] is listed twice/],
    ["id reservation listed twice", (s) => { s["reserved"].push({ ...s["reserved"][1], start: 32, end: 32 }); return s; }, /reserved\[2\]: MSI GSI 32 is listed twice/],
    ["reservation outside its pool", (s) => { s["reserved"][1]["end"] = 50; return s; }, /reserved\[1\] \[irq 30-50\] is outside the msi pool/],
    ["reservation in an unknown pool", (s) => { s["reserved"][1]["pool"] = "gsi"; return s; }, /reserved\[1\]\.pool must be one of/],
  ];
  for (const [what, mutate, message] of mutations) {
    it(`reject a snapshot with ${what}`, () => {
      const snap = JSON.parse(JSON.stringify(busySystem()));
      assert.doesNotThrow(() => DefaultSystemAllocator.fromJSON(structuredClone(snap)));
      assert.throws(() => DefaultSystemAllocator.fromJSON(mutate(snap)), code("InvalidSnapshot", message));
    });
  }

  it("reject a snapshot whose getters throw, as InvalidSnapshot", () => {
    const snap = JSON.parse(JSON.stringify(busySystem()));
    Object.defineProperty(snap, "pools", { enumerable: true, get: () => { throw new TypeError("boom"); } });
    assert.throws(() => DefaultSystemAllocator.fromJSON(snap), code("InvalidSnapshot", /could not be read \(boom\)/));
  });

  it("reject random corruptions only with InvalidSnapshot, or restore a valid allocator", () => {
    const base = JSON.parse(JSON.stringify(busySystem())) as Record<string, unknown>;
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]): void => {
      paths.push(path);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
      else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(base, []);
    const valueArb = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom("0x0", "0xffffffffffffffff", "0x1800", -1, 4096, 2 ** 32, "fw", "blk@0", null, [], {}),
    );
    fc.assert(
      fc.property(fc.nat(), fc.constantFrom("set", "delete"), valueArb, (pick, how, value) => {
        const snap = structuredClone(base) as Record<string | number, unknown>;
        const path = paths[pick % paths.length]!;
        if (path.length === 0) return;
        let parent = snap as Record<string | number, unknown>;
        for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
        const last = path[path.length - 1]!;
        if (how === "delete") {
          if (Array.isArray(parent)) parent.splice(last as number, 1);
          else delete parent[last];
        } else {
          parent[last] = value;
        }
        let restored: DefaultSystemAllocator;
        try {
          restored = DefaultSystemAllocator.fromJSON(snap);
        } catch (e) {
          assert.ok(e instanceof AllocatorError && e.code === "InvalidSnapshot", `${String(e)} at ${path.join(".")}`);
          return;
        }
        restored.checkValid();
        const again = JSON.parse(JSON.stringify(restored.toJSON()));
        assert.deepEqual(JSON.parse(JSON.stringify(DefaultSystemAllocator.fromJSON(again))), again);
      }),
      { numRuns: 1500 },
    );
  });
});

// ---- end to end with a device manager ----------------------------------------------------------

class Dev implements Device {
  constructor(
    readonly name: string,
    readonly requests: readonly ResourceRequest[],
  ) {}
  resourceRequest(): readonly ResourceRequest[] {
    return this.requests;
  }
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    data.fill(0x11);
  }
  write(): void {}
}

/** What the allocator should hold for the devices `dm` manages, as holding keys. */
function expectedHoldings(dm: DeviceManager): string[] {
  const out: string[] = [];
  for (const id of dm.instanceIds()) {
    const d = dm.resourcesOf(id);
    if (d.instanceIdAllocated) out.push(`instanceId ${id}-${id} ${d.owner}`);
    for (const q of d.irqs) if (q.allocated) out.push(`legacyIrq ${q.irq}-${q.irq} ${d.owner}`);
    for (const m of d.msi) if (m.allocated) out.push(`msi ${m.gsi}-${m.gsi} ${d.owner}`);
    for (const s of d.pio) if (s.allocated) out.push(`pio ${s.range.start}-${s.range.end} ${d.owner}`);
    for (const s of d.mmio) {
      if (!s.allocated) continue;
      const pool = s.range.start >= FOUR_GIB ? "mmio64" : "mmio32";
      out.push(`${pool} ${s.range.start}-${s.range.end} ${d.owner}`);
    }
  }
  return out.sort();
}

const allocatedHoldings = (sys: DefaultSystemAllocator): string[] =>
  sys
    .holdings()
    .filter((h) => !h.reserved)
    // A use of a reservation is held for its device like an allocation.
    .map((h) => holdingKey(h).replace(/ U$/, ""))
    .sort();

function consistent(sys: DefaultSystemAllocator, dm: DeviceManager): void {
  dm.checkConsistency();
  sys.checkValid();
  assert.deepEqual(allocatedHoldings(sys), expectedHoldings(dm));
}

describe("DefaultSystemAllocator with a real DeviceManager", () => {
  it("serves registration, moves and unregistration, giving everything back", () => {
    const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
    const dm = DeviceManager.fromSystemAllocator(sys);
    const initial = sys.holdings().map(show);
    const blk = dm.fullRegisterDevice(new Dev("virtio-blk", [{ kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "irq" }]));
    const nvme = dm.fullRegisterDevice(
      new Dev("nvme", [{ kind: "mmio", size: 0x4000, alignment: 0x4000, mmio64: true, allowFallback: true }, { kind: "msi", count: 4 }, { kind: "pio", size: 0x20, alignment: 0x20 }]),
    );
    const serial = dm.fullRegisterDevice(new Dev("serial", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4 }]));
    consistent(sys, dm);
    assert.deepEqual(dm.resourcesOf(blk).mmio.map((s) => s.range), [r(0xc000_0000, 0xc000_0fff)]);
    assert.deepEqual(dm.resourcesOf(blk).irqs, [{ irq: 5, allocated: true, fixed: false, shared: false }]);
    assert.deepEqual(dm.resourcesOf(nvme).mmio.map((s) => s.range), [r(4n << 30n, (4n << 30n) + 0x3fffn)]);
    assert.deepEqual(dm.resourcesOf(nvme).msi.map((m) => m.gsi), [24, 25, 26, 27]);
    assert.deepEqual(dm.resourcesOf(nvme).pio.map((s) => s.range), [r(0xc000, 0xc01f)]);
    // COM1 lies below the PC's I/O window and IRQ 4 below its legacy pool: only recorded.
    assert.deepEqual(dm.resourcesOf(serial).pio, [{ range: r(0x3f8, 0x3ff), allocated: false, fixed: true }]);
    assert.equal(sys.pio!.find(0x3f8), undefined);
    assert.deepEqual(sys.allocationsOf(`serial@${serial}`).map(show), [`instanceId ${serial} serial@${serial}`]);
    assert.deepEqual(dm.resourcesOf(serial).irqs, [{ irq: 4, allocated: false, fixed: true, shared: false }]);
    assert.equal(dm.pioRead(0x3f8, new Uint8Array(1)), true);

    // A guest reprograms a BAR: the allocator follows, overlapping and not.
    const moved = dm.moveRange(blk, r(0xc000_0000, 0xc000_0fff), 0xc010_0000);
    assert.deepEqual(moved, r(0xc010_0000, 0xc010_0fff));
    dm.moveRange(nvme, r(4n << 30n, (4n << 30n) + 0x3fffn), 0xc020_0000);
    dm.moveRange(nvme, r(0xc020_0000, 0xc020_3fff), 0xc020_4000);
    consistent(sys, dm);
    assert.equal(sys.mmio32.find(0xc020_4000)!.owner, "nvme@1");
    // Moving onto reserved space is refused by the allocator and changes nothing.
    const before = state(sys);
    assert.throws(() => dm.moveRange(blk, moved, 0xfec0_0000), code("Overlap", /conflicts with ioapic/, "ioapic"));
    assert.equal(state(sys), before);
    consistent(sys, dm);

    dm.fullUnregisterDevice(nvme);
    dm.fullUnregisterDevice(blk);
    dm.fullUnregisterDevice(serial);
    consistent(sys, dm);
    assert.deepEqual(sys.holdings().map(show), initial);
  });

  it("leaves the allocator as it was when a registration fails half way", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const dm = DeviceManager.fromSystemAllocator(sys);
    dm.fullRegisterDevice(new Dev("a", [{ kind: "mmio", size: 0x800 }, { kind: "irq" }]));
    const before = sys.holdings().map(show);
    // Instance id, IRQ and MSI are taken before the MMIO request fails: all are given back.
    assert.throws(
      () => dm.fullRegisterDevice(new Dev("b", [{ kind: "irq" }, { kind: "msi", count: 2 }, { kind: "pio", size: 8 }, { kind: "mmio", size: 0x1000 }])),
      code("ResourceNotAvailable"),
    );
    assert.deepEqual(sys.holdings().map(show), before);
    consistent(sys, dm);
  });

  it("stays consistent with the device manager under random plug, unplug and move sequences", () => {
    const requestArb: fc.Arbitrary<ResourceRequest> = fc.oneof(
      fc.record({ kind: fc.constant("irq" as const) }),
      fc.record({ kind: fc.constant("msi" as const), count: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ kind: fc.constant("pio" as const), size: fc.integer({ min: 1, max: 0x40 }), alignment: fc.constantFrom(1, 4, 16) }),
      fc.record({ kind: fc.constant("mmio" as const), size: fc.integer({ min: 1, max: 0x900 }), alignment: fc.constantFrom(1, 0x100), mmio64: fc.boolean() }).map((m) =>
        m.mmio64 ? { ...m, allowFallback: true } : { kind: m.kind, size: m.size, alignment: m.alignment },
      ),
    );
    const actionArb = fc.oneof(
      { arbitrary: fc.record({ act: fc.constant("plug" as const), name: fc.constantFrom("blk", "net", "rng"), requests: fc.array(requestArb, { maxLength: 4 }) }), weight: 3 },
      { arbitrary: fc.record({ act: fc.constant("unplug" as const), pick: fc.nat() }), weight: 2 },
      { arbitrary: fc.record({ act: fc.constant("move" as const), pick: fc.nat(), to: fc.integer({ min: 0, max: 0xf }), skew: fc.constantFrom(0, 0, 0, 4, 0x10) }), weight: 2 },
    );
    fc.assert(
      fc.property(fc.array(actionArb, { minLength: 1, maxLength: 30 }), (actions) => {
        const sys = new DefaultSystemAllocator({ ...SMALL, reserved: [{ pool: "mmio32", start: 0x1f00, size: 0x100, owner: "fw" }, { pool: "legacyIrq", start: 9, owner: "acpi" }] });
        const dm = DeviceManager.fromSystemAllocator(sys);
        const initial = sys.holdings().map(show);
        for (const a of actions) {
          const before = sys.holdings().map(show);
          try {
            if (a.act === "plug") {
              dm.fullRegisterDevice(new Dev(a.name, a.requests));
            } else {
              const ids = dm.instanceIds();
              if (ids.length === 0) continue;
              const id = ids[a.pick % ids.length]!;
              if (a.act === "unplug") {
                dm.fullUnregisterDevice(id);
              } else {
                const held = dm.resourcesOf(id);
                const slots = [...held.mmio.map((s) => ({ s, isPio: false })), ...held.pio.map((s) => ({ s, isPio: true }))];
                if (slots.length === 0) continue;
                const { s: slot, isPio } = slots[a.pick % slots.length]!;
                const base = isPio ? 0x100n : slot.range.start >= FOUR_GIB ? FOUR_GIB : 0x1000n;
                dm.moveRange(id, slot.range, base + BigInt(a.to * (isPio ? 0x10 : 0x100) + a.skew), isPio ? "pio" : "mmio");
              }
            }
          } catch (e) {
            assert.ok(e instanceof AllocatorError, String(e));
            assert.notEqual(e.code, "InvalidState", e.message);
            assert.deepEqual(sys.holdings().map(show), before, `failed ${a.act} changed the allocator: ${e.message}`);
          }
          consistent(sys, dm);
        }
        for (const id of dm.instanceIds()) dm.fullUnregisterDevice(id);
        assert.deepEqual(sys.holdings().map(show), initial);
        sys.checkValid();
      }),
      { numRuns: 150 },
    );
  });
});

describe("DefaultSystemAllocator.fromJSON: one number rule for every snapshot", () => {
  /** A fresh JSON copy of a PC snapshot, to corrupt one field of. */
  const snapshot = (): Record<string, any> => JSON.parse(JSON.stringify(new DefaultSystemAllocator(PC_X86_64).toJSON()));
  const refused = (s: unknown, message: RegExp) => assert.throws(() => DefaultSystemAllocator.fromJSON(s), code("InvalidSnapshot", message));

  it("still restores its own output exactly", () => {
    const s = snapshot();
    assert.deepEqual(JSON.parse(JSON.stringify(DefaultSystemAllocator.fromJSON(s).toJSON())), s);
  });

  it("refuses layout addresses that are not canonical hex, as the pools' snapshots do", () => {
    const cases: [string, RegExp][] = [
      ["0xB0000000", /layout\.mmio32\.base must be a canonical hex string/],
      ["0x0b0000000", /layout\.mmio32\.base must be a canonical hex string/],
      ["0xb000_0000", /layout\.mmio32\.base must be a canonical hex string/],
      ["2952790016", /layout\.mmio32\.base must be a canonical hex string/],
    ];
    for (const [bad, message] of cases) {
      const s = snapshot();
      s["layout"].mmio32.base = bad;
      refused(s, message);
    }
    for (const bad of [0xb000_0000, undefined, null]) {
      const s = snapshot();
      s["layout"].mmio32.base = bad;
      refused(s, /^invalid system-allocator snapshot: layout\.mmio32\.base must be a canonical hex string like "0x1000" \(lower case, no leading zeros\)/);
    }
    const s = snapshot();
    s["layout"].pio.size = "0x010000";
    refused(s, /layout\.pio\.size must be a canonical hex string/);
    const big = new DefaultSystemAllocator(PC_X86_64).toJSON() as unknown as Record<string, any>;
    big["layout"] = { ...big["layout"], mmio64: { base: 64n << 30n, size: "0x800000000" } };
    refused(big, /layout\.mmio64\.base must be a canonical hex string/);
  });

  it("refuses layout ids that are not integer numbers", () => {
    for (const bad of ["5", "0x5", 5.5, -1, 2 ** 32, 5n, null]) {
      const s = snapshot();
      s["layout"].legacyIrq.first = bad;
      refused(s, /layout\.legacyIrq\.first must be an id \(an integer number from 0 to 2\^32-1\)/);
    }
  });

  it("refuses a layout missing a field its writer always writes, or using the hand-written forms", () => {
    for (const field of ["instanceId", "reserved"]) {
      const s = snapshot();
      delete s["layout"][field];
      refused(s, new RegExp(`layout is missing "${field}"`));
    }
    const s = snapshot();
    s["layout"].reserved[1] = { pool: "mmio32", start: "0xb0000000", size: "0x10000000", owner: "pci-mmconfig" };
    refused(s, /layout\.reserved\[1\] has unknown field "size"/);
    const t = snapshot();
    t["layout"].reserved[0].end = undefined;
    refused(t, /layout\.reserved\[0\]\.end must be a canonical hex string/);
    const u = snapshot();
    const lastId = u["layout"].reserved.length - 1; // the PC preset lists its fixed IRQs last
    u["layout"].reserved[lastId].start = "12";
    refused(u, new RegExp(`layout\\.reserved\\[${lastId}\\]\\.start must be an id`));
  });

  it("refuses reservations with end: undefined or non-canonical numbers", () => {
    const s = snapshot();
    s["reserved"][0].end = undefined;
    refused(s, /reserved\[0\]\.end must be a canonical hex string .* got undefined/);
    const t = snapshot();
    const lastId = t["reserved"].length - 1; // the PC preset's fixed IRQs come last
    delete t["reserved"][lastId].end;
    refused(t, new RegExp(`reserved\\[${lastId}\\] is missing "end"`));
    const u = snapshot();
    u["reserved"][lastId].end = undefined;
    refused(u, new RegExp(`reserved\\[${lastId}\\]\\.end must be an id .* got undefined`));
    const v = snapshot();
    v["reserved"][1].start = "0xB0000000";
    refused(v, /reserved\[1\]\.start must be a canonical hex string/);
    const w = snapshot();
    w["reserved"][1].end = 0xbfff_ffff;
    refused(w, /reserved\[1\]\.end must be a canonical hex string/);
    const x = snapshot();
    x["reserved"][lastId].start = "0xc";
    refused(x, new RegExp(`reserved\\[${lastId}\\]\\.start must be an id`));
  });
});

describe("DefaultSystemAllocator: shared lines indexed by holder", () => {
  it("lists one holder's shares without scanning the others, through joins, leaves and a snapshot", () => {
    const sys = new DefaultSystemAllocator(SMALL);
    const irq = sys.irqCallback();
    for (let i = 0; i < 200; i++) {
      irq({ action: "allocate", owner: `dev@${i}`, fixed: 5 + (i % 3), shared: true });
    }
    assert.deepEqual(sys.allocationsOf("dev@7"), [{ pool: "legacyIrq", id: 6, owner: "dev@7", reserved: false, shared: true }]);
    // The first holder of line 5 leaves: the line stays, held by the next one.
    irq({ action: "free", owner: "dev@0", id: 5 });
    assert.deepEqual(sys.allocationsOf("dev@0"), []);
    assert.equal(sys.legacyIrq.ownerOf(5), "dev@3");
    sys.checkValid();
    const copy = DefaultSystemAllocator.fromJSON(JSON.parse(JSON.stringify(sys)));
    copy.checkValid();
    assert.deepEqual(copy.allocationsOf("dev@199").map((h) => ("id" in h ? h.id : -1)), [6]); // 199 % 3 = 1
    for (let i = 1; i < 200; i++) copy.irqCallback()({ action: "free", owner: `dev@${i}`, id: 5 + (i % 3) });
    assert.equal(copy.legacyIrq.allocatedCount, 0);
    assert.deepEqual(copy.owners(), []);
    copy.checkValid();
  });
});

describe("DefaultSystemAllocator: a free with undo: true rolls an allocation back without a trace", () => {
  /** SMALL with a reserved line, a reserved port block and a reserved MMIO page that devices may use. */
  const WITH_RESERVED: SystemLayout = {
    ...SMALL,
    reserved: [
      { pool: "legacyIrq", start: 7, owner: "rtc" },
      { pool: "pio", start: 0x100, end: 0x13f, owner: "isa" },
      { pool: "mmio32", start: 0x1f00, end: 0x1fff, owner: "fw" },
    ],
  };
  /** Some history first, so that released ids and other holders exist. */
  function used(): DefaultSystemAllocator {
    const sys = new DefaultSystemAllocator(WITH_RESERVED);
    const dev = sys.deviceIdCallback();
    const irq = sys.irqCallback();
    const a = dev({ action: "allocate", owner: "a", appendIdToOwner: true })!;
    dev({ action: "allocate", owner: "b", appendIdToOwner: true });
    dev({ action: "free", owner: `a@${a}`, id: a }); // 0 released, 1 held by b@1
    irq({ action: "free", owner: "a", id: irq({ action: "allocate", owner: "a" })! });
    irq({ action: "free", owner: "a", id: irq({ action: "allocate", owner: "a", pool: "msi" })!, pool: "msi" });
    irq({ action: "allocate", owner: "com1", fixed: 6, shared: true });
    return sys;
  }
  type Step = { what: string; take: (sys: DefaultSystemAllocator) => unknown; undo: (sys: DefaultSystemAllocator, got: unknown) => unknown };
  const steps: Step[] = [
    // Instance ids: the lowest (released before), released and fixed, fresh and fixed.
    { what: "the lowest instance id (released before), named after itself", take: (s) => s.deviceIdCallback()({ action: "allocate", owner: "c", appendIdToOwner: true }), undo: (s, id) => s.deviceIdCallback()({ action: "free", owner: `c@${String(id)}`, id: id as number, undo: true }) },
    { what: "a released instance id, fixed", take: (s) => s.deviceIdCallback()({ action: "allocate", owner: "c", fixed: 0 }), undo: (s, id) => s.deviceIdCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    { what: "a fresh fixed instance id", take: (s) => s.deviceIdCallback()({ action: "allocate", owner: "c", fixed: 15 }), undo: (s, id) => s.deviceIdCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    // Legacy lines: the released lowest one, a fresh fixed one, a use of the reserved line, a
    // join of a shared line, the first holder of a new shared line.
    { what: "the lowest legacy line (released before)", take: (s) => s.irqCallback()({ action: "allocate", owner: "c" }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    { what: "a fresh fixed legacy line", take: (s) => s.irqCallback()({ action: "allocate", owner: "c", fixed: 12 }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    { what: "a use of the reserved line", take: (s) => s.irqCallback()({ action: "allocate", owner: "c", fixed: 7, allowReserved: true }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    { what: "joining a shared line", take: (s) => s.irqCallback()({ action: "allocate", owner: "com3", fixed: 6, shared: true }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "com3", id: id as number, undo: true }) },
    { what: "opening a shared line", take: (s) => s.irqCallback()({ action: "allocate", owner: "c", fixed: 11, shared: true }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, undo: true }) },
    // MSI: the released lowest GSI, a fresh fixed one.
    { what: "the lowest MSI GSI (released before)", take: (s) => s.irqCallback()({ action: "allocate", owner: "c", pool: "msi" }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, pool: "msi", undo: true }) },
    { what: "a fresh fixed MSI GSI", take: (s) => s.irqCallback()({ action: "allocate", owner: "c", pool: "msi", fixed: 40 }), undo: (s, id) => s.irqCallback()({ action: "free", owner: "c", id: id as number, pool: "msi", undo: true }) },
    // Addresses: first fit, exact, a use of a reservation, in every family.
    { what: "a port range", take: (s) => s.pioAddressCallback()!({ action: "allocate", owner: "c", size: 8n }), undo: (s, got) => s.pioAddressCallback()!({ action: "free", owner: "c", range: got as RangeInclusive, undo: true }) },
    { what: "a use of the ISA block", take: (s) => s.pioAddressCallback()!({ action: "allocate", owner: "c", size: 8n, fixed: 0x120n, allowReserved: true }), undo: (s, got) => s.pioAddressCallback()!({ action: "free", owner: "c", range: got as RangeInclusive, undo: true }) },
    { what: "an exact MMIO range", take: (s) => s.mmioAddressCallback()({ action: "allocate", owner: "c", size: 0x100n, fixed: 0x1400n }), undo: (s, got) => s.mmioAddressCallback()({ action: "free", owner: "c", range: got as RangeInclusive, undo: true }) },
    { what: "a use of the firmware page", take: (s) => s.mmioAddressCallback()({ action: "allocate", owner: "c", size: 0x10n, fixed: 0x1f00n, allowReserved: true }), undo: (s, got) => s.mmioAddressCallback()({ action: "free", owner: "c", range: got as RangeInclusive, undo: true }) },
    { what: "a 64-bit MMIO range, last fit", take: (s) => s.mmioAddressCallback()({ action: "allocate", owner: "c", size: 0x100n, mmio64: true, placement: "last" }), undo: (s, got) => s.mmioAddressCallback()({ action: "free", owner: "c", range: got as RangeInclusive, undo: true }) },
  ];

  for (const step of steps) {
    it(`${step.what}: the snapshot is byte-identical after the undo, and a plain free differs only where it should`, () => {
      const sys = used();
      const before = state(sys);
      const got = step.take(sys);
      assert.notEqual(got, null);
      assert.notEqual(state(sys), before, "the allocation changed something");
      step.undo(sys, got);
      assert.equal(state(sys), before);
      sys.checkValid();
    });
  }

  it("several allocations undone in reverse order (a registration rolled back) leave no trace", () => {
    const sys = used();
    const before = state(sys);
    const taken = steps.filter((s) => !/joining|opening|use of the reserved line|released instance id, fixed/.test(s.what)).map((s) => ({ s, got: s.take(sys) }));
    for (let i = taken.length - 1; i >= 0; i--) taken[i]!.s.undo(sys, taken[i]!.got);
    assert.equal(state(sys), before);
    sys.checkValid();
  });

  it("a plain free of a fresh id is remembered as released (the difference undo makes)", () => {
    const sys = used();
    const before = sys.toJSON().pools.instanceId;
    const id = sys.deviceIdCallback()({ action: "allocate", owner: "c", fixed: 15 })!;
    sys.deviceIdCallback()({ action: "free", owner: "c", id });
    assert.deepEqual(sys.toJSON().pools.instanceId.released, [...before.released, [15, 15]]);
  });

  it("address pools keep no history: even a plain free gives the snapshot back, uses of reservations included", () => {
    const sys = used();
    const before = state(sys);
    const pio = sys.pioAddressCallback()!;
    const mmio = sys.mmioAddressCallback();
    const got = [
      [pio, pio({ action: "allocate", owner: "c", size: 3n, alignment: 4n })!],
      [pio, pio({ action: "allocate", owner: "c", size: 8n, fixed: 0x108n, allowReserved: true })!],
      [mmio, mmio({ action: "allocate", owner: "c", size: 0x10n, placement: "last" })!],
      [mmio, mmio({ action: "allocate", owner: "c", size: 0x10n, fixed: 0x1f80n, allowReserved: true })!],
      [mmio, mmio({ action: "allocate", owner: "c", size: 0x10n, mmio64: true })!],
    ] as const;
    assert.notEqual(state(sys), before);
    for (const [cb, range] of got) cb({ action: "free", owner: "c", range });
    assert.equal(state(sys), before);
  });

  it("a shared line passed on to its next holder keeps its history", () => {
    const sys = new DefaultSystemAllocator(WITH_RESERVED);
    const irq = sys.irqCallback();
    const before = state(sys);
    irq({ action: "allocate", owner: "com1", fixed: 10, shared: true });
    irq({ action: "allocate", owner: "com3", fixed: 10, shared: true });
    irq({ action: "free", owner: "com1", id: 10 }); // com3 takes the line over
    assert.equal(sys.legacyIrq.ownerOf(10), "com3");
    irq({ action: "free", owner: "com3", id: 10, undo: true });
    assert.equal(state(sys), before, "the line was handed out once, to com1 then com3, and that allocation is undone");
  });

  it("undo must be a boolean; a bad one changes nothing", () => {
    const sys = used();
    const id = sys.irqCallback()({ action: "allocate", owner: "c" })!;
    const range = sys.mmioAddressCallback()({ action: "allocate", owner: "c", size: 0x10n })!;
    for (const bad of ["yes", 1, null]) {
      failsCleanly(sys, () => sys.irqCallback()({ action: "free", owner: "c", id, undo: bad } as unknown as IdAllocateParams), "InvalidArgument", /^params\.undo must be a boolean/);
      failsCleanly(sys, () => sys.mmioAddressCallback()({ action: "free", owner: "c", range, undo: bad } as unknown as AddrAllocateParams), "InvalidArgument", /^params\.undo must be a boolean/);
    }
  });
});

describe("DefaultSystemAllocator: outsideCallback", () => {
  it("says outside exactly when a fixed allocation would hold nothing (null), at every pool edge, changing nothing", () => {
    const sys = new DefaultSystemAllocator(MODEL_LAYOUT);
    const outside = sys.outsideCallback();
    const before = state(sys);
    const idCases: [("instanceId" | "irq" | "msi"), number][] = [];
    for (const [kind, first, last] of [["instanceId", 0, 15], ["irq", 5, 12], ["msi", 24, 40]] as const) {
      for (const id of [0, first - 1, first, last, last + 1, 0xffff_ffff]) if (id >= 0) idCases.push([kind, id]);
    }
    for (const [kind, id] of idCases) {
      const probe = sys.clone();
      const got = kind === "instanceId" ? probe.deviceIdCallback()({ action: "allocate", owner: "p", fixed: id }) : probe.irqCallback()({ action: "allocate", owner: "p", fixed: id, pool: kind === "msi" ? "msi" : "legacy" });
      assert.equal(outside({ kind, id }), got === null, `${kind} ${id}`);
    }
    const pools = [sys.pio!, sys.mmio32, sys.mmio64!, sys.pastMmio64!, sys.systemMemory!];
    const edges = pools.flatMap((p) => [p.base - 1n, p.base, p.end, p.end + 1n]).filter((v) => v >= 0n);
    for (const start of [0n, ...edges, (1n << 64n) - 1n]) {
      for (const size of [1n, 2n, 0x2000n]) {
        if (start + size - 1n > (1n << 64n) - 1n) continue;
        for (const kind of ["pio", "mmio"] as const) {
          const probe = sys.clone();
          const cb = kind === "pio" ? probe.pioAddressCallback()! : probe.mmioAddressCallback();
          let got: unknown;
          try {
            got = cb({ action: "allocate", owner: "p", size, fixed: start });
          } catch (e) {
            assert.ok(e instanceof AllocatorError);
            got = e.code;
          }
          assert.equal(outside({ kind, range: RangeInclusive.withSize(start, size) }), got === null, `${kind} ${start.toString(16)}+${size.toString(16)} -> ${String(got)}`);
        }
      }
    }
    assert.equal(state(sys), before);
    // Without port I/O in the layout, every port range is outside.
    assert.equal(new DefaultSystemAllocator(NO_OPTIONAL).outsideCallback()({ kind: "pio", range: r(0, 7) }), true);
  });

  it("refuses malformed queries", () => {
    const outside = new DefaultSystemAllocator(SMALL).outsideCallback() as (q: unknown) => boolean;
    for (const [q, message] of [
      [null, /^query must be an object/],
      [{ kind: "dma", id: 1 }, /^query\.kind must be/],
      [{ kind: "irq", id: -1 }, /^query\.id/],
      [{ kind: "irq" }, /^query\.id/],
      [{ kind: "mmio" }, /^query\.range must be/],
      [{ kind: "mmio", range: { start: 1n } }, /^query\.range\.end/],
    ] as const) {
      assert.throws(() => outside(q), code("InvalidArgument", message));
    }
    assert.throws(() => outside({ kind: "pio", range: { start: 5n, end: 1n } }), code("InvalidRange"));
  });
});
