package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

type exportJob struct {
	ID       string  `json:"id"`
	URL      string  `json:"url"`
	State    string  `json:"state"`
	Progress float64 `json:"progress"`
	Error    string  `json:"error"`
	Restarts int     `json:"restarts"`
	FromMS   int64   `json:"from_ms"`
	ToMS     int64   `json:"to_ms"`
	Files    []struct {
		Name        string `json:"name"`
		Role        string `json:"role"`
		Participant string `json:"participant"`
		OffsetMS    *int64 `json:"offset_ms"`
		URL         string `json:"url"`
	} `json:"files"`
}

func postExport(t *testing.T, g *gateway, id, body string) (int, exportJob) {
	t.Helper()
	resp, err := http.Post(g.HTTP+"/api/v1/meetings/"+id+"/exports", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j exportJob
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &j)
	if resp.StatusCode >= 300 {
		t.Logf("POST exports %s: %d %s", body, resp.StatusCode, data)
	}
	return resp.StatusCode, j
}

func waitExport(t *testing.T, g *gateway, j exportJob) exportJob {
	t.Helper()
	testwait.Until(t, 90*time.Second, "export "+j.ID+" done", func() bool {
		getJSON(t, g.HTTP+j.URL, &j)
		if j.State == "failed" {
			t.Fatalf("export %s failed: %s", j.ID, j.Error)
		}
		return j.State == "done"
	})
	return j
}

// download fetches a finished export's file into dir.
func download(t *testing.T, g *gateway, url, dir, name string) string {
	t.Helper()
	resp, err := http.Get(g.HTTP + url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %v %v", url, resp, err)
	}
	defer resp.Body.Close()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	return path
}

type e2eManifest struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	DurationMS int64  `json:"duration_ms"`
	Recordings []struct {
		Participant string `json:"participant"`
		OffsetMS    int64  `json:"offset_ms"`
		DurationMS  int64  `json:"duration_ms"`
		Tracks      []struct {
			Kind     string `json:"kind"`
			OffsetMS int64  `json:"offset_ms"`
		} `json:"tracks"`
	} `json:"recordings"`
}

