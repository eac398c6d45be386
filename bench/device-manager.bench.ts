/**
 * Device manager: a fullRegisterDevice + fullUnregisterDevice pair (instance id, IRQ, PIO range,
 * MMIO range) with 1 000 devices already mapped, and VM-exit dispatch through the manager.
 *
 * The callbacks are deliberately trivial free-list allocators defined here, so the numbers are the
 * manager's own cost and the bench does not depend on any allocator class.
 *
 * Target: a register + unregister pair at most 5 µs.
 */
import type { AddrAllocateFunc, IdAllocateFunc } from "../src/system/allocation-callbacks.js";
import type { Device, ResourceRequest } from "../src/devices/device.js";
import { DeviceManager } from "../src/devices/device-manager.js";
import { AllocatorError } from "../src/core/errors.js";
import { RangeInclusive } from "../src/core/range.js";
import { printTarget, runPhases, XorShift64, type Phase } from "./harness.js";

const PRELOADED = 1000;
const PAIRS = 1000;
const DISPATCHES = 1 << 16;
const TARGET_NS = 5000;

/** Lowest-first ids from a stack of free ones. Fixed values are outside its pool (null: not held). */
function idCallback(count: number): IdAllocateFunc {
  const free: number[] = [];
  for (let i = count - 1; i >= 0; i--) free.push(i);
  return (p) => {
    if (p.action === "free") {
      free.push(p.id);
      return p.id;
    }
    if (p.fixed !== undefined) return null;
    const id = free.pop();
    if (id === undefined) throw new AllocatorError("ResourceNotAvailable", "no id left");
    return id;
  };
}

/** Fixed-size slots from `base`; every request must fit one slot. Fixed ranges are outside its pool. */
function slotCallback(base: bigint, slot: bigint, count: number): AddrAllocateFunc {
  const free: RangeInclusive[] = [];
  for (let i = count - 1; i >= 0; i--) free.push(RangeInclusive.withSize(base + BigInt(i) * slot, slot));
  return (p) => {
    if (p.action === "free") {
      free.push(p.range);
      return p.range;
    }
    if (p.fixed !== undefined) return null;
    const r = free.pop();
    if (r === undefined) throw new AllocatorError("ResourceNotAvailable", "no slot left");
    return r;
  };
}

class Nic implements Device {
  reads = 0;
  constructor(readonly name: string) {}
  static readonly requests: readonly ResourceRequest[] = [
    { kind: "irq" },
    { kind: "pio", size: 0x20 },
    { kind: "mmio", size: 0x1000, alignment: 0x1000 },
  ];
  resourceRequest(): readonly ResourceRequest[] {
    return Nic.requests;
  }
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    this.reads++;
    data[0] = 1;
  }
  write(): void {}
}

const dm = new DeviceManager({
  deviceId: idCallback(1 << 16),
  irq: idCallback(1 << 16),
  pio: slotCallback(0x1000n, 0x20n, 4096),
  mmio: slotCallback(0xc000_0000n, 0x1000n, 4096),
});
for (let i = 0; i < PRELOADED; i++) dm.fullRegisterDevice(new Nic(`nic${i}`));
dm.checkConsistency();

const fresh = Array.from({ length: PAIRS }, (_, i) => new Nic(`hot${i}`));
const rng = new XorShift64(5n);
const mmioTargets = Array.from({ length: DISPATCHES }, () => {
  const res = dm.resourcesOf(dm.instanceIds()[rng.below(PRELOADED)]!);
  return res.mmio[0]!.range.start + BigInt(rng.below(0x1000));
});
const pioTargets = Array.from({ length: DISPATCHES }, () => 0x1000 + rng.below(PRELOADED * 0x20));
const data = new Uint8Array(1);
let sink = 0;

const phases: Phase[] = [
  {
    name: `full register+unregister pair, ${PRELOADED} mapped`,
    ops: PAIRS,
    run: () => {
      for (let i = 0; i < PAIRS; i++) dm.fullUnregisterDevice(dm.fullRegisterDevice(fresh[i]!));
    },
  },
  {
    name: `full pair, instance id only, ${PRELOADED} mapped`,
    ops: PAIRS,
    run: () => {
      for (let i = 0; i < PAIRS; i++) dm.fullUnregisterDevice(dm.fullRegisterDevice(fresh[i]!, []));
    },
  },
  {
    name: `simple register+unregister pair, ${PRELOADED} mapped`,
    ops: PAIRS,
    run: () => {
      const range = new RangeInclusive(0xf000_0000n, 0xf000_0fffn);
      for (let i = 0; i < PAIRS; i++) {
        dm.simpleRegisterDevice(fresh[i]!, 100_000, 0xf_ffff, undefined, range); // a line no preloaded device holds
        dm.unregisterDevice(100_000);
      }
    },
  },
  {
    name: `mmioRead via manager (bigint), ${PRELOADED} mapped`,
    ops: DISPATCHES,
    run: () => {
      for (let i = 0; i < DISPATCHES; i++) {
        dm.mmioRead(mmioTargets[i]!, data);
        sink += data[0]!;
      }
    },
  },
  {
    name: `pioRead via manager (number), ${PRELOADED} mapped`,
    ops: DISPATCHES,
    run: () => {
      for (let i = 0; i < DISPATCHES; i++) {
        dm.pioRead(pioTargets[i]!, data);
        sink += data[0]!;
      }
    },
  },
];

const results = runPhases(phases, { iterations: 30 });
dm.checkConsistency();
const pair = results[0];
if (pair !== undefined) {
  printTarget(
    `fullRegisterDevice + fullUnregisterDevice, ${PRELOADED} mapped`,
    pair.nsPerOp <= TARGET_NS,
    `${(pair.nsPerOp / 1000).toFixed(2)} µs/pair (target <= ${TARGET_NS / 1000} µs)`,
  );
}
if (sink === -1) console.log("unreachable");
