package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair is a real loopback TCP connection: the server's end wrapped as
// the RTSP server wraps it, under a counter of the writes it makes, and
// the client's end.
func tcpPair(t testing.TB) (*batchConn, *countingConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	counted := &countingConn{Conn: server}
	b := newBatchConn(counted)
	t.Cleanup(func() { _ = b.Close(); _ = client.Close() })
	return b, counted, client
}

type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// frame is an interleaved RTP frame as gortsplib writes one: '$', the
// channel, the length, the packet.
func frame(ch byte, seq uint16, size int) []byte {
	f := make([]byte, 4+size)
	f[0], f[1] = '$', ch
	binary.BigEndian.PutUint16(f[2:], uint16(size))
	for i := 4; i < len(f); i++ {
		f[i] = byte(seq)
	}
	binary.BigEndian.PutUint16(f[4:], seq)
	return f
}

func readFrame(t *testing.T, r io.Reader) (ch byte, seq uint16, size int) {
	t.Helper()
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != '$' {
		t.Fatalf("frame starts with %q", h[0])
	}
	body := make([]byte, binary.BigEndian.Uint16(h[2:]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	seq = binary.BigEndian.Uint16(body)
	for i := 2; i < len(body); i++ {
		if body[i] != byte(seq) {
			t.Fatalf("frame %d on channel %d is torn at byte %d", seq, h[1], i)
		}
	}
	return h[1], seq, len(body)
}

// A frame's packets written together leave in one write, in order, and a
// lone packet is not held back for long.
func TestBatchConnGathersAFramesPackets(t *testing.T) {
	b, counted, client := tcpPair(t)
	// The packets are written within the delay however slowly this
	// machine runs the test (CI under -race took over 1 ms between two):
	// the delay ends when the test says, as the timer would end it.
	b.delay = time.Hour
	for seq := range uint16(10) {
		if err := b.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Write(frame(0, seq, 1200)); err != nil {
			t.Fatal(err)
		}
	}
	b.flushLater()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for want := range uint16(10) {
		if _, seq, _ := readFrame(t, client); seq != want {
			t.Fatalf("packet %d arrived where %d was due", seq, want)
		}
	}
	if n := counted.writes.Load(); n != 1 {
		t.Errorf("10 packets written at once took %d writes, want 1", n)
	}

	// One packet alone still goes out without another write behind it.
	b.mu.Lock()
	b.delay = writeBatchDelay
	b.mu.Unlock()
	if _, err := b.Write(frame(1, 10, 100)); err != nil {
		t.Fatal(err)
	}
	if ch, seq, _ := readFrame(t, client); ch != 1 || seq != 10 {
		t.Fatalf("got channel %d packet %d", ch, seq)
	}
}

// A lone Opus packet waits for the next video frame's packets and leaves
// with them, in order, in one write; an RTSP response is never held that
// long.
func TestBatchConnHoldsALoneAudioPacket(t *testing.T) {
	b, counted, client := tcpPair(t)
	b.mu.Lock()
	b.smallDelay = time.Hour // only the frame that follows sends it
	b.mu.Unlock()
	if _, err := b.Write(frame(1, 1, 200)); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var one [1]byte
	if n, err := client.Read(one[:]); n != 0 || err == nil {
		t.Fatalf("a lone audio packet was sent at once (read %d bytes, %v)", n, err)
	}
	if _, err := b.Write(frame(0, 2, 1200)); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []uint16{1, 2} {
		if _, seq, _ := readFrame(t, client); seq != want {
			t.Fatalf("packet %d arrived where %d was due", seq, want)
		}
	}
	if n := counted.writes.Load(); n != 1 {
		t.Errorf("an audio packet and the frame after it took %d writes, want 1", n)
	}

	// An RTSP response (here after a held audio packet) goes out
	// within writeBatchDelay, taking the packet with it.
	if _, err := b.Write(frame(1, 3, 200)); err != nil {
		t.Fatal(err)
	}
	resp := []byte("RTSP/1.0 200 OK\r\nCSeq: 5\r\n\r\n")
	if _, err := b.Write(resp); err != nil {
		t.Fatal(err)
	}
	if _, seq, _ := readFrame(t, client); seq != 3 {
		t.Fatalf("got packet %d, want 3", seq)
	}
	got := make([]byte, len(resp))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, resp) {
		t.Fatalf("the response did not follow the packet: %q, %v", got, err)
	}
}

// More than writeBatchMax written at once goes out in several writes,
// each under the limit, and a write bigger than it goes as it is.
func TestBatchConnSplitsAKeyframe(t *testing.T) {
	b, counted, client := tcpPair(t)
	b.delay = time.Hour // all written within the delay, however slowly
	const n = 60        // a 720p keyframe
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := range uint16(n) {
			if _, err := b.Write(frame(0, seq, 1200)); err != nil {
				t.Error(err)
				return
			}
		}
		if _, err := b.Write(frame(0, n, 60000)); err != nil {
			t.Error(err)
		}
	}()
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for want := range uint16(n + 1) {
		if _, seq, _ := readFrame(t, client); seq != want {
			t.Fatalf("packet %d arrived where %d was due", seq, want)
		}
	}
	<-done
	min := (n*1204 + writeBatchMax - 1) / writeBatchMax
	if w := counted.writes.Load(); w < int64(min) || w > int64(min)+2 {
		t.Errorf("%d packets of 1204 bytes and one of 60 kB took %d writes, want %d to %d", n, w, min, min+2)
	}
}

