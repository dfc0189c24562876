package whep

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// viewer is a raw pion receiver: it records the first video payload so
// the test can check where the picture starts.
type viewer struct {
	pc        *webrtc.PeerConnection
	mu        sync.Mutex
	firstVid  []byte
	videoPkts int
	audioPkts int
}

func newViewer(t *testing.T) (*viewer, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := whipclient.LoopbackSettingEngine()
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	v := &viewer{pc: pc}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.mu.Lock()
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				if v.firstVid == nil {
					v.firstVid = append([]byte{}, p.Payload...)
				}
				v.videoPkts++
			} else {
				v.audioPkts++
			}
			v.mu.Unlock()
		}
	})
	return v, gatheredOffer(t, pc)
}

// gatheredOffer is pc's offer with every ICE candidate, as WHEP sends it.
func gatheredOffer(tb testing.TB, pc *webrtc.PeerConnection) string {
	tb.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		tb.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

// startServer serves hub over WHEP with a WebRTC socket on loopback; both
// close with the test.
func startServer(tb testing.TB, hub *ingest.Hub, cfg Config) *Server {
	tb.Helper()
	rtc, err := ingest.NewRTC(ingest.RTCConfig{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = rtc.Close() })
	srv := New(hub, rtc, cfg)
	tb.Cleanup(srv.Close)
	return srv
}

func (v *viewer) counts() (video, audio int, first []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.videoPkts, v.audioPkts, v.firstVid
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Three viewers of one publisher all receive, each starting its picture on
// a keyframe, and all leave when the publisher does.
func TestViewersStartOnKeyframeAndLeaveWithPublisher(t *testing.T) {
	for _, codec := range []ingest.Codec{ingest.VP8, ingest.H264} {
		t.Run(string(codec), func(t *testing.T) {
			hub := ingest.NewHub(ingest.Reject)
			srv := startServer(t, hub, Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pub, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: codec, Audio: true, Loop: true})
			if err != nil {
				t.Fatal(err)
			}
			var viewers []*viewer
			var sessions []*Session
			for i := 0; i < 3; i++ {
				v, offer := newViewer(t)
				sess, answer, err := srv.Play(ctx, "cam", []byte(offer), "127.0.0.1")
				if err != nil {
					t.Fatal(err)
				}
				if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
					t.Fatal(err)
				}
				viewers = append(viewers, v)
				sessions = append(sessions, sess)
			}
			for i, v := range viewers {
				eventually(t, "video and audio at every viewer", func() bool {
					video, audio, _ := v.counts()
					return video > 30 && audio > 10
				})
				if _, _, first := v.counts(); !ingest.IsKeyframeStart(codec, first) {
					t.Errorf("viewer %d's first video packet is not a keyframe start: % x", i, first[:min(len(first), 8)])
				}
			}
			if got := pub.Stream.Info().Viewers["whep"]; got != 3 {
				t.Fatalf("hub counts %d WHEP viewers, want 3", got)
			}
			if pub.KeyframeRequests.Load() == 0 {
				t.Fatal("no keyframe was requested for the joining viewers")
			}
			cancel() // the publisher leaves
			<-pub.Done()
			for i, s := range sessions {
				select {
				case <-s.Done():
				case <-time.After(10 * time.Second):
					t.Fatalf("viewer session %d still open after the publisher left", i)
				}
				if _, err := srv.Session("cam", s.ID); err == nil {
					t.Fatalf("ended session %d is still addressable", i)
				}
			}
		})
	}
}

func TestPlayUnknownStream(t *testing.T) {
	srv := startServer(t, ingest.NewHub(ingest.Reject), Config{})
	_, offer := newViewer(t)
	if _, _, err := srv.Play(context.Background(), "nobody", []byte(offer), ""); err != ErrNotLive {
		t.Fatalf("got %v, want ErrNotLive", err)
	}
}
