package hls

import (
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// Three layers of one 30 fps simulcast picture stream, each mapped to the
// stream's clock by its own Sender Reports (here: off by up to ±1.5 ms,
// and wandering), each with its own RTP offset, arriving in any order,
// with frames lost and a layer joining late: every picture gets one PTS
// in every layer that writes it, and each layer's PTS grows by the
// pictures' RTP time.
func TestAlignerOnePTSPerPicture(t *testing.T) {
	const clock = 90000
	rng := rand.New(rand.NewPCG(1, 2))
	var a aligner
	layers := make([]layerAlign, 3)
	rtpOff := []uint32{rng.Uint32(), rng.Uint32(), 0xffffff00} // the last wraps
	zero := time.Unix(1e9, 0)
	ptsOf := map[int]int64{} // picture → PTS, from whichever layer wrote it first
	last := make([]int64, 3)
	for pic := range 600 {
		order := rng.Perm(3)
		for _, i := range order {
			if i == 2 && pic < 45 {
				continue // the top layer starts 1.5 s late
			}
			if rng.IntN(20) == 0 {
				continue // lost
			}
			// Each layer's mapping error: a fixed part and a slow wander.
			errNs := time.Duration((i-1)*1200+int(300*float64(pic%90)/90)) * time.Microsecond
			ticks := uint32(pic * 3000)
			at := zero.Add(time.Duration(pic)*time.Second/30 + errNs)
			f := frames.Frame{RTPTime: ticks + rtpOff[i], Time: at}
			own := durationToTicks(at.Sub(zero), clock)
			pts := a.place(&layers[i], &f, own, clock)
			if want, ok := ptsOf[pic]; ok && pts != want {
				t.Fatalf("picture %d: layer %d has PTS %d, another layer %d", pic, i, pts, want)
			}
			ptsOf[pic] = pts
			if last[i] != 0 && pts <= last[i] {
				t.Fatalf("picture %d: layer %d's PTS %d does not grow from %d", pic, i, pts, last[i])
			}
			last[i] = pts
		}
	}
	// The timeline follows the pictures: 3000 ticks apart, within the
	// mapping error of the first layer to write each.
	for pic := 1; pic < 600; pic++ {
		d, ok := ptsOf[pic]-ptsOf[pic-1], ptsOf[pic-1] != 0
		if ok && (d < 3000-300 || d > 3000+300) {
			t.Errorf("pictures %d and %d are %d ticks apart", pic-1, pic, d)
		}
	}
}

// A layer whose frames come when no other layer has written for a while
// keeps its own clock, and joins as soon as the others write again.
func TestAlignerJoinsWhenOthersWrite(t *testing.T) {
	const clock = 90000
	var a aligner
	var lo, hi layerAlign
	zero := time.Unix(1e9, 0)
	frame := func(off uint32, pic int, errNs time.Duration) (*frames.Frame, int64) {
		at := zero.Add(time.Duration(pic)*time.Second/30 + errNs)
		return &frames.Frame{RTPTime: off + uint32(pic*3000), Time: at}, durationToTicks(at.Sub(zero), clock)
	}
	f, own := frame(7, 0, 0)
	if pts := a.place(&lo, f, own, clock); pts != own {
		t.Fatalf("the origin's PTS %d, want its own %d", pts, own)
	}
	// hi's first frame is 2 s later, with nothing written since.
	f, own = frame(99, 60, time.Millisecond)
	if pts := a.place(&hi, f, own, clock); pts != own || hi.joined {
		t.Fatalf("a layer alone: PTS %d (own %d), joined %v", pts, own, hi.joined)
	}
	f, own = frame(7, 61, 0)
	want := a.place(&lo, f, own, clock)
	f, own = frame(99, 61, time.Millisecond)
	if pts := a.place(&hi, f, own, clock); pts != want || !hi.exact {
		t.Fatalf("after the origin wrote picture 61: PTS %d, want %d (exact %v)", pts, want, hi.exact)
	}
	// mid's first frame is picture 62, before any other layer's: it joins
	// by the Time from picture 61, then takes the others' PTS exactly.
	var mid layerAlign
	f, own = frame(12345, 62, -2*time.Millisecond)
	first := a.place(&mid, f, own, clock)
	if !mid.joined || mid.exact || first-want < 3000-200 || first-want > 3000+200 {
		t.Fatalf("mid's first frame at PTS %d, %d after picture 61 (joined %v, exact %v)", first, first-want, mid.joined, mid.exact)
	}
	f, own = frame(7, 62, 0)
	if pts := a.place(&lo, f, own, clock); pts != first {
		t.Fatalf("picture 62: the origin's PTS %d, mid named %d", pts, first)
	}
	f, own = frame(7, 63, 0)
	want = a.place(&lo, f, own, clock)
	f, own = frame(12345, 63, -2*time.Millisecond)
	if pts := a.place(&mid, f, own, clock); pts != want || !mid.exact {
		t.Fatalf("picture 63: mid's PTS %d, want %d (exact %v)", pts, want, mid.exact)
	}
}

// gateMuxer is a simulcast muxer of three layers and audio whose writes
// are recorded instead of muxed: layer rid → PTS of each frame written,
// and whether the first was a keyframe.
type gateMuxer struct {
	m      *muxer
	layers map[string]*track
	audio  *track
	wrote  map[string][]int64
	firstK map[string]bool
	// keyframes counts the publisher's keyframe requests.
	keyframes atomic.Int32
}

func newGateMuxer(t *testing.T) *gateMuxer {
	t.Helper()
	v := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000}
	if err := v.AddLayers([]string{"q", "h", "f"}); err != nil {
		t.Fatal(err)
	}
	a := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	g := &gateMuxer{layers: map[string]*track{}, wrote: map[string][]int64{}, firstK: map[string]bool{}}
	s, err := live.NewHub(live.Reject).Publish("cam", live.PublishSpec{Session: "s", Protocol: "test", Tracks: []*live.Track{v, a},
		RequestKeyframe: func() { g.keyframes.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	g.m = &muxer{stream: s, log: slog.New(slog.DiscardHandler), tracks: map[*live.Track]*track{}, variants: make([]*variant, 3)}
	add := func(in *live.Track, name string, clock int64) *track {
		tr := &track{in: in, video: in.Kind == live.Video, layer: in.Kind == live.Video, clock: clock}
		tr.write = func(_ *gohlslib.Muxer, _ *gohlslib.Track, _ time.Time, pts int64, units [][]byte) error {
			if len(g.wrote[name]) == 0 {
				g.firstK[name] = string(units[0]) == "key"
			}
			g.wrote[name] = append(g.wrote[name], pts)
			return nil
		}
		g.m.tracks[in] = tr
		return tr
	}
	for _, l := range v.Layers() {
		g.layers[l.RID] = add(l, l.RID, 90000)
	}
	g.audio = add(a, "audio", 48000)
	return g
}

var gateZero = time.Unix(1e9, 0)

// picture writes layer rid's frame of picture pic (30 fps, a keyframe
// every 30 unless key says otherwise), its Time off by the layer's
// mapping error.
func (g *gateMuxer) picture(rid string, pic int, errNs time.Duration, key ...bool) {
	k := pic%30 == 0
	if len(key) > 0 {
		k = key[0]
	}
	unit := "delta"
	if k {
		unit = "key"
	}
	off := map[string]uint32{"q": 1000, "h": 2_000_000, "f": 4_000_000_000}[rid]
	g.m.handle(g.layers[rid], frames.Frame{RTPTime: off + uint32(pic*3000), Time: gateZero.Add(time.Duration(pic)*time.Second/30 + errNs),
		Keyframe: k, Units: [][]byte{[]byte(unit)}})
}

func (g *gateMuxer) audioAt(d time.Duration) {
	g.m.handle(g.audio, frames.Frame{Time: gateZero.Add(d), Units: [][]byte{[]byte("opus")}})
}

// The subscription began between the layers' packets of keyframe 0: q
// and h had sent theirs, f had not. Every layer starts at keyframe 30, at
// one PTS, and the audio with it; nothing of f's first GOP is written.
func TestLayersStartAtOnePicture(t *testing.T) {
	g := newGateMuxer(t)
	for pic := range 31 {
		g.audioAt(time.Duration(pic) * time.Second / 30)
		for _, rid := range []string{"q", "h", "f"} {
			if pic == 0 && rid != "f" {
				continue // their keyframe 0 came before the subscription
			}
			if pic > 0 && pic < 30 && rid != "f" {
				continue // and no frame until their next keyframe
			}
			g.picture(rid, pic, time.Duration(len(rid))*time.Millisecond)
		}
	}
	for pic := 31; pic < 40; pic++ {
		g.audioAt(time.Duration(pic) * time.Second / 30)
		for _, rid := range []string{"f", "q", "h"} {
			g.picture(rid, pic, 0)
		}
	}
	for _, rid := range []string{"q", "h", "f"} {
		w := g.wrote[rid]
		if len(w) != 10 || !g.firstK[rid] || w[0] != g.wrote["q"][0] {
			t.Errorf("layer %s wrote %d frames from PTS %v (a keyframe: %v), want 10 from keyframe 30 at q's %d", rid, len(w), w[:min(len(w), 1)], g.firstK[rid], g.wrote["q"][0])
		}
	}
	if a := g.wrote["audio"]; len(a) == 0 || len(a) > 10 {
		t.Errorf("%d audio frames written, want those from keyframe 30 on", len(a))
	}
}

// A layer that has no keyframe within layerWait does not hold the others
// back: they start together; it starts at its first keyframe after.
func TestLayersDoNotWaitForeverForALayer(t *testing.T) {
	g := newGateMuxer(t)
	for pic := range 100 {
		for _, rid := range []string{"q", "h", "f"} {
			if rid == "f" && pic < 90 {
				continue // the top layer held back by the browser
			}
			g.picture(rid, pic, 0)
		}
	}
	q, h, f := g.wrote["q"], g.wrote["h"], g.wrote["f"]
	if len(q) == 0 || len(h) == 0 || q[0] != h[0] || len(q) != len(h) {
		t.Fatalf("q wrote %d frames, h %d: they should start together, at once", len(q), len(h))
	}
	if len(q) < 100-61-1 {
		t.Errorf("q wrote %d frames: it waited for f for longer than layerWait", len(q))
	}
	if len(f) != 10 || !g.firstK["f"] {
		t.Errorf("f wrote %d frames (from a keyframe: %v), want the 10 from keyframe 90", len(f), g.firstK["f"])
	}
}

// A layer whose keyframes are not the others' (its GOP began earlier and
// runs on) is asked for one, and starts at it.
func TestLayerWithOtherKeyframesIsAskedForOne(t *testing.T) {
	g := newGateMuxer(t)
	for pic := range 40 {
		g.picture("f", pic, 0, pic == 0 || pic == 39)
		if pic >= 30 {
			g.picture("q", pic, 0)
			g.picture("h", pic, 0)
		}
	}
	if g.keyframes.Load() == 0 {
		t.Error("no keyframe asked for the top layer")
	}
	if f := g.wrote["f"]; len(f) != 1 || !g.firstK["f"] || len(g.wrote["q"]) != 10 {
		t.Errorf("f wrote %d frames (from a keyframe: %v), q %d; want f's keyframe 39 only, and q all from 30", len(f), g.firstK["f"], len(g.wrote["q"]))
	}
}
