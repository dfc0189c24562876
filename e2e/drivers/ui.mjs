// Drives Reel's web UI in headless Chromium, as a person would: publish the
// fake camera from /publish, watch it on /watch, see it on the live page,
// stop, then find, play and delete the recording on /recordings.
//
//   node ui.mjs http://127.0.0.1:8080
//
// Environment: CHROMIUM (default /usr/bin/chromium), REEL_ARTIFACTS (where
// screenshots go on failure; default ../artifacts), REEL_SCREENSHOTS=always
// (take them on success too), REEL_STREAM (stream name).
// Exits 0 when every step passed; prints one line per step.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const base = (process.argv[2] || "").replace(/\/$/, "");
if (!base) {
  console.error("usage: node ui.mjs <base URL of a running reel>");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const artifacts = resolve(process.env.REEL_ARTIFACTS || join(here, "..", "artifacts"));
const stream = process.env.REEL_STREAM || "browsertest";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const profile = mkdtempSync(join(tmpdir(), "reel-chromium-"));
const pages = {};
const problems = []; // uncaught page errors
let step = "launch";

function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}] ${step}:`, ...args);
}

async function run(name, fn) {
  step = name;
  const t0 = Date.now();
  await fn();
  log(`ok (${Date.now() - t0} ms)`);
}

// newPage opens a tab whose console and errors go to our output.
async function newPage(ctx, label) {
  const page = await ctx.newPage();
  pages[label] = page;
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") log(`[${label} console.${m.type()}]`, m.text());
  });
  page.on("pageerror", (err) => {
    problems.push(`${label}: ${err.message}`);
    log(`[${label} page error]`, err.message);
  });
  // Deleting asks "are you sure?": say yes.
  page.on("dialog", (d) => d.accept());
  return page;
}

async function text(page, selector) {
  return (await page.locator(selector).textContent()) || "";
}

// videoState reads what a <video> element shows.
function videoState(page, selector) {
  return page.$eval(selector, (v) => ({
    currentTime: v.currentTime,
    width: v.videoWidth,
    height: v.videoHeight,
    frames: v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality().totalVideoFrames : -1,
    readyState: v.readyState,
    paused: v.paused,
    error: v.error ? v.error.code : 0,
  }));
}

// expectMoving checks that a video has a picture and plays: currentTime and
// the decoded frame count both advance over a second and a half.
async function expectMoving(page, selector, label) {
  await page.waitForFunction((sel) => {
    const v = document.querySelector(sel);
    return v && v.videoWidth > 0 && v.currentTime > 0.2;
  }, selector, { timeout: 30000 });
  const a = await videoState(page, selector);
  await page.waitForTimeout(1500);
  const b = await videoState(page, selector);
  log(`${label}: ${b.width}x${b.height}, currentTime ${a.currentTime.toFixed(2)} -> ${b.currentTime.toFixed(2)}, frames ${a.frames} -> ${b.frames}`);
  if (!(b.width > 0 && b.currentTime > a.currentTime + 0.5)) {
    throw new Error(`${label} is not playing: ${JSON.stringify({ before: a, after: b })}`);
  }
  if (a.frames >= 0 && b.frames <= a.frames) throw new Error(`${label} shows no new frames: ${a.frames} -> ${b.frames}`);
  return b;
}

async function main() {
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu",
      "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
      "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
      "--autoplay-policy=no-user-gesture-required",
    ],
    viewport: { width: 1280, height: 900 },
  });
  try {
    await steps(ctx);
    if (process.env.REEL_SCREENSHOTS === "always") await screenshots();
  } catch (err) {
    log("FAILED:", err.message);
    await screenshots();
    throw err;
  } finally {
    await ctx.close().catch(() => {});
  }
}

async function steps(ctx) {
  const pub = await newPage(ctx, "publish");
  await run("publish the fake camera as VP8", async () => {
    await pub.goto(`${base}/publish/${stream}`);
    const codecs = await pub.$$eval("#codec option", (os) => os.map((o) => o.value));
    if (!codecs.includes("video/vp8")) throw new Error(`the codec choice lacks VP8: ${codecs}`);
    await pub.selectOption("#codec", "video/vp8");
    await pub.click("#start");
    await pub.waitForFunction(() => ["live", "error"].includes(document.body.dataset.state), null, { timeout: 30000 });
    const state = await pub.evaluate(() => document.body.dataset.state);
    if (state !== "live") throw new Error(`publisher state ${state}: ${await text(pub, "#message")}`);
    const codec = await pub.evaluate(() => document.body.dataset.codec);
    if (codec !== "VP8") throw new Error(`the server chose ${codec}, not VP8`);
    await expectMoving(pub, "#preview", "publisher preview");
  });

  const watch = await newPage(ctx, "watch");
  await run("watch it over WHEP", async () => {
    await watch.goto(`${base}/watch/${stream}`);
    await expectMoving(watch, "#video", "WHEP player");
    const badge = await text(watch, "#state");
    if (badge !== "live") throw new Error(`player state badge says ${badge}`);
  });

  const live = await newPage(ctx, "live");
  await run("see it on the live page", async () => {
    await live.goto(`${base}/`);
    const card = live.locator(`article[data-stream="${stream}"]`);
    await card.waitFor({ timeout: 10000 });
    // The WHEP viewer counts once the page has polled after it joined.
    await live.waitForFunction((s) => {
      const c = document.querySelector(`article[data-stream="${s}"]`);
      return c && /WHEP 1/.test(c.textContent);
    }, stream, { timeout: 10000 });
    const body = await card.textContent();
    for (const want of ["VP8", "Opus", "HLS cannot carry VP8", "rtsp://"]) {
      if (!body.includes(want)) throw new Error(`the live card lacks "${want}": ${body}`);
    }
    await card.locator("a", { hasText: "Watch" }).waitFor();
  });

  await run("watch a stream that is not live", async () => {
    const idle = await newPage(ctx, "idle-watch");
    await idle.goto(`${base}/watch/nobody-here`);
    await idle.waitForFunction(() => /not live yet/.test(document.getElementById("message").textContent) &&
      /Trying again in \d+ s/.test(document.getElementById("message").textContent), null, { timeout: 15000 });
    await idle.close();
    delete pages["idle-watch"];
  });

  await run("stop publishing", async () => {
    await pub.click("#stop");
    await pub.waitForFunction(() => document.body.dataset.state === "stopped", null, { timeout: 10000 });
    await watch.waitForFunction(() => document.getElementById("state").textContent !== "live", null, { timeout: 15000 });
  });

  const recs = await newPage(ctx, "recordings");
  let id = "";
  await run("find the recording", async () => {
    await recs.goto(`${base}/recordings?stream=${stream}`);
    const deadline = Date.now() + 20000;
    for (;;) {
      const row = recs.locator("tbody tr[data-state=finished], tbody tr[data-state=repaired]").first();
      if (await row.count()) {
        id = await row.getAttribute("data-id");
        break;
      }
      if (Date.now() > deadline) throw new Error(`no finished recording listed: ${await text(recs, "main")}`);
      await recs.waitForTimeout(1000);
      await recs.click("#refresh");
    }
    const rowText = await recs.locator(`tr[data-id="${id}"]`).textContent();
    if (!/WEBM/.test(rowText) || !/vp8/i.test(rowText)) throw new Error(`the recording is not VP8 WebM: ${rowText}`);
    log(`recording ${id}: ${rowText.replace(/\s+/g, " ")}`);
  });

  await run("play the recording in the page", async () => {
    await recs.locator(`tr[data-id="${id}"] button`, { hasText: "Play" }).click();
    const st = await expectMoving(recs, "#player", "recording player");
    const duration = await recs.$eval("#player", (v) => v.duration);
    log(`recording duration ${duration}`);
    if (!(duration > 1) || st.error) throw new Error(`recording duration ${duration}, error ${st.error}`);
    const msg = await text(recs, "#player-message");
    if (msg) throw new Error(`the player shows an error: ${msg}`);
  });

  await run("delete the recording", async () => {
    await recs.locator(`tr[data-id="${id}"] button`, { hasText: "Delete" }).click();
    await recs.locator(`tr[data-id="${id}"]`).waitFor({ state: "detached", timeout: 10000 });
    const msg = await text(recs, "#message");
    if (!/Deleted/.test(msg)) throw new Error(`no confirmation after delete: ${msg}`);
    await recs.click("#refresh");
    await recs.waitForTimeout(500);
    if (await recs.locator(`tr[data-id="${id}"]`).count()) throw new Error("the deleted recording is listed again");
  });

  if (problems.length) {
    step = "page errors";
    throw new Error("uncaught errors in the pages:\n" + problems.join("\n"));
  }
}

async function screenshots() {
  mkdirSync(artifacts, { recursive: true });
  for (const [label, page] of Object.entries(pages)) {
    if (page.isClosed()) continue;
    const file = join(artifacts, `browser-${label}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch((e) => log(`screenshot ${label}: ${e.message}`));
    log(`screenshot: ${file}`);
  }
}

try {
  await main();
  console.log("browser UI test: all steps passed");
} catch (err) {
  if (step === "launch") console.error("cannot start Chromium:", err.message);
  process.exitCode = 1;
} finally {
  rmSync(profile, { recursive: true, force: true });
}
