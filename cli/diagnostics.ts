/**
 * Problems found in user input, each tied to where it is (a field path such as
 * `devices[3].requests[0].size`, or `line:column` for JSON syntax). Validators collect them
 * instead of stopping at the first, so that `check` can list every one; `plan` and `show` report
 * the first and say how many more there are.
 */

/** One problem with the input. */
export interface Problem {
  /** Field path (`devices[3].requests[0].size`), `line:column`, or "" for the file as a whole. */
  readonly path: string;
  /** Why it is wrong, in words a person can act on. */
  readonly message: string;
}

/** Bad input (exit status 2): a usage error, an unreadable file, or problems in its content. */
export class InputError extends Error {
  /** What is wrong; at least one. */
  readonly problems: readonly Problem[];
  /** The file the problems are in, when there is one. */
  readonly file: string | undefined;

  constructor(problems: readonly Problem[], file?: string) {
    const first = problems[0] ?? { path: "", message: "invalid input" };
    super(formatProblem(file, first));
    this.name = "InputError";
    this.problems = problems;
    this.file = file;
  }

  /** A single problem not tied to a field (a usage error, a file that cannot be read). */
  static of(message: string, file?: string): InputError {
    return new InputError([{ path: "", message }], file);
  }
}

/** A growing list of problems. */
export class Problems {
  readonly list: Problem[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Throws an {@link InputError} carrying every problem, if there is any. */
  throwIfAny(file?: string): void {
    if (this.list.length > 0) throw new InputError(this.list, file);
  }
}

/** `path.key`, or `key` at the top level. */
export function field(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

/** `path[index]`. */
export function item(path: string, index: number): string {
  return `${path}[${index}]`;
}

/** `file: path: message`, leaving out the parts that are empty. */
export function formatProblem(file: string | undefined, problem: Problem): string {
  const parts: string[] = [];
  if (file !== undefined && file !== "") parts.push(file);
  if (problem.path !== "") parts.push(problem.path);
  parts.push(problem.message);
  return oneLine(parts.join(": "));
}

/**
 * Makes text safe to print on one terminal line: line breaks and other control characters (which
 * a hostile file could use to forge output or drive the terminal) become `\n`, `\u001b` and so on.
 */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) =>
    c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** A short, printable description of a JSON value for messages (`-1`, `"abc"`, `an object`). */
export function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
    case "number":
    case "boolean":
      return String(value);
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/**
 * Orders problems as they appear in a layout: file-level ones first, then by device and request
 * index. Stable, so problems of one field keep the order they were found in.
 */
export function sortProblems(problems: readonly Problem[]): Problem[] {
  const key = (p: Problem): [number, number] => {
    const m = /^devices\[(\d+)\](?:\.requests\[(\d+)\])?/.exec(p.path);
    return m === null ? [-1, -1] : [Number(m[1]), m[2] === undefined ? -1 : Number(m[2])];
  };
  return problems
    .map((p, i) => ({ p, i, k: key(p) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.i - b.i)
    .map((x) => x.p);
}
