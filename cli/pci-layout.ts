/**
 * PCI devices of a layout file: `"kind": "pci"` entries of `devices`, planned as functions of the
 * preset's PCI host bridge rather than as lists of resource requests.
 *
 * ```json
 * { "name": "nvme0", "kind": "pci", "slot": 4, "vendorId": "0x1b36", "deviceId": "0x0010", "classCode": "0x010802",
 *   "interruptPin": "A", "bars": [ { "index": 0, "kind": "mem64", "size": "0x10000" } ],
 *   "msix": { "vectors": 2048, "bar": 0, "tableOffset": "0x2000", "pbaOffset": "0xa000" } }
 * ```
 *
 * Every field but `name` and `kind` is optional: without `slot` the function takes function 0 of
 * the lowest free slot of bus 0 (from slot 1, as crosvm hands them out), without ids it reads as
 * QEMU's vendor 0x1b36 with device 0 and class 0xff0000 ("unassigned"), without `interruptPin`
 * it has no INTx, without `bars` no BAR. BARs are `io`, `mem32` or `mem64` (optionally
 * `prefetchable`), a power of two in size, placed naturally aligned in the pool of their kind.
 * MSI-X vectors are counted, not allocated: a guest holds their GSIs when it enables them.
 */
import { isAllocatorError } from "../src/core/errors.js";
import { normalizeBars, type PciBar } from "../src/pci/bar.js";
import { normalizePciDevice, type PciDevice } from "../src/pci/pci-function.js";
import { PCI_MSIX_MAX_VECTORS } from "../src/pci/msix.js";
import type { LayoutName } from "../src/system/layouts.js";
import type { LayoutParameters } from "../src/system/presets/preset.js";
import { describeJson, field, item, type Problems } from "./diagnostics.js";
import type { JsonObject } from "./json-source.js";
import { readInteger, readU32 } from "./numbers.js";
import { pciHostOf, pciPresets } from "./pci-host.js";

/** The fields of a PCI device entry. */
export const PCI_DEVICE_KEYS = ["name", "kind", "slot", "function", "vendorId", "deviceId", "classCode", "interruptPin", "bars", "msix"];
const BAR_KEYS = ["index", "kind", "size", "prefetchable"];
const MSIX_KEYS = ["vectors", "bar", "tableOffset", "pbaOffset"];

/** Ids of a function without ids in the file: QEMU's vendor id, device 0, class "unassigned". */
export const DEFAULT_PCI_IDS = { vendorId: 0x1b36, deviceId: 0x0000, classCode: 0xff_0000 } as const;

/** A validated PCI device of a layout file. */
export interface PciDeviceSpec {
  /** Tells it from a device with resource requests. */
  readonly kind: "pci";
  readonly name: string;
  /** `devices[3]`, for messages. */
  readonly path: string;
  /** Fixed device slot on bus 0, or undefined for the lowest free one. */
  readonly slot: number | undefined;
  /** Function number in the slot (0 without a fixed slot). */
  readonly function: number;
  readonly vendorId: number;
  readonly deviceId: number;
  /** 24-bit class code. */
  readonly classCode: number;
  /** 0 for none, 1-4 for INTA-INTD. */
  readonly interruptPin: number;
  /** The BARs in register order. */
  readonly bars: readonly PciBar[];
  /** Path of each BAR's entry in the file, by register index. */
  readonly barPaths: ReadonlyMap<number, string>;
  /** MSI-X table entries and where the table is, or undefined without MSI-X. */
  readonly msix: { readonly vectors: number; readonly tableBar: number; readonly tableOffset?: number; readonly pbaOffset?: number } | undefined;
}

/** The library's declaration of `spec` (ids, BARs, pin, MSI-X), as `PciRootComplex.plug` takes it. */
export function pciDeviceOf(spec: PciDeviceSpec): PciDevice {
  const bars = spec.bars.map((b) => (b.kind === "io" ? { kind: b.kind, index: b.index, size: b.size } : { kind: b.kind, index: b.index, size: b.size, prefetchable: b.prefetchable }));
  return {
    name: spec.name,
    vendorId: spec.vendorId,
    deviceId: spec.deviceId,
    classCode: spec.classCode,
    interruptPin: spec.interruptPin,
    bars,
    ...(spec.msix === undefined ? {} : { msix: spec.msix }),
  };
}

function checkKeys(o: JsonObject, allowed: readonly string[], path: string, problems: Problems): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) problems.add(field(path, key), `unknown field (expected one of: ${allowed.join(", ")})`);
}

function small(value: unknown, path: string, max: number, problems: Problems, what: string): number | undefined {
  const v = readU32(value, path, problems);
  if (v === undefined) return undefined;
  if (v > max) {
    problems.add(path, `must be ${what}, got ${describeJson(value)}`);
    return undefined;
  }
  return v;
}

