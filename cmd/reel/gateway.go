package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/api"
	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/egress/hls"
	"github.com/reel-gateway/reel/egress/rtsp"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
	"github.com/reel-gateway/reel/storage"
)

// shutdownTimeout bounds how long requests in flight may finish.
const shutdownTimeout = 10 * time.Second

// gateway is every part of Reel, built in order by newGateway and closed
// once, in reverse: the HTTP server stops taking requests, the outputs end
// their viewers, the publishers end (finalizing their recordings), the
// recorder finishes, the UDP port closes, and the last events go out.
type gateway struct {
	cfg *Config
	log *slog.Logger

	ev       *events.Dispatcher
	engine   *rtc.Engine
	rec      *recorder.Recorder
	meetings *meetings.Manager
	exports  *exports.Manager
	hub      *live.Hub
	gate     *access.Gate
	whip     *ingest.Server
	whep     *whep.Server
	rtsp     *rtsp.Server   // nil when off
	hls      *hls.Server    // nil when off
	store    *storage.Store // nil without storage.s3
	node     *cluster.Node  // nil without cluster.redis_url
	api      *api.Server

	closers []closer // in build order
}

type closer struct {
	name  string
	close func()
}

// newGateway builds the parts; on an error it closes what it built.
func newGateway(cfg *Config, log *slog.Logger) (g *gateway, err error) {
	g = &gateway{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			g.Close()
			g = nil
		}
	}()
	for _, step := range []func() error{g.buildEvents, g.buildEngine, g.buildStorage, g.buildMeetings, g.buildExports, g.buildRecorder, g.buildHub,
		g.buildAccess, g.buildSessions, g.buildRTSP, g.buildHLS, g.buildCluster, g.buildAPI} {
		if err = step(); err != nil {
			return g, err
		}
	}
	return g, nil
}

// onClose registers a part's Close, to run in reverse build order.
func (g *gateway) onClose(name string, f func()) { g.closers = append(g.closers, closer{name, f}) }

// Close closes every part built, last first. Safe to call twice.
func (g *gateway) Close() {
	for len(g.closers) > 0 {
		c := g.closers[len(g.closers)-1]
		g.closers = g.closers[:len(g.closers)-1]
		g.log.Debug("closing", "part", c.name)
		c.close()
	}
}

func (g *gateway) buildEvents() error {
	ev, err := events.New(events.Config{Webhooks: g.cfg.Events.Webhooks, Secret: g.cfg.Events.Secret, Logger: g.log})
	if err != nil {
		return fmt.Errorf("events.webhooks: %w", err)
	}
	g.ev = ev
	// Closed last: the recording.finished events of the shutdown still go.
	g.onClose("events", ev.Close)
	return nil
}

func (g *gateway) buildEngine() error {
	w := g.cfg.WebRTC
	candidates := g.cfg.Limits.ICECandidates
	if candidates == 0 {
		candidates = -1 // 0 in the configuration means no limit
	}
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: w.UDPAddr, NAT1To1IPs: w.NAT1To1IPs, ICEServers: w.ICEServers,
		MaxCandidates: candidates, Logger: g.log})
	if err != nil {
		return err
	}
	g.engine = engine
	g.onClose("webrtc", func() { _ = engine.Close() })
	return nil
}

// buildMeetings makes the meeting occurrences' manager before the
// recorder: the recorder's repairs at start update their manifests.
func (g *gateway) buildMeetings() error {
	cfg := meetings.Config{Dir: g.cfg.Recordings.Dir, Grace: g.cfg.Meetings.Grace, Logger: g.log,
		Notify: func(kind string, man meetings.Manifest, sum string) {
			if kind == meetings.Started {
				g.meetingStarted(man.ID)
			}
			g.ev.Emit(events.FromMeeting(kind, man, sum))
		},
		DeleteRecording: func(id string) error {
			_, err := g.rec.Delete(id)
			return err
		}}
	if g.store != nil {
		cfg.Archive = meetingArchive{g.store}
	}
	if g.store != nil || g.cfg.Cluster.RedisURL != "" {
		cfg.Node = nodeID(g.cfg)
	}
	m, err := meetings.New(cfg)
	if err != nil {
		return fmt.Errorf("meetings: %w", err)
	}
	g.meetings = m
	g.onClose("meetings", m.Close)
	return nil
}

