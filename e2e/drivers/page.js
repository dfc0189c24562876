// The test page: bundled by browser.mjs with esbuild and loaded into
// Debian's Chromium. It drives WHIP/WHEP clients we did not write and
// reports what libwebrtc saw. Every wait here is bounded; the Go test owns
// the overall timeout.
import { WHIPClient } from "whip-whep/whip.js";
import { WHEPClient } from "whip-whep/whep.js";
import { WHIPClient as EyevinnWHIPClient } from "@eyevinn/whip-web-client";

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

async function camera() {
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

// publishWhipWhep publishes the fake camera and mic with the whip-whep
// WHIPClient (trickle ICE over PATCH). mime, if set, is the only video
// codec offered (plus RTX), through setCodecPreferences.
async function publishWhipWhep(url, mime) {
  const stream = await camera();
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
    const rtx = all.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
    vt.setCodecPreferences([...want, ...rtx]);
  }
  const client = new WHIPClient();
  state.whip = client;
  await client.publish(pc, url);
  await waitConnected(pc, 20000);
  // Wait until media really flows, so "connected" means "sending".
  await waitUntil("video and audio packets to be sent", 10000, async () => {
    const s = await sendSummary(pc);
    return s.video && s.video.packetsSent > 30 && s.audio && s.audio.packetsSent > 10;
  });
  const s = await sendSummary(pc);
  log("publishing", JSON.stringify(s));
  return { ...s, resource: String(client.resourceURL), remoteUfrag: remoteUfrag(pc), offered: sendCodecs("video"), connectedAt: state.connectedAt };
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
  return { ...s, resource: client.resource, trickle: client.supportTrickleIce(), connectedAt: state.connectedAt };
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
  state.pc = null;
  return { stoppedAt, connectedAt: state.connectedAt };
}

async function recvSummary(pc) {
  const out = { video: null, audio: null };
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

window.reel = { publishWhipWhep, publishEyevinn, restart, stats, stop, watch, stopWatching, sendCodecs };
window.reelReady = true;
