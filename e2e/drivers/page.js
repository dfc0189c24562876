// The test page: bundled by browser.mjs with esbuild and loaded into
// Debian's Chromium. It drives WHIP/WHEP clients we did not write and
// reports what libwebrtc saw. Every wait here is bounded; the Go test owns
// the overall timeout.
import { WHIPClient } from "whip-whep/whip.js";
import { WHEPClient } from "whip-whep/whep.js";
import { WHIPClient as EyevinnWHIPClient } from "@eyevinn/whip-web-client";
import Hls from "hls.js";

const state = { stream: null, pc: null, whip: null, eyevinn: null, whep: null, video: null, connectedAt: 0 };

// noteConnected records the wall-clock time (ms since the epoch) at which
// the publisher's connection first became "connected": the test measures
// the publish time from there, as the page may be slow to report back.
function noteConnected(pc) {
  state.connectedAt = 0;
  const check = () => {
    if (!state.connectedAt && pc.connectionState === "connected") state.connectedAt = Date.now();
  };
  pc.addEventListener("connectionstatechange", check);
  check();
}

// Every POST this page makes (the WHIP offers), with when it was sent and
// when its answer came (ms since the epoch): a meeting test checks that the
// gateway noted the join between the two.
const posts = [];
const pageFetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const method = (init && init.method) || (input && input.method) || "GET";
  if (method.toUpperCase() !== "POST") return pageFetch(input, init);
  const entry = { url: String(input && input.url ? input.url : input), sentAt: Date.now(), answeredAt: 0 };
  posts.push(entry);
  try {
    return await pageFetch(input, init);
  } finally {
    entry.answeredAt = Date.now();
  }
};

function log(...args) {
  console.log("[page]", ...args);
}

// waitUntil polls cond every 100 ms until it returns a truthy value.
async function waitUntil(what, timeoutMs, cond) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// flashBeep is a time-coded source for lip-sync and meeting timeline
// tests: a canvas that is white for 100 ms from every even second of the
// wall clock (Date.now()) and black otherwise, and a 1 kHz beep of 100 ms
// at the same instants, scheduled on the audio clock. Every page (and
// every publisher of the same machine) flashes and beeps at the same
// instants.
function flashBeep() {
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 180;
  const g = canvas.getContext("2d");
  const draw = () => {
    g.fillStyle = Date.now() % 2000 < 100 ? "#fff" : "#000";
    g.fillRect(0, 0, canvas.width, canvas.height);
  };
  draw();
  state.drawTimer = setInterval(draw, 5);
  const video = canvas.captureStream(30).getVideoTracks()[0];
  const ac = new AudioContext({ sampleRate: 48000 });
  const osc = ac.createOscillator();
  osc.frequency.value = 1000;
  const gain = ac.createGain();
  gain.gain.value = 0;
  const dest = ac.createMediaStreamDestination();
  osc.connect(gain).connect(dest);
  osc.start();
  let next = Math.ceil(Date.now() / 2000) * 2000;
  const schedule = () => {
    // Beeps of the next 3 s, at wall-clock instants mapped to audio time.
    while (next < Date.now() + 3000) {
      const at = ac.currentTime + (next - Date.now()) / 1000;
      if (at > ac.currentTime) {
        gain.gain.setValueAtTime(0.8, at);
        gain.gain.setValueAtTime(0, at + 0.1);
      }
      next += 2000;
    }
  };
  schedule();
  state.beepTimer = setInterval(schedule, 500);
  state.audioContext = ac;
  return new MediaStream([video, dest.stream.getAudioTracks()[0]]);
}

async function camera(source) {
  if (source === "flashbeep") {
    state.stream = flashBeep();
    return state.stream;
  }
  // The fake device: a 640x480 test pattern with a timer and a beep.
  state.stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 30 },
    audio: true,
  });
  const v = document.getElementById("local");
  v.srcObject = state.stream;
  return state.stream;
}

function waitConnected(pc, timeoutMs) {
  return waitUntil("the peer connection to connect", timeoutMs, () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") {
      throw new Error(`peer connection ${pc.connectionState}`);
    }
    return pc.connectionState === "connected";
  });
}

