import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AllocatorError } from "../../src/core/errors.js";
import { IdAllocator, MAX_IDS_PER_CALL, MAX_OWNED_IDS, type IdAllocatorSnapshot, type IdRun } from "../../src/core/id-allocator.js";

const U32_MAX = 0xffff_ffff;
const CHUNK = 1 << 20;

/** assert.throws matcher: an AllocatorError with this code (and message, when given). */
function code(c: string, message?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AllocatorError, `expected an AllocatorError, got ${String(e)}`);
    assert.equal(e.code, c, `expected ${c}, got ${e.code}: ${e.message}`);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  };
}

const BAD_U32: unknown[] = [-1, 1.5, Number.NaN, 2 ** 32, "1", null, undefined, -1n, 2n ** 32n, Infinity, {}, [1]];

/** Loosely typed view for calling the API with values TypeScript would reject. */
type Loose = { [K in keyof IdAllocator]: IdAllocator[K] extends (...a: never[]) => infer R ? (...a: unknown[]) => R : IdAllocator[K] };
const loose = (a: IdAllocator): Loose => a as unknown as Loose;
const NewLoose = IdAllocator as unknown as new (...a: unknown[]) => IdAllocator;

function runsOf(ids: Iterable<number>): IdRun[] {
  const sorted = Array.from(ids).sort((a, b) => a - b);
  const runs: IdRun[] = [];
  for (const id of sorted) {
    const lastRun = runs[runs.length - 1];
    if (lastRun !== undefined && lastRun[1] + 1 === id) lastRun[1] = id;
    else runs.push([id, id]);
  }
  return runs;
}

describe("IdAllocator construction", () => {
  it("takes number and bigint bounds, including the whole u32 space", () => {
    const a = new IdAllocator(5, 23);
    assert.equal(a.first, 5);
    assert.equal(a.last, 23);
    assert.equal(a.availableCount, 19);
    assert.equal(a.allocatedCount, 0);
    const whole = new IdAllocator(0n, BigInt(U32_MAX));
    assert.equal(whole.first, 0);
    assert.equal(whole.last, U32_MAX);
    assert.equal(whole.availableCount, 2 ** 32);
    const top = new IdAllocator(U32_MAX, U32_MAX);
    assert.equal(top.availableCount, 1);
    whole.checkValid();
    top.checkValid();
  });
  it("rejects bad bounds with InvalidArgument naming the parameter", () => {
    for (const bad of BAD_U32) {
      assert.throws(() => new NewLoose(bad, 10), code("InvalidArgument", /^first must be/));
      assert.throws(() => new NewLoose(0, bad), code("InvalidArgument", /^last must be/));
    }
  });
  it("rejects first > last with InvalidRange", () => {
    assert.throws(() => new IdAllocator(9, 3), code("InvalidRange", /first 9 is above last 3/));
    assert.throws(() => new IdAllocator(U32_MAX, 0), code("InvalidRange"));
  });
});

describe("IdAllocator.allocateId", () => {
  it("returns the lowest free id, and again after frees", () => {
    const a = new IdAllocator(5, 23);
    assert.deepEqual([a.allocateId(), a.allocateId(), a.allocateId()], [5, 6, 7]);
    a.freeId(6);
    a.freeId(5);
    assert.equal(a.allocateId(), 5);
    assert.equal(a.allocateId(), 6);
    assert.equal(a.allocateId(), 8);
    a.checkValid();
  });
  it("skips ids taken with allocateIdAt", () => {
    const a = new IdAllocator(0, 100);
    a.allocateIdAt(0);
    a.allocateIdAt(1);
    a.allocateIdAt(3);
    assert.equal(a.allocateId(), 2);
    assert.equal(a.allocateId(), 4);
  });
  it("reports exhaustion with ResourceNotAvailable naming the range, and refills", () => {
    const a = new IdAllocator(5, 23);
    for (let i = 5; i <= 23; i++) assert.equal(a.allocateId(), i);
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable", /^no free id in \[id 5-23\]$/));
    assert.equal(a.freeId(17), 17);
    assert.equal(a.allocateId(), 17);
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable"));
    a.checkValid();
  });
  it("works on single-id ranges [7,7] and [2^32-1, 2^32-1]", () => {
    for (const id of [7, U32_MAX]) {
      const a = new IdAllocator(id, id);
      assert.equal(a.allocateId("x"), id);
      assert.throws(() => a.allocateId(), code("ResourceNotAvailable", new RegExp(`^no free id in \\[id ${id}\\]$`)));
      assert.equal(a.ownerOf(id), "x");
      assert.equal(a.freeId(id), id);
      assert.throws(() => a.freeId(id), code("AlreadyReleased"));
      assert.equal(a.allocateId(), id);
      assert.equal(a.ownerOf(id), undefined);
      a.checkValid();
    }
  });
  it("rejects an empty or non-string owner", () => {
    const a = new IdAllocator(0, 10);
    assert.throws(() => a.allocateId(""), code("InvalidArgument", /owner/));
    assert.throws(() => loose(a).allocateId(42), code("InvalidArgument", /owner/));
    assert.throws(() => loose(a).allocateId(null), code("InvalidArgument", /owner/));
    assert.equal(a.allocatedCount, 0);
  });
});

describe("IdAllocator.allocateIdAt", () => {
  it("takes exactly the given id (number or bigint) and returns it as a number", () => {
    const a = new IdAllocator(5, 23);
    assert.equal(a.allocateIdAt(9), 9);
    assert.equal(a.allocateIdAt(23n), 23);
    assert.equal(a.allocateIdAt(5), 5);
    assert.equal(a.isAllocated(9), true);
    assert.equal(a.isAllocated(10), false);
    assert.equal(a.allocatedCount, 3);
    a.checkValid();
  });
  it("rejects ids outside the range with OutOfRange", () => {
    const a = new IdAllocator(5, 23);
    assert.throws(() => a.allocateIdAt(4), code("OutOfRange", /^id 4 is outside \[id 5-23\]$/));
    assert.throws(() => a.allocateIdAt(24), code("OutOfRange"));
    assert.throws(() => a.allocateIdAt(U32_MAX), code("OutOfRange"));
  });
  it("rejects a held id with Overlap naming the holder", () => {
    const a = new IdAllocator(5, 23);
    a.allocateIdAt(5, "serial0");
    a.allocateIdAt(6);
    assert.throws(
      () => a.allocateIdAt(5, "other"),
      (e: unknown) => code("Overlap", /^id 5 is already allocated to serial0$/)(e) && (e as AllocatorError).owner === "serial0",
    );
    assert.throws(
      () => a.allocateIdAt(6),
      (e: unknown) => code("Overlap", /^id 6 is already allocated$/)(e) && (e as AllocatorError).owner === undefined,
    );
  });
  it("rejects bad ids with InvalidArgument naming the parameter", () => {
    const a = new IdAllocator(0, U32_MAX);
    for (const bad of BAD_U32) assert.throws(() => loose(a).allocateIdAt(bad), code("InvalidArgument", /^id must be/));
    assert.equal(a.allocatedCount, 0);
  });
});

describe("IdAllocator.allocateIds", () => {
  it("returns the count lowest free ids ascending, not necessarily contiguous", () => {
    const a = new IdAllocator(10, 30);
    a.allocateIdAt(11);
    a.allocateIdAt(13);
    assert.deepEqual(a.allocateIds(4, "vfio"), [10, 12, 14, 15]);
    assert.deepEqual(a.idsOf("vfio"), [10, 12, 14, 15]);
    assert.deepEqual(a.allocateIds(0), []);
    assert.deepEqual(a.allocateIds(1n), [16]);
    a.checkValid();
  });
  it("is all or nothing", () => {
    const a = new IdAllocator(0, 9);
    a.allocateIds(7);
    const before = JSON.stringify(a);
    assert.throws(() => a.allocateIds(4, "x"), code("ResourceNotAvailable", /4 ids.*only 3 free in \[id 0-9\]/));
    assert.equal(JSON.stringify(a), before);
    assert.deepEqual(a.allocateIds(3), [7, 8, 9]);
    assert.throws(() => a.allocateIds(1), code("ResourceNotAvailable"));
    assert.deepEqual(a.allocateIds(0), []);
  });
  it("rejects negative, fractional and non-numeric counts", () => {
    const a = new IdAllocator(0, 9);
    for (const bad of [-1, 1.5, Number.NaN, "1", null, undefined, 2 ** 32, -1n]) {
      assert.throws(() => loose(a).allocateIds(bad), code("InvalidArgument", /^count must be/));
    }
    assert.throws(() => a.allocateIds(1, ""), code("InvalidArgument", /owner/));
    assert.equal(a.allocatedCount, 0);
  });
});

