/**
 * A strict JSON reader for input files. `JSON.parse` would do for well-formed files, but it lets
 * a repeated key silently replace the first one (a second `"fixed"` would move a device without a
 * word), turns `"__proto__"` into a prototype change instead of a key the validator can reject,
 * and reports errors by character offset only. This reader accepts exactly RFC 8259 JSON and
 * reports problems as `line:column`.
 */

/** A JSON syntax error, positioned for people (both counts start at 1). */
export class JsonSyntaxError extends Error {
  readonly line: number;
  readonly column: number;

  constructor(message: string, line: number, column: number) {
    super(message);
    this.name = "JsonSyntaxError";
    this.line = line;
    this.column = column;
  }
}

/** A parsed JSON object. It has no prototype, so any key (even `__proto__`) is an own key. */
export type JsonObject = { [key: string]: JsonValue };
/** Any parsed JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** Deeper nesting than this is refused rather than risking the call stack. */
const MAX_DEPTH = 256;

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };

/** True for a value {@link parseJson} returned as an object. */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses `text` as one JSON value (a leading byte-order mark is allowed).
 * @throws JsonSyntaxError for anything that is not exactly one JSON value, a repeated key in one
 *   object, or nesting deeper than 256 levels.
 */
export function parseJson(text: string): JsonValue {
  return new Reader(text).document();
}

class Reader {
  readonly #text: string;
  #pos = 0;

  constructor(text: string) {
    this.#text = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  }

  document(): JsonValue {
    this.#skipSpace();
    if (this.#pos >= this.#text.length) this.#fail("the file is empty; expected a JSON value");
    const value = this.#value(0);
    this.#skipSpace();
    if (this.#pos < this.#text.length) this.#fail(`unexpected ${this.#describeHere()} after the JSON value`);
    return value;
  }

  #value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.#fail(`nested more than ${MAX_DEPTH} levels deep`);
    const c = this.#text[this.#pos];
    switch (c) {
      case "{":
        return this.#object(depth);
      case "[":
        return this.#array(depth);
      case '"':
        return this.#string();
      case "t":
        return this.#literal("true", true);
      case "f":
        return this.#literal("false", false);
      case "n":
        return this.#literal("null", null);
      default:
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.#number();
        return this.#fail(`unexpected ${this.#describeHere()}; expected a JSON value`);
    }
  }

  #object(depth: number): JsonObject {
    this.#pos++; // {
    const out: JsonObject = Object.create(null) as JsonObject;
    this.#skipSpace();
    if (this.#text[this.#pos] === "}") {
      this.#pos++;
      return out;
    }
    for (;;) {
      this.#skipSpace();
      if (this.#text[this.#pos] !== '"') this.#fail(`unexpected ${this.#describeHere()}; expected a double-quoted property name`);
      const keyAt = this.#pos;
      const key = this.#string();
      if (Object.hasOwn(out, key)) this.#fail(`property ${JSON.stringify(key)} appears twice in one object`, keyAt);
      this.#skipSpace();
      if (this.#text[this.#pos] !== ":") this.#fail(`unexpected ${this.#describeHere()}; expected ':' after a property name`);
      this.#pos++;
      this.#skipSpace();
      out[key] = this.#value(depth + 1);
      this.#skipSpace();
      const c = this.#text[this.#pos];
      if (c === ",") {
        this.#pos++;
        continue;
      }
      if (c === "}") {
        this.#pos++;
        return out;
      }
      this.#fail(`unexpected ${this.#describeHere()}; expected ',' or '}' after a property value`);
    }
  }

  #array(depth: number): JsonValue[] {
    this.#pos++; // [
    const out: JsonValue[] = [];
    this.#skipSpace();
    if (this.#text[this.#pos] === "]") {
      this.#pos++;
      return out;
    }
    for (;;) {
      this.#skipSpace();
      out.push(this.#value(depth + 1));
      this.#skipSpace();
      const c = this.#text[this.#pos];
      if (c === ",") {
        this.#pos++;
        continue;
      }
      if (c === "]") {
        this.#pos++;
        return out;
      }
      this.#fail(`unexpected ${this.#describeHere()}; expected ',' or ']' after an array element`);
    }
  }

  #string(): string {
    const start = this.#pos;
    this.#pos++; // opening quote
    let out = "";
    let chunkStart = this.#pos;
    for (;;) {
      if (this.#pos >= this.#text.length) this.#fail("unterminated string", start);
      const code = this.#text.charCodeAt(this.#pos);
      if (code === 0x22) {
        out += this.#text.slice(chunkStart, this.#pos);
        this.#pos++;
        return out;
      }
      if (code < 0x20) this.#fail("control character in a string (escape it, e.g. \\n)");
      if (code !== 0x5c) {
        this.#pos++;
        continue;
      }
      out += this.#text.slice(chunkStart, this.#pos);
      const e = this.#text[this.#pos + 1];
      if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        this.#pos += 2;
      } else if (e === "u") {
        const hex = this.#text.slice(this.#pos + 2, this.#pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.#fail("invalid \\u escape: expected four hex digits");
        out += String.fromCharCode(parseInt(hex, 16));
        this.#pos += 6;
      } else {
        this.#fail("invalid escape in a string");
      }
      chunkStart = this.#pos;
    }
  }

  #number(): number {
    const match = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.#text.slice(this.#pos, this.#pos + 400));
    if (match === null) return this.#fail("malformed number");
    const after = this.#text[this.#pos + match[0].length];
    if (after !== undefined && /[0-9A-Za-z.+-]/.test(after)) this.#fail("malformed number");
    this.#pos += match[0].length;
    return Number(match[0]);
  }

  #literal<T extends JsonValue>(word: string, value: T): T {
    if (this.#text.startsWith(word, this.#pos)) {
      this.#pos += word.length;
      return value;
    }
    return this.#fail(`unexpected ${this.#describeHere()}; expected a JSON value`);
  }

  #skipSpace(): void {
    const t = this.#text;
    while (this.#pos < t.length) {
      const c = t.charCodeAt(this.#pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.#pos++;
    }
  }

  #describeHere(): string {
    if (this.#pos >= this.#text.length) return "end of input";
    const cp = this.#text.codePointAt(this.#pos)!;
    const ch = String.fromCodePoint(cp);
    return cp < 0x20 || cp === 0x7f ? `character U+${cp.toString(16).padStart(4, "0")}` : `character ${JSON.stringify(ch)}`;
  }

  #fail(message: string, at = this.#pos): never {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < at && i < this.#text.length; i++) {
      if (this.#text.charCodeAt(i) === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new JsonSyntaxError(message, line, at - lineStart + 1);
  }
}
