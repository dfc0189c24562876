package live

import (
	"bytes"
	"sync"
)

// H.264 NAL unit types that matter for parameter sets.
const (
	naluSPS   = 7
	naluPPS   = 8
	naluSTAPA = 24
)

// h264Params keeps the latest SPS and PPS of an H.264 track. RTSP needs them
// for the SDP and Matroska for CodecPrivate; OBS sends them in separate
// packets just before each IDR, browsers in a STAP-A.
type h264Params struct {
	mu       sync.Mutex
	sps, pps []byte
}

func (h *h264Params) get() (sps, pps []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sps, h.pps
}

// observe looks at one RTP payload and reports whether it brought a new
// SPS. It allocates only when a parameter set changes, which is once per
// stream in practice.
func (h *h264Params) observe(payload []byte) (spsChanged bool) {
	if len(payload) == 0 {
		return false
	}
	switch payload[0] & 0x1f {
	case naluSPS, naluPPS:
		return h.set(payload)
	case naluSTAPA:
		for b := payload[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || 2+n > len(b) {
				return spsChanged
			}
			spsChanged = h.set(b[2:2+n]) || spsChanged
			b = b[2+n:]
		}
	}
	return spsChanged
}

// set stores a parameter set and reports whether it was a new SPS.
func (h *h264Params) set(nalu []byte) (spsChanged bool) {
	if len(nalu) == 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch nalu[0] & 0x1f {
	case naluSPS:
		if !bytes.Equal(h.sps, nalu) {
			h.sps = bytes.Clone(nalu)
			return true
		}
	case naluPPS:
		if !bytes.Equal(h.pps, nalu) {
			h.pps = bytes.Clone(nalu)
		}
	}
	return false
}