// Writers on two goroutines (gortsplib's packet writer and its RTSP
// response writer) never tear each other's writes.
func TestBatchConnConcurrentWritesStayWhole(t *testing.T) {
	b, _, client := tcpPair(t)
	const per = 500
	var wg sync.WaitGroup
	for ch := range byte(2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range uint16(per) {
				_ = b.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := b.Write(frame(ch, seq, 200+int(ch)*700)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	next := [2]uint16{}
	for range 2 * per {
		ch, seq, _ := readFrame(t, client)
		if seq != next[ch] {
			t.Fatalf("channel %d: packet %d arrived where %d was due", ch, seq, next[ch])
		}
		next[ch]++
	}
	wg.Wait()
}

// Close sends what is pending first: gortsplib writes an error response
// and closes the connection at once.
func TestBatchConnCloseSendsWhatIsPending(t *testing.T) {
	b, _, client := tcpPair(t)
	resp := []byte("RTSP/1.0 454 Session Not Found\r\nCSeq: 3\r\n\r\n")
	if _, err := b.Write(resp); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, resp) {
		t.Fatalf("client read %q", got)
	}
	if _, err := b.Write(resp); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

// A reader that stops reading is cut off by the write deadline gortsplib
// set, as without batching: the flush fails, the connection closes, and
// every later write returns the error so gortsplib ends the session.
func TestBatchConnStuckReaderTimesOut(t *testing.T) {
	b, _, client := tcpPair(t)
	chunk := frame(0, 1, 1200) // gathered, and flushed as batches fill
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_ = b.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = b.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a reader that reads nothing ended with %v, want a deadline error", err)
	}
	if _, err := b.Write(frame(0, 2, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the next write: %v", err)
	}
	// The connection is closed: the client sees its end after the bytes
	// the kernel buffered.
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, client); err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server's end stayed open after its write timed out")
		}
	}
}

// BenchmarkBatchConnWrite is one reader's write path for one packet
// written back to back, as a frame's are: gortsplib's deadline and write,
// and the share of the flush (here when a batch fills) per packet.
func BenchmarkBatchConnWrite(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "plain"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			bc, counted, client := tcpPair(b)
			go func() { _, _ = io.Copy(io.Discard, client) }()
			var c net.Conn = counted.Conn
			if batched {
				c = bc
			}
			pkt := frame(0, 1, 1200)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Closing the connection of a reader that reads nothing does not wait for
// the write deadline gortsplib set (10 s): not while a flush is blocked
// on it, and not to send what is pending.
func TestBatchConnCloseDoesNotWaitForAStuckReader(t *testing.T) {
	t.Run("flush blocked", func(t *testing.T) {
		b, _, _ := tcpPair(t) // the client never reads
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				_ = b.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if _, err := b.Write(frame(0, 1, 1200)); err != nil {
					return
				}
			}
		}()
		time.Sleep(time.Second) // the kernel's buffers are full, a flush blocks
		closeQuickly(t, b)
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			t.Fatal("the writer is still blocked after close")
		}
	})
	t.Run("pending", func(t *testing.T) {
		b, counted, _ := tcpPair(t)
		raw := counted.Conn
		// A small send buffer the kernel does not grow, then fill it.
		if err := raw.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
			t.Fatal(err)
		}
		for {
			_ = raw.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := raw.Write(frame(0, 1, 1200)); err != nil {
				break
			}
		}
		_ = raw.SetWriteDeadline(time.Time{})
		_ = b.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := b.Write(frame(0, 2, 15000)); err != nil { // gathered: under writeBatchMax
			t.Fatal(err)
		}
		b.timer.Stop() // still pending when Close comes
		closeQuickly(t, b)
	})
}

func closeQuickly(t *testing.T, b *batchConn) {
	t.Helper()
	start := time.Now()
	if err := b.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("close: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("closing took %v, waiting for a reader that reads nothing", took)
	}
}
