/**
 * One live BAR as the device manager sees it: a device of its own, registered with one PIO or
 * MMIO range (the BAR's allocation), that forwards the guest's accesses to the function's
 * handler, or to the MSI-X table and PBA when they live in this BAR.
 *
 * Each BAR is its own device-manager device so that it can be re-placed on its own (see
 * `bar-mapper.ts`) while the function's other BARs stay put.
 *
 * The allocation and the routing are separate: a BAR keeps its allocation while the guest has
 * decoding disabled or while the base it wrote collides with something; it is *routed* only when
 * decoding is on and its register names the place it holds. An access to an unrouted BAR's
 * allocation reads all ones and writes are dropped, as if nothing were there.
 */
import type { RangeInclusive } from "../core/range.js";
import type { Device } from "../devices/device.js";
import type { PciBar } from "./bar.js";
import type { PciMsixCapability } from "./msix.js";

/** What a BAR region needs from its function: the device's handlers. */
export interface PciBarHandler {
  /** Fills `data` with what the guest reads at `offset` inside BAR number `bar`. */
  barRead?(bar: number, offset: bigint, data: Uint8Array): void;
  /** Takes what the guest writes at `offset` inside BAR number `bar`. */
  barWrite?(bar: number, offset: bigint, data: Uint8Array): void;
}

/** The MSI-X structures inside one BAR, as byte offsets from the BAR's start. */
interface MsixWindows {
  readonly capability: PciMsixCapability;
  /** Table bounds [start, end), or end 0 when the table is elsewhere. */
  readonly tableStart: number;
  readonly tableEnd: number;
  readonly pbaStart: number;
  readonly pbaEnd: number;
}

/** One BAR's allocation, routing state and dispatch. */
export class PciBarRegion implements Device {
  /** Device-manager name: `virtio-blk 0000:00:03.0 BAR 4`. */
  readonly name: string;
  /** The BAR this region serves, as the device declared it. */
  readonly bar: PciBar;
  /** The function's address, for messages and hooks. */
  readonly functionName: string;
  /** Instance id of this region in the device manager (changes when the region is re-placed). */
  instanceId = -1;
  /** The place the BAR holds (its allocation), mapped on the bus. */
  range!: RangeInclusive;
  /** True while guest accesses reach the function. */
  routed = false;
  /** The base the guest wrote that could not be mapped, while it cannot. */
  pending: bigint | undefined = undefined;
  /** The base the guest's register names, or undefined while decoding is off or the BAR is being sized. */
  target: () => bigint | undefined;
  /** True when the register names a place (even with decoding off) other than `range`. */
  stale: () => boolean;
  readonly #handler: PciBarHandler;
  #msix: MsixWindows | undefined;

  /** The device-manager device that serves one BAR of a function (its accesses go to `handler`). */
  constructor(
    functionName: string,
    deviceName: string,
    bar: PciBar,
    handler: PciBarHandler,
    target: () => bigint | undefined,
    stale: () => boolean,
  ) {
    this.functionName = functionName;
    this.name = `${deviceName} ${functionName} BAR ${bar.index}`;
    this.bar = bar;
    this.#handler = handler;
    this.target = target;
    this.stale = stale;
  }

  /** Routes the MSI-X table and/or PBA of `capability` that live in this BAR. */
  attachMsix(capability: PciMsixCapability, table: { start: number; end: number } | undefined, pba: { start: number; end: number } | undefined): void {
    this.#msix = {
      capability,
      tableStart: table?.start ?? 0,
      tableEnd: table?.end ?? 0,
      pbaStart: pba?.start ?? 0,
      pbaEnd: pba?.end ?? 0,
    };
  }

  read(_base: bigint, offset: bigint, data: Uint8Array): void {
    if (!this.routed) {
      data.fill(0xff);
      return;
    }
    const m = this.#msix;
    if (m !== undefined) {
      const o = Number(offset);
      if (o < m.tableEnd && o >= m.tableStart) return m.capability.tableRead(o - m.tableStart, data);
      if (o < m.pbaEnd && o >= m.pbaStart) return m.capability.pbaRead(o - m.pbaStart, data);
    }
    const h = this.#handler;
    if (h.barRead === undefined) data.fill(0);
    else h.barRead(this.bar.index, offset, data);
  }

  write(_base: bigint, offset: bigint, data: Uint8Array): void {
    if (!this.routed) return;
    const m = this.#msix;
    if (m !== undefined) {
      const o = Number(offset);
      if (o < m.tableEnd && o >= m.tableStart) return m.capability.tableWrite(o - m.tableStart, data);
      if (o < m.pbaEnd && o >= m.pbaStart) return; // the PBA is read-only
    }
    this.#handler.barWrite?.(this.bar.index, offset, data);
  }
}
