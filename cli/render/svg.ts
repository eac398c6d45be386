/**
 * The `svg` format: a map of every pool, one column per pool, addresses growing downwards, every
 * held range labelled with its owner and size.
 *
 * The scale is deliberately not linear. A microVM's 64-bit MMIO pool is 2^38 bytes or more and a
 * virtio-mmio device is 2^12: drawn to scale the device would be a billionth of a pixel. Instead
 * each range gets a row whose height grows with the logarithm of its size:
 *
 * - a held range is at least {@link HELD_MIN} px tall (room for its label) and grows by
 *   {@link HELD_PER_DOUBLING} px per doubling above the pool's small unit (4 KiB for memory, one
 *   port or id otherwise), capped at {@link HELD_MAX};
 * - a free gap is hatched and compressed harder, from {@link FREE_MIN} px growing by
 *   {@link FREE_PER_DOUBLING} px per doubling up to {@link FREE_MAX}, with its size written in it.
 *
 * So bigger still looks bigger, every region is readable, and a pool of 2^40 bytes with a few
 * 4 KiB devices fits on a page. Exact numbers are never lost: each row's start address is written
 * in the gutter, the pool's last address under the column, and each region's exact range in its
 * tooltip (`<title>`). Devices placed at fixed addresses inside a reservation (a serial port in
 * the ISA port block) are drawn as indented rows inside it, as /proc/ioports nests them.
 */
import { oneLine } from "../diagnostics.js";
import type { AddressSpaceView, IdSpaceView, Origin, PciView, PlanView, Region } from "../model.js";
import { hexWidth, humanSize } from "./units.js";
import { presetLabel } from "../view.js";

const HELD_MIN = 22;
const HELD_PER_DOUBLING = 3;
const HELD_MAX = 110;
const FREE_MIN = 18;
const FREE_PER_DOUBLING = 1;
const FREE_MAX = 40;
const CHILD_ROW = 20;
const GROUP_HEAD = 20;

const FONT = 12;
/** Advance of one character of the monospace font at {@link FONT} px, with a little margin. */
const CHAR = 7.4;
const SMALL = 10.5;
const SMALL_CHAR = 6.5;
const MIN_BAR = 220;
const COLUMN_GAP = 36;
const MARGIN = 20;
const HEADER = 44;
const BAND_GAP = 36;

/** One row of a column. */
interface Row {
  readonly height: number;
  /** Gutter text at the row's top edge (its start address or first id). */
  readonly at: string;
  readonly label: string;
  readonly origin: Origin | "free";
  readonly tooltip: string;
  /** Indented rows drawn inside this one. */
  readonly children: readonly { readonly label: string; readonly origin: Origin; readonly tooltip: string }[];
}

interface Column {
  readonly title: string;
  readonly subtitle: string;
  readonly rows: readonly Row[];
  /** Gutter text under the last row (the pool's last address). */
  readonly last: string;
}

