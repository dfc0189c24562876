package whep

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// viewer is a raw pion receiver: it records the first video payload so
// the test can check where the picture starts.
type viewer struct {
	pc        *webrtc.PeerConnection
	onVideo   func(*rtp.Packet) // if set before play, sees every video packet
	mu        sync.Mutex
	firstVid  []byte
	videoPkts int
	audioPkts int
}

// newViewer makes a viewer and its offer; srtp, if given, are the only
// SRTP profiles it takes.
func newViewer(t *testing.T, srtp ...dtls.SRTPProtectionProfile) (*viewer, string) {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := whipclient.LoopbackSettingEngine()
	if len(srtp) > 0 {
		se.SetSRTPProtectionProfiles(srtp...)
	}
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
				if v.onVideo != nil {
					v.onVideo(p)
				}
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

// play has srv answer offer, pc's offer to watch stream from loopback,
// and gives pc the answer, as a WHEP client does with its POST.
func play(tb testing.TB, ctx context.Context, srv *Server, pc *webrtc.PeerConnection, stream, offer string, opts PlayOptions) *Session {
	tb.Helper()
	sess, answer, err := srv.PlayWith(ctx, stream, []byte(offer), "127.0.0.1", opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		tb.Fatal(err)
	}
	return sess
}

// startServer serves hub over WHEP with a WebRTC socket on loopback; both
// close with the test.
func startServer(tb testing.TB, hub *live.Hub, cfg Config) *Server {
	tb.Helper()
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = engine.Close() })
	srv := New(hub, engine, cfg)
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
	testwait.Until(t, 15*time.Second, what, cond)
}

// Three viewers of one publisher all receive, each starting its picture on
// a keyframe, and all leave when the publisher does.
func TestViewersStartOnKeyframeAndLeaveWithPublisher(t *testing.T) {
	for _, codec := range []live.Codec{live.VP8, live.H264} {
		t.Run(string(codec), func(t *testing.T) {
			hub := live.NewHub(live.Reject)
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
				sess := play(t, ctx, srv, v.pc, "cam", offer, PlayOptions{})
				viewers = append(viewers, v)
				sessions = append(sessions, sess)
			}
			for i, v := range viewers {
				eventually(t, "video and audio at every viewer", func() bool {
					video, audio, _ := v.counts()
					return video > 30 && audio > 10
				})
				if _, _, first := v.counts(); !live.IsKeyframeStart(codec, first) {
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
	srv := startServer(t, live.NewHub(live.Reject), Config{})
	_, offer := newViewer(t)
	if _, _, err := srv.Play(context.Background(), "nobody", []byte(offer), ""); err != ErrNotLive {
		t.Fatalf("got %v, want ErrNotLive", err)
	}
}

// Reel offers AES-128-GCM and, for peers without GCM, AES-CM: a viewer that
// takes only one of them gets media either way. AES-256-GCM, which costs
// more per packet, is not offered.
func TestSRTPProfiles(t *testing.T) {
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.VP8, Audio: true, Loop: true}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		profile dtls.SRTPProtectionProfile
		ok      bool
	}{{dtls.SRTP_AEAD_AES_128_GCM, true}, {dtls.SRTP_AES128_CM_HMAC_SHA1_80, true}, {dtls.SRTP_AEAD_AES_256_GCM, false}} {
		v, offer := newViewer(t, tc.profile)
		var failed atomic.Bool
		v.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			failed.Store(failed.Load() || s == webrtc.PeerConnectionStateFailed)
		})
		sess := play(t, ctx, srv, v.pc, "cam", offer, PlayOptions{})
		if tc.ok {
			eventually(t, fmt.Sprintf("video with SRTP profile %v", tc.profile), func() bool {
				video, _, _ := v.counts()
				return video > 10
			})
			// A loopback viewer's pair leaves through the shared socket:
			// its media is encrypted past pion (direct.go).
			if sess.direct.Load() == nil {
				t.Errorf("SRTP profile %v: the viewer's media went through pion", tc.profile)
			}
			// and, never waiting on its path, it is on one of the
			// stream's lanes (live/lane.go)
			if !sess.sub.Shared() {
				t.Errorf("SRTP profile %v: the direct viewer kept a queue of its own", tc.profile)
			}
			continue
		}
		eventually(t, fmt.Sprintf("the handshake with only SRTP profile %v to fail", tc.profile), failed.Load)
		if video, _, _ := v.counts(); video != 0 {
			t.Fatalf("%d video packets with a profile Reel does not offer", video)
		}
	}
}

// A viewer on pion's track (as relayed and TCP viewers are) gets a
// publisher's padding-only packet with its padding: pion's SRTP session
// leaves Header.PaddingSize's bytes out, and the padding bit without
// them is a packet the viewer cannot parse (its track reader stops).
func TestPionPathSendsPadding(t *testing.T) {
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	srv.viaPion = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.VP8, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	v, offer := newViewer(t)
	var padded atomic.Int64
	var last atomic.Uint32
	v.mu.Lock()
	v.onVideo = func(p *rtp.Packet) {
		if p.Header.Padding && p.Header.PaddingSize == 40 && len(p.Payload) == 0 {
			padded.Add(1)
			return
		}
		last.Store(uint32(p.SequenceNumber))
	}
	v.mu.Unlock()
	sess := play(t, ctx, srv, v.pc, "cam", offer, PlayOptions{})
	eventually(t, "video", func() bool { video, _, _ := v.counts(); return video > 10 })
	if sess.direct.Load() != nil {
		t.Fatal("the viewer's media went past pion")
	}
	// pion's path can wait on the viewer's: its queue stays its own
	if sess.sub.Shared() {
		t.Fatal("a viewer on pion's path moved onto a lane")
	}
	video := pub.Stream.Track(live.Video)
	// In the stream's own numbering, a little ahead, as a publisher's
	// probes are: a jump across half the sequence space would test the
	// viewer's SRTP rollover guess instead (the source's first number is
	// random), and a number already sent is a replay to the viewer.
	next := uint16(last.Load()) + 40
	for i := range 5 {
		raw, err := (&rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 40, PayloadType: 96,
			SequenceNumber: next + uint16(i), SSRC: 7}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Stream.WriteRTP(video, raw, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the padding packets, padded", func() bool { return padded.Load() == 5 })
	// and the viewer's reader goes on
	before, _, _ := v.counts()
	eventually(t, "video after the padding", func() bool { n, _, _ := v.counts(); return n > before+10 })
}
