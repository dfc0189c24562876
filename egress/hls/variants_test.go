package hls

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

// segmentsOf lists a media playlist's complete segments: media sequence
// number and duration.
func segmentsOf(t *testing.T, body []byte) map[int]time.Duration {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("media playlist: %v\n%s", err, body)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		t.Fatalf("not a media playlist:\n%s", body)
	}
	out := map[int]time.Duration{}
	for i, s := range m.Segments {
		if s.Gap {
			continue
		}
		out[m.MediaSequence+i] = s.Duration
	}
	return out
}

// A simulcast stream's HLS is a multivariant playlist with one variant
// per layer, lowest first, each a real LL-HLS media playlist whose
// segments line up with the others' (same sequence numbers, same
// durations); ffprobe lists every variant and ffmpeg decodes each.
func TestSimulcastVariants(t *testing.T) {
	needTools(t)
	f := start(t, Config{}, hubtest.Source{Video: live.H264, Audio: true, Loop: true, Simulcast: true})
	url := f.url("cam", "index.m3u8")
	resp, body := f.get(t, url)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("index.m3u8: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("multivariant playlist: %v\n%s", err, body)
	}
	mv := pl.(*playlist.Multivariant)
	t.Logf("multivariant playlist:\n%s", body)
	wantRes := []string{"160x90", "320x180", "640x360"}
	if len(mv.Variants) != 3 || len(mv.Renditions) != 1 || mv.Renditions[0].URI == nil {
		t.Fatalf("%d variants, renditions %v", len(mv.Variants), mv.Renditions)
	}
	for i, v := range mv.Variants {
		if v.Resolution != wantRes[i] || v.Audio != "audio" || !strings.HasPrefix(strings.Join(v.Codecs, ","), "avc1.") || !strings.HasSuffix(strings.Join(v.Codecs, ","), ",opus") {
			t.Errorf("variant %d: %+v", i, v)
		}
		if i > 0 && v.Bandwidth <= mv.Variants[i-1].Bandwidth {
			t.Errorf("variant %d's BANDWIDTH %d is not above the lower one's %d", i, v.Bandwidth, mv.Variants[i-1].Bandwidth)
		}
	}

	// ffprobe opens every variant: three video streams and the audio.
	streams := probe(t, url)
	for _, res := range [][2]int{{160, 90}, {320, 180}, {640, 360}} {
		if !hasStream(streams, "h264", res[0], res[1]) {
			t.Errorf("ffprobe does not list the %dx%d variant: %+v", res[0], res[1], streams)
		}
	}
	if !hasStream(streams, "opus", 0, 0) {
		t.Errorf("ffprobe lists no audio: %+v", streams)
	}

	// Segments line up: wait for five complete ones in every variant.
	base := strings.TrimSuffix(url, "index.m3u8")
	var segs []map[int]time.Duration
	testwait.Until(t, 20*time.Second, "five segments in every variant", func() bool {
		segs = segs[:0]
		for _, v := range mv.Variants {
			_, b := f.get(t, base+v.URI)
			s := segmentsOf(t, b)
			if len(s) < 5 {
				return false
			}
			segs = append(segs, s)
		}
		return true
	})
	for msn, d := range segs[2] {
		for i, s := range segs[:2] {
			if other, ok := s[msn]; ok && (other-d > time.Millisecond || d-other > time.Millisecond) {
				t.Errorf("segment %d lasts %v in %s and %v in %s", msn, other, wantRes[i], d, wantRes[2])
			}
		}
	}
	common := 0
	for msn := range segs[2] {
		if _, ok := segs[0][msn]; ok {
			common++
		}
	}
	if common < 4 {
		t.Errorf("segment numbers do not line up: %v vs %v", keys(segs[0]), keys(segs[2]))
	}
	for i, v := range mv.Variants {
		if i != 2 {
			decode(t, base+v.URI) // the top one is decoded through the audio check below
		}
	}
	decode(t, url)
	var hlsSubs int
	for _, sub := range f.pub.Stream.Subscriptions() {
		if sub.Kind == "hls" {
			hlsSubs++
		}
	}
	if hlsSubs != 1 {
		t.Errorf("%d hls subscriptions, want one for every variant", hlsSubs)
	}
}

func keys(m map[int]time.Duration) []int {
	return slices.Sorted(maps.Keys(m))
}

// A VP8 simulcast stream has no HLS, as any VP8 stream.
func TestSimulcastVP8Refused(t *testing.T) {
	f := start(t, Config{}, hubtest.Source{Video: live.VP8, Loop: true, Simulcast: true})
	resp, body := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != 409 || !regexp.MustCompile(`VP8`).Match(body) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// When a simulcast publisher leaves, every variant's playlist ends, and
// the multivariant playlist is still served while the muxer lingers.
func TestSimulcastPublisherLeaves(t *testing.T) {
	f := start(t, Config{EndedLinger: 3 * time.Second}, hubtest.Source{Video: live.H264, Audio: true, Loop: true, Simulcast: true})
	url := f.url("cam", "index.m3u8")
	resp, body := f.get(t, url)
	if resp.StatusCode != 200 {
		t.Fatalf("index.m3u8: %d %s", resp.StatusCode, body)
	}
	mv := mustMultivariant(t, body)
	base := strings.TrimSuffix(url, "index.m3u8")
	f.stop()
	<-f.pub.Done()
	for _, v := range mv.Variants {
		testwait.Until(t, 10*time.Second, "the playlist of "+v.URI+" to end", func() bool {
			resp, pl := f.get(t, base+v.URI)
			return resp.StatusCode == 200 && strings.HasSuffix(string(pl), "#EXT-X-ENDLIST\n")
		})
	}
	if resp, body := f.get(t, url); resp.StatusCode != 200 || len(mustMultivariant(t, body).Variants) != 3 {
		t.Fatalf("the ended stream's multivariant playlist: %d\n%s", resp.StatusCode, body)
	}
	testwait.Until(t, 15*time.Second, "the muxer to stop", func() bool { return !f.srv.running("cam") })
}

func mustMultivariant(t *testing.T, body []byte) *playlist.Multivariant {
	t.Helper()
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		t.Fatalf("multivariant playlist: %v\n%s", err, body)
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok {
		t.Fatalf("not a multivariant playlist:\n%s", body)
	}
	return mv
}