/** Renders `view` as a standalone SVG document. */
export function renderSvg(view: PlanView): string {
  const bands: Column[][] = [];
  const spaces = view.addressSpaces.map((space) => addressColumn(space, view.pci));
  if (view.unpooled.length > 0) spaces.push(unpooledColumn(view.unpooled));
  if (spaces.length > 0) bands.push(spaces);
  if (view.idSpaces.length > 0) bands.push([...view.idSpaces.map(idColumn), ...(view.pci === undefined ? [] : [pciColumn(view.pci)])]);

  const body: string[] = [];
  // Title, note and legend, then room for the first band's column titles.
  let y = MARGIN + HEADER + 14 + 46;
  let width = 0;
  for (const band of bands) {
    let x = MARGIN;
    let bandHeight = 0;
    for (const column of band) {
      const drawn = drawColumn(column, x, y);
      body.push(drawn.svg);
      x += drawn.width + COLUMN_GAP;
      bandHeight = Math.max(bandHeight, drawn.height);
    }
    width = Math.max(width, x - COLUMN_GAP + MARGIN);
    y += bandHeight + BAND_GAP;
  }
  width = Math.max(width, 760);
  const height = y - BAND_GAP + MARGIN;
  const label = presetLabel(view);
  const preset = label === undefined ? "" : ` (${label})`;
  const title = `vm-allocator plan of ${view.source}${preset}`;
  const note =
    "Heights grow with the logarithm of size (free gaps hatched and compressed); " +
    "addresses grow downwards; hover a region for its exact range.";
  const head = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace" font-size="${FONT}">`,
    `<title>${xml(title)}</title>`,
    `<desc>${xml(`${note} A held range is ${HELD_MIN} px tall plus ${HELD_PER_DOUBLING} px per doubling of its size (at most ${HELD_MAX} px); a free gap ${FREE_MIN} px plus ${FREE_PER_DOUBLING} px per doubling (at most ${FREE_MAX} px).`)}</desc>`,
    "<defs>",
    `<pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="8" stroke="#d6d6d6" stroke-width="3"/></pattern>`,
    "</defs>",
    "<style>",
    ".allocated{fill:#cfe3ff;stroke:#3b6fb6}.fixed{fill:#ffe0b8;stroke:#b86e12}.reserved{fill:#e4e4e4;stroke:#7a7a7a}",
    ".free{fill:url(#hatch);stroke:#b8b8b8}.label{fill:#111}.freelabel{fill:#666;font-style:italic}",
    ".gutter{fill:#555;font-size:" + SMALL + "px}.title{font-weight:bold;font-size:14px}.sub{fill:#555}",
    "</style>",
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${MARGIN}" y="${MARGIN + 14}">${xml(title)}</text>`,
    `<text class="sub" x="${MARGIN}" y="${MARGIN + 32}">${xml(note)}</text>`,
    legend(MARGIN, MARGIN + HEADER),
  ];
  return `${[...head, ...body, "</svg>"].join("\n")}\n`;
}

function legend(x: number, y: number): string {
  const items: [Origin | "free", string][] = [
    ["allocated", "allocated by the allocator"],
    ["fixed", "fixed by the layout"],
    ["reserved", "reserved (firmware, platform)"],
    ["free", "free"],
  ];
  const out: string[] = [];
  let cx = x;
  for (const [cls, text] of items) {
    out.push(`<rect class="${cls}" x="${cx}" y="${y}" width="14" height="14"/>`);
    out.push(`<text x="${cx + 20}" y="${y + 11}">${xml(text)}</text>`);
    cx += 20 + text.length * CHAR + 24;
  }
  return `<g>${out.join("")}</g>`;
}

function drawColumn(column: Column, x: number, y: number): { svg: string; width: number; height: number } {
  const gutterChars = Math.max(column.last.length, ...column.rows.map((r) => r.at.length));
  const gutter = Math.ceil(gutterChars * SMALL_CHAR) + 10;
  const labelChars = Math.max(
    ...column.rows.flatMap((r) => [r.label.length, ...r.children.map((c) => c.label.length + 2)]),
    0,
  );
  const bar = Math.max(MIN_BAR, Math.ceil(labelChars * CHAR) + 24);
  const titleWidth = Math.ceil(Math.max(column.title.length * 8.4, column.subtitle.length * CHAR));
  const width = Math.max(gutter + bar, titleWidth);
  const out: string[] = [`<g>`];
  out.push(`<text class="title" x="${x}" y="${y - 20}">${xml(column.title)}</text>`);
  out.push(`<text class="sub" x="${x}" y="${y - 5}">${xml(column.subtitle)}</text>`);
  const bx = x + gutter;
  let cy = y;
  for (const row of column.rows) {
    out.push(`<g><title>${xml(row.tooltip)}</title>`);
    out.push(`<rect class="${row.origin}" x="${bx}" y="${cy}" width="${bar}" height="${row.height}"/>`);
    const textClass = row.origin === "free" ? "freelabel" : "label";
    const ty = row.children.length > 0 ? cy + 14 : cy + row.height / 2 + 4;
    out.push(`<text class="${textClass}" x="${bx + 8}" y="${ty}">${xml(row.label)}</text>`);
    out.push(`</g>`);
    let ky = cy + GROUP_HEAD;
    for (const child of row.children) {
      out.push(`<g><title>${xml(child.tooltip)}</title>`);
      out.push(`<rect class="${child.origin}" x="${bx + 14}" y="${ky}" width="${bar - 20}" height="${CHILD_ROW - 3}"/>`);
      out.push(`<text class="label" x="${bx + 20}" y="${ky + 12.5}">${xml(child.label)}</text>`);
      out.push(`</g>`);
      ky += CHILD_ROW;
    }
    out.push(`<text class="gutter" x="${bx - 5}" y="${cy + 9}" text-anchor="end">${xml(row.at)}</text>`);
    cy += row.height;
  }
  out.push(`<text class="gutter" x="${bx - 5}" y="${cy + 2}" text-anchor="end">${xml(column.last)}</text>`);
  out.push(`</g>`);
  return { svg: out.join("\n"), width, height: cy - y + 10 };
}

