package rtc

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/transport/v2"
	"golang.org/x/net/ipv4"
)

// Every WHEP viewer's packets leave through the engine's shared socket. A
// send system call per packet per viewer was half of the gateway's CPU at
// 500 viewers (docs/BENCHMARKS.md, issue 17), so on Linux the socket
// gathers its writes: pion's write (one viewer's goroutine, deep in its
// ICE path) copies the packet into the batch being filled and returns,
// and one goroutine per socket sends what has gathered, up to 1024
// messages per sendmmsg. Where the kernel segments UDP itself (GSO,
// UDP_SEGMENT), a run of equal-size packets to one address, such as a
// video frame's packets to one viewer, is one message: the kernel's path
// below the socket is taken once for the run instead of once per packet.
//
// There is no timer: while one batch is sent the next fills, so a lone
// packet leaves at once and a busy socket sends hundreds per call. A
// writer waits only when the batch being filled is full, which is where
// a send to a full socket would have waited anyway.

const (
	// batchPackets and batchBytes bound the batch being filled.
	batchPackets = 2048
	batchBytes   = 2 << 20
	// gsoSegments and gsoBytes bound one segmented message (the kernel
	// allows 64 segments since 4.18 and a datagram of 64 KiB).
	gsoSegments = 64
	gsoBytes    = 60000
	// sendErrorLogEvery is how often at most a failed send is logged.
	sendErrorLogEvery = time.Minute
)

// batchConn is the shared WebRTC socket with its writes gathered.
type batchConn struct {
	transport.UDPConn // reads, and everything but WriteTo and Close
	udp               *net.UDPConn
	out               *ipv4.PacketConn
	rc                syscall.RawConn
	raw               rawBatch // the sender's, for the system call
	log               *slog.Logger

	// gso is whether runs to one address go as one segmented message;
	// it is turned off for good if the kernel or the device refuses one.
	gso atomic.Bool

	mu     sync.Mutex
	room   *sync.Cond // a writer waits on it for the batch to be taken
	fill   *sendBatch
	closed bool

	wake chan struct{} // the batch being filled got its first packet
	stop chan struct{}
	done chan struct{}

	sent, messages, failed atomic.Uint64
	lastLog                atomic.Int64 // unix nanoseconds
}

// queued is one packet in a batch.
type queued struct {
	off, n int32
	addr   net.Addr
	key    netip.AddrPort
	next   int32 // the next packet to the same address, or -1
}

// sendBatch is the packets gathered between two sends, back to back in
// data, and the sender's scratch space, reused from batch to batch.
type sendBatch struct {
	data []byte
	pkts []queued
	// the sender's: per address, its first and last packet; the order
	// addresses came in; messages and their buffers and control data
	tails map[netip.AddrPort]int32
	heads []int32
	msgs  []ipv4.Message
	bufs  [][]byte
	oob   []byte
}

func newSendBatch() *sendBatch {
	return &sendBatch{
		data:  make([]byte, 0, batchBytes),
		pkts:  make([]queued, 0, batchPackets),
		tails: make(map[netip.AddrPort]int32),
	}
}

// add appends a copy of p, for addr (whose key is key), to b.
func (b *sendBatch) add(p []byte, addr net.Addr, key netip.AddrPort) {
	b.pkts = append(b.pkts, queued{off: int32(len(b.data)), n: int32(len(p)), addr: addr, key: key, next: -1})
	b.data = append(b.data, p...)
}

// fits reports whether a packet of n bytes fits in b.
func (b *sendBatch) fits(n int) bool {
	return len(b.pkts) < cap(b.pkts) && len(b.data)+n <= cap(b.data)
}

func (b *sendBatch) reset() {
	b.data, b.pkts = b.data[:0], b.pkts[:0]
	clear(b.tails)
	b.heads = b.heads[:0]
	clear(b.msgs) // drop the addresses and buffers they refer to
	b.msgs = b.msgs[:0]
	clear(b.bufs)
	b.bufs = b.bufs[:0]
	b.oob = b.oob[:0]
}

