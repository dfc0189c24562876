package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/live"
)

// Default listen addresses: the usual RTSP port, and MediaMTX's UDP and
// multicast ports, so players set up for one find the other.
const (
	DefaultAddr        = ":8554"
	DefaultUDPRTPAddr  = ":8000"
	DefaultUDPRTCPAddr = ":8001"
	// The multicast transport's ports, used once a group range is set.
	DefaultMulticastRTPPort  = 8002
	DefaultMulticastRTCPPort = 8003
)

const (
	// paramsWait bounds how long a DESCRIBE of an H.264 or H.265 stream
	// waits for the parameter sets the SDP should carry.
	paramsWait = 2 * time.Second
	// defaultIdleTimeout is how long a live stream's ServerStream (and its
	// hub subscription) is kept once nobody reads it.
	defaultIdleTimeout = 30 * time.Second
	// findTimeout bounds bringing in a stream that is live on another
	// node of a cluster (live.Hub.Find).
	findTimeout = 5 * time.Second
)

var (
	errNotFound = errors.New("no live stream with that name")
	errNoLayer  = errors.New("no such simulcast layer")
	errClosed   = errors.New("the RTSP server is closed")
)

// Config configures the RTSP server.
type Config struct {
	// Addr is the TCP address for RTSP requests and interleaved media;
	// "" means DefaultAddr. A port of 0 picks a free port (see Server.Addr).
	Addr string
	// UDPRTPAddr and UDPRTCPAddr enable the UDP transport; both or neither
	// must be set, on consecutive ports with the RTP one even. "" disables
	// UDP (readers then use TCP). DefaultConfig sets :8000 and :8001.
	UDPRTPAddr, UDPRTCPAddr string
	// Gate, when set, decides who may read which stream and admits each
	// reader at its first SETUP (package access: the same token rules and
	// viewer limits as WHEP and HLS). The credential is the password of
	// RTSP Basic auth (any user name), else ?token= from the URL. nil lets
	// everyone read.
	Gate Gate
	// MulticastIPRange ("224.1.0.0/16"), MulticastRTPPort (even) and
	// MulticastRTCPPort (the next one) enable the UDP multicast transport:
	// each stream is sent once to a group from the range, whatever the
	// number of readers on the network. All three or none.
	MulticastIPRange                    string
	MulticastRTPPort, MulticastRTCPPort int
	// TLSCert and TLSKey (PEM files) turn the server into RTSPS: requests
	// and interleaved media over TLS, UDP media as SRTP.
	TLSCert, TLSKey string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Gate is what the server asks of the gateway's access policy; an
// *access.Gate is one.
type Gate interface {
	// Authorize returns nil, access.ErrNoToken or access.ErrBadToken.
	Authorize(access.Request) error
	// Admit reserves a viewer slot; a refusal that has a RetryAfter()
	// time.Duration method says when to try again.
	Admit(access.Request) (release func(), err error)
}

// DefaultConfig is what the gateway runs with unconfigured: RTSP on :8554
// over TCP, and UDP on :8000/:8001, without authentication.
func DefaultConfig() Config {
	return Config{Addr: DefaultAddr, UDPRTPAddr: DefaultUDPRTPAddr, UDPRTCPAddr: DefaultUDPRTCPAddr}
}

// Server serves the hub's live streams over RTSP.
type Server struct {
	cfg         Config
	hub         *live.Hub
	log         *slog.Logger
	idleTimeout time.Duration
	setups      *setupGate

	mu       sync.Mutex
	rtsp     *gortsplib.Server
	addr     net.Addr
	streams  map[string]*liveStream // by streamKey: name and layer
	sessions map[*gortsplib.ServerSession]*liveStream
	started  bool
	closed   bool
	done     chan struct{} // closed by Close, ends DESCRIBEs' waits
}

// New checks cfg and returns a server that is not listening yet.
func New(cfg Config, hub *live.Hub) (*Server, error) {
	if hub == nil {
		return nil, errors.New("rtsp: no hub")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if (cfg.UDPRTPAddr == "") != (cfg.UDPRTCPAddr == "") {
		return nil, errors.New("rtsp: set both UDP RTP and RTCP addresses, or neither")
	}
	if cfg.MulticastIPRange != "" {
		if _, _, err := net.ParseCIDR(cfg.MulticastIPRange); err != nil {
			return nil, fmt.Errorf("rtsp: multicast IP range: %w", err)
		}
		if cfg.MulticastRTPPort <= 0 || cfg.MulticastRTPPort%2 != 0 || cfg.MulticastRTCPPort != cfg.MulticastRTPPort+1 {
			return nil, fmt.Errorf("rtsp: multicast ports %d/%d: RTP must be even and RTCP the next port",
				cfg.MulticastRTPPort, cfg.MulticastRTCPPort)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg:         cfg,
		hub:         hub,
		log:         log.With("component", "rtsp"),
		idleTimeout: defaultIdleTimeout,
		setups:      newSetupGate(),
		streams:     map[string]*liveStream{},
		sessions:    map[*gortsplib.ServerSession]*liveStream{},
		done:        make(chan struct{}),
	}, nil
}

// Start listens for RTSP players.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.started {
		return errors.New("rtsp: server already started")
	}
	srv := &gortsplib.Server{
		Handler:           &handler{s: s},
		RTSPAddress:       s.cfg.Addr,
		UDPRTPAddress:     s.cfg.UDPRTPAddr,
		UDPRTCPAddress:    s.cfg.UDPRTCPAddr,
		MulticastIPRange:  s.cfg.MulticastIPRange,
		MulticastRTPPort:  s.cfg.MulticastRTPPort,
		MulticastRTCPPort: s.cfg.MulticastRTCPPort,
		// Only Basic: a token is checked against any user name, which
		// Digest cannot do.
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic},
		// Reel writes the Sender Reports (reports.go).
		DisableRTCPSenderReports: true,
		// Listen records the real address when the port is 0. It runs
		// inside srv.Start, under s.mu. Its connections batch their
		// writes (batchconn.go).
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			s.addr = ln.Addr()
			return batchListener{ln}, nil
		},
	}
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("rtsp: loading the RTSPS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("rtsp: listening on %s: %w", s.cfg.Addr, err)
	}
	s.rtsp = srv
	s.started = true
	s.log.Info("RTSP server listening", "addr", s.addr.String(), "udp", s.cfg.UDPRTPAddr != "",
		"multicast", s.cfg.MulticastIPRange,
		"auth", s.cfg.Gate != nil)
	return nil
}

