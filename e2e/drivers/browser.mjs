#!/usr/bin/env node
// browser.mjs drives Debian's Chromium with playwright-core for the Go
// interop tests. It serves the test page (page.js bundled by esbuild) on
// 127.0.0.1, launches Chromium with a fresh profile, and then answers JSON
// commands, one per line on stdin, with one JSON line each on stdout:
//
//   {"id":1,"op":"open","page":"pub"}
//   {"id":2,"op":"call","page":"pub","fn":"publishWhipWhep","args":["http://.../whip/x","video/VP8"]}
//   {"id":3,"op":"screenshot","page":"pub","path":"/abs/file.png"}
//   {"id":4,"op":"close","page":"pub"}
//   {"id":5,"op":"errors"}   -> {"pub":["console.error: ...", "uncaught: ..."]}
//   {"id":6,"op":"quit"}
//
// Replies are {"id":N,"ok":true,"result":...} or {"id":N,"ok":false,"error":"..."}.
// Everything else (browser console, page errors, our own notes) goes to
// stderr with a page prefix, which the Go test keeps as a log.
//
// Usage: node browser.mjs [--chromium /usr/bin/chromium] [--profile DIR]

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

function note(...args) {
  process.stderr.write(`[driver] ${args.join(" ")}\n`);
}

// The flags the issue asks for, plus two that keep WebRTC on loopback:
// Reel listens on 127.0.0.1 only, so Chromium must offer a loopback
// candidate, and its host candidates must not be hidden behind mDNS names
// (which would also send multicast queries off the machine).
const chromiumFlags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
];

async function bundle() {
  const out = await esbuild.build({
    entryPoints: [path.join(here, "page.js")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "chrome120",
    logLevel: "warning",
    absWorkingDir: here,
  });
  return out.outputFiles[0].text;
}

const html = `<!doctype html>
<html><head><meta charset="utf-8"><title>Reel interop</title></head>
<body>
<video id="local" autoplay muted playsinline width="320"></video>
<video id="remote" autoplay muted playsinline width="320"></video>
<script type="module" src="/page.js"></script>
</body></html>`;

function serve(js) {
  const server = http.createServer((req, res) => {
    if (req.url === "/" || req.url.startsWith("/?")) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end(html);
    } else if (req.url === "/page.js") {
      res.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-store" });
      res.end(js);
    } else if (req.url === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function main() {
  const executablePath = arg("--chromium", "/usr/bin/chromium");
  const profile = arg("--profile", "") || fs.mkdtempSync(path.join(os.tmpdir(), "reel-chromium-"));
  const js = await bundle();
  const server = await serve(js);
  const base = `http://127.0.0.1:${server.address().port}/`;
  note("serving the test page at", base);

  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: chromiumFlags,
    viewport: { width: 720, height: 320 },
    timeout: 60000,
  });
  note("chromium", context.browser() ? context.browser().version() : "", "profile", profile);
  for (const p of context.pages()) await p.close();

  const pages = new Map();
  // errors keeps, per page (closed ones too), every error a page reported:
  // console.error lines (the WHIP/WHEP clients log their failures there,
  // and Chromium logs failed requests there) and uncaught exceptions and
  // promise rejections. The Go test fails on any of them.
  const errors = new Map();
  function pageError(name, text) {
    if (!errors.has(name)) errors.set(name, []);
    errors.get(name).push(text);
  }
  async function open(name) {
    const page = await context.newPage();
    page.on("console", (m) => {
      process.stderr.write(`[${name}] console.${m.type()}: ${m.text()}\n`);
      if (m.type() === "error") pageError(name, `console.error: ${m.text()}`);
    });
    page.on("pageerror", (e) => {
      process.stderr.write(`[${name}] pageerror: ${e.stack || e}\n`);
      pageError(name, `uncaught: ${e.message || e}`);
    });
    page.on("requestfailed", (r) => process.stderr.write(`[${name}] request failed: ${r.method()} ${r.url()} ${r.failure() ? r.failure().errorText : ""}\n`));
    page.on("response", (r) => {
      if (r.url().startsWith(base)) return;
      process.stderr.write(`[${name}] ${r.request().method()} ${r.url()} -> ${r.status()}\n`);
    });
    await page.goto(base, { timeout: 30000 });
    await page.waitForFunction(() => window.reelReady === true, null, { timeout: 30000 });
    return page;
  }
  // page waits for a page that is still opening.
  function page(name) {
    const p = pages.get(name);
    if (!p) throw new Error(`no page ${name}`);
    return p;
  }

  let quitting = false;
  async function quit() {
    if (quitting) return;
    quitting = true;
    await context.close().catch((e) => note("closing chromium:", e.message));
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.on("SIGTERM", () => quit().then(() => process.exit(0)));

  const rl = readline.createInterface({ input: process.stdin });
  const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
  process.stdout.write(JSON.stringify({ ready: true, chromium: context.browser() ? context.browser().version() : "" }) + "\n");

  // Commands run concurrently (a viewer page waits while a publisher page
  // sends); each reply carries its id.
  rl.on("line", (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      reply({ id: 0, ok: false, error: `bad command: ${e.message}` });
      return;
    }
    (async () => {
      switch (cmd.op) {
        case "open":
          if (pages.has(cmd.page)) throw new Error(`page ${cmd.page} is open already`);
          pages.set(cmd.page, open(cmd.page));
          await pages.get(cmd.page);
          return true;
        case "call":
          return (await page(cmd.page)).evaluate(
            ({ fn, args }) => window.reel[fn](...args),
            { fn: cmd.fn, args: cmd.args || [] },
          );
        case "screenshot":
          await (await page(cmd.page)).screenshot({ path: cmd.path, timeout: 10000 });
          return cmd.path;
        case "close": {
          const p = page(cmd.page);
          pages.delete(cmd.page);
          await (await p).close();
          return true;
        }
        case "errors":
          return Object.fromEntries(errors);
        case "quit":
          await quit();
          return true;
        default:
          throw new Error(`unknown op ${cmd.op}`);
      }
    })().then(
      (result) => {
        reply({ id: cmd.id, ok: true, result: result === undefined ? null : result });
        if (cmd.op === "quit") process.exit(0);
      },
      (err) => reply({ id: cmd.id, ok: false, error: String(err && err.message ? err.message : err) }),
    );
  });
  rl.on("close", () => quit().then(() => process.exit(0)));
}

main().catch((e) => {
  process.stderr.write(`[driver] fatal: ${e.stack || e}\n`);
  process.exit(1);
});
