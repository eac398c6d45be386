/**
 * The playground (dist/playground/, written by `npm run build`) in headless Chromium: Debian's
 * /usr/bin/chromium driven by playwright-core, as test/browser.test.ts does, with the page served
 * by web/server.ts. It opens the page, checks the default plan's map shows every device, adds a
 * device in the editor and sees it appear, types a bad value and sees the error with its field
 * path while the map stays as it was, downloads the plan and loads it back, hovers a region,
 * offers every preset and example to start from, opens the page from file://, and takes a
 * screenshot that must not be blank (it is written to dist/playground-screenshot.png for people
 * to look at).
 *
 * Without Chromium the test is skipped with a message, except in CI (`CI` set).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { inflateSync } from "node:zlib";
import type { Browser, Page } from "playwright-core";
import { DEFAULT_LAYOUT } from "../../cli/default-layout.js";
import { layoutNames } from "../../src/system/layouts.js";
import { planText, render } from "../../web/pipeline.js";
import { serve } from "../../web/server.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SITE = join(ROOT, "dist", "playground");
const SCREENSHOT = join(ROOT, "dist", "playground-screenshot.png");
const HAS_GUEST = existsSync(join(ROOT, "dist", "cli", "render", "guest.js"));

const missing = !existsSync(CHROMIUM);
const skip = missing && process.env["CI"] === undefined ? `${CHROMIUM} is not installed (apt-get install chromium); skipping the playground test` : false;
if (skip !== false) console.log(`# ${skip}`);

const DEVICES = (DEFAULT_LAYOUT as { devices: { name: string }[] }).devices.map((d) => d.name);

/** The owner (`name@instanceId`) the command gives device `name` of a layout. */
function ownerOf(layout: unknown, name: string): string {
  const outcome = planText(typeof layout === "string" ? layout : JSON.stringify(layout), "layout.json");
  assert.ok(outcome.plan !== undefined, JSON.stringify(outcome.problems));
  const device = outcome.plan.snapshot.devices.find((d) => d.name === name);
  assert.ok(device !== undefined, name);
  return device.owner;
}

/** The map's text labels (the SVG lives in a shadow root; playwright's CSS selectors pierce it). */
async function mapLabels(page: Page): Promise<string[]> {
  return page.locator("#map svg text").allTextContents();
}

async function generation(page: Page): Promise<number> {
  return Number(await page.locator("#map").getAttribute("data-generation"));
}

/** Replaces the editor's text as typing would (an `input` event) and waits for the page to settle. */
async function typeLayout(page: Page, text: string, state: "ok" | "error"): Promise<void> {
  const checks = await page.locator("body").getAttribute("data-checks");
  await page.locator("#layout").fill(text);
  await page.waitForSelector(`body:not([data-checks="${checks}"])`);
  assert.equal(await page.locator("body").getAttribute("data-state"), state);
}

/**
 * Decodes an 8-bit RGB(A) PNG (what Chromium writes) far enough to count its distinct colours:
 * a blank or single-colour screenshot has one or two.
 */
