package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// Issue 3, acceptance: many readers at once on one publisher, all of them
// receiving, and the recording still valid.
const (
	mixedRTSPReaders = 20  // gortsplib clients; even ones over TCP, odd ones over UDP
	mixedHLSReaders  = 5   // ffmpeg processes
	mixedWHEPViewers = 5   // pion WHEP clients
	mixedMinPackets  = 100 // per reader and kind: 2 s of Opus, well under 1 s of video
)

// TestMixedReaders publishes H.264 + Opus with the pion WHIP client and
// reads it at the same time with 20 gortsplib RTSP clients (half TCP, half
// UDP: startGateway configures the RTSP UDP pair), one ffmpeg over RTSP/TCP,
// five ffmpeg over HLS and five pion WHEP viewers. Every reader must
// receive video and audio, the streams API must count them per protocol
// while they read, and after DELETE the readers must be let go, the
// gateway's goroutines must come back, and the recording must be whole.
// Not parallel: thirty readers are load enough for two cores.
func TestMixedReaders(t *testing.T) {
	mediacheck.Require(t)
	g := startGateway(t, nil)
	start := time.Now()
	const stream = "mixed"
	baseGoroutines := gatewayGoroutines(t, g)

	ctx := ctxTimeout(t, 90*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+stream, whipclient.PublishOptions{
		Video: "h264", Audio: true, Loop: true, H264SeparateParamSets: true, SettingEngine: &se,
	})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	select {
	case <-pub.Connected():
	case <-ctx.Done():
		t.Fatal("the publisher never connected")
	}
	connected := time.Now()
	waitLive(t, g, stream)
	step(t, start, "publishing H.264 + Opus to %s", stream)

	readers, viewers, ffmpegs := openMixedReaders(t, ctx, g, stream, &se)
	step(t, start, "%d RTSP readers, %d WHEP viewers and %d ffmpeg readers open", len(readers), len(viewers), len(ffmpegs))

	// Counted while the ffmpeg readers run: HLS viewers are the client
	// addresses of the last 10 s.
	checkViewerCounts(t, g, stream)
	step(t, start, "the streams API counts the viewers per protocol; the gateway runs %d goroutines", gatewayGoroutines(t, g))

	waitEveryReader(t, readers, viewers, nil, mixedMinPackets)
	before := snapshotReaders(readers, viewers)
	step(t, start, "every RTSP reader and WHEP viewer has %d video and %d audio packets", mixedMinPackets, mixedMinPackets)

	for _, f := range ffmpegs {
		select {
		case err := <-f.result:
			if err != nil {
				t.Fatalf("ffmpeg reader %s: %v", f.name, err)
			}
		case <-ctx.Done():
			t.Fatalf("ffmpeg reader %s did not finish: %v", f.name, ctx.Err())
		}
	}
	step(t, start, "all %d ffmpeg readers decoded 3 s without an error", len(ffmpegs))

	// Everyone is still being fed after the ffmpeg readers came and went.
	waitEveryReader(t, readers, viewers, before, mixedMinPackets/2)
	for _, r := range readers {
		select {
		case err := <-r.done:
			t.Fatalf("RTSP reader %s ended while the publisher was live: %v", r.name, err)
		default:
		}
	}

	// Publish 10 s in all, so that the recording spans ten keyframes.
	waitSent(t, pub, 300)
	published := time.Since(connected)
	if err := pub.Close(); err != nil { // DELETE
		t.Fatalf("DELETE: %v", err)
	}
	step(t, start, "publisher deleted after %v", published.Round(10*time.Millisecond))

	checkReadersReleased(t, g, stream, readers, viewers)
	step(t, start, "every RTSP reader saw EOF, every WHEP viewer closed, the stream is gone")

	checkMixedRecording(t, g, stream, published)
	step(t, start, "recording checked")

	waitGoroutines(t, g, baseGoroutines)
	step(t, start, "the gateway's goroutines are back near the %d before the publish", baseGoroutines)
}

// mixedRTSP is one gortsplib client playing every media of the stream.
type mixedRTSP struct {
	name         string // transport and index, for messages: "udp7"
	c            *gortsplib.Client
	video, audio atomic.Uint64
	done         chan error // Wait's result: why the session ended
}

