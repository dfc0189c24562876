package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
)

// receiver is a webhook endpoint that records what it got and answers
// with the statuses in plan, then 200.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	plan    []int
	got     []received
	arrived chan struct{}
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, plan ...int) *receiver {
	r := &receiver{t: t, plan: plan, arrived: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		status := http.StatusOK
		if len(r.plan) > 0 {
			status, r.plan = r.plan[0], r.plan[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		r.arrived <- struct{}{}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *receiver) wait(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-r.arrived:
		case <-time.After(5 * time.Second):
			r.t.Fatalf("webhook got %d requests, want %d", len(r.requests()), n)
		}
	}
}

func newDispatcher(t *testing.T, cfg Config) *Dispatcher {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// waitStats polls until cond holds on the dispatcher's counters.
func waitStats(t *testing.T, d *Dispatcher, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := d.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func streamInfo() live.StreamInfo {
	return live.StreamInfo{Name: "cam1", Session: "s1", Protocol: "whip", Remote: "127.0.0.1:5000",
		Started: time.Now().Add(-3 * time.Second),
		Tracks: []live.TrackInfo{
			{Kind: live.Video, Codec: live.VP8, Packets: 10, Bytes: 1000},
			{Kind: live.Audio, Codec: live.Opus, Packets: 5, Bytes: 200},
		}}
}

func TestSignedJSONDelivery(t *testing.T) {
	const secret = "s3cret"
	r := newReceiver(t)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL + "/hook?key=abc"}, Secret: secret})
	d.Emit(FromUnpublish(streamInfo()))
	r.wait(1)

	req := r.requests()[0]
	sig := req.header.Get(SignatureHeader)
	now := time.Now()
	if !regexp.MustCompile(`^t=\d+,v1=[0-9a-f]{64}$`).MatchString(sig) {
		t.Fatalf("signature %q is not t=<unix seconds>,v1=<hex HMAC-SHA256>", sig)
	}
	if err := Verify(secret, req.body, sig, SignatureTolerance, now); err != nil {
		t.Fatalf("signature %q does not verify: %v", sig, err)
	}
	if err := Verify("other", req.body, sig, SignatureTolerance, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("the wrong secret: %v", err)
	}
	if err := Verify(secret, append(req.body, ' '), sig, SignatureTolerance, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another body: %v", err)
	}
	// The time is signed: a replay later is refused, and moving t to now
	// breaks the signature.
	if err := Verify(secret, req.body, sig, SignatureTolerance, now.Add(6*time.Minute)); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed 6 minutes later: %v", err)
	}
	_, mac, _ := strings.Cut(sig, ",")
	moved := "t=" + strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10) + "," + mac
	if err := Verify(secret, req.body, moved, SignatureTolerance, now.Add(6*time.Minute)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("replayed with a new t: %v", err)
	}
	for _, bad := range []string{"", "sha256=" + strings.Repeat("0", 64), "t=x,v1=00", "t=1"} {
		if err := Verify(secret, req.body, bad, SignatureTolerance, now); !errors.Is(err, ErrNoSignature) {
			t.Errorf("header %q: %v", bad, err)
		}
	}
	if ct := req.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var ev struct {
		ID     string    `json:"id"`
		Type   string    `json:"type"`
		Time   time.Time `json:"time"`
		Stream string    `json:"stream"`
		Data   struct {
			Session    string `json:"session"`
			Protocol   string `json:"protocol"`
			DurationMS int64  `json:"duration_ms"`
			Bytes      uint64 `json:"bytes"`
			Tracks     []struct {
				Kind, Codec string
			} `json:"tracks"`
		} `json:"data"`
	}
	if err := json.Unmarshal(req.body, &ev); err != nil {
		t.Fatalf("body %s: %v", req.body, err)
	}
	if ev.Type != "publish.stopped" || ev.Stream != "cam1" || len(ev.ID) != 32 || time.Since(ev.Time) > time.Minute {
		t.Errorf("event %+v", ev)
	}
	if h := req.header.Get("X-Reel-Event"); h != "publish.stopped" {
		t.Errorf("X-Reel-Event %q", h)
	}
	if h := req.header.Get("X-Reel-Delivery"); h != ev.ID {
		t.Errorf("X-Reel-Delivery %q, event id %q", h, ev.ID)
	}
	if ev.Data.Session != "s1" || ev.Data.Protocol != "whip" || ev.Data.Bytes != 1200 ||
		ev.Data.DurationMS < 3000 || len(ev.Data.Tracks) != 2 || ev.Data.Tracks[0].Codec != "VP8" {
		t.Errorf("data %+v", ev.Data)
	}
	waitStats(t, d, "one delivery", func(s Stats) bool { return s.Delivered == 1 && s.Queued == 0 })
}

