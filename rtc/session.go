package rtc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/id"
)

// Errors of session lookups.
var (
	// ErrSessionNotFound: an unknown or ended session id (404).
	ErrSessionNotFound = errors.New("no such session")
	// ErrEndedDuringSetup: the session was closed (kicked, replaced, its
	// connection failed) while its answer was being made (503).
	ErrEndedDuringSetup = errors.New("the session ended while it was being set up")
	// ErrShuttingDown: the server no longer takes sessions (503).
	ErrShuttingDown = errors.New("the server is shutting down")
)

// DefaultConnectTimeout ends a session whose peer has not completed ICE
// and DTLS this long after the answer.
const DefaultConnectTimeout = 15 * time.Second

// closeWait bounds how long shutdown waits for peer connections to close,
// so that each peer is sent its DTLS close alert before the process exits.
const closeWait = 5 * time.Second

// Session is what a WHIP publisher and a WHEP viewer have in common: an
// unguessable id, the peer connection, the ICE state PATCH acts on, a
// deadline to connect, and a Close that runs its hooks once.
type Session struct {
	*ICE
	ID  string
	PC  *webrtc.PeerConnection
	Log *slog.Logger

	// maxCandidates bounds the remote ICE candidates (candidates.go).
	maxCandidates int

	mu        sync.Mutex
	onState   []func(webrtc.PeerConnectionState)
	onClose   []func()
	once      sync.Once
	ending    atomic.Bool
	done      chan struct{}
	connected chan struct{}
	connOnce  sync.Once
	pcClosed  chan struct{}
}

// NewSession wraps pc in a session with a new id; log gets the id added.
// It accepts DefaultMaxCandidates remote candidates; Engine.NewSession
// applies the configured limit instead.
func NewSession(pc *webrtc.PeerConnection, log *slog.Logger) *Session {
	s := &Session{ID: id.New(), PC: pc, maxCandidates: DefaultMaxCandidates,
		done: make(chan struct{}), connected: make(chan struct{}), pcClosed: make(chan struct{})}
	s.Log = log.With("session", s.ID)
	return s
}

// Base returns the session itself, for Registry.
func (s *Session) Base() *Session { return s }

// Answer applies offer, answers it and waits until our ICE candidates are
// gathered, so the answer is complete (clients need not trickle). It ends
// the session when the peer connection fails or closes. An offer with
// more remote candidates than the session accepts is refused with a
// *CandidateLimitError before Reel sends anything to any of them.
func (s *Session) Answer(ctx context.Context, offer string) ([]byte, error) {
	cands := newCandidates(s.maxCandidates)
	if err := cands.add(sdpCandidates(offer)); err != nil {
		return nil, err
	}
	s.PC.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.Log.Debug("connection state", "state", st.String())
		if st == webrtc.PeerConnectionStateConnected {
			s.connOnce.Do(func() { close(s.connected) })
		}
		s.mu.Lock()
		hooks := s.onState
		s.mu.Unlock()
		for _, f := range hooks {
			f(st)
		}
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.Close()
		}
	})
	if err := s.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return nil, &OfferError{Msg: fmt.Sprintf("the SDP offer cannot be applied: %v", err)}
	}
	ans, err := s.PC.CreateAnswer(nil)
	if err != nil {
		return nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf("no answer can be made for this offer: %v", err)}
	}
	gathered := webrtc.GatheringCompletePromise(s.PC)
	if err := s.PC.SetLocalDescription(ans); err != nil {
		return nil, fmt.Errorf("applying the answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("gathering ICE candidates: %w", ctx.Err())
	}
	s.ICE = newICE(s.PC, offer, cands)
	return []byte(s.PC.LocalDescription().SDP), nil
}

// OnConnectionState adds f to what runs on every connection state change;
// call it before Answer.
func (s *Session) OnConnectionState(f func(webrtc.PeerConnectionState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onState = append(s.onState, f)
}

// OnClose adds f to what Close runs, in order, before Done is closed.
func (s *Session) OnClose(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onClose = append(s.onClose, f)
}

// CloseUnlessConnected ends the session if its peer has not completed ICE
// and DTLS within timeout.
func (s *Session) CloseUnlessConnected(timeout time.Duration) {
	time.AfterFunc(timeout, func() {
		if !s.Ended() && s.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
			s.Log.Warn("peer did not connect in time; ending session", "timeout", timeout)
			s.Close()
		}
	})
}

// Close ends the session: it is marked ended first (so a Registry never
// keeps it), then the hooks run, then Done is closed and the peer
// connection closes in the background. Safe to call more than once and
// from pion callbacks.
func (s *Session) Close() {
	s.once.Do(func() {
		s.ending.Store(true)
		s.mu.Lock()
		hooks := s.onClose
		s.mu.Unlock()
		for _, f := range hooks {
			f()
		}
		close(s.done)
		// Closing from a pion callback goroutine must not wait on it;
		// Registry.CloseAll waits on pcClosed instead.
		go func() {
			_ = s.PC.Close()
			close(s.pcClosed)
		}()
	})
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Connected is closed when the peer connection first reports connected
// (ICE and DTLS are up); it stays open for a session that never connects.
func (s *Session) Connected() <-chan struct{} { return s.connected }

// Ended reports whether Close has begun.
func (s *Session) Ended() bool { return s.ending.Load() }

// Registry is the set of live sessions of one server (WHIP or WHEP), by id.
type Registry[S interface{ Base() *Session }] struct {
	mu       sync.Mutex
	sessions map[string]S
	closed   bool
}

// Add enters s once its answer is made. It refuses a session that ended
// meanwhile (a Close in that window would otherwise leave a dead entry
// forever) and any session once CloseAll has run. A session takes itself
// out when it closes, before its Done is closed.
func (r *Registry[S]) Add(s S) error {
	b := s.Base()
	// The hook goes in before the check: a Close that has not begun by the
	// check will run it, one that has is seen by the check.
	b.OnClose(func() { r.remove(b.ID) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrShuttingDown
	}
	if b.Ended() {
		return ErrEndedDuringSetup
	}
	if r.sessions == nil {
		r.sessions = map[string]S{}
	}
	r.sessions[b.ID] = s
	return nil
}

func (r *Registry[S]) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, id)
}

// Get returns the live session id, if any.
func (r *Registry[S]) Get(id string) (S, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.sessions[id]
	return s, ok
}

// Len counts live sessions.
func (r *Registry[S]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// CloseAll refuses new sessions, closes every live one and waits (at most
// a few seconds) until their peer connections have closed.
func (r *Registry[S]) CloseAll() {
	r.mu.Lock()
	r.closed = true
	all := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		all = append(all, s.Base())
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
	deadline := time.After(closeWait)
	for _, s := range all {
		select {
		case <-s.pcClosed:
		case <-deadline:
			return
		}
	}
}
