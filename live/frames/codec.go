package frames

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpav1"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp8"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp9"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp8"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// decoder assembles one codec's units from in-order packets.
type decoder interface {
	// decode feeds one packet and returns a complete frame's units, or
	// nil while more packets are needed. The payload may be kept.
	decode(pkt *rtp.Packet) ([][]byte, error)
	// reset forgets a partly assembled frame.
	reset()
	// keyframe reports whether a decoder can start at units.
	keyframe(units [][]byte) bool
	// withParams returns a keyframe's units with the parameter sets in
	// front, taken from earlier frames or the track when missing.
	withParams(units [][]byte) ([][]byte, error)
}

// newDecoder returns the decoder for t's codec.
func newDecoder(t *live.Track) (decoder, error) {
	var d decoder
	switch t.Codec {
	case live.H264:
		mode, err := packetizationMode(t.Fmtp)
		if err != nil {
			return nil, err
		}
		d = &h264Decoder{mode: mode, track: t}
	case live.H265:
		// Decoding order numbers (sprop-max-don-diff > 0) are refused at
		// negotiation, so the decoder's default (none) fits every stream.
		d = &h265Decoder{track: t}
	case live.VP8:
		d = &vp8Decoder{}
	case live.VP9:
		d = &vp9Decoder{}
	case live.AV1:
		d = &av1Decoder{}
	case live.Opus:
		d = opusDecoder{}
	default:
		return nil, fmt.Errorf("frames: codec %q is not supported", t.Codec)
	}
	d.reset()
	return d, nil
}

// packetizationMode reads H.264's packetization-mode from an fmtp line:
// 0 (single NAL unit, the default when absent) or 1 (non-interleaved).
func packetizationMode(fmtp string) (int, error) {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if !strings.EqualFold(k, "packetization-mode") {
			continue
		}
		switch strings.TrimSpace(v) {
		case "0":
			return 0, nil
		case "1":
			return 1, nil
		}
		return 0, fmt.Errorf("frames: H.264 packetization-mode %q is not supported", v)
	}
	return 0, nil
}

// wait turns the decoders' answers that only mean "wait" into no unit
// and no error: a frame is not whole yet (more), or a fragment arrived
// whose start was lost (start; the loss itself is found from sequence
// numbers). It runs for most packets, so it compares with the codec's two
// errors only.
func wait(err, more, start error) error {
	if err == more || err == start || errors.Is(err, more) || errors.Is(err, start) {
		return nil
	}
	return err
}

// h264Decoder assembles access units (RFC 6184). OBS sends SPS and PPS in
// packets of their own ahead of the IDR and cuts each picture into
// several slices; the decoder joins everything up to the marker bit.
type h264Decoder struct {
	mode   int
	track  *live.Track
	dec    *rtph264.Decoder
	params h264Params
}

func (d *h264Decoder) reset() {
	d.dec = &rtph264.Decoder{PacketizationMode: d.mode}
	_ = d.dec.Init() // mode is 0 or 1, which Init accepts
}

func (d *h264Decoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	au, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, wait(err, rtph264.ErrMorePacketsNeeded, rtph264.ErrNonStartingPacketAndNoPrevious)
	}
	au = slices.DeleteFunc(au, func(n []byte) bool {
		return len(n) == 0 || h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
	})
	if len(au) == 0 {
		return nil, nil
	}
	return au, nil
}

func (d *h264Decoder) keyframe(au [][]byte) bool { return h264.IsRandomAccess(au) }

func (d *h264Decoder) withParams(au [][]byte) ([][]byte, error) {
	return d.params.complete(au, d.track)
}

// h265Decoder assembles access units (RFC 7798): single NAL unit,
// aggregation and fragmentation packets, joined up to the marker bit.
type h265Decoder struct {
	track  *live.Track
	dec    *rtph265.Decoder
	params h265Params
}

func (d *h265Decoder) reset() {
	d.dec = &rtph265.Decoder{}
	_ = d.dec.Init() // fails only for MaxDONDiff > 0, which negotiation refuses
}

