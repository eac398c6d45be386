/**
 * The default `text` format: for each address pool an aligned table of every range, held or
 * free, with its size and owner; then each id pool (legacy IRQs, MSI GSIs, instance ids) with
 * its assignments; then the devices with everything they hold.
 */
import { PLAIN, type Style } from "../color.js";
import { oneLine } from "../diagnostics.js";
import type { AddressSpaceView, DeviceRange, IdAssignment, IdSpaceView, PciView, PlanView } from "../model.js";
import { presetLabel } from "../view.js";
import { table, type CellInput } from "./table.js";
import { hexDigits, hexWidth, humanBytes, humanSize } from "./units.js";

/** Renders `view` as text; `style` adds colour for terminals. */
export function renderText(view: PlanView, style: Style = PLAIN): string {
  const lines: string[] = [];
  const label = presetLabel(view);
  const preset = label === undefined ? "" : ` (${label})`;
  lines.push(style.heading(`Plan of ${oneLine(view.source)}${preset}`));
  if (view.description !== undefined) lines.push(oneLine(view.description));
  for (const space of view.addressSpaces) lines.push("", ...addressSpace(space, style));
  if (view.unpooled.length > 0) lines.push("", ...unpooled(view, style));
  for (const space of view.idSpaces) lines.push("", ...idSpace(space, style));
  if (view.pci !== undefined) lines.push("", ...pci(view.pci, style));
  lines.push("", ...devices(view, style));
  return `${lines.join("\n")}\n`;
}

function addressSpace(space: AddressSpaceView, style: Style): string[] {
  // Every range of a pool gets the digits of its widest address, so columns line up.
  const width = Math.max(space.kind === "io" ? 4 : 8, hexWidth(space.end));
  const range = (start: bigint, end: bigint) => `0x${hexDigits(start, width)}-0x${hexDigits(end, width)}`;
  let held = 0n;
  for (const s of space.segments) if (s.owner !== undefined) held += s.end - s.start + 1n;
  const total = space.end - space.start + 1n;
  const amount = space.kind === "io" ? `${held} of ${total} ports` : `${humanBytes(held)} of ${humanBytes(total)}`;
  const head = `${space.title} (${space.name}) [${space.kind} ${range(space.start, space.end)}]: ${amount} held`;
  const rows: CellInput[][] = [["RANGE", { text: "SIZE", right: true }, "OWNER", "HOW"]];
  for (const s of space.segments) {
    const size = { text: humanSize(s.end - s.start + 1n, space.kind), right: true };
    if (s.owner === undefined) {
      rows.push([{ text: range(s.start, s.end), style: style.dim }, { ...size, style: style.dim }, { text: "(free)", style: style.dim }, ""]);
    } else {
      rows.push([range(s.start, s.end), size, { text: oneLine(s.owner), style: style.owner }, s.origin ?? ""]);
      for (const c of s.children) {
        const childSize = { text: humanSize(c.end - c.start + 1n, space.kind), right: true };
        rows.push([range(c.start, c.end), childSize, { text: `  ${oneLine(c.owner)}`, style: style.owner }, `${c.origin}, inside ${oneLine(s.owner)}`]);
      }
    }
  }
  return [style.heading(head), ...table(rows)];
}

function unpooled(view: PlanView, style: Style): string[] {
  const rows: CellInput[][] = [["RANGE", { text: "SIZE", right: true }, "OWNER", "HOW"]];
  for (const r of view.unpooled) {
    const width = r.kind === "io" ? 4 : 8;
    rows.push([
      `${r.kind} 0x${hexDigits(r.start, width)}-0x${hexDigits(r.end, width)}`,
      { text: humanSize(r.end - r.start + 1n, r.kind), right: true },
      { text: oneLine(r.owner), style: style.owner },
      r.origin,
    ]);
  }
  return [style.heading("Outside the pools (fixed device ranges no pool covers)"), ...table(rows)];
}

function idSpace(space: IdSpaceView, style: Style): string[] {
  const inPool = space.assignments.filter((a) => !a.outsidePool && a.sharedWith === undefined).length;
  const total = space.last - space.first + 1;
  const span = space.first === space.last ? `${space.first}` : `${space.first}-${space.last}`;
  const head = `${space.title} (${space.name}) [${span}]: ${inPool} of ${total} held`;
  const out = [style.heading(head)];
  if (space.assignments.length > 0) {
    const rows: CellInput[][] = [[{ text: "ID", right: true }, "OWNER", "HOW"]];
    for (const run of idRuns(space.assignments)) {
      const a = run.first;
      const how = a.outsidePool ? `${a.origin}, outside the pool` : a.sharedWith !== undefined ? `${a.origin}, shared with ${oneLine(a.sharedWith)}` : a.origin;
      const ids = run.last === a.id ? String(a.id) : `${a.id}-${run.last}`;
      rows.push([{ text: ids, right: true }, { text: oneLine(a.owner), style: style.owner }, how]);
    }
    out.push(...table(rows));
  }
  const free = freeRuns(space);
  out.push(style.dim(`  free: ${free.length === 0 ? "none" : free.join(", ")}`));
  return out;
}

