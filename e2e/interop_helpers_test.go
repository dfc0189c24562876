package e2e

// Helpers of the interop suite (issue 5): stacks we did not write publish
// to and read from the real reel binary. Run it with
//
//	e2e/drivers/install.sh            # Debian and npm packages, idempotent
//	go test -run Interop -v ./e2e
//
// A stack that cannot run here skips its case with one line saying why,
// except under CI=true, where that is a failure. Logs, SDPs and
// screenshots of a failed case stay in e2e/artifacts/<test>/.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
)

// interopDir holds the node and python drivers (tests run in e2e/).
const interopDir = "drivers"

// cannotRun skips the test with a one-line reason, or fails it in CI,
// where every stack must run.
func cannotRun(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("interop: cannot run: %s (CI=true: e2e/drivers/install.sh must provide it)", msg)
	}
	t.Skipf("interop: cannot run: %s (run e2e/drivers/install.sh)", msg)
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	mediacheck.Require(t)
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			cannotRun(t, "%s is not installed", tool)
		}
	}
}

// chromiumPath is Debian's Chromium (REEL_CHROMIUM overrides it); we never
// use a browser downloaded by a test tool.
func chromiumPath() string {
	if p := os.Getenv("REEL_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func needChromium(t *testing.T) {
	t.Helper()
	needTools(t, "node", "mkvinfo", "mkvmerge")
	if _, err := os.Stat(chromiumPath()); err != nil {
		cannotRun(t, "Debian's chromium is not installed at %s", chromiumPath())
	}
	for _, mod := range []string{"playwright-core", "whip-whep", "@eyevinn/whip-web-client", "esbuild"} {
		if _, err := os.Stat(filepath.Join(interopDir, "node_modules", mod, "package.json")); err != nil {
			cannotRun(t, "npm package %s is not installed in e2e/drivers", mod)
		}
	}
}

// artifactsDir is e2e/artifacts/<test>/, emptied at the start and removed
// again when the test passes.
func artifactsDir(t *testing.T) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	dir, err := filepath.Abs(filepath.Join("artifacts", name))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and screenshots kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// startInteropGateway runs reel (with extra flags) and saves its log into
// the artifacts when the test fails.
func startInteropGateway(t *testing.T, art string, extra ...string) *gateway {
	t.Helper()
	g := startGateway(t, nil, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			_ = os.WriteFile(filepath.Join(art, "reel.log"), []byte(g.Log()), 0o644)
		}
	})
	return g
}

