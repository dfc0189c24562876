package hls

import (
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/reel-gateway/reel/live"
)

// writeFunc hands one frame's units to the muxer at pts (in the track's
// clock rate).
type writeFunc func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, units [][]byte) error

// hlsTrack returns the gohlslib track for a live track and how to write
// its frames, or ok=false when HLS cannot carry the codec. Frames come
// whole from package frames; H.264 and H.265 keyframes carry their
// parameter sets, which gohlslib reads for the init segment.
func hlsTrack(in *live.Track) (*gohlslib.Track, writeFunc, bool) {
	switch in.Codec {
	case live.H264:
		sps, pps := in.H264ParameterSets()
		// gohlslib derives the DTS from the PTS and the SPS itself; WebRTC
		// H.264 has no B-frames, so it comes out equal to the PTS.
		return &gohlslib.Track{Codec: &codecs.H264{SPS: sps, PPS: pps}, ClockRate: 90000},
			func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
				return mx.WriteH264(t, ntp, pts, u)
			}, true
	case live.H265:
		vps, sps, pps := in.H265ParameterSets()
		// As for H.264, with mediacommon's H.265 DTS extractor.
		return &gohlslib.Track{Codec: &codecs.H265{VPS: vps, SPS: sps, PPS: pps}, ClockRate: 90000},
			func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
				return mx.WriteH265(t, ntp, pts, u)
			}, true
	case live.VP9:
		return &gohlslib.Track{Codec: &codecs.VP9{}, ClockRate: 90000},
			func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
				return mx.WriteVP9(t, ntp, pts, u[0])
			}, true
	case live.AV1:
		return &gohlslib.Track{Codec: &codecs.AV1{}, ClockRate: 90000},
			func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
				return mx.WriteAV1(t, ntp, pts, u)
			}, true
	case live.Opus:
		// WebRTC always signals opus/48000/2; a mono packet decodes fine
		// with a stereo configuration.
		ch := int(in.Channels)
		if ch == 0 {
			ch = 2
		}
		return &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: ch}, ClockRate: 48000},
			func(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
				return mx.WriteOpus(t, ntp, pts, u)
			}, true
	}
	return nil, nil, false
}
