/**
 * Checks of the object-shaped arguments that cross the public API: options, requests and
 * range-like objects. A caller's object may be anything (an array, a class instance, a `Proxy`
 * whose traps throw, an object whose getters answer differently on every read), so each field is
 * read exactly once and any failure becomes an `AllocatorError` `InvalidArgument` naming the
 * parameter, never a `TypeError` from deep inside an allocator.
 */
import { AllocatorError } from "./errors.js";

/**
 * Describes a value for a message without running any of its code (no `toString`, no getters):
 * `"virtio"` in quotes, `5`, `5n`, `null`, `an array`, `an object`.
 */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "symbol") return "a symbol";
  if (typeof value === "function") return "a function";
  return Array.isArray(value) ? "an array" : "an object";
}

function unreadable(name: string, error: unknown): AllocatorError {
  const why = error instanceof Error ? error.message : "it threw";
  return new AllocatorError("InvalidArgument", `${name} could not be read (${why})`, { cause: error });
}

/**
 * Reads the own fields of a plain object (prototype `Object.prototype` or `null`), refusing
 * anything else and every field not in `allowed`, so that a typo (`polcy`) is an error instead of
 * a silently ignored option. Returns the values in the order of `allowed` (undefined when absent).
 *
 * @throws AllocatorError `InvalidArgument` naming `name` (or `name.field`).
 */
export function readFields(value: unknown, name: string, allowed: readonly string[]): unknown[] {
  if (typeof value !== "object" || value === null) {
    throw new AllocatorError("InvalidArgument", `${name} must be a plain object, got ${describeValue(value)}`);
  }
  const out = new Array<unknown>(allowed.length);
  try {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new AllocatorError("InvalidArgument", `${name} must be a plain object ({ ... }), got ${Array.isArray(value) ? "an array" : "an instance of a class"}`);
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) {
        throw new AllocatorError(
          "InvalidArgument",
          `${name} has unknown field ${JSON.stringify(key)} (${name} may have ${allowed.map((k) => JSON.stringify(k)).join(", ")})`,
        );
      }
    }
    for (let i = 0; i < allowed.length; i++) out[i] = (value as Record<string, unknown>)[allowed[i]!];
  } catch (error) {
    if (error instanceof AllocatorError) throw error;
    throw unreadable(name, error);
  }
  return out;
}

/**
 * Reads `start` and `end` of a range-like argument (a `RangeInclusive` or `{ start, end }`) once
 * each. Other fields are allowed: a range-like object is anything with both bounds.
 *
 * @throws AllocatorError `InvalidArgument` when `value` is not an object or cannot be read.
 */
export function readBounds(value: unknown, name: string): [start: unknown, end: unknown] {
  if (typeof value !== "object" || value === null) {
    throw new AllocatorError("InvalidArgument", `${name} must be a RangeInclusive or { start, end }, got ${describeValue(value)}`);
  }
  try {
    const r = value as { start?: unknown; end?: unknown };
    return [r.start, r.end];
  } catch (error) {
    throw unreadable(name, error);
  }
}

/**
 * Returns `owner` when it is a non-empty string.
 * @throws AllocatorError `InvalidArgument` naming `name` otherwise.
 */
export function checkOwner(owner: unknown, name = "owner"): string {
  if (typeof owner === "string" && owner.length > 0) return owner;
  throw new AllocatorError("InvalidArgument", `${name} must be a non-empty string, got ${describeValue(owner)}`);
}
