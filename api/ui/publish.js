// The browser publisher: camera+mic or a screen, sent over WHIP with the
// offer POSTed at once and the ICE candidates trickled by PATCH; Stop is
// the session's DELETE, which finalizes the recording.
import { ApiError, Trickle, authHeaders, deleteSession, describe, el, fmtKbps, getToken, header, sessionURL, setToken, show, streamFromPath, STREAM_NAME } from "/ui/reel.js";

header("/publish");
const $ = (id) => document.getElementById(id);
const box = $("message"), preview = $("preview"), stateBadge = $("state");
const nameInput = $("stream"), codecSelect = $("codec"), tokenInput = $("pubtoken");
const startBtn = $("start"), stopBtn = $("stop"), watchLink = $("watch");

nameInput.value = streamFromPath("/publish/");
tokenInput.value = getToken();
tokenInput.addEventListener("change", () => setToken(tokenInput.value));

let pc = null, media = null, session = "", statsTimer = 0, generation = 0;

// The codecs this browser can send, offered as a choice, H.264 first. The
// chosen one is offered first and the others after it: Reel answers with
// the first offered codec it accepts (unless its operator made the
// server's order win), so the choice is what the stream gets.
const CODECS = [
  // mime, name, what the choice means for the recording and HLS.
  ["video/h264", "H.264", "recorded as Matroska (.mkv); plays over HLS, WHEP and RTSP"],
  ["video/vp8", "VP8", "recorded as WebM (.webm, plays in the browser); no HLS (HLS cannot carry VP8), WHEP and RTSP work"],
  ["video/vp9", "VP9", "recorded as WebM (.webm); plays over HLS, WHEP and RTSP"],
  ["video/av1", "AV1", "recorded as WebM (.webm); plays over HLS, WHEP and RTSP; encoding costs the most CPU"],
  ["video/h265", "H.265", "recorded as Matroska (.mkv); plays over HLS and RTSP; few browsers can watch it over WHEP"],
];
const HELPERS = ["video/rtx", "video/red", "video/ulpfec", "video/flexfec-03"];
const MEANING = Object.fromEntries(CODECS.map(([mime, name, means]) => [mime, `${name}: ${means}.`]));
{
  const can = new Set((RTCRtpSender.getCapabilities?.("video")?.codecs || []).map((c) => c.mimeType.toLowerCase()));
  for (const [mime, name] of CODECS) {
    if (can.has(mime)) codecSelect.append(el("option", { value: mime }, name));
  }
  const wanted = new URLSearchParams(location.search).get("codec");
  if (wanted && can.has("video/" + wanted.toLowerCase())) codecSelect.value = "video/" + wanted.toLowerCase();
  const note = () => { $("codec-note").textContent = (MEANING[codecSelect.value] || "") + " The others are offered after it."; };
  codecSelect.addEventListener("change", note);
  note();
}

function setState(text, cls) {
  stateBadge.textContent = text;
  stateBadge.className = "badge " + (cls || "");
  document.body.dataset.state = text;
}

async function getMedia(source) {
  try {
    if (source === "screen") {
      if (!navigator.mediaDevices?.getDisplayMedia) throw new Error("this browser cannot share the screen");
      return await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: true });
    }
    if (!navigator.mediaDevices?.getUserMedia) throw new Error("camera access needs HTTPS or localhost");
    try {
      return await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: true });
    } catch (err) {
      if (err.name !== "NotFoundError" && err.name !== "NotReadableError") throw err;
      // No microphone (or no camera): publish what there is.
      return await navigator.mediaDevices.getUserMedia({ video: true }).catch(() => navigator.mediaDevices.getUserMedia({ audio: true }));
    }
  } catch (err) {
    const why = {
      NotAllowedError: "access was denied; allow the camera/microphone (or screen) for this site and try again",
      NotFoundError: "no camera or microphone was found",
      NotReadableError: "the camera or microphone is in use by another program",
      OverconstrainedError: "the camera cannot provide the requested format",
    }[err.name] || err.message;
    throw new Error("Cannot capture media: " + why + ".");
  }
}

