package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// A simulcast publisher (the project's pion client, three rids of real
// H.264 or VP8 at three sizes) becomes one stream whose video track has a
// layer per rid, each with its own packets and the size its keyframes
// show; the layers rank by size.
func TestSimulcastPublish(t *testing.T) {
	for _, codec := range []string{"h264", "vp8"} {
		t.Run(codec, func(t *testing.T) {
			hub, _, url := limitsGateway(t, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			se := whipclient.LoopbackSettingEngine()
			pub, err := whipclient.Publish(ctx, url, whipclient.PublishOptions{Video: codec, Audio: true, Loop: true,
				Simulcast: whipclient.DefaultSimulcast(), SettingEngine: &se})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			s := hub.Get("idle")
			if s == nil {
				t.Fatal("not live")
			}
			video := s.Track(live.Video)
			if len(video.Layers()) != 3 {
				t.Fatalf("%d layers, want 3", len(video.Layers()))
			}
			want := map[string][2]int{"q": {160, 90}, "h": {320, 180}, "f": {640, 360}}
			testwait.Until(t, 10*time.Second, "every layer to show its size", func() bool {
				for _, l := range video.Layers() {
					if w, h := l.Size(); w != want[l.RID][0] || h != want[l.RID][1] {
						return false
					}
				}
				return video.LayersSettled()
			})
			if top := video.TopLayer(); top.RID != "f" || video.Layer("low").RID != "q" || video.Layer("mid").RID != "h" {
				t.Fatalf("ranking: top %s low %s mid %s", top.RID, video.Layer("low").RID, video.Layer("mid").RID)
			}
			testwait.Until(t, 5*time.Second, "packets on every layer and audio", func() bool {
				for _, l := range video.Layers() {
					if l.Packets() < 30 || l.SSRC() == 0 {
						return false
					}
				}
				return s.Track(live.Audio).Packets() > 10
			})
			ssrcs := map[uint32]bool{}
			for _, l := range video.Layers() {
				ssrcs[l.SSRC()] = true
			}
			if len(ssrcs) != 3 {
				t.Fatalf("layers share SSRCs: %v", ssrcs)
			}
			// A keyframe request for one layer reaches the publisher's
			// encoding of that layer alone.
			before := pub.Stats().Layers
			s.RequestLayerKeyframe(video.Layer("high"))
			testwait.Until(t, 5*time.Second, "a PLI on layer f", func() bool { return pub.Stats().Layers["f"].PLIs > before["f"].PLIs })
			if after := pub.Stats().Layers; after["q"].PLIs != before["q"].PLIs {
				t.Errorf("layer q got a PLI meant for f")
			}
		})
	}
}

// publish.simulcast_layers bounds the layers: the answer keeps the first
// rids of the offer and drops the others.
func TestSimulcastLayerLimit(t *testing.T) {
	prefs := rtc.DefaultPreferences()
	prefs.SimulcastLayers = 2
	hub, _, url := limitsGateway(t, Config{Preferences: prefs})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, url, whipclient.PublishOptions{Video: "vp8", Loop: true,
		Simulcast: whipclient.DefaultSimulcast(), SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	video := hub.Get("idle").Track(live.Video)
	if l := video.Layers(); len(l) != 2 || l[0].RID != "q" || l[1].RID != "h" {
		t.Fatalf("layers %v, want q and h", l)
	}
	testwait.Until(t, 10*time.Second, "both layers to flow", func() bool {
		return video.Layers()[0].Packets() > 30 && video.Layers()[1].Packets() > 30
	})
}
