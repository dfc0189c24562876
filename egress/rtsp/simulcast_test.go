package rtsp

import (
	"testing"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// A simulcast stream is served at its top layer on the plain path and at
// each layer with ?layer= (a rank name or a rid); ffprobe sees each
// layer's size and ffmpeg decodes it, over TCP and UDP. A layer the
// stream does not have is 404. The fixture answers the keyframe request
// of each PLAY as an encoder does: a reader that started mid-GOP would
// decode pictures whose references it never got, and ffmpeg logs each.
func TestSimulcastLayers(t *testing.T) {
	needTool(t, "ffprobe")
	needTool(t, "ffmpeg")
	for _, c := range []struct {
		codec live.Codec
		name  string
	}{{live.H264, "h264"}, {live.VP8, "vp8"}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hub := live.NewHub(live.Reject)
			publish(t, hub, "sim", hubtest.Source{Video: c.codec, Audio: true, Loop: true, Simulcast: true, KeyframeOnRequest: true})
			s := startServer(t, hub, true)
			for path, want := range map[string][2]int{
				"sim": {640, 360}, "sim?layer=low": {160, 90}, "sim?layer=mid": {320, 180}, "sim?layer=q": {160, 90},
			} {
				streams, err := ffprobe(t, streamURL(s, path), "tcp")
				if err != nil {
					t.Fatalf("ffprobe %s: %v", path, err)
				}
				v, a := findProbed(streams, "video"), findProbed(streams, "audio")
				if v == nil || v.CodecName != c.name || v.Width != want[0] || v.Height != want[1] || a == nil || a.CodecName != "opus" {
					t.Errorf("%s: ffprobe sees %+v and %+v, want %s %dx%d and opus", path, v, a, c.name, want[0], want[1])
				}
			}
			// The layers' pictures are decoded; audio is not this test's
			// subject (TestLipSyncEndToEnd and TestSenderReports judge
			// RTSP's timing).
			decode3s(t, streamURL(s, "sim?layer=low"), "udp", "-map", "0:v")
			decode3s(t, streamURL(s, "sim"), "tcp", "-map", "0:v")
			if _, err := ffprobe(t, streamURL(s, "sim?layer=x"), "tcp"); err == nil {
				t.Error("a layer the stream does not have was served")
			}
		})
	}
}
