package live

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// spliceFixture is a simulcast stream with layers q and f whose RTP
// timestamps start far apart, and Sender Reports that tie both to one
// capture clock: a picture captured at c has timestamp base+c×90 kHz on
// each layer.
type spliceFixture struct {
	stream *Stream
	q, f   *Track
	base   map[*Track]uint32
	gw     time.Time
}

func newSpliceFixture(t *testing.T) *spliceFixture {
	video := &Track{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000}
	if err := video.AddLayers([]string{"q", "f"}); err != nil {
		t.Fatal(err)
	}
	stream, err := NewHub(Reject).Publish("splice", PublishSpec{Tracks: []*Track{video}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stream.Close)
	x := &spliceFixture{stream: stream, q: video.Layer("q"), f: video.Layer("f"), gw: time.Now()}
	x.base = map[*Track]uint32{x.q: 1000, x.f: 0xfff00000}
	epoch := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, l := range []*Track{x.q, x.f} {
		x.packet(l, 0, 0, 0)
		stream.WriteSenderReport(l, epoch, x.base[l], x.gw)
	}
	return x
}

// packet is a packet of layer l captured at c, arriving after delay,
// numbered seq: written to the stream (so its clock sees it) and returned.
func (x *spliceFixture) packet(l *Track, seq uint16, c, delay time.Duration) *Packet {
	p := &Packet{Track: l, Arrival: x.gw.Add(c + delay)}
	p.RTP.Header = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 1,
		Timestamp: x.base[l] + uint32(c.Seconds()*90000)}
	p.RTP.Payload = []byte{0x10, 0, 0, 0}
	raw, _ := p.RTP.Marshal()
	_ = x.stream.WriteRTP(l, raw, p.Arrival)
	return p
}

func TestSpliceContinuesTheOutputAcrossLayers(t *testing.T) {
	x := newSpliceFixture(t)
	var s Splice
	const fd, frame = 40 * time.Millisecond, 3600 // 25 fps at 90 kHz
	tick := func(d time.Duration) uint32 { return uint32(d.Seconds() * 90000) }

	// The first layer keeps its own numbering.
	for i := range 3 {
		p := x.packet(x.q, uint16(500+i), time.Duration(i)*fd, 10*time.Millisecond)
		seq, ts := s.Forward(p)
		if seq != p.RTP.SequenceNumber || ts != p.RTP.Timestamp {
			t.Fatalf("first layer: got %d/%d, want its own %d/%d", seq, ts, p.RTP.SequenceNumber, p.RTP.Timestamp)
		}
	}
	lastTS := x.base[x.q] + tick(2*fd)

	// f's keyframe shows the instant of the last picture sent (its
	// packets came first): one frame later.
	k := x.packet(x.f, 40000, 2*fd, 5*time.Millisecond)
	s.Switch(k, x.stream.Clock())
	seq, ts := s.Forward(k)
	if seq != 503 {
		t.Errorf("after the switch: sequence %d, want 503", seq)
	}
	if ts-lastTS != frame {
		t.Errorf("keyframe at the last picture's instant: %d ticks later, want one frame (%d)", ts-lastTS, frame)
	}
	// f's next packets follow on its own spacing.
	p := x.packet(x.f, 40001, 3*fd, 5*time.Millisecond)
	if seq, ts2 := s.Forward(p); seq != 504 || ts2-ts != tick(fd) {
		t.Errorf("next packet of f: %d, +%d ticks; want 504, +%d", seq, ts2-ts, tick(fd))
	}
	lastTS = ts + tick(fd)

	// Back to q at a picture 200 ms later that arrived 600 ms later (a
	// jitter spike): the clock, not the arrivals, times the gap.
	k = x.packet(x.q, 503, 3*fd+200*time.Millisecond, 400*time.Millisecond)
	s.Switch(k, x.stream.Clock())
	seq, ts = s.Forward(k)
	if seq != 505 || ts-lastTS != tick(200*time.Millisecond) {
		t.Errorf("switch back: %d, +%d ticks; want 505, +%d (the capture gap)", seq, ts-lastTS, tick(200*time.Millisecond))
	}

	// Padding takes the next number; the layer's next packet follows it.
	if pseq, pts := s.Insert(); pseq != 506 || pts != ts {
		t.Errorf("padding: %d/%d, want 506/%d", pseq, pts, ts)
	}
	if seq, _ := s.Forward(x.packet(x.q, 504, 4*fd+200*time.Millisecond, 400*time.Millisecond)); seq != 507 {
		t.Errorf("after padding: sequence %d, want 507", seq)
	}
	// A late packet of the layer keeps its place and moves nothing.
	if seq, _ := s.Forward(x.packet(x.q, 502, 4*fd, 400*time.Millisecond)); seq != 505 {
		t.Errorf("late packet: sequence %d, want 505", seq)
	}
	if seq, _ := s.Insert(); seq != 508 {
		t.Errorf("padding after a late packet: %d, want 508", seq)
	}
}

// Without a clock (or before it places both packets), the arrivals time
// the switch.
func TestSpliceWithoutClockUsesArrivals(t *testing.T) {
	x := newSpliceFixture(t)
	var s Splice
	last := x.packet(x.q, 7, 0, 0)
	_, lastTS := s.Forward(last)
	k := x.packet(x.f, 9, 33*time.Millisecond, 70*time.Millisecond)
	s.Switch(k, nil)
	seq, ts := s.Forward(k)
	if want := uint32(0.103 * 90000); seq != 8 || ts-lastTS != want {
		t.Errorf("got %d, +%d ticks; want 8, +%d (the arrival gap)", seq, ts-lastTS, want)
	}
}

func TestSpliceDoesNotAllocate(t *testing.T) {
	x := newSpliceFixture(t)
	var s Splice
	p := x.packet(x.q, 1, 0, 0)
	k := x.packet(x.f, 1, 0, 0)
	clock := x.stream.Clock()
	if n := testing.AllocsPerRun(100, func() {
		p.RTP.SequenceNumber++
		s.Forward(p)
		s.Switch(k, clock)
		s.Forward(k)
		s.Insert()
	}); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}
