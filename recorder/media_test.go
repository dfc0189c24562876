package recorder

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/live"
)

// requireTools skips when ffmpeg is missing, except in CI where that is a
// failure.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range append([]string{"ffmpeg", "ffprobe"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to check recordings: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return testlog.New(t)
}

func newTestRecorder(t *testing.T) *Recorder {
	t.Helper()
	r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRecorded waits until the publication is over and the recording's
// consumer has finalized the file, then returns the final metadata.
func waitRecorded(t *testing.T, r *Recorder, p *hubtest.Publisher) Info {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("publication did not end")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("publishing: %v", err)
	}
	for _, sub := range p.Stream.Subscriptions() {
		if sub.Kind != string(live.OutputRecord) {
			continue
		}
		select {
		case <-sub.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("the recording's consumer did not finish: it is blocked")
		}
	}
	return onlySidecar(t, r, p.Stream.Name)
}

func onlySidecar(t *testing.T, r *Recorder, stream string) Info {
	t.Helper()
	sidecars, _ := filepath.Glob(filepath.Join(r.Dir(), SafeName(stream), "*.json"))
	if len(sidecars) != 1 {
		t.Fatalf("want one sidecar for %s, found %v", stream, sidecars)
	}
	info, err := readSidecar(sidecars[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := info.Path + ".json"; sidecars[0] != want {
		t.Errorf("sidecar %s does not sit next to %s", sidecars[0], info.Path)
	}
	return info
}

type probe struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

// seekOutput decodes five frames after a seek.
var seekOutput = []string{"-frames:v", "5"}

// ffmpegErrors decodes the file and returns what ffmpeg reports at level
// error: nothing for a clean file. in goes before -i, out after it; the
// frames go to the null muxer with their timestamps as stored
// (mediacheck.AsStored says why).
func ffmpegErrors(t *testing.T, path string, in, out []string) string {
	t.Helper()
	cmd := append([]string{"-nostdin", "-v", "error"}, in...)
	cmd = append(cmd, "-i", path)
	cmd = append(append(append(cmd, out...), mediacheck.AsStored...), "-f", "null", "-")
	b, err := exec.Command("ffmpeg", cmd...).CombinedOutput()
	if err != nil {
		return string(b) + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// lastVideoPTS is the presentation time of the last video packet, in
// seconds, as read by ffprobe (it does not trust the header's Duration).
func lastVideoPTS(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", path, err)
	}
	last := 0.0
	for _, line := range strings.Fields(string(out)) {
		if v, err := strconv.ParseFloat(strings.Trim(line, ","), 64); err == nil {
			last = max(last, v)
		}
	}
	return last
}

func TestRecordsRealMedia(t *testing.T) {
	requireTools(t, "mkvinfo")
	cases := []struct {
		name      string
		src       hubtest.Source
		container string
		video     string
		audio     bool
		width     int
		height    int
		seconds   float64
	}{
		{"vp8-opus", hubtest.Source{Video: live.VP8, Audio: true}, "webm", "vp8", true, 640, 360, 6},
		{"h264-opus", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true}, "mkv", "h264", true, 640, 360, 6},
		{"h264-baseline", hubtest.Source{Video: live.H264, VideoFile: "h264-baseline.h264"}, "mkv", "h264", false, 640, 360, 3},
		{"h265-opus", hubtest.Source{Video: live.H265, Audio: true}, "mkv", "hevc", true, 640, 360, 6},
		{"h265-opus-separate", hubtest.Source{Video: live.H265, Audio: true, SeparateParamSets: true}, "mkv", "hevc", true, 640, 360, 6},
		{"vp9-opus", hubtest.Source{Video: live.VP9, Audio: true}, "webm", "vp9", true, 640, 360, 6},
		{"av1", hubtest.Source{Video: live.AV1}, "webm", "av1", false, 640, 360, 3},
		{"opus-only", hubtest.Source{Audio: true}, "webm", "", true, 0, 0, 6},
		// Simulcast (160x90, 320x180, 640x360): only the top layer.
		{"simulcast-h264", hubtest.Source{Video: live.H264, Audio: true, Simulcast: true}, "mkv", "h264", true, 640, 360, 6},
		{"simulcast-vp8", hubtest.Source{Video: live.VP8, Audio: true, Simulcast: true}, "webm", "vp8", true, 640, 360, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newTestRecorder(t)
			hub := live.NewHub(live.Reject)
			hub.OnPublish(r.Record)
			p, err := hubtest.Publish(context.Background(), hub, "live/"+tc.name, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			info := waitRecorded(t, r, p)
			checkInfo(t, info, tc.container)
			if parts, _ := filepath.Glob(filepath.Join(r.Dir(), "*", "*.part")); len(parts) > 0 {
				t.Errorf(".part files left: %v", parts)
			}
			if tc.video != "" && p.KeyframeRequests.Load() == 0 && p.LayerKeyframeRequests[2].Load() == 0 {
				t.Error("the recorder never asked the publisher for a keyframe")
			}

			pr := ffprobe(t, info.Path)
			if !strings.Contains(pr.Format.FormatName, "matroska") {
				t.Errorf("format %q, want matroska/webm", pr.Format.FormatName)
			}
			dur, _ := strconv.ParseFloat(pr.Format.Duration, 64)
			if math.Abs(dur-tc.seconds) > tc.seconds/10 {
				t.Errorf("duration %.3f s, want %.1f s ± 10%%", dur, tc.seconds)
			}
			if got := float64(info.DurationMS) / 1000; math.Abs(got-dur) > 0.1 {
				t.Errorf("sidecar duration %.3f s, ffprobe %.3f s", got, dur)
			}
			var gotVideo, gotAudio string
			for _, s := range pr.Streams {
				switch s.CodecType {
				case "video":
					gotVideo = s.CodecName
					if s.Width != tc.width || s.Height != tc.height {
						t.Errorf("video %dx%d, want %dx%d", s.Width, s.Height, tc.width, tc.height)
					}
				case "audio":
					gotAudio = s.CodecName
				}
			}
			if gotVideo != tc.video {
				t.Errorf("video codec %q, want %q", gotVideo, tc.video)
			}
			if tc.audio != (gotAudio == "opus") {
				t.Errorf("audio codec %q, want opus: %v", gotAudio, tc.audio)
			}
			if tc.video != "" && (info.Width != tc.width || info.Height != tc.height) {
				t.Errorf("sidecar size %dx%d, want %dx%d", info.Width, info.Height, tc.width, tc.height)
			}

			if msg := ffmpegErrors(t, info.Path, nil, nil); msg != "" {
				t.Errorf("decoding the recording reports errors:\n%s", msg)
			}
			mid := strconv.FormatFloat(dur/2, 'f', 2, 64)
			if tc.video != "" {
				if msg := ffmpegErrors(t, info.Path, []string{"-ss", mid}, seekOutput); msg != "" {
					t.Errorf("seeking to %s s reports errors:\n%s", mid, msg)
				}
			}
			out, err := exec.Command("mkvinfo", info.Path).CombinedOutput()
			if err != nil {
				t.Fatalf("mkvinfo: %v\n%s", err, out)
			}
			for _, want := range []string{"Cues", "Duration", "Document type: " + map[string]string{"mkv": "matroska", "webm": "webm"}[tc.container]} {
				if !strings.Contains(string(out), want) {
					t.Errorf("mkvinfo shows no %q:\n%s", want, out)
				}
			}
			t.Logf("%s: %d bytes, %.3f s (ffprobe), %d ms (sidecar)", filepath.Base(info.Path), info.Size, dur, info.DurationMS)
		})
	}
}

func checkInfo(t *testing.T, info Info, container string) {
	t.Helper()
	if info.State != StateFinished || info.Error != "" {
		t.Errorf("state %q (%s), want finished", info.State, info.Error)
	}
	if info.Container != container || filepath.Ext(info.Path) != "."+container {
		t.Errorf("container %q, path %s, want %s", info.Container, info.Path, container)
	}
	st, err := os.Stat(info.Path)
	if err != nil {
		t.Fatalf("the recording: %v", err)
	}
	if st.Size() != info.Size {
		t.Errorf("sidecar size %d, file has %d bytes", info.Size, st.Size())
	}
	if info.ID == "" || !strings.HasPrefix(filepath.Base(info.Path), info.ID+".") {
		t.Errorf("id %q does not name %s", info.ID, info.Path)
	}
	if info.Start.IsZero() || info.End.Before(info.Start) {
		t.Errorf("start %v, end %v", info.Start, info.End)
	}
}

// chaos sits between the stream and the recording: it swaps adjacent
// packets of a track and drops some, as a network does.
type chaos struct {
	next live.Consumer
	held map[*live.Track]*live.Packet
	n    int
}

func (c *chaos) WritePacket(p *live.Packet) {
	c.n++
	dropEvery := 50
	if p.Track.Kind == live.Video {
		dropEvery = 97
	}
	if c.n%dropEvery == 0 {
		return
	}
	if c.held[p.Track] == nil && c.n%5 == 0 {
		p.Retain()
		c.held[p.Track] = p
		return
	}
	c.next.WritePacket(p)
	if h := c.held[p.Track]; h != nil {
		c.next.WritePacket(h)
		h.Release()
		delete(c.held, p.Track)
	}
}

func (c *chaos) StreamEnded() {
	for tr, h := range c.held {
		c.next.WritePacket(h)
		h.Release()
		delete(c.held, tr)
	}
	c.next.(live.StreamEnder).StreamEnded()
}

func TestReorderAndLoss(t *testing.T) {
	requireTools(t)
	for _, src := range []hubtest.Source{
		{Video: live.H264, Audio: true, SeparateParamSets: true},
		{Video: live.H265, Audio: true},
		{Video: live.VP8, Audio: true},
	} {
		t.Run(string(src.Video), func(t *testing.T) {
			t.Parallel()
			r := newTestRecorder(t)
			r.wrap = func(c live.Consumer) live.Consumer {
				return &chaos{next: c, held: map[*live.Track]*live.Packet{}}
			}
			hub := live.NewHub(live.Reject)
			hub.OnPublish(r.Record)
			p, err := hubtest.Publish(context.Background(), hub, "lossy", src)
			if err != nil {
				t.Fatal(err)
			}
			info := waitRecorded(t, r, p)
			if info.State != StateFinished {
				t.Fatalf("state %q: %s", info.State, info.Error)
			}
			if msg := ffmpegErrors(t, info.Path, nil, nil); msg != "" {
				t.Errorf("decoding a recording made through loss reports errors:\n%s", msg)
			}
			last := lastVideoPTS(t, info.Path)
			if last < 1 {
				t.Errorf("only %.2f s of video survived", last)
			}
			t.Logf("%s: %d bytes, video up to %.2f s, %d ms", filepath.Base(info.Path), info.Size, last, info.DurationMS)
		})
	}
}

// TestCrashChild is the recording process that TestCrash kills. It
// publishes H.264, or the codec in REEL_RECORDER_CRASH_CODEC.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("REEL_RECORDER_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrash")
	}
	video := live.Codec(cmp.Or(os.Getenv("REEL_RECORDER_CRASH_CODEC"), string(live.H264)))
	r, err := New(Config{Dir: dir, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	if _, err := hubtest.Publish(context.Background(), hub, "crash",
		hubtest.Source{Video: video, Audio: true, SeparateParamSets: true, Loop: true}); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("publishing\n")
	select {}
}

func TestCrash(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "REEL_RECORDER_CRASH_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := stdout.Read(buf)
	if !bytes.Contains(buf[:n], []byte("publishing")) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not start publishing: %q", buf[:n])
	}
	time.Sleep(3 * time.Second)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

	parts, _ := filepath.Glob(filepath.Join(dir, "crash", "*.mkv.part"))
	if len(parts) != 1 {
		t.Fatalf("want one .part file after the crash, found %v", parts)
	}
	info, err := readSidecar(strings.TrimSuffix(parts[0], ".part") + ".json")
	if err != nil || info.State != StateRecording || info.Path != parts[0] {
		t.Errorf("sidecar after the crash: %+v, %v", info, err)
	}
	// The clusters before the last are whole. A kill that lands inside
	// the write of a cluster (one write call per cluster, file.go) can
	// still tear that one: the kernel copies a large write to the page
	// cache a chunk at a time and stops at a fatal signal (seen once in
	// CI: the file ended at 262144 bytes). ffmpeg then says the file
	// ended prematurely after everything before it; repair (on restart)
	// ends the file at the last whole frame.
	if msg := ffmpegErrors(t, parts[0], nil, nil); msg != "" {
		if torn := "File ended prematurely"; strings.Count(msg, "\n") == 0 && strings.Contains(msg, torn) {
			t.Logf("the kill tore the cluster being written: %s", msg)
		} else {
			t.Errorf("decoding the crashed recording reports errors:\n%s", msg)
		}
	}
	last := lastVideoPTS(t, parts[0])
	if last < 1 {
		t.Errorf("the crashed recording holds %.2f s of video, want ≥ 1 s", last)
	}
	st, _ := os.Stat(parts[0])
	t.Logf("after SIGKILL at 3 s: %s, %d bytes, video up to %.2f s", filepath.Base(parts[0]), st.Size(), last)
}

// A publisher that does not answer keyframe requests (a keyframe every
// 5 s here) makes the recorder cut clusters without one, every
// maxClusterMS: the Cues must not send a player to them.
func TestCuesOnlyOnKeyframes(t *testing.T) {
	requireTools(t, "ffmpeg", "mkvinfo")
	r := newTestRecorder(t)
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	p, err := hubtest.Publish(context.Background(), hub, "live/gop5", hubtest.Source{Video: live.H264, VideoFile: "h264-gop5.h264"})
	if err != nil {
		t.Fatal(err)
	}
	info := waitRecorded(t, r, p)
	f, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	cues, err := readCues(f, h)
	if err != nil || len(cues) == 0 {
		t.Fatalf("the recording has no Cues (%v)", err)
	}
	for _, c := range cues {
		pos := h.segmentData + int64(c.CueTrackPositions[0].CueClusterPosition)
		fr, ok := firstFrameAt(f, h, pos)
		if !ok {
			t.Fatalf("cue point at %d ms names no cluster", c.CueTime)
		}
		if !fr.keyframe {
			t.Errorf("cue point at %d ms: its cluster starts with a frame that is not a keyframe", c.CueTime)
		}
	}
	// The file is still whole for a player that reads it through.
	if out := ffmpegErrors(t, info.Path, nil, nil); out != "" {
		t.Errorf("ffmpeg decoding the recording: %s", out)
	}
	// And the clusters without a keyframe are still there, without cues.
	if clusters := countClusters(t, info.Path); clusters <= len(cues) {
		t.Errorf("%d clusters, %d cue points: the test made no cluster without a keyframe", clusters, len(cues))
	}
}

// countClusters counts the Cluster elements of the Matroska file at path,
// as mkvinfo lists them.
func countClusters(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("mkvinfo", "-v", path).Output()
	if err != nil {
		t.Fatalf("mkvinfo: %v", err)
	}
	return strings.Count(string(out), "|+ Cluster\n")
}
