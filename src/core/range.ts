/**
 * An inclusive range of unsigned 64-bit values. Inclusive ends let one value describe the
 * whole space [0, 2^64-1], whose length 2^64 does not fit in a u64.
 */
import { AllocatorError } from "./errors.js";
import { hex, toU64, U64_MAX, type U64Input } from "./u64.js";

/** How a range is labelled when printed: Linux `%pR` style resource types. */
export type RangeKind = "mem" | "io" | "irq" | "bus" | "id";

/** An immutable closed interval [start, end] of u64 values. */
export class RangeInclusive {
  /** First value in the range. */
  readonly start: bigint;
  /** Last value in the range (inclusive). */
  readonly end: bigint;

  /**
   * @throws AllocatorError `InvalidArgument` if a bound is not a u64, `InvalidRange` if `start > end`.
   */
  constructor(start: U64Input, end: U64Input) {
    const s = toU64(start, "start");
    const e = toU64(end, "end");
    if (s > e) {
      throw new AllocatorError("InvalidRange", `invalid range: start ${hex(s)} is above end ${hex(e)}`);
    }
    this.start = s;
    this.end = e;
  }

  /**
   * The range of `size` values starting at `start`.
   * @throws AllocatorError `InvalidSize` for size 0, `Overflow` if the range would pass 2^64-1.
   */
  static withSize(start: U64Input, size: U64Input): RangeInclusive {
    const s = toU64(start, "start");
    const n = toU64(size, "size");
    if (n === 0n) throw new AllocatorError("InvalidSize", "size must be at least 1");
    if (n - 1n > U64_MAX - s) {
      throw new AllocatorError("Overflow", `range at ${hex(s)} of size ${hex(n)} would end past 0xffffffffffffffff`);
    }
    return new RangeInclusive(s, s + n - 1n);
  }

  /** Number of values in the range, from 1 to 2^64. */
  len(): bigint {
    return this.end - this.start + 1n;
  }

  /** True when the ranges share at least one value: [1,4] and [4,6] overlap. */
  overlaps(other: RangeInclusive): boolean {
    return this.start <= other.end && other.start <= this.end;
  }

  /** True when `other` lies entirely inside this range (equal ranges contain each other). */
  contains(other: RangeInclusive): boolean {
    return this.start <= other.start && other.end <= this.end;
  }

  /** True when `value` lies inside this range. */
  containsValue(value: bigint): boolean {
    return this.start <= value && value <= this.end;
  }

  /** True when both bounds are equal. */
  equals(other: RangeInclusive): boolean {
    return this.start === other.start && this.end === other.end;
  }

  /** Linux `%pR` style: `[mem 0x1000-0x1fff]`, `[io 0xcf8-0xcff]`, `[irq 5]` for one value. */
  toString(kind: RangeKind = "mem"): string {
    return formatRange(this.start, this.end, kind);
  }

  /** JSON form with hex strings, so u64 values survive `JSON.stringify`. */
  toJSON(): { start: string; end: string } {
    return { start: hex(this.start), end: hex(this.end) };
  }
}

/** Formats [start, end] like {@link RangeInclusive.toString} without building a range. */
export function formatRange(start: bigint, end: bigint, kind: RangeKind = "mem"): string {
  if (start === end && (kind === "irq" || kind === "id")) return `[${kind} ${start}]`;
  if (kind === "irq" || kind === "id") return `[${kind} ${start}-${end}]`;
  return `[${kind} ${hex(start)}-${hex(end)}]`;
}
