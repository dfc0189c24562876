// One meeting occurrence: a lane per participant on the meeting's
// timeline (presence, files, joins, leaves, reconnects, gaps), and a grid
// of players that play in sync from one scrubber. The meeting has one
// clock, t; a recording placed at offset o plays at t - o, and is paused
// and hidden while t lies outside it. When a player has to wait (a seek,
// a buffer running dry) the clock waits for it, so the others do not run
// ahead; small drift is caught up by playback rate, large by seeking.
import { ApiError, apiWithToken, el, fmtBytes, fmtDuration, fmtTime, header, show, streamFromPath, withToken } from "/ui/reel.js";
import { MP4Source, mp4Type } from "/ui/mp4source.js";
import { initExports } from "/ui/exports.js";

header("/meetings");
const $ = (id) => document.getElementById(id);
const box = $("message"), scrubber = $("scrubber"), playBtn = $("play");
const id = streamFromPath("/meetings");

// Drift beyond SEEK_DRIFT is corrected by seeking; beyond RATE_DRIFT by
// playing a little faster or slower.
const SEEK_DRIFT = 0.25, RATE_DRIFT = 0.04;

let meeting = null; // GET /api/v1/meetings/{id}
let duration = 0; // seconds
let players = []; // {rec, video, tile, offset, length}
let lanes = []; // playhead elements
const clock = { playing: false, base: 0, at: 0, stalled: false };

// now is the meeting's time, in seconds from its start.
function now() {
  return clock.playing && !clock.stalled ? clock.base + (performance.now() - clock.at) / 1000 : clock.base;
}
// For the console and the browser test: the meeting's clock.
window.reelMeetingClock = now;

function setBase(t) {
  clock.base = Math.min(Math.max(t, 0), duration);
  clock.at = performance.now();
}

function seek(t) {
  setBase(t);
  sync(true);
}

function play() {
  if (now() >= duration) setBase(0);
  else setBase(now());
  clock.playing = true;
  playBtn.textContent = "Pause";
  sync(true);
}

function pause() {
  setBase(now());
  clock.playing = false;
  clock.stalled = false;
  playBtn.textContent = "Play";
  sync(true);
}

// sync puts every player where the clock says; force seeks them all.
function sync(force) {
  const t = now();
  let waiting = false;
  for (const p of players) {
    const local = t - p.offset;
    const inside = local >= 0 && local < p.length;
    p.tile.classList.toggle("outside", !inside);
    const v = p.video;
    if (!inside || v.error || p.failed) {
      if (!v.paused) v.pause();
      continue;
    }
    const drift = v.currentTime - local;
    if (force || Math.abs(drift) > SEEK_DRIFT) {
      p.source?.ensure(local);
      v.currentTime = local;
    }
    p.source?.keepUp(local);
    if (v.seeking || v.readyState < HTMLMediaElement.HAVE_FUTURE_DATA) waiting = true;
    v.playbackRate = clock.playing && !force && Math.abs(drift) > RATE_DRIFT ? (drift > 0 ? 0.95 : 1.05) : 1;
  }
  // While a player waits, the clock and the others wait for it.
  if (clock.playing && waiting !== clock.stalled) {
    setBase(now());
    clock.stalled = waiting;
  }
  const run = clock.playing && !clock.stalled;
  for (const p of players) {
    const local = now() - p.offset;
    if (run && local >= 0 && local < p.length && !p.video.error && !p.failed) {
      if (p.video.paused) p.video.play().catch(() => { /* shown by the error handler */ });
    } else if (!p.video.paused) p.video.pause();
  }
  draw(now());
}

function draw(t) {
  if (document.activeElement !== scrubber) scrubber.value = t.toFixed(2);
  $("clock").textContent = `${fmtDuration(t * 1000)} / ${fmtDuration(duration * 1000)}`;
  const pct = duration ? (100 * t) / duration + "%" : "0";
  for (const h of lanes) h.style.left = pct;
}

function tick() {
  if (clock.playing && now() >= duration) pause();
  else if (meeting) sync(false);
  requestAnimationFrame(tick);
}

