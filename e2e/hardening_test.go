package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/api"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// Faults: publishers that vanish or come back, viewers that stall, a
// SIGTERM under load. Whatever happens, every recording ends up finished
// and playable, and nothing is left behind.

// partFiles lists recordings still being written.
func (g *gateway) partFiles() []string {
	var out []string
	_ = filepath.WalkDir(g.Recordings, func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".part") {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// waitRecording waits until a .part file exists and has grown past size.
func (g *gateway) waitRecording(t *testing.T, n int, size int64) {
	t.Helper()
	testwait.Until(t, 30*time.Second, fmt.Sprintf("%d recordings of %d bytes", n, size), func() bool {
		parts := g.partFiles()
		grown := 0
		for _, p := range parts {
			if st, err := os.Stat(p); err == nil && st.Size() > size {
				grown++
			}
		}
		return grown >= n
	})
}

// checkLong is checkPlayable for recordings that were sent at least 3 s
// of media (waitSent 90): under 1 s means media was lost.
func checkLong(t *testing.T, files []string) {
	t.Helper()
	checkPlayable(t, files)
	for _, f := range files {
		p, err := mediacheck.ProbeFile(context.Background(), f)
		if err == nil && p.Duration() < time.Second {
			t.Errorf("%s: only %v recorded", filepath.Base(f), p.Duration())
		}
	}
}

// waitSent waits until pub has sent frames video frames (90 is 3 s).
func waitSent(t *testing.T, pub *whipclient.Publisher, frames uint64) {
	t.Helper()
	testwait.Until(t, 60*time.Second, fmt.Sprintf("%d video frames sent", frames), func() bool { return pub.Stats().Video.Frames >= frames })
}

// checkPlayable probes every finished recording: it decodes cleanly and
// has video and a duration.
func checkPlayable(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		p, err := mediacheck.ProbeFile(ctx, f)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		} else if p.Duration() <= 0 || p.Stream("video") == nil {
			t.Errorf("%s: duration %v, streams %+v", filepath.Base(f), p.Duration(), p.Streams)
		}
		if p != nil {
			t.Logf("%s: %v", filepath.Base(f), p.Duration())
		}
		if err := mediacheck.Decode(ctx, f); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		cancel()
	}
}

func streamLive(t *testing.T, g *gateway, name string) bool {
	resp, err := http.Get(g.HTTP + "/api/v1/streams/" + name)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// TestPublisherVanishes: the publisher closes its peer connection without
// DELETE (pion sends nothing the gateway acts on), as a crashed OBS or a
// pulled cable would. ICE consent freshness ends the session and the
// recording is finalized. The idle timeout is off so that ICE alone is
// tested.
func TestPublisherVanishes(t *testing.T) {
	mediacheck.Require(t)
	t.Parallel()
	g := startGateway(t, nil, "--limits-idle-timeout", "0")
	ctx := ctxTimeout(t, 90*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/vanish", whipclient.PublishOptions{Video: "h264", Audio: true, Loop: true, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	<-pub.Connected()
	g.waitRecording(t, 1, 100<<10)
	waitSent(t, pub, 90)
	_ = pub.PC.Close() // no DELETE
	testwait.Until(t, 45*time.Second, "the vanished publisher's stream to end", func() bool { return !streamLive(t, g, "vanish") })
	testwait.Until(t, 15*time.Second, "the recording to be finalized", func() bool { return len(g.partFiles()) == 0 && len(g.recordings(t)) == 1 })
	checkLong(t, g.recordings(t))
}

// TestReconnectReplaces: with publish.on_conflict=replace, a publisher
// that reconnects under the same name while its old session lingers takes
// over; the old recording is finished, not orphaned.
func TestReconnectReplaces(t *testing.T) {
	mediacheck.Require(t)
	t.Parallel()
	g := startGateway(t, nil, "--publish-on-conflict", "replace")
	ctx := ctxTimeout(t, 90*time.Second)
	se := whipclient.LoopbackSettingEngine()
	opts := whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se}
	first, err := whipclient.Publish(ctx, g.HTTP+"/whip/again", opts)
	if err != nil {
		t.Fatal(err)
	}
	<-first.Connected()
	g.waitRecording(t, 1, 50<<10)
	waitSent(t, first, 90)
	second, err := whipclient.Publish(ctx, g.HTTP+"/whip/again", opts)
	if err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	<-second.Connected()
	testwait.Until(t, 30*time.Second, "the first recording to be finished", func() bool { return len(g.recordings(t)) == 1 })
	g.waitRecording(t, 1, 50<<10)
	waitSent(t, second, 90)
	if err := second.Close(); err != nil {
		t.Errorf("DELETE: %v", err)
	}
	_ = first.PC.Close() // its session is gone already
	testwait.Until(t, 30*time.Second, "both recordings finished", func() bool { return len(g.partFiles()) == 0 && len(g.recordings(t)) == 2 })
	checkLong(t, g.recordings(t))
}

// TestSIGTERMUnderLoad: several publishers with viewers; SIGTERM finalizes
// every recording before the process exits (stop waits at most 20 s).
func TestSIGTERMUnderLoad(t *testing.T) {
	mediacheck.Require(t)
	t.Parallel()
	g := startGateway(t, nil)
	ctx := ctxTimeout(t, 90*time.Second)
	se := whipclient.LoopbackSettingEngine()
	const n = 4
	var pubs []*whipclient.Publisher
	for i := range n {
		video := []string{"vp8", "h264"}[i%2]
		name := fmt.Sprintf("load%d", i)
		pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+name, whipclient.PublishOptions{Video: video, Audio: true, Loop: true, SettingEngine: &se})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pub.PC.Close() })
		<-pub.Connected()
		pubs = append(pubs, pub)
		v, err := whipclient.View(ctx, g.HTTP+"/whep/"+name, whipclient.ViewOptions{SettingEngine: &se})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.PC.Close() })
	}
	g.waitRecording(t, n, 100<<10)
	for _, pub := range pubs {
		waitSent(t, pub, 90)
	}
	g.stop(syscall.SIGTERM)
	if parts := g.partFiles(); len(parts) != 0 {
		t.Errorf("left unfinished after SIGTERM: %v", parts)
	}
	files := g.recordings(t)
	if len(files) != n {
		t.Fatalf("%d recordings, want %d: %v", len(files), n, files)
	}
	checkLong(t, files)
}