/** floor(log2(n)) for n >= 1. */
function log2(n: bigint): number {
  return n.toString(2).length - 1;
}

function heldHeight(size: bigint, unitLog: number): number {
  return Math.min(HELD_MAX, HELD_MIN + HELD_PER_DOUBLING * Math.max(0, log2(size) - unitLog));
}

function freeHeight(size: bigint, unitLog: number): number {
  return Math.min(FREE_MAX, FREE_MIN + FREE_PER_DOUBLING * Math.max(0, log2(size) - unitLog));
}

const hexOf = (v: bigint, width: number) => `0x${v.toString(16).padStart(width, "0")}`;

function addressColumn(space: AddressSpaceView, pci: PciView | undefined): Column {
  const width = Math.max(space.kind === "io" ? 4 : 8, hexWidth(space.end));
  const unitLog = space.kind === "mem" ? 12 : 0;
  const rangeText = (start: bigint, end: bigint) => `[${space.kind} ${hexOf(start, width)}-${hexOf(end, width)}]`;
  const rows: Row[] = space.segments.map((s): Row => {
    const size = s.end - s.start + 1n;
    const human = humanSize(size, space.kind);
    const at = hexOf(s.start, width);
    if (s.owner === undefined) {
      return { height: freeHeight(size, unitLog), at, label: `free · ${human}`, origin: "free", tooltip: `free ${rangeText(s.start, s.end)}, ${human}`, children: [] };
    }
    const owner = oneLine(s.owner);
    const origin = s.origin ?? "allocated";
    const children = s.children.map((c: Region) => ({
      label: `${oneLine(c.owner)} ${hexOf(c.start, 0)}-${hexOf(c.end, 0)}`,
      origin: c.origin,
      tooltip: `${oneLine(c.owner)} ${rangeText(c.start, c.end)}, ${humanSize(c.end - c.start + 1n, space.kind)}, ${c.origin}, inside ${owner}`,
    }));
    const own = heldHeight(size, unitLog);
    const height = children.length === 0 ? own : Math.max(own, GROUP_HEAD + children.length * CHILD_ROW + 4);
    // A BAR's tooltip says which register of which function it is, with the flags Linux prints.
    const bar = pci?.barsByOwner.get(s.owner);
    const what = bar === undefined ? "" : `; BAR ${bar.bar.index} of ${bar.function.address} ${oneLine(bar.function.name)}, ${bar.bar.kind === "io" ? "io" : ["mem", bar.bar.flags].filter((x) => x !== "").join(" ")}`;
    return { height, at, label: `${owner} · ${human}`, origin, tooltip: `${owner} ${rangeText(s.start, s.end)}, ${human}, ${origin}${what}`, children };
  });
  const total = humanSize(space.end - space.start + 1n, space.kind);
  return { title: `${space.title} (${space.name})`, subtitle: `${rangeText(space.start, space.end)}, ${total}`, rows, last: hexOf(space.end, width) };
}

function unpooledColumn(regions: PlanView["unpooled"]): Column {
  const rows = regions.map((r): Row => {
    const size = r.end - r.start + 1n;
    const human = humanSize(size, r.kind);
    const owner = oneLine(r.owner);
    return {
      height: heldHeight(size, r.kind === "mem" ? 12 : 0),
      at: hexOf(r.start, r.kind === "io" ? 4 : 8),
      label: `${owner} · ${human}`,
      origin: r.origin,
      tooltip: `${owner} [${r.kind} ${hexOf(r.start, 0)}-${hexOf(r.end, 0)}], ${human}, ${r.origin}, outside every pool`,
      children: [],
    };
  });
  return { title: "Outside the pools", subtitle: "fixed device ranges no pool covers", rows, last: "" };
}

