package testmedia

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v3/pkg/media/ivfreader"
)

// IVF FourCCs of the codecs ReadIVF understands.
const (
	FourCCVP8 = "VP80"
	FourCCVP9 = "VP90"
	FourCCAV1 = "AV01"
)

// ReadIVF reads a VP8, VP9 or AV1 IVF file. Each IVF frame becomes one
// Sample; its Duration is the distance to the next frame's timestamp (the
// last frame repeats the previous duration), and Keyframe is decided by
// parsing the codec's frame header.
func ReadIVF(path string) (fourcc string, samples []Sample, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("opening IVF file: %w", err)
	}
	defer f.Close()

	reader, header, err := ivfreader.NewWith(f)
	if err != nil {
		return "", nil, fmt.Errorf("reading IVF header of %s: %w", path, err)
	}
	isKey, err := keyframeDetector(header.FourCC)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if header.TimebaseDenominator == 0 || header.TimebaseNumerator == 0 {
		return "", nil, fmt.Errorf("reading %s: zero IVF timebase", path)
	}
	tick := func(ts uint64) time.Duration {
		return time.Duration(ts) * time.Second * time.Duration(header.TimebaseNumerator) /
			time.Duration(header.TimebaseDenominator)
	}

	var stamps []uint64
	for {
		frame, fh, err := reader.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", nil, fmt.Errorf("reading IVF frame %d of %s: %w", len(samples), path, err)
		}
		samples = append(samples, Sample{Data: frame, Keyframe: isKey(frame)})
		stamps = append(stamps, fh.Timestamp)
	}
	if len(samples) == 0 {
		return "", nil, fmt.Errorf("reading %s: no frames", path)
	}
	setDurations(samples, stamps, tick)
	return header.FourCC, samples, nil
}

// setDurations fills Duration from consecutive timestamps.
func setDurations(samples []Sample, stamps []uint64, tick func(uint64) time.Duration) {
	fallback := time.Second / 30
	for i := range samples {
		if i+1 < len(samples) && stamps[i+1] > stamps[i] {
			samples[i].Duration = tick(stamps[i+1] - stamps[i])
			fallback = samples[i].Duration
			continue
		}
		samples[i].Duration = fallback
	}
}

func keyframeDetector(fourcc string) (func([]byte) bool, error) {
	switch fourcc {
	case FourCCVP8:
		return IsVP8Keyframe, nil
	case FourCCVP9:
		return IsVP9Keyframe, nil
	case FourCCAV1:
		return IsAV1Keyframe, nil
	default:
		return nil, fmt.Errorf("unsupported IVF FourCC %q", fourcc)
	}
}

// IsVP8Keyframe reports whether a VP8 frame is a key frame: bit 0 of the
// frame tag is 0 for key frames (RFC 6386 section 9.1).
func IsVP8Keyframe(frame []byte) bool {
	return len(frame) > 0 && frame[0]&0x01 == 0
}

// IsVP9Keyframe parses the start of a VP9 uncompressed header (VP9 bitstream
// spec 6.2): frame_marker(2) profile(2) [reserved(1) if profile 3]
// show_existing_frame(1) frame_type(1), where frame_type 0 is KEY_FRAME.
func IsVP9Keyframe(frame []byte) bool {
	if len(frame) == 0 {
		return false
	}
	br := bitReader{data: frame}
	if br.bits(2) != 2 { // frame_marker
		return false
	}
	low := br.bits(1)
	high := br.bits(1)
	if high<<1|low == 3 {
		br.bits(1) // reserved_zero
	}
	if br.bits(1) == 1 { // show_existing_frame
		return false
	}
	return br.bits(1) == 0 && !br.overrun
}

// AV1 OBU types (AV1 spec 6.2.2).
const (
	obuSequenceHeader = 1
	obuFrameHeader    = 3
	obuFrame          = 6
)

// IsAV1Keyframe reports whether an AV1 temporal unit (a sequence of OBUs
// with size fields, as stored in IVF) starts a key frame: it carries a
// sequence header OBU, or its first frame header has frame_type KEY_FRAME.
// Frame headers are read assuming reduced_still_picture_header == 0, which
// holds for every non-still-image stream.
func IsAV1Keyframe(tu []byte) bool {
	for len(tu) > 0 {
		obuType, payload, rest, ok := nextOBU(tu)
		if !ok {
			return false
		}
		switch obuType {
		case obuSequenceHeader:
			return true
		case obuFrameHeader, obuFrame:
			br := bitReader{data: payload}
			if br.bits(1) == 1 { // show_existing_frame
				return false
			}
			return br.bits(2) == 0 && !br.overrun // frame_type KEY_FRAME
		}
		tu = rest
	}
	return false
}

// nextOBU splits the first OBU off data. It returns the OBU type, its payload
// and the remaining bytes.
func nextOBU(data []byte) (obuType byte, payload, rest []byte, ok bool) {
	header := data[0]
	obuType = header >> 3 & 0x0f
	pos := 1
	if header&0x04 != 0 { // obu_extension_flag
		pos++
	}
	if pos > len(data) {
		return 0, nil, nil, false
	}
	if header&0x02 == 0 { // no obu_has_size_field: OBU runs to the end
		return obuType, data[pos:], nil, true
	}
	size, n := leb128(data[pos:])
	if n == 0 {
		return 0, nil, nil, false
	}
	pos += n
	if uint64(len(data)-pos) < size {
		return 0, nil, nil, false
	}
	end := pos + int(size)
	return obuType, data[pos:end], data[end:], true
}

// leb128 decodes an unsigned LEB128 value, returning it and the number of
// bytes used (0 if data is truncated).
func leb128(data []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 8 && i < len(data); i++ {
		v |= uint64(data[i]&0x7f) << (7 * i)
		if data[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// bitReader reads big-endian bit fields; reading past the end yields zeros
// and sets overrun.
type bitReader struct {
	data    []byte
	pos     int
	overrun bool
}

func (b *bitReader) bits(n int) uint32 {
	var v uint32
	for i := 0; i < n; i++ {
		byteIdx := b.pos / 8
		if byteIdx >= len(b.data) {
			b.overrun = true
			return v << (n - i)
		}
		bit := b.data[byteIdx] >> (7 - b.pos%8) & 1
		v = v<<1 | uint32(bit)
		b.pos++
	}
	return v
}
