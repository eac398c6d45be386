import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  AddressAllocator,
  AllocatorError,
  AllocPolicy,
  RangeInclusive,
  type AddressAllocatorSnapshot,
  type AddressRequest,
  type ResourceAllocator,
  type ResourceSize,
} from "../../src/index.js";

const TWO64 = 1n << 64n;
const U64_MAX = TWO64 - 1n;
const P63 = 1n << 63n;
const P53 = 1n << 53n;
const P32 = 1n << 32n;

/** assert.throws matcher: an AllocatorError with this code (and message, when given). */
function code(c: string, message?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof AllocatorError, `expected an AllocatorError ${c}, got ${String(e)}`);
    assert.equal(e.code, c, `expected ${c}, got ${e.code}: ${e.message}`);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  };
}

/** Loosely typed entry points for calling the API with values TypeScript would reject. */
type Fn = (...args: unknown[]) => unknown;
const loose = (a: AddressAllocator) =>
  a as unknown as { allocate: Fn; free: Fn; find: Fn; isAllocated: Fn; releaseOwner: Fn; allocationsOf: Fn };
const NewLoose = AddressAllocator as unknown as new (...args: unknown[]) => AddressAllocator;
const fromJSON = (x: unknown): AddressAllocator => AddressAllocator.fromJSON(x);

const pair = (r: { start: bigint; end: bigint }): [bigint, bigint] => [r.start, r.end];
const allocs = (a: AddressAllocator): [bigint, bigint, string | undefined][] =>
  [...a.allocations()].map((x) => [x.range.start, x.range.end, x.owner]);
const frees = (a: AddressAllocator): [bigint, bigint][] => [...a.freeRanges()].map(pair);
const state = (a: AddressAllocator): string => JSON.stringify(a.toJSON());

/**
 * Checks everything a caller can observe against first principles: checkValid(), allocations
 * and free ranges tile the pool in address order, free ranges are maximal, the totals add up.
 */
function check(a: AddressAllocator): void {
  a.checkValid();
  const segments: { s: bigint; e: bigint; free: boolean }[] = [
    ...[...a.allocations()].map((x) => ({ s: x.range.start, e: x.range.end, free: false })),
    ...[...a.freeRanges()].map((r) => ({ s: r.start, e: r.end, free: true })),
  ].sort((x, y) => (x.s < y.s ? -1 : x.s > y.s ? 1 : 0));
  let next = a.base;
  let used = 0n;
  let count = 0;
  let prevFree = false;
  for (const seg of segments) {
    assert.equal(seg.s, next, "allocations and free ranges must tile the pool");
    assert.ok(seg.e >= seg.s);
    if (seg.free) assert.ok(!prevFree, "free ranges must be maximal (coalesced)");
    else {
      used += seg.e - seg.s + 1n;
      count++;
    }
    prevFree = seg.free;
    next = seg.e + 1n;
  }
  assert.equal(next, a.end + 1n, "the tiling must reach the pool end");
  assert.equal(a.allocatedSize, used);
  assert.equal(a.availableSize, a.size - used);
  assert.equal(a.allocationCount, count);
  assert.equal(a.size, a.end - a.base + 1n);
}

const BAD_U64: unknown[] = [-1, -1n, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, TWO64 + 1n, "1", "0x10", null, {}, [1], true];

describe("AddressAllocator construction", () => {
  it("manages [base, base+size-1] from number or bigint inputs", () => {
    for (const [base, size] of [
      [0x1000, 0x2000],
      [0x1000n, 0x2000n],
      [0x1000, 0x2000n],
      [0x1000n, 0x2000],
    ] as const) {
      const a = new AddressAllocator(base, size);
      assert.equal(a.base, 0x1000n);
      assert.equal(a.end, 0x2fffn);
      assert.equal(a.size, 0x2000n);
      assert.deepEqual(pair(a.range), [0x1000n, 0x2fffn]);
      assert.ok(a.range instanceof RangeInclusive);
      assert.equal(a.allocationCount, 0);
      assert.equal(a.allocatedSize, 0n);
      assert.equal(a.availableSize, 0x2000n);
      assert.deepEqual(frees(a), [[0x1000n, 0x2fffn]]);
      assert.deepEqual(allocs(a), []);
      check(a);
    }
  });

  it("manages the whole 2^64 space when base is 0 and size is 2^64", () => {
    const a = new AddressAllocator(0n, TWO64);
    assert.equal(a.base, 0n);
    assert.equal(a.end, U64_MAX);
    assert.equal(a.size, TWO64);
    assert.equal(a.availableSize, TWO64);
    assert.deepEqual(frees(a), [[0n, U64_MAX]]);
    check(a);
  });

  it("accepts pools at the edges of the space", () => {
    const cases: [bigint, bigint][] = [
      [0n, 1n],
      [1n, 1n],
      [U64_MAX, 1n],
      [U64_MAX - 15n, 16n],
      [1n, U64_MAX],
      [0n, U64_MAX],
      [P63, P63],
      [P32 - 1n, 2n],
      [P53 - 1n, 3n],
      [BigInt(Number.MAX_SAFE_INTEGER), 1n],
    ];
    for (const [base, size] of cases) {
      const a = new AddressAllocator(base, size);
      assert.equal(a.base, base);
      assert.equal(a.end, base + size - 1n);
      assert.equal(a.size, size);
      check(a);
    }
    const safe = new AddressAllocator(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    assert.equal(safe.end, 2n * BigInt(Number.MAX_SAFE_INTEGER) - 1n);
  });

  it("rejects a pool that would end past 2^64-1 with Overflow", () => {
    const cases: [bigint, bigint][] = [
      [U64_MAX, 2n],
      [U64_MAX - 15n, 17n],
      [2n, U64_MAX],
      [P63, P63 + 1n],
      [P63 + 1n, P63],
      [U64_MAX, U64_MAX],
    ];
    for (const [base, size] of cases) {
      assert.throws(() => new AddressAllocator(base, size), code("Overflow"), `${base} + ${size}`);
    }
  });

  it("size 2^64 is only the whole space: with base > 0 it is Overflow", () => {
    for (const base of [1n, 0x1000n, U64_MAX]) {
      assert.throws(() => new AddressAllocator(base, TWO64), code("Overflow", /past 0xffffffffffffffff/));
    }
    // 2^64 as a number is not a safe integer.
    assert.throws(() => new AddressAllocator(0, 2 ** 64), code("InvalidArgument", /^size/));
    assert.throws(() => new AddressAllocator(0n, TWO64 + 1n), code("InvalidArgument", /^size/));
  });

  it("rejects size 0 with InvalidSize", () => {
    for (const base of [0n, 1n, P63, U64_MAX]) {
      assert.throws(() => new AddressAllocator(base, 0n), code("InvalidSize"));
      assert.throws(() => new AddressAllocator(base, 0), code("InvalidSize"));
    }
  });

  it("rejects malformed inputs with InvalidArgument naming the parameter", () => {
    for (const bad of [...BAD_U64, undefined, TWO64]) {
      assert.throws(() => new NewLoose(bad, 0x100), code("InvalidArgument", /^base/), `base ${String(bad)}`);
    }
    for (const bad of [...BAD_U64, undefined]) {
      assert.throws(() => new NewLoose(0x100, bad), code("InvalidArgument", /^size/), `size ${String(bad)}`);
    }
  });
});

describe("AddressAllocator.allocate: arguments", () => {
  it("positional and request forms are the same call; alignment defaults to 1 and policy to FirstMatch", () => {
    const a = new AddressAllocator(0x1001, 0x1000);
    const b = new AddressAllocator(0x1001, 0x1000);
    assert.deepEqual(pair(a.allocate(3)), [0x1001n, 0x1003n]);
    assert.deepEqual(pair(b.allocate({ size: 3 })), [0x1001n, 0x1003n]);
    assert.deepEqual(pair(a.allocate(0x10, 0x10, AllocPolicy.LastMatch, { owner: "x" })), [0x1ff0n, 0x1fffn]);
    assert.deepEqual(pair(b.allocate({ size: 0x10, alignment: 0x10, policy: AllocPolicy.LastMatch, owner: "x" })), [0x1ff0n, 0x1fffn]);
    assert.deepEqual(
      pair(a.allocate(4, 4n, AllocPolicy.ExactMatch(0x1800), { owner: "y", window: { min: 0x1800, max: 0x1803 } })),
      [0x1800n, 0x1803n],
    );
    assert.deepEqual(
      pair(b.allocate({ size: 4n, alignment: 4, policy: AllocPolicy.ExactMatch(0x1800n), owner: "y", window: { min: 0x1800n, max: 0x1803n } })),
      [0x1800n, 0x1803n],
    );
    assert.equal(state(a), state(b));
    assert.deepEqual(allocs(a), [
      [0x1001n, 0x1003n, undefined],
      [0x1800n, 0x1803n, "y"],
      [0x1ff0n, 0x1fffn, "x"],
    ]);
    check(a);
    check(b);
  });

  it("rejects size 0 with InvalidSize in both forms", () => {
    const a = new AddressAllocator(0, 0x1000);
    assert.throws(() => a.allocate(0), code("InvalidSize"));
    assert.throws(() => a.allocate(0n, 1n, AllocPolicy.LastMatch), code("InvalidSize"));
    assert.throws(() => a.allocate({ size: 0n, policy: AllocPolicy.ExactMatch(0) }), code("InvalidSize"));
    check(a);
  });

  it("rejects malformed size, alignment, address, owner and window with InvalidArgument", () => {
    const a = new AddressAllocator(0, TWO64);
    const L = loose(a);
    for (const bad of [...BAD_U64, undefined, TWO64]) {
      // An object in the first place is the request form, whose whole object is then wrong.
      const named = typeof bad === "object" && bad !== null ? /^request/ : /^size/;
      assert.throws(() => L.allocate(bad), code("InvalidArgument", named), `size ${String(bad)}`);
      assert.throws(() => a.allocate({ size: bad as bigint }), code("InvalidArgument", /^request\.size/));
    }
    for (const bad of [...BAD_U64, TWO64]) {
      assert.throws(() => L.allocate(1, bad), code("InvalidArgument", /^alignment/), `alignment ${String(bad)}`);
      // (null in the request form has its own test below)
      if (bad !== null) assert.throws(() => a.allocate({ size: 1, alignment: bad as bigint }), code("InvalidArgument", /^request\.alignment/));
    }
    for (const bad of [-1n, TWO64, 1.5, "1", null, undefined]) {
      const policy = { kind: "ExactMatch", address: bad } as unknown as AllocPolicy;
      assert.throws(() => a.allocate(1, 1, policy), code("InvalidArgument", /^(policy\.)?address/), `address ${String(bad)}`);
    }
    for (const bad of ["", 5, null, {}, ["x"]]) {
      assert.throws(() => L.allocate(1, 1, AllocPolicy.FirstMatch, { owner: bad }), code("InvalidArgument", /owner/));
      assert.throws(() => L.allocate({ size: 1, owner: bad }), code("InvalidArgument", /owner/));
    }
    for (const bad of [null, 5, "0-1"]) {
      assert.throws(() => L.allocate(1, 1, AllocPolicy.FirstMatch, { window: bad }), code("InvalidArgument", /window/));
    }
    assert.throws(() => L.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: -1, max: 5 } }), code("InvalidArgument", /^options\.window\.min/));
    assert.throws(() => L.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: TWO64 } }), code("InvalidArgument", /^options\.window\.max/));
    assert.throws(() => L.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0 } }), code("InvalidArgument", /^options\.window\.max/));
    assert.equal(a.allocationCount, 0);
    check(a);
  });

  it("a number that is not a safe integer is InvalidArgument, not silently rounded", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.throws(() => a.allocate(2 ** 53 + 2), code("InvalidArgument", /^size/));
    assert.throws(() => a.allocate(1, 2 ** 60), code("InvalidArgument", /^alignment/));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: 2 ** 60 } }), code("InvalidArgument", /^options\.window\.max/));
    // The largest safe integer itself is fine.
    assert.deepEqual(pair(a.allocate(Number.MAX_SAFE_INTEGER)), [0n, BigInt(Number.MAX_SAFE_INTEGER) - 1n]);
    check(a);
  });

  it("AllocPolicy.ExactMatch(number) with a bad address fails with InvalidArgument naming the address", () => {
    const a = new AddressAllocator(0, 0x1000);
    for (const bad of [1.5, Number.NaN, -1, Infinity, 2 ** 60]) {
      assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(bad)), code("InvalidArgument", /^(policy\.)?address/), String(bad));
    }
    assert.equal(a.allocationCount, 0);
    check(a);
  });

  it("rejects a bad policy with InvalidArgument", () => {
    const a = new AddressAllocator(0, 0x1000);
    const L = loose(a);
    for (const bad of [null, 1, "FirstMatch", {}, { kind: "BestMatch" }, { kind: "firstmatch" }]) {
      assert.throws(() => L.allocate(1, 1, bad), code("InvalidArgument", /policy/), `policy ${JSON.stringify(bad)}`);
      // (null in the request form has its own test below)
      if (bad !== null) assert.throws(() => L.allocate({ size: 1, policy: bad }), code("InvalidArgument", /policy/));
    }
    check(a);
  });

  it("the request form rejects null alignment and null policy like the positional form (not as defaults)", () => {
    const a = new AddressAllocator(0, 0x1000);
    const L = loose(a);
    assert.throws(() => L.allocate(1, null), code("InvalidArgument", /^alignment/));
    assert.throws(() => L.allocate(1, 1, null), code("InvalidArgument", /policy/));
    assert.throws(() => L.allocate({ size: 1, alignment: null }), code("InvalidArgument", /^request\.alignment/));
    assert.throws(() => L.allocate({ size: 1, policy: null }), code("InvalidArgument", /policy/));
    assert.equal(a.allocationCount, 0);
    check(a);
  });

  it("accepts every power-of-two alignment from 1 to 2^63 and rejects the rest with InvalidAlignment", () => {
    for (let k = 0n; k <= 63n; k++) {
      const align = 1n << k;
      const a = new AddressAllocator(0n, TWO64);
      // Block [0, 0] so that FirstMatch has to round up to the alignment.
      a.allocate(1, 1, AllocPolicy.ExactMatch(0));
      assert.deepEqual(pair(a.allocate(1, align)), [align, align], `FirstMatch alignment 2^${k}`);
      const b = new AddressAllocator(0n, TWO64);
      const expected = U64_MAX - (U64_MAX % align); // the highest multiple of align
      assert.deepEqual(pair(b.allocate(1, align, AllocPolicy.LastMatch)), [expected, expected], `LastMatch alignment 2^${k}`);
      assert.deepEqual(pair(b.allocate({ size: 1, alignment: align, policy: AllocPolicy.ExactMatch(0) })), [0n, 0n]);
      check(a);
      check(b);
    }
    const a = new AddressAllocator(0, 0x1000);
    for (const bad of [0n, 3n, 6n, 0x1001n, P63 + 1n, U64_MAX, (P63 - 1n) * 2n]) {
      assert.throws(() => a.allocate(1, bad), code("InvalidAlignment"), `alignment ${bad}`);
      assert.throws(() => a.allocate(1, bad, AllocPolicy.ExactMatch(0)), code("InvalidAlignment"));
      assert.throws(() => a.allocate({ size: 1, alignment: bad, policy: AllocPolicy.LastMatch }), code("InvalidAlignment"));
    }
    check(a);
  });
});

