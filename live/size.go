package live

import (
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
)

// The picture size of a video track is read where it is cheap: from a new
// H.264 or H.265 SPS (parsed only when it changes), and from the first
// packet of a VP8 or VP9 keyframe, whose header carries it. Simulcast
// ranks its layers by it; the API shows it. AV1 keeps 0×0 (its size sits
// in a sequence header inside OBU aggregation; layers then rank by
// bitrate).

// observeSize looks at one packet of a video track for its picture size.
// keyframe is whether the packet starts a keyframe.
func (t *Track) observeSize(payload []byte, spsChanged, keyframe bool) {
	switch t.Codec {
	case H264:
		if spsChanged {
			sps, _ := t.params.get()
			var s h264.SPS
			if s.Unmarshal(sps) == nil {
				t.setSize(s.Width(), s.Height())
			}
		}
	case H265:
		if spsChanged {
			_, sps, _ := t.h265.get()
			var s h265.SPS
			if s.Unmarshal(sps) == nil {
				t.setSize(s.Width(), s.Height())
			}
		}
	case VP8:
		if keyframe {
			t.setSize(vp8Size(payload))
		}
	case VP9:
		if keyframe {
			if i := vp9DescriptorLen(payload); i > 0 && i < len(payload) {
				var h vp9.Header
				if h.Unmarshal(payload[i:]) == nil {
					t.setSize(h.Width(), h.Height())
				}
			}
		}
	}
}

// vp8Size reads the size from the first packet of a VP8 keyframe: after
// the payload descriptor (RFC 7741) come the 3-byte frame tag, the start
// code 9d 01 2a and two 14-bit little-endian dimensions (RFC 6386 §9.1).
func vp8Size(p []byte) (w, h int) {
	i := vp8DescriptorLen(p)
	if i < 0 || len(p) < i+10 || p[i+3] != 0x9d || p[i+4] != 0x01 || p[i+5] != 0x2a {
		return 0, 0
	}
	w = int(p[i+6]) | int(p[i+7]&0x3f)<<8
	h = int(p[i+8]) | int(p[i+9]&0x3f)<<8
	return w, h
}

// vp8DescriptorLen is the length of a VP8 payload descriptor, -1 if the
// packet is too short for it.
func vp8DescriptorLen(p []byte) int {
	if len(p) == 0 {
		return -1
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return -1
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return -1
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K
			i++
		}
	}
	if i > len(p) {
		return -1
	}
	return i
}

// vp9DescriptorLen is the length of a VP9 payload descriptor (RFC 9628
// §4.2), -1 if the packet is too short or the descriptor malformed.
func vp9DescriptorLen(p []byte) int {
	if len(p) == 0 {
		return -1
	}
	b := p[0]
	i := 1
	if b&0x80 != 0 { // I: picture id
		if len(p) <= i {
			return -1
		}
		if p[i]&0x80 != 0 {
			i++
		}
		i++
	}
	if b&0x20 != 0 { // L: layer indices
		i++
		if b&0x10 == 0 { // flexible mode off: TL0PICIDX
			i++
		}
	}
	if b&0x10 != 0 && b&0x40 != 0 { // F and P: reference indices
		for {
			if len(p) <= i {
				return -1
			}
			more := p[i]&0x01 != 0
			i++
			if !more {
				break
			}
		}
	}
	if b&0x02 != 0 { // V: scalability structure
		if len(p) <= i {
			return -1
		}
		ss := p[i]
		i++
		n := int(ss>>5) + 1
		if ss&0x10 != 0 { // Y: resolutions
			i += 4 * n
		}
		if ss&0x08 != 0 { // G: picture group
			if len(p) <= i {
				return -1
			}
			ng := int(p[i])
			i++
			for range ng {
				if len(p) <= i {
					return -1
				}
				r := int(p[i]>>2) & 0x03
				i += 1 + r
			}
		}
	}
	if i > len(p) {
		return -1
	}
	return i
}
