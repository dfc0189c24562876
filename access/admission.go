package access

import (
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limits bound what one client, and all clients together, may open, so a
// flood or a leaked stream key cannot take the gateway from everyone else.
// A zero field means no limit; DefaultLimits are the shipped values.
type Limits struct {
	// MaxBodyBytes bounds a POST or PATCH body (413 beyond).
	MaxBodyBytes int64
	// Publishers bounds live publishers in total (503).
	Publishers int
	// ViewersPerStream and Viewers bound live viewers (WHEP and RTSP) of
	// one stream and in total (503).
	ViewersPerStream int
	Viewers          int
	// SessionsPerIP bounds live WHIP, WHEP and RTSP sessions from one
	// address (429).
	SessionsPerIP int
	// PendingPerIP bounds the publishers (WHIP) of one address that were
	// answered but have not connected yet (429). Viewers are not counted:
	// several behind one NAT may well press play at once, and a viewer
	// costs the same connected or not (SessionsPerIP bounds both).
	PendingPerIP int
	// PendingPublishers bounds unconnected publishers in total (503), so
	// offers that never connect hold at most this many of the Publishers
	// slots; DefaultPendingPublishers derives it from Publishers.
	PendingPublishers int
	// RequestRate is how many POST, PATCH and DELETE requests per second
	// one address may make, with bursts of RequestBurst (RFC 9725 §7; 429).
	RequestRate  float64
	RequestBurst int
	// AuthFailures is how many wrong credentials one address may send in
	// a burst; one more is allowed every AuthFailureRefill. Beyond, its
	// requests with a credential are refused (429, RTSP 503) until then.
	AuthFailures      int
	AuthFailureRefill time.Duration
	// MaxSchedLag refuses new sessions (503) while the gateway's
	// goroutines wait longer than this for a CPU (the 99th percentile
	// over 2 s): saturated, it would lose media of the sessions it has.
	MaxSchedLag time.Duration
	// MaxInputLag refuses new sessions (503) while the gateway is behind
	// its input (Gate.WatchInput): publishers' packets waiting longer
	// than this in its WebRTC socket, or the socket dropping or half
	// full; 0 turns the watch off.
	MaxInputLag time.Duration
}

// DefaultLimits are generous for one gateway and still stop a flood.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 64 << 10, Publishers: 100, ViewersPerStream: 500, Viewers: 2000,
		SessionsPerIP: 50, PendingPerIP: 4, PendingPublishers: DefaultPendingPublishers(100),
		RequestRate: 10, RequestBurst: 40, AuthFailures: 10, AuthFailureRefill: 6 * time.Second,
		MaxSchedLag: DefaultMaxSchedLag, MaxInputLag: DefaultMaxInputLag}
}

// DefaultMaxInputLag is how long publishers' packets may wait in the
// gateway's socket before new sessions are refused: a gateway keeping up
// reads them within milliseconds; a second is a backlog.
const DefaultMaxInputLag = time.Second

// DefaultMaxSchedLag is the scheduling lag past which new sessions are
// refused: an idle gateway's 99th percentile stays under 5 ms, and one
// recording 100 publishers has a median of about 4 ms and a 90th
// percentile of about 35 ms (docs/BENCHMARKS.md, "Meetings"). A saturated
// machine does not always show here: see there.
const DefaultMaxSchedLag = 100 * time.Millisecond

// DefaultPendingPublishers is the default cap on unconnected publishers
// for a Publishers limit: a tenth of it, at least 10 (0, no limit, when
// Publishers is 0).
func DefaultPendingPublishers(publishers int) int {
	if publishers <= 0 {
		return 0
	}
	return max(10, publishers/10)
}

// Retry-After values: capacity frees up as sessions end; a pending
// session connects or ends within the connect timeout; a client over its
// rate is told exactly when its next request fits.
const (
	retryCapacity = 10 * time.Second
	retrySessions = 30 * time.Second
	retryPending  = 15 * time.Second
	// limiterIdle forgets an address's rate state after this long unused.
	limiterIdle = 10 * time.Minute
)

// admission enforces Limits and counts what it refused.
type admission struct {
	cfg      Limits
	log      *slog.Logger
	rejected *prometheus.CounterVec

	mu           sync.Mutex
	rates        *buckets // requests
	failures     *buckets // wrong credentials
	perIP        map[string]int
	pendingPerIP map[string]int
	pubs         int
	pendingPubs  int
	viewers      int
	perStream    map[string]int

	lag   *schedLag   // nil without Limits.MaxSchedLag
	input *inputWatch // nil until Gate.WatchInput, or without Limits.MaxInputLag
}

