package rtc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pion/dtls/v2"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v3"
)

// A WHEP viewer's media is most of what the gateway sends, and through
// pion each of its packets takes a long way to the socket: the track's
// lock and bindings, the SRTP session's lock and a pooled buffer, the
// DTLS mux's endpoint, the ICE connection's checks and its last-sent
// clock read, and the UDP mux, before the shared socket's batch
// (sendbatch.go) copies it in. An RTPWriter takes the short way: it
// encrypts with an SRTP context of its own, made from the connection's
// DTLS keys, in a buffer of its own, and hands the packet to the batch
// addressed to the selected candidate pair. RTCP (the viewer's Sender
// Reports, and everything the viewer sends) stays with pion: SRTCP has
// its own keys and index, so the two never share cipher state.
//
// pion v3 keeps the DTLS connection private; the writer reads the one
// field it needs (DTLSTransport.conn) by reflection, under the
// transport's own lock, and says so with an error when a pion upgrade
// moves it, so the caller goes on through pion's path.

// ErrNoDirectRoute: the viewer's selected candidate pair does not leave
// through one of the engine's shared sockets (a relayed or TCP pair, or
// an address the sockets do not have), so its media goes through pion.
var ErrNoDirectRoute = errors.New("the selected candidate pair does not leave through the shared socket")

// RTPWriter encrypts and sends one peer connection's RTP through the
// engine's shared socket. It is safe for concurrent use (a viewer's
// forwarding goroutine and its NACK answers); the lock is held while a
// packet is encrypted and copied into the batch, never while it is sent.
type RTPWriter struct {
	dest atomic.Pointer[route]
	mu   sync.Mutex
	// gcm encrypts for AES-128-GCM (srtpgcm.go), ctx, pion's, for the
	// other profiles (AES-CM, which Chromium takes).
	gcm *gcmSender
	ctx *srtp.Context
	buf []byte     // plaintext, encrypted in place
	hdr rtp.Header // ctx's scratch
}

// route is where a writer's packets go: the selected pair's remote
// address, through the shared socket of its local candidate.
type route struct {
	out  *batchConn
	addr *net.UDPAddr
	key  netip.AddrPort // addr's, made once
}

// rtpWriterBuffer holds any RTP packet with its SRTP tag and MKI.
const rtpWriterBuffer = 1500 + srtpOverhead

// NewRTPWriter returns a writer for pc's RTP, which must be connected
// (DTLS done): the keys are the connection's. It fails, and the caller
// sends through pion, when the selected pair does not leave through the
// engine's shared socket or pion's DTLS state cannot be read.
func (r *Engine) NewRTPWriter(pc *webrtc.PeerConnection) (*RTPWriter, error) {
	dt := pc.SCTP().Transport()
	conn, err := dtlsConnOf(dt)
	if err != nil {
		return nil, err
	}
	client, err := dtlsClient(pc)
	if err != nil {
		return nil, err
	}
	profile, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, errors.New("no SRTP protection profile was negotiated")
	}
	cfg := srtp.Config{Profile: srtp.ProtectionProfile(profile)}
	state := conn.ConnectionState()
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return nil, fmt.Errorf("extracting SRTP keys: %w", err)
	}
	w := &RTPWriter{buf: make([]byte, rtpWriterBuffer)}
	if cfg.Profile == srtp.ProtectionProfileAeadAes128Gcm {
		w.gcm, err = newGCMSender(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt)
	} else {
		w.ctx, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, cfg.Profile)
	}
	if err != nil {
		return nil, fmt.Errorf("making the SRTP context: %w", err)
	}
	ice := dt.ICETransport()
	// Follow the pair first, then read it, so a change in between is not
	// missed. A pair that cannot be followed stops the writer's packets:
	// its context cannot hand its SSRCs back to pion's.
	ice.OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) {
		rt, err := r.socks.route(p)
		if err != nil {
			rt = &route{} // followed, and not carried: nothing is sent
			pair := "none"
			if p != nil {
				pair = p.String()
			}
			r.cfg.Logger.Warn("a viewer's ICE moved to a candidate pair the shared socket does not carry; its media stops until it moves back",
				"pair", pair)
		}
		w.dest.Store(rt)
	})
	pair, err := ice.GetSelectedCandidatePair()
	if err != nil {
		return nil, err
	}
	rt, err := r.socks.route(pair)
	if err != nil {
		return nil, err
	}
	w.dest.CompareAndSwap(nil, rt) // unless the handler has run since
	return w, nil
}

