package live

import (
	"bytes"
	"sync"
)

// h265Params keeps the latest VPS, SPS and PPS of an H.265 track, for the
// RTSP SDP (sprop-vps/sps/pps), the Matroska CodecPrivate (hvcC) and the
// HLS init segment. Encoders send them in front of every IRAP picture,
// alone or in an aggregation packet.
type h265Params struct {
	mu            sync.Mutex
	vps, sps, pps []byte
}

func (h *h265Params) get() (vps, sps, pps []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vps, h.sps, h.pps
}

// observe looks at one RTP payload and reports whether it brought a new
// SPS. It allocates only when a parameter set changes.
func (h *h265Params) observe(payload []byte) (spsChanged bool) {
	if len(payload) < 3 {
		return false
	}
	switch h265Type(payload[0]) {
	case h265VPS, h265SPS, h265PPS:
		return h.set(payload)
	case h265AP:
		for b := payload[2:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n < 2 || 2+n > len(b) {
				return spsChanged
			}
			spsChanged = h.set(b[2:2+n]) || spsChanged
			b = b[2+n:]
		}
	}
	return spsChanged
}

// set stores a parameter set and reports whether it was a new SPS.
func (h *h265Params) set(nalu []byte) (spsChanged bool) {
	if len(nalu) < 2 {
		return false
	}
	var dst *[]byte
	switch h265Type(nalu[0]) {
	case h265VPS:
		dst = &h.vps
	case h265SPS:
		dst = &h.sps
	case h265PPS:
		dst = &h.pps
	default:
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !bytes.Equal(*dst, nalu) {
		*dst = bytes.Clone(nalu)
		return dst == &h.sps
	}
	return false
}
