package live

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// MaxPacketSize bounds one RTP packet. WebRTC stacks keep packets under the
// path MTU (pion uses 1460 for receive, browsers ~1200), so 1500 is enough
// and lets every Packet carry a fixed array instead of a heap slice.
const MaxPacketSize = 1500

// Packet is one received RTP packet, shared read-only by every consumer of a
// stream. It is reference counted and recycled through a pool: the forwarding
// path runs for every packet of every viewer, so allocating here would turn
// into garbage-collector pressure proportional to viewers × packet rate.
type Packet struct {
	// Track is the stream track the packet belongs to.
	Track *Track
	// RTP is the parsed packet. Its Payload aliases the packet's buffer.
	RTP rtp.Packet
	// Arrival is when the gateway read the packet from the network.
	Arrival time.Time

	buf  [MaxPacketSize]byte
	n    int
	key  bool // a video packet that starts a keyframe
	refs atomic.Int32
}

var packetPool = sync.Pool{New: func() any { return new(Packet) }}

// newPacket copies raw into a pooled packet and parses it. The caller owns
// the single reference it returns.
func newPacket(t *Track, raw []byte, arrival time.Time) (*Packet, error) {
	if len(raw) > MaxPacketSize {
		return nil, errPacketTooLarge
	}
	p := packetPool.Get().(*Packet)
	p.n = copy(p.buf[:], raw)
	if err := p.RTP.Unmarshal(p.buf[:p.n]); err != nil {
		p.put()
		return nil, err
	}
	p.Track = t
	p.Arrival = arrival
	p.refs.Store(1)
	return p, nil
}

// inLayers reports whether a consumer selecting the layers of mask
// (Subscription.SetLayers) takes p: a packet of a track without layers,
// always.
func (p *Packet) inLayers(mask uint32) bool {
	b := p.Track.bit
	return b == 0 || mask&b != 0
}

// Raw returns the packet as received. Consumers must not modify it.
func (p *Packet) Raw() []byte { return p.buf[:p.n] }

// Retain adds a reference, for a consumer that keeps the packet after its
// WritePacket call returns (a jitter buffer, say). Pair it with Release.
func (p *Packet) Retain() { p.refs.Add(1) }

// Release drops a reference; the last one returns the packet to the pool.
func (p *Packet) Release() {
	switch n := p.refs.Add(-1); {
	case n == 0:
		p.put()
	case n < 0:
		panic("ingest: Packet released more often than retained")
	}
}

func (p *Packet) put() {
	p.Track = nil
	p.n = 0
	p.key = false
	packetPool.Put(p)
}