// dialMixedRTSP connects, sets up every media and plays; the reader counts
// RTP packets per kind until the server ends its session.
func dialMixedRTSP(rawURL, name string, transport gortsplib.Transport) (*mixedRTSP, error) {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	r := &mixedRTSP{name: name, done: make(chan error, 1), c: &gortsplib.Client{
		Scheme: u.Scheme, Host: u.Host, Transport: &transport, UDPReadBufferSize: 1 << 20, UserAgent: "reel-e2e",
	}}
	if err := r.c.Start2(); err != nil {
		return nil, fmt.Errorf("RTSP %s: connecting: %w", name, err)
	}
	desc, _, err := r.c.Describe(u)
	if err == nil {
		err = r.c.SetupAll(desc.BaseURL, desc.Medias)
	}
	if err != nil {
		r.c.Close()
		return nil, fmt.Errorf("RTSP %s: DESCRIBE/SETUP: %w", name, err)
	}
	r.c.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		if m.Type == description.MediaTypeVideo {
			r.video.Add(1)
		} else if m.Type == description.MediaTypeAudio {
			r.audio.Add(1)
		}
	})
	if _, err := r.c.Play(nil); err != nil {
		r.c.Close()
		return nil, fmt.Errorf("RTSP %s: PLAY: %w", name, err)
	}
	go func() { r.done <- r.c.Wait() }()
	return r, nil
}

// ffmpegReader is one ffmpeg process decoding 3 s of the live stream.
type ffmpegReader struct {
	name   string
	result chan error
}

// runFFmpegReader starts ffmpeg -v error ... -i url -t 3 -f null -; its
// result is an error for a non-zero exit or any output at level error.
func runFFmpegReader(ctx context.Context, name, url string, inputArgs ...string) *ffmpegReader {
	f := &ffmpegReader{name: name, result: make(chan error, 1)}
	go func() { f.result <- mediacheck.Decode(ctx, url, append(inputArgs, "-t", "3")...) }()
	return f
}

// openMixedReaders opens every reader at once: the RTSP clients, the WHEP
// viewers and the ffmpeg RTSP reader dial in parallel while the HLS
// playlist gets its first segment; then the ffmpeg HLS readers start.
func openMixedReaders(t *testing.T, ctx context.Context, g *gateway, stream string,
	se *webrtc.SettingEngine) ([]*mixedRTSP, []*whipclient.Viewer, []*ffmpegReader) {
	t.Helper()
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, stream)
	hlsURL := g.HTTP + "/hls/" + stream + "/index.m3u8"
	readers := make([]*mixedRTSP, mixedRTSPReaders)
	viewers := make([]*whipclient.Viewer, mixedWHEPViewers)
	errs := make([]error, mixedRTSPReaders+mixedWHEPViewers)
	var wg sync.WaitGroup
	t.Cleanup(func() { // also when waitHLSSegment gives up while they dial
		wg.Wait()
		for _, r := range readers {
			if r != nil {
				r.c.Close()
			}
		}
		for _, v := range viewers {
			if v != nil {
				_ = v.Close()
			}
		}
	})
	for i := range readers {
		transport, name := gortsplib.TransportTCP, fmt.Sprintf("tcp%d", i)
		if i%2 == 1 {
			transport, name = gortsplib.TransportUDP, fmt.Sprintf("udp%d", i)
		}
		wg.Go(func() { readers[i], errs[i] = dialMixedRTSP(rtspURL, name, transport) })
	}
	for i := range viewers {
		wg.Go(func() {
			viewers[i], errs[mixedRTSPReaders+i] = whipclient.View(ctx, g.HTTP+"/whep/"+stream, whipclient.ViewOptions{SettingEngine: se})
		})
	}
	ffmpegs := []*ffmpegReader{runFFmpegReader(ctx, "rtsp-tcp", rtspURL, "-rtsp_transport", "tcp")}
	waitHLSSegment(t, hlsURL)
	for i := range mixedHLSReaders {
		ffmpegs = append(ffmpegs, runFFmpegReader(ctx, fmt.Sprintf("hls%d", i), hlsURL))
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("opening readers: %v", err)
	}
	return readers, viewers, ffmpegs
}

