package hls

import (
	"slices"
	"time"

	"github.com/reel-gateway/reel/live/frames"
)

// Aligning a simulcast stream's layers. A simulcast encoder stamps one
// captured picture with one capture time in every layer, so the layers'
// RTP timestamps of a picture differ by a constant (each layer's random
// offset). But each layer is mapped to the stream's clock by its own
// Sender Reports, and those mappings differ by a millisecond or so and
// move a little as reports come: placed by its own frame Times, one
// picture would get a slightly different PTS in each variant, and so
// would the keyframes the variants' segments are cut at. So the PTS is
// given per picture, not per layer: the first layer to write a picture
// names its PTS (its own, by the stream's clock), and every other layer
// writing that picture takes the same.
//
// Pictures are known by their RTP time in the first layer's clock (the
// origin). A later layer joins at its first frame: the picture the
// others wrote closest to it in Time gives its RTP offset, exactly when
// that is the same picture (within pictureTolerance) and otherwise as
// predicted from the Time between them, corrected at its first match.

const (
	// pictureTolerance is how far apart, in time, two layers' frames may
	// be (on the stream's clock at joining, in RTP time after) and still
	// be one picture: well under half the frame interval at 60 fps.
	pictureTolerance = 5 * time.Millisecond
	// joinWindow is how recent a written picture must be for a layer to
	// join the others' timeline by it.
	joinWindow = time.Second
)

// aligner is the picture table of a simulcast stream's muxer. Only the
// subscription's goroutine uses it.
type aligner struct {
	ring [64]picture // the latest pictures written, by any layer
	n    int
}

// picture is one captured picture as written.
type picture struct {
	rtp uint32    // its RTP time in the origin's clock
	at  time.Time // the Time of the frame that named its PTS
	pts int64
}

// layerAlign is one layer's place in the aligner.
type layerAlign struct {
	joined bool
	// off takes the layer's RTP time to the origin's; exact is set once
	// a picture has confirmed it.
	off   uint32
	exact bool
	// shift takes the layer's own PTS (by its frame Times) to the
	// others', for the pictures it names.
	shift int64
}

// place returns the PTS of layer l's frame f, whose own PTS by the
// stream's clock is own (in ticks of clock).
func (a *aligner) place(l *layerAlign, f *frames.Frame, own, clock int64) int64 {
	if !l.joined && !a.join(l, f, own, clock) {
		return own // nothing written recently to join: on its own clock
	}
	rtp := f.RTPTime + l.off
	tol := int32(durationToTicks(pictureTolerance, clock))
	if p := a.find(rtp, tol); p != nil {
		if !l.exact {
			l.off += p.rtp - rtp
			l.exact = true
		}
		return p.pts
	}
	pts := own + l.shift
	a.add(picture{rtp: rtp, at: f.Time, pts: pts})
	return pts
}

// join puts l on the others' timeline at its first frame f; false when
// no picture was written within joinWindow of it.
func (a *aligner) join(l *layerAlign, f *frames.Frame, own, clock int64) bool {
	if a.n == 0 {
		// The origin: its RTP time and its own PTS are the timeline.
		l.joined, l.exact = true, true
		return true
	}
	var near *picture
	var nearD time.Duration
	for i := range min(a.n, len(a.ring)) {
		p := &a.ring[i]
		d := f.Time.Sub(p.at)
		if d < 0 {
			d = -d
		}
		if d <= joinWindow && (near == nil || d < nearD) {
			near, nearD = p, d
		}
	}
	if near == nil {
		return false
	}
	d := f.Time.Sub(near.at)
	ticks := durationToTicks(d, clock)
	if nearD <= pictureTolerance {
		ticks = 0 // the same picture
	}
	l.joined, l.exact = true, nearD <= pictureTolerance
	l.off = near.rtp + uint32(ticks) - f.RTPTime
	l.shift = near.pts + ticks - own
	return true
}

// find returns the written picture at RTP time rtp (within tol ticks).
func (a *aligner) find(rtp uint32, tol int32) *picture {
	for i := range min(a.n, len(a.ring)) {
		if d := int32(rtp - a.ring[i].rtp); d >= -tol && d <= tol {
			return &a.ring[i]
		}
	}
	return nil
}

func (a *aligner) add(p picture) {
	a.ring[a.n%len(a.ring)] = p
	a.n++
}

// The variants' segments are numbered by each gohlslib muxer from its
// first segment, so the layers must also start at the same picture: a
// layer whose keyframe of the start picture came before the subscription
// did would start a GOP later, and every one of its segment numbers would
// name a different second than the other variants'. So the layers wait
// for each other (layerWait at most): each holds its frames from its
// latest keyframe until every layer has one; then the latest of those
// keyframes is the start picture, the layers holding it start there, and
// the others at their first keyframe from it on (normally the start
// picture itself, which had not come yet). The stream's audio waits too.

const (
	// layerWait bounds how long the layers wait for one another, from
	// the first keyframe held (a browser holds its top layer back while
	// its bandwidth estimate is low); a layer later than that starts at
	// its next keyframe, a segment number off the others.
	layerWait = 2 * time.Second
	// maxHeld bounds a layer's held frames.
	maxHeld = 256
)

// startGate is the layers' common start.
type startGate struct {
	open  bool
	first time.Time // Time of the first keyframe held
	at    time.Time // the start picture's Time, once open
}

// admit says whether t's frame f may be written: always once t has
// begun. Before the layers have started it holds f, and opening the gate
// writes the held frames (through handle) itself.
func (m *muxer) admit(t *track, f frames.Frame) bool {
	g := &m.gate
	switch {
	case t.begun:
		return true
	case !t.layer:
		return g.open // the audio, from the start picture on
	case g.open:
		// A layer later than the start picture begins at a keyframe,
		// asked for (of every layer, as the variants need) if it is slow.
		t.begun = f.Keyframe && f.Time.After(g.at.Add(-pictureTolerance))
		if !t.begun && time.Since(t.lastKeyReq) >= frames.KeyframeRetry {
			t.lastKeyReq = time.Now()
			m.stream.RequestKeyframe()
		}
		return t.begun
	}
	switch {
	case f.Keyframe:
		t.held = append(t.held[:0], f)
		if g.first.IsZero() {
			g.first = f.Time
		}
	case len(t.held) > 0 && len(t.held) < maxHeld:
		t.held = append(t.held, f)
	default:
		t.held = t.held[:0] // no keyframe yet, or a GOP too long to hold
	}
	var layers []*track
	ready := true
	for _, l := range m.tracks {
		if l.layer {
			layers = append(layers, l)
			ready = ready && len(l.held) > 0
		}
	}
	if !ready && (g.first.IsZero() || f.Time.Sub(g.first) < layerWait) {
		return false
	}
	g.open = true
	for _, l := range layers {
		if len(l.held) > 0 && l.held[0].Time.After(g.at) {
			g.at = l.held[0].Time
		}
	}
	type heldFrame struct {
		t *track
		f frames.Frame
	}
	var out []heldFrame
	for _, l := range layers {
		if len(l.held) > 0 && l.held[0].Time.Sub(g.at).Abs() <= pictureTolerance {
			l.begun = true
			for _, hf := range l.held {
				out = append(out, heldFrame{l, hf})
			}
		}
		l.held = nil
	}
	slices.SortStableFunc(out, func(a, b heldFrame) int { return a.f.Time.Compare(b.f.Time) })
	for _, h := range out {
		m.handle(h.t, h.f)
	}
	return false // f was held, and written above if its layer began
}
