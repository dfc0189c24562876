package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// meetingArchive is a real hub, meetings manager and recorder, wired as
// the gateway wires them, behind the API with auth on.
type meetingArchive struct {
	archive
	m *meetings.Manager
}

// Tokens of the meetings tests.
var (
	adminH  = []string{"Authorization", "Bearer admin"}
	viewerH = []string{"Authorization", "Bearer viewer"}
	board42 = []string{"Authorization", "Bearer b42"} // stream token of "board-42/*"
)

func newMeetingArchive(t *testing.T) *meetingArchive {
	t.Helper()
	a := &meetingArchive{archive: archive{dir: t.TempDir(), hub: live.NewHub(live.Reject)}}
	m, err := meetings.New(meetings.Config{Dir: a.dir, Grace: 300 * time.Millisecond,
		DeleteRecording: func(id string) error {
			_, err := a.rec.Delete(id)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	a.m = m
	rec, err := recorder.New(recorder.Config{Dir: a.dir, Enabled: true, OnStart: m.RecordingStarted, OnFinish: m.RecordingFinished,
		OnEvent: m.RecordingEvent, Place: m.Place, OnDelete: m.RetentionDeleted})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	a.rec = rec
	a.hub.OnPublish(m.Published)
	a.hub.OnUnpublish(m.Unpublished)
	a.hub.OnPublish(rec.Record)
	a.url = serveAPI(t, a.hub, rtc.Config{}, AuthConfig{AdminTokens: []string{"admin"}, ReadTokens: []string{"viewer"},
		StreamTokens: map[string]string{"board-42/*": "b42"}}, Config{}, Deps{Recordings: rec, Meetings: m})
	return a
}

// getJSON GETs path with headers and decodes the 200 answer into v.
func getJSON(t *testing.T, url string, v any, headers ...string) {
	t.Helper()
	r := do(t, "GET", url, "", "", headers...)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, r.body)
	}
}

type meetingPage struct {
	Meetings   []meetings.Summary `json:"meetings"`
	NextCursor string             `json:"next_cursor"`
}

type meetingDoc struct {
	Manifest       meetings.Manifest     `json:"manifest"`
	ManifestSHA256 string                `json:"manifest_sha256"`
	Hold           *meetings.Hold        `json:"hold"`
	ManifestURL    string                `json:"manifest_url"`
	ZipURL         string                `json:"zip_url"`
	Files          []meetingFile         `json:"files"`
	Audit          []meetings.AuditEntry `json:"audit"`
}

func (a *meetingArchive) list(t *testing.T, query string, headers ...string) meetingPage {
	t.Helper()
	var p meetingPage
	getJSON(t, a.url+"/api/v1/meetings?"+query, &p, headers...)
	return p
}

func (a *meetingArchive) get(t *testing.T, id string) meetingDoc {
	t.Helper()
	var d meetingDoc
	getJSON(t, a.url+"/api/v1/meetings/"+id, &d, adminH...)
	return d
}

// waitEnded polls the API (bounded) until the occurrence of meeting has
// ended, and returns it.
func (a *meetingArchive) waitEnded(t *testing.T, meeting string) meetingDoc {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		p := a.list(t, "meeting="+meeting, adminH...)
		if len(p.Meetings) > 0 && p.Meetings[0].State == meetings.StateEnded {
			return a.get(t, p.Meetings[0].ID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the occurrence of %s did not end: %+v", meeting, p.Meetings)
		}
	}
}

func ids2(ms []meetings.Summary) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// recordMeetings records, from the fixtures: board-42 with alice (H.264
// and Opus) from 0 s, bob (VP8 and Opus) from 1.5 s and carol (H.264
// Baseline, 3 s) from 3 s; board-420 (VP9, 3 s) from 0.3 s; standup
// (VP9) twice, from 0.6 s and, after the first ended, again. It returns
// when every occurrence has ended, with when each participant of
// board-42 started after alice.
func recordMeetings(t *testing.T, a *meetingArchive) map[string]time.Duration {
	t.Helper()
	var stops []func()
	start := time.Now()
	joined := map[string]time.Duration{}
	at := func(d time.Duration, stream string, src hubtest.Source) *hubtest.Publisher {
		time.Sleep(time.Until(start.Add(d)))
		if strings.HasPrefix(stream, "board-42/") {
			joined[strings.TrimPrefix(stream, "board-42/")] = time.Since(start)
		}
		p, stop := a.publish(t, stream, src)
		stops = append(stops, func() {
			select {
			case <-p.Done(): // the files were sent to their end
			case <-time.After(time.Minute):
				t.Fatalf("%s: the publication did not end", stream)
			}
			stop()
		})
		return p
	}
	at(0, "board-42/alice", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true})
	at(300*time.Millisecond, "board-420/zoe", hubtest.Source{Video: live.VP9})
	standup := at(600*time.Millisecond, "standup/dave", hubtest.Source{Video: live.VP9})
	at(1500*time.Millisecond, "board-42/bob", hubtest.Source{Video: live.VP8, Audio: true})
	at(3000*time.Millisecond, "board-42/carol", hubtest.Source{Video: live.H264, VideoFile: "h264-baseline.h264"})
	<-standup.Done()
	a.waitEnded(t, "standup")
	at(4500*time.Millisecond, "standup/dave", hubtest.Source{Video: live.VP9})
	for _, stop := range stops {
		stop()
	}
	for _, m := range []string{"board-42", "board-420", "standup"} {
		a.waitEnded(t, m)
	}
	base := joined["alice"]
	for p := range joined {
		joined[p] -= base
	}
	return joined
}

