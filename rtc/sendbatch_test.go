//go:build linux

package rtc

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testwait"
)

// receiver is a loopback UDP socket that keeps what it reads.
type receiver struct {
	conn  *net.UDPConn
	count bool // only count what comes (allocating nothing)
	mu    sync.Mutex
	got   [][]byte
	n     int
}

func newReceivers(t testing.TB, n int) []*receiver { return receivers(t, n, false) }

func receivers(t testing.TB, n int, count bool) []*receiver {
	rs := make([]*receiver, n)
	for i := range rs {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		r := &receiver{conn: c, count: count}
		rs[i] = r
		t.Cleanup(func() { c.Close() })
		go func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				r.mu.Lock()
				if r.n++; !r.count {
					r.got = append(r.got, append([]byte(nil), buf[:n]...))
				}
				r.mu.Unlock()
			}
		}()
	}
	return rs
}

func (r *receiver) addr() *net.UDPAddr { return r.conn.LocalAddr().(*net.UDPAddr) }

// wait returns what r got once it has n packets, or after 5 s.
func (r *receiver) wait(n int) [][]byte {
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.got)
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // and nothing more comes
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

// newBatchConn is a gathering sender on a fresh loopback socket.
func newBatchConn(t testing.TB, gso bool) *batchConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if gso && !kernelSegments(c) {
		c.Close()
		t.Skip("this kernel does not segment UDP (UDP_SEGMENT)")
	}
	b := gatherWritesOn(c, c, gso, slog.Default())
	t.Cleanup(func() { b.Close() })
	return b
}

// framePacket is packet k of a frame: writer w's sequence number seq,
// 1200 bytes, the frame's last packet shorter, as a packetizer makes.
func framePacket(w, seq, k, perFrame int) []byte {
	n := 1200
	if k == perFrame-1 {
		n = 300 + 37*w
	}
	p := make([]byte, n)
	binary.BigEndian.PutUint32(p, uint32(w))
	binary.BigEndian.PutUint32(p[4:], uint32(seq))
	for i := 8; i < n; i++ {
		p[i] = byte(seq + i)
	}
	return p
}

// Viewers' goroutines write video frames and lone audio packets to their
// own addresses at once; every address gets every packet written to it,
// whole and in the order written, with the kernel segmenting or not.
func TestBatchConnDeliversEveryPacketInOrder(t *testing.T) {
	for _, gso := range []bool{false, true} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			b := newBatchConn(t, gso)
			const writers, frames, perFrame = 8, 30, 11
			rs := newReceivers(t, writers)
			want := make([][][]byte, writers)
			var wg sync.WaitGroup
			for w := range writers {
				seq := 0
				for range frames {
					for k := range perFrame {
						want[w] = append(want[w], framePacket(w, seq, k, perFrame))
						seq++
					}
					audio := make([]byte, 90+w)
					binary.BigEndian.PutUint32(audio, uint32(w))
					binary.BigEndian.PutUint32(audio[4:], uint32(seq))
					want[w] = append(want[w], audio)
					seq++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i, p := range want[w] {
						if _, err := b.WriteTo(p, rs[w].addr()); err != nil {
							t.Error(err)
							return
						}
						if i%(perFrame+1) == perFrame {
							time.Sleep(time.Millisecond) // frames come apart
						}
					}
				}()
			}
			wg.Wait()
			for w, r := range rs {
				got := r.wait(len(want[w]))
				if len(got) != len(want[w]) {
					t.Fatalf("address %d got %d packets of %d", w, len(got), len(want[w]))
				}
				for i := range got {
					if string(got[i]) != string(want[w][i]) {
						t.Fatalf("address %d, packet %d: %d bytes (seq %d), want %d bytes (seq %d)", w, i,
							len(got[i]), binary.BigEndian.Uint32(got[i][4:]), len(want[w][i]), binary.BigEndian.Uint32(want[w][i][4:]))
					}
				}
			}
			// The last send is counted once its system call has returned,
			// which may be after its packets have been read.
			total := uint64(writers * frames * (perFrame + 1))
			testwait.Until(t, 5*time.Second, "the sends to be counted", func() bool { return b.sent.Load()+b.failed.Load() >= total })
			sent, msgs := b.sent.Load(), b.messages.Load()
			t.Logf("%d packets in %d messages", sent, msgs)
			if sent != total || b.failed.Load() != 0 {
				t.Errorf("counted %d sent, %d failed", sent, b.failed.Load())
			}
			if !gso && msgs != sent {
				t.Errorf("without segmenting, %d messages for %d packets", msgs, sent)
			}
		})
	}
}

// A batch's runs to one address go as one segmented message each: a
// frame of equal packets and its shorter last one, but not a bigger
// packet after a smaller one, and not past the segment limit.
func TestBatchConnSegmentsRunsPerAddress(t *testing.T) {
	b := newBatchConn(t, true)
	rs := newReceivers(t, 2)
	f := newSendBatch()
	var want [2][][]byte
	add := func(r int, p []byte) {
		f.add(p, rs[r].addr(), rs[r].addr().AddrPort())
		want[r] = append(want[r], p)
	}
	// Interleaved as two viewers' goroutines write: a frame of 11 to
	// each, then audio (smaller, ends no run it does not follow), then a
	// frame of 70 to the first (over the 64-segment limit).
	seq := 0
	for k := range 11 {
		for r := range 2 {
			add(r, framePacket(r, seq, k, 11))
			seq++
		}
	}
	add(0, make([]byte, 100))
	add(1, make([]byte, 100))
	for k := range 70 {
		add(0, framePacket(0, seq, k, 70))
		seq++
	}
	b.send(f)
	// first: 11 (frame), 1 (audio), 64 + 6 (big frame, its last shorter)
	// second: 11, 1
	if got := b.messages.Load(); got != 6 {
		t.Errorf("%d messages, want 6", got)
	}
	for r := range rs {
		got := rs[r].wait(len(want[r]))
		if len(got) != len(want[r]) {
			t.Fatalf("address %d got %d packets of %d", r, len(got), len(want[r]))
		}
		for i := range got {
			if string(got[i]) != string(want[r][i]) {
				t.Fatalf("address %d, packet %d: %d bytes, want %d", r, i, len(got[i]), len(want[r][i]))
			}
		}
	}
}

// The kernel refuses to send to one address (port 0: EINVAL); that
// address's packets are counted as failed and every other address gets
// all of its own.
func TestBatchConnOneRefusedAddressLosesOnlyItsOwn(t *testing.T) {
	for _, gso := range []bool{false, true} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			b := newBatchConn(t, gso)
			rs := newReceivers(t, 2)
			refused := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0}
			f := newSendBatch()
			add := func(a *net.UDPAddr, p []byte) { f.add(p, a, a.AddrPort()) }
			for k := range 11 {
				add(rs[0].addr(), framePacket(0, k, k, 11))
				add(refused, framePacket(1, k, k, 11))
				add(rs[1].addr(), framePacket(2, k, k, 11))
			}
			b.send(f)
			for r := range rs {
				if got := rs[r].wait(11); len(got) != 11 {
					t.Errorf("address %d got %d of 11", r, len(got))
				}
			}
			if got := b.failed.Load(); got != 11 {
				t.Errorf("%d failed, want the refused address's 11", got)
			}
			if b.gso.Load() != gso {
				t.Errorf("segmenting turned %v by a refusal that is not about segmenting", b.gso.Load())
			}
		})
	}
}

// A batch of more messages than one system call carries leaves in
// several calls and loses nothing, and an address the kernel refuses
// right at a call's boundary costs only its own packet.
func TestBatchConnSendsBatchesLongerThanACall(t *testing.T) {
	b := newBatchConn(t, false)
	rs := newReceivers(t, 3)
	refused := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0}
	f := newSendBatch()
	const total = 3*rawCallMessages + 17
	want, per := 0, make([]int, 3)
	for i := range total {
		if i == rawCallMessages || i == 2*rawCallMessages-1 {
			f.add(make([]byte, 100), refused, refused.AddrPort())
			continue
		}
		a := rs[i%3].addr()
		f.add(framePacket(i%3, i, 0, 2), a, a.AddrPort())
		want++
		per[i%3]++
	}
	b.send(f)
	got := 0
	for r := range rs {
		got += len(rs[r].wait(per[r]))
	}
	if got != want || b.sent.Load() != uint64(want) || b.failed.Load() != 2 {
		t.Errorf("received %d, counted %d sent and %d failed; want %d, %d and 2", got, b.sent.Load(), b.failed.Load(), want, want)
	}
}

// Close sends what was written before it.
func TestBatchConnCloseSendsWhatIsQueued(t *testing.T) {
	b := newBatchConn(t, true)
	rs := newReceivers(t, 1)
	for k := range 200 {
		if _, err := b.WriteTo(framePacket(0, k, k%11, 11), rs[0].addr()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := rs[0].wait(200); len(got) != 200 {
		t.Errorf("got %d of 200 written before Close", len(got))
	}
	if _, err := b.WriteTo([]byte("late"), rs[0].addr()); err == nil {
		t.Error("a write after Close succeeded")
	}
}

// A write copies the packet into the batch and allocates nothing, nor
// does the sending.
func TestBatchConnWritesWithoutAllocating(t *testing.T) {
	b := newBatchConn(t, true)
	rs := receivers(t, 4, true)
	pkts := make([][]byte, 11)
	for k := range pkts {
		pkts[k] = framePacket(0, k, k, 11)
	}
	write := func() {
		for _, r := range rs {
			for _, p := range pkts {
				if _, err := b.WriteTo(p, r.addr()); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for range 50 { // warm the batches' scratch space
		write()
		time.Sleep(time.Millisecond)
	}
	if n := testing.AllocsPerRun(200, write); n > 0 {
		t.Errorf("%v allocations per 44 packets written", n)
	}
}

// BenchmarkSharedSocketSend is 100 viewers' goroutines sending video
// frames (11 packets) to their own loopback addresses through one
// socket, as the engine's shared socket does: cpu-ns/packet is the
// process's CPU (the receivers' reads included) per packet sent.
func BenchmarkSharedSocketSend(b *testing.B) {
	for _, mode := range []string{"sendto", "spread", "batch", "batch+gso"} {
		b.Run(mode, func(b *testing.B) {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			var out net.PacketConn = c
			switch mode {
			case "spread":
				out = spreadWrites(c)
			case "batch", "batch+gso":
				if mode == "batch+gso" && !kernelSegments(c) {
					b.Skip("no UDP_SEGMENT")
				}
				out = gatherWritesOn(c, c, mode == "batch+gso", slog.Default())
			}
			defer out.Close()
			rs := receivers(b, 100, true)
			pkts := make([][]byte, 11)
			for k := range pkts {
				pkts[k] = framePacket(0, k, k, 11)
			}
			var next sync.Mutex
			i := 0
			b.SetParallelism(50)
			cpu0 := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				next.Lock()
				r := rs[i%len(rs)]
				i++
				next.Unlock()
				for pb.Next() {
					for _, p := range pkts {
						if _, err := out.WriteTo(p, r.addr()); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*len(pkts)), "cpu-ns/packet")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