// TestMeetingExports: three publishers join one meeting over WHIP at
// staggered times (alice red H.264 with a 400 Hz tone, bob green VP8 at
// 1000 Hz who leaves and comes back, carol blue H.264 at 2500 Hz); the
// exports through the API: the multi-track file has their six tracks by
// name at the manifest's offsets, the composite shows the three colours
// while all are there, the audio stems start at their offsets. Then a
// composite killed with the gateway (SIGKILL) starts again with it and
// ends clean, and a cancelled one leaves nothing.
func TestMeetingExports(t *testing.T) {
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	g := startGateway(t, nil, "--meetings-grace", "500ms", "--log-level", "info",
		"--exports-composite-width", "640", "--exports-composite-height", "360", "--exports-composite-fps", "15")
	ctx := ctxTimeout(t, 2*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	start := time.Now()
	var wg sync.WaitGroup
	publish := func(name, video, videoFile, audioFile string, at, until time.Duration) {
		defer wg.Done()
		time.Sleep(time.Until(start.Add(at)))
		pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/board/"+name, whipclient.PublishOptions{Video: video,
			VideoFile: testmedia.Path(videoFile), AudioFile: testmedia.Path(audioFile), Audio: true, Loop: true,
			H264SeparateParamSets: video == "h264", SettingEngine: &se})
		if err != nil {
			t.Errorf("publish %s: %v", name, err)
			return
		}
		time.Sleep(time.Until(start.Add(until)))
		if err := pub.Close(); err != nil {
			t.Errorf("DELETE %s: %v", name, err)
		}
	}
	wg.Add(4)
	go publish("alice", "h264", "meet-red.h264", "meet-400.ogg", 0, 6500*time.Millisecond)
	go func() {
		publish("bob", "vp8", "meet-green.ivf", "meet-1000.ogg", 1500*time.Millisecond, 3000*time.Millisecond)
		publish("bob", "vp8", "meet-green.ivf", "meet-1000.ogg", 4000*time.Millisecond, 6000*time.Millisecond)
	}()
	go publish("carol", "h264", "meet-blue.h264", "meet-2500.ogg", 2500*time.Millisecond, 6500*time.Millisecond)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var page struct {
		Meetings []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"meetings"`
	}
	testwait.Until(t, 30*time.Second, "the meeting ended", func() bool {
		getJSON(t, g.HTTP+"/api/v1/meetings", &page)
		return len(page.Meetings) == 1 && page.Meetings[0].State == "ended"
	})
	id := page.Meetings[0].ID
	var meeting struct {
		Manifest e2eManifest `json:"manifest"`
	}
	getJSON(t, g.HTTP+"/api/v1/meetings/"+id, &meeting)
	man := meeting.Manifest
	first := map[string][2]float64{} // participant: first video, first audio (s)
	segments := map[string]int{}
	for _, r := range man.Recordings {
		segments[r.Participant]++
		if segments[r.Participant] > 1 {
			continue
		}
		var f [2]float64
		for _, tr := range r.Tracks {
			f[map[string]int{"video": 0, "audio": 1}[tr.Kind]] = float64(tr.OffsetMS) / 1000
		}
		first[r.Participant] = f
	}
	if len(first) != 3 || segments["bob"] != 2 {
		t.Fatalf("the manifest has recordings %+v, want alice, carol and bob twice", man.Recordings)
	}
	dir := t.TempDir()

	// Multi-track.
	status, mt := postExport(t, g, id, `{"kind":"multitrack"}`)
	if status != 202 {
		t.Fatalf("POST multitrack: %d", status)
	}
	mt = waitExport(t, g, mt)
	path := download(t, g, mt.Files[0].URL, dir, mt.Files[0].Name)
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time:stream_tags=title", "-of", "json", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var probe struct {
		Streams []struct {
			Type  string            `json:"codec_type"`
			Start string            `json:"start_time"`
			Tags  map[string]string `json:"tags"`
		} `json:"streams"`
	}
	_ = json.Unmarshal(out, &probe)
	if len(probe.Streams) != 6 {
		t.Errorf("the multi-track file has %d streams, want 6: %s", len(probe.Streams), out)
	}
	for _, s := range probe.Streams {
		want := first[s.Tags["title"]][map[string]int{"video": 0, "audio": 1}[s.Type]]
		if got, _ := strconv.ParseFloat(s.Start, 64); math.Abs(got-want) > 0.040 {
			t.Errorf("%s's %s starts at %.3f s, the manifest says %.3f s", s.Tags["title"], s.Type, got, want)
		}
	}
	if msg := decodeClean(path); msg != "" {
		t.Errorf("the multi-track file decodes with errors:\n%s", msg)
	}

	// Composite: while everyone is there (bob's second recording and
	// carol's overlap), a 2x2 grid.
	var from, to float64 = 0, math.Inf(1)
	seen := map[string]int{}
	for _, r := range man.Recordings {
		seen[r.Participant]++
		if r.Participant == "bob" && seen["bob"] == 1 {
			continue
		}
		from = math.Max(from, float64(r.OffsetMS)/1000)
		to = math.Min(to, float64(r.OffsetMS+r.DurationMS)/1000)
	}
	if to-from < 0.3 {
		t.Fatalf("the three were together only from %.3f to %.3f s", from, to)
	}
	at := strconv.FormatFloat((from+to)/2, 'f', 3, 64)
	status, cp := postExport(t, g, id, `{"kind":"composite"}`)
	if status != 202 {
		t.Fatalf("POST composite: %d", status)
	}
	cp = waitExport(t, g, cp)
	path = download(t, g, cp.Files[0].URL, dir, cp.Files[0].Name)
	frame, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-ss", at, "-i", path, "-frames:v", "1",
		"-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(frame) != 640*360*3 {
		t.Fatalf("a frame of the composite: %d bytes, %v", len(frame), err)
	}
	for i, want := range [][3]int{{255, 0, 0}, {0, 128, 0}, {0, 0, 255}, {0, 0, 0}} {
		x, y := (i%2)*320+160, (i/2)*180+90
		px := frame[(y*640+x)*3:][:3]
		if d := abs(int(px[0])-want[0]) + abs(int(px[1])-want[1]) + abs(int(px[2])-want[2]); d > 90 {
			t.Errorf("at %s s tile %d is %v, want %v", at, i, px, want)
		}
	}
	if msg := decodeClean(path); msg != "" {
		t.Errorf("the composite decodes with errors:\n%s", msg)
	}

	// Audio: each stem's first sound at the manifest's offset.
	status, au := postExport(t, g, id, `{"kind":"audio"}`)
	if status != 202 {
		t.Fatalf("POST audio: %d", status)
	}
	au = waitExport(t, g, au)
	stems := 0
	for _, f := range au.Files {
		if f.Role != "stem" {
			continue
		}
		stems++
		path := download(t, g, f.URL, dir, f.Name)
		out, _ := exec.Command("ffmpeg", "-nostdin", "-i", path, "-af", "silencedetect=noise=-40dB:d=0.02", "-f", "null", "-").CombinedOutput()
		got := 0.0
		if i := bytes.Index(out, []byte("silence_end: ")); i >= 0 && bytes.Contains(out, []byte("silence_start: 0")) {
			got, _ = strconv.ParseFloat(strings.Fields(string(out[i+len("silence_end: "):]))[0], 64)
		}
		if want := first[f.Participant][1]; math.Abs(got-want) > 0.040 {
			t.Errorf("%s's stem: first sound at %.3f s, the manifest says %.3f s", f.Participant, got, want)
		}
	}
	if stems != 3 {
		t.Errorf("%d stems, want 3", stems)
	}

	// A composite the gateway's crash cut short starts again with it and
	// ends with its file whole and nothing else in its folder.
	status, again := postExport(t, g, id, `{"kind":"composite","from":0.5}`)
	if status != 202 {
		t.Fatalf("POST composite from 0.5: %d", status)
	}
	testwait.Until(t, 30*time.Second, "the composite running", func() bool {
		getJSON(t, g.HTTP+again.URL, &again)
		return again.State == "running"
	})
	g.stop(syscall.SIGKILL)
	rec := g.Recordings
	g = startGatewayOn(t, rec, "--log-level", "info",
		"--exports-composite-width", "640", "--exports-composite-height", "360", "--exports-composite-fps", "15")
	again = waitExport(t, g, again)
	if again.Restarts != 1 {
		t.Errorf("after the crash: restarts %d, want 1", again.Restarts)
	}
	parts, _ := filepath.Glob(filepath.Join(rec, "*", "*", "exports", "*", "*.part"))
	if len(parts) > 0 {
		t.Errorf("partial files left: %v", parts)
	}

	// Cancel: DELETE while it runs leaves nothing.
	status, gone := postExport(t, g, id, `{"kind":"composite","from":1}`)
	if status != 202 {
		t.Fatalf("POST composite from 1: %d", status)
	}
	req, _ := http.NewRequest("DELETE", g.HTTP+gone.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, _ := http.Get(g.HTTP + gone.URL); resp == nil || resp.StatusCode != 404 {
		t.Errorf("the cancelled job is still there")
	}
	if folders, _ := filepath.Glob(filepath.Join(rec, "*", "*", "exports", "composite-1000-*")); len(folders) > 0 {
		t.Errorf("the cancelled job's folder is still there: %v", folders)
	}
}

// decodeClean decodes every stream of path and returns ffmpeg's errors.
func decodeClean(path string) string {
	args := append([]string{"-nostdin", "-v", "error", "-i", path, "-map", "0"}, mediacheck.AsStored...)
	out, err := exec.Command("ffmpeg", append(args, "-f", "null", "-")...).CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return strings.TrimSpace(string(out))
}

func abs(v int) int { return max(v, -v) }
