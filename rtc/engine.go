// Package rtc is the WebRTC plumbing WHIP and WHEP share: pion's API and
// settings, the one UDP port every peer uses, SDP negotiation, the answer,
// and what PATCH acts on (ICE restarts, trickle, ETags).
//
// Files: engine.go makes peer connections on the shared UDP mux
// (sendbatch.go gathers its writes into batched, segmented sends, and
// udpconn.go spreads them where that cannot be done; sockstats.go reads
// the kernel's drops and fill of its receive buffer; rtpwriter.go
// encrypts a viewer's RTP with the connection's keys straight into that
// batch, past pion's send path, sealing AES-128-GCM itself in
// srtpgcm.go), negotiate.go
// matches offers against codecs and live tracks, session.go is a session's life (answer, connect
// deadline, close) and the registry of live sessions, ice.go and
// sdpfrag.go the ICE half of PATCH.
package rtc

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/pion/dtls/v2"
	"github.com/pion/ice/v2"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"
)

// DefaultUDPAddr is the one UDP port every WebRTC peer shares.
const DefaultUDPAddr = ":8189"

// Config configures the WebRTC transport every peer shares.
type Config struct {
	// UDPAddr is the one UDP address all peers' ICE traffic shares
	// (default DefaultUDPAddr), so a firewall or Docker needs one forwarded port.
	UDPAddr string
	// NAT1To1IPs are public addresses to advertise as host candidates when
	// the gateway runs behind NAT with the UDP port forwarded.
	NAT1To1IPs []string
	// ICEServers (stun:/turn: URLs) are offered to clients in Link headers.
	ICEServers []string
	// MaxCandidates bounds the remote ICE candidates of a session, the
	// offer's and every trickled one (default DefaultMaxCandidates;
	// negative: no limit).
	MaxCandidates int
	Logger        *slog.Logger
}

// muxReadBuffer is the receive buffer of the shared UDP socket, which takes
// every publisher's media and every viewer's RTCP: the default (about 200
// KB) fills in a few milliseconds of a busy gateway and then drops
// publishers' packets, which every viewer would miss. The kernel caps it
// at net.core.rmem_max.
const muxReadBuffer = 4 << 20

// Engine holds what every WHIP and WHEP peer connection shares: the UDP mux
// and the settings derived from configuration.
type Engine struct {
	cfg   Config
	mux   ice.UDPMux
	socks *socketSet
}

// NewRTC opens the shared ICE UDP port.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = DefaultUDPAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxCandidates == 0 {
		cfg.MaxCandidates = DefaultMaxCandidates
	}
	host, portStr, err := net.SplitHostPort(cfg.UDPAddr)
	if err != nil {
		return nil, fmt.Errorf("parsing WebRTC UDP address %q: %w", cfg.UDPAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing WebRTC UDP port %q: %w", portStr, err)
	}
	var mux ice.UDPMux
	socks := &socketSet{log: cfg.Logger}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		// One socket per interface on the same port: pion can then
		// advertise each interface's real address as a host candidate.
		var std *stdnet.Net
		if std, err = stdnet.NewNet(); err == nil {
			mux, err = ice.NewMultiUDPMuxFromPort(port, ice.UDPMuxFromPortWithLoopback(),
				ice.UDPMuxFromPortWithNetworks(ice.NetworkTypeUDP4), ice.UDPMuxFromPortWithReadBufferSize(muxReadBuffer),
				ice.UDPMuxFromPortWithNet(spreadNet{std, socks}))
		}
	} else {
		var conn *net.UDPConn
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err == nil {
			_ = conn.SetReadBuffer(muxReadBuffer)
			mux = webrtc.NewICEUDPMux(nil, socks.open(conn))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening WebRTC UDP port %s: %w", cfg.UDPAddr, err)
	}
	// Linux reports twice what was asked (its bookkeeping included) and
	// grants at most net.core.rmem_max.
	if got := socks.receiveBuffer(); got > 0 && got < muxReadBuffer {
		cfg.Logger.Warn("the WebRTC UDP socket's receive buffer is smaller than asked; a busy moment will lose publishers' media: raise net.core.rmem_max (sysctl -w net.core.rmem_max=4194304)",
			"granted_bytes", got, "asked_bytes", muxReadBuffer)
	}
	return &Engine{cfg: cfg, mux: mux, socks: socks}, nil
}

