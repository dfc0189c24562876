package recorder

import (
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// A simulcast publisher's video is recorded from its top layer: the
// biggest picture, once the hub has ranked the layers (live.TopLayer,
// within live.LayerSettle of the first packet). Until then every layer is
// assembled and its frames since its last keyframe kept (at most
// maxPreFrames), so that the recording of the layer chosen starts at the
// keyframe it has already sent, not at the next one. The recording keeps
// that layer: its picture size and parameter sets are the file's.

// maxPreFrames bounds the frames kept per layer until the choice.
const maxPreFrames = 90

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
		rc.chooseLayer(ts, top)
	}
	return p.Track == ts.layer
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
		case f.Keyframe:
			kept = append(kept[:0], f)
		case len(kept) > 0 && len(kept) < maxPreFrames:
			kept = append(kept, f)
		default:
			kept = kept[:0] // too long ago: wait for the next keyframe
		}
		ts.preFrames[l] = kept
	})
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
	w, h := top.Size()
	rc.log.Info("recording the top simulcast layer", "rid", top.RID, "width", w, "height", h, "frames_kept", len(kept))
	for _, f := range kept {
		ts.emit(f)
	}
	// The hub need not queue the other layers' packets for us.
	rc.rec.mu.Lock()
	sub := rc.sub
	rc.rec.mu.Unlock()
	if sub != nil {
		sub.SetLayers(live.LayerMask(top))
	}
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
