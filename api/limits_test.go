package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/rtc"
)

// fakeSession is a session the limiter can watch connect and end.
type fakeSession struct {
	connected, done chan struct{}
	connOnce, once  sync.Once
}

func newFakeSession() *fakeSession {
	return &fakeSession{connected: make(chan struct{}), done: make(chan struct{})}
}

func (f *fakeSession) ETag() string { return `"x"` }
func (f *fakeSession) Patch(context.Context, string, []byte) ([]byte, string, error) {
	return nil, `"x"`, nil
}
func (f *fakeSession) Close()                     { f.once.Do(func() { close(f.done) }) }
func (f *fakeSession) Connect()                   { f.connOnce.Do(func() { close(f.connected) }) }
func (f *fakeSession) Connected() <-chan struct{} { return f.connected }
func (f *fakeSession) Done() <-chan struct{}      { return f.done }

// limitedEcho serves the real signaling routes under /p over fake
// sessions, through a Server whose gate has the given limits; each 201
// opens a fake session the test can connect and end.
type limitedEcho struct {
	e    *echo.Echo
	gate *access.Gate
	mu   sync.Mutex
	sess map[string]*fakeSession
	n    int
}

func newLimitedEcho(t *testing.T, cfg access.Limits, publish bool) *limitedEcho {
	return newLimitedEchoAuth(t, access.Config{}, cfg, publish)
}

func newLimitedEchoAuth(t *testing.T, auth access.Config, cfg access.Limits, publish bool) *limitedEcho {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gate, err := access.New(auth, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	le := &limitedEcho{e: echo.New(), gate: gate, sess: map[string]*fakeSession{}}
	s := &Server{gate: gate, cfg: Config{Logger: log}}
	act, proto := access.Read, access.WHEP
	if publish {
		act, proto = access.Publish, access.WHIP
	}
	(&signaling{s: s, prefix: "/p", act: act, proto: proto, ice: func() []string { return nil },
		open: func(context.Context, string, []byte, string, url.Values) (string, []byte, string, error) {
			le.mu.Lock()
			defer le.mu.Unlock()
			le.n++
			id := strconv.Itoa(le.n)
			le.sess[id] = newFakeSession()
			return id, []byte("v=0\r\n"), `"x"`, nil
		},
		lookup: func(stream, id string) (peerSession, error) {
			le.mu.Lock()
			defer le.mu.Unlock()
			if f := le.sess[id]; f != nil {
				return f, nil
			}
			return nil, rtc.ErrSessionNotFound
		},
	}).routes(le.e)
	return le
}

// rejections is how many refusals the gate counted under limit.
func (le *limitedEcho) rejections(limit string) float64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(le.gate.Collectors()...)
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func (le *limitedEcho) post(t *testing.T, stream, ip, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/p/"+stream, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/sdp")
	req.RemoteAddr = ip + ":1234"
	req.Header.Set("X-Forwarded-For", "10.9.9.9") // must not be trusted
	rec := httptest.NewRecorder()
	le.e.ServeHTTP(rec, req)
	return rec
}

func (le *limitedEcho) session(id string) *fakeSession {
	le.mu.Lock()
	defer le.mu.Unlock()
	return le.sess[id]
}

func (le *limitedEcho) end(id string) { le.session(id).Close() }

// wantRefused checks the status, Retry-After and problem+json of a refusal.
func wantRefused(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	var p Problem
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != status || p.Detail == "" {
		t.Errorf("problem %s (%v)", rec.Body, err)
	}
}

