package exports

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
)

// The meeting every test exports, recorded once by the real recorder
// into a real occurrence: alice (red, H.264, 400 Hz) from 0 to 6.5 s; bob
// (green, VP8, 1000 Hz) from 1.5 to 3 s and again from 4 to 6 s (one
// reconnect); carol (blue, H.264, 2500 Hz) from 2.5 to 6.5 s.
var (
	meetingOnce sync.Once
	meetingDir  string
	meetingMgr  *meetings.Manager
	meetingID   string
	meetingErr  error
)

var participants = []struct {
	name  string
	codec live.Codec
	video string
	audio string
	hz    float64
	rgb   [3]int
}{
	{"alice", live.H264, "meet-red.h264", "meet-400.ogg", 400, [3]int{255, 0, 0}},
	{"bob", live.VP8, "meet-green.ivf", "meet-1000.ogg", 1000, [3]int{0, 128, 0}},
	{"carol", live.H264, "meet-blue.h264", "meet-2500.ogg", 2500, [3]int{0, 0, 255}},
}

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // the hub's and recorder's logs
	code := m.Run()
	if meetingMgr != nil {
		meetingMgr.Close()
	}
	if meetingDir != "" && os.Getenv("REEL_KEEP") == "" {
		os.RemoveAll(meetingDir)
	}
	os.Exit(code)
}

// requireFFmpeg skips when ffmpeg is missing, except in CI.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed to check exports: %v", tool, err)
			}
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

// recordedMeeting records the meeting (once for the package) and returns
// its manager and occurrence id.
func recordedMeeting(t *testing.T) (*meetings.Manager, meetings.Occurrence) {
	t.Helper()
	requireFFmpeg(t)
	meetingOnce.Do(func() { meetingErr = recordMeeting() })
	if meetingErr != nil {
		t.Fatalf("recording the meeting: %v", meetingErr)
	}
	oc, err := meetingMgr.Get(meetingID)
	if err != nil {
		t.Fatal(err)
	}
	return meetingMgr, oc
}

func recordMeeting() error {
	dir, err := os.MkdirTemp("", "reel-exports-")
	if err != nil {
		return err
	}
	meetingDir = dir
	log := slog.New(slog.DiscardHandler)
	mm, err := meetings.New(meetings.Config{Dir: dir, Grace: -1, Logger: log})
	if err != nil {
		return err
	}
	meetingMgr = mm
	rec, err := recorder.New(recorder.Config{Dir: dir, Enabled: true, Logger: log, Place: mm.Place,
		OnStart: mm.RecordingStarted, OnFinish: mm.RecordingFinished, OnEvent: mm.RecordingEvent})
	if err != nil {
		return err
	}
	defer rec.Close()
	hub := live.NewHub(live.Reject)
	hub.OnPublish(mm.Published)
	hub.OnUnpublish(mm.Unpublished)
	hub.OnPublish(rec.Record)

	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	publish := func(i int, at, until time.Duration) {
		defer wg.Done()
		time.Sleep(time.Until(start.Add(at)))
		p := participants[i]
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(until))
		defer cancel()
		pub, err := hubtest.Publish(ctx, hub, "standup/"+p.name, hubtest.Source{Video: p.codec, VideoFile: p.video, AudioFile: p.audio})
		if err == nil {
			<-pub.Done()
			for _, sub := range pub.Stream.Subscriptions() {
				<-sub.Done()
			}
		}
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Add(4)
	go publish(0, 0, 6500*time.Millisecond)
	go func() {
		publish(1, 1500*time.Millisecond, 3000*time.Millisecond)
		publish(1, 4000*time.Millisecond, 6000*time.Millisecond)
	}()
	go publish(2, 2500*time.Millisecond, 6500*time.Millisecond)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		page, err := mm.List(meetings.Query{})
		if err != nil {
			return err
		}
		if len(page.Meetings) == 1 && page.Meetings[0].State == meetings.StateEnded {
			meetingID = page.Meetings[0].ID
			return nil
		}
	}
	return context.DeadlineExceeded
}

// waitJob polls (bounded) until job id is done or failed.
func waitJob(t *testing.T, m *Manager, id string) Job {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		j, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == Done || j.State == Failed {
			if j.State == Failed {
				t.Fatalf("export %s failed: %s", id, j.Error)
			}
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("export %s still %s at %.0f%%", id, j.State, j.Progress)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newTestManager(t *testing.T, mm *meetings.Manager, cfg Config) *Manager {
	t.Helper()
	cfg.Dir, cfg.Meetings = meetingDir, mm
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// segmentsOf are a participant's recordings, in order, in seconds on the
// meeting's timeline: [start, end) of the file, and of each track.
type span struct{ start, end, video, audio float64 }

func segmentsOf(oc meetings.Occurrence, name string) []span {
	var out []span
	for _, r := range oc.Manifest.Recordings {
		if r.Participant != name {
			continue
		}
		s := span{start: float64(r.OffsetMS) / 1000, end: float64(r.OffsetMS+r.DurationMS) / 1000}
		for _, tr := range r.Tracks {
			if tr.Kind == "video" {
				s.video = float64(tr.OffsetMS) / 1000
			} else {
				s.audio = float64(tr.OffsetMS) / 1000
			}
		}
		out = append(out, s)
	}
	return out
}

type probeStream struct {
	Index      int               `json:"index"`
	CodecType  string            `json:"codec_type"`
	CodecName  string            `json:"codec_name"`
	StartTime  string            `json:"start_time"`
	SampleRate string            `json:"sample_rate"`
	Channels   int               `json:"channels"`
	Width      int               `json:"width"`
	Height     int               `json:"height"`
	Tags       map[string]string `json:"tags"`
	Default    struct {
		Default int `json:"default"`
	} `json:"disposition"`
}

type probeResult struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []probeStream `json:"streams"`
}

func ffprobe(t *testing.T, path string) probeResult {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probeResult
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func num(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// decodeErrors decodes path completely and returns what ffmpeg reports
// at level error, video frames with their timestamps as stored
// (mediacheck.AsStored says why).
func decodeErrors(t *testing.T, path string) string {
	t.Helper()
	args := append([]string{"-nostdin", "-v", "error", "-threads", "1", "-i", path, "-map", "0"}, mediacheck.AsStored...)
	out, err := exec.Command("ffmpeg", append(args, "-f", "null", "-")...).CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// packetTimes are the presentation times of stream index's packets.
func packetTimes(t *testing.T, path string, index int) []float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", strconv.Itoa(index),
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets: %v", err)
	}
	var ts []float64
	for _, l := range strings.Fields(string(out)) {
		ts = append(ts, num(strings.Trim(l, ",")))
	}
	return ts
}
