/**
 * A deliberately simple reference model of an address allocator, for model-based tests.
 *
 * State is a sorted array of live allocations; free space is whatever lies between them. Every
 * operation is a linear scan written straight from the rules of the issue, with unbounded
 * bigint arithmetic so no wrap-around can hide anything. It validates only the rules that
 * depend on values (not argument types), and reports a failure as the *set* of error codes
 * whose rule the call breaks: when a call breaks several rules at once the contract does not
 * say which code wins, so any of them is accepted.
 */

export const U64_MAX = (1n << 64n) - 1n;

export interface ModelAllocation {
  readonly start: bigint;
  readonly end: bigint;
  readonly owner: string | undefined;
}

export interface ModelRange {
  readonly start: bigint;
  readonly end: bigint;
}

export type ModelPolicy =
  | { readonly kind: "FirstMatch" }
  | { readonly kind: "LastMatch" }
  | { readonly kind: "ExactMatch"; readonly address: bigint };

export interface ModelAllocateRequest {
  readonly size: bigint;
  readonly alignment: bigint;
  readonly policy: ModelPolicy;
  readonly owner?: string | undefined;
  readonly window?: { readonly min: bigint; readonly max: bigint } | undefined;
}

/** Either the value, or every error code whose rule the call breaks (never empty). */
export type ModelResult<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly codes: ReadonlySet<string>;
      /** For `Overlap`: the live allocations the request overlaps, in address order. */
      readonly conflicts: readonly ModelAllocation[];
    };

function fail<T>(codes: string[], conflicts: readonly ModelAllocation[] = []): ModelResult<T> {
  return { ok: false, codes: new Set(codes), conflicts };
}

const isPow2 = (v: bigint): boolean => {
  if (v <= 0n) return false;
  let x = v;
  while (x % 2n === 0n) x /= 2n;
  return x === 1n;
};

/** Smallest multiple of `a` that is >= `v` (v >= 0). */
export const alignUp = (v: bigint, a: bigint): bigint => ((v + a - 1n) / a) * a;
/** Largest multiple of `a` that is <= `v` (v >= 0). */
export const alignDown = (v: bigint, a: bigint): bigint => (v / a) * a;

export class AddressModel {
  readonly base: bigint;
  readonly end: bigint;
  /** Live allocations sorted by start. */
  #allocs: ModelAllocation[] = [];

  /** Manages [base, base + size - 1]; the caller passes a valid pool. */
  constructor(base: bigint, size: bigint) {
    if (size < 1n || base < 0n || base + size - 1n > U64_MAX) throw new Error("model: invalid pool");
    this.base = base;
    this.end = base + size - 1n;
  }

  /** Rebuilds a model from a list of allocations (any order). */
  static from(base: bigint, size: bigint, allocations: readonly ModelAllocation[]): AddressModel {
    const m = new AddressModel(base, size);
    m.#allocs = [...allocations].sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
    return m;
  }

