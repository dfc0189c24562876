package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// archiveDisk is the free space the test's recorder sees.
type archiveDisk struct{ free atomic.Uint64 }

func (d *archiveDisk) FreeSpace(string) (uint64, error) { return d.free.Load(), nil }

// archive is a real hub and recorder behind the API, on loopback.
type archive struct {
	dir  string
	hub  *live.Hub
	rec  *recorder.Recorder
	disk *archiveDisk
	url  string
}

// newArchive records real media (hubtest into the hub, the recorder
// subscribed) and serves the API over it.
func newArchive(t *testing.T) *archive {
	t.Helper()
	a := &archive{dir: t.TempDir(), hub: live.NewHub(live.Reject), disk: &archiveDisk{}}
	a.disk.free.Store(100e9)
	rec, err := recorder.New(recorder.Config{Dir: a.dir, Enabled: true, SegmentDuration: 2 * time.Second,
		MinFreeSpace: 1e9, FreeSpace: a.disk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	a.rec = rec
	a.hub.OnPublish(rec.Record)
	a.url = a.serve(t, AuthConfig{})
	return a
}

// serve starts one more API server over the archive's recorder.
func (a *archive) serve(t *testing.T, auth AuthConfig) string {
	t.Helper()
	return serveAPI(t, a.hub, rtc.Config{}, auth, Config{}, Deps{Recordings: a.rec})
}

// publish sends src on stream until the files end (or, with Loop, until
// stop); stop returns once the recording is final.
func (a *archive) publish(t *testing.T, stream string, src hubtest.Source) (*hubtest.Publisher, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := hubtest.Publish(ctx, a.hub, stream, src)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	subs := p.Stream.Subscriptions() // the recorder subscribed in Publish
	return p, func() {
		cancel()
		<-p.Done()
		for _, sub := range subs {
			select {
			case <-sub.Done():
			case <-time.After(30 * time.Second):
				t.Fatal("the recording did not finish")
			}
		}
	}
}

type recJSON struct {
	ID         string    `json:"id"`
	Stream     string    `json:"stream"`
	Path       string    `json:"path"`
	Container  string    `json:"container"`
	Codecs     []string  `json:"codecs"`
	Width      int       `json:"width"`
	Height     int       `json:"height"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"duration_ms"`
	Size       int64     `json:"size"`
	State      string    `json:"state"`
	FileURL    string    `json:"file_url"`
}

type pageJSON struct {
	Recordings []recJSON `json:"recordings"`
	NextCursor *string   `json:"next_cursor"`
	Paused     string    `json:"recording_paused_reason"`
}

func listPage(t *testing.T, base, query string, headers ...string) pageJSON {
	t.Helper()
	r := do(t, "GET", base+"/api/v1/recordings?"+query, "", "", headers...)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET recordings?%s: %d %s %s", query, r.status, r.header.Get("Content-Type"), r.body)
	}
	var p pageJSON
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	return p
}

func ids(recs []recJSON) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func TestRecordingsAPI(t *testing.T) {
	mediacheck.Require(t)
	a := newArchive(t)
	// Two streams at once, cut into 2 s files: 3 WebM and 3 Matroska.
	pa, stopA := a.publish(t, "cam-a", hubtest.Source{Video: live.VP8, Audio: true})
	pb, stopB := a.publish(t, "cam-b", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true})
	for _, p := range []*hubtest.Publisher{pa, pb} {
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the publication did not end")
		}
	}
	stopA()
	stopB()

	all := listPage(t, a.url, "").Recordings
	if len(all) != 6 {
		t.Fatalf("want 6 recordings (two streams in 2 s files), got %v", ids(all))
	}
	byStream := map[string][]recJSON{}
	for i, r := range all {
		if i > 0 && r.Start.After(all[i-1].Start) {
			t.Errorf("not newest first: %s after %s", r.ID, all[i-1].ID)
		}
		byStream[r.Stream] = append(byStream[r.Stream], r)
		wantC, wantCodecs := "webm", "vp8,opus"
		if r.Stream == "cam-b" {
			wantC, wantCodecs = "mkv", "h264,opus"
		}
		if r.State != "finished" || r.Container != wantC || strings.Join(r.Codecs, ",") != wantCodecs ||
			r.Width != 640 || r.Height != 360 || r.DurationMS < 1500 || r.Size < 10_000 ||
			r.Path != r.Stream+"/"+r.ID+"."+wantC || r.FileURL != "/api/v1/recordings/"+r.ID+"/file" ||
			!r.End.Equal(r.Start.Add(time.Duration(r.DurationMS)*time.Millisecond)) {
			t.Errorf("recording %+v", r)
		}
	}

	t.Run("filter", func(t *testing.T) {
		b := listPage(t, a.url, "stream=cam-b").Recordings
		if len(b) != 3 || !slices.Equal(ids(b), ids(byStream["cam-b"])) {
			t.Errorf("stream=cam-b: %v", ids(b))
		}
		if got := listPage(t, a.url, "stream=nobody").Recordings; got == nil || len(got) != 0 {
			t.Errorf("unknown stream: %v (want an empty list, not null)", got)
		}
		// cam-a's middle file alone: the files before and after touch it
		// but do not overlap it.
		mid := byStream["cam-a"][1]
		q := url.Values{"stream": {"cam-a"}, "from": {mid.Start.Format(time.RFC3339Nano)}, "to": {mid.End.Format(time.RFC3339Nano)}}
		if got := listPage(t, a.url, q.Encode()).Recordings; len(got) != 1 || got[0].ID != mid.ID {
			t.Errorf("window of %s: %v", mid.ID, ids(got))
		}
		q.Del("stream")
		both := listPage(t, a.url, q.Encode()).Recordings
		if len(both) < 2 || !slices.Contains(ids(both), mid.ID) {
			t.Errorf("window of %s, any stream: %v", mid.ID, ids(both))
		}
		q = url.Values{"from": {all[0].End.Add(time.Hour).Format(time.RFC3339)}}
		if got := listPage(t, a.url, q.Encode()).Recordings; len(got) != 0 {
			t.Errorf("from an hour after the last: %v", ids(got))
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var got []string
		cursor := ""
		for pages := 1; ; pages++ {
			q := url.Values{"limit": {"4"}}
			if cursor != "" {
				q.Set("cursor", cursor)
			}
			p := listPage(t, a.url, q.Encode())
			got = append(got, ids(p.Recordings)...)
			if p.NextCursor == nil {
				if pages != 2 || len(p.Recordings) != 2 {
					t.Errorf("page %d of 6 recordings by 4 has %d", pages, len(p.Recordings))
				}
				break
			}
			cursor = *p.NextCursor
			if pages > 3 {
				t.Fatal("too many pages")
			}
		}
		if !slices.Equal(got, ids(all)) {
			t.Errorf("paged %v, listed %v", got, ids(all))
		}
	})

	t.Run("bad queries", func(t *testing.T) {
		for q, want := range map[string]string{
			"limit=0":                 "limit must be a whole number from 1 to 500",
			"limit=501":               "limit must be",
			"limit=ten":               "limit must be",
			"from=yesterday":          "from must be an rfc 3339 time",
			"to=2025-13-01T00:00:00Z": "to must be an rfc 3339 time",
			"from=2025-05-02T00:00:00Z&to=2025-05-01T00:00:00Z": "from must be earlier than to",
			"cursor=bm9wZQ":    "cursor is not valid",
			"cursor=%00%01":    "cursor is not valid",
			"cursor=MTIzL2lk1": "cursor is not valid",
		} {
			wantProblem(t, do(t, "GET", a.url+"/api/v1/recordings?"+q, "", ""), http.StatusBadRequest, want)
		}
	})

	t.Run("get", func(t *testing.T) {
		r := do(t, "GET", a.url+"/api/v1/recordings/"+all[2].ID, "", "")
		var got recJSON
		if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.ID != all[2].ID || got.Size != all[2].Size {
			t.Errorf("GET one: %d %s", r.status, r.body)
		}
		wantProblem(t, do(t, "GET", a.url+"/api/v1/recordings/cam-a_20000101T000000Z", "", ""), http.StatusNotFound, "there is no recording cam-a_20000101T000000Z")
	})

	t.Run("file", func(t *testing.T) {
		for _, rec := range []recJSON{byStream["cam-a"][0], byStream["cam-b"][0]} {
			onDisk, err := os.ReadFile(filepath.Join(a.rec.Dir(), rec.Path))
			if err != nil {
				t.Fatal(err)
			}
			u := a.url + rec.FileURL
			full := do(t, "GET", u, "", "")
			wantType := map[string]string{"webm": "video/webm", "mkv": "video/x-matroska"}[rec.Container]
			if full.status != 200 || full.header.Get("Content-Type") != wantType || full.body != string(onDisk) ||
				full.header.Get("Content-Length") != strconv.Itoa(len(onDisk)) || full.header.Get("Accept-Ranges") != "bytes" {
				t.Fatalf("GET %s: %d %v (%d bytes of %d)", rec.FileURL, full.status, full.header, len(full.body), len(onDisk))
			}
			name := rec.ID + "." + rec.Container
			if cd := full.header.Get("Content-Disposition"); cd != `attachment; filename="`+name+`"; filename*=UTF-8''`+name {
				t.Errorf("Content-Disposition %q", cd)
			}
			etag := full.header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) || len(etag) < 4 {
				t.Errorf("ETag %q", etag)
			}
			part := do(t, "GET", u, "", "", "Range", "bytes=100-199")
			if part.status != http.StatusPartialContent || part.body != string(onDisk[100:200]) ||
				part.header.Get("Content-Range") != "bytes 100-199/"+strconv.Itoa(len(onDisk)) {
				t.Errorf("Range: %d %v", part.status, part.header)
			}
			tail := do(t, "GET", u, "", "", "Range", "bytes=-10")
			if tail.status != http.StatusPartialContent || tail.body != string(onDisk[len(onDisk)-10:]) {
				t.Errorf("suffix Range: %d", tail.status)
			}
			if r := do(t, "GET", u, "", "", "Range", "bytes="+strconv.Itoa(len(onDisk)+10)+"-"); r.status != http.StatusRequestedRangeNotSatisfiable {
				t.Errorf("Range past the end: %d", r.status)
			}
			// A suffix of zero bytes is no byte of the file: 416, alone or
			// as the only range; beside a real range it is dropped.
			for _, rng := range []string{"bytes=-0", "bytes= -00 ", "bytes=-0,-0"} {
				r := do(t, "GET", u, "", "", "Range", rng)
				if r.status != http.StatusRequestedRangeNotSatisfiable || r.header.Get("Content-Range") != "bytes */"+strconv.Itoa(len(onDisk)) {
					t.Errorf("Range %q: %d, Content-Range %q; want 416 and bytes */%d", rng, r.status, r.header.Get("Content-Range"), len(onDisk))
				}
			}
			if r := do(t, "GET", u, "", "", "Range", "bytes=-0, 0-9"); r.status != http.StatusPartialContent || r.body != string(onDisk[:10]) ||
				r.header.Get("Content-Range") != "bytes 0-9/"+strconv.Itoa(len(onDisk)) {
				t.Errorf("Range -0 with 0-9: %d %q", r.status, r.header.Get("Content-Range"))
			}
			if r := do(t, "GET", u, "", "", "If-None-Match", etag); r.status != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: %d", r.status)
			}
			if r := do(t, "GET", u, "", "", "Range", "bytes=0-9", "If-Range", `"stale"`); r.status != 200 || len(r.body) != len(onDisk) {
				t.Errorf("If-Range with a stale ETag: %d, %d bytes", r.status, len(r.body))
			}
			if r := do(t, "HEAD", u, "", ""); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != strconv.Itoa(len(onDisk)) {
				t.Errorf("HEAD: %d %v", r.status, r.header)
			}

			// ffprobe and ffmpeg read the file through the URL, seeking
			// with Range requests.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			pr, err := mediacheck.ProbeFile(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			if d := pr.Duration() - time.Duration(rec.DurationMS)*time.Millisecond; d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("ffprobe over HTTP: duration %v, catalog %d ms", pr.Duration(), rec.DurationMS)
			}
			if v := pr.Stream("video"); v == nil || v.CodecName != rec.Codecs[0] || v.Width != 640 {
				t.Errorf("ffprobe over HTTP: %+v", pr.Streams)
			}
			if err := mediacheck.SeekDecode(ctx, u, time.Duration(rec.DurationMS)*time.Millisecond/2); err != nil {
				t.Errorf("seeking over HTTP: %v", err)
			}
			cancel()
		}
	})

	t.Run("traversal", func(t *testing.T) {
		// A file outside the recordings directory, and links to it from
		// inside: none of them may ever be served.
		secret := []byte("secret outside the recordings directory")
		outside := filepath.Join(t.TempDir(), "secret.webm")
		os.WriteFile(outside, secret, 0o644)
		os.Symlink(outside, filepath.Join(a.rec.Dir(), "cam-a", "cam-a_20990101T000000Z.webm"))
		os.Symlink(filepath.Dir(outside), filepath.Join(a.rec.Dir(), "escape"))
		for _, p := range []string{
			"/api/v1/recordings/..%2F..%2Fetc%2Fpasswd/file",
			"/api/v1/recordings/%2Fetc%2Fpasswd/file",
			"/api/v1/recordings/../../../etc/passwd",
			"/api/v1/recordings/..",
			"/api/v1/recordings/.%2e/file",
			"/api/v1/recordings/%2e%2e/file",
			"/api/v1/recordings/cam-a%2F..%2F..%2Fsecret/file",
			"/api/v1/recordings/cam-a_20990101T000000Z/file",
			"/api/v1/recordings/escape%2Fsecret/file",
			"/api/v1/recordings/%5Cetc%5Cpasswd/file",
			"/api/v1/recordings/" + strings.Repeat("a", 300) + "/file",
		} {
			r := do(t, "GET", a.url+p, "", "")
			if r.status < 400 || strings.Contains(r.body, string(secret)) || strings.Contains(r.body, "root:") {
				t.Errorf("GET %s: %d %q", p, r.status, r.body)
			}
			if r := do(t, "DELETE", a.url+p, "", ""); r.status < 400 {
				t.Errorf("DELETE %s: %d", p, r.status)
			}
		}
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("the outside file was touched: %v", err)
		}
		// A listed recording whose file is swapped for a link out of the
		// directory after the scan is refused too.
		victim := byStream["cam-b"][2]
		path := filepath.Join(a.rec.Dir(), victim.Path)
		saved, _ := os.ReadFile(path)
		os.Remove(path)
		os.Symlink(outside, path)
		wantProblem(t, do(t, "GET", a.url+victim.FileURL, "", ""), http.StatusForbidden, "not inside the recordings directory")
		wantProblem(t, do(t, "DELETE", a.url+"/api/v1/recordings/"+victim.ID, "", ""), http.StatusForbidden, "not inside the recordings directory")
		os.Remove(path)
		os.WriteFile(path, saved, 0o644)
		if _, err := os.Stat(outside); err != nil {
			t.Errorf("the outside file was deleted: %v", err)
		}
		if p := listPage(t, a.url, ""); len(p.Recordings) != 6 {
			t.Errorf("listing after the attempts: %v", ids(p.Recordings))
		}
	})

	t.Run("auth", func(t *testing.T) {
		u := a.serve(t, AuthConfig{ReadTokens: []string{"reader"}, AdminTokens: []string{"admin"}, PublishTokens: []string{"pub"}})
		wantProblem(t, do(t, "GET", u+"/api/v1/recordings", "", ""), http.StatusUnauthorized, "needs a token")
		wantProblem(t, do(t, "GET", u+"/api/v1/recordings/"+all[0].ID, "", ""), http.StatusUnauthorized, "needs a token")
		wantProblem(t, do(t, "GET", u+all[0].FileURL, "", ""), http.StatusUnauthorized, "needs a token")
		wantProblem(t, do(t, "GET", u+"/api/v1/recordings", "", "", "Authorization", "Bearer wrong"), http.StatusUnauthorized, "not valid")
		if p := listPage(t, u, "", "Authorization", "Bearer reader"); len(p.Recordings) != 6 {
			t.Errorf("reader lists %v", ids(p.Recordings))
		}
		// A <video> element cannot send headers: ?token= works for files.
		if r := do(t, "GET", u+all[0].FileURL+"?token=reader", "", "", "Range", "bytes=0-3"); r.status != http.StatusPartialContent || r.body != "\x1a\x45\xdf\xa3" {
			t.Errorf("file with ?token=: %d %q", r.status, r.body)
		}
		victim := all[len(all)-1]
		for _, tok := range []string{"", "reader", "pub"} {
			if r := do(t, "DELETE", u+"/api/v1/recordings/"+victim.ID, "", "", "Authorization", "Bearer "+tok); r.status != http.StatusUnauthorized {
				t.Errorf("DELETE with token %q: %d", tok, r.status)
			}
		}
		if r := do(t, "DELETE", u+"/api/v1/recordings/"+victim.ID, "", "", "Authorization", "Bearer admin"); r.status != http.StatusNoContent {
			t.Fatalf("DELETE as admin: %d %s", r.status, r.body)
		}
		all = all[:len(all)-1]
	})

	t.Run("delete", func(t *testing.T) {
		victim := all[0]
		path := filepath.Join(a.rec.Dir(), victim.Path)
		if r := do(t, "DELETE", a.url+"/api/v1/recordings/"+victim.ID, "", ""); r.status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.status, r.body)
		}
		for _, f := range []string{path, path + ".json"} {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("%s is still there: %v", f, err)
			}
		}
		wantProblem(t, do(t, "GET", a.url+"/api/v1/recordings/"+victim.ID, "", ""), http.StatusNotFound, "no recording")
		wantProblem(t, do(t, "GET", a.url+victim.FileURL, "", ""), http.StatusNotFound, "no recording")
		wantProblem(t, do(t, "DELETE", a.url+"/api/v1/recordings/"+victim.ID, "", ""), http.StatusNotFound, "no recording")
		if p := listPage(t, a.url, ""); slices.Contains(ids(p.Recordings), victim.ID) || len(p.Recordings) != 4 {
			t.Errorf("listed after DELETE: %v", ids(p.Recordings))
		}
	})

	t.Run("in progress", func(t *testing.T) {
		_, stop := a.publish(t, "cam-live", hubtest.Source{Video: live.VP8, Loop: true})
		var live recJSON
		for deadline := time.Now().Add(30 * time.Second); live.ID == ""; time.Sleep(20 * time.Millisecond) {
			if p := listPage(t, a.url, "stream=cam-live"); len(p.Recordings) == 1 && p.Recordings[0].DurationMS > 0 {
				live = p.Recordings[0]
			}
			if time.Now().After(deadline) {
				t.Fatal("the live recording is not listed within 30 s")
			}
		}
		if live.State != "recording" || !strings.HasSuffix(live.Path, ".webm.part") || !live.End.IsZero() {
			t.Errorf("live recording: %+v", live)
		}
		wantProblem(t, do(t, "GET", a.url+live.FileURL, "", ""), http.StatusConflict, "still being written")
		wantProblem(t, do(t, "DELETE", a.url+"/api/v1/recordings/"+live.ID, "", ""), http.StatusConflict, `once stream "cam-live" stops`)
		stop()
		got := recJSON{}
		r := do(t, "GET", a.url+"/api/v1/recordings/"+live.ID, "", "")
		if json.Unmarshal([]byte(r.body), &got) != nil || got.State != "finished" {
			t.Fatalf("after the stream ended: %s", r.body)
		}
		if r := do(t, "DELETE", a.url+"/api/v1/recordings/"+live.ID, "", ""); r.status != http.StatusNoContent {
			t.Errorf("DELETE once finished: %d %s", r.status, r.body)
		}
	})

	t.Run("disk almost full", func(t *testing.T) {
		a.disk.free.Store(1e6)
		defer a.disk.free.Store(100e9)
		p := listPage(t, a.url, "")
		if !strings.Contains(p.Paused, "below recordings.min_free_space") {
			t.Errorf("recording_paused_reason %q", p.Paused)
		}
		pub, stop := a.publish(t, "cam-full", hubtest.Source{Video: live.VP8, Loop: true})
		defer stop()
		if n := len(pub.Stream.Subscriptions()); n != 0 {
			t.Errorf("recorded with the disk almost full (%d subscriptions)", n)
		}
		a.disk.free.Store(100e9)
		if p := listPage(t, a.url, ""); p.Paused != "" {
			t.Errorf("still paused: %q", p.Paused)
		}
		body := do(t, "GET", a.url+"/api/v1/recordings", "", "").body
		if bytes.Contains([]byte(body), []byte("recording_paused_reason")) {
			t.Errorf("reason present while recording works: %s", body)
		}
	})
}

