package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
)

// A simulcast publish through the API: the streams API lists the video
// track's layers (rid, size, bitrate, fps), lowest first; WHEP takes
// ?layer= for a layer the stream has and refuses one it has not, saying
// which it has.
func TestSimulcastThroughTheAPI(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, ts.url+"/whip/sim", whipclient.PublishOptions{Video: "h264", Audio: true, Loop: true,
		Simulcast: whipclient.DefaultSimulcast(), SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var info live.StreamInfo
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := do(t, "GET", ts.url+"/api/v1/streams/sim", "", "")
		if r.status != 200 {
			t.Fatalf("streams API: %d %s", r.status, r.body)
		}
		info = live.StreamInfo{}
		if err := json.Unmarshal([]byte(r.body), &info); err != nil {
			t.Fatal(err)
		}
		if v := info.Tracks[0]; len(v.Layers) == 3 && v.Layers[0].FPS > 0 && v.Layers[2].BitrateKbps > 0 && v.Layers[0].Width > 0 && v.Layers[1].Width > 0 && v.Layers[2].Width > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("layers in the API: %+v", info.Tracks)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := []struct {
		rid  string
		w, h int
	}{{"q", 160, 90}, {"h", 320, 180}, {"f", 640, 360}}
	for i, l := range info.Tracks[0].Layers {
		if l.RID != want[i].rid || l.Width != want[i].w || l.Height != want[i].h {
			t.Errorf("layer %d: %+v, want %s %dx%d", i, l, want[i].rid, want[i].w, want[i].h)
		}
	}
	if v := info.Tracks[0]; v.Width != 640 || v.Height != 360 {
		t.Errorf("the video track shows %dx%d, want its top layer's 640x360", v.Width, v.Height)
	}
	t.Logf("layers: %+v", info.Tracks[0].Layers)

	wantProblem(t, do(t, "POST", ts.url+"/whep/sim?layer=x", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, h264, opus)), 422, "q, h, f")
	if r := do(t, "POST", ts.url+"/whep/sim?layer=low", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, h264, opus)); r.status != 201 {
		t.Fatalf("WHEP ?layer=low: %d %s", r.status, r.body)
	}
}