describe("AddressAllocator.allocate: FirstMatch", () => {
  it("takes the lowest free block whose aligned-up start fits, alignment waste included", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(1, 1, AllocPolicy.ExactMatch(0x100));
    a.allocate(0x1000, 0x1000, AllocPolicy.ExactMatch(0x1000));
    // Free: [0, 0xff], [0x101, 0xfff], [0x2000, 0xffff].
    // 0x800 aligned to 0x800: [0, 0xff] is too small; in [0x101, 0xfff] the aligned start is
    // 0x800 and 0x800 + 0x7ff = 0xfff fits exactly.
    assert.deepEqual(pair(a.allocate(0x800, 0x800)), [0x800n, 0xfffn]);
    check(a);
    // Free: [0, 0xff], [0x101, 0x7ff], [0x2000, 0xffff]. 0x700 bytes aligned to 0x100 start at
    // 0x200 in the second block and would end at 0x8ff > 0x7ff: the waste makes it not fit.
    assert.deepEqual(pair(a.allocate(0x700, 0x100)), [0x2000n, 0x26ffn]);
    // but 0x600 bytes fit exactly: 0x200..0x7ff.
    assert.deepEqual(pair(a.allocate(0x600, 0x100)), [0x200n, 0x7ffn]);
    // Unaligned requests take the very first free byte.
    assert.deepEqual(pair(a.allocate(0x100)), [0x0n, 0xffn]);
    assert.deepEqual(pair(a.allocate(0x1)), [0x101n, 0x101n]);
    check(a);
  });

  it("a pool whose base is not aligned rounds up inside it", () => {
    const a = new AddressAllocator(0x1001, 0x3000);
    assert.deepEqual(pair(a.allocate(0x1000, 0x1000)), [0x2000n, 0x2fffn]);
    // [0x1001, 0x1fff] is 0xfff bytes: one byte too small for 0x1000 unaligned.
    assert.deepEqual(pair(a.allocate(0x1000)), [0x3000n, 0x3fffn]);
    assert.deepEqual(pair(a.allocate(0xfff)), [0x1001n, 0x1fffn]);
    // The pool is [0x1001, 0x4000]: only 0x4000 is left.
    assert.equal(a.availableSize, 1n);
    assert.deepEqual(frees(a), [[0x4000n, 0x4000n]]);
    check(a);
  });

  it("fails with ResourceNotAvailable when nothing fits", () => {
    const a = new AddressAllocator(1, 0x100); // [1, 0x100]
    assert.throws(() => a.allocate(0x101), code("ResourceNotAvailable"));
    // The only 0x200-aligned address in the space near the pool is 0 and 0x200: neither inside.
    assert.throws(() => a.allocate(1, 0x200), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(1, 0x200, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    // 0x100 is aligned to 0x100 and is the last address of the pool.
    assert.deepEqual(pair(a.allocate(1, 0x100)), [0x100n, 0x100n]);
    // Now [1, 0xff]: 0x80 aligned to 0x80 fits at 0x80..0xff.
    assert.throws(() => a.allocate(0x81, 0x80), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(0x80, 0x80)), [0x80n, 0xffn]);
    check(a);
  });
});

