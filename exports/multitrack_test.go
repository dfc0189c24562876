package exports

import (
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The multi-track file holds every participant's video and audio as
// tracks named after them, each starting where the manifest places it;
// bob's reconnect is a gap in his tracks, not a second pair; it decodes
// cleanly and has Cues and a Duration; asking again returns the same job.
func TestMultitrack(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{})
	_ = m.Delete(oc.Manifest.ID + ".multitrack") // made by an earlier run of the test
	j, created, err := m.Start(oc.Manifest.ID, Request{Kind: Multitrack, ToMS: -1})
	if err != nil || !created {
		t.Fatalf("start: %+v %v %v", j, created, err)
	}
	j = waitJob(t, m, j.ID)
	if len(j.Files) != 1 || j.Files[0].Format != "mkv" || j.Files[0].SHA256 == "" {
		t.Fatalf("files: %+v (H.264 participants: Matroska, not WebM)", j.Files)
	}
	path, err := m.File(j.ID, j.Files[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, %.1fx real time", filepath.Base(path), j.Files[0].Bytes, j.Speed)

	p := ffprobe(t, path)
	if len(p.Streams) != 2*len(participants) {
		t.Fatalf("%d streams, want %d: %+v", len(p.Streams), 2*len(participants), p.Streams)
	}
	if d := num(p.Format.Duration); math.Abs(d-float64(oc.Manifest.DurationMS)/1000) > 0.1 {
		t.Errorf("duration %.3f s, the meeting's %.3f s", d, float64(oc.Manifest.DurationMS)/1000)
	}
	for _, part := range participants {
		segs := segmentsOf(oc, part.name)
		var kinds []string
		for _, s := range p.Streams {
			if s.Tags["title"] != part.name {
				continue
			}
			kinds = append(kinds, s.CodecType)
			want := segs[0].audio
			if s.CodecType == "video" {
				want = segs[0].video
				if codec := map[string]string{"alice": "h264", "bob": "vp8", "carol": "h264"}[part.name]; s.CodecName != codec {
					t.Errorf("%s's video is %s, want %s", part.name, s.CodecName, codec)
				}
			}
			if got := num(s.StartTime); math.Abs(got-want) > 0.040 {
				t.Errorf("%s's %s starts at %.3f s, the manifest says %.3f s", part.name, s.CodecType, got, want)
			}
			if lang := s.Tags["language"]; lang != "" && lang != "und" {
				t.Errorf("%s's %s has language %q, want und (which ffprobe does not show)", part.name, s.CodecType, lang)
			}
			if part.name == "bob" {
				checkGap(t, packetTimes(t, path, s.Index), segs, s.CodecType)
			}
		}
		if strings.Join(kinds, ",") != "video,audio" {
			t.Errorf("%s has tracks %v, want one video and one audio", part.name, kinds)
		}
	}
	if msg := decodeErrors(t, path); msg != "" {
		t.Errorf("decoding reports errors:\n%s", msg)
	}
	if _, err := exec.LookPath("mkvinfo"); err == nil {
		out, err := exec.Command("mkvinfo", "-v", path).CombinedOutput()
		if err != nil {
			t.Fatalf("mkvinfo: %v\n%s", err, out)
		}
		// -v: the Cues follow the clusters, as mkvmerge writes them.
		for _, want := range []string{"|+ Cues", "Duration", "Name: alice", "Name: bob", "Name: carol", `Language: und`} {
			if !strings.Contains(string(out), want) {
				t.Errorf("mkvinfo shows no %q", want)
			}
		}
	}

	again, created, err := m.Start(oc.Manifest.ID, Request{Kind: Multitrack, ToMS: -1})
	if err != nil || created || again.ID != j.ID || again.State != Done {
		t.Errorf("asking again: %+v created=%v %v, want the done job", again, created, err)
	}
	oc2, _ := mm.Get(oc.Manifest.ID)
	listed := false
	for _, e := range oc2.Manifest.Exports {
		listed = listed || e.Job == j.ID && len(e.Files) == 1 && e.Files[0].SHA256 == j.Files[0].SHA256 &&
			e.Files[0].File == "exports/multitrack/"+j.Files[0].Name
	}
	if !listed {
		t.Errorf("the manifest lists exports %+v, not %s", oc2.Manifest.Exports, j.ID)
	}
}

// checkGap finds the longest pause between packets of bob's track: it
// must lie between his two recordings.
func checkGap(t *testing.T, ts []float64, segs []span, kind string) {
	t.Helper()
	if len(segs) != 2 {
		t.Fatalf("bob has %d recordings, want 2 (one reconnect)", len(segs))
	}
	var gapFrom, gapTo float64
	for i := 1; i < len(ts); i++ {
		if ts[i]-ts[i-1] > gapTo-gapFrom {
			gapFrom, gapTo = ts[i-1], ts[i]
		}
	}
	second := segs[1].video
	if kind == "audio" {
		second = segs[1].audio
	}
	if math.Abs(gapTo-second) > 0.040 || gapFrom > segs[0].end || segs[0].end-gapFrom > 0.1 {
		t.Errorf("bob's %s pauses from %.3f to %.3f s; his first recording ends at %.3f s, the second begins at %.3f s",
			kind, gapFrom, gapTo, segs[0].end, second)
	}
}
