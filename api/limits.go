package api

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limits bound what one client, and all clients together, may open, so a
// flood or a leaked stream key cannot take the gateway from everyone else.
// A zero field means no limit; DefaultLimits are the shipped values.
type Limits struct {
	// MaxBodyBytes bounds a POST or PATCH body (413 beyond).
	MaxBodyBytes int64
	// Publishers bounds live WHIP sessions in total (503).
	Publishers int
	// ViewersPerStream and Viewers bound live WHEP sessions of one stream
	// and in total (503).
	ViewersPerStream int
	Viewers          int
	// SessionsPerIP bounds live WHIP plus WHEP sessions from one address
	// (429).
	SessionsPerIP int
	// RequestRate is how many POST, PATCH and DELETE requests per second
	// one address may make, with bursts of RequestBurst (RFC 9725 §7; 429).
	RequestRate  float64
	RequestBurst int
}

// DefaultLimits are generous for one gateway and still stop a flood.
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 64 << 10, Publishers: 100, ViewersPerStream: 500, Viewers: 2000,
		SessionsPerIP: 50, RequestRate: 10, RequestBurst: 40}
}

// Retry-After values: capacity frees up as sessions end; a client over its
// rate is told exactly when its next request fits.
const (
	retryCapacity = 10 * time.Second
	retrySessions = 30 * time.Second
	// limiterIdle forgets an address's rate state after this long unused.
	limiterIdle = 10 * time.Minute
)

// limiter enforces Limits and counts what it refused.
type limiter struct {
	cfg      Limits
	log      *slog.Logger
	rejected *prometheus.CounterVec

	mu        sync.Mutex
	rates     map[string]*ipRate
	lastSweep time.Time
	perIP     map[string]int
	pubs      int
	viewers   int
	perStream map[string]int
}

type ipRate struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(cfg Limits, log *slog.Logger) *limiter {
	return &limiter{cfg: cfg, log: log, rates: map[string]*ipRate{}, perIP: map[string]int{}, perStream: map[string]int{},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reel_limit_rejections_total",
			Help: "Requests refused because a limit was reached, by limit.",
		}, []string{"limit"})}
}

// clientIP is the address the request came from. Forwarding headers are
// ignored: any client can write them, and a limit per forged address is
// no limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// refuse answers a request over a limit, logs and counts it.
func (l *limiter) refuse(c echo.Context, limit string, status int, retry time.Duration, detail string) error {
	l.rejected.WithLabelValues(limit).Inc()
	l.log.Warn("request refused: limit reached", "limit", limit, "peer", clientIP(c.Request()),
		"method", c.Request().Method, "path", c.Request().URL.Path)
	secs := max(int(math.Ceil(retry.Seconds())), 1)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return problem(c, status, detail)
}

// rate limits POST, PATCH and DELETE per address. It runs before auth, so
// guessing tokens is slowed down too.
func (l *limiter) rate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if l.cfg.RequestRate <= 0 {
			return next(c)
		}
		now := time.Now()
		ip := clientIP(c.Request())
		l.mu.Lock()
		if now.Sub(l.lastSweep) > limiterIdle {
			for k, r := range l.rates {
				if now.Sub(r.seen) > limiterIdle {
					delete(l.rates, k)
				}
			}
			l.lastSweep = now
		}
		r := l.rates[ip]
		if r == nil {
			r = &ipRate{lim: rate.NewLimiter(rate.Limit(l.cfg.RequestRate), max(l.cfg.RequestBurst, 1))}
			l.rates[ip] = r
		}
		r.seen = now
		res := r.lim.ReserveN(now, 1)
		delay := res.DelayFrom(now)
		if delay > 0 {
			res.CancelAt(now)
		}
		l.mu.Unlock()
		if delay > 0 {
			return l.refuse(c, "request_rate", http.StatusTooManyRequests, delay,
				fmt.Sprintf("too many requests from your address: at most %g per second; try again shortly", l.cfg.RequestRate))
		}
		return next(c)
	}
}