// buildExports makes the meeting exports' jobs; jobs a stop cut short
// start again.
func (g *gateway) buildExports() error {
	x := g.cfg.Exports
	nice := x.Nice
	if nice == 0 {
		nice = -1 // 0 in the configuration means none
	}
	m, err := exports.New(exports.Config{Dir: g.cfg.Recordings.Dir, Meetings: g.meetings, Concurrency: x.Concurrency,
		FFmpeg: x.FFmpeg, Threads: x.Threads, Nice: nice, Font: x.Font,
		Width: x.Composite.Width, Height: x.Composite.Height, FPS: x.Composite.FPS, Logger: g.log,
		Notify: func(j exports.Job) { g.ev.Emit(events.FromExport(j)) }})
	if err != nil {
		return err
	}
	g.exports = m
	g.onClose("exports", m.Close)
	return nil
}

func (g *gateway) buildRecorder() error {
	r := g.cfg.Recordings
	m := g.meetings
	rec, err := recorder.New(recorder.Config{Dir: r.Dir, Enabled: r.Enabled, Logger: g.log,
		SegmentDuration: r.SegmentDuration, MaxAge: r.MaxAge,
		MaxTotalSize: uint64(r.MaxTotalSize), MinFreeSpace: uint64(r.MinFreeSpace), CheckInterval: r.CheckInterval,
		OnFinish: func(in recorder.Info) {
			m.RecordingFinished(in)
			g.ev.Emit(events.FromRecording(in))
			g.upload(in)
			g.registerRecording(in)
		},
		OnStart: m.RecordingStarted, OnEvent: m.RecordingEvent, Place: m.Place,
		Protect: m.Protect, OnDelete: func(d recorder.Deletion) {
			m.RetentionDeleted(d)
			if d.Occurrence != "" {
				// An export holds the deleted recording's media too.
				g.exports.Drop(d.Occurrence, "retention deleted one of the meeting's recordings: "+d.Reason)
			}
		}})
	if err != nil {
		return err
	}
	g.rec = rec
	g.onClose("recorder", rec.Close)
	g.startUploads()
	return nil
}

func (g *gateway) buildHub() error {
	policy, err := live.ParseConflictPolicy(g.cfg.Publish.OnConflict)
	if err != nil {
		return fmt.Errorf("publish.on_conflict: %w", err)
	}
	g.hub = live.NewHub(policy)
	// A relay of a stream owned by another node of a cluster is recorded
	// and announced there, not here. A meeting's occurrence comes first,
	// so the recorder finds its folder.
	g.hub.OnPublish(func(s *live.Stream) {
		if !s.Relayed() {
			g.meetings.Published(s)
			g.rec.Record(s)
			g.ev.Emit(events.FromPublish(s.Info()))
		}
	})
	g.hub.OnUnpublish(func(s *live.Stream) {
		if !s.Relayed() {
			g.meetings.Unpublished(s)
			g.ev.Emit(events.FromUnpublish(s.Info()))
		}
	})
	return nil
}

// accessConfig is the auth section as the access policy takes it.
func accessConfig(c *Config) (access.Config, error) {
	a := c.Auth
	cfg := access.Config{PublishTokens: a.PublishTokens, StreamTokens: a.StreamTokens,
		ReadTokens: a.ReadTokens, AdminTokens: a.AdminTokens, PublicRead: a.PublicRead,
		PublicMetrics: c.Metrics.Public, JWT: access.JWTConfig{HS256Secret: a.JWTHS256}}
	proxies, err := access.ParsePrefixes(c.HTTP.TrustedProxies)
	if err != nil {
		return cfg, fmt.Errorf("http.trusted_proxies: %w", err)
	}
	cfg.TrustedProxies = proxies
	if c.Cluster.RedisURL != "" && c.Cluster.Token != "" {
		// Every node of a cluster accepts the others' relays.
		cfg.ReadTokens = append(cfg.ReadTokens, c.Cluster.Token)
	}
	if a.JWTRS256Key != "" {
		pem, err := os.ReadFile(a.JWTRS256Key)
		if err != nil {
			return cfg, fmt.Errorf("auth.jwt_rs256_public_key: %w", err)
		}
		cfg.JWT.RS256PublicKeyPEM = pem
	}
	return cfg, nil
}

