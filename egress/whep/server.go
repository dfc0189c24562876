// Package whep plays live streams to WebRTC viewers (WHEP, RFC 9725 rules):
// each viewer is a peer connection fed by its own hub subscription.
package whep

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/reel-gateway/reel/ingest"
)

// ErrNotLive is returned when nobody publishes the requested stream
// (WHEP answers 409 with Retry-After).
var ErrNotLive = errors.New("the stream is not live")

// Config configures WHEP playback.
type Config struct {
	// ConnectTimeout ends a viewer that never completes ICE and DTLS.
	ConnectTimeout time.Duration
	// QueueSize is each viewer's packet queue; a viewer that falls further
	// behind loses packets instead of slowing the publisher.
	QueueSize int
	Logger    *slog.Logger
}

// Server runs viewer sessions.
type Server struct {
	hub *ingest.Hub
	rtc *ingest.RTC
	cfg Config

	mu       sync.Mutex
	sessions map[string]*Session
	closed   bool
}

// New returns a WHEP server reading from hub.
func New(hub *ingest.Hub, rtc *ingest.RTC, cfg Config) *Server {
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{hub: hub, rtc: rtc, cfg: cfg, sessions: map[string]*Session{}}
}

// Play answers a viewer's SDP offer for stream name.
func (s *Server) Play(ctx context.Context, name string, offer []byte, remote string) (*Session, []byte, error) {
	stream := s.hub.Get(name)
	if stream == nil {
		return nil, nil, ErrNotLive
	}
	sess, answer, err := newSession(ctx, s, stream, offer, remote)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.Close()
		return nil, nil, ErrNotLive
	}
	s.sessions[sess.ID] = sess
	s.mu.Unlock()
	return sess, answer, nil
}

// Session returns the live viewer session id of stream name.
func (s *Server) Session(name, id string) (*Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[id]
	if sess == nil || sess.stream.Name != name {
		return nil, ingest.ErrSessionNotFound
	}
	return sess, nil
}

// ICEServers returns the ICE servers to advertise to clients.
func (s *Server) ICEServers() []string { return s.rtc.ICEServers() }

func (s *Server) remove(sess *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess.ID)
}

// Close ends every viewer session.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	sessions := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.Close()
	}
}
