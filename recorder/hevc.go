package recorder

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// h265Sample writes an access unit with 4-byte lengths, as Matroska's
// V_MPEGH/ISO/HEVC wants (the same form as AVCC: mediacommon and gohlslib
// use h264.AVCC for H.265 samples too); a keyframe's VPS, SPS and PPS
// (the frame stage puts them in front) give its size and CodecPrivate.
func h265Sample(f *frame, au [][]byte) error {
	var err error
	if f.data, err = h264.AVCC(au).Marshal(); err != nil {
		return fmt.Errorf("converting an H.265 access unit to length-prefixed form: %w", err)
	}
	if !f.keyframe {
		return nil
	}
	var vps, sps, pps []byte
	for _, n := range au {
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			vps = n
		case h265.NALUType_SPS_NUT:
			sps = n
		case h265.NALUType_PPS_NUT:
			pps = n
		}
	}
	if vps == nil || sps == nil || pps == nil {
		return nil
	}
	var s h265.SPS
	if err := s.Unmarshal(sps); err != nil {
		return fmt.Errorf("reading the H.265 SPS: %w", err)
	}
	if f.codecPrivate, err = hevcDecoderConfig(&s, vps, sps, pps); err != nil {
		return err
	}
	f.width, f.height = s.Width(), s.Height()
	return nil
}

// hevcDecoderConfig builds the HEVCDecoderConfigurationRecord ("hvcC",
// ISO/IEC 14496-15 8.3.3.1) that Matroska's V_MPEGH/ISO/HEVC wants as
// CodecPrivate: NAL units with 4-byte lengths, one VPS, SPS and PPS each.
// go-mp4 writes it because gohlslib and mediacommon already use it for
// fMP4; the fields are filled as mediacommon's fMP4 writer fills them,
// with two corrections:
//   - the 48 constraint flags are read where profile_tier_level has them,
//     bytes 8 to 13 of the SPS once its emulation prevention bytes are
//     removed (x265 puts one among them), not SPS[7:13] as stored;
//   - numTemporalLayers and temporalIdNested come from the SPS, as ffmpeg
//     writes them; go-mp4 splits their 4 bits 2+2 instead of the
//     standard 3+1, so they are packed to land on the standard's bits.
//
// The arrays are not marked complete: frames carry the parameter sets too.
func hevcDecoderConfig(s *h265.SPS, vps, sps, pps []byte) ([]byte, error) {
	if max(len(vps), len(sps), len(pps)) > 0xffff {
		return nil, errors.New("an H.265 parameter set is too long for the HEVC decoder configuration")
	}
	rbsp := h264.EmulationPreventionRemove(sps)
	if len(rbsp) < 14 {
		return nil, errors.New("the H.265 SPS is too short for its profile_tier_level")
	}
	ptl := &s.ProfileTierLevel
	// Three bits: 1 to 7 sub-layers (a damaged SPS may say 8).
	layers := min(s.MaxSubLayersMinus1+1, 7)
	box := mp4.HvcC{
		ConfigurationVersion:        1,
		GeneralProfileSpace:         ptl.GeneralProfileSpace,
		GeneralTierFlag:             ptl.GeneralTierFlag != 0,
		GeneralProfileIdc:           ptl.GeneralProfileIdc,
		GeneralProfileCompatibility: ptl.GeneralProfileCompatibilityFlag,
		GeneralConstraintIndicator:  [6]uint8(rbsp[8:14]),
		GeneralLevelIdc:             ptl.GeneralLevelIdc,
		Reserved1:                   0b1111,
		Reserved2:                   0b111111,
		Reserved3:                   0b111111,
		ChromaFormatIdc:             uint8(s.ChromaFormatIdc), // 0 to 3: checked by Unmarshal
		Reserved4:                   0b11111,
		BitDepthLumaMinus8:          uint8(s.BitDepthLumaMinus8 & 7),
		Reserved5:                   0b11111,
		BitDepthChromaMinus8:        uint8(s.BitDepthChromaMinus8 & 7),
		// Bits 5-3 numTemporalLayers, bit 2 temporalIdNested (see above).
		NumTemporalLayers:  layers >> 1,
		TemporalIdNested:   (layers&1)<<1 | bit(s.TemporalIDNestingFlag),
		LengthSizeMinusOne: 3,
		NumOfNaluArrays:    3,
		NaluArrays: []mp4.HEVCNaluArray{
			hevcNaluArray(h265.NALUType_VPS_NUT, vps),
			hevcNaluArray(h265.NALUType_SPS_NUT, sps),
			hevcNaluArray(h265.NALUType_PPS_NUT, pps),
		},
	}
	// mp4.Marshal writes the box's payload without its 8-byte header:
	// the record itself.
	var buf bytes.Buffer
	if _, err := mp4.Marshal(&buf, &box, mp4.Context{}); err != nil {
		return nil, fmt.Errorf("writing the HEVC decoder configuration: %w", err)
	}
	return buf.Bytes(), nil
}

// hevcNaluArray is one hvcC array holding a single NAL unit.
func hevcNaluArray(t h265.NALUType, nalu []byte) mp4.HEVCNaluArray {
	return mp4.HEVCNaluArray{
		NaluType: uint8(t),
		NumNalus: 1,
		Nalus:    []mp4.HEVCNalu{{Length: uint16(len(nalu)), NALUnit: nalu}},
	}
}