type packetCounts struct{ video, audio uint64 }

func (r *mixedRTSP) counts() packetCounts { return packetCounts{r.video.Load(), r.audio.Load()} }

func viewerCounts(v *whipclient.Viewer) packetCounts {
	st := v.Stats()
	return packetCounts{st.Video.Packets, st.Audio.Packets}
}

// snapshotReaders is what every reader has received so far: the RTSP
// readers first, then the WHEP viewers.
func snapshotReaders(readers []*mixedRTSP, viewers []*whipclient.Viewer) []packetCounts {
	var out []packetCounts
	for _, r := range readers {
		out = append(out, r.counts())
	}
	for _, v := range viewers {
		out = append(out, viewerCounts(v))
	}
	return out
}

// waitEveryReader waits (bounded) until every RTSP reader and WHEP viewer
// has n more video and n more audio packets than in since (nil: zero), and
// names the ones that do not.
func waitEveryReader(t *testing.T, readers []*mixedRTSP, viewers []*whipclient.Viewer, since []packetCounts, n uint64) {
	t.Helper()
	var short []string
	ok := pollUntil(30*time.Second, func() bool {
		short = short[:0]
		now := snapshotReaders(readers, viewers)
		for i, c := range now {
			var base packetCounts
			if since != nil {
				base = since[i]
			}
			if c.video-base.video < n || c.audio-base.audio < n {
				name := "whep" + strconv.Itoa(i-len(readers))
				if i < len(readers) {
					name = readers[i].name
				}
				short = append(short, fmt.Sprintf("%s %d video/%d audio", name, c.video-base.video, c.audio-base.audio))
			}
		}
		return len(short) == 0
	})
	if !ok {
		t.Fatalf("within 30 s, %d readers did not get %d more video and audio packets: %s",
			len(short), n, strings.Join(short, ", "))
	}
	for _, v := range viewers {
		if st := v.Stats(); !strings.EqualFold(st.Video.Codec, "video/h264") || st.Video.Keyframes == 0 ||
			!strings.EqualFold(st.Audio.Codec, "audio/opus") {
			t.Fatalf("WHEP viewer stats %+v; want H.264 with a keyframe and Opus", st)
		}
	}
}

// checkViewerCounts polls GET /api/v1/streams/{stream} until it shows the
// readers per protocol. RTSP counts playing sessions: the 20 clients, plus
// ffmpeg's while it reads. HLS counts distinct client addresses of the
// last 10 s; every HLS reader here (and waitHLSSegment) is 127.0.0.1, so
// the count is 1..5 and cannot tell the five apart.
func checkViewerCounts(t *testing.T, g *gateway, stream string) {
	t.Helper()
	var last map[string]int
	ok := pollUntil(15*time.Second, func() bool {
		var info struct {
			Viewers map[string]int `json:"viewers"`
		}
		getJSON(t, g.HTTP+"/api/v1/streams/"+stream, &info)
		last = info.Viewers
		v := info.Viewers
		return v["whep"] == mixedWHEPViewers && v["rtsp"] >= mixedRTSPReaders && v["rtsp"] <= mixedRTSPReaders+1 &&
			v["hls"] >= 1 && v["hls"] <= mixedHLSReaders && v["record"] == 1
	})
	if !ok {
		t.Fatalf("streams API viewers %v; want whep=%d, rtsp=%d or %d, hls 1..%d, record=1",
			last, mixedWHEPViewers, mixedRTSPReaders, mixedRTSPReaders+1, mixedHLSReaders)
	}
	t.Logf("streams API viewers while reading: %v", last)
}

