package recorder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
)

// publishAll publishes src on stream into a hub recorded by r and waits
// until every file is final.
func publishAll(t *testing.T, r *Recorder, stream string, src hubtest.Source) {
	t.Helper()
	publishUntil(context.Background(), t, r, stream, src)
}

// publishUntil publishes src (looping, if it says so) until ctx ends,
// and waits for the recording to finish.
func publishUntil(ctx context.Context, t *testing.T, r *Recorder, stream string, src hubtest.Source) {
	t.Helper()
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	p, err := hubtest.Publish(ctx, hub, stream, src)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("publication did not end")
	}
	for _, sub := range p.Stream.Subscriptions() {
		select {
		case <-sub.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("the recording did not finish")
		}
	}
}

// listAll pages through the whole catalog.
func listAll(t *testing.T, c *Catalog, q Query) []Info {
	t.Helper()
	var out []Info
	for range 100 {
		page, err := c.List(q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Recordings...)
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
	t.Fatal("the listing never ends")
	return nil
}

// videoPackets returns the flags of a file's video packets ("K__" for a
// keyframe), as ffprobe reads them.
func videoPackets(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=flags", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", path, err)
	}
	return strings.Fields(string(out))
}

// TestSegments: with SegmentDuration, one publication becomes consecutive
// files, each starting on a keyframe, each with Duration and Cues, that
// together hold every frame exactly once.
func TestSegments(t *testing.T) {
	requireTools(t, "mkvinfo")
	t.Parallel()
	for _, tc := range []struct {
		name   string
		src    hubtest.Source
		frames int // video frames in the fixture
	}{
		{"vp8", hubtest.Source{Video: live.VP8, Audio: true}, 180},
		{"h264", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true}, 180},
		{"h265", hubtest.Source{Video: live.H265, Audio: true}, 180},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var finished []Info
			r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: testLogger(t), SegmentDuration: 2 * time.Second,
				OnFinish: func(in Info) { finished = append(finished, in) }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			publishAll(t, r, "seg", tc.src)
			segs := listAll(t, r.Catalog(), Query{Limit: 1})
			if len(segs) != 3 || len(finished) != 3 {
				t.Fatalf("6 s in 2 s segments: %d files listed, %d finished: %+v", len(segs), len(finished), segs)
			}
			total := 0
			for i := len(segs) - 1; i >= 0; i-- { // oldest first
				in := segs[i]
				if in.State != StateFinished || in.Stream != "seg" {
					t.Errorf("%s: %+v", in.ID, in)
				}
				pkts := videoPackets(t, in.Path)
				if len(pkts) == 0 || !strings.HasPrefix(pkts[0], "K") {
					t.Errorf("%s does not start on a keyframe: %v", in.ID, pkts[:min(len(pkts), 3)])
				}
				total += len(pkts)
				if msg := ffmpegErrors(t, in.Path, nil, nil); msg != "" {
					t.Errorf("%s decodes with errors: %s", in.ID, msg)
				}
				if out := mkvinfo(t, in.Path); !strings.Contains(out, "Cues") || !strings.Contains(out, "Duration") {
					t.Errorf("%s has no Cues or Duration", in.ID)
				}
				if i > 0 {
					// The next file starts where this one's timeline ends:
					// one video frame (33 ms) after its last frame.
					next := segs[i-1]
					gap := next.Start.Sub(in.Start) - time.Duration(lastVideoPTS(t, in.Path)*float64(time.Second))
					if gap <= 0 || gap > 50*time.Millisecond {
						t.Errorf("%s starts %v after the last frame of %s, want one frame", next.ID, gap, in.ID)
					}
				}
				t.Logf("%s: %d video packets, %d ms, %d bytes", filepath.Base(in.Path), len(pkts), in.DurationMS, in.Size)
			}
			if total != tc.frames {
				t.Errorf("the segments hold %d video frames, the publisher sent %d", total, tc.frames)
			}
		})
	}
}