func (g *gateway) buildAccess() error {
	cfg, err := accessConfig(g.cfg)
	if err != nil {
		return err
	}
	l := g.cfg.Limits
	pending := int(l.PendingPublishers)
	if pending < 0 {
		pending = access.DefaultPendingPublishers(l.Publishers)
	}
	gate, err := access.New(cfg, access.Limits{MaxBodyBytes: int64(l.MaxBodyBytes), Publishers: l.Publishers,
		ViewersPerStream: l.ViewersPerStream, Viewers: l.Viewers, SessionsPerIP: l.SessionsPerIP,
		PendingPerIP: l.PendingPerIP, PendingPublishers: pending,
		RequestRate: l.RequestRate, RequestBurst: l.RequestBurst,
		AuthFailures: l.AuthFailures, AuthFailureRefill: l.AuthFailureRefill, MaxSchedLag: l.MaxSchedLag, MaxInputLag: l.MaxInputLag}, g.log)
	if err != nil {
		return err
	}
	gate.WatchInput(g.input)
	g.gate = gate
	g.onClose("access", gate.Close)
	return nil
}

// input is how the gateway reads its publishers' media: the WebRTC
// socket's kernel statistics and read lag, and every published stream's
// lateness.
func (g *gateway) input() access.Input {
	var in access.Input
	if st, err := g.engine.InputStats(); err == nil {
		in.SocketsKnown, in.Queued, in.Capacity, in.Drops = true, st.Queued, st.Capacity, st.Drops
		in.ReadLag, in.ReadLagKnown = st.ReadLag, st.ReadLagKnown
	}
	now := time.Now()
	for _, s := range g.hub.Streams() {
		if !s.Relayed() { // a relay's lateness is the cluster link's
			in.Lateness = append(in.Lateness, s.Clock().Lateness(now))
		}
	}
	return in
}

// buildSessions makes the WHIP and WHEP servers. Viewers close before
// publishers, and publishers before the recorder, which then finds every
// recording finalized.
func (g *gateway) buildSessions() error {
	prefs, err := preferences(g.cfg)
	if err != nil {
		return err
	}
	idle := g.cfg.Limits.IdleTimeout
	if idle == 0 {
		idle = -1 // 0 in the configuration means never
	}
	g.whip = ingest.New(g.hub, g.engine, ingest.Config{Preferences: prefs, Logger: g.log,
		ConnectTimeout: g.cfg.Limits.ConnectTimeout, IdleTimeout: idle})
	g.onClose("whip", g.whip.Close)
	budget := g.cfg.WebRTC.LatencyBudget
	if budget <= 0 {
		budget = -1 // never shed
	}
	g.whep = whep.New(g.hub, g.engine, whep.Config{Logger: g.log, ConnectTimeout: g.cfg.Limits.ConnectTimeout, LatencyBudget: budget})
	g.onClose("whep", g.whep.Close)
	return nil
}

func preferences(cfg *Config) (rtc.Preferences, error) {
	var p rtc.Preferences
	var err error
	if p.ServerOrder, err = rtc.ParsePrefer(cfg.Codecs.Prefer); err != nil {
		return p, err
	}
	if n := cfg.Publish.SimulcastLayers; n < 1 || n > live.MaxLayers {
		return p, fmt.Errorf("publish.simulcast_layers: %d; want 1 to %d", n, live.MaxLayers)
	}
	p.SimulcastLayers = cfg.Publish.SimulcastLayers
	for _, name := range cfg.Codecs.Video {
		c, err := live.ParseCodec(name)
		if err != nil || c.Kind() != live.Video {
			return p, fmt.Errorf("codecs.video: %q is not a video codec (H264, VP8, VP9, AV1, H265)", name)
		}
		p.Video = append(p.Video, c)
	}
	for _, name := range cfg.Codecs.Audio {
		c, err := live.ParseCodec(name)
		if err != nil || c.Kind() != live.Audio {
			return p, fmt.Errorf("codecs.audio: %q is not an audio codec (Opus)", name)
		}
		p.Audio = append(p.Audio, c)
	}
	return p, nil
}

func (g *gateway) buildRTSP() error {
	r := g.cfg.RTSP
	if !r.Enabled {
		return nil
	}
	cfg := rtsp.Config{Addr: r.Addr, UDPRTPAddr: r.UDPRTPAddr, UDPRTCPAddr: r.UDPRTCPAddr,
		TLSCert: r.TLSCert, TLSKey: r.TLSKey, Gate: g.gate, Logger: g.log}
	if r.MulticastIPRange != "" {
		cfg.MulticastIPRange = r.MulticastIPRange
		cfg.MulticastRTPPort, cfg.MulticastRTCPPort = r.MulticastRTPPort, r.MulticastRTCPPort
	}
	s, err := rtsp.New(cfg, g.hub)
	if err != nil {
		return err
	}
	g.rtsp = s
	g.onClose("rtsp", s.Close)
	return nil
}

