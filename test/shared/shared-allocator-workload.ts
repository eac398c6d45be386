/**
 * The random workload the thread tests run on a shared system allocator, in any thread (Node
 * worker, Web Worker, a main thread): allocate, fixed and free calls through the four callbacks
 * and an occasional releaseAll, under owners named after the participant. It records what it
 * committed (with the commit sequence number) and keeps its own view of what it holds, both in
 * structured-clone-safe form so that a worker can post them back.
 *
 * It imports no `node:*`, so a browser worker can load it.
 */
import { AllocatorError } from "../../src/core/errors.js";
import { RangeInclusive } from "../../src/core/range.js";
import type { SharedSystemAllocator } from "../../src/shared/shared-system-allocator.js";
import type { AddrAllocateParams, CallbackHolding, IdAllocateParams } from "../../src/system/allocation-callbacks.js";
import type { DefaultSystemAllocator } from "../../src/system/system-allocator.js";

/** Which call a {@link Committed} record made. */
export type CallName = "deviceId" | "irq" | "pio" | "mmio" | "releaseAll";

/** A range on the wire: structured clone keeps bigints but not the RangeInclusive class. */
export type WireRange = { readonly start: bigint; readonly end: bigint };

/** One committed call: its sequence number, what was asked, what came back. */
export interface Committed {
  readonly seq: number;
  readonly call: CallName;
  /** The params (callbacks) or the owner (releaseAll), with ranges as {@link WireRange}. */
  readonly params: Record<string, unknown>;
  /** The id, the range, null, or (releaseAll) the number of holdings freed. */
  readonly result: number | WireRange | null;
}

/** What a participant believes it holds: the callback vocabulary of `holdingsCallback`. */
export interface Held {
  readonly kind: "pio" | "mmio" | "irq" | "msi" | "instanceId";
  readonly owner: string;
  readonly id?: number;
  readonly range?: WireRange;
}

/** The results a worker posts back. */
export interface WorkloadReport {
  readonly committed: Committed[];
  readonly held: Held[];
  /** Calls refused with an AllocatorError (expected: pools fill, fixed values collide). */
  readonly refused: number;
}

const wire = (r: RangeInclusive): WireRange => ({ start: r.start, end: r.end });

/** A text key of a holding, for set comparison. */
export function heldKey(h: Held): string {
  return h.range !== undefined ? `${h.kind} ${h.owner} ${h.range.start}-${h.range.end}` : `${h.kind} ${h.owner} ${h.id!}`;
}

/** Turns wire params back into what a callback takes (ranges rebuilt). */
export function fromWire(params: Record<string, unknown>): Record<string, unknown> {
  const range = params["range"] as WireRange | undefined;
  return range === undefined ? params : { ...params, range: new RangeInclusive(range.start, range.end) };
}

/** Bounds the workload draws fixed values from, read once from the allocator. */
interface Bounds {
  readonly mmioBase: bigint;
  readonly mmioSpan: number;
  readonly pioBase: bigint | undefined;
  readonly irqFirst: number;
  readonly irqSpan: number;
  readonly idSpan: number;
}

function boundsOf(d: DefaultSystemAllocator): Bounds {
  return {
    mmioBase: d.mmio32.base,
    // Fixed MMIO values land in the first 16 MiB of the pool, where the allocations are too.
    mmioSpan: 0x1000,
    pioBase: d.pio?.base,
    irqFirst: d.legacyIrq.first - 2,
    irqSpan: d.legacyIrq.last - d.legacyIrq.first + 4,
    idSpan: 64,
  };
}

/** A participant's random workload on a shared allocator. */
export class Workload {
  readonly committed: Committed[] = [];
  refused = 0;
  readonly #sys: SharedSystemAllocator;
  readonly #owners: string[];
  readonly #held: Held[] = [];
  readonly #bounds: Bounds;
  #x: number;

  constructor(sys: SharedSystemAllocator, prefix: string, seed: number) {
    this.#sys = sys;
    this.#owners = [0, 1, 2, 3].map((i) => `${prefix}-dev${i}`);
    this.#bounds = boundsOf(sys.toDefaultAllocator());
    this.#x = seed >>> 0 || 1;
  }

