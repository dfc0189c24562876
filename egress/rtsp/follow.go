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
// layer's keyframe and switches at it, continuing the readers' RTP stream
// through a live.Splice, so players see one stream whose picture gets
// bigger, as in an adaptive stream. The new layer may run a frame behind
// the audio (33 ms at 30 fps): see live.Splice. A ?layer= path stays on
// the layer it names.

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
	splice      live.Splice
}

// forward decides about a packet of one of the parent's layers: ok is
// false for a packet the readers do not get; otherwise seq and ts are its
// sequence number and timestamp in the readers' stream.
func (f *layerFollow) forward(ls *liveStream, p *live.Packet) (seq uint16, ts uint32, ok bool) {
	if p.Track == f.target && live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) {
		f.switchTo(ls, p)
	}
	if p.Track != ls.layer.Load() {
		return 0, 0, false
	}
	seq, ts = f.splice.Forward(p)
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

// switchTo makes l's keyframe p the readers' next packet.
func (f *layerFollow) switchTo(ls *liveStream, p *live.Packet) {
	l := p.Track
	f.splice.Switch(p, ls.src.Clock())
	w, h := l.Size()
	ls.log.Info("RTSP: following the best simulcast layer sending", "from", ls.layer.Load().RID, "to", l.RID, "width", w, "height", h)
	f.target = nil
	ls.layer.Store(l)
	ls.sub.SetLayers(live.LayerMask(l))
}