// pos places a bar or a mark on a lane: CSSOM, which the page's Content
// Security Policy allows (a style attribute it would refuse).
function pos(e, fromMS, toMS) {
  const total = duration * 1000 || 1;
  e.style.left = (100 * Math.max(fromMS, 0)) / total + "%";
  if (toMS !== undefined) e.style.width = Math.max((100 * (toMS - Math.max(fromMS, 0))) / total, 0.3) + "%";
  return e;
}

const EVENT_LABEL = { join: "joined", leave: "left", reconnect: "reconnected", loss: "lost packets (a gap)", keyframe_unanswered: "a keyframe was asked for and not sent" };

function lane(p) {
  const man = meeting.manifest;
  const track = el("div", { class: "lane-track", title: "Click to go there" });
  for (const s of p.sessions || []) {
    const end = s.leave_offset_ms ?? duration * 1000; // still there: to now
    track.append(pos(el("div", { class: "presence", title: `present ${fmtDuration(s.join_offset_ms)} – ${fmtDuration(end)}` }), s.join_offset_ms, end));
  }
  for (const r of man.recordings.filter((r) => r.participant === p.name && r.state !== "deleted")) {
    track.append(pos(el("div", { class: "file", title: `${r.file}: ${fmtDuration(r.offset_ms)} – ${fmtDuration(r.offset_ms + r.duration_ms)}` }),
      r.offset_ms, r.offset_ms + r.duration_ms));
  }
  for (const e of man.events.filter((e) => e.participant === p.name && EVENT_LABEL[e.type])) {
    const what = EVENT_LABEL[e.type] + (e.lost ? ` (${e.lost} packets, ${e.kind})` : "");
    track.append(pos(el("div", { class: "mark " + e.type, title: `${fmtDuration(e.offset_ms)} ${p.name} ${what}` }), e.offset_ms));
  }
  const head = el("div", { class: "playhead" });
  lanes.push(head);
  track.append(head);
  track.addEventListener("click", (ev) => {
    const r = track.getBoundingClientRect();
    seek(((ev.clientX - r.left) / r.width) * duration);
  });
  return el("div", { class: "lane", "data-participant": p.name }, el("div", { class: "lane-name" }, p.name), track);
}

// A WebM recording plays as it is (seeking by Range); a Matroska one
// (H.264, H.265), which browsers do not play, as MP4 through MP4Source.
function fileURL(r) {
  return `/api/v1/recordings/${encodeURIComponent(r.id)}/file`;
}

function player(r, n) {
  const video = el("video", { playsinline: true, preload: "auto", "data-recording": r.id, "data-participant": r.participant,
    "data-offset": String(r.offset_ms / 1000) });
  const note = el("div", { class: "small muted tile-note" });
  const tile = el("figure", { class: "tile", "data-recording": r.id },
    el("div", { class: "player" }, video, el("div", { class: "overlay" }, "not in the meeting now")),
    el("figcaption", {}, el("b", {}, r.participant), n > 1 ? ` (part ${n})` : "",
      ` · ${fmtDuration(r.offset_ms)} – ${fmtDuration(r.offset_ms + r.duration_ms)} · ${(r.container || "").toUpperCase()} · ${fmtBytes(r.bytes)}`),
    note);
  const failed = (why) => {
    p.failed = true; // the clock does not wait for it
    show(note, "error", "This recording cannot be played here: " + why);
  };
  video.addEventListener("error", () => failed(`media error ${video.error?.code} ${video.error?.message || ""}.`));
  const p = { rec: r, video, tile, offset: r.offset_ms / 1000, length: r.duration_ms / 1000, source: null };
  const type = mp4Type(r.tracks);
  // data-source: what the player loads (an MSE player's src is a blob:).
  video.dataset.source = fileURL(r) + (r.container === "webm" ? "" : "?format=mp4");
  if (r.container === "webm") video.src = withToken(fileURL(r));
  else if (window.MediaSource && MediaSource.isTypeSupported(type)) p.source = new MP4Source(video, fileURL(r) + "?format=mp4", type, p.length, (err) => failed(err.message));
  else failed(`this browser does not play ${type} (a ${r.container} recording, remuxed to MP4).`);
  return p;
}

