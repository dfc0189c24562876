package whep

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/ingest"
)

// Session is one viewer: a sendonly peer connection and the hub
// subscription that feeds it.
type Session struct {
	*ingest.ICE
	ID string

	srv    *Server
	stream *ingest.Stream
	pc     *webrtc.PeerConnection
	sub    *ingest.Subscription
	log    *slog.Logger
	tracks []*viewerTrack
	once   sync.Once
	done   chan struct{}
	// connected gates forwarding: packets written before DTLS is up are
	// lost, and a keyframe lost that way would leave the picture broken.
	connected atomic.Bool
}

// viewerTrack forwards one stream track. out is reused for every packet so
// forwarding does not allocate.
type viewerTrack struct {
	src     *ingest.Track
	local   *webrtc.TrackLocalStaticRTP
	started bool // video waits for a keyframe so the picture starts clean
	out     rtp.Packet
	// hist answers NACKs (video only: players do not NACK audio).
	hist *history
}

func newSession(ctx context.Context, srv *Server, stream *ingest.Stream, offer []byte, remote string) (*Session, []byte, error) {
	vts, me, err := ingest.NegotiateViewer(offer, stream)
	if err != nil {
		return nil, nil, err
	}
	pc, err := srv.rtc.NewViewerPeerConnection(me)
	if err != nil {
		return nil, nil, err
	}
	sess := &Session{ID: ingest.NewID(), srv: srv, stream: stream, pc: pc, done: make(chan struct{})}
	sess.log = srv.cfg.Logger.With("stream", stream.Name, "session", sess.ID, "peer", remote)
	answer, err := sess.answer(ctx, vts, string(offer))
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	sess.sub, err = stream.Subscribe("whep", sess, srv.cfg.QueueSize)
	if err != nil {
		_ = pc.Close()
		return nil, nil, ErrNotLive
	}
	time.AfterFunc(srv.cfg.ConnectTimeout, func() {
		if !sess.connected.Load() && pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
			sess.log.Info("viewer did not connect in time; ending session")
			sess.Close()
		}
	})
	sess.log.Info("viewer joined")
	return sess, answer, nil
}

func (sess *Session) answer(ctx context.Context, vts []ingest.ViewerTrack, offer string) ([]byte, error) {
	for _, vt := range vts {
		local, err := webrtc.NewTrackLocalStaticRTP(vt.Codec, string(vt.Track.Kind), "reel-"+sess.stream.Name)
		if err != nil {
			return nil, fmt.Errorf("creating %s track: %w", vt.Track.Kind, err)
		}
		sender, err := sess.pc.AddTrack(local)
		if err != nil {
			return nil, fmt.Errorf("adding %s track: %w", vt.Track.Kind, err)
		}
		t := &viewerTrack{src: vt.Track, local: local, started: vt.Track.Kind != ingest.Video}
		if vt.Track.Kind == ingest.Video {
			t.hist = new(history)
		}
		go sess.readRTCP(sender, t)
		sess.tracks = append(sess.tracks, t)
	}
	sess.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		sess.log.Debug("connection state", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateConnected:
			// Ask now, not at POST: the keyframe must arrive after the
			// viewer can receive it.
			sess.connected.Store(true)
			sess.stream.RequestKeyframe()
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			sess.Close()
		}
	})
	if err := sess.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return nil, &ingest.OfferError{Msg: fmt.Sprintf("the SDP offer cannot be applied: %v", err)}
	}
	ans, err := sess.pc.CreateAnswer(nil)
	if err != nil {
		return nil, &ingest.OfferError{Unprocessable: true, Msg: fmt.Sprintf("no answer can be made for this offer: %v", err)}
	}
	gathered := webrtc.GatheringCompletePromise(sess.pc)
	if err := sess.pc.SetLocalDescription(ans); err != nil {
		return nil, fmt.Errorf("applying the answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("gathering ICE candidates: %w", ctx.Err())
	}
	sess.ICE = ingest.NewICE(sess.pc, offer)
	return []byte(sess.pc.LocalDescription().SDP), nil
}

// readRTCP reads the viewer's feedback on one track: it resends what the
// viewer NACKs and passes keyframe requests on to the publisher.
func (sess *Session) readRTCP(sender *webrtc.RTPSender, vt *viewerTrack) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				sess.stream.RequestKeyframe()
			case *rtcp.TransportLayerNack:
				if vt.hist == nil {
					continue
				}
				for _, pair := range p.Nacks {
					pair.Range(func(seq uint16) bool {
						vt.hist.resend(seq, vt.local.WriteRTP)
						return true
					})
				}
			}
		}
	}
}

// WritePacket implements ingest.Consumer.
func (sess *Session) WritePacket(p *ingest.Packet) {
	if !sess.connected.Load() {
		return
	}
	for _, vt := range sess.tracks {
		if vt.src != p.Track {
			continue
		}
		if !vt.started {
			if !ingest.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) {
				return
			}
			vt.started = true
		}
		forwardHeader(&vt.out, p)
		err := vt.local.WriteRTP(&vt.out)
		vt.out.Payload = nil // p goes back to the pool after we return
		if err == nil && vt.hist != nil {
			vt.hist.put(p)
		}
		return
	}
}

// StreamEnded implements ingest.StreamEnder: the publisher left.
func (sess *Session) StreamEnded() {
	sess.log.Info("publisher left; closing viewer")
	go sess.Close()
}

// Done is closed when the session has ended.
func (sess *Session) Done() <-chan struct{} { return sess.done }

// Close ends the session. Safe to call more than once.
func (sess *Session) Close() {
	sess.once.Do(func() {
		sess.srv.remove(sess)
		if sess.sub != nil {
			sess.sub.Close()
		}
		for _, vt := range sess.tracks {
			if vt.hist != nil {
				vt.hist.close()
			}
		}
		_ = sess.pc.Close()
		close(sess.done)
		sess.log.Info("viewer left")
	})
}