  clone(): AddressModel {
    return AddressModel.from(this.base, this.end - this.base + 1n, this.#allocs);
  }

  get size(): bigint {
    return this.end - this.base + 1n;
  }

  get allocationCount(): number {
    return this.#allocs.length;
  }

  get allocatedSize(): bigint {
    let total = 0n;
    for (const a of this.#allocs) total += a.end - a.start + 1n;
    return total;
  }

  get availableSize(): bigint {
    return this.size - this.allocatedSize;
  }

  allocations(): ModelAllocation[] {
    return [...this.#allocs];
  }

  /** Maximal free ranges in address order. */
  freeRanges(): ModelRange[] {
    const out: ModelRange[] = [];
    let next = this.base;
    for (const a of this.#allocs) {
      if (a.start > next) out.push({ start: next, end: a.start - 1n });
      next = a.end + 1n;
    }
    if (next <= this.end) out.push({ start: next, end: this.end });
    return out;
  }

  /** Allocations sharing at least one address with [start, end], in address order. */
  overlapping(start: bigint, end: bigint): ModelAllocation[] {
    return this.#allocs.filter((a) => a.start <= end && start <= a.end);
  }

  find(address: bigint): ModelAllocation | undefined {
    return this.#allocs.find((a) => a.start <= address && address <= a.end);
  }

  isAllocated(start: bigint, end: bigint): boolean {
    return this.#allocs.some((a) => a.start === start && a.end === end);
  }

  allocationsOf(owner: string): ModelRange[] {
    return this.#allocs.filter((a) => a.owner === owner).map((a) => ({ start: a.start, end: a.end }));
  }

  owners(): Set<string> {
    const s = new Set<string>();
    for (const a of this.#allocs) if (a.owner !== undefined) s.add(a.owner);
    return s;
  }

  allocate(req: ModelAllocateRequest): ModelResult<ModelRange> {
    const { size, alignment: align, policy, window } = req;
    const codes: string[] = [];
    let conflicts: ModelAllocation[] = [];
    const sizeOk = size >= 1n;
    const alignOk = isPow2(align) && align <= 1n << 63n;
    if (!sizeOk) codes.push("InvalidSize");
    if (!alignOk) codes.push("InvalidAlignment");
    if (window !== undefined && window.min > window.max) codes.push("InvalidRange");
    const winMin = window === undefined ? this.base : window.min;
    const winMax = window === undefined ? this.end : window.max;

    if (policy.kind === "ExactMatch") {
      const a = policy.address;
      if (alignOk && a % align !== 0n) codes.push("UnalignedAddress");
      if (sizeOk) {
        const last = a + size - 1n;
        if (last > U64_MAX) codes.push("Overflow");
        if (a < this.base || last > this.end) codes.push("OutOfRange");
        if (window !== undefined && (a < window.min || last > window.max)) codes.push("OutOfRange");
        conflicts = this.overlapping(a, last);
        if (conflicts.length > 0) codes.push("Overlap");
        if (codes.length === 0) return this.#insert(a, last, req.owner);
      }
      return fail(codes, conflicts);
    }
    if (codes.length > 0) return fail(codes);

    const gaps = this.freeRanges();
    if (policy.kind === "FirstMatch") {
      for (const g of gaps) {
        const lo = g.start > winMin ? g.start : winMin;
        const hi = g.end < winMax ? g.end : winMax;
        const start = alignUp(lo, align);
        if (start + size - 1n <= hi) return this.#insert(start, start + size - 1n, req.owner);
      }
    } else {
      for (let i = gaps.length - 1; i >= 0; i--) {
        const g = gaps[i]!;
        const lo = g.start > winMin ? g.start : winMin;
        const hi = g.end < winMax ? g.end : winMax;
        if (hi - size + 1n < lo) continue;
        const start = alignDown(hi - size + 1n, align);
        if (start >= lo) return this.#insert(start, start + size - 1n, req.owner);
      }
    }
    return fail(["ResourceNotAvailable"]);
  }

  free(range: ModelRange): ModelResult<undefined> {
    const { start, end } = range;
    if (start > end) return fail(["InvalidRange"]);
    const hits = this.overlapping(start, end);
    if (start < this.base || end > this.end) return fail(hits.length > 0 ? ["OutOfRange", "InvalidRange"] : ["OutOfRange"]);
    const i = this.#allocs.findIndex((a) => a.start === start && a.end === end);
    if (i >= 0) {
      this.#allocs.splice(i, 1);
      return { ok: true, value: undefined };
    }
    return fail([hits.length > 0 ? "InvalidRange" : "NeverAllocated"]);
  }

  releaseOwner(owner: string): ModelRange[] {
    const released = this.allocationsOf(owner);
    this.#allocs = this.#allocs.filter((a) => a.owner !== owner);
    return released;
  }

  #insert(start: bigint, end: bigint, owner: string | undefined): ModelResult<ModelRange> {
    if (start < this.base || end > this.end || this.overlapping(start, end).length > 0) {
      throw new Error("model bug: placement is not free");
    }
    const i = this.#allocs.findIndex((a) => a.start > start);
    const entry = { start, end, owner };
    if (i < 0) this.#allocs.push(entry);
    else this.#allocs.splice(i, 0, entry);
    return { ok: true, value: { start, end } };
  }
}

/**
 * An independent reading of the snapshot rules: returns what is wrong with `x`, or undefined
 * when it is a valid address allocator snapshot. Hex must be canonical (`0x` + lower-case digits
 * without leading zeros, at most 16), because a valid snapshot is exactly what `toJSON` writes.
 * On success `model` is the state it describes.
 */
export function snapshotProblem(x: unknown): { problem: string } | { model: AddressModel } {
  const problem = (p: string) => ({ problem: p });
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  const hexValue = (v: unknown): bigint | undefined =>
    typeof v === "string" && /^0x(0|[1-9a-f][0-9a-f]{0,15})$/.test(v) ? BigInt(v) : undefined;
  const sameKeys = (o: Record<string, unknown>, required: string[], optional: string[]): boolean => {
    for (const k of required) if (!Object.hasOwn(o, k)) return false;
    for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) return false;
    return true;
  };
  if (!isObject(x)) return problem("not an object");
  if (!sameKeys(x, ["format", "version", "base", "end", "blocks"], [])) return problem("fields");
  if (x["format"] !== "vm-allocator/address-allocator") return problem("format");
  if (x["version"] !== 1) return problem("version");
  const base = hexValue(x["base"]);
  const end = hexValue(x["end"]);
  if (base === undefined || end === undefined) return problem("pool hex");
  if (base > end) return problem("base above end");
  const blocks = x["blocks"];
  if (!Array.isArray(blocks) || blocks.length === 0) return problem("blocks");
  const allocations: ModelAllocation[] = [];
  let next = base;
  let previousFree = false;
  for (let i = 0; i < blocks.length; i++) {
    if (!(i in blocks)) return problem("hole");
    const b: unknown = blocks[i];
    if (!isObject(b) || !sameKeys(b, ["start", "end", "state"], ["owner"])) return problem(`block ${i} shape`);
    const s = hexValue(b["start"]);
    const e = hexValue(b["end"]);
    if (s === undefined || e === undefined) return problem(`block ${i} hex`);
    if (s !== next || e < s || e > end) return problem(`block ${i} placement`);
    const state = b["state"];
    if (state === "free") {
      if (Object.hasOwn(b, "owner") || previousFree) return problem(`block ${i} free`);
      previousFree = true;
    } else if (state === "allocated") {
      const owner = b["owner"];
      if (Object.hasOwn(b, "owner") && (typeof owner !== "string" || owner.length === 0)) return problem(`block ${i} owner`);
      allocations.push({ start: s, end: e, owner: owner as string | undefined });
      previousFree = false;
    } else {
      return problem(`block ${i} state`);
    }
    if (e === end && i !== blocks.length - 1) return problem("blocks after the end");
    next = e + 1n;
  }
  if (next !== end + 1n) return problem("blocks do not reach the end");
  return { model: AddressModel.from(base, end - base + 1n, allocations) };
}