function renderHold() {
  const h = meeting.hold;
  $("hold").checked = !!h;
  $("hold-badge").hidden = !h;
  $("hold-badge").title = h ? `Legal hold since ${fmtTime(h.since)}: ${h.reason}` : "";
  $("hold-reason").value = h ? h.reason : "";
}

async function toggleHold() {
  const on = $("hold").checked;
  const reason = $("hold-reason").value.trim();
  if (on && !reason) {
    $("hold").checked = false;
    show(box, "warn", "A legal hold needs a reason: write it in the field beside the switch, then switch the hold on.");
    $("hold-reason").focus();
    return;
  }
  try {
    const resp = await apiWithToken(`/api/v1/meetings/${encodeURIComponent(id)}/hold`, {
      method: on ? "PUT" : "DELETE", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ reason }) });
    meeting.hold = on ? await resp.json() : null;
    show(box, "ok", on ? `This meeting is under legal hold: it is kept from retention and deletion.` : "The legal hold is lifted.");
  } catch (err) {
    const admin = err instanceof ApiError && err.status === 403 ? " (put an admin token in the Token field)" : "";
    show(box, "error", "Cannot change the legal hold: " + err.message + admin);
  }
  renderHold();
}

function clipLink() {
  const from = Number($("clip-from").value) || 0, to = Number($("clip-to").value) || duration;
  const q = new URLSearchParams({ from: String(from), to: String(to) });
  $("clip").href = withToken(meeting.zip_url + "?" + q);
  $("clip").setAttribute("download", "");
}

async function load() {
  if (!id) {
    show(box, "error", "No meeting in the address: open one from the meetings page.");
    return;
  }
  try {
    meeting = await (await apiWithToken(`/api/v1/meetings/${encodeURIComponent(id)}`)).json();
  } catch (err) {
    show(box, "error", "Cannot open the meeting: " + err.message);
    return;
  }
  const man = meeting.manifest;
  duration = (man.state === "ended" ? man.duration_ms : Date.now() - Date.parse(man.start)) / 1000;
  for (const r of man.recordings) duration = Math.max(duration, (r.offset_ms + r.duration_ms) / 1000);
  document.title = `${man.meeting} · Meetings · Reel`;
  $("title").textContent = man.meeting;
  $("meta").textContent = `${fmtTime(man.start)} · ${man.state === "live" ? "in progress" : fmtDuration(man.duration_ms)} · ` +
    `${man.participants.length} participants · ${man.id}` + (meeting.manifest_sha256 ? ` · manifest sha256 ${meeting.manifest_sha256.slice(0, 16)}…` : "");
  $("manifest").href = withToken(meeting.manifest_url);
  $("zip").href = withToken(meeting.zip_url);
  $("clip-to").value = duration.toFixed(1);
  clipLink();
  renderHold();
  scrubber.max = duration.toFixed(2);
  $("timeline").replaceChildren(...man.participants.map(lane));
  const seen = {};
  players = man.recordings.filter((r) => r.state !== "deleted" && r.state !== "recording")
    .map((r) => player(r, (seen[r.participant] = (seen[r.participant] || 0) + 1)));
  $("players").replaceChildren(...players.map((p) => p.tile));
  $("tools").hidden = $("stage").hidden = false;
  initExports(meeting, () => [Number($("clip-from").value) || 0, Number($("clip-to").value) || duration]);
  if (!players.length) show(box, "info", "This meeting has no finished recording to play.");
  sync(true);
  requestAnimationFrame(tick);
}

playBtn.addEventListener("click", () => (clock.playing ? pause() : play()));
scrubber.addEventListener("input", () => seek(Number(scrubber.value)));
scrubber.addEventListener("change", () => scrubber.blur());
$("hold").addEventListener("change", toggleHold);
$("clip-from").addEventListener("input", clipLink);
$("clip-to").addEventListener("input", clipLink);
load();