// InputStats is the kernel's view of the shared UDP sockets: what waits
// in their receive buffers and how many packets they dropped. It fails
// where the kernel does not say (not Linux).
func (r *Engine) InputStats() (SocketStats, error) { return r.socks.stats() }

// OutputStats is what the shared UDP sockets sent: the datagrams, the
// messages that carried them, and those the kernel refused.
func (r *Engine) OutputStats() SendStats { return r.socks.sendStats() }

// UDPPort is the port the shared ICE socket listens on.
func (r *Engine) UDPPort() int {
	for _, a := range r.mux.GetListenAddresses() {
		if u, ok := a.(*net.UDPAddr); ok {
			return u.Port
		}
	}
	return 0
}

// NewSession wraps pc, made by this engine, in a session with the
// engine's limits.
func (r *Engine) NewSession(pc *webrtc.PeerConnection, log *slog.Logger) *Session {
	s := NewSession(pc, log)
	s.maxCandidates = r.cfg.MaxCandidates
	return s
}

// ICEServers returns the configured ICE server URLs.
func (r *Engine) ICEServers() []string { return r.cfg.ICEServers }

// NewPeerConnection makes a peer connection whose codecs are exactly those
// registered in me, with NACK, RTCP reports and TWCC interceptors.
func (r *Engine) NewPeerConnection(me *webrtc.MediaEngine) (*webrtc.PeerConnection, error) {
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("registering interceptors: %w", err)
	}
	return r.newPeerConnection(me, reg)
}

// NewViewerPeerConnection makes a send-only peer connection that runs no
// interceptor. A viewer receives no media, so there is nothing to send
// NACKs, receiver reports or congestion feedback about; its NACKs are the
// caller's to answer, from the hub packets it holds (pion's responder
// would copy every packet sent to every viewer into a history of its
// own); and the caller writes its Sender Reports from the stream's clock
// (pion's report interceptor maps each track to the time its packets are
// sent, not captured, and takes a lock and the time for every packet).
func (r *Engine) NewViewerPeerConnection(me *webrtc.MediaEngine) (*webrtc.PeerConnection, error) {
	return r.newPeerConnection(me, &interceptor.Registry{})
}

// SRTPProfiles are the SRTP protection profiles every peer connection
// offers in DTLS, most wanted first. AES-128-GCM authenticates as it
// encrypts (AES-NI and carry-less multiply do both), where AES-CM needs a
// second pass of HMAC-SHA1 over every packet; AES-256-GCM, which pion
// offers first by default, costs 40% more AES rounds for nothing a viewer
// needs. Reel answers as the DTLS client, so the peer picks: a browser by
// its own order among these (Chromium prefers 256-bit GCM when offered,
// so it is not), pion by ours. AES-CM stays for peers without GCM.
var SRTPProfiles = []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}

func (r *Engine) newPeerConnection(me *webrtc.MediaEngine, reg *interceptor.Registry) (*webrtc.PeerConnection, error) {
	var se webrtc.SettingEngine
	se.SetICEUDPMux(r.mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	// Every peer already knows our candidates from the answer; mDNS names
	// would only hide them.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A publisher that vanishes without DELETE is noticed by consent
	// freshness within failedTimeout and its recording finalized.
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	if len(r.cfg.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(r.cfg.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	se.SetSRTPProtectionProfiles(SRTPProfiles...)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	})
	if err != nil {
		return nil, fmt.Errorf("creating peer connection: %w", err)
	}
	return pc, nil
}

// Close releases the shared UDP port.
func (r *Engine) Close() error { return r.mux.Close() }
