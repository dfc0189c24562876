// Package hls serves live streams as Low-Latency HLS (fMP4). A stream's
// muxer starts when a player first asks for its playlist and stops when
// nobody has asked for a while, so an unwatched stream costs nothing; when
// the publisher leaves, its playlists end (ended.go) and it stops shortly
// after.
//
// Files: server.go holds the set of muxers and their lifecycle, http.go
// the requests and their errors, muxer.go one stream's gohlslib muxer and
// timeline, codec.go how each codec is written, ended.go an ended
// stream's playlists.
package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/live"
)

// Defaults for Config's zero fields.
const (
	DefaultIdleTimeout     = 30 * time.Second
	DefaultSegmentDuration = time.Second
	DefaultPartDuration    = 200 * time.Millisecond
	// DefaultSegmentCount is also the least Low-Latency HLS allows.
	DefaultSegmentCount = 7
	// DefaultEndedLinger gives a player several playlist reloads to see
	// that the stream ended and to fetch its last segments.
	DefaultEndedLinger = 15 * time.Second
)

// viewerWindow is how recent a request must be for its client to count as
// a viewer.
const viewerWindow = 10 * time.Second

// Config tunes the HLS server. The zero value is usable.
type Config struct {
	// IdleTimeout stops a muxer nobody requested for this long (default 30 s).
	IdleTimeout time.Duration
	// SegmentDuration is the least segment length; segments are cut on
	// keyframes, so a segment lasts at least one keyframe interval
	// (default 1 s).
	SegmentDuration time.Duration
	// PartDuration is the least Low-Latency HLS part length (default 200 ms).
	PartDuration time.Duration
	// SegmentCount is how many segments a playlist lists (default and
	// minimum 7).
	SegmentCount int
	// EndedLinger is how long a muxer whose publisher left keeps serving
	// its segments, with playlists that end (default 15 s; ended.go).
	EndedLinger time.Duration
	// Gate authorizes every request for the stream it reads; nil lets
	// everyone read.
	Gate   *access.Gate
	Logger *slog.Logger
}

var errClosed = errors.New("the HLS server is shutting down")

// Server is the set of running HLS muxers, one per watched stream, and
// the HTTP handler that reaches them.
type Server struct {
	cfg    Config
	hub    *live.Hub
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	muxers  map[string]*muxer               // by stream name
	viewers map[string]map[string]time.Time // stream -> client IP -> last request
	pruned  time.Time
}

// New returns a server for the streams of hub. Nothing runs until a player
// asks for a playlist.
func New(cfg Config, hub *live.Hub) *Server {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.SegmentDuration <= 0 {
		cfg.SegmentDuration = DefaultSegmentDuration
	}
	if cfg.PartDuration <= 0 {
		cfg.PartDuration = DefaultPartDuration
	}
	cfg.SegmentCount = max(cfg.SegmentCount, DefaultSegmentCount)
	if cfg.EndedLinger <= 0 {
		cfg.EndedLinger = DefaultEndedLinger
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, hub: hub, log: cfg.Logger, ctx: ctx, cancel: cancel,
		muxers: map[string]*muxer{}, viewers: map[string]map[string]time.Time{},
	}
}

// Close stops every muxer and waits for them. Requests after Close are
// refused. Safe to call twice.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Available reports whether HLS can carry stream and, if not, why, in a
// sentence for a person (the API shows it).
func (s *Server) Available(stream *live.Stream) (bool, string) {
	if stream == nil {
		return false, "the stream is not live"
	}
	carried := 0
	for _, t := range stream.Tracks() {
		if ok, reason := t.Codec.CarriedBy(live.OutputHLS); !ok {
			return false, reason
		}
		if _, _, ok := hlsTrack(t); !ok {
			return false, fmt.Sprintf("HLS cannot carry %s; publish H.264, H.265, VP9 or AV1 video with Opus audio", t.Codec)
		}
		carried++
	}
	if carried == 0 {
		return false, "the stream has no audio or video track"
	}
	return true, ""
}

// Viewers counts the distinct client IPs that requested stream's HLS in
// the last ten seconds.
func (s *Server) Viewers(stream string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seen := range s.viewers[stream] {
		if time.Since(seen) < viewerWindow {
			n++
		}
	}
	return n
}

// running reports whether a muxer runs for the stream called name.
func (s *Server) running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.muxers[name] != nil
}

// seen records a request from ip for stream and forgets stale viewers.
func (s *Server) seen(stream, ip string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.pruned) > viewerWindow {
		s.pruned = now
		for name, ips := range s.viewers {
			for ip, t := range ips {
				if now.Sub(t) >= viewerWindow {
					delete(ips, ip)
				}
			}
			if len(ips) == 0 {
				delete(s.viewers, name)
			}
		}
	}
	ips := s.viewers[stream]
	if ips == nil {
		ips = map[string]time.Time{}
		s.viewers[stream] = ips
	}
	ips[ip] = now
}

// muxer returns the running muxer of stream, acquired for one request
// (see muxer.serve), starting one if start is set; nil without error when
// none runs and start is false.
func (s *Server) muxer(stream *live.Stream, start bool) (*muxer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	// A muxer of an earlier publication under the same name is ending on
	// its own (its subscription is done); it removes itself only while it
	// is still the map's entry.
	if m := s.muxers[stream.Name]; m != nil && m.stream == stream {
		m.acquire()
		return m, nil
	}
	if !start {
		return nil, nil
	}
	log := s.log.With("stream", stream.Name)
	m, err := startMuxer(s.cfg, stream, log)
	if err != nil {
		return nil, err
	}
	m.acquire()
	s.muxers[stream.Name] = m
	log.Info("HLS muxer started")
	s.wg.Add(1)
	go s.run(m)
	return m, nil
}

// endedMuxer returns, acquired, the muxer of name if its publisher left
// and it still lingers, else nil.
func (s *Server) endedMuxer(name string) *muxer {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.muxers[name]
	if m == nil || s.closed || !m.publisherLeft() {
		return nil
	}
	m.acquire()
	return m
}

// run waits for m to go idle, lose its publisher (then lingers, serving
// the ended stream) or the server to close, then takes it out of the set
// and stops it.
func (s *Server) run(m *muxer) {
	defer s.wg.Done()
	for {
		reason := m.wait(s.ctx, s.cfg.IdleTimeout)
		if reason == reasonPublisherLeft {
			m.log.Info("HLS playlists end: the publisher left", "linger", s.cfg.EndedLinger)
			linger(s.ctx, s.cfg.EndedLinger)
		}
		s.mu.Lock()
		// A request may have acquired the muxer since wait looked.
		if reason == reasonIdle && m.idleFor() < s.cfg.IdleTimeout {
			s.mu.Unlock()
			continue
		}
		if s.muxers[m.name] == m {
			delete(s.muxers, m.name)
		}
		s.mu.Unlock()
		m.close()
		m.log.Info("HLS muxer stopped", "reason", reason)
		return
	}
}
