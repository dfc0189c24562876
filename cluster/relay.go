package cluster

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/egress/rtsp"
	"github.com/reel-gateway/reel/internal/id"
	"github.com/reel-gateway/reel/live"
)

// A relay pulls one stream from the node that publishes it, once, over
// RTSP interleaved in TCP, and publishes it into this node's hub, where
// WHEP, RTSP and HLS viewers subscribe to it as to any stream.
//
// RTSP rather than WHEP for the hop: the owner's RTSP output already
// sends Sender Reports with the times of its stream clock (the
// publisher's capture times, lip-synced), which the relay hands to its
// own stream's clock, so the edge keeps the owner's timing; TCP inside a
// data centre loses nothing, so there is no NACK to carry; it needs no
// ICE, DTLS or SRTP, so it starts in one round trip; and the edge's
// keyframe requests cross as RTCP PLI, which the owner's RTSP server
// hands to its publisher.

// relayTimeout bounds setting a relay up (DESCRIBE, SETUP, PLAY).
const relayTimeout = 5 * time.Second

type relays struct {
	n *Node

	mu      sync.Mutex
	active  map[string]*relay
	pending map[string]*relayCall
	closed  bool
}

type relayCall struct {
	done   chan struct{}
	stream *live.Stream
	err    error
}

type relay struct {
	name   string
	from   string
	client *gortsplib.Client
	stream *live.Stream
	log    *slog.Logger
	once   sync.Once
	done   chan struct{}
}

func newRelays(n *Node) *relays {
	return &relays{n: n, active: map[string]*relay{}, pending: map[string]*relayCall{}}
}

// find is the hub's live.Remote: a relay of name from the node that
// publishes it, nil when no node does. Concurrent viewers share one.
func (r *relays) find(ctx context.Context, name string) (*live.Stream, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil
	}
	if rl := r.active[name]; rl != nil {
		r.mu.Unlock()
		return rl.stream, nil
	}
	if c := r.pending[name]; c != nil {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.stream, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &relayCall{done: make(chan struct{})}
	r.pending[name] = c
	r.mu.Unlock()

	c.stream, c.err = r.start(ctx, name)
	r.mu.Lock()
	delete(r.pending, name)
	r.mu.Unlock()
	close(c.done)
	if c.err != nil {
		r.n.log.Warn("cannot relay the stream from its owner", "stream", name, "err", c.err)
	}
	return c.stream, c.err
}

// origin is the node that publishes name, by the cache or, when it does
// not know, by the registry: the nodes' registrations, or, for a stream
// published since its node's last renewal, its group's owner (which then
// answers DESCRIBE with 404 if the stream is not live there).
func (r *relays) origin(ctx context.Context, name string) *NodeInfo {
	if ni := r.n.cache.streamAt(name); ni != nil {
		return ni
	}
	ctx, cancel := r.n.opContext(ctx)
	defer cancel()
	ids, err := r.n.rdb.SMembers(ctx, keyNodes).Result()
	if err != nil {
		_ = r.n.unavailable(err)
		return nil
	}
	r.n.refresh(ctx, ids)
	if ni := r.n.cache.streamAt(name); ni != nil {
		return ni
	}
	owner, err := r.n.Owner(ctx, name)
	if err != nil || owner == "" || owner == r.n.cfg.NodeID {
		return nil
	}
	return r.n.cache.get(owner)
}

func (r *relays) start(ctx context.Context, name string) (*live.Stream, error) {
	ni := r.origin(ctx, name)
	if ni == nil || ni.ID == r.n.cfg.NodeID {
		return nil, nil
	}
	if ni.RTSPURL == "" {
		return nil, fmt.Errorf("node %q publishes %q with RTSP off: nothing to relay from", ni.ID, name)
	}
	u, err := base.ParseURL(ni.RTSPURL + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("node %q registered an unusable RTSP URL %q: %w", ni.ID, ni.RTSPURL, err)
	}
	if r.n.cfg.Token != "" {
		u.User = url.UserPassword("reel-relay", r.n.cfg.Token)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp,
		ReadTimeout: relayTimeout, WriteTimeout: relayTimeout, UserAgent: rtsp.RelayUserAgent + r.n.cfg.NodeID}
	if err := c.Start2(); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", u.Host, err)
	}
	stop := context.AfterFunc(ctx, c.Close) // the viewer gave up
	s, err := r.setup(c, u, name, ni.ID)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil || s == nil {
		c.Close()
		if s != nil {
			s.Close()
		}
		return nil, err
	}
	return s, nil
}