describe("IdAllocator.freeId", () => {
  it("returns the id and distinguishes never allocated from already released", () => {
    const a = new IdAllocator(5, 23);
    a.allocateIdAt(7n);
    assert.equal(a.freeId(7n), 7);
    assert.equal(typeof a.freeId(a.allocateIdAt(8)), "number");
    assert.throws(() => a.freeId(7), code("AlreadyReleased", /^id 7 was already released$/));
    assert.throws(() => a.freeId(9), code("NeverAllocated", /^id 9 was never allocated$/));
    assert.throws(() => a.freeId(4), code("OutOfRange", /^id 4 is outside \[id 5-23\]$/));
    assert.throws(() => a.freeId(24), code("OutOfRange"));
    for (const bad of BAD_U32) assert.throws(() => loose(a).freeId(bad), code("InvalidArgument", /^id must be/));
    a.checkValid();
  });
  it("forgets the owner of a freed id", () => {
    const a = new IdAllocator(0, 9);
    a.allocateIdAt(3, "rtc");
    a.freeId(3);
    assert.equal(a.ownerOf(3), undefined);
    assert.deepEqual(a.idsOf("rtc"), []);
    a.allocateIdAt(3);
    assert.equal(a.ownerOf(3), undefined);
    a.checkValid();
  });
  it("NeverAllocated for ids in untouched pages and chunks of a huge range", () => {
    const a = new IdAllocator(0, U32_MAX);
    a.allocateIdAt(5);
    assert.throws(() => a.freeId(6), code("NeverAllocated"));
    assert.throws(() => a.freeId(5000), code("NeverAllocated"));
    assert.throws(() => a.freeId(U32_MAX), code("NeverAllocated"));
    a.checkValid();
  });
});

describe("IdAllocator queries", () => {
  it("isAllocated, ownerOf, idsOf, freeOwner", () => {
    const a = new IdAllocator(0, 63);
    a.allocateIds(3, "virtio-net");
    a.allocateIdAt(40, "serial0");
    a.allocateIdAt(20, "virtio-net");
    a.allocateId();
    assert.equal(a.isAllocated(40), true);
    assert.equal(a.isAllocated(41), false);
    assert.equal(a.isAllocated(64), false, "outside the range is never allocated");
    assert.equal(a.isAllocated(U32_MAX), false);
    assert.equal(a.ownerOf(40), "serial0");
    assert.equal(a.ownerOf(3), undefined);
    assert.equal(a.ownerOf(41), undefined);
    assert.equal(a.ownerOf(1000), undefined);
    assert.deepEqual(a.idsOf("virtio-net"), [0, 1, 2, 20]);
    assert.deepEqual(a.idsOf("nobody"), []);
    assert.deepEqual(a.freeOwner("virtio-net"), [0, 1, 2, 20]);
    assert.deepEqual(a.freeOwner("virtio-net"), []);
    assert.equal(a.allocatedCount, 2);
    assert.deepEqual([...a.allocatedIds()], [3, 40]);
    assert.throws(() => a.freeId(20), code("AlreadyReleased"));
    assert.equal(a.allocateId(), 0);
    for (const bad of BAD_U32) {
      assert.throws(() => loose(a).isAllocated(bad), code("InvalidArgument", /^id must be/));
      assert.throws(() => loose(a).ownerOf(bad), code("InvalidArgument", /^id must be/));
    }
    assert.throws(() => a.idsOf(""), code("InvalidArgument"));
    assert.throws(() => a.freeOwner(""), code("InvalidArgument"));
    a.checkValid();
  });
  it("allocatedIds iterates ascending across pages and chunks", () => {
    const a = new IdAllocator(0, U32_MAX);
    const ids = [U32_MAX, 2 ** 31, CHUNK, CHUNK - 1, 1024, 1023, 31, 32, 0];
    for (const id of ids) a.allocateIdAt(id);
    assert.deepEqual([...a.allocatedIds()], [...ids].sort((x, y) => x - y));
    assert.equal(a.allocatedCount, ids.length);
    assert.equal(a.availableCount, 2 ** 32 - ids.length);
    assert.equal(a.allocateId(), 1);
    a.checkValid();
  });
  it("clone is independent and keeps owners and history", () => {
    const a = new IdAllocator(0, 99);
    a.allocateIds(5, "a");
    a.freeId(2);
    const b = a.clone();
    b.checkValid();
    assert.deepEqual(b.toJSON(), a.toJSON());
    assert.throws(() => b.freeId(2), code("AlreadyReleased"));
    assert.equal(b.allocateId("b"), 2);
    assert.equal(a.isAllocated(2), false);
    b.freeOwner("a");
    assert.deepEqual(a.idsOf("a"), [0, 1, 3, 4]);
    assert.deepEqual(b.idsOf("b"), [2]);
    a.checkValid();
    b.checkValid();
  });
  it("implements ResourceAllocator: allocate with fixed/owner, free", () => {
    const a = new IdAllocator(5, 23);
    assert.equal(a.allocate(), 5);
    assert.equal(a.allocate({ owner: "uart" }), 6);
    assert.equal(a.allocate({ fixed: 20n, owner: "rtc" }), 20);
    assert.equal(a.ownerOf(20), "rtc");
    assert.equal(a.ownerOf(6), "uart");
    assert.throws(() => a.allocate({ fixed: 20 }), code("Overlap", /rtc/));
    assert.throws(() => a.allocate({ fixed: 30 }), code("OutOfRange"));
    assert.throws(() => a.allocate(null as never), code("InvalidArgument"));
    a.free(20);
    assert.throws(() => a.free(20), code("AlreadyReleased"));
    a.checkValid();
  });
});

describe("IdAllocator at page and chunk boundaries", () => {
  it("fills and refills a range crossing a 2^20 chunk boundary, with an unaligned first", () => {
    const first = 10;
    const size = CHUNK + 41;
    const a = new IdAllocator(first, first + size - 1);
    const ids = a.allocateIds(size);
    assert.equal(ids.length, size);
    assert.equal(ids[0], first);
    assert.equal(ids[size - 1], first + size - 1);
    assert.ok(ids.every((id, i) => id === first + i));
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable"));
    a.checkValid();
    const holes = [first + CHUNK, first + CHUNK - 1, first + 1024, first + 1023, first + size - 1, first];
    for (const id of holes) a.freeId(id);
    a.checkValid();
    assert.deepEqual(a.allocateIds(holes.length), [...holes].sort((x, y) => x - y));
    assert.equal(a.availableCount, 0);
    a.checkValid();
  });
  it("exhausts a range that is exactly one chunk", () => {
    const a = new IdAllocator(0, CHUNK - 1);
    a.allocateIds(CHUNK);
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable"));
    assert.throws(() => a.allocateIds(1), code("ResourceNotAvailable"));
    a.freeId(CHUNK - 1);
    assert.equal(a.allocateId(), CHUNK - 1);
    a.checkValid();
  });
  it("exhausts ranges that end exactly on a page boundary without touching the next page", () => {
    for (const [first, size] of [[0, 1024], [3, 2048], [U32_MAX - 1023, 1024]] as const) {
      const a = new IdAllocator(first, first + size - 1);
      a.allocateIds(size);
      const full = JSON.stringify(a);
      assert.throws(() => a.allocateId(), code("ResourceNotAvailable"));
      assert.throws(() => a.allocate(), code("ResourceNotAvailable"));
      assert.equal(JSON.stringify(a), full);
      a.checkValid();
      a.freeId(first + size - 1);
      assert.equal(a.allocateId(), first + size - 1);
      a.checkValid();
    }
  });
  it("handles the top of the u32 space without materialising the range", () => {
    const a = new IdAllocator(0, U32_MAX);
    assert.equal(a.allocateIdAt(U32_MAX, "top"), U32_MAX);
    assert.equal(a.allocateIdAt(U32_MAX - 1), U32_MAX - 1);
    assert.equal(a.allocateId(), 0);
    assert.throws(() => a.allocateIdAt(U32_MAX), code("Overlap", /^id 4294967295 is already allocated to top$/));
    assert.deepEqual(a.toJSON().allocated, [[0, 0], [U32_MAX - 1, U32_MAX]]);
    assert.equal(a.freeId(BigInt(U32_MAX)), U32_MAX);
    assert.deepEqual(a.toJSON().released, [[U32_MAX, U32_MAX]]);
    const b = IdAllocator.fromJSON(JSON.parse(JSON.stringify(a)));
    assert.throws(() => b.freeId(U32_MAX), code("AlreadyReleased"));
    assert.throws(() => b.freeId(U32_MAX - 2), code("NeverAllocated"));
    b.checkValid();
    a.checkValid();
  });
  it("allocates across the top chunk of a range ending at 2^32-1", () => {
    const first = U32_MAX - 2000;
    const a = new IdAllocator(first, U32_MAX);
    const ids = a.allocateIds(2001);
    assert.equal(ids[2000], U32_MAX);
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable", /\[id 4294965295-4294967295\]/));
    a.freeId(U32_MAX);
    assert.equal(a.allocateId(), U32_MAX);
    a.checkValid();
  });
});

