/**
 * The `iomem` format: what Linux prints in /proc/iomem and /proc/ioports. One line per range,
 * `start-end : name` with inclusive ends in lower-case hex, padded to 8 digits for memory (more
 * when an address needs them, as `%08llx` does) and 4 for ports, children indented two spaces
 * per level. Here each pool is a top-level entry and what it holds is nested under it; free
 * space is not listed, as in the kernel's files. Memory comes first, then a blank line, then ports.
 * In a plan with PCI functions, the free space and BARs of the PCI windows (pio, mmio32, mmio64)
 * are grouped under `PCI Bus 0000:00` entries, each BAR named by its function's address.
 */
import { oneLine } from "../diagnostics.js";
import type { AddressSpaceView, PciView, PlanView } from "../model.js";
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
    top.push({ start: s.start, lines: pool(s, line, view.pci) });
  }
  for (const r of view.unpooled) if (r.kind === kind) top.push({ start: r.start, lines: [line(0, r.start, r.end, r.owner)] });
  top.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return top.flatMap((t) => t.lines);
}

/** The pools a PCI host bridge forwards to its bus (its windows). */
const PCI_WINDOWS: readonly string[] = ["pio", "mmio32", "mmio64"];

function pool(s: AddressSpaceView, line: (depth: number, start: bigint, end: bigint, name: string) => string, pci: PciView | undefined): string[] {
  const out = [line(0, s.start, s.end, s.name)];
  const windowed = pci !== undefined && PCI_WINDOWS.includes(s.name);
  // With PCI, each run of free space and BARs between the pool's other holders is a window of
  // the host bridge, listed as Linux lists it: `PCI Bus 0000:00`, each BAR under it named by its
  // function's address, and the BAR's holder under that.
  let run: { start: bigint; end: bigint; lines: string[] } | undefined;
  const flush = () => {
    if (run !== undefined) out.push(line(1, run.start, run.end, `PCI Bus ${pci!.bus}`), ...run.lines);
    run = undefined;
  };
  for (const seg of s.segments) {
    const bar = seg.owner === undefined ? undefined : pci?.barsByOwner.get(seg.owner);
    if (windowed && (seg.owner === undefined || bar !== undefined)) {
      run ??= { start: seg.start, end: seg.end, lines: [] };
      run.end = seg.end;
      if (bar !== undefined) run.lines.push(line(2, seg.start, seg.end, bar.function.address), line(3, seg.start, seg.end, seg.owner!));
      continue;
    }
    flush();
    if (seg.owner === undefined) continue;
    out.push(line(1, seg.start, seg.end, seg.owner));
    for (const c of seg.children) out.push(line(2, c.start, c.end, c.owner));
  }
  flush();
  return out;
}
