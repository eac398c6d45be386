/**
 * The layout `vm-allocator plan` uses without a file: a Firecracker-like x86_64 microVM.
 *
 * The legacy devices are where Firecracker puts them. Its x86_64 `PortIODeviceManager`
 * (`src/vmm/src/device_manager/legacy.rs`) maps four 16550 UARTs of 8 ports each at the ISA COM
 * addresses 0x3f8, 0x2f8, 0x3e8 and 0x2e8, with COM1 and COM3 on GSI 4 and COM2 and COM4 on
 * GSI 3, and the i8042 keyboard controller at 0x60 for 5 ports (0x60-0x64, data and command
 * register) on GSI 1. Firecracker has no CMOS RTC on x86_64 (its RTC is the PL031 of aarch64);
 * the `rtc` here is the one every PC has, at CMOS ports 0x70-0x71 on ISA IRQ 8, so a plan shows
 * a fixed IRQ inside the allocator's pool too.
 *
 * The eight virtio devices are virtio-mmio transports as Firecracker attaches them: one 4 KiB
 * slot (`MMIO_LEN` = 0x1000) and one legacy IRQ each, both allocated.
 *
 * It is kept as a JSON value, and read through the same validation as a file, so that it cannot
 * drift from what a file could say; `examples/layouts/firecracker-default.json` is the same
 * layout as a file.
 */
import type { JsonValue } from "./json-source.js";

/** How the built-in default is named in output. */
export const DEFAULT_SOURCE = "built-in default";

/** A legacy device at its fixed ports and line; serial ports share their lines (COM1 and COM3 on IRQ 4). */
const legacy = (name: string, port: number, ports: number, irq: number, shared = false): JsonValue => ({
  name,
  requests: [
    { kind: "pio", size: ports, fixed: `0x${port.toString(16)}` },
    shared ? { kind: "irq", fixed: irq, shared: true } : { kind: "irq", fixed: irq },
  ],
});

const virtio = (name: string): JsonValue => ({
  name,
  requests: [{ kind: "mmio", size: "0x1000", alignment: "0x1000" }, { kind: "irq" }],
});

/** The built-in default layout, as a layout file would hold it. */
export const DEFAULT_LAYOUT: JsonValue = {
  description: "Firecracker-like x86_64 microVM: legacy devices at their fixed ports, eight virtio-mmio devices",
  preset: "firecracker-x86_64",
  devices: [
    legacy("serial0", 0x3f8, 8, 4, true),
    legacy("serial1", 0x2f8, 8, 3, true),
    legacy("serial2", 0x3e8, 8, 4, true),
    legacy("serial3", 0x2e8, 8, 3, true),
    legacy("i8042", 0x60, 5, 1),
    legacy("rtc", 0x70, 2, 8),
    virtio("virtio-blk0"),
    virtio("virtio-blk1"),
    virtio("virtio-net0"),
    virtio("virtio-net1"),
    virtio("virtio-vsock0"),
    virtio("virtio-balloon0"),
    virtio("virtio-rng0"),
    virtio("virtio-pmem0"),
  ],
};
