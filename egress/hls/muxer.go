package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gortsplib/v4/pkg/rtpreorderer"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

// keyframeRetry is how often a video track that waits for a keyframe asks
// the publisher again (the hub rate-limits requests across outputs too).
const keyframeRetry = time.Second

// Why a muxer stops.
const (
	reasonIdle          = "idle"
	reasonPublisherLeft = "publisher left"
)

// muxer is one stream's HLS session: a hub subscription whose packets are
// reordered, depacketized, put on one timeline and written to a gohlslib
// Muxer, which serves the playlists, segments and parts.
type muxer struct {
	name   string
	stream *ingest.Stream
	log    *slog.Logger
	hls    *gohlslib.Muxer
	sub    *ingest.Subscription
	tracks map[*ingest.Track]*track

	// zero is the arrival of the stream's first packet, PTS 0 of every
	// track. It is only touched on the subscription's goroutine.
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

// track is one ingest track on its way into the muxer.
type track struct {
	in      *ingest.Track
	out     *gohlslib.Track
	dep     depacketizer
	video   bool
	clock   int64
	reorder *rtpreorderer.Reorderer

	started bool
	lastSeq uint16 // sequence number of the last in-order packet
	lastTS  uint32 // RTP timestamp of the last in-order packet
	ext     int64  // lastTS unwrapped, relative to the first packet's
	offset  int64  // PTS of the first packet: its arrival after zero
	lastPTS int64
	wrote   bool

	waitKey    bool // video: drop units until a random access point
	lastKeyReq time.Time
	lastKeyPTS int64 // video: PTS of the last random access point written
}

// startMuxer builds the gohlslib muxer for stream, subscribes to the hub
// and asks the publisher for a keyframe.
func startMuxer(cfg Config, stream *ingest.Stream, log *slog.Logger) (*muxer, error) {
	m := &muxer{name: stream.Name, stream: stream, log: log, tracks: map[*ingest.Track]*track{}, segment: cfg.SegmentDuration}
	m.lastRequest.Store(time.Now().UnixNano())
	m.hls = &gohlslib.Muxer{
		Variant:            gohlslib.MuxerVariantLowLatency,
		SegmentCount:       cfg.SegmentCount,
		SegmentMinDuration: lenient(cfg.SegmentDuration),
		PartMinDuration:    lenient(cfg.PartDuration),
		OnEncodeError: func(err error) {
			m.warn("HLS muxer", "error", err)
		},
	}
	// gohlslib leads with the video track (segments cut on its keyframes)
	// and carries at most one, so take the first video and first audio.
	for _, kind := range []ingest.MediaKind{ingest.Video, ingest.Audio} {
		in := stream.Track(kind)
		if in == nil {
			continue
		}
		out, dep, ok := newDepacketizer(in)
		if !ok {
			log.Warn("HLS skips a track it cannot carry", "codec", in.Codec)
			continue
		}
		t := &track{in: in, out: out, dep: dep, video: kind == ingest.Video, clock: int64(out.ClockRate), waitKey: kind == ingest.Video}
		// Reorderer is marked deprecated in favour of rtcpreceiver, which
		// also runs RTCP reports; the hub's WebRTC session owns those, so
		// the plain reorderer is what fits here.
		t.reorder = &rtpreorderer.Reorderer{BufferSize: reorderBuffer(kind)}
		t.reorder.Initialize()
		m.tracks[in] = t
		m.hls.Tracks = append(m.hls.Tracks, out)
	}
	if len(m.hls.Tracks) == 0 {
		return nil, errors.New("the stream has no track HLS can carry")
	}
	if err := m.hls.Start(); err != nil {
		return nil, fmt.Errorf("starting the HLS muxer: %w", err)
	}
	sub, err := stream.Subscribe(string(ingest.OutputHLS), m, 0)
	if err != nil {
		m.hls.Close()
		return nil, fmt.Errorf("subscribing to the stream: %w", err)
	}
	m.sub = sub
	stream.RequestKeyframe()
	return m, nil
}

// lenient lowers a minimum duration by 5 %. gohlslib cuts a segment at the
// first keyframe at least the minimum after the segment's start, and RTP
// clocks are not exact: 30 frames of a "1 s" GOP often add up to 0.999 s,
// which would otherwise double every segment to two keyframe intervals.
func lenient(d time.Duration) time.Duration { return d - d/20 }

// reorderBuffer is how many packets may wait for a late one (a power of
// two). Audio packets are 20 ms apart, so a short buffer keeps a lost
// packet from holding audio back for more than about 300 ms.
func reorderBuffer(kind ingest.MediaKind) int {
	if kind == ingest.Audio {
		return 16
	}
	return 64
}

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
	m.hls.Close()
}

