package rtsp

import (
	"net"
	"sync"
	"time"
)

// gortsplib writes each packet to a TCP reader as its own write, after
// setting the connection's write deadline: two system calls per packet
// per reader, and over TCP each write is a segment through the stack.
// The packets of one video frame reach a reader together, so its
// connection gathers what is written within writeBatchDelay and sends it
// in one write, with one deadline. A reader waits at most that much more
// for a packet; nothing is reordered, and each of gortsplib's writes
// (a packet, an RTSP response, a TLS record) stays whole.
const (
	// writeBatchDelay is how long a batch gathers before it is sent.
	writeBatchDelay = time.Millisecond
	// A batch smaller than smallBatch, in practice a lone Opus packet
	// (50 a second, 100-400 bytes, against 30 video frames), gathers for
	// smallBatchDelay instead, so that it goes out with the next frame's
	// packets rather than in a write of its own: three of every five
	// writes were such packets, each costing a pass through the TCP
	// stack. It is moved back to writeBatchDelay as soon as the batch
	// grows past smallBatch or an RTSP response joins it. Players buffer
	// RTSP far longer than this, and the packets' timestamps keep the
	// tracks in sync.
	smallBatch      = 600
	smallBatchDelay = 10 * time.Millisecond
	// writeBatchMax is the size at which a batch is sent at once: a
	// frame of a 2.5 Mbit/s stream fits, a keyframe's packets go out in a
	// few writes rather than one huge one.
	writeBatchMax = 16 << 10
	// deadlineSlack is how much earlier than asked a write deadline may
	// be: gortsplib asks for now+WriteTimeout before every packet, and
	// moving the connection's deadline costs a lock and a timer, so it is
	// moved once it is this much behind.
	deadlineSlack = time.Second
)

// batchPool holds the batches' buffers between flushes, so idle readers
// hold none and a flush allocates nothing.
var batchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBatchMax)
	return &b
}}

// batchListener accepts connections that batch their writes.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newBatchConn(c), nil
}

// batchConn is a reader's connection that gathers its writes for up to
// writeBatchDelay. Reads and everything else go to the connection.
type batchConn struct {
	net.Conn
	timer      *time.Timer
	delay      time.Duration // writeBatchDelay
	smallDelay time.Duration // smallBatchDelay

	mu       sync.Mutex
	buf      *[]byte   // pending bytes; nil when none
	deadline time.Time // the latest write deadline asked for
	applied  time.Time // the connection's write deadline
	armed    bool      // the timer will flush
	long     bool      // ... after smallDelay, armed for a small batch
	err      error     // a failed flush's: every later write fails
	closed   bool
}

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, delay: writeBatchDelay, smallDelay: smallBatchDelay}
	b.timer = time.AfterFunc(time.Hour, b.flushLater)
	b.timer.Stop()
	return b
}

// Write queues p to be sent within writeBatchDelay (smallBatchDelay while
// what is queued is smaller than smallBatch). An error of an
// earlier flush is returned here: the bytes before p were lost, so the
// connection is unusable.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.buf != nil && len(*b.buf)+len(p) > writeBatchMax {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= writeBatchMax { // too big to gather: sent as it is
		return b.sendLocked(p)
	}
	if b.buf == nil {
		b.buf = batchPool.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	// Only interleaved media waits longer: an RTSP response (or a TLS
	// record, which hides what it carries) goes out as soon as any batch.
	small := len(p) > 0 && p[0] == '$' && len(*b.buf) < smallBatch
	switch {
	case !b.armed:
		b.armed, b.long = true, small
		if small {
			b.timer.Reset(b.smallDelay)
		} else {
			b.timer.Reset(b.delay)
		}
	case b.long && !small:
		// No longer a lone small packet: sent as any batch is. Should
		// the timer be firing now, the flush it waits for takes these
		// bytes and the one rearmed here finds a batch of its own or
		// none.
		b.long = false
		b.timer.Reset(b.delay)
	}
	return len(p), nil
}

// SetWriteDeadline applies to the next flush: gortsplib sets one before
// every packet, and the connection needs it once per write it makes.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	return nil
}

func (b *batchConn) SetDeadline(t time.Time) error {
	_ = b.SetWriteDeadline(t)
	return b.Conn.SetReadDeadline(t)
}

// closeFlushWait bounds how long Close waits to send what is pending to
// a reader that does not read.
const closeFlushWait = time.Second

// Close sends what is pending (an RTSP response before a close must
// arrive), within closeFlushWait, then closes the connection. If a flush
// is under way, perhaps blocked on a reader that reads nothing until the
// write deadline, it closes the connection at once, which ends the flush:
// closing a connection must not wait for its peer.
func (b *batchConn) Close() error {
	if !b.mu.TryLock() {
		err := b.Conn.Close()
		b.mu.Lock()
		b.closeLocked()
		b.mu.Unlock()
		return err
	}
	if !b.closed && b.err == nil && b.buf != nil {
		if d := time.Now().Add(closeFlushWait); b.deadline.IsZero() || d.Before(b.deadline) {
			b.deadline = d
		}
		_ = b.flushLocked()
	}
	b.closeLocked()
	b.mu.Unlock()
	return b.Conn.Close()
}

func (b *batchConn) closeLocked() {
	b.closed = true
	b.timer.Stop()
	b.release()
}

// flushLater is the timer's: it sends what gathered since it was armed.
func (b *batchConn) flushLater() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed, b.long = false, false
	if !b.closed && b.err == nil {
		_ = b.flushLocked()
	}
}

// flushLocked sends the pending bytes in one write.
func (b *batchConn) flushLocked() error {
	if b.buf == nil {
		return nil
	}
	defer b.release()
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.sendLocked(*b.buf)
	return err
}

// sendLocked writes p to the connection under the deadline asked for;
// an error breaks the connection (fail).
func (b *batchConn) sendLocked(p []byte) (int, error) {
	if err := b.applyDeadline(); err != nil {
		b.fail(err)
		return 0, err
	}
	n, err := b.Conn.Write(p)
	if err != nil {
		b.fail(err)
	}
	return n, err
}

// applyDeadline moves the connection's write deadline to the one asked
// for, unless it is at most deadlineSlack earlier.
func (b *batchConn) applyDeadline() error {
	d, a := b.deadline, b.applied
	if d.Equal(a) || (!a.IsZero() && !d.IsZero() && !d.Before(a) && d.Sub(a) <= deadlineSlack) {
		return nil
	}
	if err := b.Conn.SetWriteDeadline(d); err != nil {
		return err
	}
	b.applied = d
	return nil
}

// fail keeps a write's error for every later write and closes the
// connection: part of a batch may have been sent, so the byte stream is
// broken, and gortsplib's reader of it stops at once.
func (b *batchConn) fail(err error) {
	b.err = err
	_ = b.Conn.Close()
}

func (b *batchConn) release() {
	if b.buf != nil {
		*b.buf = (*b.buf)[:0]
		batchPool.Put(b.buf)
		b.buf = nil
	}
}
