package whipclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"
)

// ViewOptions configures View.
type ViewOptions struct {
	Token         string // sent as Authorization: Bearer
	HTTPClient    *http.Client
	SettingEngine *webrtc.SettingEngine // nil = pion defaults
	ICEServers    []webrtc.ICEServer
}

// ReceiveStats describes one received track.
type ReceiveStats struct {
	Codec       string // negotiated MIME type, e.g. "video/VP8"
	Packets     uint64
	Bytes       uint64 // RTP payload bytes
	FirstPacket time.Time
	Frames      uint64 // video: packets with the RTP marker bit
	Keyframes   uint64 // video: frames (RTP timestamps) holding a keyframe start
	Lost        uint64 // sequence numbers skipped
}

// ViewerStats is a snapshot of what a Viewer received, per kind, and when
// its PeerConnection connected (ICE and DTLS done; zero before).
type ViewerStats struct {
	Video     ReceiveStats
	Audio     ReceiveStats
	Connected time.Time
}

// Viewer is one WHEP session receiving media.
type Viewer struct {
	Location string // resolved session URL
	ETag     string
	PC       *webrtc.PeerConnection

	http *session

	mu     sync.Mutex
	stats  ViewerStats
	tracks int // tracks whose read loop is running

	closed     chan struct{}
	closedOnce sync.Once
	closeOnce  sync.Once
	closeErr   error
}

// View creates a recvonly PeerConnection (video and audio) offering pion's
// default codecs, performs the WHEP exchange with whepURL and starts
// counting what arrives. ctx bounds the setup only.
func View(ctx context.Context, whepURL string, opts ViewOptions) (*Viewer, error) {
	httpSession, err := newSession(whepURL, opts.Token, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	v := &Viewer{http: httpSession, closed: make(chan struct{})}
	if err := v.setupPeerConnection(opts); err != nil {
		return nil, err
	}
	if err := v.negotiate(ctx); err != nil {
		_ = closeSettled(v.PC)
		_ = v.http.delete()
		return nil, err
	}
	v.Location = v.http.location.String()
	return v, nil
}

func (v *Viewer) setupPeerConnection(opts ViewOptions) error {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return fmt.Errorf("registering default codecs: %w", err)
	}
	if err := m.RegisterCodec(videoCodec(webrtc.MimeTypeH265, h265Fmtp, ptH265), webrtc.RTPCodecTypeVideo); err != nil {
		return fmt.Errorf("registering H.265: %w", err)
	}
	api, err := newAPI(m, opts.SettingEngine)
	if err != nil {
		return err
	}
	v.PC, err = api.NewPeerConnection(webrtc.Configuration{ICEServers: opts.ICEServers})
	if err != nil {
		return fmt.Errorf("creating viewer PeerConnection: %w", err)
	}
	recvonly := webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := v.PC.AddTransceiverFromKind(kind, recvonly); err != nil {
			_ = v.PC.Close()
			return fmt.Errorf("adding %s transceiver: %w", kind, err)
		}
	}
	v.PC.OnTrack(v.onTrack)
	v.PC.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			v.mu.Lock()
			if v.stats.Connected.IsZero() {
				v.stats.Connected = time.Now()
			}
			v.mu.Unlock()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			v.markClosed()
		}
	})
	return nil
}

func (v *Viewer) negotiate(ctx context.Context) error {
	offer, err := v.PC.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("creating offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(v.PC)
	if err := v.PC.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("setting local offer: %w", err)
	}
	if err := waitGathering(ctx, gathered); err != nil {
		return err
	}
	answer, etag, err := v.http.offer(ctx, v.PC.LocalDescription().SDP)
	if err != nil {
		return fmt.Errorf("WHEP offer: %w", err)
	}
	v.ETag = etag
	err = v.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
	if err != nil {
		return fmt.Errorf("applying WHEP answer: %w", err)
	}
	return nil
}

// onTrack reads one remote track until it ends; when every track has
// ended the viewer counts as closed (the publisher left).
func (v *Viewer) onTrack(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	v.mu.Lock()
	v.tracks++
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.tracks--
		last := v.tracks == 0
		v.mu.Unlock()
		if last {
			v.markClosed()
		}
	}()
	counter := newTrackCounter(track.Kind(), track.Codec().MimeType)
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		v.mu.Lock()
		counter.add(pkt, v.statsFor(track.Kind()))
		v.mu.Unlock()
	}
}

func (v *Viewer) statsFor(kind webrtc.RTPCodecType) *ReceiveStats {
	if kind == webrtc.RTPCodecTypeVideo {
		return &v.stats.Video
	}
	return &v.stats.Audio
}

func (v *Viewer) markClosed() {
	v.closedOnce.Do(func() { close(v.closed) })
}

// Stats returns a snapshot of what was received so far.
func (v *Viewer) Stats() ViewerStats {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.stats
}

// WaitVideoFrames waits until n complete video frames have arrived. It
// fails if ctx ends or the session closes first.
func (v *Viewer) WaitVideoFrames(ctx context.Context, n int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if got := v.Stats().Video.Frames; got >= uint64(n) {
			return nil
		}
		select {
		case <-tick.C:
		case <-v.closed:
			return fmt.Errorf("waiting for %d video frames: session closed after %d", n, v.Stats().Video.Frames)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d video frames, got %d: %w", n, v.Stats().Video.Frames, ctx.Err())
		}
	}
}

// Closed is closed when the PeerConnection fails or closes, or when all
// received tracks have ended (the publisher left). pion v3 ignores a peer's
// DTLS close_notify, so a server that just closes its side is noticed by
// ICE consent expiry: the SettingEngine's disconnected + failed timeouts
// (about 6 s with LoopbackSettingEngine, 30 s with pion's defaults).
func (v *Viewer) Closed() <-chan struct{} { return v.closed }

