// Package frames is the one RTP → frame stage every consumer of whole
// frames uses (the recorder, HLS): it puts late packets back in order,
// finds loss from sequence numbers, assembles each codec's access units,
// flags keyframes and keeps parameter sets so that every keyframe can
// start a decoder. One policy for loss: the frame a gap damaged is
// dropped, and video waits for the next keyframe, asking the publisher
// for one.
//
// Files: frames.go holds the Assembler and its loss policy, codec.go the
// unit decoders per codec, params.go the parameter-set fallback.
package frames

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/rtpreorderer"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// KeyframeRetry is how often a video track that waits for a keyframe asks
// the publisher again; the hub also merges requests across consumers.
const KeyframeRetry = time.Second

// Frame is one whole frame of a track.
type Frame struct {
	// RTPTime is the frame's RTP timestamp, in the track's clock rate.
	RTPTime uint32
	// Arrival is when the frame's first packet reached the gateway.
	Arrival time.Time
	// Time is where the frame lies on the stream's timeline: the gateway's
	// clock, by the stream's clock model (live.Clock: RTCP Sender Reports,
	// or smoothed arrival times). Every output places the frame here, so
	// tracks line up and every output carries the same offsets.
	Time time.Time
	// Keyframe is set when a decoder can start at this frame. A video
	// keyframe of H.264 or H.265 carries its parameter sets in front.
	Keyframe bool
	// Units is the frame: H.264/H.265 NAL units (no access unit
	// delimiters), AV1 OBUs (no temporal delimiters), or a single VP8/VP9
	// frame or Opus packet. The consumer may keep Units but must not
	// modify them: parameter sets are shared between frames.
	Units [][]byte
}

// Config tunes an Assembler.
type Config struct {
	// RequestKeyframe asks the publisher for a keyframe: at once after
	// video loss, and at most every KeyframeRetry while waiting for one.
	// nil asks nobody.
	RequestKeyframe func()
	// Logger receives debug lines about loss and damaged frames.
	Logger *slog.Logger
	// Clock is the stream's clock, which stamps every frame's Time. Until
	// it has settled (waiting for RTCP Sender Reports) frames are held, as
	// a jitter buffer does, so the timeline never jumps in what a
	// consumer wrote. nil stamps frames with their arrival.
	Clock *live.Clock
}

// maxHeld bounds the frames held while the clock settles: more than
// live.SettleTimeout of video at 60 fps.
const maxHeld = 512

// Assembler turns one track's packets into frames. It is not safe for
// concurrent use: a consumer calls Push from its subscription goroutine.
type Assembler struct {
	track *live.Track
	cfg   Config
	video bool
	dec   decoder
	// reorder puts late packets back in sequence. It is deprecated
	// upstream in favour of rtcpreceiver.Receiver, which also sends RTCP;
	// the publisher's session owns RTCP here, so the plain one fits.
	reorder rtpreorderer.Reorderer //nolint:staticcheck

	started bool
	lastSeq uint16 // sequence number of the last in-order packet

	// The frame being assembled: its timestamp and first packet's arrival.
	curTS      uint32
	curArrival time.Time
	haveCur    bool

	// After a loss or a damaged packet the video frame being assembled is
	// broken: the frame with skipTS (the timestamp of the first packet
	// after the damage) is dropped.
	skipping, skipSet bool
	skipTS            uint32
	waitKey           bool
	lastKeyReq        time.Time

	lost, dropped uint64

	held []Frame // waiting for the clock to settle
}

// New returns an Assembler for t, or an error for a codec it cannot
// assemble.
func New(t *live.Track, cfg Config) (*Assembler, error) {
	dec, err := newDecoder(t)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Assembler{track: t, cfg: cfg, dec: dec, video: t.Kind == live.Video}
	// Video starts at a keyframe: frames before one cannot be decoded.
	a.waitKey = a.video
	a.reorder.BufferSize = reorderBuffer(t.Kind)
	a.reorder.Initialize()
	return a, nil
}

// reorderBuffer is how many packets may wait for a late one (a power of
// two). Audio packets are 20 ms apart, so a short buffer keeps a lost
// packet from holding audio back for more than about 300 ms.
func reorderBuffer(kind live.MediaKind) int {
	if kind == live.Audio {
		return 16
	}
	return 64
}

// Track is the track the Assembler reads.
func (a *Assembler) Track() *live.Track { return a.track }

// Lost counts packets found missing; Dropped counts frames dropped because
// a loss damaged them or they came while video waited for a keyframe.
func (a *Assembler) Lost() uint64    { return a.lost }
func (a *Assembler) Dropped() uint64 { return a.dropped }

// WaitingForKeyframe reports whether video frames are being dropped until
// the next keyframe.
func (a *Assembler) WaitingForKeyframe() bool { return a.waitKey }

