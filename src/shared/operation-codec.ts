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

/** One committed operation, as `SharedSystemAllocator.committedLog()` lists it. */
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

/** Sets a field; a field called "__proto__" stays a field (assignment would set the prototype). */
function setField(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** The path of a field for messages, built only when one is needed. */
function pathOf(parent: string, key: string | number): string {
  return typeof key === "number" ? `${parent}[${key}]` : parent === "" ? key : `${parent}.${key}`;
}

/**
 * Encodes `value` (field `key` of `parent`) and, in the same pass, builds the copy that decoding
 * the encoding gives: the committing thread runs on the copy, so it runs on exactly what the
 * others replay, and reads each of the caller's fields (a getter, say) once.
 */
function encodeValue(value: unknown, parent: string, key: string | number, depth: number): [unknown, unknown] {
  switch (typeof value) {
    case "string":
    case "boolean":
      return [value, value];
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return [value, value];
      return [["f", Object.is(value, -0) ? "-0" : String(value)], value];
    case "bigint":
      return [["n", value.toString()], value];
    case "undefined":
      return [["u"], undefined];
    case "object": {
      if (value === null) return [null, null];
      const at = pathOf(parent, key);
      if (depth >= MAX_DEPTH) refuse(`${at} is nested too deeply (or cyclic) to be shared across threads`);
      if (value instanceof RangeInclusive) return [["r", value.start.toString(), value.end.toString()], new RangeInclusive(value.start, value.end)];
      if (Array.isArray(value)) {
        const items: unknown[] = ["a"];
        const copy: unknown[] = [];
        for (let i = 0; i < value.length; i++) {
          const [e, c] = encodeValue(value[i], at, i, depth + 1);
          items.push(e);
          copy.push(c);
        }
        return [items, copy];
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) refuse(`${at} must be a plain object to be shared across threads`);
      const fields: Record<string, unknown> = {};
      const copy: Record<string, unknown> = {};
      // Own names, enumerable or not: the allocator reads fields by name, so it would see them all.
      for (const name of Object.getOwnPropertyNames(value)) {
        const [e, c] = encodeValue((value as Record<string, unknown>)[name], at, name, depth + 1);
        setField(fields, name, e);
        setField(copy, name, c);
      }
      return [["o", fields], copy];
    }
    default:
      return refuse(`${pathOf(parent, key)} cannot be shared across threads (a ${typeof value})`);
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
      for (const key of Object.keys(fields)) setField(out, key, decodeValue((fields as Record<string, unknown>)[key]));
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
 * Encodes the arguments of an operation as JSON text (without the sequence number, which the
 * committing thread adds once it holds the lock), with the copy of the arguments that decoding
 * that text gives (see {@link decodeArguments}).
 * @throws AllocatorError `InvalidArgument` for an argument that cannot travel between threads,
 *   or whose getter throws.
 */
export function encodeArguments(args: readonly unknown[]): { readonly text: string; readonly copy: unknown[] } {
  try {
    const encoded: unknown[] = [];
    const copy: unknown[] = [];
    for (let i = 0; i < args.length; i++) {
      const [e, c] = encodeValue(args[i], "", i === 0 ? "params" : `argument ${i + 1}`, 0);
      encoded.push(e);
      copy.push(c);
    }
    return { text: JSON.stringify(encoded), copy };
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