func (d *h265Decoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	au, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, wait(err, rtph265.ErrMorePacketsNeeded, rtph265.ErrNonStartingPacketAndNoPrevious)
	}
	// The decoder refuses NAL units shorter than their two-byte header.
	au = slices.DeleteFunc(au, func(n []byte) bool {
		return len(n) < 2 || h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_AUD_NUT
	})
	if len(au) == 0 {
		return nil, nil
	}
	return au, nil
}

func (d *h265Decoder) keyframe(au [][]byte) bool { return h265.IsRandomAccess(au) }

func (d *h265Decoder) withParams(au [][]byte) ([][]byte, error) {
	return d.params.complete(au, d.track)
}

// vp8Decoder assembles VP8 frames (RFC 7741).
type vp8Decoder struct{ dec *rtpvp8.Decoder }

func (d *vp8Decoder) reset() {
	d.dec = &rtpvp8.Decoder{}
	_ = d.dec.Init()
}

func (d *vp8Decoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	f, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, wait(err, rtpvp8.ErrMorePacketsNeeded, rtpvp8.ErrNonStartingPacketAndNoPrevious)
	}
	if len(f) == 0 {
		return nil, nil // descriptors with no frame after them: nothing to write
	}
	return [][]byte{f}, nil
}

func (d *vp8Decoder) keyframe(u [][]byte) bool                { return vp8.IsRandomAccess(u[0]) }
func (d *vp8Decoder) withParams(u [][]byte) ([][]byte, error) { return u, nil }

// vp9Decoder assembles VP9 frames (RFC 9628).
type vp9Decoder struct{ dec *rtpvp9.Decoder }

func (d *vp9Decoder) reset() {
	d.dec = &rtpvp9.Decoder{}
	_ = d.dec.Init()
}

func (d *vp9Decoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	f, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, wait(err, rtpvp9.ErrMorePacketsNeeded, rtpvp9.ErrNonStartingPacketAndNoPrevious)
	}
	if len(f) == 0 {
		return nil, nil // a descriptor with no frame after it: nothing to write
	}
	return [][]byte{f}, nil
}

func (d *vp9Decoder) keyframe(u [][]byte) bool                { return vp9.IsRandomAccess(u[0]) }
func (d *vp9Decoder) withParams(u [][]byte) ([][]byte, error) { return u, nil }

// av1Decoder assembles AV1 temporal units. Temporal delimiters are
// dropped: neither Matroska blocks nor ISO BMFF samples carry them. A
// keyframe is a temporal unit that carries a sequence header.
type av1Decoder struct{ dec *rtpav1.Decoder }

func (d *av1Decoder) reset() {
	d.dec = &rtpav1.Decoder{}
	_ = d.dec.Init()
}

func (d *av1Decoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	tu, err := d.dec.Decode(pkt)
	if err != nil {
		return nil, wait(err, rtpav1.ErrMorePacketsNeeded, rtpav1.ErrNonStartingPacketAndNoPrevious)
	}
	tu = slices.DeleteFunc(tu, func(obu []byte) bool {
		return len(obu) == 0 || av1.OBUType((obu[0]>>3)&0x0f) == av1.OBUTypeTemporalDelimiter
	})
	if len(tu) == 0 {
		return nil, nil
	}
	return tu, nil
}

func (d *av1Decoder) keyframe(tu [][]byte) bool                { return av1.IsRandomAccess2(tu) }
func (d *av1Decoder) withParams(tu [][]byte) ([][]byte, error) { return tu, nil }

// opusDecoder: WebRTC carries one Opus packet per RTP packet (RFC 7587),
// and every Opus packet can be decoded on its own.
type opusDecoder struct{}

func (opusDecoder) reset() {}

func (opusDecoder) decode(pkt *rtp.Packet) ([][]byte, error) {
	if len(pkt.Payload) == 0 {
		return nil, nil
	}
	return [][]byte{pkt.Payload}, nil
}

func (opusDecoder) keyframe([][]byte) bool                  { return true }
func (opusDecoder) withParams(u [][]byte) ([][]byte, error) { return u, nil }
