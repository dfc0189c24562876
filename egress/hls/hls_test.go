package hls

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/api/problem"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

// needTools skips a test when ffmpeg/ffprobe are missing, except on CI,
// where a missing tool must fail the run instead of hiding it.
func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required on CI: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

type fixture struct {
	hub    *live.Hub
	srv    *Server
	http   *httptest.Server
	pub    *hubtest.Publisher
	stop   context.CancelFunc
	client *http.Client
}

// start publishes src as "cam" and serves HLS for the hub on loopback.
func start(t *testing.T, cfg Config, src hubtest.Source) *fixture {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testlog.New(t)
	}
	f := &fixture{hub: live.NewHub(live.Reject), client: &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}}
	f.srv = New(cfg, f.hub)
	f.http = httptest.NewServer(f.srv)
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	pub, err := hubtest.Publish(ctx, f.hub, "cam", src)
	if err != nil {
		t.Fatal(err)
	}
	f.pub = pub
	t.Cleanup(func() {
		cancel()
		<-pub.Done()
		f.srv.Close()
		f.client.CloseIdleConnections()
		f.http.Close()
	})
	return f
}

func (f *fixture) url(stream, file string) string { return f.http.URL + "/hls/" + stream + "/" + file }

func (f *fixture) get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := f.client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// run runs a command with a deadline and returns its stdout and stderr.
func run(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), errb.String()
}

