package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// publishCase publishes fixture media for a few seconds with a WHEP viewer
// watching, ends with DELETE, and judges the recording with ffprobe/ffmpeg.
type publishCase struct {
	name, video       string
	separateParamSets bool
	// wantCodec is ffprobe's name for the video codec, wantMime WebRTC's.
	wantExt, wantCodec, wantMime string
	width, height                int
}

func TestPublishWatchRecord(t *testing.T) {
	mediacheck.Require(t)
	g := startGateway(t, nil)
	for _, c := range []publishCase{
		{name: "vp8", video: "vp8", wantExt: ".webm", wantCodec: "vp8", wantMime: "video/VP8", width: 640, height: 360},
		{name: "h264", video: "h264", separateParamSets: true, wantExt: ".mkv", wantCodec: "h264", wantMime: "video/H264", width: 640, height: 360},
		// An OBS HEVC encoder: parameter sets in packets of their own.
		{name: "h265", video: "h265", separateParamSets: true, wantExt: ".mkv", wantCodec: "hevc", wantMime: "video/H265", width: 640, height: 360},
	} {
		t.Run(c.name, func(t *testing.T) { runPublishCase(t, g, c) })
	}
}

func runPublishCase(t *testing.T, g *gateway, c publishCase) {
	ctx := ctxTimeout(t, 60*time.Second)
	se := whipclient.LoopbackSettingEngine()
	const sendFor = 10 * time.Second
	start := time.Now()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+c.name, whipclient.PublishOptions{
		Video: c.video, Audio: true, Duration: sendFor, H264SeparateParamSets: c.separateParamSets, SettingEngine: &se,
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case <-pub.Connected():
	case <-ctx.Done():
		t.Fatal("publisher never connected")
	}
	viewer, err := whipclient.View(ctx, g.HTTP+"/whep/"+c.name, whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	if err := viewer.WaitVideoFrames(ctx, 60); err != nil {
		t.Fatalf("viewer did not get 60 video frames: %v (stats %+v)", err, viewer.Stats())
	}
	vs := viewer.Stats()
	if vs.Video.Keyframes == 0 || vs.Audio.Packets == 0 || !strings.EqualFold(vs.Video.Codec, c.wantMime) {
		t.Fatalf("viewer stats %+v", vs)
	}
	// The viewer's join asked the publisher for a keyframe.
	testwait.Until(t, 5*time.Second, "a PLI at the publisher", func() bool { return pub.Stats().Video.PLIs > 0 })

	var info struct {
		Viewers map[string]int `json:"viewers"`
	}
	getJSON(t, g.HTTP+"/api/v1/streams/"+c.name, &info)
	if info.Viewers["whep"] != 1 || info.Viewers["record"] != 1 {
		t.Fatalf("streams API viewers %v", info.Viewers)
	}

	checkRestreams(t, g, c)

	<-pub.Done()
	sent := time.Since(start)
	if err := pub.Close(); err != nil { // DELETE
		t.Fatalf("DELETE: %v", err)
	}
	select {
	case <-viewer.Closed():
	case <-time.After(15 * time.Second):
		t.Fatal("viewer was not closed after the publisher left")
	}
	_ = viewer.Close()

	var files []string
	testwait.Until(t, 10*time.Second, "the finalized recording", func() bool {
		files = nil
		for _, f := range g.recordings(t) {
			if strings.Contains(f, "/"+c.name+"/") {
				files = append(files, f)
			}
		}
		return len(files) == 1
	})
	checkRecording(t, files[0], c, sent)
}

// checkRestreams reads the live stream with ffprobe over RTSP (TCP and
// UDP) and HLS, or checks that HLS refuses VP8 with the documented 409.
func checkRestreams(t *testing.T, g *gateway, c publishCase) {
	t.Helper()
	ctx := ctxTimeout(t, 30*time.Second)
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, c.name)
	for _, transport := range []string{"tcp", "udp"} {
		p, err := mediacheck.ProbeFile(ctx, rtspURL, "-rtsp_transport", transport)
		if err != nil {
			t.Fatalf("RTSP over %s: %v", transport, err)
		}
		if v, a := p.Stream("video"), p.Stream("audio"); v == nil || v.CodecName != c.wantCodec || a == nil || a.CodecName != "opus" {
			t.Fatalf("RTSP over %s streams %+v", transport, p.Streams)
		}
	}
	hlsURL := g.HTTP + "/hls/" + c.name + "/index.m3u8"
	if c.wantCodec == "vp8" {
		resp, err := http.Get(hlsURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "VP8") || !strings.Contains(string(body), "H.264") {
			t.Fatalf("HLS of VP8: %d %s", resp.StatusCode, body)
		}
		return
	}
	p, err := mediacheck.ProbeFile(ctx, hlsURL)
	if err != nil {
		t.Fatalf("HLS: %v", err)
	}
	if v, a := p.Stream("video"), p.Stream("audio"); v == nil || v.CodecName != c.wantCodec || a == nil || a.CodecName != "opus" {
		t.Fatalf("HLS streams %+v", p.Streams)
	}
	var info struct {
		Viewers map[string]int `json:"viewers"`
	}
	getJSON(t, g.HTTP+"/api/v1/streams/"+c.name, &info)
	if info.Viewers["hls"] < 1 {
		t.Fatalf("streams API does not count the HLS viewer: %v", info.Viewers)
	}
}

