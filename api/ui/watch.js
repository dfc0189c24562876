// The WHEP player: a receive-only peer connection that POSTs its offer
// once ICE gathering is done, waits (409 + Retry-After) while the stream is
// not live, and reconnects if the connection drops.
import { ApiError, askToken, authHeaders, deleteSession, describe, el, fmtKbps, header, sentence, serverConfig, sessionURL, show, streamFromPath, waitGathering, withToken } from "/ui/reel.js";

header("");
const stream = streamFromPath("/watch/");
const box = document.getElementById("message");
const video = document.getElementById("video");
const stateBadge = document.getElementById("state");
document.getElementById("name").textContent = stream;
document.title = `${stream} · Watch · Reel`;

// A simulcast stream's layers (the streams API lists them, lowest first):
// "Auto" lets the server follow this viewer's bandwidth, a layer pins it
// (?layer= on the WHEP request, kept in the page's address).
const layerSelect = document.getElementById("layer");
let layers = [];
let pinned = new URLSearchParams(location.search).get("layer") || ""; // low, mid, high or a rid
layerSelect.addEventListener("change", () => {
  pinned = layerSelect.value;
  const u = new URL(location.href);
  if (pinned) u.searchParams.set("layer", pinned);
  else u.searchParams.delete("layer");
  history.replaceState(null, "", u);
  connect();
});

let pc = null;
let session = "";
let retryTimer = 0;
let statsTimer = 0;
let stopped = false;
let generation = 0; // bumps on every (re)connect, so stale callbacks stand down

const overlay = document.getElementById("overlay");
const OVERLAY = { connecting: "Connecting…", "not live": "Waiting for the stream to go live…", offline: "Reconnecting…",
  stopped: "Stopped", error: "Cannot play this stream" };

function setState(text, cls) {
  stateBadge.textContent = text;
  stateBadge.className = "badge " + (cls || "");
  document.body.dataset.state = text;
  overlay.hidden = text === "live";
  overlay.textContent = OVERLAY[text] || "";
  if (text !== "live") document.getElementById("stats").replaceChildren();
}