// step logs how long each part of a case took, for the wall-time budget.
func step(t *testing.T, start time.Time, format string, args ...any) {
	t.Helper()
	t.Logf("[%5.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// ---- Chromium, through e2e/drivers/browser.mjs ----

type browserReply struct {
	ID       int             `json:"id"`
	OK       bool            `json:"ok"`
	Result   json.RawMessage `json:"result"`
	Error    string          `json:"error"`
	Ready    bool            `json:"ready"`
	Chromium string          `json:"chromium"`
}

// browser is one Chromium (fresh profile) behind the node driver.
type browser struct {
	t       *testing.T
	art     string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	mu      sync.Mutex
	nextID  int
	waiting map[int]chan browserReply
	pages   []string
	Version string
}

func startBrowser(t *testing.T, art string) *browser {
	t.Helper()
	b := &browser{t: t, art: art, exited: make(chan struct{}), waiting: map[int]chan browserReply{}}
	logFile, err := os.Create(filepath.Join(art, "browser.log"))
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command("node", filepath.Join(interopDir, "browser.mjs"), "--chromium", chromiumPath())
	b.cmd.Stderr = logFile
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Chromium dies with the driver
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan browserReply, 1)
	go func() {
		defer close(b.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var r browserReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fmt.Fprintf(logFile, "[go] unparsable driver line %q\n", sc.Text())
				continue
			}
			if r.Ready {
				ready <- r
				continue
			}
			b.mu.Lock()
			ch := b.waiting[r.ID]
			delete(b.waiting, r.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
		_ = b.cmd.Wait()
		_ = logFile.Close()
	}()
	t.Cleanup(b.close)
	select {
	case r := <-ready:
		b.Version = r.Chromium
	case <-b.exited:
		t.Fatalf("the browser driver exited before it was ready; see %s", logFile.Name())
	case <-time.After(90 * time.Second):
		t.Fatalf("Chromium did not start within 90 s; see %s", logFile.Name())
	}
	return b
}

func (b *browser) do(timeout time.Duration, cmd map[string]any) (json.RawMessage, error) {
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	ch := make(chan browserReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	cmd["id"] = id
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("browser driver: %w", err)
	}
	select {
	case r := <-ch:
		if !r.OK {
			return nil, errors.New(r.Error)
		}
		return r.Result, nil
	case <-b.exited:
		return nil, errors.New("the browser driver exited")
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer from the browser within %v", timeout)
	}
}

// open loads the test page in a new tab.
func (b *browser) open(page string) {
	b.t.Helper()
	if _, err := b.do(60*time.Second, map[string]any{"op": "open", "page": page}); err != nil {
		b.t.Fatalf("opening page %s: %v", page, err)
	}
	b.pages = append(b.pages, page)
}

// call runs window.reel[fn](...args) in a page and decodes its result.
func (b *browser) call(timeout time.Duration, page, fn string, out any, args ...any) error {
	if args == nil {
		args = []any{}
	}
	res, err := b.do(timeout, map[string]any{"op": "call", "page": page, "fn": fn, "args": args})
	if err != nil {
		return fmt.Errorf("%s in page %s: %w", fn, page, err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			return fmt.Errorf("%s result %s: %w", fn, res, err)
		}
	}
	return nil
}

// mustCall is call that fails the test (after a screenshot).
func (b *browser) mustCall(timeout time.Duration, page, fn string, out any, args ...any) {
	b.t.Helper()
	if err := b.call(timeout, page, fn, out, args...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) close() {
	select {
	case <-b.exited:
		return
	default:
	}
	b.checkPageErrors()
	if b.t.Failed() {
		for _, p := range b.pages {
			path := filepath.Join(b.art, p+".png")
			if _, err := b.do(15*time.Second, map[string]any{"op": "screenshot", "page": p, "path": path}); err != nil {
				b.t.Logf("screenshot of %s: %v", p, err)
			}
		}
	}
	_, _ = b.do(20*time.Second, map[string]any{"op": "quit"})
	_ = b.stdin.Close()
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
}

// checkPageErrors fails the test on any error a page reported: a WHIP or
// WHEP client library that logs an error (or rejects a promise nobody
// awaits) has met something it did not expect from reel, even when the
// media flows anyway.
func (b *browser) checkPageErrors() {
	res, err := b.do(15*time.Second, map[string]any{"op": "errors"})
	if err != nil {
		b.t.Errorf("asking the browser for page errors: %v", err)
		return
	}
	var errs map[string][]string
	if err := json.Unmarshal(res, &errs); err != nil {
		b.t.Errorf("page errors %s: %v", res, err)
		return
	}
	for page, lines := range errs {
		for _, line := range lines {
			b.t.Errorf("page %s reported an error: %s", page, line)
		}
	}
}

// What the page reports of libwebrtc's senders and receivers.
type rtpStats struct {
	Codec           string `json:"codec"`
	Fmtp            string `json:"fmtp"`
	PacketsSent     int    `json:"packetsSent"`
	PacketsReceived int    `json:"packetsReceived"`
	PacketsLost     int    `json:"packetsLost"`
	FramesEncoded   int    `json:"framesEncoded"`
	FramesDecoded   int    `json:"framesDecoded"`
	FrameWidth      int    `json:"frameWidth"`
	FrameHeight     int    `json:"frameHeight"`
	PLICount        int    `json:"pliCount"`
	NACKCount       int    `json:"nackCount"`
	Encoder         string `json:"encoderImplementation"`
	Decoder         string `json:"decoderImplementation"`
}

type transportStats struct {
	DTLSState  string `json:"dtlsState"`
	ICEState   string `json:"iceState"`
	LocalUfrag string `json:"localUfrag"`
	SRTPCipher string `json:"srtpCipher"`
}

// offeredSRTPCipher reports whether a getStats srtpCipher is one of the
// profiles Reel offers (rtc.SRTPProfiles). This Chromium, started without
// its field-trial configuration, has no GCM suites and takes AES-CM.
func offeredSRTPCipher(c string) bool {
	return c == "AEAD_AES_128_GCM" || c == "SRTP_AES128_CM_HMAC_SHA1_80"
}

type publishResult struct {
	Video     *rtpStats       `json:"video"`
	Audio     *rtpStats       `json:"audio"`
	Transport *transportStats `json:"transport"`
	Resource  string          `json:"resource"`
	Trickle   *bool           `json:"trickle"`
	Offered   []string        `json:"offered"`
	// OfferFirst is the first video codec of the publisher's offer.
	OfferFirst string `json:"offerFirst"`
	// ConnectedAt is when the page saw the connection become connected,
	// in ms since the epoch (the same clock as ours).
	ConnectedAt int64 `json:"connectedAt"`
	// Post is the WHIP offer's POST: when it was sent and answered, in
	// ms since the epoch.
	Post *struct {
		SentAt     int64 `json:"sentAt"`
		AnsweredAt int64 `json:"answeredAt"`
	} `json:"post"`
}

// Connected is ConnectedAt as a time.
func (p publishResult) Connected() time.Time { return time.UnixMilli(p.ConnectedAt) }

// stopPublishing ends the page's publish with its client's DELETE and
// returns how long it published: from connected to the DELETE, both
// taken in the page.
func stopPublishing(t *testing.T, b *browser, page string) time.Duration {
	t.Helper()
	var r struct {
		StoppedAt   int64 `json:"stoppedAt"`
		ConnectedAt int64 `json:"connectedAt"`
	}
	b.mustCall(30*time.Second, page, "stop", &r)
	if r.ConnectedAt == 0 || r.StoppedAt < r.ConnectedAt {
		t.Fatalf("publish times from the page: %+v", r)
	}
	return time.Duration(r.StoppedAt-r.ConnectedAt) * time.Millisecond
}

type watchResult struct {
	VideoWidth          int     `json:"videoWidth"`
	VideoHeight         int     `json:"videoHeight"`
	CurrentTimeAdvanced float64 `json:"currentTimeAdvanced"`
	FramesDecodedBefore int     `json:"framesDecodedBefore"`
	FramesDecodedAfter  int     `json:"framesDecodedAfter"`
	FirstFrameMs        int     `json:"firstFrameMs"`
	Stats               struct {
		Video      *rtpStats `json:"video"`
		Audio      *rtpStats `json:"audio"`
		SRTPCipher string    `json:"srtpCipher"`
		// SenderReports counts the RTCP Sender Reports Chromium took,
		// per kind.
		SenderReports map[string]int `json:"senderReports"`
	} `json:"stats"`
}

// watchWHEP opens a second page that plays the stream with whip-whep's
// WHEPClient and checks that frames arrive and are decoded.
func watchWHEP(t *testing.T, b *browser, g *gateway, stream, wantCodec string) {
	t.Helper()
	b.open("viewer")
	var w watchResult
	b.mustCall(60*time.Second, "viewer", "watch", &w, g.HTTP+"/whep/"+stream)
	if w.VideoWidth <= 0 || w.VideoHeight <= 0 || w.CurrentTimeAdvanced < 1.5 || w.FramesDecodedAfter-w.FramesDecodedBefore < 30 {
		t.Fatalf("WHEP viewer: %+v", w)
	}
	if w.Stats.Video == nil || !strings.EqualFold(w.Stats.Video.Codec, "video/"+wantCodec) {
		t.Fatalf("WHEP viewer video stats %+v, want %s", w.Stats.Video, wantCodec)
	}
	if w.Stats.Audio == nil || w.Stats.Audio.PacketsReceived == 0 {
		t.Fatalf("WHEP viewer got no audio: %+v", w.Stats.Audio)
	}
	if !offeredSRTPCipher(w.Stats.SRTPCipher) {
		t.Fatalf("WHEP viewer's SRTP cipher is %q, not one Reel offers", w.Stats.SRTPCipher)
	}
	// Reel writes each track's Sender Reports from the stream's clock
	// (egress/whep/reports.go), once the clock has settled: Chromium,
	// which counts only reports whose SSRC is the media's, took some for
	// both kinds. (When depends on when the publisher's own first reports
	// came: libwebrtc's audio sends its first after ~2.5 s; the page
	// waits up to 10 s for them.)
	if w.Stats.SenderReports["video"] < 1 || w.Stats.SenderReports["audio"] < 1 {
		t.Fatalf("WHEP viewer took Sender Reports %v after 1.5 s of playing and up to 10 s more, want some for both kinds", w.Stats.SenderReports)
	}
	t.Logf("WHEP viewer (whip-whep): %dx%d, first frame after %d ms, framesDecoded %d -> %d, currentTime +%.1fs, %s, Sender Reports %v",
		w.VideoWidth, w.VideoHeight, w.FirstFrameMs, w.FramesDecodedBefore, w.FramesDecodedAfter, w.CurrentTimeAdvanced, w.Stats.SRTPCipher, w.Stats.SenderReports)
	b.mustCall(20*time.Second, "viewer", "stopWatching", nil)
}

// ---- Reel's API ----

type streamInfo struct {
	// Started tells one publication from the next (session ids are shown
	// to admins only, and auth is off here).
	Started time.Time `json:"started"`
	Tracks  []struct {
		Kind  string `json:"kind"`
		Codec string `json:"codec"`
		Bytes uint64 `json:"bytes"`
	} `json:"tracks"`
}

// waitLive waits until the stream is live with a video and an audio track.
func waitLive(t *testing.T, g *gateway, stream string) streamInfo {
	t.Helper()
	var info streamInfo
	testwait.Until(t, 15*time.Second, "stream "+stream+" to be live with two tracks", func() bool {
		resp, err := http.Get(g.HTTP + "/api/v1/streams/" + stream)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		info = streamInfo{}
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&info) == nil && len(info.Tracks) == 2
	})
	return info
}

func streamBytes(t *testing.T, g *gateway, stream string) uint64 {
	t.Helper()
	var info streamInfo
	getJSON(t, g.HTTP+"/api/v1/streams/"+stream, &info)
	var n uint64
	for _, tr := range info.Tracks {
		n += tr.Bytes
	}
	return n
}

// ---- readers we did not write ----

// readLive has ffprobe and ffmpeg read the live stream over RTSP (TCP,
// then UDP) and, for codecs HLS carries, over HLS; each must see both
// tracks with the right codecs and decode 3 s without an error.
func readLive(t *testing.T, g *gateway, stream, videoCodec string, start time.Time) {
	t.Helper()
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, stream)
	for _, transport := range []string{"tcp", "udp"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		probeBoth(t, ctx, "RTSP/"+transport, rtspURL, videoCodec, "-rtsp_transport", transport)
		if err := decodeLive(t, ctx, rtspURL, "-rtsp_transport", transport); err != nil {
			cancel()
			t.Fatalf("RTSP/%s: %v", transport, err)
		}
		cancel()
		step(t, start, "ffprobe and ffmpeg read RTSP over %s", strings.ToUpper(transport))
	}
	hlsURL := g.HTTP + "/hls/" + stream + "/index.m3u8"
	if videoCodec == "vp8" {
		// HLS cannot carry VP8 (fMP4 has no VP8 mapping that players
		// take); the playlist says so clearly.
		resp, err := http.Get(hlsURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(strings.ToLower(string(body)), "vp8") {
			t.Fatalf("HLS of a VP8 stream: %d %s; want a 4xx that names VP8", resp.StatusCode, body)
		}
		step(t, start, "HLS refuses VP8 clearly: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		return
	}
	waitHLSSegment(t, hlsURL)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	probeBoth(t, ctx, "HLS", hlsURL, videoCodec)
	if err := decodeLive(t, ctx, hlsURL); err != nil {
		t.Fatalf("HLS: %v", err)
	}
	step(t, start, "ffprobe and ffmpeg read HLS")
}

// harmlessFFmpeg are ffmpeg messages at level error that do not mean a
// viewer sees or hears anything wrong; each is logged, not failed.
var harmlessFFmpeg = []struct{ pattern, why string }{
	{"Last message repeated", "(repeat of the line before)"},
}

// decodeLive has ffmpeg decode 3 s of a live URL.
func decodeLive(t *testing.T, ctx context.Context, url string, inputArgs ...string) error {
	t.Helper()
	return ffmpegDecode(t, ctx, url, append(inputArgs, "-t", "3"), nil)
}

// ffmpegDecode has ffmpeg decode target and fails on any message at level
// error but the harmless ones above. Frames keep their own timestamps in
// the input's time base (-fps_mode passthrough -enc_time_base -1):
// ffmpeg's default rounds them to a guessed constant frame rate, and then
// complains about "non monotonically increasing dts" of its own null
// output when Chromium's frame intervals vary. A duplicate timestamp in
// the input itself is still reported.
func ffmpegDecode(t *testing.T, ctx context.Context, target string, inputArgs, outputArgs []string) error {
	t.Helper()
	args := append([]string{"-nostdin", "-v", "error"}, inputArgs...)
	args = append(append(append(append(args, "-i", target, "-map", "0"), outputArgs...), mediacheck.AsStored...),
		"-enc_time_base", "-1", "-f", "null", "-")
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	var bad []string
	noted := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		known := false
		for _, h := range harmlessFFmpeg {
			if strings.Contains(line, h.pattern) {
				known = true
				if !noted[h.pattern] && !strings.HasPrefix(h.why, "(") {
					noted[h.pattern] = true
					t.Logf("known, not failed: ffmpeg says %q: %s", h.pattern, h.why)
				}
			}
		}
		if !known {
			bad = append(bad, line)
		}
	}
	if err != nil || len(bad) > 0 {
		return fmt.Errorf("ffmpeg %s decoding %s: err=%v output=%q", strings.Join(inputArgs, " "), target, err, strings.Join(bad, "\n"))
	}
	return nil
}

// waitHLSSegment loads the multivariant playlist and the video playlist
// as a player does, and waits (bounded) until a whole segment is listed:
// without one, ffmpeg would wait forever.
func waitHLSSegment(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(u string) (string, error) {
		resp, err := client.Get(u)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		return string(b), nil
	}
	index, err := get(url)
	if err != nil {
		t.Fatalf("HLS: the playlist did not come within 20 s, so no segment was ever completed "+
			"(a WebRTC publisher sends a keyframe only when asked): %v", err)
	}
	var variant string
	for _, line := range strings.Split(index, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			variant = line
			break
		}
	}
	if variant == "" {
		t.Fatalf("HLS: no variant in %s:\n%s", url, index)
	}
	variantURL := url[:strings.LastIndex(url, "/")+1] + variant
	testwait.Until(t, 20*time.Second, "a whole HLS segment in "+variant, func() bool {
		pl, err := get(variantURL)
		return err == nil && strings.Contains(pl, "#EXTINF")
	})
}

func probeBoth(t *testing.T, ctx context.Context, what, url, videoCodec string, extra ...string) {
	t.Helper()
	p, err := mediacheck.ProbeFile(ctx, url, extra...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	v, a := p.Stream("video"), p.Stream("audio")
	if v == nil || a == nil || v.CodecName != videoCodec || a.CodecName != "opus" || v.Width == 0 {
		t.Fatalf("%s: ffprobe sees %+v; want %s video and opus audio", what, p.Streams, videoCodec)
	}
}

// ---- the recording ----

type wantRecording struct {
	ext, videoCodec string
	profile         string // ffprobe's H.264 profile, if it matters
	// held is how long the publisher captured before it connected: a
	// sender that holds what it encoded until DTLS is up (webrtcbin)
	// sends it in a burst, and the recording places it at its capture
	// time (lip sync), so the file may be that much longer.
	held time.Duration
}

// finishedRecording waits for the one finalized recording of a stream; a
// failed test keeps a copy of it (and its sidecar) in the artifacts.
func finishedRecording(t *testing.T, g *gateway, stream, art string) string {
	t.Helper()
	return finishedRecordings(t, g, stream, art, 1)[0]
}

// finishedRecordings waits for n finalized recordings of stream (files
// of consecutive segments) and returns them, oldest first.
func finishedRecordings(t *testing.T, g *gateway, stream, art string, n int) []string {
	t.Helper()
	var files []string
	testwait.Until(t, 20*time.Second, "the finalized recording of "+stream, func() bool {
		files = nil
		for _, f := range g.recordings(t) {
			if filepath.Base(filepath.Dir(f)) == stream {
				files = append(files, f)
			}
		}
		return len(files) >= n
	})
	time.Sleep(200 * time.Millisecond) // a second file would show up now
	files = nil
	for _, f := range g.recordings(t) {
		if filepath.Base(filepath.Dir(f)) == stream {
			files = append(files, f)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range files {
				for _, src := range []string{f, f + ".json"} {
					if b, err := os.ReadFile(src); err == nil {
						_ = os.WriteFile(filepath.Join(art, filepath.Base(src)), b, 0o644)
					}
				}
			}
		}
	})
	if len(files) != n {
		t.Fatalf("want %d recordings for %s, got %v", n, stream, files)
	}
	slices.SortFunc(files, func(a, b string) int { return sidecarStart(t, a).Compare(sidecarStart(t, b)) })
	return files
}

// sidecarStart is the time of a recording's first frame, from its sidecar.
func sidecarStart(t *testing.T, file string) time.Time {
	t.Helper()
	var side struct {
		Start time.Time `json:"start"`
	}
	if b, err := os.ReadFile(file + ".json"); err != nil || json.Unmarshal(b, &side) != nil || side.Start.IsZero() {
		t.Fatalf("the recording's sidecar %s.json: %v", file, err)
	}
	return side.Start
}

// checkInteropRecording judges a recording as players would: ffprobe,
// mkvinfo and mkvmerge read it, it has both tracks, its duration is
// within 10% of the publish time, ffmpeg decodes all of it without an
// error, and seeking works.
func checkInteropRecording(t *testing.T, file string, want wantRecording, published time.Duration, start time.Time) {
	t.Helper()
	ctx := ctxTimeout(t, 120*time.Second)
	if !strings.HasSuffix(file, want.ext) {
		t.Fatalf("recording %s, want a %s file", file, want.ext)
	}
	if _, err := os.Stat(file + ".json"); err != nil {
		t.Fatalf("no sidecar: %v", err)
	}
	p, err := mediacheck.ProbeFile(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	v, a := p.Stream("video"), p.Stream("audio")
	if v == nil || a == nil || v.CodecName != want.videoCodec || a.CodecName != "opus" || v.Width == 0 || v.Height == 0 {
		t.Fatalf("ffprobe streams %+v; want %s video and opus audio", p.Streams, want.videoCodec)
	}
	if want.profile != "" && v.Profile != want.profile {
		t.Fatalf("H.264 profile %q, want %q", v.Profile, want.profile)
	}
	d := p.Duration()
	if diff := d - published; diff < -published/10 || diff > published/10+want.held {
		t.Fatalf("duration %v, published for %v (after %v of capture held before connecting): more than 10%% apart", d, published, want.held)
	}
	t.Logf("recording %s: %s %dx%d (%s) + opus, %v for %v published", filepath.Base(file), v.CodecName, v.Width, v.Height, v.Profile, d.Round(10*time.Millisecond), published.Round(10*time.Millisecond))
	checkMKVToolNix(t, ctx, file, want, d)
	checkCuesOnKeyframes(t, ctx, file)
	if err := ffmpegDecode(t, ctx, file, nil, nil); err != nil {
		t.Fatal(err)
	}
	// A seek lands on the cue point before it: that must be a keyframe.
	for _, at := range []time.Duration{d / 4, d / 2, d * 3 / 4} {
		ss := []string{"-ss", fmt.Sprintf("%.3f", at.Seconds())}
		if err := ffmpegDecode(t, ctx, file, ss, []string{"-frames:v", "10"}); err != nil {
			t.Fatalf("seek to %v: %v", at, err)
		}
	}
	step(t, start, "recording checked by ffprobe, mkvinfo, mkvmerge; ffmpeg decoded it and seeked to 25/50/75%%")
}

// checkMKVToolNix reads the file with MKVToolNix, a Matroska
// implementation independent of ffmpeg's.
func checkMKVToolNix(t *testing.T, ctx context.Context, file string, want wantRecording, d time.Duration) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "mkvinfo", file).CombinedOutput()
	if err != nil {
		t.Fatalf("mkvinfo: %v\n%s", err, out)
	}
	info := string(out)
	for _, must := range []string{"+ Duration:", "+ Cues", "Track type: video", "Track type: audio"} {
		if !strings.Contains(info, must) {
			t.Fatalf("mkvinfo does not show %q:\n%s", must, head(info, 60))
		}
	}
	for _, line := range strings.Split(info, "\n") {
		if strings.Contains(line, "Error") || strings.Contains(line, "(Warning") {
			t.Fatalf("mkvinfo complains: %s", line)
		}
	}
	out, err = exec.CommandContext(ctx, "mkvmerge", "-J", file).Output()
	if err != nil {
		t.Fatalf("mkvmerge -J: %v", err)
	}
	var id struct {
		Container struct {
			Recognized bool   `json:"recognized"`
			Supported  bool   `json:"supported"`
			Type       string `json:"type"`
			Properties struct {
				Duration int64 `json:"duration"`
			} `json:"properties"`
		} `json:"container"`
		Errors []string `json:"errors"`
		Tracks []struct {
			Type  string `json:"type"`
			Codec string `json:"codec"`
		} `json:"tracks"`
	}
	if err := json.Unmarshal(out, &id); err != nil {
		t.Fatalf("mkvmerge -J output: %v", err)
	}
	if !id.Container.Recognized || !id.Container.Supported || len(id.Errors) > 0 || len(id.Tracks) != 2 {
		t.Fatalf("mkvmerge -J: %s", out)
	}
	md := time.Duration(id.Container.Properties.Duration)
	if diff := md - d; diff < -100*time.Millisecond || diff > 100*time.Millisecond {
		t.Fatalf("mkvmerge says %v, ffprobe %v", md, d)
	}
	kinds := map[string]bool{}
	for _, tr := range id.Tracks {
		kinds[tr.Type] = true
	}
	if !kinds["video"] || !kinds["audio"] {
		t.Fatalf("mkvmerge tracks %+v", id.Tracks)
	}
}