// stuckViewer is a consumer that stops reading: its WritePacket blocks
// until released, as a viewer whose socket never drains would if writes
// blocked.
type stuckViewer struct{ release chan struct{} }

func (s *stuckViewer) WritePacket(*live.Packet) { <-s.release }

// TestStuckViewerNeverStallsPublisher: a consumer that never returns
// costs its own packets only. The publisher sends at its pace to the end,
// the stuck consumer's drop counter grows, and the recording is complete.
func TestStuckViewerNeverStallsPublisher(t *testing.T) {
	mediacheck.Require(t)
	t.Parallel()
	rec, err := recorder.New(recorder.Config{Dir: t.TempDir(), Enabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	hub := live.NewHub(live.Reject)
	hub.OnPublish(rec.Record)
	stuck := &stuckViewer{release: make(chan struct{})}
	defer close(stuck.release)
	var sub *live.Subscription
	hub.OnPublish(func(s *live.Stream) {
		sub, err = s.Subscribe(string(live.OutputWHEP), stuck, 16)
	})
	pub, err := hubtest.Publish(context.Background(), hub, "stuck", hubtest.Source{Video: live.H264, Audio: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-pub.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the publisher stalled behind a stuck viewer")
	}
	if sub == nil || sub.Dropped() == 0 {
		t.Fatalf("the stuck viewer dropped nothing (sub %v)", sub)
	}
	var files []string
	testwait.Until(t, 30*time.Second, "the recording", func() bool {
		files, _ = filepath.Glob(filepath.Join(rec.Dir(), "stuck", "*.mkv"))
		return len(files) == 1
	})
	checkPlayable(t, files)
	p, err := mediacheck.ProbeFile(context.Background(), files[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stuck viewer dropped %d packets; recording %v", sub.Dropped(), p.Duration())
	if p.Duration() < 2*time.Second {
		t.Errorf("recording only %v long", p.Duration())
	}
}

// waitForT is waitFor for tests without a gateway.
// inProcess is the gateway's stack without the binary: hub, WHIP, WHEP,
// recorder and API on an httptest server, media on loopback.
type inProcess struct {
	url  string
	hub  *live.Hub
	stop func()
}

func startInProcess(t *testing.T) *inProcess {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Reject)
	rec, err := recorder.New(recorder.Config{Dir: t.TempDir(), Enabled: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hub.OnPublish(rec.Record)
	whipSrv := ingest.New(hub, engine, ingest.Config{Logger: log})
	whepSrv := whep.New(hub, engine, whep.Config{Logger: log})
	gate, err := access.New(access.Config{}, access.Limits{}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Logger: log}, api.Deps{Gate: gate, Hub: hub, WHIP: whipSrv, WHEP: whepSrv})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	return &inProcess{url: hs.URL, hub: hub, stop: func() {
		hs.Close()
		whepSrv.Close()
		whipSrv.Close()
		rec.Close()
		engine.Close()
	}}
}

// cycle publishes, watches until a frame arrives, and tears both down.
func (p *inProcess) cycle(ctx context.Context, name string, client *http.Client) error {
	se := whipclient.LoopbackSettingEngine()
	return whipclient.Cycle(ctx, p.url, name, whipclient.PublishOptions{Video: "vp8", Loop: true, SettingEngine: &se, HTTPClient: client})
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestChurnReturnsToBaseline runs 200 publish/view/teardown cycles against
// an in-process stack and checks that goroutines and open files come back
// to where they were (bounded polling, small slack).
func TestChurnReturnsToBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("200 WebRTC sessions; skipped with -short")
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc")
	}
	p := startInProcess(t)
	defer p.stop()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ctx := ctxTimeout(t, 10*time.Minute)
	// One warm-up cycle starts what lives for the process (pools, timers).
	if err := p.cycle(ctx, "warmup", client); err != nil {
		t.Fatal(err)
	}
	settle := func() (int, int) {
		// Let sessions' teardown goroutines run before counting.
		var g, f int
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			g, f = runtime.NumGoroutine(), openFDs()
			if len(p.hub.Streams()) == 0 || time.Now().After(deadline) {
				return g, f
			}
		}
	}
	baseG, baseF := settle()
	const cycles, workers = 200, 4
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= cycles && ctx.Err() == nil; i = next.Add(1) {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := p.cycle(cctx, fmt.Sprintf("churn%d", i), client); err != nil {
					failed.Add(1)
					t.Logf("cycle %d: %v", i, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > cycles/100 {
		t.Errorf("%d of %d cycles failed", n, cycles)
	}
	const slackG, slackF = 10, 4
	var g, f int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		g, f = runtime.NumGoroutine(), openFDs()
		if g <= baseG+slackG && f <= baseF+slackF {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after %d cycles: %d goroutines (baseline %d), %d fds (baseline %d)\n%s",
				cycles, g, baseG, f, baseF, buf[:runtime.Stack(buf, true)])
		}
	}
	if live := p.hub.Streams(); len(live) != 0 {
		t.Errorf("%d streams still live", len(live))
	}
	t.Logf("%d cycles, %d failed; goroutines %d -> %d, fds %d -> %d", cycles, failed.Load(), baseG, g, baseF, f)
}

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reel test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSAndJWT: with a certificate configured the gateway speaks HTTPS
// only, and a publisher holding a JWT for its stream gets in while one
// without a token, or with one for another stream, does not. RTSP readers
// follow the same rules with read tokens.
func TestTLSAndJWT(t *testing.T) {
	t.Parallel()
	cert, key := selfSigned(t, t.TempDir())
	const secret = "e2e-jwt-secret-e2e-jwt-secret"
	g := startGateway(t, []string{"REEL_AUTH_JWT_HS256_SECRET=" + secret}, "--http-tls-cert", cert, "--http-tls-key", key)
	base := strings.Replace(g.HTTP, "http://", "https://", 1)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 20 * time.Second}
	if resp, err := http.Get(g.HTTP + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP is served alongside HTTPS")
		}
	}
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	tok := func(stream string) string { return signJWT(t, secret, stream, "publish") }
	ctx := ctxTimeout(t, 60*time.Second)
	se := whipclient.LoopbackSettingEngine()
	for token, want := range map[string]int{"": http.StatusUnauthorized, tok("other"): http.StatusUnauthorized} {
		_, err := whipclient.Publish(ctx, base+"/whip/secure", whipclient.PublishOptions{Video: "vp8", Token: token, HTTPClient: client, SettingEngine: &se})
		var he *whipclient.HTTPError
		if !errors.As(err, &he) || he.StatusCode != want {
			t.Errorf("token %.12q: %v, want HTTP %d", token, err, want)
		}
	}
	pub, err := whipclient.Publish(ctx, base+"/whip/secure", whipclient.PublishOptions{Video: "vp8", Token: tok("secure"), HTTPClient: client, SettingEngine: &se})
	if err != nil {
		t.Fatalf("publish with a JWT over HTTPS: %v", err)
	}
	select {
	case <-pub.Connected():
	case <-ctx.Done():
		t.Fatal("never connected")
	}
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/secure?token=", g.RTSPPort)
	for name, token := range map[string]string{"none": "", "another stream's": signJWT(t, secret, "other", "read"),
		"expired": signJWTExpiring(t, secret, "secure", "read", -time.Minute)} {
		if _, err := mediacheck.ProbeFile(ctx, rtspURL+token, "-rtsp_transport", "tcp"); err == nil {
			t.Errorf("RTSP with %s token: ffprobe read the stream", name)
		}
	}
	p, err := mediacheck.ProbeFile(ctx, rtspURL+signJWT(t, secret, "secure", "read"), "-rtsp_transport", "tcp")
	if err != nil {
		t.Fatalf("RTSP with a read JWT for the stream: %v", err)
	}
	if len(p.Streams) == 0 {
		t.Error("RTSP with a read JWT: no streams")
	}
	if err := pub.Close(); err != nil {
		t.Errorf("DELETE with the JWT: %v", err)
	}
}

func signJWT(t *testing.T, secret, stream, action string) string {
	return signJWTExpiring(t, secret, stream, action, time.Minute)
}

// signJWTExpiring makes an HS256 token for stream and action that expires
// after ttl (before now when ttl is negative).
func signJWTExpiring(t *testing.T, secret, stream, action string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"stream": stream, "action": action,
		"exp": time.Now().Add(ttl).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestViewerLimitCoversRTSP: WHEP viewers and RTSP readers share the
// binary's viewers-per-stream limit; a reader over it is refused.
func TestViewerLimitCoversRTSP(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil, "--limits-viewers-per-stream", "1")
	ctx := ctxTimeout(t, 60*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/capped", whipclient.PublishOptions{Video: "h264", SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	rtspURL := fmt.Sprintf("rtsp://127.0.0.1:%d/capped", g.RTSPPort)
	testwait.Until(t, 30*time.Second, "RTSP serves the live stream", func() bool {
		_, err := mediacheck.ProbeFile(ctx, rtspURL, "-rtsp_transport", "tcp")
		return err == nil
	})
	viewer, err := whipclient.View(ctx, g.HTTP+"/whep/capped", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatalf("the one WHEP viewer: %v", err)
	}
	if _, err := mediacheck.ProbeFile(ctx, rtspURL, "-rtsp_transport", "tcp"); err == nil {
		t.Error("an RTSP reader got in beside the one viewer the stream allows")
	}
	m, err := http.Get(g.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(body), `reel_limit_rejections_total{limit="viewers_per_stream"} 1`) {
		t.Errorf("/metrics does not count the refused reader:\n%s", grepLines(string(body), "reel_limit"))
	}
	viewer.Close()
	testwait.Until(t, 30*time.Second, "RTSP admits a reader once the viewer left", func() bool {
		_, err := mediacheck.ProbeFile(ctx, rtspURL, "-rtsp_transport", "tcp")
		return err == nil
	})
}

// TestLimitsOverHTTP: the binary's limits options reach the API: a client
// over its request rate gets 429 with Retry-After as problem+json, and the
// refusal is counted in /metrics.
func TestLimitsOverHTTP(t *testing.T) {
	t.Parallel()
	g := startGateway(t, nil, "--limits-request-rate", "0.01", "--limits-request-burst", "2", "--limits-max-body-bytes", "100")
	post := func(body string) *http.Response {
		resp, err := http.Post(g.HTTP+"/whip/limited", "application/sdp", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(strings.Repeat("x", 200)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d, want 413", resp.StatusCode)
	}
	if resp := post("v=0"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad offer: %d, want 400", resp.StatusCode)
	}
	resp := post("v=0")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("third POST: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	m, err := http.Get(g.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Body.Close()
	body, _ := io.ReadAll(m.Body)
	if !strings.Contains(string(body), `reel_limit_rejections_total{limit="request_rate"} 1`) {
		t.Errorf("/metrics does not count the refusal:\n%s", grepLines(string(body), "reel_limit"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
