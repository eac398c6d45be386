/**
 * The kernel command-line fragment a VMM passes for its virtio-mmio devices, in the form the
 * Linux `virtio_mmio` driver reads (`virtio_mmio.device=<size>@<base>:<irq>`,
 * Documentation/admin-guide/kernel-parameters.txt) and exactly as Firecracker writes it through
 * rust-vmm's linux-loader (`Cmdline::add_virtio_mmio_device`): the size with the largest of
 * the suffixes G, M and K that divides it, the base in lower-case hex.
 */
import { AllocatorError } from "../core/errors.js";
import type { GuestDevice } from "./guest-device.js";

/** `size` as linux-loader prints it: `4K`, `2M`, `1G`, or plain bytes. */
function sizeText(size: bigint): string {
  for (const [suffix, unit] of [["G", 1n << 30n], ["M", 1n << 20n], ["K", 1n << 10n]] as const) {
    if (size % unit === 0n) return `${size / unit}${suffix}`;
  }
  return size.toString();
}

/**
 * One `virtio_mmio.device=` argument.
 * @throws AllocatorError `InvalidRange` when `end` is below `start`.
 */
export function virtioMmioArgument(range: { readonly start: bigint; readonly end: bigint }, irq: number): string {
  if (range.end < range.start) throw new AllocatorError("InvalidRange", `invalid range: end 0x${range.end.toString(16)} is below start 0x${range.start.toString(16)}`);
  return `virtio_mmio.device=${sizeText(range.end - range.start + 1n)}@0x${range.start.toString(16)}:${irq}`;
}

/**
 * The command-line fragment for every virtio-mmio device of `devices`, in their order (a VMM
 * appends them as it attaches the devices), separated by spaces; the empty string when there is
 * none.
 *
 * ```ts
 * virtioMmioCmdline([{ name: "virtio-blk0", kind: "virtio-mmio", mmio: [{ start: 0xc000_1000n, end: 0xc000_1fffn }], irqs: [5] }]);
 * // "virtio_mmio.device=4K@0xc0001000:5"
 * ```
 * The transport is the device's first MMIO range (further ones, such as a pmem backing region,
 * are not part of it).
 * @throws AllocatorError `InvalidArgument` for a virtio-mmio device without an MMIO range or
 *   without exactly one interrupt (the transport has one register block and one line).
 */
export function virtioMmioCmdline(devices: readonly GuestDevice[]): string {
  const out: string[] = [];
  for (const d of devices) {
    if (d.kind !== "virtio-mmio") continue;
    const range = d.mmio[0];
    const irq = d.irqs[0];
    if (d.irqs.length !== 1 || range === undefined || irq === undefined) {
      throw new AllocatorError(
        "InvalidArgument",
        `${d.name} is a virtio-mmio device with ${d.mmio.length} MMIO ranges and ${d.irqs.length} interrupts; a transport has a register block and one interrupt line`,
      );
    }
    out.push(virtioMmioArgument(range, irq));
  }
  return out.join(" ");
}
