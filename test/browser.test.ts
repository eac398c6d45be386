/**
 * The built ESM library runs unchanged in a browser: headless Chromium (Debian's
 * /usr/bin/chromium, driven by playwright-core, which downloads no browser of its own) loads
 * dist/src/index.js and its imports from a static server on 127.0.0.1, then allocates addresses
 * and dispatches a bus access there.
 *
 * Without Chromium the test is skipped with a message, except in CI (`CI` set), where .ci/run
 * installs it and a missing browser is a failure.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const CHROMIUM = "/usr/bin/chromium";
/** dist/, served as the site root: the page imports /src/index.js. */
const DIST = fileURLToPath(new URL("../", import.meta.url));
const PAGE = '<!doctype html><meta charset="utf-8"><title>vm-allocator browser test</title><p>ready</p>';
const TYPES: Record<string, string> = { ".js": "text/javascript; charset=utf-8", ".map": "application/json", ".html": "text/html; charset=utf-8" };

const missing = !existsSync(CHROMIUM);
const skip = missing && process.env["CI"] === undefined ? `${CHROMIUM} is not installed (apt-get install chromium); skipping the browser test` : false;
if (skip !== false) console.log(`# ${skip}`);

/** Serves dist/ read-only; anything outside it, or not a file, is a 404. */
function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://127.0.0.1").pathname);
    if (req.method !== "GET") {
      res.writeHead(405).end();
      return;
    }
    if (path === "/") {
      res.writeHead(200, { "content-type": TYPES[".html"]! }).end(PAGE);
      return;
    }
    const file = normalize(join(DIST, path));
    if (!file.startsWith(DIST.endsWith(sep) ? DIST : DIST + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

describe("the library in headless Chromium", { skip }, () => {
  let server: Server | undefined;
  let close: (() => Promise<void>) | undefined;
  let evaluate: (<T>(fn: () => Promise<T>) => Promise<T>) | undefined;

  before(async () => {
    assert.ok(!missing, `${CHROMIUM} is missing; CI must install it (see .ci/run)`);
    const { chromium } = await import("playwright-core");
    server = await serve();
    const { port } = server.address() as AddressInfo;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    close = () => browser.close();
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/`);
    assert.deepEqual(errors, []);
    evaluate = (fn) => page.evaluate(fn);
  });

  after(async () => {
    await close?.();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  });

  it("allocates with an AddressAllocator", async () => {
    const result = await evaluate!(async () => {
      // Runs in the page: a URL import of the built ESM entry point.
      const origin = (globalThis as unknown as { location: { origin: string } }).location.origin;
      const lib = (await import(`${origin}/src/index.js`)) as typeof import("../src/index.js");
      const pool = new lib.AddressAllocator(0x1000n, 0x10000n);
      const a = pool.allocate(0x100n, 0x1000n, lib.AllocPolicy.FirstMatch, { owner: "dev-a" });
      const b = pool.allocate(0x800n, 0x800n, lib.AllocPolicy.LastMatch, { owner: "dev-b" });
      const c = pool.allocate(0x10n, 0x10n, lib.AllocPolicy.ExactMatch(0x2000n), { owner: "dev-c" });
      let overlap = "";
      try {
        pool.allocate(0x20n, 1n, lib.AllocPolicy.ExactMatch(0x2008n));
      } catch (e) {
        overlap = `${(e as { code: string }).code}: ${(e as Error).message}`;
      }
      return {
        ranges: [a, b, c].map((r) => r.toString()),
        available: pool.availableSize.toString(16),
        owners: pool.owners().sort(),
        overlap,
        bigintExact: new lib.RangeInclusive(0n, 0xffff_ffff_ffff_ffffn).len().toString(16),
      };
    });
    assert.deepEqual(result.ranges, ["[mem 0x1000-0x10ff]", "[mem 0x10800-0x10fff]", "[mem 0x2000-0x200f]"]);
    assert.equal(result.available, (0x10000 - 0x100 - 0x800 - 0x10).toString(16));
    assert.deepEqual(result.owners, ["dev-a", "dev-b", "dev-c"]);
    assert.match(result.overlap, /^Overlap: .*dev-c/);
    assert.equal(result.bigintExact, "10000000000000000");
  });

  it("dispatches MMIO and port accesses through a DeviceManager", async () => {
    const result = await evaluate!(async () => {
      const origin = (globalThis as unknown as { location: { origin: string } }).location.origin;
      const lib = (await import(`${origin}/src/index.js`)) as Record<string, unknown>;
      // The device manager may or may not be re-exported from the entry point; both are the built library.
      const dmModule = (await import(`${origin}/src/devices/device-manager.js`)) as typeof import("../src/devices/device-manager.js");
      const DeviceManager = (lib["DeviceManager"] as typeof dmModule.DeviceManager | undefined) ?? dmModule.DeviceManager;
      const { RangeInclusive } = (await import(`${origin}/src/core/range.js`)) as typeof import("../src/core/range.js");
      const log: string[] = [];
      const registers = new Uint8Array(0x100);
      const device = {
        name: "scratch",
        read(base: bigint, offset: bigint, data: Uint8Array) {
          log.push(`read ${base.toString(16)}+${offset} x${data.length}`);
          data.set(registers.subarray(Number(offset), Number(offset) + data.length));
        },
        write(base: bigint, offset: bigint, data: Uint8Array) {
          log.push(`write ${base.toString(16)}+${offset} x${data.length}`);
          registers.set(data, Number(offset));
        },
      };
      const dm = new DeviceManager();
      const id = dm.simpleRegisterDevice(device, 3, 5, new RangeInclusive(0x3f8n, 0x3ffn), new RangeInclusive(0xd000_0000n, 0xd000_00ffn));
      const wrote = dm.mmioWrite(0xd000_0010n, new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
      const back = new Uint8Array(4);
      const read = dm.mmioRead(0xd000_0010n, back);
      const port = new Uint8Array(1);
      const portRead = dm.pioRead(0x3f9n, port);
      const unmapped = new Uint8Array(2);
      const missed = dm.mmioRead(0xe000_0000n, unmapped);
      const held = dm.resourcesOf(id);
      return {
        id,
        wrote,
        read,
        back: Array.from(back),
        portRead,
        port: port[0],
        missed,
        unmapped: Array.from(unmapped),
        log,
        owner: held.owner,
        mmio: held.mmio.map((r) => r.range.toString("mem")),
      };
    });
    assert.equal(result.id, 3);
    assert.equal(result.wrote, true);
    assert.equal(result.read, true);
    assert.deepEqual(result.back, [0xde, 0xad, 0xbe, 0xef]);
    assert.equal(result.portRead, true);
    assert.equal(result.missed, false);
    assert.deepEqual(result.log, ["write d0000000+16 x4", "read d0000000+16 x4", "read 3f8+1 x1"]);
    assert.equal(result.owner, "scratch@3");
    assert.deepEqual(result.mmio, ["[mem 0xd0000000-0xd00000ff]"]);
  });
});