describe("IdAllocator failed calls change nothing", () => {
  it("every failing call leaves toJSON() and checkValid() as they were", () => {
    const a = new IdAllocator(5, 23);
    a.allocateIds(3, "a");
    a.allocateIdAt(20, "b");
    a.freeId(6);
    const failing: [string, () => unknown][] = [
      ["allocateIdAt out of range", () => a.allocateIdAt(4, "z")],
      ["allocateIdAt overlap", () => a.allocateIdAt(20, "z")],
      ["allocateIdAt bad id", () => loose(a).allocateIdAt(1.5, "z")],
      ["allocateIdAt bad owner", () => a.allocateIdAt(9, "")],
      ["allocateId bad owner", () => loose(a).allocateId(7)],
      ["allocateIds too many", () => a.allocateIds(100, "z")],
      ["allocateIds bad count", () => a.allocateIds(-1)],
      ["allocateIds bad owner", () => a.allocateIds(2, "")],
      ["freeId never", () => a.freeId(22)],
      ["freeId released", () => a.freeId(6)],
      ["freeId out of range", () => a.freeId(0)],
      ["freeId bad", () => loose(a).freeId("5")],
      ["free bad", () => a.free(Number.NaN)],
      ["allocate bad fixed", () => a.allocate({ fixed: -1 })],
      ["freeOwner bad", () => a.freeOwner("")],
    ];
    for (const [name, call] of failing) {
      const before = JSON.stringify(a);
      assert.throws(call, (e: unknown) => e instanceof AllocatorError, name);
      assert.equal(JSON.stringify(a), before, name);
      a.checkValid();
    }
    // And on exhaustion.
    a.allocateIds(a.availableCount);
    const full = JSON.stringify(a);
    assert.throws(() => a.allocateId("z"), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate({ owner: "z" }), code("ResourceNotAvailable"));
    assert.equal(JSON.stringify(a), full);
  });
});

describe("IdAllocator.checkValid", () => {
  it("detects corrupted internal state", () => {
    // The bitmap is private and fromJSON refuses inconsistent input, so the one corruption a test
    // can inject from outside is a lying Map: checkValid must cross-check the owner index with
    // the records and the owner pages.
    const a = new IdAllocator(0, 2047);
    a.allocateIds(1500, "x");
    a.checkValid();
    const originalGet = Map.prototype.get;
    // Make every owner-name lookup lie (the index maps names to record numbers).
    Map.prototype.get = function (this: Map<unknown, unknown>, key: unknown) {
      const v = originalGet.call(this, key);
      return typeof key === "string" && typeof v === "number" ? v + 1 : v;
    };
    try {
      assert.throws(() => a.checkValid(), /invariant violated/);
    } finally {
      Map.prototype.get = originalGet;
    }
    a.checkValid();
  });
});

// ---------------------------------------------------------------------------------------------
// Model-based testing against a trivial reference.

type Outcome = { ok: unknown } | { err: string };

class Model {
  readonly held = new Map<number, string | undefined>();
  readonly ever = new Set<number>();
  constructor(
    readonly first: number,
    readonly last: number,
  ) {}

  get size(): number {
    return this.last - this.first + 1;
  }

  #idError(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0 || id > U32_MAX) return "InvalidArgument";
    if (id < this.first || id > this.last) return "OutOfRange";
    return undefined;
  }

  #lowest(): number | undefined {
    for (let id = this.first; id <= this.last; id++) if (!this.held.has(id)) return id;
    return undefined;
  }

  #take(id: number, owner: string | undefined): void {
    this.held.set(id, owner);
    this.ever.add(id);
  }

  apply(op: Op): Outcome {
    switch (op.kind) {
      case "allocateId": {
        const id = this.#lowest();
        if (id === undefined) return { err: "ResourceNotAvailable" };
        this.#take(id, op.owner);
        return { ok: id };
      }
      case "allocateIdAt":
      case "allocateFixed": {
        const e = this.#idError(op.id);
        if (e !== undefined) return { err: e };
        if (this.held.has(op.id)) return { err: "Overlap" };
        this.#take(op.id, op.owner);
        return { ok: op.id };
      }
      case "allocateIds": {
        if (this.size - this.held.size < op.count) return { err: "ResourceNotAvailable" };
        const ids: number[] = [];
        for (let id = this.first; ids.length < op.count; id++) if (!this.held.has(id)) ids.push(id);
        for (const id of ids) this.#take(id, op.owner);
        return { ok: ids };
      }
      case "freeId": {
        const e = this.#idError(op.id);
        if (e !== undefined) return { err: e };
        if (!this.held.has(op.id)) return { err: this.ever.has(op.id) ? "AlreadyReleased" : "NeverAllocated" };
        this.held.delete(op.id);
        return { ok: op.id };
      }
      case "freeOwner": {
        const ids = this.#idsOf(op.owner);
        for (const id of ids) this.held.delete(id);
        return { ok: ids };
      }
      case "query": {
        if (this.#idError(op.id) === "InvalidArgument") return { err: "InvalidArgument" };
        return { ok: [this.held.has(op.id), this.held.get(op.id), this.#idsOf(op.owner)] };
      }
      case "roundtrip":
      case "clone":
        return { ok: this.snapshot() };
    }
  }

  #idsOf(owner: string): number[] {
    return [...this.held].filter(([, o]) => o === owner).map(([id]) => id).sort((x, y) => x - y);
  }

  snapshot(): IdAllocatorSnapshot {
    const byOwner = new Map<string, number[]>();
    for (const [id, owner] of this.held) if (owner !== undefined) byOwner.set(owner, [...(byOwner.get(owner) ?? []), id]);
    const owners = [...byOwner].map(([o, ids]) => [o, runsOf(ids)] as [string, IdRun[]]);
    owners.sort((x, y) => x[1][0]![0] - y[1][0]![0]);
    return {
      format: "vm-allocator/id-allocator",
      version: 1,
      first: this.first,
      last: this.last,
      allocated: runsOf(this.held.keys()),
      released: runsOf([...this.ever].filter((id) => !this.held.has(id))),
      owners,
    };
  }
}

type Op =
  | { kind: "allocateId"; owner: string | undefined }
  | { kind: "allocateIdAt"; id: number; owner: string | undefined }
  | { kind: "allocateFixed"; id: number; owner: string | undefined }
  | { kind: "allocateIds"; count: number; owner: string | undefined }
  | { kind: "freeId"; id: number }
  | { kind: "freeOwner"; owner: string }
  | { kind: "query"; id: number; owner: string }
  | { kind: "roundtrip" }
  | { kind: "clone" };

/** Runs `op` on the real allocator, returning its outcome and the allocator to continue with. */
function runReal(a: IdAllocator, op: Op): [Outcome, IdAllocator] {
  try {
    switch (op.kind) {
      case "allocateId":
        return [{ ok: a.allocateId(op.owner) }, a];
      case "allocateIdAt":
        return [{ ok: a.allocateIdAt(op.id, op.owner) }, a];
      case "allocateFixed":
        return [{ ok: a.allocate(op.owner === undefined ? { fixed: op.id } : { fixed: op.id, owner: op.owner }) }, a];
      case "allocateIds":
        return [{ ok: a.allocateIds(op.count, op.owner) }, a];
      case "freeId":
        return [{ ok: a.freeId(op.id) }, a];
      case "freeOwner":
        return [{ ok: a.freeOwner(op.owner) }, a];
      case "query":
        return [{ ok: [a.isAllocated(op.id), a.ownerOf(op.id), a.idsOf(op.owner)] }, a];
      case "roundtrip": {
        const b = IdAllocator.fromJSON(JSON.parse(JSON.stringify(a)));
        return [{ ok: b.toJSON() }, b];
      }
      case "clone": {
        const b = a.clone();
        return [{ ok: b.toJSON() }, b];
      }
    }
  } catch (e) {
    if (!(e instanceof AllocatorError)) throw e;
    return [{ err: e.code }, a];
  }
}

const OWNERS = ["a", "b", "serial0"] as const;
const ownerArb = fc.option(fc.constantFrom(...OWNERS), { nil: undefined, freq: 2 });

/** A range: small ones anywhere (including both ends of u32), and ones spanning a few pages. */
const rangeArb = fc.oneof(
  fc.tuple(fc.constantFrom(0, 1, 5, 1000, 1023, U32_MAX - 70, U32_MAX), fc.integer({ min: 1, max: 70 })),
  fc.tuple(fc.integer({ min: 0, max: U32_MAX - 70 }), fc.integer({ min: 1, max: 70 })),
  fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.oneof(fc.integer({ min: 1000, max: 2200 }), fc.constantFrom(1024, 2048))),
).map(([first, size]) => ({ first, last: Math.min(U32_MAX, first + size - 1) }));

