// Package api is Reel's HTTP face: WHIP and WHEP signaling (RFC 9725), the
// streams and recordings API, HLS, metrics and the web UI, on one echo
// server. Handlers translate HTTP to the lower packages and back; status
// codes and problem+json live here and nowhere else.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/storage"
)

// ViewerCounter reports how many viewers an output has for a stream.
type ViewerCounter interface {
	Viewers(stream string) int
}

// DefaultAddr is the HTTP listen address unless configured.
const DefaultAddr = ":8080"

// Config configures the HTTP server.
type Config struct {
	Addr   string
	Logger *slog.Logger
	// TLSCert and TLSKey (PEM files), when set, make Serve speak HTTPS.
	TLSCert, TLSKey string
	// UI is what the web UI's pages are told about the server.
	UI UIConfig
	// PProf serves /debug/pprof/ to admin tokens (pprof.go); off by default.
	PProf bool
	// ReadTimeout bounds reading a whole request, body included (default
	// DefaultReadTimeout); its headers must arrive within
	// DefaultReadHeaderTimeout, or ReadTimeout if shorter.
	ReadTimeout time.Duration
	// WriteTimeout bounds a response from the end of its request's
	// headers (default DefaultWriteTimeout). Recording downloads and HLS
	// extend their own deadline as they go.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long (default
	// DefaultIdleTimeout).
	IdleTimeout time.Duration
	// ArchiveRedirect answers downloads of recordings in the S3 archive
	// with a 302 to a presigned URL instead of streaming them.
	ArchiveRedirect bool
}

// HTTP server timeouts: a client that sends its headers or body slowly,
// or stops reading, or keeps a connection idle, holds it only this long.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	// DefaultWriteTimeout covers reading an offer and gathering the
	// answer's candidates (answerTimeout).
	DefaultWriteTimeout = 30 * time.Second
	DefaultIdleTimeout  = 120 * time.Second
)

// Deps are the services the API exposes.
type Deps struct {
	// Gate decides who may do what and admits sessions (package access).
	Gate *access.Gate
	Hub  *live.Hub
	WHIP *ingest.Server
	WHEP *whep.Server
	// Outputs counts viewers of other protocols ("rtsp", "hls"); optional.
	Outputs map[string]ViewerCounter
	// HLS serves /hls/; optional.
	HLS http.Handler
	// Extra registers more collectors on /metrics; optional.
	Metrics []prometheus.Collector
	// Meetings serves /api/v1/meetings and guards held meetings'
	// recordings; optional.
	Meetings *meetings.Manager
	// Exports serves the meetings' exports (needs Meetings); optional.
	Exports *exports.Manager
	// Recordings serves /api/v1/recordings; optional.
	Recordings *recorder.Recorder
	// Cluster is this node's membership of a cluster; nil on a single
	// node (cluster.go).
	Cluster *cluster.Node
	// Archive is the S3 bucket recordings are uploaded to, which the
	// recordings API lists and serves too; nil without storage.s3
	// (archive.go).
	Archive *storage.Store
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	deps Deps
	echo *echo.Echo
	ln   net.Listener
	gate *access.Gate
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if deps.Gate == nil {
		return nil, errors.New("api: no access gate")
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpErrorHandler
	s := &Server{cfg: cfg, deps: deps, echo: e, gate: deps.Gate}
	e.Use(middleware.Recover())
	e.Use(cors, s.sameOrigin)

	(&signaling{s: s, prefix: "/whip", act: access.Publish, proto: access.WHIP, ice: deps.WHIP.ICEServers,
		open: func(ctx context.Context, name string, offer []byte, remote string, _ url.Values) (string, []byte, string, error) {
			p, answer, err := deps.WHIP.Publish(ctx, name, offer, remote)
			if err != nil {
				return "", nil, "", err
			}
			return p.ID, answer, p.ETag(), nil
		},
		lookup: func(name, id string) (peerSession, error) { return deps.WHIP.Session(name, id) },
	}).routes(e)
	(&signaling{s: s, prefix: "/whep", act: access.Read, proto: access.WHEP, ice: deps.WHEP.ICEServers,
		open: func(ctx context.Context, name string, offer []byte, remote string, q url.Values) (string, []byte, string, error) {
			// ?layer= pins a simulcast layer (low, mid, high or a rid).
			v, answer, err := deps.WHEP.PlayWith(ctx, name, offer, remote, whep.PlayOptions{Layer: q.Get("layer")})
			if err != nil {
				return "", nil, "", err
			}
			return v.ID, answer, v.ETag(), nil
		},
		lookup: func(name, id string) (peerSession, error) { return deps.WHEP.Session(name, id) },
	}).routes(e)

	s.uiRoutes(e)
	s.recordingsRoutes(e)
	s.meetingsRoutes(e)
	s.exportsRoutes(e)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	// With auth on, the streams API needs a read token (the list one that
	// may read every stream) unless auth.public_read opens it.
	read := s.require(access.Read, access.API)
	e.GET("/api/v1/streams", s.listStreams, read)
	e.GET("/api/v1/streams/:stream", s.getStream, read)
	e.GET("/api/v1/streams/:group/:participant", s.getStream, grouped, read)
	e.DELETE("/api/v1/streams/:stream", s.kickStream, s.require(access.Admin, access.API))
	e.DELETE("/api/v1/streams/:group/:participant", s.kickStream, grouped, s.require(access.Admin, access.API))
	if deps.HLS != nil {
		// HLS authorizes the stream it serves itself (package hls).
		e.Any("/hls/*", echo.WrapHandler(deps.HLS))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newHubCollector(deps.Hub), newViewersCollector(deps.Hub, deps.Outputs),
		newSessionsCollector(map[string]SessionCounter{"whip": deps.WHIP, "whep": deps.WHEP}))
	for _, c := range append(deps.Metrics, s.gate.Collectors()...) {
		reg.MustRegister(c)
	}
	// With auth on, metrics need a read token unless metrics.public.
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})), s.require(access.Read, access.Metrics))
	if cfg.PProf {
		s.pprofRoutes(e)
	}
	return s, nil
}

