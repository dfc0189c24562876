// Exports an ended meeting from Reel's meeting page (/meetings/{id}) in
// headless Chromium and reports, as one JSON line, what the page showed:
// it presses "Multi-track" and waits for the job's download links; then
// presses "Composite MP4", reads its progress line while it runs and
// presses Cancel; then exports seconds 1 to 3 (the clip's range) as
// multi-track, and the audio; then reloads the page, reports the jobs it
// lists, and deletes the clip's export (accepting the page's confirm).
// Console errors and page errors are reported too.
//
//   node exports.mjs --page <meeting page URL> [--admin-token T] [--shots DIR]
//
// With --admin-token the page is opened with a token that may only read
// (?token= in --page): it first presses "Multi-track" and reports the
// message the page shows, then puts T in the header's Token field.
//
//   node exports.mjs --page <meeting page URL> --live <kind>
//
// With --live the meeting is in progress: it reports whether the export
// buttons are disabled and the section's note, reloads the page each
// second until the meeting has ended, presses the button of <kind> and
// reports the message the page shows and which buttons are disabled
// then; nothing else.
//
// Environment: CHROMIUM (default /usr/bin/chromium). Exits 1 if the page
// could not be driven (the JSON says why); the caller judges the rest.
import { openPage } from "./chromium.mjs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({ options: { page: { type: "string" }, "admin-token": { type: "string" }, live: { type: "string" },
  shots: { type: "string" } } });
if (!opt.page) {
  console.error("usage: node exports.mjs --page <meeting page URL> [--admin-token T | --live KIND] [--shots DIR]");
  process.exit(2);
}
const out = { consoleErrors: [], error: "", live: null, refused: "", after: [], forbidden: "", links: [], audio: [], composite: { job: "", status: "", message: "" }, reloaded: [],
  deleted: { job: "", confirm: "", message: "" } };
const shot = async (page, name) => opt.shots && page.screenshot({ path: join(opt.shots, name), fullPage: true });
const jobs = (page) => page.$$eval("#export-kinds .job", (rows) => rows.map((r) => ({
  kind: r.closest(".export").dataset.kind, job: r.dataset.job, state: r.dataset.state, text: r.textContent })));
const links = (page, kind) => page.$$eval(`.export[data-kind="${kind}"] .job a`, (as) => as.map((a) => ({
  href: a.getAttribute("href"), text: a.textContent, download: a.getAttribute("download"), bytes: Number(a.dataset.bytes) })));
let browser;
try {
  browser = await openPage({ errors: out.consoleErrors });
  const { page } = browser;
  await page.goto(opt.page);
  const multi = page.locator('#export-kinds button[data-kind="multitrack"]');
  await multi.waitFor({ timeout: 10000 });
  if (opt.live) await whileLive(page, multi);
  else await exportAll(page, multi);
} catch (err) {
  out.error = err.message;
  process.exitCode = 1;
} finally {
  console.log(JSON.stringify(out));
  await browser?.close();
}

// whileLive: the buttons while the meeting is in progress, then the
// message when opt.live's export is refused once it has ended.
async function whileLive(page, multi) {
  out.live = await page.evaluate(() => ({
    disabled: [...document.querySelectorAll("#export-kinds button, #export-range")].map((b) => b.disabled),
    note: document.getElementById("export-note").textContent }));
  await shot(page, "export-live.png");
  for (const deadline = Date.now() + 20000; await multi.isDisabled();) {
    if (Date.now() > deadline) throw new Error("the meeting did not end within 20 s");
    await page.waitForTimeout(1000);
    await page.reload();
    await multi.waitFor({ timeout: 10000 });
  }
  await page.click(`#export-kinds button[data-kind="${opt.live}"]`);
  await page.waitForFunction(() => document.getElementById("export-message").textContent, null, { timeout: 10000 });
  out.refused = await page.textContent("#export-message");
  out.after = await page.$$eval("#export-kinds button", (bs) => bs.map((b) => b.disabled));
  await shot(page, "export-refused.png");
}

// exportAll: a refused start (read token), a multi-track export, a
// cancelled composite, a multi-track export of the clip's range, the
// audio export, and the jobs listed after a reload.
async function exportAll(page, multi) {
  await page.waitForFunction(() => !document.querySelector('#export-kinds button[data-kind="multitrack"]').disabled, null, { timeout: 5000 });

  if (opt["admin-token"]) {
    await multi.click();
    await page.waitForFunction(() => document.getElementById("export-message").textContent, null, { timeout: 10000 });
    out.forbidden = await page.textContent("#export-message");
    await shot(page, "export-forbidden.png");
    await page.fill("#token", opt["admin-token"]);
    await page.locator("#token").dispatchEvent("change");
  }
  await multi.click();
  await page.locator('.export[data-kind="multitrack"] .job[data-state="done"] a').first().waitFor({ timeout: 30000 });
  out.links = await links(page, "multitrack");

  await page.click('#export-kinds button[data-kind="composite"]');
  const row = page.locator('.export[data-kind="composite"] .job').first();
  await row.locator("button.danger").waitFor({ timeout: 10000 });
  out.composite.job = await row.getAttribute("data-job");
  // Its progress and ETA while it runs (polled each second); if they do
  // not show by then, Cancel it anyway (the caller judges the status).
  await row.locator(".job-status", { hasText: "left" }).waitFor({ timeout: 8000 }).catch(() => {});
  out.composite.status = await row.textContent();
  await shot(page, "export-running.png");
  await row.locator("button.danger").click();
  await page.waitForFunction((id) => !document.querySelector(`.job[data-job="${id}"]`), out.composite.job, { timeout: 10000 });
  out.composite.message = await page.textContent("#export-message");

  // The clip's range, 1 s to 3 s: a second multi-track job, listed first.
  await page.fill("#clip-from", "1");
  await page.fill("#clip-to", "3");
  await page.selectOption("#export-range", "clip");
  await multi.click();
  await page.locator('.export[data-kind="multitrack"] .job[data-state="done"]').nth(1).waitFor({ timeout: 30000 });

  // The audio of the whole meeting: the mix and a stem per participant.
  await page.selectOption("#export-range", "all");
  await page.click('#export-kinds button[data-kind="audio"]');
  await page.locator('.export[data-kind="audio"] .job[data-state="done"] a').first().waitFor({ timeout: 30000 });
  out.audio = await links(page, "audio");

  // Reloaded, the page lists the meeting's jobs: the finished ones only.
  await page.reload();
  await page.locator('.export[data-kind="multitrack"] .job a').first().waitFor({ timeout: 10000 });
  // (the list is rendered at once: a cancelled job would be there too)
  out.reloaded = await jobs(page);
  await shot(page, "export-done.png");

  // Delete the clip's export (listed first), through the page's confirm,
  // with the admin token again (the reloaded page took the URL's).
  if (opt["admin-token"]) {
    await page.fill("#token", opt["admin-token"]);
    await page.locator("#token").dispatchEvent("change");
  }
  const clip = page.locator('.export[data-kind="multitrack"] .job').first();
  out.deleted.job = await clip.getAttribute("data-job");
  page.once("dialog", async (d) => {
    out.deleted.confirm = d.message();
    await d.accept();
  });
  await clip.locator("button.danger", { hasText: "Delete" }).click();
  await page.waitForFunction((id) => !document.querySelector(`.job[data-job="${id}"]`), out.deleted.job, { timeout: 10000 });
  out.deleted.message = await page.textContent("#export-message");
}
