package events

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reel-gateway/reel/internal/id"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">", keyed with Config.Secret. The time is signed with the
// body, so a receiver that checks it against its clock (Verify,
// SignatureTolerance) refuses a request replayed later.
const SignatureHeader = "X-Reel-Signature"

// SignatureTolerance is how far from its own clock a receiver should
// accept a signature's time: clock skew and retries, not replays.
const SignatureTolerance = 5 * time.Minute

// Config configures a Dispatcher. Zero values take the defaults below.
type Config struct {
	// Webhooks are the URLs every event is POSTed to; none: events are
	// only logged.
	Webhooks []string
	// Secret keys the X-Reel-Signature HMAC; empty: requests are unsigned.
	Secret string
	// MaxAttempts bounds the tries per event and webhook (default 5).
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled after each
	// further failure up to MaxBackoff (defaults 1 s and 30 s).
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// QueueSize bounds the deliveries waiting to be made or retried
	// (default 1000); past it, new events are dropped and counted.
	QueueSize int
	// DrainTimeout is how long Close keeps delivering what is queued
	// (default 5 s), so the last recording.finished is not lost on shutdown.
	DrainTimeout time.Duration
	// Client sends the requests; if nil, a client with Timeout that does
	// not follow redirects.
	Client *http.Client
	Logger *slog.Logger
}

// Stats are the dispatcher's counters since it started.
type Stats struct {
	// Emitted counts events; Delivered and Failed count deliveries (one
	// per event and webhook) that succeeded or were given up.
	Emitted, Delivered, Failed uint64
	// Retries counts attempts after a delivery's first.
	Retries uint64
	// Dropped counts deliveries lost to a full queue or to shutdown.
	Dropped uint64
	// Queued is how many deliveries wait now.
	Queued int
}

// Dispatcher logs events and delivers them to the webhooks.
type Dispatcher struct {
	cfg     Config
	targets []*url.URL
	log     *slog.Logger

	queue chan delivery
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex // guards closed and the send to queue
	closed bool

	emitted, delivered, failed, retries, dropped atomic.Uint64
	waiting                                      atomic.Int64
}

// delivery is one event on its way to one webhook.
type delivery struct {
	ev      Event
	body    []byte
	target  *url.URL
	attempt int       // attempts made so far
	at      time.Time // when to try next
}

// New validates the configuration and starts the delivery goroutine.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.Backoff)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1000
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.Client == nil {
		// A redirect would turn the POST into a GET without the event:
		// report the 3xx instead, so the operator fixes the URL.
		cfg.Client = &http.Client{Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Dispatcher{cfg: cfg, log: cfg.Logger, queue: make(chan delivery, cfg.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, raw := range cfg.Webhooks {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook %q is not an http:// or https:// URL", redact(raw))
		}
		d.targets = append(d.targets, u)
	}
	go d.run()
	return d, nil
}

// Emit logs ev and queues it for every webhook; it never blocks, so hub
// and recorder hooks may call it. ID and Time are filled in when empty.
func (d *Dispatcher) Emit(ev Event) {
	if ev.ID == "" {
		ev.ID = id.New()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	d.emitted.Add(1)
	d.logEvent(ev)
	if len(d.targets) == 0 {
		return
	}
	body, err := json.Marshal(ev)
	if err != nil {
		d.log.Error("event not delivered: cannot encode it", "type", ev.Type, "error", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.targets {
		why := ""
		switch {
		case d.closed:
			why = "event not sent to a webhook: events are shutting down"
		case d.waiting.Load() >= int64(d.cfg.QueueSize):
			why = "event not sent to a webhook: the delivery queue is full"
		default:
			// waiting < QueueSize = cap(queue), so this never blocks.
			d.waiting.Add(1)
			d.queue <- delivery{ev: ev, body: body, target: t}
			continue
		}
		d.dropped.Add(1)
		d.log.Warn(why, "type", ev.Type, "event", ev.ID, "webhook", redact(t.String()))
	}
}

func (d *Dispatcher) logEvent(ev Event) {
	attrs := []any{"type", ev.Type, "stream", ev.Stream, "event", ev.ID}
	switch data := ev.Data.(type) {
	case PublishData:
		attrs = append(attrs, "session", data.Session, "protocol", data.Protocol)
		if ev.Type == PublishStopped {
			attrs = append(attrs, "duration_ms", data.DurationMS)
		}
	case RecordingData:
		attrs = append(attrs, "recording", data.ID, "state", data.State, "duration_ms", data.DurationMS, "size", data.Size)
	}
	d.log.Info("event", attrs...)
}

// Stats returns the counters; safe from any goroutine.
func (d *Dispatcher) Stats() Stats {
	return Stats{Emitted: d.emitted.Load(), Delivered: d.delivered.Load(), Failed: d.failed.Load(),
		Retries: d.retries.Load(), Dropped: d.dropped.Load(), Queued: int(d.waiting.Load())}
}

// Close stops taking events, spends up to DrainTimeout delivering what is
// queued (each once more, without backoff), and stops. Safe to call twice.
func (d *Dispatcher) Close() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.stop)
		<-d.done
	})
}

// run is the one delivery goroutine. Deliveries waiting for a retry sit in
// a heap ordered by time, so one failing webhook's backoff never holds up
// the others.
func (d *Dispatcher) run() {
	defer close(d.done)
	var pending deliveryHeap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wake <-chan time.Time
		if len(pending) > 0 {
			timer.Reset(time.Until(pending[0].at))
			wake = timer.C
		}
		select {
		case dl := <-d.queue:
			d.attempt(context.Background(), &pending, dl)
		case <-wake:
			for len(pending) > 0 && !pending[0].at.After(time.Now()) {
				d.attempt(context.Background(), &pending, heap.Pop(&pending).(delivery))
			}
		case <-d.stop:
			d.drain(pending)
			return
		}
	}
}

