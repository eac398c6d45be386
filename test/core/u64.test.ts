import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AllocatorError, hex, isPowerOfTwo, parseHexU64, toU32, toU64, U64_MAX } from "../../src/index.js";
import { isPowerOfTwo as p2 } from "../../src/core/u64.js";

function assertInvalid(fn: () => unknown, name: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AllocatorError);
    assert.equal(e.code, "InvalidArgument");
    assert.match(e.message, new RegExp(`^${name} must be`));
    return true;
  });
}

describe("toU64", () => {
  it("accepts bigint and safe-integer numbers over the whole u64 range", () => {
    for (const v of [0n, 1n, 1n << 32n, 1n << 53n, 1n << 63n, U64_MAX]) assert.equal(toU64(v, "x"), v);
    assert.equal(toU64(0, "x"), 0n);
    assert.equal(toU64(Number.MAX_SAFE_INTEGER, "x"), 2n ** 53n - 1n);
  });
  it("rejects everything else, naming the parameter", () => {
    for (const bad of [-1, -1n, 1.5, Number.NaN, Infinity, -Infinity, 2 ** 53, U64_MAX + 1n, "1", null, undefined, {}, [1]]) {
      assertInvalid(() => toU64(bad, "size"), "size");
    }
  });
});

describe("toU32", () => {
  it("accepts 0..2^32-1 as number or bigint", () => {
    assert.equal(toU32(0, "id"), 0);
    assert.equal(toU32(0xffff_ffff, "id"), 0xffff_ffff);
    assert.equal(toU32(7n, "id"), 7);
  });
  it("rejects out-of-range and non-integers", () => {
    for (const bad of [-1, 2 ** 32, 2n ** 32n, 0.5, Number.NaN, "3", null, undefined]) assertInvalid(() => toU32(bad, "id"), "id");
  });
});

describe("hex and parseHexU64", () => {
  it("round-trip every edge value", () => {
    for (const v of [0n, 1n, 1n << 32n, 1n << 53n, 1n << 63n, U64_MAX]) assert.equal(parseHexU64(hex(v)), v);
  });
  it("reject malformed text", () => {
    for (const bad of ["", "0x", "12", "0X10", "0x10000000000000000", "0x-1", " 0x1", "0x1 ", "0xG", "0x00", "0x0010", "0xA", 5, null]) {
      assert.equal(parseHexU64(bad), undefined, String(bad));
    }
  });
  it("isPowerOfTwo", () => {
    assert.equal(isPowerOfTwo, p2);
    assert.deepEqual([0n, 1n, 2n, 3n, 1n << 63n, U64_MAX].map(isPowerOfTwo), [false, true, true, false, true, false]);
  });
});
