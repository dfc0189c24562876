package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// testServer runs the real WHIP/WHEP stack behind the API on loopback.
type testServer struct {
	url string
	hub *live.Hub
}

// AuthConfig is the access policy's tokens, as tests spell them.
type AuthConfig = access.Config

// JWTConfig is the access policy's JWT settings.
type JWTConfig = access.JWTConfig

func newTestServer(t *testing.T, auth AuthConfig, ice ...string) *testServer {
	t.Helper()
	return newTestServerRTC(t, auth, rtc.Config{UDPAddr: "127.0.0.1:0", ICEServers: ice})
}

func newTestServerRTC(t *testing.T, auth AuthConfig, rtcCfg rtc.Config) *testServer {
	t.Helper()
	hub := live.NewHub(live.Reject)
	return &testServer{url: serveAPI(t, hub, rtcCfg, auth, Config{}, Deps{}), hub: hub}
}

// testGate is an access gate with auth's tokens and no limits.
func testGate(t *testing.T, auth AuthConfig) *access.Gate {
	t.Helper()
	g, err := access.New(auth, access.Limits{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// serveAPI runs the API over hub with a real WHIP and WHEP stack on
// loopback, behind a gate with auth's tokens (unless deps has one); deps'
// other fields (recordings, metrics) are kept.
func serveAPI(t *testing.T, hub *live.Hub, rtcCfg rtc.Config, auth AuthConfig, cfg Config, deps Deps) string {
	t.Helper()
	if deps.Gate == nil {
		deps.Gate = testGate(t, auth)
	}
	if rtcCfg.UDPAddr == "" {
		rtcCfg.UDPAddr = "127.0.0.1:0"
	}
	engine, err := rtc.NewEngine(rtcCfg)
	if err != nil {
		t.Fatal(err)
	}
	whipSrv := ingest.New(hub, engine, ingest.Config{})
	whepSrv := whep.New(hub, engine, whep.Config{})
	deps.Hub, deps.WHIP, deps.WHEP = hub, whipSrv, whepSrv
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		whepSrv.Close()
		whipSrv.Close()
		_ = engine.Close()
	})
	return hs.URL
}

// offer builds a real pion offer listing the given codecs, with one
// transceiver per media kind, in direction dir.
func offer(t *testing.T, dir webrtc.RTPTransceiverDirection, codecs ...webrtc.RTPCodecParameters) string {
	t.Helper()
	return offerTracks(t, dir, 0, codecs...)
}

// offerTracks is offer with extraVideo more video transceivers.
func offerTracks(t *testing.T, dir webrtc.RTPTransceiverDirection, extraVideo int, codecs ...webrtc.RTPCodecParameters) string {
	t.Helper()
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		typ := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			typ = webrtc.RTPCodecTypeAudio
		}
		if err := me.RegisterCodec(c, typ); err != nil {
			t.Fatal(err)
		}
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	added := map[webrtc.RTPCodecType]bool{}
	for _, c := range codecs {
		typ := webrtc.RTPCodecTypeVideo
		if strings.HasPrefix(c.MimeType, "audio/") {
			typ = webrtc.RTPCodecTypeAudio
		}
		n := 1
		if typ == webrtc.RTPCodecTypeVideo {
			n += extraVideo
		}
		for ; !added[typ] && n > 0; n-- {
			if _, err := pc.AddTransceiverFromKind(typ, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
				t.Fatal(err)
			}
		}
		added[typ] = true
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

var (
	h264 = webrtc.RTPCodecParameters{PayloadType: 102, RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: "video/H264", ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032"}}
	vp8  = webrtc.RTPCodecParameters{PayloadType: 96, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/VP8", ClockRate: 90000}}
	opus = webrtc.RTPCodecParameters{PayloadType: 111, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/opus", ClockRate: 48000, Channels: 2}}
	// H.266 is a codec no output of Reel takes.
	h266 = webrtc.RTPCodecParameters{PayloadType: 49, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/H266", ClockRate: 90000}}
)

type result struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url, ctype, body string, headers ...string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

// wantProblem checks the status and that the body is problem+json with a
// sentence mentioning want.
func wantProblem(t *testing.T, r result, status int, want string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p Problem
	if err := json.Unmarshal([]byte(r.body), &p); err != nil || p.Status != status {
		t.Fatalf("body is not a problem: %s", r.body)
	}
	if !strings.Contains(strings.ToLower(p.Detail), strings.ToLower(want)) {
		t.Fatalf("detail %q does not mention %q", p.Detail, want)
	}
}

func TestWHIPPublishAnswer(t *testing.T) {
	ts := newTestServer(t, AuthConfig{}, "stun:stun.example.net:3478")
	r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, h264, opus))
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/sdp" {
		t.Errorf("Content-Type %q", ct)
	}
	if !regexp.MustCompile(`^/whip/cam/[0-9a-f]{32}$`).MatchString(r.header.Get("Location")) {
		t.Errorf("Location %q is not /whip/cam/<128-bit id>", r.header.Get("Location"))
	}
	if !regexp.MustCompile(`^"[0-9a-f]+"$`).MatchString(r.header.Get("ETag")) {
		t.Errorf("ETag %q is not a quoted strong tag", r.header.Get("ETag"))
	}
	if l := r.header.Get("Link"); l != `<stun:stun.example.net:3478>; rel="ice-server"` {
		t.Errorf("Link %q", l)
	}
	for _, want := range []string{"a=recvonly", "a=group:BUNDLE", "a=rtcp-mux", "a=candidate:", "H264/90000", "opus/48000"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("answer lacks %q:\n%s", want, r.body)
		}
	}
	if strings.Contains(r.body, "VP8") {
		t.Error("answer names VP8 though only H.264 was offered")
	}
	st := ts.hub.Get("cam")
	if st == nil || len(st.Tracks()) != 2 || st.Track(live.Video).Codec != live.H264 {
		t.Fatalf("hub does not hold the stream with H.264 + Opus")
	}
}

// Behind NAT, the answer's host candidates carry the public address and
// the one shared UDP port.
func TestNAT1To1Candidates(t *testing.T) {
	ts := newTestServerRTC(t, AuthConfig{}, rtc.Config{UDPAddr: "127.0.0.1:0", NAT1To1IPs: []string{"203.0.113.7"}})
	r := do(t, "POST", ts.url+"/whip/nat", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus))
	if r.status != 201 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	cands := regexp.MustCompile(`a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host`).FindAllStringSubmatch(r.body, -1)
	if len(cands) == 0 {
		t.Fatalf("no host candidates:\n%s", r.body)
	}
	for _, c := range cands {
		if c[1] != "203.0.113.7" {
			t.Errorf("candidate address %s, want the NAT 1:1 address", c[1])
		}
		if c[2] != cands[0][2] {
			t.Errorf("candidates on several ports %s and %s; want one shared port", c[2], cands[0][2])
		}
	}
}

// The answer takes the offer's first allowed codec (SPEC, Codec choice):
// VP8 listed first by the client is what the stream gets, though the
// default order puts H.264 first.
func TestWHIPAnswerFollowsTheOffer(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	r := do(t, "POST", ts.url+"/whip/pref", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, h264, opus))
	if r.status != http.StatusCreated {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := ts.hub.Get("pref").Track(live.Video).Codec; got != live.VP8 {
		t.Fatalf("picked %s, want VP8", got)
	}
	if !strings.Contains(r.body, "VP8/90000") || strings.Contains(r.body, "H264/90000") {
		t.Fatalf("the answer does not name VP8 alone:\n%s", r.body)
	}
}

func TestWHIPBadInput(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	good := offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)
	t.Run("wrong content type", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "text/plain", good), 415, "application/sdp")
	})
	t.Run("garbage sdp", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", "hello, I am not SDP"), 400, "not a valid SDP")
	})
	t.Run("empty body", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", ""), 400, "empty")
	})
	t.Run("2 MB body", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", strings.Repeat("a=x\r\n", 2<<20/5)), 413, "larger than")
	})
	t.Run("no usable codec", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, h266)), 422, "none of the offered video codecs")
	})
	t.Run("second video track", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", offerTracks(t, webrtc.RTPTransceiverDirectionSendonly, 1, vp8, opus)), 422, "more than one video track")
	})
	t.Run("offer that does not send", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/a", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, vp8)), 422, "must send media")
	})
	t.Run("bad stream name", func(t *testing.T) {
		wantProblem(t, do(t, "POST", ts.url+"/whip/..%2Fetc", "application/sdp", good), 400, "stream names")
	})
	if ts.hub.Get("a") != nil {
		t.Fatal("a refused offer left a live stream behind")
	}
}