/** Reads `interruptPin`: 0 or "none", 1-4, or "A"-"D" / "INTA"-"INTD". */
function readPin(value: unknown, path: string, problems: Problems): number | undefined {
  if (typeof value === "string") {
    const m = /^(?:INT)?([A-D])$/i.exec(value);
    if (m !== null) return "ABCD".indexOf(m[1]!.toUpperCase()) + 1;
    if (value === "none") return 0;
  }
  if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 4) return value;
  problems.add(path, `must be "A" to "D" (INTA-INTD), 1 to 4, or 0 / "none" for no INTx, got ${describeJson(value)}`);
  return undefined;
}

/** A library message about a BAR or MSI-X (`bars[0].size must be ...`) as a problem at its field path. */
function libraryProblem(error: unknown, path: string, name: string, problems: Problems): void {
  if (!isAllocatorError(error)) throw error;
  const message = error.message.startsWith(`${name}: `) ? error.message.slice(name.length + 2) : error.message;
  const m = /^((?:bars|msix)(?:\.[A-Za-z]\w*|\[\d+\])*)(?::\s*|\s+)(.*)$/s.exec(message);
  if (m === null) problems.add(/MSI-X/.test(message) ? `${path}.msix` : path, message);
  else problems.add(`${path}.${m[1]!}`, m[2]!);
}

/**
 * Validates a `"kind": "pci"` entry of `devices` for `preset`, recording every problem.
 * @returns the device, or undefined when it has any problem.
 */