// sendSummary reads what the sender has sent and with which codec.
async function sendSummary(pc) {
  const out = { video: null, audio: null, transport: null };
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  stats.forEach((s) => {
    if (s.type === "outbound-rtp") {
      const codec = byId.get(s.codecId);
      out[s.kind] = {
        codec: codec ? codec.mimeType : "",
        fmtp: codec ? codec.sdpFmtpLine || "" : "",
        packetsSent: s.packetsSent,
        bytesSent: s.bytesSent,
        framesEncoded: s.framesEncoded,
        keyFramesEncoded: s.keyFramesEncoded,
        pliCount: s.pliCount,
        nackCount: s.nackCount,
        frameWidth: s.frameWidth,
        frameHeight: s.frameHeight,
        encoderImplementation: s.encoderImplementation,
      };
    }
    if (s.type === "transport") {
      out.transport = {
        dtlsState: s.dtlsState,
        iceState: s.iceState,
        localUfrag: s.iceLocalUsernameFragment,
        selectedCandidatePairChanges: s.selectedCandidatePairChanges,
        srtpCipher: s.srtpCipher || "",
      };
    }
  });
  return out;
}

function remoteUfrag(pc) {
  const m = pc.remoteDescription && pc.remoteDescription.sdp.match(/a=ice-ufrag:(.*)\r\n/);
  return m ? m[1] : "";
}

// codecs lists what this Chromium can send, for the test's log.
function sendCodecs(kind) {
  return RTCRtpSender.getCapabilities(kind).codecs.map((c) => c.mimeType + (c.sdpFmtpLine ? ";" + c.sdpFmtpLine : ""));
}

// offerFirstVideo is the first video codec of the page's offer: the one
// the publisher prefers.
function offerFirstVideo(pc) {
  const sdp = pc.localDescription ? pc.localDescription.sdp : "";
  const m = sdp.match(/^m=video \d+ \S+ (\d+)/m);
  const rtpmap = m && sdp.match(new RegExp(`^a=rtpmap:${m[1]} ([^/\\s]+)`, "m"));
  return rtpmap ? "video/" + rtpmap[1] : "";
}

// publishWhipWhep publishes the fake camera and mic with the whip-whep
// WHIPClient (trickle ICE over PATCH). mime, if set, is offered first and
// every other video codec after it, as an app calling setCodecPreferences
// with its favourite first does. source picks the camera (camera()).
async function publishWhipWhep(url, mime, source) {
  const stream = await camera(source);
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  state.pc = pc;
  noteConnected(pc);
  const vt = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendonly", streams: [stream] });
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly", streams: [stream] });
  if (mime) {
    const all = RTCRtpSender.getCapabilities("video").codecs;
    const want = all.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
    if (want.length === 0) {
      throw new Error(`this Chromium cannot send ${mime}; it sends ${sendCodecs("video").join(", ")}`);
    }
    const rest = all.filter((c) => c.mimeType.toLowerCase() !== mime.toLowerCase());
    vt.setCodecPreferences([...want, ...rest]);
  }
  const client = new WHIPClient();
  state.whip = client;
  const firstPost = posts.length;
  await client.publish(pc, url);
  const post = posts.slice(firstPost).find((p) => p.url === url) || null;
  await waitConnected(pc, 20000);
  // Wait until media really flows, so "connected" means "sending".
  await waitUntil("video and audio packets to be sent", 10000, async () => {
    const s = await sendSummary(pc);
    return s.video && s.video.packetsSent > 30 && s.audio && s.audio.packetsSent > 10;
  });
  const s = await sendSummary(pc);
  log("publishing", JSON.stringify(s));
  return { ...s, resource: String(client.resourceURL), remoteUfrag: remoteUfrag(pc), offered: sendCodecs("video"), offerFirst: offerFirstVideo(pc), connectedAt: state.connectedAt, post };
}

