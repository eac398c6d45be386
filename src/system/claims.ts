/**
 * Claims: what devices hold that is not a plain allocation of a pool.
 *
 * - A **shared id** is one legacy IRQ line held by several devices at once (Firecracker's COM1
 *   and COM3 on IRQ 4, PCI INTx lines). The pool holds the line once, under its first holder;
 *   the claim lists every holder, and the line is freed when the last one lets go.
 * - A **use** is a part of a platform reservation that a device takes as the platform meant it (a
 *   serial port inside the ISA port block, a device on an IRQ line the platform set aside). The
 *   reservation stays; the use records who sits in it, so that two devices never sit on the same
 *   part and so that the device's owner lists what it holds.
 *
 * Both are small (legacy devices and lines), so they live in maps scanned linearly where needed.
 */
import { lineSharingConflict } from "../core/line-sharing.js";
import { AllocatorError } from "../core/errors.js";

/** Holders of one id that several devices hold, or that devices use inside a reservation. */
export interface IdClaim {
  /** In the order they took it; the first is the pool's owner of a shared (unreserved) line. */
  readonly holders: string[];
  /** Every holder asked for a shared line; otherwise there is exactly one holder. */
  readonly shared: boolean;
}

/** A device's use of part of a reserved address range. */
export interface RangeUse {
  readonly start: bigint;
  readonly end: bigint;
  readonly owner: string;
}

/** The claims of one id pool. */
export class IdClaims {
  readonly #byId = new Map<number, IdClaim>();
  /**
   * The ids each holder has a claim on. Thousands of devices can share a few INTx lines, and
   * `allocationsOf(owner)` must not scan every holder of every line.
   */
  readonly #byOwner = new Map<string, Set<number>>();

  #index(owner: string, id: number): void {
    let ids = this.#byOwner.get(owner);
    if (ids === undefined) this.#byOwner.set(owner, (ids = new Set()));
    ids.add(id);
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: number): IdClaim | undefined {
    return this.#byId.get(id);
  }

  /** Starts a claim with one holder. */
  open(id: number, owner: string, shared: boolean): void {
    this.#byId.set(id, { holders: [owner], shared });
    this.#index(owner, id);
  }

  /** Adds a holder to an open claim without the sharing checks (restoring a validated snapshot). */
  restoreHolder(id: number, owner: string): void {
    this.#byId.get(id)!.holders.push(owner);
    this.#index(owner, id);
  }

  /**
   * Adds `owner` to the claim of `id` when both sides share, or explains why not.
   * @returns undefined when added, else the reason it cannot be (for an `Overlap` message).
   */
  join(id: number, owner: string, shared: boolean): string | undefined {
    const claim = this.#byId.get(id)!;
    const why = lineSharingConflict(claim.holders, claim.shared, owner, shared);
    if (why !== undefined) return why;
    claim.holders.push(owner);
    this.#index(owner, id);
    return undefined;
  }

  /**
   * Removes `owner` from the claim of `id`.
   * @returns the holders left, or undefined when `owner` holds no claim on `id`.
   */
  leave(id: number, owner: string): readonly string[] | undefined {
    const claim = this.#byId.get(id);
    if (claim === undefined) return undefined;
    const i = claim.holders.indexOf(owner);
    if (i < 0) return undefined;
    claim.holders.splice(i, 1);
    if (claim.holders.length === 0) this.#byId.delete(id);
    const ids = this.#byOwner.get(owner)!;
    ids.delete(id);
    if (ids.size === 0) this.#byOwner.delete(owner);
    return claim.holders;
  }

  /** True when the owner index lists exactly the claims' holders (for `checkValid`). */
  indexAgrees(): boolean {
    let pairs = 0;
    for (const [id, c] of this.#byId) {
      for (const h of c.holders) {
        if (this.#byOwner.get(h)?.has(id) !== true) return false;
        pairs++;
      }
    }
    let indexed = 0;
    for (const ids of this.#byOwner.values()) indexed += ids.size;
    return indexed === pairs;
  }

  /** The ids `owner` has a claim on, ascending. */
  idsOf(owner: string): number[] {
    const ids = this.#byOwner.get(owner);
    return ids === undefined ? [] : [...ids].sort((a, b) => a - b);
  }


  /** Every claim, by ascending id. */
  entries(): [number, IdClaim][] {
    return [...this.#byId].sort((a, b) => a[0] - b[0]);
  }

  clear(): void {
    this.#byId.clear();
    this.#byOwner.clear();
  }
}

/** The uses of reserved ranges in one address pool. */
export class RangeUses {
  readonly #byStart = new Map<bigint, RangeUse>();

  get size(): number {
    return this.#byStart.size;
  }

  /** The use that starts at `start` and ends at `end`, if any. */
  exactly(start: bigint, end: bigint): RangeUse | undefined {
    const u = this.#byStart.get(start);
    return u !== undefined && u.end === end ? u : undefined;
  }

  /** The first use overlapping [start, end], if any. */
  overlapping(start: bigint, end: bigint): RangeUse | undefined {
    for (const u of this.#byStart.values()) if (u.start <= end && start <= u.end) return u;
    return undefined;
  }

  add(use: RangeUse): void {
    if (this.#byStart.has(use.start)) throw new AllocatorError("InvalidState", "a use already starts there");
    this.#byStart.set(use.start, use);
  }

  delete(start: bigint): void {
    this.#byStart.delete(start);
  }

  /** The uses of `owner`, by address. */
  of(owner: string): RangeUse[] {
    return this.all().filter((u) => u.owner === owner);
  }

  /** Every use, by address. */
  all(): RangeUse[] {
    return [...this.#byStart.values()].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }

  clear(): void {
    this.#byStart.clear();
  }
}