func TestRequestRatePerIP(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{RequestRate: 0.001, RequestBurst: 3}, true)
	for i := range 3 {
		if rec := le.post(t, "s", "192.0.2.1", "v=0"); rec.Code != http.StatusCreated {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	wantRefused(t, le.post(t, "s", "192.0.2.1", "v=0"), http.StatusTooManyRequests)
	// Another address has its own budget, whatever X-Forwarded-For says.
	if rec := le.post(t, "s", "192.0.2.2", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("other address: %d", rec.Code)
	}
	if n := le.rejections("request_rate"); n != 1 {
		t.Errorf("request_rate rejections counted %v, want 1", n)
	}
}

func TestSessionsPerIPAndPublishers(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{SessionsPerIP: 2, Publishers: 3}, true)
	for i := range 2 {
		if rec := le.post(t, "s"+strconv.Itoa(i), "192.0.2.1", "v=0"); rec.Code != http.StatusCreated {
			t.Fatalf("session %d: %d", i, rec.Code)
		}
	}
	wantRefused(t, le.post(t, "s9", "192.0.2.1", "v=0"), http.StatusTooManyRequests)
	if rec := le.post(t, "s3", "192.0.2.2", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("third publisher: %d", rec.Code)
	}
	wantRefused(t, le.post(t, "s4", "192.0.2.3", "v=0"), http.StatusServiceUnavailable)

	// A session that ends gives its slot back (bounded wait: the release
	// runs on the watcher's goroutine).
	le.end("1")
	waitCond(t, "the slot to be released", func() bool { return le.post(t, "s5", "192.0.2.1", "v=0").Code == http.StatusCreated })
	if n := le.rejections("publishers"); n < 1 {
		t.Errorf("publishers rejections counted %v", n)
	}
}

func TestViewerLimits(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{ViewersPerStream: 2, Viewers: 3}, false)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if rec := le.post(t, "a", ip, "v=0"); rec.Code != http.StatusCreated {
			t.Fatalf("viewer: %d", rec.Code)
		}
	}
	wantRefused(t, le.post(t, "a", "192.0.2.3", "v=0"), http.StatusServiceUnavailable)
	if rec := le.post(t, "b", "192.0.2.3", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("viewer of another stream: %d", rec.Code)
	}
	wantRefused(t, le.post(t, "c", "192.0.2.4", "v=0"), http.StatusServiceUnavailable)
}

func TestFailedPostFreesItsSlot(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{SessionsPerIP: 1, MaxBodyBytes: 8}, true)
	for range 3 {
		if rec := le.post(t, "s", "192.0.2.1", strings.Repeat("x", 100)); rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("large body: %d", rec.Code)
		}
	}
	if rec := le.post(t, "s", "192.0.2.1", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("after refused POSTs: %d %s", rec.Code, rec.Body)
	}
}

func TestBodyLimitWithoutContentLength(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{MaxBodyBytes: 8}, true)
	req := httptest.NewRequest(http.MethodPost, "/p/s", io.MultiReader(strings.NewReader(strings.Repeat("x", 100))))
	req.Header.Set("Content-Type", "application/sdp")
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	le.e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked large body: %d %s", rec.Code, rec.Body)
	}
	if n := le.rejections("body_size"); n != 1 {
		t.Errorf("body_size rejections %v, want 1", n)
	}
}

// waitCond polls cond for up to 5 s.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// An RTSP reader admitted by the gate takes a viewer slot that a WHEP
// POST then cannot have, and gives it back on release.
func TestRTSPReadersShareTheViewerLimits(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{ViewersPerStream: 1, SessionsPerIP: 5}, false)
	rtsp := func(ip string) (func(), error) {
		return le.gate.Admit(access.Request{Action: access.Read, Stream: "cam", Protocol: access.RTSP, Addr: ip})
	}
	release, err := rtsp("10.0.0.1")
	if err != nil {
		t.Fatalf("first reader: %v", err)
	}
	wantRefused(t, le.post(t, "cam", "10.0.0.2", "v=0"), http.StatusServiceUnavailable)
	if _, err := rtsp("10.0.0.3"); err == nil {
		t.Error("a second RTSP reader got the stream's only slot")
	} else if ra, ok := err.(interface{ RetryAfter() time.Duration }); !ok || ra.RetryAfter() <= 0 {
		t.Errorf("refusal %v carries no Retry-After", err)
	}
	if got := le.rejections("viewers_per_stream"); got != 2 {
		t.Errorf("viewers_per_stream rejections = %v, want 2 (one WHEP, one RTSP)", got)
	}
	release()
	release() // a second call must not free a slot twice
	if rec := le.post(t, "cam", "10.0.0.2", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("after release: %d %s", rec.Code, rec.Body)
	}
	if _, err := rtsp("10.0.0.3"); err == nil {
		t.Error("the slot was freed twice")
	}
}