// gatherWritesOn returns c (whose descriptor is u, an IPv4 socket)
// sending as described above. gso says whether the kernel segments.
func gatherWritesOn(c transport.UDPConn, u *net.UDPConn, gso bool, log *slog.Logger) *batchConn {
	b := &batchConn{
		UDPConn: c,
		udp:     u,
		out:     ipv4.NewPacketConn(u),
		log:     log,
		fill:    newSendBatch(),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	b.room = sync.NewCond(&b.mu)
	b.rc, _ = u.SyscallConn() // never fails on an open socket
	b.gso.Store(gso)
	go b.sender()
	return b
}

// WriteTo queues a copy of p for addr and returns; it waits only while
// the batch being filled is full. A packet too big for a batch, or for
// an address that is not UDP, is sent at once.
func (b *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || len(p) > batchBytes/4 {
		return b.udp.WriteTo(p, addr)
	}
	return b.queue(p, addr, ua.AddrPort())
}

// queue is WriteTo for an address whose key (ua.AddrPort()) the caller
// has already made: an RTPWriter makes it once per route, not per packet.
func (b *batchConn) queue(p []byte, addr net.Addr, key netip.AddrPort) (int, error) {
	b.mu.Lock()
	for !b.closed && !b.fill.fits(len(p)) {
		b.room.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return 0, net.ErrClosed
	}
	b.fill.add(p, addr, key)
	first := len(b.fill.pkts) == 1
	b.mu.Unlock()
	if first {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Close sends what is queued, then closes the socket.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.room.Broadcast()
	b.mu.Unlock()
	<-b.done
	return b.UDPConn.Close()
}

// sender takes the filled batch, puts an empty one in its place, and
// sends it, until the socket is closed.
func (b *batchConn) sender() {
	defer close(b.done)
	idle := newSendBatch()
	for {
		stopping := false
		select {
		case <-b.wake:
		case <-b.stop:
			stopping = true
		}
		b.mu.Lock()
		full := b.fill
		if len(full.pkts) > 0 {
			b.fill = idle
			b.room.Broadcast()
		}
		b.mu.Unlock()
		if len(full.pkts) > 0 {
			b.send(full)
			full.reset()
			idle = full
		}
		if stopping {
			return
		}
	}
}

// send sends a batch: with GSO, each address's packets in order, a run
// of equal sizes (and a shorter last one) as one message; without, one
// message per packet in the order written.
func (b *batchConn) send(f *sendBatch) {
	gso := b.gso.Load()
	if gso {
		for i := range f.pkts {
			p := &f.pkts[i]
			if t, ok := f.tails[p.key]; ok {
				f.pkts[t].next = int32(i)
			} else {
				f.heads = append(f.heads, int32(i))
			}
			f.tails[p.key] = int32(i)
		}
		for _, h := range f.heads {
			for i := h; i >= 0; {
				i = f.addRun(i)
			}
		}
	} else {
		for i := range f.pkts {
			f.addMessage(i, 1, 0)
		}
	}
	b.writeAll(f.msgs)
}

// addRun adds the message of the run starting at packet i and returns
// the packet after it (-1 at the end of its address's packets).
func (f *sendBatch) addRun(i int32) int32 {
	size := f.pkts[i].n
	n, total, j := 1, int(size), f.pkts[i].next
	for j >= 0 && n < gsoSegments && total+int(f.pkts[j].n) <= gsoBytes && f.pkts[j].n <= size {
		n++
		total += int(f.pkts[j].n)
		last := f.pkts[j].n < size
		j = f.pkts[j].next
		if last {
			break
		}
	}
	f.addMessage(int(i), n, int(size))
	return j
}

// addMessage adds a message of n packets from packet i on, following
// their chain; seg is the segment size for more than one.
func (f *sendBatch) addMessage(i, n, seg int) {
	start := len(f.bufs)
	p := &f.pkts[i]
	for k := 0; k < n; k++ {
		f.bufs = append(f.bufs, f.data[p.off:p.off+p.n])
		if k+1 < n {
			p = &f.pkts[p.next]
		}
	}
	m := ipv4.Message{Buffers: f.bufs[start:len(f.bufs):len(f.bufs)], Addr: f.pkts[i].addr}
	if n > 1 {
		o := len(f.oob)
		f.oob = appendSegmentSize(f.oob, seg)
		m.OOB = f.oob[o:len(f.oob):len(f.oob)]
	}
	f.msgs = append(f.msgs, m)
}

// writeAll sends msgs, as many per system call as the kernel takes. A
// message the kernel refuses is counted and skipped; a segmented one is
// sent again packet by packet, and if the refusal says the kernel or the
// device cannot segment, no more are made.
func (b *batchConn) writeAll(msgs []ipv4.Message) {
	// The bufs slice may have been reallocated while the messages were
	// made: their Buffers still point at the packets in data, which did
	// not move, so they stay valid.
	for len(msgs) > 0 {
		n, err := b.writeBatch(msgs)
		if n > 0 {
			b.messages.Add(uint64(n))
			for _, m := range msgs[:n] {
				b.sent.Add(uint64(len(m.Buffers)))
			}
			msgs = msgs[n:]
		}
		if err == nil {
			continue
		}
		if len(msgs) == 0 {
			return
		}
		m := msgs[0]
		msgs = msgs[1:]
		if errors.Is(err, net.ErrClosed) {
			b.failed.Add(uint64(len(m.Buffers) + countPackets(msgs)))
			return
		}
		if len(m.Buffers) > 1 {
			if segmentUnsupported(err) && b.gso.Swap(false) {
				b.log.Warn("the kernel or the network device does not segment UDP (GSO); sending WebRTC packets one message each", "err", err)
			}
			for _, p := range m.Buffers {
				if _, err := b.out.WriteTo(p, nil, m.Addr); err != nil {
					b.fail(1, m.Addr, err)
				} else {
					b.sent.Add(1)
					b.messages.Add(1)
				}
			}
			continue
		}
		b.fail(1, m.Addr, err)
	}
}

func countPackets(msgs []ipv4.Message) (n int) {
	for _, m := range msgs {
		n += len(m.Buffers)
	}
	return n
}

// fail counts n packets to addr the kernel refused, and logs it at most
// once a minute: a viewer whose address the kernel will not send to is
// one viewer's problem, and the others' packets go on.
func (b *batchConn) fail(n int, addr net.Addr, err error) {
	total := b.failed.Add(uint64(n))
	now := time.Now().UnixNano()
	if last := b.lastLog.Load(); now-last >= int64(sendErrorLogEvery) && b.lastLog.CompareAndSwap(last, now) {
		b.log.Warn("the kernel refused to send WebRTC packets", "to", addr, "err", err, "failed_total", total)
	}
}