function opArb(first: number, last: number): fc.Arbitrary<Op> {
  const size = last - first + 1;
  // Mostly ids in or just around the range; sometimes any value a caller might pass.
  const idArb = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: -2, max: size + 1 }).map((r) => first + r) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 0.5, U32_MAX, 2 ** 32, Number.NaN) },
  );
  const countArb = fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: size + 2 }));
  return fc.oneof(
    { weight: 6, arbitrary: ownerArb.map((owner): Op => ({ kind: "allocateId", owner })) },
    { weight: 4, arbitrary: fc.tuple(idArb, ownerArb).map(([id, owner]): Op => ({ kind: "allocateIdAt", id, owner })) },
    { weight: 1, arbitrary: fc.tuple(idArb, ownerArb).map(([id, owner]): Op => ({ kind: "allocateFixed", id, owner })) },
    { weight: 2, arbitrary: fc.tuple(countArb, ownerArb).map(([count, owner]): Op => ({ kind: "allocateIds", count, owner })) },
    { weight: 7, arbitrary: idArb.map((id): Op => ({ kind: "freeId", id })) },
    { weight: 1, arbitrary: fc.constantFrom(...OWNERS).map((owner): Op => ({ kind: "freeOwner", owner })) },
    { weight: 2, arbitrary: fc.tuple(idArb, fc.constantFrom(...OWNERS)).map(([id, owner]): Op => ({ kind: "query", id, owner })) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: "roundtrip" }) },
    { weight: 1, arbitrary: fc.constant<Op>({ kind: "clone" }) },
  );
}

const scenarioArb = (minOps: number, maxOps: number) =>
  rangeArb.chain(({ first, last }) =>
    fc.record({ first: fc.constant(first), last: fc.constant(last), ops: fc.array(opArb(first, last), { minLength: minOps, maxLength: maxOps }) }),
  );

describe("IdAllocator against a reference model", () => {
  it("matches a Set-based model on random operation sequences", (t) => {
    let opsRun = 0;
    fc.assert(
      fc.property(scenarioArb(100, 160), ({ first, last, ops }) => {
        const model = new Model(first, last);
        let real = new IdAllocator(first, last);
        for (const op of ops) {
          const before = JSON.stringify(real);
          const expected = model.apply(op);
          const [got, next] = runReal(real, op);
          assert.deepEqual(got, expected, `${JSON.stringify(op)}`);
          if ("err" in got) assert.equal(JSON.stringify(next), before, `failed ${op.kind} changed the state`);
          real = next;
          real.checkValid();
          assert.equal(real.allocatedCount, model.held.size);
          assert.equal(real.availableCount, model.size - model.held.size);
          opsRun++;
        }
        assert.deepEqual(real.toJSON(), model.snapshot());
        assert.deepEqual([...real.allocatedIds()], [...model.held.keys()].sort((x, y) => x - y));
      }),
      { numRuns: 200 },
    );
    assert.ok(opsRun >= 20_000, `only ${opsRun} operations ran`);
    t.diagnostic(`${opsRun} operations checked against the model`);
  });

  it("a restored snapshot and a clone behave exactly like the original", (t) => {
    let opsRun = 0;
    fc.assert(
      fc.property(
        rangeArb.chain(({ first, last }) =>
          fc.tuple(
            fc.constant(first),
            fc.constant(last),
            fc.array(opArb(first, last), { minLength: 10, maxLength: 60 }),
            fc.array(opArb(first, last), { minLength: 20, maxLength: 60 }),
          ),
        ),
        ([first, last, prefix, suffix]) => {
          let original = new IdAllocator(first, last);
          for (const op of prefix) original = runReal(original, op)[1];
          let restored = IdAllocator.fromJSON(JSON.parse(JSON.stringify(original.toJSON())));
          let cloned = original.clone();
          restored.checkValid();
          for (const op of suffix) {
            const [a, na] = runReal(original, op);
            const [b, nb] = runReal(restored, op);
            const [c, nc] = runReal(cloned, op);
            assert.deepEqual(b, a, `restored differs on ${JSON.stringify(op)}`);
            assert.deepEqual(c, a, `clone differs on ${JSON.stringify(op)}`);
            original = na;
            restored = nb;
            cloned = nc;
            opsRun++;
          }
          assert.deepEqual(restored.toJSON(), original.toJSON());
          assert.deepEqual(cloned.toJSON(), original.toJSON());
          restored.checkValid();
        },
      ),
      { numRuns: 150 },
    );
    assert.ok(opsRun >= 3_000, `only ${opsRun} operations ran`);
    t.diagnostic(`${opsRun} operations compared on original, restored and clone`);
  });
});

// ---------------------------------------------------------------------------------------------
// Snapshots.

function sample(): IdAllocator {
  const a = new IdAllocator(5, 60);
  a.allocateIds(4, "net");
  a.allocateIdAt(20, "blk");
  a.allocateIdAt(21, "blk");
  a.allocateIdAt(30);
  a.allocateIdAt(40, "blk");
  a.freeId(6);
  a.allocateIdAt(50);
  a.freeId(50);
  return a;
}

function rejects(x: unknown, message?: RegExp): void {
  assert.throws(() => IdAllocator.fromJSON(x), code("InvalidSnapshot", message));
}

