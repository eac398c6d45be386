/**
 * The SVG output: well-formed XML, every owner labelled, readable sizes on any scale, and
 * owner names that are markup come out escaped.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { xml } from "../../cli/render/svg.js";
import { elements, parseXml, runCli, textContent } from "./helpers.js";

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "vm-allocator-svg-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Report {
  addressSpaces: { segments: { owner?: string; children?: { owner: string }[] }[] }[];
  unpooled: { owner: string }[];
  idSpaces: { assignments: { owner: string }[] }[];
  devices: { owner: string; name: string }[];
}

/** Every owner the JSON report of the same plan names. */
function ownersOf(report: Report): Set<string> {
  const owners = new Set<string>();
  for (const s of report.addressSpaces) {
    for (const g of s.segments) {
      if (g.owner !== undefined) owners.add(g.owner);
      for (const c of g.children ?? []) owners.add(c.owner);
    }
  }
  for (const u of report.unpooled) owners.add(u.owner);
  for (const s of report.idSpaces) for (const a of s.assignments) owners.add(a.owner);
  for (const d of report.devices) owners.add(d.owner);
  return owners;
}

async function svgAndReport(args: readonly string[]): Promise<{ svg: string; report: Report }> {
  const [svg, json] = await Promise.all([runCli(["plan", ...args, "-f", "svg"]), runCli(["plan", ...args, "-f", "json"])]);
  assert.equal(svg.status, 0, svg.stderr);
  assert.equal(json.status, 0, json.stderr);
  return { svg: svg.stdout, report: JSON.parse(json.stdout) as Report };
}

describe("svg", { concurrency: true }, () => {
  for (const args of [[], ["examples/layouts/pc-q35.json"], ["examples/layouts/large-mmio64.json"]]) {
    const name = args[0] ?? "the built-in default";
    it(`${name}: well-formed, and every owner is written in a <text> label`, async () => {
      const { svg, report } = await svgAndReport(args);
      const root = parseXml(svg);
      assert.equal(root.name, "svg");
      assert.equal(root.attributes.get("xmlns"), "http://www.w3.org/2000/svg");
      assert.match(root.attributes.get("viewBox") ?? "", /^0 0 \d+ \d+$/);
      const labels = elements(root, "text").map(textContent);
      const owners = ownersOf(report);
      assert.ok(owners.size > 5);
      for (const owner of owners) {
        assert.ok(
          labels.some((l) => l === owner || l.startsWith(`${owner} `) || l.includes(` ${owner} `) || l.endsWith(` ${owner}`)),
          `no label names ${owner}`,
        );
      }
      // Every drawn region explains itself on hover.
      for (const g of elements(root, "g")) {
        if (g.children.some((c) => typeof c !== "string" && c.name === "rect") && g.children.some((c) => typeof c !== "string" && c.name === "title")) {
          assert.notEqual(textContent(elements(g, "title")[0]!), "");
        }
      }
    });
  }

  it("keeps 4 KiB devices and a 1 TiB pool readable: every row between 18 and 110 px", async () => {
    const { svg } = await svgAndReport(["examples/layouts/large-mmio64.json"]);
    const root = parseXml(svg);
    const rows = elements(root, "rect").filter((r) => /^(allocated|fixed|reserved|free)$/.test(r.attributes.get("class") ?? "") && Number(r.attributes.get("width")) > 100);
    assert.ok(rows.length > 10);
    for (const r of rows) {
      const h = Number(r.attributes.get("height"));
      assert.ok(h >= 17 && h <= 110, `row height ${h}`);
    }
    const height = Number(root.attributes.get("height"));
    assert.ok(height < 1500, `the whole picture is ${height} px tall`);
  });

  it("escapes owner names that are markup", async () => {
    const file = join(dir, "markup.json");
    const weird = `x<y&"z'>`;
    writeFileSync(
      file,
      JSON.stringify({
        reserved: [{ pool: "mmio32", start: "0xd0000000", size: "0x1000", owner: "fw <&> \"'" }],
        devices: [{ name: weird, requests: [{ kind: "mmio", size: "0x1000" }, { kind: "irq" }] }],
      }),
    );
    const { svg } = await svgAndReport([file]);
    const labels = elements(parseXml(svg), "text").map(textContent);
    assert.ok(labels.some((l) => l.startsWith(`${weird}@0 `)));
    assert.ok(labels.some((l) => l.startsWith(`fw <&> "' `)));
    const text = await runCli(["plan", file]);
    assert.match(text.stdout, /x<y&"z'>@0/);
  });

  it("xml() leaves no character XML forbids, and no markup", () => {
    const nasty = 'a\u0000b\u0007c\u001bd\ud800e\udc00f\ufffeg<h>&i"j\'k\u2028';
    const root = parseXml(`<t a="${xml(nasty)}">${xml(nasty)}</t>`);
    const decoded = textContent(root);
    assert.equal(root.attributes.get("a"), decoded);
    assert.ok(!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(decoded));
    assert.ok(decoded.includes('<h>&i"j\'k'));
  });
});

describe("the test's XML checker", () => {
  const bad = [
    "",
    "<a>",
    "<a></b>",
    "<a><b></a></b>",
    '<a x="1" x="2"/>',
    "<a x=1/>",
    '<a x="<"/>',
    "<a>&nbsp;</a>",
    "<a>&#1;</a>",
    "<a>&</a>",
    "<a/><b/>",
    "text<a/>",
    "<a>]]></a>",
    "<a><!-- x -- y --></a>",
    '<a/><?xml version="1.0"?>',
    "<!DOCTYPE a><a/>",
    "<a>\u0001</a>",
  ];
  for (const doc of bad) {
    it(`rejects ${JSON.stringify(doc)}`, () => assert.throws(() => parseXml(doc), /not well-formed XML/));
  }
  it("accepts a document with every construct", () => {
    const root = parseXml(`<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><a x='1' y="&lt;&#x41;&#66;"><b/>t&amp;<![CDATA[<raw>]]><?pi x?></a>\n`);
    assert.equal(root.attributes.get("y"), "<AB");
    assert.equal(textContent(root), "t&<raw>");
  });
});
