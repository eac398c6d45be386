/**
 * Port I/O in O(1): one route per port for the 64 Ki ports an x86 guest can address, as the
 * hand-written tables of JavaScript emulators do it (v86 keeps 65 536 per-port entries). A port
 * is one byte wide, so every slot is exact: the route mapping that port, or the unmapped sentinel.
 * Mappings of an I/O bus above 0xffff (legal, never reachable by `in`/`out`) are left to the
 * exact index.
 */
import type { RangeIndex } from "./range-index.js";
import type { Route } from "./route.js";

/** Number of ports the table covers: 0 to 0xffff. */
const PORTS = 0x10000;
const PORTS_BIG = BigInt(PORTS);

/** A direct table of the routes of ports 0 to 0xffff. */
export class PortTable<D> {
  /** `slots[port]` is the route of `port`, or the unmapped sentinel. Read by the bus's hot path. */
  readonly slots: Route<D>[];
  readonly #unmapped: Route<D>;
  /** Slots holding a route rather than the sentinel, so that {@link violation} need not scan. */
  #mapped = 0;

  constructor(unmapped: Route<D>) {
    this.#unmapped = unmapped;
    this.slots = new Array<Route<D>>(PORTS).fill(unmapped);
  }

  /** Points the ports of `route`'s range below 0x10000 at it (on insert). */
  map(route: Route<D>): void {
    this.#fill(route, route);
  }

  /** Points the ports of `route`'s range back at the sentinel (on removal). */
  unmap(route: Route<D>): void {
    this.#fill(route, this.#unmapped);
  }

  #fill(route: Route<D>, value: Route<D>): void {
    if (route.start >= PORTS_BIG) return;
    const first = Number(route.start);
    const last = route.end >= PORTS_BIG ? PORTS - 1 : Number(route.end);
    // A loop, not Array.prototype.fill, which is several times slower on this large array.
    const slots = this.slots;
    for (let p = first; p <= last; p++) slots[p] = value;
    this.#mapped += value === this.#unmapped ? first - last - 1 : last - first + 1;
  }

  /**
   * Checks the table against the index in time proportional to the mapped ports: each route's
   * ports point at it, and no other slot holds a route (the count of mapped slots matches).
   * @returns a description of the first violation, or undefined.
   */
  violation(index: RangeIndex<D>): string | undefined {
    if (this.slots.length !== PORTS) return `the port table has ${this.slots.length} slots`;
    let expected = 0;
    for (let i = 0; i < index.size; i++) {
      const route = index.at(i);
      if (route.start >= PORTS_BIG) break;
      const first = Number(route.start);
      const last = route.end >= PORTS_BIG ? PORTS - 1 : Number(route.end);
      for (let p = first; p <= last; p++) {
        if (this.slots[p] !== route) return `port 0x${p.toString(16)} does not route to ${route.owner}`;
      }
      expected += last - first + 1;
    }
    if (expected !== this.#mapped) return `${this.#mapped} port slots are mapped, the mappings cover ${expected}`;
    return undefined;
  }
}
