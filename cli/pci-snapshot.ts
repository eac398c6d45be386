/**
 * The `pci` part of a saved plan: the host bridge's configuration windows and, for each PCI
 * function, its address, ids, BARs and interrupt. What each function holds is also listed with
 * the plan's devices (the PCI layer registers every function, BAR and configuration window with
 * the device manager); this part says which of those devices make up which function, and reading
 * checks that both agree and that each INTx line is the one the preset's rule gives.
 *
 * ```json
 * "pci": {
 *   "bus": "0000:00", "routing": "q35",
 *   "ecam": { "start": "0xb0000000", "end": "0xbfffffff", "owner": "pci-ecam@1" },
 *   "configPorts": { "start": "0xcf8", "end": "0xcff", "owner": "pci-config@0" },
 *   "functions": [ { "address": "0000:00:03.0", "name": "nvme0", "owner": "nvme0 0000:00:03.0@6",
 *     "vendorId": 6966, "deviceId": 16, "classCode": 67586, "interruptPin": 1, "gsi": 23, "msixVectors": 2048,
 *     "bars": [ { "index": 0, "kind": "mem64", "prefetchable": false, "start": "0xc0010000", "end": "0xc001ffff",
 *                 "owner": "nvme0 0000:00:03.0 BAR 0@7" } ] } ]
 * }
 * ```
 */
import { formatPciAddress, toPciAddress } from "../src/pci/address.js";
import { parseHexU64 } from "../src/core/u64.js";
import { PCI_MSIX_MAX_VECTORS } from "../src/pci/msix.js";
import type { LayoutName } from "../src/system/layouts.js";
import type { LayoutParameters } from "../src/system/presets/preset.js";
import { describeJson, field, item, type Problems } from "./diagnostics.js";
import { isJsonObject, type JsonObject } from "./json-source.js";
import { pciHostOf, pciIntxGsi } from "./pci-host.js";

/** A range held by one device of the plan, `"0x..."` strings. */
export interface PlanPciWindow {
  readonly start: string;
  readonly end: string;
  /** The device of the plan (`name@instanceId`) holding it. */
  readonly owner: string;
}

/** One BAR of a planned PCI function. */
export interface PlanPciBar {
  /** Register number, 0-5. */
  readonly index: number;
  readonly kind: "io" | "mem32" | "mem64";
  readonly prefetchable: boolean;
  readonly start: string;
  readonly end: string;
  /** The plan's device holding the BAR's range (`nvme0 0000:00:03.0 BAR 0@7`). */
  readonly owner: string;
}

/** One planned PCI function. */
export interface PlanPciFunction {
  /** `0000:00:03.0`. */
  readonly address: string;
  /** The layout's name of the device. */
  readonly name: string;
  /** The plan's device that is the function and holds its INTx share (`nvme0 0000:00:03.0@6`). */
  readonly owner: string;
  readonly vendorId: number;
  readonly deviceId: number;
  /** 24-bit class code. */
  readonly classCode: number;
  /** 0 for none, 1-4 for INTA-INTD. */
  readonly interruptPin: number;
  /** The GSI the pin raises through the preset's INTx rule, or null without a pin. */
  readonly gsi: number | null;
  /** MSI-X table entries (0 without MSI-X); GSIs are held only once a guest enables them. */
  readonly msixVectors: number;
  readonly bars: readonly PlanPciBar[];
}

/** The PCI part of a plan. */
export interface PlanPci {
  /** The bus the functions are on (`0000:00`). */
  readonly bus: string;
  /** The INTx rule's name (`q35`), or null when the host routes no INTx. */
  readonly routing: string | null;
  readonly ecam: PlanPciWindow;
  /** Configuration mechanism #1's ports, or null on a host without them. */
  readonly configPorts: PlanPciWindow | null;
  /** In address order. */
  readonly functions: readonly PlanPciFunction[];
}

/** What the reader needs to know of a plan device. */
interface DeviceFacts {
  readonly name: string;
  readonly owner: string;
  readonly pio: readonly { readonly start: string; readonly end: string }[];
  readonly mmio: readonly { readonly start: string; readonly end: string }[];
  readonly irqs: readonly { readonly irq: number }[];
  readonly msi: readonly unknown[];
}

const PCI_KEYS = ["bus", "routing", "ecam", "configPorts", "functions"];
const FUNCTION_KEYS = ["address", "name", "owner", "vendorId", "deviceId", "classCode", "interruptPin", "gsi", "msixVectors", "bars"];
const BAR_KEYS = ["index", "kind", "prefetchable", "start", "end", "owner"];

function int(o: JsonObject, key: string, path: string, max: number, problems: Problems): number | undefined {
  const v = o[key];
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max) return v;
  problems.add(field(path, key), `must be an integer from 0 to ${max}, got ${describeJson(v)}`);
  return undefined;
}

function keys(o: JsonObject, allowed: readonly string[], path: string, problems: Problems): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.add(field(path, k), `unknown field (expected one of: ${allowed.join(", ")})`);
}

/**
 * Checks that device `owner` exists and holds exactly the one range `[start, end]` of `family`
 * and nothing else but, for a function, its INTx line.
 */
