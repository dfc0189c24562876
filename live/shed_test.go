package live

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// media is a synthetic VP8 + Opus stream written into a hub with made-up
// arrival times, so a test decides how much media a queue holds without
// depending on how fast anything runs.
type media struct {
	t            testing.TB
	s            *Stream
	video, audio *Track
	start        time.Time
	vseq, aseq   uint16
	keyframes    atomic.Int64 // the publisher's keyframe requests
	written      int
}

func newMedia(t testing.TB) *media {
	m := &media{t: t, start: time.Now(),
		video: &Track{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000},
		audio: &Track{Kind: Audio, Codec: Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}}
	s, err := NewHub(Reject).Publish("cam", PublishSpec{Tracks: []*Track{m.video, m.audio},
		RequestKeyframe: func() { m.keyframes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	m.s = s
	return m
}

// write sends the media of [from, to) ms: a video frame of 3 packets every
// 33 ms, a keyframe at each of keys (ms), and an audio packet every 20 ms.
// each is called after every packet written.
func (m *media) write(from, to int, keys []int, each func()) {
	for ms := from; ms < to; ms++ {
		if ms%33 == 0 {
			key := false
			for _, k := range keys {
				key = key || k == ms
			}
			for i := 0; i < 3; i++ {
				payload := []byte{0x00, 0xaa} // a continuation
				if i == 0 && key {
					payload = vp8Keyframe(640, 360)
				} else if i == 0 {
					payload = []byte{0x10, 0x01, 0xaa} // S, inter frame
				}
				m.packet(m.video, &m.vseq, ms, i == 2, payload)
				each()
			}
		}
		if ms%20 == 0 {
			m.packet(m.audio, &m.aseq, ms, true, []byte{0xfc})
			each()
		}
	}
}

func (m *media) packet(t *Track, seq *uint16, ms int, marker bool, payload []byte) {
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: t.PayloadType, SequenceNumber: *seq,
		Timestamp: uint32(ms) * 90, SSRC: uint32(t.PayloadType), Marker: marker}, Payload: payload}).Marshal()
	if err != nil {
		m.t.Fatal(err)
	}
	*seq++
	m.written++
	if err := m.s.WriteRTP(t, b, m.start.Add(time.Duration(ms)*time.Millisecond)); err != nil {
		m.t.Fatal(err)
	}
}

// got records what a consumer was handed; block, if set, holds it in its
// first WritePacket until closed, and entered says it got there.
type got struct {
	mu      sync.Mutex
	pkts    []gotPacket
	n       atomic.Int64
	block   chan struct{}
	entered chan struct{}
}

type gotPacket struct {
	video, key bool
	arrival    time.Time
}

func (g *got) WritePacket(p *Packet) {
	g.mu.Lock()
	g.pkts = append(g.pkts, gotPacket{p.Track.Kind == Video, p.key, p.Arrival})
	g.mu.Unlock()
	if g.block != nil && g.n.Load() == 0 {
		close(g.entered)
		<-g.block
	}
	g.n.Add(1)
}

func blocked() *got { return &got{block: make(chan struct{}), entered: make(chan struct{})} }

// waitFor waits until g was handed n packets; the test's deadline bounds
// it, so no timing is asserted.
func (g *got) waitFor(n int) {
	for g.n.Load() < int64(n) {
		time.Sleep(time.Millisecond)
	}
}

const testBudget = 300 * time.Millisecond