// body refuses bodies over MaxBodyBytes, by Content-Length at once and
// otherwise while reading (readBody answers 413).
func (l *limiter) body(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		max := l.cfg.MaxBodyBytes
		if max <= 0 {
			return next(c)
		}
		r := c.Request()
		if r.ContentLength > max {
			l.rejected.WithLabelValues("body_size").Inc()
			return problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", max))
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, max)
		return next(c)
	}
}

// errLimit is a refused admission: which limit, and the answer.
type errLimit struct {
	limit  string
	status int
	retry  time.Duration
	detail string
}

func (e *errLimit) Error() string { return e.detail }

// RetryAfter is how long the client should wait before trying again.
func (e *errLimit) RetryAfter() time.Duration { return e.retry }

// admit reserves a session slot for a new WHIP (publish) or WHEP session;
// release gives it back and is safe to call more than once.
func (l *limiter) admit(ip, stream string, publish bool) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.cfg.SessionsPerIP; n > 0 && l.perIP[ip] >= n {
		return nil, &errLimit{"sessions_per_ip", http.StatusTooManyRequests, retrySessions,
			fmt.Sprintf("your address already has %d sessions open, the most allowed; end one first", n)}
	}
	if publish {
		if n := l.cfg.Publishers; n > 0 && l.pubs >= n {
			return nil, &errLimit{"publishers", http.StatusServiceUnavailable, retryCapacity,
				fmt.Sprintf("the gateway is at its limit of %d live publishers; try again later", n)}
		}
		l.pubs++
	} else {
		if n := l.cfg.Viewers; n > 0 && l.viewers >= n {
			return nil, &errLimit{"viewers", http.StatusServiceUnavailable, retryCapacity,
				fmt.Sprintf("the gateway is at its limit of %d viewers; try again later", n)}
		}
		if n := l.cfg.ViewersPerStream; n > 0 && l.perStream[stream] >= n {
			return nil, &errLimit{"viewers_per_stream", http.StatusServiceUnavailable, retryCapacity,
				fmt.Sprintf("this stream is at its limit of %d viewers; try again later", n)}
		}
		l.viewers++
		l.perStream[stream]++
	}
	l.perIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.perIP[ip]--; l.perIP[ip] <= 0 {
				delete(l.perIP, ip)
			}
			if publish {
				l.pubs--
				return
			}
			l.viewers--
			if l.perStream[stream]--; l.perStream[stream] <= 0 {
				delete(l.perStream, stream)
			}
		})
	}, nil
}

// AdmitViewer reserves a viewer slot for a player the HTTP server does not
// see, an RTSP reader, under the WHEP limits: viewers per stream and in
// total, sessions per address. release gives the slot back. A refusal is
// counted in reel_limit_rejections_total; the caller logs it and answers
// in its own protocol, with the error's RetryAfter.
func (s *Server) AdmitViewer(ip, stream string) (release func(), err error) {
	release, err = s.lim.admit(ip, stream, false)
	var el *errLimit
	if errors.As(err, &el) {
		s.lim.rejected.WithLabelValues(el.limit).Inc()
	}
	return release, err
}

// sessions wraps a POST that opens a session: it reserves a slot first and
// holds it until the session ends (lookup finds it by its Location).
func (l *limiter) sessions(publish bool, lookup func(stream, id string) (peerSession, error)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			release, err := l.admit(clientIP(c.Request()), c.Param("stream"), publish)
			var el *errLimit
			if errors.As(err, &el) {
				return l.refuse(c, el.limit, el.status, el.retry, el.detail)
			}
			err = next(c)
			if c.Response().Status != http.StatusCreated {
				release()
				return err
			}
			sess, lerr := lookup(c.Param("stream"), path.Base(c.Response().Header().Get("Location")))
			if lerr != nil { // ended already
				release()
				return err
			}
			go func() {
				<-sess.Done()
				release()
			}()
			return err
		}
	}
}
