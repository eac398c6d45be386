/**
 * Helpers of the CLI tests: running the built command as a user would, comparing with the
 * committed expected files, and a strict XML well-formedness checker for the SVG output.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

/** The repository root (tests run from dist/test/cli/). */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The built command. */
export const MAIN = join(ROOT, "dist", "cli", "main.js");
/** Example layouts and their expected outputs, in the source tree. */
export const EXAMPLES = join(ROOT, "examples", "layouts");
export const EXPECTED = join(EXAMPLES, "expected");

/** Each example, by the name of its expected files, and the arguments that plan it. */
export const EXAMPLE_RUNS: readonly { readonly name: string; readonly args: readonly string[] }[] = [
  { name: "default", args: [] },
  { name: "firecracker-default", args: ["examples/layouts/firecracker-default.json"] },
  { name: "pc-q35", args: ["examples/layouts/pc-q35.json"] },
  { name: "large-mmio64", args: ["examples/layouts/large-mmio64.json"] },
  { name: "firecracker-aarch64", args: ["examples/layouts/firecracker-aarch64.json"] },
  { name: "riscv64-virt", args: ["examples/layouts/riscv64-virt.json"] },
  { name: "q35-pci", args: ["examples/layouts/q35-pci.json"] },
];

/** What a run of the command printed. */
export interface CliResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node dist/cli/main.js ...args` from the repository root, without a terminal and with
 * `NO_COLOR` and `CI`-style variables left as the caller sets them.
 */
export function runCli(args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd: ROOT, env: options.env ?? process.env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 20_000 },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        if (status === -1) reject(error ?? new Error("no exit status"));
        else resolve({ status, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** True when the expected files are to be rewritten from the current output. */
export const UPDATING = process.env["UPDATE_EXPECTED"] === "1";

/**
 * Compares `actual` with the committed file `name` under examples/layouts/expected/, or writes
 * the file when `UPDATE_EXPECTED=1`.
 */
export function matchExpected(name: string, actual: string): void {
  const file = join(EXPECTED, name);
  if (UPDATING) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.ok(existsSync(file), `${file} is missing; run the tests with UPDATE_EXPECTED=1 to create it`);
  const expected = readFileSync(file, "utf8");
  if (actual !== expected) {
    const a = actual.split("\n");
    const e = expected.split("\n");
    const line = a.findIndex((l, i) => l !== e[i]);
    assert.fail(
      `output differs from ${name} at line ${line + 1}:\n  expected: ${JSON.stringify(e[line])}\n  actual:   ${JSON.stringify(a[line])}\n` +
        "(if the change is intended, regenerate with UPDATE_EXPECTED=1 and review the diff)",
    );
  }
}

/** An element of a parsed XML document. */
export interface XmlElement {
  readonly name: string;
  readonly attributes: ReadonlyMap<string, string>;
  readonly children: readonly (XmlElement | string)[];
}

/** Text content of an element and its descendants, references decoded. */
export function textContent(e: XmlElement): string {
  return e.children.map((c) => (typeof c === "string" ? c : textContent(c))).join("");
}

/** Every element named `name` in document order. */
export function elements(e: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (x: XmlElement): void => {
    if (x.name === name) out.push(x);
    for (const c of x.children) if (typeof c !== "string") walk(c);
  };
  walk(e);
  return out;
}

/**
 * Parses `text` as a well-formed XML 1.0 document (no DTD) and returns its root element, or
 * throws naming the first violation and its offset. Checked: the XML declaration, legal
 * characters, names, matching and properly nested tags, quoted and unique attributes with no
 * `<` in values, entity and character references (only the five predefined entities), comments,
 * CDATA sections, processing instructions, and a single root element.
 */
export function parseXml(text: string): XmlElement {
  let pos = 0;
  const fail = (what: string): never => {
    throw new Error(`not well-formed XML at offset ${pos}: ${what}`);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.codePointAt(i)!;
    const ok = c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
    if (!ok) {
      pos = i;
      fail(`character U+${c.toString(16)} is not allowed in XML`);
    }
    if (c > 0xffff) i++;
  }
  const NAME = /[A-Za-z_:][A-Za-z0-9._:-]*/y;
  const name = (): string => {
    NAME.lastIndex = pos;
    const m = NAME.exec(text);
    if (m === null) return fail("expected a name");
    pos += m[0].length;
    return m[0];
  };
  const space = (): boolean => {
    const start = pos;
    while (pos < text.length && " \t\r\n".includes(text[pos]!)) pos++;
    return pos > start;
  };
  const reference = (): string => {
    const m = /^&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));/.exec(text.slice(pos, pos + 16));
    if (m === null) return fail("'&' that does not start a valid reference");
    pos += m[0].length;
    if (m[1] !== undefined) return { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" }[m[1]]!;
    const code = m[2] !== undefined ? parseInt(m[2], 10) : parseInt(m[3]!, 16);
    const ok = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
    if (!ok) fail(`character reference to U+${code.toString(16)}, which XML does not allow`);
    return String.fromCodePoint(code);
  };
  const misc = (): boolean => {
    if (text.startsWith("<!--", pos)) {
      const end = text.indexOf("-->", pos + 4);
      if (end < 0) fail("unterminated comment");
      if (text.slice(pos + 4, end).includes("--") || text[end - 1] === "-") fail("'--' inside a comment");
      pos = end + 3;
      return true;
    }
    if (text.startsWith("<?", pos)) {
      pos += 2;
      const target = name();
      if (target.toLowerCase() === "xml") fail("XML declaration not at the start of the document");
      const end = text.indexOf("?>", pos);
      if (end < 0) fail("unterminated processing instruction");
      pos = end + 2;
      return true;
    }
    return space();
  };
  const element = (depth: number): XmlElement => {
    if (depth > 500) fail("nested too deeply");
    if (text[pos] !== "<") fail("expected '<'");
    pos++;
    const tag = name();
    const attributes = new Map<string, string>();
    for (;;) {
      const spaced = space();
      if (text.startsWith("/>", pos)) {
        pos += 2;
        return { name: tag, attributes, children: [] };
      }
      if (text[pos] === ">") {
        pos++;
        break;
      }
      if (!spaced) fail("expected whitespace, '>' or '/>'");
      const attr = name();
      if (attributes.has(attr)) fail(`attribute ${attr} appears twice on <${tag}>`);
      space();
      if (text[pos] !== "=") fail(`expected '=' after attribute ${attr}`);
      pos++;
      space();
      const quote = text[pos];
      if (quote !== '"' && quote !== "'") fail(`attribute ${attr} value is not quoted`);
      pos++;
      let value = "";
      while (text[pos] !== quote) {
        if (pos >= text.length) fail("unterminated attribute value");
        if (text[pos] === "<") fail(`'<' in the value of attribute ${attr}`);
        if (text[pos] === "&") value += reference();
        else value += text[pos++];
      }
      pos++;
      attributes.set(attr, value);
    }
    const children: (XmlElement | string)[] = [];
    let chars = "";
    for (;;) {
      if (pos >= text.length) fail(`<${tag}> is never closed`);
      if (text.startsWith("</", pos)) {
        pos += 2;
        const close = name();
        if (close !== tag) fail(`</${close}> closes <${tag}>`);
        space();
        if (text[pos] !== ">") fail("expected '>'");
        pos++;
        if (chars !== "") children.push(chars);
        return { name: tag, attributes, children };
      }
      if (text.startsWith("<![CDATA[", pos)) {
        const end = text.indexOf("]]>", pos);
        if (end < 0) fail("unterminated CDATA section");
        chars += text.slice(pos + 9, end);
        pos = end + 3;
      } else if (text.startsWith("<!--", pos) || text.startsWith("<?", pos)) {
        misc();
      } else if (text[pos] === "<") {
        if (chars !== "") children.push(chars);
        chars = "";
        children.push(element(depth + 1));
      } else if (text[pos] === "&") {
        chars += reference();
      } else {
        if (text.startsWith("]]>", pos)) fail("']]>' in character data");
        chars += text[pos++];
      }
    }
  };

  if (text.startsWith("\ufeff")) pos = 1;
  if (text.startsWith("<?xml", pos)) {
    const m = /^<\?xml\s+version\s*=\s*(["'])1\.[0-9]+\1(?:\s+encoding\s*=\s*(["'])[A-Za-z][A-Za-z0-9._-]*\2)?(?:\s+standalone\s*=\s*(["'])(?:yes|no)\3)?\s*\?>/.exec(text.slice(pos));
    if (m === null) fail("malformed XML declaration");
    pos += m![0].length;
  }
  while (misc());
  if (text.startsWith("<!DOCTYPE", pos)) fail("document type declarations are not supported here");
  const root = element(0);
  while (pos < text.length) if (!misc()) fail("content after the root element");
  return root;
}
