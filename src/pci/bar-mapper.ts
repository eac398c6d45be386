/**
 * Keeps each BAR's allocation in the device manager where the guest's register says, as far as
 * it can: the engine behind BAR reprogramming.
 *
 * - When a function is plugged, each BAR is allocated from its pool (naturally aligned) by
 *   registering its {@link PciBarRegion} with the device manager; the register starts at that
 *   base, as firmware would have left it.
 * - When the guest's register and the allocation disagree while decoding is on, the allocation is
 *   moved with `DeviceManager.moveRange`: the allocator is asked for exactly the new place
 *   (never a reservation: a guest must not put a BAR on the IOAPIC), the bus re-maps atomically,
 *   and a failure changes nothing.
 * - A move that collides leaves the BAR *pending*: the value stays in the register, the BAR is
 *   unrouted (its old allocation kept, answering nothing), the collision is counted and reported
 *   once per written base, and the move is retried whenever space may have been freed (a BAR
 *   moved, a function unplugged, decoding changed). It is mapped as soon as the collision is gone.
 * - A guest that permutes BARs with decoding off (SeaBIOS assigns every BAR before it enables
 *   any) would deadlock on allocations nobody wants any more: a BAR that collides only with
 *   *stale* BARs (unrouted ones whose registers name another place) re-places those elsewhere in
 *   their pools first. So Linux's and SeaBIOS's sequence, program everything with decoding off
 *   and then enable it, ends with every BAR routed unless the guest's own layout overlaps.
 *
 * The guest path never throws for anything the guest writes; what the VMM's callbacks or hooks
 * throw reaches the VMM.
 */
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";
import { hex, U64_MAX } from "../core/u64.js";
import type { DeviceManager } from "../devices/device-manager.js";
import type { MmioRequest, PioRequest } from "../devices/device.js";
import { barRequest, describeBarKind } from "./bar.js";
import type { PciBarRegion } from "./bar-region.js";

/** A guest-written base that could not be mapped, as reported to the hook. */
export interface PciBarConflict {
  /** The function's address, `0000:00:03.0`. */
  readonly function: string;
  /** The device-manager name of the BAR (`virtio-blk 0000:00:03.0 BAR 0`). */
  readonly owner: string;
  /** The BAR's register number, 0-5. */
  readonly bar: number;
  /** The BAR's kind, which decided the pool its place was asked from. */
  readonly kind: "io" | "mem32" | "mem64";
  /** The base the guest wrote. */
  readonly base: bigint;
  /** The BAR's size: ports for `io`, bytes otherwise. */
  readonly size: bigint;
  /** Why: the device manager's or the allocator's error (an `Overlap` names the other holder). */
  readonly error: AllocatorError;
  /** `0000:00:03.0: BAR 0 [mem 0xc0000000-0xc0000fff]: can't map: ...` */
  readonly message: string;
}

/** Places, moves and re-places BAR allocations through a device manager. */
export class PciBarMapper {
  #dm: DeviceManager;
  readonly #ioWindow: { readonly min: bigint; readonly max: bigint };
  readonly #onConflict: ((conflict: PciBarConflict) => void) | undefined;
  readonly #pending = new Set<PciBarRegion>();
  readonly #regions = new Set<PciBarRegion>();
  #retrying = false;
  #conflicts = 0;
  #evictions = 0;

  /**
   * Places, maps and moves the BARs of one host.
   * @param dm the device manager BARs are registered on and moved through.
   * @param ioWindow where I/O BARs may be placed and moved.
   * @param onConflict told of a guest-written base that collides (kept in the register, left unmapped).
   */
  constructor(dm: DeviceManager | undefined, ioWindow: { readonly min: bigint; readonly max: bigint }, onConflict?: (conflict: PciBarConflict) => void) {
    // Undefined only while a root complex is restored; `bind` gives it the restored manager.
    this.#dm = dm as DeviceManager;
    this.#ioWindow = ioWindow;
    this.#onConflict = onConflict;
  }

  /**
   * @internal Restore: takes the device manager restored with the BARs in it (the mapper was
   * built before it, so that the BAR objects could be handed to its restore).
   */
  bind(dm: DeviceManager): void {
    this.#dm = dm;
  }

  /**
   * @internal Restore: adopts a BAR whose allocation the restored device manager already holds
   * (its `instanceId`, `range`, `routed` and `pending` set from the snapshot), and the counters.
   */
  adopt(region: PciBarRegion): void {
    this.#regions.add(region);
    if (region.pending !== undefined) this.#pending.add(region);
  }

  /** @internal Restore: the counters of the snapshot. */
  restoreCounters(conflicts: number, evictions: number): void {
    this.#conflicts = conflicts;
    this.#evictions = evictions;
  }

  /** Guest-written bases that could not be mapped, counted once per base written. */
  get conflicts(): number {
    return this.#conflicts;
  }

  /** Stale BARs re-placed to make room for another one. */
  get evictions(): number {
    return this.#evictions;
  }

