/**
 * The shape of a system allocator as the device manager sees it: a source of allocation
 * callbacks. It is structural on purpose, so that the device manager never depends on a concrete
 * allocator class; any object with these four methods (and optionally `holdingsCallback` and
 * `outsideCallback`) will do.
 */
import type { AddrAllocateFunc, HoldingsFunc, IdAllocateFunc, OutsideFunc } from "./allocation-callbacks.js";

/**
 * Something that can hand out the allocation callbacks a device manager needs. A method returns
 * undefined when the system has no allocator for that resource; requests for it must then carry
 * fixed values.
 */
export interface SystemAllocator {
  /** Allocates and frees device instance ids. */
  deviceIdCallback(): IdAllocateFunc | undefined;
  /** Allocates and frees interrupt lines: legacy IRQs (`pool: "legacy"`) and MSI GSIs (`pool: "msi"`). */
  irqCallback(): IdAllocateFunc | undefined;
  /** Allocates and frees port-I/O ranges. */
  pioAddressCallback(): AddrAllocateFunc | undefined;
  /** Allocates and frees MMIO ranges. */
  mmioAddressCallback(): AddrAllocateFunc | undefined;
  /** Optional: lists what is held per owner, so that a device manager can prove agreement. */
  holdingsCallback?(): HoldingsFunc | undefined;
  /** Optional: says whether a value lies outside every pool, so that "outside" records can be verified. */
  outsideCallback?(): OutsideFunc | undefined;
}