function idColumn(space: IdSpaceView): Column {
  const rows: Row[] = [];
  const ids = (a: number, b: number) => (a === b ? `${a}` : `${a}-${b}`);
  const count = (n: number) => (n === 1 ? "1 id" : `${n} ids`);
  const outside = space.assignments.filter((a) => a.outsidePool);
  const inside = space.assignments.filter((a) => !a.outsidePool && a.sharedWith === undefined);
  const shared = space.assignments.filter((a) => a.sharedWith !== undefined);
  const held = (first: number, last: number, owner: string, origin: Origin, extra: string): Row => ({
    height: HELD_MIN,
    at: String(first),
    label: `${ids(first, last)} ${oneLine(owner)}${extra}`,
    origin,
    tooltip: `${oneLine(owner)}: ${space.name} ${ids(first, last)}, ${origin}${extra}`,
    children: [],
  });
  const free = (first: number, last: number): Row => ({
    height: freeHeight(BigInt(last - first + 1), 0),
    at: String(first),
    label: `free · ${ids(first, last)} (${count(last - first + 1)})`,
    origin: "free",
    tooltip: `free: ${space.name} ${ids(first, last)}`,
    children: [],
  });
  for (const a of outside.filter((o) => o.id < space.first)) rows.push(held(a.id, a.id, a.owner, a.origin, " (outside the pool)"));
  let next = space.first;
  for (let i = 0; i < inside.length; ) {
    const a = inside[i]!;
    // Consecutive ids of one owner (an MSI vector block) make one row.
    let j = i;
    while (j + 1 < inside.length && inside[j + 1]!.owner === a.owner && inside[j + 1]!.id === inside[j]!.id + 1 && inside[j + 1]!.origin === a.origin) j++;
    if (a.id > next) rows.push(free(next, a.id - 1));
    rows.push(held(a.id, inside[j]!.id, a.owner, a.origin, ""));
    for (const s of shared) if (s.id >= a.id && s.id <= inside[j]!.id) rows.push(held(s.id, s.id, s.owner, s.origin, ` (shared with ${s.sharedWith!})`));
    next = Math.max(next, inside[j]!.id + 1);
    i = j + 1;
  }
  if (next <= space.last) rows.push(free(next, space.last));
  for (const a of outside.filter((o) => o.id > space.last)) rows.push(held(a.id, a.id, a.owner, a.origin, " (outside the pool)"));
  return { title: `${space.title} (${space.name})`, subtitle: `ids ${ids(space.first, space.last)}`, rows, last: String(space.last) };
}

/**
 * The PCI functions, one row each in address order: slot, name and interrupt; the tooltip lists
 * the ids and every BAR with its exact range and flags.
 */
function pciColumn(pci: PciView): Column {
  const rows = pci.functions.map((f): Row => {
    const bars = f.bars.map((b) => `BAR ${b.index} ${b.text} (${b.owner})`);
    const ids = `${f.vendorId.toString(16).padStart(4, "0")}:${f.deviceId.toString(16).padStart(4, "0")} class ${f.classCode.toString(16).padStart(6, "0")}`;
    return {
      height: HELD_MIN,
      at: f.slot,
      label: `${f.slot} ${oneLine(f.name)}${f.interrupt === "-" ? "" : ` · ${f.interrupt}`}`,
      origin: "allocated",
      tooltip: `${f.address} ${oneLine(f.name)} (${oneLine(f.owner)}) [${ids}]; interrupt: ${f.interrupt}; ${bars.length === 0 ? "no BARs" : bars.join("; ")}`,
      children: [],
    };
  });
  const routing = pci.routing === undefined ? "no INTx" : `${pci.routing} INTx`;
  return { title: `PCI bus ${pci.bus}`, subtitle: `${pci.functions.length} functions, ${routing}`, rows, last: "" };
}

/** Text as XML character data: markup escaped, and characters XML 1.0 forbids replaced. */
export function xml(text: string): string {
  return (
    oneLine(text)
      // Lone surrogates cannot be encoded in UTF-8; noncharacters are not XML characters.
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]|[\ufffe\uffff]/g, "\ufffd")
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&apos;")
  );
}