describe("IdAllocator snapshots", () => {
  it("have the documented canonical shape and round-trip", () => {
    const a = sample();
    const snap = a.toJSON();
    assert.deepEqual(snap, {
      format: "vm-allocator/id-allocator",
      version: 1,
      first: 5,
      last: 60,
      allocated: [[5, 5], [7, 8], [20, 21], [30, 30], [40, 40]],
      released: [[6, 6], [50, 50]],
      owners: [
        ["net", [[5, 5], [7, 8]]],
        ["blk", [[20, 21], [40, 40]]],
      ],
    });
    const b = IdAllocator.fromJSON(JSON.parse(JSON.stringify(snap)));
    b.checkValid();
    assert.deepEqual(b.toJSON(), snap);
    assert.equal(b.allocatedCount, 7);
    assert.equal(b.ownerOf(40), "blk");
    assert.throws(() => b.freeId(50), code("AlreadyReleased"));
    assert.throws(() => b.freeId(51), code("NeverAllocated"));
    assert.equal(b.allocateId(), 6);
    assert.equal(b.allocateId(), 9);
  });
  it("round-trips the empty and full whole-u32 allocators cheaply and large runs quickly", () => {
    const empty = new IdAllocator(0, U32_MAX);
    assert.deepEqual(IdAllocator.fromJSON(empty.toJSON()).toJSON(), empty.toJSON());
    const big = new IdAllocator(1, 3_000_000);
    big.allocateIds(2_500_000);
    big.freeId(1_000_000);
    const snap = big.toJSON();
    assert.deepEqual(snap.allocated, [[1, 999_999], [1_000_001, 2_500_000]]);
    const back = IdAllocator.fromJSON(snap);
    back.checkValid();
    assert.deepEqual(back.toJSON(), snap);
    assert.equal(back.allocateId(), 1_000_000);
    assert.equal(back.allocateId(), 2_500_001);
  });
  it("rejects malformed snapshots with InvalidSnapshot naming the problem", () => {
    const good = (): Record<string, unknown> => JSON.parse(JSON.stringify(sample().toJSON())) as Record<string, unknown>;
    const with_ = (field: string, value: unknown) => ({ ...good(), [field]: value });
    rejects(null, /expected an object/);
    rejects("x", /expected an object/);
    rejects([], /expected an object/);
    rejects(with_("format", "vm-allocator/address-allocator"), /format/);
    rejects(with_("version", 2), /unsupported version 2/);
    rejects(with_("version", "1"), /version/);
    rejects(with_("first", -1), /first/);
    rejects(with_("first", 1.5), /first/);
    rejects(with_("last", 2 ** 32), /last/);
    rejects(with_("last", "60"), /last/);
    rejects(with_("first", 61), /first 61 is above last 60/);
    rejects(with_("first", 6), /allocated\[0\]: run \[5, 5\] is outside \[6, 60\]/);
    rejects(with_("allocated", [[5, 5], [10, 8]]), /^invalid id-allocator snapshot: allocated\[1\]: run \[10, 8\] is reversed$/);
    rejects(with_("allocated", [[5, 9], [8, 12]]), /allocated\[1\].*overlaps/);
    rejects(with_("allocated", [[20, 21], [5, 5]]), /allocated\[1\].*overlaps or precedes/);
    rejects(with_("allocated", [[5, 8], [9, 12]]), /allocated\[1\].*adjacent/);
    rejects(with_("allocated", [[5, 61]]), /outside/);
    rejects(with_("allocated", [[5]]), /allocated\[0\] must be a \[first, last\] pair/);
    rejects(with_("allocated", [[5, 6, 7]]), /pair/);
    rejects(with_("allocated", [5, 6]), /allocated\[0\] must be an array/);
    rejects(with_("allocated", "5-6"), /allocated must be an array/);
    rejects(with_("allocated", [[5, "6"]]), /"6" is not an id/);
    // eslint-disable-next-line no-sparse-arrays
    rejects(with_("allocated", [, [5, 6]]), /sparse/);
    rejects(with_("released", [[7, 7]]), /released\[0\]: run \[7, 7\] overlaps allocated run \[7, 8\]/);
    rejects(with_("released", [[9, 25]]), /released\[0\].*overlaps allocated run \[20, 21\]/);
    rejects(with_("owners", [["net", [[5, 6]]]]), /not entirely allocated/);
    rejects(with_("owners", [["", [[5, 5]]]]), /owner name must be a non-empty string/);
    rejects(with_("owners", [[7, [[5, 5]]]]), /owner name/);
    rejects(with_("owners", [["net", [[5, 5]]], ["net", [[7, 7]]]]), /appears twice/);
    rejects(with_("owners", [["net", []]]), /has no ids/);
    rejects(with_("owners", [["blk", [[20, 21]]], ["net", [[5, 5]]]]), /ordered by their lowest id/);
    rejects(with_("owners", [["net", [[5, 5], [7, 8]]], ["blk", [[7, 7]]]]), /ordered|held by both/);
    rejects(with_("owners", [["net", [[5, 5], [20, 20]]], ["blk", [[7, 7], [20, 21]]]]), /held by both "net" and "blk"|held by both "blk" and "net"/);
    rejects(with_("owners", [["net", [[5, 5]], 3]]), /pair/);
    rejects(with_("owners", {}), /owners must be an array/);
    rejects({ ...good(), extra: 1 }, /unknown field "extra"/);
    rejects(JSON.parse(`{"__proto__": 1, ${JSON.stringify(good()).slice(1)}`), /unknown field "__proto__"/);
    for (const field of ["format", "version", "first", "last", "allocated", "released", "owners"]) {
      const g = good();
      delete g[field];
      rejects(g, new RegExp(`missing field "${field}"`));
    }
  });
  it("turns exceptions from getters and proxies into InvalidSnapshot", () => {
    const g = JSON.parse(JSON.stringify(sample().toJSON())) as Record<string, unknown>;
    Object.defineProperty(g, "allocated", {
      enumerable: true,
      get() {
        throw new TypeError("boom");
      },
    });
    rejects(g, /could not be read \(boom\)/);
    const p = new Proxy(
      {},
      {
        ownKeys() {
          throw new RangeError("nope");
        },
      },
    );
    rejects(p, /could not be read/);
  });

  it("fuzz: mutated snapshots are rejected with InvalidSnapshot or restore to exactly what they say", (t) => {
    type Container = Record<string, unknown> | unknown[];
    /** Every container in the document (root first) and every (container, key) slot. */
    const walk = (root: Container): { containers: Container[]; slots: [Container, string | number][] } => {
      const containers: Container[] = [];
      const slots: [Container, string | number][] = [];
      const visit = (node: unknown): void => {
        if (typeof node !== "object" || node === null) return;
        const c = node as Container;
        containers.push(c);
        for (const k of Array.isArray(c) ? c.keys() : Object.keys(c)) {
          slots.push([c, k]);
          visit((c as Record<string | number, unknown>)[k]);
        }
      };
      visit(root);
      return { containers, slots };
    };
    const get = (c: Container, k: string | number): unknown => (c as Record<string | number, unknown>)[k];
    const set = (c: Container, k: string | number, v: unknown): void => {
      (c as Record<string | number, unknown>)[k] = v;
    };
    const mutation = fc.record({
      pick: fc.nat(),
      kind: fc.integer({ min: 0, max: 7 }),
      delta: fc.constantFrom(-2, -1, 1, 2, 1000, -1000, 2 ** 32),
      value: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constantFrom<unknown>(-0, 0.5, 2 ** 32, -1, "", "a", [], [1, 2], [[1, 2]], {}, null, true, undefined, 1n),
      ),
    });
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(scenarioArb(5, 40), fc.array(mutation, { minLength: 1, maxLength: 3 }), ({ first, last, ops }, mutations) => {
        let a = new IdAllocator(first, last);
        for (const op of ops) a = runReal(a, op)[1];
        const snap = JSON.parse(JSON.stringify(a.toJSON())) as Record<string, unknown>;
        for (const m of mutations) {
          const { containers, slots } = walk(snap);
          const slot = slots[m.pick % slots.length]!;
          const target = containers[m.pick % containers.length]!;
          switch (m.kind) {
            case 0: // replace a value (a copy: one value object inserted twice could make a cycle)
              set(slot[0], slot[1], structuredClone(m.value));
              break;
            case 1: {
              // nudge a number
              const v = get(slot[0], slot[1]);
              if (typeof v === "number") set(slot[0], slot[1], v + m.delta);
              break;
            }
            case 2: // delete a field or an element
              if (Array.isArray(slot[0])) slot[0].splice(slot[1] as number, 1);
              else delete slot[0][slot[1] as string];
              break;
            case 3: // extra field or element
              if (Array.isArray(target)) target.push(structuredClone(m.value));
              else target[`x${m.pick % 5}`] = structuredClone(m.value);
              break;
            case 4: // truncate an array
              if (Array.isArray(target)) target.length = m.pick % (target.length + 1);
              break;
            case 5: // duplicate an element
              if (Array.isArray(target) && target.length > 0) target.push(structuredClone(target[m.pick % target.length]));
              break;
            case 6: // swap two neighbours
              if (Array.isArray(target) && target.length > 1) {
                const i = m.pick % target.length;
                const j = (i + 1) % target.length;
                [target[i], target[j]] = [target[j], target[i]];
              }
              break;
            case 7: // a top-level field of the wrong type or value
              snap[["first", "last", "allocated", "released", "owners", "version"][m.pick % 6]!] = structuredClone(m.value);
              break;
          }
        }
        let restored: IdAllocator;
        try {
          restored = IdAllocator.fromJSON(snap);
        } catch (e) {
          assert.ok(e instanceof AllocatorError, `not an AllocatorError: ${String(e)}`);
          assert.equal(e.code, "InvalidSnapshot");
          rejected++;
          return;
        }
        // Accepted: the snapshot is canonical, so the allocator must reproduce it exactly.
        accepted++;
        restored.checkValid();
        assert.deepEqual(restored.toJSON(), snap);
      }),
      { numRuns: 600 },
    );
    assert.ok(rejected > 100, `only ${rejected} mutations rejected`);
    assert.ok(accepted > 10, `only ${accepted} mutations accepted`);
    t.diagnostic(`${rejected} mutated snapshots rejected, ${accepted} accepted and verified`);
  });
});

