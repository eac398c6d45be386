import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AllocatorError } from "../../src/core/errors.js";
import {
  DEFAULT_LAYOUT_NAME,
  FIRECRACKER_X86_64,
  getLayout,
  isAddressPool,
  LAYOUTS,
  layoutNames,
  layoutToJSON,
  parseLayoutNumber,
  PC_X86_64,
  POOL_NAMES,
  poolRangeKind,
  resolveLayout,
  type PoolName,
  type ResolvedLayout,
  type SystemLayout,
} from "../../src/system/layouts.js";

const code = (c: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError ${c}, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message !== undefined) assert.match(e.message, message);
  return true;
};


/** A small valid layout to mutate in error tests. */
const BASE = {
  pio: { base: 0x1000, size: 0x1000 },
  mmio32: { base: 0xd000_0000, size: 0x10_0000 },
  mmio64: { base: "0x1_0000_0000", size: 0x10_0000 },
  legacyIrq: { first: 5, last: 23 },
  msi: { first: 24, last: 4095 },
} as const;

function withField(path: string[], value: unknown, from: Record<string, unknown> = structuredClone(BASE) as Record<string, unknown>): unknown {
  let o: Record<string, unknown> = from;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  const last = path[path.length - 1]!;
  if (value === undefined) delete o[last];
  else o[last] = value;
  return from;
}

interface Span {
  pool: PoolName;
  start: bigint;
  end: bigint;
  owner: string;
}

/** The preset's reservations and pools, computed without resolveLayout. */
function spansOf(layout: SystemLayout): { pools: Partial<Record<PoolName, [bigint, bigint]>>; reserved: Span[] } {
  const pools: Partial<Record<PoolName, [bigint, bigint]>> = {};
  for (const p of ["pio", "mmio32", "mmio64"] as const) {
    const w = layout[p];
    if (w !== undefined) pools[p] = [BigInt(w.base), BigInt(w.base) + BigInt(w.size) - 1n];
  }
  for (const p of ["legacyIrq", "msi", "instanceId"] as const) {
    const w = layout[p];
    if (w !== undefined) pools[p] = [BigInt(w.first), BigInt(w.last)];
  }
  const reserved = (layout.reserved ?? []).map((r) => {
    const start = BigInt(r.start);
    const end = r.end !== undefined ? BigInt(r.end) : r.size !== undefined ? start + BigInt(r.size) - 1n : start;
    return { pool: r.pool, start, end, owner: r.owner };
  });
  return { pools, reserved };
}

describe("presets", () => {
  it("are listed by name, frozen, and resolve", () => {
    assert.deepEqual([...layoutNames].sort(), Object.keys(LAYOUTS).sort());
    assert.deepEqual(layoutNames, ["firecracker-x86_64", "pc-x86_64", "cloud-hypervisor-x86_64", "crosvm-x86_64", "firecracker-aarch64", "riscv64-virt"]);
    assert.equal(DEFAULT_LAYOUT_NAME, "firecracker-x86_64");
    for (const name of layoutNames) {
      const layout = getLayout(name);
      assert.equal(layout, LAYOUTS[name]);
      assert.equal(layout.name, name);
      assert.ok(Object.isFrozen(layout) && Object.isFrozen(layout.mmio32) && Object.isFrozen(layout.reserved));
      for (const r of layout.reserved ?? []) assert.ok(Object.isFrozen(r));
      resolveLayout(layout);
    }
    assert.equal(LAYOUTS["firecracker-x86_64"], FIRECRACKER_X86_64);
    assert.equal(LAYOUTS["pc-x86_64"], PC_X86_64);
    assert.throws(() => getLayout("q35"), code("NotFound", /q35.*firecracker-x86_64, pc-x86_64, cloud-hypervisor-x86_64/));
    assert.throws(() => getLayout("toString"), code("NotFound"));
  });

  for (const name of layoutNames) {
    it(`${name}: reservations lie inside their pools and never overlap; pools sit in their address spaces`, () => {
      const { pools, reserved } = spansOf(LAYOUTS[name]);
      if (pools.pio !== undefined) assert.ok(pools.pio[1] <= 0xffffn);
      assert.ok(pools.mmio32![1] <= 0xffff_ffffn);
      if (pools.mmio64 !== undefined) assert.ok(pools.mmio64[0] >= 1n << 32n);
      assert.ok(pools.legacyIrq![1] < pools.msi![0]);
      for (const r of reserved) {
        const p = pools[r.pool]!;
        assert.ok(r.start <= r.end && r.start >= p[0] && r.end <= p[1], `${r.owner} is outside ${r.pool}`);
      }
      for (let i = 0; i < reserved.length; i++) {
        for (let j = i + 1; j < reserved.length; j++) {
          const a = reserved[i]!;
          const b = reserved[j]!;
          assert.ok(a.pool !== b.pool || a.end < b.start || b.end < a.start, `${a.owner} overlaps ${b.owner}`);
        }
      }
    });
  }
});