// restart does an ICE restart with whip-whep (PATCH with If-Match: * and
// new credentials) and waits for media to flow on the new ICE session.
async function restart() {
  const pc = state.pc;
  const before = await sendSummary(pc);
  const oldUfrag = remoteUfrag(pc);
  const oldLocal = before.transport ? before.transport.localUfrag : "";
  try {
    await state.whip.restart();
  } catch (e) {
    // whip-whep joins the answer's candidate lines with commas, so it only
    // copes with a fragment that has exactly one.
    throw new Error(`whip-whep restart(): ${e.message || e} (whip-whep needs an answer fragment with exactly one a=candidate line)`);
  }
  // whip-whep applies the answer fragment in the same call; wait for the
  // new remote credentials, then for the transport to use the new local
  // ones, then for more media.
  await waitUntil("new remote ICE credentials", 10000, () => remoteUfrag(pc) !== oldUfrag);
  await waitUntil("the transport to run on the new local ICE credentials", 20000, async () => {
    const s = await sendSummary(pc);
    return s.transport && s.transport.localUfrag && s.transport.localUfrag !== oldLocal && pc.connectionState === "connected";
  });
  const sentBefore = before.video.packetsSent;
  await waitUntil("video to keep flowing after the ICE restart", 10000, async () => {
    const s = await sendSummary(pc);
    return s.video.packetsSent > sentBefore + 60;
  });
  const after = await sendSummary(pc);
  log("ICE restarted", oldUfrag, "->", remoteUfrag(pc));
  return { oldRemoteUfrag: oldUfrag, newRemoteUfrag: remoteUfrag(pc), oldLocalUfrag: oldLocal, newLocalUfrag: after.transport.localUfrag, before, after };
}

// publishEyevinn publishes with @eyevinn/whip-web-client, as its README
// shows, without STUN servers (this machine has no route out).
async function publishEyevinn(url) {
  const stream = await camera();
  const client = new EyevinnWHIPClient({ endpoint: url, opts: { debug: true, iceServers: [] } });
  state.eyevinn = client;
  noteConnected(client.peer);
  await client.ingest(stream);
  // ingest resolves once the offer is sent (after a 2 s gathering wait
  // when the endpoint does not advertise trickle ICE).
  await waitUntil("the client to get its WHIP resource", 15000, () => client.resource);
  const pc = client.peer;
  state.pc = pc;
  await waitConnected(pc, 20000);
  await waitUntil("video and audio packets to be sent", 10000, async () => {
    const s = await sendSummary(pc);
    return s.video && s.video.packetsSent > 30 && s.audio && s.audio.packetsSent > 10;
  });
  const s = await sendSummary(pc);
  log("publishing", JSON.stringify(s));
  return { ...s, resource: client.resource, trickle: client.supportTrickleIce(), offerFirst: offerFirstVideo(pc), connectedAt: state.connectedAt };
}

async function stats() {
  return sendSummary(state.pc);
}

// stop ends the publish with the client's own DELETE and returns when
// it began (ms since the epoch).
async function stop() {
  const stoppedAt = Date.now();
  if (state.whip) {
    await state.whip.stop();
    state.whip = null;
  }
  if (state.eyevinn) {
    await state.eyevinn.destroy();
    state.eyevinn = null;
  }
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  clearInterval(state.drawTimer);
  clearInterval(state.beepTimer);
  if (state.audioContext) await state.audioContext.close();
  state.audioContext = null;
  state.pc = null;
  return { stoppedAt, connectedAt: state.connectedAt };
}

async function recvSummary(pc) {
  // senderReports: the RTCP Sender Reports libwebrtc took per kind (its
  // remote-outbound-rtp stats exist only for reports whose SSRC matched
  // the media's).
  const out = { video: null, audio: null, srtpCipher: "", senderReports: {} };
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      const codec = byId.get(s.codecId);
      out[s.kind] = {
        codec: codec ? codec.mimeType : "",
        packetsReceived: s.packetsReceived,
        packetsLost: s.packetsLost,
        bytesReceived: s.bytesReceived,
        framesDecoded: s.framesDecoded,
        keyFramesDecoded: s.keyFramesDecoded,
        frameWidth: s.frameWidth,
        frameHeight: s.frameHeight,
        totalSamplesReceived: s.totalSamplesReceived,
        decoderImplementation: s.decoderImplementation,
      };
    }
    if (s.type === "transport") out.srtpCipher = s.srtpCipher || "";
    if (s.type === "remote-outbound-rtp") out.senderReports[s.kind] = s.reportsSent || 0;
  });
  return out;
}