// Close disconnects every reader and stops listening. Safe to call twice,
// and before Start.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	streams := make([]*liveStream, 0, len(s.streams))
	for _, ls := range s.streams {
		streams = append(streams, ls)
		s.unbindLocked(ls)
	}
	srv := s.rtsp
	s.mu.Unlock()

	for _, ls := range streams {
		ls.shutdown()
	}
	if srv != nil {
		srv.Close()
		s.log.Info("RTSP server closed")
	}
}

// Addr is the TCP address the server listens on, "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == nil {
		return ""
	}
	return s.addr.String()
}

// Readers is the number of sessions playing the live stream called name,
// every simulcast layer of it together.
func (s *Server) Readers(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ls := range s.streams {
		if ls.name != name {
			continue
		}
		for _, r := range ls.sessions {
			if r.playing {
				n++
			}
		}
	}
	return n
}

// streamKey names one ServerStream: a stream, and for a simulcast stream
// the layer asked for ("" for the top one).
func streamKey(name, layer string) string {
	if layer == "" {
		return name
	}
	return name + "?layer=" + layer
}

// stream returns the RTSP side of the live stream called name (the given
// simulcast layer of it, "" for the top one), binding one to the hub
// stream on first use (a stream live on another node of a cluster is
// relayed, live.Hub.Find). With waitParams it first gives an H.264 or
// H.265 publisher up to paramsWait to send its parameter sets, for the
// SDP.
func (s *Server) stream(name, layer string, waitParams bool) (*liveStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), findTimeout)
	defer cancel()
	src := s.hub.Find(ctx, name)
	if src == nil {
		return nil, errNotFound
	}
	v := src.Track(live.Video)
	if v == nil || v.Layers() == nil {
		layer = "" // a stream without simulcast has one layer
	} else if layer != "" && (!live.ValidLayerName(layer) || v.Layer(layer) == nil) {
		return nil, fmt.Errorf("%w: %q", errNoLayer, layer)
	}
	if waitParams {
		waitForParams(src, layer, paramsWait, s.done)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return nil, errClosed
	}
	key := streamKey(name, layer)
	if ls := s.streams[key]; ls != nil && ls.src == src {
		ls.lastUse = time.Now()
		ls.refreshParams()
		return ls, nil
	}
	// Either the first reader, or the name was published anew and the old
	// binding is on its way out (its StreamEnded runs soon).
	ls, err := newLiveStream(s.rtsp, src, chooseLayer(src, layer), layer == "", s.log, s.streamEnded)
	if err != nil {
		if errors.Is(err, live.ErrStreamEnded) {
			return nil, errNotFound
		}
		return nil, err
	}
	ls.key = key
	s.streams[key] = ls
	s.armIdle(ls)
	if l := ls.layer.Load(); l != nil {
		w, h := l.Size()
		ls.log.Info("RTSP restream started", "layer", l.RID, "width", w, "height", h, "follows_top", ls.follow != nil)
	} else {
		ls.log.Info("RTSP restream started")
	}
	return ls, nil
}

