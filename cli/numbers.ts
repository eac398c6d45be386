/**
 * Numbers in input files. An address or size may be a JSON number, which must be a non-negative
 * safe integer (JSON numbers beyond 2^53 - 1 are silently rounded by every parser), or a string
 * in hex (`"0x1000"`) or decimal (`"4096"`), which is exact up to 2^64 - 1. Underscores may group
 * digits (`"0xffff_ffff"`), as in Rust and in VMM source code.
 */
import { describeJson, type Problems } from "./diagnostics.js";

const HEX = /^0[xX][0-9a-fA-F]+(?:_[0-9a-fA-F]+)*$/;
const DEC = /^[0-9]+(?:_[0-9]+)*$/;

/** 2^64 - 1. */
export const U64_LIMIT = 0xffff_ffff_ffff_ffffn;
/** 2^32 - 1. */
export const U32_LIMIT = 0xffff_ffffn;

/**
 * Reads a non-negative integer no larger than `max`, or records a problem at `path` and returns
 * undefined.
 */
export function readInteger(value: unknown, path: string, problems: Problems, max: bigint = U64_LIMIT): bigint | undefined {
  const limit = max === U64_LIMIT ? "0xffffffffffffffff (2^64-1)" : max === U32_LIMIT ? "0xffffffff (2^32-1)" : `0x${max.toString(16)}`;
  let result: bigint;
  if (typeof value === "number") {
    if (!Number.isFinite(value) || !Number.isInteger(value)) {
      problems.add(path, `must be an integer, got ${describeJson(value)}`);
      return undefined;
    }
    if (value < 0) {
      problems.add(path, `must not be negative, got ${describeJson(value)}`);
      return undefined;
    }
    if (!Number.isSafeInteger(value)) {
      problems.add(path, `${describeJson(value)} is above 2^53-1, where JSON numbers lose precision; write it as a hex string ("0x...")`);
      return undefined;
    }
    result = BigInt(value);
  } else if (typeof value === "string") {
    if (HEX.test(value) || DEC.test(value)) {
      result = BigInt(value.replaceAll("_", ""));
    } else {
      const why = /^\s*-/.test(value) ? "must not be negative" : 'is not an integer: expected a number, a hex string ("0x1000") or a decimal string ("4096")';
      problems.add(path, `${why}, got ${describeJson(value)}`);
      return undefined;
    }
  } else {
    problems.add(path, `must be a non-negative integer (a number or a "0x..." string), got ${describeJson(value)}`);
    return undefined;
  }
  if (result > max) {
    problems.add(path, `must be at most ${limit}, got ${describeJson(value)}`);
    return undefined;
  }
  return result;
}

/** {@link readInteger} for 32-bit values (IRQs, GSIs, instance ids), as a number. */
export function readU32(value: unknown, path: string, problems: Problems): number | undefined {
  const v = readInteger(value, path, problems, U32_LIMIT);
  return v === undefined ? undefined : Number(v);
}
