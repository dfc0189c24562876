package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// Why a muxer stops.
const (
	reasonIdle          = "idle"
	reasonPublisherLeft = "publisher left"
)

// muxer is one stream's HLS session: a hub subscription whose packets are
// assembled into frames (package frames), put on one timeline and written
// to a gohlslib Muxer, which serves the playlists, segments and parts.
type muxer struct {
	name   string
	stream *live.Stream
	log    *slog.Logger
	hls    *gohlslib.Muxer
	sub    *live.Subscription
	tracks map[*live.Track]*track // by the packets' track (a layer)
	// variants of a simulcast stream, one gohlslib muxer per layer
	// (variants.go); nil otherwise, when hls serves everything.
	variants []*variant
	align    aligner
	gate     startGate
	unalign  func() // ends the variants' claim on aligned keyframes

	// zero is the Time of the first frame written, PTS 0 of every track.
	// It is only touched on the subscription's goroutine.
	zero time.Time
	// lastRequest is when the last HTTP request began or ended, in Unix
	// nanoseconds; inFlight counts requests being answered, which can
	// block in gohlslib for seconds (the first playlist, blocking reloads).
	lastRequest atomic.Int64
	inFlight    atomic.Int32
	// warned is when the last warning was logged, in Unix nanoseconds.
	warned atomic.Int64
	// segment is the least segment length: a WebRTC publisher sends a
	// keyframe only when asked, so past it the muxer asks for one.
	segment time.Duration
}

// track is one live track on its way into the muxer.
type track struct {
	in    *live.Track
	out   *gohlslib.Track
	mx    *gohlslib.Muxer // the muxer out belongs to
	asm   *frames.Assembler
	write writeFunc
	video bool
	layer bool // a simulcast layer: placed on the others' timeline
	clock int64
	emit  func(frames.Frame) // m.handle for this track, made once

	lastPTS int64
	wrote   bool
	// A simulcast stream's tracks: the layer's place on the others'
	// timeline, and its common start (align.go).
	align layerAlign
	held  []frames.Frame
	begun bool

	lastKeyReq time.Time
	lastKeyPTS int64 // video: PTS of the last keyframe written
}

// startMuxer builds the gohlslib muxer for stream, subscribes to the hub
// and asks the publisher for a keyframe.
func startMuxer(cfg Config, stream *live.Stream, log *slog.Logger) (*muxer, error) {
	m := &muxer{name: stream.Name, stream: stream, log: log, tracks: map[*live.Track]*track{}, segment: cfg.SegmentDuration}
	m.lastRequest.Store(time.Now().UnixNano())
	if v := stream.Track(live.Video); v != nil && v.Layers() != nil {
		if err := m.startVariants(cfg, v); err != nil {
			return nil, err
		}
		return m, nil
	}
	m.hls = m.newGohlslib(cfg)
	// gohlslib leads with the video track (segments cut on its keyframes)
	// and carries at most one, so take the first video and first audio.
	for _, kind := range []live.MediaKind{live.Video, live.Audio} {
		in := stream.Track(kind)
		if in == nil {
			continue
		}
		out, write, ok := hlsTrack(in)
		if !ok {
			log.Warn("HLS skips a track it cannot carry", "codec", in.Codec)
			continue
		}
		if _, err := m.addTrack(in, out, write, m.hls); err != nil {
			return nil, err
		}
	}
	if len(m.hls.Tracks) == 0 {
		return nil, errors.New("the stream has no track HLS can carry")
	}
	if err := m.hls.Start(); err != nil {
		return nil, fmt.Errorf("starting the HLS muxer: %w", err)
	}
	if err := m.subscribe(); err != nil {
		return nil, err
	}
	return m, nil
}

// newGohlslib is one gohlslib muxer as Config asks.
func (m *muxer) newGohlslib(cfg Config) *gohlslib.Muxer {
	return &gohlslib.Muxer{
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       cfg.SegmentCount,
		SegmentMinDuration: lenient(cfg.SegmentDuration),
		PartMinDuration:    lenient(cfg.PartDuration),
		OnEncodeError: func(err error) {
			m.warn("HLS muxer", "error", err)
		},
	}
}

// addTrack takes in's packets to out, a track of mx.
func (m *muxer) addTrack(in *live.Track, out *gohlslib.Track, write writeFunc, mx *gohlslib.Muxer) (*track, error) {
	asm, err := frames.New(in, frames.Config{RequestKeyframe: m.stream.RequestKeyframe, Logger: m.log, Clock: m.stream.Clock()})
	if err != nil {
		return nil, err
	}
	t := &track{in: in, out: out, mx: mx, asm: asm, write: write, video: in.Kind == live.Video, clock: int64(out.ClockRate)}
	t.emit = func(f frames.Frame) { m.handle(t, f) }
	m.tracks[in] = t
	mx.Tracks = append(mx.Tracks, out)
	return t, nil
}

// subscribe starts the flow of packets, and asks for a keyframe (on every
// layer at once, so that the variants start together).
func (m *muxer) subscribe() error {
	sub, err := m.stream.Subscribe(string(live.OutputHLS), m, 0)
	if err != nil {
		m.closeMuxers()
		return fmt.Errorf("subscribing to the stream: %w", err)
	}
	m.sub = sub
	m.stream.RequestKeyframe()
	return nil
}

