package ingest

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrStreamEnded is returned when subscribing to a stream whose
	// publisher has gone.
	ErrStreamEnded = errors.New("the stream has ended")

	errPacketTooLarge = errors.New("RTP packet larger than 1500 bytes")
)

// keyframeInterval bounds keyframe requests sent to the publisher: a crowd
// of viewers joining at once is served by one keyframe, not one each.
const keyframeInterval = 500 * time.Millisecond

// Track is one media track of a live stream, as negotiated with the
// publisher. Its fields are fixed when the stream is published.
type Track struct {
	Kind        MediaKind
	Codec       Codec
	PayloadType uint8
	ClockRate   uint32
	Channels    uint16
	// Fmtp is the negotiated SDP format parameters, e.g. H.264's
	// "profile-level-id=42e01f;packetization-mode=1".
	Fmtp string

	ssrc    atomic.Uint32
	packets atomic.Uint64
	bytes   atomic.Uint64
	params  h264Params
	h265    h265Params
	rate    rateMeter
}

// SSRC is the publisher's SSRC for the track, 0 until the first packet.
func (t *Track) SSRC() uint32 { return t.ssrc.Load() }

// H264ParameterSets returns the latest SPS and PPS seen in the track's
// packets, or nil before they arrive (and for other codecs).
func (t *Track) H264ParameterSets() (sps, pps []byte) { return t.params.get() }

// H265ParameterSets returns the latest VPS, SPS and PPS seen in the track's
// packets, or nil before they arrive (and for other codecs).
func (t *Track) H265ParameterSets() (vps, sps, pps []byte) { return t.h265.get() }

// PublishSpec describes a new publication.
type PublishSpec struct {
	// Session identifies the publisher's session, for logs and the API.
	Session string
	// Protocol is how the media arrives ("whip").
	Protocol string
	// Remote is the publisher's address.
	Remote string
	Tracks []*Track
	// RequestKeyframe asks the publisher for a keyframe (RTCP PLI/FIR).
	RequestKeyframe func()
	// Kick ends the publisher's session; the session then closes the stream.
	Kick func()
}

// Stream is one live stream: a publisher's tracks and the subscriptions
// that fan its packets out to viewers, players and the recorder.
type Stream struct {
	Name    string
	Started time.Time
	spec    PublishSpec
	hub     *Hub

	mu   sync.Mutex // guards changes to subs and ended
	subs atomic.Pointer[[]*Subscription]
	// ended is set under mu so Subscribe cannot race with Close.
	ended bool
	done  chan struct{}
	once  sync.Once

	keyframeMu       sync.Mutex
	lastKeyframeReq  time.Time
	keyframeTimer    *time.Timer
	keyframeRequests atomic.Uint64
	badPackets       atomic.Uint64
}

func newStream(h *Hub, name string, spec PublishSpec) *Stream {
	s := &Stream{Name: name, Started: time.Now(), spec: spec, hub: h, done: make(chan struct{})}
	s.subs.Store(&[]*Subscription{})
	return s
}

// Tracks returns the stream's tracks.
func (s *Stream) Tracks() []*Track { return s.spec.Tracks }

// Session is the publisher's session id.
func (s *Stream) Session() string { return s.spec.Session }

// Track returns the stream's track of the given kind, or nil.
func (s *Stream) Track(kind MediaKind) *Track {
	for _, t := range s.spec.Tracks {
		if t.Kind == kind {
			return t
		}
	}
	return nil
}

// WriteRTP hands one received RTP packet to every subscriber. It copies raw,
// so the caller may reuse its buffer at once. It never blocks on a consumer.
func (s *Stream) WriteRTP(t *Track, raw []byte, arrival time.Time) error {
	p, err := newPacket(t, raw, arrival)
	if err != nil {
		s.badPackets.Add(1)
		return err
	}
	t.packets.Add(1)
	t.bytes.Add(uint64(len(raw)))
	t.ssrc.Store(p.RTP.SSRC)
	switch t.Codec {
	case H264:
		t.params.observe(p.RTP.Payload)
	case H265:
		t.h265.observe(p.RTP.Payload)
	}
	// The subscriber list is read without a lock; Subscribe and Close
	// replace it whole (copy on write), so fan-out never contends with
	// viewers joining or leaving.
	for _, sub := range *s.subs.Load() {
		sub.push(p)
	}
	p.Release()
	return nil
}

// Subscribe adds a consumer. kind names the output for stats ("whep").
// queueSize 0 means DefaultQueueSize.
func (s *Stream) Subscribe(kind string, c Consumer, queueSize int) (*Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, ErrStreamEnded
	}
	sub := newSubscription(s, kind, c, queueSize)
	subs := append(slices.Clone(*s.subs.Load()), sub)
	s.subs.Store(&subs)
	return sub, nil
}

func (s *Stream) removeSubscription(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := slices.DeleteFunc(slices.Clone(*s.subs.Load()), func(x *Subscription) bool { return x == sub })
	s.subs.Store(&subs)
}

// Subscriptions returns a snapshot of the current subscriptions.
func (s *Stream) Subscriptions() []*Subscription { return *s.subs.Load() }

// RequestKeyframe asks the publisher for a keyframe. Requests closer than
// keyframeInterval are merged: the first goes out at once and one more at
// the end of the interval, so a crowd joining costs two keyframes and the
// last to join still gets one sent after it joined.
func (s *Stream) RequestKeyframe() {
	s.keyframeMu.Lock()
	defer s.keyframeMu.Unlock()
	since := time.Since(s.lastKeyframeReq)
	if since >= keyframeInterval {
		s.lastKeyframeReq = time.Now()
		s.sendKeyframeRequest()
		return
	}
	if s.keyframeTimer == nil {
		s.keyframeTimer = time.AfterFunc(keyframeInterval-since, func() {
			s.keyframeMu.Lock()
			s.keyframeTimer = nil
			s.lastKeyframeReq = time.Now()
			s.keyframeMu.Unlock()
			s.sendKeyframeRequest()
		})
	}
}

func (s *Stream) sendKeyframeRequest() {
	select {
	case <-s.done:
		return
	default:
	}
	if s.spec.RequestKeyframe != nil {
		s.keyframeRequests.Add(1)
		s.spec.RequestKeyframe()
	}
}

// Kick ends the publication from outside (the API, or a new publisher
// replacing this one).
func (s *Stream) Kick() {
	if s.spec.Kick != nil {
		s.spec.Kick()
		return
	}
	s.Close()
}

// Close ends the stream: it leaves the hub and every subscriber is told
// after its queued packets. Safe to call more than once.
func (s *Stream) Close() {
	s.once.Do(func() {
		s.hub.remove(s)
		s.mu.Lock()
		s.ended = true
		subs := *s.subs.Load()
		s.mu.Unlock()
		for _, sub := range subs {
			sub.end()
		}
		close(s.done)
		s.hub.notifyUnpublish(s)
	})
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }
