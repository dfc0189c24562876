package live

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func rtpBytes(t testing.TB, seq uint16, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 1234}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func publishTest(t testing.TB, h *Hub, name string, keyframe func()) *Stream {
	t.Helper()
	s, err := h.Publish(name, PublishSpec{Session: "s", Tracks: []*Track{{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000}}, RequestKeyframe: keyframe})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFanOutInOrder(t *testing.T) {
	h := NewHub(Reject)
	s := publishTest(t, h, "cam", nil)
	const n = 200
	var got [3][]uint16
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		_, err := s.Subscribe("test", &enderFunc{
			write: func(p *Packet) { got[i] = append(got[i], p.RTP.SequenceNumber) },
			end:   wg.Done,
		}, n)
		if err != nil {
			t.Fatal(err)
		}
	}
	track := s.Tracks()[0]
	for i := 0; i < n; i++ {
		if err := s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{1, 2, 3}), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	wg.Wait() // StreamEnded comes after every queued packet
	for i := range got {
		if len(got[i]) != n {
			t.Fatalf("consumer %d got %d packets, want %d", i, len(got[i]), n)
		}
		for j, seq := range got[i] {
			if seq != uint16(j) {
				t.Fatalf("consumer %d: packet %d has seq %d", i, j, seq)
			}
		}
	}
}

type enderFunc struct {
	write func(*Packet)
	end   func()
}

func (e *enderFunc) WritePacket(p *Packet) { e.write(p) }
func (e *enderFunc) StreamEnded()          { e.end() }

