// Package ingest runs WHIP publisher sessions: it turns a publisher's SDP
// offer into a live stream on the hub (package live) and keeps the
// sessions that PATCH and DELETE address.
//
// Files: server.go holds the set of sessions and their lifecycle,
// publisher.go one publisher's life (its tracks pumped into the hub, its
// keyframe requests), idle.go the watchdog that ends a silent publisher.
package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// Config configures publishing.
type Config struct {
	// Preferences are the codecs the answer may pick, whose order wins,
	// and how many simulcast layers are taken.
	Preferences rtc.Preferences
	// ConnectTimeout ends a session whose peer never completes ICE and
	// DTLS after the answer was sent (default rtc.DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// IdleTimeout ends a connected session that sends no media for this
	// long (default DefaultIdleTimeout; negative: never).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Server runs publisher sessions.
type Server struct {
	hub      *live.Hub
	engine   *rtc.Engine
	cfg      Config
	sessions rtc.Registry[*Publisher]
}

// New returns a WHIP server publishing into hub.
func New(hub *live.Hub, engine *rtc.Engine, cfg Config) *Server {
	if len(cfg.Preferences.Video) == 0 && len(cfg.Preferences.Audio) == 0 {
		cfg.Preferences = rtc.DefaultPreferences()
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = rtc.DefaultConnectTimeout
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{hub: hub, engine: engine, cfg: cfg}
}

// Publish answers an SDP offer for stream name. The answer is complete:
// our candidates are gathered before it returns (no trickle needed).
func (s *Server) Publish(ctx context.Context, name string, offer []byte, remote string) (*Publisher, []byte, error) {
	sdp, tracks, me, err := rtc.NegotiatePublisher(offer, s.cfg.Preferences)
	if err != nil {
		return nil, nil, err
	}
	pc, err := s.engine.NewPeerConnection(me)
	if err != nil {
		return nil, nil, err
	}
	p := newPublisher(s.engine.NewSession(pc, s.cfg.Logger.With("stream", name, "peer", remote)), tracks)
	p.Stream, err = s.hub.Publish(name, live.PublishSpec{
		Session: p.ID, Protocol: "whip", Remote: remote, Tracks: tracks,
		RequestKeyframe: p.requestKeyframe, RequestLayerKeyframe: p.requestLayerKeyframe, Kick: p.Close, Logger: p.Log,
	})
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	p.OnClose(p.Stream.Close)
	answer, err := p.Answer(ctx, sdp)
	if err == nil {
		err = s.sessions.Add(p)
	}
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	p.CloseUnlessConnected(s.cfg.ConnectTimeout)
	go p.watchIdle(s.cfg.IdleTimeout)
	codecs := make([]string, len(tracks))
	var rids []string
	for i, t := range tracks {
		codecs[i] = string(t.Codec)
		for _, l := range t.Layers() {
			rids = append(rids, l.RID)
		}
	}
	if rids != nil {
		p.Log.Info("publish started", "codecs", codecs, "simulcast", rids)
	} else {
		p.Log.Info("publish started", "codecs", codecs)
	}
	return p, answer, nil
}

// Session returns the live publisher session with this id, if it
// publishes stream name.
func (s *Server) Session(name, id string) (*Publisher, error) {
	p, ok := s.sessions.Get(id)
	if !ok || p.Stream.Name != name {
		return nil, rtc.ErrSessionNotFound
	}
	return p, nil
}

// Sessions counts the live sessions, connected or not.
func (s *Server) Sessions() int { return s.sessions.Len() }

// ICEServers returns the ICE servers to advertise to clients.
func (s *Server) ICEServers() []string { return s.engine.ICEServers() }

// Close ends every publisher session (finalizing their recordings) and
// refuses new ones.
func (s *Server) Close() { s.sessions.CloseAll() }