type probedStream struct {
	CodecName string `json:"codec_name"`
	CodecType string `json:"codec_type"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

func probe(t *testing.T, url string) []probedStream {
	t.Helper()
	out, _ := run(t, "ffprobe", "-v", "error", "-show_streams", "-of", "json", url)
	var res struct{ Streams []probedStream }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return res.Streams
}

func hasStream(streams []probedStream, codec string, w, h int) bool {
	for _, s := range streams {
		if s.CodecName == codec && s.Width == w && s.Height == h {
			return true
		}
	}
	return false
}

// decode plays url for 4 s with ffmpeg and requires a clean run.
func decode(t *testing.T, url string) {
	t.Helper()
	_, stderr := run(t, "ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "4", "-f", "null", "-")
	if strings.TrimSpace(stderr) != "" {
		t.Errorf("ffmpeg reported errors:\n%s", stderr)
	}
}

func TestH264OpusPlays(t *testing.T) {
	needTools(t)
	// OBS-style: SPS and PPS in packets of their own, four slices per picture.
	f := start(t, Config{}, hubtest.Source{Video: live.H264, Audio: true, Loop: true, SeparateParamSets: true})
	url := f.url("cam", "index.m3u8")

	// The first request reaches a stream whose muxer has not started.
	streams := probe(t, url)
	if !hasStream(streams, "h264", 640, 360) || !hasStream(streams, "opus", 0, 0) {
		t.Fatalf("ffprobe streams = %+v, want h264 640x360 and opus", streams)
	}
	decode(t, url)

	if n := f.srv.Viewers("cam"); n != 1 {
		t.Errorf("Viewers = %d, want 1 (one loopback client)", n)
	}
	if n := f.srv.Viewers("other"); n != 0 {
		t.Errorf("Viewers(other) = %d, want 0", n)
	}
	var hls int
	for _, sub := range f.pub.Stream.Subscriptions() {
		if sub.Kind == "hls" {
			hls++
		}
	}
	if hls != 1 {
		t.Errorf("%d hls subscriptions, want one for all requests", hls)
	}
	if f.pub.KeyframeRequests.Load() == 0 {
		t.Error("the publisher was never asked for a keyframe")
	}
}

// TestOtherCodecsPlay: the other video codecs HLS carries, with Opus.
func TestOtherCodecsPlay(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		codec live.Codec
		name  string // ffprobe's
	}{
		{live.VP9, "vp9"},
		{live.AV1, "av1"},
		{live.H265, "hevc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, Config{}, hubtest.Source{Video: tc.codec, Audio: true, Loop: true})
			url := f.url("cam", "index.m3u8")
			streams := probe(t, url)
			if !hasStream(streams, tc.name, 640, 360) || !hasStream(streams, "opus", 0, 0) {
				t.Fatalf("ffprobe streams = %+v, want %s 640x360 and opus", streams, tc.name)
			}
			decode(t, url)
			if ok, reason := f.srv.Available(f.pub.Stream); !ok {
				t.Errorf("Available = false, %q; want true", reason)
			}
		})
	}
}

func decodeProblem(t *testing.T, resp *http.Response, body []byte) problem.Details {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problem.Details
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if p.Status != resp.StatusCode {
		t.Errorf("problem status %d, response status %d", p.Status, resp.StatusCode)
	}
	return p
}

func TestVP8IsRefused(t *testing.T) {
	f := start(t, Config{}, hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	resp, body := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("status %d, want 409; body %s", resp.StatusCode, body)
	}
	p := decodeProblem(t, resp, body)
	if !strings.Contains(p.Detail, "VP8") || !strings.Contains(p.Detail, "H.264") {
		t.Errorf("detail %q should name VP8 and suggest H.264", p.Detail)
	}
	if ok, reason := f.srv.Available(f.pub.Stream); ok || !strings.Contains(reason, "VP8") {
		t.Errorf("Available = %v, %q; want false with a reason naming VP8", ok, reason)
	}
	if n := len(f.pub.Stream.Subscriptions()); n != 0 {
		t.Errorf("%d subscriptions for a stream HLS cannot carry", n)
	}
}

func TestUnknownStream(t *testing.T) {
	f := start(t, Config{}, hubtest.Source{Audio: true, Loop: true})
	resp, body := f.get(t, f.url("x", "index.m3u8"))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	want := `{"type":"about:blank","title":"Not Found","status":404,"detail":"stream \"x\" is not live"}`
	if got := strings.TrimSpace(string(body)); got != want {
		t.Errorf("body\n%s\nwant\n%s", got, want)
	}
	decodeProblem(t, resp, body)

	// A segment of a stream whose muxer is not running does not start one.
	resp, body = f.get(t, f.url("cam", "abc_video1_seg7.mp4"))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("segment without muxer: status %d, want 404", resp.StatusCode)
	}
	decodeProblem(t, resp, body)
	if f.srv.running("cam") {
		t.Error("a segment request started a muxer")
	}
}

func TestCORS(t *testing.T) {
	f := start(t, Config{}, hubtest.Source{Audio: true, Loop: true})
	req, _ := http.NewRequest(http.MethodOptions, f.url("cam", "index.m3u8"), nil)
	req.Header.Set("Origin", "https://player.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "range")
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("preflight status %d, want 204", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET",
		"Access-Control-Allow-Headers": "Range",
	} {
		if got := resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("preflight %s = %q, want it to contain %q", k, got, want)
		}
	}
	if f.srv.running("cam") {
		t.Error("a preflight started a muxer")
	}

	// Audio-only stream: the playlist itself carries the header too.
	resp, body := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "#EXTM3U") {
		t.Fatalf("playlist: status %d body %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("playlist Access-Control-Allow-Origin = %q, want *", got)
	}
	resp, _ = f.get(t, f.url("nope", "index.m3u8"))
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("error Access-Control-Allow-Origin = %q, want *", got)
	}
}

// TestPublisherLeaves: once the publisher goes, the media playlists end
// with #EXT-X-ENDLIST and still list the segments made so far, which stay
// readable; a blocking reload returns at once; after the linger time the
// stream is 404 and every goroutine is gone.
func TestPublisherLeaves(t *testing.T) {
	f := start(t, Config{EndedLinger: 3 * time.Second}, hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	baseline := runtime.NumGoroutine() // publisher and HTTP server already run

	resp, body := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("playlist status %d: %s", resp.StatusCode, body)
	}
	if !f.srv.running("cam") || len(f.pub.Stream.Subscriptions()) != 1 {
		t.Fatal("no muxer or subscription after the first playlist request")
	}
	media := f.url("cam", firstURI(t, body))
	testwait.Until(t, 15*time.Second, "a complete segment", func() bool {
		_, pl := f.get(t, media)
		return bytes.Contains(pl, []byte("#EXTINF"))
	})

	f.stop()
	<-f.pub.Done()
	var pl []byte
	testwait.Until(t, 10*time.Second, "the media playlist to end", func() bool {
		resp, pl = f.get(t, media)
		return resp.StatusCode == http.StatusOK && bytes.HasSuffix(pl, []byte("#EXT-X-ENDLIST\n"))
	})
	if bytes.Contains(pl, []byte("#EXT-X-PRELOAD-HINT")) {
		t.Errorf("the ended playlist still hints at a part to come:\n%s", pl)
	}
	if n := bytes.Count(pl, []byte("#EXT-X-ENDLIST")); n != 1 {
		t.Errorf("%d end tags", n)
	}
	if resp, seg := f.get(t, f.url("cam", segmentURI(t, pl))); resp.StatusCode != http.StatusOK || len(seg) == 0 {
		t.Errorf("a listed segment of the ended stream: status %d, %d bytes", resp.StatusCode, len(seg))
	}
	// An LL-HLS blocking reload for a segment that will never come.
	resp, pl = f.get(t, media+"?_HLS_msn=9999&_HLS_part=0")
	if resp.StatusCode != http.StatusOK || !bytes.Contains(pl, []byte("#EXT-X-ENDLIST")) {
		t.Errorf("blocking reload of the ended stream: %d\n%s", resp.StatusCode, pl)
	}

	testwait.Until(t, 15*time.Second, "the muxer to stop", func() bool { return !f.srv.running("cam") })
	resp, body = f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after the linger time: status %d, want 404", resp.StatusCode)
	}
	if p := decodeProblem(t, resp, body); !strings.Contains(p.Detail, "not live") {
		t.Errorf("detail %q", p.Detail)
	}

	f.client.CloseIdleConnections()
	// The publisher's own goroutine is gone too, hence no slack needed
	// beyond the HTTP server's connection goroutines winding down.
	testwait.Until(t, 10*time.Second, "goroutines back to baseline", func() bool {
		return runtime.NumGoroutine() <= baseline+1
	})
}

// TestFFmpegFinishesWhenPublisherLeaves: the ended playlists are ones a
// real player takes: ffmpeg, reading the live stream, plays to the end and
// exits cleanly when the publisher goes. (ffmpeg also exits quietly on a
// 404 playlist, so TestPublisherLeaves checks the end tag itself.)
func TestFFmpegFinishesWhenPublisherLeaves(t *testing.T) {
	needTools(t)
	f := start(t, Config{EndedLinger: 10 * time.Second}, hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", f.url("cam", "index.m3u8"), "-f", "null", "-")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	testwait.Until(t, 20*time.Second, "ffmpeg to read segments", func() bool { return f.srv.Viewers("cam") == 1 })
	time.Sleep(2 * time.Second) // let it play a little; not an assertion
	f.stop()
	<-f.pub.Done()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
		}
		if strings.TrimSpace(stderr.String()) != "" {
			t.Errorf("ffmpeg reported errors:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ffmpeg still reading 30 s after the publisher left")
	}
}

// firstURI is the first URI line of a playlist.
func firstURI(t *testing.T, pl []byte) string {
	t.Helper()
	for line := range bytes.Lines(pl) {
		if line = bytes.TrimSpace(line); len(line) > 0 && line[0] != '#' {
			return string(line)
		}
	}
	t.Fatalf("no URI in playlist:\n%s", pl)
	return ""
}

// segmentURI is the URI of a media playlist's last full segment (the
// first ones are gaps that LL-HLS playlists start with).
func segmentURI(t *testing.T, pl []byte) string {
	t.Helper()
	i := bytes.LastIndex(pl, []byte("#EXTINF"))
	if i < 0 {
		t.Fatalf("no segment in playlist:\n%s", pl)
	}
	return firstURI(t, pl[i:])
}

func TestIdleStop(t *testing.T) {
	f := start(t, Config{IdleTimeout: 2 * time.Second}, hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	resp, body := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("playlist status %d: %s", resp.StatusCode, body)
	}
	if n := len(f.pub.Stream.Subscriptions()); n != 1 {
		t.Fatalf("%d subscriptions while watched, want 1", n)
	}
	testwait.Until(t, 15*time.Second, "the idle muxer to stop", func() bool {
		return !f.srv.running("cam") && len(f.pub.Stream.Subscriptions()) == 0
	})

	// A new request starts a new muxer on the same, still live, stream.
	resp, body = f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("playlist after idle stop: status %d: %s", resp.StatusCode, body)
	}
	if n := len(f.pub.Stream.Subscriptions()); n != 1 {
		t.Fatalf("%d subscriptions after restart, want 1", n)
	}
}

func TestCloseTwice(t *testing.T) {
	f := start(t, Config{}, hubtest.Source{Audio: true, Loop: true})
	resp, _ := f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("playlist status %d", resp.StatusCode)
	}
	f.srv.Close()
	f.srv.Close()
	if n := len(f.pub.Stream.Subscriptions()); n != 0 {
		t.Errorf("%d subscriptions after Close", n)
	}
	resp, _ = f.get(t, f.url("cam", "index.m3u8"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d, want 503", resp.StatusCode)
	}
}

// relay republishes the stream src as dst, dropping one packet in every
// dropEvery and swapping neighbours every swapEvery packets, like a lossy
// network would.
func relay(t *testing.T, hub *live.Hub, src *live.Stream, dst string, dropEvery, swapEvery int) {
	t.Helper()
	tracks := map[*live.Track]*live.Track{}
	var out []*live.Track
	for _, in := range src.Tracks() {
		c := &live.Track{Kind: in.Kind, Codec: in.Codec, PayloadType: in.PayloadType,
			ClockRate: in.ClockRate, Channels: in.Channels, Fmtp: in.Fmtp}
		tracks[in] = c
		out = append(out, c)
	}
	s, err := hub.Publish(dst, live.PublishSpec{Session: "relay", Protocol: "test", Tracks: out,
		RequestKeyframe: src.RequestKeyframe})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var held *live.Packet
	sub, err := src.Subscribe("relay", live.ConsumerFunc(func(p *live.Packet) {
		n++
		switch {
		case n%dropEvery == 0:
			return
		case n%swapEvery == 0 && held == nil:
			p.Retain()
			held = p
			return
		}
		_ = s.WriteRTP(tracks[p.Track], p.Raw(), time.Now())
		if held != nil {
			_ = s.WriteRTP(tracks[held.Track], held.Raw(), time.Now())
			held.Release()
			held = nil
		}
	}), 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-sub.Done()
		if held != nil {
			held.Release()
		}
		s.Close()
	}()
	t.Cleanup(sub.Close)
}

// TestLossAndReorder covers the codecs whose pictures span several packets
// (fragmentation units), where a depacketizer fed across a gap could put a
// broken or unreferenced picture into a segment.
func TestLossAndReorder(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		codec live.Codec
		name  string
	}{
		{live.H264, "h264"},
		{live.H265, "hevc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, Config{}, hubtest.Source{Video: tc.codec, Audio: true, Loop: true, SeparateParamSets: true})
			relay(t, f.hub, f.pub.Stream, "lossy", 97, 13)
			url := f.url("lossy", "index.m3u8")
			streams := probe(t, url)
			if !hasStream(streams, tc.name, 640, 360) || !hasStream(streams, "opus", 0, 0) {
				t.Fatalf("ffprobe streams = %+v, want %s 640x360 and opus", streams, tc.name)
			}
			decode(t, url)
		})
	}
}
