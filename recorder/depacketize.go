package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpav1"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp8"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp9"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp8"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

// frame is one depacketized frame in the form Matroska stores it.
type frame struct {
	data     []byte
	keyframe bool
	rtpTS    uint32
	// For keyframes: the picture size and the decoder configuration, when
	// the frame carries them (H.264 SPS/PPS, H.265 VPS/SPS/PPS, AV1
	// sequence header).
	width, height int
	codecPrivate  []byte
}

// depacketizer turns in-order RTP packets of one track into frames. decode
// returns a nil frame while a frame is incomplete; errors mean the packet
// could not be used (a fragment after a loss, a malformed payload).
type depacketizer interface {
	decode(pkt *rtp.Packet) (*frame, error)
}

// newDepacketizer returns a fresh depacketizer for t's codec; a recording
// replaces its depacketizer after a loss to drop any half-built frame.
func newDepacketizer(t *ingest.Track) (depacketizer, error) {
	switch t.Codec {
	case ingest.H264:
		d := &h264Depacketizer{track: t}
		d.dec.PacketizationMode = 1
		return d, d.dec.Init()
	case ingest.H265:
		// Decoding order numbers (sprop-max-don-diff > 0) are refused at
		// negotiation, so the decoder's default (none) fits every stream.
		d := &h265Depacketizer{track: t}
		return d, d.dec.Init()
	case ingest.VP8:
		return &vp8Depacketizer{}, nil
	case ingest.VP9:
		return &vp9Depacketizer{}, nil
	case ingest.AV1:
		return &av1Depacketizer{}, nil
	case ingest.Opus:
		return opusDepacketizer{}, nil
	}
	return nil, fmt.Errorf("recording codec %q is not supported", t.Codec)
}

// isMoreNeeded reports the decoders' "not a whole frame yet" answers.
func isMoreNeeded(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpvp8.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpvp9.ErrMorePacketsNeeded) || errors.Is(err, rtpav1.ErrMorePacketsNeeded)
}

// h264Depacketizer assembles access units (every slice of a picture, with
// SPS/PPS that arrive in packets of their own) and writes them as AVCC.
type h264Depacketizer struct {
	track *ingest.Track
	dec   rtph264.Decoder
}

func (d *h264Depacketizer) decode(pkt *rtp.Packet) (*frame, error) {
	au, err := d.dec.Decode(pkt)
	if err != nil {
		if isMoreNeeded(err) {
			return nil, nil
		}
		return nil, err
	}
	var sps, pps []byte
	keep := au[:0:0]
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		}
		keep = append(keep, n)
	}
	if len(keep) == 0 {
		return nil, nil
	}
	data, err := h264.AVCC(keep).Marshal()
	if err != nil {
		return nil, fmt.Errorf("converting an H.264 access unit to AVCC: %w", err)
	}
	f := &frame{data: data, keyframe: h264.IsRandomAccess(keep), rtpTS: pkt.Timestamp}
	if f.keyframe {
		if sps == nil || pps == nil {
			sps, pps = d.track.H264ParameterSets()
		}
		if sps != nil && pps != nil {
			var s h264.SPS
			if err := s.Unmarshal(sps); err != nil {
				return nil, fmt.Errorf("reading the H.264 SPS: %w", err)
			}
			f.width, f.height = s.Width(), s.Height()
			f.codecPrivate = avcDecoderConfig(&s, sps, pps)
		}
	}
	return f, nil
}

// avcDecoderConfig builds the AVCDecoderConfigurationRecord (ISO/IEC
// 14496-15 5.3.3.1) that Matroska's V_MPEG4/ISO/AVC wants as CodecPrivate:
// NAL units with 4-byte lengths, one SPS, one PPS.
func avcDecoderConfig(s *h264.SPS, sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | 1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	b = append(b, pps...)
	switch s.ProfileIdc {
	case 100, 110, 122, 144:
		b = append(b, 0xfc|byte(s.ChromaFormatIdc&3), 0xf8|byte(s.BitDepthLumaMinus8&7),
			0xf8|byte(s.BitDepthChromaMinus8&7), 0)
	}
	return b
}

type vp8Depacketizer struct{ dec rtpvp8.Decoder }

