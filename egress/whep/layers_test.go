package whep

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
)

// got is one video packet as a viewer received it, with the picture size
// its stream showed so far.
type got struct {
	seq  uint16
	ts   uint32
	ssrc uint32
	size string
	at   time.Time
}

// layerViewer is a pion receiver that keeps every video packet's header
// and reads the picture size from the keyframes it receives, through a
// hub track of its own (the same code that sizes a publisher's layers).
type layerViewer struct {
	pc  *webrtc.PeerConnection
	mu  sync.Mutex
	pkt []got
}

func newLayerViewer(t *testing.T, codec live.Codec) (*layerViewer, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := whipclient.LoopbackSettingEngine()
	// No interceptors: the viewer sends no feedback, so the test sets the
	// bandwidth estimate itself.
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &layerViewer{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	probe, err := live.NewHub(live.Reject).Publish("probe", live.PublishSpec{Tracks: []*live.Track{{Kind: live.Video, Codec: codec, ClockRate: 90000}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(probe.Close)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if tr.Kind() != webrtc.RTPCodecTypeVideo {
				continue
			}
			var p rtp.Packet
			if p.Unmarshal(buf[:n]) != nil || len(p.Payload) == 0 {
				continue // padding
			}
			_ = probe.WriteRTP(probe.Tracks()[0], buf[:n], time.Now())
			w, h := probe.Tracks()[0].Size()
			v.mu.Lock()
			v.pkt = append(v.pkt, got{p.SequenceNumber, p.Timestamp, p.SSRC, fmt.Sprintf("%dx%d", w, h), time.Now()})
			v.mu.Unlock()
		}
	})
	return v, gatheredOffer(t, pc)
}

func (v *layerViewer) packets() []got {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]got(nil), v.pkt...)
}

// size is the picture size the viewer shows now.
func (v *layerViewer) size() string {
	p := v.packets()
	if len(p) == 0 {
		return ""
	}
	return p[len(p)-1].size
}

func playLayers(t *testing.T, codec live.Codec, layer string) (*layerViewer, *Session, *hubtest.Publisher) {
	t.Helper()
	return playLayersFrom(t, hubtest.Source{Video: codec, Audio: true, Loop: true, Simulcast: true}, 0, layer)
}

// playLayersFrom publishes src and, after a while, plays it.
func playLayersFrom(t *testing.T, src hubtest.Source, after time.Duration, layer string) (*layerViewer, *Session, *hubtest.Publisher) {
	t.Helper()
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pub, err := hubtest.Publish(ctx, hub, "sim", src)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(after)
	v, offer := newLayerViewer(t, src.Video)
	sess := play(t, ctx, srv, v.pc, "sim", offer, PlayOptions{Layer: layer})
	return v, sess, pub
}

// A viewer whose target layer sends no more keyframes (a browser short of
// CPU holds its top layer's back) starts after startWait on another
// layer's keyframe, instead of showing nothing.
func TestViewerStartsOnAnyLayerWithoutTheTargetsKeyframe(t *testing.T) {
	for _, codec := range []live.Codec{live.H264, live.VP8} {
		t.Run(string(codec), func(t *testing.T) {
			t.Parallel()
			src := hubtest.Source{Video: codec, Audio: true, Loop: true, Simulcast: true, WithholdKeyframes: "f"}
			// Played after the top layer's only keyframe.
			v, sess, pub := playLayersFrom(t, src, time.Second, "")
			start := time.Now()
			eventually(t, "a picture", func() bool { return v.size() != "" && v.size() != "0x0" })
			took := time.Since(start)
			if size := v.size(); size == "640x360" {
				t.Fatalf("started on the top layer, whose keyframes are withheld")
			}
			if took < startWait {
				t.Errorf("started after %v, before startWait (%v): the target layer was not waited for", took, startWait)
			}
			if pub.LayerKeyframeRequests[2].Load() == 0 {
				t.Error("the top layer's keyframe was never asked for")
			}
			if r := sess.Layer(); r != "q" && r != "h" {
				t.Errorf("session reports layer %q", r)
			}
			t.Logf("a %s picture %v after playing", v.size(), took.Round(time.Millisecond))
		})
	}
}

