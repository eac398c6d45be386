/**
 * The JSON form of a shared route table, as {@link SharedRouteView.snapshot} and
 * {@link SharedRouteTable.toJSON} write it, and its validation.
 */
import type { BusKind } from "../devices/bus.js";
import { describeValue } from "../core/arguments.js";
import { AllocatorError } from "../core/errors.js";
import { parseHexU64 } from "../core/u64.js";

/** The `format` tag of a {@link SharedRouteSnapshot}. */
export const SHARED_ROUTES_SNAPSHOT_FORMAT = "vm-allocator/shared-routes";

/** One route of a {@link SharedRouteSnapshot}. */
export interface SharedRouteEntry {
  /** First address, canonical `0x` hex. */
  readonly start: string;
  /** Last address (inclusive), canonical `0x` hex. */
  readonly end: string;
  /** The handle the table's `handleOf` gave the mapping. */
  readonly handle: number;
}

/** One published table, read whole: what every reader saw at that generation. */
export interface SharedRouteSnapshot {
  /** Always {@link SHARED_ROUTES_SNAPSHOT_FORMAT}. */
  readonly format: typeof SHARED_ROUTES_SNAPSHOT_FORMAT;
  /** Version of this format: 1. */
  readonly version: 1;
  /** The kind of the bus the table mirrors. */
  readonly kind: BusKind;
  /** How many tables had been published before this one, modulo 2^32 (0 for the table of the creation). */
  readonly generation: number;
  /** True when the table was stale (every lookup answered `ROUTE_STALE`); `routes` is then empty. */
  readonly stale: boolean;
  /** The routes in address order, disjoint. */
  readonly routes: readonly SharedRouteEntry[];
}

/** A snapshot checked by {@link parseSharedRouteSnapshot}, with its bounds as bigints. */
export interface ParsedRoutes {
  readonly kind: BusKind;
  readonly generation: number;
  readonly stale: boolean;
  readonly starts: bigint[];
  readonly ends: bigint[];
  readonly handles: number[];
}

function invalid(what: string): AllocatorError {
  return new AllocatorError("InvalidSnapshot", `invalid shared-routes snapshot: ${what}`);
}

function plain(value: unknown, name: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`${name} must be an object, got ${describeValue(value)}`);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw invalid(`${name} must be a plain object`);
  for (const key of Object.keys(value)) if (!fields.includes(key)) throw invalid(`${name} has unknown field ${JSON.stringify(key)}`);
  for (const key of fields) if (!Object.prototype.hasOwnProperty.call(value, key)) throw invalid(`${name} lacks field ${JSON.stringify(key)}`);
  return value as Record<string, unknown>;
}

function u32(value: unknown, name: string): number {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) return value;
  throw invalid(`${name} must be an integer from 0 to 2^32-1, got ${describeValue(value)}`);
}

/**
 * Checks a snapshot: the format and version, the kind, the generation, and routes that are
 * canonical hex, sorted, disjoint, with u32 handles (none when stale).
 * @throws AllocatorError `InvalidSnapshot` naming the first problem.
 */
export function parseSharedRouteSnapshot(snapshot: unknown): ParsedRoutes {
  try {
    const x = plain(snapshot, "the snapshot", ["format", "version", "kind", "generation", "stale", "routes"]);
    if (x["format"] !== SHARED_ROUTES_SNAPSHOT_FORMAT) throw invalid(`format must be "${SHARED_ROUTES_SNAPSHOT_FORMAT}", got ${describeValue(x["format"])}`);
    if (x["version"] !== 1) throw invalid(`version must be 1, got ${describeValue(x["version"])}`);
    const kind = x["kind"];
    if (kind !== "io" && kind !== "mem") throw invalid(`kind must be "io" or "mem", got ${describeValue(kind)}`);
    const generation = u32(x["generation"], "generation");
    const stale = x["stale"];
    if (typeof stale !== "boolean") throw invalid(`stale must be a boolean, got ${describeValue(stale)}`);
    const routes = x["routes"];
    if (!Array.isArray(routes)) throw invalid(`routes must be an array, got ${describeValue(routes)}`);
    if (stale && routes.length > 0) throw invalid("a stale table has no routes");
    const starts: bigint[] = [];
    const ends: bigint[] = [];
    const handles: number[] = [];
    for (let i = 0; i < routes.length; i++) {
      const r = plain(routes[i], `routes[${i}]`, ["start", "end", "handle"]);
      const start = parseHexU64(r["start"]);
      const end = parseHexU64(r["end"]);
      if (start === undefined || end === undefined) throw invalid(`routes[${i}] bounds must be canonical 0x hex u64s`);
      if (start > end) throw invalid(`routes[${i}] starts after it ends`);
      const prev = ends[ends.length - 1];
      if (prev !== undefined && start <= prev) throw invalid(`routes[${i}] is not after routes[${i - 1}] (routes must be sorted and disjoint)`);
      starts.push(start);
      ends.push(end);
      handles.push(u32(r["handle"], `routes[${i}].handle`));
    }
    return { kind, generation, stale, starts, ends, handles };
  } catch (error) {
    if (error instanceof AllocatorError) throw error;
    const why = error instanceof Error ? error.message : "it threw";
    throw new AllocatorError("InvalidSnapshot", `invalid shared-routes snapshot: could not be read (${why})`, { cause: error });
  }
}