// WriteRTP encrypts p and queues it on the shared socket. The packet's
// SSRC and payload type are sent as they are: they must be the
// negotiated ones.
func (w *RTPWriter) WriteRTP(p *rtp.Packet) error {
	rt := w.dest.Load()
	if rt == nil || rt.out == nil {
		return ErrNoDirectRoute
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := marshalRTP(p, w.buf[:cap(w.buf)-srtpOverhead])
	if err != nil {
		return err
	}
	var out []byte
	if w.gcm != nil {
		out, err = w.gcm.seal(w.buf, n, p.Header.MarshalSize(), p.SSRC, p.SequenceNumber)
	} else {
		out, err = w.ctx.EncryptRTP(w.buf[:0], w.buf[:n], &w.hdr)
	}
	if err != nil {
		return err
	}
	_, err = rt.out.queue(out, rt.addr, rt.key) // never over rtpWriterBuffer
	return err
}

// marshalRTP writes p to buf. A packet with the padding bit and no
// padding size carries its padding in its payload, the count in the last
// byte, as pion's own writers take it (a bandwidth probe's padding-only
// packets, egress/whep/layers.go); rtp.Packet.MarshalTo refuses those.
func marshalRTP(p *rtp.Packet, buf []byte) (int, error) {
	if !p.Header.Padding || p.Header.PaddingSize != 0 || p.PaddingSize != 0 {
		return p.MarshalTo(buf)
	}
	n, err := p.Header.MarshalTo(buf)
	if err != nil {
		return 0, err
	}
	if len(p.Payload) == 0 || int(p.Payload[len(p.Payload)-1]) > len(p.Payload) {
		return 0, errors.New("a padded RTP packet's payload does not end in its padding count")
	}
	if n+len(p.Payload) > len(buf) {
		return 0, io.ErrShortBuffer
	}
	return n + copy(buf[n:], p.Payload), nil
}

// srtpOverhead is room for the SRTP tag and MKI behind the packet.
const srtpOverhead = 64

// dtlsConnOf is the DTLS connection of t, read under t's lock.
func dtlsConnOf(t *webrtc.DTLSTransport) (*dtls.Conn, error) {
	if t == nil {
		return nil, errors.New("no DTLS transport")
	}
	v := reflect.ValueOf(t).Elem()
	lock, conn := v.FieldByName("lock"), v.FieldByName("conn")
	if !lock.IsValid() || lock.Type() != reflect.TypeFor[sync.RWMutex]() ||
		!conn.IsValid() || conn.Type() != reflect.TypeFor[*dtls.Conn]() {
		return nil, errors.New("pion's DTLSTransport no longer has the fields Reel reads its keys from")
	}
	mu := (*sync.RWMutex)(unsafe.Pointer(lock.UnsafeAddr()))
	mu.RLock()
	c := *(**dtls.Conn)(unsafe.Pointer(conn.UnsafeAddr()))
	mu.RUnlock()
	if c == nil {
		return nil, errors.New("DTLS is not connected")
	}
	return c, nil
}

// dtlsClient reports whether pc's descriptions make it the DTLS client:
// its own a=setup:active, or, where it offered actpass, the answer's
// passive.
func dtlsClient(pc *webrtc.PeerConnection) (bool, error) {
	local, err := setupRole(pc.LocalDescription())
	if err != nil || local != "actpass" {
		return local == "active", err
	}
	remote, err := setupRole(pc.RemoteDescription())
	if err != nil || remote == "actpass" {
		return false, fmt.Errorf("both descriptions leave the DTLS role open (%v)", err)
	}
	return remote == "passive", nil
}

// setupRole is the first a=setup of d: active, passive or actpass.
func setupRole(d *webrtc.SessionDescription) (string, error) {
	if d == nil {
		return "", errors.New("no session description")
	}
	for line := range strings.Lines(d.SDP) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "a=setup:"); ok {
			switch v {
			case "active", "passive", "actpass":
				return v, nil
			}
			return "", fmt.Errorf("a=setup:%s", v)
		}
	}
	return "", errors.New("the description has no a=setup")
}

// route finds the shared socket a candidate pair leaves through: the one
// on the local candidate's port and address, or the only one on that
// port (its address may be a 1:1 NAT's).
func (s *socketSet) route(p *webrtc.ICECandidatePair) (*route, error) {
	if p == nil || p.Local == nil || p.Remote == nil ||
		p.Local.Protocol != webrtc.ICEProtocolUDP || p.Local.Typ != webrtc.ICECandidateTypeHost {
		return nil, ErrNoDirectRoute
	}
	remote := net.ParseIP(p.Remote.Address)
	if remote == nil {
		return nil, ErrNoDirectRoute // an mDNS name
	}
	if v4 := remote.To4(); v4 != nil {
		remote = v4
	}
	local := net.ParseIP(p.Local.Address)
	s.mu.Lock()
	defer s.mu.Unlock()
	var only *batchConn
	onPort := 0
	for _, b := range s.senders {
		la, ok := b.LocalAddr().(*net.UDPAddr)
		if !ok || la.Port != int(p.Local.Port) {
			continue
		}
		if la.IP.Equal(local) {
			only, onPort = b, 1
			break
		}
		only = b
		onPort++
	}
	if onPort != 1 {
		return nil, ErrNoDirectRoute
	}
	addr := &net.UDPAddr{IP: remote, Port: int(p.Remote.Port)}
	return &route{out: only, addr: addr, key: addr.AddrPort()}, nil
}