describe("IdAllocator owners under churn", () => {
  it("keeps ownerOf, idsOf and snapshots exact while owners come and go (tombstones are swept)", () => {
    const a = new IdAllocator(0, 10_000);
    const keep = new Map<string, number>();
    for (let i = 0; i < 30; i++) keep.set(`keep${i}`, a.allocateId(`keep${i}`));
    for (let round = 0; round < 3000; round++) {
      const name = `hot${round % 400}`;
      const id = a.allocateId(name);
      assert.equal(a.ownerOf(id), name);
      assert.deepEqual(a.idsOf(name), [id]);
      a.freeId(id);
      assert.equal(a.ownerOf(id), undefined);
      assert.deepEqual(a.idsOf(name), []);
      if (round % 499 === 0) a.checkValid();
    }
    for (const [name, id] of keep) {
      assert.equal(a.ownerOf(id), name);
      assert.deepEqual(a.idsOf(name), [id]);
    }
    const snapshot = a.toJSON();
    assert.deepEqual(snapshot.owners.map(([name]) => name).sort(), [...keep.keys()].sort());
    assert.deepEqual(IdAllocator.fromJSON(snapshot).toJSON(), snapshot);
    assert.deepEqual(a.clone().toJSON(), snapshot);
    a.checkValid();
  });
});

describe("IdAllocator snapshot size limits", () => {
  it("rejects a snapshot whose owners name more ids than can be tracked, with InvalidSnapshot", () => {
    const huge = {
      format: "vm-allocator/id-allocator",
      version: 1,
      first: 0,
      last: 0xffff_ffff,
      allocated: [[0, 0xffff_ffff]],
      released: [],
      owners: [["everything", [[0, 0xffff_ffff]]]],
    };
    assert.throws(
      () => IdAllocator.fromJSON(huge),
      (e: unknown) => e instanceof AllocatorError && e.code === "InvalidSnapshot" && /at most 16777216/.test(e.message),
    );
  });
});

describe("IdAllocator limits hold on the live path, refused before any work", () => {
  it("refuses a count whose result array cannot be built, up front and without taking an id", () => {
    const a = new IdAllocator(0, U32_MAX);
    a.allocateId("dev");
    const before = JSON.stringify(a.toJSON());
    assert.throws(() => a.allocateIds(U32_MAX), code("InvalidArgument", /^count 4294967295 is above 16777216 \(MAX_IDS_PER_CALL\)/));
    assert.throws(() => a.allocateIds(2 ** 24 + 5, "x"), code("InvalidArgument", /^count 16777221 is above/));
    assert.throws(() => a.allocateIds(MAX_IDS_PER_CALL + 1), code("InvalidArgument"));
    assert.equal(JSON.stringify(a.toJSON()), before);
    assert.equal(a.allocatedCount, 1);
    a.checkValid();
  });

  it("refuses ids with an owner past MAX_OWNED_IDS with ResourceNotAvailable, before taking any", () => {
    assert.equal(MAX_OWNED_IDS, 2 ** 24);
    const a = new IdAllocator(0, U32_MAX);
    a.allocateIds(3, "y");
    const before = JSON.stringify(a.toJSON());
    assert.throws(
      () => a.allocateIds(MAX_OWNED_IDS - 2, "x"),
      (e: unknown) => code("ResourceNotAvailable", /3 ids have one, and at most 16777216 \(MAX_OWNED_IDS\) can/)(e) && (e as AllocatorError).owner === "x",
    );
    assert.equal(JSON.stringify(a.toJSON()), before);
    a.checkValid();
  });

  it("is all or nothing when fewer ids are free than asked for", () => {
    const a = new IdAllocator(10, 20);
    a.allocateIds(5, "a");
    const before = JSON.stringify(a.toJSON());
    assert.throws(() => a.allocateIds(7, "b"), code("ResourceNotAvailable", /cannot allocate 7 ids: only 6 free/));
    assert.equal(JSON.stringify(a.toJSON()), before);
    assert.deepEqual(a.allocateIds(6, "b"), [15, 16, 17, 18, 19, 20]);
    a.checkValid();
  });
});