// A viewer that stops reading, next to one that keeps up and a recorder
// that is as slow: the slow viewer sheds its oldest media so that what it
// has queued stays within its budget, asks for one keyframe, and resumes
// on one; the fast viewer gets everything; the recorder, which has no
// budget, loses nothing.
func TestSlowViewerShedsAlone(t *testing.T) {
	m := newMedia(t)
	fastC, slowC, recC := &got{}, blocked(), blocked()
	fast, _ := m.s.SubscribeWith("whep", fastC, SubscribeOptions{LatencyBudget: testBudget})
	slow, _ := m.s.SubscribeWith("whep", slowC, SubscribeOptions{LatencyBudget: testBudget})
	rec, _ := m.s.SubscribeWith("record", recC, SubscribeOptions{QueueSize: 4096})

	first := true
	each := func() {
		fastC.waitFor(m.written) // the fast viewer keeps up, by construction
		if first {
			<-slowC.entered // both slow consumers hold the first packet
			<-recC.entered
			first = false
		}
	}
	// Keyframes at 0 and 2508 ms: the slow viewer's video is cut at about
	// 300 ms and waits for the second one.
	m.write(0, 2600, []int{0, 2508}, each)

	if fast.Shed() != 0 || fast.Dropped() != 0 || len(fastC.pkts) != m.written {
		t.Fatalf("fast viewer: shed %d, dropped %d, got %d of %d", fast.Shed(), fast.Dropped(), len(fastC.pkts), m.written)
	}
	n, span := slow.Queued()
	if span > testBudget || slow.Shed() == 0 || slow.Dropped() != 0 {
		t.Fatalf("slow viewer: %d packets queued over %v (budget %v), shed %d, dropped %d", n, span, testBudget, slow.Shed(), slow.Dropped())
	}
	if k := m.keyframes.Load(); k != 1 {
		t.Fatalf("keyframe requests: %d, want 1 for the slow viewer", k)
	}
	if rn, _ := rec.Queued(); rec.Shed() != 0 || rec.Dropped() != 0 || rn != m.written-1 {
		t.Fatalf("recorder: shed %d, dropped %d, %d queued of %d", rec.Shed(), rec.Dropped(), rn, m.written-1)
	}
	if info := m.s.Info(); info.Shed["whep"] != slow.Shed() || info.Shed["record"] != 0 {
		t.Fatalf("stream info shed: %v", info.Shed)
	}

	close(slowC.block)
	close(recC.block)
	slowC.waitFor(n + 1)
	recC.waitFor(m.written)
	last := m.start.Add(2599 * time.Millisecond)
	video := false
	for i, p := range slowC.pkts[1:] {
		if last.Sub(p.arrival) > testBudget {
			t.Fatalf("slow viewer got a packet %v old at the end (budget %v)", last.Sub(p.arrival), testBudget)
		}
		if p.video && !video && !p.key {
			t.Fatalf("slow viewer's video resumed at packet %d without a keyframe", i+1)
		}
		video = video || p.video
	}
	if !video {
		t.Fatal("slow viewer got no video after the second keyframe")
	}
	if len(recC.pkts) != m.written {
		t.Fatalf("recorder got %d of %d packets", len(recC.pkts), m.written)
	}
}

// A keyframe queued after the cut spares the request: the viewer's video
// resumes on it.
func TestShedResumesOnQueuedKeyframe(t *testing.T) {
	m := newMedia(t)
	c := blocked()
	sub, _ := m.s.SubscribeWith("whep", c, SubscribeOptions{LatencyBudget: testBudget})
	first := true
	m.write(0, 340, []int{0, 198}, func() {
		if first {
			<-c.entered
			first = false
		}
	})
	if sub.Shed() == 0 || m.keyframes.Load() != 0 {
		t.Fatalf("shed %d, keyframe requests %d; want some shed and no request", sub.Shed(), m.keyframes.Load())
	}
	n, _ := sub.Queued()
	close(c.block)
	c.waitFor(n + 1)
	for _, p := range c.pkts[1:] {
		if p.video {
			if !p.key || p.arrival != m.start.Add(198*time.Millisecond) {
				t.Fatalf("video resumed on a packet of %v (key %v), want the keyframe of 198ms", p.arrival.Sub(m.start), p.key)
			}
			break
		}
	}
}