  /** xorshift32: below(n) in [0, n). */
  #below(n: number): number {
    let x = this.#x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#x = x >>> 0;
    return this.#x % n;
  }

  /** What this participant believes it holds now. */
  held(): Held[] {
    return [...this.#held];
  }

  /** Makes one random call; AllocatorErrors are expected and counted, anything else is thrown. */
  step(): void {
    const owner = this.#owners[this.#below(this.#owners.length)]!;
    const roll = this.#below(100);
    try {
      if (roll < 32 || this.#held.length > 24) this.#free();
      else if (roll < 47) this.#mmio(owner, false);
      else if (roll < 54) this.#mmio(owner, true);
      else if (roll < 64) this.#irq(owner, false);
      else if (roll < 69) this.#irq(owner, true);
      else if (roll < 78) this.#msi(owner);
      else if (roll < 88) this.#deviceId(owner, this.#below(4) === 0);
      else if (roll < 98) this.#pio(owner, this.#below(3) === 0);
      else this.#releaseAll(owner);
    } catch (error) {
      if (!(error instanceof AllocatorError)) throw error;
      this.refused++;
    }
  }

  #record(call: CallName, params: Record<string, unknown>, result: number | WireRange | null): void {
    this.committed.push({ seq: this.#sys.lastCommitSequence, call, params, result });
  }

  #id(call: "deviceId" | "irq", params: IdAllocateParams, kind: Held["kind"]): void {
    const cb = call === "deviceId" ? this.#sys.deviceIdCallback() : this.#sys.irqCallback();
    const id = cb(params);
    this.#record(call, { ...params }, id);
    if (id !== null && params.action === "allocate") {
      this.#held.push({ kind, owner: params.appendIdToOwner === true ? `${params.owner}@${id}` : params.owner, id });
    }
  }

  #range(call: "pio" | "mmio", params: AddrAllocateParams): void {
    const cb = call === "pio" ? this.#sys.pioAddressCallback()! : this.#sys.mmioAddressCallback();
    const r = cb(params);
    this.#record(call, params.action === "free" ? { ...params, range: wire(params.range) } : { ...params }, r === null ? null : wire(r));
    if (r !== null && params.action === "allocate") this.#held.push({ kind: call, owner: params.owner, range: wire(r) });
  }

  #mmio(owner: string, fixed: boolean): void {
    const size = 0x1000n << BigInt(this.#below(4));
    if (fixed) {
      const at = this.#bounds.mmioBase + BigInt(this.#below(this.#bounds.mmioSpan)) * 0x1000n;
      this.#range("mmio", { action: "allocate", owner, size, fixed: at });
      return;
    }
    const high = this.#below(4) === 0;
    this.#range("mmio", {
      action: "allocate",
      owner,
      size,
      alignment: size,
      ...(high ? { mmio64: true, allowFallback: true } : {}),
      ...(this.#below(3) === 0 ? { placement: "last" as const } : {}),
    });
  }

  #irq(owner: string, fixed: boolean): void {
    const shared = this.#below(2) === 0;
    if (fixed) {
      const at = this.#bounds.irqFirst + this.#below(this.#bounds.irqSpan);
      this.#id("irq", { action: "allocate", owner, fixed: at, ...(shared ? { shared: true } : {}), ...(this.#below(4) === 0 ? { allowReserved: true } : {}) }, "irq");
      return;
    }
    this.#id("irq", { action: "allocate", owner, ...(shared ? { shared: true } : {}) }, "irq");
  }

  #msi(owner: string): void {
    this.#id("irq", { action: "allocate", owner, pool: "msi" }, "msi");
  }

  #deviceId(owner: string, fixed: boolean): void {
    const append = this.#below(2) === 0;
    this.#id(
      "deviceId",
      { action: "allocate", owner, ...(fixed ? { fixed: this.#below(this.#bounds.idSpan) } : {}), ...(append ? { appendIdToOwner: true } : {}) },
      "instanceId",
    );
  }

  #pio(owner: string, fixed: boolean): void {
    if (this.#bounds.pioBase === undefined) return;
    if (fixed) {
      this.#range("pio", { action: "allocate", owner, size: 8n, fixed: this.#bounds.pioBase + BigInt(this.#below(256)) * 8n });
      return;
    }
    this.#range("pio", { action: "allocate", owner, size: 8n, alignment: 8n });
  }

  #free(): void {
    if (this.#held.length === 0) return;
    const i = this.#below(this.#held.length);
    const h = this.#held[i]!;
    // Not refused: this participant holds it, and nobody else may free it.
    if (h.range !== undefined) {
      this.#range(h.kind as "pio" | "mmio", { action: "free", owner: h.owner, range: new RangeInclusive(h.range.start, h.range.end) });
    } else {
      const call = h.kind === "instanceId" ? "deviceId" : "irq";
      this.#id(call, { action: "free", owner: h.owner, id: h.id!, ...(h.kind === "msi" ? { pool: "msi" as const } : {}) }, h.kind);
    }
    this.#held.splice(i, 1);
  }

  #releaseAll(owner: string): void {
    const freed = this.#sys.releaseAll(owner);
    this.committed.push({ seq: this.#sys.lastCommitSequence, call: "releaseAll", params: { owner }, result: freed.length });
    for (let i = this.#held.length - 1; i >= 0; i--) if (this.#held[i]!.owner === owner) this.#held.splice(i, 1);
  }

  /** The report a worker posts back. */
  report(): WorkloadReport {
    return { committed: this.committed, held: this.held(), refused: this.refused };
  }
}

/**
 * Replays committed calls, in sequence order, on `fresh`, checking each result against the
 * recorded one; returns the first mismatch as text, or undefined.
 */
export function replay(fresh: DefaultSystemAllocator, calls: readonly Committed[]): string | undefined {
  for (const c of calls) {
    let got: unknown;
    try {
      if (c.call === "releaseAll") got = fresh.releaseAll(c.params["owner"] as string).length;
      else {
        const p = fromWire(c.params);
        const cb =
          c.call === "deviceId" ? fresh.deviceIdCallback() : c.call === "irq" ? fresh.irqCallback() : c.call === "pio" ? fresh.pioAddressCallback()! : fresh.mmioAddressCallback();
        const r = (cb as (p: unknown) => unknown)(p);
        got = r instanceof RangeInclusive ? wire(r) : r;
      }
    } catch (error) {
      return `operation ${c.seq} (${c.call}) threw on replay: ${String(error)}`;
    }
    const want = c.result;
    const same =
      typeof want === "object" && want !== null
        ? typeof got === "object" && got !== null && (got as WireRange).start === want.start && (got as WireRange).end === want.end
        : got === want;
    if (!same) return `operation ${c.seq} (${c.call}) returned ${String(got)} on replay, ${JSON.stringify(want, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))} when committed`;
  }
  return undefined;
}

/** A text key of a holding as `holdingsCallback` lists it. */
export function holdingKey(h: CallbackHolding): string {
  return "range" in h ? `${h.kind} ${h.owner} ${h.range.start}-${h.range.end}` : `${h.kind} ${h.owner} ${h.id}`;
}

/**
 * Why `holdings` holds something twice (a range overlapping another of its kind, an id held by two
 * owners not both sharing it, a line shared twice by one owner), or undefined.
 */
export function doubleHolding(holdings: readonly CallbackHolding[]): string | undefined {
  const ids = new Map<string, { shared: boolean; owners: string[] }>();
  const ranges: { kind: string; start: bigint; end: bigint; owner: string }[] = [];
  for (const h of holdings) {
    if ("range" in h) {
      ranges.push({ kind: h.kind, start: h.range.start, end: h.range.end, owner: h.owner });
      continue;
    }
    const key = `${h.kind} ${h.id}`;
    const seen = ids.get(key);
    if (seen === undefined) ids.set(key, { shared: h.shared, owners: [h.owner] });
    else if (!(seen.shared && h.shared)) return `${key} is held by ${seen.owners.join(", ")} and ${h.owner} without sharing`;
    else if (seen.owners.includes(h.owner)) return `${key} is held twice by ${h.owner}`;
    else seen.owners.push(h.owner);
  }
  ranges.sort((a, b) => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1]!;
    const b = ranges[i]!;
    if (a.kind === b.kind && a.end >= b.start) return `${a.kind} ${a.start}-${a.end} (${a.owner}) overlaps ${b.start}-${b.end} (${b.owner})`;
  }
  return undefined;
}

/** Why the holdings under `${prefix}-` owners differ from what that participant believes it holds, or undefined. */
export function viewMismatch(holdings: readonly CallbackHolding[], prefix: string, held: readonly Held[]): string | undefined {
  const actual = holdings.filter((h) => h.owner.startsWith(`${prefix}-`)).map(holdingKey).sort();
  const believed = held.map(heldKey).sort();
  if (actual.length === believed.length && actual.every((k, i) => k === believed[i])) return undefined;
  return `${prefix} believes it holds [${believed.join("; ")}] but holds [${actual.join("; ")}]`;
}

/** Every participant's committed calls merged in commit order; `gap` says why they do not number 1..N. */
export function inCommitOrder(reports: readonly (readonly Committed[])[]): { calls: Committed[]; gap: string | undefined } {
  const calls = reports.flat().sort((a, b) => a.seq - b.seq);
  const i = calls.findIndex((c, j) => c.seq !== j + 1);
  return { calls, gap: i < 0 ? undefined : `commit sequence has a gap or a duplicate at ${i + 1} (found ${calls[i]!.seq})` };
}
