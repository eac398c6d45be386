/**
 * A cross-origin-isolated page in headless Chromium, for tests that need `SharedArrayBuffer` and
 * real Web Workers: a static server on 127.0.0.1 serves dist/ (so a page or a module worker can
 * import `/src/index.js` and `/test/...` files) with the COOP/COEP headers that make the page
 * `crossOriginIsolated`, and playwright-core drives Debian's /usr/bin/chromium (it downloads no
 * browser of its own).
 *
 * Without Chromium a test using this is skipped with a message, except in CI (`CI` set), where
 * .ci/run installs it and a missing browser is a failure: see {@link browserSkip}.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
/** dist/, served as the site root. */
const DIST = fileURLToPath(new URL("../../", import.meta.url));
const PAGE = '<!doctype html><meta charset="utf-8"><title>vm-allocator isolated page</title><p>ready</p>';
const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".html": "text/html; charset=utf-8",
  ".json": "application/json",
};
/** The headers of cross-origin isolation, sent with every response (workers need them too). */
const ISOLATION = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
};

/** The `skip` option for a browser describe(): false, or why the test cannot run here. */
export function browserSkip(what: string): string | false {
  const skip = !existsSync(CHROMIUM) && process.env["CI"] === undefined ? `${CHROMIUM} is not installed (apt-get install chromium); skipping ${what}` : false;
  if (skip !== false) console.log(`# ${skip}`);
  return skip;
}

/** Serves dist/ read-only with the isolation headers; anything outside it, or not a file, is a 404. */
function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://127.0.0.1").pathname);
    if (req.method !== "GET") {
      res.writeHead(405, ISOLATION).end();
      return;
    }
    if (path === "/") {
      res.writeHead(200, { ...ISOLATION, "content-type": TYPES[".html"]! }).end(PAGE);
      return;
    }
    const file = normalize(join(DIST, path));
    if (!file.startsWith(DIST.endsWith(sep) ? DIST : DIST + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, ISOLATION).end();
      return;
    }
    res.writeHead(200, { ...ISOLATION, "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** An open isolated page; `close()` shuts the browser and the server. */
export interface IsolatedPage {
  readonly page: Page;
  /** `http://127.0.0.1:<port>`: the page's origin, which serves dist/. */
  readonly origin: string;
  /** Uncaught errors the page reported so far. */
  readonly errors: string[];
  close(): Promise<void>;
}

/** Starts the server and the browser and opens the page, checking it is cross-origin isolated. */
export async function openIsolatedPage(): Promise<IsolatedPage> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing; CI must install it (see .ci/run)`);
  const { chromium } = await import("playwright-core");
  const server = await serve();
  const { port } = server.address() as AddressInfo;
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const origin = `http://127.0.0.1:${port}`;
    await page.goto(`${origin}/`);
    const isolated = await page.evaluate(() => (globalThis as unknown as { crossOriginIsolated?: boolean }).crossOriginIsolated === true && typeof SharedArrayBuffer === "function");
    if (!isolated) throw new Error("the test page is not cross-origin isolated: SharedArrayBuffer is unavailable");
    const opened = browser;
    return {
      page,
      origin,
      errors,
      close: async () => {
        await opened.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  } catch (error) {
    await browser?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw error;
  }
}
