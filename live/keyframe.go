package live

// IsKeyframeStart reports whether an RTP payload of codec c begins a
// keyframe. Outputs use it to start a new viewer on a frame it can decode
// instead of showing garbage until the next one.
func IsKeyframeStart(c Codec, payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	switch c {
	case H264:
		return h264KeyframeStart(payload)
	case H265:
		return h265KeyframeStart(payload)
	case VP8:
		return vp8KeyframeStart(payload)
	case VP9:
		// Payload descriptor (RFC 9628): I|P|L|F|B|E|V|Z. A frame that
		// starts (B) and does not reference others (P=0) is a keyframe.
		return payload[0]&0x40 == 0 && payload[0]&0x08 != 0
	case AV1:
		// Aggregation header Z|Y|W|W|N: N marks the first packet of a
		// coded video sequence, which starts with a keyframe.
		return payload[0]&0x08 != 0
	}
	return true
}

// h264KeyframeStart finds an SPS or IDR NAL at the start of the payload,
// inside a STAP-A, or as the first fragment of an FU-A.
func h264KeyframeStart(p []byte) bool {
	switch t := p[0] & 0x1f; {
	case t == 5 || t == naluSPS:
		return true
	case t == naluSTAPA:
		for b := p[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || 2+n > len(b) {
				return false
			}
			if nt := b[2] & 0x1f; nt == 5 || nt == naluSPS {
				return true
			}
			b = b[2+n:]
		}
	case t == 28: // FU-A
		return len(p) > 1 && p[1]&0x80 != 0 && p[1]&0x1f == 5
	}
	return false
}

// h265KeyframeStart finds a VPS or an IRAP picture (IDR, CRA, BLA) at the
// start of the payload, inside an aggregation packet, or as the first
// fragment of a fragmentation unit (RFC 7798).
func h265KeyframeStart(p []byte) bool {
	if len(p) < 3 {
		return false
	}
	switch t := h265Type(p[0]); {
	case h265Starts(t):
		return true
	case t == h265AP:
		for b := p[2:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n < 2 || 2+n > len(b) {
				return false
			}
			if h265Starts(h265Type(b[2])) {
				return true
			}
			b = b[2+n:]
		}
	case t == h265FU:
		return p[2]&0x80 != 0 && h265Starts(p[2]&0x3f)
	}
	return false
}

// H.265 NAL unit types (RFC 7798, ITU-T H.265 table 7-1).
const (
	h265IRAPFirst = 16 // BLA_W_LP
	h265IRAPLast  = 21 // CRA_NUT
	h265VPS       = 32
	h265SPS       = 33
	h265PPS       = 34
	h265AP        = 48
	h265FU        = 49
)

// h265Type is the type in the first byte of an H.265 NAL unit header.
func h265Type(b byte) byte { return (b >> 1) & 0x3f }

// h265Starts reports whether a NAL unit of type t begins a keyframe: the
// VPS sent in front of it, or the IRAP picture itself.
func h265Starts(t byte) bool { return t == h265VPS || (t >= h265IRAPFirst && t <= h265IRAPLast) }

// vp8KeyframeStart checks, after the VP8 payload descriptor (RFC 7741,
// vp8DescriptorLen), the frame tag's P bit at the start of partition 0.
func vp8KeyframeStart(p []byte) bool {
	s, pid := p[0]&0x10 != 0, p[0]&0x07
	i := vp8DescriptorLen(p)
	if i < 0 || !s || pid != 0 || len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}