describe("AddressAllocator.allocate: LastMatch", () => {
  it("takes the highest free block that fits, at align_down(block.end - size + 1)", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(0x100, 1, AllocPolicy.ExactMatch(0xff00));
    a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x8000));
    // Free: [0, 0x7fff], [0x8010, 0xfeff].
    assert.deepEqual(pair(a.allocate(0x10, 1, AllocPolicy.LastMatch)), [0xfef0n, 0xfeffn]);
    // align_down(0xfeef - 0x1000 + 1, 0x1000) = 0xe000.
    assert.deepEqual(pair(a.allocate(0x1000, 0x1000, AllocPolicy.LastMatch)), [0xe000n, 0xefffn]);
    // 0x7000 bytes at 0x1000 alignment: highest block [0xf000, 0xfeef] too small; next [0x8010, 0xdfff]:
    // align_down(0xdfff - 0x7000 + 1) = 0x7000 < 0x8010, no; then [0, 0x7fff]: start 0x1000.
    assert.deepEqual(pair(a.allocate(0x7000, 0x1000, AllocPolicy.LastMatch)), [0x1000n, 0x7fffn]);
    check(a);
  });

  it("fails with ResourceNotAvailable when nothing fits", () => {
    const a = new AddressAllocator(0x10, 0x10);
    assert.throws(() => a.allocate(0x11, 1, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(0x10, 0x20, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(0x10, 0x10, AllocPolicy.LastMatch)), [0x10n, 0x1fn]);
    assert.throws(() => a.allocate(1, 1, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    check(a);
  });
});

describe("AddressAllocator.allocate: ExactMatch", () => {
  it("places exactly at the address", () => {
    const a = new AddressAllocator(0x1000, 0x1000);
    assert.deepEqual(pair(a.allocate(0x100, 0x100, AllocPolicy.ExactMatch(0x1100))), [0x1100n, 0x11ffn]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(0x1000))), [0x1000n, 0x1000n]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(0x1fff))), [0x1fffn, 0x1fffn]);
    assert.deepEqual(pair(a.allocate(0xff, 1, AllocPolicy.ExactMatch(0x1001))), [0x1001n, 0x10ffn]);
    assert.deepEqual(frees(a), [[0x1200n, 0x1ffen]]);
    check(a);
  });

  it("rejects an unaligned address with UnalignedAddress", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.throws(() => a.allocate(0x1000, 0x1000, AllocPolicy.ExactMatch(0x1800)), code("UnalignedAddress"));
    assert.throws(() => a.allocate(1, 2, AllocPolicy.ExactMatch(U64_MAX)), code("UnalignedAddress"));
    assert.throws(() => a.allocate(1, P63, AllocPolicy.ExactMatch(P63 - 1n)), code("UnalignedAddress"));
    assert.throws(() => a.allocate(1, P63, AllocPolicy.ExactMatch(1)), code("UnalignedAddress"));
    assert.deepEqual(pair(a.allocate(1, P63, AllocPolicy.ExactMatch(P63))), [P63, P63]);
    assert.deepEqual(pair(a.allocate(1, P63, AllocPolicy.ExactMatch(0))), [0n, 0n]);
    check(a);
  });

  it("rejects a range past 2^64-1 with Overflow", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.throws(() => a.allocate(2, 1, AllocPolicy.ExactMatch(U64_MAX)), code("Overflow"));
    assert.throws(() => a.allocate(17, 1, AllocPolicy.ExactMatch(U64_MAX - 15n)), code("Overflow"));
    assert.throws(() => a.allocate(U64_MAX, 1, AllocPolicy.ExactMatch(2)), code("Overflow"));
    assert.throws(() => a.allocate(P63 + 1n, P63, AllocPolicy.ExactMatch(P63)), code("Overflow"));
    const top = new AddressAllocator(U64_MAX - 15n, 16n);
    assert.throws(() => top.allocate(17, 1, AllocPolicy.ExactMatch(U64_MAX - 15n)), code("Overflow"));
    check(a);
    check(top);
  });

  it("rejects a range outside the pool with OutOfRange", () => {
    const a = new AddressAllocator(0x1000, 0x1000); // [0x1000, 0x1fff]
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(0xfff)), code("OutOfRange"));
    assert.throws(() => a.allocate(2, 1, AllocPolicy.ExactMatch(0xfff)), code("OutOfRange"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(0x2000)), code("OutOfRange"));
    assert.throws(() => a.allocate(2, 1, AllocPolicy.ExactMatch(0x1fff)), code("OutOfRange"));
    assert.throws(() => a.allocate(0x1001, 1, AllocPolicy.ExactMatch(0x1000)), code("OutOfRange"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(0)), code("OutOfRange"));
    const top = new AddressAllocator(U64_MAX - 15n, 16n);
    assert.throws(() => top.allocate(1, 1, AllocPolicy.ExactMatch(U64_MAX - 16n)), code("OutOfRange"));
    assert.deepEqual(pair(top.allocate(16, 16, AllocPolicy.ExactMatch(U64_MAX - 15n))), [U64_MAX - 15n, U64_MAX]);
    check(a);
    check(top);
  });

  it("rejects a range on held space with Overlap naming the holder in the Linux style", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(0x1000, 0x1000, AllocPolicy.ExactMatch(0x1000), { owner: "virtio-blk0" });
    a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x3000));
    const before = state(a);
    const overlap = (size: bigint, at: bigint, text: string, owner: string | undefined) => {
      assert.throws(
        () => a.allocate(size, 1, AllocPolicy.ExactMatch(at)),
        (e: unknown) => {
          assert.ok(e instanceof AllocatorError);
          assert.equal(e.code, "Overlap");
          assert.equal(e.owner, owner);
          assert.ok(e.message.includes(text), `${e.message} should include ${text}`);
          return true;
        },
      );
    };
    overlap(0x1000n, 0x1000n, "[mem 0x1000-0x1fff] conflicts with virtio-blk0 [mem 0x1000-0x1fff]", "virtio-blk0");
    overlap(1n, 0x1fffn, "[mem 0x1fff-0x1fff] conflicts with virtio-blk0 [mem 0x1000-0x1fff]", "virtio-blk0");
    overlap(2n, 0xfffn, "[mem 0xfff-0x1000] conflicts with virtio-blk0 [mem 0x1000-0x1fff]", "virtio-blk0");
    overlap(0x2000n, 0x800n, "[mem 0x800-0x27ff] conflicts with virtio-blk0 [mem 0x1000-0x1fff]", "virtio-blk0");
    overlap(0x10n, 0x1800n, "[mem 0x1800-0x180f] conflicts with virtio-blk0 [mem 0x1000-0x1fff]", "virtio-blk0");
    // A holder without owner: error.owner is undefined and the message still names its range.
    overlap(0x20n, 0x2ff8n, "[mem 0x3000-0x300f]", undefined);
    assert.equal(state(a), before);
    check(a);
  });

  it("a window restricts the range: outside it is OutOfRange", () => {
    const a = new AddressAllocator(0, 0x10000);
    const window = { min: 0x2000, max: 0x2fff };
    assert.throws(() => a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x1ff0), { window }), code("OutOfRange"));
    assert.throws(() => a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x2ff1), { window }), code("OutOfRange"));
    assert.throws(() => a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x1ff8), { window }), code("OutOfRange"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(0x3000), { window }), code("OutOfRange"));
    assert.deepEqual(pair(a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x2ff0), { window })), [0x2ff0n, 0x2fffn]);
    assert.deepEqual(pair(a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x2000), { window })), [0x2000n, 0x200fn]);
    // A window wider than the pool does not widen it.
    assert.throws(
      () => a.allocate(1, 1, AllocPolicy.ExactMatch(0x10000), { window: { min: 0, max: U64_MAX } }),
      code("OutOfRange"),
    );
    check(a);
  });
});

describe("AddressAllocator.allocate: windows", () => {
  it("FirstMatch and LastMatch place the range inside [min, max]", () => {
    const a = new AddressAllocator(0, 0x10000);
    const window = { min: 0x2001, max: 0x2fff };
    assert.deepEqual(pair(a.allocate(0x100, 0x100, AllocPolicy.FirstMatch, { window })), [0x2100n, 0x21ffn]);
    assert.deepEqual(pair(a.allocate(0x100, 0x100, AllocPolicy.LastMatch, { window })), [0x2f00n, 0x2fffn]);
    assert.deepEqual(pair(a.allocate(0xff, 1, AllocPolicy.FirstMatch, { window })), [0x2001n, 0x20ffn]);
    // Between 0x2200 and 0x2eff: 0xd00 bytes. Exactly that fits, one more does not.
    assert.throws(() => a.allocate(0xd01, 1, AllocPolicy.FirstMatch, { window }), code("ResourceNotAvailable", /window/));
    assert.throws(() => a.allocate(0xd01, 1, AllocPolicy.LastMatch, { window }), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(0xd00, 1, AllocPolicy.LastMatch, { window })), [0x2200n, 0x2effn]);
    // The rest of the pool is still free.
    assert.deepEqual(frees(a), [
      [0n, 0x2000n],
      [0x3000n, 0xffffn],
    ]);
    check(a);
  });

  it("a window of one address, at the bottom and the top of the space", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: 0 } })), [0n, 0n]);
    assert.throws(() => a.allocate(1, 1, AllocPolicy.LastMatch, { window: { min: 0, max: 0 } }), code("ResourceNotAvailable"));
    const w = { min: U64_MAX, max: U64_MAX };
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.FirstMatch, { window: w })), [U64_MAX, U64_MAX]);
    assert.throws(() => a.allocate(1, 1, AllocPolicy.FirstMatch, { window: w }), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(2, 1, AllocPolicy.LastMatch, { window: { min: U64_MAX - 1n, max: U64_MAX } }), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(1, 2, AllocPolicy.LastMatch, { window: { min: U64_MAX - 3n, max: U64_MAX } })), [U64_MAX - 1n, U64_MAX - 1n]);
    check(a);
  });

  it("a window at 2^32, 2^53 and 2^63 boundaries", () => {
    for (const edge of [P32, P53, P63]) {
      const a = new AddressAllocator(0, TWO64);
      const below = { min: 0n, max: edge - 1n };
      const r = a.allocate(0x1000, 0x1000, AllocPolicy.LastMatch, { window: below });
      assert.deepEqual(pair(r), [edge - 0x1000n, edge - 1n]);
      const above = { min: edge, max: U64_MAX };
      assert.deepEqual(pair(a.allocate(0x1000, 0x1000, AllocPolicy.FirstMatch, { window: above })), [edge, edge + 0xfffn]);
      // A window straddling the edge: FirstMatch in it skips the two taken pages.
      const straddle = { min: edge - 0x1000n, max: edge + 0x1fffn };
      assert.deepEqual(pair(a.allocate(0x1000, 0x1000, AllocPolicy.FirstMatch, { window: straddle })), [edge + 0x1000n, edge + 0x1fffn]);
      assert.throws(() => a.allocate(1, 1, AllocPolicy.FirstMatch, { window: straddle }), code("ResourceNotAvailable"));
      check(a);
    }
  });

  it("a window outside the pool, or partly outside, is clipped to the pool", () => {
    const a = new AddressAllocator(0x1000, 0x1000);
    assert.throws(() => a.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: 0xfff } }), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.LastMatch, { window: { min: 0x2000, max: U64_MAX } }), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0, max: 0x1000 } })), [0x1000n, 0x1000n]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.LastMatch, { window: { min: 0x1fff, max: U64_MAX } })), [0x1fffn, 0x1fffn]);
    check(a);
  });

  it("rejects a window with min > max with InvalidRange, for every policy", () => {
    const a = new AddressAllocator(0, 0x10000);
    const window = { min: 0x2000, max: 0x1fff };
    assert.throws(() => a.allocate(1, 1, AllocPolicy.FirstMatch, { window }), code("InvalidRange"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.LastMatch, { window }), code("InvalidRange"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(0x2000), { window }), code("InvalidRange"));
    assert.throws(() => a.allocate({ size: 1, window: { min: U64_MAX, max: 0n } }), code("InvalidRange"));
    check(a);
  });
});

