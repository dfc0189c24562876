package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// With auth off, a page on another origin must not change anything
// through the user's browser: mutating API calls carrying a foreign
// Origin (or Sec-Fetch-Site: cross-site) are refused, while WHIP, WHEP
// and reading the API stay open to any origin. With tokens, the token is
// the proof and the origin does not matter.
func TestCrossOriginChangesRefusedWithAuthOff(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	if r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8), "Origin", "http://evil.example"); r.status != http.StatusCreated ||
		r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("WHIP from another origin: %d %v", r.status, r.header)
	}
	for _, h := range [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Origin", "http://127.0.0.1:1"}, // same host, another port: another origin
		{"Sec-Fetch-Site", "cross-site"},
	} {
		wantProblem(t, do(t, "DELETE", ts.url+"/api/v1/streams/cam", "", "", h...), http.StatusForbidden, "another site")
		if ts.hub.Get("cam") == nil {
			t.Fatalf("%v ended the stream", h)
		}
	}
	r := do(t, "GET", ts.url+"/api/v1/streams", "", "", "Origin", "http://evil.example")
	if r.status != http.StatusOK || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("reading from another origin: %d %v", r.status, r.header)
	}
	u, _ := url.Parse(ts.url)
	if r := do(t, "DELETE", ts.url+"/api/v1/streams/cam", "", "", "Origin", "http://"+u.Host, "Sec-Fetch-Site", "same-origin"); r.status != http.StatusNoContent {
		t.Errorf("from Reel's own page: %d %s", r.status, r.body)
	}

	authed := newTestServer(t, AuthConfig{AdminTokens: []string{"adm"}, PublishTokens: []string{"pub"}})
	if r := do(t, "POST", authed.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8), "Authorization", "Bearer pub"); r.status != http.StatusCreated {
		t.Fatalf("publish: %d", r.status)
	}
	if r := do(t, "DELETE", authed.url+"/api/v1/streams/cam", "", "", "Origin", "http://evil.example", "Authorization", "Bearer adm"); r.status != http.StatusNoContent {
		t.Errorf("with an admin token from another origin: %d %s", r.status, r.body)
	}
}

// With auth on, the streams API and /metrics need a read token (names,
// addresses); public_read opens the first, metrics.public the second. A
// session id, which makes its URL, is shown to an admin of the stream
// only, and with auth off to nobody.
func TestInformationNeedsAToken(t *testing.T) {
	auth := AuthConfig{PublishTokens: []string{"pub"}, ReadTokens: []string{"rd"}, AdminTokens: []string{"adm"},
		StreamTokens: map[string]string{"cam": "camkey"}}
	ts := newTestServer(t, auth)
	if r := do(t, "POST", ts.url+"/whip/cam", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8), "Authorization", "Bearer camkey"); r.status != http.StatusCreated {
		t.Fatalf("publish: %d", r.status)
	}
	session := func(base, path, token string) (int, string) {
		var h []string
		if token != "" {
			h = []string{"Authorization", "Bearer " + token}
		}
		r := do(t, "GET", base+path, "", "", h...)
		if r.status != http.StatusOK || !strings.Contains(path, "streams") {
			return r.status, ""
		}
		var one live.StreamInfo
		var list struct{ Streams []live.StreamInfo }
		if strings.HasSuffix(path, "/cam") {
			_ = json.Unmarshal([]byte(r.body), &one)
		} else if json.Unmarshal([]byte(r.body), &list) == nil && len(list.Streams) == 1 {
			one = list.Streams[0]
		}
		if one.Name != "cam" {
			t.Errorf("GET %s: %s", path, r.body)
		}
		if strings.Contains(r.body, `"session"`) != (one.Session != "") {
			t.Errorf("GET %s: session field %s", path, r.body)
		}
		return r.status, one.Session
	}
	for _, c := range []struct {
		path, token string
		status      int
		session     bool
	}{
		{"/api/v1/streams", "", 401, false},
		{"/api/v1/streams/cam", "", 401, false},
		{"/metrics", "", 401, false},
		{"/api/v1/streams", "rd", 200, false},
		{"/api/v1/streams", "pub", 200, false},
		{"/api/v1/streams", "camkey", 401, false}, // the list is every stream
		{"/api/v1/streams/cam", "camkey", 200, false},
		{"/api/v1/streams", "adm", 200, true},
		{"/api/v1/streams/cam", "adm", 200, true},
		{"/metrics", "rd", 200, false},
		{"/metrics", "camkey", 401, false},
	} {
		if status, sess := session(ts.url, c.path, c.token); status != c.status || (sess != "") != c.session {
			t.Errorf("GET %s with %q: %d, session %q; want %d, session shown %v", c.path, c.token, status, sess, c.status, c.session)
		}
	}

	hub := live.NewHub(live.Reject)
	public := serveAPI(t, hub, rtc.Config{}, AuthConfig{ReadTokens: []string{"rd"}, PublicRead: true}, Config{}, Deps{})
	metrics := serveAPI(t, hub, rtc.Config{}, AuthConfig{ReadTokens: []string{"rd"}, PublicMetrics: true}, Config{}, Deps{})
	open := serveAPI(t, hub, rtc.Config{}, AuthConfig{}, Config{}, Deps{})
	for _, c := range []struct {
		base, path string
		want       int
	}{
		{public, "/api/v1/streams", 200}, {public, "/metrics", 401},
		{metrics, "/api/v1/streams", 401}, {metrics, "/metrics", 200},
		{open, "/api/v1/streams", 200}, {open, "/metrics", 200},
	} {
		if r := do(t, "GET", c.base+c.path, "", ""); r.status != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, r.status, c.want)
		}
	}
	// Auth off: no admin, so no session ids.
	if r := do(t, "POST", open+"/whip/x", "application/sdp", offer(t, webrtc.RTPTransceiverDirectionSendonly, vp8)); r.status != http.StatusCreated {
		t.Fatalf("publish: %d", r.status)
	}
	if r := do(t, "GET", open+"/api/v1/streams/x", "", ""); r.status != 200 || strings.Contains(r.body, `"session"`) {
		t.Errorf("auth off shows the session: %s", r.body)
	}
}