async function connect() {
  clearTimeout(retryTimer);
  teardown();
  stopped = false;
  const gen = ++generation;
  setState("connecting");
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  const mine = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  // The element gets the stream with its first track: an empty stream
  // would hold back the page's load event for as long as it waits.
  const ms = new MediaStream();
  pc.addEventListener("track", (e) => {
    ms.addTrack(e.track);
    if (video.srcObject !== ms) video.srcObject = ms;
    video.play().catch(() => {});
  });
  pc.addEventListener("connectionstatechange", () => {
    if (gen !== generation) return;
    const st = mine.connectionState;
    if (st === "connected") {
      setState("live", "live");
      show(box, "");
    } else if (st === "failed" || st === "closed" || st === "disconnected") {
      setState("offline");
      if (!stopped) retry(3, st === "disconnected"
        ? "The connection was interrupted (the publisher may have stopped)."
        : "The connection to the server failed.");
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc, 2000);
    if (gen !== generation) return;
    const url = `/whep/${encodeURIComponent(stream)}` + (pinned ? `?layer=${encodeURIComponent(pinned)}` : "");
    let resp;
    try {
      resp = await fetch(url, { method: "POST", headers: authHeaders({ "Content-Type": "application/sdp" }), body: pc.localDescription.sdp });
    } catch (err) {
      throw new ApiError(0, `Cannot reach the Reel server (${err.message}).`, null);
    }
    if (gen !== generation) return;
    if (!resp.ok) throw new ApiError(resp.status, await describe(resp), resp);
    session = sessionURL(resp, url);
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    show(box, "info", "Negotiated; waiting for media…");
    statsTimer = setInterval(updateStats, 1000);
  } catch (err) {
    if (gen !== generation) return;
    teardown();
    failed(err);
  }
}

function failed(err) {
  if (err.status === 409) {
    setState("not live");
    return retry(err.retryAfter || 5, `"${stream}" is not live yet: ${err.message}`);
  }
  if (err.status === 503) return retry(err.retryAfter || 2, err.message);
  setState("error", "failed");
  if (err.status === 401) {
    show(box, "error", err.message + " Enter a token that may watch this stream, then ",
      el("button", { class: "link", onclick: connect }, "try again"), ".");
    askToken(err.message).then((t) => { if (t !== null) connect(); });
    return;
  }
  if (!(err instanceof ApiError)) {
    show(box, "error", "This browser could not set up WebRTC: " + err.message);
    return;
  }
  show(box, "error", err.message, " ", el("button", { class: "link", onclick: connect }, "Try again"));
}

// retry waits secs (counting down in the page) and connects again.
function retry(secs, why) {
  teardown();
  let left = Math.max(1, Math.round(secs));
  const tick = () => {
    if (stopped) return;
    if (left <= 0) return connect();
    show(box, "warn", `${sentence(why)} Trying again in ${left} s…`);
    left--;
    retryTimer = setTimeout(tick, 1000);
  };
  tick();
}

function teardown() {
  clearInterval(statsTimer);
  lastBytes = 0;
  lastTime = 0;
  if (session) deleteSession(session);
  session = "";
  if (pc) pc.close();
  pc = null;
}

function stop() {
  stopped = true;
  generation++;
  clearTimeout(retryTimer);
  teardown();
  video.srcObject = null;
  setState("stopped");
  show(box, "info", "Stopped. ", el("button", { class: "link", onclick: connect }, "Watch again"));
}

let lastBytes = 0, lastTime = 0, ticks = 0;
async function updateStats() {
  if (!pc) return;
  // Every few seconds, ask the API whether the stream is still live: the
  // connection alone takes several seconds to notice a publisher is gone.
  if ((++ticks % 3 === 0 || ticks === 1) && !(await stillLive())) return;
  const report = await pc.getStats();
  let inbound, codec;
  report.forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") inbound = r; });
  if (!inbound) return;
  if (inbound.codecId) codec = report.get(inbound.codecId);
  const now = inbound.timestamp, bytes = inbound.bytesReceived || 0;
  const kbps = lastTime ? ((bytes - lastBytes) * 8) / (now - lastTime) : 0;
  lastBytes = bytes; lastTime = now;
  const stat = (label, value) => el("span", {}, label + " ", el("b", {}, value));
  document.getElementById("stats").replaceChildren(
    stat("Video", codec ? codec.mimeType.replace("video/", "") : "?"),
    stat("Size", video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : "waiting"),
    stat("FPS", inbound.framesPerSecond ? Math.round(inbound.framesPerSecond) : 0),
    stat("Bitrate", fmtKbps(kbps)),
    stat("Lost", inbound.packetsLost || 0));
  showLayer();
}

// showLayer names the layer being received: the one whose size the
// picture has.
function showLayer() {
  const box = document.getElementById("layers");
  box.hidden = layers.length === 0;
  if (!layers.length) return;
  const now = layers.find((l) => l.width === video.videoWidth && l.height === video.videoHeight);
  const mode = pinned ? "pinned" : "auto";
  document.getElementById("current-layer").textContent = now ? `${now.rid}, ${now.width}×${now.height} (${mode})` : `? (${mode})`;
  document.body.dataset.layer = now ? now.rid : "";
}

// setLayers fills the choice from the streams API's layers.
function setLayers(list) {
  const key = (ls) => ls.map((l) => `${l.rid}:${l.width}x${l.height}`).join(",");
  if (key(list) === key(layers)) return;
  layers = list;
  // A rank name pins by rank: low, high, and mid the middle one (the
  // lower of two), as the server reads it.
  const byRank = { low: list[0], mid: list[Math.floor((list.length - 1) / 2)], high: list[list.length - 1] };
  const opts = [el("option", { value: "" }, "Auto (fits your bandwidth)")];
  list.forEach((l) => {
    opts.push(el("option", { value: l.rid }, `${l.rid}: ${l.width}×${l.height}, ${fmtKbps(l.bitrate_kbps)}`));
  });
  layerSelect.replaceChildren(...opts);
  const shown = byRank[pinned] ? byRank[pinned].rid : pinned;
  layerSelect.value = list.some((l) => l.rid === shown) ? shown : "";
  showLayer();
}

async function stillLive() {
  const gen = generation;
  try {
    const resp = await fetch(`/api/v1/streams/${encodeURIComponent(stream)}`, { headers: authHeaders() });
    if (resp.ok) {
      const info = await resp.json();
      const videoTrack = (info.tracks || []).find((t) => t.kind === "video");
      setLayers((videoTrack && videoTrack.layers) || []);
    }
    if (resp.status !== 404 || gen !== generation || stopped) return true;
  } catch {
    return true; // the connection's own state will tell
  }
  setState("offline");
  retry(2, `The publisher of "${stream}" stopped.`);
  return false;
}

async function links() {
  const cfg = await serverConfig();
  const name = encodeURIComponent(stream);
  const rows = [];
  if (cfg.rtsp_port) rows.push(el("p", {}, "RTSP (VLC, ffplay): ", el("code", {}, `rtsp://${location.hostname}:${cfg.rtsp_port}/${stream}`)));
  if (cfg.hls) rows.push(el("p", {}, "HLS: ", el("code", {}, location.origin + withToken(`/hls/${name}/index.m3u8`)),
    el("span", { class: "muted" }, " (not for VP8 streams)")));
  rows.push(el("p", {}, "WHEP endpoint: ", el("code", {}, `${location.origin}/whep/${name}`)));
  rows.push(el("p", {}, el("a", { href: `/recordings?stream=${name}` }, "Recordings of this stream")));
  document.getElementById("links").replaceChildren(...rows);
}

document.getElementById("unmute").addEventListener("click", (e) => {
  video.muted = !video.muted;
  e.target.textContent = video.muted ? "Unmute" : "Mute";
  video.play().catch(() => {});
});
document.getElementById("reconnect").addEventListener("click", connect);
document.getElementById("stop").addEventListener("click", stop);
window.addEventListener("pagehide", () => { stopped = true; teardown(); });

if (!stream) {
  setState("error", "failed");
  show(box, "error", "No stream named in the address: open /watch/<stream>, or pick a stream on the ",
    el("a", { href: "/" }, "live page"), ".");
} else {
  links();
  connect();
}
