// Package access is the gateway's policy on who may do what, the same for
// every protocol: a Request (an action on a stream, the credentials sent,
// the client's address) is checked against static, per-stream and JWT
// tokens, and admitted against the session and request-rate limits and
// the gateway's own load. WHIP, WHEP, RTSP, HLS and the API all ask a
// Gate the same way.
//
// Files: access.go the Gate and its errors, tokens.go static tokens,
// jwt.go signed tokens, admission.go the limits, overload.go the
// scheduling lag that refuses new sessions when the CPUs are saturated,
// input.go the input watch that refuses them when the gateway falls behind
// its publishers' media, clientip.go the one way a client's address is read.
package access

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Action is what a request wants to do.
type Action int

// Actions, from least to most powerful.
const (
	Read Action = iota
	Publish
	Admin
)

func (a Action) String() string {
	switch a {
	case Read:
		return "read"
	case Publish:
		return "publish"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Protocol names where a request came from, for logs and metrics.
type Protocol string

// Protocols a Gate is asked from.
const (
	WHIP Protocol = "whip"
	WHEP Protocol = "whep"
	RTSP Protocol = "rtsp"
	HLS  Protocol = "hls"
	API  Protocol = "api"
	// Metrics is /metrics: a read of the whole gateway that
	// Config.PublicMetrics, not PublicRead, opens.
	Metrics Protocol = "metrics"
)

// Request is one question to the Gate.
type Request struct {
	Action   Action
	Stream   string // "" for requests on no stream (the API's admin calls)
	Protocol Protocol
	// Token is the credential sent: a bearer token, ?token=, or RTSP's
	// Basic password; "" when none was sent.
	Token string
	// Addr is the client's address, without port (ClientIP).
	Addr string
}

// ErrNoToken and ErrBadToken are Authorize's refusals: the first asks the
// client for credentials (401 with a challenge), the second refuses them.
var (
	ErrNoToken  = errors.New("this needs a token: send Authorization: Bearer <token>")
	ErrBadToken = errors.New("the token is not valid for this stream and action")
)

// Gate answers Requests. It is safe for concurrent use.
type Gate struct {
	cfg Config
	adm *admission
}

// New checks cfg (reading the JWT public key) and returns a Gate enforcing
// limits; zero fields of limits mean no limit.
func New(cfg Config, limits Limits, log *slog.Logger) (*Gate, error) {
	if err := cfg.JWT.prepare(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Gate{cfg: cfg, adm: newAdmission(limits, log)}, nil
}

// AuthEnabled reports whether any token is configured.
func (g *Gate) AuthEnabled() bool { return g.cfg.Enabled() }

// PublicRead reports whether auth.public_read lets anyone watch.
func (g *Gate) PublicRead() bool { return g.cfg.PublicRead }

// Allows is the policy alone: whether r's token (or none, where that is
// enough) allows its action on its stream. It counts nothing; use it to
// decide what to show, and Authorize to let a request in.
func (g *Gate) Allows(r Request) bool {
	c := &g.cfg
	switch {
	case !c.Enabled():
		return true
	case r.Protocol == Metrics:
		return c.PublicMetrics || c.allows(r.Token, Read, "")
	case r.Action == Read && c.PublicRead:
		return true
	}
	return c.allows(r.Token, r.Action, r.Stream)
}

// IsAdmin reports whether auth is on and token may administer stream (""
// for the gateway as a whole). With auth off nobody is: what only an
// admin may see stays hidden.
func (g *Gate) IsAdmin(token, stream string) bool {
	return g.cfg.Enabled() && g.cfg.allows(token, Admin, stream)
}

// Authorize lets r in or says why not: nil, ErrNoToken (nothing was sent
// where something is needed), ErrBadToken, or a *LimitError when r.Addr
// has sent too many wrong credentials lately (Limits.AuthFailures). Only
// a credential that was sent and refused counts as a failure, so the
// first, credential-less request of a challenge costs nothing.
func (g *Gate) Authorize(r Request) error {
	anon := r
	anon.Token = ""
	if g.Allows(anon) {
		return nil
	}
	if r.Token == "" {
		return ErrNoToken
	}
	if err := g.adm.checkFailures(r); err != nil {
		return err
	}
	if g.Allows(r) {
		return nil
	}
	g.adm.countFailure(r)
	return ErrBadToken
}

// Limits returns the limits the Gate enforces.
func (g *Gate) Limits() Limits { return g.adm.cfg }

// Collectors are the gate's metrics: refusals by limit, the scheduling
// lag when Limits.MaxSchedLag is set, and the input's state once
// WatchInput runs (call it first).
func (g *Gate) Collectors() []prometheus.Collector {
	cs := []prometheus.Collector{g.adm.rejected}
	if g.adm.lag != nil {
		cs = append(cs, g.adm.lag.collector())
	}
	g.adm.mu.Lock()
	defer g.adm.mu.Unlock()
	if g.adm.input != nil {
		cs = append(cs, g.adm.input.collectors()...)
	}
	return cs
}

// Overloaded says why the gate refuses new sessions for the gateway's load
// (its scheduling lag, or its input), or "" when it does not. In a
// cluster, such a node places new streams on others.
func (g *Gate) Overloaded() string {
	g.adm.mu.Lock()
	defer g.adm.mu.Unlock()
	return g.adm.overloaded()
}

// WatchInput has the gate read probe every half second and refuse new
// sessions while the gateway is behind its input (input.go). Without
// Limits.MaxInputLag, or called a second time, it does nothing.
func (g *Gate) WatchInput(probe func() Input) {
	a := g.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.MaxInputLag <= 0 || a.input != nil {
		return
	}
	a.input = newInputWatch(a.cfg.MaxInputLag, probe)
	go a.input.run()
}

// Close stops measuring the scheduling lag and watching the input. Safe
// to call twice.
func (g *Gate) Close() {
	if g.adm.lag != nil {
		g.adm.lag.close()
	}
	g.adm.mu.Lock()
	defer g.adm.mu.Unlock()
	if g.adm.input != nil {
		g.adm.input.close()
	}
}

// CountRejection counts a refusal decided outside the Gate (a body over
// Limits.MaxBodyBytes, say) under limit.
func (g *Gate) CountRejection(limit string) { g.adm.rejected.WithLabelValues(limit).Inc() }

// LimitError is a refusal by a limit: which one, a sentence for the
// client, and when to try again.
type LimitError struct {
	Limit  string
	Detail string
	Retry  time.Duration
	// PerClient is set when the client used up its own share (HTTP 429),
	// clear when the gateway is full for everyone (503).
	PerClient bool
}

func (e *LimitError) Error() string { return e.Detail }

// RetryAfter is how long the client should wait before trying again.
func (e *LimitError) RetryAfter() time.Duration { return e.Retry }