describe("AddressAllocator.free", () => {
  const setup = () => {
    const a = new AddressAllocator(0x1000, 0x10000); // [0x1000, 0x10fff]
    const x = a.allocate(0x100, 1, AllocPolicy.ExactMatch(0x2000), { owner: "x" });
    const y = a.allocate(0x100, 1, AllocPolicy.ExactMatch(0x2100), { owner: "y" });
    const z = a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x3000));
    return { a, x, y, z };
  };

  it("frees exactly a live allocation, and the space is reusable", () => {
    const { a, x, y, z } = setup();
    a.free(x);
    check(a);
    assert.equal(a.allocationCount, 2);
    assert.equal(a.find(0x2000), undefined);
    a.free({ start: y.start, end: y.end });
    a.free({ start: Number(z.start), end: Number(z.end) });
    check(a);
    assert.deepEqual(frees(a), [[0x1000n, 0x10fffn]]);
    assert.deepEqual(pair(a.allocate(0x10000)), [0x1000n, 0x10fffn]);
    check(a);
  });

  it("rejects anything that is not exactly a live allocation, and changes nothing", () => {
    const { a, x, y } = setup();
    a.free(a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x5000)));
    const before = state(a);
    const cases: [string, { start: bigint; end: bigint }, string][] = [
      ["sub-range at the start", { start: x.start, end: x.end - 1n }, "InvalidRange"],
      ["sub-range at the end", { start: x.start + 1n, end: x.end }, "InvalidRange"],
      ["one byte inside", { start: x.start + 5n, end: x.start + 5n }, "InvalidRange"],
      ["superset below", { start: x.start - 1n, end: x.end }, "InvalidRange"],
      ["superset above", { start: y.start, end: y.end + 1n }, "InvalidRange"],
      ["spanning two allocations", { start: x.start, end: y.end }, "InvalidRange"],
      ["from free space into an allocation", { start: 0x1000n, end: 0x2000n }, "InvalidRange"],
      ["from an allocation into free space", { start: 0x3005n, end: 0x4000n }, "InvalidRange"],
      ["covering a whole allocation from free space", { start: 0x2f00n, end: 0x3100n }, "InvalidRange"],
      ["the whole pool", { start: 0x1000n, end: 0x10fffn }, "InvalidRange"],
      ["already freed", { start: 0x5000n, end: 0x500fn }, "NeverAllocated"],
      ["never allocated", { start: 0x4000n, end: 0x4fffn }, "NeverAllocated"],
      ["free space at the pool start", { start: 0x1000n, end: 0x1000n }, "NeverAllocated"],
      ["free space at the pool end", { start: 0x10fffn, end: 0x10fffn }, "NeverAllocated"],
      ["below the pool", { start: 0x0n, end: 0xfffn }, "OutOfRange"],
      ["crossing the pool start", { start: 0xfffn, end: 0x1000n }, "OutOfRange"],
      ["crossing the pool end", { start: 0x10fffn, end: 0x11000n }, "OutOfRange"],
      ["above the pool", { start: 0x11000n, end: U64_MAX }, "OutOfRange"],
    ];
    for (const [what, r, c] of cases) {
      assert.throws(() => a.free(r), code(c), what);
      assert.throws(() => a.free(new RangeInclusive(r.start, r.end)), code(c), what);
      assert.equal(state(a), before, what);
    }
    const L = loose(a);
    for (const bad of [null, undefined, 5, "0x2000", { start: -1, end: 1 }, { start: 0x2000, end: 1.5 }, { start: 0x2000 }]) {
      assert.throws(() => L.free(bad), code("InvalidArgument"), JSON.stringify(bad));
    }
    assert.throws(() => a.free({ start: 0x20ff, end: 0x2000 }), code("InvalidRange"));
    assert.equal(state(a), before);
    check(a);
  });

  it("an InvalidRange on an allocation names its owner", () => {
    const { a, x } = setup();
    assert.throws(
      () => a.free({ start: x.start, end: x.end - 1n }),
      (e: unknown) => e instanceof AllocatorError && e.code === "InvalidRange" && e.owner === "x" && e.message.includes("[mem 0x2000-0x20ff]"),
    );
  });

  it("adjacent free space always coalesces, in any freeing order", () => {
    const orders = [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ];
    for (const order of orders) {
      const a = new AddressAllocator(0x100, 0x300);
      const rs = [a.allocate(0x100), a.allocate(0x100), a.allocate(0x100)];
      assert.equal(a.availableSize, 0n);
      for (const i of order) {
        a.free(rs[i]!);
        check(a);
      }
      assert.deepEqual(frees(a), [[0x100n, 0x3ffn]]);
    }
  });
});

describe("AddressAllocator queries", () => {
  it("find returns the allocation containing an address, or undefined", () => {
    const a = new AddressAllocator(0x1000, 0x1000);
    a.allocate(0x100, 1, AllocPolicy.ExactMatch(0x1100), { owner: "dev" });
    a.allocate(1, 1, AllocPolicy.ExactMatch(0x1fff));
    for (const addr of [0x1100n, 0x1150n, 0x11ffn]) {
      const f = a.find(addr);
      assert.ok(f);
      assert.deepEqual(pair(f.range), [0x1100n, 0x11ffn]);
      assert.equal(f.owner, "dev");
    }
    const last = a.find(0x1fff);
    assert.ok(last);
    assert.deepEqual(pair(last.range), [0x1fffn, 0x1fffn]);
    assert.equal(last.owner, undefined);
    for (const addr of [0x10ffn, 0x1200n, 0x1000n, 0x1ffen, 0xfffn, 0x2000n, 0n, U64_MAX]) assert.equal(a.find(addr), undefined);
    for (const bad of [-1, 1.5, TWO64, "0x1100", null]) assert.throws(() => loose(a).find(bad), code("InvalidArgument", /^address/));
  });

  it("isAllocated is true only for exactly a live allocation", () => {
    const a = new AddressAllocator(0, 0x1000);
    const r = a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x10));
    assert.equal(a.isAllocated(r), true);
    assert.equal(a.isAllocated({ start: 0x10, end: 0x1f }), true);
    assert.equal(a.isAllocated({ start: 0x10n, end: 0x1en }), false);
    assert.equal(a.isAllocated({ start: 0x11n, end: 0x1fn }), false);
    assert.equal(a.isAllocated({ start: 0xfn, end: 0x1fn }), false);
    assert.equal(a.isAllocated({ start: 0x20n, end: 0x2fn }), false);
    assert.equal(a.isAllocated({ start: 0x2000n, end: 0x2fffn }), false);
    a.free(r);
    assert.equal(a.isAllocated(r), false);
  });

  it("allocations(), freeRanges() and allocationsOf() are in address order; owners() lists holders", () => {
    const a = new AddressAllocator(0, 0x10000);
    const order = [0x8000n, 0x1000n, 0xc000n, 0x3000n, 0x0n, 0xf000n];
    order.forEach((at, i) => a.allocate(0x1000, 0x1000, AllocPolicy.ExactMatch(at), { owner: i % 2 === 0 ? "even" : "odd" }));
    const sorted = [...order].sort((x, y) => (x < y ? -1 : 1));
    assert.deepEqual(
      allocs(a).map((x) => x[0]),
      sorted,
    );
    assert.deepEqual(
      a.allocationsOf("even").map((r) => r.start),
      [0x0n, 0x8000n, 0xc000n],
    );
    assert.deepEqual(
      a.allocationsOf("odd").map((r) => r.start),
      [0x1000n, 0x3000n, 0xf000n],
    );
    assert.deepEqual(a.allocationsOf("nobody"), []);
    assert.deepEqual(frees(a), [
      [0x2000n, 0x2fffn],
      [0x4000n, 0x7fffn],
      [0x9000n, 0xbfffn],
      [0xd000n, 0xefffn],
    ]);
    assert.deepEqual(new Set(a.owners()), new Set(["even", "odd"]));
    assert.equal(a.owners().length, 2);
    check(a);
  });

  it("releaseOwner frees all of an owner and returns its ranges in address order", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x5000), { owner: "a" });
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x1000), { owner: "a" });
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x2000), { owner: "b" });
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x3000), { owner: "a" });
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x4000));
    const released = a.releaseOwner("a");
    check(a);
    assert.deepEqual(released.map(pair), [
      [0x1000n, 0x1fffn],
      [0x3000n, 0x3fffn],
      [0x5000n, 0x5fffn],
    ]);
    assert.deepEqual(a.owners(), ["b"]);
    assert.deepEqual(a.allocationsOf("a"), []);
    assert.deepEqual(allocs(a), [
      [0x2000n, 0x2fffn, "b"],
      [0x4000n, 0x4fffn, undefined],
    ]);
    assert.deepEqual(a.releaseOwner("a"), []);
    assert.deepEqual(a.releaseOwner("nobody"), []);
    assert.deepEqual(a.releaseOwner("b").map(pair), [[0x2000n, 0x2fffn]]);
    assert.deepEqual(a.owners(), []);
    check(a);
    // An owner name can be reused after it held nothing.
    a.allocate(1, 1, AllocPolicy.FirstMatch, { owner: "a" });
    assert.deepEqual(a.allocationsOf("a").map(pair), [[0n, 0n]]);
    check(a);
  });

  it("freeing the last allocation of an owner drops the owner", () => {
    const a = new AddressAllocator(0, 0x100);
    const r1 = a.allocate(1, 1, AllocPolicy.FirstMatch, { owner: "o" });
    const r2 = a.allocate(1, 1, AllocPolicy.FirstMatch, { owner: "o" });
    a.free(r1);
    assert.deepEqual(a.owners(), ["o"]);
    a.free(r2);
    assert.deepEqual(a.owners(), []);
    check(a);
  });

  it("clone() is an independent copy with the same state and behaviour", () => {
    const a = new AddressAllocator(0x1000, 0x10000);
    a.allocate(0x100, 0x100, AllocPolicy.FirstMatch, { owner: "p" });
    a.allocate(0x10, 1, AllocPolicy.LastMatch);
    const c = a.clone();
    assert.notEqual(c, a);
    assert.equal(state(c), state(a));
    check(c);
    const before = state(a);
    c.allocate(0x1000);
    c.releaseOwner("p");
    check(c);
    assert.equal(state(a), before);
    assert.deepEqual(pair(a.allocate(0x1000)), [0x1100n, 0x20ffn]);
    assert.deepEqual(allocs(c).length, 2);
  });
});