func checkRecording(t *testing.T, file string, c publishCase, sent time.Duration) {
	t.Helper()
	ctx := ctxTimeout(t, 60*time.Second)
	if !strings.HasSuffix(file, c.wantExt) {
		t.Fatalf("recording %s, want extension %s", file, c.wantExt)
	}
	p, err := mediacheck.ProbeFile(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	v, a := p.Stream("video"), p.Stream("audio")
	if v == nil || a == nil || v.CodecName != c.wantCodec || a.CodecName != "opus" {
		t.Fatalf("streams %+v", p.Streams)
	}
	if v.Width != c.width || v.Height != c.height {
		t.Fatalf("resolution %dx%d", v.Width, v.Height)
	}
	// The file covers the media sent after the first keyframe reached
	// the recorder: within 10% of what was sent.
	if d := p.Duration(); d < sent*9/10-500*time.Millisecond || d > sent*11/10 {
		t.Fatalf("duration %v, sent %v", d, sent)
	}
	if err := mediacheck.Decode(ctx, file); err != nil {
		t.Fatal(err)
	}
	if err := mediacheck.SeekDecode(ctx, file, p.Duration()/2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file + ".json"); err != nil {
		t.Fatalf("no sidecar: %v", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM while publishing: every recording is finalized before exit.
func TestGracefulShutdownFinalizesRecording(t *testing.T) {
	mediacheck.Require(t)
	g := startGateway(t, nil)
	ctx := ctxTimeout(t, 60*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/term", whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	<-pub.Connected()
	time.Sleep(3 * time.Second) // let a few seconds be recorded
	g.stop(syscall.SIGTERM)
	if !strings.Contains(g.Log(), "every recording is finalized") {
		t.Fatalf("no clean shutdown in log:\n%s", g.Log())
	}
	files := g.recordings(t)
	if len(files) != 1 {
		t.Fatalf("recordings after SIGTERM: %v", files)
	}
	p, err := mediacheck.ProbeFile(ctx, files[0])
	if err != nil {
		t.Fatal(err)
	}
	if p.Duration() < 2*time.Second {
		t.Fatalf("duration %v", p.Duration())
	}
	if err := mediacheck.Decode(ctx, files[0]); err != nil {
		t.Fatal(err)
	}
}

func TestHelpExplainsEveryOption(t *testing.T) {
	out, err := runReel("--help")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"--http-addr", "REEL_HTTP_ADDR", "--recordings-dir", "--auth-publish-tokens", "--webrtc-nat-1to1-ips", "--config"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}

// Tokens from the environment turn auth on in the real binary.
func TestAuthFromEnvironment(t *testing.T) {
	g := startGateway(t, []string{"REEL_AUTH_PUBLISH_TOKENS=s3cret"})
	ctx := ctxTimeout(t, 30*time.Second)
	se := whipclient.LoopbackSettingEngine()
	_, err := whipclient.Publish(ctx, g.HTTP+"/whip/cam", whipclient.PublishOptions{Video: "vp8", SettingEngine: &se})
	var he *whipclient.HTTPError
	if !asHTTPError(err, &he) || he.StatusCode != http.StatusUnauthorized {
		t.Fatalf("publish without token: %v", err)
	}
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/cam", whipclient.PublishOptions{Video: "vp8", Token: "s3cret", Duration: time.Second, SettingEngine: &se})
	if err != nil {
		t.Fatalf("publish with token: %v", err)
	}
	_ = pub.Close()
}
