package testmedia

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v3/pkg/media/h264reader"
)

// H.264 NAL unit types used to find access-unit boundaries (H.264 table 7-1).
const (
	nalSlice = 1
	nalIDR   = 5
	nalSEI   = 6
	nalSPS   = 7
	nalPPS   = 8
	nalAUD   = 9
)

var annexBStartCode = []byte{0, 0, 0, 1}

// ReadH264 reads an Annex-B H.264 elementary stream and groups its NAL units
// into access units, one Sample per picture with Duration 1/fps. A new
// access unit starts at an AUD, SPS, PPS or SEI that follows a slice, or at a
// slice with first_mb_in_slice == 0 that follows a slice, so parameter sets
// stay with the picture after them. Sample.Data is the access unit in
// Annex-B form (4-byte start codes); Keyframe is set when it holds an IDR
// slice. Note that pion's h264reader drops SEI NAL units, so they never
// appear in Data.
func ReadH264(path string, fps int) ([]Sample, error) {
	if fps <= 0 {
		return nil, fmt.Errorf("reading %s: fps must be positive, got %d", path, fps)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening H.264 file: %w", err)
	}
	defer f.Close()

	reader, err := h264reader.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("creating H.264 reader for %s: %w", path, err)
	}
	var (
		b       auBuilder
		samples []Sample
	)
	frameDuration := time.Second / time.Duration(fps)
	for {
		nal, err := reader.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading NAL %d of %s: %w", b.nals, path, err)
		}
		if au, done := b.add(nal.Data); done {
			samples = append(samples, au)
		}
	}
	if au, ok := b.flush(); ok {
		samples = append(samples, au)
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("reading %s: no access units", path)
	}
	for i := range samples {
		samples[i].Duration = frameDuration
	}
	return samples, nil
}

// auBuilder accumulates NAL units of the access unit being read.
type auBuilder struct {
	data     []byte
	hasSlice bool
	keyframe bool
	nals     int
}

// add appends one NAL unit (without start code). When the NAL begins a new
// access unit, the finished previous one is returned with done == true.
func (b *auBuilder) add(nal []byte) (finished Sample, done bool) {
	if len(nal) == 0 {
		return Sample{}, false
	}
	b.nals++
	if b.hasSlice && startsAccessUnit(nal) {
		finished, done = b.flush()
	}
	switch nal[0] & 0x1f {
	case nalSlice:
		b.hasSlice = true
	case nalIDR:
		b.hasSlice = true
		b.keyframe = true
	}
	b.data = append(b.data, annexBStartCode...)
	b.data = append(b.data, nal...)
	return finished, done
}

// flush returns the accumulated access unit and resets the builder.
func (b *auBuilder) flush() (Sample, bool) {
	if len(b.data) == 0 {
		return Sample{}, false
	}
	s := Sample{Data: b.data, Keyframe: b.keyframe}
	b.data, b.hasSlice, b.keyframe = nil, false, false
	return s, true
}

// startsAccessUnit reports whether nal, seen after a slice, opens a new
// access unit (H.264 7.4.1.2.3, simplified to first_mb_in_slice for VCL).
func startsAccessUnit(nal []byte) bool {
	switch nal[0] & 0x1f {
	case nalAUD, nalSPS, nalPPS, nalSEI:
		return true
	case nalSlice, nalIDR:
		// first_mb_in_slice is the first ue(v) after the NAL header; the
		// value 0 is coded as a single 1 bit.
		return len(nal) > 1 && nal[1]&0x80 != 0
	default:
		return false
	}
}

// NALTypes lists the NAL unit types of an Annex-B buffer in order. It is a
// small helper for tests that check what an access unit contains.
func NALTypes(annexB []byte) []byte {
	var types []byte
	for _, nal := range SplitAnnexB(annexB) {
		types = append(types, nal[0]&0x1f)
	}
	return types
}

// SplitAnnexB splits an Annex-B buffer into NAL units without start codes.
func SplitAnnexB(annexB []byte) [][]byte {
	var (
		nals  [][]byte
		start = -1
		zeros = 0
	)
	for i, c := range annexB {
		if c == 1 && zeros >= 2 {
			if start >= 0 {
				nals = appendNAL(nals, annexB[start:i-zeros])
			}
			start = i + 1
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if start >= 0 {
		nals = appendNAL(nals, annexB[start:])
	}
	return nals
}

func appendNAL(nals [][]byte, nal []byte) [][]byte {
	if len(nal) == 0 {
		return nals
	}
	return append(nals, nal)
}

// ProfileLevelID returns the SDP profile-level-id (RFC 6184 8.1: profile_idc,
// constraint flags, level_idc as six hex digits) of the first SPS found in
// samples, or "" if there is none.
func ProfileLevelID(samples []Sample) string {
	for _, s := range samples {
		for _, nal := range SplitAnnexB(s.Data) {
			if nal[0]&0x1f == nalSPS && len(nal) >= 4 {
				return fmt.Sprintf("%02x%02x%02x", nal[1], nal[2], nal[3])
			}
		}
	}
	return ""
}