function holds(devices: ReadonlyMap<string, DeviceFacts>, owner: unknown, family: "pio" | "mmio", start: bigint, end: bigint, path: string, problems: Problems): DeviceFacts | undefined {
  const d = typeof owner === "string" ? devices.get(owner) : undefined;
  if (d === undefined) {
    problems.add(field(path, "owner"), `must name a device of this plan, got ${describeJson(owner)}`);
    return undefined;
  }
  const list = d[family];
  const other = family === "pio" ? d.mmio : d.pio;
  const r = list[0];
  if (list.length !== 1 || other.length !== 0 || r === undefined || parseHexU64(r.start) !== start || parseHexU64(r.end) !== end) {
    const label = family === "pio" ? "io" : "mem";
    problems.add(path, `[${label} 0x${start.toString(16)}-0x${end.toString(16)}] is not the only range ${d.owner} holds in devices`);
  }
  return d;
}

function range(o: JsonObject, path: string, problems: Problems): { start: bigint; end: bigint } | undefined {
  const start = parseHexU64(o["start"]);
  const end = parseHexU64(o["end"]);
  if (start === undefined) problems.add(field(path, "start"), `must be a hex string like "0x1000", got ${describeJson(o["start"])}`);
  if (end === undefined) problems.add(field(path, "end"), `must be a hex string like "0x1fff", got ${describeJson(o["end"])}`);
  if (start === undefined || end === undefined) return undefined;
  if (start > end) {
    problems.add(path, `start 0x${start.toString(16)} is above end 0x${end.toString(16)}`);
    return undefined;
  }
  return { start, end };
}

/**
 * Validates the `pci` part of a plan for `preset` against the plan's devices, recording every
 * problem at its path under `pci`.
 */
