/**
 * Terminal colour. Colour is only ever an aid: every renderer produces the same characters with
 * or without it, and it is used only when the output is a terminal, `NO_COLOR` is unset or empty
 * (https://no-color.org), `TERM` is not `dumb`, and `--no-color` was not given.
 */

/** How text is decorated. */
export interface Style {
  /** Headings. */
  heading(text: string): string;
  /** Owners of held ranges and ids. */
  owner(text: string): string;
  /** Free space and other secondary text. */
  dim(text: string): string;
  /** The `error:` tag of diagnostics. */
  error(text: string): string;
}

/** No decoration: what pipes and files get. */
export const PLAIN: Style = {
  heading: (t) => t,
  owner: (t) => t,
  dim: (t) => t,
  error: (t) => t,
};

const sgr = (on: string, off: string) => (t: string) => (t === "" ? t : `\u001b[${on}m${t}\u001b[${off}m`);

/** ANSI SGR decoration for terminals. */
export const ANSI: Style = {
  heading: sgr("1", "22"),
  owner: sgr("36", "39"),
  dim: sgr("2", "22"),
  error: sgr("1;31", "22;39"),
};

/** Decides whether a stream gets colour. */
export function useColor(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv, allowed: boolean): boolean {
  if (!allowed || stream.isTTY !== true) return false;
  const noColor = env["NO_COLOR"];
  if (noColor !== undefined && noColor !== "") return false;
  return env["TERM"] !== "dumb";
}