// checkCuesOnKeyframes checks that every cue point of the video track is
// a video keyframe: a player seeks to a cue point and starts decoding
// there, so a cue on any other frame shows garbage until the next one.
func checkCuesOnKeyframes(t *testing.T, ctx context.Context, file string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "mkvinfo", "-v", "-v", file).Output()
	if err != nil {
		t.Fatalf("mkvinfo -v -v: %v", err)
	}
	videoTrack := ""
	var number string
	type cue struct{ ms int64 }
	var cues []cue
	var cueMS int64 = -1
	timeRe := regexp.MustCompile(`Cue time: (\d+):(\d+):(\d+)\.(\d{9})`)
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.Contains(line, "+ Track number: "):
			f := strings.Fields(line[strings.Index(line, "Track number: ")+len("Track number: "):])
			number = f[0]
		case strings.Contains(line, "+ Track type: video") && videoTrack == "":
			videoTrack = number
		case strings.Contains(line, "Cue time: "):
			m := timeRe.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("mkvinfo cue line %q", line)
			}
			h, _ := strconv.ParseInt(m[1], 10, 64)
			mi, _ := strconv.ParseInt(m[2], 10, 64)
			sec, _ := strconv.ParseInt(m[3], 10, 64)
			ns, _ := strconv.ParseInt(m[4], 10, 64)
			cueMS = ((h*60+mi)*60+sec)*1000 + ns/1_000_000
		case strings.Contains(line, "Cue track: ") && cueMS >= 0:
			f := strings.Fields(line[strings.Index(line, "Cue track: ")+len("Cue track: "):])
			if len(f) > 0 && f[0] == videoTrack {
				cues = append(cues, cue{cueMS})
			}
			cueMS = -1
		}
	}
	if videoTrack == "" || len(cues) == 0 {
		t.Fatalf("mkvinfo -v -v shows no video track or no cue point for it (video track %q)", videoTrack)
	}
	pk, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe packets: %v", err)
	}
	keys := map[int64]bool{}
	for _, line := range strings.Split(string(pk), "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 2 || !strings.HasPrefix(f[1], "K") {
			continue
		}
		sec, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			keys[int64(sec*1000+0.5)] = true
		}
	}
	var bad []string
	for _, c := range cues {
		if !keys[c.ms] && !keys[c.ms-1] && !keys[c.ms+1] {
			bad = append(bad, fmt.Sprintf("%.3fs", float64(c.ms)/1000))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d video cue points are not on a keyframe (seeking there shows a broken picture): %s",
			len(bad), len(cues), strings.Join(bad, " "))
	}
}