describe("parseLayoutNumber", () => {
  it("reads bigints, safe integers and hex strings (any case, underscores between digits)", () => {
    assert.equal(parseLayoutNumber(5n, "x"), 5n);
    assert.equal(parseLayoutNumber(0xc000_0000, "x"), 0xc000_0000n);
    assert.equal(parseLayoutNumber("0xC000_0000", "x"), 0xc000_0000n);
    assert.equal(parseLayoutNumber("0xffffffffffffffff", "x"), 0xffff_ffff_ffff_ffffn);
    assert.equal(parseLayoutNumber("0x0", "x"), 0n);
  });

  it("rejects everything else with InvalidArgument naming the field", () => {
    for (const bad of ["123", "0x", "0x_1", "0x1__2", "0x1_", "0x10000000000000000", " 0x1", "0xg", -1, 1.5, 2 ** 53, -1n, 1n << 64n, null, undefined, {}, [], true]) {
      assert.throws(() => parseLayoutNumber(bad, "layout.mmio32.base"), code("InvalidArgument", /^layout\.mmio32\.base /), String(bad));
    }
  });
});

describe("resolveLayout", () => {
  it("fills in defaults and reads every number form alike", () => {
    const r = resolveLayout(BASE);
    assert.equal(r.name, undefined);
    assert.deepEqual(r.pools, {
      pio: { start: 0x1000n, end: 0x1fffn },
      mmio32: { start: 0xd000_0000n, end: 0xd00f_ffffn },
      mmio64: { start: 1n << 32n, end: (1n << 32n) + 0xf_ffffn },
      legacyIrq: { start: 5n, end: 23n },
      msi: { start: 24n, end: 4095n },
      instanceId: { start: 0n, end: 0xffff_ffffn },
    });
    assert.deepEqual(r.reserved, []);
    const same = resolveLayout({
      pio: { base: 0x1000n, size: "0x1000" },
      mmio32: { base: "0xd0000000", size: 0x10_0000n },
      mmio64: { base: 1n << 32n, size: 0x10_0000 },
      legacyIrq: { first: 5n, last: "0x17" },
      msi: { first: 24, last: 4095n },
    });
    assert.deepEqual(same, r);
  });

  it("leaves out optional pools", () => {
    const r = resolveLayout({ name: "arm", mmio32: BASE.mmio32, legacyIrq: { first: 32, last: 127 }, msi: { first: 128, last: 1023 }, instanceId: { first: 1, last: 9 } });
    assert.deepEqual(Object.keys(r.pools).sort(), ["instanceId", "legacyIrq", "mmio32", "msi"]);
    assert.equal(r.name, "arm");
    assert.deepEqual(r.pools.instanceId, { start: 1n, end: 9n });
  });

  it("resolves reservations given by end, by size, or as a single id", () => {
    const r = resolveLayout({
      ...BASE,
      reserved: [
        { pool: "mmio32", start: 0xd000_0000, size: 0x1000, owner: "a" },
        { pool: "pio", start: "0x1000", end: "0x1007", owner: "b" },
        { pool: "legacyIrq", start: 8, owner: "c" },
        { pool: "msi", start: 30, size: 3, owner: "d" },
        { pool: "mmio32", start: 0xd000_1000, size: 1, owner: "a" },
      ],
    });
    assert.deepEqual(
      r.reserved.map((x) => [x.pool, x.start, x.end, x.owner]),
      [
        ["mmio32", 0xd000_0000n, 0xd000_0fffn, "a"],
        ["pio", 0x1000n, 0x1007n, "b"],
        ["legacyIrq", 8n, 8n, "c"],
        ["msi", 30n, 32n, "d"],
        ["mmio32", 0xd000_1000n, 0xd000_1000n, "a"],
      ],
    );
  });

  const cases: [string, unknown, string, RegExp][] = [
    ["not an object", 7, "InvalidArgument", /^layout must be an object/],
    ["an array", [], "InvalidArgument", /^layout must be an object/],
    ["unknown field", { ...BASE, mmio: {} }, "InvalidArgument", /^layout has unknown field "mmio"/],
    ["empty name", { ...BASE, name: "" }, "InvalidArgument", /^layout\.name /],
    ["no mmio32", withField(["mmio32"], undefined), "InvalidArgument", /^layout\.mmio32 is missing/],
    ["no legacyIrq", withField(["legacyIrq"], undefined), "InvalidArgument", /^layout\.legacyIrq is missing/],
    ["no msi", withField(["msi"], undefined), "InvalidArgument", /^layout\.msi is missing/],
    ["window not an object", withField(["pio"], 5), "InvalidArgument", /^layout\.pio must be an object/],
    ["window unknown field", withField(["pio", "end"], 5), "InvalidArgument", /^layout\.pio has unknown field "end"/],
    ["bad base", withField(["mmio32", "base"], -1), "InvalidArgument", /^layout\.mmio32\.base must be/],
    ["missing size", withField(["mmio32", "size"], undefined), "InvalidArgument", /^layout\.mmio32\.size must be/],
    ["size 0", withField(["mmio32", "size"], 0), "InvalidSize", /^layout\.mmio32\.size must be at least 1/],
    ["overflow", withField(["mmio64"], { base: "0xffffffffffffff00", size: 0x200 }), "Overflow", /^layout\.mmio64:/],
    ["pio past 0xffff", withField(["pio", "size"], 0xf001), "OutOfRange", /^layout\.pio \[io 0x1000-0x10000\] must lie inside the 16-bit port space/],
    ["mmio32 past 4 GiB", withField(["mmio32"], { base: 0xffff_0000, size: 0x1_0000 + 1 }), "OutOfRange", /^layout\.mmio32 \[mem 0xffff0000-0x100000000\] must lie below 4 GiB/],
    ["mmio64 below 4 GiB", withField(["mmio64", "base"], 0xf000_0000), "OutOfRange", /^layout\.mmio64 .* must start at or above 4 GiB/],
    ["pastMmio64 below 4 GiB", { ...BASE, pastMmio64: { base: 0xffff_f000, size: 0x2000 } }, "OutOfRange", /^layout\.pastMmio64 \[mem 0xfffff000-0x100000fff\] must start at or above 4 GiB/],
    [
      "systemMemory overlapping mmio32",
      { ...BASE, systemMemory: { base: 0xd00f_f000, size: 0x2000 } },
      "InvalidArgument",
      /^layout\.mmio32 \[mem 0xd0000000-0xd00fffff\] overlaps layout\.systemMemory \[mem 0xd00ff000-0xd0100fff\]: memory pools must be disjoint$/,
    ],
    [
      "pastMmio64 overlapping mmio64",
      { ...BASE, pastMmio64: { base: "0x1_000f_ffff", size: 1 } },
      "InvalidArgument",
      /^layout\.pastMmio64 \[mem 0x1000fffff-0x1000fffff\] overlaps layout\.mmio64 /,
    ],
    ["ids reversed", withField(["msi"], { first: 50, last: 40 }), "InvalidRange", /^layout\.msi: first 50 is above last 40/],
    ["id too large", withField(["msi", "last"], 2 ** 32), "InvalidArgument", /^layout\.msi\.last must be an id/],
    ["id not a number", withField(["legacyIrq", "first"], "5"), "InvalidArgument", /^layout\.legacyIrq\.first must be/],
    ["irq and msi overlap", withField(["msi", "first"], 23), "InvalidArgument", /^layout\.legacyIrq \[irq 5-23\] overlaps layout\.msi \[irq 23-4095\]/],
    ["reserved not an array", { ...BASE, reserved: {} }, "InvalidArgument", /^layout\.reserved must be an array/],
    ["reservation not an object", { ...BASE, reserved: [1] }, "InvalidArgument", /^layout\.reserved\[0\] must be an object/],
    ["reservation unknown pool", { ...BASE, reserved: [{ pool: "io", start: 0, owner: "x" }] }, "InvalidArgument", /^layout\.reserved\[0\]\.pool must be one of/],
    ["reservation in an absent pool", { mmio32: BASE.mmio32, legacyIrq: BASE.legacyIrq, msi: BASE.msi, reserved: [{ pool: "pio", start: 0, size: 1, owner: "x" }] }, "InvalidArgument", /^layout\.reserved\[0\]\.pool is "pio", but the layout has no pio pool/],
    ["reservation without owner", { ...BASE, reserved: [{ pool: "msi", start: 30 }] }, "InvalidArgument", /^layout\.reserved\[0\]\.owner must be a non-empty string/],
    ["reservation end and size", { ...BASE, reserved: [{ pool: "msi", start: 30, end: 31, size: 2, owner: "x" }] }, "InvalidArgument", /gives both end and size/],
    ["address reservation of one value", { ...BASE, reserved: [{ pool: "pio", start: 0x1000, owner: "x" }] }, "InvalidArgument", /^layout\.reserved\[0\] needs end or size/],
    ["reservation reversed", { ...BASE, reserved: [{ pool: "pio", start: 0x1010, end: 0x1000, owner: "x" }] }, "InvalidRange", /^layout\.reserved\[0\]: end 0x1000 is below start 0x1010/],
    ["reservation size 0", { ...BASE, reserved: [{ pool: "pio", start: 0x1010, size: 0, owner: "x" }] }, "InvalidSize", /^layout\.reserved\[0\]\.size/],
    ["reservation outside", { ...BASE, reserved: [{ pool: "pio", start: 0xff8, size: 16, owner: "x" }] }, "OutOfRange", /^layout\.reserved\[0\] \[io 0xff8-0x1007\] is outside the pio pool \[io 0x1000-0x1fff\]/],
    ["id reservation outside", { ...BASE, reserved: [{ pool: "legacyIrq", start: 4, owner: "x" }] }, "OutOfRange", /^layout\.reserved\[0\] \[irq 4\] is outside the legacyIrq pool \[irq 5-23\]/],
    ["id reservation too long", { ...BASE, instanceId: { first: 0, last: 100_000 }, reserved: [{ pool: "instanceId", start: 1, size: 65537, owner: "x" }] }, "InvalidArgument", /^layout\.reserved\[0\] \[id 1-65537\] covers 65537 ids; an id reservation covers at most 65536$/],
    ["reservation unknown field", { ...BASE, reserved: [{ pool: "msi", start: 30, owner: "x", note: "" }] }, "InvalidArgument", /^layout\.reserved\[0\] has unknown field "note"/],
  ];
  for (const [what, layout, c, message] of cases) {
    it(`rejects ${what}`, () => assert.throws(() => resolveLayout(layout), code(c, message)));
  }

  it("rejects overlapping reservations naming both owners and entries", () => {
    const layout = {
      ...BASE,
      reserved: [
        { pool: "mmio32", start: 0xd000_0000, size: 0x1000, owner: "uart" },
        { pool: "msi", start: 30, owner: "x" },
        { pool: "mmio32", start: 0xd000_0ff0, size: 0x20, owner: "rtc" },
      ],
    };
    assert.throws(
      () => resolveLayout(layout),
      (e: unknown) => {
        code("Overlap", /^layout\.reserved\[2\]: \[mem 0xd0000ff0-0xd000100f\] conflicts with uart \[mem 0xd0000000-0xd0000fff\] \(layout\.reserved\[0\]\)$/)(e);
        assert.equal((e as AllocatorError).owner, "uart");
        return true;
      },
    );
    assert.throws(
      () => resolveLayout({ ...BASE, reserved: [{ pool: "msi", start: 30, size: 4, owner: "a" }, { pool: "msi", start: 26, size: 5, owner: "b" }] }),
      code("Overlap", /^layout\.reserved\[1\]: \[irq 26-30\] conflicts with a \[irq 30-33\] \(layout\.reserved\[0\]\)$/),
    );
    // Touching is not overlapping, and equal ranges in different pools do not conflict.
    resolveLayout({ ...BASE, reserved: [{ pool: "msi", start: 30, size: 4, owner: "a" }, { pool: "msi", start: 34, owner: "b" }, { pool: "legacyIrq", start: 5, owner: "a" }] });
  });

  it("honours a custom name in messages", () => {
    assert.throws(() => resolveLayout({ ...BASE, mmio32: 1 }, "file.json"), code("InvalidArgument", /^file\.json\.mmio32 must be an object/));
  });
});

