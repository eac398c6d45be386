/**
 * Validation and formatting of the numbers crossing the public API. Every address, size and
 * alignment is an exact unsigned 64-bit integer; callers may pass a bigint or a non-negative
 * safe-integer number, and anything else is rejected with `InvalidArgument` naming the parameter.
 */
import { describeValue } from "./arguments.js";
import { AllocatorError } from "./errors.js";

/** A number accepted where an unsigned 64-bit value is expected. */
export type U64Input = bigint | number;
/** A number accepted where an unsigned 32-bit value is expected. */
export type U32Input = bigint | number;

/** 2^64 - 1, the largest address. */
export const U64_MAX = 0xffff_ffff_ffff_ffffn;
/** 2^32 - 1, the largest id. */
export const U32_MAX = 0xffff_ffff;

function invalid(name: string, value: unknown, bound: string): AllocatorError {
  return new AllocatorError(
    "InvalidArgument",
    `${name} must be an integer from 0 to ${bound} (a bigint or a safe-integer number), got ${describeValue(value)}`,
  );
}

/** Returns `value` as a bigint in [0, 2^64-1], or throws `InvalidArgument` naming `name`. */
export function toU64(value: unknown, name: string): bigint {
  if (typeof value === "bigint") {
    if (value >= 0n && value <= U64_MAX) return value;
  } else if (typeof value === "number") {
    if (Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  }
  throw invalid(name, value, "2^64-1");
}

/** Returns `value` as a number in [0, 2^32-1], or throws `InvalidArgument` naming `name`. */
export function toU32(value: unknown, name: string): number {
  if (typeof value === "number") {
    if (Number.isInteger(value) && value >= 0 && value <= U32_MAX) return value;
  } else if (typeof value === "bigint") {
    if (value >= 0n && value <= 0xffff_ffffn) return Number(value);
  }
  throw invalid(name, value, "2^32-1");
}

/**
 * `0x`-prefixed lower-case hex, the form used in messages and snapshots.
 * @throws AllocatorError `InvalidArgument` when `value` is not a non-negative bigint or safe integer.
 */
export function hex(value: bigint | number): string {
  if (typeof value === "bigint" ? value < 0n : !(Number.isSafeInteger(value) && value >= 0)) throw notAnInteger(value);
  return `0x${value.toString(16)}`;
}

/**
 * True when `value` is a power of two (a valid alignment when it is at most 2^63).
 * @throws AllocatorError `InvalidArgument` when `value` is not a bigint or a safe integer.
 */
export function isPowerOfTwo(value: bigint | number): boolean {
  if (typeof value === "number" && Number.isSafeInteger(value)) value = BigInt(value);
  else if (typeof value !== "bigint") throw notAnInteger(value);
  return value > 0n && (value & (value - 1n)) === 0n;
}

function notAnInteger(value: unknown): AllocatorError {
  return new AllocatorError("InvalidArgument", `value must be a bigint or a safe integer, got ${describeValue(value)}`);
}

/**
 * Parses a snapshot's `"0x..."` string into a u64, or returns undefined when it is not one.
 * Only the canonical form that {@link hex} writes is accepted (lower case, no leading zeros), so
 * that a snapshot which restores also serializes back to exactly the same text.
 */
export function parseHexU64(text: unknown): bigint | undefined {
  if (typeof text !== "string" || !/^0x(?:0|[1-9a-f][0-9a-f]{0,15})$/.test(text)) return undefined;
  return BigInt(text);
}
