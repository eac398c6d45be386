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
const SHARED_OPERATION_NAMES: readonly SharedOperationName[] = Object.freeze(["deviceId", "irq", "pio", "mmio", "reserve", "unreserve", "releaseAll"]);

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
 * The encoder's state: the JSON text written so far. Encoding writes the text directly (rather
 * than building the tagged arrays and handing them to `JSON.stringify`), so a call allocates
 * only its copy and the text: the encoding is most of what a shared call costs beyond the
 * allocator's own work.
 */
interface Writer {
  text: string;
}

/**
 * Writes the encoding of `value` (field `key` of `parent`) to `out` and returns, built in the
 * same pass, the copy that decoding the encoding gives: the committing thread runs on the copy,
 * so it runs on exactly what the others replay, and reads each of the caller's fields (a getter,
 * say) once.
 */
function encodeValue(out: Writer, value: unknown, parent: string, key: string | number, depth: number): unknown {
  switch (typeof value) {
    case "string":
      out.text += JSON.stringify(value);
      return value;
    case "boolean":
      out.text += value ? "true" : "false";
      return value;
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) out.text += String(value);
      else out.text += `["f","${Object.is(value, -0) ? "-0" : String(value)}"]`;
      return value;
    case "bigint":
      out.text += `["n","${value.toString()}"]`;
      return value;
    case "undefined":
      out.text += '["u"]';
      return undefined;
    case "object": {
      if (value === null) {
        out.text += "null";
        return null;
      }
      const at = pathOf(parent, key);
      if (depth >= MAX_DEPTH) refuse(`${at} is nested too deeply (or cyclic) to be shared across threads`);
      if (value instanceof RangeInclusive) {
        out.text += `["r","${value.start.toString()}","${value.end.toString()}"]`;
        return new RangeInclusive(value.start, value.end);
      }
      if (Array.isArray(value)) {
        const copy: unknown[] = [];
        out.text += '["a"';
        for (let i = 0; i < value.length; i++) {
          out.text += ",";
          copy.push(encodeValue(out, value[i], at, i, depth + 1));
        }
        out.text += "]";
        return copy;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) refuse(`${at} must be a plain object to be shared across threads`);
      const copy: Record<string, unknown> = {};
      out.text += '["o",{';
      // Own names, enumerable or not: the allocator reads fields by name, so it would see them all.
      const names = Object.getOwnPropertyNames(value);
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        if (i > 0) out.text += ",";
        out.text += `${JSON.stringify(name)}:`;
        setField(copy, name, encodeValue(out, (value as Record<string, unknown>)[name], at, name, depth + 1));
      }
      out.text += "}]";
      return copy;
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
    const out: Writer = { text: "[" };
    const copy: unknown[] = [];
    for (let i = 0; i < args.length; i++) {
      if (i > 0) out.text += ",";
      copy.push(encodeValue(out, args[i], "", i === 0 ? "params" : `argument ${i + 1}`, 0));
    }
    out.text += "]";
    return { text: out.text, copy };
  } catch (error) {
    if (error instanceof AllocatorError) throw error;
    const why = error instanceof Error ? error.message : String(error);
    throw new AllocatorError("InvalidArgument", `the arguments could not be read to be shared across threads (${why})`, { cause: error });
  }
}

/** Decodes the arguments {@link encodeArguments} encoded (already parsed from JSON). */
function decodeArguments(encoded: unknown): unknown[] {
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