// chooseLayer is the simulcast layer a ServerStream carries: the named
// one, or the top one (the best ranked so far if the ranking is not
// settled yet); nil for a stream without simulcast.
func chooseLayer(src *live.Stream, name string) *live.Track {
	v := src.Track(live.Video)
	if v == nil || v.Layers() == nil {
		return nil
	}
	if name != "" {
		return v.Layer(name)
	}
	if top := v.TopLayer(); top != nil {
		return top
	}
	return v.Layer("high")
}

// streamEnded runs on the subscription's goroutine when the publisher has
// gone: it forgets the stream and disconnects its readers.
func (s *Server) streamEnded(ls *liveStream) {
	s.mu.Lock()
	s.unbindLocked(ls)
	s.mu.Unlock()
	ls.closeRTSP()
	ls.log.Info("RTSP restream ended: the publisher left")
}

// attach binds a session that has SETUP a media of ls, once Config.Gate
// has given it a viewer slot.
func (s *Server) attach(ss *gortsplib.ServerSession, ls *liveStream, peer, ip string) error {
	s.mu.Lock()
	bound := s.sessions[ss] == ls && ls.sessions[ss] != nil
	s.mu.Unlock()
	var release func()
	if !bound && s.cfg.Gate != nil {
		var err error
		if release, err = s.cfg.Gate.Admit(access.Request{Action: access.Read, Stream: ls.name, Protocol: access.RTSP, Addr: ip}); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.sessions[ss]; old != nil && old != ls {
		// A first SETUP that gortsplib then refused left the session
		// bound to another stream; this one replaces it.
		if r := old.sessions[ss]; r != nil && r.release != nil {
			r.release()
		}
		delete(old.sessions, ss)
	}
	s.sessions[ss] = ls
	if ls.sessions[ss] == nil {
		ls.sessions[ss] = &readerState{peer: peer, release: release}
	} else if release != nil {
		release() // one slot per session, whatever the SETUPs
	}
	ls.lastUse = time.Now()
	return nil
}

// play marks a session as reading and returns its stream, or nil.
func (s *Server) play(ss *gortsplib.ServerSession) *liveStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.sessions[ss]
	if ls != nil {
		ls.sessions[ss].playing = true
	}
	return ls
}

// detach forgets a closed session and returns the stream it read and the
// reader's address, or nil.
func (s *Server) detach(ss *gortsplib.ServerSession) (*liveStream, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.sessions[ss]
	if ls == nil {
		return nil, ""
	}
	peer := ls.sessions[ss].peer
	if release := ls.sessions[ss].release; release != nil {
		release()
	}
	delete(s.sessions, ss)
	delete(ls.sessions, ss)
	ls.lastUse = time.Now()
	if len(ls.sessions) == 0 {
		s.armIdle(ls)
	}
	return ls, peer
}

// unbindLocked forgets ls as the RTSP side of its stream name and stops its
// idle timer. Called with s.mu held.
func (s *Server) unbindLocked(ls *liveStream) {
	if s.streams[ls.key] == ls {
		delete(s.streams, ls.key)
	}
	if ls.idle != nil {
		ls.idle.Stop()
	}
}

// armIdle (re)starts the timer that unbinds ls once nobody has used it for
// idleTimeout. Called with s.mu held.
func (s *Server) armIdle(ls *liveStream) {
	if s.closed || s.streams[ls.key] != ls {
		return // already unbound
	}
	if ls.idle == nil {
		ls.idle = time.AfterFunc(s.idleTimeout, func() { s.closeIfIdle(ls) })
		return
	}
	ls.idle.Reset(s.idleTimeout)
}

// closeIfIdle unbinds ls from the hub when it still has no session: its
// ServerStream costs a copy of every packet even with nobody reading.
func (s *Server) closeIfIdle(ls *liveStream) {
	s.mu.Lock()
	if s.streams[ls.key] != ls || len(ls.sessions) > 0 {
		s.mu.Unlock()
		return
	}
	if rest := s.idleTimeout - time.Since(ls.lastUse); rest > 0 {
		ls.idle.Reset(rest) // a DESCRIBE came in meanwhile
		s.mu.Unlock()
		return
	}
	s.unbindLocked(ls)
	s.mu.Unlock()
	ls.shutdown()
	ls.log.Info("RTSP restream stopped: no readers")
}

// streamName turns a request path ("/cam", "/cam/") into a stream name.
func streamName(path string) string { return strings.Trim(path, "/") }
