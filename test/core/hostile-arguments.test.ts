/**
 * Every public method of the core refuses a wrong argument with an `AllocatorError` naming the
 * parameter, and changes nothing: one table of hostile values, tried in every parameter of every
 * method of RangeInclusive, AddressAllocator and IdAllocator (and in every field of their request
 * and option objects), each time on an allocator with live state whose snapshot must not move.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AddressAllocator, AllocatorError, AllocPolicy, formatRange, hex, IdAllocator, isPowerOfTwo, RangeInclusive } from "../../src/index.js";

/** A Proxy whose every trap throws: reading anything of it fails. */
const THROWING_PROXY = new Proxy(
  {},
  new Proxy(
    {},
    {
      get: () => () => {
        throw new Error("trap");
      },
    },
  ),
);

/** The hostile values of the issue, with a label for messages. */
const HOSTILE: readonly [label: string, value: unknown][] = [
  ["null", null],
  ["undefined", undefined],
  ["Symbol()", Symbol("hostile")],
  ['"3"', "3"],
  ["1.5", 1.5],
  ["-1", -1],
  ["NaN", Number.NaN],
  ["2**53", 2 ** 53],
  ["{}", {}],
  ["[]", []],
  ["a throwing Proxy", THROWING_PROXY],
];

/** Which hostile values a parameter legitimately accepts (so they are not expected to throw). */
type Accepts = (value: unknown) => boolean;
const none: Accepts = () => false;
const optional: Accepts = (v) => v === undefined;
/** An owner is any non-empty string; `"3"` is a fine name. */
const ownerParam: Accepts = (v) => typeof v === "string";
const optionalOwner: Accepts = (v) => v === undefined || typeof v === "string";
/** An options object may be empty. */
const optionalOptions: Accepts = (v) => v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && v !== THROWING_PROXY);

interface Case {
  /** What is called, for messages: `AddressAllocator.allocate(size)`. */
  readonly name: string;
  /** How the error message must start: the parameter's name. */
  readonly names: RegExp;
  readonly accepts: Accepts;
  /** Calls the method with `value` in the parameter under test. */
  readonly call: (value: unknown) => unknown;
  readonly code?: string;
}

type Fn = (...args: unknown[]) => unknown;
const loose = <T>(x: T) => x as unknown as Record<string, Fn>;

function expectRefused(c: Case, label: string, value: unknown, snapshot: () => string): void {
  const before = snapshot();
  assert.throws(
    () => c.call(value),
    (e: unknown) => {
      assert.ok(e instanceof AllocatorError, `${c.name} with ${label}: expected an AllocatorError, got ${String(e)}`);
      assert.equal(e.code, c.code ?? "InvalidArgument", `${c.name} with ${label}: ${e.message}`);
      assert.match(e.message, c.names, `${c.name} with ${label} must name the parameter`);
      return true;
    },
    `${c.name} with ${label} was accepted`,
  );
  assert.equal(snapshot(), before, `${c.name} with ${label} changed the state`);
}

function runTable(cases: readonly Case[], snapshot: () => string, validate: () => void): void {
  for (const c of cases) {
    for (const [label, value] of HOSTILE) {
      if (c.accepts(value)) continue;
      expectRefused(c, label, value, snapshot);
    }
  }
  validate();
}