// WritePacket implements ingest.Consumer. It runs on the subscription's
// goroutine, which is the only one writing to the gohlslib muxer.
func (m *muxer) WritePacket(p *ingest.Packet) {
	t := m.tracks[p.Track]
	if t == nil {
		return
	}
	if m.zero.IsZero() {
		m.zero = p.Arrival
	}
	if !t.started {
		t.started = true
		t.lastSeq = p.RTP.SequenceNumber - 1
		t.lastTS = p.RTP.Timestamp
		t.offset = durationToTicks(p.Arrival.Sub(m.zero), t.clock)
	}
	// The packet goes back to the hub's pool when this call returns, and
	// the depacketizers keep slices of payloads across packets: copy.
	pkt := &rtp.Packet{Header: p.RTP.Header, Payload: slices.Clone(p.RTP.Payload)}
	ordered, _ := t.reorder.Process(pkt)
	for _, q := range ordered {
		m.handle(t, q)
	}
}

func (m *muxer) handle(t *track, pkt *rtp.Packet) {
	// Loss is found here, from the sequence numbers, rather than from the
	// count the reorderer returns: when its buffer overflows it hands back
	// everything it holds with one count, and that batch can hold a second
	// gap. Fed across it, a depacketizer may drop a half-assembled picture
	// without an error (a new fragmentation unit's start discards the
	// unfinished one), and the pictures after it would go out referring to
	// a picture players never get.
	if gap := pkt.SequenceNumber - t.lastSeq - 1; gap != 0 && t.video {
		m.log.Debug("HLS lost video packets, waiting for a keyframe", "lost", gap)
		t.dep.reset()
		m.needKeyframe(t)
	}
	t.lastSeq = pkt.SequenceNumber
	t.ext += int64(int32(pkt.Timestamp - t.lastTS))
	t.lastTS = pkt.Timestamp
	u, err := t.dep.decode(pkt)
	if err != nil {
		if !ignoreDecodeError(err) && t.video {
			m.log.Debug("HLS depacketizer", "codec", t.in.Codec, "error", err)
			m.needKeyframe(t)
		}
		return
	}
	if u == nil {
		return
	}
	if t.waitKey {
		if !t.dep.randomAccess(u) {
			m.needKeyframe(t)
			return
		}
		t.waitKey = false
	}
	pts := t.offset + t.ext
	if t.wrote && pts <= t.lastPTS {
		return // a duplicate, or a timestamp going back: PTS must grow
	}
	ntp := m.zero.Add(ticksToDuration(pts, t.clock))
	if err := t.dep.write(m.hls, t.out, ntp, pts, u); err != nil {
		m.warn("HLS write", "codec", t.in.Codec, "error", err)
		if t.video {
			m.needKeyframe(t)
		}
		return
	}
	t.wrote = true
	t.lastPTS = pts
	if t.video {
		if t.dep.randomAccess(u) {
			t.lastKeyPTS = pts
		} else if m.segment > 0 && ticksToDuration(pts-t.lastKeyPTS, t.clock) >= m.segment && time.Since(t.lastKeyReq) >= keyframeRetry {
			// End the segment: without a keyframe it never ends.
			t.lastKeyReq = time.Now()
			m.stream.RequestKeyframe()
		}
	}
}

// needKeyframe makes a video track drop units until the next keyframe and
// asks the publisher for one, at most every keyframeRetry.
func (m *muxer) needKeyframe(t *track) {
	if !t.video {
		return
	}
	t.waitKey = true
	if time.Since(t.lastKeyReq) >= keyframeRetry {
		t.lastKeyReq = time.Now()
		m.stream.RequestKeyframe()
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

func durationToTicks(d time.Duration, clock int64) int64 {
	return int64(d/time.Second)*clock + int64(d%time.Second)*clock/int64(time.Second)
}

func ticksToDuration(ticks, clock int64) time.Duration {
	return time.Duration(ticks/clock)*time.Second + time.Duration(ticks%clock)*time.Second/time.Duration(clock)
}