// watch plays the stream with whip-whep's WHEPClient and checks that a
// person would see moving video: the element has a size, its clock
// advances, and libwebrtc keeps decoding frames.
async function watch(url) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.viewPc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const video = document.getElementById("remote");
  const remote = new MediaStream();
  video.srcObject = remote;
  pc.ontrack = (ev) => {
    remote.addTrack(ev.track);
  };
  const client = new WHEPClient();
  state.whep = client;
  const joined = performance.now();
  await client.view(pc, url);
  await waitConnected(pc, 20000);
  video.play().catch((e) => log("play():", String(e)));
  await waitUntil("the video element to have a size", 15000, () => video.videoWidth > 0);
  const firstFrameMs = Math.round(performance.now() - joined);
  const t0 = video.currentTime;
  const s0 = await recvSummary(pc);
  const f0 = (s0.video && s0.video.framesDecoded) || 0;
  await waitUntil("currentTime to advance by 1.5 s", 10000, () => video.currentTime - t0 >= 1.5);
  await waitUntil("framesDecoded to grow by 30", 10000, async () => {
    const s = await recvSummary(pc);
    return s.video && s.video.framesDecoded - f0 >= 30;
  });
  // Reel's Sender Reports start once the stream's clock has settled on
  // the publisher's own reports (libwebrtc's audio sends its first after
  // ~2.5 s), which a viewer that joined early may not have seen yet in
  // 1.5 s of playing: wait for them, up to 10 s; the caller judges.
  await waitUntil("Sender Reports for both kinds", 10000, async () => {
    const s = await recvSummary(pc);
    return s.senderReports.video >= 1 && s.senderReports.audio >= 1;
  }).catch((e) => log(String(e)));
  const s1 = await recvSummary(pc);
  const out = {
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    currentTimeAdvanced: video.currentTime - t0,
    framesDecodedBefore: f0,
    framesDecodedAfter: s1.video.framesDecoded,
    firstFrameMs,
    stats: s1,
  };
  log("watching", JSON.stringify(out));
  return out;
}

async function stopWatching() {
  if (state.whep) {
    await state.whep.stop();
    state.whep = null;
  }
  return true;
}

// publishSimulcast publishes a 1280x720 fake camera with three
// sendEncodings (rids q, h, f: a quarter, half and full size), mime first
// in the offer, with the whip-whep WHIPClient, and waits until every
// layer sends.
async function publishSimulcast(url, mime) {
  state.stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 1280, height: 720, frameRate: 30 },
    audio: true,
  });
  document.getElementById("local").srcObject = state.stream;
  const stream = state.stream;
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  state.pc = pc;
  noteConnected(pc);
  const vt = pc.addTransceiver(stream.getVideoTracks()[0], {
    direction: "sendonly", streams: [stream],
    sendEncodings: [{ rid: "q", scaleResolutionDownBy: 4 }, { rid: "h", scaleResolutionDownBy: 2 }, { rid: "f" }],
  });
  pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendonly", streams: [stream] });
  const all = RTCRtpSender.getCapabilities("video").codecs;
  const want = all.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
  if (want.length === 0) throw new Error(`this Chromium cannot send ${mime}`);
  vt.setCodecPreferences([...want, ...all.filter((c) => c.mimeType.toLowerCase() !== mime.toLowerCase())]);
  const client = new WHIPClient();
  state.whip = client;
  await client.publish(pc, url);
  await waitConnected(pc, 20000);
  // Chromium starts its top layer once its bandwidth estimate allows it:
  // 6-9 s after connecting here, but more than 20 s in 3 of 44 runs
  // (one of them in CI, with the other e2e suites running alongside).
  await waitUntil("every layer to send", 40000, async () => (await layerStats(pc)).filter((l) => l.framesEncoded > 30).length === 3);
  const layers = await layerStats(pc);
  log("publishing simulcast", JSON.stringify(layers));
  return { layers, offerFirst: offerFirstVideo(pc), connectedAt: state.connectedAt, resource: String(client.resourceURL) };
}

// layerStats is what libwebrtc sends per simulcast layer.
async function layerStats(pc) {
  const out = [];
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      const codec = byId.get(s.codecId);
      out.push({ rid: s.rid || "", codec: codec ? codec.mimeType : "", framesEncoded: s.framesEncoded || 0, frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0, bytesSent: s.bytesSent || 0, pliCount: s.pliCount || 0, keyFramesEncoded: s.keyFramesEncoded || 0,
        qualityLimitationReason: s.qualityLimitationReason || "" });
    }
  });
  return out.sort((a, b) => a.rid.localeCompare(b.rid));
}