func newAdmission(cfg Limits, log *slog.Logger) *admission {
	refill := rate.Inf
	if cfg.AuthFailureRefill > 0 {
		refill = rate.Every(cfg.AuthFailureRefill)
	}
	a := &admission{cfg: cfg, log: log, perIP: map[string]int{}, pendingPerIP: map[string]int{}, perStream: map[string]int{},
		rates:    newBuckets(rate.Limit(cfg.RequestRate), max(cfg.RequestBurst, 1)),
		failures: newBuckets(refill, max(cfg.AuthFailures, 1)),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reel_limit_rejections_total",
			Help: "Requests refused because a limit was reached, by limit.",
		}, []string{"limit"})}
	if cfg.MaxSchedLag > 0 {
		a.lag = newSchedLag()
		go a.lag.run()
	}
	return a
}

// refuse counts and logs a refusal and returns it.
func (a *admission) refuse(r Request, e *LimitError) error {
	a.rejected.WithLabelValues(e.Limit).Inc()
	a.log.Warn("request refused: limit reached", "limit", e.Limit, "peer", r.Addr, "protocol", r.Protocol, "stream", r.Stream)
	return e
}

// buckets are token buckets per address, forgotten after limiterIdle
// unused. Callers hold admission.mu.
type buckets struct {
	limit     rate.Limit
	burst     int
	byAddr    map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newBuckets(limit rate.Limit, burst int) *buckets {
	return &buckets{limit: limit, burst: burst, byAddr: map[string]*bucket{}}
}

func (b *buckets) get(addr string, now time.Time) *rate.Limiter {
	if now.Sub(b.lastSweep) > limiterIdle {
		for k, v := range b.byAddr {
			if now.Sub(v.seen) > limiterIdle {
				delete(b.byAddr, k)
			}
		}
		b.lastSweep = now
	}
	v := b.byAddr[addr]
	if v == nil {
		v = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.byAddr[addr] = v
	}
	v.seen = now
	return v.lim
}

// take spends one token of addr's bucket, or says how long until one is
// there (and spends nothing).
func (b *buckets) take(addr string, now time.Time) time.Duration {
	res := b.get(addr, now).ReserveN(now, 1)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now)
	}
	return delay
}

// wait is how long until addr's bucket holds a token; 0 if it does now.
func (b *buckets) wait(addr string, now time.Time) time.Duration {
	lim := b.get(addr, now)
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	if lim.Limit() == rate.Inf {
		return 0
	}
	return time.Duration(math.Ceil(missing / float64(lim.Limit()) * float64(time.Second)))
}

// AllowRequest spends one of r.Addr's requests (POST, PATCH, DELETE). It
// runs before authorization, so that guessing tokens is slowed down too.
func (g *Gate) AllowRequest(r Request) error {
	a := g.adm
	if a.cfg.RequestRate <= 0 {
		return nil
	}
	a.mu.Lock()
	delay := a.rates.take(r.Addr, time.Now())
	a.mu.Unlock()
	if delay > 0 {
		return a.refuse(r, &LimitError{Limit: "request_rate", Retry: delay, PerClient: true,
			Detail: fmt.Sprintf("too many requests from your address: at most %g per second; try again shortly", a.cfg.RequestRate)})
	}
	return nil
}

// checkFailures refuses r while its address has used up its wrong
// credentials (Limits.AuthFailures).
func (a *admission) checkFailures(r Request) error {
	if a.cfg.AuthFailures <= 0 {
		return nil
	}
	a.mu.Lock()
	wait := a.failures.wait(r.Addr, time.Now())
	a.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	return a.refuse(r, &LimitError{Limit: "auth_failures", Retry: wait, PerClient: true,
		Detail: fmt.Sprintf("too many wrong tokens from your address; credentials are not checked again for %d s", int(math.Ceil(wait.Seconds())))})
}

// countFailure spends one of r.Addr's wrong credentials.
func (a *admission) countFailure(r Request) {
	if a.cfg.AuthFailures <= 0 {
		return
	}
	a.mu.Lock()
	a.failures.take(r.Addr, time.Now())
	a.mu.Unlock()
	a.log.Warn("wrong credentials", "peer", r.Addr, "protocol", r.Protocol, "stream", r.Stream, "action", r.Action)
}

// Slot is a session's place in the limits, from the moment it is admitted
// until Release. A slot admitted pending (AdmitPending) also counts
// against the pending limits until Connected.
type Slot struct {
	a       *admission
	r       Request
	publish bool
	pending bool // guarded by a.mu
	once    sync.Once
}

// Admit reserves a session slot for r: a publisher's for Publish, a
// viewer's (WHEP or RTSP) otherwise. release gives it back and is safe to
// call more than once. A refusal is a *LimitError, counted and logged.
func (g *Gate) Admit(r Request) (release func(), err error) {
	s, err := g.adm.admit(r, false)
	if err != nil {
		return nil, err
	}
	return s.Release, nil
}

