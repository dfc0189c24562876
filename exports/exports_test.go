package exports

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reel-gateway/reel/meetings"
)

// A request the gateway cannot do is refused with an error that says
// why: an unknown or live meeting, a bad kind or range, no ffmpeg.
func TestStartRefuses(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{FFmpeg: "/nonexistent/ffmpeg"})
	id := oc.Manifest.ID
	for _, tc := range []struct {
		name string
		id   string
		req  Request
		want error
	}{
		{"unknown meeting", "nope_20260101T000000Z", Request{Kind: Multitrack, ToMS: -1}, meetings.ErrNotFound},
		{"bad kind", id, Request{Kind: "video", ToMS: -1}, ErrBadKind},
		{"from after to", id, Request{Kind: Multitrack, FromMS: 4000, ToMS: 3000}, ErrBadRange},
		{"past the end", id, Request{Kind: Multitrack, ToMS: oc.Manifest.DurationMS + 1}, ErrBadRange},
		{"negative", id, Request{Kind: Multitrack, FromMS: -1, ToMS: -1}, ErrBadRange},
		{"composite without ffmpeg", id, Request{Kind: Composite, ToMS: -1}, ErrNoFFmpeg},
		{"audio without ffmpeg", id, Request{Kind: Audio, ToMS: -1}, ErrNoFFmpeg},
	} {
		if _, _, err := m.Start(tc.id, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	live, err := meetings.New(meetings.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.Join("room/ann", time.Now())
	page, _ := live.List(meetings.Query{})
	lm := newTestManager(t, live, Config{})
	if _, _, err := lm.Start(page.Meetings[0].ID, Request{Kind: Multitrack, ToMS: -1}); !errors.Is(err, meetings.ErrLive) {
		t.Errorf("a live meeting: %v, want ErrLive", err)
	}
}

// A range exports only that stretch: its tracks start at 0 or later,
// video on a keyframe, and it is as long as the range.
func TestMultitrackRange(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{})
	j, _, err := m.Start(oc.Manifest.ID, Request{Kind: Multitrack, FromMS: 2000, ToMS: 5000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Delete(j.ID) })
	j = waitJob(t, m, j.ID)
	path, _ := m.File(j.ID, j.Files[0].Name)
	p := ffprobe(t, path)
	if d := num(p.Format.Duration); math.Abs(d-3) > 0.05 {
		t.Errorf("duration %.3f s, want 3", d)
	}
	if len(p.Streams) != 6 {
		t.Errorf("%d streams, want 6", len(p.Streams))
	}
	for _, s := range p.Streams {
		if st := num(s.StartTime); st < -0.01 || st > 3 {
			t.Errorf("%s's %s starts at %.3f s", s.Tags["title"], s.CodecType, st)
		}
	}
	if msg := decodeErrors(t, path); msg != "" {
		t.Errorf("decoding reports errors:\n%s", msg)
	}
}

// Jobs wait their turn; DELETE of a running composite kills ffmpeg and
// leaves nothing of it; the next job then runs.
func TestCancelAndQueue(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{Concurrency: 1}) // 1280x720: slow enough to cancel
	slow, _, err := m.Start(oc.Manifest.ID, Request{Kind: Composite, FromMS: 0, ToMS: oc.Manifest.DurationMS - 1})
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := m.Start(oc.Manifest.ID, Request{Kind: Multitrack, FromMS: 1000, ToMS: 2000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Delete(next.ID) })
	if next.State != Queued {
		t.Errorf("the second job is %s, want queued behind the first", next.State)
	}
	var dir string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		j, err := m.Get(slow.ID)
		if err != nil || j.State != Running && j.State != Queued {
			t.Fatalf("composite: %+v %v", j, err)
		}
		m.mu.Lock()
		dir = m.jobs[slow.ID].dir
		m.mu.Unlock()
		parts, _ := filepath.Glob(filepath.Join(dir, "*.part"))
		if j.Progress > 0 && len(parts) > 0 {
			t.Logf("canceling at %.1f%%, ETA %v s", j.Progress, *j.ETASeconds)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the composite never made progress")
		}
	}
	if err := m.Delete(slow.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("the canceled job's folder is still there: %v", entries)
	}
	if _, err := m.Get(slow.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the canceled job is still listed: %v", err)
	}
	if j := waitJob(t, m, next.ID); j.State != Done {
		t.Errorf("the queued job: %+v", j)
	}
}

// A job the gateway's stop cut short starts again with the gateway, its
// partial output removed; one cut twice fails, saying why.
func TestRestartDuringAJob(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{})
	j, _, err := m.Start(oc.Manifest.ID, Request{Kind: Multitrack, FromMS: 0, ToMS: 1500})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, m, j.ID)
	m.mu.Lock()
	dir := m.jobs[j.ID].dir
	m.mu.Unlock()
	m.Close()

	crash := func(restarts int) {
		var saved Job
		data, _ := os.ReadFile(filepath.Join(dir, jobFile))
		if err := json.Unmarshal(data, &saved); err != nil {
			t.Fatal(err)
		}
		saved.State, saved.Restarts, saved.Files = Running, restarts, nil
		data, _ = json.Marshal(saved)
		os.WriteFile(filepath.Join(dir, jobFile), data, 0o644)
		os.WriteFile(filepath.Join(dir, "half.multitrack.part"), []byte("half a file"), 0o644)
	}
	crash(0)
	m2 := newTestManager(t, mm, Config{})
	again := waitJob(t, m2, j.ID)
	if again.Restarts != 1 || len(again.Files) != 1 {
		t.Errorf("after a restart: %+v", again)
	}
	if _, err := os.Stat(filepath.Join(dir, "half.multitrack.part")); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there")
	}
	m2.Close()

	crash(1)
	m3 := newTestManager(t, mm, Config{})
	failed, err := m3.Get(j.ID)
	if err != nil || failed.State != Failed || failed.Error == "" {
		t.Errorf("cut twice: %+v %v, want failed with the reason", failed, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "half.multitrack.part")); !os.IsNotExist(err) {
		t.Errorf("the partial file is still there")
	}
	if err := m3.Delete(j.ID); err != nil {
		t.Fatal(err)
	}
}