// TestMeetingsAPI drives every meetings route over HTTP on meetings
// recorded from the fixtures.
func TestMeetingsAPI(t *testing.T) {
	mediacheck.Require(t)
	a := newMeetingArchive(t)
	joined := recordMeetings(t, a)
	all := a.list(t, "", adminH...).Meetings
	if len(all) != 4 {
		t.Fatalf("occurrences: %v, want board-42, board-420 and standup twice", ids2(all))
	}
	byMeeting := map[string][]meetings.Summary{}
	for _, s := range all {
		byMeeting[s.Meeting] = append(byMeeting[s.Meeting], s)
	}
	b42 := byMeeting["board-42"][0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("list", func(t *testing.T) { meetingsList(t, a, all) })
	t.Run("get", func(t *testing.T) { meetingsGet(t, a, b42.ID, joined) })
	t.Run("manifest", func(t *testing.T) { meetingsManifest(t, a, b42.ID) })
	t.Run("zip", func(t *testing.T) { meetingsZip(ctx, t, a, b42.ID) })
	t.Run("clip", func(t *testing.T) { meetingsClip(ctx, t, a, b42.ID) })
	t.Run("scopes", func(t *testing.T) { meetingsScopes(t, a, b42.ID, byMeeting["standup"][0].ID) })
	t.Run("bad input", func(t *testing.T) { meetingsBadInput(t, a, b42.ID) })
	t.Run("hold", func(t *testing.T) { meetingsHold(t, a, b42.ID, byMeeting["board-420"][0].ID) })
}

func meetingsList(t *testing.T, a *meetingArchive, all []meetings.Summary) {
	for i := 1; i < len(all); i++ {
		if all[i].Start.After(all[i-1].Start) {
			t.Errorf("not newest first: %s (%v) after %s (%v)", all[i].ID, all[i].Start, all[i-1].ID, all[i-1].Start)
		}
	}
	if all[0].Meeting != "standup" || all[len(all)-1].Meeting != "board-42" {
		t.Errorf("order %v: want standup's second occurrence first, board-42 last", ids2(all))
	}
	want := func(name, query string, meetingsWant ...string) {
		t.Helper()
		var got []string
		for _, s := range a.list(t, query, adminH...).Meetings {
			got = append(got, s.Meeting)
		}
		if !slices.Equal(got, meetingsWant) {
			t.Errorf("%s (?%s): %v, want %v", name, query, got, meetingsWant)
		}
	}
	want("participant", "participant=bob", "board-42")
	want("participant nobody", "participant=nobody")
	want("q, any case", "q=BOARD", "board-420", "board-42")
	want("q on a participant", "q=DAV", "standup", "standup")
	want("meeting, exactly", "meeting=board-42", "board-42")
	second := all[0]
	before := url.QueryEscape(second.Start.Add(-time.Millisecond).Format(time.RFC3339Nano))
	want("to before the last start", "to="+before, "standup", "board-420", "board-42")
	firstStandup := slices.IndexFunc(all[1:], func(s meetings.Summary) bool { return s.Meeting == "standup" }) + 1
	after := url.QueryEscape(all[firstStandup].End.Add(time.Millisecond).Format(time.RFC3339Nano))
	// board-42 lasts longest: it overlaps a range after the others ended.
	want("from after the short ones ended", "from="+after, "standup", "board-42")
	want("hold=false", "hold=false", "standup", "standup", "board-420", "board-42")
	want("hold=true", "hold=true")

	// Paging by one follows the cursor through all of them, in order.
	var paged []string
	cursor := ""
	for range 10 {
		p := a.list(t, "limit=1&cursor="+url.QueryEscape(cursor), adminH...)
		if len(p.Meetings) != 1 {
			t.Fatalf("a page of limit=1 holds %d", len(p.Meetings))
		}
		paged = append(paged, p.Meetings[0].ID)
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(paged, ids2(all)) {
		t.Errorf("paged: %v, want %v", paged, ids2(all))
	}
	p := a.list(t, "limit=3", adminH...)
	if len(p.Meetings) != 3 || p.NextCursor == "" {
		t.Fatalf("limit=3: %d and cursor %q", len(p.Meetings), p.NextCursor)
	}
	if rest := a.list(t, "limit=3&cursor="+p.NextCursor, adminH...); len(rest.Meetings) != 1 || rest.Meetings[0].ID != all[3].ID || rest.NextCursor != "" {
		t.Errorf("after the first 3: %v, cursor %q; want %s alone", ids2(rest.Meetings), rest.NextCursor, all[3].ID)
	}
}

func meetingsGet(t *testing.T, a *meetingArchive, id string, joined map[string]time.Duration) {
	d := a.get(t, id)
	man := d.Manifest
	if man.ID != id || man.Meeting != "board-42" || man.State != meetings.StateEnded || len(man.Participants) != 3 ||
		len(man.Recordings) != 3 || d.ManifestSHA256 == "" || d.Hold != nil {
		t.Fatalf("GET %s: %+v", id, d)
	}
	if d.ManifestURL != "/api/v1/meetings/"+id+"/manifest.json" || d.ZipURL != "/api/v1/meetings/"+id+"/download.zip" || len(d.Files) != 3 {
		t.Errorf("URLs: %q %q %+v", d.ManifestURL, d.ZipURL, d.Files)
	}
	for _, r := range man.Recordings {
		// Each file begins where its participant joined (the fixtures
		// start on a keyframe), on the gateway's clock.
		want := joined[r.Participant]
		if got := time.Duration(r.OffsetMS) * time.Millisecond; (got - want).Abs() > 150*time.Millisecond {
			t.Errorf("%s's recording is at %v on the timeline; they joined at %v", r.Participant, got, want)
		}
		if r.SHA256 == "" || r.Bytes == 0 || r.DurationMS < 2500 || r.State != recorder.StateFinished {
			t.Errorf("recording %+v", r)
		}
		i := slices.IndexFunc(d.Files, func(f meetingFile) bool { return f.Recording == r.ID })
		if i < 0 || d.Files[i].OffsetMS != r.OffsetMS || d.Files[i].Participant != r.Participant {
			t.Fatalf("files %+v do not list %s", d.Files, r.ID)
		}
		body := do(t, "GET", a.url+d.Files[i].URL, "", "", adminH...)
		if body.status != 200 || sha256hex([]byte(body.body)) != r.SHA256 {
			t.Errorf("GET %s: %d, its SHA-256 is not the manifest's %s", d.Files[i].URL, body.status, r.SHA256)
		}
	}
	for _, p := range man.Participants {
		if len(p.Sessions) != 1 || p.Sessions[0].LeaveMS == nil || *p.Sessions[0].LeaveMS <= p.Sessions[0].JoinMS {
			t.Errorf("participant %+v", p)
		}
	}
	if man.DurationMS < 7000 || man.DurationMS > 9000 {
		t.Errorf("the meeting lasts %d ms, want bob's 1.5 s + 6 s", man.DurationMS)
	}
}

// meetingsManifest: manifest.json as on disk, and manifest.json.sha256
// that sha256sum checks it against.
func meetingsManifest(t *testing.T, a *meetingArchive, id string) {
	d := a.get(t, id)
	man := do(t, "GET", a.url+d.ManifestURL, "", "", adminH...)
	sum := do(t, "GET", a.url+d.ManifestURL+".sha256", "", "", adminH...)
	if man.status != 200 || sum.status != 200 {
		t.Fatalf("manifest: %d, its checksum: %d %s", man.status, sum.status, sum.body)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(man.body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json.sha256"), []byte(sum.body), 0o644); err != nil {
		t.Fatal(err)
	}
	sha256sumCheck(t, dir, "manifest.json.sha256")
	if !strings.HasPrefix(sum.body, d.ManifestSHA256+"  manifest.json") {
		t.Errorf("manifest.json.sha256 %q; the API says %s", sum.body, d.ManifestSHA256)
	}
	var onDisk meetings.Manifest
	if err := json.Unmarshal([]byte(man.body), &onDisk); err != nil || onDisk.ID != id || len(onDisk.Recordings) != 3 {
		t.Errorf("manifest.json: %v %+v", err, onDisk)
	}
	// A wrong byte and sha256sum says so: the check can fail.
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(strings.Replace(man.body, "alice", "alicf", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sha256sum", "-c", "manifest.json.sha256").CombinedOutput(); err == nil {
		t.Errorf("sha256sum accepts a changed manifest: %s", out)
	}
}

// sha256sumCheck runs `sha256sum -c file` in dir.
func sha256sumCheck(t *testing.T, dir, file string) {
	t.Helper()
	cmd := exec.Command("sha256sum", "--strict", "-c", file)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c %s: %v\n%s", file, err, out)
	}
}

// unzipFrom downloads a zip and unzips it with unzip(1); it returns the
// folder inside and the response.
func unzipFrom(t *testing.T, u string, headers ...string) (string, result) {
	t.Helper()
	r := do(t, "GET", u, "", "", headers...)
	if r.status != 200 || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("GET %s: %d %v %.300s", u, r.status, r.header, r.body)
	}
	dir := t.TempDir()
	zipFile := filepath.Join(dir, "m.zip")
	if err := os.WriteFile(zipFile, []byte(r.body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("unzip", "-q", zipFile, "-d", filepath.Join(dir, "x")).CombinedOutput()
	if err != nil {
		t.Fatalf("unzip: %v %s", err, out)
	}
	if out, err := exec.Command("unzip", "-v", zipFile).Output(); err != nil || strings.Contains(string(out), "Defl") {
		t.Errorf("the zip is not store-only: %v\n%s", err, out)
	}
	inside, _ := filepath.Glob(filepath.Join(dir, "x", "*"))
	if len(inside) != 1 {
		t.Fatalf("the zip holds %v, want one folder", inside)
	}
	return inside[0], r
}

func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func meetingsZip(ctx context.Context, t *testing.T, a *meetingArchive, id string) {
	d := a.get(t, id)
	dir, r := unzipFrom(t, a.url+d.ZipURL, adminH...)
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, `filename="`+id+`.zip"`) || filepath.Base(dir) != id {
		t.Errorf("Content-Disposition %q, folder %s", cd, filepath.Base(dir))
	}
	want := []string{"SHA256SUMS", "manifest.json", "manifest.json.sha256"}
	for _, rec := range d.Manifest.Recordings {
		want = append(want, rec.File)
	}
	slices.Sort(want)
	if got := fileNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("the zip holds %v, want %v", got, want)
	}
	sha256sumCheck(t, dir, "SHA256SUMS")
	sha256sumCheck(t, dir, "manifest.json.sha256")
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	for _, rec := range d.Manifest.Recordings {
		if !strings.Contains(string(sums), rec.SHA256+"  "+rec.File+"\n") {
			t.Errorf("SHA256SUMS has not the manifest's %s for %s:\n%s", rec.SHA256, rec.File, sums)
		}
		pr, err := mediacheck.ProbeFile(ctx, filepath.Join(dir, rec.File))
		if err != nil {
			t.Fatal(err)
		}
		if got := pr.Duration(); (got - time.Duration(rec.DurationMS)*time.Millisecond).Abs() > 100*time.Millisecond {
			t.Errorf("%s lasts %v by ffprobe, %d ms by the manifest", rec.File, got, rec.DurationMS)
		}
	}
}

// keyframeAtOrBefore is the time of the last video keyframe at or before
// at in file, by ffprobe.
func keyframeAtOrBefore(ctx context.Context, t *testing.T, file string, at time.Duration) time.Duration {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey",
		"-show_entries", "frame=pts_time", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe keyframes of %s: %v", file, err)
	}
	best := time.Duration(-1)
	for _, l := range strings.Fields(string(out)) {
		s, err := strconv.ParseFloat(strings.Trim(l, ","), 64)
		if err != nil {
			continue
		}
		if d := time.Duration(math.Round(s*1000)) * time.Millisecond; d <= at {
			best = d
		}
	}
	if best < 0 {
		t.Fatalf("%s has no keyframe at or before %v: %s", file, at, out)
	}
	return best
}

// meetingsClip: ?from=2&to=5 holds every participant's part of those 3
// s: alice's and carol's H.264 cut and remuxed to MP4, bob's VP8 whole;
// a manifest of the clip re-based to 2 s, and sums that match.
func meetingsClip(ctx context.Context, t *testing.T, a *meetingArchive, id string) {
	d := a.get(t, id)
	src := d.Manifest
	dir, r := unzipFrom(t, a.url+d.ZipURL+"?from=2&to=5", adminH...)
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, id+"_2s-5s.zip") {
		t.Errorf("Content-Disposition %q", cd)
	}
	sha256sumCheck(t, dir, "SHA256SUMS")
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var clip meetings.Manifest
	if err := json.Unmarshal(data, &clip); err != nil {
		t.Fatal(err)
	}
	if clip.Clip == nil || clip.Clip.FromMS != 2000 || clip.Clip.ToMS != 5000 || clip.Clip.Occurrence != id ||
		clip.Clip.SourceManifestSHA256 != d.ManifestSHA256 || clip.DurationMS != 3000 || !clip.Start.Equal(src.Start.Add(2*time.Second)) {
		t.Fatalf("the clip's manifest: %+v %+v", clip, clip.Clip)
	}
	want := []string{"SHA256SUMS", "manifest.json"}
	sums, _ := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	for _, cr := range clip.Recordings {
		want = append(want, cr.File)
		if !strings.Contains(string(sums), cr.SHA256+"  "+cr.File+"\n") {
			t.Errorf("SHA256SUMS has not the clip manifest's %s for %s", cr.SHA256, cr.File)
		}
		i := slices.IndexFunc(src.Recordings, func(r meetings.Recording) bool { return r.ID == cr.ID })
		if i < 0 {
			t.Fatalf("the clip's recording %s is not the meeting's", cr.ID)
		}
		sr := src.Recordings[i]
		path := filepath.Join(dir, cr.File)
		pr, err := mediacheck.ProbeFile(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if sr.Participant == "bob" {
			// VP8: MP4 cannot carry it for browsers; the file is whole.
			if !cr.Whole || cr.File != sr.File || cr.SHA256 != sr.SHA256 || cr.OffsetMS != sr.OffsetMS-2000 {
				t.Errorf("bob's VP8 in the clip: %+v (the meeting's: offset %d, %s)", cr, sr.OffsetMS, sr.SHA256)
			}
			continue
		}
		// Cut: from the keyframe at or before 2 s of the meeting, which
		// ffprobe finds in the recording's own file, to 5 s.
		inFile := max(2000-sr.OffsetMS, 0)
		kf := keyframeAtOrBefore(ctx, t, filepath.Join(a.dir, "board-42", id, sr.File), time.Duration(inFile)*time.Millisecond).Milliseconds()
		wantOffset := sr.OffsetMS + kf - 2000
		wantDur := min(sr.OffsetMS+sr.DurationMS, 5000) - (sr.OffsetMS + kf)
		if cr.Whole || cr.Container != "mp4" || !strings.HasSuffix(cr.File, ".mp4") || cr.Source != sr.File ||
			(time.Duration(cr.OffsetMS-wantOffset)*time.Millisecond).Abs() > 2*time.Millisecond || cr.DurationMS != wantDur {
			t.Errorf("%s in the clip: offset %d ms, %d ms long; want %d ms (keyframe at %d ms of the file), %d ms long: %+v",
				sr.Participant, cr.OffsetMS, cr.DurationMS, wantOffset, kf, wantDur, cr)
		}
		if !strings.Contains(pr.Format.FormatName, "mp4") || pr.Stream("video") == nil {
			t.Errorf("%s: %s %+v", cr.File, pr.Format.FormatName, pr.Streams)
		}
		if got := pr.Duration(); (got - time.Duration(cr.DurationMS)*time.Millisecond).Abs() > 100*time.Millisecond {
			t.Errorf("%s lasts %v by ffprobe, %d ms by the clip's manifest", cr.File, got, cr.DurationMS)
		}
		if err := mediacheck.Decode(ctx, path); err != nil {
			t.Error(err)
		}
	}
	slices.Sort(want)
	if got := fileNames(t, dir); !slices.Equal(got, want) || len(clip.Recordings) != 3 {
		t.Errorf("the clip holds %v, its manifest %v", got, want)
	}
	for _, p := range clip.Participants {
		s := p.Sessions[0]
		switch p.Name {
		case "alice", "bob":
			if s.JoinMS != 0 {
				t.Errorf("%s was there when the clip starts: %+v", p.Name, s)
			}
		case "carol":
			if joined := src.Participants[slices.IndexFunc(src.Participants, func(p meetings.Participant) bool { return p.Name == "carol" })].Sessions[0].JoinMS; s.JoinMS != joined-2000 {
				t.Errorf("carol joins the clip at %d ms, the meeting at %d ms", s.JoinMS, joined)
			}
		}
		if s.LeaveMS != nil && *s.LeaveMS > 3000 {
			t.Errorf("%s leaves the clip at %d ms, after its end", p.Name, *s.LeaveMS)
		}
	}
	for _, e := range clip.Events {
		if e.OffsetMS < 0 || e.OffsetMS > 3000 {
			t.Errorf("event outside the clip: %+v", e)
		}
	}
	// The same range in RFC 3339 times: the same clip.
	at := func(d time.Duration) string { return url.QueryEscape(src.Start.Add(d).Format(time.RFC3339Nano)) }
	dir2, _ := unzipFrom(t, a.url+d.ZipURL+"?from="+at(2*time.Second)+"&to="+at(5*time.Second), adminH...)
	sums2, _ := os.ReadFile(filepath.Join(dir2, "SHA256SUMS"))
	if string(sums2) != string(sums) {
		t.Errorf("from and to as RFC 3339 times:\n%s\nas seconds:\n%s", sums2, sums)
	}
	// From 6.5 s only bob is left: one file.
	dir3, _ := unzipFrom(t, a.url+d.ZipURL+"?from=6.5", adminH...)
	sha256sumCheck(t, dir3, "SHA256SUMS")
	if got := fileNames(t, dir3); len(got) != 3 || !slices.Contains(got, filepath.Base(src.Recordings[slices.IndexFunc(src.Recordings, func(r meetings.Recording) bool { return r.Participant == "bob" })].File)) {
		t.Errorf("from=6.5 holds %v, want bob's file, the manifest and SHA256SUMS", got)
	}
}

// meetingsScopes: a stream token of "board-42/*" reads board-42, and
// nothing else.
func meetingsScopes(t *testing.T, a *meetingArchive, b42, standup string) {
	p := a.list(t, "meeting=board-42", board42...)
	if len(p.Meetings) != 1 || p.Meetings[0].ID != b42 {
		t.Errorf("board-42's token lists %v", ids2(p.Meetings))
	}
	d := a.get(t, b42)
	for _, u := range []string{"/api/v1/meetings/" + b42, "/api/v1/meetings/" + b42 + "/manifest.json", "/api/v1/meetings/" + b42 + "/download.zip",
		d.Files[0].URL} {
		if r := do(t, "GET", a.url+u, "", "", board42...); r.status != 200 {
			t.Errorf("GET %s with board-42's token: %d", u, r.status)
		}
	}
	sd := a.get(t, standup)
	for _, u := range []string{"/api/v1/meetings", "/api/v1/meetings?meeting=standup", "/api/v1/meetings?meeting=board-420",
		"/api/v1/meetings/" + standup, "/api/v1/meetings/" + standup + "/manifest.json", "/api/v1/meetings/" + standup + "/download.zip",
		sd.Files[0].URL, "/api/v1/audit"} {
		wantProblem(t, do(t, "GET", a.url+u, "", "", board42...), http.StatusUnauthorized, "not valid")
	}
	for _, u := range []string{"/api/v1/meetings", "/api/v1/meetings/" + b42, "/api/v1/meetings/" + b42 + "/download.zip"} {
		wantProblem(t, do(t, "GET", a.url+u, "", ""), http.StatusUnauthorized, "needs a token")
		if r := do(t, "GET", a.url+u, "", "", viewerH...); r.status != 200 {
			t.Errorf("GET %s with a read token: %d", u, r.status)
		}
	}
}

func meetingsBadInput(t *testing.T, a *meetingArchive, id string) {
	for _, u := range []string{"/api/v1/meetings/nope_20260101T000000Z", "/api/v1/meetings/nope/manifest.json",
		"/api/v1/meetings/nope/manifest.json.sha256", "/api/v1/meetings/nope/download.zip"} {
		wantProblem(t, do(t, "GET", a.url+u, "", "", adminH...), http.StatusNotFound, "there is no meeting occurrence")
	}
	wantProblem(t, do(t, "PUT", a.url+"/api/v1/meetings/nope/hold", "application/json", `{"reason":"x"}`, adminH...), http.StatusNotFound, "no meeting occurrence")
	wantProblem(t, do(t, "DELETE", a.url+"/api/v1/meetings/nope", "", "", adminH...), http.StatusNotFound, "no meeting occurrence")
	for q, want := range map[string]string{
		"cursor=bogus": "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("x")): "cursor",
		"from=yesterday": "from must be an RFC 3339 time",
		"to=2026-13-01":  "to must be an RFC 3339 time",
		"hold=maybe":     "hold must be true or false",
		"limit=0":        "limit must be",
		"limit=501":      "limit must be",
		"limit=x":        "limit must be",
	} {
		wantProblem(t, do(t, "GET", a.url+"/api/v1/meetings?"+q, "", "", adminH...), http.StatusBadRequest, want)
	}
	zip := a.url + "/api/v1/meetings/" + id + "/download.zip?"
	for q, want := range map[string]string{
		"from=two":                "from must be seconds",
		"to=1e400":                "to must be seconds",
		"from=-1":                 "from must be 0 or more",
		"from=NaN":                "from must be 0 or more",
		"from=5&to=2":             "from (5) must be earlier than to (2)",
		"from=3&to=3":             "must be earlier",
		"to=0":                    "must be after meeting occurrence",
		"from=3600":               "past the end",
		"to=2020-01-01T00:00:00Z": "must be after meeting occurrence",
	} {
		wantProblem(t, do(t, "GET", zip+q, "", "", adminH...), http.StatusBadRequest, want)
	}
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// meetingsHold: only an admin holds; while held, deleting the meeting or
// any of its recordings is 409 naming the hold and retention skips it;
// every change and deletion is in the audit log.
func meetingsHold(t *testing.T, a *meetingArchive, id, other string) {
	hold := a.url + "/api/v1/meetings/" + id + "/hold"
	body := `{"reason":"case 2026-17"}`
	wantProblem(t, do(t, "PUT", hold, "application/json", body), http.StatusUnauthorized, "needs a token")
	wantProblem(t, do(t, "PUT", hold, "application/json", body, viewerH...), http.StatusForbidden, "needs an admin token")
	wantProblem(t, do(t, "PUT", hold, "application/json", body, board42...), http.StatusForbidden, "needs an admin token")
	wantProblem(t, do(t, "PUT", hold, "application/json", `{}`, adminH...), http.StatusBadRequest, "needs a reason")
	wantProblem(t, do(t, "PUT", hold, "application/json", `{"reason":`, adminH...), http.StatusBadRequest, "must be JSON")
	if r := do(t, "GET", a.url+"/api/v1/meetings?hold=true", "", "", adminH...); strings.Contains(r.body, id) {
		t.Fatal("held before the hold")
	}
	r := do(t, "PUT", hold, "application/json", body, adminH...)
	var h meetings.Hold
	if r.status != 200 || json.Unmarshal([]byte(r.body), &h) != nil || h.Reason != "case 2026-17" || h.By == "" || strings.Contains(h.By, "admin") {
		t.Fatalf("PUT hold: %d %s", r.status, r.body)
	}
	if p := a.list(t, "hold=true", adminH...); len(p.Meetings) != 1 || p.Meetings[0].ID != id || p.Meetings[0].Hold == nil {
		t.Errorf("hold=true lists %+v", p.Meetings)
	}
	d := a.get(t, id)
	if d.Hold == nil || d.Hold.Reason != "case 2026-17" {
		t.Errorf("GET shows hold %+v", d.Hold)
	}
	wantProblem(t, do(t, "DELETE", a.url+"/api/v1/meetings/"+id, "", "", viewerH...), http.StatusForbidden, "needs an admin token")
	wantProblem(t, do(t, "DELETE", a.url+"/api/v1/meetings/"+id, "", "", adminH...), http.StatusConflict, "legal hold since")
	wantProblem(t, do(t, "DELETE", a.url+"/api/v1/meetings/"+id, "", "", adminH...), http.StatusConflict, "case 2026-17")
	for _, rec := range d.Manifest.Recordings {
		wantProblem(t, do(t, "DELETE", a.url+"/api/v1/recordings/"+rec.ID, "", "", adminH...), http.StatusConflict, "case 2026-17")
	}
	// A recording of another meeting is deleted, and that is audited.
	od := a.get(t, other)
	if r := do(t, "DELETE", a.url+"/api/v1/recordings/"+od.Manifest.Recordings[0].ID, "", "", adminH...); r.status != http.StatusNoContent {
		t.Fatalf("DELETE of an unheld meeting's recording: %d %s", r.status, r.body)
	}

	// Retention as a restarted gateway with a total size of one byte
	// would run it: everything goes but the held meeting.
	ret, err := recorder.New(recorder.Config{Dir: a.dir, Enabled: true, MaxTotalSize: 1, Protect: a.m.Protect, OnDelete: a.m.RetentionDeleted})
	if err != nil {
		t.Fatal(err)
	}
	deleted := ret.EnforceRetention()
	ret.Close()
	if len(deleted) != 2 {
		t.Errorf("retention deleted %d recordings, want standup's 2", len(deleted))
	}
	for _, del := range deleted {
		if del.Occurrence == id {
			t.Errorf("retention deleted %s of the held meeting", del.ID)
		}
	}
	for _, rec := range d.Manifest.Recordings {
		if _, err := os.Stat(filepath.Join(a.dir, "board-42", id, rec.File)); err != nil {
			t.Errorf("held %s: %v", rec.File, err)
		}
	}

	wantProblem(t, do(t, "DELETE", hold, "application/json", `{"reason":"case closed"}`, board42...), http.StatusForbidden, "needs an admin token")
	if r := do(t, "DELETE", hold, "application/json", `{"reason":"case closed"}`, adminH...); r.status != http.StatusNoContent {
		t.Fatalf("DELETE hold: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", a.url+"/api/v1/meetings/"+id, "", "", adminH...); r.status != http.StatusNoContent {
		t.Fatalf("DELETE of the meeting once released: %d %s", r.status, r.body)
	}
	wantProblem(t, do(t, "GET", a.url+"/api/v1/meetings/"+id, "", "", adminH...), http.StatusNotFound, "no meeting occurrence")
	if _, err := os.Stat(filepath.Join(a.dir, "board-42", id)); !os.IsNotExist(err) {
		t.Errorf("the meeting's folder after DELETE: %v", err)
	}

	// The audit log, by the API and on disk: JSON lines, in order.
	wantProblem(t, do(t, "GET", a.url+"/api/v1/audit", "", "", viewerH...), http.StatusForbidden, "needs an admin token")
	var audit struct {
		Entries []meetings.AuditEntry `json:"entries"`
	}
	getJSON(t, a.url+"/api/v1/audit", &audit, adminH...)
	var got []string
	for _, e := range audit.Entries {
		got = append(got, e.Action+" "+e.Occurrence+" "+e.Reason)
		if e.By == "" || e.Time.IsZero() {
			t.Errorf("audit entry %+v", e)
		}
	}
	want := []string{"hold " + id + " case 2026-17", "delete_recording " + other + " deleted through the API"}
	for _, del := range deleted {
		want = append(want, "delete_recording "+del.Occurrence+" "+del.Reason)
	}
	want = append(want, "release_hold "+id+" case closed", "delete_meeting "+id+" deleted through the API")
	if !slices.Equal(got, want) {
		t.Errorf("audit log:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	raw, err := os.ReadFile(filepath.Join(a.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("audit.log has %d lines, want %d", len(lines), len(want))
	}
	for _, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil || e["action"] == nil || strings.Contains(l, `"admin"`) {
			t.Errorf("audit.log line %q: %v", l, err)
		}
	}
}
