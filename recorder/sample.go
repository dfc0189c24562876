package recorder

import (
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// frame is one frame in the form Matroska stores it.
type frame struct {
	data     []byte
	keyframe bool
	rtpTS    uint32
	// For video keyframes: the picture size and the decoder configuration
	// (H.264 SPS/PPS, H.265 VPS/SPS/PPS, AV1 sequence header).
	width, height int
	codecPrivate  []byte
}

// toMatroska turns an assembled frame (package frames) into a Matroska
// block: length-prefixed NAL units for H.264 and H.265, OBUs with size
// fields for AV1, the frame itself for VP8, VP9 and Opus; and reads a
// video keyframe's picture size and CodecPrivate.
func toMatroska(c live.Codec, in frames.Frame) (*frame, error) {
	f := &frame{keyframe: in.Keyframe, rtpTS: in.RTPTime}
	var err error
	switch c {
	case live.H264:
		err = h264Sample(f, in.Units)
	case live.H265:
		err = h265Sample(f, in.Units)
	case live.AV1:
		err = av1Sample(f, in.Units)
	case live.VP8:
		f.data = in.Units[0]
		f.width, f.height = vp8Size(f)
	case live.VP9:
		f.data = in.Units[0]
		f.width, f.height = vp9Size(f)
	case live.Opus:
		f.data = in.Units[0]
	default:
		return nil, fmt.Errorf("recording codec %q is not supported", c)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// h264Sample writes an access unit as AVCC; a keyframe's SPS and PPS (the
// frame stage puts them in front) give its size and CodecPrivate.
func h264Sample(f *frame, au [][]byte) error {
	var err error
	if f.data, err = h264.AVCC(au).Marshal(); err != nil {
		return fmt.Errorf("converting an H.264 access unit to AVCC: %w", err)
	}
	if !f.keyframe {
		return nil
	}
	var sps, pps []byte
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	if sps == nil || pps == nil {
		return nil
	}
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		return fmt.Errorf("reading the H.264 SPS: %w", err)
	}
	f.width, f.height = s.Width(), s.Height()
	f.codecPrivate = avcDecoderConfig(&s, sps, pps)
	return nil
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

// vp8Size reads a keyframe's header: 3-byte frame tag, start code 9d 01
// 2a, then 14-bit width and height, little endian.
func vp8Size(f *frame) (w, h int) {
	d := f.data
	if !f.keyframe || len(d) < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
		return 0, 0
	}
	return int(binary.LittleEndian.Uint16(d[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(d[8:]) & 0x3fff)
}

// vp9Size reads a keyframe's uncompressed header.
func vp9Size(f *frame) (w, h int) {
	if !f.keyframe {
		return 0, 0
	}
	var hdr vp9.Header
	if err := hdr.Unmarshal(f.data); err != nil || hdr.FrameSize == nil {
		return 0, 0
	}
	return hdr.Width(), hdr.Height()
}

// av1Sample writes a temporal unit as OBUs with size fields (Matroska
// stores it so, without temporal delimiters, which the frame stage has
// dropped); a keyframe's sequence header gives its size and CodecPrivate.
func av1Sample(f *frame, tu [][]byte) error {
	var err error
	if f.data, err = av1.Bitstream(tu).Marshal(); err != nil {
		return fmt.Errorf("writing an AV1 temporal unit: %w", err)
	}
	var seqHdr []byte
	for _, obu := range tu {
		if av1.OBUType((obu[0]>>3)&0xf) == av1.OBUTypeSequenceHeader {
			seqHdr = obu
		}
	}
	if seqHdr == nil {
		return nil
	}
	var h av1.SequenceHeader
	if err := h.Unmarshal(seqHdr); err != nil {
		return fmt.Errorf("reading the AV1 sequence header: %w", err)
	}
	f.width, f.height = h.Width(), h.Height()
	withSize, err := av1.Bitstream{seqHdr}.Marshal()
	if err != nil {
		return fmt.Errorf("writing the AV1 sequence header: %w", err)
	}
	f.codecPrivate = av1Config(&h, withSize)
	return nil
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
