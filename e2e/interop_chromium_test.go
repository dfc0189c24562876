package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testwait"
)

// minPublish is the shortest publish: long enough that 10% of it is
// more than the jitter of connection setup and teardown.
const minPublish = 10 * time.Second

// TestInteropChromiumWhipWhep publishes Chromium's fake camera and mic with
// the whip-whep reference client (trickle ICE over PATCH), with VP8 offered
// first and with H.264 first (every other codec after it), watches with
// whip-whep's WHEPClient in a second page, reads the stream with ffmpeg
// over RTSP and HLS, and judges the recording. Reel answers with the
// offer's first codec (SPEC, Codec choice); with codecs.prefer server its
// own order wins, and VP8 first still gets H.264.
func TestInteropChromiumWhipWhep(t *testing.T) {
	for _, c := range []struct {
		name, mime string
		flags      []string
		want       wantRecording
	}{
		{"vp8", "video/VP8", nil, wantRecording{ext: ".webm", videoCodec: "vp8"}},
		{"h264", "video/H264", nil, wantRecording{ext: ".mkv", videoCodec: "h264"}},
		{"vp8-prefer-server", "video/VP8", []string{"--codecs-prefer", "server"}, wantRecording{ext: ".mkv", videoCodec: "h264"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			needChromium(t)
			art := artifactsDir(t)
			g := startInteropGateway(t, art, c.flags...)
			b := startBrowser(t, art)
			step(t, start, "reel %v and Chromium %s are up", c.flags, b.Version)
			stream := "chromium-" + c.name

			b.open("publisher")
			var pub publishResult
			b.mustCall(60*time.Second, "publisher", "publishWhipWhep", &pub, g.HTTP+"/whip/"+stream, c.mime)
			published := pub.Connected()
			if !strings.EqualFold(pub.OfferFirst, c.mime) {
				t.Fatalf("the offer lists %q first, not %s", pub.OfferFirst, c.mime)
			}
			if pub.Video == nil || !strings.EqualFold(pub.Video.Codec, "video/"+c.want.videoCodec) || pub.Audio == nil || pub.Audio.Codec != "audio/opus" {
				t.Fatalf("publisher sends %+v / %+v, want %s and Opus", pub.Video, pub.Audio, c.want.videoCodec)
			}
			if pub.Transport == nil || !offeredSRTPCipher(pub.Transport.SRTPCipher) {
				t.Fatalf("publisher's transport %+v: not an SRTP cipher Reel offers", pub.Transport)
			}
			step(t, start, "whip-whep publishes %s (%s, %s) + Opus over %s", pub.Video.Codec, pub.Video.Encoder, pub.Video.Fmtp, pub.Transport.SRTPCipher)
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
// when it cannot see PATCH in the endpoint's CORS headers), with
// Chromium's own codec order, which reel follows.
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
	// Reel answers with the offer's first codec: Chromium's favourite.
	if pub.Video == nil || pub.OfferFirst == "" || !strings.EqualFold(pub.Video.Codec, pub.OfferFirst) || pub.Audio == nil || pub.Audio.Codec != "audio/opus" {
		t.Fatalf("publisher sends %+v / %+v, want %s (its offer's first) and Opus", pub.Video, pub.Audio, pub.OfferFirst)
	}
	codec := strings.ToLower(strings.TrimPrefix(pub.Video.Codec, "video/"))
	want := wantRecording{ext: ".webm", videoCodec: codec}
	if codec == "h264" || codec == "h265" {
		want.ext = ".mkv"
	}
	trickle := pub.Trickle != nil && *pub.Trickle
	step(t, start, "@eyevinn/whip-web-client publishes %s (first in its offer) + Opus (trickle ICE: %v)", pub.Video.Codec, trickle)
	waitLive(t, g, stream)

	watchWHEP(t, b, g, stream, codec)
	step(t, start, "whip-whep WHEPClient plays it")
	readLive(t, g, stream, codec, start)

	if d := time.Until(published.Add(minPublish)); d > 0 {
		time.Sleep(d)
	}
	sent := stopPublishing(t, b, "publisher")
	step(t, start, "@eyevinn/whip-web-client sent DELETE after %v", sent.Round(time.Millisecond))

	file := finishedRecording(t, g, stream, art)
	checkInteropRecording(t, file, want, sent, start)
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
	testwait.Until(t, 10*time.Second, "reel to receive media after the ICE restart", func() bool {
		return streamBytes(t, g, stream) > bytesBefore+50_000
	})
	if after := waitLive(t, g, stream); before.Started.IsZero() || !after.Started.Equal(before.Started) {
		t.Fatalf("the ICE restart replaced the publication started at %v with one started at %v", before.Started, after.Started)
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
