// Plays media in a <video> element of headless Chromium and reports, as
// one JSON line, how far it got: currentTime, duration, picture size,
// decoded frames, the media error if any, and whether the browser says it
// can play the type.
//
//   node video.mjs --src <media URL> [--seconds 2] [--type 'video/mp4; codecs="..."']
//   node video.mjs --page <recordings page URL> --row <recording id> [--seconds 2]
//
// The first plays the URL in a bare <video>; the second presses Play on
// the recording's row of Reel's recordings page and watches its player.
// Environment: CHROMIUM (default /usr/bin/chromium). Exits 0 once the
// video has played that many seconds; 1 on a media error or after 30 s.
import { openPage } from "./chromium.mjs";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: { src: { type: "string" }, page: { type: "string" }, row: { type: "string" },
    seconds: { type: "string", default: "2" }, type: { type: "string", default: "" } },
});
const seconds = Number(opt.seconds);
if (!opt.src && !(opt.page && opt.row)) {
  console.error("usage: node video.mjs --src <media URL> | --page <recordings page URL> --row <id>  [--seconds 2] [--type T]");
  process.exit(2);
}
let browser;
try {
  browser = await openPage();
  const { page } = browser;
  const sel = opt.src ? "#v" : "#player";
  if (opt.src) {
    await page.setContent(`<video id="v" muted playsinline></video>`);
    await page.$eval("#v", (v, src) => { v.src = src; v.play().catch(() => {}); }, opt.src);
  } else {
    await page.goto(opt.page);
    await page.locator(`tr[data-id="${opt.row}"] button`, { hasText: "Play" }).click({ timeout: 10000 });
    await page.$eval("#player", (v) => { v.muted = true; v.play().catch(() => {}); });
  }
  const state = () => page.$eval(sel, (v, type) => ({
    currentTime: v.currentTime,
    duration: Number.isFinite(v.duration) ? v.duration : String(v.duration),
    width: v.videoWidth,
    height: v.videoHeight,
    frames: v.getVideoPlaybackQuality().totalVideoFrames,
    error: v.error ? `${v.error.code} ${v.error.message}` : "",
    canPlayType: type ? v.canPlayType(type) : "",
    src: v.currentSrc,
  }), opt.type);
  const ok = await page.waitForFunction(([sel, s]) => {
    const v = document.querySelector(sel);
    return v.error || v.ended || v.currentTime >= s;
  }, [sel, seconds], { timeout: 30000 }).then(() => true, () => false);
  const st = await state();
  console.log(JSON.stringify(st));
  process.exitCode = ok && !st.error && st.currentTime >= seconds ? 0 : 1;
} catch (err) {
  console.error("cannot play in Chromium:", err.message);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
