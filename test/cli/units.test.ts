/**
 * The CLI's building blocks, in process: the strict JSON reader, number parsing, layout
 * validation that collects every problem, size formatting, tables and the iomem renderer.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Problems, sortProblems } from "../../cli/diagnostics.js";
import { JsonSyntaxError, parseJson } from "../../cli/json-source.js";
import { readLayout } from "../../cli/layout-file.js";
import type { PlanView } from "../../cli/model.js";
import { readInteger, readU32 } from "../../cli/numbers.js";
import { planLayout } from "../../cli/plan.js";
import { renderIomem } from "../../cli/render/iomem.js";
import { table } from "../../cli/render/table.js";
import { humanBytes } from "../../cli/render/units.js";

describe("parseJson", () => {
  it("reads what JSON.parse reads", () => {
    const text = '{"a": [1, -2.5e3, "x\\u0041\\n", true, false, null, {}], "b": {"c": []}}';
    assert.deepEqual(JSON.parse(JSON.stringify(parseJson(text))), JSON.parse(text));
  });
  it("keeps __proto__ as a plain key, so validation can reject it", () => {
    const value = parseJson('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(value), ["__proto__"]);
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  });
  const errors: [string, number, number, RegExp][] = [
    ['{"a": 1, "a": 2}', 1, 10, /"a" appears twice/],
    ["{\n  'a': 1\n}", 2, 3, /double-quoted property name/],
    ["[1, 2,]", 1, 7, /expected a JSON value/],
    ["01", 1, 1, /malformed number/],
    ["[1.]", 1, 2, /malformed number/],
    ['"a\tb"', 1, 3, /control character/],
    ['"\\x"', 1, 2, /invalid escape/],
    ["[", 1, 2, /end of input/],
    ["", 1, 1, /empty/],
    ["nul", 1, 1, /expected a JSON value/],
  ];
  for (const [text, line, column, message] of errors) {
    it(`rejects ${JSON.stringify(text)} at ${line}:${column}`, () => {
      assert.throws(
        () => parseJson(text),
        (e: unknown) => e instanceof JsonSyntaxError && e.line === line && e.column === column && message.test(e.message),
      );
    });
  }
});

describe("readInteger", () => {
  const ok: [unknown, bigint][] = [
    [0, 0n],
    [4096, 4096n],
    ["4096", 4096n],
    ["0x1000", 0x1000n],
    ["0XfEc0_0000", 0xfec00000n],
    ["0xffffffffffffffff", 0xffff_ffff_ffff_ffffn],
    [Number.MAX_SAFE_INTEGER, BigInt(Number.MAX_SAFE_INTEGER)],
  ];
  for (const [value, expected] of ok) {
    it(`reads ${JSON.stringify(value)}`, () => {
      const p = new Problems();
      assert.equal(readInteger(value, "x", p), expected);
      assert.deepEqual(p.list, []);
    });
  }
  const bad: [unknown, RegExp][] = [
    [-1, /must not be negative/],
    [1.5, /must be an integer/],
    [2 ** 53, /above 2\^53-1/],
    ["0x", /is not an integer/],
    ["1_", /is not an integer/],
    ["0x_1", /is not an integer/],
    [" 1", /is not an integer/],
    ["1e3", /is not an integer/],
    ["0x10000000000000000", /at most 0xffffffffffffffff/],
    [true, /must be a non-negative integer/],
    [null, /must be a non-negative integer/],
  ];
  for (const [value, message] of bad) {
    it(`rejects ${JSON.stringify(value)}`, () => {
      const p = new Problems();
      assert.equal(readInteger(value, "a.b", p), undefined);
      assert.equal(p.list.length, 1);
      assert.equal(p.list[0]!.path, "a.b");
      assert.match(p.list[0]!.message, message);
    });
  }
  it("readU32 stops at 2^32-1", () => {
    const p = new Problems();
    assert.equal(readU32("0xffffffff", "x", p), 0xffff_ffff);
    assert.equal(readU32(2 ** 32, "y", p), undefined);
    assert.match(p.list[0]!.message, /at most 0xffffffff/);
  });
});

describe("readLayout", () => {
  it("collects every problem of a file, each at its path", () => {
    const p = new Problems();
    const value = parseJson(
      JSON.stringify({
        preset: "nope",
        extra: 1,
        layout: { mmio64: { base: "0x1", size: -1 }, bogus: 1 },
        devices: [{ name: "a", requests: [{ kind: "mmio" }, { kind: "irq", fixed: -3 }, "x"] }, { requests: [] }, 7],
      }),
    );
    assert.equal(readLayout(value, p), undefined);
    assert.deepEqual(
      sortProblems(p.list).map((x) => x.path),
      ["extra", "preset", "layout.bogus", "layout.mmio64.size", "devices[0].requests[0].size", "devices[0].requests[1].fixed", "devices[0].requests[2]", "devices[1].name", "devices[2]"],
    );
  });
  it("with partial, keeps the valid devices so they can be planned", () => {
    const p = new Problems();
    const value = parseJson(JSON.stringify({ devices: [{ name: "ok", requests: [{ kind: "irq" }] }, { name: "bad", requests: [{ kind: "irq", fixed: "x" }] }] }));
    const layout = readLayout(value, p, { partial: true });
    assert.deepEqual(layout?.devices.map((d) => d.name), ["ok"]);
    assert.equal(p.list.length, 1);
  });
  it("removing a pool drops the preset's reservations in it", () => {
    const p = new Problems();
    const layout = readLayout(parseJson('{"layout": {"pio": null}, "devices": []}'), p);
    assert.deepEqual(p.list, []);
    assert.equal(layout?.system.pools.pio, undefined);
    assert.ok(layout?.reserved.every((r) => r.pool !== "pio"));
  });
});

describe("planLayout", () => {
  const plan = (json: unknown, keepGoing = false) => {
    const p = new Problems();
    const layout = readLayout(parseJson(JSON.stringify(json)), p);
    assert.deepEqual(p.list, []);
    return planLayout(layout!, { source: "test", keepGoing });
  };
  it("reserves a fixed range before earlier devices allocate, whatever the file order", () => {
    const outcome = plan({
      devices: [
        { name: "dyn", requests: [{ kind: "mmio", size: "0x1000" }] },
        { name: "fixed", requests: [{ kind: "mmio", size: "0x1000", fixed: "0xc0001000" }] },
      ],
    });
    assert.deepEqual(outcome.problems, []);
    const devices = outcome.snapshot!.devices;
    assert.deepEqual(devices.find((d) => d.name === "fixed")!.mmio, [{ start: "0xc0001000", end: "0xc0001fff", fixed: true }]);
    assert.deepEqual(devices.find((d) => d.name === "dyn")!.mmio, [{ start: "0xc0002000", end: "0xc0002fff", fixed: false }]);
    // Held by the allocator for the device itself (not a reservation), so unplugging frees it.
    const system = outcome.snapshot!.system;
    assert.deepEqual(system.reserved.filter((r) => r.owner === "fixed@1"), []);
    const block = system.pools.mmio32.blocks.find((b) => b.start === "0xc0001000");
    assert.deepEqual(block, { start: "0xc0001000", end: "0xc0001fff", state: "allocated", owner: "fixed@1" });
  });
  it("lets fixed legacy IRQs be shared when every holder says so, but never hands a fixed one out", () => {
    const outcome = plan({
      layout: { legacyIrq: { first: 5, last: 6 } },
      devices: [
        { name: "a", requests: [{ kind: "irq", fixed: 5, shared: true }] },
        { name: "b", requests: [{ kind: "irq", fixed: 5, shared: true }] },
        { name: "c", requests: [{ kind: "irq" }] },
        { name: "d", requests: [{ kind: "irq" }] },
      ],
    }, true);
    assert.equal(outcome.problems.length, 1);
    assert.equal(outcome.problems[0]!.path, "devices[3].requests[0]");
    const unshared = plan({ devices: [{ name: "a", requests: [{ kind: "irq", fixed: 9 }] }, { name: "b", requests: [{ kind: "irq", fixed: 9, shared: true }] }] }, true);
    assert.deepEqual(unshared.problems.map((p) => `${p.path}: ${p.message}`), ["devices[1].requests[0]: [irq 9] is held by a@0, which does not share it"]);
  });
  it("in keepGoing mode reports every failing device and plans the others", () => {
    const outcome = plan({
      devices: [
        { name: "a", requests: [{ kind: "mmio", size: "0x100000000" }] },
        { name: "b", requests: [{ kind: "mmio", size: "0x1000" }] },
        { name: "c", requests: [{ kind: "mmio", size: "0x1000", mmio64: true, alignment: "0x8000000000000000" }] },
      ],
    }, true);
    assert.deepEqual(outcome.problems.map((p) => p.path), ["devices[0].requests[0]", "devices[2].requests[0]"]);
  });
});

describe("rendering helpers", () => {
  it("humanBytes is exact when it can be, and says so when it cannot", () => {
    assert.equal(humanBytes(0n), "0 B");
    assert.equal(humanBytes(1023n), "1023 B");
    assert.equal(humanBytes(4096n), "4 KiB");
    assert.equal(humanBytes(1n << 64n), "16 EiB");
    assert.equal(humanBytes(0x2effffffn), "~752.00 MiB");
    assert.equal(humanBytes(1536n), "~1.50 KiB");
  });
  it("table aligns on plain text, whatever the decoration", () => {
    const red = (t: string) => `<${t}>`;
    assert.deepEqual(table([["A", { text: "N", right: true }, "C"], [{ text: "xyz", style: red }, { text: "10", right: true }, "z"]]), ["  A     N  C", "  <xyz>  10  z"]);
  });
  it("iomem pads memory to 8 digits and more when needed, ports to 4, nesting two spaces a level", () => {
    const view: PlanView = {
      source: "t",
      description: undefined,
      preset: undefined,
      parameters: undefined,
      presetChanges: [],
      pci: undefined,
      addressSpaces: [
        { name: "pio", title: "", kind: "io", start: 0n, end: 0xffffn, segments: [{ start: 0n, end: 0xfffn, owner: "isa", origin: "reserved", children: [{ start: 0x3f8n, end: 0x3ffn, owner: "serial", origin: "fixed" }] }] },
        { name: "mmio64", title: "", kind: "mem", start: 0x10_0000_0000n, end: 0x1f_ffff_ffffn, segments: [{ start: 0x10_0000_0000n, end: 0x10_0000_0fffn, owner: "dev", origin: "allocated", children: [] }] },
      ],
      unpooled: [{ kind: "mem", start: 0x1000n, end: 0x1fffn, owner: "low", origin: "fixed" }],
      idSpaces: [],
      devices: [],
    };
    assert.equal(
      renderIomem(view),
      ["00001000-00001fff : low", "1000000000-1fffffffff : mmio64", "  1000000000-1000000fff : dev", "", "0000-ffff : pio", "  0000-0fff : isa", "    03f8-03ff : serial", ""].join("\n"),
    );
  });
});