func head(s string, lines int) string {
	parts := strings.SplitN(s, "\n", lines+1)
	if len(parts) > lines {
		parts = parts[:lines]
	}
	return strings.Join(parts, "\n")
}

// ---- GStreamer, through e2e/drivers/gst_whip_publish.py ----

// gstPython is Debian's python, where python3-gi lives (a python3 from
// pyenv or a venv earlier in PATH does not have it).
func gstPython() string {
	if p := os.Getenv("REEL_GST_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

type gstEvent struct {
	Event            string  `json:"event"`
	Reason           string  `json:"reason"`
	Error            string  `json:"error"`
	GStreamer        string  `json:"gstreamer"`
	Resource         string  `json:"resource"`
	OfferCandidates  int     `json:"offer_candidates"`
	PublishedSeconds float64 `json:"published_seconds"`
	DeleteStatus     int     `json:"delete_status"`
	To               string  `json:"to"` // "redirected": where the 307 sent the offer
	// Post is when the WHIP offer was POSTed and answered (Unix seconds).
	Post *struct {
		SentAt     float64 `json:"sent_at"`
		AnsweredAt float64 `json:"answered_at"`
	} `json:"post"`
}

// needGStreamer checks, by running the script's --check, that Python's
// GStreamer bindings and every element it needs work here.
func needGStreamer(t *testing.T) string {
	t.Helper()
	needTools(t, "mkvinfo", "mkvmerge")
	if _, err := os.Stat(gstPython()); err != nil {
		cannotRun(t, "GStreamer publisher: %s is missing", gstPython())
	}
	ctx := ctxTimeout(t, 30*time.Second)
	out, _ := exec.CommandContext(ctx, gstPython(), filepath.Join(interopDir, "gst_whip_publish.py"), "--check").Output()
	var ev gstEvent
	if err := json.Unmarshal(out, &ev); err != nil {
		cannotRun(t, "GStreamer publisher: the python3-gi check printed %q", strings.TrimSpace(string(out)))
	}
	if ev.Event != "ok" {
		cannotRun(t, "GStreamer publisher: %s", ev.Reason)
	}
	return ev.GStreamer
}

// gstPublisher is a running gst_whip_publish.py.
type gstPublisher struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan gstEvent
	done   chan struct{}
}

// startGStreamer runs the driver; extra are more of its flags (such as
// --source flashbeep).
func startGStreamer(t *testing.T, art, url string, extra ...string) *gstPublisher {
	t.Helper()
	p := &gstPublisher{events: make(chan gstEvent, 8), done: make(chan struct{})}
	logFile, err := os.Create(filepath.Join(art, "gstreamer.log"))
	if err != nil {
		t.Fatal(err)
	}
	// --seconds 0: publish until we write "stop"; --local-ip keeps ICE on
	// loopback, where reel listens.
	p.cmd = exec.Command(gstPython(), append([]string{filepath.Join(interopDir, "gst_whip_publish.py"),
		"--url", url, "--seconds", "0", "--local-ip", "127.0.0.1", "--verbose"}, extra...)...)
	p.cmd.Stderr = logFile
	p.cmd.Env = append(os.Environ(), "GST_DEBUG=webrtcbin:3,webrtcice:3,*:1")
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev gstEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				p.events <- ev
			}
		}
		_ = p.cmd.Wait()
		_ = logFile.Close()
		close(p.events)
	}()
	t.Cleanup(func() {
		_ = p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// next waits for the publisher's next event.
func (p *gstPublisher) next(t *testing.T, timeout time.Duration, want string) gstEvent {
	t.Helper()
	select {
	case ev, ok := <-p.events:
		if !ok {
			t.Fatalf("the GStreamer publisher exited before %q; see gstreamer.log", want)
		}
		if ev.Event != want {
			t.Fatalf("GStreamer publisher: %+v, want %q", ev, want)
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("the GStreamer publisher did not report %q within %v", want, timeout)
	}
	return gstEvent{}
}

func (p *gstPublisher) stop(t *testing.T) gstEvent {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "stop\n"); err != nil {
		t.Fatalf("stopping the GStreamer publisher: %v", err)
	}
	return p.next(t, 30*time.Second, "stopped")
}

// seconds turns a float of seconds into a Duration.
func seconds(s float64) time.Duration {
	d, _ := time.ParseDuration(strconv.FormatFloat(s, 'f', 3, 64) + "s")
	return d
}
