package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

func call(t *testing.T, method, url, token, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The exports API on a recorded two-second meeting (one participant) and
// a live one, with auth on: the status codes of every refusal, a job's
// life from 202 to its download with Range, the same request answered
// by the same job, the hold, and DELETE.
func TestExportsAPI(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	mm, err := meetings.New(meetings.Config{Dir: dir, Grace: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	rec, err := recorder.New(recorder.Config{Dir: dir, Enabled: true, Logger: log, Place: mm.Place,
		OnStart: mm.RecordingStarted, OnFinish: mm.RecordingFinished})
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(mm.Published)
	hub.OnUnpublish(mm.Unpublished)
	hub.OnPublish(rec.Record)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := hubtest.Publish(ctx, hub, "review/dan", hubtest.Source{Video: live.VP8, Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	for _, sub := range p.Stream.Subscriptions() {
		<-sub.Done()
	}
	rec.Close()
	mm.Join("standup/eve", time.Now()) // a live meeting
	var ended, running string
	for deadline := time.Now().Add(5 * time.Second); ended == ""; time.Sleep(10 * time.Millisecond) {
		page, _ := mm.List(meetings.Query{})
		for _, s := range page.Meetings {
			if s.Meeting == "review" && s.State == meetings.StateEnded {
				ended = s.ID
			}
			if s.Meeting == "standup" {
				running = s.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the recorded meeting did not end")
		}
	}
	em, err := exports.New(exports.Config{Dir: dir, Meetings: mm, FFmpeg: "/nonexistent/ffmpeg", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	auth := AuthConfig{ReadTokens: []string{"rd"}, AdminTokens: []string{"adm"}}
	base := serveAPI(t, live.NewHub(live.Reject), rtc.Config{}, auth, Config{}, Deps{Meetings: mm, Exports: em})
	post := func(id, token, body string) (*http.Response, string) {
		return call(t, "POST", base+"/api/v1/meetings/"+id+"/exports", token, body, "Content-Type", "application/json")
	}

	for _, tc := range []struct {
		name, id, token, body string
		status                int
		says                  string
	}{
		{"no token", ended, "", `{"kind":"multitrack"}`, 401, ""},
		{"a read token", ended, "rd", `{"kind":"multitrack"}`, 403, "this needs an admin token"},
		{"unknown meeting", "nope_20260101T000000Z", "adm", `{"kind":"multitrack"}`, 404, "no meeting occurrence"},
		{"live meeting", running, "adm", `{"kind":"multitrack"}`, 409, "still in progress"},
		{"bad kind", ended, "adm", `{"kind":"video"}`, 400, `kind must be`},
		{"not JSON", ended, "adm", `kind=multitrack`, 400, `the body must be JSON`},
		{"bad from", ended, "adm", `{"kind":"multitrack","from":"soon"}`, 400, "from must be seconds"},
		{"from after to", ended, "adm", `{"kind":"multitrack","from":1.5,"to":1}`, 400, "must satisfy"},
		{"past the end", ended, "adm", `{"kind":"multitrack","to":3600}`, 400, "the meeting's length"},
		{"composite, no ffmpeg", ended, "adm", `{"kind":"composite"}`, 501, "apt-get install ffmpeg"},
		{"audio, no ffmpeg", ended, "adm", `{"kind":"audio"}`, 501, "apt-get install ffmpeg"},
	} {
		resp, body := post(tc.id, tc.token, tc.body)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, resp.StatusCode, body, tc.status, tc.says)
		}
		if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", tc.name, resp.Header.Get("Content-Type"))
		}
	}

	resp, body := post(ended, "adm", `{"kind":"multitrack"}`)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || !strings.HasPrefix(loc, "/api/v1/exports/") {
		t.Fatalf("POST: %d %s, Location %q", resp.StatusCode, body, loc)
	}
	var job struct {
		State    string  `json:"state"`
		Progress float64 `json:"progress"`
		Files    []struct {
			Name, URL, SHA256 string
			Bytes             int64
		} `json:"files"`
	}
	for deadline := time.Now().Add(30 * time.Second); job.State != exports.Done; time.Sleep(20 * time.Millisecond) {
		resp, body := call(t, "GET", base+loc, "rd", "")
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &job) != nil || job.State == exports.Failed {
			t.Fatalf("GET %s: %d %s", loc, resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job is still %s", job.State)
		}
	}
	if len(job.Files) != 1 || !strings.HasSuffix(job.Files[0].Name, ".webm") || job.Progress != 100 {
		t.Fatalf("done: %+v (VP8 and Opus: WebM)", job)
	}
	resp, body = call(t, "GET", base+job.Files[0].URL, "rd", "", "Range", "bytes=0-99")
	if resp.StatusCode != 206 || len(body) != 100 || resp.Header.Get("Content-Type") != "video/webm" {
		t.Errorf("Range GET: %d, %d bytes, %s", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	if resp, _ := call(t, "GET", base+job.Files[0].URL, "", ""); resp.StatusCode != 401 {
		t.Errorf("download without a token: %d", resp.StatusCode)
	}
	if resp, body := post(ended, "adm", `{"kind":"multitrack","from":0}`); resp.StatusCode != 200 || resp.Header.Get("Location") != loc {
		t.Errorf("the same export again: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	if resp, body := call(t, "GET", base+"/api/v1/meetings/"+ended+"/exports", "rd", ""); resp.StatusCode != 200 || !strings.Contains(body, job.Files[0].SHA256) {
		t.Errorf("the meeting's exports: %d %s", resp.StatusCode, body)
	}

	if resp, _ := call(t, "DELETE", base+loc, "rd", ""); resp.StatusCode != 403 {
		t.Errorf("DELETE with a read token: %d", resp.StatusCode)
	}
	if _, err := mm.SetHold(ended, "case 7", "test"); err != nil {
		t.Fatal(err)
	}
	if resp, body := call(t, "DELETE", base+loc, "adm", ""); resp.StatusCode != 409 || !strings.Contains(body, "legal hold") {
		t.Errorf("DELETE while held: %d %s", resp.StatusCode, body)
	}
	if err := mm.ReleaseHold(ended, "closed", "test"); err != nil {
		t.Fatal(err)
	}
	if resp, body := call(t, "DELETE", base+loc, "adm", ""); resp.StatusCode != 204 {
		t.Errorf("DELETE: %d %s", resp.StatusCode, body)
	}
	if resp, _ := call(t, "GET", base+loc, "adm", ""); resp.StatusCode != 404 {
		t.Errorf("GET after DELETE: %d", resp.StatusCode)
	}
	if oc, _ := mm.Get(ended); len(oc.Manifest.Exports) != 0 {
		t.Errorf("the manifest still lists %+v", oc.Manifest.Exports)
	}
}
