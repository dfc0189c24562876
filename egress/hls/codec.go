package hls

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpav1"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp9"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

// depacketizer turns one track's in-order RTP packets into the units
// gohlslib takes (an access unit, a frame, a temporal unit, an Opus packet)
// and writes them to the muxer. Every codec of Reel that HLS can carry has
// one; a codec without one is not offered over HLS.
type depacketizer interface {
	// decode feeds one packet and returns a complete unit, or nil while more
	// packets are needed. The packet's payload is owned by the caller's copy
	// and may be kept.
	decode(pkt *rtp.Packet) ([][]byte, error)
	// reset forgets a partly assembled unit, after packet loss.
	reset()
	// randomAccess reports whether a decoder can start at unit u.
	randomAccess(u [][]byte) bool
	// write hands u to the muxer at pts (in the track's clock rate).
	write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error
}

// errNoParams is returned for an H.264 IDR that arrives before any SPS/PPS.
var errNoParams = errors.New("H.264 IDR without SPS/PPS")

// errNoH265Params is returned for an H.265 IRAP picture that arrives before
// any VPS/SPS/PPS.
var errNoH265Params = errors.New("H.265 IRAP picture without VPS/SPS/PPS")

// newDepacketizer returns the HLS track and depacketizer for an ingest
// track, or ok=false when HLS cannot carry the codec.
func newDepacketizer(in *ingest.Track) (*gohlslib.Track, depacketizer, bool) {
	switch in.Codec {
	case ingest.H264:
		sps, pps := in.H264ParameterSets()
		d := &h264Depacketizer{sps: slices.Clone(sps), pps: slices.Clone(pps)}
		d.mode = packetizationMode(in.Fmtp)
		d.reset()
		return &gohlslib.Track{Codec: &codecs.H264{SPS: d.sps, PPS: d.pps}, ClockRate: 90000}, d, true
	case ingest.H265:
		vps, sps, pps := in.H265ParameterSets()
		d := &h265Depacketizer{vps: slices.Clone(vps), sps: slices.Clone(sps), pps: slices.Clone(pps)}
		d.reset()
		return &gohlslib.Track{Codec: &codecs.H265{VPS: d.vps, SPS: d.sps, PPS: d.pps}, ClockRate: 90000}, d, true
	case ingest.VP9:
		d := &vp9Depacketizer{}
		d.reset()
		return &gohlslib.Track{Codec: &codecs.VP9{}, ClockRate: 90000}, d, true
	case ingest.AV1:
		d := &av1Depacketizer{}
		d.reset()
		return &gohlslib.Track{Codec: &codecs.AV1{}, ClockRate: 90000}, d, true
	case ingest.Opus:
		// WebRTC always signals opus/48000/2; a mono packet decodes fine
		// with a stereo configuration.
		ch := int(in.Channels)
		if ch == 0 {
			ch = 2
		}
		return &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: ch}, ClockRate: 48000}, opusDepacketizer{}, true
	}
	return nil, nil, false
}

// packetizationMode reads packetization-mode from an H.264 fmtp line.
func packetizationMode(fmtp string) int {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, "packetization-mode") && v == "1" {
			return 1
		}
	}
	return 0
}

// ignoreDecodeError says whether a depacketizer error only means "wait".
func ignoreDecodeError(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpvp9.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpav1.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtpvp9.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtpav1.ErrNonStartingPacketAndNoPrevious)
}

// h264Depacketizer assembles access units. OBS sends SPS and PPS in packets
// of their own ahead of the IDR and cuts each picture into several slices;
// the decoder joins everything up to the marker bit. An IDR that comes
// without parameter sets gets the latest ones put in front, so every
// segment can start a decoder.
type h264Depacketizer struct {
	mode     int
	dec      *rtph264.Decoder
	sps, pps []byte
}

func (d *h264Depacketizer) reset() {
	d.dec = &rtph264.Decoder{PacketizationMode: d.mode}
	_ = d.dec.Init() // mode is 0 or 1, which Init accepts
}

func (d *h264Depacketizer) decode(pkt *rtp.Packet) ([][]byte, error) {
	au, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, err
	}
	idr, hasSPS, hasPPS := false, false, false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeIDR:
			idr = true
		case h264.NALUTypeSPS:
			hasSPS, d.sps = true, n
		case h264.NALUTypePPS:
			hasPPS, d.pps = true, n
		}
	}
	if idr && (!hasSPS || !hasPPS) {
		if d.sps == nil || d.pps == nil {
			return nil, errNoParams
		}
		au = append([][]byte{d.sps, d.pps}, au...)
	}
	return au, nil
}

func (d *h264Depacketizer) randomAccess(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeIDR {
			return true
		}
	}
	return false
}