async function start(e) {
  e.preventDefault();
  const stream = nameInput.value.trim();
  if (!STREAM_NAME.test(stream)) {
    show(box, "error", "Stream names are 1-128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit.");
    return;
  }
  setToken(tokenInput.value);
  const gen = ++generation;
  lockForm(true);
  stopBtn.disabled = false;
  setState("starting");
  show(box, "info", "Capturing…");
  try {
    media = await getMedia($("source").value);
    preview.srcObject = media;
    for (const t of media.getTracks()) t.addEventListener("ended", () => { if (gen === generation) stop("The capture ended (the screen share or camera was stopped)."); });
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    const mine = pc;
    const trickle = new Trickle(pc, (err) => console.warn("trickle:", err.message));
    for (const track of media.getTracks()) {
      const init = { direction: "sendonly", streams: [media] };
      if (track.kind === "video" && $("simulcast").value === "3") {
        // Three layers, lowest first; Reel ranks them by what it receives.
        init.sendEncodings = [{ rid: "q", scaleResolutionDownBy: 4 }, { rid: "h", scaleResolutionDownBy: 2 }, { rid: "f" }];
      }
      const tr = pc.addTransceiver(track, init);
      if (track.kind === "video" && codecSelect.value) preferCodec(tr, codecSelect.value);
    }
    pc.addEventListener("connectionstatechange", () => {
      if (gen !== generation) return;
      const st = mine.connectionState;
      if (st === "connected") {
        setState("live", "live");
        show(box, "ok", `"${stream}" is live. `, el("a", { href: `/watch/${encodeURIComponent(stream)}`, target: "_blank", rel: "opener" }, "Watch it"), ".");
      } else if (st === "failed" || st === "disconnected" || st === "closed") {
        stop(st === "failed" ? "The connection to the server failed." : "The server ended the session (an administrator may have stopped it).");
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    show(box, "info", "Sending the offer…");
    const url = `/whip/${encodeURIComponent(stream)}`;
    let resp;
    try {
      resp = await fetch(url, { method: "POST", headers: authHeaders({ "Content-Type": "application/sdp" }), body: pc.localDescription.sdp });
    } catch (err) {
      throw new ApiError(0, `Cannot reach the Reel server (${err.message}).`, null);
    }
    if (!resp.ok) throw new ApiError(resp.status, await describe(resp), resp);
    if (gen !== generation) return deleteSession(sessionURL(resp, url));
    session = sessionURL(resp, url);
    const answer = await resp.text();
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    trickle.start(session, resp.headers.get("ETag") || "*");
    const codec = answerCodec(answer);
    document.body.dataset.codec = codec;
    const meaning = MEANING["video/" + codec.toLowerCase()];
    show(box, "info", `Connecting… (video codec ${codec || "none"}${meaning ? "; " + meaning.slice(meaning.indexOf(":") + 2, -1) : ""})`);
    watchLink.href = `/watch/${encodeURIComponent(stream)}`;
    watchLink.hidden = false;
    statsTimer = setInterval(updateStats, 1000);
  } catch (err) {
    if (gen !== generation) return;
    let msg = err.message;
    if (err.status === 401) msg += " Enter a publish token or this stream's key in \"Token / stream key\".";
    if (err.status === 409) msg = `"${stream}" is already live: ${err.message}`;
    stop(msg);
  }
}

// lockForm keeps the settings fixed while a session runs.
function lockForm(running) {
  for (const e of [startBtn, nameInput, codecSelect, tokenInput, $("source"), $("simulcast")]) e.disabled = running;
  stopBtn.disabled = !running;
}

// preferCodec offers mime first, then every other codec in the browser's
// own order, then the helpers (RTX, RED, FEC).
function preferCodec(transceiver, mime) {
  const all = RTCRtpSender.getCapabilities("video").codecs;
  const is = (c, m) => c.mimeType.toLowerCase() === m;
  const helper = (c) => HELPERS.some((h) => is(c, h));
  transceiver.setCodecPreferences([
    ...all.filter((c) => is(c, mime)),
    ...all.filter((c) => !is(c, mime) && !helper(c)),
    ...all.filter(helper),
  ]);
}

// answerCodec is the video codec the server chose: the first payload type
// of the answer's video section.
function answerCodec(sdp) {
  const m = sdp.match(/^m=video \d+ \S+ (\d+)/m);
  if (!m) return "";
  const rtpmap = sdp.match(new RegExp(`^a=rtpmap:${m[1]} ([^/\\s]+)`, "m"));
  return rtpmap ? rtpmap[1] : "";
}

// stop ends the session (DELETE) and the capture. why, when given, says
// why it stopped on its own.
async function stop(why) {
  generation++;
  clearInterval(statsTimer);
  const had = session;
  session = "";
  if (pc) pc.close();
  pc = null;
  if (media) media.getTracks().forEach((t) => t.stop());
  media = null;
  preview.srcObject = null;
  lockForm(false);
  if (had) await deleteSession(had);
  if (typeof why === "string") {
    setState("error", "failed");
    show(box, "error", why);
  } else if (had) {
    setState("stopped");
    show(box, "ok", "Stopped. The recording is finalized: ", el("a", { href: `/recordings?stream=${encodeURIComponent(nameInput.value.trim())}` }, "see the recordings"), ".");
  } else {
    setState("idle");
  }
}

let lastBytes = 0, lastTime = 0;
async function updateStats() {
  if (!pc) return;
  const report = await pc.getStats();
  let out;
  report.forEach((r) => { if (r.type === "outbound-rtp" && r.kind === "video") out = r; });
  if (!out) return;
  const kbps = lastTime ? ((out.bytesSent - lastBytes) * 8) / (out.timestamp - lastTime) : 0;
  lastBytes = out.bytesSent; lastTime = out.timestamp;
  const stat = (label, value) => el("span", {}, label + " ", el("b", {}, value));
  $("stats").replaceChildren(
    stat("Codec", document.body.dataset.codec || "?"),
    stat("Size", out.frameWidth ? `${out.frameWidth}×${out.frameHeight}` : "?"),
    stat("FPS", Math.round(out.framesPerSecond || 0)),
    stat("Bitrate", fmtKbps(kbps)),
    stat("Limited by", out.qualityLimitationReason || "none"));
}

$("form").addEventListener("submit", start);
stopBtn.addEventListener("click", () => stop());
window.addEventListener("pagehide", () => { if (session) deleteSession(session); });
setState("idle");
