package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeSession is a session the limiter can watch end.
type fakeSession struct{ done chan struct{} }

func (f *fakeSession) ETag() string { return `"x"` }
func (f *fakeSession) Patch(context.Context, string, []byte) ([]byte, string, error) {
	return nil, `"x"`, nil
}
func (f *fakeSession) Close()                { close(f.done) }
func (f *fakeSession) Done() <-chan struct{} { return f.done }

// limitedEcho serves POST /p/:stream through the limiter's middleware; each
// 201 opens a fake session the test can end.
type limitedEcho struct {
	e    *echo.Echo
	lim  *limiter
	mu   sync.Mutex
	sess map[string]*fakeSession
	n    int
}

func newLimitedEcho(cfg Limits, publish bool) *limitedEcho {
	le := &limitedEcho{e: echo.New(), lim: newLimiter(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), sess: map[string]*fakeSession{}}
	lookup := func(stream, id string) (peerSession, error) {
		le.mu.Lock()
		defer le.mu.Unlock()
		return le.sess[id], nil
	}
	le.e.POST("/p/:stream", func(c echo.Context) error {
		if _, answered, err := readBody(c, 1<<20); answered {
			return err
		}
		le.mu.Lock()
		le.n++
		id := strconv.Itoa(le.n)
		le.sess[id] = &fakeSession{done: make(chan struct{})}
		le.mu.Unlock()
		c.Response().Header().Set("Location", "/p/"+c.Param("stream")+"/"+id)
		return c.NoContent(http.StatusCreated)
	}, le.lim.rate, le.lim.body, le.lim.sessions(publish, lookup))
	return le
}

func (le *limitedEcho) post(t *testing.T, stream, ip, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/p/"+stream, strings.NewReader(body))
	req.RemoteAddr = ip + ":1234"
	req.Header.Set("X-Forwarded-For", "10.9.9.9") // must not be trusted
	rec := httptest.NewRecorder()
	le.e.ServeHTTP(rec, req)
	return rec
}

func (le *limitedEcho) end(id string) {
	le.mu.Lock()
	s := le.sess[id]
	le.mu.Unlock()
	s.Close()
}

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
	le := newLimitedEcho(Limits{RequestRate: 0.001, RequestBurst: 3}, true)
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
	if n := counterValue(le.lim.rejected.WithLabelValues("request_rate")); n != 1 {
		t.Errorf("request_rate rejections counted %v, want 1", n)
	}
}

func TestSessionsPerIPAndPublishers(t *testing.T) {
	le := newLimitedEcho(Limits{SessionsPerIP: 2, Publishers: 3}, true)
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
	if n := counterValue(le.lim.rejected.WithLabelValues("publishers")); n < 1 {
		t.Errorf("publishers rejections counted %v", n)
	}
}

func TestViewerLimits(t *testing.T) {
	le := newLimitedEcho(Limits{ViewersPerStream: 2, Viewers: 3}, false)
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
	le := newLimitedEcho(Limits{SessionsPerIP: 1, MaxBodyBytes: 8}, true)
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
	le := newLimitedEcho(Limits{MaxBodyBytes: 8}, true)
	req := httptest.NewRequest(http.MethodPost, "/p/s", io.MultiReader(strings.NewReader(strings.Repeat("x", 100))))
	req.ContentLength = -1
	rec := httptest.NewRecorder()
	le.e.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked large body: %d %s", rec.Code, rec.Body)
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

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// An RTSP reader admitted through AdmitViewer takes a viewer slot that a
// WHEP POST then cannot have, and gives it back on release.
func TestAdmitViewerSharesTheViewerLimits(t *testing.T) {
	le := newLimitedEcho(Limits{ViewersPerStream: 1, SessionsPerIP: 5}, false)
	s := &Server{lim: le.lim}

	release, err := s.AdmitViewer("10.0.0.1", "cam")
	if err != nil {
		t.Fatalf("first reader: %v", err)
	}
	wantRefused(t, le.post(t, "cam", "10.0.0.2", "v=0"), http.StatusServiceUnavailable)
	if _, err := s.AdmitViewer("10.0.0.3", "cam"); err == nil {
		t.Error("a second RTSP reader got the stream's only slot")
	} else if ra, ok := err.(interface{ RetryAfter() time.Duration }); !ok || ra.RetryAfter() <= 0 {
		t.Errorf("refusal %v carries no Retry-After", err)
	}
	if got := counterValue(le.lim.rejected.WithLabelValues("viewers_per_stream")); got != 2 {
		t.Errorf("viewers_per_stream rejections = %v, want 2 (one WHEP, one RTSP)", got)
	}
	release()
	release() // a second call must not free a slot twice
	if rec := le.post(t, "cam", "10.0.0.2", "v=0"); rec.Code != http.StatusCreated {
		t.Fatalf("after release: %d %s", rec.Code, rec.Body)
	}
	if _, err := s.AdmitViewer("10.0.0.3", "cam"); err == nil {
		t.Error("the slot was freed twice")
	}
}
