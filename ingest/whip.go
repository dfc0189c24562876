package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// ErrSessionNotFound is returned for an unknown or ended session id.
var ErrSessionNotFound = errors.New("no such session")

// WHIPConfig configures publishing.
type WHIPConfig struct {
	Preferences Preferences
	// ConnectTimeout ends a session whose peer never completes ICE and
	// DTLS after the answer was sent (default 15 s).
	ConnectTimeout time.Duration
	// IdleTimeout ends a connected session that sends no media for this
	// long (default DefaultIdleTimeout; negative: never).
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// WHIP runs publisher sessions: it turns an SDP offer into a live stream on
// the hub and keeps the sessions PATCH and DELETE address.
type WHIP struct {
	hub *Hub
	rtc *RTC
	cfg WHIPConfig

	mu       sync.Mutex
	sessions map[string]*Publisher
}

// NewWHIP returns a WHIP service publishing into hub.
func NewWHIP(hub *Hub, rtc *RTC, cfg WHIPConfig) *WHIP {
	if len(cfg.Preferences.Video) == 0 && len(cfg.Preferences.Audio) == 0 {
		cfg.Preferences = DefaultPreferences()
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &WHIP{hub: hub, rtc: rtc, cfg: cfg, sessions: map[string]*Publisher{}}
}

// Publisher is one WHIP session: a peer connection feeding a live stream.
type Publisher struct {
	*ICE
	ID     string
	Stream *Stream

	pc       *webrtc.PeerConnection
	whip     *WHIP
	log      *slog.Logger
	once     sync.Once
	done     chan struct{}
	pcClosed chan struct{}
	tracks   []*Track
}

// Publish answers an SDP offer for stream name. The answer is complete:
// our candidates are gathered before it returns (no trickle needed).
func (w *WHIP) Publish(ctx context.Context, name string, offer []byte, remote string) (*Publisher, []byte, error) {
	sd, err := parseOffer(offer)
	if err != nil {
		return nil, nil, err
	}
	if unbundleOnly(sd) {
		if offer, err = sd.Marshal(); err != nil {
			return nil, nil, err
		}
	}
	tracks, me, err := negotiate(sd, w.cfg.Preferences, true)
	if err != nil {
		return nil, nil, err
	}
	pc, err := w.rtc.NewPeerConnection(me)
	if err != nil {
		return nil, nil, err
	}
	p := &Publisher{ID: NewID(), pc: pc, whip: w, done: make(chan struct{}), pcClosed: make(chan struct{}), tracks: tracks}
	p.log = w.cfg.Logger.With("stream", name, "session", p.ID, "peer", remote)
	p.Stream, err = w.hub.Publish(name, PublishSpec{
		Session: p.ID, Protocol: "whip", Remote: remote, Tracks: tracks,
		RequestKeyframe: p.requestKeyframe, Kick: p.Close,
	})
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	answer, err := p.answer(ctx, string(offer))
	if err != nil {
		p.Close()
		return nil, nil, err
	}
	w.mu.Lock()
	w.sessions[p.ID] = p
	w.mu.Unlock()
	time.AfterFunc(w.cfg.ConnectTimeout, func() {
		if !p.ended() && pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
			p.log.Warn("publisher did not connect in time; ending session", "timeout", w.cfg.ConnectTimeout)
			p.Close()
		}
	})
	go p.watchIdle(w.cfg.IdleTimeout)
	codecs := make([]string, len(tracks))
	for i, t := range tracks {
		codecs[i] = string(t.Codec)
	}
	p.log.Info("publish started", "codecs", codecs)
	return p, answer, nil
}

func (p *Publisher) answer(ctx context.Context, offer string) ([]byte, error) {
	p.pc.OnTrack(p.onTrack)
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("connection state", "state", s.String())
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			p.Close()
		}
	})
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return nil, &OfferError{Msg: fmt.Sprintf("the SDP offer cannot be applied: %v", err)}
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return nil, &OfferError{Unprocessable: true, Msg: fmt.Sprintf("no answer can be made for this offer: %v", err)}
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return nil, fmt.Errorf("applying the answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("gathering ICE candidates: %w", ctx.Err())
	}
	p.ICE = NewICE(p.pc, offer)
	return []byte(p.pc.LocalDescription().SDP), nil
}

// onTrack pumps one remote track into the stream. The buffer is allocated
// once per track; the hub copies each packet into its pool.
func (p *Publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	var track *Track
	for _, t := range p.tracks {
		if string(t.Kind) == remote.Kind().String() {
			track = t
		}
	}
	if track == nil {
		p.log.Warn("ignoring unexpected track", "kind", remote.Kind().String())
		return
	}
	p.log.Debug("track started", "kind", track.Kind, "ssrc", uint32(remote.SSRC()))
	track.ssrc.Store(uint32(remote.SSRC()))
	// Reading RTCP lets the interceptors see sender reports.
	go func() {
		buf := make([]byte, MaxPacketSize)
		for {
			if _, _, err := recv.Read(buf); err != nil {
				return
			}
		}
	}()
	if track.Kind == Video {
		p.Stream.RequestKeyframe() // so the recording starts soon
	}
	buf := make([]byte, MaxPacketSize)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		if err := p.Stream.WriteRTP(track, buf[:n], time.Now()); err != nil {
			p.log.Debug("dropping bad RTP packet", "kind", track.Kind, "err", err)
		}
	}
}

// requestKeyframe sends a PLI for the video track once its SSRC is known.
func (p *Publisher) requestKeyframe() {
	for _, t := range p.tracks {
		if t.Kind == Video && t.SSRC() != 0 {
			err := p.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: t.SSRC()}})
			p.log.Debug("asked publisher for a keyframe", "ssrc", t.SSRC(), "err", err)
		}
	}
}

// Done is closed when the session has ended.
func (p *Publisher) Done() <-chan struct{} { return p.done }

func (p *Publisher) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close ends the session: the peer connection closes, the stream ends and
// its recording is finalized. Safe to call more than once.
func (p *Publisher) Close() {
	p.once.Do(func() {
		p.whip.mu.Lock()
		delete(p.whip.sessions, p.ID)
		p.whip.mu.Unlock()
		if p.Stream != nil {
			p.Stream.Close()
		}
		// Closing from a pion callback goroutine must not wait on it;
		// WHIP.Close waits on pcClosed instead, so shutdown still sends
		// every peer its DTLS close before the process exits.
		go func() {
			_ = p.pc.Close()
			close(p.pcClosed)
		}()
		close(p.done)
		p.log.Info("publish ended")
	})
}

// Session returns the live session id of stream name.
func (w *WHIP) Session(name, id string) (*Publisher, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.sessions[id]
	if p == nil || p.Stream.Name != name {
		return nil, ErrSessionNotFound
	}
	return p, nil
}

// ICEServers returns the ICE servers to advertise to clients.
func (w *WHIP) ICEServers() []string { return w.rtc.ICEServers() }

// Close ends every publisher session.
func (w *WHIP) Close() {
	w.mu.Lock()
	sessions := make([]*Publisher, 0, len(w.sessions))
	for _, p := range w.sessions {
		sessions = append(sessions, p)
	}
	w.mu.Unlock()
	for _, p := range sessions {
		p.Close()
	}
	deadline := time.After(5 * time.Second)
	for _, p := range sessions {
		select {
		case <-p.pcClosed:
		case <-deadline:
			return
		}
	}
}