func (d *vp8Depacketizer) decode(pkt *rtp.Packet) (*frame, error) {
	data, err := d.dec.Decode(pkt)
	if err != nil {
		if isMoreNeeded(err) {
			return nil, nil
		}
		return nil, err
	}
	f := &frame{data: data, keyframe: vp8.IsRandomAccess(data), rtpTS: pkt.Timestamp}
	// A keyframe's header: 3-byte frame tag, start code 9d 01 2a, then
	// 14-bit width and height, little endian.
	if f.keyframe && len(data) >= 10 && data[3] == 0x9d && data[4] == 0x01 && data[5] == 0x2a {
		f.width = int(binary.LittleEndian.Uint16(data[6:]) & 0x3fff)
		f.height = int(binary.LittleEndian.Uint16(data[8:]) & 0x3fff)
	}
	return f, nil
}

type vp9Depacketizer struct{ dec rtpvp9.Decoder }

func (d *vp9Depacketizer) decode(pkt *rtp.Packet) (*frame, error) {
	data, err := d.dec.Decode(pkt)
	if err != nil {
		if isMoreNeeded(err) {
			return nil, nil
		}
		return nil, err
	}
	f := &frame{data: data, keyframe: vp9.IsRandomAccess(data), rtpTS: pkt.Timestamp}
	if f.keyframe {
		var h vp9.Header
		if err := h.Unmarshal(data); err == nil && h.FrameSize != nil {
			f.width, f.height = h.Width(), h.Height()
		}
	}
	return f, nil
}

type av1Depacketizer struct{ dec rtpav1.Decoder }

func (d *av1Depacketizer) decode(pkt *rtp.Packet) (*frame, error) {
	tu, err := d.dec.Decode(pkt)
	if err != nil {
		if isMoreNeeded(err) {
			return nil, nil
		}
		return nil, err
	}
	// Matroska stores a temporal unit as OBUs with size fields, without
	// temporal delimiters.
	keep := tu[:0:0]
	var seqHdr []byte
	for _, obu := range tu {
		if len(obu) == 0 {
			continue
		}
		switch av1.OBUType((obu[0] >> 3) & 0xf) {
		case av1.OBUTypeTemporalDelimiter:
			continue
		case av1.OBUTypeSequenceHeader:
			seqHdr = obu
		}
		keep = append(keep, obu)
	}
	if len(keep) == 0 {
		return nil, nil
	}
	data, err := av1.Bitstream(keep).Marshal()
	if err != nil {
		return nil, fmt.Errorf("writing an AV1 temporal unit: %w", err)
	}
	f := &frame{data: data, keyframe: seqHdr != nil, rtpTS: pkt.Timestamp}
	if seqHdr != nil {
		var h av1.SequenceHeader
		if err := h.Unmarshal(seqHdr); err != nil {
			return nil, fmt.Errorf("reading the AV1 sequence header: %w", err)
		}
		f.width, f.height = h.Width(), h.Height()
		withSize, err := av1.Bitstream{seqHdr}.Marshal()
		if err != nil {
			return nil, fmt.Errorf("writing the AV1 sequence header: %w", err)
		}
		f.codecPrivate = av1Config(&h, withSize)
	}
	return f, nil
}

// av1Config builds the AV1CodecConfigurationRecord ("av1C") that Matroska's
// V_AV1 wants as CodecPrivate, with the sequence header as config OBU.
func av1Config(h *av1.SequenceHeader, seqHdrOBU []byte) []byte {
	var level, tier byte
	if len(h.SeqLevelIdx) > 0 {
		level = h.SeqLevelIdx[0]
	}
	if len(h.SeqTier) > 0 && h.SeqTier[0] {
		tier = 1
	}
	c := h.ColorConfig
	b2 := tier<<7 | bit(c.HighBitDepth)<<6 | bit(c.TwelveBit)<<5 | bit(c.MonoChrome)<<4 |
		bit(c.SubsamplingX)<<3 | bit(c.SubsamplingY)<<2 | byte(c.ChromaSamplePosition)&3
	return append([]byte{0x81, h.SeqProfile<<5 | level&0x1f, b2, 0}, seqHdrOBU...)
}

func bit(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// opusDepacketizer: one RTP packet carries one Opus packet, and every Opus
// packet can be decoded on its own.
type opusDepacketizer struct{}

func (opusDepacketizer) decode(pkt *rtp.Packet) (*frame, error) {
	if len(pkt.Payload) == 0 {
		return nil, nil
	}
	return &frame{data: pkt.Payload, keyframe: true, rtpTS: pkt.Timestamp}, nil
}
