package meetings

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) add(kind string, m Manifest, sum string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, kind+" "+m.ID)
}

func (n *notes) get() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}

func newManager(t *testing.T, dir string, grace time.Duration, n *notes) *Manager {
	t.Helper()
	cfg := Config{Dir: dir, Grace: grace, Logger: slog.New(slog.DiscardHandler)}
	if n != nil {
		cfg.Notify = n.add
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// waitEnded polls (bounded) until occurrence id has ended.
func waitEnded(t *testing.T, m *Manager, id string) Occurrence {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		oc, err := m.Get(id)
		if err == nil && oc.Manifest.State == StateEnded {
			return oc
		}
		if time.Now().After(deadline) {
			t.Fatalf("occurrence %s did not end: %+v %v", id, oc.Manifest, err)
		}
	}
}

func onlyOccurrence(t *testing.T, m *Manager) Summary {
	t.Helper()
	p, err := m.List(Query{})
	if err != nil || len(p.Meetings) != 1 {
		t.Fatalf("occurrences: %+v %v", p.Meetings, err)
	}
	return p.Meetings[0]
}

// Two participants join at different times and leave; after the grace the
// occurrence ends, its manifest has both, every offset on one timeline, and
// a detached checksum that matches.
func TestOccurrenceLifecycle(t *testing.T) {
	dir := t.TempDir()
	n := &notes{}
	m := newManager(t, dir, 50*time.Millisecond, n)
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	m.Join("board-42/alice", t0)
	m.Join("board-42/bob", t0.Add(3*time.Second))
	m.Join("lobby", t0) // a flat name is no meeting
	m.Leave("board-42/alice", t0.Add(10*time.Second))
	id := onlyOccurrence(t, m).ID
	if id != "board-42_20261130T100000Z" {
		t.Fatalf("occurrence id %q", id)
	}
	if oc, _ := m.Get(id); oc.Manifest.State != StateLive {
		t.Fatal("ended while bob is still there")
	}
	m.Leave("board-42/bob", t0.Add(12*time.Second))
	oc := waitEnded(t, m, id)
	man := oc.Manifest
	if man.DurationMS != 12000 || len(man.Participants) != 2 || man.Participants[1].Sessions[0].JoinMS != 3000 ||
		*man.Participants[0].Sessions[0].LeaveMS != 10000 {
		t.Errorf("manifest %+v", man)
	}
	data, err := os.ReadFile(filepath.Join(oc.Dir, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	side, _ := os.ReadFile(filepath.Join(oc.Dir, checksumName))
	if want := hex.EncodeToString(sum[:]) + "  manifest.json\n"; string(side) != want || oc.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest.json.sha256 %q, want %q", side, want)
	}
	// meeting.ended is sent once the manifest is final, by the grace's
	// timer, after it let go of the lock: it may come just after.
	for deadline := time.Now().Add(5 * time.Second); len(n.get()) < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := n.get(); len(got) != 2 || got[0] != "meeting.started "+id || got[1] != "meeting.ended "+id {
		t.Errorf("notified %v", got)
	}
}

// A participant who reconnects within the grace continues the same
// occurrence (a second session and a reconnect event); after the grace, a
// new publish starts a new occurrence.
func TestReconnectAndNewOccurrence(t *testing.T) {
	m := newManager(t, t.TempDir(), 300*time.Millisecond, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m.Join("standup/ann", t0)
	m.Leave("standup/ann", t0.Add(time.Second))
	m.Join("standup/ann", t0.Add(2*time.Second))
	id := onlyOccurrence(t, m).ID
	m.Leave("standup/ann", t0.Add(3*time.Second))
	oc := waitEnded(t, m, id)
	p := oc.Manifest.Participants
	if len(p) != 1 || len(p[0].Sessions) != 2 {
		t.Fatalf("participants %+v", p)
	}
	var types []string
	for _, e := range oc.Manifest.Events {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "join,leave,reconnect,leave" {
		t.Errorf("events %v", types)
	}
	m.Join("standup/ann", t0.Add(time.Hour))
	page, _ := m.List(Query{})
	if len(page.Meetings) != 2 || page.Meetings[0].ID == id || page.Meetings[0].State != StateLive {
		t.Fatalf("after the grace: %+v", page.Meetings)
	}
}

// An occurrence whose last recording is still being written when the
// grace runs out ends when that recording is final, with it in the
// manifest on the timeline.
func TestOccurrenceWaitsForItsRecordings(t *testing.T) {
	m := newManager(t, t.TempDir(), 20*time.Millisecond, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m.Join("room/zoe", t0)
	pl := m.Place("room/zoe")
	if pl.Occurrence == "" || !strings.HasPrefix(pl.Dir, "room/room_") || pl.Prefix != "room.zoe" {
		t.Fatalf("placement %+v", pl)
	}
	in := recorder.Info{ID: "room.zoe_x", Path: "/x/room.zoe_x.mkv.part", Container: "mkv", State: recorder.StateRecording,
		Start: t0.Add(500 * time.Millisecond), Occurrence: pl.Occurrence, Participant: "zoe",
		Tracks: []recorder.TrackInfo{{Kind: "video", Codec: "h264", OffsetMS: 0}, {Kind: "audio", Codec: "opus", OffsetMS: 40}}}
	m.RecordingStarted(in)
	m.Leave("room/zoe", t0.Add(5*time.Second))
	time.Sleep(100 * time.Millisecond)
	if oc, _ := m.Get(pl.Occurrence); oc.Manifest.State != StateLive {
		t.Fatal("ended with a recording still being written")
	}
	in.State, in.Path, in.End, in.DurationMS, in.SHA256 = recorder.StateFinished, "/x/room.zoe_x.mkv", t0.Add(5*time.Second), 4500, "ab"
	m.RecordingFinished(in)
	oc := waitEnded(t, m, pl.Occurrence)
	r := oc.Manifest.Recordings
	if len(r) != 1 || r[0].File != "room.zoe_x.mkv" || r[0].OffsetMS != 500 || r[0].Tracks[1].OffsetMS != 540 || r[0].SHA256 != "ab" {
		t.Errorf("recordings %+v", r)
	}
}

// A restart in the middle of a meeting: the occurrence left live on disk
// stays open for the grace, and a participant who comes back continues
// it; another room's occurrence that nobody rejoins ends, its open
// presence closed at its last recording's end. Two occurrences of one room
// left live (a crash between two) keep only the newest open.
func TestRestartInTheMiddleOfAMeeting(t *testing.T) {
	dir := t.TempDir()
	m1 := newManager(t, dir, time.Hour, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m1.Join("a/x", t0)
	m1.Join("b/y", t0)
	m1.RecordingFinished(recorder.Info{ID: "b.y_1", Path: dir + "/b.y_1.webm", State: recorder.StateRepaired,
		Start: t0, End: t0.Add(7 * time.Second), Occurrence: m1.Place("b/y").Occurrence, Participant: "y"})
	ida, idb := m1.Place("a/x").Occurrence, m1.Place("b/y").Occurrence
	m1.Close() // the process stops; nobody left

	m2 := newManager(t, dir, 200*time.Millisecond, nil)
	m2.Join("a/x", time.Now())
	if got := m2.Place("a/x").Occurrence; got != ida {
		t.Fatalf("rejoin went to %q, want the open %q", got, ida)
	}
	ob := waitEnded(t, m2, idb)
	if s := ob.Manifest.Participants[0].Sessions[0]; !s.Leave.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("y's presence ends %v, want the end of y's recording", s.Leave)
	}
	if oa, _ := m2.Get(ida); oa.Manifest.State != StateLive {
		t.Error("the continued occurrence ended")
	}
}

// A held occurrence cannot be deleted and is kept from retention; every
// hold change and deletion is in the audit log.
func TestHoldAndAudit(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, 10*time.Millisecond, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m.Join("court/judge", t0)
	m.Leave("court/judge", t0.Add(time.Minute))
	id := onlyOccurrence(t, m).ID
	waitEnded(t, m, id)
	if _, err := m.SetHold(id, "", "adm"); err == nil {
		t.Error("a hold without a reason was accepted")
	}
	if _, err := m.SetHold(id, "case 17", "adm"); err != nil {
		t.Fatal(err)
	}
	var he *HeldError
	if err := m.DeleteOccurrence(id, "adm", "cleanup"); !errors.As(err, &he) || he.Hold.Reason != "case 17" {
		t.Fatalf("delete of a held meeting: %v", err)
	}
	if why := m.Protect(recorder.Info{Occurrence: id}); !strings.Contains(why, "case 17") {
		t.Errorf("retention not kept off: %q", why)
	}
	if p, _ := m.List(Query{Hold: new(true)}); len(p.Meetings) != 1 {
		t.Errorf("hold=true lists %d", len(p.Meetings))
	}
	if err := m.ReleaseHold(id, "case closed", "adm"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteOccurrence(id, "adm", "cleanup"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	log, _ := m.Audit("")
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Action)
	}
	if strings.Join(actions, ",") != "hold,release_hold,delete_meeting" {
		t.Errorf("audit log %v", actions)
	}
	// A second Manager reads the same log: it is on disk.
	if again, _ := newManager(t, dir, time.Second, nil).Audit(""); len(again) != 3 {
		t.Errorf("audit log on disk has %d entries", len(again))
	}
}

// The zip holds the manifest, its checksum, every file and SHA256SUMS
// with each file's real checksum.
func TestZip(t *testing.T) {
	body := bytes.Repeat([]byte("media"), 1000)
	sum := sha256.Sum256(body)
	m, pl := endedWithOneFile(t, "z/p", "webm", body, func(info *recorder.Info, t0 time.Time) {
		info.Start, info.End, info.SHA256 = t0, t0.Add(time.Second), hex.EncodeToString(sum[:])
	})
	var buf bytes.Buffer
	if err := m.WriteZip(&buf, pl.Occurrence); err != nil {
		t.Fatal(err)
	}
	got := readZip(t, buf.Bytes(), pl.Occurrence, true)
	if !bytes.Equal(got[pl.Prefix+"_1.webm"], body) || got[manifestName] == nil || got[checksumName] == nil {
		t.Fatalf("zip holds %d files", len(got))
	}
	if want := hex.EncodeToString(sum[:]) + "  " + pl.Prefix + "_1.webm"; !strings.Contains(string(got["SHA256SUMS"]), want) {
		t.Errorf("SHA256SUMS:\n%s\nwant a line %q", got["SHA256SUMS"], want)
	}
}

// endedWithOneFile is an ended occurrence of the meeting of name whose one
// participant left one finished recording holding body; set fills in the
// recording's times (t0 is the join) and anything else the test needs.
func endedWithOneFile(t *testing.T, name, ext string, body []byte, set func(info *recorder.Info, t0 time.Time)) (*Manager, recorder.Placement) {
	t.Helper()
	dir := t.TempDir()
	m := newManager(t, dir, 10*time.Millisecond, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m.Join(name, t0)
	pl := m.Place(name)
	file := filepath.Join(dir, filepath.FromSlash(pl.Dir), pl.Prefix+"_1."+ext)
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	info := recorder.Info{ID: pl.Prefix + "_1", Path: file, State: recorder.StateFinished, Size: int64(len(body)),
		Occurrence: pl.Occurrence, Participant: "p"}
	set(&info, t0)
	m.RecordingFinished(info)
	m.Leave(name, info.End)
	waitEnded(t, m, pl.Occurrence)
	return m, pl
}

// readZip is every file of a zip, by its name under the occurrence's
// folder; stored checks that none is compressed.
func readZip(t *testing.T, b []byte, occurrence string, stored bool) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, f := range zr.File {
		if stored && f.Method != zip.Store {
			t.Errorf("%s is compressed", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimPrefix(f.Name, occurrence+"/")], _ = io.ReadAll(rc)
		rc.Close()
	}
	return got
}

// A clip of a meeting whose file cannot be cut (it is no Matroska) holds
// that file whole, says why, re-bases its offset to the clip, and sums
// what it holds; a range before any file is refused as empty.
func TestClipZipWholeFile(t *testing.T) {
	body := bytes.Repeat([]byte("not matroska"), 100)
	m, pl := endedWithOneFile(t, "c/p", "mkv", body, func(info *recorder.Info, t0 time.Time) {
		info.Start, info.End, info.DurationMS, info.Container = t0.Add(time.Second), t0.Add(5*time.Second), 4000, "mkv"
	})
	if err := m.WriteClipZip(io.Discard, pl.Occurrence, Span{From: 6 * time.Second}); err == nil {
		t.Error("a clip that starts after the meeting's end was written")
	}
	var buf bytes.Buffer
	if err := m.WriteClipZip(&buf, pl.Occurrence, Span{From: 2 * time.Second, To: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	got := readZip(t, buf.Bytes(), pl.Occurrence, false)
	var clip Manifest
	if err := json.Unmarshal(got[manifestName], &clip); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if len(clip.Recordings) != 1 || len(got) != 3 || !bytes.Equal(got[pl.Prefix+"_1.mkv"], body) {
		t.Fatalf("the clip holds %d files, its manifest %+v", len(got), clip.Recordings)
	}
	r := clip.Recordings[0]
	if !r.Whole || r.OffsetMS != -1000 || !strings.Contains(r.Error, "cannot be cut") || r.SHA256 != hex.EncodeToString(sum[:]) ||
		clip.Clip == nil || clip.Clip.FromMS != 2000 || clip.Clip.ToMS != 3000 || clip.DurationMS != 1000 {
		t.Errorf("the clip's manifest: %+v %+v", r, clip.Clip)
	}
	for name, data := range got {
		if name == "SHA256SUMS" {
			continue
		}
		s := sha256.Sum256(data)
		if !strings.Contains(string(got["SHA256SUMS"]), hex.EncodeToString(s[:])+"  "+name+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", name, got["SHA256SUMS"])
		}
	}
}

// A recording's events (loss gaps, unanswered keyframe requests) are
// written into the manifest together, within eventFlush, not one write
// each; a join writes at once with whatever events wait, and Close writes
// those still waiting.
func TestEventsWrittenTogether(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, time.Hour, nil)
	t0 := time.Now().UTC().Truncate(time.Second)
	m.Join("room/zoe", t0)
	pl := m.Place("room/zoe")
	in := recorder.Info{ID: "room.zoe_x", Path: "/x/room.zoe_x.mkv.part", Container: "mkv", State: recorder.StateRecording,
		Start: t0, Occurrence: pl.Occurrence, Participant: "zoe"}
	m.RecordingStarted(in)
	path := filepath.Join(dir, pl.Dir, "manifest.json")
	onDisk := func() (n int) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var man Manifest
		if err := json.Unmarshal(data, &man); err != nil {
			t.Fatal(err)
		}
		for _, e := range man.Events {
			if e.Type == "loss" {
				n++
			}
		}
		return n
	}
	before, _ := os.Stat(path)
	for i := range 50 {
		m.RecordingEvent(in, recorder.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Type: "loss", Kind: "video", Lost: 1})
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) || onDisk() != 0 {
		t.Fatalf("the manifest was rewritten for the events at once (%d on disk)", onDisk())
	}
	deadline := time.Now().Add(5 * time.Second)
	for onDisk() != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 events written after %v", onDisk(), 5*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A join writes at once, events included.
	m.RecordingEvent(in, recorder.Event{Time: t0.Add(time.Second), Type: "loss", Kind: "audio", Lost: 1})
	m.Join("room/ann", t0.Add(2*time.Second))
	if n := onDisk(); n != 51 {
		t.Errorf("after a join %d events on disk, want 51", n)
	}
	// Close writes what waits.
	m.RecordingEvent(in, recorder.Event{Time: t0.Add(3 * time.Second), Type: "loss", Kind: "audio", Lost: 1})
	m.Close()
	if n := onDisk(); n != 52 {
		t.Errorf("after Close %d events on disk, want 52", n)
	}
}
