package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// The attacks of issue 12, each against the real binary: the hardening
// table (hardening_table_test.go) runs them one gateway each and checks
// that goroutines, open files and the WHIP/WHEP session tables come back
// to where they were. This file holds what the attacks share.

// attackEnv is a gateway under attack, and a webhook receiver it sends
// its events to.
type attackEnv struct {
	t      *testing.T
	g      *gateway
	at     attack
	client *http.Client // no keep-alive: no connection outlives a request
	base   snapshot
	hooks  *hookLog
	pubs   []*whipclient.Publisher
}

// hookSecret signs the attacks' webhooks.
const hookSecret = "e2e-hook-secret"

// hookLog keeps every webhook request a gateway sent.
type hookLog struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []hookDelivery
}

type hookDelivery struct {
	header http.Header
	body   []byte
	ev     struct {
		Type   string         `json:"type"`
		Stream string         `json:"stream"`
		Data   map[string]any `json:"data"`
	}
}

func newHookLog(t *testing.T) *hookLog {
	h := &hookLog{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := hookDelivery{header: r.Header.Clone()}
		d.body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		_ = json.Unmarshal(d.body, &d.ev)
		h.mu.Lock()
		h.got = append(h.got, d)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the first delivery of typ for stream, waiting (bounded).
func (h *hookLog) wait(t *testing.T, typ events.Type, stream string) hookDelivery {
	t.Helper()
	var found *hookDelivery
	testwait.Until(t, 20*time.Second, "a "+string(typ)+" webhook for "+stream, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i := range h.got {
			if h.got[i].ev.Type == string(typ) && h.got[i].ev.Stream == stream {
				found = &h.got[i]
				return true
			}
		}
		return false
	})
	return *found
}

// env is the attack's environment plus the webhook settings.
func (a *attackEnv) env() []string {
	return append([]string{"REEL_EVENTS_WEBHOOKS=" + a.hooks.srv.URL, "REEL_EVENTS_SECRET=" + hookSecret}, a.at.env...)
}

// snapshot is what must come back after an attack, read from /metrics.
type snapshot struct {
	goroutines, fds, whip, whep float64
}

func (s snapshot) String() string {
	return fmt.Sprintf("%.0f goroutines, %.0f fds, %.0f WHIP and %.0f WHEP sessions", s.goroutines, s.fds, s.whip, s.whep)
}

// reply is an HTTP answer, read in full.
type reply struct {
	status int
	header http.Header
	body   string
}

// do sends method to path (relative to the gateway, or a full URL) with
// header pairs and returns the answer; a transport error fails the test.
func (a *attackEnv) do(method, path, ctype, body string, headers ...string) reply {
	a.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = a.g.HTTP + path
	}
	req, err := http.NewRequest(method, path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// bearer is the header pair of a bearer token.
func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// metrics scrapes /metrics with the attack's scrape token.
func (a *attackEnv) metrics() string {
	a.t.Helper()
	var h []string
	if a.at.scrape != "" {
		h = bearer(a.at.scrape)
	}
	r := a.do("GET", "/metrics", "", "", h...)
	if r.status != http.StatusOK {
		a.t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	return r.body
}

// seriesValue reads one series ("name" or `name{label="v"}`) of a scrape.
func seriesValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}

// rejections is reel_limit_rejections_total for limit.
func (a *attackEnv) rejections(limit string) float64 {
	return seriesValue(a.metrics(), `reel_limit_rejections_total{limit="`+limit+`"}`)
}

func (a *attackEnv) snapshot() snapshot {
	m := a.metrics()
	return snapshot{goroutines: seriesValue(m, "go_goroutines"), fds: seriesValue(m, "process_open_fds"),
		whip: seriesValue(m, `reel_webrtc_sessions{protocol="whip"}`), whep: seriesValue(m, `reel_webrtc_sessions{protocol="whep"}`)}
}

// Slack for what a gateway may hold a little longer than its sessions
// (pion's timers, HTTP connections in their last moments).
const slackGoroutines, slackFDs = 10, 4

// settle waits until no WHIP or WHEP session is left and the counts have
// stopped falling, and returns them.
func (a *attackEnv) settle() snapshot {
	a.t.Helper()
	var s snapshot
	testwait.Until(a.t, 30*time.Second, "the sessions to end", func() bool { s = a.snapshot(); return s.whip == 0 && s.whep == 0 })
	time.Sleep(time.Second)
	return a.snapshot()
}

// backToBaseline ends the attack's publishers (those still up) and waits
// (bounded) for goroutines, open files and sessions to return to the
// baseline taken before the attack.
func (a *attackEnv) backToBaseline() {
	a.t.Helper()
	for _, p := range a.pubs {
		_ = p.Close()
	}
	var s snapshot
	deadline := time.Now().Add(45 * time.Second)
	for {
		s = a.snapshot()
		if s.whip == 0 && s.whep == 0 && s.goroutines <= a.base.goroutines+slackGoroutines && s.fds <= a.base.fds+slackFDs {
			a.t.Logf("after the attack: %v (baseline %v)", s, a.base)
			return
		}
		if time.Now().After(deadline) {
			a.t.Errorf("not back to baseline 45 s after the attack: %v, baseline %v", s, a.base)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// warmUp publishes, watches and ends once, so that what lives for the
// whole process exists before the baseline is taken.
func (a *attackEnv) warmUp() {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	se := whipclient.LoopbackSettingEngine()
	if err := whipclient.Cycle(ctx, a.g.HTTP, "warmup", whipclient.PublishOptions{Video: "vp8", Loop: true, Token: a.at.admin,
		SettingEngine: &se, HTTPClient: a.client}); err != nil {
		a.t.Fatalf("warm-up cycle: %v", err)
	}
	a.base = a.settle()
}

// restart stops the gateway (SIGTERM) and starts it again on the same
// recordings directory, with the same options; the baseline is taken
// again.
func (a *attackEnv) restart() {
	a.t.Helper()
	a.g.stop(syscall.SIGTERM)
	dir := a.g.Recordings
	a.g = startGateway(a.t, a.env(), append(append(attackFlags(), a.at.flags...), "--recordings-dir", dir)...)
	a.g.Recordings = dir
	a.warmUp()
}

// attackFlags apply to every attack: unconnected sessions and idle HLS
// muxers end within seconds, so the baseline comes back quickly.
func attackFlags() []string {
	return []string{"--limits-connect-timeout", "3s", "--hls-idle-timeout", "2s"}
}

// publish starts a looping publisher on stream with token, connected.
func (a *attackEnv) publish(stream, token, video string) *whipclient.Publisher {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	a.t.Cleanup(cancel)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, a.g.HTTP+"/whip/"+stream, whipclient.PublishOptions{Video: video, Audio: true, Loop: true,
		Token: token, SettingEngine: &se, HTTPClient: a.client})
	if err != nil {
		a.t.Fatalf("publish %s: %v", stream, err)
	}
	a.t.Cleanup(func() { _ = pub.Close() })
	a.pubs = append(a.pubs, pub)
	select {
	case <-pub.Connected():
	case <-ctx.Done():
		a.t.Fatalf("publisher of %s never connected", stream)
	}
	return pub
}

// sdpOffer is a real pion offer (VP8 + Opus, sendonly) that carries no
// candidate: its peer connection is closed at once, so it never connects.
func sdpOffer(t *testing.T) string {
	t.Helper()
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(&me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

// withCandidates puts candidate lines for 127.0.0.1 ports into the first
// media section of offer.
func withCandidates(offer string, ports []int) string {
	var b strings.Builder
	for i, p := range ports {
		fmt.Fprintf(&b, "a=candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host\r\n", i+1, p)
	}
	i := strings.Index(offer, "a=mid:")
	end := i + strings.Index(offer[i:], "\r\n") + 2
	return offer[:end] + b.String() + offer[end:]
}

// problemDetail reads a problem+json body's detail; "" if it is not one.
func problemDetail(r reply) string {
	if r.header.Get("Content-Type") != "application/problem+json" {
		return ""
	}
	var p struct{ Detail string }
	_ = json.Unmarshal([]byte(r.body), &p)
	return p.Detail
}

// rtspDescribe sends one DESCRIBE on a new connection and returns the
// status and headers.
func rtspDescribe(t *testing.T, port int, path, authorization string) (int, textproto.MIMEHeader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("DESCRIBE rtsp://127.0.0.1:%d/%s RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n", port, path)
	if authorization != "" {
		req += "Authorization: " + authorization + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewReader(bufio.NewReader(conn))
	line, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("RTSP DESCRIBE: %v", err)
	}
	var status int
	if _, err := fmt.Sscanf(line, "RTSP/1.0 %d", &status); err != nil {
		t.Fatalf("RTSP status line %q", line)
	}
	h, _ := tp.ReadMIMEHeader()
	return status, h
}

// mustJWT signs an HS256 token with jwtSecret that lasts ttl, for tables
// built before any test runs.
func mustJWT(stream, action string, ttl time.Duration) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"stream": stream, "action": action,
		"exp": time.Now().Add(ttl).Unix()}).SignedString([]byte(jwtSecret))
	if err != nil {
		panic(err)
	}
	return s
}

// signJWTClaims signs claims with secret, adding an exp a minute ahead.
func signJWTClaims(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	claims["exp"] = time.Now().Add(time.Minute).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