// A consumer that blocks must cost the others nothing: the publisher keeps
// writing, the fast consumer gets everything, the slow one's drops count.
func TestSlowConsumerDropsAlone(t *testing.T) {
	h := NewHub(Reject)
	s := publishTest(t, h, "cam", nil)
	block := make(chan struct{})
	slow, _ := s.Subscribe("slow", ConsumerFunc(func(*Packet) { <-block }), 8)
	var fast atomic.Int64
	fastSub, _ := s.Subscribe("fast", ConsumerFunc(func(*Packet) { fast.Add(1) }), 1024)
	track := s.Tracks()[0]
	const n = 500
	for i := 0; i < n; i++ {
		if err := s.WriteRTP(track, rtpBytes(t, uint16(i), []byte{0}), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for fast.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if fast.Load() != n || fastSub.Dropped() != 0 {
		t.Fatalf("fast consumer got %d/%d, dropped %d", fast.Load(), n, fastSub.Dropped())
	}
	// The slow one holds 8 queued and, if its goroutine got to it before
	// the queue filled, one more in hand.
	if d := slow.Dropped(); d != n-9 && d != n-8 {
		t.Fatalf("slow consumer dropped %d, want %d or %d", d, n-9, n-8)
	}
	close(block)
	slow.Close()
	fastSub.Close()
	if info := s.Info(); info.Dropped["slow"] != 0 || info.Viewers["slow"] != 0 {
		t.Fatalf("closed subscription still counted: %+v", info)
	}
}

func TestKeyframeRequestsAreRateLimited(t *testing.T) {
	var n atomic.Int64
	s := publishTest(t, NewHub(Reject), "cam", func() { n.Add(1) })
	for i := 0; i < 100; i++ {
		s.RequestKeyframe()
	}
	if n.Load() != 1 {
		t.Fatalf("100 joins sent %d keyframe requests at once, want 1", n.Load())
	}
	// One trailing request follows at the end of the interval.
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.Load() != 2 {
		t.Fatalf("got %d requests, want 2 (one trailing)", n.Load())
	}
}

func TestConflictPolicies(t *testing.T) {
	h := NewHub(Reject)
	publishTest(t, h, "cam", nil)
	if _, err := h.Publish("cam", PublishSpec{}); err != ErrStreamLive {
		t.Fatalf("second publisher: %v, want ErrStreamLive", err)
	}
	h = NewHub(Replace)
	old := publishTest(t, h, "cam", nil)
	kicked := false
	old.spec.Kick = func() { kicked = true; old.Close() }
	newer := publishTest(t, h, "cam", nil)
	if !kicked || h.Get("cam") != newer {
		t.Fatalf("replace: kicked=%v current is new=%v", kicked, h.Get("cam") == newer)
	}
	select {
	case <-old.Done():
	default:
		t.Fatal("replaced stream did not end")
	}
}

func TestSubscribeAfterEnd(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	s.Close()
	s.Close() // safe twice
	if _, err := s.Subscribe("x", ConsumerFunc(func(*Packet) {}), 0); err != ErrStreamEnded {
		t.Fatalf("got %v", err)
	}
}

func TestGarbledPacketIsCountedNotForwarded(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	var got atomic.Int64
	sub, _ := s.Subscribe("x", ConsumerFunc(func(*Packet) { got.Add(1) }), 0)
	if err := s.WriteRTP(s.Tracks()[0], []byte{0x80, 1}, time.Now()); err == nil {
		t.Fatal("a 2-byte packet was accepted")
	}
	if err := s.WriteRTP(s.Tracks()[0], make([]byte, 2000), time.Now()); err == nil {
		t.Fatal("a 2000-byte packet was accepted")
	}
	sub.Close()
	if got.Load() != 0 || s.Info().BadPackets != 2 {
		t.Fatalf("forwarded %d, bad %d", got.Load(), s.Info().BadPackets)
	}
}

func TestH264ParameterSetsFromSeparatePacketsAndSTAPA(t *testing.T) {
	tr := &Track{Codec: H264}
	sps := []byte{0x67, 0x64, 0x00, 0x1f}
	pps := []byte{0x68, 0xee, 0x3c}
	tr.params.observe(sps)
	tr.params.observe(pps)
	if a, b := tr.H264ParameterSets(); string(a) != string(sps) || string(b) != string(pps) {
		t.Fatalf("separate packets: %x %x", a, b)
	}
	sps2 := []byte{0x67, 0x42, 0xc0, 0x1f}
	stap := append([]byte{24, 0, byte(len(sps2))}, sps2...)
	stap = append(append(stap, 0, byte(len(pps))), pps...)
	tr.params.observe(stap)
	if a, _ := tr.H264ParameterSets(); string(a) != string(sps2) {
		t.Fatalf("STAP-A: %x", a)
	}
}

func TestH265ParameterSetsFromSeparatePacketsAndAP(t *testing.T) {
	tr := &Track{Codec: H265}
	vps := []byte{0x40, 0x01, 0x0c, 0x01}
	sps := []byte{0x42, 0x01, 0x01, 0x01}
	pps := []byte{0x44, 0x01, 0xc1, 0x72}
	for _, p := range [][]byte{vps, sps, pps, {0x28, 0x01, 0xaf}} {
		tr.h265.observe(p)
	}
	if v, s, p := tr.H265ParameterSets(); string(v) != string(vps) || string(s) != string(sps) || string(p) != string(pps) {
		t.Fatalf("separate packets: %x %x %x", v, s, p)
	}
	sps2 := []byte{0x42, 0x01, 0x01, 0x02, 0x20}
	ap := []byte{0x60, 0x01}
	for _, n := range [][]byte{vps, sps2, pps} {
		ap = append(append(ap, 0, byte(len(n))), n...)
	}
	tr.h265.observe(ap)
	if _, s, _ := tr.H265ParameterSets(); string(s) != string(sps2) {
		t.Fatalf("aggregation packet: %x", s)
	}
}

// BenchmarkFanOut measures the forwarding path: one packet in, copied to
// N subscribers' queues, consumed; shared, the subscribers are on lanes
// (lane.go). allocs/op must be 0.
func BenchmarkFanOut(b *testing.B) {
	for _, bc := range []struct {
		n      int
		budget time.Duration
		shared bool
	}{{1, 0, false}, {10, 0, false}, {100, 0, false}, {100, time.Hour, false}, {100, time.Hour, true}} {
		name := itoa(bc.n) + "-subscribers"
		if bc.budget > 0 {
			name += "-with-budget" // the check runs, nothing is shed
		}
		if bc.shared {
			name += "-shared"
		}
		n := bc.n
		b.Run(name, func(b *testing.B) {
			s := publishTest(b, NewHub(Reject), "bench", nil)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				sub, _ := s.SubscribeWith("bench", &enderFunc{write: func(*Packet) {}, end: wg.Done}, SubscribeOptions{QueueSize: 4096, LatencyBudget: bc.budget})
				if bc.shared {
					sub.Share()
				}
			}
			raw := rtpBytes(b, 1, make([]byte, 1100))
			track := s.Tracks()[0]
			now := time.Now()
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_ = s.WriteRTP(track, raw, now)
			}
			s.Close()
			wg.Wait()
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// The streams API shows how late the stream's packets are read.
func TestInfoShowsInputLateness(t *testing.T) {
	s := publishTest(t, NewHub(Reject), "cam", nil)
	defer s.Close()
	track := s.Tracks()[0]
	send := func(seq uint16, captured, arrival time.Time, base time.Time) {
		t.Helper()
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 1234,
			Timestamp: uint32(captured.Sub(base).Seconds() * 90000)}, Payload: []byte{0x10, 0, 0x9d, 1, 0x2a}}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WriteRTP(track, b, arrival); err != nil {
			t.Fatal(err)
		}
	}
	// Three seconds of packets on time, then the latest read 1.5 s late.
	now := time.Now()
	base := now.Add(-3 * time.Second)
	seq := uint16(0)
	for c := time.Duration(0); c < 2500*time.Millisecond; c += 33 * time.Millisecond {
		send(seq, base.Add(c), base.Add(c+20*time.Millisecond), base)
		seq++
	}
	if late := s.Info().InputLateMS; late > 10 {
		t.Fatalf("on time: input_late_ms %v", late)
	}
	send(seq, base.Add(2500*time.Millisecond), base.Add(4*time.Second+20*time.Millisecond), base)
	if late := s.Info().InputLateMS; late < 1490 || late > 1510 {
		t.Fatalf("read 1.5 s late: input_late_ms %v", late)
	}
}
