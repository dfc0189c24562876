package live

import (
	"errors"
	"log/slog"
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
	// RID names a simulcast layer (layers.go); "" on other tracks.
	RID string

	ssrc    atomic.Uint32
	packets atomic.Uint64
	bytes   atomic.Uint64
	frames  atomic.Uint64 // video: packets with the marker bit
	first   atomic.Int64  // arrival of the first packet, Unix ns
	last    atomic.Int64  // a layer's last packet, Unix ns
	size    atomic.Uint64 // width<<32 | height, from keyframes (size.go)
	params  h264Params
	h265    h265Params
	rate    rateMeter
	fps     rateMeter

	// Simulcast (layers.go): a track with layers, or a layer of parent.
	layers *layerSet
	parent *Track
	bit    uint32
	kf     keyframeGate // a layer's own keyframe requests
	shedKF keyframeGate // requests of consumers that shed its video (shed.go)
}

// SSRC is the publisher's SSRC for the track, 0 until the first packet.
func (t *Track) SSRC() uint32 { return t.ssrc.Load() }

// SetSSRC records the publisher's SSRC before its first packet, as soon as
// the session learns it, so keyframe requests can name it.
func (t *Track) SetSSRC(ssrc uint32) { t.ssrc.Store(ssrc) }

// Packets counts the packets received on the track.
func (t *Track) Packets() uint64 { return t.packets.Load() }

// RTPRate is the track's RTP clock rate in Hz: the negotiated one, else
// its codec's, else 90000 (the clock rate of every video codec).
func (t *Track) RTPRate() float64 {
	if t.ClockRate != 0 {
		return float64(t.ClockRate)
	}
	if r := t.Codec.ClockRate(); r != 0 {
		return float64(r)
	}
	return 90000
}

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
	// RequestKeyframe asks the publisher for a keyframe (RTCP PLI/FIR),
	// on every layer of a simulcast track.
	RequestKeyframe func()
	// RequestLayerKeyframe asks for a keyframe on one simulcast layer
	// only; nil falls back to RequestKeyframe.
	RequestLayerKeyframe func(layer *Track)
	// Kick ends the publisher's session; the session then closes the stream.
	Kick func()
	// Logger receives the stream's own log lines (its clock's mode);
	// slog.Default() if nil.
	Logger *slog.Logger
}

// Stream is one live stream: a publisher's tracks and the subscriptions
// that fan its packets out to viewers, players and the recorder.
type Stream struct {
	Name    string
	Started time.Time
	spec    PublishSpec
	hub     *Hub

	mu sync.Mutex // guards changes to subs, fan, lanes and ended
	// subs are the consumers, fan the queues a packet goes to: the
	// consumers with one of their own, and the lanes (lane.go), which
	// carry the others.
	subs  subList
	fan   subList
	lanes []*lane
	// maxLanes bounds the lanes of one queue setting; 0: one per
	// processor (tests set it).
	maxLanes int
	// ended is set under mu so Subscribe cannot race with Close.
	ended bool
	done  chan struct{}
	once  sync.Once

	kf               keyframeGate
	aligned          atomic.Int32 // AlignKeyframes holders
	keyframeRequests atomic.Uint64
	badPackets       atomic.Uint64

	clock *Clock
}

func newStream(h *Hub, name string, spec PublishSpec) *Stream {
	log := spec.Logger
	if log == nil {
		log = slog.Default().With("stream", name)
	}
	s := &Stream{Name: name, Started: time.Now(), spec: spec, hub: h, done: make(chan struct{}), clock: newClock(spec.Tracks, log)}
	return s
}

// Tracks returns the stream's tracks.
func (s *Stream) Tracks() []*Track { return s.spec.Tracks }

// Protocol is how the stream's media arrives: "whip", or RelayProtocol.
func (s *Stream) Protocol() string { return s.spec.Protocol }

// Relayed reports whether the stream is a relay of a stream owned by
// another node.
func (s *Stream) Relayed() bool { return s.spec.Protocol == RelayProtocol }

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
	p.key = t.Kind == Video && IsKeyframeStart(t.Codec, p.RTP.Payload)
	t.count(p)
	s.clock.observe(t, p.RTP.Timestamp, arrival)
	// The list of queues is read without a lock; Subscribe, Close and
	// Share replace it whole (subList), so fan-out never contends with
	// viewers joining or leaving.
	for _, sub := range s.fan.load() {
		sub.push(p)
	}
	p.Release()
	return nil
}

// WriteSenderReport hands the stream's clock an RTCP Sender Report of t:
// the publisher's NTP time ntp is RTP time rtp on that track; arrival is
// when the report reached the gateway.
func (s *Stream) WriteSenderReport(t *Track, ntp time.Time, rtp uint32, arrival time.Time) {
	s.clock.senderReport(t, ntp, rtp, arrival)
}

// Clock is the stream's clock model: where each track's frames lie on the
// gateway's clock (clock.go).
func (s *Stream) Clock() *Clock { return s.clock }

