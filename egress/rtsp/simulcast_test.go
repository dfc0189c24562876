package rtsp

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// simulcastCodecs are the codecs hubtest has layer fixtures for, with
// the names ffprobe gives them.
var simulcastCodecs = []struct {
	codec live.Codec
	name  string
}{{live.H264, "h264"}, {live.VP8, "vp8"}}

// A simulcast stream is served at its top layer on the plain path and at
// each layer with ?layer= (a rank name or a rid); ffprobe sees each
// layer's size and ffmpeg decodes it, over TCP and UDP. A layer the
// stream does not have is 404. The fixture answers the keyframe request
// of each PLAY as an encoder does: a reader that started mid-GOP would
// decode pictures whose references it never got, and ffmpeg logs each.
func TestSimulcastLayers(t *testing.T) {
	needTool(t, "ffprobe")
	needTool(t, "ffmpeg")
	for _, c := range simulcastCodecs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hub := live.NewHub(live.Reject)
			publish(t, hub, "sim", hubtest.Source{Video: c.codec, Audio: true, Loop: true, Simulcast: true, KeyframeOnRequest: true})
			s := startServer(t, hub, true)
			for path, want := range map[string][2]int{
				"sim": {640, 360}, "sim?layer=low": {160, 90}, "sim?layer=mid": {320, 180}, "sim?layer=q": {160, 90},
			} {
				streams, err := ffprobe(t, streamURL(s, path), "tcp")
				if err != nil {
					t.Fatalf("ffprobe %s: %v", path, err)
				}
				v, a := findProbed(streams, "video"), findProbed(streams, "audio")
				if v == nil || v.CodecName != c.name || v.Width != want[0] || v.Height != want[1] || a == nil || a.CodecName != "opus" {
					t.Errorf("%s: ffprobe sees %+v and %+v, want %s %dx%d and opus", path, v, a, c.name, want[0], want[1])
				}
			}
			// The layers' pictures are decoded; audio is not this test's
			// subject (TestLipSyncEndToEnd and TestSenderReports judge
			// RTSP's timing).
			decode3s(t, streamURL(s, "sim?layer=low"), "udp", "-map", "0:v")
			decode3s(t, streamURL(s, "sim"), "tcp", "-map", "0:v")
			if _, err := ffprobe(t, streamURL(s, "sim?layer=x"), "tcp"); err == nil {
				t.Error("a layer the stream does not have was served")
			}
		})
	}
}

// A browser may hold its top layer back for seconds while its bandwidth
// estimate ramps up. The plain path of a reader that came before then is
// bound to the best layer so far (mid, here), and moves to the top layer
// once it sends, as one continuous stream (watchFollow). A ?layer= path
// stays where it was put.
func TestPlainPathFollowsTopLayer(t *testing.T) {
	needTool(t, "ffmpeg")
	for _, c := range simulcastCodecs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			hub := live.NewHub(live.Reject)
			pub, _ := publish(t, hub, "late", hubtest.Source{Video: c.codec, Audio: true, Loop: true, Simulcast: true,
				KeyframeOnRequest: true, LateLayer: "f", LateBy: 6 * time.Second})
			s := startServer(t, hub, true)
			pinned, err := play(t, streamURL(s, "late?layer=h"), gortsplib.TransportTCP)
			if err != nil {
				t.Fatal(err)
			}
			watchFollow(t, s, "late", 12, []string{"320x180", "640x360"}, time.Second/5)
			if n := pub.LayerKeyframeRequests[2].Load(); n == 0 {
				t.Error("the top layer's keyframe was never asked for")
			}
			s.mu.Lock()
			ls := s.streams[streamKey("late", "h")]
			s.mu.Unlock()
			if ls == nil || ls.layer.Load().RID != "h" {
				t.Error("the ?layer=h path moved off its layer")
			}
			if pinned.packets.Load() == 0 {
				t.Error("the ?layer=h reader got nothing")
			}
		})
	}
}

// A browser short of bandwidth suspends its top layer: the plain path
// moves down to the best layer still sending, and back up when the top
// one comes back, in one stream; the pause itself is a gap in time of
// about the second it takes to notice, not a gap in the numbering.
func TestPlainPathFollowsPausedTopLayer(t *testing.T) {
	needTool(t, "ffmpeg")
	hub := live.NewHub(live.Reject)
	publish(t, hub, "pause", hubtest.Source{Video: live.VP8, Audio: true, Loop: true, Simulcast: true,
		KeyframeOnRequest: true, PauseLayer: "f", PauseAt: 4 * time.Second, PauseFor: 5 * time.Second})
	s := startServer(t, hub, true)
	watchFollow(t, s, "pause", 12, []string{"640x360", "320x180", "640x360"}, 2*time.Second)
}

// watchFollow has ffmpeg decode seconds of path's video and a gortsplib
// reader watch its packets at the same time: ffmpeg must log no error and
// see the picture sizes in the order of want, the reader's video sequence
// numbers must run on without a gap or a repeat, and its timestamps go
// forward, by at most maxStep a packet.
func watchFollow(t *testing.T, s *Server, path string, seconds int, want []string, maxStep time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	var sizes, ffErrors []string
	var ffErr error
	wg.Go(func() { sizes, ffErrors, ffErr = showSizes(streamURL(s, path), seconds) })
	c, desc, err := setUp(t, streamURL(s, path), gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	var pkts []rtp.Header
	var video *description.Media
	for _, m := range desc.Medias {
		if m.Type == description.MediaTypeVideo {
			video = m
		}
	}
	c.OnPacketRTP(video, video.Formats[0], func(pkt *rtp.Packet) {
		mu.Lock()
		pkts = append(pkts, pkt.Header)
		mu.Unlock()
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if ffErr != nil || len(ffErrors) > 0 {
		t.Fatalf("ffmpeg: %v %q", ffErr, ffErrors)
	}
	var seen []string
	for _, sz := range sizes {
		if len(seen) == 0 || seen[len(seen)-1] != sz {
			seen = append(seen, sz)
		}
	}
	if len(sizes) < 200 || !slices.Equal(seen, want) {
		t.Fatalf("ffmpeg decoded %d frames, of sizes %v in turn; want %v", len(sizes), seen, want)
	}
	mu.Lock()
	defer mu.Unlock()
	most := int32(maxStep.Seconds() * 90000)
	for i := 1; i < len(pkts); i++ {
		a, b := pkts[i-1], pkts[i]
		if b.SequenceNumber != a.SequenceNumber+1 {
			t.Fatalf("packet %d of %d: sequence number %d after %d", i, len(pkts), b.SequenceNumber, a.SequenceNumber)
		}
		if d := int32(b.Timestamp - a.Timestamp); d < 0 || d > most {
			t.Fatalf("packet %d of %d: timestamp %d after %d (%d ticks)", i, len(pkts), b.Timestamp, a.Timestamp, d)
		}
	}
}

// showSizes has ffmpeg decode seconds of url's video over TCP and returns
// the picture size of every frame (showinfo) and the lines logged at
// level error or worse.
func showSizes(url string, seconds int) (sizes, errs []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-loglevel", "level+info", "-rtsp_transport", "tcp", "-i", url,
		"-map", "0:v", "-t", strconv.Itoa(seconds), "-vf", "showinfo", "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	size := regexp.MustCompile(` s:(\d+x\d+) `)
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "[error]") || strings.Contains(line, "[fatal]") {
			errs = append(errs, line)
		}
		if strings.Contains(line, "Parsed_showinfo") {
			if m := size.FindStringSubmatch(line); m != nil {
				sizes = append(sizes, m[1])
			}
		}
	}
	return sizes, errs, nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
