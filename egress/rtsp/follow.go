package rtsp

import (
	"time"

	"github.com/reel-gateway/reel/live"
)

// A simulcast stream's plain path (rtsp://host/{stream}) carries its top
// layer. The top layer is known only once the layers are ranked, and a
// browser may hold its top layer back for seconds while its bandwidth
// estimate ramps up (or suspend it while its bandwidth is short), so the
// layer a first reader was bound to may not stay the best one sending.
// The plain path follows the best layer that is sending: it asks for that
// layer's keyframe and switches at it, continuing the readers'
// RTP stream (sequence numbers go on from the last sent, timestamps by the
// two packets' times on the stream's clock), so players see one stream
// whose picture gets bigger, as in an adaptive stream. The layers show the
// same captured pictures, and the keyframe switched at may show the
// instant of the last picture sent (its layer's packets came first): it is
// then put one frame later, and the new layer stays a frame behind the
// audio (33 ms at 30 fps), since two pictures at one instant are an error
// to ffmpeg and to millisecond containers. A ?layer= path stays on the
// layer it names.

const (
	// followEvery is how often the plain path looks at the ranking.
	followEvery = 500 * time.Millisecond
	// sendingWithin: a layer without a packet this long is not sending.
	sendingWithin = time.Second
	// followTimeout gives up waiting for the new top layer's keyframe,
	// and followRetry asks for it again meanwhile.
	followTimeout = 4 * time.Second
	followRetry   = time.Second
)

// layerFollow keeps a plain path on the top layer; the layer carried is
// liveStream.layer. Only the subscription's goroutine touches it.
type layerFollow struct {
	parent      *live.Track
	target      *live.Track
	nextLook    time.Time
	targetSince time.Time
	lastAsk     time.Time

	// out = in + offset for the carried layer's packets; last* describe
	// the newest packet sent, whose place the next layer's numbering
	// continues.
	seqOffset uint16
	tsOffset  uint32
	sent      bool
	lastSeq   uint16
	lastTS    uint32
	lastAt    time.Time // on the stream's clock, or arrival
	frame     uint32    // the latest step between two pictures, in ticks
}

// forward decides about a packet of one of the parent's layers: ok is
// false for a packet the readers do not get; otherwise seq and ts are its
// sequence number and timestamp in the readers' stream.
func (f *layerFollow) forward(ls *liveStream, p *live.Packet) (seq uint16, ts uint32, ok bool) {
	at, placed := ls.src.Clock().Time(p.Track, p.RTP.Timestamp)
	if !placed {
		at = p.Arrival
	}
	if p.Track == f.target && live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) {
		f.switchTo(ls, p, at)
	}
	if p.Track != ls.layer.Load() {
		return 0, 0, false
	}
	seq, ts = p.RTP.SequenceNumber+f.seqOffset, p.RTP.Timestamp+f.tsOffset
	if !f.sent || isAfter(seq, f.lastSeq) {
		if step := ts - f.lastTS; f.sent && step > 0 && step < uint32(p.Track.RTPRate()/5) {
			f.frame = step
		}
		f.sent, f.lastSeq, f.lastTS, f.lastAt = true, seq, ts, at
	}
	return seq, ts, true
}

// look sets or drops the target layer, at most every followEvery. It runs
// for every packet the path gets, so the audio keeps it looking while the
// layer carried has stopped sending.
func (f *layerFollow) look(ls *liveStream, now time.Time) {
	if f.target != nil && now.Sub(f.lastAsk) >= followRetry {
		f.lastAsk = now
		ls.src.RequestLayerKeyframe(f.target)
	}
	if now.Before(f.nextLook) {
		return
	}
	f.nextLook = now.Add(followEvery)
	if f.target != nil && now.Sub(f.targetSince) > followTimeout {
		ls.log.Info("RTSP: no keyframe of the new top layer; staying", "layer", ls.layer.Load().RID, "top", f.target.RID)
		f.setTarget(ls, nil, now)
		f.nextLook = now.Add(followTimeout)
		return
	}
	best := f.best(now)
	if best == nil || best == ls.layer.Load() || best == f.target {
		return
	}
	f.setTarget(ls, best, now)
}

// best is the highest-ranked layer that is sending, nil before the
// ranking is known.
func (f *layerFollow) best(now time.Time) *live.Track {
	if f.parent.TopLayer() == nil {
		return nil
	}
	ranked := f.parent.RankedLayers()
	for i := len(ranked) - 1; i >= 0; i-- {
		if last := ranked[i].LastArrival(); !last.IsZero() && now.Sub(last) < sendingWithin {
			return ranked[i]
		}
	}
	return nil
}

// setTarget has the subscription deliver the current layer and the
// target, and asks for the target's keyframe.
func (f *layerFollow) setTarget(ls *liveStream, l *live.Track, now time.Time) {
	f.target = l
	ls.sub.SetLayers(live.LayerMask(ls.layer.Load(), l))
	if l != nil {
		f.targetSince, f.lastAsk = now, now
		ls.src.RequestLayerKeyframe(l)
	}
}

// switchTo makes l's keyframe p, at on the stream's clock, the readers'
// next packet: numbered after the last sent, and timed after it by as
// much as the clock puts between them (at least a tick).
func (f *layerFollow) switchTo(ls *liveStream, p *live.Packet, at time.Time) {
	l := p.Track
	if f.sent {
		f.seqOffset = f.lastSeq + 1 - p.RTP.SequenceNumber
		frame := f.frame
		if frame == 0 {
			frame = uint32(l.RTPRate() / 30)
		}
		ticks := max(uint32(max(at.Sub(f.lastAt).Seconds()*l.RTPRate(), 0)), frame)
		f.tsOffset = f.lastTS + ticks - p.RTP.Timestamp
	}
	w, h := l.Size()
	ls.log.Info("RTSP: following the best simulcast layer sending", "from", ls.layer.Load().RID, "to", l.RID, "width", w, "height", h)
	f.target = nil
	ls.layer.Store(l)
	ls.sub.SetLayers(live.LayerMask(l))
}