// A viewer that pins a layer (?layer=) gets that layer's picture.
func TestPinnedLayer(t *testing.T) {
	for _, codec := range []live.Codec{live.H264, live.VP8} {
		for layer, want := range map[string]string{"low": "160x90", "mid": "320x180", "high": "640x360", "h": "320x180"} {
			t.Run(string(codec)+"/"+layer, func(t *testing.T) {
				t.Parallel()
				v, sess, _ := playLayers(t, codec, layer)
				eventually(t, "the "+layer+" layer's picture", func() bool { return v.size() == want && len(v.packets()) > 20 })
				// on a lane, like any viewer on the direct path; the
				// lane takes the layers its members take
				if !sess.sub.Shared() {
					t.Fatal("a simulcast viewer did not move onto a lane")
				}
				for _, p := range v.packets() {
					if p.size != "0x0" && p.size != want {
						t.Fatalf("got a %s picture pinned to %s", p.size, layer)
					}
				}
				if r := sess.Layer(); r != map[string]string{"160x90": "q", "320x180": "h", "640x360": "f"}[want] {
					t.Fatalf("session reports layer %q", r)
				}
			})
		}
	}
}

func TestUnknownLayerRefused(t *testing.T) {
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := hubtest.Publish(ctx, hub, "sim", hubtest.Source{Video: live.VP8, Loop: true, Simulcast: true}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "low/1"} {
		_, offer := newLayerViewer(t, live.VP8)
		if _, _, err := srv.PlayWith(ctx, "sim", []byte(offer), "", PlayOptions{Layer: name}); err == nil {
			t.Errorf("layer %q accepted", name)
		}
	}
}

// setEstimate puts the viewer's bandwidth estimate where the test wants
// it (the test viewer sends no feedback that would move it).
func setEstimate(sess *Session, bps float64) {
	sess.est.mu.Lock()
	sess.est.estimate = bps
	sess.est.mu.Unlock()
}

// With auto selection the viewer switches layers as its estimate moves,
// at keyframes, asking for the target layer's keyframe; its decoder sees
// one stream throughout: one SSRC, consecutive sequence numbers,
// timestamps that keep going forward.
func TestLayerSwitchIsOneContinuousStream(t *testing.T) {
	for _, codec := range []live.Codec{live.H264, live.VP8} {
		t.Run(string(codec), func(t *testing.T) {
			t.Parallel()
			v, sess, pub := playLayers(t, codec, "")
			eventually(t, "the top layer at the start estimate", func() bool { return v.size() == "640x360" })
			asked := pub.LayerKeyframeRequests[0].Load()
			setEstimate(sess, 100_000)
			eventually(t, "the low layer", func() bool { return v.size() == "160x90" })
			if pub.LayerKeyframeRequests[0].Load() == asked {
				t.Error("no keyframe was asked of the low layer")
			}
			// An estimate that fits the mid layer with headroom, not the top.
			video, audio := sess.stream.Track(live.Video), sess.stream.Track(live.Audio).Bitrate()
			mid, top := (video.Layer("mid").Bitrate()+audio)*upHeadroom, (video.Layer("high").Bitrate()+audio)*upHeadroom
			t.Logf("need with headroom: mid %.0f kbit/s, top %.0f kbit/s", mid/1000, top/1000)
			setEstimate(sess, (mid+top)/2)
			eventually(t, "the mid layer", func() bool { return v.size() == "320x180" })
			setEstimate(sess, 2_000_000)
			eventually(t, "the top layer again", func() bool { return v.size() == "640x360" })
			pkts := v.packets()
			sizes := map[string]bool{}
			for i, p := range pkts {
				sizes[p.size] = true
				if i == 0 {
					continue
				}
				prev := pkts[i-1]
				if p.ssrc != prev.ssrc {
					t.Fatalf("packet %d: SSRC %x after %x", i, p.ssrc, prev.ssrc)
				}
				if p.seq != prev.seq+1 {
					t.Fatalf("packet %d: sequence number %d after %d (%s after %s)", i, p.seq, prev.seq, p.size, prev.size)
				}
				if d := int32(p.ts - prev.ts); d < 0 || d > 90000/2 {
					t.Fatalf("packet %d: timestamp moves %d ticks (%s after %s)", i, d, p.size, prev.size)
				}
			}
			if len(sizes) < 3 || sess.LayerSwitches() < 3 {
				t.Fatalf("sizes seen %v, switches %d", sizes, sess.LayerSwitches())
			}
		})
	}
}
