/**
 * Message-signalled interrupt vectors held on a guest's behalf.
 *
 * A function's MSI or MSI-X vectors get a GSI from the MSI pool (the `irq` callback with
 * `pool: "msi"`) only when the guest enables them or unmasks one, as cloud-hypervisor does, so
 * that a 2 048-vector device whose driver uses 9 holds 9 GSIs. They are given back when the guest
 * disables the capability and when the function is unplugged.
 *
 * These calls happen inside a guest's configuration or MMIO write, which must never throw: a
 * refusal (the pool is empty, there is no callback) leaves the vector without a GSI, so its
 * messages are dropped, and is counted and reported to a hook instead. Should a hook throw, the
 * error reaches the VMM's dispatch call; the state is settled before the hook runs.
 */
import { AllocatorError } from "../core/errors.js";
import type { IdAllocateFunc } from "../system/allocation-callbacks.js";

/** One interrupt message as a function sends it. */
export interface PciMsiMessage {
  /** The GSI the vector holds: what a VMM routes (with `address` and `data`) to a vCPU. */
  readonly gsi: number;
  /** The message address the guest programmed. */
  readonly address: bigint;
  /** The message data the guest programmed (for multi-message MSI, with the vector number in its low bits). */
  readonly data: number;
  /** The vector's number in its capability. */
  readonly vector: number;
  /** Which capability the vector belongs to: MSI or MSI-X. */
  readonly capability: "msi" | "msix";
  /** Who sent it: the owner string of the function's vectors. */
  readonly owner: string;
}

/** A GSI that could not be held or given back, as reported to the hook. */
export interface PciVectorFailure {
  /**
   * What failed: holding a GSI (the guest enabled or unmasked a vector; its messages are dropped)
   * or giving one back.
   */
  readonly action: "hold" | "release";
  /**
   * The owner the GSI was held or given back under: the function's name and capability
   * (`virtio-net 0000:00:03.0 MSI-X`).
   */
  readonly owner: string;
  /** The vector's number in its capability. */
  readonly vector: number;
  /**
   * What the callback threw (an `AllocatorError` `MissingAllocator` when there is no irq callback),
   * unchanged.
   */
  readonly error: unknown;
}

/** Holds and gives back MSI GSIs through an `irq` callback, never throwing. */
export class PciVectorSource {
  readonly #irq: IdAllocateFunc | undefined;
  readonly #onFailure: ((failure: PciVectorFailure) => void) | undefined;
  #failures = 0;
  #held = 0;

  /**
   * The source of MSI and MSI-X GSIs for the functions of one host.
   * @param irq the irq callback vectors are held through (`pool: "msi"`); without one no vector is ever held.
   * @param onFailure told of a hold or release the callback refused (never thrown at the guest).
   */
  constructor(irq: IdAllocateFunc | undefined, onFailure?: (failure: PciVectorFailure) => void) {
    this.#irq = irq;
    this.#onFailure = onFailure;
  }

  /** Holds and releases that failed since creation. */
  get failures(): number {
    return this.#failures;
  }

  /** GSIs currently held through this source. */
  get held(): number {
    return this.#held;
  }

  /** @internal Restore: counts `n` GSIs a restored capability holds (the allocator already holds them). */
  adopt(n: number): void {
    this.#held += n;
  }

  /** Holds one GSI for `owner`: the GSI, or -1 when refused (counted and reported). */
  hold(owner: string, vector: number): number {
    const irq = this.#irq;
    if (irq === undefined) {
      this.#fail("hold", owner, vector, new AllocatorError("MissingAllocator", `no irq callback to hold an MSI GSI for ${owner} vector ${vector}`));
      return -1;
    }
    try {
      const gsi: unknown = irq({ action: "allocate", owner, pool: "msi" });
      if (typeof gsi !== "number" || !Number.isInteger(gsi) || gsi < 0 || gsi > 0x7fff_ffff) {
        throw new AllocatorError("InvalidState", `the irq callback returned ${String(gsi)} for ${owner}, not a GSI`);
      }
      this.#held++;
      return gsi;
    } catch (error) {
      this.#fail("hold", owner, vector, error);
      return -1;
    }
  }

  /** Gives back a GSI held by {@link hold}; a refusal is counted and reported. */
  release(owner: string, vector: number, gsi: number): void {
    this.#held--;
    try {
      this.#irq!({ action: "free", owner, id: gsi, pool: "msi" });
    } catch (error) {
      this.#fail("release", owner, vector, error);
    }
  }

  #fail(action: "hold" | "release", owner: string, vector: number, error: unknown): void {
    this.#failures++;
    // Called last, with the state settled: what the VMM's hook throws reaches the VMM (as a
    // device's errors do through the bus), never a half-done change.
    this.#onFailure?.({ action, owner, vector, error });
  }
}
