/**
 * `npm run playground`: serves dist/playground/ (written by `npm run build`) read-only on
 * 127.0.0.1, and docs/api/ under /api/ when `npm run docs` has built it. Any static file server
 * would do; this one needs nothing beyond Node.
 *
 * `node dist/web/server.js [PORT]` (default 8780; 0 picks a free port).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

/** The file under `root` that `urlPath` names (a directory means its index.html), or undefined. */
function fileUnder(root: string, urlPath: string): string | undefined {
  const base = root.endsWith(sep) ? root : root + sep;
  let file = normalize(join(base, urlPath));
  if (file !== root && !file.startsWith(base)) return undefined;
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
  return existsSync(file) && statSync(file).isFile() ? file : undefined;
}

/** Serves `site` at / and, if given, `api` at /api/, on 127.0.0.1:`port`. */
export function serve(site: string, port: number, api?: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://127.0.0.1").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (path === "/api") {
      res.writeHead(301, { location: "/api/" }).end();
      return;
    }
    const file = api !== undefined && path.startsWith("/api/") ? fileUnder(api, path.slice(4)) : fileUnder(site, path);
    if (file === undefined) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found\n");
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "content-length": body.length, "cache-control": "no-cache" });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const site = join(root, "dist", "playground");
  const api = join(root, "docs", "api");
  const port = Number(process.argv[2] ?? process.env["PORT"] ?? 8780);
  if (!existsSync(join(site, "index.html"))) {
    console.error("vm-allocator playground: dist/playground/index.html is missing; run `npm run build` first");
    process.exit(1);
  }
  const hasApi = existsSync(join(api, "index.html"));
  serve(site, port, hasApi ? api : undefined).then(
    (server) => {
      const { port: p } = server.address() as AddressInfo;
      console.log(`vm-allocator playground: http://127.0.0.1:${p}/`);
      console.log(hasApi ? `API reference: http://127.0.0.1:${p}/api/` : "API reference: not built (`npm run docs` builds it into docs/api/)");
      console.log("Ctrl-C stops the server.");
    },
    (error: unknown) => {
      console.error(`vm-allocator playground: cannot listen on 127.0.0.1:${port}: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
}