describe("IdAllocator restores whole pages and chunks without storing them", () => {
  const whole = (allocated: IdRun[], released: IdRun[] = [], owners: [string, IdRun[]][] = []): IdAllocatorSnapshot => ({
    format: "vm-allocator/id-allocator",
    version: 1,
    first: 0,
    last: U32_MAX,
    allocated,
    released,
    owners,
  });
  const heap = (): number => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };

  it("restores a snapshot claiming all 2^32 ids allocated in little memory, then frees and allocates exactly", () => {
    const before = heap();
    const a = IdAllocator.fromJSON(whole([[0, U32_MAX]]));
    // The bitmap of 2^32 ids would take 1 GiB; the shared full chunks take nothing per chunk.
    assert.ok(heap() - before < 16 * 2 ** 20, `restoring grew the heap by ${heap() - before} bytes`);
    assert.equal(a.allocatedCount, 2 ** 32);
    assert.equal(a.availableCount, 0);
    assert.equal(a.isAllocated(0), true);
    assert.equal(a.isAllocated(U32_MAX), true);
    assert.throws(() => a.allocateId(), code("ResourceNotAvailable"));
    assert.throws(() => a.allocateIdAt(0x8000_0000), code("Overlap"));
    a.checkValid();
    assert.equal(a.freeId(0x1234_5678), 0x1234_5678);
    assert.throws(() => a.freeId(0x1234_5678), code("AlreadyReleased"));
    assert.equal(a.isAllocated(0x1234_5678), false);
    assert.equal(a.isAllocated(0x1234_5679), true);
    assert.equal(a.freeId(U32_MAX), U32_MAX);
    assert.equal(a.freeId(0), 0);
    assert.equal(a.allocatedCount, 2 ** 32 - 3);
    assert.deepEqual(a.allocateIds(2), [0, 0x1234_5678]);
    assert.equal(a.allocateId("top"), U32_MAX);
    assert.equal(a.ownerOf(U32_MAX), "top");
    a.checkValid();
    assert.deepEqual(a.toJSON(), whole([[0, U32_MAX]], [], [["top", [[U32_MAX, U32_MAX]]]]));
    assert.ok(heap() - before < 32 * 2 ** 20, `using it grew the heap by ${heap() - before} bytes`);
  });

  it("restores all 2^32 ids released in little memory: each free says AlreadyReleased, allocation starts at 0", () => {
    const before = heap();
    const a = IdAllocator.fromJSON(whole([], [[0, U32_MAX]]));
    assert.ok(heap() - before < 16 * 2 ** 20);
    assert.equal(a.allocatedCount, 0);
    assert.throws(() => a.freeId(77), code("AlreadyReleased"));
    assert.equal(a.allocateId(), 0);
    assert.equal(a.allocateIdAt(0x9000_0000, "x"), 0x9000_0000);
    assert.equal(a.freeId(0x9000_0000), 0x9000_0000);
    assert.throws(() => a.freeId(0x9000_0000), code("AlreadyReleased"));
    a.checkValid();
    assert.deepEqual(a.toJSON(), whole([[0, 0]], [[1, U32_MAX]]));
  });

  it("a clone shares nothing that either can change", () => {
    const a = IdAllocator.fromJSON(whole([[0, 2 ** 21 - 1]], [[2 ** 21, 2 ** 22 - 1]]));
    const b = a.clone();
    a.freeId(5);
    b.allocateId();
    assert.equal(a.isAllocated(5), false);
    assert.equal(b.isAllocated(5), true);
    assert.equal(b.isAllocated(2 ** 21), true);
    assert.equal(a.isAllocated(2 ** 21), false);
    a.checkValid();
    b.checkValid();
    assert.equal(IdAllocator.fromJSON(whole([[0, 2 ** 21 - 1]], [[2 ** 21, 2 ** 22 - 1]])).isAllocated(5), true);
  });

  /** One state per offset: the reference the model test compares with. */
  const NEVER = 0;
  const HELD = 1;
  const RELEASED = 2;

  const segmentArb = fc.record({
    length: fc.oneof(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 900, max: 3000 }), fc.integer({ min: CHUNK - 2000, max: CHUNK + 3000 })),
    state: fc.constantFrom(NEVER, HELD, RELEASED),
    owned: fc.boolean(),
  });
  const opArb = fc.oneof(
    fc.record({ op: fc.constant("allocateId" as const), owner: fc.constantFrom(undefined, "p", "q") }),
    fc.record({ op: fc.constantFrom("allocateIdAt" as const, "freeId" as const, "isAllocated" as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
    fc.record({ op: fc.constant("freeOwner" as const), owner: fc.constantFrom("o0", "o1", "o2", "p", "q") }),
  );

  it("behaves like a per-id reference after restoring long runs (pages and chunks, partial last chunk)", () => {
    fc.assert(
      fc.property(fc.array(segmentArb, { minLength: 1, maxLength: 6 }), fc.array(opArb, { maxLength: 60 }), fc.integer({ min: 0, max: 5000 }), (segments, ops, first) => {
        const size = segments.reduce((n, s) => n + s.length, 0);
        const last = first + size - 1;
        const model = new Uint8Array(size);
        const owner = new Map<number, string>();
        const allocated: number[][] = [];
        const released: number[][] = [];
        const owned = new Map<string, IdRun[]>();
        let at = 0;
        for (const [i, seg] of segments.entries()) {
          model.fill(seg.state, at, at + seg.length);
          const list = seg.state === HELD ? allocated : seg.state === RELEASED ? released : undefined;
          const prev = list?.[list.length - 1];
          if (prev !== undefined && prev[1] === first + at - 1) prev[1] = first + at + seg.length - 1;
          else list?.push([first + at, first + at + seg.length - 1]);
          // An owner for a slice of a held segment (at most 1500 ids, possibly inside an implicit page).
          if (seg.state === HELD && seg.owned) {
            const name = `o${i % 3}`;
            const x = first + at + Math.floor(seg.length / 3);
            const y = Math.min(x + 1499, first + at + seg.length - 1);
            const runs = owned.get(name) ?? [];
            runs.push([x, y]);
            owned.set(name, runs);
            for (let id = x; id <= y; id++) owner.set(id - first, name);
          }
          at += seg.length;
        }
        const owners = [...owned].sort((p, q) => p[1][0]![0] - q[1][0]![0]);
        const snapshot = { format: "vm-allocator/id-allocator", version: 1, first, last, allocated, released, owners };
        const a = IdAllocator.fromJSON(snapshot);
        a.checkValid();
        assert.deepEqual(a.toJSON(), snapshot, "a restored snapshot serializes back unchanged");
        let hint = 0;
        const outcome = (f: () => unknown): unknown => {
          try {
            return f();
          } catch (e) {
            return e instanceof AllocatorError ? e.code : e;
          }
        };
        for (const o of ops) {
          if (o.op === "allocateId") {
            while (hint < size && model[hint] === HELD) hint++;
            const expected = hint < size ? first + hint : "ResourceNotAvailable";
            if (hint < size) {
              model[hint] = HELD;
              if (o.owner !== undefined) owner.set(hint, o.owner);
            }
            assert.equal(outcome(() => a.allocateId(o.owner)), expected);
          } else if (o.op === "freeOwner") {
            const mine = [...owner].filter(([, n]) => n === o.owner).map(([off]) => off).sort((x, y) => x - y);
            for (const off of mine) {
              model[off] = RELEASED;
              owner.delete(off);
              hint = Math.min(hint, off);
            }
            assert.deepEqual(a.freeOwner(o.owner), mine.map((off) => first + off));
          } else {
            const off = Math.min(size - 1, Math.floor(o.at * size));
            const id = first + off;
            if (o.op === "isAllocated") {
              assert.equal(a.isAllocated(id), model[off] === HELD);
            } else if (o.op === "allocateIdAt") {
              const expected = model[off] === HELD ? "Overlap" : id;
              model[off] = HELD;
              assert.equal(outcome(() => a.allocateIdAt(id)), expected);
            } else {
              const expected = model[off] === HELD ? id : model[off] === RELEASED ? "AlreadyReleased" : "NeverAllocated";
              if (model[off] === HELD) {
                model[off] = RELEASED;
                owner.delete(off);
                hint = Math.min(hint, off);
              }
              assert.equal(outcome(() => a.freeId(id)), expected);
            }
          }
        }
        a.checkValid();
        const runs = (state: number): IdRun[] => {
          const out: IdRun[] = [];
          for (let k = 0; k < size; k++) {
            if (model[k] !== state) continue;
            const start = k;
            while (k + 1 < size && model[k + 1] === state) k++;
            out.push([first + start, first + k]);
          }
          return out;
        };
        const json = a.toJSON();
        const held = runs(HELD);
        assert.deepEqual(json.allocated, held);
        assert.deepEqual(json.released, runs(RELEASED));
        assert.equal(a.allocatedCount, held.reduce((n, [x, y]) => n + y - x + 1, 0));
        for (const [off, name] of owner) assert.equal(a.ownerOf(first + off), name);
        assert.deepEqual(IdAllocator.fromJSON(JSON.parse(JSON.stringify(json))).toJSON(), json);
      }),
      { numRuns: 40 },
    );
  });
});

describe("IdAllocator.freeOwner", () => {
  it("frees exactly the owner's ids, ascending, and leaves the state a one-by-one free leaves", () => {
    const byOwner = new IdAllocator(0, 5000);
    const oneByOne = new IdAllocator(0, 5000);
    for (const a of [byOwner, oneByOne]) {
      a.allocateIds(100, "x");
      a.allocateIds(50, "y");
      a.allocateIdAt(4000, "x");
      a.allocateIdAt(3000, "x");
      a.allocateIds(10);
      a.freeId(40);
    }
    const ids = byOwner.freeOwner("x");
    assert.deepEqual(ids, [...Array.from({ length: 100 }, (_, i) => i).filter((i) => i !== 40), 3000, 4000]);
    for (const id of oneByOne.idsOf("x")) oneByOne.freeId(id);
    assert.deepEqual(byOwner.toJSON(), oneByOne.toJSON());
    assert.deepEqual(byOwner.idsOf("y").length, 50);
    assert.deepEqual(byOwner.freeOwner("x"), []);
    byOwner.checkValid();
    // The owner that holds every owned id: the records start afresh, and work after it.
    assert.equal(byOwner.freeOwner("y").length, 50);
    assert.equal(byOwner.allocateId("z"), 0);
    assert.equal(byOwner.ownerOf(0), "z");
    byOwner.checkValid();
  });

  it("an iterator over allocatedIds stops with InvalidState once the allocator changes", () => {
    const a = new IdAllocator(0, 100);
    a.allocateIds(10, "x");
    const it = a.allocatedIds();
    assert.equal(it.next().value, 0);
    a.freeOwner("x");
    assert.throws(() => it.next(), code("InvalidState", /changed while being iterated/));
    assert.deepEqual([...a.allocatedIds()], []);
  });
});

describe("IdAllocator.unallocateId: rolling an allocation back leaves no trace", () => {
  const text = (a: IdAllocator) => JSON.stringify(a.toJSON());

  it("an id never allocated before counts as never allocated again; its page and owner are gone from the snapshot", () => {
    for (const [first, last] of [[0, 31], [5, 23], [0, U32_MAX], [U32_MAX - 2, U32_MAX], [1023, 1025]] as const) {
      const a = new IdAllocator(first, last);
      const before = text(a);
      const id = a.allocateId("x");
      assert.equal(a.unallocateId(id), id);
      assert.equal(text(a), before, `[${first}, ${last}]`);
      assert.throws(() => a.freeId(id), code("NeverAllocated"));
      assert.deepEqual(a.idsOf("x"), []);
      assert.equal(a.ownerOf(id), undefined);
      a.checkValid();
      // And at a fixed id, with and without owner.
      a.allocateIdAt(last, "y");
      a.unallocateId(last);
      a.allocateIdAt(first);
      a.unallocateId(BigInt(first) as unknown as number);
      assert.equal(text(a), before);
      a.checkValid();
    }
  });

  it("a released id allocated again counts as released again, whichever way it was allocated", () => {
    const a = new IdAllocator(0, 63);
    a.allocateIds(3, "x");
    a.freeId(1);
    const before = text(a);
    assert.equal(a.allocateId("y"), 1);
    a.unallocateId(1);
    assert.equal(text(a), before);
    assert.throws(() => a.freeId(1), code("AlreadyReleased"));
    a.allocateIdAt(1);
    a.unallocateId(1);
    assert.equal(text(a), before);
    a.checkValid();
  });

  it("ids restored allocated (whole pages, whole chunks, partial words) roll back to released", () => {
    const b = new IdAllocator(0, 3 * CHUNK);
    b.allocateIds(40);
    const snap = b.toJSON();
    snap.allocated = [[0, 2 * CHUNK + 5]];
    const a = IdAllocator.fromJSON(snap);
    for (const id of [0, 31, 1024, CHUNK + 7, 2 * CHUNK + 5]) {
      const c = a.clone();
      c.freeId(id);
      const want = text(c);
      const d = a.clone();
      d.unallocateId(id);
      assert.equal(text(d), want, `id ${id}`);
      d.checkValid();
    }
  });

  it("refuses what freeId refuses, changing nothing", () => {
    const a = new IdAllocator(10, 20);
    a.allocateId();
    a.freeId(10);
    const before = text(a);
    assert.throws(() => a.unallocateId(11), code("NeverAllocated"));
    assert.throws(() => a.unallocateId(10), code("AlreadyReleased"));
    assert.throws(() => a.unallocateId(9), code("OutOfRange"));
    for (const bad of BAD_U32) assert.throws(() => loose(a).unallocateId(bad), code("InvalidArgument"));
    assert.equal(text(a), before);
  });

  it("property: after any history, allocating then unallocating (in reverse order) gives the snapshot back", () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant("alloc" as const), owner: fc.option(fc.constantFrom("a", "b"), { nil: undefined }) }),
      fc.record({ t: fc.constant("at" as const), id: fc.integer({ min: 0, max: 2100 }) }),
      fc.record({ t: fc.constant("free" as const), id: fc.integer({ min: 0, max: 2100 }) }),
      fc.record({ t: fc.constant("owner" as const), owner: fc.constantFrom("a", "b") }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), fc.array(fc.option(fc.integer({ min: 0, max: 2100 }), { nil: undefined }), { minLength: 1, maxLength: 8 }), (history, rollback) => {
        const a = new IdAllocator(0, 2100);
        for (const o of history) {
          try {
            if (o.t === "alloc") a.allocateId(o.owner);
            else if (o.t === "at") a.allocateIdAt(o.id, "a");
            else if (o.t === "free") a.freeId(o.id);
            else a.freeOwner(o.owner);
          } catch (e) {
            if (!(e instanceof AllocatorError)) throw e;
          }
        }
        const before = text(a);
        const taken: number[] = [];
        for (const at of rollback) {
          try {
            taken.push(at === undefined ? a.allocateId("r") : a.allocateIdAt(at, "r"));
          } catch (e) {
            if (!(e instanceof AllocatorError)) throw e;
          }
        }
        for (let i = taken.length - 1; i >= 0; i--) a.unallocateId(taken[i]!);
        a.checkValid();
        assert.equal(text(a), before);
      }),
      { numRuns: 300 },
    );
  });
});