func TestWHIPSecondPublisherConflict(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	o := offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)
	if r := do(t, "POST", ts.url+"/whip/live", "application/sdp", o); r.status != 201 {
		t.Fatalf("first publish: %d %s", r.status, r.body)
	}
	wantProblem(t, do(t, "POST", ts.url+"/whip/live", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8)), 409, "already publishing")
}

func TestWHIPSessionLifecycle(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus))
	if r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	res := ts.url + r.header.Get("Location")
	etag := r.header.Get("ETag")
	cand := "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
	frag := "a=ice-ufrag:" + sdpLine(t, r.body, "a=ice-ufrag:") + "\r\n" + cand

	wantProblem(t, do(t, "PATCH", res, "application/sdp", frag, "If-Match", etag), 415, "trickle-ice-sdpfrag")
	wantProblem(t, do(t, "PATCH", res, "application/trickle-ice-sdpfrag", frag, "If-Match", `"stale"`), 412, "ETag")
	if r := do(t, "PATCH", res, "application/trickle-ice-sdpfrag", cand, "If-Match", etag); r.status != 204 {
		t.Fatalf("trickle: %d %s", r.status, r.body)
	}
	// Trickle without If-Match (the whip-whep WHEP client's way) is taken;
	// an ICE restart without it is not.
	if r := do(t, "PATCH", res, "application/trickle-ice-sdpfrag", cand); r.status != 204 {
		t.Fatalf("trickle without If-Match: %d %s", r.status, r.body)
	}
	restart := "a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\n" + cand
	wantProblem(t, do(t, "PATCH", res, "application/trickle-ice-sdpfrag", restart), 428, "If-Match")
	// ICE restart: new credentials, If-Match: * as RFC 9725 §4.3.2 asks.
	rr := do(t, "PATCH", res, "application/trickle-ice-sdpfrag", restart, "If-Match", "*")
	if rr.status != 200 || rr.header.Get("Content-Type") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("ICE restart: %d %q %s", rr.status, rr.header.Get("Content-Type"), rr.body)
	}
	if newTag := rr.header.Get("ETag"); newTag == "" || newTag == etag {
		t.Fatalf("ICE restart kept ETag %q", newTag)
	}
	for _, want := range []string{"a=ice-ufrag:", "a=ice-pwd:", "a=candidate:"} {
		if !strings.Contains(rr.body, want) {
			t.Errorf("restart answer lacks %q:\n%s", want, rr.body)
		}
	}
	if strings.Contains(rr.body, "a=ice-ufrag:"+sdpLine(t, r.body, "a=ice-ufrag:")+"\r") {
		t.Error("restart answer reuses the old ufrag")
	}
	// The old ETag no longer matches.
	wantProblem(t, do(t, "PATCH", res, "application/trickle-ice-sdpfrag", cand, "If-Match", etag), 412, "ETag")

	if o := do(t, "OPTIONS", ts.url+"/whip/cam", "", ""); o.status != 204 || o.header.Get("Accept-Post") != "application/sdp" || o.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("OPTIONS: %d %v", o.status, o.header)
	}
	if g := do(t, "GET", ts.url+"/whip/cam", "", ""); g.status != 204 {
		t.Fatalf("GET: %d", g.status)
	}
	if d := do(t, "DELETE", res, "", ""); d.status != 200 {
		t.Fatalf("DELETE: %d %s", d.status, d.body)
	}
	if ts.hub.Get("cam") != nil {
		t.Fatal("stream still live after DELETE")
	}
	wantProblem(t, do(t, "DELETE", res, "", ""), 404, "no such session")
}

