package rtc

import (
	"net"
	"sync/atomic"

	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
)

// udpWriters is how many descriptors the shared WebRTC socket sends from.
const udpWriters = 8

// spreadConn is the shared WebRTC socket with its writes spread over
// duplicates of its file descriptor, where they cannot be gathered
// (sendbatch.go: not Linux, or an IPv6 socket). Go holds a lock per
// descriptor across each sendto, so with every viewer's packets leaving
// through one socket only one goroutine at a time could send and the
// others queued behind it; the kernel sends on one UDP socket from
// several threads at once.
type spreadConn struct {
	transport.UDPConn // reads, and everything but WriteTo
	writers           []*net.UDPConn
	next              atomic.Uint32
}

// spreadWrites returns c writing through udpWriters duplicates of its
// descriptor, or c itself if it cannot be duplicated.
func spreadWrites(c transport.UDPConn) transport.UDPConn {
	u, ok := udpOf(c)
	if !ok {
		return c
	}
	var writers []*net.UDPConn
	for range udpWriters {
		w, err := dupUDP(u)
		if err != nil {
			break
		}
		writers = append(writers, w)
	}
	if len(writers) == 0 {
		return c
	}
	return &spreadConn{UDPConn: c, writers: writers}
}

// udpOf is the UDP socket under c: c itself, or the one a timedConn
// reads (readlag_linux.go).
func udpOf(c transport.UDPConn) (*net.UDPConn, bool) {
	if r, timed := c.(interface{ rawUDP() *net.UDPConn }); timed {
		return r.rawUDP(), true
	}
	u, ok := c.(*net.UDPConn)
	return u, ok
}

func dupUDP(u *net.UDPConn) (*net.UDPConn, error) {
	f, err := u.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	w, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, net.UnknownNetworkError("not UDP")
	}
	return w, nil
}

// WriteTo sends from the next descriptor in turn.
func (s *spreadConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	return s.writers[s.next.Add(1)%uint32(len(s.writers))].WriteTo(b, addr)
}

// Close closes the duplicates and the socket.
func (s *spreadConn) Close() error {
	for _, w := range s.writers {
		_ = w.Close()
	}
	return s.UDPConn.Close()
}

// spreadNet is the standard network whose UDP sockets spread their writes;
// pion's per-interface UDP mux opens its sockets through it.
// The sockets it opens are recorded in socks.
type spreadNet struct {
	*stdnet.Net
	socks *socketSet
}

func (n spreadNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return n.socks.open(c), nil
}