export function readPciDevice(o: JsonObject, path: string, name: string | undefined, preset: LayoutName, parameters: LayoutParameters, problems: Problems): PciDeviceSpec | undefined {
  const before = problems.list.length;
  checkKeys(o, PCI_DEVICE_KEYS, path, problems);
  const host = pciHostOf(preset, parameters);
  if (host === undefined) {
    problems.add(field(path, "kind"), `preset ${preset} has no PCI host bridge; PCI devices need one of the presets ${pciPresets().join(", ")}`);
    return undefined;
  }
  const at = (key: string) => field(path, key);
  const slot = o["slot"] === undefined ? undefined : small(o["slot"], at("slot"), 31, problems, "a device slot from 0 to 31 (0x1f)");
  let fn = 0;
  if (o["function"] !== undefined) {
    const v = small(o["function"], at("function"), 7, problems, "a function number from 0 to 7");
    if (v !== undefined) fn = v;
    if (o["slot"] === undefined) problems.add(at("function"), "needs a slot: only a fixed slot can name a function other than 0");
  }
  const ids: Record<"vendorId" | "deviceId" | "classCode", number> = { ...DEFAULT_PCI_IDS };
  for (const [key, max, what] of [["vendorId", 0xfffe, "from 0 to 0xfffe (0xffff is what an absent function reads)"], ["deviceId", 0xffff, "from 0 to 0xffff"], ["classCode", 0xff_ffff, "a 24-bit class code, at most 0xffffff"]] as const) {
    if (o[key] === undefined) continue;
    const v = small(o[key], at(key), max, problems, what);
    if (v !== undefined) ids[key] = v;
  }
  let pin = 0;
  if (o["interruptPin"] !== undefined) {
    const v = readPin(o["interruptPin"], at("interruptPin"), problems);
    if (v !== undefined) pin = v;
    if (v !== undefined && v !== 0 && host.routing === undefined) problems.add(at("interruptPin"), `preset ${preset}'s PCI host routes no INTx (its functions interrupt through MSI-X only); leave interruptPin out`);
  }
  const barsPath = at("bars");
  const raw: { index?: number; kind: string; size: bigint; prefetchable?: boolean }[] = [];
  const positions: number[] = [];
  if (o["bars"] !== undefined) {
    if (!Array.isArray(o["bars"])) problems.add(barsPath, `must be an array of { kind, size, index?, prefetchable? }, got ${describeJson(o["bars"])}`);
    else {
      o["bars"].forEach((b, j) => {
        const bp = item(barsPath, j);
        if (typeof b !== "object" || b === null || Array.isArray(b)) return problems.add(bp, `must be an object { kind, size, index?, prefetchable? }, got ${describeJson(b)}`);
        const bo = b as JsonObject;
        const start = problems.list.length;
        checkKeys(bo, BAR_KEYS, bp, problems);
        const kind = bo["kind"];
        if (kind !== "io" && kind !== "mem32" && kind !== "mem64") problems.add(field(bp, "kind"), `must be "io", "mem32" or "mem64", got ${describeJson(kind)}`);
        else if (kind === "io" && !host.io) problems.add(field(bp, "kind"), `preset ${preset}'s PCI host has no I/O space for an I/O BAR; use a memory BAR`);
        if (kind === "io" && bo["prefetchable"] !== undefined) problems.add(field(bp, "prefetchable"), "applies to memory BARs only");
        const size = bo["size"] === undefined ? (problems.add(field(bp, "size"), "is missing"), undefined) : readInteger(bo["size"], field(bp, "size"), problems);
        if (size !== undefined && (size === 0n || (size & (size - 1n)) !== 0n)) problems.add(field(bp, "size"), `must be a power of two (a BAR is placed at a multiple of its size), got ${describeJson(bo["size"])}`);
        const index = bo["index"] === undefined ? undefined : small(bo["index"], field(bp, "index"), 5, problems, "a BAR register from 0 to 5");
        const pref = bo["prefetchable"];
        if (pref !== undefined && typeof pref !== "boolean") problems.add(field(bp, "prefetchable"), `must be true or false, got ${describeJson(pref)}`);
        if (problems.list.length > start || size === undefined) return;
        raw.push({ kind: kind as string, size, ...(index === undefined ? {} : { index }), ...(pref === true ? { prefetchable: true } : {}) });
        positions.push(j);
      });
    }
  }
  let msix: PciDeviceSpec["msix"];
  if (o["msix"] !== undefined) {
    const mp = at("msix");
    const m = o["msix"];
    if (typeof m !== "object" || m === null || Array.isArray(m)) problems.add(mp, `must be an object { vectors, bar, tableOffset?, pbaOffset? }, got ${describeJson(m)}`);
    else {
      checkKeys(m, MSIX_KEYS, mp, problems);
      const vectors = m["vectors"] === undefined ? (problems.add(field(mp, "vectors"), "is missing"), undefined) : small(m["vectors"], field(mp, "vectors"), PCI_MSIX_MAX_VECTORS, problems, `from 1 to ${PCI_MSIX_MAX_VECTORS} (an MSI-X table's limit)`);
      if (vectors === 0) problems.add(field(mp, "vectors"), `must be from 1 to ${PCI_MSIX_MAX_VECTORS}, got 0`);
      const bar = m["bar"] === undefined ? (problems.add(field(mp, "bar"), "is missing (the BAR register holding the table)"), undefined) : small(m["bar"], field(mp, "bar"), 5, problems, "a BAR register from 0 to 5");
      const offsets: { tableOffset?: number; pbaOffset?: number } = {};
      for (const key of ["tableOffset", "pbaOffset"] as const) {
        if (m[key] === undefined) continue;
        const v = readU32(m[key], field(mp, key), problems);
        if (v !== undefined && v % 8 !== 0) problems.add(field(mp, key), `must be a multiple of 8, got ${describeJson(m[key])}`);
        else if (v !== undefined) offsets[key] = v;
      }
      if (vectors !== undefined && vectors > 0 && bar !== undefined) msix = { vectors, tableBar: bar, ...offsets };
    }
  }
  if (problems.list.length > before || name === undefined) return undefined;
  // The library's own checks (registers used twice, a 64-bit BAR at register 5, sizes per kind,
  // the MSI-X table inside a memory BAR) as a backstop, reported at the field they concern.
  let bars: PciBar[];
  try {
    bars = normalizeBars(raw);
  } catch (error) {
    const before2 = problems.list.length;
    libraryProblem(error, path, name, problems);
    // `bars[i]` of the library is the i-th valid entry; name the file's entry instead.
    const p = problems.list[before2];
    if (p !== undefined) problems.list[before2] = { ...p, path: p.path.replace(/\.bars\[(\d+)\]/, (_, i: string) => `.bars[${positions[Number(i)] ?? Number(i)}]`) };
    return undefined;
  }
  const barPaths = new Map<number, string>();
  // normalizeBars returns register order; map each register back to its entry.
  const byIndex = normalizeBarsWithPositions(raw, positions);
  for (const [index, j] of byIndex) barPaths.set(index, item(barsPath, j));
  const spec: PciDeviceSpec = { kind: "pci", name, path, slot, function: fn, ...ids, interruptPin: pin, bars, barPaths, msix };
  try {
    normalizePciDevice(pciDeviceOf(spec));
  } catch (error) {
    libraryProblem(error, path, name, problems);
    return undefined;
  }
  return spec;
}

/** The register index each valid BAR entry gets (the next free one when it names none), and its position in the file. */
function normalizeBarsWithPositions(raw: readonly { index?: number; kind: string }[], positions: readonly number[]): Map<number, number> {
  const out = new Map<number, number>();
  let next = 0;
  raw.forEach((b, i) => {
    const index = b.index ?? next;
    out.set(index, positions[i]!);
    next = index + (b.kind === "mem64" ? 2 : 1);
  });
  return out;
}