describe("AddressAllocator at the edges of the space", () => {
  it("allocates single addresses at 0, 1, 2^32, 2^53, 2^63 and 2^64-1 of the whole space", () => {
    const a = new AddressAllocator(0, TWO64);
    const edges = [0n, 1n, P32 - 1n, P32, P53 - 1n, P53, P53 + 1n, P63 - 1n, P63, U64_MAX - 1n, U64_MAX];
    for (const e of edges) {
      assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(e), { owner: `at-${e}` })), [e, e]);
      check(a);
    }
    for (const e of edges) {
      const f = a.find(e);
      assert.ok(f, `find(${e})`);
      assert.deepEqual(pair(f.range), [e, e]);
      assert.equal(f.owner, `at-${e}`);
    }
    assert.equal(a.allocatedSize, BigInt(edges.length));
    assert.equal(a.availableSize, TWO64 - BigInt(edges.length));
    for (const e of edges) a.free({ start: e, end: e });
    check(a);
    assert.deepEqual(frees(a), [[0n, U64_MAX]]);
  });


  it("the pool at the very top [2^64-16, 2^64-1]", () => {
    const base = U64_MAX - 15n;
    const a = new AddressAllocator(base, 16);
    assert.equal(a.end, U64_MAX);
    assert.equal(a.size, 16n);
    assert.deepEqual(pair(a.allocate(4, 4)), [base, base + 3n]);
    assert.deepEqual(pair(a.allocate(4, 4, AllocPolicy.LastMatch)), [U64_MAX - 3n, U64_MAX]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.LastMatch)), [U64_MAX - 4n, U64_MAX - 4n]);
    check(a);
    // Free now: [base+4, base+10], 7 bytes.
    assert.throws(() => a.allocate(8), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(4, 8), code("ResourceNotAvailable")); // base+8..base+11 hits base+11
    assert.throws(() => a.allocate(1, 16), code("ResourceNotAvailable"));
    assert.deepEqual(pair(a.allocate(4, 4, AllocPolicy.LastMatch)), [base + 4n, base + 7n]);
    assert.deepEqual(pair(a.allocate(3)), [base + 8n, base + 10n]);
    assert.equal(a.availableSize, 0n);
    assert.deepEqual(frees(a), []);
    check(a);
    for (const x of [...a.allocations()]) a.free(x.range);
    assert.deepEqual(frees(a), [[base, U64_MAX]]);
    assert.deepEqual(pair(a.allocate(16, 16, AllocPolicy.LastMatch)), [base, U64_MAX]);
    check(a);
  });

  it("alignment 2^63 in the whole space has exactly two places", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(a.allocate(1, P63)), [0n, 0n]);
    assert.deepEqual(pair(a.allocate(1, P63)), [P63, P63]);
    assert.throws(() => a.allocate(1, P63), code("ResourceNotAvailable"));
    assert.throws(() => a.allocate(1, P63, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    check(a);
    const b = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(b.allocate(P63, P63, AllocPolicy.LastMatch)), [P63, U64_MAX]);
    assert.deepEqual(pair(b.allocate(P63, P63, AllocPolicy.LastMatch)), [0n, P63 - 1n]);
    assert.equal(b.availableSize, 0n);
    check(b);
    // In a pool that does not contain a multiple of 2^63, nothing fits.
    const c = new AddressAllocator(1, P63 - 1n);
    assert.throws(() => c.allocate(1, P63), code("ResourceNotAvailable"));
    assert.throws(() => c.allocate(1, P63, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
  });

  it("size 2^64-1 in the whole space", () => {
    const a = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(a.allocate(U64_MAX)), [0n, U64_MAX - 1n]);
    assert.equal(a.availableSize, 1n);
    assert.equal(a.allocatedSize, U64_MAX);
    assert.deepEqual(frees(a), [[U64_MAX, U64_MAX]]);
    assert.throws(() => a.allocate(2), code("ResourceNotAvailable"));
    check(a);
    const b = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(b.allocate(U64_MAX, 1, AllocPolicy.LastMatch)), [1n, U64_MAX]);
    assert.deepEqual(frees(b), [[0n, 0n]]);
    check(b);
    const c = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(c.allocate(U64_MAX, 1, AllocPolicy.ExactMatch(1))), [1n, U64_MAX]);
    assert.throws(() => c.allocate(U64_MAX, 1, AllocPolicy.ExactMatch(0)), code("Overlap"));
    c.free({ start: 1n, end: U64_MAX });
    assert.deepEqual(pair(c.allocate(U64_MAX, 2, AllocPolicy.LastMatch)), [0n, U64_MAX - 1n]);
    check(c);
    // Aligned to 2: the only place is 0.
    const d = new AddressAllocator(0, TWO64);
    assert.throws(() => d.allocate(U64_MAX, 2, AllocPolicy.ExactMatch(2)), code("Overflow"));
    assert.deepEqual(pair(d.allocate(U64_MAX, 2, AllocPolicy.LastMatch)), [0n, U64_MAX - 1n]);
  });

  it("a full pool refuses every placement; an empty pool frees nothing", () => {
    const full = new AddressAllocator(0x10, 0x10);
    full.allocate(0x10, 1, AllocPolicy.FirstMatch, { owner: "all" });
    assert.equal(full.availableSize, 0n);
    assert.deepEqual(frees(full), []);
    assert.throws(() => full.allocate(1), code("ResourceNotAvailable"));
    assert.throws(() => full.allocate(1, 1, AllocPolicy.LastMatch), code("ResourceNotAvailable"));
    assert.throws(() => full.allocate(1, 1, AllocPolicy.ExactMatch(0x1f)), code("Overlap"));
    for (let x = 0x10n; x <= 0x1fn; x++) assert.equal(full.find(x)?.owner, "all");
    check(full);

    const empty = new AddressAllocator(0x10, 0x10);
    assert.deepEqual(allocs(empty), []);
    assert.equal(empty.find(0x10), undefined);
    assert.throws(() => empty.free({ start: 0x10n, end: 0x1fn }), code("NeverAllocated"));
    assert.throws(() => empty.free({ start: 0x15n, end: 0x15n }), code("NeverAllocated"));
    assert.deepEqual(empty.owners(), []);
    check(empty);
  });

  it("a one-address pool", () => {
    for (const base of [0n, 1n, P32, P53, P63, U64_MAX]) {
      const a = new AddressAllocator(base, 1);
      assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.LastMatch)), [base, base]);
      assert.throws(() => a.allocate(1), code("ResourceNotAvailable"));
      a.free({ start: base, end: base });
      assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(base))), [base, base]);
      check(a);
    }
  });
});

