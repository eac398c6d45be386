/**
 * Bus lookup and dispatch: random addresses inside mapped ranges (pre-generated), for 64, 2 048
 * and 65 536 mapped devices, with bigint and number addresses.
 *
 * Target: lookup with 2 048 mapped devices at most 60 ns per lookup.
 */
import { Bus } from "../src/devices/bus.js";
import type { Device } from "../src/devices/device.js";
import { RangeInclusive } from "../src/core/range.js";
import { printTarget, runPhases, XorShift64, type Phase } from "./harness.js";

const LOOKUPS = 1 << 16;
const TARGET_NS = 60;

class Sink implements Device {
  hits = 0;
  constructor(readonly name: string) {}
  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    data[0] = Number(offset & 0xffn);
  }
  write(): void {
    this.hits++;
  }
}

/** `n` devices of 0x100 to 0x1000 bytes from `base`, separated by unmapped gaps. */
function build(n: number, base: bigint, rng: XorShift64): { bus: Bus; ranges: RangeInclusive[] } {
  const bus = new Bus("mem");
  const ranges: RangeInclusive[] = [];
  let at = base;
  for (let i = 0; i < n; i++) {
    const size = BigInt(0x100 << rng.below(5));
    const range = RangeInclusive.withSize(at, size);
    ranges.push(range);
    at += size + BigInt(0x100 * (1 + rng.below(4)));
  }
  // Insert in a scrambled order so the bench does not only measure appends.
  const order = ranges.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  for (const i of order) bus.insert(ranges[i]!, new Sink(`dev${i}`));
  return { bus, ranges };
}

function addresses(ranges: RangeInclusive[], rng: XorShift64): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const r = ranges[rng.below(ranges.length)]!;
    out.push(r.start + (rng.next() % r.len()));
  }
  return out;
}

let checksum = 0n;
const phases: Phase[] = [];
const targets: { label: string; phase: string }[] = [];

for (const n of [64, 2048, 65536]) {
  const rng = new XorShift64(BigInt(n) * 0x9e37n + 1n);
  const { bus, ranges } = build(n, 0xc000_0000n, rng);
  const big = addresses(ranges, rng);
  const num = Float64Array.from(big, (a) => Number(a));
  const data = new Uint8Array(1);
  phases.push(
    {
      name: `lookup bigint, ${n} devices`,
      ops: LOOKUPS,
      run: () => {
        let s = 0n;
        for (let i = 0; i < LOOKUPS; i++) s += bus.lookup(big[i]!)!.offset;
        checksum += s;
      },
    },
    {
      name: `lookup number, ${n} devices`,
      ops: LOOKUPS,
      run: () => {
        let s = 0n;
        for (let i = 0; i < LOOKUPS; i++) s += bus.lookup(num[i]!)!.offset;
        checksum += s;
      },
    },
    {
      name: `read 1 byte (dispatch), bigint, ${n} devices`,
      ops: LOOKUPS,
      run: () => {
        let s = 0;
        for (let i = 0; i < LOOKUPS; i++) {
          bus.read(big[i]!, data);
          s += data[0]!;
        }
        checksum += BigInt(s);
      },
    },
  );
  if (n === 2048) {
    targets.push({ label: "bus lookup, 2048 devices, bigint address", phase: `lookup bigint, ${n} devices` });
    targets.push({ label: "bus lookup, 2048 devices, number address", phase: `lookup number, ${n} devices` });
  }
}

// The upper half of the u64 space exercises the sign bias of the search keys.
{
  const rng = new XorShift64(77n);
  const { bus, ranges } = build(2048, 0xffff_0000_0000_0000n, rng);
  const big = addresses(ranges, rng);
  phases.push({
    name: "lookup bigint >= 2^63, 2048 devices",
    ops: LOOKUPS,
    run: () => {
      let s = 0n;
      for (let i = 0; i < LOOKUPS; i++) s += bus.lookup(big[i]!)!.offset;
      checksum += s;
    },
  });
  targets.push({ label: "bus lookup, 2048 devices, bigint address >= 2^63", phase: "lookup bigint >= 2^63, 2048 devices" });
}

const results = runPhases(phases, { iterations: 30 });
for (const t of targets) {
  const r = results.find((x) => x.name === t.phase);
  if (r === undefined) continue;
  printTarget(t.label, r.nsPerOp <= TARGET_NS, `${r.nsPerOp.toFixed(1)} ns/lookup (target <= ${TARGET_NS} ns)`);
}
if (checksum === -1n) console.log("unreachable");
