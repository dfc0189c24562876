package e2e

import (
	"strings"
	"testing"
	"time"
)

// minPublish is the shortest publish: long enough that 10% of it is
// more than the jitter of connection setup and teardown.
const minPublish = 10 * time.Second

// TestInteropChromiumWhipWhep publishes Chromium's fake camera and mic with
// the whip-whep reference client (trickle ICE over PATCH), once with only
// VP8 offered and once with only H.264, watches with whip-whep's
// WHEPClient in a second page, reads the stream with ffmpeg over RTSP and
// HLS, and judges the recording.
func TestInteropChromiumWhipWhep(t *testing.T) {
	for _, c := range []struct {
		name, mime string
		want       wantRecording
	}{
		{"vp8", "video/VP8", wantRecording{ext: ".webm", videoCodec: "vp8"}},
		{"h264", "video/H264", wantRecording{ext: ".mkv", videoCodec: "h264"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			needChromium(t)
			art := artifactsDir(t)
			g := startInteropGateway(t, art)
			b := startBrowser(t, art)
			step(t, start, "reel and Chromium %s are up", b.Version)
			stream := "chromium-" + c.name

			b.open("publisher")
			var pub publishResult
			b.mustCall(60*time.Second, "publisher", "publishWhipWhep", &pub, g.HTTP+"/whip/"+stream, c.mime)
			published := pub.Connected()
			if pub.Video == nil || !strings.EqualFold(pub.Video.Codec, c.mime) || pub.Audio == nil || pub.Audio.Codec != "audio/opus" {
				t.Fatalf("publisher sends %+v / %+v, want %s and Opus", pub.Video, pub.Audio, c.mime)
			}
			step(t, start, "whip-whep publishes %s (%s, %s) + Opus", pub.Video.Codec, pub.Video.Encoder, pub.Video.Fmtp)
			waitLive(t, g, stream)

			watchWHEP(t, b, g, stream, c.want.videoCodec)
			step(t, start, "whip-whep WHEPClient plays it")
			readLive(t, g, stream, c.want.videoCodec, start)

			if d := time.Until(published.Add(minPublish)); d > 0 {
				time.Sleep(d)
			}
			sent := stopPublishing(t, b, "publisher")
			step(t, start, "whip-whep sent DELETE after %v", sent.Round(time.Millisecond))

			file := finishedRecording(t, g, stream, art)
			checkInteropRecording(t, file, c.want, sent, start)
		})
	}
}

// TestInteropChromiumEyevinn publishes with @eyevinn/whip-web-client, a
// second, independent browser client (it offers all candidates at once
// when it cannot see PATCH in the endpoint's CORS headers), and lets
// reel pick the codec by its configured order.
func TestInteropChromiumEyevinn(t *testing.T) {
	start := time.Now()
	needChromium(t)
	art := artifactsDir(t)
	g := startInteropGateway(t, art)
	b := startBrowser(t, art)
	step(t, start, "reel and Chromium %s are up", b.Version)
	const stream = "chromium-eyevinn"

	b.open("publisher")
	var pub publishResult
	b.mustCall(60*time.Second, "publisher", "publishEyevinn", &pub, g.HTTP+"/whip/"+stream)
	published := pub.Connected()
	// The default order (SPEC) is H.264 first, and Chromium offers it.
	if pub.Video == nil || pub.Video.Codec != "video/H264" || pub.Audio == nil || pub.Audio.Codec != "audio/opus" {
		t.Fatalf("publisher sends %+v / %+v, want H.264 (reel's first choice) and Opus", pub.Video, pub.Audio)
	}
	trickle := pub.Trickle != nil && *pub.Trickle
	step(t, start, "@eyevinn/whip-web-client publishes %s + Opus (trickle ICE: %v)", pub.Video.Codec, trickle)
	waitLive(t, g, stream)

	watchWHEP(t, b, g, stream, "h264")
	step(t, start, "whip-whep WHEPClient plays it")
	readLive(t, g, stream, "h264", start)

	if d := time.Until(published.Add(minPublish)); d > 0 {
		time.Sleep(d)
	}
	sent := stopPublishing(t, b, "publisher")
	step(t, start, "@eyevinn/whip-web-client sent DELETE after %v", sent.Round(time.Millisecond))

	file := finishedRecording(t, g, stream, art)
	checkInteropRecording(t, file, wantRecording{ext: ".mkv", videoCodec: "h264"}, sent, start)
}

type restartResult struct {
	OldRemoteUfrag string       `json:"oldRemoteUfrag"`
	NewRemoteUfrag string       `json:"newRemoteUfrag"`
	OldLocalUfrag  string       `json:"oldLocalUfrag"`
	NewLocalUfrag  string       `json:"newLocalUfrag"`
	Before         sendSnapshot `json:"before"`
	After          sendSnapshot `json:"after"`
}

type sendSnapshot struct {
	Video *rtpStats `json:"video"`
}

// TestInteropChromiumICERestart restarts ICE (whip-whep's restart():
// PATCH with If-Match: * and new credentials) in the middle of a publish:
// media keeps flowing on the new ICE session, the session and stream stay
// the same, and the recording is one file covering the whole publish.
func TestInteropChromiumICERestart(t *testing.T) {
	start := time.Now()
	needChromium(t)
	art := artifactsDir(t)
	g := startInteropGateway(t, art)
	b := startBrowser(t, art)
	step(t, start, "reel and Chromium %s are up", b.Version)
	const stream = "chromium-restart"

	b.open("publisher")
	var pub publishResult
	b.mustCall(60*time.Second, "publisher", "publishWhipWhep", &pub, g.HTTP+"/whip/"+stream, "video/VP8")
	published := pub.Connected()
	before := waitLive(t, g, stream)
	step(t, start, "whip-whep publishes %s + Opus", pub.Video.Codec)
	time.Sleep(4 * time.Second)

	bytesBefore := streamBytes(t, g, stream)
	var r restartResult
	b.mustCall(60*time.Second, "publisher", "restart", &r)
	if r.NewRemoteUfrag == "" || r.NewRemoteUfrag == r.OldRemoteUfrag || r.NewLocalUfrag == r.OldLocalUfrag {
		t.Fatalf("ICE restart did not change the credentials: %+v", r)
	}
	step(t, start, "ICE restarted: reel's ufrag %s -> %s, Chromium's %s -> %s", r.OldRemoteUfrag, r.NewRemoteUfrag, r.OldLocalUfrag, r.NewLocalUfrag)
	waitFor(t, 10*time.Second, "reel to receive media after the ICE restart", func() bool {
		return streamBytes(t, g, stream) > bytesBefore+50_000
	})
	if after := waitLive(t, g, stream); after.Session != before.Session {
		t.Fatalf("the ICE restart replaced the session %s with %s", before.Session, after.Session)
	}
	watchWHEP(t, b, g, stream, "vp8")
	step(t, start, "a WHEP viewer plays the stream after the restart")

	if d := time.Until(published.Add(minPublish + 2*time.Second)); d > 0 {
		time.Sleep(d)
	}
	sent := stopPublishing(t, b, "publisher")
	step(t, start, "whip-whep sent DELETE after %v", sent.Round(time.Millisecond))

	file := finishedRecording(t, g, stream, art) // exactly one file
	checkInteropRecording(t, file, wantRecording{ext: ".webm", videoCodec: "vp8"}, sent, start)
}
