import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { AllocatorError, RangeInclusive, U64_MAX } from "../../src/index.js";

const code = (c: string) => (e: unknown) => e instanceof AllocatorError && e.code === c;

describe("RangeInclusive", () => {
  it("keeps exact bounds and length, including the whole u64 space", () => {
    const whole = new RangeInclusive(0n, U64_MAX);
    assert.equal(whole.len(), 1n << 64n);
    assert.equal(new RangeInclusive(5, 5).len(), 1n);
    assert.equal(new RangeInclusive(U64_MAX, U64_MAX).len(), 1n);
  });
  it("rejects start > end with InvalidRange and bad bounds with InvalidArgument", () => {
    assert.throws(() => new RangeInclusive(2, 1), code("InvalidRange"));
    assert.throws(() => new RangeInclusive(-1, 1), code("InvalidArgument"));
    assert.throws(() => new RangeInclusive(0, U64_MAX + 1n), code("InvalidArgument"));
  });
  it("overlaps is inclusive", () => {
    assert.equal(new RangeInclusive(1, 4).overlaps(new RangeInclusive(4, 6)), true);
    assert.equal(new RangeInclusive(4, 6).overlaps(new RangeInclusive(1, 4)), true);
    assert.equal(new RangeInclusive(1, 4).overlaps(new RangeInclusive(5, 6)), false);
    assert.equal(new RangeInclusive(5, 6).overlaps(new RangeInclusive(1, 4)), false);
    assert.equal(new RangeInclusive(0, U64_MAX).overlaps(new RangeInclusive(U64_MAX, U64_MAX)), true);
  });
  it("contains is non-strict, equals compares both bounds", () => {
    const r = new RangeInclusive(0x1000, 0x1fff);
    assert.equal(r.contains(r), true);
    assert.equal(r.contains(new RangeInclusive(0x1000, 0x1000)), true);
    assert.equal(r.contains(new RangeInclusive(0xfff, 0x1000)), false);
    assert.equal(r.contains(new RangeInclusive(0x1fff, 0x2000)), false);
    assert.equal(r.equals(new RangeInclusive(0x1000n, 0x1fffn)), true);
    assert.equal(r.equals(new RangeInclusive(0x1000n, 0x1ffen)), false);
    assert.equal(r.containsValue(0x1fffn), true);
    assert.equal(r.containsValue(0x2000n), false);
  });
  it("prints in the Linux %pR style", () => {
    assert.equal(String(new RangeInclusive(0x1000, 0x1fff)), "[mem 0x1000-0x1fff]");
    assert.equal(new RangeInclusive(0xcf8, 0xcff).toString("io"), "[io 0xcf8-0xcff]");
    assert.equal(new RangeInclusive(5, 5).toString("irq"), "[irq 5]");
    assert.equal(new RangeInclusive(0n, U64_MAX).toString(), "[mem 0x0-0xffffffffffffffff]");
    assert.deepEqual(JSON.parse(JSON.stringify(new RangeInclusive(0, U64_MAX))), { start: "0x0", end: "0xffffffffffffffff" });
  });
  it("withSize checks size and overflow at the top of the space", () => {
    assert.ok(RangeInclusive.withSize(U64_MAX, 1).equals(new RangeInclusive(U64_MAX, U64_MAX)));
    assert.ok(RangeInclusive.withSize(0, U64_MAX).equals(new RangeInclusive(0n, U64_MAX - 1n)));
    assert.throws(() => RangeInclusive.withSize(U64_MAX, 2), code("Overflow"));
    assert.equal(RangeInclusive.withSize(1n << 63n, 1n << 63n).end, U64_MAX);
    assert.throws(() => RangeInclusive.withSize(1n << 63n, (1n << 63n) + 1n), code("Overflow"));
    assert.throws(() => RangeInclusive.withSize(0, 0), code("InvalidSize"));
  });
});

describe("RangeInclusive is immutable", () => {
  it("refuses writes, new fields and prototype changes (strict mode throws), and keeps its bounds", () => {
    const r = new RangeInclusive(0x1000n, 0x1fffn);
    const w = r as unknown as Record<string, unknown>;
    assert.throws(() => {
      w["start"] = 7n;
    }, TypeError);
    assert.throws(() => {
      w["end"] = 0n;
    }, TypeError);
    assert.throws(() => {
      w["extra"] = 1;
    }, TypeError);
    assert.throws(() => Object.defineProperty(r, "start", { value: 1n }), TypeError);
    assert.throws(() => Object.setPrototypeOf(r, {}), TypeError);
    assert.equal(Reflect.deleteProperty(r, "start"), false);
    assert.equal(r.start, 0x1000n);
    assert.equal(r.end, 0x1fffn);
    assert.ok(Object.isFrozen(r));
  });

  it("freezes the class and its prototype, so no method of every range can be replaced", () => {
    assert.ok(Object.isFrozen(RangeInclusive.prototype));
    assert.ok(Object.isFrozen(RangeInclusive));
    assert.throws(() => {
      (RangeInclusive.prototype as unknown as Record<string, unknown>)["equals"] = () => true;
    }, TypeError);
    assert.throws(() => {
      (RangeInclusive as unknown as Record<string, unknown>)["withSize"] = () => undefined;
    }, TypeError);
    assert.equal(new RangeInclusive(1, 2).equals(new RangeInclusive(1, 3)), false);
  });

  it("cannot be extended: a subclass could override the bounds or the comparisons", () => {
    class Evil extends RangeInclusive {
      override equals(): boolean {
        return true;
      }
    }
    assert.throws(() => new Evil(1, 2), code("InvalidArgument"));
  });

  it("compares by value with deep equality, and prints its bounds", () => {
    assert.deepStrictEqual(new RangeInclusive(1, 2), new RangeInclusive(1n, 2n));
    assert.notDeepStrictEqual(new RangeInclusive(1, 2), new RangeInclusive(1, 3));
    assert.deepEqual({ ...new RangeInclusive(5, 6) }, { start: 5n, end: 6n });
    assert.deepEqual(Object.keys(new RangeInclusive(5, 6)), ["start", "end"]);
  });

  it("toString refuses an unknown kind instead of printing it", () => {
    const r = new RangeInclusive(1, 2);
    assert.throws(() => r.toString("mmio" as "mem"), code("InvalidArgument"));
    assert.equal(`${r}`, "[mem 0x1-0x2]");
    assert.equal(r.toString("bus"), "[bus 0x1-0x2]");
    assert.equal(new RangeInclusive(3, 3).toString("id"), "[id 3]");
  });

  it("overlaps, contains and equals take only ranges, at the edges of the space too", () => {
    const whole = new RangeInclusive(0n, U64_MAX);
    const top = new RangeInclusive(U64_MAX, U64_MAX);
    assert.equal(whole.contains(top), true);
    assert.equal(top.contains(whole), false);
    assert.equal(top.overlaps(new RangeInclusive(0, 0)), false);
    for (const bad of [null, undefined, { start: 0n, end: 1n }, 5n]) {
      assert.throws(() => whole.overlaps(bad as RangeInclusive), code("InvalidArgument"));
      assert.throws(() => whole.contains(bad as RangeInclusive), code("InvalidArgument"));
      assert.throws(() => whole.equals(bad as RangeInclusive), code("InvalidArgument"));
    }
  });
});
