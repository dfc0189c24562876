// Command reel is the Reel gateway: WHIP in; WebM/Matroska recordings, WHEP,
// RTSP and HLS out; one binary with working defaults.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/reel-gateway/reel/api"
	"github.com/reel-gateway/reel/egress/hls"
	"github.com/reel-gateway/reel/egress/rtsp"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/recorder"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "reel:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "help":
			usage(stdout)
			return nil
		}
	}
	cfg, err := loadConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log)
}

func newLogger(cfg *Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.Log.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format: want text or json, got %q", cfg.Log.Format)
}

func preferences(cfg *Config) (ingest.Preferences, error) {
	var p ingest.Preferences
	for _, name := range cfg.Codecs.Video {
		c, err := ingest.ParseCodec(name)
		if err != nil || c.Kind() != ingest.Video {
			return p, fmt.Errorf("codecs.video: %q is not a video codec (H264, VP8, VP9, AV1, H265)", name)
		}
		p.Video = append(p.Video, c)
	}
	for _, name := range cfg.Codecs.Audio {
		c, err := ingest.ParseCodec(name)
		if err != nil || c.Kind() != ingest.Audio {
			return p, fmt.Errorf("codecs.audio: %q is not an audio codec (Opus)", name)
		}
		p.Audio = append(p.Audio, c)
	}
	return p, nil
}

// serve wires the packages together, runs until ctx ends, then shuts down
// in the order that loses nothing: stop taking requests, end viewers, end
// publishers (which finalizes their recordings), wait for the recorder.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	policy, err := ingest.ParseConflictPolicy(cfg.Publish.OnConflict)
	if err != nil {
		return fmt.Errorf("publish.on_conflict: %w", err)
	}
	prefs, err := preferences(cfg)
	if err != nil {
		return err
	}
	hub := ingest.NewHub(policy)
	rtc, err := ingest.NewRTC(ingest.RTCConfig{UDPAddr: cfg.WebRTC.UDPAddr, NAT1To1IPs: cfg.WebRTC.NAT1To1IPs, ICEServers: cfg.WebRTC.ICEServers, Logger: log})
	if err != nil {
		return err
	}
	defer rtc.Close()

	ev, err := events.New(events.Config{Webhooks: cfg.Events.Webhooks, Secret: cfg.Events.Secret, Logger: log})
	if err != nil {
		return fmt.Errorf("events.webhooks: %w", err)
	}
	// Deferred first, so it runs last: the recording.finished events of
	// the shutdown are still delivered.
	defer ev.Close()

	rec, err := recorder.New(recorder.Config{Dir: cfg.Recordings.Dir, Enabled: cfg.Recordings.Enabled, Logger: log,
		SegmentDuration: cfg.Recordings.SegmentDuration, MaxAge: cfg.Recordings.MaxAge,
		MaxTotalSize: uint64(cfg.Recordings.MaxTotalSize), MinFreeSpace: uint64(cfg.Recordings.MinFreeSpace),
		OnFinish: func(in recorder.Info) { ev.Emit(events.FromRecording(in)) }})
	if err != nil {
		return err
	}
	defer rec.Close()
	hub.OnPublish(rec.Record)
	hub.OnPublish(func(s *ingest.Stream) { ev.Emit(events.FromPublish(s.Info())) })
	hub.OnUnpublish(func(s *ingest.Stream) { ev.Emit(events.FromUnpublish(s.Info())) })

	idle := cfg.Limits.IdleTimeout
	if idle == 0 {
		idle = -1 // 0 in the configuration means never
	}
	whipSrv := ingest.NewWHIP(hub, rtc, ingest.WHIPConfig{Preferences: prefs, Logger: log,
		ConnectTimeout: cfg.Limits.ConnectTimeout, IdleTimeout: idle})
	defer whipSrv.Close()
	whepSrv := whep.New(hub, rtc, whep.Config{Logger: log, ConnectTimeout: cfg.Limits.ConnectTimeout})
	defer whepSrv.Close()

	deps := api.Deps{Hub: hub, WHIP: whipSrv, WHEP: whepSrv, Outputs: map[string]api.ViewerCounter{}, Recordings: rec}
	deps.Metrics = append(deps.Metrics, api.NewRecorderCollector(rec), api.NewEventsCollector(ev))
	auth := authConfig(cfg)
	if cfg.Auth.JWTRS256Key != "" {
		if auth.JWT.RS256PublicKeyPEM, err = os.ReadFile(cfg.Auth.JWTRS256Key); err != nil {
			return fmt.Errorf("auth.jwt_rs256_public_key: %w", err)
		}
	}
	if err := auth.Prepare(); err != nil {
		return err
	}
	var apiSrv *api.Server
	var rtspSrv *rtsp.Server
	if cfg.RTSP.Enabled {
		rcfg := rtsp.Config{Addr: cfg.RTSP.Addr, UDPRTPAddr: cfg.RTSP.UDPRTPAddr, UDPRTCPAddr: cfg.RTSP.UDPRTCPAddr,
			TLSCert: cfg.RTSP.TLSCert, TLSKey: cfg.RTSP.TLSKey, Logger: log}
		if cfg.RTSP.MulticastIPRange != "" {
			rcfg.MulticastIPRange = cfg.RTSP.MulticastIPRange
			rcfg.MulticastRTPPort, rcfg.MulticastRTCPPort = cfg.RTSP.MulticastRTPPort, cfg.RTSP.MulticastRTCPPort
		}
		if auth.Enabled() && !auth.PublicRead {
			rcfg.Authorize = auth.AllowsRead
		}
		// The HTTP server, made below, holds the limits RTSP readers count
		// against; readers arrive only once Start runs, after it exists.
		rcfg.Admit = func(ip, stream string) (func(), error) { return apiSrv.AdmitViewer(ip, stream) }
		if rtspSrv, err = rtsp.New(rcfg, hub); err != nil {
			return err
		}
		defer rtspSrv.Close()
		deps.Outputs["rtsp"] = rtspReaders{rtspSrv}
	}
	if cfg.HLS.Enabled {
		hlsSrv := hls.New(hls.Config{IdleTimeout: cfg.HLS.IdleTimeout, Logger: log}, hub)
		defer hlsSrv.Close()
		deps.HLS = hlsSrv
		deps.Outputs["hls"] = hlsSrv
	}
	if (cfg.HTTP.TLSCert == "") != (cfg.HTTP.TLSKey == "") {
		return errors.New("http.tls_cert and http.tls_key go together: set both or neither")
	}
	apiSrv, err = api.New(api.Config{Addr: cfg.HTTP.Addr, Auth: auth, Logger: log, Limits: limits(cfg),
		TLSCert: cfg.HTTP.TLSCert, TLSKey: cfg.HTTP.TLSKey,
		UI: api.UIConfig{RTSPAddr: rtspAddrIfOn(cfg)}, PProf: cfg.Debug.PProf}, deps)
	if err != nil {
		return err
	}
	if rtspSrv != nil {
		if err := rtspSrv.Start(); err != nil {
			return fmt.Errorf("starting RTSP server on %s: %w", cfg.RTSP.Addr, err)
		}
	}
	if err := apiSrv.Listen(); err != nil {
		return fmt.Errorf("listening for HTTP on %s: %w", cfg.HTTP.Addr, err)
	}
	log.Info("reel is running", "http", apiSrv.Addr(), "webrtc_udp", rtc.UDPPort(),
		"rtsp", enabledAddr(cfg.RTSP.Enabled, cfg.RTSP.Addr), "recordings", cfg.Recordings.Dir, "auth", auth.Enabled())
	errc := make(chan error, 1)
	go func() { errc <- apiSrv.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := apiSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("HTTP shutdown", "err", err)
	}
	whepSrv.Close()
	whipSrv.Close()
	rec.Close()
	log.Info("stopped; every recording is finalized")
	return nil
}