// A full queue sheds its older half instead of dropping what comes.
func TestFullQueueShedsOldest(t *testing.T) {
	m := newMedia(t)
	c := blocked()
	sub, _ := m.s.SubscribeWith("whep", c, SubscribeOptions{QueueSize: 16, LatencyBudget: time.Hour})
	first := true
	m.write(0, 400, []int{0}, func() {
		if first {
			<-c.entered
			first = false
		}
	})
	if n, _ := sub.Queued(); sub.Dropped() != 0 || sub.Shed() == 0 || n > 16 {
		t.Fatalf("dropped %d, shed %d, queued %d", sub.Dropped(), sub.Shed(), n)
	}
	close(c.block)
}

// Shedding keeps the hub's fan-out free of allocations.
func TestShedAddsNoAllocation(t *testing.T) {
	m := newMedia(t)
	c := blocked()
	sub, _ := m.s.SubscribeWith("whep", c, SubscribeOptions{LatencyBudget: testBudget})
	m.write(0, 1, []int{0}, func() {})
	<-c.entered
	raw := make([][]byte, 64)
	for i := range raw {
		raw[i] = rtpBytes(t, uint16(i), []byte{0x10, 0x01, 0xaa})
	}
	i := 0
	allocs := testing.AllocsPerRun(3000, func() {
		i++
		_ = m.s.WriteRTP(m.video, raw[i%len(raw)], m.start.Add(time.Duration(i)*5*time.Millisecond))
	})
	close(c.block)
	if allocs != 0 || sub.Shed() < 2000 {
		t.Fatalf("%v allocations per packet with a shedding viewer (shed %d)", allocs, sub.Shed())
	}
}

// A simulcast viewer that sheds on one layer and then moves to another
// asks for the new layer's keyframe when it sheds there: the layer it left
// sends nothing that could end the first wait.
func TestShedAfterLayerSwitchAsksForNewLayer(t *testing.T) {
	s, video, asked := publishLayers(t, "q", "h")
	q, h := video.LayerByRID("q"), video.LayerByRID("h")
	c := blocked()
	sub, _ := s.SubscribeWith("whep", c, SubscribeOptions{LatencyBudget: testBudget})
	start := time.Now()
	ms, seq := 0, uint16(0)
	send := func(l *Track, until int) {
		for ; ms < until; ms += 33 {
			payload := []byte{0x10, 0x01, 0xaa} // inter frames
			if ms == 0 {
				payload = vp8Keyframe(320, 180)
			}
			seq++
			_ = s.WriteRTP(l, layerPacket(t, uint32(l.LayerBit()), seq, true, payload), start.Add(time.Duration(ms)*time.Millisecond))
			if ms == 0 {
				<-c.entered
			}
		}
	}
	sub.SetLayers(q.LayerBit())
	send(q, 600)
	sub.SetLayers(h.LayerBit())
	send(h, 2400)
	close(c.block)
	if sub.Shed() == 0 || len(*asked) != 2 || (*asked)[0] != q || (*asked)[1] != h {
		t.Fatalf("shed %d, asked for %v; want q's keyframe, then h's", sub.Shed(), *asked)
	}
}

// A consumer that takes two layers (a viewer between them) and sheds
// both asks for a keyframe of each, not only of the last it cut.
func TestShedAsksEveryLayerItCut(t *testing.T) {
	s, video, asked := publishLayers(t, "q", "h", "f")
	q, h, f := video.LayerByRID("q"), video.LayerByRID("h"), video.LayerByRID("f")
	c := blocked()
	sub, _ := s.SubscribeWith("whep", c, SubscribeOptions{LatencyBudget: testBudget})
	sub.SetLayers(LayerMask(q, h))
	writeLayers(t, s, []*Track{q, h, f}, 2400, func() { <-c.entered })
	close(c.block)
	if sub.Shed() == 0 || len(*asked) != 2 || (*asked)[0] != q || (*asked)[1] != h {
		t.Fatalf("shed %d, asked for %v; want q's and h's keyframes", sub.Shed(), *asked)
	}
}