describe("rust-vmm vm-allocator 0.1.4 bugs that must not exist here", () => {
  it("(a) ExactMatch inside an allocated block is Overlap, not a split double allocation", () => {
    const a = new AddressAllocator(0, 0x10000);
    a.allocate(0x4000, 0x1000, AllocPolicy.ExactMatch(0x4000), { owner: "owner-a" });
    const before = state(a);
    for (const [at, size] of [
      [0x5000n, 0x1000n],
      [0x4000n, 0x1n],
      [0x7fffn, 0x1n],
      [0x4000n, 0x4000n],
      [0x3fffn, 0x2n],
    ] as const) {
      assert.throws(() => a.allocate(size, 1, AllocPolicy.ExactMatch(at)), code("Overlap", /owner-a/));
      assert.equal(state(a), before);
    }
    assert.equal(a.allocationCount, 1);
    assert.deepEqual(allocs(a), [[0x4000n, 0x7fffn, "owner-a"]]);
    check(a);
  });

  it("(b) freeing an already-free block fails", () => {
    const a = new AddressAllocator(0, 0x1000);
    const r = a.allocate(0x100);
    a.free(r);
    const before = state(a);
    assert.throws(() => a.free(r), code("NeverAllocated"));
    assert.throws(() => a.free({ start: 0n, end: 0xfffn }), code("NeverAllocated"));
    assert.equal(state(a), before);
    assert.equal(a.allocatedSize, 0n);
    check(a);
  });

  it("(c) ranges starting at 1 or ending at 2^64-2 free cleanly, and wrong frees there change nothing", () => {
    const a = new AddressAllocator(0, TWO64);
    const low = a.allocate(0x1000, 1, AllocPolicy.ExactMatch(1));
    const high = a.allocate(0x1000, 1, AllocPolicy.ExactMatch(U64_MAX - 0x1000n));
    assert.deepEqual(pair(low), [1n, 0x1000n]);
    assert.deepEqual(pair(high), [U64_MAX - 0x1000n, U64_MAX - 1n]);
    const one = a.allocate(1, 1, AllocPolicy.ExactMatch(0x2001)); // a 1-byte block too
    check(a);
    const before = state(a);
    for (const wrong of [
      { start: 1n, end: 0xfffn },
      { start: 1n, end: 0x1001n },
      { start: 0n, end: 0x1000n },
      { start: 2n, end: 0x1000n },
      { start: U64_MAX - 0x1000n, end: U64_MAX - 2n },
      { start: U64_MAX - 0x1000n, end: U64_MAX },
      { start: U64_MAX - 0xfffn, end: U64_MAX - 1n },
      { start: U64_MAX - 0x1001n, end: U64_MAX - 1n },
      { start: 0x2000n, end: 0x2001n },
      { start: 0x2001n, end: 0x2002n },
    ]) {
      assert.throws(() => a.free(wrong), code("InvalidRange"), `${wrong.start}-${wrong.end}`);
      assert.equal(state(a), before);
    }
    check(a);
    a.free(low);
    a.free(high);
    a.free(one);
    check(a);
    assert.deepEqual(frees(a), [[0n, U64_MAX]]);
    assert.equal(a.availableSize, TWO64);
    // All of it is reusable.
    assert.deepEqual(pair(a.allocate(0x1000, 1, AllocPolicy.ExactMatch(1))), [1n, 0x1000n]);
    assert.deepEqual(pair(a.allocate(0x1000, 1, AllocPolicy.ExactMatch(U64_MAX - 0x1000n))), [U64_MAX - 0x1000n, U64_MAX - 1n]);
    assert.deepEqual(pair(a.allocate(1)), [0n, 0n]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.LastMatch)), [U64_MAX, U64_MAX]);
    check(a);

    // The same at the edges of a smaller pool [1, 2^64-2].
    const b = new AddressAllocator(1n, U64_MAX - 1n);
    assert.equal(b.end, U64_MAX - 1n);
    const first = b.allocate(0x10);
    const last = b.allocate(0x10, 1, AllocPolicy.LastMatch);
    assert.deepEqual(pair(first), [1n, 0x10n]);
    assert.deepEqual(pair(last), [U64_MAX - 0x10n, U64_MAX - 1n]);
    b.free(first);
    b.free(last);
    check(b);
    assert.deepEqual(frees(b), [[1n, U64_MAX - 1n]]);
    assert.deepEqual(pair(b.allocate(U64_MAX - 1n)), [1n, U64_MAX - 1n]);
    check(b);
  });

  it("(d) adjacent free blocks of size 1 merge", () => {
    const a = new AddressAllocator(0, 0x100);
    const ones = Array.from({ length: 8 }, () => a.allocate(1));
    assert.deepEqual(
      ones.map((r) => r.start),
      [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n],
    );
    for (const i of [1, 3, 5, 7, 0, 2, 6, 4]) {
      a.free(ones[i]!);
      check(a);
    }
    assert.deepEqual(frees(a), [[0n, 0xffn]]);
    // A single free byte between two allocations, then its neighbours freed one by one.
    const b = new AddressAllocator(0, 3);
    const x = b.allocate(1);
    const y = b.allocate(1);
    const z = b.allocate(1);
    b.free(y);
    assert.deepEqual(frees(b), [[1n, 1n]]);
    b.free(x);
    assert.deepEqual(frees(b), [[0n, 1n]]);
    b.free(z);
    assert.deepEqual(frees(b), [[0n, 2n]]);
    check(b);
  });

  it("(e) results that end exactly at 2^64-1 succeed with every policy", () => {
    const first = new AddressAllocator(U64_MAX - 15n, 16);
    assert.deepEqual(pair(first.allocate(16)), [U64_MAX - 15n, U64_MAX]);
    const firstTail = new AddressAllocator(U64_MAX - 15n, 16);
    firstTail.allocate(8);
    assert.deepEqual(pair(firstTail.allocate(8)), [U64_MAX - 7n, U64_MAX]);
    const last = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(last.allocate(1, 1, AllocPolicy.LastMatch)), [U64_MAX, U64_MAX]);
    assert.deepEqual(pair(last.allocate(0x1000, 0x1000, AllocPolicy.LastMatch)), [U64_MAX - 0x1fffn, U64_MAX - 0x1000n]);
    const exact = new AddressAllocator(0, TWO64);
    assert.deepEqual(pair(exact.allocate(1, 1, AllocPolicy.ExactMatch(U64_MAX))), [U64_MAX, U64_MAX]);
    assert.deepEqual(pair(exact.allocate(16, 16, AllocPolicy.ExactMatch(U64_MAX - 31n))), [U64_MAX - 31n, U64_MAX - 16n]);
    const exactTop = new AddressAllocator(U64_MAX - 15n, 16);
    assert.deepEqual(pair(exactTop.allocate(16, 16, AllocPolicy.ExactMatch(U64_MAX - 15n))), [U64_MAX - 15n, U64_MAX]);
    for (const a of [first, firstTail, last, exact, exactTop]) check(a);
  });

  it("(f) ExactMatch of size 1 at the last address of a free block succeeds", () => {
    const a = new AddressAllocator(0, 0x100);
    a.allocate(0x10, 1, AllocPolicy.ExactMatch(0x10));
    // Free blocks: [0, 0xf] and [0x20, 0xff].
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(0xf))), [0xfn, 0xfn]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(0xff))), [0xffn, 0xffn]);
    assert.deepEqual(pair(a.allocate(2, 2, AllocPolicy.ExactMatch(0xfc))), [0xfcn, 0xfdn]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.ExactMatch(0xfe))), [0xfen, 0xfen]);
    assert.deepEqual(frees(a), [
      [0n, 0xen],
      [0x20n, 0xfbn],
    ]);
    check(a);
  });

  it("(g) the whole 2^64 space can be managed: allocate, free, LastMatch at the top, totals", () => {
    const a = new AddressAllocator(0n, TWO64);
    const top = a.allocate(P63, 1, AllocPolicy.LastMatch, { owner: "high" });
    assert.deepEqual(pair(top), [P63, U64_MAX]);
    const low = a.allocate(P63 - 1n, 1, AllocPolicy.FirstMatch, { owner: "low" });
    assert.deepEqual(pair(low), [0n, P63 - 2n]);
    assert.equal(a.allocatedSize, U64_MAX);
    assert.equal(a.availableSize, 1n);
    assert.deepEqual(frees(a), [[P63 - 1n, P63 - 1n]]);
    assert.deepEqual(pair(a.allocate(1, 1, AllocPolicy.LastMatch)), [P63 - 1n, P63 - 1n]);
    assert.equal(a.allocatedSize, TWO64);
    assert.equal(a.availableSize, 0n);
    check(a);
    a.free(top);
    assert.equal(a.availableSize, P63);
    assert.deepEqual(pair(a.allocate(0x1000, 0x1000, AllocPolicy.LastMatch)), [U64_MAX - 0xfffn, U64_MAX]);
    a.releaseOwner("low");
    a.free({ start: P63 - 1n, end: P63 - 1n });
    a.free({ start: U64_MAX - 0xfffn, end: U64_MAX });
    check(a);
    assert.deepEqual(frees(a), [[0n, U64_MAX]]);
    assert.equal(a.availableSize, TWO64);
    assert.equal(a.allocatedSize, 0n);
  });
});