func sdpLine(t *testing.T, sdp, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
	t.Fatalf("no %s line", prefix)
	return ""
}

func TestWHEPNotLive(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	r := do(t, "POST", ts.url+"/whep/nobody", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, vp8, opus))
	wantProblem(t, r, 409, "nobody is publishing")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("409 without Retry-After")
	}
}

func TestWHEPAnswerFollowsStreamCodecs(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	if r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)); r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	r := do(t, "POST", ts.url+"/whep/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, h264, vp8, opus))
	if r.status != 201 {
		t.Fatalf("play: %d %s", r.status, r.body)
	}
	for _, want := range []string{"a=sendonly", "VP8/90000", "opus/48000"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("answer lacks %q", want)
		}
	}
	if strings.Contains(r.body, "H264") {
		t.Error("answer offers H.264 though the stream is VP8")
	}
	if !strings.HasPrefix(r.header.Get("Location"), "/whep/cam/") {
		t.Errorf("Location %q", r.header.Get("Location"))
	}
	// A player that cannot decode the stream's codec is told so.
	wantProblem(t, do(t, "POST", ts.url+"/whep/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, h264)), 422, "VP8")
	wantProblem(t, do(t, "POST", ts.url+"/whep/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8)), 422, "must receive")
}

func TestAuth(t *testing.T) {
	ts := newTestServer(t, AuthConfig{PublishTokens: []string{"pub-secret"}, StreamTokens: map[string]string{"studio": "studio-key"},
		ReadTokens: []string{"viewer"}, AdminTokens: []string{"admin"}})
	o := func() string { return offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8) }
	r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", o())
	wantProblem(t, r, 401, "needs a token")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	wantProblem(t, do(t, "POST", ts.url+"/whip/cam", "application/sdp", o(), "Authorization", "Bearer nope"), 401, "not valid")
	wantProblem(t, do(t, "POST", ts.url+"/whip/cam", "application/sdp", o(), "Authorization", "Bearer viewer"), 401, "not valid")
	wantProblem(t, do(t, "POST", ts.url+"/whip/cam", "application/sdp", o(), "Authorization", "Bearer studio-key"), 401, "not valid")
	if r := do(t, "POST", ts.url+"/whip/studio", "application/sdp", o(), "Authorization", "Bearer studio-key"); r.status != 201 {
		t.Fatalf("per-stream token: %d %s", r.status, r.body)
	}
	if r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", o(), "Authorization", "Bearer pub-secret"); r.status != 201 {
		t.Fatalf("publish token: %d %s", r.status, r.body)
	}
	play := offer(t, webrtc.RTPTransceiverDirectionRecvonly, vp8)
	wantProblem(t, do(t, "POST", ts.url+"/whep/cam", "application/sdp", play), 401, "needs a token")
	if r := do(t, "POST", ts.url+"/whep/cam", "application/sdp", play, "Authorization", "Bearer viewer"); r.status != 201 {
		t.Fatalf("read token: %d %s", r.status, r.body)
	}
	wantProblem(t, do(t, "DELETE", ts.url+"/api/v1/streams/cam", "", "", "Authorization", "Bearer viewer"), 401, "not valid")
	if r := do(t, "DELETE", ts.url+"/api/v1/streams/cam", "", "", "Authorization", "Bearer admin"); r.status != 204 {
		t.Fatalf("kick: %d %s", r.status, r.body)
	}
	if ts.hub.Get("cam") != nil {
		t.Fatal("kicked stream is still live")
	}
}

func TestStreamsAPI(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	if r := do(t, "GET", ts.url+"/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	wantProblem(t, do(t, "GET", ts.url+"/api/v1/streams/none", "", ""), 404, "not live")
	if r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)); r.status != 201 {
		t.Fatalf("publish: %d", r.status)
	}
	r := do(t, "GET", ts.url+"/api/v1/streams", "", "")
	var list struct{ Streams []live.StreamInfo }
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Streams) != 1 {
		t.Fatalf("list: %s", r.body)
	}
	s := list.Streams[0]
	if s.Session != "" || strings.Contains(r.body, `"session"`) {
		t.Errorf("auth is off, yet the session id is shown: %s", r.body)
	}
	if s.Name != "cam" || len(s.Tracks) != 2 || s.Tracks[0].Codec != live.VP8 || s.Outputs[live.OutputHLS].Available {
		t.Fatalf("stream info wrong: %+v", s)
	}
	if !strings.Contains(s.Outputs[live.OutputHLS].Reason, "VP8") {
		t.Fatalf("HLS reason %q does not explain VP8", s.Outputs[live.OutputHLS].Reason)
	}
	if r := do(t, "GET", ts.url+"/metrics", "", ""); r.status != 200 || !strings.Contains(r.body, "reel_publishers 1") ||
		!strings.Contains(r.body, `reel_webrtc_sessions{protocol="whip"} 1`) || !strings.Contains(r.body, `reel_webrtc_sessions{protocol="whep"} 0`) {
		t.Fatalf("metrics: %d %s", r.status, r.body[:min(len(r.body), 200)])
	}
	wantProblem(t, do(t, "GET", ts.url+"/nothing-here", "", ""), 404, "nothing is served")
}

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTOverHTTP: a JWT works as a bearer token on a protected route, and
// static tokens keep working alongside. A gateway-wide route needs an
// admin JWT for "*": one scoped to a stream, or naming none, is refused.
func TestJWTOverHTTP(t *testing.T) {
	s := &Server{gate: testGate(t, AuthConfig{AdminTokens: []string{"static"}, JWT: JWTConfig{HS256Secret: "k"}})}
	h := s.require(access.Admin, access.API)(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	exp := time.Now().Add(time.Minute).Unix()
	tok := signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"stream": "*", "action": "admin", "exp": exp})
	scoped := signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"stream": "x", "action": "admin", "exp": exp})
	unscoped := signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"action": "admin", "exp": exp})
	for bearer, want := range map[string]int{tok: 204, "static": 204, scoped: 401, unscoped: 401, "wrong": 401, "": 401} {
		req := httptest.NewRequest(http.MethodDelete, "/x", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		e := echo.New()
		_ = h(e.NewContext(req, rec))
		if rec.Code != want {
			t.Errorf("bearer %.10q: %d, want %d", bearer, rec.Code, want)
		}
	}
}