// TestCatalogScan: a fresh start lists what is on disk, including a media
// file without metadata (its duration read from the Matroska header) and
// never anything reached through a symbolic link.
func TestCatalogScan(t *testing.T) {
	requireTools(t)
	t.Parallel()
	dir := t.TempDir()
	r, err := New(Config{Dir: dir, Enabled: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, r, "cam/one", hubtest.Source{Video: live.VP9, Audio: true})
	r.Close()
	recs := listAll(t, r.Catalog(), Query{})
	if len(recs) != 1 {
		t.Fatalf("catalog %+v", recs)
	}
	orig := recs[0]

	// The same file under another stream's folder, without its sidecar;
	// a symlink to a file outside the directory; a stray sidecar.
	bare := filepath.Join(dir, "imported", "imported_20240501T101010Z.webm")
	os.MkdirAll(filepath.Dir(bare), 0o755)
	data, _ := os.ReadFile(orig.Path)
	os.WriteFile(bare, data, 0o644)
	outside := filepath.Join(t.TempDir(), "secret.webm")
	os.WriteFile(outside, data, 0o644)
	os.Symlink(outside, filepath.Join(dir, "imported", "link_20240501T101011Z.webm"))
	os.Symlink(filepath.Dir(outside), filepath.Join(dir, "linkdir"))
	writeSidecar(filepath.Join(dir, "imported", "gone_20240501T000000Z.webm.json"), Info{ID: "gone", State: StateFinished})

	r2, err := New(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	recs = listAll(t, r2.Catalog(), Query{})
	if len(recs) != 2 {
		t.Fatalf("want the recording and the imported file, got %+v", recs)
	}
	got, ok := r2.Catalog().Get(orig.ID)
	if !ok || got.DurationMS != orig.DurationMS || got.Size != orig.Size || got.State != StateFinished || !got.Start.Equal(orig.Start) {
		t.Errorf("after a restart %+v, before %+v", got, orig)
	}
	imp, ok := r2.Catalog().Get("imported_20240501T101010Z")
	if !ok {
		t.Fatalf("the file without metadata is not listed: %+v", recs)
	}
	want := time.Date(2024, 5, 1, 10, 10, 10, 0, time.UTC)
	if imp.Stream != "imported" || imp.Container != "webm" || imp.State != StateFinished || !imp.Start.Equal(want) ||
		imp.Width != 640 || imp.Height != 360 || strings.Join(imp.Codecs, ",") != "vp9,opus" || imp.Size != orig.Size {
		t.Errorf("probed from the file: %+v", imp)
	}
	if d := imp.DurationMS - orig.DurationMS; d < -50 || d > 50 {
		t.Errorf("header duration %d ms, the recorder measured %d ms", imp.DurationMS, orig.DurationMS)
	}
	if !imp.End.Equal(imp.Start.Add(time.Duration(imp.DurationMS) * time.Millisecond)) {
		t.Errorf("end %v", imp.End)
	}
	pr, err := mediacheck.ProbeFile(context.Background(), imp.Path)
	if err != nil {
		t.Fatal(err)
	}
	if d := pr.Duration() - time.Duration(imp.DurationMS)*time.Millisecond; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("ffprobe duration %v, catalog %d ms", pr.Duration(), imp.DurationMS)
	}
}

// TestCatalogQuery: filter by stream and time, newest first, pages that
// neither skip nor repeat when recordings are deleted between them.
func TestCatalogQuery(t *testing.T) {
	c, err := newCatalog(t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		stream := []string{"a", "b", "c"}[i%3]
		start := base.Add(time.Duration(i) * time.Minute)
		if i == 11 {
			start = base.Add(10 * time.Minute) // same start as #10: the id breaks the tie
		}
		in := Info{ID: stream + "_" + strconv.Itoa(i), Stream: stream, Start: start, End: start.Add(30 * time.Second), State: StateFinished,
			Path: filepath.Join(c.root, stream+"_"+strconv.Itoa(i)+".webm")}
		c.put(in, in.Path, nil)
	}
	all := listAll(t, c, Query{Limit: 5})
	if len(all) != 12 {
		t.Fatalf("%d listed", len(all))
	}
	for i := 1; i < len(all); i++ {
		if newer(all[i-1], all[i]) >= 0 {
			t.Errorf("not newest first: %s then %s", all[i-1].ID, all[i].ID)
		}
	}
	if all[0].ID != "c_11" || all[1].ID != "b_10" {
		t.Errorf("order of equal starts: %s, %s", all[0].ID, all[1].ID)
	}
	if got := listAll(t, c, Query{Stream: "b", Limit: 2}); len(got) != 4 || got[0].ID != "b_10" {
		t.Errorf("stream b: %v", got)
	}
	// [12:03:10, 12:05:00) overlaps #3 (12:03:00-12:03:30) and #4, not #5.
	got := listAll(t, c, Query{From: base.Add(3*time.Minute + 10*time.Second), To: base.Add(5 * time.Minute)})
	if len(got) != 2 || got[0].ID != "b_4" || got[1].ID != "a_3" {
		t.Errorf("time window: %v", got)
	}
	page, _ := c.List(Query{Limit: 4})
	for _, in := range page.Recordings[2:] {
		c.Delete(in.ID) // deleted between pages
	}
	next, err := c.List(Query{Limit: 4, Cursor: page.NextCursor})
	if err != nil || len(next.Recordings) != 4 || next.Recordings[0].ID != all[4].ID {
		t.Errorf("page after deletions: %v, %v", next.Recordings, err)
	}
	if page, _ := c.List(Query{Limit: 10000}); len(page.Recordings) != 10 {
		t.Errorf("limit above the maximum: %d", len(page.Recordings))
	}
	for _, bad := range []string{"x", "!!", "MTIz", "bm9zbGFzaA"} {
		if _, err := c.List(Query{Cursor: bad}); err != ErrBadCursor {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"cam_20240101T000000Z": true, "a.b-c_2": true,
		"": false, "..": false, ".hidden": false, "a/b": false, "a%2Fb": false, `a\b`: false,
		"/etc/passwd": false, "a b": false, strings.Repeat("a", 256): false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v", id, got)
		}
	}
}
