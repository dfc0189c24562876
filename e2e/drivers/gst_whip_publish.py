#!/usr/bin/python3
"""Publish to a WHIP endpoint with GStreamer's webrtcbin, the way OBS does.

H.264 from x264enc (High profile, zerolatency, a keyframe every 30 frames,
no B-frames) and Opus from opusenc, offered once with every ICE candidate
(no trickle: wait for gathering to complete), over plain HTTP with urllib.
After --seconds of media (with --seconds 0: when a "stop" line or the end
of stdin arrives) it ends the session with DELETE.

It prints one JSON object per line on stdout, for the Go test to follow:
  {"event": "connected", "post": {"sent_at", "answered_at"}, ...}   media flows
                                (post: when the offer was POSTed and answered, Unix seconds)
  {"event": "stopped", "published_seconds": ...}   DELETE answered
  {"event": "error", "error": "..."}   then exits 1

With --check it only verifies that Python's gi bindings and every element
it needs are present, prints {"event": "ok"} or the reason, and exits.

Runs under Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-plugins-bad-1.0).
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ELEMENTS = ["webrtcbin", "x264enc", "opusenc", "rtph264pay", "rtpopuspay", "appsrc",
            "videotestsrc", "audiotestsrc", "videoconvert", "audioconvert",
            "audioresample", "nicesrc", "nicesink"]


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def log(*args):
    sys.stderr.write("[gst-whip] " + " ".join(str(a) for a in args) + "\n")
    sys.stderr.flush()


def keep_ref(obj):
    import ctypes
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    gobject.g_object_ref.argtypes = [ctypes.c_void_p]
    gobject.g_object_ref.restype = ctypes.c_void_p
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    get.restype = ctypes.c_void_p
    gobject.g_object_ref(get(obj.__gpointer__, None))


def load_gi():
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstWebRTC", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import GLib, Gst, GstSdp, GstWebRTC
    Gst.init(None)
    return GLib, Gst, GstSdp, GstWebRTC


def check():
    try:
        _, Gst, _, _ = load_gi()
    except Exception as e:  # ImportError, ValueError from require_version
        emit(event="missing", reason="python3 gi/GStreamer bindings unusable: %s" % e)
        return 2
    missing = [e for e in ELEMENTS if Gst.ElementFactory.find(e) is None]
    if missing:
        emit(event="missing", reason="GStreamer elements missing: " + ", ".join(missing))
        return 2
    emit(event="ok", gstreamer=Gst.version_string())
    return 0


PIPELINE = """
webrtcbin name=webrtc bundle-policy={bundle} latency=100
videotestsrc is-live=true pattern=ball
  ! video/x-raw,width={w},height={h},framerate=30/1
  ! videoconvert ! queue
  ! x264enc tune=zerolatency speed-preset=superfast dct8x8=true cabac=true key-int-max=30 bframes=0 bitrate=1500
  ! video/x-h264,profile=high,stream-format=byte-stream
  ! rtph264pay config-interval=0 pt=102 mtu=1200
  ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000
  ! webrtc.
audiotestsrc is-live=true wave=sine freq=440
  ! audioconvert ! audioresample ! queue
  ! opusenc bitrate=64000
  ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000
  ! webrtc.
"""


# --source flashbeep: the time-coded source of the lip-sync and meeting
# tests, on the wall clock. The frames and audio chunks are made here and
# pushed by appsrc with the running time of the wall-clock instant each
# one shows, so the picture is white for 100 ms from every even second of
# the wall clock (time.time()) and a 1 kHz beep sounds then, like the
# Chromium page's and the Go client's sources.
FLASHBEEP = """
webrtcbin name=webrtc bundle-policy={bundle} latency=100
appsrc name=vsrc is-live=true format=time do-timestamp=false
  caps=video/x-raw,format=I420,width={w},height={h},framerate=30/1
  ! videoconvert ! queue
  ! x264enc tune=zerolatency speed-preset=superfast key-int-max=30 bframes=0 bitrate=300
  ! video/x-h264,profile=high,stream-format=byte-stream
  ! rtph264pay config-interval=0 pt=102 mtu=1200
  ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000
  ! webrtc.