describe("IdAllocator owners restore as runs, in time and memory proportional to the snapshot", () => {
  const heap = (): number => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };

  it("a ~150-byte snapshot naming MAX_OWNED_IDS owned ids restores in little memory, and stays exact under changes", () => {
    const first = 7; // runs not aligned to owner pages
    const last = first + MAX_OWNED_IDS - 1;
    const snap = { format: "vm-allocator/id-allocator", version: 1, first: 0, last: U32_MAX, allocated: [[first, last]], released: [], owners: [["bulk", [[first, last]]]] };
    assert.ok(JSON.stringify(snap).length < 200);
    const before = heap();
    const a = IdAllocator.fromJSON(snap);
    // Per id, a Map entry and a Set entry took ~1.1 GiB; an entry per 256-id page takes a few MiB.
    assert.ok(heap() - before < 32 * 2 ** 20, `restoring grew the heap by ${heap() - before} bytes`);
    assert.equal(a.ownerOf(first), "bulk");
    assert.equal(a.ownerOf(last), "bulk");
    assert.equal(a.ownerOf(first - 1), undefined);
    assert.equal(a.ownerOf(last + 1), undefined);
    assert.equal(a.ownerOf(1 << 20), "bulk");
    // The limit holds for the restored ids too.
    assert.throws(() => a.allocateId("more"), code("ResourceNotAvailable", /MAX_OWNED_IDS/));
    assert.equal(a.allocateId(), 0, "without an owner, the limit does not apply");
    const mid = first + (1 << 23) + 3;
    a.freeId(mid);
    assert.equal(a.ownerOf(mid), undefined);
    assert.throws(() => a.freeId(mid), code("AlreadyReleased"));
    assert.equal(a.allocateIdAt(mid, "other"), mid);
    assert.equal(a.ownerOf(mid), "other");
    assert.deepEqual(a.idsOf("other"), [mid]);
    assert.deepEqual(a.freeOwner("other"), [mid]);
    assert.equal(a.allocateIdAt(mid), mid);
    assert.equal(a.ownerOf(mid), undefined, "allocated again without an owner: the restored run no longer names it");
  });

  /** A random snapshot of [0, 2999] with owned runs that start and end anywhere in the 256-id pages. */
  const snapshotArb = fc
    .array(fc.record({ len: fc.integer({ min: 1, max: 700 }), gap: fc.integer({ min: 0, max: 300 }), owner: fc.constantFrom("a", "b", "c", undefined) }), { maxLength: 8 })
    .map((parts) => {
      const allocated: IdRun[] = [];
      const owners = new Map<string, IdRun[]>();
      let at = 0;
      for (const p of parts) {
        at += p.gap + 1; // keep runs apart so that each one stays its own run
        const end = Math.min(at + p.len - 1, 2999);
        if (at > 2999) break;
        allocated.push([at, end]);
        if (p.owner !== undefined) owners.set(p.owner, [...(owners.get(p.owner) ?? []), [at, end]]);
        at = end + 1;
      }
      const snap: IdAllocatorSnapshot = {
        format: "vm-allocator/id-allocator",
        version: 1,
        first: 0,
        last: 2999,
        allocated,
        released: [],
        owners: [...owners].sort((x, y) => x[1][0]![0] - y[1][0]![0]),
      };
      return snap;
    });
  const opArb = fc.oneof(
    fc.record({ t: fc.constant("free" as const), id: fc.integer({ min: 0, max: 2999 }) }),
    fc.record({ t: fc.constant("alloc" as const), owner: fc.constantFrom("a", "b", "d", undefined) }),
    fc.record({ t: fc.constant("at" as const), id: fc.integer({ min: 0, max: 2999 }), owner: fc.constantFrom("a", "d", undefined) }),
    fc.record({ t: fc.constant("owner" as const), owner: fc.constantFrom("a", "b", "c", "d") }),
  );

  it("property: a restored allocator behaves exactly like one that was given the same ids one by one", () => {
    fc.assert(
      fc.property(snapshotArb, fc.array(opArb, { maxLength: 40 }), (snap, ops) => {
        const restored = IdAllocator.fromJSON(snap);
        assert.deepEqual(restored.toJSON(), snap, "the snapshot round-trips");
        restored.checkValid();
        // The twin: the same state built through the live path.
        const twin = new IdAllocator(0, 2999);
        const ownerOfId = new Map<number, string>();
        for (const [name, runs] of snap.owners) for (const [x, y] of runs) for (let id = x; id <= y; id++) ownerOfId.set(id, name);
        for (const [x, y] of snap.allocated) for (let id = x; id <= y; id++) twin.allocateIdAt(id, ownerOfId.get(id));
        for (const o of ops) {
          const act = (x: IdAllocator): unknown => {
            try {
              if (o.t === "free") return x.freeId(o.id);
              if (o.t === "alloc") return x.allocateId(o.owner);
              if (o.t === "at") return x.allocateIdAt(o.id, o.owner);
              return x.freeOwner(o.owner);
            } catch (e) {
              if (!(e instanceof AllocatorError)) throw e;
              return e.code;
            }
          };
          assert.deepEqual(act(restored), act(twin), JSON.stringify(o));
        }
        restored.checkValid();
        for (const owner of ["a", "b", "c", "d"]) assert.deepEqual(restored.idsOf(owner), twin.idsOf(owner), owner);
        for (let id = 0; id <= 2999; id += 7) assert.equal(restored.ownerOf(id), twin.ownerOf(id), `id ${id}`);
        // The released history differs by design (a restored id's state before its allocation is
        // "released", the twin's ids were fresh: unallocateId is left out above for that reason),
        // so compare what is held.
        const held = (x: IdAllocator) => {
          const j = x.toJSON();
          return { allocated: j.allocated, owners: j.owners };
        };
        assert.deepEqual(held(restored), held(twin));
        assert.deepEqual(held(restored.clone()), held(restored));
        restored.clone().checkValid();
      }),
      { numRuns: 150 },
    );
  });
});
