package whep

import (
	"sync"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

// historySize is how many packets of a viewer's video are kept to answer
// NACKs: about 2 s of a 2.5 Mbit/s stream, well over a round trip.
// A power of two, so a sequence number picks its slot.
const historySize = 512

// history answers a viewer's NACKs with the packets it was sent. It holds
// references to the hub's packets rather than copies: every viewer of a
// stream shares the same few hundred buffers, where pion's NACK responder
// would copy each packet for each viewer.
type history struct {
	mu     sync.Mutex
	pkts   [historySize]*ingest.Packet
	out    rtp.Packet // the resent packet, reused under mu
	closed bool
}

// put keeps p (a packet just sent) in place of the one sent historySize
// sequence numbers earlier.
func (h *history) put(p *ingest.Packet) {
	p.Retain()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		p.Release()
		return
	}
	slot := &h.pkts[p.RTP.SequenceNumber%historySize]
	old := *slot
	*slot = p
	h.mu.Unlock()
	if old != nil {
		old.Release()
	}
}

// resend writes the packet with sequence number seq again, as it was sent,
// if it is still held.
func (h *history) resend(seq uint16, write func(*rtp.Packet) error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.pkts[seq%historySize]
	if p == nil || p.RTP.SequenceNumber != seq {
		return false
	}
	forwardHeader(&h.out, p)
	err := write(&h.out)
	h.out.Payload = nil
	return err == nil
}

// close lets go of every packet; later puts are released at once.
func (h *history) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for i, p := range h.pkts {
		if p != nil {
			p.Release()
			h.pkts[i] = nil
		}
	}
}

// forwardHeader makes out the packet a viewer is sent for p: the
// publisher's header without its extensions, whose ids were negotiated with
// the publisher and mean nothing to the viewer, and p's payload.
func forwardHeader(out *rtp.Packet, p *ingest.Packet) {
	out.Header = p.RTP.Header
	out.Header.Extension = false
	out.Header.Extensions = nil
	out.Payload = p.RTP.Payload
}