// count updates t's counters, parameter sets and picture size with p, and
// those of its parent when t is a simulcast layer.
func (t *Track) count(p *Packet) {
	t.packets.Add(1)
	t.bytes.Add(uint64(p.n))
	t.ssrc.Store(p.RTP.SSRC)
	if t.first.Load() == 0 {
		t.first.CompareAndSwap(0, p.Arrival.UnixNano())
	}
	if t.parent != nil {
		t.last.Store(p.Arrival.UnixNano())
		t.parent.packets.Add(1)
		t.parent.bytes.Add(uint64(p.n))
		if ls := t.parent.layers; ls.start.Load() == 0 {
			ls.start.CompareAndSwap(0, p.Arrival.UnixNano())
		}
	}
	if t.Kind != Video {
		return
	}
	if p.RTP.Marker {
		t.frames.Add(1)
	}
	spsChanged := false
	switch t.Codec {
	case H264:
		spsChanged = t.params.observe(p.RTP.Payload)
	case H265:
		spsChanged = t.h265.observe(p.RTP.Payload)
	}
	key := (t.Codec == VP8 || t.Codec == VP9) && p.key
	if spsChanged || key {
		t.observeSize(p.RTP.Payload, spsChanged, key)
	}
}

// Subscribe adds a consumer. kind names the output for stats ("whep").
// queueSize 0 means DefaultQueueSize. The consumer has no latency budget:
// it loses packets only when its queue is full.
func (s *Stream) Subscribe(kind string, c Consumer, queueSize int) (*Subscription, error) {
	return s.SubscribeWith(kind, c, SubscribeOptions{QueueSize: queueSize})
}

// SubscribeWith adds a consumer with the given queue settings.
func (s *Stream) SubscribeWith(kind string, c Consumer, opts SubscribeOptions) (*Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil, ErrStreamEnded
	}
	sub := newSubscription(s, kind, c, opts, nil)
	s.subs.add(sub)
	s.fan.add(sub)
	return sub, nil
}

func (s *Stream) removeSubscription(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs.remove(sub)
	s.fan.remove(sub)
}

// subList is a list of subscriptions read without a lock and replaced
// whole on every change (copy on write); its writers hold their own lock.
type subList struct {
	p atomic.Pointer[[]*Subscription]
}

func (l *subList) load() []*Subscription {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *subList) store(subs []*Subscription) { l.p.Store(&subs) }

func (l *subList) add(sub *Subscription) {
	l.store(append(slices.Clone(l.load()), sub))
}

// remove takes sub off the list and reports whether it was on it.
func (l *subList) remove(sub *Subscription) bool {
	old := l.load()
	subs := slices.DeleteFunc(slices.Clone(old), func(x *Subscription) bool { return x == sub })
	l.store(subs)
	return len(subs) < len(old)
}

// Subscriptions returns a snapshot of the current subscriptions.
func (s *Stream) Subscriptions() []*Subscription { return s.subs.load() }

// RequestKeyframe asks the publisher for a keyframe, on every layer of a
// simulcast track. Requests closer than keyframeInterval are merged: the
// first goes out at once and one more at the end of the interval, so a
// crowd joining costs two keyframes and the last to join still gets one
// sent after it joined.
func (s *Stream) RequestKeyframe() {
	s.kf.request(keyframeInterval, func() {
		if s.spec.RequestKeyframe != nil && !s.isDone() {
			s.keyframeRequests.Add(1)
			s.spec.RequestKeyframe()
		}
	})
}

// RequestLayerKeyframe asks for a keyframe on one simulcast layer (a
// viewer switching to it), merged per layer like RequestKeyframe. For a
// track that is not a layer, and while someone needs the layers'
// keyframes aligned (AlignKeyframes), it is RequestKeyframe.
func (s *Stream) RequestLayerKeyframe(layer *Track) {
	if layer == nil || layer.parent == nil || s.spec.RequestLayerKeyframe == nil || s.aligned.Load() > 0 {
		s.RequestKeyframe()
		return
	}
	layer.kf.request(keyframeInterval, func() {
		if !s.isDone() {
			s.keyframeRequests.Add(1)
			s.spec.RequestLayerKeyframe(layer)
		}
	})
}

func (s *Stream) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// AlignKeyframes makes every keyframe request go to all layers until
// release is called: HLS cuts each layer's variant at its keyframes, and
// the variants line up only if every layer has a keyframe of the same
// picture (an encoder asked for keyframes on all its layers at once makes
// them so). A keyframe on one layer alone would end that variant's
// segment early.
func (s *Stream) AlignKeyframes() (release func()) {
	s.aligned.Add(1)
	var once sync.Once
	return func() { once.Do(func() { s.aligned.Add(-1) }) }
}

// keyframeGate merges keyframe requests closer than an interval.
type keyframeGate struct {
	mu    sync.Mutex
	last  time.Time
	timer *time.Timer
}

// request runs send now, or once at the end of the interval if a request
// went out less than interval ago.
func (g *keyframeGate) request(interval time.Duration, send func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	since := time.Since(g.last)
	if since >= interval {
		g.last = time.Now()
		send()
		return
	}
	if g.timer == nil {
		g.timer = time.AfterFunc(interval-since, func() {
			g.mu.Lock()
			g.timer = nil
			g.last = time.Now()
			g.mu.Unlock()
			send()
		})
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
		// Every queue: the consumers' own, and the lanes'.
		fan := s.fan.load()
		s.mu.Unlock()
		for _, sub := range fan {
			sub.end()
		}
		close(s.done)
		s.hub.notifyUnpublish(s)
	})
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }
