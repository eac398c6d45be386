import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AllocatorError } from "../../src/core/errors.js";
import { devicetreeSource } from "../../src/guest/devicetree.js";
import type { GuestDevice, GuestDeviceKind } from "../../src/guest/guest-device.js";
import { getLayout, layoutNames } from "../../src/system/layouts.js";
import { assertCompiles, dtcSkip } from "../helpers/dtc.js";

const dev = (name: string, kind: GuestDeviceKind, start: bigint, size: bigint, irqs: number[]): GuestDevice => ({ name, kind, mmio: [{ start, end: start + size - 1n }], irqs });

/** Firecracker v1.16 on aarch64 with two virtio devices, the serial, the RTC, vmgenid and vmclock, as planned. */
const FIRECRACKER: GuestDevice[] = [
  dev("virtio-blk0@0", "virtio-mmio", 0x4000_3000n, 0x1000n, [0]),
  { ...dev("virtio-pmem0@1", "virtio-mmio", 0x4000_4000n, 0x1000n, [1]), mmio: [{ start: 0x4000_4000n, end: 0x4000_4fffn }, { start: 512n << 30n, end: (512n << 30n) + 0xfff_ffffn }] },
  dev("serial0@2", "serial", 0x4000_2000n, 0x1000n, [2]),
  dev("rtc@3", "rtc", 0x4000_1000n, 0x1000n, [3]),
  dev("vmgenid@4", "vmgenid", 0x801f_fff0n, 16n, [4]),
  dev("vmclock@5", "vmclock", 0x801f_e000n, 0x1000n, [5]),
  { name: "other@6", kind: "other", mmio: [], irqs: [] },
];

const RISCV: GuestDevice[] = [
  dev("uart0@0", "serial", 0x1000_0000n, 0x100n, [10]),
  dev("virtio-blk0@1", "virtio-mmio", 0x1000_8000n, 0x1000n, [8]),
  dev("virtio-net0@2", "virtio-mmio", 0x1000_7000n, 0x1000n, [7]),
  dev("rtc@3", "rtc", 0x10_1000n, 0x1000n, [11]),
];

/** The text of the node named `name` (its opening line to its closing brace). */
function node(dts: string, name: string): string {
  const lines = dts.split("\n");
  const i = lines.findIndex((l) => l.trim() === `${name} {` || l.trim().endsWith(`: ${name} {`));
  assert.ok(i >= 0, `no node ${name} in\n${dts}`);
  const indent = /^\t*/.exec(lines[i]!)![0];
  const j = lines.findIndex((l, k) => k > i && l === `${indent}};`);
  return lines.slice(i, j + 1).join("\n");
}