// drain tries every queued and pending delivery once more until the drain
// deadline; what is left is counted as dropped.
func (d *Dispatcher) drain(pending deliveryHeap) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.DrainTimeout)
	defer cancel()
	for {
		var dl delivery
		select {
		case dl = <-d.queue:
		default:
			if len(pending) == 0 {
				return
			}
			dl = heap.Pop(&pending).(delivery)
		}
		if ctx.Err() != nil {
			d.waiting.Add(-1)
			d.dropped.Add(1)
			continue
		}
		d.attempt(ctx, nil, dl) // nil pending: no retry after this one
	}
}

// attempt makes one try; a failure that may pass is pushed back on pending
// with its backoff, unless attempts are used up (or pending is nil).
func (d *Dispatcher) attempt(ctx context.Context, pending *deliveryHeap, dl delivery) {
	if dl.attempt > 0 {
		d.retries.Add(1)
	}
	dl.attempt++
	retryAfter, err := d.post(ctx, dl)
	if err == nil {
		d.waiting.Add(-1)
		d.delivered.Add(1)
		d.log.Debug("webhook delivered", "type", dl.ev.Type, "event", dl.ev.ID, "webhook", redact(dl.target.String()), "attempt", dl.attempt)
		return
	}
	var perm permanentError
	if !errors.As(err, &perm) && dl.attempt < d.cfg.MaxAttempts && pending != nil {
		wait := min(d.cfg.Backoff<<(dl.attempt-1), d.cfg.MaxBackoff)
		if retryAfter > 0 {
			wait = min(max(wait, retryAfter), d.cfg.MaxBackoff)
		}
		dl.at = time.Now().Add(wait)
		d.log.Debug("webhook failed, will retry", "type", dl.ev.Type, "event", dl.ev.ID, "webhook", redact(dl.target.String()),
			"attempt", dl.attempt, "retry_in", wait, "error", err)
		heap.Push(pending, dl)
		return
	}
	d.waiting.Add(-1)
	d.failed.Add(1)
	d.log.Warn("webhook delivery failed; giving up", "type", dl.ev.Type, "event", dl.ev.ID, "webhook", redact(dl.target.String()),
		"attempts", dl.attempt, "error", err)
}

// permanentError is a failure a retry cannot fix (a 4xx answer).
type permanentError struct{ error }

// post sends one request. A 2xx answer is success; 408, 425, 429 and 5xx
// are worth retrying (with Retry-After, if the receiver sent one); other
// answers are permanent failures.
func (d *Dispatcher) post(ctx context.Context, dl delivery) (retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.target.String(), bytes.NewReader(dl.body))
	if err != nil {
		return 0, permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reel-webhook/1")
	req.Header.Set("X-Reel-Event", string(dl.ev.Type))
	req.Header.Set("X-Reel-Delivery", dl.ev.ID)
	if d.cfg.Secret != "" {
		// Signed afresh for each attempt: a retry is sent with its own time.
		req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, time.Now(), dl.body))
	}
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		// The URL in a *url.Error may hold credentials; keep the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return 0, nil
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusTooManyRequests, s >= 500:
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
			retryAfter = time.Duration(secs) * time.Second
		}
		return retryAfter, fmt.Errorf("the webhook answered %s", resp.Status)
	default:
		return 0, permanentError{fmt.Errorf("the webhook answered %s", resp.Status)}
	}
}

// Sign returns the X-Reel-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Signature errors, from Verify.
var (
	ErrNoSignature  = errors.New("the request has no valid X-Reel-Signature (t=...,v1=...)")
	ErrBadSignature = errors.New("the signature does not match the body")
	ErrStale        = errors.New("the signature's time is too far from now: a replay, or a clock that is off")
)

// Verify checks an X-Reel-Signature header against body, in constant
// time, and that its time is within tolerance of now; receivers written
// in Go can use it (with SignatureTolerance).
func Verify(secret string, body []byte, header string, tolerance time.Duration, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	want := mac(secret, ts, body)
	ok := false
	for _, sig := range sigs {
		ok = hmac.Equal(want, sig) || ok
	}
	if !ok {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}

// redact drops credentials and the query from a URL for logs: webhook URLs
// often carry a token.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// deliveryHeap orders deliveries by their next attempt.
type deliveryHeap []delivery

func (h deliveryHeap) Len() int           { return len(h) }
func (h deliveryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deliveryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)        { *h = append(*h, x.(delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
