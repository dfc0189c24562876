package recorder

import (
	"bytes"
	"fmt"

	amp4 "github.com/abema/go-mp4"
	"github.com/at-wat/ebml-go/webm"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
)

// mp4Track is one track of a recording on its way to MP4: its codec as
// mediacommon describes it, built from the Matroska CodecPrivate, and
// the frames of the fragment being made.
type mp4Track struct {
	number uint64 // the Matroska TrackNumber
	id     int    // the MP4 track ID
	video  bool
	scale  int64 // MP4 time units per second
	codec  codecs.Codec
	// hvcC is an H.265 recording's own decoder configuration, written in
	// place of the one mediacommon makes (see hevcDecoderConfig).
	hvcC []byte

	// While writing: the last frame waits for the next one to know its
	// duration; samples are the current fragment's, from time base.
	held    *heldFrame
	lastDur uint32
	samples []*fmp4.Sample
	base    uint64
	ended   bool // a frame at or after the clip's end was seen
}

// heldFrame is a frame whose duration is not known yet.
type heldFrame struct {
	dts      int64
	keyframe bool
	data     []byte
}

// isSync says whether a frame of the track is a random access point:
// a keyframe of video, any frame of audio.
func (t *mp4Track) isSync(keyframe bool) bool { return keyframe || !t.video }

// newMP4Track describes Matroska track e as MP4 track id.
func newMP4Track(id int, e webm.TrackEntry) (*mp4Track, error) {
	t := &mp4Track{number: e.TrackNumber, id: id, video: true, scale: 90000}
	var err error
	switch e.CodecID {
	case "V_MPEG4/ISO/AVC":
		t.codec, err = h264FromAVCC(e.CodecPrivate)
	case "V_MPEGH/ISO/HEVC":
		t.codec, err = h265FromHVCC(e.CodecPrivate)
		t.hvcC = e.CodecPrivate
	case "V_AV1":
		t.codec, err = av1FromAV1C(e.CodecPrivate)
	case "V_VP9":
		// WebM keeps no VP9 configuration: the picture size from the
		// header, the rest from the first keyframe (see refine).
		c := &codecs.VP9{Profile: 0, BitDepth: 8, ChromaSubsampling: 1}
		if e.Video != nil {
			c.Width, c.Height = int(e.Video.PixelWidth), int(e.Video.PixelHeight)
		}
		t.codec = c
	case "A_OPUS":
		ch := 2
		if e.Audio != nil && e.Audio.Channels > 0 {
			ch = int(e.Audio.Channels)
		}
		t.video, t.scale, t.codec = false, 48000, &codecs.Opus{ChannelCount: ch}
	case "V_VP8":
		return nil, fmt.Errorf("%w: browsers do not play VP8 from MP4", ErrMP4Codec)
	default:
		return nil, fmt.Errorf("%w: no MP4 mapping for Matroska codec %s", ErrMP4Codec, e.CodecID)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: track %d (%s): %w", ErrMP4Codec, e.TrackNumber, e.CodecID, err)
	}
	return t, nil
}

// refine reads what the Matroska header does not say from a keyframe
// (VP9's profile, bit depth, chroma subsampling, range), before the
// initialization segment is written.
func (t *mp4Track) refine(keyframe []byte) {
	c, ok := t.codec.(*codecs.VP9)
	if !ok {
		return
	}
	var h vp9.Header
	if h.Unmarshal(keyframe) != nil || h.NonKeyFrame || h.ColorConfig == nil {
		return
	}
	c.Profile, c.BitDepth = h.Profile, h.ColorConfig.BitDepth
	c.ChromaSubsampling, c.ColorRange = h.ChromaSubsampling(), h.ColorConfig.ColorRange
	if h.Width() > 0 {
		c.Width, c.Height = h.Width(), h.Height()
	}
}

// unmarshalBox reads a box's payload, a Matroska CodecPrivate, with go-mp4.
func unmarshalBox(b []byte, box amp4.IBox) error {
	_, err := amp4.Unmarshal(bytes.NewReader(b), uint64(len(b)), box, amp4.Context{})
	return err
}

// h264FromAVCC reads the SPS and PPS of an AVCDecoderConfigurationRecord.
func h264FromAVCC(b []byte) (*codecs.H264, error) {
	var c amp4.AVCDecoderConfiguration
	c.SetType(amp4.BoxTypeAvcC())
	if err := unmarshalBox(b, &c); err != nil {
		return nil, fmt.Errorf("reading the AVC decoder configuration: %w", err)
	}
	if c.LengthSizeMinusOne != 3 || len(c.SequenceParameterSets) == 0 || len(c.PictureParameterSets) == 0 {
		return nil, fmt.Errorf("the AVC decoder configuration has %d SPS, %d PPS and %d-byte lengths; MP4 here needs one of each and 4",
			len(c.SequenceParameterSets), len(c.PictureParameterSets), c.LengthSizeMinusOne+1)
	}
	return &codecs.H264{SPS: c.SequenceParameterSets[0].NALUnit, PPS: c.PictureParameterSets[0].NALUnit}, nil
}

// h265FromHVCC reads the VPS, SPS and PPS of an HEVCDecoderConfigurationRecord.
func h265FromHVCC(b []byte) (*codecs.H265, error) {
	var c amp4.HvcC
	if err := unmarshalBox(b, &c); err != nil {
		return nil, fmt.Errorf("reading the HEVC decoder configuration: %w", err)
	}
	out := &codecs.H265{}
	for _, a := range c.NaluArrays {
		if len(a.Nalus) == 0 {
			continue
		}
		switch h265.NALUType(a.NaluType) {
		case h265.NALUType_VPS_NUT:
			out.VPS = a.Nalus[0].NALUnit
		case h265.NALUType_SPS_NUT:
			out.SPS = a.Nalus[0].NALUnit
		case h265.NALUType_PPS_NUT:
			out.PPS = a.Nalus[0].NALUnit
		}
	}
	if c.LengthSizeMinusOne != 3 || out.VPS == nil || out.SPS == nil || out.PPS == nil {
		return nil, fmt.Errorf("the HEVC decoder configuration lacks a VPS, SPS or PPS, or has %d-byte lengths (4 needed)", c.LengthSizeMinusOne+1)
	}
	return out, nil
}

// av1FromAV1C reads the sequence header among an AV1CodecConfigurationRecord's OBUs.
func av1FromAV1C(b []byte) (*codecs.AV1, error) {
	var c amp4.Av1C
	if err := unmarshalBox(b, &c); err != nil {
		return nil, fmt.Errorf("reading the AV1 codec configuration: %w", err)
	}
	var obus av1.Bitstream
	if err := obus.Unmarshal(c.ConfigOBUs); err != nil {
		return nil, fmt.Errorf("reading the AV1 configuration OBUs: %w", err)
	}
	for _, obu := range obus {
		var h av1.OBUHeader
		if h.Unmarshal(obu) == nil && h.Type == av1.OBUTypeSequenceHeader {
			return &codecs.AV1{SequenceHeader: obu}, nil
		}
	}
	return nil, fmt.Errorf("the AV1 codec configuration has no sequence header")
}