describe("a failing call changes nothing", () => {
  it("failing allocate, free and find calls of every kind leave the state as it was", () => {
    for (const [base, size] of [
      [0x1000n, 0x10000n],
      [0n, TWO64],
      [U64_MAX - 0xffffn, 0x10000n],
    ] as const) {
      const a = new AddressAllocator(base, size);
      const end = base + size - 1n;
      const x = a.allocate(0x1000, 0x1000, AllocPolicy.FirstMatch, { owner: "x" });
      const y = a.allocate(0x100, 0x100, AllocPolicy.LastMatch, { owner: "y" });
      a.allocate(0x10, 1, AllocPolicy.FirstMatch);
      const gone = a.allocate(0x10, 1, AllocPolicy.FirstMatch, { owner: "gone" });
      a.free(gone);
      check(a);
      const before = state(a);
      const L = loose(a);
      const failing: [string, () => unknown][] = [
        ["InvalidArgument size", () => L.allocate(-1)],
        ["InvalidArgument alignment", () => L.allocate(1, 1.5)],
        ["InvalidArgument policy", () => L.allocate(1, 1, { kind: "Nope" })],
        ["InvalidArgument owner", () => L.allocate(1, 1, AllocPolicy.FirstMatch, { owner: "" })],
        ["InvalidArgument window", () => L.allocate(1, 1, AllocPolicy.FirstMatch, { window: { min: 0 } })],
        ["InvalidSize", () => a.allocate(0)],
        ["InvalidAlignment", () => a.allocate(1, 3)],
        ["UnalignedAddress", () => a.allocate(0x10, 0x10, AllocPolicy.ExactMatch(x.end + 2n))],
        ["Overflow", () => a.allocate(2, 1, AllocPolicy.ExactMatch(U64_MAX))],
        ["OutOfRange below", () => a.allocate(1, 1, AllocPolicy.ExactMatch(base === 0n ? U64_MAX : base - 1n), { window: { min: base, max: base } })],
        ["OutOfRange window", () => a.allocate(1, 1, AllocPolicy.ExactMatch(end), { window: { min: base, max: end - 1n } })],
        ["Overlap", () => a.allocate(1, 1, AllocPolicy.ExactMatch(x.start), { owner: "z" })],
        ["Overlap with owner y", () => a.allocate(size, 1, AllocPolicy.ExactMatch(base))],
        ["ResourceNotAvailable", () => a.allocate(size, 1, AllocPolicy.FirstMatch, { owner: "new-owner" })],
        ["ResourceNotAvailable last", () => a.allocate(size - 1n, 1, AllocPolicy.LastMatch)],
        ["ResourceNotAvailable window", () => a.allocate(0x1000, 1, AllocPolicy.FirstMatch, { window: { min: x.start, max: x.end } })],
        ["ResourceNotAvailable alignment", () => a.allocate(1, P63, AllocPolicy.FirstMatch, { window: { min: base + 1n, max: base + (1n << 62n) } })],
        ["InvalidRange window", () => a.allocate(1, 1, AllocPolicy.LastMatch, { window: { min: end, max: base } })],
        ["free InvalidRange sub", () => a.free({ start: x.start, end: x.end - 1n })],
        ["free InvalidRange span", () => a.free({ start: x.start, end: y.end })],
        ["free InvalidRange reversed", () => a.free({ start: x.end, end: x.start })],
        ["free NeverAllocated freed", () => a.free(gone)],
        ["free NeverAllocated", () => a.free({ start: end, end })],
        ["free OutOfRange", () => a.free({ start: base, end: base + size })],
        ["free InvalidArgument", () => L.free({ start: "0", end: 1 })],
        ["find InvalidArgument", () => L.find(-1)],
      ];
      for (const [what, call] of failing) {
        assert.throws(call, (e: unknown) => e instanceof AllocatorError, what);
        assert.equal(state(a), before, what);
        a.checkValid();
      }
      // And every later operation still works as if nothing happened.
      assert.deepEqual(a.releaseOwner("x").map(pair), [pair(x)]);
      check(a);
    }
  });

  it("each failing call above fails with the code its rule names", () => {
    const a = new AddressAllocator(0x1000, 0x10000);
    const x = a.allocate(0x1000, 0x1000, AllocPolicy.FirstMatch, { owner: "x" });
    assert.throws(() => a.allocate(0x10, 0x10, AllocPolicy.ExactMatch(x.end + 2n)), code("UnalignedAddress"));
    assert.throws(() => a.allocate(1, 1, AllocPolicy.ExactMatch(x.start), { owner: "z" }), code("Overlap", /conflicts with x/));
    assert.throws(() => a.allocate(0x10000), code("ResourceNotAvailable"));
    assert.throws(() => a.free({ start: 0x1000n, end: 0x11000n }), code("OutOfRange"));
    check(a);
  });
});

describe("AddressAllocator snapshots", () => {
  const populated = () => {
    const a = new AddressAllocator(0x1000, 0x10000); // [0x1000, 0x10fff]
    a.allocate(0x1000, 1, AllocPolicy.ExactMatch(0x1000), { owner: "blk" });
    a.allocate(0x100, 1, AllocPolicy.ExactMatch(0x3000));
    a.allocate(0x100, 1, AllocPolicy.ExactMatch(0x3100), { owner: "net" });
    return a;
  };

  it("toJSON has the documented shape", () => {
    const a = populated();
    assert.deepEqual(a.toJSON(), {
      format: "vm-allocator/address-allocator",
      version: 1,
      base: "0x1000",
      end: "0x10fff",
      blocks: [
        { start: "0x1000", end: "0x1fff", state: "allocated", owner: "blk" },
        { start: "0x2000", end: "0x2fff", state: "free" },
        { start: "0x3000", end: "0x30ff", state: "allocated" },
        { start: "0x3100", end: "0x31ff", state: "allocated", owner: "net" },
        { start: "0x3200", end: "0x10fff", state: "free" },
      ],
    });
    const whole = new AddressAllocator(0, TWO64);
    assert.deepEqual(whole.toJSON(), {
      format: "vm-allocator/address-allocator",
      version: 1,
      base: "0x0",
      end: "0xffffffffffffffff",
      blocks: [{ start: "0x0", end: "0xffffffffffffffff", state: "free" }],
    });
  });

  it("round-trips through JSON text, including the whole space and the top of the space", () => {
    const whole = new AddressAllocator(0, TWO64);
    whole.allocate(1, 1, AllocPolicy.LastMatch, { owner: "top" });
    whole.allocate(1, 1, AllocPolicy.FirstMatch);
    const top = new AddressAllocator(U64_MAX - 15n, 16);
    top.allocate(16, 1, AllocPolicy.FirstMatch, { owner: "all" });
    for (const a of [populated(), whole, top, new AddressAllocator(5, 5)]) {
      const text = JSON.stringify(a);
      const b = AddressAllocator.fromJSON(JSON.parse(text));
      check(b);
      assert.equal(JSON.stringify(b), text);
      assert.equal(b.base, a.base);
      assert.equal(b.end, a.end);
      assert.equal(b.size, a.size);
      assert.equal(b.allocatedSize, a.allocatedSize);
      assert.deepEqual(allocs(b), allocs(a));
      assert.deepEqual(new Set(b.owners()), new Set(a.owners()));
    }
  });

  type MutableSnapshot = { -readonly [K in keyof AddressAllocatorSnapshot]: unknown } & { blocks: Record<string, unknown>[] };
  const snap = (): MutableSnapshot => JSON.parse(JSON.stringify(populated().toJSON())) as MutableSnapshot;
  const rejects = (input: unknown, message: RegExp, what: string) => {
    assert.throws(() => fromJSON(input), code("InvalidSnapshot", message), what);
  };

  it("rejects what is not a snapshot object", () => {
    for (const bad of [null, undefined, 5, "snapshot", true, [], [snap()]]) rejects(bad, /not an object/, String(bad));
  });

  it("rejects a wrong format, an unknown version, missing and extra fields", () => {
    rejects({ ...snap(), format: "vm-allocator/id-allocator" }, /format/, "format");
    const noFormat: Record<string, unknown> = snap();
    delete noFormat["format"];
    rejects(noFormat, /format/, "missing format");
    for (const v of [2, 0, "1", 1.5, null]) rejects({ ...snap(), version: v }, /version/, `version ${String(v)}`);
    for (const key of ["version", "base", "end", "blocks"]) {
      const s: Record<string, unknown> = snap();
      delete s[key];
      rejects(s, new RegExp(key), `missing ${key}`);
    }
    rejects({ ...snap(), extra: 1 }, /unknown field extra/, "extra top-level field");
    const withBlockExtra = snap();
    withBlockExtra.blocks[1]!["size"] = "0x1000";
    rejects(withBlockExtra, /blocks\[1\].*size|size.*blocks\[1\]/, "extra block field");
    for (const key of ["start", "end", "state"]) {
      const s = snap();
      delete s.blocks[2]![key];
      rejects(s, new RegExp(`blocks\\[2\\]`), `missing block ${key}`);
    }
  });

  it("rejects bad hex: upper case, no 0x, more than 16 digits, numbers, empty", () => {
    const bads: unknown[] = ["0x1F", "0X10", "1000", "0x", "0x10000000000000000", "0x00000000000000001000", 4096, "0x-1", " 0x1000", "0x1000 ", "0x1g"];
    for (const bad of bads) {
      rejects({ ...snap(), base: bad }, /base/, `base ${String(bad)}`);
      rejects({ ...snap(), end: bad }, /end/, `end ${String(bad)}`);
      const s1 = snap();
      s1.blocks[1]!["start"] = bad;
      rejects(s1, /blocks\[1\]\.start/, `start ${String(bad)}`);
      const s2 = snap();
      s2.blocks[1]!["end"] = bad;
      rejects(s2, /blocks\[1\]\.end/, `end ${String(bad)}`);
    }
  });

  it("rejects inconsistent blocks, each with a message naming the problem", () => {
    const s = snap;
    const reversed = s();
    reversed.blocks[1] = { start: "0x2fff", end: "0x2000", state: "free" };
    rejects(reversed, /blocks\[1\].*reversed/, "reversed block");

    const gap = s();
    gap.blocks[1] = { start: "0x2001", end: "0x2fff", state: "free" };
    rejects(gap, /blocks\[1\].*uncovered/, "gap between blocks");

    const overlapping = s();
    overlapping.blocks[1] = { start: "0x1fff", end: "0x2fff", state: "free" };
    rejects(overlapping, /blocks\[1\].*overlap/, "overlapping blocks");

    const past = s();
    past.blocks[4] = { start: "0x3200", end: "0x11000", state: "free" };
    rejects(past, /blocks\[4\].*past the pool end/, "block past the pool end");

    const short = s();
    short.blocks[4] = { start: "0x3200", end: "0x10ffe", state: "free" };
    rejects(short, /uncovered/, "blocks not reaching the end");

    const truncated = s();
    truncated.blocks.pop();
    rejects(truncated, /uncovered/, "last block missing");

    const baseMismatch = s();
    baseMismatch.base = "0x800";
    rejects(baseMismatch, /blocks\[0\].*uncovered/, "first block not at base");

    const baseAbove = s();
    baseAbove.base = "0x11000";
    rejects(baseAbove, /base.*above end/, "base above end");

    const adjacentFree = s();
    adjacentFree.blocks.splice(1, 1, { start: "0x2000", end: "0x27ff", state: "free" }, { start: "0x2800", end: "0x2fff", state: "free" });
    rejects(adjacentFree, /blocks\[2\].*merged/, "adjacent free blocks");

    const ownedFree = s();
    ownedFree.blocks[1]!["owner"] = "ghost";
    rejects(ownedFree, /blocks\[1\].*owner/, "owner on a free block");

    for (const owner of ["", 5, null, ["x"]]) {
      const badOwner = s();
      badOwner.blocks[0]!["owner"] = owner;
      rejects(badOwner, /blocks\[0\]\.owner/, `owner ${JSON.stringify(owner)}`);
    }

    for (const state of ["used", "FREE", undefined, 1]) {
      const badState = s();
      badState.blocks[1]!["state"] = state;
      rejects(badState, /blocks\[1\]\.state/, `state ${String(state)}`);
    }

    const empty = s();
    empty.blocks = [];
    rejects(empty, /empty/, "empty blocks");

    const notArray = s();
    (notArray as Record<string, unknown>)["blocks"] = { 0: notArray.blocks[0] };
    rejects(notArray, /blocks/, "blocks not an array");

    const notObject = s();
    (notObject.blocks as unknown[])[2] = "0x3000-0x30ff";
    rejects(notObject, /blocks\[2\]/, "block not an object");

    const trailing = s();
    trailing.blocks.push({ start: "0x11000", end: "0x11000", state: "free" });
    rejects(trailing, /blocks\[4\]|blocks\[5\]/, "block after the pool end");
  });

  it(
    "rejects hex with leading zeros: an accepted snapshot must be exactly what toJSON writes",
    () => {
    // toJSON writes canonical hex; "0x0010" would restore to a state whose toJSON says "0x10".
    const base = { format: "vm-allocator/address-allocator", version: 1, base: "0x10", end: "0x1f", blocks: [{ start: "0x10", end: "0x1f", state: "free" }] };
    assert.deepEqual(fromJSON(base).toJSON(), base);
    rejects({ ...base, base: "0x010" }, /base/, "base with a leading zero");
    rejects({ ...base, end: "0x001f" }, /end/, "end with leading zeros");
    rejects({ ...base, blocks: [{ start: "0x10", end: "0x01f", state: "free" }] }, /blocks\[0\]\.end/, "block end with a leading zero");
    rejects({ ...base, base: "0x0000000000000010" }, /base/, "16 digits with leading zeros");
    assert.deepEqual(fromJSON({ ...base, base: "0x0", end: "0x0", blocks: [{ start: "0x0", end: "0x0", state: "free" }] }).toJSON().base, "0x0");
    },
  );

  it("a rejected snapshot never yields a partial allocator and fromJSON never throws anything else", () => {
    const s = snap();
    s.blocks[3]!["owner"] = "";
    let result: AddressAllocator | undefined;
    try {
      result = fromJSON(s);
    } catch (e) {
      assert.ok(e instanceof AllocatorError && e.code === "InvalidSnapshot");
    }
    assert.equal(result, undefined);
  });
});

