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
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/recorder"
)

// ViewerCounter reports how many viewers an output has for a stream.
type ViewerCounter interface {
	Viewers(stream string) int
}

// Config configures the HTTP server.
type Config struct {
	Addr   string
	Auth   AuthConfig
	Logger *slog.Logger
	// Limits bound sessions and request rates (limits.go); zero fields
	// mean no limit.
	Limits Limits
	// TLSCert and TLSKey (PEM files), when set, make Serve speak HTTPS.
	TLSCert, TLSKey string
	// UI is what the web UI's pages are told about the server.
	UI UIConfig
	// PProf serves /debug/pprof/ to admin tokens (pprof.go); off by default.
	PProf bool
}

// Deps are the services the API exposes.
type Deps struct {
	Hub  *ingest.Hub
	WHIP *ingest.WHIP
	WHEP *whep.Server
	// Outputs counts viewers of other protocols ("rtsp", "hls"); optional.
	Outputs map[string]ViewerCounter
	// HLS serves /hls/; optional.
	HLS http.Handler
	// Extra registers more collectors on /metrics; optional.
	Metrics []prometheus.Collector
	// Recordings serves /api/v1/recordings; optional.
	Recordings *recorder.Recorder
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	deps Deps
	echo *echo.Echo
	ln   net.Listener
	lim  *limiter
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Auth.JWT.prepare(); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = httpErrorHandler
	s := &Server{cfg: cfg, deps: deps, echo: e, lim: newLimiter(cfg.Limits, cfg.Logger)}
	e.Use(middleware.Recover())
	e.Use(cors)

	(&signaling{prefix: "/whip", act: actionPublish, ice: deps.WHIP.ICEServers,
		open: func(ctx context.Context, name string, offer []byte, remote string) (string, []byte, string, error) {
			p, answer, err := deps.WHIP.Publish(ctx, name, offer, remote)
			if err != nil {
				return "", nil, "", err
			}
			return p.ID, answer, p.ETag(), nil
		},
		lookup: func(name, id string) (peerSession, error) { return deps.WHIP.Session(name, id) },
	}).routes(e, s)
	(&signaling{prefix: "/whep", act: actionRead, ice: deps.WHEP.ICEServers,
		open: func(ctx context.Context, name string, offer []byte, remote string) (string, []byte, string, error) {
			v, answer, err := deps.WHEP.Play(ctx, name, offer, remote)
			if err != nil {
				return "", nil, "", err
			}
			return v.ID, answer, v.ETag(), nil
		},
		lookup: func(name, id string) (peerSession, error) { return deps.WHEP.Session(name, id) },
	}).routes(e, s)

	s.uiRoutes(e)
	s.recordingsRoutes(e)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/api/v1/streams", s.listStreams)
	e.GET("/api/v1/streams/:stream", s.getStream)
	e.DELETE("/api/v1/streams/:stream", s.kickStream, s.require(actionAdmin))
	if deps.HLS != nil {
		h := echo.WrapHandler(deps.HLS)
		e.Any("/hls/:stream/*", h, s.require(actionRead))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newHubCollector(deps.Hub), newViewersCollector(deps.Hub, deps.Outputs))
	for _, c := range append(deps.Metrics, s.lim.rejected) {
		reg.MustRegister(c)
	}
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
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
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second}
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

// cors lets browser pages on other origins use WHIP, WHEP, HLS and the API
// (RFC 9725 §4.8 expects WHIP endpoints to be reachable from browsers).
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PATCH, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match, Range")
		h.Set("Access-Control-Expose-Headers", "Location, ETag, Link, Accept-Patch, Accept-Post, Retry-After, Content-Range")
		h.Set("Access-Control-Max-Age", "86400")
		return next(c)
	}
}
