package recorder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"cam1":                   "cam1",
		"live/cam 1":             "live_cam_1",
		"../../etc/passwd":       "_._.._etc_passwd",
		"..":                     "_.",
		".hidden":                "_hidden",
		"":                       "_",
		"Ünïcode-ok_1.2":         "_n_code-ok_1.2",
		strings.Repeat("a", 300): strings.Repeat("a", maxNameLen),
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
	r := newTestRecorder(t)
	for _, name := range []string{"..", "../x", "/abs", "a/../../b"} {
		dir, _, err := r.paths(name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(dir) != r.Dir() {
			t.Errorf("stream %q writes to %s, outside %s", name, dir, r.Dir())
		}
	}
}

func TestDisabledRecordsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	r, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	s, err := hub.Publish("x", live.PublishSpec{Tracks: []*live.Track{{Kind: live.Audio, Codec: live.Opus, ClockRate: 48000}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("New did not create the directory: %v", err)
	}
	if n := len(s.Subscriptions()); n != 0 {
		t.Errorf("disabled recorder subscribed %d times", n)
	}
	s.Close()
	r.Close()
}

// TestCloseFinalizes: a graceful shutdown finalizes a live recording.
func TestCloseFinalizes(t *testing.T) {
	requireTools(t)
	r := newTestRecorder(t)
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := hubtest.Publish(ctx, hub, "shutdown",
		hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	var active []Info
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if active = r.Active(); len(active) == 1 && active[0].DurationMS > 2000 {
			break
		}
	}
	if len(active) != 1 || active[0].State != StateRecording || !strings.HasSuffix(active[0].Path, ".webm.part") {
		t.Fatalf("active recordings: %+v", active)
	}
	r.Close()
	r.Close()
	if n := len(r.Active()); n != 0 {
		t.Errorf("%d recordings active after Close", n)
	}
	info := onlySidecar(t, r, "shutdown")
	checkInfo(t, info, "webm")
	if msg := ffmpegErrors(t, info.Path, nil, nil); msg != "" {
		t.Errorf("decoding reports errors:\n%s", msg)
	}
	cancel()
	<-p.Done()

	// A stream published after Close is not recorded.
	ctx2, cancel2 := context.WithCancel(context.Background())
	p2, err := hubtest.Publish(ctx2, hub, "late", hubtest.Source{Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p2.Stream.Subscriptions()); n != 0 {
		t.Errorf("closed recorder subscribed to a new stream")
	}
	cancel2()
	<-p2.Done()
	if _, err := os.Stat(filepath.Join(r.Dir(), "late")); err == nil {
		t.Error("closed recorder created a folder for a new stream")
	}
}