appsrc name=asrc is-live=true format=time do-timestamp=false
  caps=audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved
  ! audioconvert ! audioresample ! queue
  ! opusenc bitrate=64000 frame-size=20
  ! rtpopuspay pt=111
  ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000
  ! webrtc.
"""


class WallClockSource:
    """Pushes flash-and-beep video (30 fps) and audio (20 ms chunks) whose
    timestamps are the running time of the wall-clock instant they show."""

    def __init__(self, pub, w, h):
        import math
        import struct
        self.pub, self.Gst = pub, pub.Gst
        self.vsrc = pub.pipe.get_by_name("vsrc")
        self.asrc = pub.pipe.get_by_name("asrc")
        y, c = w * h, (w // 2) * (h // 2)
        self.white = b"\xeb" * y + b"\x80" * (2 * c)
        self.black = b"\x10" * y + b"\x80" * (2 * c)
        n = 960  # 20 ms at 48 kHz
        self.silence = b"\x00" * (n * 4)
        # A 1 kHz beep: 20 ms is 20 whole periods, so every chunk is the same.
        self.beep = b"".join(struct.pack("<hh", v, v) for v in
                             (int(0.8 * 32767 * math.sin(2 * math.pi * 1000 * i / 48000)) for i in range(n)))
        self.stop = threading.Event()

    def start(self):
        pipe = self.pub.pipe
        clock = pipe.get_clock()
        # running time = wall time + offset (ns); the pipeline clock is
        # monotonic, read beside the wall clock once.
        self.offset = clock.get_time() - pipe.get_base_time() - int(time.time() * 1e9)
        first = int(time.time()) + 1  # the next whole second
        threading.Thread(target=self.run, args=(self.vsrc, first, 1e9 / 30, self.frame), daemon=True).start()
        threading.Thread(target=self.run, args=(self.asrc, first, 20e6, self.chunk), daemon=True).start()

    def frame(self, wall_ns):
        return self.white if wall_ns % 2_000_000_000 < 100_000_000 else self.black

    def chunk(self, wall_ns):
        return self.beep if wall_ns % 2_000_000_000 < 100_000_000 else self.silence

    def run(self, src, first, period, make):
        k = 0
        while not self.stop.is_set():
            wall_ns = first * 1_000_000_000 + int(k * period)
            delay = wall_ns / 1e9 - time.time()
            if delay > 0:
                time.sleep(delay)
            buf = self.Gst.Buffer.new_wrapped(make(wall_ns))
            buf.pts = wall_ns + self.offset
            buf.duration = int(period)
            if src.emit("push-buffer", buf) != self.Gst.FlowReturn.OK:
                return
            k += 1


class Publisher:
    def __init__(self, args):
        self.args = args
        self.GLib, self.Gst, self.GstSdp, self.GstWebRTC = load_gi()
        self.loop = self.GLib.MainLoop()
        self.resource = None
        self.error = None
        self.connected_at = None
        self.posted = None
        source = FLASHBEEP if args.source == "flashbeep" else PIPELINE
        self.pipe = self.Gst.parse_launch(source.format(w=args.width, h=args.height, bundle=args.bundle_policy))
        self.source = WallClockSource(self, args.width, args.height) if args.source == "flashbeep" else None
        self.webrtc = self.pipe.get_by_name("webrtc")
        self.restrict_ice()
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        bus = self.pipe.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_bus_error)

    def restrict_ice(self):
        # Gather only on the given address (like OBS's "bind to IP"), over
        # UDP, and without UPnP: libnice otherwise pins its sockets to each
        # interface (IP_UNICAST_IF), so a check from eth0's address to a
        # server on 127.0.0.1 would leave by eth0 and never arrive.
        ice = self.webrtc.get_property("ice-agent")
        # GStreamer 1.22 hands out the agent floating and PyGObject sinks
        # it, taking webrtcbin's only reference; give webrtcbin one back.
        if ice.__grefcount__ < 2:
            keep_ref(ice)
        ice.set_property("ice-tcp", False)
        agent = ice.get_property("agent")
        if agent is not None and agent.find_property("upnp") is not None:
            agent.set_property("upnp", False)
        for ip in self.args.local_ip:
            ice.emit("add-local-ip-address", ip)

    def fail(self, msg):
        if self.error is None:
            self.error = msg
            log("error:", msg)
        self.loop.quit()

    def on_bus_error(self, _bus, msg):
        err, dbg = msg.parse_error()
        self.fail("pipeline error: %s (%s)" % (err.message, dbg))

    def on_negotiation_needed(self, _element):
        # WHIP is send-only: make every transceiver say so before the offer.
        # ("get-transceivers" returns a GArray that PyGObject cannot index.)
        i = 0
        while True:
            t = self.webrtc.emit("get-transceiver", i)
            if t is None:
                break
            t.set_property("direction", self.GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            i += 1
        if i == 0:
            return self.fail("webrtcbin has no transceivers")
        promise = self.Gst.Promise.new_with_change_func(self.on_offer_created, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer_created(self, promise, _data):
        promise.wait()
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, self.Gst.Promise.new())
        log("offer created; waiting for ICE gathering to complete (no trickle)")

    def on_gathering(self, _element, _pspec):
        state = self.webrtc.get_property("ice-gathering-state")
        log("ICE gathering", state.value_nick)
        if state == self.GstWebRTC.WebRTCICEGatheringState.COMPLETE and self.resource is None:
            # Leave the signal handler before blocking on HTTP.
            self.GLib.idle_add(self.send_offer)

    def send_offer(self):
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        ncand = sdp.count("a=candidate:")
        log("POST offer with %d candidates" % ncand)
        if self.args.verbose:
            log("offer:\n" + sdp)
        headers = {"Content-Type": "application/sdp"}
        if self.args.token:
            headers["Authorization"] = "Bearer " + self.args.token
        # urllib follows no 307 or 308 for a POST; RFC 9725 section 4.5 asks
        # WHIP clients to, with the same offer, so this loop does (a
        # cluster's node answers 307 to the node that owns the stream).
        url = self.args.url
        sent_at = time.time()
        try:
            for _hop in range(5):
                req = urllib.request.Request(url, data=sdp.encode(), headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=15) as resp:
                        self.posted = {"sent_at": sent_at, "answered_at": time.time()}
                        if resp.status != 201:
                            return self.fail("POST answered %d, want 201" % resp.status)
                        location = resp.headers.get("Location")
                        if not location:
                            return self.fail("201 without a Location header")
                        # Relative to the endpoint that answered.
                        self.resource = urllib.parse.urljoin(url, location)
                        answer = resp.read().decode()
                        break
                except urllib.error.HTTPError as e:
                    if e.code in (307, 308) and e.headers.get("Location"):
                        url = urllib.parse.urljoin(url, e.headers.get("Location"))
                        emit(event="redirected", status=e.code, to=url)
                        continue
                    return self.fail("POST answered %d: %s" % (e.code, e.read().decode(errors="replace")[:500]))
            else:
                return self.fail("POST redirected more than 5 times")
        except Exception as e:
            return self.fail("POST failed: %s" % e)
        if ncand == 0:
            return self.fail("the offer had no ICE candidates")
        for line in answer.splitlines():
            if line.startswith("m=") and line.split()[1] == "0":
                return self.fail("the answer rejects a media section (%s); the offer made it "
                                 "bundle-only (port 0, a=bundle-only, as JSEP max-bundle does)" % line.strip())
        ok, msg = self.GstSdp.SDPMessage.new_from_text(answer)
        if ok != self.GstSdp.SDPResult.OK:
            return self.fail("the answer is not SDP")
        desc = self.GstWebRTC.WebRTCSessionDescription.new(self.GstWebRTC.WebRTCSDPType.ANSWER, msg)
        promise = self.Gst.Promise.new_with_change_func(self.on_remote_set, None)
        self.webrtc.emit("set-remote-description", desc, promise)
        log("answer applied; resource", self.resource)
        if self.args.verbose:
            log("answer:\n" + answer)
        return False

    def on_remote_set(self, promise, _data):
        promise.wait()
        reply = promise.get_reply()
        if reply is not None and reply.has_field("error"):
            err = reply.get_value("error")
            self.GLib.idle_add(self.fail, "webrtcbin refused the answer: %s" % getattr(err, "message", err))

    def on_connection_state(self, _element, _pspec):
        state = self.webrtc.get_property("connection-state")
        log("connection", state.value_nick)
        if state == self.GstWebRTC.WebRTCPeerConnectionState.CONNECTED and self.connected_at is None:
            self.connected_at = time.monotonic()
            emit(event="connected", resource=self.resource, offer_candidates=self.webrtc.get_property(
                "local-description").sdp.as_text().count("a=candidate:"), post=self.posted)
            if self.args.seconds > 0:
                self.GLib.timeout_add(int(self.args.seconds * 1000), self.finish)
            else:
                threading.Thread(target=self.wait_stdin, daemon=True).start()
        elif state == self.GstWebRTC.WebRTCPeerConnectionState.FAILED:
            self.fail("the peer connection failed")

    def connect_timeout(self):
        if self.connected_at is None:
            self.fail("not connected within %d s" % self.args.connect_timeout)
        return False

    def wait_stdin(self):
        # --seconds 0: publish until a "stop" line or the end of stdin.
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        self.GLib.idle_add(self.finish)

    def finish(self):
        self.loop.quit()
        return False

    def delete(self):
        if not self.resource:
            return None
        headers = {}
        if self.args.token:
            headers["Authorization"] = "Bearer " + self.args.token
        req = urllib.request.Request(self.resource, headers=headers, method="DELETE")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code
        except Exception as e:
            log("DELETE failed:", e)
            return None

    def run(self):
        self.GLib.timeout_add_seconds(self.args.connect_timeout, self.connect_timeout)
        if self.pipe.set_state(self.Gst.State.PLAYING) == self.Gst.StateChangeReturn.FAILURE:
            self.fail("the pipeline would not start")
        else:
            if self.source:
                # The running time is known once the pipeline plays (live
                # sources do not preroll).
                self.pipe.get_state(5 * self.Gst.SECOND)
                self.source.start()
            self.loop.run()
            if self.source:
                self.source.stop.set()
        published = time.monotonic() - self.connected_at if self.connected_at else 0
        status = self.delete()
        self.pipe.set_state(self.Gst.State.NULL)
        if self.error:
            emit(event="error", error=self.error)
            return 1
        if status not in (200, 204):
            emit(event="error", error="DELETE answered %s" % status)
            return 1
        emit(event="stopped", published_seconds=published, delete_status=status)
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam")
    ap.add_argument("--seconds", type=float, default=8, help="0: until 'stop' on stdin")
    ap.add_argument("--token", default="")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--connect-timeout", type=int, default=20)
    ap.add_argument("--local-ip", action="append", default=[],
                    help="gather ICE candidates on this address only (repeatable); default: every interface")
    ap.add_argument("--bundle-policy", default="max-bundle",
                    help="webrtcbin bundle-policy; WHIP (RFC 9725) wants max-bundle")
    ap.add_argument("--source", default="testsrc", choices=["testsrc", "flashbeep"],
                    help="testsrc: a moving ball and a 440 Hz tone; flashbeep: a white flash and a beep "
                         "at every even second of the wall clock")
    ap.add_argument("--verbose", action="store_true", help="log the SDP offer and answer")
    ap.add_argument("--check", action="store_true", help="only check that GStreamer can run here")
    args = ap.parse_args()
    if args.check:
        return check()
    if not args.url:
        ap.error("--url is required")
    return Publisher(args).run()


if __name__ == "__main__":
    sys.exit(main())
