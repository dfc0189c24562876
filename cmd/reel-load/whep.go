package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/transport/v2"
	"github.com/pion/transport/v2/stdnet"
	"github.com/pion/webrtc/v3"
	"golang.org/x/sys/unix"

	"github.com/reel-gateway/reel/internal/whipclient"
)

// whepViewer is one WHEP session. In the default light mode it is a real
// WebRTC peer (ICE, DTLS, SRTP keys) that reads its media packets' RTP
// headers, which SRTP leaves in the clear, straight off its UDP socket
// without decrypting them: the load tool then costs little next to the
// gateway it measures. With decrypt set, pion decrypts and authenticates
// every packet and the default interceptors run, as in a browser.
type whepViewer struct {
	recv     *receiver
	pc       *webrtc.PeerConnection
	http     *http.Client
	token    string
	location string
	// videoPT holds the payload types the answer gave video (bit per PT).
	videoPT   [2]atomic.Uint64
	connected chan struct{}
}

// tapNet is pion's standard network whose UDP sockets hand RTP packets to
// tap instead of to pion; gro lets them take the gateway's segmented sends
// whole (UDP_GRO).
type tapNet struct {
	*stdnet.Net
	tap func(b []byte, at int64)
	gro bool
}

func (n *tapNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	t := &tapConn{UDPConn: c, tap: n.tap}
	if u, ok := c.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(1 << 20)
		if kernelTimestamps(u) {
			t.udp, t.oob = u, make([]byte, 128)
			if n.gro && receiveCoalesced(u) {
				t.big = make([]byte, 1<<16)
			}
		}
	}
	return t, nil
}

// kernelTimestamps asks the kernel to stamp every datagram with the time it
// reached the socket (SO_TIMESTAMPNS). Over loopback that is the moment the
// gateway sent it, so the latency measured leaves out how long the load
// tool's own goroutines took to read it.
func kernelTimestamps(u *net.UDPConn) bool {
	return turnOn(u, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS)
}

// receiveCoalesced asks the kernel to hand over a run of datagrams that
// the sender segmented (UDP GSO, as the gateway sends a frame's packets to
// one viewer) as one buffer with their size (UDP_GRO, Linux 5.0+), instead
// of cutting it into datagrams on the way in. Over loopback that cutting
// runs in softirq on whichever CPU sent, and this kernel charges it to
// the task it interrupted: mostly the gateway being measured. A viewer on
// another machine costs the gateway none of it.
func receiveCoalesced(u *net.UDPConn) bool {
	return turnOn(u, unix.IPPROTO_UDP, unix.UDP_GRO)
}

// turnOn sets the socket option level/opt of u to 1 and reports whether
// the kernel took it.
func turnOn(u *net.UDPConn, level, opt int) bool {
	raw, err := u.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), level, opt, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

type tapConn struct {
	transport.UDPConn
	tap func(b []byte, at int64)
	udp *net.UDPConn // set when the kernel stamps datagrams
	oob []byte
	// big is the buffer of a socket that takes coalesced runs; pending
	// holds datagrams of a run that are not media, still to give pion
	// (in practice never: the gateway segments only equal-size media).
	big      []byte
	pending  [][]byte
	fromAddr net.Addr
}

// isMedia reports whether b is RTP, which the viewer keeps, rather than
// STUN, DTLS or RTCP, which go on to pion (RFC 7983: first byte 128-191;
// RTCP packet types 192-223 in the second byte).
func isMedia(b []byte) bool {
	return len(b) >= 12 && b[0] >= 128 && b[0] <= 191 && (b[1] < 192 || b[1] > 223)
}

// ReadFrom passes STUN, DTLS and RTCP on to pion and keeps RTP.
func (c *tapConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.big != nil {
		return c.readCoalesced(b)
	}
	for {
		n, addr, at, err := c.read(b)
		if err != nil || !isMedia(b[:n]) {
			return n, addr, err
		}
		c.tap(b[:n], at)
	}
}

// readCoalesced is ReadFrom on a socket with UDP_GRO: a read may return
// a run of datagrams of one size (the last may be shorter), which it
// cuts apart again.
func (c *tapConn) readCoalesced(b []byte) (int, net.Addr, error) {
	for {
		if len(c.pending) > 0 {
			n := copy(b, c.pending[0])
			c.pending = c.pending[1:]
			return n, c.fromAddr, nil
		}
		n, oobn, _, from, err := c.udp.ReadMsgUDPAddrPort(c.big, c.oob)
		if err != nil {
			if !from.IsValid() {
				return 0, nil, err
			}
			return 0, net.UDPAddrFromAddrPort(from), err
		}
		at, seg := parseControl(c.oob[:oobn])
		if at == 0 {
			at = now()
		}
		if seg <= 0 || seg > n {
			seg = n
		}
		for off := 0; off < n; off += seg {
			d := c.big[off:min(off+seg, n)]
			if isMedia(d) {
				c.tap(d, at)
				continue
			}
			c.pending = append(c.pending, append([]byte(nil), d...))
			c.fromAddr = net.UDPAddrFromAddrPort(from)
		}
	}
}

// read returns a datagram and when it arrived: the kernel's timestamp, or
// the time read returned.
func (c *tapConn) read(b []byte) (int, net.Addr, int64, error) {
	if c.udp == nil {
		n, addr, err := c.UDPConn.ReadFrom(b)
		return n, addr, now(), err
	}
	n, oobn, _, from, err := c.udp.ReadMsgUDPAddrPort(b, c.oob)
	at := int64(0)
	if err == nil {
		at, _ = parseControl(c.oob[:oobn])
	}
	if at == 0 {
		at = now()
	}
	if !from.IsValid() {
		return n, nil, at, err // not a typed nil in the interface
	}
	return n, net.UDPAddrFromAddrPort(from), at, err
}