export function readPlanPci(value: unknown, preset: string, parameters: LayoutParameters, devices: readonly DeviceFacts[], problems: Problems): void {
  const path = "pci";
  if (!isJsonObject(value)) {
    problems.add(path, `must be an object { bus, routing, ecam, configPorts, functions }, got ${describeJson(value)}`);
    return;
  }
  keys(value, PCI_KEYS, path, problems);
  let host;
  try {
    host = pciHostOf(preset as LayoutName, parameters);
  } catch {
    return; // the preset or its parameters are reported where they are
  }
  if (host === undefined) {
    problems.add(path, `preset ${preset} has no PCI host bridge, so a plan for it has no PCI functions`);
    return;
  }
  const byOwner = new Map(devices.map((d) => [d.owner, d]));
  if (value["bus"] !== "0000:00") problems.add(field(path, "bus"), `must be "0000:00" (the CLI plans bus 0), got ${describeJson(value["bus"])}`);
  const routing = host.routing?.name ?? null;
  if (value["routing"] !== routing) problems.add(field(path, "routing"), `must be ${describeJson(routing)} (preset ${preset}'s INTx rule), got ${describeJson(value["routing"])}`);
  const ecam = value["ecam"];
  const ecamPath = field(path, "ecam");
  if (!isJsonObject(ecam)) problems.add(ecamPath, `must be an object { start, end, owner }, got ${describeJson(ecam)}`);
  else {
    keys(ecam, ["start", "end", "owner"], ecamPath, problems);
    const r = range(ecam, ecamPath, problems);
    const end = host.ecamBase + BigInt(host.lastBus + 1) * 0x10_0000n - 1n;
    if (r !== undefined && (r.start !== host.ecamBase || r.end !== end)) problems.add(ecamPath, `must be [mem 0x${host.ecamBase.toString(16)}-0x${end.toString(16)}], preset ${preset}'s ECAM window`);
    else if (r !== undefined) holds(byOwner, ecam["owner"], "mmio", r.start, r.end, ecamPath, problems);
  }
  const cp = value["configPorts"];
  const cpPath = field(path, "configPorts");
  if (!host.configPorts) {
    if (cp !== null) problems.add(cpPath, `must be null: preset ${preset}'s PCI host has no configuration ports`);
  } else if (!isJsonObject(cp)) problems.add(cpPath, `must be an object { start, end, owner }, got ${describeJson(cp)}`);
  else {
    keys(cp, ["start", "end", "owner"], cpPath, problems);
    const r = range(cp, cpPath, problems);
    if (r !== undefined && (r.start !== 0xcf8n || r.end !== 0xcffn)) problems.add(cpPath, "must be [io 0xcf8-0xcff]");
    else if (r !== undefined) holds(byOwner, cp["owner"], "pio", r.start, r.end, cpPath, problems);
  }
  const functions = value["functions"];
  const fPath = field(path, "functions");
  if (!Array.isArray(functions)) {
    problems.add(fPath, `must be an array, got ${describeJson(functions)}`);
    return;
  }
  let previous = "";
  functions.forEach((f, i) => {
    const at = item(fPath, i);
    if (!isJsonObject(f)) return problems.add(at, `must be an object, got ${describeJson(f)}`);
    keys(f, FUNCTION_KEYS, at, problems);
    let address: ReturnType<typeof toPciAddress> | undefined;
    try {
      address = toPciAddress(f["address"], "address");
    } catch {
      problems.add(field(at, "address"), `must be a PCI address like "0000:00:03.0", got ${describeJson(f["address"])}`);
    }
    const text = address === undefined ? undefined : formatPciAddress(address);
    if (address !== undefined && (text !== f["address"] || address.segment !== 0 || address.bus !== 0)) {
      problems.add(field(at, "address"), `must be a function of bus 0000:00 written as "${text ?? ""}", got ${describeJson(f["address"])}`);
      address = undefined;
    }
    if (address !== undefined && text! <= previous) problems.add(field(at, "address"), `${text!} is not after the previous function (duplicate or out of order)`);
    if (text !== undefined) previous = text;
    const name = f["name"];
    if (typeof name !== "string" || name.length === 0) problems.add(field(at, "name"), `must be a non-empty string, got ${describeJson(name)}`);
    int(f, "vendorId", at, 0xffff, problems);
    int(f, "deviceId", at, 0xffff, problems);
    int(f, "classCode", at, 0xff_ffff, problems);
    const pin = int(f, "interruptPin", at, 4, problems);
    int(f, "msixVectors", at, PCI_MSIX_MAX_VECTORS, problems);
    const owner = f["owner"];
    const fn = typeof owner === "string" ? byOwner.get(owner) : undefined;
    if (fn === undefined) problems.add(field(at, "owner"), `must name a device of this plan, got ${describeJson(owner)}`);
    else if (typeof name === "string" && text !== undefined && fn.name !== `${name} ${text}`) problems.add(field(at, "owner"), `${fn.owner} is not the device of ${name} at ${text}`);
    else if (fn.pio.length + fn.mmio.length + fn.msi.length > 0) problems.add(field(at, "owner"), `${fn.owner} holds ranges or MSI GSIs; a function's device holds only its INTx line`);
    if (address !== undefined && pin !== undefined) {
      const gsi = pciIntxGsi(host, address.device, pin) ?? null;
      if (f["gsi"] !== gsi) problems.add(field(at, "gsi"), `must be ${describeJson(gsi)}: ${pin === 0 ? "the function has no INTx pin" : `the ${host.routing?.name ?? ""} rule wires INT${"ABCD"[pin - 1]} of slot ${address.device} to it`}, got ${describeJson(f["gsi"])}`);
      else if (fn !== undefined && (fn.irqs.length !== (gsi === null ? 0 : 1) || (gsi !== null && fn.irqs[0]!.irq !== gsi))) {
        problems.add(field(at, "gsi"), `${fn.owner} holds lines [${fn.irqs.map((q) => q.irq).join(", ")}] in devices, not ${gsi ?? "none"}`);
      }
    }
    const bars = f["bars"];
    const bPath = field(at, "bars");
    if (!Array.isArray(bars)) return problems.add(bPath, `must be an array, got ${describeJson(bars)}`);
    let next = 0;
    bars.forEach((b, j) => {
      const bp = item(bPath, j);
      if (!isJsonObject(b)) return problems.add(bp, `must be an object, got ${describeJson(b)}`);
      keys(b, BAR_KEYS, bp, problems);
      const index = int(b, "index", bp, 5, problems);
      const kind = b["kind"];
      if (kind !== "io" && kind !== "mem32" && kind !== "mem64") problems.add(field(bp, "kind"), `must be "io", "mem32" or "mem64", got ${describeJson(kind)}`);
      if (typeof b["prefetchable"] !== "boolean" || (kind === "io" && b["prefetchable"])) problems.add(field(bp, "prefetchable"), `must be true or false (false for an I/O BAR), got ${describeJson(b["prefetchable"])}`);
      if (index !== undefined) {
        if (index < next) problems.add(field(bp, "index"), `BAR ${index} is not after the registers of the previous BAR`);
        if (kind === "mem64" && index === 5) problems.add(field(bp, "index"), "a 64-bit BAR takes two registers and cannot start at BAR 5");
        next = index + (kind === "mem64" ? 2 : 1);
      }
      const r = range(b, bp, problems);
      if (r === undefined) return;
      const size = r.end - r.start + 1n;
      if ((size & (size - 1n)) !== 0n || r.start % size !== 0n) problems.add(bp, `[0x${r.start.toString(16)}-0x${r.end.toString(16)}] is not a power-of-two size at a multiple of it, as a BAR is`);
      if (kind === "mem32" && r.end > 0xffff_ffffn) problems.add(bp, "a 32-bit BAR must lie below 4 GiB");
      if (kind === "io" && r.end > 0xffffn) problems.add(bp, "an I/O BAR must lie below 0x10000");
      const d = holds(byOwner, b["owner"], kind === "io" ? "pio" : "mmio", r.start, r.end, bp, problems);
      if (d !== undefined && typeof name === "string" && text !== undefined && index !== undefined && d.name !== `${name} ${text} BAR ${index}`) {
        problems.add(field(bp, "owner"), `${d.owner} is not the device of BAR ${index} of ${name} at ${text}`);
      }
    });
  });
}
