package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// TestBrowserPlaysMP4: an H.264 recording, Matroska on disk, plays in
// Chromium's <video> from ?format=mp4 (e2e/drivers/video.mjs): currentTime
// advances, pictures are decoded, no media error, a finite duration.
// So do a clip of it and the recordings page's player.
func TestBrowserPlaysMP4(t *testing.T) {
	node, chromium := browserTools(t)
	g := startGateway(t, nil)
	se := whipclient.LoopbackSettingEngine()
	ctx := ctxTimeout(t, 2*time.Minute)
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/mp4", whipclient.PublishOptions{
		Video: "h264", Audio: true, H264SeparateParamSets: true, Duration: 6 * time.Second, SettingEngine: &se})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	<-pub.Done()
	if err := pub.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	testwait.Until(t, 30*time.Second, "the recording to finish", func() bool {
		recs := archiveList(t, g, "mp4").Recordings
		return len(recs) == 1 && recs[0].State == "finished"
	})
	rec := archiveList(t, g, "mp4").Recordings[0]
	if rec.Container != "mkv" {
		t.Fatalf("the H.264 recording is %q, want mkv", rec.Container)
	}

	for _, c := range []struct {
		name    string
		args    []string // for video.mjs
		play    float64  // seconds to play
		seconds float64  // the most duration the browser should see
	}{
		{"whole", []string{"--src", g.HTTP + rec.FileURL + "?format=mp4"}, 3, float64(rec.DurationMS) / 1000},
		{"clip", []string{"--src", g.HTTP + rec.FileURL + "?format=mp4&from=2&to=4"}, 1.5, 2},
		// The recordings page plays Matroska through format=mp4.
		{"recordings page", []string{"--page", g.HTTP + "/recordings?stream=mp4", "--row", rec.ID}, 2, float64(rec.DurationMS) / 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
			defer cancel()
			args := append([]string{"drivers/video.mjs", "--seconds", strconv.FormatFloat(c.play, 'f', -1, 64),
				"--type", `video/mp4; codecs="avc1.64001e, opus"`}, c.args...)
			cmd := exec.CommandContext(ctx, node, args...)
			cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
			cmd.Stderr = &logWriter{t: t}
			out, err := cmd.Output()
			var st struct {
				CurrentTime float64 `json:"currentTime"`
				Duration    any     `json:"duration"`
				Width       int     `json:"width"`
				Frames      int     `json:"frames"`
				Error       string  `json:"error"`
				Src         string  `json:"src"`
			}
			if jerr := json.Unmarshal(out, &st); jerr != nil {
				t.Fatalf("video.mjs: %v, %v: %s", err, jerr, out)
			}
			t.Logf("Chromium: %s", strings.TrimSpace(string(out)))
			if err != nil || st.Error != "" || st.CurrentTime < c.play || st.Width != 640 || st.Frames < int(c.play*20) {
				t.Fatalf("Chromium did not play %s (%v): %+v", c.name, err, st)
			}
			if !strings.Contains(st.Src, "format=mp4") {
				t.Errorf("Chromium played %s, not the MP4", st.Src)
			}
			// Chromium's duration is that of what it has received (the
			// recordings page preloads metadata only, so less): finite,
			// past what it played, never past the recording.
			if d, ok := st.Duration.(float64); !ok || d < st.CurrentTime || d > c.seconds*1.1+0.1 {
				t.Errorf("Chromium sees a duration of %v after playing %.2f s, want at most %.2f s", st.Duration, st.CurrentTime, c.seconds)
			}
		})
	}
}

// logWriter logs what a child process writes, line by line.
type logWriter struct{ t *testing.T }

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
	}
	return len(p), nil
}
