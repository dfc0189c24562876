package live

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/testmedia"
)

// vp8Keyframe is the first packet of a VP8 keyframe of w×h: a payload
// descriptor with a 15-bit picture id, the frame tag and the size header.
func vp8Keyframe(w, h int) []byte {
	return []byte{0x90, 0x80, 0x80, 0x01, // X, S; I; picture id 1 (M)
		0x10, 0x02, 0x00, // frame tag: keyframe (P=0), shown
		0x9d, 0x01, 0x2a, byte(w), byte(w >> 8), byte(h), byte(h >> 8), 0xaa}
}

func layerPacket(t testing.TB, ssrc uint32, seq uint16, marker bool, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: ssrc, Marker: marker}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publishLayers publishes a VP8 track with three layers, rids in the order
// given, and audio.
func publishLayers(t testing.TB, rids ...string) (*Stream, *Track, *[]*Track) {
	t.Helper()
	video := &Track{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000}
	if err := video.AddLayers(rids); err != nil {
		t.Fatal(err)
	}
	var asked []*Track
	var mu sync.Mutex
	audio := &Track{Kind: Audio, Codec: Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	s, err := NewHub(Reject).Publish("sim", PublishSpec{Tracks: []*Track{video, audio},
		RequestLayerKeyframe: func(l *Track) { mu.Lock(); asked = append(asked, l); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, video, &asked
}

func TestAddLayersChecks(t *testing.T) {
	for _, rids := range [][]string{{"a"}, {"a", "a"}, {"a", ""}, {"1", "2", "3", "4", "5", "6", "7", "8", "9"}} {
		if err := (&Track{Kind: Video, Codec: VP8}).AddLayers(rids); err == nil {
			t.Errorf("AddLayers(%q) accepted", rids)
		}
	}
	if err := (&Track{Kind: Audio, Codec: Opus}).AddLayers([]string{"a", "b"}); err == nil {
		t.Error("audio took layers")
	}
}

// Layers are ranked by the size their keyframes show, whatever the order
// the publisher named them in; the ranking is known once every layer has
// shown its size, and then names low, mid, high and rids work.
func TestLayersRankBySize(t *testing.T) {
	s, video, _ := publishLayers(t, "f", "q", "h")
	f, q, h := video.LayerByRID("f"), video.LayerByRID("q"), video.LayerByRID("h")
	if video.TopLayer() != nil || video.LayersSettled() {
		t.Fatal("ranking known before any packet")
	}
	now := time.Now()
	for i, c := range []struct {
		l    *Track
		w, h int
	}{{f, 1280, 720}, {q, 320, 180}} {
		if err := s.WriteRTP(c.l, layerPacket(t, uint32(10+i), 1, true, vp8Keyframe(c.w, c.h)), now); err != nil {
			t.Fatal(err)
		}
	}
	if video.TopLayer() != nil {
		t.Fatal("ranking known while layer h has not shown its size")
	}
	_ = s.WriteRTP(h, layerPacket(t, 12, 1, true, vp8Keyframe(640, 360)), now)
	if !video.LayersSettled() || video.TopLayer() != f {
		t.Fatalf("top layer %v, want f", video.TopLayer())
	}
	r := video.RankedLayers()
	if r[0] != q || r[1] != h || r[2] != f {
		t.Fatalf("ranked %s %s %s, want q h f", r[0].RID, r[1].RID, r[2].RID)
	}
	for name, want := range map[string]*Track{"low": q, "mid": h, "high": f, "HIGH": f, "h": h, "x": nil} {
		if got := video.Layer(name); got != want {
			t.Errorf("Layer(%q) = %v", name, got)
		}
	}
	if w, hh := f.Size(); w != 1280 || hh != 720 {
		t.Fatalf("f is %dx%d", w, hh)
	}
	info := s.Info()
	if v := info.Tracks[0]; len(v.Layers) != 3 || v.Layers[0].RID != "q" || v.Layers[2].Width != 1280 || v.Width != 1280 || v.Packets != 3 {
		t.Fatalf("API track %+v", v)
	}
	// A later size change (a publisher scaling a layer down) reorders.
	_ = s.WriteRTP(f, layerPacket(t, 10, 2, true, vp8Keyframe(160, 90)), now)
	if video.Layer("low") != f {
		t.Fatalf("after f shrank, low is %s", video.Layer("low").RID)
	}
}

// A layer that never sends does not hold the ranking back for ever.
func TestLayersSettleWithoutEveryLayer(t *testing.T) {
	s, video, _ := publishLayers(t, "a", "b")
	past := time.Now().Add(-LayerSettle - time.Second)
	_ = s.WriteRTP(video.LayerByRID("a"), layerPacket(t, 1, 1, true, vp8Keyframe(640, 360)), past)
	if top := video.TopLayer(); top == nil || top.RID != "a" {
		t.Fatalf("top %v, want a after the settle time", top)
	}
}

// The hub delivers to each subscription the layers it selected, and every
// packet of other tracks.
func TestSubscriptionLayerMask(t *testing.T) {
	s, video, _ := publishLayers(t, "q", "h", "f")
	q, h := video.LayerByRID("q"), video.LayerByRID("h")
	var got [2]atomic.Int64
	var gotAudio atomic.Int64
	subs := make([]*Subscription, 2)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		sub, err := s.Subscribe("test", &enderFunc{write: func(p *Packet) {
			if p.Track.Kind == Audio {
				gotAudio.Add(1)
				return
			}
			if p.Track != []*Track{q, h}[i] {
				t.Errorf("subscription %d got layer %s", i, p.Track.RID)
			}
			got[i].Add(1)
		}, end: wg.Done}, 64)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
	}
	subs[0].SetLayers(LayerMask(q))
	subs[1].SetLayers(LayerMask(h))
	now := time.Now()
	for i := range 10 {
		for j, l := range video.Layers() {
			_ = s.WriteRTP(l, layerPacket(t, uint32(j), uint16(i), false, []byte{0x10, 1, 2}), now)
		}
		_ = s.WriteRTP(s.Track(Audio), layerPacket(t, 99, uint16(i), false, []byte{1}), now)
	}
	s.Close()
	wg.Wait() // every queued packet delivered
	if got[0].Load() != 10 || got[1].Load() != 10 || gotAudio.Load() != 20 {
		t.Fatalf("got %d and %d layer packets, %d audio; want 10, 10, 20", got[0].Load(), got[1].Load(), gotAudio.Load())
	}
}

// A keyframe request for one layer reaches the publisher for that layer
// alone, merged per layer.
func TestLayerKeyframeRequests(t *testing.T) {
	s, video, asked := publishLayers(t, "q", "h")
	q, h := video.LayerByRID("q"), video.LayerByRID("h")
	for range 10 {
		s.RequestLayerKeyframe(q)
	}
	s.RequestLayerKeyframe(h)
	if len(*asked) != 2 || (*asked)[0] != q || (*asked)[1] != h {
		t.Fatalf("asked for %v", *asked)
	}
}

// The size of an H.264 track comes from its SPS, read from a real file.
func TestSizeFromH264SPS(t *testing.T) {
	samples, err := testmedia.ReadH264(testmedia.Path("h264.h264"), 30)
	if err != nil {
		t.Skipf("fixture: %v", err)
	}
	var sps []byte
	for _, nal := range testmedia.SplitAnnexB(samples[0].Data) {
		if nal[0]&0x1f == naluSPS {
			sps = nal
		}
	}
	tr := &Track{Kind: Video, Codec: H264}
	p := &Packet{n: len(sps)}
	p.RTP.Payload = sps
	tr.count(p)
	if w, h := tr.Size(); w != 640 || h != 360 {
		t.Fatalf("size %dx%d, want 640x360", w, h)
	}
}

// BenchmarkFanOutLayers is the fan-out of a three-layer publisher to
// subscriptions spread over the layers, each taking one: the mask check
// costs no allocation either.
func BenchmarkFanOutLayers(b *testing.B) {
	s, video, _ := publishLayers(b, "q", "h", "f")
	layers := video.Layers()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		sub, _ := s.Subscribe("bench", &enderFunc{write: func(*Packet) {}, end: wg.Done}, 4096)
		sub.SetLayers(LayerMask(layers[i%3]))
	}
	raws := make([][]byte, 3)
	for i := range raws {
		raws[i] = layerPacket(b, uint32(i), 1, false, make([]byte, 1100))
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = s.WriteRTP(layers[i%3], raws[i%3], now)
	}
	b.StopTimer()
	s.Close()
	wg.Wait()
}

// While someone needs aligned keyframes (HLS variants), a request for one
// layer's keyframe asks for every layer's.
func TestAlignKeyframes(t *testing.T) {
	var all atomic.Int64
	video := &Track{Kind: Video, Codec: VP8, ClockRate: 90000}
	if err := video.AddLayers([]string{"q", "f"}); err != nil {
		t.Fatal(err)
	}
	var one atomic.Int64
	s, err := NewHub(Reject).Publish("a", PublishSpec{Tracks: []*Track{video},
		RequestKeyframe: func() { all.Add(1) }, RequestLayerKeyframe: func(*Track) { one.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := s.AlignKeyframes()
	s.RequestLayerKeyframe(video.LayerByRID("q"))
	release()
	release() // safe twice
	s.RequestLayerKeyframe(video.LayerByRID("f"))
	if all.Load() != 1 || one.Load() != 1 {
		t.Fatalf("%d requests for every layer, %d for one; want 1 and 1", all.Load(), one.Load())
	}
}