describe("hostile arguments: RangeInclusive and the core functions", () => {
  const r = new RangeInclusive(0x1000n, 0x1fffn);
  const R = loose(r);
  const cases: Case[] = [
    { name: "new RangeInclusive(start)", names: /^start /, accepts: none, call: (v) => new (RangeInclusive as unknown as new (...a: unknown[]) => unknown)(v, 5) },
    { name: "new RangeInclusive(end)", names: /^end /, accepts: none, call: (v) => new (RangeInclusive as unknown as new (...a: unknown[]) => unknown)(0, v) },
    { name: "RangeInclusive.withSize(start)", names: /^start /, accepts: none, call: (v) => (RangeInclusive.withSize as Fn)(v, 5) },
    { name: "RangeInclusive.withSize(size)", names: /^size /, accepts: none, call: (v) => (RangeInclusive.withSize as Fn)(0, v) },
    { name: "overlaps(other)", names: /^other /, accepts: none, call: (v) => R["overlaps"]!.call(r, v) },
    { name: "contains(other)", names: /^other /, accepts: none, call: (v) => R["contains"]!.call(r, v) },
    { name: "equals(other)", names: /^other /, accepts: none, call: (v) => R["equals"]!.call(r, v) },
    { name: "containsValue(value)", names: /^value /, accepts: none, call: (v) => R["containsValue"]!.call(r, v) },
    { name: "toString(kind)", names: /^kind /, accepts: optional, call: (v) => R["toString"]!.call(r, v) },
    { name: "formatRange(start)", names: /^start /, accepts: none, call: (v) => (formatRange as Fn)(v, 5n) },
    { name: "formatRange(end)", names: /^end /, accepts: none, call: (v) => (formatRange as Fn)(0n, v) },
    { name: "formatRange(kind)", names: /^kind /, accepts: optional, call: (v) => (formatRange as Fn)(0n, 5n, v) },
    { name: "hex(value)", names: /^value /, accepts: none, call: (v) => (hex as Fn)(v) },
    // isPowerOfTwo answers for any integer: -1 is simply not a power of two.
    { name: "isPowerOfTwo(value)", names: /^value /, accepts: (v) => v === -1, call: (v) => (isPowerOfTwo as Fn)(v) },
  ];
  it("refuses every hostile value in every parameter with InvalidArgument naming it", () => {
    runTable(cases, () => `${r.start}-${r.end}`, () => assert.equal(r.toString(), "[mem 0x1000-0x1fff]"));
  });

  it('containsValue refuses "3" and 1.5 instead of comparing them, and takes bigints and safe integers', () => {
    assert.throws(() => (r.containsValue as Fn)("4096"), { code: "InvalidArgument" });
    assert.throws(() => r.containsValue(4096.5), { code: "InvalidArgument" });
    assert.throws(() => r.containsValue(-1n as bigint), { code: "InvalidArgument" });
    assert.throws(() => r.containsValue(1n << 64n), { code: "InvalidArgument" });
    assert.equal(r.containsValue(0x1000), true);
    assert.equal(r.containsValue(0x1fffn), true);
    assert.equal(r.containsValue(0x2000), false);
    assert.equal(new RangeInclusive(0n, (1n << 64n) - 1n).containsValue((1n << 64n) - 1n), true);
  });

  it("takes a Proxy of a range, or an object with the range's prototype, for no range", () => {
    const fakes = [new Proxy(r, {}), Object.freeze(Object.assign(Object.create(RangeInclusive.prototype) as object, { start: 0x1000n, end: 0x1fffn }))];
    for (const fake of fakes) {
      assert.equal(fake instanceof RangeInclusive, false);
      assert.throws(() => r.equals(fake as RangeInclusive), { code: "InvalidArgument", message: /^other must be a RangeInclusive/ });
    }
    assert.equal(r instanceof RangeInclusive, true);
    assert.equal(({ start: 1n, end: 2n }) instanceof RangeInclusive, false);
  });
});

