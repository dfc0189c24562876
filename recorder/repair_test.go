package recorder

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// crashRecording runs TestCrashChild (a real recorder fed by hubtest with
// video and Opus) in a process of its own, waits until its .part file
// holds at least minBytes of flushed clusters, kills it with SIGKILL and
// returns the .part path.
func crashRecording(t *testing.T, dir string, video live.Codec, minBytes int64) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "REEL_RECORDER_CRASH_DIR="+dir, "REEL_RECORDER_CRASH_CODEC="+string(video))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var part string
	deadline := time.Now().Add(60 * time.Second)
	for {
		parts, _ := filepath.Glob(filepath.Join(dir, "crash", "*.part"))
		if len(parts) == 1 {
			if st, err := os.Stat(parts[0]); err == nil && st.Size() >= minBytes {
				part = parts[0]
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no .part file of %d bytes within 60 s: %v", minBytes, parts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no finalization
		t.Fatal(err)
	}
	_ = cmd.Wait()
	return part
}

func mkvinfo(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("mkvinfo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("mkvinfo %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// TestRepairAfterCrash: a recording killed mid-way is rewritten at the next
// New with Duration and Cues, listed as repaired, and plays and seeks.
func TestRepairAfterCrash(t *testing.T) {
	requireTools(t, "mkvinfo")
	dir := t.TempDir()
	part := crashRecording(t, dir, live.H264, 300<<10)
	final := strings.TrimSuffix(part, ".part")
	before := lastVideoPTS(t, part)
	if out := mkvinfo(t, part); strings.Contains(out, "Cues") || !strings.Contains(out, "Duration: 00:00:00.000000000") {
		t.Fatalf("the crashed file already has Cues or a Duration:\n%s", out)
	}

	var notified []Info
	r, err := New(Config{Dir: dir, Logger: testLogger(t), OnFinish: func(in Info) { notified = append(notified, in) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	page, err := r.Catalog().List(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Recordings) != 1 {
		t.Fatalf("catalog after repair: %+v", page.Recordings)
	}
	info := page.Recordings[0]
	if info.State != StateRepaired || info.Path != final || info.Error != "" {
		t.Fatalf("repaired recording: %+v", info)
	}
	if len(notified) != 1 || notified[0].State != StateRepaired {
		t.Errorf("OnFinish saw %+v", notified)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("the .part file is still there: %v", err)
	}
	side, err := readSidecar(sidecarPath(final))
	if err != nil || side.State != StateRepaired || side.Path != final || side.DurationMS != info.DurationMS {
		t.Errorf("sidecar after repair: %+v, %v", side, err)
	}
	st, _ := os.Stat(final)
	if st == nil || st.Size() != info.Size {
		t.Errorf("catalog size %d, file %v", info.Size, st)
	}

	out := mkvinfo(t, final)
	for _, want := range []string{"Cues", "Duration", "Document type: matroska"} {
		if !strings.Contains(out, want) {
			t.Errorf("mkvinfo shows no %q after the repair", want)
		}
	}
	pr := ffprobe(t, final)
	dur, _ := strconv.ParseFloat(pr.Format.Duration, 64)
	after := lastVideoPTS(t, final)
	if dur < 1 || after < before-0.05 {
		t.Errorf("repaired duration %.3f s, video up to %.3f s; the crashed file had video up to %.3f s", dur, after, before)
	}
	if d := float64(info.DurationMS) / 1000; d < after-0.1 || d > dur+0.1 {
		t.Errorf("catalog duration %.3f s, ffprobe %.3f s, last video %.3f s", d, dur, after)
	}
	if !info.End.Equal(info.Start.Add(time.Duration(info.DurationMS) * time.Millisecond)) {
		t.Errorf("end %v is not start %v + duration %d ms", info.End, info.Start, info.DurationMS)
	}
	if msg := ffmpegErrors(t, final, nil, nil); msg != "" {
		t.Errorf("decoding the repaired file reports errors:\n%s", msg)
	}
	mid := strconv.FormatFloat(dur/2, 'f', 2, 64)
	if msg := ffmpegErrors(t, final, []string{"-ss", mid}, seekOutput); msg != "" {
		t.Errorf("seeking to %s s in the repaired file reports errors:\n%s", mid, msg)
	}
	t.Logf("crashed: video up to %.2f s; repaired: %d bytes, %.3f s (ffprobe), %d ms (catalog)", before, info.Size, dur, info.DurationMS)

	// A second start finds nothing to repair and lists the same recording.
	r.Close()
	r2, err := New(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	again, ok := r2.Catalog().Get(info.ID)
	if !ok || again.State != StateRepaired || again.DurationMS != info.DurationMS || again.Size != info.Size {
		t.Errorf("after a restart: %+v (found %v), want %+v", again, ok, info)
	}
}

// TestRepairTruncated: a file cut inside a cluster (a torn write) keeps
// every whole block before the cut, for each codec recorded as Matroska.
func TestRepairTruncated(t *testing.T) {
	requireTools(t, "mkvinfo")
	for _, tc := range []struct {
		video live.Codec
		name  string // in the catalog
	}{
		{live.H264, "h264"},
		{live.H265, "h265"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			part := crashRecording(t, dir, tc.video, 300<<10)
			st, _ := os.Stat(part)
			if err := os.Truncate(part, st.Size()*2/3); err != nil {
				t.Fatal(err)
			}
			os.Remove(strings.TrimSuffix(part, ".part") + ".json") // and no metadata either
			r, err := New(Config{Dir: dir, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			page, _ := r.Catalog().List(Query{})
			if len(page.Recordings) != 1 {
				t.Fatalf("catalog: %+v", page.Recordings)
			}
			info := page.Recordings[0]
			if info.State != StateRepaired || info.Stream != "crash" || info.Container != "mkv" || info.Start.IsZero() {
				t.Fatalf("repaired from a torn file without metadata: %+v", info)
			}
			if len(info.Codecs) != 2 || info.Codecs[0] != tc.name || info.Codecs[1] != "opus" || info.Width != 640 || info.Height != 360 {
				t.Errorf("codecs %v, size %dx%d read from the header", info.Codecs, info.Width, info.Height)
			}
			if msg := ffmpegErrors(t, info.Path, nil, nil); msg != "" {
				t.Errorf("decoding reports errors:\n%s", msg)
			}
			if !strings.Contains(mkvinfo(t, info.Path), "Cues") {
				t.Error("no Cues after the repair")
			}
			t.Logf("torn file of %d bytes repaired to %d bytes, %d ms", st.Size()*2/3, info.Size, info.DurationMS)
		})
	}
}

// TestRepairFailsKeepsFile: what cannot be repaired is listed as failed and
// kept as it was, and is not tried again at every start.
func TestRepairFailsKeepsFile(t *testing.T) {
	dir := t.TempDir()
	stream := filepath.Join(dir, "cam")
	if err := os.MkdirAll(stream, 0o755); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(stream, "cam_20240102T030405Z.webm.part")
	empty := filepath.Join(stream, "cam_20240102T040000Z.mkv.part")
	os.WriteFile(garbage, []byte("this is not matroska at all, but a person's data"), 0o644)
	os.WriteFile(empty, nil, 0o644)
	start := time.Date(2024, 1, 2, 4, 0, 0, 0, time.UTC)
	if err := writeSidecar(strings.TrimSuffix(empty, ".part")+".json",
		Info{ID: "cam_20240102T040000Z", Stream: "cam", Path: empty, Container: "mkv", Codecs: []string{"h264"}, Start: start, State: StateRecording}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r, err := New(Config{Dir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := r.Catalog().List(Query{})
		r.Close()
		if len(page.Recordings) != 2 {
			t.Fatalf("catalog: %+v", page.Recordings)
		}
		for _, in := range page.Recordings {
			if in.State != StateFailed || !strings.HasPrefix(in.Error, "could not be repaired") || !strings.HasSuffix(in.Path, ".part") {
				t.Errorf("%s: %+v", in.ID, in)
			}
		}
		if page.Recordings[0].Path != empty || !page.Recordings[0].Start.Equal(start) || page.Recordings[0].Stream != "cam" {
			t.Errorf("newest first, with the metadata's start: %+v", page.Recordings[0])
		}
	}
	if b, err := os.ReadFile(garbage); err != nil || !strings.HasPrefix(string(b), "this is not") {
		t.Errorf("the unrepairable file was changed: %q %v", b, err)
	}
	if _, err := os.Stat(empty); err != nil {
		t.Errorf("the empty file was removed: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(stream, "*.repair")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestScanHeader reads back what the recorder's own writer produced.
func TestScanHeader(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	part := crashRecording(t, dir, live.H264, 200<<10) // the header and Cues space take 130 KB
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	h, err := readHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	if h.DocType != "matroska" || len(h.Tracks) != 2 || h.Tracks[0].CodecID != "V_MPEG4/ISO/AVC" || h.Info.TimecodeScale != 1e6 {
		t.Fatalf("header %+v", h)
	}
	var frames, keyframes int
	var last int64 = -1
	err = scanFrames(br, h, func(fr scannedFrame) {
		frames++
		if fr.track == 1 {
			if fr.keyframe {
				keyframes++
			}
			if fr.ms <= last {
				t.Errorf("video timestamps go back: %d after %d", fr.ms, last)
			}
			last = fr.ms
		}
	})
	if err != nil {
		t.Errorf("a .part written in whole clusters reads to its end: %v", err)
	}
	if frames == 0 || keyframes == 0 {
		t.Errorf("%d frames, %d video keyframes", frames, keyframes)
	}
}

// TestRepairAfterDiskFull: a recording that failed when the disk filled up
// is repaired at the next start, up to its last whole cluster.
func TestRepairAfterDiskFull(t *testing.T) {
	requireTools(t, "mkvinfo")
	r := newTestRecorder(t)
	r.openFile = func(name string) (osFile, error) {
		f, err := openPart(name)
		if err != nil {
			return nil, err
		}
		return &fullDisk{File: f.(*os.File), left: 400 << 10}, nil
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	p, err := hubtest.Publish(context.Background(), hub, "full", hubtest.Source{Video: live.VP8, Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	failed := waitRecorded(t, r, p)
	r.Close()
	if failed.State != StateFailed {
		t.Fatalf("with the disk full: %+v", failed)
	}
	r2, err := New(Config{Dir: r.Dir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	info, ok := r2.Catalog().Get(failed.ID)
	if !ok || info.State != StateRepaired || info.Error != "" || info.DurationMS < 1000 {
		t.Fatalf("after a restart: %+v (failed as %+v)", info, failed)
	}
	if msg := ffmpegErrors(t, info.Path, nil, nil); msg != "" {
		t.Errorf("decoding reports errors:\n%s", msg)
	}
	if out := mkvinfo(t, info.Path); !strings.Contains(out, "Cues") {
		t.Error("no Cues after the repair")
	}
	t.Logf("failed at %d bytes (%s); repaired: %d bytes, %d ms", failed.Size, failed.Error, info.Size, info.DurationMS)
}