// AdmitPending is Admit for a WHIP or WHEP session that has been offered
// but has not connected: a publisher also counts against
// Limits.PendingPerIP and Limits.PendingPublishers until its Connected.
func (g *Gate) AdmitPending(r Request) (*Slot, error) { return g.adm.admit(r, true) }

// overloaded is why new sessions are refused for the gateway's load, or
// "". Callers hold a.mu.
func (a *admission) overloaded() string {
	if a.lag != nil {
		if lag := a.lag.get(); lag > a.cfg.MaxSchedLag {
			return fmt.Sprintf("its work waits up to %v for a CPU (limit %v)", lag.Round(time.Millisecond), a.cfg.MaxSchedLag)
		}
	}
	if a.input != nil {
		if why := a.input.behind(time.Now()); why != "" {
			return "it is behind its input: " + why
		}
	}
	return ""
}

func (a *admission) admit(r Request, pending bool) (*Slot, error) {
	publish := r.Action == Publish
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.cfg.SessionsPerIP; n > 0 && a.perIP[r.Addr] >= n {
		return nil, a.refuse(r, &LimitError{Limit: "sessions_per_ip", Retry: retrySessions, PerClient: true,
			Detail: fmt.Sprintf("your address already has %d sessions open, the most allowed; end one first", n)})
	}
	pending = pending && publish // viewers are not held to the pending limits
	if why := a.overloaded(); why != "" {
		return nil, a.refuse(r, &LimitError{Limit: "overloaded", Retry: retryCapacity,
			Detail: fmt.Sprintf("the gateway is overloaded: %s, and a new session would cost its live ones media; try again later", why)})
	}
	if n := a.cfg.PendingPerIP; pending && n > 0 && a.pendingPerIP[r.Addr] >= n {
		return nil, a.refuse(r, &LimitError{Limit: "pending_per_ip", Retry: retryPending, PerClient: true,
			Detail: fmt.Sprintf("your address already has %d sessions that have not connected, the most allowed; connect them (ICE and DTLS) or end them first", n)})
	}
	if publish {
		if n := a.cfg.Publishers; n > 0 && a.pubs >= n {
			return nil, a.refuse(r, &LimitError{Limit: "publishers", Retry: retryCapacity,
				Detail: fmt.Sprintf("the gateway is at its limit of %d live publishers; try again later", n)})
		}
		if n := a.cfg.PendingPublishers; pending && n > 0 && a.pendingPubs >= n {
			return nil, a.refuse(r, &LimitError{Limit: "pending_publishers", Retry: retryPending,
				Detail: fmt.Sprintf("the gateway already has %d publishers that have not connected yet, the most allowed; try again shortly", n)})
		}
		a.pubs++
	} else {
		if n := a.cfg.Viewers; n > 0 && a.viewers >= n {
			return nil, a.refuse(r, &LimitError{Limit: "viewers", Retry: retryCapacity,
				Detail: fmt.Sprintf("the gateway is at its limit of %d viewers; try again later", n)})
		}
		if n := a.cfg.ViewersPerStream; n > 0 && a.perStream[r.Stream] >= n {
			return nil, a.refuse(r, &LimitError{Limit: "viewers_per_stream", Retry: retryCapacity,
				Detail: fmt.Sprintf("this stream is at its limit of %d viewers; try again later", n)})
		}
		a.viewers++
		a.perStream[r.Stream]++
	}
	a.perIP[r.Addr]++
	s := &Slot{a: a, r: r, publish: publish, pending: pending}
	if pending {
		a.pendingPerIP[r.Addr]++
		a.pendingPubs++
	}
	return s, nil
}

// Connected moves the slot out of the pending counts: its peer has
// connected. Safe to call more than once, and after Release.
func (s *Slot) Connected() {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	s.leavePendingLocked()
}

func (s *Slot) leavePendingLocked() {
	if !s.pending {
		return
	}
	s.pending = false
	a := s.a
	if a.pendingPerIP[s.r.Addr]--; a.pendingPerIP[s.r.Addr] <= 0 {
		delete(a.pendingPerIP, s.r.Addr)
	}
	a.pendingPubs--
}

// Release gives the slot back; safe to call more than once.
func (s *Slot) Release() {
	s.once.Do(func() {
		a := s.a
		a.mu.Lock()
		defer a.mu.Unlock()
		s.leavePendingLocked()
		if a.perIP[s.r.Addr]--; a.perIP[s.r.Addr] <= 0 {
			delete(a.perIP, s.r.Addr)
		}
		if s.publish {
			a.pubs--
			return
		}
		a.viewers--
		if a.perStream[s.r.Stream]--; a.perStream[s.r.Stream] <= 0 {
			delete(a.perStream, s.r.Stream)
		}
	})
}
