/**
 * The layout `vm-allocator plan` uses without a file: a Firecracker v1.16 x86_64 microVM with
 * the devices attached the way Firecracker attaches them (firecracker-microvm/firecracker
 * v1.16.1).
 *
 * - The legacy devices of `src/vmm/src/device_manager/legacy.rs`: COM1 (`SERIAL_PORT_ADDRESS`
 *   0x3f8, `SERIAL_PORT_SIZE` 8 ports, `COM1_GSI` 4) and the i8042 (0x60, 5 ports, `KBD_EVT_GSI`
 *   1). Since v1.16 there are no COM2-COM4 and x86 has no CMOS RTC. Both GSIs lie below the
 *   legacy pool (5..23) and their ports outside every pool: they are only mapped.
 * - The virtio devices in the order `build_microvm_for_boot` (`src/vmm/src/builder.rs`) attaches
 *   them: balloon, block devices, network devices, pmem devices, vsock, entropy. Each is a
 *   virtio-mmio transport (`src/vmm/src/device_manager/mmio.rs` `allocate_mmio_resources`): the
 *   lowest free legacy GSI, then one `MMIO_LEN` (0x1000) slot at 0x1000 alignment, FirstMatch.
 *   A pmem device also holds its backing region in the pool past the 64-bit MMIO, aligned to
 *   `Pmem::ALIGNMENT` (2 MiB; `src/vmm/src/devices/virtio/pmem/device.rs`); its size is the
 *   backing file's, 256 MiB here.
 * - Then vmgenid and vmclock (`src/vmm/src/devices/acpi/vmgenid.rs`, `vmclock.rs`), each a
 *   legacy GSI and a system-memory allocation placed with LastMatch: `VMGENID_MEM_SIZE` (16
 *   bytes, 8-byte aligned) and `VMCLOCK_SIZE` (0x1000, 0x1000-aligned).
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

/** A virtio-mmio transport: the IRQ first, as Firecracker takes it first. */
const virtio = (name: string, ...extra: JsonValue[]): JsonValue => ({
  name,
  requests: [{ kind: "irq" }, { kind: "mmio", size: "0x1000", alignment: "0x1000" }, ...extra],
});

/** The built-in default layout, as a layout file would hold it. */
export const DEFAULT_LAYOUT: JsonValue = {
  description: "Firecracker v1.16 x86_64 microVM: COM1 and the i8042, virtio-mmio devices in Firecracker's attach order, vmgenid and vmclock",
  preset: "firecracker-x86_64",
  devices: [
    legacy("serial0", 0x3f8, 8, 4),
    legacy("i8042", 0x60, 5, 1),
    virtio("virtio-balloon0"),
    virtio("virtio-blk0"),
    virtio("virtio-blk1"),
    virtio("virtio-net0"),
    virtio("virtio-net1"),
    virtio("virtio-pmem0", { kind: "mmio", size: "0x10000000", alignment: "0x200000", pool: "pastMmio64" }),
    virtio("virtio-vsock0"),
    virtio("virtio-rng0"),
    {
      name: "vmgenid",
      requests: [{ kind: "irq" }, { kind: "mmio", size: 16, alignment: 8, pool: "systemMemory", placement: "last" }],
    },
    {
      name: "vmclock",
      requests: [{ kind: "mmio", size: "0x1000", alignment: "0x1000", pool: "systemMemory", placement: "last" }, { kind: "irq" }],
    },
  ],
};
