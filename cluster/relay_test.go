package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/egress/rtsp"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

// packetLog is a consumer that keeps what it got.
type packetLog struct {
	mu       sync.Mutex
	packets  map[live.MediaKind]int
	keyframe time.Time
	rtp      map[live.MediaKind]uint32 // the latest RTP timestamp per kind
}

func (c *packetLog) WritePacket(p *live.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packets[p.Track.Kind]++
	c.rtp[p.Track.Kind] = p.RTP.Timestamp
	if c.keyframe.IsZero() && p.Track.Kind == live.Video && live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) {
		c.keyframe = time.Now()
	}
}

func (c *packetLog) snapshot() (video, audio int, keyframe time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets[live.Video], c.packets[live.Audio], c.keyframe
}

// originWithRTSP is a node publishing H.264 + Opus fixture media, with
// its RTSP server on loopback asking for token.
func originWithRTSP(t *testing.T, mr *miniredis.Miniredis, token string, edits ...func(*Config)) (*Node, *hubtest.Publisher) {
	t.Helper()
	var srv *rtsp.Server
	origin := testNode(t, mr, "origin", func(c *Config, hub *live.Hub) {
		gate, err := access.New(access.Config{ReadTokens: []string{token}}, access.Limits{}, c.Logger)
		if err != nil {
			t.Fatal(err)
		}
		if srv, err = rtsp.New(rtsp.Config{Addr: "127.0.0.1:0", Gate: gate, Logger: c.Logger}, hub); err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
		c.RTSPURL = "rtsp://" + srv.Addr()
		for _, edit := range edits {
			edit(c)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pub, err := hubtest.Publish(ctx, origin.hub, "board/alice", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	return origin, pub
}

func TestRelayFromOwner(t *testing.T) {
	mr := miniredis.RunT(t)
	const token = "node-secret"
	origin, pub := originWithRTSP(t, mr, token)
	_ = origin
	edge := testNode(t, mr, "edge", func(c *Config, _ *live.Hub) { c.Token, c.RelayIdle = token, 700*time.Millisecond })
	testwait.Until(t, 3*time.Second, "the edge hears of the stream", func() bool {
		edge.heartbeat()
		return edge.cache.streamAt("board/alice") != nil
	})
	originStream := pub.Stream
	// Let the origin's clock settle (Sender Reports), as a live stream's has.
	testwait.Until(t, 6*time.Second, "the origin's clock settles", originStream.Clock().Settled)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	asked := time.Now()
	s := edge.hub.Find(ctx, "board/alice")
	if s == nil || !s.Relayed() {
		t.Fatalf("Find on the edge: %v, want a relay", s)
	}
	if s.Track(live.Video) == nil || s.Track(live.Video).Codec != live.H264 || s.Track(live.Audio) == nil || s.Track(live.Audio).Codec != live.Opus {
		t.Fatalf("relay tracks: %+v", s.Info().Tracks)
	}
	if again := edge.hub.Find(ctx, "board/alice"); again != s {
		t.Fatal("a second viewer started a second relay")
	}
	c := &packetLog{packets: map[live.MediaKind]int{}, rtp: map[live.MediaKind]uint32{}}
	sub, err := s.Subscribe("test", c, 0)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "video and audio through the relay", func() bool {
		v, a, _ := c.snapshot()
		return v > 50 && a > 50
	})
	t.Logf("relay up, first packets after %v", time.Since(asked))

	// A keyframe request on the edge reaches the owner's publisher.
	time.Sleep(600 * time.Millisecond) // past the merge window of earlier requests
	before := pub.KeyframeRequests.Load()
	s.RequestKeyframe()
	testwait.Until(t, 2*time.Second, "the edge's keyframe request reaches the publisher", func() bool {
		return pub.KeyframeRequests.Load() > before
	})

	// The edge keeps the owner's timing: its clock runs on the owner's
	// Sender Reports, and audio and video keep their offsets across the hop.
	testwait.Until(t, 6*time.Second, "the relay's clock settles on Sender Reports", func() bool {
		return s.Clock().Settled() && s.Clock().Mode() == "sender-reports"
	})
	time.Sleep(1500 * time.Millisecond) // a report per track has come since
	vt, at := s.Track(live.Video), s.Track(live.Audio)
	c.mu.Lock()
	vrtp, artp := c.rtp[live.Video], c.rtp[live.Audio]
	c.mu.Unlock()
	hop := func(edgeT *live.Track, kind live.MediaKind, ts uint32) time.Duration {
		e, ok1 := s.Clock().Time(edgeT, ts)
		o, ok2 := originStream.Clock().Time(originStream.Track(kind), ts)
		if !ok1 || !ok2 {
			t.Fatalf("%s: no time for RTP %d on the edge (%v) or the origin (%v)", kind, ts, ok1, ok2)
		}
		return e.Sub(o)
	}
	dv, da := hop(vt, live.Video, vrtp), hop(at, live.Audio, artp)
	if d := (dv - da).Abs(); d > 5*time.Millisecond {
		t.Fatalf("the hop moved audio against video by %v (video %v, audio %v): lip sync lost", d, dv, da)
	}
	t.Logf("hop offsets: video %v, audio %v", dv, da)

	// Nobody watches: the relay closes after RelayIdle.
	sub.Close()
	testwait.Until(t, 3*time.Second, "the idle relay closes", func() bool { return edge.hub.Get("board/alice") == nil && edge.Relays() == 0 })

	// A stream live nowhere is not relayed.
	if edge.hub.Find(ctx, "nobody") != nil {
		t.Fatal("relayed a stream nobody publishes")
	}
}

// TestRelayEndsWithOwner: when the publisher leaves the owner, the
// edge's relay and its viewers end.
func TestRelayEndsWithOwner(t *testing.T) {
	mr := miniredis.RunT(t)
	const token = "node-secret"
	_, pub := originWithRTSP(t, mr, token)
	edge := testNode(t, mr, "edge", func(c *Config, _ *live.Hub) { c.Token = token })
	testwait.Until(t, 3*time.Second, "the edge hears of the stream", func() bool {
		edge.heartbeat()
		return edge.cache.streamAt("board/alice") != nil
	})
	testwait.Until(t, 6*time.Second, "the origin's clock settles", pub.Stream.Clock().Settled)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := edge.hub.Find(ctx, "board/alice")
	if s == nil {
		t.Fatal("no relay")
	}
	pub.Stream.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the relay outlived the owner's stream")
	}
}

// TestRelayWrongToken: an edge whose credential the owner refuses gets
// no relay, and says why.
func TestRelayWrongToken(t *testing.T) {
	mr := miniredis.RunT(t)
	_, pub := originWithRTSP(t, mr, "node-secret")
	edge := testNode(t, mr, "edge", func(c *Config, _ *live.Hub) { c.Token = "wrong" })
	testwait.Until(t, 3*time.Second, "the edge hears of the stream", func() bool {
		edge.heartbeat()
		return edge.cache.streamAt("board/alice") != nil
	})
	testwait.Until(t, 6*time.Second, "the origin's clock settles", pub.Stream.Clock().Settled)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := edge.relays.find(ctx, "board/alice"); err == nil {
		t.Fatal("relayed with a refused credential")
	}
	if edge.hub.Get("board/alice") != nil {
		t.Fatal("a failed relay left a stream in the hub")
	}
}

// TestRelayBeforeRegistration: a viewer may reach an edge before the
// owner's registration lists its new stream (it is renewed every TTL/3):
// the group's ownership says where to pull from.
func TestRelayBeforeRegistration(t *testing.T) {
	mr := miniredis.RunT(t)
	const token = "node-secret"
	var stale atomic.Bool
	origin, pub := originWithRTSP(t, mr, token, func(c *Config) {
		snap := c.Snapshot
		c.Snapshot = func() (Load, []live.StreamInfo) {
			if stale.Load() {
				return Load{}, nil
			}
			return snap()
		}
	})
	edge := testNode(t, mr, "edge", func(c *Config, _ *live.Hub) { c.Token = token })
	testwait.Until(t, 6*time.Second, "the origin's clock settles", pub.Stream.Clock().Settled)
	// The registration lists no stream, as before the owner's renewal;
	// the edge's cache has forgotten it too.
	stale.Store(true)
	// (The origin's stream.up event may still be on its way: it is sent
	// once, so a refresh after it clears the cache for good.)
	testwait.Until(t, 5*time.Second, "the edge to forget the stream", func() bool {
		origin.heartbeat()
		edge.heartbeat()
		return edge.cache.streamAt("board/alice") == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := edge.hub.Find(ctx, "board/alice")
	if s == nil || !s.Relayed() {
		t.Fatalf("Find before the registration lists the stream: %v, want a relay", s)
	}
	// Another participant of the owned meeting who is not live: no relay,
	// and no error (the owner answered 404).
	if st, err := edge.relays.find(ctx, "board/nobody"); st != nil || err != nil {
		t.Fatalf("a participant not live: %v, %v", st, err)
	}
}
