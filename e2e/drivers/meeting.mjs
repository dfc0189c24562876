// Plays a meeting on Reel's meeting page (/meetings/{id}) in headless
// Chromium and reports, as one JSON line, where every player was against
// the page's clock: it presses Play, then for each point drags the
// scrubber there, lets the meeting play for --settle seconds and samples,
// in one evaluation, the clock (t) and each player's currentTime, paused
// state and whether its tile is hidden. Console errors and page errors
// are reported too.
//
//   node meeting.mjs --page <meeting page URL> --points 2,4.5,6.8 [--settle 1.5] [--shots DIR]
//                    [--list <meetings page URL> --hold <reason>]
//
// With --list it starts on the meetings page (a search), and opens the
// meeting by its link there. With --hold it then writes the reason and
// switches the legal hold on, and reports the hold badge of the meeting's
// row on the meetings page (?hold=true).
// --shots keeps a screenshot of the page at each point in DIR.
// Environment: CHROMIUM (default /usr/bin/chromium). Exits 1 if the page
// could not be driven (the JSON says why); the caller judges the samples.
import { openPage } from "./chromium.mjs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: { page: { type: "string" }, points: { type: "string" }, settle: { type: "string", default: "1.5" },
    shots: { type: "string" }, list: { type: "string" }, hold: { type: "string" } },
});
if (!opt.page || !opt.points) {
  console.error("usage: node meeting.mjs --page <meeting page URL> --points 2,4.5,6.8 [--settle 1.5]");
  process.exit(2);
}
const points = opt.points.split(",").map(Number);
const settle = Number(opt.settle) * 1000;
const out = { consoleErrors: [], samples: [], error: "", listed: [], holdMessage: "", holdBadge: "" };
let browser;
try {
  browser = await openPage({ errors: out.consoleErrors });
  const { page } = browser;
  if (opt.list) {
    await page.goto(opt.list);
    const link = page.locator(`#rows a[href="${new URL(opt.page).pathname}"]`);
    await link.waitFor({ timeout: 10000 });
    out.listed = await page.$$eval("#rows tr", (rows) => rows.map((r) => r.dataset.id));
    await link.click();
    await page.waitForURL(opt.page);
  } else {
    await page.goto(opt.page);
  }
  // Every player has its metadata before Play is pressed.
  await page.waitForFunction(() => {
    const vs = [...document.querySelectorAll("#players video")];
    return vs.length > 0 && vs.every((v) => v.readyState >= 1 || v.error);
  }, null, { timeout: 20000 });
  await page.click("#play");
  await page.waitForTimeout(1000);
  for (const at of points) {
    // As a person drags it: the value, then input and change events.
    await page.$eval("#scrubber", (s, at) => {
      s.focus();
      s.value = String(at);
      s.dispatchEvent(new Event("input", { bubbles: true }));
      s.dispatchEvent(new Event("change", { bubbles: true }));
    }, at);
    await page.waitForTimeout(settle);
    for (let i = 0; i < 3; i++) {
      out.samples.push(await page.evaluate((at) => ({
        point: at,
        t: window.reelMeetingClock(),
        playLabel: document.getElementById("play").textContent,
        lanes: [...document.querySelectorAll("#players video")].map((v) => ({
          recording: v.dataset.recording,
          participant: v.dataset.participant,
          offset: Number(v.dataset.offset),
          currentTime: v.currentTime,
          paused: v.paused,
          hidden: v.closest(".tile").classList.contains("outside") && getComputedStyle(v).visibility === "hidden",
          readyState: v.readyState,
          error: v.error ? `${v.error.code} ${v.error.message}` : "",
          src: v.dataset.source || v.currentSrc,
        })),
        laneCount: document.querySelectorAll("#timeline .lane").length,
      }), at));
      await page.waitForTimeout(200);
    }
    if (opt.shots) await page.screenshot({ path: join(opt.shots, `meeting-${at}s.png`), fullPage: true });
  }
  if (opt.hold) {
    await page.fill("#hold-reason", opt.hold);
    await page.check("#hold");
    await page.locator("#hold-badge").waitFor({ state: "visible", timeout: 10000 });
    out.holdMessage = await page.textContent("#message");
    await page.goto(new URL("/meetings?hold=true", opt.page).href);
    const badge = page.locator(`#rows tr[data-id="${decodeURIComponent(new URL(opt.page).pathname.split("/").pop())}"] .badge.hold`);
    await badge.waitFor({ timeout: 10000 });
    out.holdBadge = await badge.getAttribute("title");
    if (opt.shots) await page.screenshot({ path: join(opt.shots, "meetings-held.png"), fullPage: true });
  }
} catch (err) {
  out.error = err.message;
  process.exitCode = 1;
} finally {
  console.log(JSON.stringify(out));
  await browser?.close();
}
