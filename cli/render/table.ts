/**
 * Aligned plain-text tables. Widths are measured on the undecorated text and decoration is
 * applied after padding, so colour never shifts a column.
 */

/** One cell: its text and an optional decoration. */
export interface Cell {
  readonly text: string;
  readonly style?: (text: string) => string;
  /** Right-align (numbers). */
  readonly right?: boolean;
}

/** A cell from a string or a {@link Cell}. */
export type CellInput = string | Cell;

/**
 * Lays out `rows` (the first is usually the header) with two spaces between columns and
 * `indent` spaces before each line. Trailing spaces are trimmed.
 */
export function table(rows: readonly (readonly CellInput[])[], indent = 2): string[] {
  const cells = rows.map((r) => r.map((c): Cell => (typeof c === "string" ? { text: c } : c)));
  const widths: number[] = [];
  for (const row of cells) {
    row.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, [...c.text].length);
    });
  }
  return cells.map((row) => {
    const parts = row.map((c, i) => {
      const pad = " ".repeat((widths[i] ?? 0) - [...c.text].length);
      const last = i === row.length - 1;
      const styled = c.style === undefined ? c.text : c.style(c.text);
      if (c.right === true) return pad + styled;
      return last ? styled : styled + pad;
    });
    return (" ".repeat(indent) + parts.join("  ")).trimEnd();
  });
}
