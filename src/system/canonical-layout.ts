/**
 * The number rule of snapshots, applied to the `layout` and `reserved` sections of a system
 * allocator snapshot: the canonical form that `layoutToJSON` and `reservationToJSON` write and
 * nothing else, exactly as the core allocators' snapshots accept only what their `toJSON` writes.
 * Addresses are `"0x..."` strings in lower case without leading zeros (`parseHexU64`), ids are
 * integer numbers from 0 to 2^32-1, and every field that the writer always writes is required.
 *
 * A hand-written *layout* may still use bigints, plain numbers, underscores and sizes
 * (`resolveLayout`); a snapshot may not, so that a snapshot which restores also serializes back to
 * exactly the same text, and so that one snapshot means one state.
 */
import { AllocatorError } from "../core/errors.js";
import { describeValue } from "../core/arguments.js";
import { parseHexU64 } from "../core/u64.js";
import { isAddressPool, POOL_NAMES, type PoolName } from "./layouts.js";

type Bad = (what: string) => AllocatorError;

function object(value: unknown, path: string, fields: readonly string[], required: readonly string[], bad: Bad): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw bad(`${path} must be an object, got ${describeValue(value)}`);
  const r = value as Record<string, unknown>;
  for (const key of Object.keys(r)) if (!fields.includes(key)) throw bad(`${path} has unknown field ${JSON.stringify(key)}`);
  for (const key of required) if (!Object.hasOwn(r, key)) throw bad(`${path} is missing "${key}"`);
  return r;
}

function hexField(r: Record<string, unknown>, key: string, path: string, bad: Bad): void {
  if (parseHexU64(r[key]) === undefined) {
    throw bad(`${path}.${key} must be a canonical hex string like "0x1000" (lower case, no leading zeros), got ${describeValue(r[key])}`);
  }
}

function idField(r: Record<string, unknown>, key: string, path: string, bad: Bad): void {
  const v = r[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff || Object.is(v, -0)) {
    throw bad(`${path}.${key} must be an id (an integer number from 0 to 2^32-1), got ${describeValue(v)}`);
  }
}

/**
 * Checks that `value` is a reservation in canonical form: exactly `pool`, `start`, `end` and
 * `owner`, with `start` and `end` canonical hex in an address pool and id numbers in an id pool.
 * What they mean (order, bounds, overlaps) is for `resolveReservation` to check.
 * @throws the error `bad` makes, naming `path`.
 */
export function checkCanonicalReservation(value: unknown, path: string, bad: Bad): void {
  const fields = ["pool", "start", "end", "owner"];
  const r = object(value, path, fields, fields, bad);
  const pool = r["pool"];
  if (typeof pool !== "string" || !(POOL_NAMES as readonly string[]).includes(pool)) {
    throw bad(`${path}.pool must be one of ${POOL_NAMES.map((p) => JSON.stringify(p)).join(", ")}, got ${describeValue(pool)}`);
  }
  const field = isAddressPool(pool as PoolName) ? hexField : idField;
  field(r, "start", path, bad);
  field(r, "end", path, bad);
}

/**
 * Checks that `value` is a layout in the canonical form `layoutToJSON` writes: address pools as
 * `{ base, size }` in canonical hex, id pools as `{ first, last }` numbers, the fields that
 * `resolveLayout` would default (`instanceId`, `reserved`) present, each reservation as
 * {@link checkCanonicalReservation}. What the numbers mean is for `resolveLayout` to check.
 * @throws the error `bad` makes, naming `path`.
 */
export function checkCanonicalLayout(value: unknown, path: string, bad: Bad): void {
  const r = object(value, path, ["name", ...POOL_NAMES, "reserved"], ["instanceId", "reserved"], bad);
  for (const pool of POOL_NAMES) {
    if (!Object.hasOwn(r, pool)) continue;
    const at = `${path}.${pool}`;
    if (isAddressPool(pool)) {
      const w = object(r[pool], at, ["base", "size"], ["base", "size"], bad);
      hexField(w, "base", at, bad);
      hexField(w, "size", at, bad);
    } else {
      const w = object(r[pool], at, ["first", "last"], ["first", "last"], bad);
      idField(w, "first", at, bad);
      idField(w, "last", at, bad);
    }
  }
  const list = r["reserved"];
  if (!Array.isArray(list)) throw bad(`${path}.reserved must be an array, got ${describeValue(list)}`);
  for (let i = 0; i < list.length; i++) checkCanonicalReservation(list[i], `${path}.reserved[${i}]`, bad);
}