describe("ResourceAllocator interface", () => {
  /** Generic code that only knows the interface. */
  function use<R, S extends ResourceSize>(a: ResourceAllocator<R, S>, req: S): R {
    const first = a.allocate(req);
    a.free(first);
    return a.allocate(req);
  }

  it("generic code allocates and frees through AddressAllocator", () => {
    const a = new AddressAllocator(0x1000, 0x10000);
    const req: AddressRequest = { size: 0x100, alignment: 0x100, policy: AllocPolicy.LastMatch, owner: "generic" };
    const r = use(a, req);
    assert.ok(r instanceof RangeInclusive);
    assert.deepEqual(pair(r), [0x10f00n, 0x10fffn]);
    assert.deepEqual(a.allocationsOf("generic").map(pair), [[0x10f00n, 0x10fffn]]);
    const generic: ResourceAllocator<RangeInclusive, AddressRequest> = a;
    generic.free(r);
    assert.equal(a.allocationCount, 0);
    assert.throws(() => generic.free(r), code("NeverAllocated"));
    assert.throws(() => use<RangeInclusive, AddressRequest>(a, { size: 0x20000 }), code("ResourceNotAvailable"));
    check(a);
  });
});

describe("AddressAllocator owners under churn", () => {
  it("keeps owners() and allocationsOf exact while owners come and go (tombstones are swept)", () => {
    const a = new AddressAllocator(0, 1n << 32n);
    const live = new Map<string, RangeInclusive>();
    for (let i = 0; i < 40; i++) live.set(`keep${i}`, a.allocate(0x1000, 0x1000, AllocPolicy.FirstMatch, { owner: `keep${i}` }));
    // Many short-lived owners, some names coming back: more than enough to force several sweeps.
    for (let round = 0; round < 600; round++) {
      const name = `hot${round % 250}`;
      const r = a.allocate(0x2000, 0x1000, AllocPolicy.FirstMatch, { owner: name });
      assert.deepEqual(a.allocationsOf(name), [r]);
      a.free(r);
      assert.deepEqual(a.allocationsOf(name), []);
      if (round % 97 === 0) a.checkValid();
    }
    assert.deepEqual(a.owners().sort(), [...live.keys()].sort());
    for (const [name, r] of live) assert.deepEqual(a.allocationsOf(name), [r]);
    assert.deepEqual(a.releaseOwner("keep3"), [live.get("keep3")]);
    assert.equal(a.owners().includes("keep3"), false);
    a.checkValid();
    const copy = AddressAllocator.fromJSON(a.toJSON());
    assert.deepEqual(copy.owners().sort(), a.owners().sort());
  });
});

describe("AddressAllocator: messages print the caller's window", () => {
  it("a window outside the pool is printed as given, not as its (empty) part inside the pool", () => {
    const a = new AddressAllocator(0xffff_0000, 0x1_0000);
    const before = state(a);
    for (const policy of [AllocPolicy.FirstMatch, AllocPolicy.LastMatch]) {
      assert.throws(() => a.allocate(0x10, 1, policy, { window: { min: 0, max: 0xfff } }), {
        code: "ResourceNotAvailable",
        message: "no free space for 0x10 bytes aligned to 0x1 in pool [mem 0xffff0000-0xffffffff] inside window [mem 0x0-0xfff], which does not overlap the pool",
      });
    }
    assert.throws(() => a.allocate({ size: 0x10, window: { min: 0x1_0000_0000n, max: U64_MAX } }), {
      message: /inside window \[mem 0x100000000-0xffffffffffffffff\], which does not overlap the pool$/,
    });
    assert.throws(() => a.allocate(0x10, 1, AllocPolicy.ExactMatch(0xffff_0000), { window: { min: 0, max: 0xfff } }), {
      code: "OutOfRange",
      message: "[mem 0xffff0000-0xffff000f] is outside window [mem 0x0-0xfff], which does not overlap the pool",
    });
    assert.equal(state(a), before);
  });

  it("a window that reaches past the pool is printed whole", () => {
    const a = new AddressAllocator(0xffff_0000, 0x1_0000);
    assert.throws(() => a.allocate(0x100, 1, AllocPolicy.FirstMatch, { window: { min: 0xffff_fff0, max: 0x1_0000_0fff } }), {
      code: "ResourceNotAvailable",
      message: "no free space for 0x100 bytes aligned to 0x1 in pool [mem 0xffff0000-0xffffffff] inside window [mem 0xfffffff0-0x100000fff]",
    });
    assert.throws(() => a.allocate(0x10, 1, AllocPolicy.ExactMatch(0xffff_0000), { window: { min: 0, max: 0xffff_0008 } }), {
      code: "OutOfRange",
      message: "[mem 0xffff0000-0xffff000f] is outside window [mem 0x0-0xffff0008]",
    });
    check(a);
  });
});

describe("AddressAllocator: owners and iterators held by callers", () => {
  it("releaseOwner and allocationsOf refuse an owner that is not a non-empty string", () => {
    const a = new AddressAllocator(0, 0x1000);
    a.allocate(0x10, 1, AllocPolicy.FirstMatch, { owner: "x" });
    const before = state(a);
    for (const bad of ["", null, undefined, 5, {}]) {
      assert.throws(() => loose(a).releaseOwner(bad), code("InvalidArgument", /^owner must be a non-empty string/));
      assert.throws(() => loose(a).allocationsOf(bad), code("InvalidArgument", /^owner must be a non-empty string/));
    }
    assert.equal(state(a), before);
    assert.deepEqual(a.releaseOwner("nobody"), []);
  });

  it("an iterator over allocations or free ranges stops with InvalidState once the allocator changes", () => {
    const a = new AddressAllocator(0, 0x1000);
    for (let i = 0; i < 4; i++) a.allocate(0x10, 0x100);
    const it1 = a.allocations();
    const first = it1.next().value!;
    a.free(first.range);
    assert.throws(() => it1.next(), code("InvalidState", /changed while being iterated/));
    const it2 = a.freeRanges();
    it2.next();
    a.allocate(0x10);
    assert.throws(() => it2.next(), code("InvalidState"));
    // A copy taken first may be used to change the allocator.
    for (const { range } of [...a.allocations()]) a.free(range);
    assert.equal(a.allocationCount, 0);
    check(a);
  });

  it("what the allocator returns is the caller's: ranges are frozen, lists are fresh", () => {
    const a = new AddressAllocator(0, 0x1000);
    const r = a.allocate(0x10, 1, AllocPolicy.FirstMatch, { owner: "x" });
    assert.throws(() => {
      (r as { start: bigint }).start = 0x800n;
    }, TypeError);
    const list = a.allocationsOf("x");
    list.pop();
    assert.equal(a.allocationsOf("x").length, 1);
    const found = a.find(0)! as { range: RangeInclusive };
    assert.throws(() => {
      (found.range as { end: bigint }).end = 0xfffn;
    }, TypeError);
    found.range = new RangeInclusive(0, 0xfff);
    assert.equal(a.find(0)!.range.end, 0xfn);
    a.free(r);
    check(a);
  });
});
