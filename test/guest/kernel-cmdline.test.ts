import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AllocatorError } from "../../src/core/errors.js";
import { guestDeviceKind, type GuestDevice } from "../../src/guest/guest-device.js";
import { virtioMmioArgument, virtioMmioCmdline } from "../../src/guest/kernel-cmdline.js";

const virtio = (name: string, start: bigint, size: bigint, irq: number, more: GuestDevice["mmio"] = []): GuestDevice => ({
  name,
  kind: "virtio-mmio",
  mmio: [{ start, end: start + size - 1n }, ...more],
  irqs: [irq],
});

describe("virtioMmioArgument", () => {
  it("writes sizes with the largest suffix that divides them, as linux-loader does", () => {
    const arg = (size: bigint, base = 0x1000n) => virtioMmioArgument({ start: base, end: base + size - 1n }, 5);
    // linux-loader's own example: add_virtio_mmio_device(1 << 12, GuestAddress(0x1000), 5, ..) -> "4K@0x1000:5".
    assert.equal(arg(0x1000n), "virtio_mmio.device=4K@0x1000:5");
    assert.equal(arg(0x20_0000n), "virtio_mmio.device=2M@0x1000:5");
    assert.equal(arg(1n << 30n), "virtio_mmio.device=1G@0x1000:5");
    assert.equal(arg(3n << 30n), "virtio_mmio.device=3G@0x1000:5");
    assert.equal(arg(0x1800n), "virtio_mmio.device=6K@0x1000:5");
    assert.equal(arg(0x200n), "virtio_mmio.device=512@0x1000:5");
    assert.equal(arg(1n, 0n), "virtio_mmio.device=1@0x0:5");
    assert.equal(arg(1n << 40n, 0n), "virtio_mmio.device=1024G@0x0:5");
    // The whole u64 space is 2^64 bytes: 16 EiB = 2^34 G.
    assert.equal(virtioMmioArgument({ start: 0n, end: (1n << 64n) - 1n }, 0), "virtio_mmio.device=17179869184G@0x0:0");
    assert.equal(virtioMmioArgument({ start: 0xffff_ffff_ffff_f000n, end: 0xffff_ffff_ffff_ffffn }, 4095), "virtio_mmio.device=4K@0xfffffffffffff000:4095");
  });

  it("refuses a reversed range", () => {
    assert.throws(() => virtioMmioArgument({ start: 2n, end: 1n }, 5), (e: unknown) => e instanceof AllocatorError && e.code === "InvalidRange");
  });

  it("matches the kernel's own parser on random transports: size, base and irq read back", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 52n) - 1n }), fc.bigInt({ min: 1n, max: 1n << 40n }), fc.integer({ min: 0, max: 4095 }), (base, size, irq) => {
        const text = virtioMmioArgument({ start: base, end: base + size - 1n }, irq);
        // The kernel's vm_cmdline_set reads "<size>[KMG]@<base>:<irq>" with memparse.
        const m = /^virtio_mmio\.device=(\d+)([KMG]?)@0x([0-9a-f]+):(\d+)$/.exec(text);
        assert.ok(m !== null, text);
        const unit = { "": 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n }[m[2] as "" | "K" | "M" | "G"];
        assert.equal(BigInt(m[1]!) * unit, size);
        assert.equal(BigInt(`0x${m[3]!}`), base);
        assert.equal(Number(m[4]), irq);
      }),
    );
  });
});

describe("virtioMmioCmdline", () => {
  it("lists the virtio-mmio devices in order, one argument each, and nothing else", () => {
    const devices: GuestDevice[] = [
      { name: "serial0", kind: "serial", mmio: [], irqs: [4] },
      virtio("virtio-blk0", 0xc000_1000n, 0x1000n, 5),
      // A pmem device: its backing region is not part of the transport.
      virtio("virtio-pmem0", 0xc000_2000n, 0x1000n, 6, [{ start: 512n << 30n, end: (512n << 30n) + 0xfff_ffffn }]),
      { name: "vmgenid", kind: "vmgenid", mmio: [{ start: 0xdfff0n, end: 0xdffffn }], irqs: [7] },
    ];
    assert.equal(virtioMmioCmdline(devices), "virtio_mmio.device=4K@0xc0001000:5 virtio_mmio.device=4K@0xc0002000:6");
    assert.equal(virtioMmioCmdline([]), "");
    assert.equal(virtioMmioCmdline(devices.filter((d) => d.kind !== "virtio-mmio")), "");
  });

  it("refuses a transport without a register block or with other than one interrupt, naming it", () => {
    const bad = (d: GuestDevice) => assert.throws(() => virtioMmioCmdline([d]), (e: unknown) => e instanceof AllocatorError && e.code === "InvalidArgument" && e.message.startsWith(`${d.name} is a virtio-mmio device`));
    bad({ name: "v0", kind: "virtio-mmio", mmio: [], irqs: [5] });
    bad({ name: "v1", kind: "virtio-mmio", mmio: [{ start: 0n, end: 0xfffn }], irqs: [] });
    bad({ name: "v2", kind: "virtio-mmio", mmio: [{ start: 0n, end: 0xfffn }], irqs: [5, 6] });
  });
});

describe("guestDeviceKind", () => {
  it("names kinds from device names the way layout files spell them", () => {
    assert.equal(guestDeviceKind("virtio-blk0", 1, 1), "virtio-mmio");
    assert.equal(guestDeviceKind("virtio-pmem0", 2, 1), "virtio-mmio");
    assert.equal(guestDeviceKind("virtio-net-pci0", 2, 0), "other"); // MSI-only: a PCI function, not a transport
    assert.equal(guestDeviceKind("virtio-x", 0, 1), "other");
    assert.equal(guestDeviceKind("serial0", 1, 1), "serial");
    assert.equal(guestDeviceKind("UART0", 1, 1), "serial");
    assert.equal(guestDeviceKind("rtc", 1, 1), "rtc");
    assert.equal(guestDeviceKind("vmgenid", 1, 1), "vmgenid");
    assert.equal(guestDeviceKind("vmclock", 1, 1), "vmclock");
    assert.equal(guestDeviceKind("nvme0", 1, 0), "other");
  });
});