// The HTTP server cuts off clients that send headers or bodies slowly or
// idle on a connection.
func TestServerTimeouts(t *testing.T) {
	gate, err := access.New(access.Config{}, access.Limits{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	hub := live.NewHub(live.Reject)
	s := serveReal(t, hub, engine, gate, Config{Addr: "127.0.0.1:0", ReadTimeout: 500 * time.Millisecond, IdleTimeout: 500 * time.Millisecond})
	closedWithin := func(what, send string, d time.Duration) {
		t.Helper()
		conn, err := net.Dial("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, send); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(d))
		start := time.Now()
		_, err = io.Copy(io.Discard, conn) // returns when the server closes
		if err != nil {
			t.Errorf("%s: still open after %v (%v)", what, time.Since(start), err)
		}
	}
	closedWithin("slow headers", "POST /whip/x HTTP/1.1\r\nHost: x\r\n", 3*time.Second)
	closedWithin("slow body", "POST /whip/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 100\r\n\r\nv=0", 3*time.Second)
	// An idle keep-alive connection, after one request.
	conn, err := net.Dial("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("idle connection still open: %v", err)
	}
}

// serveReal runs the API on a real http.Server (Serve, with its
// timeouts) on loopback and returns its address.
func serveReal(t *testing.T, hub *live.Hub, engine *rtc.Engine, gate *access.Gate, cfg Config) string {
	t.Helper()
	whipSrv, whepSrv := ingest.New(hub, engine, ingest.Config{}), whep.New(hub, engine, whep.Config{})
	srv, err := New(cfg, Deps{Gate: gate, Hub: hub, WHIP: whipSrv, WHEP: whepSrv})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
		whepSrv.Close()
		whipSrv.Close()
	})
	return srv.Addr()
}

// A JWT admin claim scoped to a stream administers that stream only: it
// kicks it and deletes its recordings, and nothing of another stream, nor
// anything gateway-wide.
func TestScopedAdmin(t *testing.T) {
	mediacheck.Require(t)
	a := newArchive(t)
	pa, stopA := a.publish(t, "cam-a", hubtest.Source{Video: live.VP8})
	pb, stopB := a.publish(t, "cam-b", hubtest.Source{Video: live.VP8})
	<-pa.Done()
	<-pb.Done()
	stopA()
	stopB()
	const secret = "scoped-admin-secret-scoped-admin"
	base := a.serve(t, AuthConfig{JWT: JWTConfig{HS256Secret: secret}})
	exp := time.Now().Add(time.Minute).Unix()
	adminA := "Bearer " + signed(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"stream": "cam-a", "action": "admin", "exp": exp})
	var recA, recB string
	page, err := a.rec.Catalog().List(recorder.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range page.Recordings {
		switch in.Stream {
		case "cam-a":
			recA = in.ID
		case "cam-b":
			recB = in.ID
		}
	}
	if recA == "" || recB == "" {
		t.Fatal("nothing recorded")
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/v1/recordings?stream=cam-a", 200},
		{"GET", "/api/v1/recordings/" + recA, 200},
		{"GET", "/api/v1/recordings", 401},
		{"GET", "/api/v1/recordings?stream=cam-b", 401},
		{"GET", "/api/v1/recordings/" + recB, 401},
		{"DELETE", "/api/v1/recordings/" + recB, 401},
		{"DELETE", "/api/v1/recordings/cam-b_20000101T000000Z", 401}, // unknown: gateway-wide
		{"DELETE", "/api/v1/streams/cam-b", 401},
		{"GET", "/metrics", 401},
		{"DELETE", "/api/v1/streams/cam-a", 404}, // allowed; not live
		{"DELETE", "/api/v1/recordings/" + recA, 204},
	} {
		if r := do(t, c.method, base+c.path, "", "", "Authorization", adminA); r.status != c.want {
			t.Errorf("%s %s as cam-a's admin: %d, want %d (%s)", c.method, c.path, r.status, c.want, r.body)
		}
	}
}
