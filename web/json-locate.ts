/**
 * Finds where a problem's field path (`devices[3].requests[0].size`, as the command prints it) or
 * `line:column` is in the JSON text, so the editor can select it. The strict reader in
 * `cli/json-source.ts` returns values without positions; a second, minimal walk over text that
 * has already parsed is all this needs.
 */

/** A span of the text: `start` inclusive, `end` exclusive (as `setSelectionRange` takes them). */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** Every value's span, keyed by its field path. */
function spans(text: string): Map<string, Span> {
  const out = new Map<string, Span>();
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\r\n".includes(text[i]!)) i++;
  };
  const string = (): string => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    const start = i;
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      while (text[i] === '"') {
        const key = string();
        ws();
        i++; // ':'
        value(path === "" ? key : `${path}.${key}`);
        ws();
        if (text[i] === ",") i++;
        ws();
      }
      i++; // '}'
    } else if (c === "[") {
      i++;
      ws();
      for (let n = 0; i < text.length && text[i] !== "]"; n++) {
        value(`${path}[${n}]`);
        ws();
        if (text[i] === ",") i++;
        ws();
      }
      i++; // ']'
    } else if (c === '"') {
      string();
    } else {
      while (i < text.length && !",]} \t\r\n".includes(text[i]!)) i++;
    }
    out.set(path, { start, end: i });
  };
  value("");
  return out;
}

/** The offset of a 1-based `line:column`. */
function offsetOf(text: string, line: number, column: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return Math.min(text.length, offset + column - 1);
}

/**
 * The span a problem's path names: the value at the path, or the nearest enclosing value that
 * exists (a missing field points at its object), or the character of a `line:column`.
 * Undefined for a file-level problem (path "") or text that is not JSON.
 */
export function locatePath(text: string, path: string): Span | undefined {
  const lc = /^(\d+):(\d+)$/.exec(path);
  if (lc !== null) {
    const at = offsetOf(text, Number(lc[1]), Number(lc[2]));
    return { start: at, end: Math.min(text.length, at + 1) };
  }
  if (path === "") return undefined;
  let map: Map<string, Span>;
  try {
    map = spans(text);
  } catch {
    return undefined;
  }
  for (let p = path; p !== ""; ) {
    const found = map.get(p);
    if (found !== undefined) return found;
    const parent = p.replace(/(\.[^.[\]]*|\[\d+\]|^[^.[\]]*)$/, "");
    if (parent === p) break;
    p = parent;
  }
  return undefined;
}