// A file put in the archive by hand may be called anything: its name
// reaches Content-Disposition encoded (RFC 6266), never raw; and a FIFO
// in a recording's place is refused at once instead of hanging the GET.
func TestArchiveHostileFiles(t *testing.T) {
	mediacheck.Require(t)
	a := newArchive(t)
	p, stop := a.publish(t, "cam", hubtest.Source{Video: live.VP8})
	<-p.Done()
	stop()
	dir := a.rec.Dir()
	recs := listPage(t, a.url, "").Recordings
	if len(recs) == 0 {
		t.Fatal("nothing recorded")
	}
	rec := recs[len(recs)-1]
	a.rec.Close()

	const weird = `we"ird; name=x.webm é` // a quote, a semicolon, UTF-8
	src := filepath.Join(dir, rec.Path)
	if err := os.Rename(src, filepath.Join(dir, "cam", weird+".webm")); err != nil {
		t.Fatal(err)
	}
	os.Remove(src + ".json") // described from the file itself
	rec2, err := recorder.New(recorder.Config{Dir: dir, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec2.Close)
	base := serveAPI(t, live.NewHub(live.Reject), rtc.Config{}, AuthConfig{}, Config{}, Deps{Recordings: rec2})
	var weirdRec recJSON
	for _, r := range listPage(t, base, "").Recordings {
		if strings.HasPrefix(r.Path, "cam/we") {
			weirdRec = r
		}
	}
	if weirdRec.ID != "we_ird__name_x.webm__" {
		t.Fatalf("the renamed file is listed as %+v", weirdRec)
	}
	r := do(t, "GET", base+weirdRec.FileURL, "", "")
	want := `attachment; filename="we_ird_ name=x.webm _.webm"; filename*=UTF-8''we%22ird%3B%20name%3Dx.webm%20%C3%A9.webm`
	if r.status != http.StatusOK || r.header.Get("Content-Disposition") != want {
		t.Errorf("GET: %d, Content-Disposition %q, want %q", r.status, r.header.Get("Content-Disposition"), want)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("no nosniff on the download")
	}

	path := filepath.Join(dir, "cam", weird+".webm")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(base + weirdRec.FileURL)
	if err != nil {
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatalf("GET of a FIFO: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET of a FIFO: %d, want 403", resp.StatusCode)
	}
}
