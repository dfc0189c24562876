package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// meetingDoc is what GET /api/v1/meetings/{id} says, as far as the tests
// need it.
type meetingDoc struct {
	Manifest struct {
		ID           string `json:"id"`
		State        string `json:"state"`
		DurationMS   int64  `json:"duration_ms"`
		Participants []struct {
			Name string `json:"name"`
		} `json:"participants"`
		Recordings []struct {
			ID          string `json:"id"`
			Participant string `json:"participant"`
			Container   string `json:"container"`
			OffsetMS    int64  `json:"offset_ms"`
			DurationMS  int64  `json:"duration_ms"`
		} `json:"recordings"`
	} `json:"manifest"`
}

// TestMeetingPageSync: three participants publish into one meeting over
// WHIP at staggered times (H.264 at 0 s, VP8 at 1.5 s, H.264 at 3 s).
// Chromium (e2e/drivers/meeting.mjs) finds the meeting by a search on
// /meetings, opens /meetings/{id}, presses Play and drags the scrubber to
// 0.3 s, 3.5 s and 5 s. At each, every player inside its part of the
// meeting plays at t - its offset (within 0.25 s), the others are paused
// and hidden, and the page logged no error. Then it switches the legal
// hold on: the API has it, and /meetings?hold=true shows its badge.
// Screenshots of a failed run stay in e2e/artifacts/TestMeetingPageSync/.
func TestMeetingPageSync(t *testing.T) {
	node, chromium := browserTools(t)
	g := startGateway(t, nil, "--meetings-grace", "1s")
	ctx := ctxTimeout(t, 3*time.Minute)
	id := recordMeeting(t, ctx, g, "standup", "", "", []meetingPart{
		{"alice", "h264", 0, 8 * time.Second}, {"bob", "vp8", 1500 * time.Millisecond, 6 * time.Second}, {"carol", "h264", 3 * time.Second, 5 * time.Second}})
	var m meetingDoc
	getJSON(t, g.HTTP+"/api/v1/meetings/"+id, &m)
	if len(m.Manifest.Recordings) != 3 || len(m.Manifest.Participants) != 3 {
		t.Fatalf("the meeting: %+v", m.Manifest)
	}
	offsets := map[string]float64{}
	lengths := map[string]float64{}
	containers := map[string]string{}
	for _, r := range m.Manifest.Recordings {
		containers[r.ID] = r.Container
		offsets[r.ID], lengths[r.ID] = float64(r.OffsetMS)/1000, float64(r.DurationMS)/1000
		t.Logf("%s: %s at %.3f s for %.3f s", r.Participant, r.Container, offsets[r.ID], lengths[r.ID])
	}

	cmd := exec.CommandContext(ctx, node, "drivers/meeting.mjs", "--page", g.HTTP+"/meetings/"+m.Manifest.ID,
		"--points", "0.3,3.5,5", "--settle", "1.5", "--shots", artifactsDir(t),
		"--list", g.HTTP+"/meetings?q=STAND", "--hold", "case 2026-17")
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = &logWriter{t: t}
	out, err := cmd.Output()
	var res struct {
		ConsoleErrors []string `json:"consoleErrors"`
		Listed        []string `json:"listed"`
		HoldMessage   string   `json:"holdMessage"`
		HoldBadge     string   `json:"holdBadge"`
		Error         string   `json:"error"`
		Samples       []struct {
			Point     float64 `json:"point"`
			T         float64 `json:"t"`
			PlayLabel string  `json:"playLabel"`
			LaneCount int     `json:"laneCount"`
			Lanes     []struct {
				Recording   string  `json:"recording"`
				Participant string  `json:"participant"`
				Offset      float64 `json:"offset"`
				CurrentTime float64 `json:"currentTime"`
				Paused      bool    `json:"paused"`
				Hidden      bool    `json:"hidden"`
				Error       string  `json:"error"`
				Src         string  `json:"src"`
			} `json:"lanes"`
		} `json:"samples"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("meeting.mjs: %v, %v, %s: %s", err, jerr, res.Error, out)
	}
	if len(res.ConsoleErrors) > 0 {
		t.Errorf("the page logged errors: %q", res.ConsoleErrors)
	}
	if len(res.Samples) != 9 {
		t.Fatalf("%d samples, want 3 at each of 3 points", len(res.Samples))
	}
	for _, s := range res.Samples {
		// The clock went on from the point: the meeting plays.
		if s.T < s.Point+0.5 || s.T > s.Point+3 || s.PlayLabel != "Pause" || s.LaneCount != 3 || len(s.Lanes) != 3 {
			t.Errorf("after seeking to %.1f s the clock is at %.3f s (%q, %d lanes, %d players)", s.Point, s.T, s.PlayLabel, s.LaneCount, len(s.Lanes))
		}
		inside := 0
		for _, l := range s.Lanes {
			if l.Offset != offsets[l.Recording] {
				t.Errorf("%s's player is at offset %.3f s, the manifest says %.3f s", l.Participant, l.Offset, offsets[l.Recording])
			}
			want := s.T - offsets[l.Recording]
			if l.Error != "" {
				t.Errorf("t=%.3f: %s's player failed: %s (%s)", s.T, l.Participant, l.Error, l.Src)
			}
			if want < 0 || want >= lengths[l.Recording] {
				if !l.Paused || !l.Hidden {
					t.Errorf("t=%.3f: %s is not in the meeting then, but its player is paused=%v hidden=%v", s.T, l.Participant, l.Paused, l.Hidden)
				}
				continue
			}
			inside++
			if d := l.CurrentTime - want; d > 0.25 || d < -0.25 || l.Paused || l.Hidden {
				t.Errorf("t=%.3f: %s's player is at %.3f s (paused %v, hidden %v), want t - %.3f = %.3f s", s.T, l.Participant, l.CurrentTime, l.Paused, l.Hidden, offsets[l.Recording], want)
			}
			if (containers[l.Recording] == "mkv") != strings.Contains(l.Src, "format=mp4") {
				t.Errorf("%s's %s recording plays from %s: Matroska through format=mp4, WebM as it is", l.Participant, containers[l.Recording], l.Src)
			}
		}
		if inside < 2 {
			t.Errorf("t=%.3f: %d players inside their part, want 2 or more", s.T, inside)
		}
	}
	// Found on the meetings page by a search, held from the meeting's.
	if len(res.Listed) != 1 || res.Listed[0] != m.Manifest.ID {
		t.Errorf("the meetings page lists %v for q=STAND, want %s", res.Listed, m.Manifest.ID)
	}
	var held struct {
		Hold *struct {
			Reason string `json:"reason"`
		} `json:"hold"`
	}
	getJSON(t, g.HTTP+"/api/v1/meetings/"+m.Manifest.ID, &held)
	if held.Hold == nil || held.Hold.Reason != "case 2026-17" || !strings.Contains(res.HoldBadge, "case 2026-17") ||
		!strings.Contains(res.HoldMessage, "legal hold") {
		t.Errorf("after switching the hold on in the page: the API says %+v; the page said %q, its badge %q", held.Hold, res.HoldMessage, res.HoldBadge)
	}
	t.Logf("samples: %s", out)
}

// TestMeetingPageExports: two participants publish into one meeting over
// WHIP (H.264 from 0 s, VP8 from 1 s). Once it has ended, Chromium
// (e2e/drivers/exports.mjs) opens /meetings/{id} with a read token and
// presses "Multi-track": the page says an admin token is needed. With
// the admin token in the header's field it presses again and waits for
// the download link: the file behind it has the size the link
// says and 2 × 2 streams (ffprobe). Then it presses "Composite MP4", and
// Cancel once its progress and ETA show: the job is gone from the page, the API and the
// disk. Then it exports the clip's range (1 s to 3 s) as multi-track,
// and the audio (the mix and a stem each, labelled). Reloaded, the page
// lists the three finished exports only; no other
// console error than the refused POST.
func TestMeetingPageExports(t *testing.T) {
	node, chromium := browserTools(t)
	mediacheck.Require(t)
	const pubToken, readToken, adminToken = "pub", "rd", "adm"
	// A composite big enough to take longer than the meeting: it is
	// cancelled while it runs.
	g := startGateway(t, nil, "--meetings-grace", "500ms",
		"--auth-publish-tokens", pubToken, "--auth-read-tokens", readToken, "--auth-admin-tokens", adminToken,
		"--exports-composite-width", "1920", "--exports-composite-height", "1080", "--exports-composite-fps", "60")
	ctx := ctxTimeout(t, 90*time.Second)
	id := recordMeeting(t, ctx, g, "review", pubToken, adminToken, []meetingPart{
		{"alice", "h264", 0, 5 * time.Second}, {"bob", "vp8", time.Second, 4 * time.Second}})

	shots := artifactsDir(t)
	cmd := exec.CommandContext(ctx, node, "drivers/exports.mjs", "--page", g.HTTP+"/meetings/"+id+"?token="+readToken,
		"--admin-token", adminToken, "--shots", shots)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = &logWriter{t: t}
	out, err := cmd.Output()
	var res struct {
		ConsoleErrors []string `json:"consoleErrors"`
		Error         string   `json:"error"`
		Forbidden     string   `json:"forbidden"`
		Links         []struct {
			Href     string `json:"href"`
			Text     string `json:"text"`
			Download string `json:"download"`
			Bytes    int64  `json:"bytes"`
		} `json:"links"`
		Audio []struct {
			Text string `json:"text"`
		} `json:"audio"`
		Composite struct {
			Job     string `json:"job"`
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"composite"`
		Reloaded []struct {
			Kind  string `json:"kind"`
			Job   string `json:"job"`
			State string `json:"state"`
			Text  string `json:"text"`
		} `json:"reloaded"`
		Deleted struct {
			Job     string `json:"job"`
			Confirm string `json:"confirm"`
			Message string `json:"message"`
		} `json:"deleted"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("exports.mjs: %v, %v, %s: %s", err, jerr, res.Error, out)
	}
	t.Logf("the page: %s", out)
	// Chromium logs the refused POST; nothing else.
	for i, e := range res.ConsoleErrors {
		if i > 0 || !strings.Contains(e, "status of 403") {
			t.Errorf("the page logged errors: %q", res.ConsoleErrors)
			break
		}
	}
	if !strings.Contains(res.Forbidden, "needs an admin token") {
		t.Errorf("with a read token, Multi-track says %q", res.Forbidden)
	}

	// The multi-track file behind the page's link.
	if len(res.Links) != 1 || !strings.HasSuffix(res.Links[0].Download, ".mkv") || !strings.HasPrefix(res.Links[0].Text, "MKV · ") {
		t.Fatalf("multi-track links %+v, want one MKV with its size", res.Links)
	}
	path := download(t, g, res.Links[0].Href, t.TempDir(), res.Links[0].Download)
	if st, err := os.Stat(path); err != nil || st.Size() != res.Links[0].Bytes || st.Size() == 0 {
		t.Errorf("the downloaded file: %v, %v; the link says %d bytes", st, err, res.Links[0].Bytes)
	}
	pr, err := mediacheck.ProbeFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range pr.Streams {
		kinds[s.CodecType]++
	}
	if len(pr.Streams) != 4 || kinds["video"] != 2 || kinds["audio"] != 2 {
		t.Errorf("the multi-track file has streams %v, want 2 video and 2 audio (2 × 2 participants)", kinds)
	}

	// The cancelled composite is gone.
	if !regexp.MustCompile(`^Whole meeting\d+% · (\d+ s|\d+:\d\d) leftCancel$`).MatchString(res.Composite.Status) || !strings.Contains(res.Composite.Message, "cancelled") {
		t.Errorf("the composite while it ran: %q; after Cancel: %q", res.Composite.Status, res.Composite.Message)
	}
	if r, err := http.Get(g.HTTP + "/api/v1/exports/" + res.Composite.Job + "?token=" + adminToken); err != nil || r.StatusCode != 404 {
		t.Errorf("GET the cancelled job: %v %v, want 404", r, err)
	} else {
		r.Body.Close()
	}
	var jobs struct {
		Exports []exportJob `json:"exports"`
	}
	// The page's exports: the whole meeting's multi-track and the audio
	// (the 1–3 s multi-track was deleted from the page, below).
	getJSON(t, g.HTTP+"/api/v1/meetings/"+id+"/exports?token="+adminToken, &jobs)
	if len(jobs.Exports) != 2 || jobs.Exports[0].State != "done" || !strings.HasSuffix(jobs.Exports[0].ID, ".multitrack") ||
		jobs.Exports[1].State != "done" || !strings.HasSuffix(jobs.Exports[1].ID, ".audio") {
		t.Errorf("the meeting's exports after the page's: %+v, want the whole meeting's multi-track and the audio", jobs.Exports)
	}
	// The audio export's files, labelled: the mix twice, a stem each.
	var audio []string
	for _, l := range res.Audio {
		who, _, _ := strings.Cut(l.Text, " · ")
		audio = append(audio, who)
	}
	slices.Sort(audio)
	if !slices.Equal(audio, []string{"alice WAV", "bob WAV", "mix WAV", "mix WEBM"}) {
		t.Errorf("the audio export's links: %q", audio)
	}
	if dirs, _ := filepath.Glob(filepath.Join(g.Recordings, "*", "*", "exports", "composite*")); len(dirs) > 0 {
		t.Errorf("the cancelled composite left %v", dirs)
	}
	// Newest first, each finished one with Delete.
	if len(res.Reloaded) != 3 || res.Reloaded[2].Kind != "audio" || res.Reloaded[0].State != "done" || !strings.HasPrefix(res.Reloaded[0].Text, "1 s – 3 sMKV · ") ||
		res.Reloaded[1].Kind != "multitrack" || res.Reloaded[1].State != "done" || res.Reloaded[1].Text != "Whole meeting"+res.Links[0].Text+"Delete" {
		t.Errorf("the reloaded page lists %+v, want the multi-track exports of 1–3 s and of the whole meeting", res.Reloaded)
	}

	// Deleted from the page: asked first, then gone from the API, the
	// manifest's exports and the disk.
	if res.Deleted.Job != res.Reloaded[0].Job || !strings.Contains(res.Deleted.Confirm, "Delete the Multi-track export (1 s – 3 s)") ||
		!strings.Contains(res.Deleted.Message, "are deleted") {
		t.Errorf("deleting the clip's export: %+v", res.Deleted)
	}
	if r, err := http.Get(g.HTTP + "/api/v1/exports/" + res.Deleted.Job + "?token=" + adminToken); err != nil || r.StatusCode != 404 {
		t.Errorf("GET the deleted job: %v %v, want 404", r, err)
	} else {
		r.Body.Close()
	}
	if res.Deleted.Job != id+".multitrack-1000-3000" {
		t.Errorf("the page deleted %q, want the 1000–3000 ms multi-track", res.Deleted.Job)
	}
	if dirs, _ := filepath.Glob(filepath.Join(g.Recordings, "*", id, "exports", strings.TrimPrefix(res.Deleted.Job, id+"."))); len(dirs) > 0 || !strings.HasPrefix(res.Deleted.Job, id+".") {
		t.Errorf("the deleted export left %v", dirs)
	}
}

// TestMeetingPageExportsRefused: on a gateway without ffmpeg, Chromium
// opens a meeting's page while it is in progress: the export buttons and
// the range are disabled and the section says why. Once it has ended
// (the driver reloads), "Composite MP4" answers 501: the page says
// ffmpeg is needed, how to install it, that the multi-track export does
// not need it, and disables the composite and audio exports.
func TestMeetingPageExportsRefused(t *testing.T) {
	node, chromium := browserTools(t)
	g := startGateway(t, nil, "--meetings-grace", "500ms", "--exports-ffmpeg", "/nonexistent/ffmpeg")
	ctx := ctxTimeout(t, 90*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/solo/alice", whipclient.PublishOptions{
		Video: "vp8", Audio: true, Duration: 6 * time.Second, SettingEngine: &se})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	go func() {
		<-pub.Done()
		_ = pub.Close()
	}()
	var list struct {
		Meetings []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"meetings"`
	}
	testwait.Until(t, 10*time.Second, "the meeting to begin", func() bool {
		getJSON(t, g.HTTP+"/api/v1/meetings?meeting=solo", &list)
		return len(list.Meetings) == 1
	})
	if list.Meetings[0].State != "live" {
		t.Fatalf("the meeting: %+v, want it live", list.Meetings[0])
	}
	cmd := exec.CommandContext(ctx, node, "drivers/exports.mjs", "--page", g.HTTP+"/meetings/"+list.Meetings[0].ID,
		"--live", "composite", "--shots", artifactsDir(t))
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = &logWriter{t: t}
	out, err := cmd.Output()
	var res struct {
		ConsoleErrors []string `json:"consoleErrors"`
		Error         string   `json:"error"`
		Live          struct {
			Disabled []bool `json:"disabled"`
			Note     string `json:"note"`
		} `json:"live"`
		Refused string `json:"refused"`
		After   []bool `json:"after"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("exports.mjs: %v, %v, %s: %s", err, jerr, res.Error, out)
	}
	t.Logf("the page: %s", out)
	if len(res.Live.Disabled) != 4 || slices.Contains(res.Live.Disabled, false) || !strings.Contains(res.Live.Note, "still in progress") {
		t.Errorf("while the meeting is in progress: disabled %v (3 buttons and the range), note %q", res.Live.Disabled, res.Live.Note)
	}
	if !strings.Contains(res.Refused, "needs ffmpeg") || !strings.Contains(res.Refused, "apt-get install ffmpeg") ||
		!strings.Contains(res.Refused, "multitrack export does not") {
		t.Errorf("a composite without ffmpeg: the page says %q", res.Refused)
	}
	// Then the two exports that need ffmpeg are disabled, Multi-track not.
	if !slices.Equal(res.After, []bool{false, true, true}) {
		t.Errorf("after the 501, Multi-track, Composite, Audio disabled: %v, want false, true, true", res.After)
	}
	// Chromium logs the refused POST; nothing else.
	for i, e := range res.ConsoleErrors {
		if i > 0 || !strings.Contains(e, "status of 501") {
			t.Errorf("the page logged errors: %q", res.ConsoleErrors)
			break
		}
	}
}

// meetingPart is one participant of recordMeeting: a Go WHIP publisher of
// video (h264 or vp8) and Opus that joins at after the start and
// publishes for length.
type meetingPart struct {
	name, video string
	at, length  time.Duration
}

// recordMeeting publishes the parts to meeting at their times (with
// token, if any), ends them with DELETE and waits for the occurrence to
// end (reading the list with listToken, if any); it returns its id.
func recordMeeting(t *testing.T, ctx context.Context, g *gateway, meeting, token, listToken string, parts []meetingPart) string {
	t.Helper()
	start := time.Now()
	var pubs []*whipclient.Publisher
	for _, p := range parts {
		time.Sleep(time.Until(start.Add(p.at)))
		se := whipclient.LoopbackSettingEngine()
		pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+meeting+"/"+p.name, whipclient.PublishOptions{
			Token: token, Video: p.video, Audio: true, H264SeparateParamSets: p.video == "h264", Duration: p.length, SettingEngine: &se})
		if err != nil {
			t.Fatalf("publish %s: %v", p.name, err)
		}
		pubs = append(pubs, pub)
	}
	for _, pub := range pubs {
		<-pub.Done()
		if err := pub.Close(); err != nil {
			t.Fatalf("DELETE: %v", err)
		}
	}
	var list struct {
		Meetings []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"meetings"`
	}
	url := g.HTTP + "/api/v1/meetings?meeting=" + meeting
	if listToken != "" {
		url += "&token=" + listToken
	}
	testwait.Until(t, 30*time.Second, "the meeting to end", func() bool {
		getJSON(t, url, &list)
		return len(list.Meetings) == 1 && list.Meetings[0].State == "ended"
	})
	return list.Meetings[0].ID
}