describe("hostile arguments: AddressAllocator", () => {
  const fresh = (): AddressAllocator => {
    const a = new AddressAllocator(0x1000, 0x10000);
    a.allocate(0x100, 0x10, AllocPolicy.FirstMatch, { owner: "blk" });
    a.allocate(0x80, 1, AllocPolicy.LastMatch);
    return a;
  };
  const a = fresh();
  const A = loose(a);
  const held = [...a.allocations()][0]!.range;
  const call = (method: string, ...args: unknown[]) => A[method]!.apply(a, args);
  const cases: Case[] = [
    { name: "new AddressAllocator(base)", names: /^base /, accepts: none, call: (v) => new (AddressAllocator as unknown as new (...a: unknown[]) => unknown)(v, 16) },
    { name: "new AddressAllocator(size)", names: /^size /, accepts: none, call: (v) => new (AddressAllocator as unknown as new (...a: unknown[]) => unknown)(0, v) },
    // An object in the first place is the request form, so the whole request is named.
    { name: "allocate(size)", names: /^(size |request[ .])/, accepts: none, call: (v) => call("allocate", v) },
    { name: "allocate(size, alignment)", names: /^alignment /, accepts: optional, call: (v) => call("allocate", 0x10, v) },
    { name: "allocate(size, 1, policy)", names: /^policy /, accepts: optional, call: (v) => call("allocate", 0x10, 1, v) },
    { name: "allocate(size, 1, FirstMatch, options)", names: /^options /, accepts: optionalOptions, call: (v) => call("allocate", 0x10, 1, AllocPolicy.FirstMatch, v) },
    { name: "allocate(..., { owner })", names: /^options\.owner /, accepts: optionalOwner, call: (v) => call("allocate", 0x10, 1, AllocPolicy.FirstMatch, { owner: v }) },
    { name: "allocate(..., { window })", names: /^options\.window[ .]/, accepts: optional, call: (v) => call("allocate", 0x10, 1, AllocPolicy.FirstMatch, { window: v }) },
    { name: "allocate(..., { window: { min } })", names: /^options\.window\.min /, accepts: none, call: (v) => call("allocate", 0x10, 1, AllocPolicy.FirstMatch, { window: { min: v, max: 0xffff } }) },
    { name: "allocate(..., { window: { max } })", names: /^options\.window\.max /, accepts: none, call: (v) => call("allocate", 0x10, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: v } }) },
    { name: "allocate(ExactMatch(address))", names: /^address /, accepts: none, call: (v) => call("allocate", 0x10, 1, (AllocPolicy.ExactMatch as Fn)(v)) },
    { name: "allocate(size, 1, { kind: ExactMatch, address })", names: /^policy\.address /, accepts: none, call: (v) => call("allocate", 0x10, 1, { kind: "ExactMatch", address: v }) },
    { name: "allocate({ size })", names: /^request\.size /, accepts: none, call: (v) => call("allocate", { size: v }) },
    { name: "allocate({ alignment })", names: /^request\.alignment /, accepts: optional, call: (v) => call("allocate", { size: 1, alignment: v }) },
    { name: "allocate({ policy })", names: /^request\.policy /, accepts: optional, call: (v) => call("allocate", { size: 1, policy: v }) },
    { name: "allocate({ owner })", names: /^request\.owner /, accepts: optionalOwner, call: (v) => call("allocate", { size: 1, owner: v }) },
    { name: "allocate({ window })", names: /^request\.window[ .]/, accepts: optional, call: (v) => call("allocate", { size: 1, window: v }) },
    { name: "allocate(request, extra)", names: /^allocate\(request\) takes the request alone/, accepts: optional, call: (v) => call("allocate", { size: 1 }, v) },
    { name: "free(range)", names: /^range[ .]/, accepts: none, call: (v) => call("free", v) },
    { name: "free({ start })", names: /^range\.start /, accepts: none, call: (v) => call("free", { start: v, end: held.end }) },
    { name: "free({ end })", names: /^range\.end /, accepts: none, call: (v) => call("free", { start: held.start, end: v }) },
    { name: "isAllocated(range)", names: /^range[ .]/, accepts: none, call: (v) => call("isAllocated", v) },
    { name: "isAllocated({ start })", names: /^range\.start /, accepts: none, call: (v) => call("isAllocated", { start: v, end: held.end }) },
    { name: "find(address)", names: /^address /, accepts: none, call: (v) => call("find", v) },
    { name: "releaseOwner(owner)", names: /^owner /, accepts: ownerParam, call: (v) => call("releaseOwner", v) },
    { name: "allocationsOf(owner)", names: /^owner /, accepts: ownerParam, call: (v) => call("allocationsOf", v) },
    { name: "AddressAllocator.fromJSON(snapshot)", names: /^invalid address allocator snapshot/, accepts: none, call: (v) => AddressAllocator.fromJSON(v), code: "InvalidSnapshot" },
  ];
  it("refuses every hostile value in every parameter and field, naming it, and changes nothing", () => {
    const before = JSON.stringify(fresh().toJSON());
    runTable(cases, () => JSON.stringify(a.toJSON()), () => a.checkValid());
    assert.equal(JSON.stringify(a.toJSON()), before);
  });

  it("refuses options and requests that are not plain objects, and unknown fields in them", () => {
    const b = fresh();
    const B = loose(b);
    const before = JSON.stringify(b.toJSON());
    for (const bad of ["virtio-blk", 5, 5n, true, [], new Map(), new RangeInclusive(0, 1)]) {
      assert.throws(() => B["allocate"]!.call(b, 0x10, 1, AllocPolicy.FirstMatch, bad), { code: "InvalidArgument", message: /^options must be a plain object/ });
    }
    for (const bad of [[], new Map(), new RangeInclusive(0, 1)]) {
      assert.throws(() => B["allocate"]!.call(b, bad), { code: "InvalidArgument", message: /^request must be a plain object/ });
    }
    assert.throws(() => B["allocate"]!.call(b, 0x10, 1, AllocPolicy.FirstMatch, { ownr: "blk" }), {
      code: "InvalidArgument",
      message: 'options has unknown field "ownr" (options may have "owner", "window")',
    });
    assert.throws(() => B["allocate"]!.call(b, { size: 0x10, polcy: AllocPolicy.LastMatch }), {
      code: "InvalidArgument",
      message: 'request has unknown field "polcy" (request may have "size", "alignment", "policy", "owner", "window")',
    });
    assert.throws(() => B["allocate"]!.call(b, 0x10, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: 0xffff, mn: 1 } }), {
      code: "InvalidArgument",
      message: /^options\.window has unknown field "mn"/,
    });
    assert.throws(() => B["allocate"]!.call(b, { size: 1 }, 1), { code: "InvalidArgument", message: /^allocate\(request\) takes the request alone/ });
    assert.equal(JSON.stringify(b.toJSON()), before);
    // A null-prototype object is a plain object too, and an empty options object means no options.
    const bare = Object.assign(Object.create(null) as object, { owner: "net" });
    assert.equal(b.allocate(0x10, 1, AllocPolicy.FirstMatch, bare as { owner: string }).start, 0x1100n);
    assert.deepEqual(b.allocationsOf("net").map(String), ["[mem 0x1100-0x110f]"]);
    assert.equal(b.allocate(0x10, 1, AllocPolicy.FirstMatch, {}).start, 0x1110n);
    b.checkValid();
  });

  it("reads each field of an options object once, so a getter cannot answer twice", () => {
    const b = fresh();
    let reads = 0;
    const options = {
      get owner() {
        reads++;
        return reads === 1 ? "first" : "";
      },
    };
    b.allocate(0x10, 1, AllocPolicy.FirstMatch, options);
    assert.equal(reads, 1);
    assert.equal(b.allocationsOf("first").length, 1);
    b.checkValid();
  });
});

