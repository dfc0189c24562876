// The recordings page: the catalog with a stream and date filter, WebM
// playback in the page, downloads and deletion.
import { ApiError, apiWithToken, dayBound, el, fmtBytes, fmtDuration, fmtTime, header, sentence, show, withToken } from "/ui/reel.js";

header("/recordings");
const $ = (id) => document.getElementById(id);
const box = $("message"), rows = $("rows"), form = $("filter"), more = $("more");
const player = $("player"), playerCard = $("player-card"), playerBox = $("player-message");

let cursor = "";
let loading = false;
let playing = "";

// The filter lives in the address, so a filtered list can be bookmarked.
{
  const q = new URLSearchParams(location.search);
  for (const k of ["stream", "from", "to"]) if (q.get(k)) form.elements[k].value = q.get(k);
}

function query(withCursor) {
  const f = new FormData(form);
  const q = new URLSearchParams();
  if (f.get("stream").trim()) q.set("stream", f.get("stream").trim());
  if (f.get("from")) q.set("from", dayBound(f.get("from"), false));
  if (f.get("to")) q.set("to", dayBound(f.get("to"), true));
  q.set("limit", "50");
  if (withCursor && cursor) q.set("cursor", cursor);
  return q;
}

async function load(append) {
  if (loading) return;
  loading = true;
  try {
    const resp = await apiWithToken("/api/v1/recordings?" + query(append));
    const page = await resp.json();
    const recs = page.recordings || [];
    cursor = page.next_cursor || "";
    if (!append) rows.replaceChildren();
    rows.append(...recs.map(row));
    $("empty").hidden = rows.children.length > 0;
    more.hidden = !cursor;
    if (page.recording_paused_reason) show(box, "warn", "New recordings are paused: " + sentence(page.recording_paused_reason));
    else if (!box.classList.contains("ok")) show(box, "");
  } catch (err) {
    show(box, "error", "Cannot list the recordings: " + err.message);
    $("empty").hidden = true;
  } finally {
    loading = false;
  }
}

function fileURL(rec) {
  return withToken(rec.file_url || `/api/v1/recordings/${encodeURIComponent(rec.id)}/file`);
}

// playURL is what the player loads: a WebM file as it is, which browsers
// play; a Matroska one (H.264, H.265), which they do not, remuxed to MP4
// by the server.
function playURL(rec) {
  if (rec.container === "webm") return fileURL(rec);
  return withToken((rec.file_url || `/api/v1/recordings/${encodeURIComponent(rec.id)}/file`) + "?format=mp4");
}

function row(rec) {
  const done = rec.state !== "recording";
  const fmt = `${(rec.container || "?").toUpperCase()} · ${(rec.codecs || []).join(", ")}` +
    (rec.width ? ` · ${rec.width}×${rec.height}` : "");
  const actions = [];
  if (done) actions.push(el("button", { class: "primary", onclick: () => play(rec) }, "Play"));
  if (done) actions.push(el("a", { class: "button", href: fileURL(rec), download: rec.id + "." + rec.container }, "Download"));
  if (done) actions.push(el("button", { class: "danger", onclick: () => remove(rec) }, "Delete"));
  const state = el("span", { class: "badge " + rec.state, title: rec.error || "" }, rec.state);
  return el("tr", { "data-id": rec.id, "data-state": rec.state },
    el("td", {}, el("a", { href: `/recordings?stream=${encodeURIComponent(rec.stream)}` }, rec.stream)),
    el("td", {}, fmtTime(rec.start)),
    el("td", {}, rec.state === "recording" ? "in progress" : fmtDuration(rec.duration_ms)),
    el("td", { class: "small" }, fmt),
    el("td", {}, fmtBytes(rec.size)),
    el("td", {}, state, rec.error ? el("div", { class: "small muted" }, rec.error) : null),
    el("td", { class: "actions" }, actions));
}

function play(rec) {
  playing = rec.id;
  playerCard.hidden = false;
  $("player-title").textContent = `${rec.stream} · ${fmtTime(rec.start)}`;
  show(playerBox, "");
  player.src = playURL(rec);
  player.play().catch(() => { /* autoplay may be refused; the controls remain */ });
  playerCard.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

// A recording that cannot play: say why, with the server's word if the
// file request itself failed.
player.addEventListener("error", async () => {
  if (!player.src) return;
  const codes = { 1: "playback was aborted", 2: "a network error interrupted the download", 3: "the browser could not decode the file", 4: "the browser cannot play this file or it could not be fetched" };
  let why = codes[player.error?.code] || "playback failed";
  try {
    const resp = await fetch(player.src, { method: "GET", headers: { Range: "bytes=0-0" } });
    if (resp.ok) resp.body?.cancel(); // the MP4 form ignores Range: do not fetch it all
    if (!resp.ok) {
      const p = await resp.json().catch(() => ({}));
      why = p.detail || `the server answered ${resp.status}`;
      if (resp.status === 401) why += " (set a token in the Token field and press Play again)";
    }
  } catch { /* keep the media error */ }
  show(playerBox, "error", "This recording cannot be played: " + why + ".");
});

$("player-close").addEventListener("click", () => {
  player.pause();
  player.removeAttribute("src");
  player.load();
  playing = "";
  playerCard.hidden = true;
});

async function remove(rec) {
  if (!confirm(`Delete the recording of "${rec.stream}" from ${fmtTime(rec.start)}? This cannot be undone.`)) return;
  try {
    await apiWithToken(`/api/v1/recordings/${encodeURIComponent(rec.id)}`, { method: "DELETE" });
    if (playing === rec.id) $("player-close").click();
    rows.querySelector(`tr[data-id="${CSS.escape(rec.id)}"]`)?.remove();
    $("empty").hidden = rows.children.length > 0;
    show(box, "ok", `Deleted the recording of "${rec.stream}" from ${fmtTime(rec.start)}.`);
  } catch (err) {
    const msg = err instanceof ApiError && err.status === 409 ? "It is still being recorded: " + err.message : err.message;
    show(box, "error", "Cannot delete the recording: " + msg);
  }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = query(false);
  q.delete("limit");
  const f = new FormData(form);
  for (const k of ["from", "to"]) if (f.get(k)) q.set(k, f.get(k)); // the address keeps the dates as typed
  history.replaceState(null, "", "/recordings" + (q.toString() ? "?" + q : ""));
  cursor = "";
  load(false);
});
$("clear").addEventListener("click", () => {
  form.reset();
  history.replaceState(null, "", "/recordings");
  cursor = "";
  load(false);
});
$("refresh").addEventListener("click", () => { cursor = ""; load(false); });
more.addEventListener("click", () => load(true));
load(false);