// Close DELETEs the WHEP session and closes the PeerConnection. It is safe
// to call more than once.
func (v *Viewer) Close() error {
	v.closeOnce.Do(func() {
		var errs []error
		if err := v.http.delete(); err != nil {
			errs = append(errs, fmt.Errorf("deleting WHEP session: %w", err))
		}
		if err := closeSettled(v.PC); err != nil {
			errs = append(errs, fmt.Errorf("closing viewer PeerConnection: %w", err))
		}
		v.markClosed()
		v.closeErr = errors.Join(errs...)
	})
	return v.closeErr
}

// trackCounter turns RTP packets of one track into ReceiveStats.
type trackCounter struct {
	video        bool
	mime         string
	isKey        func(payload []byte) bool
	haveSeq      bool
	nextSeq      uint16
	lastKeyStamp uint32
	haveKey      bool
}

func newTrackCounter(kind webrtc.RTPCodecType, mime string) *trackCounter {
	return &trackCounter{
		video: kind == webrtc.RTPCodecTypeVideo,
		mime:  mime,
		isKey: keyframeStart(mime),
	}
}

func (c *trackCounter) add(pkt *rtp.Packet, st *ReceiveStats) {
	if st.Packets == 0 {
		st.FirstPacket = time.Now()
		st.Codec = c.mime
	}
	st.Packets++
	st.Bytes += uint64(len(pkt.Payload))
	c.countLoss(pkt.SequenceNumber, st)
	if !c.video {
		return
	}
	if pkt.Marker {
		st.Frames++
	}
	if c.isKey != nil && c.isKey(pkt.Payload) && !(c.haveKey && c.lastKeyStamp == pkt.Timestamp) {
		st.Keyframes++
		c.haveKey, c.lastKeyStamp = true, pkt.Timestamp
	}
}

// countLoss adds forward sequence gaps to Lost; late or repeated packets
// are ignored.
func (c *trackCounter) countLoss(seq uint16, st *ReceiveStats) {
	if !c.haveSeq {
		c.haveSeq, c.nextSeq = true, seq+1
		return
	}
	gap := seq - c.nextSeq
	if gap >= 0x8000 { // behind nextSeq: reordered or retransmitted
		return
	}
	st.Lost += uint64(gap)
	c.nextSeq = seq + 1
}

// keyframeStart returns a check for "this RTP payload starts or carries a
// keyframe" for the codec, or nil when it cannot tell.
func keyframeStart(mime string) func([]byte) bool {
	switch strings.ToLower(mime) {
	case strings.ToLower(webrtc.MimeTypeVP8):
		return isVP8KeyPayload
	case strings.ToLower(webrtc.MimeTypeVP9):
		return isVP9KeyPayload
	case strings.ToLower(webrtc.MimeTypeAV1):
		return isAV1KeyPayload
	case strings.ToLower(webrtc.MimeTypeH264):
		return isH264KeyPayload
	case strings.ToLower(webrtc.MimeTypeH265):
		return isH265KeyPayload
	default:
		return nil
	}
}

// isVP8KeyPayload: start of partition 0 whose frame tag has P=0 (RFC 7741).
func isVP8KeyPayload(payload []byte) bool {
	var p codecs.VP8Packet
	frame, err := p.Unmarshal(payload)
	if err != nil || p.S != 1 || p.PID != 0 || len(frame) == 0 {
		return false
	}
	return frame[0]&0x01 == 0
}

// isVP9KeyPayload: beginning of a frame that is not inter-predicted.
func isVP9KeyPayload(payload []byte) bool {
	var p codecs.VP9Packet
	if _, err := p.Unmarshal(payload); err != nil {
		return false
	}
	return p.B && !p.P
}

// isAV1KeyPayload: the aggregation header's N bit marks the first packet of
// a new coded video sequence, i.e. a keyframe.
func isAV1KeyPayload(payload []byte) bool {
	return len(payload) > 0 && payload[0]&0x08 != 0
}

// isH265KeyPayload finds an IRAP picture (types 16-21) in a single-NAL,
// aggregation or starting fragmentation packet (RFC 7798).
func isH265KeyPayload(payload []byte) bool {
	if len(payload) < 3 {
		return false
	}
	irap := func(t byte) bool { return t >= 16 && t <= 21 }
	switch t := (payload[0] >> 1) & 0x3f; t {
	case 48: // aggregation packet
		for rest := payload[2:]; len(rest) > 2; {
			size := int(rest[0])<<8 | int(rest[1])
			if size < 2 || 2+size > len(rest) {
				return false
			}
			if irap((rest[2] >> 1) & 0x3f) {
				return true
			}
			rest = rest[2+size:]
		}
		return false
	case 49: // fragmentation unit
		return payload[2]&0x80 != 0 && irap(payload[2]&0x3f)
	default:
		return irap(t)
	}
}

// isH264KeyPayload finds an IDR NAL in a single-NAL, STAP-A or starting
// FU-A packet (RFC 6184).
func isH264KeyPayload(payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	const idr, stapA, fuA = 5, 24, 28
	switch payload[0] & 0x1f {
	case idr:
		return true
	case stapA:
		for rest := payload[1:]; len(rest) > 2; {
			size := int(rest[0])<<8 | int(rest[1])
			if size == 0 || len(rest) < 2+size {
				return false
			}
			if rest[2]&0x1f == idr {
				return true
			}
			rest = rest[2+size:]
		}
	case fuA:
		return len(payload) > 1 && payload[1]&0x80 != 0 && payload[1]&0x1f == idr
	}
	return false
}