describe("layoutToJSON", () => {
  it("writes the canonical JSON form of the presets", () => {
    const j = layoutToJSON(resolveLayout(FIRECRACKER_X86_64));
    assert.deepEqual(j, {
      name: "firecracker-x86_64",
      systemMemory: { base: "0x9fc00", size: "0x40400" },
      mmio32: { base: "0xc0001000", size: "0x2ebff000" },
      mmio64: { base: "0x4000000000", size: "0x4000000000" },
      pastMmio64: { base: "0x8000000000", size: "0x8000000000" },
      legacyIrq: { first: 5, last: 23 },
      msi: { first: 24, last: 4095 },
      instanceId: { first: 0, last: 4294967295 },
      reserved: [],
    });
    assert.deepEqual(Object.keys(j), ["name", "systemMemory", "mmio32", "mmio64", "pastMmio64", "legacyIrq", "msi", "instanceId", "reserved"]);
    const pc = layoutToJSON(resolveLayout(PC_X86_64));
    assert.deepEqual(pc.reserved.find((r) => r.owner === "rtc"), { pool: "legacyIrq", start: 8, end: 8, owner: "rtc" });
  });

  it("leaves out absent optional pools and the name", () => {
    const j = layoutToJSON(resolveLayout({ mmio32: BASE.mmio32, legacyIrq: BASE.legacyIrq, msi: BASE.msi }));
    assert.deepEqual(Object.keys(j), ["mmio32", "legacyIrq", "msi", "instanceId", "reserved"]);
  });

  it("round-trips through JSON text for random valid layouts", () => {
    const window = (lo: bigint, hi: bigint) =>
      fc.tuple(fc.bigInt({ min: lo, max: hi }), fc.bigInt({ min: lo, max: hi })).map(([a, b]) => (a <= b ? [a, b] : [b, a]) as [bigint, bigint]);
    const layoutArb = fc
      .record({
        pio: fc.option(window(0n, 0xffffn), { nil: undefined }),
        mmio32: window(0n, 0xffff_ffffn),
        mmio64: fc.option(window(1n << 32n, (1n << 64n) - 1n), { nil: undefined }),
        irq: window(0n, 1000n),
        msiLen: fc.integer({ min: 0, max: 5000 }),
        name: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: undefined }),
        form: fc.constantFrom("bigint", "hex", "number"),
        reservations: fc.array(fc.tuple(fc.constantFrom<PoolName>(...POOL_NAMES), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom("a", "b")), { maxLength: 6 }),
      })
      .map((x) => {
        const num = (v: bigint) => (x.form === "bigint" ? v : x.form === "hex" ? `0x${v.toString(16)}` : v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        const w = ([a, b]: [bigint, bigint]) => ({ base: num(a), size: num(b - a + 1n) });
        const layout: Record<string, unknown> = {
          mmio32: w(x.mmio32),
          legacyIrq: { first: Number(x.irq[0]), last: Number(x.irq[1]) },
          msi: { first: Number(x.irq[1]) + 1, last: Number(x.irq[1]) + 1 + x.msiLen },
        };
        if (x.pio !== undefined) layout["pio"] = w(x.pio);
        if (x.mmio64 !== undefined) layout["mmio64"] = w(x.mmio64);
        if (x.name !== undefined) layout["name"] = x.name;
        // Non-overlapping reservations: each takes a sub-range of a distinct slice of its pool.
        const bounds = resolveLayout(layout).pools;
        const used = new Map<PoolName, number>();
        const reserved: unknown[] = [];
        for (const [pool, f, g, owner] of x.reservations) {
          const b = bounds[pool];
          if (b === undefined || pool === "instanceId") continue;
          const slot = used.get(pool) ?? 0;
          used.set(pool, slot + 1);
          const span = (b.end - b.start + 1n) / 8n;
          if (span === 0n || slot >= 8) continue;
          const lo = b.start + BigInt(slot) * span;
          // Doubles round spans above 2^53 up: clamp, or a reservation could end before it starts.
          const atMost = (v: bigint, max: bigint) => (v < max ? v : max);
          const s = lo + atMost(BigInt(Math.floor(f * Number(span - 1n))), span - 1n);
          const room = lo + span - 1n - s;
          const e = s + atMost(BigInt(Math.floor(g * Number(room))), room);
          reserved.push({ pool, start: num(s), end: num(e), owner });
        }
        layout["reserved"] = reserved;
        return layout;
      });
    fc.assert(
      fc.property(layoutArb, (layout) => {
        const r = resolveLayout(layout);
        const j = layoutToJSON(r);
        const text = JSON.stringify(j);
        const again: ResolvedLayout = resolveLayout(JSON.parse(text));
        assert.deepEqual(again, r);
        assert.equal(JSON.stringify(layoutToJSON(again)), text);
      }),
      { numRuns: 300 },
    );
  });
});

describe("pool helpers", () => {
  it("classify pools and name their ranges", () => {
    assert.deepEqual(POOL_NAMES.filter(isAddressPool), ["pio", "systemMemory", "mmio32", "mmio64", "pastMmio64"]);
    assert.deepEqual(POOL_NAMES.map(poolRangeKind), ["io", "mem", "mem", "mem", "mem", "irq", "irq", "id"]);
    assert.ok(Object.isFrozen(POOL_NAMES));
  });
});