func TestUnsignedWithoutSecret(t *testing.T) {
	r := newReceiver(t)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL}})
	d.Emit(FromPublish(streamInfo()))
	r.wait(1)
	if sig := r.requests()[0].header.Get(SignatureHeader); sig != "" {
		t.Errorf("unsigned delivery has %s %q", SignatureHeader, sig)
	}
}

func TestRetriesWithBackoffUntilDelivered(t *testing.T) {
	r := newReceiver(t, 500, 503, 200)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL}, Backoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	d.Emit(FromPublish(streamInfo()))
	r.wait(3)
	s := waitStats(t, d, "delivered", func(s Stats) bool { return s.Delivered == 1 })
	if s.Retries != 2 || s.Failed != 0 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	reqs := r.requests()
	// Backoff doubles: >= 50 ms before the first retry, >= 100 ms before the second.
	if g1, g2 := reqs[1].at.Sub(reqs[0].at), reqs[2].at.Sub(reqs[1].at); g1 < 50*time.Millisecond || g2 < 100*time.Millisecond {
		t.Errorf("retry gaps %v, %v; want >= 50ms, >= 100ms", g1, g2)
	}
	if !bytes.Equal(reqs[0].body, reqs[2].body) {
		t.Error("a retry sent another body")
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	r := newReceiver(t, 500, 500, 500, 500, 500, 500)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL}, MaxAttempts: 3})
	d.Emit(FromPublish(streamInfo()))
	s := waitStats(t, d, "failed", func(s Stats) bool { return s.Failed == 1 })
	if s.Delivered != 0 || s.Retries != 2 || s.Queued != 0 {
		t.Errorf("stats %+v", s)
	}
	time.Sleep(150 * time.Millisecond)
	if n := len(r.requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestClientErrorIsNotRetried(t *testing.T) {
	r := newReceiver(t, 400)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL}})
	d.Emit(FromPublish(streamInfo()))
	s := waitStats(t, d, "failed", func(s Stats) bool { return s.Failed == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(r.requests()); n != 1 || s.Retries != 0 {
		t.Errorf("%d attempts, stats %+v; a 400 must not be retried", n, s)
	}
}

func TestFailingWebhookDoesNotHoldUpOthers(t *testing.T) {
	bad := newReceiver(t, 500, 500, 500, 500)
	good := newReceiver(t)
	d := newDispatcher(t, Config{Webhooks: []string{bad.srv.URL, good.srv.URL}, MaxAttempts: 3,
		Backoff: time.Second, MaxBackoff: time.Second})
	start := time.Now()
	d.Emit(FromPublish(streamInfo()))
	d.Emit(FromUnpublish(streamInfo()))
	good.wait(2)
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Errorf("the good webhook waited %v behind the failing one's backoff", el)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	d := newDispatcher(t, Config{Webhooks: []string{srv.URL}, QueueSize: 2})
	t.Cleanup(func() { close(release) }) // runs before d.Close
	for i := 0; i < 10; i++ {
		d.Emit(FromPublish(streamInfo()))
	}
	// One delivery is in flight (still counted as queued) and one waits:
	// the other eight are dropped without blocking Emit.
	s := d.Stats()
	if s.Emitted != 10 || s.Dropped != 8 || s.Queued != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	r := newReceiver(t)
	d := newDispatcher(t, Config{Webhooks: []string{r.srv.URL}})
	for i := 0; i < 5; i++ {
		d.Emit(FromRecording(recorder.Info{ID: "cam1_x", Stream: "cam1", State: recorder.StateFinished}))
	}
	d.Close()
	d.Close()
	if n := len(r.requests()); n != 5 {
		t.Errorf("%d delivered before Close returned, want 5", n)
	}
	d.Emit(FromPublish(streamInfo())) // after Close: dropped, no panic
	if s := d.Stats(); s.Delivered != 5 || s.Dropped != 1 {
		t.Errorf("stats %+v", s)
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID    string `json:"id"`
			State string `json:"state"`
			URL   string `json:"url"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.requests()[0].body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "recording.finished" || ev.Data.ID != "cam1_x" || ev.Data.State != "finished" || ev.Data.URL != "/api/v1/recordings/cam1_x/file" {
		t.Errorf("recording event %+v", ev)
	}
}

func TestCloseGivesUpAtDrainTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	d := newDispatcher(t, Config{Webhooks: []string{srv.URL}, DrainTimeout: 100 * time.Millisecond, Timeout: 50 * time.Millisecond})
	d.Emit(FromPublish(streamInfo()))
	d.Emit(FromPublish(streamInfo()))
	start := time.Now()
	d.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v", el)
	}
	if s := d.Stats(); s.Queued != 0 || s.Delivered != 0 || s.Failed+s.Dropped != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestEventsAreLoggedWithoutWebhooks(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	d, err := New(Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Emit(FromPublish(streamInfo()))
	mu.Lock()
	defer mu.Unlock()
	if out := buf.String(); !strings.Contains(out, "type=publish.started") || !strings.Contains(out, "stream=cam1") {
		t.Errorf("log %q", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestRejectsBadWebhookURLs(t *testing.T) {
	for _, u := range []string{"ftp://x/hook", "/relative", "http://", "://bad"} {
		if _, err := New(Config{Webhooks: []string{u}}); err == nil {
			t.Errorf("webhook %q accepted", u)
		}
	}
	_, err := New(Config{Webhooks: []string{"ftp://user:pw@x/hook?token=t"}})
	if err == nil || strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "token=t") {
		t.Errorf("error %v shows the URL's credentials", err)
	}
}

func TestRedirectIsAFailureNotAGet(t *testing.T) {
	var gets int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets++
			mu.Unlock()
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	d := newDispatcher(t, Config{Webhooks: []string{srv.URL}})
	d.Emit(FromPublish(streamInfo()))
	s := waitStats(t, d, "failed", func(s Stats) bool { return s.Failed == 1 })
	mu.Lock()
	defer mu.Unlock()
	if gets != 0 || s.Retries != 0 {
		t.Errorf("redirect followed with %d GETs, %d retries", gets, s.Retries)
	}
}

// The meeting events point at the manifest whose SHA-256 meeting.ended
// carries: what that URL serves is what the checksum is of.
func TestFromMeeting(t *testing.T) {
	m := meetings.Manifest{Meeting: "board-42", ID: "board-42_20260101T090000Z", Participants: []meetings.Participant{{Name: "alice"}}}
	started, ended := FromMeeting(meetings.Started, m, "abc"), FromMeeting(meetings.Ended, m, "abc")
	for _, e := range []Event{started, ended} {
		d := e.Data.(MeetingData)
		if d.ManifestURL != "/api/v1/meetings/board-42_20260101T090000Z/manifest.json" || e.Stream != "board-42" || d.Participants[0] != "alice" {
			t.Errorf("%s: %+v", e.Type, d)
		}
	}
	if started.Type != MeetingStarted || started.Data.(MeetingData).ManifestSHA256 != "" ||
		ended.Type != MeetingEnded || ended.Data.(MeetingData).ManifestSHA256 != "abc" {
		t.Errorf("started %+v, ended %+v", started, ended)
	}
}
