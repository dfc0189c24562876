package testmedia

import (
	"fmt"
	"os"
	"time"
)

// H.265 NAL unit types used to find access-unit boundaries (H.265 table 7-1).
const (
	h265IRAPFirst = 16 // BLA_W_LP
	h265IRAPLast  = 21 // CRA_NUT
	h265VCLLast   = 31
	h265VPS       = 32
	h265SPS       = 33
	h265PPS       = 34
	h265AUD       = 35
	h265PrefixSEI = 39
)

// H265Type is the type of an H.265 NAL unit.
func H265Type(nal []byte) byte { return (nal[0] >> 1) & 0x3f }

// ReadH265 reads an Annex-B H.265 elementary stream and groups its NAL
// units into access units, one Sample per picture with Duration 1/fps: a
// new access unit starts at a VPS, SPS, PPS, AUD or prefix SEI that follows
// a slice, or at a slice that is the first of its picture. Sample.Data is
// the access unit in Annex-B form; Keyframe is set for IRAP pictures.
func ReadH265(path string, fps int) ([]Sample, error) {
	if fps <= 0 {
		return nil, fmt.Errorf("reading %s: fps must be positive, got %d", path, fps)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("opening H.265 file: %w", err)
	}
	var (
		samples []Sample
		cur     Sample
		slice   bool
	)
	flush := func() {
		if len(cur.Data) > 0 {
			samples = append(samples, cur)
		}
		cur, slice = Sample{}, false
	}
	for _, nal := range SplitAnnexB(data) {
		if len(nal) < 3 {
			continue
		}
		t := H265Type(nal)
		vcl := t <= h265VCLLast
		// first_slice_segment_in_pic_flag is the first bit after the header.
		firstSlice := vcl && nal[2]&0x80 != 0
		switch {
		case slice && (t == h265VPS || t == h265SPS || t == h265PPS || t == h265AUD || t == h265PrefixSEI),
			slice && firstSlice:
			flush()
		}
		if vcl {
			slice = true
			if t >= h265IRAPFirst && t <= h265IRAPLast {
				cur.Keyframe = true
			}
		}
		cur.Data = append(cur.Data, annexBStartCode...)
		cur.Data = append(cur.Data, nal...)
	}
	flush()
	if len(samples) == 0 {
		return nil, fmt.Errorf("reading %s: no access units", path)
	}
	for i := range samples {
		samples[i].Duration = time.Second / time.Duration(fps)
	}
	return samples, nil
}
