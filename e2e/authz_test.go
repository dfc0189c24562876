package e2e

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestRouteTokenTable asks every route of every protocol with every kind
// of token and checks that exactly the right ones are let in. No media is
// needed: nothing is live, so a request that is let in gets the answer
// about its content or its stream (400 bad offer, 404 not live, 409...),
// and one that is not gets 401. The HLS route with two path parts is the
// stream "studio/cam", whatever token the part names.
func TestRouteTokenTable(t *testing.T) {
	t.Parallel()
	g := startGateway(t, []string{"REEL_AUTH_JWT_HS256_SECRET=" + jwtSecret},
		"--auth-publish-tokens", "pub", "--auth-read-tokens", "rd", "--auth-admin-tokens", "adm",
		"--auth-stream-tokens", "cam=camkey,other=otherkey", "--debug-pprof",
		// Hundreds of refusals from one address: no throttling here (the
		// hardening table tests it).
		"--limits-auth-failures", "0", "--limits-request-rate", "0")
	a := &attackEnv{t: t, g: g, client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}

	type route struct {
		name string
		ask  func(token string) int
	}
	httpRoute := func(name, method, path, ctype, body string) route {
		return route{name, func(token string) int {
			var h []string
			if token != "" {
				h = bearer(token)
			}
			return a.do(method, path, ctype, body, h...).status
		}}
	}
	routes := []route{
		httpRoute("WHIP POST", "POST", "/whip/cam", "application/sdp", "v=0"),
		httpRoute("WHIP PATCH", "PATCH", "/whip/cam/0123456789abcdef0123456789abcdef", "application/trickle-ice-sdpfrag", "a=mid:0"),
		httpRoute("WHIP DELETE", "DELETE", "/whip/cam/0123456789abcdef0123456789abcdef", "", ""),
		httpRoute("WHEP POST", "POST", "/whep/cam", "application/sdp", "v=0"),
		httpRoute("WHEP DELETE", "DELETE", "/whep/cam/0123456789abcdef0123456789abcdef", "", ""),
		{"RTSP", func(token string) int {
			auth := ""
			if token != "" {
				auth = "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+token))
			}
			status, _ := rtspDescribe(t, g.RTSPPort, "cam", auth)
			return status
		}},
		httpRoute("HLS", "GET", "/hls/cam/index.m3u8", "", ""),
		httpRoute("HLS grouped", "GET", "/hls/studio/cam/index.m3u8", "", ""),
		httpRoute("streams", "GET", "/api/v1/streams", "", ""),
		httpRoute("stream", "GET", "/api/v1/streams/cam", "", ""),
		httpRoute("kick", "DELETE", "/api/v1/streams/cam", "", ""),
		httpRoute("recordings", "GET", "/api/v1/recordings", "", ""),
		httpRoute("recordings of cam", "GET", "/api/v1/recordings?stream=cam", "", ""),
		httpRoute("delete recording", "DELETE", "/api/v1/recordings/cam_20000101T000000Z", "", ""),
		httpRoute("metrics", "GET", "/metrics", "", ""),
		httpRoute("pprof", "GET", "/debug/pprof/cmdline", "", ""),
	}
	jwtFor := func(stream, action string) string { return signJWT(t, jwtSecret, stream, action) }
	unscoped := signJWTClaims(t, jwtSecret, jwt.MapClaims{"action": "admin"})
	all := []string{"WHIP POST", "WHIP PATCH", "WHIP DELETE", "WHEP POST", "WHEP DELETE", "RTSP", "HLS", "HLS grouped",
		"streams", "stream", "kick", "recordings", "recordings of cam", "delete recording", "metrics", "pprof"}
	camReader := []string{"WHEP POST", "WHEP DELETE", "RTSP", "HLS", "stream", "recordings of cam"}
	camPublisher := append([]string{"WHIP POST", "WHIP PATCH", "WHIP DELETE"}, camReader...)
	everyReader := append([]string{"HLS grouped", "streams", "recordings", "metrics"}, camReader...)
	for _, tk := range []struct {
		kind, token string
		allowed     []string
	}{
		{"none", "", nil},
		{"wrong", "nope", nil},
		{"static publish", "pub", append([]string{"WHIP POST", "WHIP PATCH", "WHIP DELETE"}, everyReader...)},
		{"stream token of cam", "camkey", camPublisher},
		{"stream token of another stream", "otherkey", nil},
		{"static read", "rd", everyReader},
		{"static admin", "adm", all},
		{"JWT publish cam", jwtFor("cam", "publish"), camPublisher},
		{"JWT read cam", jwtFor("cam", "read"), camReader},
		{"JWT read studio", jwtFor("studio", "read"), nil},
		{"JWT read *", jwtFor("*", "read"), everyReader},
		{"JWT admin cam", jwtFor("cam", "admin"), append([]string{"kick"}, camPublisher...)},
		{"JWT admin *", jwtFor("*", "admin"), all},
		{"JWT admin without stream", unscoped, nil},
	} {
		for _, r := range routes {
			got := r.ask(tk.token)
			wantIn := false
			for _, name := range tk.allowed {
				wantIn = wantIn || name == r.name
			}
			in := false
			switch got {
			case 200, 204, 400, 404, 409: // let in: answered about the content or the stream
				in = true
			case 401:
			default:
				t.Errorf("%s with %s: unexpected %d", r.name, tk.kind, got)
				continue
			}
			if in != wantIn {
				t.Errorf("%s with %s: %d; want %s", r.name, tk.kind, got, map[bool]string{true: "let in", false: "401"}[wantIn])
			}
		}
	}
	// Hundreds of refusals were logged; no token or secret with them.
	for _, secret := range []string{"e2e-hardening-secret", "camkey", "otherkey", "Bearer", unscoped[:20]} {
		if strings.Contains(g.Log(), secret) {
			t.Errorf("%q reached the log", secret)
		}
	}
}