// WaitForKeyframe makes video drop frames until the next keyframe and asks
// the publisher for one: for a consumer that could not use a frame (its
// muxer refused it), since the frames after it would refer to it.
func (a *Assembler) WaitForKeyframe() {
	if a.video {
		a.waitKey = true
		a.askKeyframe(false)
	}
}

// Push takes one packet of the track and calls emit for every frame it
// completes, in order. The packet's payload is copied: the hub recycles it
// when the consumer's WritePacket returns.
func (a *Assembler) Push(p *live.Packet, emit func(Frame)) {
	// The reorderer and the decoders keep packets past this call.
	pkt := &rtp.Packet{
		Header: rtp.Header{
			Marker: p.RTP.Marker, PayloadType: p.RTP.PayloadType,
			SequenceNumber: p.RTP.SequenceNumber, Timestamp: p.RTP.Timestamp, SSRC: p.RTP.SSRC,
		},
		Payload: bytes.Clone(p.RTP.Payload),
	}
	// Loss is found from the sequence numbers, not from the count the
	// reorderer returns: when its buffer overflows it hands back all it
	// holds with one count, and that batch can hold a second gap.
	ordered, _ := a.reorder.Process(pkt)
	for _, q := range ordered {
		a.handle(q, p.Arrival, emit)
	}
}

func (a *Assembler) handle(pkt *rtp.Packet, arrival time.Time, emit func(Frame)) {
	if !a.started {
		a.started = true
		a.lastSeq = pkt.SequenceNumber - 1
	}
	if gap := pkt.SequenceNumber - a.lastSeq - 1; gap != 0 {
		a.damage(fmt.Sprintf("%d packets lost", gap), true)
		a.lost += uint64(gap)
	}
	a.lastSeq = pkt.SequenceNumber
	if len(pkt.Payload) == 0 {
		// Padding only (RFC 3550 5.1; libwebrtc's bandwidth probes): a
		// sequence number without media, neither loss nor damage.
		return
	}
	if a.skipping && !a.skipSet {
		a.skipTS, a.skipSet = pkt.Timestamp, true
	}
	if !a.haveCur || pkt.Timestamp != a.curTS {
		a.curTS, a.curArrival, a.haveCur = pkt.Timestamp, arrival, true
	}
	units, err := a.dec.decode(pkt)
	if err != nil {
		a.damage(err.Error(), false)
		return
	}
	if units == nil {
		return
	}
	if a.skipping {
		if pkt.Timestamp == a.skipTS {
			a.dropped++
			return
		}
		a.skipping = false
	}
	key := a.dec.keyframe(units)
	if key {
		if units, err = a.dec.withParams(units); err != nil {
			a.damage(err.Error(), false)
			a.dropped++
			return
		}
	}
	if a.waitKey {
		if !key {
			a.dropped++
			a.askKeyframe(false)
			return
		}
		a.waitKey = false
	}
	a.release(Frame{RTPTime: pkt.Timestamp, Arrival: a.curArrival, Keyframe: key, Units: units}, emit)
}

// release stamps f with its Time and emits it, once the clock has settled;
// before that it is held.
func (a *Assembler) release(f Frame, emit func(Frame)) {
	if a.cfg.Clock != nil && !a.cfg.Clock.Settled() {
		if len(a.held) == maxHeld {
			a.held = a.held[1:]
			a.dropped++
		}
		a.held = append(a.held, f)
		return
	}
	a.Flush(emit)
	emit(a.stamp(f))
}

// Flush emits the frames held while the clock settles, at the clock's best
// estimate: for a consumer whose stream ends before it settled.
func (a *Assembler) Flush(emit func(Frame)) {
	held := a.held
	a.held = nil
	for _, f := range held {
		emit(a.stamp(f))
	}
}

func (a *Assembler) stamp(f Frame) Frame {
	f.Time = f.Arrival
	if a.cfg.Clock != nil {
		if t, ok := a.cfg.Clock.Time(a.track, f.RTPTime); ok {
			f.Time = t
		}
	}
	return f
}

// damage is the one loss policy: forget the half-built frame; for video,
// drop the frame the damage falls in (its first packets may be the lost
// ones, and a picture missing slices must not pass for whole) and wait for
// a keyframe. An audio frame is one packet (RFC 7587), so the packets
// after a gap are whole frames and are kept.
func (a *Assembler) damage(why string, loss bool) {
	a.cfg.Logger.Debug("frame damaged", "kind", a.track.Kind, "codec", a.track.Codec, "why", why)
	a.dec.reset()
	if a.video {
		a.skipping, a.skipSet = true, false
		a.waitKey = true
		a.askKeyframe(loss)
	}
}

// askKeyframe asks the publisher for a keyframe: now, or if the last
// request is KeyframeRetry old.
func (a *Assembler) askKeyframe(now bool) {
	if a.cfg.RequestKeyframe == nil || (!now && time.Since(a.lastKeyReq) < KeyframeRetry) {
		return
	}
	a.lastKeyReq = time.Now()
	a.cfg.RequestKeyframe()
}