async function publisherLayers() {
  return layerStats(state.pc);
}

// play watches a stream with the whip-whep WHEPClient and keeps a record
// of every video frame presented (requestVideoFrameCallback): its size and
// the longest gap between two frames, so the test can see layer switches
// and freezes as a viewer would. It returns once the picture moves.
async function play(url) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.viewPc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const video = document.getElementById("remote");
  const remote = new MediaStream();
  video.srcObject = remote;
  pc.ontrack = (ev) => remote.addTrack(ev.track);
  const client = new WHEPClient();
  state.whep = client;
  await client.view(pc, url);
  await waitConnected(pc, 20000);
  video.play().catch((e) => log("play():", String(e)));
  const seen = { frames: 0, last: 0, maxGap: 0, width: 0, height: 0, sizes: [] };
  state.seen = seen;
  const onFrame = (now, meta) => {
    if (seen.last) seen.maxGap = Math.max(seen.maxGap, now - seen.last);
    seen.last = now;
    seen.frames++;
    if (meta.width !== seen.width || meta.height !== seen.height) {
      seen.width = meta.width;
      seen.height = meta.height;
      seen.sizes.push({ at: Date.now(), width: meta.width, height: meta.height });
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  await waitUntil("frames to be presented", 15000, () => seen.frames > 30);
  return playStats();
}

// playStats reports what the viewer shows; resetGap starts a new window
// for the longest gap between frames.
async function playStats(resetGap) {
  const seen = state.seen;
  const s = await recvSummary(state.viewPc);
  let inbound = null;
  (await state.viewPc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") inbound = r;
  });
  const out = {
    frames: seen.frames, maxGapMs: Math.round(seen.maxGap), width: seen.width, height: seen.height, sizes: seen.sizes,
    framesDecoded: s.video ? s.video.framesDecoded : 0, packetsLost: s.video ? s.video.packetsLost : 0,
    freezeCount: inbound ? inbound.freezeCount || 0 : 0, totalFreezesDuration: inbound ? inbound.totalFreezesDuration || 0 : 0,
    now: Date.now(),
  };
  if (resetGap) seen.maxGap = 0;
  return out;
}

// playHLS plays an HLS URL with hls.js (Low-Latency mode, its own ABR)
// and records its level switches. A fatal hls.js error is logged as an
// error (which fails the test); the others, which hls.js recovers from,
// as warnings, and counted.
async function playHLS(url) {
  if (!Hls.isSupported()) throw new Error("hls.js is not supported in this browser");
  const video = document.getElementById("remote");
  const hls = new Hls({ lowLatencyMode: true });
  const rec = { switches: [], warnings: [] };
  state.hls = hls;
  state.hlsRec = rec;
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => {
    const l = hls.levels[d.level];
    rec.switches.push({ at: Date.now(), level: d.level, height: l ? l.height : 0 });
    log("hls.js level", d.level, l ? `${l.width}x${l.height}` : "");
  });
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal) {
      console.error("hls.js fatal error:", d.type, d.details, d.reason || "");
    } else {
      rec.warnings.push(d.details);
      console.warn("hls.js:", d.type, d.details);
    }
  });
  const parsed = new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => resolve(d)));
  hls.loadSource(url);
  hls.attachMedia(video);
  await parsed;
  video.play().catch((e) => log("play():", String(e)));
  await waitUntil("hls.js to play 2 s", 30000, () => video.currentTime > 2);
  return hlsStats();
}

async function hlsStats() {
  const hls = state.hls;
  const video = document.getElementById("remote");
  return {
    levels: hls.levels.map((l) => ({ bitrate: l.bitrate, width: l.width, height: l.height, codecs: l.codecSet || "" })),
    currentLevel: hls.currentLevel, height: video.videoHeight, currentTime: video.currentTime,
    bandwidthEstimate: Math.round(hls.bandwidthEstimate || 0), switches: state.hlsRec.switches, warnings: state.hlsRec.warnings,
  };
}

window.reel = { playHLS, hlsStats, publishWhipWhep, publishEyevinn, publishSimulcast, publisherLayers, restart, stats, stop, watch, stopWatching, play, playStats, sendCodecs };
window.reelReady = true;
