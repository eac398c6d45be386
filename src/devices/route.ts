/**
 * A route is what the bus's fast tables hold: one mapping with everything a dispatch needs, in
 * one object of one hidden class, so that a table load and a bounds check decide an access.
 *
 * A table slot holds the only route touching its port, block or page, so
 * `lo <= address && address + width - 1 <= hi` proves that the access lies inside that route's
 * mapping, and anything else takes the exact path. Sentinels, table nodes and mixed-page markers
 * are routes too, with no targets and `lo = +Infinity`, so they fail that check without a type
 * test. A removed route leaves every table and is {@link Route.retire}d as well, so that a
 * reference held elsewhere can never dispatch.
 */
import type { BusMapping } from "./bus.js";
import { adaptDevice, type BufferRead, type BufferWrite, type Read16, type Read32, type Read8, type Targets, type Write16, type Write32, type Write8 } from "./width-adapter.js";

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_SAFE_BIG = BigInt(MAX_SAFE);

/** A mapping as the dispatch path sees it. */
export class Route<D = unknown> implements Targets {
  /**
   * First address as a number, when exact (below 2^53); +Infinity otherwise and for sentinels,
   * table nodes and retired routes, so that the fast bounds check fails.
   */
  lo: number;
  /** Last address as a number, capped at 2^53-1 (a sound bound for any safe address); -Infinity when not dispatchable. */
  hi: number;
  readonly start: bigint;
  readonly end: bigint;
  readonly device: D;
  readonly owner: string;
  /** The frozen public record handed to callers. */
  readonly mapping: BusMapping<D> | undefined;
  // The targets (see width-adapter.ts): null on markers, which is what makes them fail the
  // page-map fast check.
  readonly t8: Read8 | null;
  readonly t16: Read16 | null;
  readonly t32: Read32 | null;
  readonly u8: Write8 | null;
  readonly u16: Write16 | null;
  readonly u32: Write32 | null;
  readonly gr: BufferRead | null;
  readonly gw: BufferWrite | null;
  /** For a table node: the next level (the PAGES_PER_BLOCK page routes of one 128 KiB block). */
  sub: Route<D>[] | null;
  /** For a page shared by several mappings: the routes touching it, in address order. */
  list: Route<D>[] | null;
  /**
   * With `list`: the routes' first and last addresses, two numbers per route, so that resolving
   * an address in the page reads one small typed array rather than every route's fields.
   */
  bounds: Float64Array | null;

  constructor(mapping: BusMapping<D> | undefined, owner: string, device: D, f: Targets | null) {
    const start = mapping === undefined ? 0n : mapping.range.start;
    const end = mapping === undefined ? 0n : mapping.range.end;
    this.mapping = mapping;
    this.start = start;
    this.end = end;
    this.device = device;
    this.owner = owner;
    this.lo = mapping !== undefined && start <= MAX_SAFE_BIG ? Number(start) : Number.POSITIVE_INFINITY;
    this.hi = mapping === undefined ? Number.NEGATIVE_INFINITY : end <= MAX_SAFE_BIG ? Number(end) : MAX_SAFE;
    this.t8 = f === null ? null : f.t8;
    this.t16 = f === null ? null : f.t16;
    this.t32 = f === null ? null : f.t32;
    this.u8 = f === null ? null : f.u8;
    this.u16 = f === null ? null : f.u16;
    this.u32 = f === null ? null : f.u32;
    this.gr = f === null ? null : f.gr;
    this.gw = f === null ? null : f.gw;
    this.sub = null;
    this.list = null;
    this.bounds = null;
  }

  /** The route of a new mapping, with the device's functions resolved once. */
  static of<D>(mapping: BusMapping<D>): Route<D> {
    return new Route(mapping, mapping.owner, mapping.device, adaptDevice(mapping.device, mapping.range.start));
  }

  /** A route that maps nothing: a sentinel, a table node or a mixed page. */
  static marker<D>(what: string): Route<D> {
    return new Route<D>(undefined, what, undefined as D, null);
  }

  /** True for a route of a live or retired mapping, false for markers. */
  get isMapping(): boolean {
    return this.mapping !== undefined;
  }

  /**
   * Makes every later fast check on this route fail. The tables no longer hold it; this is for
   * a reference held elsewhere (a change listener's, or a future last-hit cache).
   */
  retire(): void {
    this.lo = Number.POSITIVE_INFINITY;
    this.hi = Number.NEGATIVE_INFINITY;
  }
}
