/**
 * The `iomem` format: what Linux prints in /proc/iomem and /proc/ioports. One line per range,
 * `start-end : name` with inclusive ends in lower-case hex, padded to 8 digits for memory (more
 * when an address needs them, as `%08llx` does) and 4 for ports, children indented two spaces
 * per level. Here each pool is a top-level entry and what it holds is nested under it; free
 * space is not listed, as in the kernel's files. Memory comes first, then a blank line, then ports.
 */
import { oneLine } from "../diagnostics.js";
import type { AddressSpaceView, PlanView } from "../model.js";
import { hexDigits } from "./units.js";

/** Renders `view` in /proc/iomem then /proc/ioports style. */
export function renderIomem(view: PlanView): string {
  const sections: string[] = [];
  for (const kind of ["mem", "io"] as const) {
    const lines = section(view, kind);
    if (lines.length > 0) sections.push(lines.join("\n"));
  }
  return sections.length === 0 ? "" : `${sections.join("\n\n")}\n`;
}

function section(view: PlanView, kind: "io" | "mem"): string[] {
  const width = kind === "io" ? 4 : 8;
  const line = (depth: number, start: bigint, end: bigint, name: string) =>
    `${"  ".repeat(depth)}${hexDigits(start, width)}-${hexDigits(end, width)} : ${oneLine(name)}`;
  // Pools and the ranges outside them are siblings at the top level, in address order.
  const top: { start: bigint; lines: string[] }[] = [];
  for (const s of view.addressSpaces) {
    if (s.kind !== kind) continue;
    top.push({ start: s.start, lines: pool(s, line) });
  }
  for (const r of view.unpooled) if (r.kind === kind) top.push({ start: r.start, lines: [line(0, r.start, r.end, r.owner)] });
  top.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return top.flatMap((t) => t.lines);
}

function pool(s: AddressSpaceView, line: (depth: number, start: bigint, end: bigint, name: string) => string): string[] {
  const out = [line(0, s.start, s.end, s.name)];
  for (const seg of s.segments) {
    if (seg.owner === undefined) continue;
    out.push(line(1, seg.start, seg.end, seg.owner));
    for (const c of seg.children) out.push(line(2, c.start, c.end, c.owner));
  }
  return out;
}