describe("devicetreeSource: firecracker-aarch64", () => {
  it("writes Firecracker's tree for the planned devices, and dtc compiles it without a warning", { skip: dtcSkip }, () => {
    const dts = devicetreeSource({ preset: "firecracker-aarch64" }, FIRECRACKER);
    assert.ok(dts.startsWith("/dts-v1/;\n"));
    assertCompiles(dts, "firecracker-aarch64");
    assert.match(node(dts, "/"), /compatible = "linux,dummy-virt";/);
    // 128 MiB of RAM from 2 GiB, less the 2 MiB system-memory region.
    assert.match(node(dts, "memory@80200000"), /reg = <0x0 0x80200000 0x0 0x7e00000>;/);
    // GICv3: distributor at 1 GiB - 64 KiB, one vCPU's 128 KiB redistributor below it.
    assert.match(node(dts, "interrupt-controller@3fff0000"), /reg = <0x0 0x3fff0000 0x0 0x10000>, <0x0 0x3ffd0000 0x0 0x20000>;/);
    assert.match(node(dts, "virtio_mmio@40003000"), /reg = <0x0 0x40003000 0x0 0x1000>;\n\t\tinterrupts = <0x0 0x0 0x1>;/);
    // The pmem transport's node describes its register block only.
    assert.match(node(dts, "virtio_mmio@40004000"), /reg = <0x0 0x40004000 0x0 0x1000>;/);
    assert.match(node(dts, "uart@40002000"), /interrupts = <0x0 0x2 0x1>;/);
    assert.doesNotMatch(node(dts, "rtc@40001000"), /interrupts/);
    assert.match(node(dts, "vmgenid@801ffff0"), /compatible = "microsoft,vmgenid";\n\t\treg = <0x0 0x801ffff0 0x0 0x10>;\n\t\tinterrupts = <0x0 0x4 0x1>;/);
    assert.match(node(dts, "ptp@801fe000"), /compatible = "amazon,vmclock";/);
    // Without --enable-pci Firecracker has no PCI host, and "other" devices have no node.
    assert.doesNotMatch(dts, /pci@|other/);
  });

  it("adds the PCI host with its ECAM, both windows and the ITS when PCI is on", { skip: dtcSkip }, () => {
    const dts = devicetreeSource({ preset: "firecracker-aarch64", parameters: { ramSize: 0x4000_0000n } }, FIRECRACKER, { pci: true, cpus: 4, bootargs: 'console=ttyS0 root="/dev/vda" \\x' });
    assertCompiles(dts, "firecracker-aarch64 with PCI");
    const pci = node(dts, "pci@70000000");
    assert.match(pci, /reg = <0x0 0x70000000 0x0 0x100000>;/);
    assert.match(pci, /bus-range = <0x0 0x0>;/);
    // mmio32 = [0x40003000, 0x70000000), mmio64 = [256 GiB, +256 GiB).
    assert.match(pci, /ranges = <0x2000000 0x0 0x40003000 0x0 0x40003000 0x0 0x2fffd000>, <0x3000000 0x40 0x0 0x40 0x0 0x40 0x0>;/);
    assert.match(pci, /msi-map = <0x0 &its 0x0 0x100>;/);
    // Four vCPUs: 512 KiB of redistributors, the 128 KiB ITS below them.
    assert.match(dts, /its: msi-controller@3ff50000 \{/);
    assert.match(dts, /cpu@3 \{/);
    assert.match(node(dts, "memory@80200000"), /reg = <0x0 0x80200000 0x0 0x3fe00000>;/);
    assert.match(node(dts, "chosen"), /bootargs = "console=ttyS0 root=\\"\/dev\/vda\\" \\\\x";/);
  });

  it("follows an overridden mmio32 pool in the PCI ranges", { skip: dtcSkip }, () => {
    const layout = { ...getLayout("firecracker-aarch64"), mmio32: { base: 0x5000_0000n, size: 0x1000_0000n } };
    const dts = devicetreeSource({ preset: "firecracker-aarch64", layout }, [], { pci: true });
    assertCompiles(dts, "firecracker-aarch64 with an overridden mmio32");
    assert.match(dts, /<0x2000000 0x0 0x50000000 0x0 0x50000000 0x0 0x10000000>/);
  });
});

describe("devicetreeSource: riscv64-virt", () => {
  it("writes QEMU's virt tree with the PLIC, the UART, the transports and the PCIe host", { skip: dtcSkip }, () => {
    const dts = devicetreeSource({ preset: "riscv64-virt", parameters: { ramSize: 20n << 30n } }, RISCV, { cpus: 2 });
    assertCompiles(dts, "riscv64-virt");
    assert.match(node(dts, "memory@80000000"), /reg = <0x0 0x80000000 0x5 0x0>;/);
    const plic = node(dts, "interrupt-controller@c000000");
    assert.match(plic, /reg = <0x0 0xc000000 0x0 0x600000>;/);
    assert.match(plic, /interrupts-extended = <&cpu0_intc 0xb>, <&cpu0_intc 0x9>, <&cpu1_intc 0xb>, <&cpu1_intc 0x9>;/);
    assert.match(plic, /riscv,ndev = <0x5f>;/);
    assert.match(node(dts, "serial@10000000"), /clock-frequency = <0x384000>;[\s\S]*interrupts = <0xa>;/);
    assert.match(node(dts, "virtio_mmio@10008000"), /interrupts = <0x8>;/);
    assert.match(node(dts, "rtc@101000"), /compatible = "google,goldfish-rtc";/);
    const pci = node(dts, "pci@30000000");
    // I/O at CPU 0x3000000, the 1 GiB 32-bit window, 16 GiB at the end of 20 GiB of RAM rounded up (32 GiB).
    assert.match(pci, /ranges = <0x1000000 0x0 0x0 0x0 0x3000000 0x0 0x10000>, <0x2000000 0x0 0x40000000 0x0 0x40000000 0x0 0x40000000>, <0x3000000 0x8 0x0 0x8 0x0 0x4 0x0>;/);
    // Slot 1, INTA swizzles to PCIE_IRQ + 1.
    assert.match(pci, /<0x800 0x0 0x0 0x1 &plic 0x21>/);
    assert.match(pci, /bus-range = <0x0 0xff>;/);
  });

  it("leaves the PCIe host out when asked", { skip: dtcSkip }, () => {
    const dts = devicetreeSource({ preset: "riscv64-virt" }, RISCV, { pci: false });
    assertCompiles(dts, "riscv64-virt without PCI");
    assert.doesNotMatch(dts, /pci@/);
  });

  it("compiles without a warning for random plans: any devices at distinct places, any number of vCPUs", { skip: dtcSkip }, () => {
    const kinds: GuestDeviceKind[] = ["virtio-mmio", "serial", "rtc", "vmgenid", "vmclock", "other"];
    fc.assert(
      fc.property(
        fc.constantFrom("riscv64-virt" as const, "firecracker-aarch64" as const),
        fc.uniqueArray(fc.integer({ min: 0, max: 0xfff }), { maxLength: 12 }),
        fc.array(fc.constantFrom(...kinds), { minLength: 12, maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        fc.boolean(),
        (preset, slots, kindOf, cpus, pci) => {
          const devices = slots.map((slot, i) => dev(`d${i}`, kindOf[i]!, 0x1000_0000n + BigInt(slot) * 0x1000n, 0x1000n, [1 + (slot % 90)]));
          assertCompiles(devicetreeSource({ preset }, devices, { cpus, pci }), `${preset} with ${devices.length} devices`);
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe("devicetreeSource: refusals", () => {
  it("refuses x86 presets, saying where their guests look instead", () => {
    for (const preset of layoutNames.filter((n) => n.endsWith("x86_64"))) {
      assert.throws(() => devicetreeSource({ preset }, []), (e: unknown) => e instanceof AllocatorError && e.code === "InvalidArgument" && /x86_64 machine.*ACPI tables and the kernel command line/.test(e.message));
    }
  });

  it("refuses a node without exactly one register block or interrupt, bad vCPU counts and unknown presets", () => {
    const bad = (f: () => unknown, re: RegExp, code = "InvalidArgument") => assert.throws(f, (e: unknown) => e instanceof AllocatorError && e.code === code && re.test(e.message));
    bad(() => devicetreeSource({ preset: "riscv64-virt" }, [{ name: "s", kind: "serial", mmio: [], irqs: [10] }]), /^s \(serial\) holds 0 MMIO ranges/);
    bad(() => devicetreeSource({ preset: "riscv64-virt" }, [{ ...dev("s", "serial", 0x1000_0000n, 0x100n, []) }]), /^s \(serial\) holds 0 interrupts/);
    bad(() => devicetreeSource({ preset: "riscv64-virt" }, [{ ...dev("v", "virtio-mmio", 0x1000_1000n, 0x1000n, [1, 2]) }]), /^v \(virtio-mmio\) holds 2 interrupts/);
    for (const cpus of [0, 513, 1.5, Number.NaN]) bad(() => devicetreeSource({ preset: "riscv64-virt" }, [], { cpus }), /options\.cpus must be an integer from 1 to 512/);
    bad(() => devicetreeSource({ preset: "nope" as never }, []), /no layout named/, "NotFound");
    bad(() => devicetreeSource({ preset: "riscv64-virt", parameters: { physAddressBits: 40 } }, []), /takes only ramSize/);
  });
});
