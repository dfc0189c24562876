// chromium.mjs: the headless Chromium of the page drivers (video.mjs,
// meeting.mjs, exports.mjs), with a profile of its own.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// openPage launches Chromium and opens a page. Its console errors and
// warnings go to stderr; when errors is an array, the console errors and
// uncaught exceptions are also pushed onto it. close() ends Chromium and
// removes the profile.
export async function openPage({ errors } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "reel-chromium-"));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  const close = async () => {
    await ctx.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  const page = await ctx.newPage().catch(async (err) => { await close(); throw err; });
  page.on("console", (m) => {
    if (errors && m.type() === "error") errors.push(m.text());
    if (m.type() === "error" || m.type() === "warning") console.error(`[page console.${m.type()}]`, m.text());
  });
  if (errors) page.on("pageerror", (e) => errors.push("page error: " + e.message));
  return { page, close };
}
