/**
 * The encoding of one logged allocator operation: the method and its arguments as UTF-8 JSON,
 * with the values JSON cannot carry (bigints, `RangeInclusive`, `undefined`, non-finite numbers,
 * `-0`) tagged, so that a replica in another thread decodes exactly the arguments the committing
 * thread ran.
 *
 * The encoding is generic on purpose: a parameter object is copied field by field whatever its
 * fields are called, so optional fields added to the callback parameters later travel without a
 * change here. Only structured data can travel: plain objects, arrays, strings, booleans, null,
 * numbers, bigints and ranges. Anything else (a function, a symbol, a class instance, a cycle) is
 * refused with an `AllocatorError` `InvalidArgument` before the allocator is touched.
 *
 * Every encoded value is a JSON primitive (string, boolean, null, finite number other than -0)
 * or an array whose first element is a tag: `["a", ...items]`, `["o", {key: value}]`,
 * `["n", "123"]` (bigint), `["r", "start", "end"]` (range), `["u"]` (undefined),
 * `["f", "NaN" | "Infinity" | "-Infinity" | "-0"]`.
 */
import { AllocatorError } from "../core/errors.js";
import { RangeInclusive } from "../core/range.js";

/** The operations a shared system allocator logs. */
export type SharedOperationName = "deviceId" | "irq" | "pio" | "mmio" | "reserve" | "unreserve" | "releaseAll";

/** The names of {@link SharedOperationName}, for validation of decoded entries. */
export const SHARED_OPERATION_NAMES: readonly SharedOperationName[] = Object.freeze(["deviceId", "irq", "pio", "mmio", "reserve", "unreserve", "releaseAll"]);

/** One committed operation as {@link decodeOperation} returns it. */
export interface SharedOperation {
  /** Its place in the commit order: 1 for the first operation ever committed, then 2, 3, ... */
  readonly sequence: number;
  /** Which allocator method ran. */
  readonly operation: SharedOperationName;
  /** Its arguments, decoded (bigints and ranges restored). */
  readonly args: readonly unknown[];
}

/** Nesting deeper than this is refused: no allocator argument comes close, and a cycle is caught. */
const MAX_DEPTH = 32;

function refuse(message: string): never {
  throw new AllocatorError("InvalidArgument", message);
}

function encodeValue(value: unknown, at: string, depth: number): unknown {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return ["f", Object.is(value, -0) ? "-0" : String(value)];
    case "bigint":
      return ["n", value.toString()];
    case "undefined":
      return ["u"];
    case "object": {
      if (value === null) return null;
      if (depth >= MAX_DEPTH) refuse(`${at} is nested too deeply (or cyclic) to be shared across threads`);
      if (value instanceof RangeInclusive) return ["r", value.start.toString(), value.end.toString()];
      if (Array.isArray(value)) {
        const items: unknown[] = ["a"];
        for (let i = 0; i < value.length; i++) items.push(encodeValue(value[i], `${at}[${i}]`, depth + 1));
        return items;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) refuse(`${at} must be a plain object to be shared across threads`);
      const fields: Record<string, unknown> = {};
      // Own names, enumerable or not: the allocator reads fields by name, so it would see them all.
      for (const key of Object.getOwnPropertyNames(value)) {
        Object.defineProperty(fields, key, {
          value: encodeValue((value as Record<string, unknown>)[key], `${at}.${key}`, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return ["o", fields];
    }
    default:
      return refuse(`${at} cannot be shared across threads (a ${typeof value})`);
  }
}

function decodeValue(value: unknown): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean" || typeof value === "number") return value;
  if (!Array.isArray(value) || typeof value[0] !== "string") throw new Error("an encoded value must be a primitive or a tagged array");
  switch (value[0]) {
    case "a":
      return value.slice(1).map(decodeValue);
    case "o": {
      const fields = value[1];
      if (typeof fields !== "object" || fields === null || Array.isArray(fields)) throw new Error("an encoded object must carry an object");
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(fields)) {
        // defineProperty, not assignment: a field called "__proto__" stays a field.
        Object.defineProperty(out, key, { value: decodeValue((fields as Record<string, unknown>)[key]), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    case "n":
      return BigInt(value[1] as string);
    case "r":
      return new RangeInclusive(BigInt(value[1] as string), BigInt(value[2] as string));
    case "u":
      return undefined;
    case "f":
      if (value[1] === "-0") return -0;
      if (value[1] === "NaN" || value[1] === "Infinity" || value[1] === "-Infinity") return Number(value[1]);
      throw new Error(`unknown number tag ${String(value[1])}`);
    default:
      throw new Error(`unknown tag ${JSON.stringify(value[0])}`);
  }
}

/**
 * Encodes the arguments of `operation` as JSON text (without the sequence number, which the
 * committing thread adds once it holds the lock).
 * @throws AllocatorError `InvalidArgument` for an argument that cannot travel between threads,
 *   or whose getter throws.
 */
export function encodeArguments(args: readonly unknown[]): string {
  try {
    return JSON.stringify(args.map((a, i) => encodeValue(a, i === 0 ? "params" : `argument ${i + 1}`, 0)));
  } catch (error) {
    if (error instanceof AllocatorError) throw error;
    const why = error instanceof Error ? error.message : String(error);
    throw new AllocatorError("InvalidArgument", `the arguments could not be read to be shared across threads (${why})`, { cause: error });
  }
}

/** Decodes the arguments {@link encodeArguments} encoded (already parsed from JSON). */
export function decodeArguments(encoded: unknown): unknown[] {
  if (!Array.isArray(encoded)) throw new Error("encoded arguments must be an array");
  return encoded.map(decodeValue);
}

/** The text of one log entry: `[sequence, operation, encodedArguments]`. */
export function entryText(sequence: number, operation: SharedOperationName, encodedArguments: string): string {
  return `[${sequence},${JSON.stringify(operation)},${encodedArguments}]`;
}

/** Parses the text of one log entry; throws a plain Error when it is malformed. */
export function decodeOperation(text: string): SharedOperation {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || parsed.length !== 3) throw new Error("a log entry must be [sequence, operation, arguments]");
  const [sequence, operation, args] = parsed as [unknown, unknown, unknown];
  if (typeof sequence !== "number" || !Number.isSafeInteger(sequence) || sequence < 1) throw new Error(`bad sequence number ${String(sequence)}`);
  if (typeof operation !== "string" || !(SHARED_OPERATION_NAMES as readonly string[]).includes(operation)) throw new Error(`unknown operation ${String(operation)}`);
  return { sequence, operation: operation as SharedOperationName, args: decodeArguments(args) };
}