// closeMuxers closes every gohlslib muxer.
func (m *muxer) closeMuxers() {
	if m.hls != nil {
		m.hls.Close()
	}
	for _, v := range m.variants {
		v.hls.Close()
	}
}

// lenient lowers a minimum duration by 5 %. gohlslib cuts a segment at the
// first keyframe at least the minimum after the segment's start, and RTP
// clocks are not exact: 30 frames of a "1 s" GOP often add up to 0.999 s,
// which would otherwise double every segment to two keyframe intervals.
func lenient(d time.Duration) time.Duration { return d - d/20 }

// acquire counts a request in; the server calls it under its lock, so a
// muxer it takes out of its set while idle has no request in flight.
func (m *muxer) acquire() {
	m.inFlight.Add(1)
	m.lastRequest.Store(time.Now().UnixNano())
}

// serve answers an acquired request from gohlslib, then counts it out.
// Requests keep the muxer alive while they run and for IdleTimeout after.
func (m *muxer) serve(w http.ResponseWriter, r *http.Request) {
	defer func() {
		m.lastRequest.Store(time.Now().UnixNano())
		m.inFlight.Add(-1)
	}()
	if m.variants != nil {
		m.serveVariants(w, r)
		return
	}
	m.hls.Handle(w, r)
}

// idleFor is how long the muxer has been without requests.
func (m *muxer) idleFor() time.Duration {
	if m.inFlight.Load() > 0 {
		return 0
	}
	return time.Since(time.Unix(0, m.lastRequest.Load()))
}

// wait blocks until the muxer should stop and says why.
func (m *muxer) wait(ctx context.Context, idle time.Duration) string {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return "server closing"
		case <-m.sub.Done():
			return reasonPublisherLeft
		case <-timer.C:
			since := m.idleFor()
			if since >= idle {
				return reasonIdle
			}
			timer.Reset(idle - since)
		}
	}
}

// close ends the subscription, then the muxer: requests blocked in
// gohlslib waiting for content return, and no Write runs after Close.
func (m *muxer) close() {
	m.sub.Close()
	m.closeMuxers()
	if m.unalign != nil {
		m.unalign()
	}
}

// WritePacket implements live.Consumer. It runs on the subscription's
// goroutine, which is the only one writing to the gohlslib muxer.
func (m *muxer) WritePacket(p *live.Packet) {
	if t := m.tracks[p.Track]; t != nil {
		t.asm.Push(p, t.emit)
	}
}

// handle writes one whole frame at its Time on the stream's timeline (the
// stream's clock model), so audio and video carry the same offsets as in
// the recording and over RTSP.
func (m *muxer) handle(t *track, f frames.Frame) {
	if m.variants != nil && !m.admit(t, f) {
		return
	}
	if m.zero.IsZero() {
		m.zero = f.Time
	}
	d := f.Time.Sub(m.zero)
	if d < 0 {
		return // before the muxer's first frame
	}
	pts := durationToTicks(d, t.clock)
	if t.layer {
		// One picture at one PTS in every layer, so the variants'
		// segments line up exactly.
		pts = m.align.place(&t.align, &f, pts, t.clock)
	}
	if t.wrote && pts <= t.lastPTS {
		return // a duplicate, or a timestamp going back: PTS must grow
	}
	ntp := m.zero.Add(ticksToDuration(pts, t.clock))
	if err := t.write(t.mx, t.out, ntp, pts, f.Units); err != nil {
		m.warn("HLS write", "codec", t.in.Codec, "error", err)
		if t.video {
			t.asm.WaitForKeyframe()
		}
		return
	}
	t.wrote = true
	t.lastPTS = pts
	if t.video {
		if f.Keyframe {
			t.lastKeyPTS = pts
		} else if m.segment > 0 && ticksToDuration(pts-t.lastKeyPTS, t.clock) >= m.segment && time.Since(t.lastKeyReq) >= frames.KeyframeRetry {
			// End the segment: without a keyframe it never ends.
			t.lastKeyReq = time.Now()
			m.stream.RequestKeyframe()
		}
	}
}

// warn logs at most one warning every ten seconds: a broken stream must
// not flood the log at packet rate.
func (m *muxer) warn(msg string, args ...any) {
	now, last := time.Now().UnixNano(), m.warned.Load()
	if now-last < int64(10*time.Second) || !m.warned.CompareAndSwap(last, now) {
		m.log.Debug(msg, args...)
		return
	}
	m.log.Warn(msg, args...)
}

// durationToTicks rounds d to the nearest tick: a frame's Time is in ns,
// and truncating would put a 33.3 ms frame at 2999 ticks instead of 3000.
func durationToTicks(d time.Duration, clock int64) int64 {
	return int64(d/time.Second)*clock + (int64(d%time.Second)*clock+int64(time.Second)/2)/int64(time.Second)
}

func ticksToDuration(ticks, clock int64) time.Duration {
	return time.Duration(ticks/clock)*time.Second + time.Duration(ticks%clock)*time.Second/time.Duration(clock)
}
