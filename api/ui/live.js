// The live page: every stream on the hub with its codecs, bitrates,
// viewers and the links to watch it over each protocol.
import { api, el, fmtKbps, fmtTime, header, serverConfig, show, apiWithToken, STREAM_NAME } from "/ui/reel.js";

header("/");
const box = document.getElementById("message");
const list = document.getElementById("streams");
const empty = document.getElementById("empty");
document.getElementById("whip-url").textContent = location.origin + "/whip/<stream>";
document.getElementById("go-publish").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = new FormData(e.target).get("stream").trim();
  if (STREAM_NAME.test(name)) location.href = "/publish/" + encodeURIComponent(name);
});

const POLL_MS = 2000;

// The list needs a read token when auth is on: the first load asks for
// one (and keeps it for the tab); later polls send the stored token.
let asked = false;

async function refresh() {
  try {
    const request = asked ? api("/api/v1/streams") : apiWithToken("/api/v1/streams");
    asked = true;
    const [cfg, resp] = await Promise.all([serverConfig(), request]);
    const { streams, node } = await resp.json();
    render(streams || [], cfg, node);
    if (box.classList.contains("error")) show(box, "");
    document.getElementById("updated").textContent = "Last update " + new Date().toLocaleTimeString() + ".";
  } catch (err) {
    show(box, "error", "Cannot list the live streams: " + err.message);
  }
}

function render(streams, cfg, node) {
  empty.hidden = streams.length > 0;
  list.replaceChildren(...streams.map((s) => card(s, cfg, node)));
}

// In a cluster every stream names the node that publishes it (node is
// this one's name); viewers anywhere watch it through a relay.
function card(s, cfg, node) {
  const name = encodeURIComponent(s.name);
  const tracks = (s.tracks || []).map((t) => `${t.codec} ${fmtKbps(t.bitrate_kbps)}`).join(", ") || "no tracks yet";
  const v = s.viewers || {};
  const viewers = ["whep", "rtsp", "hls"].map((p) => `${p.toUpperCase()} ${v[p] || 0}`).join(" · ");
  const rtsp = cfg.rtsp_port ? `rtsp://${location.hostname}:${cfg.rtsp_port}/${s.name}` : "";
  const hls = s.outputs?.hls || {};
  let hlsCell;
  if (!cfg.hls) hlsCell = el("span", { class: "muted" }, "HLS is turned off on this server");
  else if (!hls.available) hlsCell = el("span", { class: "muted" }, hls.reason || "HLS cannot carry this stream");
  else hlsCell = el("code", {}, `${location.origin}/hls/${name}/index.m3u8`);
  const recording = (v.record || 0) > 0;
  return el("article", { class: "card stream", "data-stream": s.name },
    el("h2", {}, el("span", { class: "badge live" }, "live"), s.name,
      recording ? el("span", { class: "badge recording", title: "This stream is being recorded" }, "● rec") : null),
    el("dl", {},
      el("dt", {}, "Tracks"), el("dd", {}, tracks),
      el("dt", {}, "Viewers"), el("dd", {}, viewers),
      el("dt", {}, "Since"), el("dd", {}, fmtTime(s.started), s.protocol ? ` via ${s.protocol.toUpperCase()}` : ""),
      s.node ? el("dt", {}, "Node") : null,
      s.node ? el("dd", {}, el("code", {}, s.node), s.node === node ? " (this node)" : " (relayed here when watched)") : null,
      el("dt", {}, "RTSP"), el("dd", {}, rtsp ? el("code", {}, rtsp) : el("span", { class: "muted" }, "RTSP is turned off on this server")),
      el("dt", {}, "HLS"), el("dd", {}, hlsCell)),
    el("div", { class: "links" },
      el("a", { class: "button primary", href: `/watch/${name}` }, "Watch (WebRTC)"),
      el("a", { class: "button", href: `/recordings?stream=${name}` }, "Recordings"),
      el("button", { class: "danger", onclick: () => kick(s.name) }, "Stop publisher")));
}

async function kick(stream) {
  if (!confirm(`Disconnect the publisher of "${stream}"? Its recording is finalized.`)) return;
  try {
    await apiWithToken(`/api/v1/streams/${encodeURIComponent(stream)}`, { method: "DELETE" });
    show(box, "ok", `The publisher of "${stream}" was disconnected.`);
    refresh();
  } catch (err) {
    show(box, "error", `Cannot stop "${stream}": ${err.message}`);
  }
}

refresh();
setInterval(refresh, POLL_MS);