func (g *gateway) buildHLS() error {
	if !g.cfg.HLS.Enabled {
		return nil
	}
	g.hls = hls.New(hls.Config{IdleTimeout: g.cfg.HLS.IdleTimeout, Gate: g.gate, Logger: g.log}, g.hub)
	g.onClose("hls", g.hls.Close)
	return nil
}

// outputCollectors are the metrics of what the WebRTC socket sent
// (rtc/sendbatch.go): a kernel refusing to send to a viewer's address
// shows here, and packets per message is what batching and segmenting
// save.
func outputCollectors(e *rtc.Engine) []prometheus.Collector {
	counter := func(name, help string, v func(rtc.SendStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(e.OutputStats())) })
	}
	return []prometheus.Collector{
		counter("reel_output_socket_packets_total", "Datagrams the kernel took from the shared WebRTC UDP socket (viewers' media, publishers' and viewers' RTCP, ICE).",
			func(s rtc.SendStats) uint64 { return s.Packets }),
		counter("reel_output_socket_messages_total", "Messages that carried those datagrams: fewer where a run of packets to one address went as one segmented (GSO) message.",
			func(s rtc.SendStats) uint64 { return s.Messages }),
		counter("reel_output_socket_failed_total", "Datagrams the kernel refused to send from the shared WebRTC UDP socket (logged at most once a minute with the reason).",
			func(s rtc.SendStats) uint64 { return s.Failed }),
	}
}

func (g *gateway) buildAPI() error {
	h := g.cfg.HTTP
	if (h.TLSCert == "") != (h.TLSKey == "") {
		return errors.New("http.tls_cert and http.tls_key go together: set both or neither")
	}
	deps := api.Deps{Gate: g.gate, Hub: g.hub, WHIP: g.whip, WHEP: g.whep, Outputs: map[string]api.ViewerCounter{},
		Recordings: g.rec, Meetings: g.meetings, Exports: g.exports, Metrics: []prometheus.Collector{api.NewRecorderCollector(g.rec), api.NewEventsCollector(g.ev)},
		Cluster: g.node, Archive: g.store}
	deps.Metrics = append(deps.Metrics, outputCollectors(g.engine)...)
	if g.node != nil {
		deps.Metrics = append(deps.Metrics, g.node.Collector())
	}
	if g.store != nil {
		deps.Metrics = append(deps.Metrics, g.store.Collector())
	}
	ui := api.UIConfig{}
	if g.rtsp != nil {
		deps.Outputs["rtsp"] = rtspReaders{g.rtsp}
		ui.RTSPAddr = g.cfg.RTSP.Addr
	}
	if g.hls != nil {
		deps.HLS = g.hls
		deps.Outputs["hls"] = g.hls
	}
	s, err := api.New(api.Config{Addr: h.Addr, Logger: g.log, TLSCert: h.TLSCert, TLSKey: h.TLSKey,
		UI: ui, PProf: g.cfg.Debug.PProf, ArchiveRedirect: g.cfg.Storage.Redirect, ReadTimeout: h.ReadTimeout, WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout}, deps)
	if err != nil {
		return err
	}
	g.api = s
	return nil
}

// Run starts listening and serves until ctx ends or the HTTP server fails.
func (g *gateway) Run(ctx context.Context) error {
	if g.rtsp != nil {
		if err := g.rtsp.Start(); err != nil {
			return fmt.Errorf("starting RTSP server on %s: %w", g.cfg.RTSP.Addr, err)
		}
	}
	if err := g.api.Listen(); err != nil {
		return fmt.Errorf("listening for HTTP on %s: %w", g.cfg.HTTP.Addr, err)
	}
	// The HTTP server stops first at shutdown: no request reaches a part
	// that is closing.
	g.onClose("http", func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := g.api.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Warn("HTTP shutdown", "err", err)
		}
	})
	if g.node != nil {
		// Placeable only once it can serve.
		g.node.Start()
	}
	rtspAddr := "off"
	if g.rtsp != nil {
		rtspAddr = strings.TrimSpace(g.cfg.RTSP.Addr)
	}
	g.log.Info("reel is running", "http", g.api.Addr(), "webrtc_udp", g.engine.UDPPort(),
		"rtsp", rtspAddr, "recordings", g.cfg.Recordings.Dir, "auth", g.gate.AuthEnabled())
	errc := make(chan error, 1)
	go func() { errc <- g.api.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down")
	g.Close()
	g.log.Info("stopped; every recording is finalized")
	return nil
}

type rtspReaders struct{ s *rtsp.Server }

func (r rtspReaders) Viewers(stream string) int { return r.s.Readers(stream) }