// TestGroupedStreamNames: a name with one group level, {meeting}/
// {participant}, works wherever a flat one does, and session URLs stay
// unambiguous: /whip/board/alice is a grouped endpoint for POST and a
// flat stream's session for PATCH and DELETE.
func TestGroupedStreamNames(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	r := do(t, "POST", ts.url+"/whip/board-42/alice", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus))
	if r.status != 201 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "/whip/board-42/alice/") || len(strings.Split(loc, "/")) != 5 {
		t.Fatalf("Location %q", loc)
	}
	if ts.hub.Get("board-42/alice") == nil {
		t.Fatal("the hub has no stream board-42/alice")
	}
	if g := do(t, "GET", ts.url+"/api/v1/streams/board-42/alice", "", ""); g.status != 200 || !strings.Contains(g.body, `"board-42/alice"`) {
		t.Fatalf("streams API: %d %s", g.status, g.body)
	}
	// A viewer of the grouped name; a second publisher of it is refused.
	if w := do(t, "POST", ts.url+"/whep/board-42/alice", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionRecvonly, vp8, opus)); w.status != 201 ||
		!strings.HasPrefix(w.header.Get("Location"), "/whep/board-42/alice/") {
		t.Fatalf("WHEP: %d %s %v", w.status, w.body, w.header)
	}
	wantProblem(t, do(t, "POST", ts.url+"/whip/board-42/alice", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)), 409, "already publishing")
	// Two segments answer OPTIONS as an endpoint and as a session.
	o := do(t, "OPTIONS", ts.url+"/whip/board-42/alice", "", "")
	if o.status != 204 || o.header.Get("Accept-Post") != "application/sdp" || o.header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("OPTIONS: %d %v", o.status, o.header)
	}
	for _, bad := range []string{"/whip/a/b/c/d", "/whip/-x/alice", "/whip/board/..", "/whip/board/al%20ice"} {
		if b := do(t, "POST", ts.url+bad, "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8, opus)); b.status != 400 && b.status != 404 {
			t.Errorf("POST %s: %d, want 400 or 404", bad, b.status)
		}
	}
	if d := do(t, "DELETE", ts.url+loc, "", ""); d.status != 200 {
		t.Fatalf("DELETE: %d %s", d.status, d.body)
	}
	if ts.hub.Get("board-42/alice") != nil {
		t.Fatal("stream still live after DELETE")
	}
}
