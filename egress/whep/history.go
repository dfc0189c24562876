package whep

import (
	"sync"

	"github.com/pion/rtp"
	"github.com/reel-gateway/reel/live"
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
	pkts   [historySize]sent
	out    rtp.Packet // the resent packet, reused under mu
	closed bool
}

// sent is a hub packet as the viewer got it: a simulcast viewer's
// sequence numbers and timestamps are rewritten (layers.go).
type sent struct {
	p   *live.Packet
	seq uint16
	ts  uint32
}

// put keeps p, just sent with sequence number seq and timestamp ts, in
// place of the one sent historySize sequence numbers earlier.
func (h *history) put(p *live.Packet, seq uint16, ts uint32) {
	p.Retain()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		p.Release()
		return
	}
	slot := &h.pkts[seq%historySize]
	old := slot.p
	*slot = sent{p: p, seq: seq, ts: ts}
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
	s := h.pkts[seq%historySize]
	if s.p == nil || s.seq != seq {
		return false
	}
	forwardHeader(&h.out, s.p)
	h.out.SequenceNumber, h.out.Timestamp = s.seq, s.ts
	err := write(&h.out)
	h.out.Payload = nil
	return err == nil
}

// close lets go of every packet; later puts are released at once.
func (h *history) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for i, s := range h.pkts {
		if s.p != nil {
			s.p.Release()
			h.pkts[i] = sent{}
		}
	}
}

// forwardHeader makes out the packet a viewer is sent for p: the
// publisher's header without its extensions, whose ids were negotiated with
// the publisher and mean nothing to the viewer, and p's payload.
func forwardHeader(out *rtp.Packet, p *live.Packet) {
	out.Header = p.RTP.Header
	out.Header.Extension = false
	out.Header.Extensions = nil
	out.Payload = p.RTP.Payload
}