func authConfig(cfg *Config) api.AuthConfig {
	return api.AuthConfig{PublishTokens: cfg.Auth.PublishTokens, StreamTokens: cfg.Auth.StreamTokens,
		ReadTokens: cfg.Auth.ReadTokens, AdminTokens: cfg.Auth.AdminTokens, PublicRead: cfg.Auth.PublicRead,
		JWT: api.JWTConfig{HS256Secret: cfg.Auth.JWTHS256}}
}

func limits(cfg *Config) api.Limits {
	l := cfg.Limits
	return api.Limits{MaxBodyBytes: int64(l.MaxBodyBytes), Publishers: l.Publishers, ViewersPerStream: l.ViewersPerStream,
		Viewers: l.Viewers, SessionsPerIP: l.SessionsPerIP, RequestRate: l.RequestRate, RequestBurst: l.RequestBurst}
}

type rtspReaders struct{ s *rtsp.Server }

func (r rtspReaders) Viewers(stream string) int { return r.s.Readers(stream) }

// rtspAddrIfOn is the RTSP address for the web UI's links, or "" when off.
func rtspAddrIfOn(cfg *Config) string {
	if !cfg.RTSP.Enabled {
		return ""
	}
	return cfg.RTSP.Addr
}

func enabledAddr(on bool, addr string) string {
	if !on {
		return "off"
	}
	return strings.TrimSpace(addr)
}