/** Consecutive ids held alike (an MSI vector block) as one run. */
function idRuns(assignments: readonly IdAssignment[]): { first: IdAssignment; last: number }[] {
  const runs: { first: IdAssignment; last: number }[] = [];
  for (const a of assignments) {
    const run = runs[runs.length - 1];
    const f = run?.first;
    if (run !== undefined && f !== undefined && a.id === run.last + 1 && a.owner === f.owner && a.origin === f.origin && a.outsidePool === f.outsidePool && a.sharedWith === f.sharedWith) {
      run.last = a.id;
    } else {
      runs.push({ first: a, last: a.id });
    }
  }
  return runs;
}

/** `4, 8-11`: ids as runs, a trailing `*` on fixed ones. */
function idList(items: readonly { id: number; fixed: boolean }[]): string {
  if (items.length === 0) return "-";
  const parts: string[] = [];
  let i = 0;
  while (i < items.length) {
    let j = i;
    while (j + 1 < items.length && items[j + 1]!.id === items[j]!.id + 1 && items[j + 1]!.fixed === items[i]!.fixed) j++;
    const a = items[i]!;
    parts.push(`${j === i ? a.id : `${a.id}-${items[j]!.id}`}${a.fixed ? "*" : ""}`);
    i = j + 1;
  }
  return parts.join(", ");
}

/** The free ids of a pool as `a-b` runs; a long list is cut short with a count. */
function freeRuns(space: IdSpaceView): string[] {
  const held = space.assignments.filter((a) => !a.outsidePool && a.sharedWith === undefined).map((a) => a.id);
  const runs: string[] = [];
  let next = space.first;
  const emit = (a: number, b: number) => runs.push(a === b ? `${a}` : `${a}-${b}`);
  for (const id of held) {
    if (id > next) emit(next, id - 1);
    next = Math.max(next, id + 1);
  }
  if (next <= space.last) emit(next, space.last);
  const MAX = 12;
  return runs.length <= MAX ? runs : [...runs.slice(0, MAX), `... (${runs.length - MAX} more runs)`];
}

function devices(view: PlanView, style: Style): string[] {
  const out = [style.heading(`Devices (${view.devices.length})`)];
  if (view.devices.length === 0) return out;
  const list = (items: readonly { text: string; fixed: boolean }[]) =>
    items.length === 0 ? "-" : items.map((i) => `${i.text}${i.fixed ? "*" : ""}`).join(", ");
  const ranges = (items: readonly DeviceRange[]) => list(items.map((r) => ({ text: `0x${r.start.toString(16)}-0x${r.end.toString(16)}`, fixed: r.fixed })));
  const rows: CellInput[][] = [[{ text: "ID", right: true }, "OWNER", "PIO", "MMIO", "IRQ", "MSI"]];
  for (const d of view.devices) {
    rows.push([
      { text: String(d.instanceId), right: true },
      { text: oneLine(d.owner), style: style.owner },
      ranges(d.pio),
      ranges(d.mmio),
      idList(d.irqs.map((q) => ({ id: q.irq, fixed: q.fixed }))),
      idList(d.msi.map((m) => ({ id: m.gsi, fixed: m.fixed }))),
    ]);
  }
  const note = view.pci === undefined ? "" : " (a PCI function's INTx line: derived from its slot and pin)";
  out.push(...table(rows), style.dim(`  * fixed by the layout rather than allocated${note}`));
  return out;
}

const hex4 = (n: number): string => n.toString(16).padStart(4, "0");

/**
 * The PCI functions, one row per BAR as `lspci -v` lists them: slot, name, ids, class, the
 * interrupt (INTx pin and the GSI the preset's rule derives, MSI-X vectors) and each BAR with
 * the flags Linux prints.
 */
function pci(view: PciView, style: Style): string[] {
  const routing = view.routing === undefined ? "no INTx" : `${view.routing} INTx routing`;
  const ports = view.configPorts === undefined ? "" : `, config ports 0x${view.configPorts.start.toString(16)}-0x${view.configPorts.end.toString(16)}`;
  const head = `PCI bus ${view.bus} (${routing}, ECAM [mem 0x${view.ecam.start.toString(16)}-0x${view.ecam.end.toString(16)}]${ports}): ${view.functions.length} function${view.functions.length === 1 ? "" : "s"}`;
  const rows: CellInput[][] = [["SLOT", "NAME", "ID", "CLASS", "INTERRUPT", "BARS"]];
  for (const f of view.functions) {
    const bars = f.bars.map((b) => `BAR ${b.index} ${b.text}`);
    rows.push([f.slot, { text: oneLine(f.name), style: style.owner }, `${hex4(f.vendorId)}:${hex4(f.deviceId)}`, f.classCode.toString(16).padStart(6, "0"), f.interrupt, bars[0] ?? "-"]);
    for (const b of bars.slice(1)) rows.push(["", "", "", "", "", b]);
  }
  return [style.heading(head), ...table(rows), style.dim("  MSI-X GSIs are held when the guest enables the vectors, not by the plan")];
}
