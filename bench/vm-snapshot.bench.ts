/**
 * The cost of a whole-VM snapshot (issue 7): a DefaultSystemAllocator on the pc-x86_64 preset and
 * a DeviceManager with N devices, each with an MMIO BAR (every tenth one fixed in 64-bit MMIO), a
 * one-port PIO range (the preset's port window [0xc000, 0xffff] holds 16 384 ports), and either
 * one MSI vector (40%; the MSI pool has 4 072 GSIs) or a shared PCI INTx line (60%, lines 16-19,
 * the preset's reserved PIRQ lines).
 *
 * - snapshot: `JSON.stringify({ system: sys.toJSON(), devices: dm.toJSON() })`;
 * - restore: `JSON.parse` + `DefaultSystemAllocator.fromJSON` + `DeviceManager.fromJSON` (which
 *   checks the records against the allocator's holdings, both ways);
 * - round trip: both.
 *
 * ns/op is per device; the per-VM figure follows each size. N = 100, 1 000 and 10 000 show growth.
 * `npm run bench -- vm-snapshot`.
 */
import { DefaultSystemAllocator, DeviceManager, getLayout, type Device, type ResourceRequest } from "../src/index.js";
import { runPhases } from "./harness.js";

class Nic implements Device {
  constructor(readonly name: string) {}
  read(_base: bigint, _offset: bigint, data: Uint8Array): void {
    data.fill(0);
  }
  write(): void {}
}

function requestsFor(i: number, mmio64Base: bigint): ResourceRequest[] {
  const reqs: ResourceRequest[] = [
    i % 10 === 0 ? { kind: "mmio", size: 0x1000, fixed: mmio64Base + BigInt(i) * 0x1000n } : { kind: "mmio", size: 0x1000, alignment: 0x1000 },
    { kind: "pio", size: 1 },
  ];
  reqs.push(i % 5 < 2 ? { kind: "msi", count: 1 } : { kind: "irq", fixed: 16 + (i % 4), shared: true });
  return reqs;
}

function buildVm(n: number) {
  const sys = new DefaultSystemAllocator(getLayout("pc-x86_64"));
  const dm = DeviceManager.fromSystemAllocator(sys);
  const devices = new Map<number, Device>();
  for (let i = 0; i < n; i++) {
    const d = new Nic(i % 2 === 0 ? "virtio-net" : "virtio-blk");
    devices.set(dm.fullRegisterDevice(d, requestsFor(i, sys.mmio64!.base)), d);
  }
  return { sys, dm, devices };
}

const snapshot = (sys: DefaultSystemAllocator, dm: DeviceManager): string => JSON.stringify({ system: sys.toJSON(), devices: dm.toJSON() });
function restore(text: string, devices: ReadonlyMap<number, Device>) {
  const vm = JSON.parse(text) as { system: unknown; devices: unknown };
  const sys = DefaultSystemAllocator.fromJSON(vm.system);
  return { sys, dm: DeviceManager.fromJSON(vm.devices, { systemAllocator: sys, devices }) };
}

for (const n of [100, 1000, 10_000]) {
  const { sys, dm, devices } = buildVm(n);
  const text = snapshot(sys, dm);
  // Checked once, untimed: the restore is a faithful one.
  const back = restore(text, devices);
  back.dm.checkConsistency();
  if (snapshot(back.sys, back.dm) !== text) throw new Error("the restored VM snapshots differently");

  console.log(`-- ${n} devices, snapshot ${(text.length / 1024).toFixed(0)} KiB (${(text.length / n).toFixed(0)} bytes per device)`);
  let sink = 0;
  const phases = [
    { name: `snapshot, ${n} devices (per device)`, ops: n, run: () => void (sink += snapshot(sys, dm).length) },
    { name: `restore, ${n} devices (per device)`, ops: n, run: () => void (sink += restore(text, devices).dm.size) },
    { name: `round trip, ${n} devices (per device)`, ops: n, run: () => void (sink += restore(snapshot(sys, dm), devices).dm.size) },
  ];
  const iterations = n >= 10_000 ? 3 : 5;
  const results = runPhases(phases, { iterations });
  const label = (name: string) => name.split(",")[0]!;
  console.log(`   per VM: ${results.map((r) => `${label(r.name)} ${((r.nsPerOp * n) / 1e6).toFixed(2)} ms`).join(", ")}`);
  // The machine is shared: wall-clock medians grow with its load. CPU time of this process
  // (process.cpuUsage, GC threads included) over the same number of runs is far less affected.
  const cpu = phases.map((phase) => {
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) phase.run();
    const used = process.cpuUsage(start);
    return `${label(phase.name)} ${((used.user + used.system) / 1000 / iterations).toFixed(2)} ms`;
  });
  console.log(`   per VM, CPU time: ${cpu.join(", ")}`);
  if (sink === 0) throw new Error("nothing was measured");
}
