package e2e

import (
	"testing"
	"time"
)

// TestInteropGStreamerWebrtcbin publishes like OBS, from GStreamer's own
// WebRTC stack: webrtcbin with max-bundle, x264enc H.264 High profile
// (zerolatency, a keyframe every 30 frames, no B-frames, one slice per
// encoder thread, SPS and PPS in packets of their own) and opusenc Opus,
// offered once with all ICE candidates (no trickle), ended with DELETE.
// While it publishes, ffmpeg reads RTSP (TCP, UDP) and HLS.
func TestInteropGStreamerWebrtcbin(t *testing.T) {
	start := time.Now()
	version := needGStreamer(t)
	art := artifactsDir(t)
	g := startInteropGateway(t, art)
	const stream = "gstreamer"

	launched := time.Now()
	p := startGStreamer(t, art, g.HTTP+"/whip/"+stream)
	ev := p.next(t, 40*time.Second, "connected")
	published := time.Now()
	if ev.OfferCandidates == 0 {
		t.Fatalf("the offer carried no candidates: %+v", ev)
	}
	step(t, start, "%s webrtcbin publishes H.264 High + Opus (one offer, %d candidate(s), no trickle)", version, ev.OfferCandidates)
	waitLive(t, g, stream)
	readLive(t, g, stream, "h264", start)

	if d := time.Until(published.Add(minPublish)); d > 0 {
		time.Sleep(d)
	}
	stopped := p.stop(t)
	sent := seconds(stopped.PublishedSeconds)
	step(t, start, "GStreamer sent DELETE (%d) after %v", stopped.DeleteStatus, sent.Round(time.Millisecond))

	file := finishedRecording(t, g, stream, art)
	checkInteropRecording(t, file, wantRecording{ext: ".mkv", videoCodec: "h264", profile: "High", held: published.Sub(launched)}, sent, start)
}