  /** The BARs waiting for their collision to go away. */
  pending(): PciBarRegion[] {
    return [...this.#pending];
  }

  /**
   * Allocates and maps a new BAR (unrouted until the guest enables decoding).
   * @throws what `fullRegisterDevice` throws; nothing is held then.
   */
  place(region: PciBarRegion): void {
    try {
      region.instanceId = this.#dm.fullRegisterDevice(region, [this.#request(region)]);
    } catch (error) {
      if (!(error instanceof AllocatorError)) throw error;
      // Name the BAR as a person thinks of it, not as the device manager's request list.
      const why = error.cause instanceof AllocatorError ? error.cause : error;
      throw new AllocatorError(error.code, `${region.name} (${describeBarKind(region.bar)}, ${hex(region.bar.size)} ${region.bar.kind === "io" ? "ports" : "bytes"}): ${why.message}`, {
        cause: error,
        owner: error.owner,
        device: error.device,
      });
    }
    region.range = this.#rangeOf(region);
    this.#regions.add(region);
  }

  /**
   * Unmaps a BAR and gives its allocation back (unplug), then retries the pending BARs.
   * @throws AllocatorError `InvalidState` when the allocator refused the free (the BAR is gone anyway).
   */
  remove(region: PciBarRegion, undo = false): void {
    region.routed = false;
    this.#pending.delete(region);
    this.#regions.delete(region);
    // `undo`: rolling back the place() of a plug that failed, so the allocator forgets the BAR.
    this.#dm.fullUnregisterDevice(region.instanceId, undo ? { undo: true } : undefined);
  }

  /** Brings one BAR in line with its register and decode bit, then retries the pending ones. */
  sync(region: PciBarRegion): void {
    this.#syncOne(region);
    this.retryPending();
  }

  /** Retries every pending BAR until none makes progress. */
  retryPending(): void {
    if (this.#retrying || this.#pending.size === 0) return;
    this.#retrying = true;
    try {
      let progress = true;
      while (progress && this.#pending.size > 0) {
        progress = false;
        for (const r of [...this.#pending]) {
          this.#syncOne(r);
          if (r.pending === undefined) progress = true;
        }
      }
    } finally {
      this.#retrying = false;
    }
  }

  #syncOne(region: PciBarRegion): void {
    if (!this.#regions.has(region)) return;
    const want = region.target();
    if (want === undefined) {
      // Decoding off or sizing: nothing to map, nothing to report.
      this.#settle(region, false);
      return;
    }
    if (want === region.range.start) {
      this.#settle(region, true);
      return;
    }
    region.routed = false;
    const error = this.#move(region, want);
    if (error === undefined) {
      this.#settle(region, true);
      return;
    }
    if (region.pending === want) return; // already reported
    region.pending = want;
    this.#pending.add(region);
    this.#conflicts++;
    const shown = this.#format(region, want);
    const conflict: PciBarConflict = {
      function: region.functionName,
      owner: region.name,
      bar: region.bar.index,
      kind: region.bar.kind,
      base: want,
      size: region.bar.size,
      error,
      message: `${region.functionName}: BAR ${region.bar.index} ${shown}: can't map: ${error.message}`,
    };
    this.#onConflict?.(conflict);
  }

  #settle(region: PciBarRegion, routed: boolean): void {
    region.routed = routed;
    region.pending = undefined;
    this.#pending.delete(region);
  }

  /** Moves the allocation to `base`; undefined on success, else why not (nothing changed). */
  #move(region: PciBarRegion, base: bigint): AllocatorError | undefined {
    const first = this.#tryMove(region, base);
    if (first === undefined || first.code !== "Overlap") return first;
    // Stale BARs in the way want to be elsewhere: re-place them and try once more.
    const bus = region.bar.kind === "io" ? this.#dm.pioBus : this.#dm.mmioBus;
    const blockers = bus.overlapping(RangeInclusive.withSize(base, region.bar.size)).map((m) => m.device);
    if (blockers.length === 0) return first;
    const stale: PciBarRegion[] = [];
    for (const d of blockers) {
      const other = d as PciBarRegion;
      if (other === region || !this.#regions.has(other) || other.routed || !other.stale()) return first;
      stale.push(other);
    }
    for (const other of stale) if (!this.#replace(other)) return first;
    return this.#tryMove(region, base);
  }

  #tryMove(region: PciBarRegion, base: bigint): AllocatorError | undefined {
    if (base > U64_MAX - (region.bar.size - 1n)) {
      return new AllocatorError("Overflow", `a BAR of ${hex(region.bar.size)} bytes at ${hex(base)} would end past 0xffffffffffffffff`);
    }
    try {
      region.range = this.#dm.moveRange(region.instanceId, region.range, base, region.bar.kind === "io" ? "pio" : "mmio");
      return undefined;
    } catch (error) {
      if (error instanceof AllocatorError) return error;
      throw error;
    }
  }

  /**
   * Gives a stale BAR a fresh place in its pool. The new place is held before the old one is
   * given back, so that the pool cannot hand back the very place being cleared; for that moment
   * the region is registered twice (both mappings lead to it, and it is unrouted anyway).
   * @returns false when its pool has no room (nothing changed).
   */
  #replace(region: PciBarRegion): boolean {
    let id: number;
    try {
      id = this.#dm.fullRegisterDevice(region, [this.#request(region)]);
    } catch (error) {
      if (error instanceof AllocatorError) return false;
      throw error;
    }
    const old = region.instanceId;
    region.instanceId = id;
    region.range = this.#rangeOf(region);
    this.#dm.fullUnregisterDevice(old);
    this.#evictions++;
    return true;
  }

  #request(region: PciBarRegion): PioRequest | MmioRequest {
    return barRequest(region.bar, this.#ioWindow);
  }

  #rangeOf(region: PciBarRegion): RangeInclusive {
    const r = this.#dm.resourcesOf(region.instanceId);
    const held = region.bar.kind === "io" ? r.pio[0] : r.mmio[0];
    if (held === undefined) throw new AllocatorError("InvalidState", `${region.name} holds no range in the device manager`);
    return held.range;
  }

  #format(region: PciBarRegion, base: bigint): string {
    const end = base + region.bar.size - 1n;
    const shown = end > U64_MAX ? `${hex(base)}+${hex(region.bar.size)}` : `${hex(base)}-${hex(end)}`;
    return `[${region.bar.kind === "io" ? "io" : "mem"} ${shown}${region.bar.kind === "io" ? "" : describeBarKind(region.bar).slice(3)}]`;
  }
}