func (d *h264Depacketizer) write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, au [][]byte) error {
	// gohlslib derives the DTS from the PTS and the SPS itself; WebRTC
	// H.264 has no B-frames, so it comes out equal to the PTS.
	return mx.WriteH264(t, ntp, pts, au)
}

// h265Depacketizer assembles access units (RFC 7798): single NAL unit,
// aggregation and fragmentation packets, joined up to the marker bit. As
// for H.264, an IRAP picture that comes without parameter sets gets the
// latest ones put in front: gohlslib takes the init segment's hvcC and its
// DTS extractor's SPS from the access units it is given, and every segment
// must be able to start a decoder.
type h265Depacketizer struct {
	dec           *rtph265.Decoder
	vps, sps, pps []byte
}

func (d *h265Depacketizer) reset() {
	d.dec = &rtph265.Decoder{}
	_ = d.dec.Init() // fails only for MaxDONDiff > 0, which ingest refuses
}

func (d *h265Depacketizer) decode(pkt *rtp.Packet) ([][]byte, error) {
	au, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, err
	}
	// The decoder never returns an empty NAL unit (it refuses payloads
	// shorter than the two-byte header and empty aggregated units), so
	// n[0] is safe here, in IsRandomAccess and in gohlslib.
	hasVPS, hasSPS, hasPPS := false, false, false
	for _, n := range au {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			hasVPS, d.vps = true, n
		case h265.NALUType_SPS_NUT:
			hasSPS, d.sps = true, n
		case h265.NALUType_PPS_NUT:
			hasPPS, d.pps = true, n
		}
	}
	if (!hasVPS || !hasSPS || !hasPPS) && h265.IsRandomAccess(au) {
		if d.vps == nil || d.sps == nil || d.pps == nil {
			return nil, errNoH265Params
		}
		au = append([][]byte{d.vps, d.sps, d.pps}, au...)
	}
	return au, nil
}

func (d *h265Depacketizer) randomAccess(au [][]byte) bool { return h265.IsRandomAccess(au) }

func (d *h265Depacketizer) write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, au [][]byte) error {
	// As for H.264, gohlslib derives the DTS with mediacommon's H.265 DTS
	// extractor; WebRTC H.265 has no B-frames, so it equals the PTS.
	return mx.WriteH265(t, ntp, pts, au)
}

// vp9Depacketizer assembles VP9 frames (RFC 9628).
type vp9Depacketizer struct{ dec *rtpvp9.Decoder }

func (d *vp9Depacketizer) reset() {
	d.dec = &rtpvp9.Decoder{}
	_ = d.dec.Init()
}

func (d *vp9Depacketizer) decode(pkt *rtp.Packet) ([][]byte, error) {
	f, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, err
	}
	return [][]byte{f}, nil
}

func (d *vp9Depacketizer) randomAccess(u [][]byte) bool { return vp9.IsRandomAccess(u[0]) }

func (d *vp9Depacketizer) write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
	return mx.WriteVP9(t, ntp, pts, u[0])
}

// av1Depacketizer assembles AV1 temporal units. Temporal delimiters are
// dropped: ISO BMFF samples must not carry them.
type av1Depacketizer struct{ dec *rtpav1.Decoder }

func (d *av1Depacketizer) reset() {
	d.dec = &rtpav1.Decoder{}
	_ = d.dec.Init()
}

func (d *av1Depacketizer) decode(pkt *rtp.Packet) ([][]byte, error) {
	tu, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, err
	}
	tu = slices.DeleteFunc(tu, func(obu []byte) bool {
		return len(obu) == 0 || av1.OBUType((obu[0]>>3)&0x0f) == av1.OBUTypeTemporalDelimiter
	})
	if len(tu) == 0 {
		return nil, nil
	}
	return tu, nil
}

func (d *av1Depacketizer) randomAccess(tu [][]byte) bool { return av1.IsRandomAccess2(tu) }

func (d *av1Depacketizer) write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, tu [][]byte) error {
	return mx.WriteAV1(t, ntp, pts, tu)
}

// opusDepacketizer: WebRTC carries one Opus packet per RTP packet (RFC 7587).
type opusDepacketizer struct{}

func (opusDepacketizer) reset() {}

func (opusDepacketizer) decode(pkt *rtp.Packet) ([][]byte, error) {
	if len(pkt.Payload) == 0 {
		return nil, nil
	}
	return [][]byte{pkt.Payload}, nil
}

func (opusDepacketizer) randomAccess([][]byte) bool { return true }

func (opusDepacketizer) write(mx *gohlslib.Muxer, t *gohlslib.Track, ntp time.Time, pts int64, u [][]byte) error {
	return mx.WriteOpus(t, ntp, pts, u)
}
