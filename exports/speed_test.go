package exports

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/meetings"
)

// TestExportSpeed measures the exports of a long 3-participant 720p
// meeting (docs/BENCHMARKS.md). It runs only with REEL_BENCH_EXPORTS set to
// the meeting's length in minutes: the recordings are the 720p 2.5 Mbit/s
// H.264 fixture and the Opus fixture looped into Matroska by ffmpeg
// (-c copy), placed by a hand-written manifest at 0, 1 and 2 minutes (at
// most half the meeting), each lasting to the end. REEL_BENCH_THREADS sets
// exports.threads (default 1); REEL_BENCH_DIR keeps the meeting there.
func TestExportSpeed(t *testing.T) {
	minutes, _ := strconv.Atoi(os.Getenv("REEL_BENCH_EXPORTS"))
	if minutes <= 0 {
		t.Skip("set REEL_BENCH_EXPORTS=<minutes> to measure the exports' speed")
	}
	requireFFmpeg(t)
	dir := t.TempDir()
	if keep := os.Getenv("REEL_BENCH_DIR"); keep != "" {
		dir = keep // kept, for a gateway's recordings (the load run in docs/BENCHMARKS.md)
	}
	occ := filepath.Join(dir, "bench", "bench_20260101T000000Z")
	if err := os.MkdirAll(occ, 0o755); err != nil {
		t.Fatal(err)
	}
	total := int64(minutes) * 60_000
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	man := meetings.Manifest{Schema: meetings.SchemaVersion, Meeting: "bench", ID: "bench_20260101T000000Z", State: meetings.StateEnded,
		Start: start, End: start.Add(time.Duration(total) * time.Millisecond), DurationMS: total}
	// A raw H.264 stream cannot be looped (ffmpeg cannot seek in it):
	// first into Matroska, 5 s.
	loop := filepath.Join(dir, "loop.mkv")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-r", "30", "-i", testmedia.Path("h264-2500k.h264"), "-c", "copy", loop).CombinedOutput(); err != nil {
		t.Fatalf("making %s: %v\n%s", loop, err, out)
	}
	for i, name := range []string{"ann", "ben", "cat"} {
		off := min(int64(i)*60_000, total/2)
		file := name + ".mkv"
		secs := strconv.FormatFloat(float64(total-off)/1000, 'f', 3, 64)
		out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", loop,
			"-stream_loop", "-1", "-i", testmedia.Path("opus.ogg"), "-map", "0:v", "-map", "1:a", "-c", "copy", "-t", secs,
			filepath.Join(occ, file)).CombinedOutput()
		if err != nil {
			t.Fatalf("making %s: %v\n%s", file, err, out)
		}
		st, _ := os.Stat(filepath.Join(occ, file))
		man.Participants = append(man.Participants, meetings.Participant{Name: name})
		man.Recordings = append(man.Recordings, meetings.Recording{ID: name, File: file, Participant: name, Container: "mkv",
			State: "finished", Start: start.Add(time.Duration(off) * time.Millisecond), DurationMS: total - off, OffsetMS: off,
			Bytes: st.Size(), Tracks: []meetings.Track{{Kind: "video", Codec: "h264", OffsetMS: off}, {Kind: "audio", Codec: "opus", OffsetMS: off}}})
	}
	data, _ := json.Marshal(man)
	if err := os.WriteFile(filepath.Join(occ, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mm, err := meetings.New(meetings.Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	threads, _ := strconv.Atoi(os.Getenv("REEL_BENCH_THREADS"))
	m, err := New(Config{Dir: dir, Meetings: mm, Threads: threads, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, kind := range []Kind{Multitrack, Audio, Composite} {
		began := time.Now()
		j, _, err := m.Start(man.ID, Request{Kind: kind, ToMS: -1})
		if err != nil {
			t.Fatal(err)
		}
		j = waitJobFor(t, m, j.ID, time.Duration(minutes)*10*time.Minute)
		var bytes int64
		for _, f := range j.Files {
			bytes += f.Bytes
		}
		took := time.Since(began)
		fmt.Printf("%s: %d min meeting in %s, %.1fx real time, %d MB\n", kind, minutes, took.Round(100*time.Millisecond),
			float64(total)/float64(took.Milliseconds()), bytes>>20)
	}
}

func waitJobFor(t *testing.T, m *Manager, id string, limit time.Duration) Job {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case j.State == Done:
			return j
		case j.State == Failed:
			t.Fatalf("%s failed: %s", id, j.Error)
		case time.Now().After(deadline):
			t.Fatalf("%s still %s at %.0f%%", id, j.State, j.Progress)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
