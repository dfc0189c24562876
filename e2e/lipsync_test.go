package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// TestLipSyncEndToEnd publishes testdata/flashbeep.* (a white flash and a
// beep at the same instants, every 2 s) to the real binary the three ways
// publishers start (as OBS does; as webrtcbin does, with a second of media
// sent in one burst once DTLS is up; with every audio packet sent 100 ms
// after its capture, RTP timestamps and Sender Reports unchanged), and
// finds the flashes and beeps again with ffmpeg in the recording, in what
// ffmpeg reads over RTSP (from the start, and joining the running stream)
// and over HLS: median |audio − video| ≤ 20 ms, none over 45 ms, and
// ffmpeg never sees a track's timestamps go back.
func TestLipSyncEndToEnd(t *testing.T) {
	mediacheck.Require(t)
	g := startGateway(t, nil)
	// Reports every 2 s, the first 1 s after the connection (RFC 3550's
	// first interval is 1.25 to 3.75 s; libwebrtc's audio sends its first
	// after ~2.5 s): the first readers below have started by then; one
	// more joins the running stream over RTSP.
	modes := map[string]whipclient.Timing{
		"obs":       {SenderReports: whipclient.SRCapture, SRInterval: 2 * time.Second},
		"burst":     {SenderReports: whipclient.SRCapture, SRInterval: 2 * time.Second, StartBeforeConnect: true, BurstAfter: time.Second},
		"lateaudio": {SenderReports: whipclient.SRCapture, SRInterval: 2 * time.Second, AudioSendDelay: 100 * time.Millisecond},
	}
	var wg sync.WaitGroup
	results := map[string]map[string]*mediacheck.Sync{}
	var mu sync.Mutex
	for name, tm := range modes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := lipSyncRun(t, g, "sync"+name, tm)
			mu.Lock()
			results[name] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	for name, outs := range results {
		for out, s := range outs {
			t.Logf("%s via %s: %d flashes, median %v, worst %v, offsets %v", name, out, len(s.Offsets), s.Median(), s.Worst(), s.Offsets)
			if len(s.Offsets) < 3 || s.Median() > 20*time.Millisecond || s.Worst() > 45*time.Millisecond {
				t.Errorf("%s via %s: median %v, worst %v over %d flashes; want ≤ 20 ms, ≤ 45 ms, at least 3",
					name, out, s.Median(), s.Worst(), len(s.Offsets))
			}
		}
	}
}

// lipSyncRun publishes for 14 s and returns the sync measured in the
// recording and in ffmpeg's copies of the RTSP and HLS outputs.
func lipSyncRun(t *testing.T, g *gateway, stream string, tm whipclient.Timing) map[string]*mediacheck.Sync {
	ctx := ctxTimeout(t, 2*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+stream, whipclient.PublishOptions{
		Video: "h264", VideoFile: testmedia.Path("flashbeep.h264"), Audio: true, AudioFile: testmedia.Path("flashbeep.ogg"),
		Duration: 14 * time.Second, Timing: tm, SettingEngine: &se,
	})
	if err != nil {
		t.Errorf("%s: %v", stream, err)
		return nil
	}
	dir := t.TempDir()
	copies := map[string]string{
		"rtsp":         filepath.Join(dir, "rtsp.mkv"),
		"rtsp joining": filepath.Join(dir, "rtsp-joining.mkv"),
		"hls":          filepath.Join(dir, "hls.mkv"),
	}
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, stream)
	inputs := map[string][]string{
		"rtsp":         {"-rtsp_transport", "tcp", "-i", rtspURL},
		"rtsp joining": {"-rtsp_transport", "tcp", "-i", rtspURL},
		"hls":          {"-i", g.HTTP + "/hls/" + stream + "/index.m3u8"},
	}
	// Readers join as soon as the stream is live, while its clock waits
	// for the Sender Reports: RTSP sends nothing until then, and a report
	// per track ahead of the first packets (README, "Lip sync": a player
	// that joins later is lined up by gortsplib's first report).
	testwait.Until(t, 20*time.Second, stream+" live", func() bool {
		resp, err := http.Get(g.HTTP + "/api/v1/streams/" + stream)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var wg sync.WaitGroup
	for out, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out == "rtsp joining" {
				// Past the clock's settling and the first reader's start:
				// it joins a running RTSP stream.
				time.Sleep(3 * time.Second)
			}
			args := append(append([]string{"-hide_banner", "-nostdin", "-v", "warning", "-y"}, in...),
				"-t", "9", "-c", "copy", copies[out])
			cctx, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			b, err := exec.CommandContext(cctx, "ffmpeg", args...).CombinedOutput()
			switch {
			case err != nil:
				t.Errorf("%s: ffmpeg copying %s: %v: %s", stream, out, err, b)
			case bytes.Contains(b, []byte("Non-monotonous")) || bytes.Contains(b, []byte("non monotonically")):
				// A Sender Report that moved a track back.
				t.Errorf("%s: ffmpeg copying %s saw timestamps go back: %s", stream, out, b)
			case len(b) > 0:
				t.Logf("%s: ffmpeg copying %s: %s", stream, out, b)
			}
		}()
	}
	wg.Wait()
	<-pub.Done()
	if err := pub.Close(); err != nil {
		t.Errorf("%s: %v", stream, err)
	}
	var file string
	testwait.Until(t, 30*time.Second, stream+"'s recording", func() bool {
		for _, f := range g.recordings(t) {
			if strings.Contains(filepath.Base(f), stream+"_") {
				file = f
				return true
			}
		}
		return false
	})
	res := map[string]*mediacheck.Sync{}
	for out, f := range map[string]string{"recording": file, "rtsp": copies["rtsp"], "rtsp joining": copies["rtsp joining"], "hls": copies["hls"]} {
		s, err := mediacheck.LipSync(ctx, f)
		if err != nil {
			t.Errorf("%s via %s: %v", stream, out, err)
			continue
		}
		res[out] = s
	}
	return res
}

// TestLipSyncChromium publishes a time-coded page from Chromium (whip-whep):
// a canvas that flashes white and a WebAudio beep, both at every even
// second of the wall clock. libwebrtc's Sender Reports place the tracks:
// in the recording the beeps land on the flashes, as libwebrtc captured
// them (the canvas' and the audio graph's own latencies apart: both are a
// few frames at most).
func TestLipSyncChromium(t *testing.T) {
	start := time.Now()
	needChromium(t)
	mediacheck.Require(t)
	art := artifactsDir(t)
	g := startInteropGateway(t, art)
	b := startBrowser(t, art)
	const stream = "chromium-sync"
	b.open("publisher")
	var pub publishResult
	b.mustCall(60*time.Second, "publisher", "publishWhipWhep", &pub, g.HTTP+"/whip/"+stream, "video/VP8", "flashbeep")
	step(t, start, "Chromium publishes a flash and a beep every 2 s")
	time.Sleep(12 * time.Second)
	stopPublishing(t, b, "publisher")
	file := finishedRecording(t, g, stream, art)
	ctx := ctxTimeout(t, time.Minute)
	s, err := mediacheck.LipSync(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Chromium's recording: %d flashes, audio − video %v (median %v, worst %v); stream sync %s",
		len(s.Offsets), s.Offsets, s.Median(), s.Worst(), grepLines(g.Log(), "stream clock"))
	if len(s.Offsets) < 3 || s.Median() > 45*time.Millisecond || s.Worst() > 80*time.Millisecond {
		t.Errorf("audio − video: median %v, worst %v over %d flashes; want ≤ 45 ms, ≤ 80 ms, at least 3", s.Median(), s.Worst(), len(s.Offsets))
	}
}