// parseControl finds, in a read's control messages, SCM_TIMESTAMPNS (in
// Unix ns) and the size of the datagrams of a coalesced run (UDP_GRO; 0
// for a single datagram). It walks the headers in place: the light
// viewers read hundreds of thousands of messages a second on the machine
// whose gateway they measure, and unix.ParseSocketControlMessage (with
// ReadMsgUDP's address) allocated for every one.
func parseControl(oob []byte) (at int64, seg int) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		end := int(h.Len)
		if end < unix.CmsgLen(0) || end > len(oob) {
			return at, seg
		}
		data := oob[unix.CmsgLen(0):end]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			at = (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			seg = int(*(*int32)(unsafe.Pointer(&data[0])))
		}
		next := unix.CmsgSpace(len(data))
		if next >= len(oob) {
			return at, seg
		}
		oob = oob[next:]
	}
	return at, seg
}

// loadNet lists the network interfaces once for every viewer.
var loadNet = sync.OnceValues(stdnet.NewNet)

func dialWHEP(ctx context.Context, endpoint, token string, client *http.Client, recv *receiver, decrypt, gro bool) (*whepViewer, error) {
	stdNet, err := loadNet()
	if err != nil {
		return nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	v := &whepViewer{recv: recv, http: client, token: token, connected: make(chan struct{})}
	se := whipclient.LoopbackSettingEngine()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("registering codecs: %w", err)
	}
	// The offer lists what a browser's does (NACK, PLI, transport-cc).
	// Light viewers run no interceptor: pion never sees their media.
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("registering interceptors: %w", err)
	}
	if !decrypt {
		ir = &interceptor.Registry{}
		se.SetNet(&tapNet{Net: stdNet, tap: v.tap, gro: gro})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("creating viewer peer connection: %w", err)
	}
	v.pc = pc
	var once atomic.Bool
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected && once.CompareAndSwap(false, true) {
			close(v.connected)
		}
	})
	if decrypt {
		pc.OnTrack(v.readTrack)
	}
	if err := v.negotiate(ctx, endpoint); err != nil {
		_ = pc.Close()
		return nil, err
	}
	select {
	case <-v.connected:
	case <-ctx.Done():
		v.Close()
		return nil, fmt.Errorf("WHEP viewer did not connect: %w", ctx.Err())
	}
	return v, nil
}

func (v *whepViewer) negotiate(ctx context.Context, endpoint string) error {
	recvonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := v.pc.AddTransceiverFromKind(kind, recvonly); err != nil {
			return fmt.Errorf("adding %s transceiver: %w", kind, err)
		}
	}
	offer, err := v.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("creating offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	answer, err := v.post(ctx, endpoint, v.pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	v.mapPayloadTypes(answer)
	if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("applying answer: %w", err)
	}
	return nil
}

// post sends the offer and returns the answer, remembering Location.
func (v *whepViewer) post(ctx context.Context, endpoint, offer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("WHEP POST: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading WHEP answer: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("WHEP POST %s: status %d: %s", endpoint, resp.StatusCode, bytes.TrimSpace(body))
	}
	base, _ := url.Parse(endpoint)
	if loc, err := base.Parse(resp.Header.Get("Location")); err == nil {
		v.location = loc.String()
	}
	return string(body), nil
}

// mapPayloadTypes reads which payload types the answer gives video.
func (v *whepViewer) mapPayloadTypes(answer string) {
	for line := range strings.Lines(answer) {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[0] != "m=video" {
			continue
		}
		for _, f := range fields[3:] {
			if pt, err := strconv.Atoi(f); err == nil && pt >= 0 && pt < 128 {
				v.videoPT[pt/64].Or(1 << (pt % 64))
			}
		}
	}
}

func (v *whepViewer) isVideo(pt uint8) bool {
	pt &= 0x7f
	return v.videoPT[pt/64].Load()&(1<<(pt%64)) != 0
}

// tap reads the RTP header of a packet straight from the socket.
func (v *whepViewer) tap(b []byte, at int64) {
	var h rtp.Header
	n, err := h.Unmarshal(b)
	if err != nil {
		return
	}
	// SRTP appends a 10-byte auth tag (AES-CM) or 16 (GCM); the payload
	// size is only used for the bitrate, so count it as sent.
	v.recv.packet(v.isVideo(h.PayloadType), h.SequenceNumber, h.Timestamp, len(b)-n, at)
}

// readTrack is the decrypt mode's receive loop.
func (v *whepViewer) readTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	video := t.Kind() == webrtc.RTPCodecTypeVideo
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		at := now()
		if p.Unmarshal(buf[:n]) == nil {
			v.recv.packet(video, p.SequenceNumber, p.Timestamp, len(p.Payload), at)
		}
	}
}

// Close DELETEs the session and closes the peer connection.
func (v *whepViewer) Close() {
	if v.location != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if req, err := http.NewRequestWithContext(ctx, http.MethodDelete, v.location, nil); err == nil {
			if v.token != "" {
				req.Header.Set("Authorization", "Bearer "+v.token)
			}
			if resp, err := v.http.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	_ = v.pc.Close()
}
