package frames

import (
	"errors"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"

	"github.com/reel-gateway/reel/live"
)

// ErrNoParams is why a keyframe is dropped when no parameter sets are known
// for it: not in the frame, not in an earlier one, not seen by the hub.
var ErrNoParams = errors.New("a keyframe arrived before any parameter sets (SPS/PPS, or VPS/SPS/PPS)")

// h264Params keeps the latest SPS and PPS an H.264 track's frames carried.
// A keyframe without them gets them put in front, from here or, before
// any frame had them, from the hub (which sees every packet, including
// those sent before this consumer subscribed): every keyframe can then
// start a decoder, and Matroska's CodecPrivate and HLS's init segment can
// be built from the keyframe alone.
type h264Params struct{ sps, pps []byte }

func (p *h264Params) complete(au [][]byte, t *live.Track) ([][]byte, error) {
	hasSPS, hasPPS := false, false
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			hasSPS, p.sps = true, n
		case h264.NALUTypePPS:
			hasPPS, p.pps = true, n
		}
	}
	if hasSPS && hasPPS {
		return au, nil
	}
	if p.sps == nil || p.pps == nil {
		p.sps, p.pps = t.H264ParameterSets()
	}
	if p.sps == nil || p.pps == nil {
		return nil, ErrNoParams
	}
	out := make([][]byte, 0, len(au)+2)
	if !hasSPS {
		out = append(out, p.sps)
	}
	if !hasPPS {
		out = append(out, p.pps)
	}
	return append(out, au...), nil
}

// h265Params is h264Params for H.265's VPS, SPS and PPS.
type h265Params struct{ vps, sps, pps []byte }

func (p *h265Params) complete(au [][]byte, t *live.Track) ([][]byte, error) {
	hasVPS, hasSPS, hasPPS := false, false, false
	for _, n := range au {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			hasVPS, p.vps = true, n
		case h265.NALUType_SPS_NUT:
			hasSPS, p.sps = true, n
		case h265.NALUType_PPS_NUT:
			hasPPS, p.pps = true, n
		}
	}
	if hasVPS && hasSPS && hasPPS {
		return au, nil
	}
	if p.vps == nil || p.sps == nil || p.pps == nil {
		p.vps, p.sps, p.pps = t.H265ParameterSets()
	}
	if p.vps == nil || p.sps == nil || p.pps == nil {
		return nil, ErrNoParams
	}
	out := make([][]byte, 0, len(au)+3)
	for _, ps := range []struct {
		have bool
		nalu []byte
	}{{hasVPS, p.vps}, {hasSPS, p.sps}, {hasPPS, p.pps}} {
		if !ps.have {
			out = append(out, ps.nalu)
		}
	}
	return append(out, au...), nil
}