// Handler exposes the routes, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.echo }

// Listen binds the configured address; Addr then reports the real one.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until Shutdown.
func (s *Server) Serve() error {
	s.echo.Listener = s.ln
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: min(DefaultReadHeaderTimeout, s.cfg.ReadTimeout),
		ReadTimeout: s.cfg.ReadTimeout, WriteTimeout: s.cfg.WriteTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug)}
	s.echo.Server = srv
	serve := func() error { return srv.Serve(s.ln) }
	if s.cfg.TLSCert != "" {
		serve = func() error { return srv.ServeTLS(s.ln, s.cfg.TLSCert, s.cfg.TLSKey) }
	}
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.echo.Shutdown(ctx) }

// cors lets browser pages on other origins use WHIP, WHEP, HLS and the
// read-only API (RFC 9725 §4.8 expects WHIP endpoints to be reachable from
// browsers); sameOrigin keeps them from changing anything while auth is
// off. No response is to be sniffed as another type than it says.
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, Range")
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After, Content-Range")
		h.Set("Access-Control-Max-Age", "86400")
		return next(c)
	}
}

// sameOrigin refuses, while auth is off, an API request that changes
// something (any method but GET, HEAD and OPTIONS under /api/) sent by a
// page of another origin: without tokens nothing else tells a user's own
// click from a page on the web making the user's browser on the LAN
// delete recordings. Clients that are not browsers send no Origin and are
// not affected; with tokens configured, the token is the proof.
func (s *Server) sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if s.gate.AuthEnabled() || !strings.HasPrefix(r.URL.Path, "/api/") || !crossOrigin(r, s.gate.ForwardedHost(r)) {
			return next(c)
		}
		s.cfg.Logger.Warn("cross-origin API request refused (auth is off)", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "peer", s.gate.ClientIP(r))
		return writeProblem(c, http.StatusForbidden, "with auth off, the API accepts changes only from Reel's own pages, "+
			"and this request came from another site; configure tokens (auth.admin_tokens) to call it from elsewhere")
	}
}

// crossOrigin reports whether a browser sent r from a page whose origin
// is not host: Sec-Fetch-Site says so, or Origin names another host.
func crossOrigin(r *http.Request, host string) bool {
	if strings.EqualFold(r.Header.Get("Sec-Fetch-Site"), "cross-site") {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" { // "null": a sandboxed or file:// page
		return true
	}
	return !strings.EqualFold(u.Host, host)
}