// A slow body holds a connection, never a slot: the offer is read in full
// before admission, so while one client trickles its body byte by byte,
// the gateway's only publisher slot stays free for a real publisher.
func TestSlowBodyHoldsNoSlot(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{Publishers: 1}, true)
	body, feed := io.Pipe()
	slow := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/p/slow", body)
		req.Header.Set("Content-Type", "application/sdp")
		req.RemoteAddr = "192.0.2.66:1"
		rec := httptest.NewRecorder()
		le.e.ServeHTTP(rec, req)
		slow <- rec
	}()
	if _, err := feed.Write([]byte("v")); err != nil { // the handler is reading now
		t.Fatal(err)
	}
	if rec := le.post(t, "real", "192.0.2.1", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("a publisher while a slow body is read: %d %s", rec.Code, rec.Body)
	}
	_ = feed.Close()
	if rec := <-slow; rec.Code != http.StatusServiceUnavailable {
		t.Errorf("the slow body, once read: %d, want 503 (the slot is taken)", rec.Code)
	}
}

// Offers that never connect are capped per address and in total; a
// session leaves the pending counts when it connects.
func TestPendingOffers(t *testing.T) {
	le := newLimitedEcho(t, access.Limits{Publishers: 20, PendingPerIP: 2, PendingPublishers: 3}, true)
	for i := range 2 {
		if rec := le.post(t, "a"+strconv.Itoa(i), "192.0.2.1", "v=0"); rec.Code != http.StatusCreated {
			t.Fatalf("pending %d: %d", i, rec.Code)
		}
	}
	wantRefused(t, le.post(t, "a2", "192.0.2.1", "v=0"), http.StatusTooManyRequests)
	if rec := le.post(t, "b0", "192.0.2.2", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("other address: %d", rec.Code)
	}
	wantRefused(t, le.post(t, "b1", "192.0.2.2", "v=0"), http.StatusServiceUnavailable) // 3 pending in total
	le.session("1").Connect()
	waitCond(t, "the connected session to leave the pending counts", func() bool {
		return le.post(t, "a3", "192.0.2.1", "v=0").Code == http.StatusCreated
	})
	if le.rejections("pending_per_ip") < 1 || le.rejections("pending_publishers") < 1 {
		t.Errorf("pending refusals not counted: %v %v", le.rejections("pending_per_ip"), le.rejections("pending_publishers"))
	}
}

// A session's URL works only with the credential that created it, or an
// admin token for its stream.
func TestSessionBoundToCreator(t *testing.T) {
	le := newLimitedEchoAuth(t, access.Config{PublishTokens: []string{"alice", "mallory"}, AdminTokens: []string{"root"}},
		access.Limits{}, true)
	create := func(token string) string {
		req := httptest.NewRequest(http.MethodPost, "/p/cam", strings.NewReader("v=0"))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		le.e.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("POST: %d %s", rec.Code, rec.Body)
		}
		return rec.Header().Get("Location")
	}
	send := func(method, loc, token string) int {
		req := httptest.NewRequest(method, loc, strings.NewReader("a=candidate:1 1 udp 1 192.0.2.9 9 typ host\r\n"))
		req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
		req.Header.Set("If-Match", "*")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		le.e.ServeHTTP(rec, req)
		return rec.Code
	}
	loc := create("alice")
	for _, m := range []string{http.MethodPatch, http.MethodDelete} {
		if code := send(m, loc, "mallory"); code != http.StatusForbidden {
			t.Errorf("%s with another publish token: %d, want 403", m, code)
		}
	}
	if le.session(path.Base(loc)) == nil || isClosed(le.session(path.Base(loc)).Done()) {
		t.Fatal("another token ended the session")
	}
	if code := send(http.MethodPatch, loc, "alice"); code != http.StatusNoContent {
		t.Errorf("PATCH by its creator: %d", code)
	}
	if code := send(http.MethodDelete, loc, "alice"); code != http.StatusOK {
		t.Errorf("DELETE by its creator: %d", code)
	}
	loc = create("alice")
	if code := send(http.MethodDelete, loc, "root"); code != http.StatusOK {
		t.Errorf("DELETE by an admin: %d", code)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
