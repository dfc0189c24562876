package recorder

import (
	"time"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// A simulcast publisher's video is recorded from its top layer: the
// biggest picture, once the hub has ranked the layers (live.TopLayer,
// within live.LayerSettle of the first packet). Until then every layer is
// assembled and its frames from its first keyframe kept (at most
// maxPreFrames), so that the recording of the layer chosen starts at the
// first keyframe it sent, not at the next one.
//
// A browser holds its top layer back while its bandwidth estimate ramps up,
// sometimes past the settling time, and suspends it when its bandwidth
// falls, so the layer chosen may not stay the best one sending. Every
// topCheck the recording looks again (reconsider); when a bigger picture
// is sending, or the recorded layer has stopped, it asks for the other
// layer's keyframe, assembles that layer beside the one recorded, and at
// that keyframe moves to it: the frames before it end the current
// segment, and a new segment, whose header has the new picture size and
// parameter sets, starts with it (a Matroska track has one size).
// Nothing is lost or doubled between the two: every frame goes to
// exactly one file.

// maxPreFrames bounds the frames kept per layer until the choice: more
// than live.LayerSettle holds at 60 fps, so the frames from a layer's
// first keyframe are all still kept when the choice waits that long for
// a layer that has not come (a recording whose top layer came late lost
// its first 3 s when only the frames since the latest keyframe were kept,
// at most 90). A few MB for a 1080p layer.
const maxPreFrames = 300

const (
	// topCheck is how often the recording looks for a better layer.
	topCheck = time.Second
	// layerSending: a layer that sent a packet this recently is sending.
	// Chromium short of CPU encodes its top layer at a few frames a
	// second, so this is generous.
	layerSending = 2 * time.Second
	// layerStall: the recorded layer has stopped (a browser suspends its
	// top layer when its bandwidth falls) once it sent nothing for this
	// long; the recording then moves to the best layer still sending.
	layerStall = 3 * time.Second
	// moveGap is the least time between moving to one layer and moving up
	// to another, so a layer that comes and goes does not cut a segment
	// at each return. Moving away from a stopped layer does not wait.
	moveGap = 10 * time.Second
)

// inRecordedLayer reports whether p, a packet of a layer of ts's track, is
// of the layer recorded. Until the layers are ranked every layer is
// pre-assembled (and nothing is recorded); then the top one is chosen.
func (rc *recording) inRecordedLayer(ts *trackState, p *live.Packet) bool {
	if ts.layer == nil {
		top := ts.track.TopLayer()
		if top == nil {
			rc.preAssemble(ts, p)
			return false
		}
		if shown := biggestShown(ts.track, top); shown != top {
			rc.log.Info("the top simulcast layer has not shown its size yet (no keyframe); recording the biggest that has", "top", top.RID, "rid", shown.RID)
			top = shown
		}
		rc.chooseLayer(ts, top)
	}
	switch p.Track {
	case ts.layer:
		return true
	case ts.next:
		rc.assembleNext(ts, p)
	}
	return false
}

// reconsider looks, every topCheck, at which of ts's layers to record:
// the biggest picture among the layers sending. It moves up to a bigger
// one at most once per moveGap, and away from the recorded layer once
// that has sent nothing for layerStall while another sends. The move
// itself waits for the new layer's keyframe (assembleNext). Every packet
// of the recording calls it once a layer is chosen, audio too: when the
// recorded layer stops, the subscription brings no other video to notice
// it by.
func (rc *recording) reconsider(ts *trackState, now time.Time) {
	if now.Sub(ts.checkedLayers) < topCheck {
		return
	}
	ts.checkedLayers = now
	best := bestSending(ts, now)
	switch {
	case best == nil || best == ts.next:
		return
	case best == ts.layer:
		if ts.next != nil { // the layer waited for stopped before its keyframe
			ts.next, ts.nextAsm = nil, nil
			rc.selectLayers(live.LayerMask(ts.layer))
		}
		return
	}
	stalled := now.Sub(ts.layer.LastArrival()) > layerStall
	if !stalled && (area(best) <= area(ts.layer) || now.Sub(ts.moved) < moveGap) {
		return
	}
	asm, err := rc.layerAssembler(ts, best)
	if err != nil {
		return
	}
	ts.next, ts.nextAsm, ts.nextAsked = best, asm, now
	rc.selectLayers(live.LayerMask(ts.layer, best))
	rc.stream.RequestLayerKeyframe(best)
	w, h := best.Size()
	why := "a bigger picture came"
	if stalled {
		why = "the recorded layer stopped"
	}
	rc.log.Info("recording moves to another simulcast layer at its keyframe", "reason", why, "rid", best.RID, "width", w, "height", h, "from", ts.layer.RID)
}

// bestSending is the layer of ts's track with the biggest picture among
// those that sent within layerSending, the recorded one on a tie; nil if
// none did.
func bestSending(ts *trackState, now time.Time) *live.Track {
	var best *live.Track
	for _, l := range ts.track.Layers() {
		if w, _ := l.Size(); w == 0 || now.Sub(l.LastArrival()) > layerSending {
			continue
		}
		if best == nil || area(l) > area(best) || (area(l) == area(best) && l == ts.layer) {
			best = l
		}
	}
	return best
}

func area(l *live.Track) int {
	w, h := l.Size()
	return w * h
}

// assembleNext assembles a packet of the layer the recording moves to;
// its first keyframe moves the recording there.
func (rc *recording) assembleNext(ts *trackState, p *live.Packet) {
	if p.Arrival.Sub(ts.nextAsked) >= keyframeRetry {
		ts.nextAsked = p.Arrival
		rc.stream.RequestLayerKeyframe(ts.next)
	}
	l := ts.next
	ts.nextAsm.Push(p, func(f frames.Frame) {
		switch {
		case ts.layer == l: // moved by an earlier frame of this push
			ts.emit(f)
		case f.Keyframe:
			rc.moveToLayer(ts, f)
		}
	})
}

// moveToLayer records ts.next from its keyframe f on.
func (rc *recording) moveToLayer(ts *trackState, f frames.Frame) {
	from := ts.layer
	ts.layer, ts.asm, ts.next, ts.nextAsm = ts.next, ts.nextAsm, nil, nil
	ts.moved = time.Now()
	// Another layer's RTP clock: no floor from the last one's timestamps,
	// and its losses are counted afresh.
	ts.anchored, ts.lostNoted = false, 0
	// Once the file has started, the keyframe starts a segment (place);
	// before, it starts the file.
	ts.respec = rc.w != nil
	rc.selectLayers(live.LayerMask(ts.layer))
	w, h := ts.layer.Size()
	rc.log.Info("recording another simulcast layer", "rid", ts.layer.RID, "width", w, "height", h, "from", from.RID)
	ts.emit(f)
}

// selectLayers has the hub queue only mask's layers for the recording.
func (rc *recording) selectLayers(mask uint32) {
	rc.rec.mu.Lock()
	sub := rc.sub
	rc.rec.mu.Unlock()
	if sub != nil {
		sub.SetLayers(mask)
	}
}

// preAssemble feeds a layer's packet to an assembler of its own while
// the layer to record is not known, dropping its frames.
func (rc *recording) preAssemble(ts *trackState, p *live.Packet) {
	asm := ts.pre[p.Track]
	if asm == nil {
		var err error
		if asm, err = rc.layerAssembler(ts, p.Track); err != nil {
			return
		}
		if ts.pre == nil {
			ts.pre = map[*live.Track]*frames.Assembler{}
			ts.preFrames = map[*live.Track][]frames.Frame{}
		}
		ts.pre[p.Track] = asm
	}
	l := p.Track
	asm.Push(p, func(f frames.Frame) {
		kept := ts.preFrames[l]
		switch {
		case len(kept) > 0 && len(kept) < maxPreFrames:
			kept = append(kept, f) // from the first keyframe on
		case f.Keyframe:
			kept = append(kept[:0], f)
		default:
			kept = kept[:0] // too long ago: wait for the next keyframe
		}
		ts.preFrames[l] = kept
	})
}

// biggestShown is top, or, if top has not shown its size yet (its first
// keyframe lost: pion reads a layer's first packets to learn its rid),
// the biggest layer that has. Ranked by bitrate alone, a top layer of
// unknown size would be recorded from a keyframe that may be seconds
// away, and left as soon as a smaller layer's size is known.
func biggestShown(track, top *live.Track) *live.Track {
	if w, _ := top.Size(); w > 0 {
		return top
	}
	best := top
	for _, l := range track.RankedLayers() {
		if area(l) > area(best) {
			best = l
		}
	}
	return best
}

// chooseLayer records top from now on.
func (rc *recording) chooseLayer(ts *trackState, top *live.Track) {
	asm := ts.pre[top]
	if asm == nil {
		var err error
		if asm, err = rc.layerAssembler(ts, top); err != nil {
			rc.log.Warn("cannot record the simulcast layer", "rid", top.RID, "error", err)
			return
		}
	}
	kept := ts.preFrames[top]
	ts.layer, ts.asm, ts.pre, ts.preFrames = top, asm, nil, nil
	rc.layered = ts
	w, h := top.Size()
	rc.log.Info("recording the top simulcast layer", "rid", top.RID, "width", w, "height", h, "frames_kept", len(kept))
	for _, f := range kept {
		ts.emit(f)
	}
	// The hub need not queue the other layers' packets for us.
	rc.selectLayers(live.LayerMask(top))
	rc.stream.RequestLayerKeyframe(top)
}

// layerAssembler assembles layer l of ts's track; once l is the layer
// recorded, its losses ask the publisher for a keyframe of l.
func (rc *recording) layerAssembler(ts *trackState, l *live.Track) (*frames.Assembler, error) {
	return frames.New(l, frames.Config{Logger: rc.log, Clock: rc.stream.Clock(), RequestKeyframe: func() {
		if ts.layer == l {
			rc.stream.RequestLayerKeyframe(l)
		}
	}})
}

// recordedLayer is the simulcast layer recorded, nil before the choice and
// for a stream without simulcast: keyframe requests then go to that layer
// alone, which costs the publisher one keyframe instead of one per layer.
func (rc *recording) recordedLayer() *live.Track {
	for _, ts := range rc.tracks {
		if ts.layer != nil {
			return ts.layer
		}
	}
	return nil
}
