// Package whep plays live streams to WebRTC viewers (WHEP, RFC 9725 rules):
// each viewer is a peer connection fed by its own hub subscription.
//
// Files: server.go holds the set of viewer sessions and their lifecycle,
// session.go one viewer's life and the forwarding of packets to it,
// history.go the packets kept to answer the viewer's NACKs, layers.go the
// simulcast layer a viewer gets, estimate.go its bandwidth estimate.
package whep

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// ErrNotLive is returned when nobody publishes the requested stream
// (WHEP answers 409 with Retry-After).
var ErrNotLive = errors.New("the stream is not live")

// Config configures WHEP playback.
type Config struct {
	// ConnectTimeout ends a viewer that never completes ICE and DTLS
	// (default rtc.DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// QueueSize is each viewer's packet queue; a viewer that falls further
	// behind loses packets instead of slowing the publisher.
	QueueSize int
	// LatencyBudget is the most media queued for one viewer: beyond it
	// the oldest is shed for that viewer alone and a keyframe asked for
	// (live/shed.go). 0 means DefaultLatencyBudget; negative never sheds.
	LatencyBudget time.Duration
	// StartBitrate is a simulcast viewer's bandwidth estimate before any
	// feedback, in bits/s (default DefaultStartBitrate).
	StartBitrate float64
	Logger       *slog.Logger
}

// DefaultLatencyBudget bounds a viewer's queue in time: a viewer that
// falls this far behind (its path, or a saturated machine) sheds its
// oldest media and restarts its video on a keyframe, rather than watching
// ever later.
const DefaultLatencyBudget = 300 * time.Millisecond

// Server runs viewer sessions.
type Server struct {
	hub      *live.Hub
	engine   *rtc.Engine
	cfg      Config
	sessions rtc.Registry[*Session]
	// viaPion keeps every viewer on pion's track (tests of that path,
	// which relayed and TCP viewers take).
	viaPion bool
}

// New returns a WHEP server reading from hub.
func New(hub *live.Hub, engine *rtc.Engine, cfg Config) *Server {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = rtc.DefaultConnectTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LatencyBudget == 0 {
		cfg.LatencyBudget = DefaultLatencyBudget
	}
	if cfg.StartBitrate <= 0 {
		cfg.StartBitrate = DefaultStartBitrate
	}
	return &Server{hub: hub, engine: engine, cfg: cfg}
}

// Play answers a viewer's SDP offer for stream name.
func (s *Server) Play(ctx context.Context, name string, offer []byte, remote string) (*Session, []byte, error) {
	return s.PlayWith(ctx, name, offer, remote, PlayOptions{})
}

// PlayWith is Play with the viewer's choices (a pinned simulcast layer).
func (s *Server) PlayWith(ctx context.Context, name string, offer []byte, remote string, opts PlayOptions) (*Session, []byte, error) {
	stream := s.hub.Find(ctx, name)
	if stream == nil {
		return nil, nil, ErrNotLive
	}
	sess, answer, err := newSession(ctx, s, stream, offer, remote, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := s.sessions.Add(sess); err != nil {
		sess.Close()
		if errors.Is(err, rtc.ErrShuttingDown) {
			return nil, nil, ErrNotLive
		}
		return nil, nil, err
	}
	sess.CloseUnlessConnected(s.cfg.ConnectTimeout)
	if sess.simulcast() {
		sess.Log.Info("viewer joined", "layer", cmp.Or(opts.Layer, "auto"), "twcc", sess.twccID != 0)
	} else {
		sess.Log.Info("viewer joined")
	}
	return sess, answer, nil
}

// checkLayer refuses a layer name that fits no layer of a simulcast
// stream; streams without simulcast have one layer, whatever it is called.
func checkLayer(stream *live.Stream, name string) error {
	if name == "" {
		return nil
	}
	if !live.ValidLayerName(name) {
		return &rtc.OfferError{Msg: fmt.Sprintf("layer %q is not a layer name: use low, mid, high or a rid", name)}
	}
	v := stream.Track(live.Video)
	if v == nil || v.Layers() == nil || v.Layer(name) != nil {
		return nil
	}
	var rids []string
	for _, l := range v.Layers() {
		rids = append(rids, l.RID)
	}
	return &rtc.OfferError{Unprocessable: true, Msg: fmt.Sprintf(
		"the stream has no layer %q: ask for low, mid, high or one of its rids (%s)", name, strings.Join(rids, ", "))}
}

// Session returns the live viewer session with this id, if it watches
// stream name.
func (s *Server) Session(name, id string) (*Session, error) {
	sess, ok := s.sessions.Get(id)
	if !ok || sess.stream.Name != name {
		return nil, rtc.ErrSessionNotFound
	}
	return sess, nil
}

// Sessions counts the live sessions, connected or not.
func (s *Server) Sessions() int { return s.sessions.Len() }

// ICEServers returns the ICE servers to advertise to clients.
func (s *Server) ICEServers() []string { return s.engine.ICEServers() }

// Close ends every viewer session and refuses new ones.
func (s *Server) Close() { s.sessions.CloseAll() }