// checkReadersReleased: once the publisher is gone, every RTSP session is
// closed by the server (the client sees EOF on its connection), every
// WHEP viewer is closed, and the stream leaves the API and the metrics.
func checkReadersReleased(t *testing.T, g *gateway, stream string, readers []*mixedRTSP, viewers []*whipclient.Viewer) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for _, r := range readers {
		select {
		case err := <-r.done:
			if !errors.Is(err, io.EOF) {
				t.Errorf("RTSP reader %s ended with %v, want EOF", r.name, err)
			}
		case <-deadline:
			t.Fatalf("RTSP reader %s was not disconnected within 20 s of the DELETE", r.name)
		}
	}
	for i, v := range viewers {
		select {
		case <-v.Closed():
		case <-deadline:
			t.Fatalf("WHEP viewer %d was not closed within 20 s of the DELETE", i)
		}
	}
	testwait.Until(t, 10*time.Second, "the stream to leave the API", func() bool { return !streamLive(t, g, stream) })
	m := gatewayMetrics(t, g)
	// What the WebRTC socket sent: every datagram taken by the kernel,
	// in as many messages or fewer (batched, segmented), none refused.
	sent, msgs, failed := m["reel_output_socket_packets_total"], m["reel_output_socket_messages_total"], m["reel_output_socket_failed_total"]
	t.Logf("the WebRTC socket sent %.0f datagrams in %.0f messages, %.0f refused", sent, msgs, failed)
	if sent == 0 || msgs == 0 || msgs > sent || failed != 0 {
		t.Errorf("the WebRTC socket sent %.0f datagrams in %.0f messages, %.0f refused; want some, in as many messages or fewer, none refused", sent, msgs, failed)
	}
	for _, p := range []string{"whep", "rtsp", "hls"} {
		if v := m[`reel_viewers{protocol="`+p+`"}`]; v != 0 {
			t.Errorf("reel_viewers{protocol=%q} = %v after the publisher left", p, v)
		}
	}
}

// checkMixedRecording judges the one recording of stream: H.264 + Opus,
// its duration within 10% of the publish time, decoded fully by ffmpeg
// without an error.
func checkMixedRecording(t *testing.T, g *gateway, stream string, published time.Duration) {
	t.Helper()
	var files []string
	testwait.Until(t, 20*time.Second, "the finalized recording", func() bool {
		files, _ = filepath.Glob(filepath.Join(g.Recordings, stream, "*.mkv"))
		return len(files) >= 1
	})
	if len(files) != 1 {
		t.Fatalf("recordings of %s: %v, want one", stream, files)
	}
	ctx := ctxTimeout(t, 60*time.Second)
	p, err := mediacheck.ProbeFile(ctx, files[0])
	if err != nil {
		t.Fatal(err)
	}
	v, a := p.Stream("video"), p.Stream("audio")
	if v == nil || a == nil || v.CodecName != "h264" || a.CodecName != "opus" || v.Width != 640 || v.Height != 360 {
		t.Fatalf("recording streams %+v; want 640x360 h264 and opus", p.Streams)
	}
	d := p.Duration()
	if diff := d - published; diff < -published/10 || diff > published/10 {
		t.Fatalf("recording lasts %v, published for %v: more than 10%% apart", d, published)
	}
	if err := mediacheck.Decode(ctx, files[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("recording %s: %v for %v published", filepath.Base(files[0]), d.Round(10*time.Millisecond), published.Round(10*time.Millisecond))
}

// waitGoroutines waits (bounded) until the gateway runs no more goroutines
// than before the publish, give or take a few for idle HTTP connections
// and timers.
func waitGoroutines(t *testing.T, g *gateway, base int) {
	t.Helper()
	const slack = 10
	http.DefaultClient.CloseIdleConnections()
	var n int
	if !pollUntil(20*time.Second, func() bool { n = gatewayGoroutines(t, g); return n <= base+slack }) {
		t.Fatalf("the gateway runs %d goroutines 20 s after everyone left; %d before the publish", n, base)
	}
	t.Logf("gateway goroutines: %d before the publish, %d after", base, n)
}

func gatewayGoroutines(t *testing.T, g *gateway) int {
	t.Helper()
	v, ok := gatewayMetrics(t, g)["go_goroutines"]
	if !ok {
		t.Fatal("/metrics has no go_goroutines")
	}
	return int(v)
}

// gatewayMetrics reads /metrics into name{labels} -> value.
func gatewayMetrics(t *testing.T, g *gateway) map[string]float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.HTTP+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle connection left behind to count as a goroutine
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// pollUntil polls cond every 50 ms until it holds (true) or timeout
// passes (false).
func pollUntil(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}
