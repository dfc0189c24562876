package rtc

import (
	"bufio"
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pion/transport/v2"
)

// A gateway that reads its WebRTC socket too slowly loses publishers'
// media in the kernel: the socket's receive buffer fills and the kernel
// drops what comes next, counting it per socket. That is the one place
// input can be lost without Reel seeing a packet of it, so the engine
// reports it (InputStats) for admission to act on.

// SocketStats is the kernel's view of the engine's UDP sockets, summed.
type SocketStats struct {
	// Queued is the bytes waiting to be read (the kernel's accounting,
	// which counts each packet's buffer, not its payload alone).
	Queued int
	// Capacity is the receive buffers' size in the same accounting
	// (SO_RCVBUF): past it, packets are dropped.
	Capacity int
	// Drops counts packets the kernel dropped on the sockets since they
	// were opened.
	Drops uint64
	// ReadLag is the longest a packet waited in the sockets, from its
	// arrival to its read, since the previous InputStats; ReadLagKnown is
	// false where the kernel does not stamp arrivals (readlag.go).
	ReadLag      time.Duration
	ReadLagKnown bool
}

// socketSet is the engine's UDP sockets.
type socketSet struct {
	log     *slog.Logger // for the sending side's refusals
	mu      sync.Mutex
	conns   []syscall.Conn
	senders []*batchConn
	lag     readLag
}

// open records c and returns it as the mux uses it: reads timestamped,
// writes gathered into batches (sendbatch.go).
func (s *socketSet) open(c transport.UDPConn) transport.UDPConn {
	s.add(c)
	log := s.log
	if log == nil {
		log = slog.Default()
	}
	out := gatherWrites(timeReads(c, &s.lag), log)
	if b, ok := out.(*batchConn); ok {
		s.mu.Lock()
		s.senders = append(s.senders, b)
		s.mu.Unlock()
	}
	return out
}

// SendStats is what the engine's sockets sent, summed (sendbatch.go).
type SendStats struct {
	// Packets is the datagrams the kernel took, Messages the messages
	// that carried them (fewer where the kernel segments), and Failed
	// the datagrams it refused.
	Packets, Messages, Failed uint64
	// Batched is whether the sockets gather their writes.
	Batched bool
}

// sendStats sums the gathering senders' counts.
func (s *socketSet) sendStats() SendStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st SendStats
	for _, b := range s.senders {
		st.Batched = true
		st.Packets += b.sent.Load()
		st.Messages += b.messages.Load()
		st.Failed += b.failed.Load()
	}
	return st
}

// add records c; a socket that cannot be inspected is left out.
func (s *socketSet) add(c net.Conn) {
	if sc, ok := c.(syscall.Conn); ok {
		s.mu.Lock()
		s.conns = append(s.conns, sc)
		s.mu.Unlock()
	}
}

// read is each socket's inode and receive buffer (SO_RCVBUF).
func (s *socketSet) read() map[uint64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]int, len(s.conns))
	for _, c := range s.conns {
		if inode, rcvbuf, err := socketInfo(c); err == nil {
			out[inode] = rcvbuf
		}
	}
	return out
}

// receiveBuffer is the smallest receive buffer of the set (0 if none is
// known).
func (s *socketSet) receiveBuffer() int {
	least := 0
	for _, b := range s.read() {
		if least == 0 || b < least {
			least = b
		}
	}
	return least
}

// errNoSocketStats: this system does not say (no /proc/net/udp, or none of
// the engine's sockets is in it).
var errNoSocketStats = errors.New("the kernel's UDP socket statistics are not available")

// stats reads the sockets' lines of /proc/self/net/udp and udp6.
func (s *socketSet) stats() (SocketStats, error) {
	want := s.read()
	if len(want) == 0 {
		return SocketStats{}, errNoSocketStats
	}
	var st SocketStats
	found := 0
	for _, f := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		found += addUDPLines(&st, b, want)
	}
	if found == 0 {
		return SocketStats{}, errNoSocketStats
	}
	st.ReadLag, st.ReadLagKnown = s.lag.take()
	return st, nil
}

// addUDPLines adds to st the lines of a /proc/net/udp table whose inode is
// in want (their SO_RCVBUF as the capacity), and says how many there were.
// A line is "sl local rem st tx_queue:rx_queue tr:when retrnsmt uid
// timeout inode ref pointer drops", the queues in hex.
func addUDPLines(st *SocketStats, table []byte, want map[uint64]int) int {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // the header
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 13 {
			continue
		}
		inode, err := strconv.ParseUint(string(f[9]), 10, 64)
		if err != nil {
			continue
		}
		rcvbuf, ok := want[inode]
		if !ok {
			continue
		}
		_, rx, ok := bytes.Cut(f[4], []byte(":"))
		if !ok {
			continue
		}
		q, err1 := strconv.ParseUint(string(rx), 16, 64)
		drops, err2 := strconv.ParseUint(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		st.Queued += int(q)
		st.Capacity += rcvbuf
		st.Drops += drops
		found++
	}
	return found
}