// setup describes the stream at u, publishes it into the hub and plays.
func (r *relays) setup(c *gortsplib.Client, u *base.URL, name, from string) (*live.Stream, error) {
	desc, _, err := c.Describe(u)
	var status liberrors.ErrClientBadStatusCode
	if errors.As(err, &status) && status.Code == base.StatusNotFound {
		return nil, nil // not live there either
	}
	if err != nil {
		return nil, fmt.Errorf("DESCRIBE %s: %w", name, err)
	}
	var medias []*description.Media
	var tracks []*live.Track
	for _, m := range desc.Medias {
		if t := trackOf(m); t != nil {
			medias, tracks = append(medias, m), append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return nil, fmt.Errorf("%s: the owner offers no track this node can relay", name)
	}
	if err := c.SetupAll(desc.BaseURL, medias); err != nil {
		return nil, fmt.Errorf("SETUP %s: %w", name, err)
	}
	rl := &relay{name: name, from: from, client: c, done: make(chan struct{}),
		log: r.n.log.With("stream", name, "from", from)}
	s, err := r.n.hub.Publish(name, live.PublishSpec{Session: id.New(), Protocol: live.RelayProtocol, Remote: from,
		Tracks: tracks, RequestKeyframe: func() { rl.requestKeyframe(medias, tracks) }, Kick: func() { rl.close("kicked") },
		Logger: rl.log})
	if err != nil {
		return nil, fmt.Errorf("publishing the relay of %s: %w", name, err)
	}
	rl.stream = s
	for i, m := range medias {
		rl.pump(m, tracks[i])
	}
	if _, err := c.Play(nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("PLAY %s: %w", name, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		rl.close("shutting down")
		return nil, nil
	}
	r.active[name] = rl
	r.mu.Unlock()
	go func() {
		err := c.Wait()
		rl.close(fmt.Sprintf("the owner ended it: %v", err))
	}()
	go r.watchIdle(rl)
	rl.log.Info("relay started", "url", redacted(u))
	return s, nil
}

// redacted is u without its credential, for logs.
func redacted(u *base.URL) string {
	cp := *u
	cp.User = nil
	return cp.String()
}

// pump hands the owner's packets and Sender Reports of one media to the
// relay's stream. gortsplib calls back on one goroutine per connection,
// so buf is the media's own.
func (rl *relay) pump(m *description.Media, t *live.Track) {
	buf := make([]byte, live.MaxPacketSize)
	for _, f := range m.Formats {
		rl.client.OnPacketRTP(m, f, func(pkt *rtp.Packet) {
			n, err := pkt.MarshalTo(buf)
			if err == nil {
				_ = rl.stream.WriteRTP(t, buf[:n], time.Now())
			}
		})
	}
	rl.client.OnPacketRTCP(m, func(pkt rtcp.Packet) {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			rl.stream.WriteSenderReport(t, live.NTPTime(sr.NTPTime), sr.RTPTime, time.Now())
		}
	})
}

// requestKeyframe asks the owner for a keyframe (RTCP PLI), which its RTSP
// server passes on to the publisher.
func (rl *relay) requestKeyframe(medias []*description.Media, tracks []*live.Track) {
	for i, t := range tracks {
		if t.Kind == live.Video {
			err := rl.client.WritePacketRTCP(medias[i], &rtcp.PictureLossIndication{MediaSSRC: t.SSRC()})
			rl.log.Debug("asked the owner for a keyframe", "err", err)
		}
	}
}

func (rl *relay) close(reason string) {
	rl.once.Do(func() {
		close(rl.done)
		rl.client.Close()
		if rl.stream != nil {
			rl.stream.Close()
		}
		rl.log.Info("relay ended", "reason", reason)
	})
}

// watchIdle ends the relay once nobody has subscribed to it for RelayIdle.
func (r *relays) watchIdle(rl *relay) {
	idle := r.n.cfg.RelayIdle
	t := time.NewTicker(max(min(idle/10, time.Second), 20*time.Millisecond))
	defer t.Stop()
	used := time.Now()
	for {
		select {
		case <-rl.done:
			r.forget(rl)
			return
		case now := <-t.C:
			if len(rl.stream.Subscriptions()) > 0 {
				used = now
			} else if now.Sub(used) >= idle {
				rl.close(fmt.Sprintf("no viewer for %v", idle))
			}
		}
	}
}

func (r *relays) forget(rl *relay) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active[rl.name] == rl {
		delete(r.active, rl.name)
	}
}

// ownerGone ends the relay of name: its owner said the stream ended.
func (r *relays) ownerGone(name string) {
	r.mu.Lock()
	rl := r.active[name]
	r.mu.Unlock()
	if rl != nil {
		rl.close("the owner's publisher left")
	}
}

// count is the number of relays running.
func (r *relays) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.active)
}

func (r *relays) closeAll() {
	r.mu.Lock()
	r.closed = true
	all := make([]*relay, 0, len(r.active))
	for _, rl := range r.active {
		all = append(all, rl)
	}
	r.mu.Unlock()
	for _, rl := range all {
		rl.close("shutting down")
	}
}

// Relays is the number of streams this node relays from their owners.
func (n *Node) Relays() int { return n.relays.count() }

// trackOf turns one media of the owner's RTSP description into a track
// of the relay, nil for a codec Reel does not carry.
func trackOf(m *description.Media) *live.Track {
	if len(m.Formats) == 0 {
		return nil
	}
	f := m.Formats[0]
	t := &live.Track{PayloadType: f.PayloadType(), ClockRate: uint32(f.ClockRate())}
	switch f := f.(type) {
	case *format.H264:
		t.Codec = live.H264
		profile := "42e01f"
		if len(f.SPS) >= 4 {
			profile = hex.EncodeToString(f.SPS[1:4])
		}
		t.Fmtp = fmt.Sprintf("level-asymmetry-allowed=1;packetization-mode=%d;profile-level-id=%s", f.PacketizationMode, profile)
	case *format.H265:
		t.Codec = live.H265
	case *format.VP8:
		t.Codec = live.VP8
	case *format.VP9:
		t.Codec = live.VP9
		if f.ProfileID != nil {
			t.Fmtp = fmt.Sprintf("profile-id=%d", *f.ProfileID)
		}
	case *format.AV1:
		t.Codec = live.AV1
	case *format.Opus:
		t.Codec, t.Channels = live.Opus, 2
		t.Fmtp = "minptime=10;useinbandfec=1"
	default:
		return nil
	}
	t.Kind = t.Codec.Kind()
	return t
}
