/**
 * The change feed of a bus: listeners told of every mapping added, removed or moved, after the
 * change, in the order the changes happened.
 */
import { AllocatorError } from "../core/errors.js";
import type { BusMapping } from "./bus.js";
import type { Device } from "./device.js";

/**
 * One change of a bus's map, delivered to {@link Bus.subscribe} listeners after it happened.
 * @typeParam D what the bus maps, as in {@link Bus}.
 * @property type What happened: a mapping `"added"` (`insert`), `"removed"` (`remove`) or
 * `"moved"` (`move`, one atomic step).
 * @property mapping The mapping as it is after the change; for `"removed"`, the mapping as it was
 * until it went away.
 * @property from For `"moved"`: the mapping as it was before the move (the same device and owner,
 * the old range).
 */
export type BusChange<D = Device> =
  | { readonly type: "added"; readonly mapping: BusMapping<D> }
  | { readonly type: "removed"; readonly mapping: BusMapping<D> }
  | { readonly type: "moved"; readonly from: BusMapping<D>; readonly mapping: BusMapping<D> };

/**
 * A listener of {@link Bus.subscribe}.
 * @typeParam D what the bus maps, as in {@link Bus}.
 */
export type BusChangeListener<D = Device> = (change: BusChange<D>) => void;

/**
 * Listeners and the changes waiting for them. A change made by a listener is queued and delivered
 * after the current one, to every listener, so that all of them see one order. A listener's
 * exception cannot undo the change it was told of, so it does not reach the code that changed
 * the map: it is rethrown from a microtask, where the host reports it as uncaught.
 */
export class ChangeFeed<D> {
  /** Typed loosely so that a bus of a device subtype stays assignable to `Bus<Device>`. */
  #listeners: readonly unknown[] = [];
  #pending: BusChange<D>[] = [];
  #delivering = false;

  /** True when someone listens (so that a bus builds no change nobody reads). */
  get active(): boolean {
    return this.#listeners.length > 0;
  }

  /**
   * Adds `listener`; a listener added during a delivery hears only later changes.
   * @returns a function that removes it (idempotent).
   * @throws AllocatorError `InvalidArgument` when `listener` is not a function.
   */
  subscribe(listener: BusChangeListener<D>): () => void {
    if (typeof listener !== "function") throw new AllocatorError("InvalidArgument", "listener must be a function");
    this.#listeners = [...this.#listeners, listener];
    let subscribed = true;
    return () => {
      if (!subscribed) return;
      subscribed = false;
      const at = this.#listeners.indexOf(listener);
      if (at >= 0) this.#listeners = [...this.#listeners.slice(0, at), ...this.#listeners.slice(at + 1)];
    };
  }

  /** Delivers `change` (frozen) to every listener, after the changes already waiting. */
  emit(change: BusChange<D>): void {
    if (this.#listeners.length === 0) return;
    this.#pending.push(Object.freeze(change));
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let c = this.#pending.shift(); c !== undefined; c = this.#pending.shift()) {
        for (const listener of this.#listeners) {
          try {
            (listener as BusChangeListener<D>)(c);
          } catch (error) {
            queueMicrotask(() => {
              throw error;
            });
          }
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}
