/**
 * An inclusive range of unsigned 64-bit values. Inclusive ends let one value describe the
 * whole space [0, 2^64-1], whose length 2^64 does not fit in a u64.
 */
import { AllocatorError } from "./errors.js";
import { describeValue } from "./arguments.js";
import { hex, toU64, U64_MAX, type U64Input } from "./u64.js";

/** How a range is labelled when printed: Linux `%pR` style resource types. */
export type RangeKind = "mem" | "io" | "irq" | "bus" | "id";

const RANGE_KINDS: readonly string[] = Object.freeze(["mem", "io", "irq", "bus", "id"]);

/**
 * An immutable closed interval [start, end] of u64 values.
 *
 * Immutable for real, because buses, allocators and device managers keep the very objects they
 * are given and hand out: every instance is frozen (`range.start = 7n` throws in strict code),
 * the class and its prototype are frozen, and the class cannot be extended. `instanceof
 * RangeInclusive` is true only for objects this constructor built, so a `Proxy` of a range or an
 * object made with `Object.create(RangeInclusive.prototype)` is not taken for one.
 *
 * Instances are plain data otherwise: `start` and `end` are own enumerable properties, so
 * `assert.deepStrictEqual` compares ranges by value and `console.log` shows both bounds.
 *
 * Why frozen data rather than private fields behind getters, which cost nothing to build:
 * getters alone are not immutable (`Object.defineProperty(range, "start", ...)` defines an own
 * property that shadows the getter, and a bus reading `range.start` is then corrupt), making the
 * instance non-extensible costs what freezing costs (about 30 ns a range), and getters would make
 * every range deep-equal to every other.
 *
 * ```ts
 * const r = new RangeInclusive(0x1000n, 0x1fffn);
 * r.len(); // 0x1000n
 * r.toString(); // "[mem 0x1000-0x1fff]"
 * ```
 */
export class RangeInclusive {
  /** First value in the range. */
  readonly start: bigint;
  /** Last value in the range (inclusive). */
  readonly end: bigint;
  /** Present on every instance this constructor built; see {@link RangeInclusive[Symbol.hasInstance]}. */
  readonly #genuine = true;

  /**
   * @throws AllocatorError `InvalidArgument` if a bound is not a u64 (a bigint or a non-negative
   *   safe-integer number) or on an attempt to extend the class, `InvalidRange` if `start > end`.
   */
  constructor(start: U64Input, end: U64Input) {
    if (new.target !== RangeInclusive) {
      throw new AllocatorError("InvalidArgument", "RangeInclusive cannot be extended: it is a frozen value type; wrap it instead");
    }
    const s = toU64(start, "start");
    const e = toU64(end, "end");
    if (s > e) {
      throw new AllocatorError("InvalidRange", `invalid range: start ${hex(s)} is above end ${hex(e)}`);
    }
    this.start = s;
    this.end = e;
    Object.freeze(this);
  }

  /**
   * True only for an object built by this constructor: the check reads a private field, which a
   * `Proxy` or an object with a borrowed prototype does not have, so code that accepts a range
   * after `instanceof` can trust its bounds.
   */
  static [Symbol.hasInstance](value: unknown): value is RangeInclusive {
    return typeof value === "object" && value !== null && #genuine in value;
  }

  /**
   * The range of `size` values starting at `start`.
   * @throws AllocatorError `InvalidArgument` for a bound that is not a u64, `InvalidSize` for
   *   size 0, `Overflow` if the range would pass 2^64-1.
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

  /**
   * True when the ranges share at least one value: [1,4] and [4,6] overlap.
   * @throws AllocatorError `InvalidArgument` when `other` is not a RangeInclusive.
   */
  overlaps(other: RangeInclusive): boolean {
    const o = range(other, "other");
    return this.start <= o.end && o.start <= this.end;
  }

  /**
   * True when `other` lies entirely inside this range (equal ranges contain each other).
   * @throws AllocatorError `InvalidArgument` when `other` is not a RangeInclusive.
   */
  contains(other: RangeInclusive): boolean {
    const o = range(other, "other");
    return this.start <= o.start && o.end <= this.end;
  }

  /**
   * True when `value` lies inside this range.
   * @throws AllocatorError `InvalidArgument` when `value` is not a u64 (a bigint or a non-negative
   *   safe-integer number): `"3"` and `1.5` are refused rather than compared.
   */
  containsValue(value: U64Input): boolean {
    const v = toU64(value, "value");
    return this.start <= v && v <= this.end;
  }

  /**
   * True when both bounds are equal.
   * @throws AllocatorError `InvalidArgument` when `other` is not a RangeInclusive.
   */
  equals(other: RangeInclusive): boolean {
    const o = range(other, "other");
    return this.start === o.start && this.end === o.end;
  }

  /**
   * Linux `%pR` style: `[mem 0x1000-0x1fff]`, `[io 0xcf8-0xcff]`, `[irq 5]` for one value.
   * @throws AllocatorError `InvalidArgument` for a kind that is not a {@link RangeKind}.
   */
  toString(kind: RangeKind = "mem"): string {
    return formatRange(this.start, this.end, kind);
  }

  /**
   * JSON form with hex strings, so u64 values survive `JSON.stringify`.
   * @property start The first value, as canonical lowercase hex (`"0x1000"`).
   * @property end The last value, inclusive, in the same form: `[0x1000, 0x1fff]` is
   * `{ start: "0x1000", end: "0x1fff" }`.
   */
  toJSON(): { start: string; end: string } {
    return { start: hex(this.start), end: hex(this.end) };
  }
}
Object.freeze(RangeInclusive.prototype);
Object.freeze(RangeInclusive);

function range(value: unknown, name: string): RangeInclusive {
  if (value instanceof RangeInclusive) return value;
  throw new AllocatorError("InvalidArgument", `${name} must be a RangeInclusive, got ${describeValue(value)}`);
}

/**
 * Formats [start, end] like {@link RangeInclusive.toString} without building a range. It prints
 * what it is given, even past 2^64-1 or inverted (it runs in error paths, such as "would end past
 * 0xffffffffffffffff", where refusing a value would hide the real error), but only non-negative
 * integers and known kinds.
 * @throws AllocatorError `InvalidArgument` for a bound that is not a non-negative bigint or safe
 *   integer, or a kind that is not a {@link RangeKind}.
 */
export function formatRange(start: bigint | number, end: bigint | number, kind: RangeKind = "mem"): string {
  const s = bound(start, "start");
  const e = bound(end, "end");
  if (typeof kind !== "string" || !RANGE_KINDS.includes(kind)) {
    throw new AllocatorError("InvalidArgument", `kind must be one of ${RANGE_KINDS.map((k) => `"${k}"`).join(", ")}, got ${describeValue(kind)}`);
  }
  if (s === e && (kind === "irq" || kind === "id")) return `[${kind} ${s}]`;
  if (kind === "irq" || kind === "id") return `[${kind} ${s}-${e}]`;
  return `[${kind} ${hex(s)}-${hex(e)}]`;
}

function bound(value: unknown, name: string): bigint {
  if (typeof value === "bigint" && value >= 0n) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw new AllocatorError("InvalidArgument", `${name} must be a non-negative bigint or safe integer, got ${describeValue(value)}`);
}