describe("hostile arguments: IdAllocator", () => {
  const fresh = (): IdAllocator => {
    const a = new IdAllocator(0, 100);
    a.allocateIds(5, "blk");
    a.allocateIdAt(50);
    a.freeId(2);
    return a;
  };
  const a = fresh();
  const A = loose(a);
  const call = (method: string, ...args: unknown[]) => A[method]!.apply(a, args);
  const cases: Case[] = [
    { name: "new IdAllocator(first)", names: /^first /, accepts: none, call: (v) => new (IdAllocator as unknown as new (...a: unknown[]) => unknown)(v, 5) },
    { name: "new IdAllocator(last)", names: /^last /, accepts: none, call: (v) => new (IdAllocator as unknown as new (...a: unknown[]) => unknown)(0, v) },
    { name: "allocateId(owner)", names: /^owner /, accepts: optionalOwner, call: (v) => call("allocateId", v) },
    { name: "allocateIdAt(id)", names: /^id /, accepts: none, call: (v) => call("allocateIdAt", v) },
    { name: "allocateIdAt(7, owner)", names: /^owner /, accepts: optionalOwner, call: (v) => call("allocateIdAt", 7, v) },
    { name: "allocateIds(count)", names: /^count /, accepts: none, call: (v) => call("allocateIds", v) },
    { name: "allocateIds(2, owner)", names: /^owner /, accepts: optionalOwner, call: (v) => call("allocateIds", 2, v) },
    { name: "freeId(id)", names: /^id /, accepts: none, call: (v) => call("freeId", v) },
    { name: "free(id)", names: /^id /, accepts: none, call: (v) => call("free", v) },
    { name: "unallocateId(id)", names: /^id /, accepts: none, call: (v) => call("unallocateId", v) },
    { name: "isAllocated(id)", names: /^id /, accepts: none, call: (v) => call("isAllocated", v) },
    { name: "ownerOf(id)", names: /^id /, accepts: none, call: (v) => call("ownerOf", v) },
    { name: "idsOf(owner)", names: /^owner /, accepts: ownerParam, call: (v) => call("idsOf", v) },
    { name: "freeOwner(owner)", names: /^owner /, accepts: ownerParam, call: (v) => call("freeOwner", v) },
    { name: "allocate(request)", names: /^request /, accepts: (v) => v === undefined || (typeof v === "object" && v !== null && !Array.isArray(v) && v !== THROWING_PROXY), call: (v) => call("allocate", v) },
    { name: "allocate({ fixed })", names: /^request\.fixed /, accepts: optional, call: (v) => call("allocate", { fixed: v }) },
    { name: "allocate({ owner })", names: /^request\.owner /, accepts: optionalOwner, call: (v) => call("allocate", { owner: v }) },
    { name: "IdAllocator.fromJSON(snapshot)", names: /^invalid id-allocator snapshot/, accepts: none, call: (v) => IdAllocator.fromJSON(v), code: "InvalidSnapshot" },
  ];
  it("refuses every hostile value in every parameter and field, naming it, and changes nothing", () => {
    const before = JSON.stringify(fresh().toJSON());
    runTable(cases, () => JSON.stringify(a.toJSON()), () => a.checkValid());
    assert.equal(JSON.stringify(a.toJSON()), before);
  });

  it("refuses requests that are not plain objects, and unknown fields (a typo is not ignored)", () => {
    const b = fresh();
    const B = loose(b);
    const before = JSON.stringify(b.toJSON());
    for (const bad of ["virtio-blk", 5, 5n, true, [], new Map()]) {
      assert.throws(() => B["allocate"]!.call(b, bad), { code: "InvalidArgument", message: /^request must be a plain object/ });
    }
    assert.throws(() => B["allocate"]!.call(b, { fixd: 7 }), { code: "InvalidArgument", message: 'request has unknown field "fixd" (request may have "fixed", "owner")' });
    assert.throws(() => B["allocate"]!.call(b, { fixed: 7, ownr: "x" }), { code: "InvalidArgument", message: /^request has unknown field "ownr"/ });
    assert.equal(JSON.stringify(b.toJSON()), before);
    assert.equal(b.allocate({ fixed: 7, owner: "x" }), 7);
    assert.equal(b.allocate({}), 2);
    assert.equal(b.allocate(), 5);
    b.checkValid();
  });
});