function distinctColours(png: Buffer): number {
  assert.equal(png.subarray(1, 4).toString("latin1"), "PNG");
  let offset = 8;
  let width = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.subarray(offset + 4, offset + 8).toString("latin1");
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      assert.equal(data[8], 8, "bit depth");
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      assert.ok(channels > 0, `colour type ${data[9]}`);
    }
    if (type === "IDAT") idat.push(data);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const colours = new Set<number>();
  let prev = Buffer.alloc(stride);
  for (let row = 0; row * (stride + 1) < raw.length; row++) {
    const filter = raw[row * (stride + 1)]!;
    const line = Buffer.from(raw.subarray(row * (stride + 1) + 1, (row + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? line[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const add = [0, a, b, (a + b) >> 1, paeth][filter];
      assert.ok(add !== undefined, `filter ${filter}`);
      line[i] = (line[i]! + add) & 0xff;
    }
    for (let i = 0; i < stride; i += channels) colours.add(line.readUIntBE(i, 3));
    prev = line;
  }
  return colours.size;
}

describe("the playground in headless Chromium", { skip }, () => {
  let server: Server | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let origin = "";
  const errors: string[] = [];
  const served: Record<string, number> = {};

  before(async () => {
    assert.ok(!missing, `${CHROMIUM} is missing; CI must install it (see .ci/run)`);
    assert.ok(existsSync(join(SITE, "index.html")), "dist/playground/ is missing: `npm run build` writes it");
    const { chromium } = await import("playwright-core");
    server = await serve(SITE, 0);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("response", (r) => {
      void r.body().then((b) => (served[new URL(r.url()).pathname] = b.length), () => undefined);
    });
    await page.goto(`${origin}/`);
    await page.waitForSelector("body[data-state=ok]");
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  });

  it("loads with no script error and fetches only its two files", () => {
    assert.deepEqual(errors, []);
    assert.deepEqual(Object.keys(served).sort(), ["/", "/playground.js"]);
    const total = Object.values(served).reduce((a, b) => a + b, 0);
    console.log(`the page transferred ${total} bytes (${Object.entries(served).map(([p, n]) => `${p} ${n}`).join(", ")})`);
  });

  it("the default plan's map shows every device of the built-in layout", async () => {
    const labels = (await mapLabels(page)).join("\n");
    for (const name of DEVICES) assert.match(labels, new RegExp(`\\b${name}@\\d+\\b`), name);
    assert.equal(await page.locator("#status").textContent(), `layout.json: ${DEVICES.length} devices, preset firecracker-x86_64`);
    assert.equal(await page.locator("#problems li").count(), 0);
    // The tables are the command's text format.
    const expected = planText(JSON.stringify(DEFAULT_LAYOUT), "layout.json");
    assert.ok(expected.plan !== undefined);
    assert.equal(await page.locator("#text").textContent(), render(expected.plan).text);
  });

  it("hovering a region shows its exact range and owner", async () => {
    const expected = planText(JSON.stringify(DEFAULT_LAYOUT), "layout.json");
    assert.ok(expected.plan !== undefined);
    const blk = expected.plan.snapshot.devices.find((d) => d.name === "virtio-blk0")!;
    const range = `[mem 0x${BigInt(blk.mmio[0]!.start).toString(16).padStart(8, "0")}-0x${BigInt(blk.mmio[0]!.end).toString(16).padStart(8, "0")}]`;
    await page.locator("#map svg text", { hasText: `${blk.owner} · 4 KiB` }).hover();
    assert.equal(await page.locator("#hover").textContent(), `${blk.owner} ${range}, 4 KiB, allocated`);
  });

  it("adding a device in the editor makes it appear", async () => {
    const layout = JSON.parse(await page.locator("#layout").inputValue()) as { devices: unknown[] };
    layout.devices.push({ name: "virtio-gpu0", requests: [{ kind: "mmio", size: "0x2000000", alignment: "0x1000000" }, { kind: "irq" }] });
    await typeLayout(page, JSON.stringify(layout, null, 2), "ok");
    const owner = ownerOf(layout, "virtio-gpu0");
    const labels = await mapLabels(page);
    assert.ok(labels.includes(`${owner} · 32 MiB`), labels.join("\n"));
    assert.match((await page.locator("#text").textContent()) ?? "", new RegExp(`\\b${owner}\\b`));
    assert.equal(await page.locator("#status").textContent(), `layout.json: ${DEVICES.length + 1} devices, preset firecracker-x86_64`);
  });

  it("a bad value shows the error with its field path and leaves the map as it was", async () => {
    const before = { labels: await mapLabels(page), generation: await generation(page) };
    const good = await page.locator("#layout").inputValue();
    const layout = JSON.parse(good) as { devices: { requests: { size?: unknown }[] }[] };
    layout.devices[DEVICES.length]!.requests[0]!.size = -4096;
    const bad = JSON.stringify(layout, null, 2);
    await typeLayout(page, bad, "error");
    const problems = await page.locator("#problems .problem").allTextContents();
    const path = `devices[${DEVICES.length}].requests[0].size`;
    assert.deepEqual(problems, [`layout.json: ${path}: must not be negative, got -4096`]);
    assert.equal(await page.locator("#problems .problem").getAttribute("data-path"), path);
    assert.deepEqual(await mapLabels(page), before.labels);
    assert.equal(await generation(page), before.generation);
    assert.ok(await page.locator("#map.stale").count(), "the map is marked as not the editor's layout");
    assert.equal(await page.locator("#download").isDisabled(), false, "the last good plan can still be downloaded");
    // Clicking the problem selects the bad value in the editor.
    await page.locator("#problems .problem").click();
    const selected = await page.locator("#layout").evaluate((e) => {
      const t = e as unknown as { value: string; selectionStart: number; selectionEnd: number };
      return t.value.slice(t.selectionStart, t.selectionEnd);
    });
    assert.equal(selected, "-4096");
    // Invalid JSON is reported at its line and column, as the command does.
    await typeLayout(page, bad.replace('"name": "virtio-gpu0"', '"name": "virtio-gpu0",,'), "error");
    assert.match((await page.locator("#problems .problem").first().textContent()) ?? "", /^layout\.json: \d+:\d+: invalid JSON: /);
    await typeLayout(page, good, "ok");
    assert.equal(await page.locator("#problems li").count(), 0);
    assert.equal(await page.locator("#map.stale").count(), 0);
  });

  it("downloads the saved plan and loads it back", async () => {
    const svgBefore = await page.locator("#map svg").evaluate((e) => e.outerHTML);
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#download").click()]);
    assert.equal(download.suggestedFilename(), "layout.plan.json");
    const file = await download.path();
    const saved = JSON.parse(readFileSync(file, "utf8")) as { format: string; devices: { name: string }[] };
    const expected = planText(await page.locator("#layout").inputValue(), "layout.json");
    assert.ok(expected.plan !== undefined);
    assert.deepEqual(saved, JSON.parse(JSON.stringify(expected.plan.snapshot)), "the file is what `plan --save` writes");
    assert.equal(saved.format, "vm-allocator/plan");

    // Another layout first, so that loading the plan visibly changes the map back.
    await page.locator("#start").selectOption("example:pc-q35.json");
    await page.waitForFunction('document.querySelector("#status").textContent.startsWith("pc-q35.json")');
    assert.notEqual(await page.locator("#map svg").evaluate((e) => e.outerHTML), svgBefore);
    const g = await generation(page);
    await page.locator("#load").setInputFiles(file);
    await page.waitForSelector(`#map:not([data-generation="${g}"])`);
    assert.equal(await page.locator("#map svg").evaluate((e) => e.outerHTML), svgBefore);
    assert.match((await page.locator("#status").textContent()) ?? "", new RegExp(`saved plan, ${DEVICES.length + 1} devices`));

    // A layout is not a plan: refused with the reason, the map unchanged.
    const layoutFile = join(ROOT, "examples", "layouts", "pc-q35.json");
    await page.locator("#load").setInputFiles(layoutFile);
    await page.waitForSelector("body[data-state=error]");
    assert.match((await page.locator("#problems .problem").textContent()) ?? "", /^pc-q35\.json: is not a saved plan/);
    assert.equal(await page.locator("#map svg").evaluate((e) => e.outerHTML), svgBefore);
  });

  it(HAS_GUEST ? "shows the guest's view (kernel command line, devicetree)" : "has no guest view in this build, and says so", async () => {
    await page.locator("#start").selectOption("default");
    await page.waitForSelector("body[data-state=ok]");
    assert.equal(await page.locator("#tab-cmdline").isVisible(), HAS_GUEST);
    assert.equal(await page.locator("#tab-dts").isVisible(), HAS_GUEST);
    assert.equal(await page.locator("#guest-note").isVisible(), !HAS_GUEST);
    if (HAS_GUEST) {
      await page.locator("#tab-cmdline").click();
      assert.match((await page.locator("#cmdline").textContent()) ?? "", /virtio_mmio\.device=4K@0x[0-9a-f]+:\d+/);
      // An x86 machine has no devicetree: the command's refusal shows instead.
      await page.locator("#tab-dts").click();
      assert.equal(await page.locator("#dts.error").count(), 1);
      assert.match((await page.locator("#dts").textContent()) ?? "", /x86_64 machine/);
      await page.locator("#tabs button[data-tab=map]").click();
    }
  });

  it("switches between the map, the tables and /proc/iomem", async () => {
    await page.locator("#tabs button[data-tab=iomem]").click();
    assert.equal(await page.locator("#view-iomem").isVisible(), true);
    assert.equal(await page.locator("#view-map").isVisible(), false);
    assert.match((await page.locator("#iomem").textContent()) ?? "", new RegExp(` : ${ownerOf(DEFAULT_LAYOUT, "virtio-blk0")}\n`));
    await page.locator("#tabs button[data-tab=map]").click();
    assert.equal(await page.locator("#view-map").isVisible(), true);
  });

  it("offers the built-in default, every preset and every example layout to start from", async () => {
    const values = await page.locator("#start option").evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    const examples = readdirSync(join(ROOT, "examples", "layouts")).filter((f) => f.endsWith(".json")).sort();
    assert.ok(examples.length > 0);
    assert.deepEqual(values, ["default", ...layoutNames.map((n) => `preset:${n}`), ...examples.map((f) => `example:${f}`)]);
    // A preset starts with no devices: the map shows its pools only.
    const preset = layoutNames[layoutNames.length - 1]!;
    await page.locator("#start").selectOption(`preset:${preset}`);
    await page.waitForFunction(`document.querySelector("#status").textContent.endsWith("preset ${preset}")`);
    assert.equal(await page.locator("body").getAttribute("data-state"), "ok");
    assert.deepEqual(JSON.parse(await page.locator("#layout").inputValue()), { preset, devices: [] });
  });

  it("takes a screenshot that is not blank", async () => {
    await page.locator("#start").selectOption("default");
    await page.waitForSelector("body[data-state=ok]");
    await page.locator("#map svg text", { hasText: `${ownerOf(DEFAULT_LAYOUT, "virtio-net0")} · 4 KiB` }).hover();
    const png = await page.screenshot();
    writeFileSync(SCREENSHOT, png);
    console.log(`screenshot: ${SCREENSHOT}`);
    assert.ok(png.length > 20_000, `${png.length} bytes`);
    const colours = distinctColours(png);
    assert.ok(colours > 50, `${colours} distinct colours`);
    // The check can tell: an empty page of the same size is nearly one colour.
    const blank = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    await blank.setContent("<!doctype html><title>blank</title>");
    const empty = distinctColours(await blank.screenshot());
    await blank.close();
    assert.ok(empty <= 2, `${empty} colours in a blank page`);
  });

  it("works from file:// (no server)", async () => {
    const local = await browser!.newPage();
    const localErrors: string[] = [];
    local.on("pageerror", (e) => localErrors.push(e.message));
    await local.goto(pathToFileURL(join(SITE, "index.html")).href);
    await local.waitForSelector("body[data-state=ok]");
    const labels = (await mapLabels(local)).join("\n");
    for (const name of DEVICES) assert.match(labels, new RegExp(`\\b${name}@\\d+\\b`), name);
    assert.deepEqual(localErrors, []);
    await local.close();
  });
});

describe("the playground's server", () => {
  let server: Server | undefined;
  let origin = "";
  before(async () => {
    server = await serve(SITE, 0);
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve()))));

  it("serves the page's files with their types, and nothing outside its folder", async () => {
    const index = await fetch(`${origin}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(await index.text(), readFileSync(join(SITE, "index.html"), "utf8"));
    const script = await fetch(`${origin}/playground.js`);
    assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal((await script.text()).length, readFileSync(join(SITE, "playground.js"), "utf8").length);
    for (const path of ["/missing.js", "/..%2f..%2fpackage.json", "/%2e%2e/%2e%2e/package.json", "/api/index.html"]) {
      assert.equal((await fetch(`${origin}${path}`)).status, 404, path);
    }
    assert.equal((await fetch(`${origin}/`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`${origin}/%zz`)).status, 400);
  });
});
