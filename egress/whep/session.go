package whep

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// Session is one viewer: a sendonly peer connection and the hub
// subscription that feeds it.
type Session struct {
	*rtc.Session
	stream *live.Stream
	sub    *live.Subscription
	tracks []*viewerTrack
	// connected gates forwarding: packets written before DTLS is up are
	// lost, and a keyframe lost that way would leave the picture broken.
	connected atomic.Bool

	// Simulcast (layers.go): whether the video comes from layers; the
	// bandwidth estimate of a viewer whose layer follows it (nil for one
	// that pinned a layer, which needs none), the transport-wide sequence
	// numbers it needs (twccID 0: none); the layer being sent, for the API.
	layered  bool
	est      *estimator
	twccID   uint8
	twccSeq  uint16
	twccBuf  [2]byte
	layerRID atomic.Pointer[string]

	// direct sends the viewer's RTP past pion when it can (direct.go).
	direct     atomic.Pointer[rtc.RTPWriter]
	directOnce sync.Once
}

// viewerTrack forwards one stream track. out is reused for every packet so
// forwarding does not allocate.
type viewerTrack struct {
	sess    *Session
	src     *live.Track
	local   *boundTrack
	ssrc    uint32 // pion's binding of local, for the direct path
	pt      uint8
	started bool // video waits for a keyframe so the picture starts clean
	out     rtp.Packet
	ext     [1]rtp.Extension // out's header extensions, reused
	// padBuf and padOut carry a padded packet to pion's track (direct.go).
	padBuf []byte
	padOut rtp.Packet
	// hist answers NACKs (video only: players do not NACK audio).
	hist *history
	// sw picks and rewrites the layer of a simulcast stream's video.
	sw *layerSwitch
	// rep writes the track's RTCP Sender Reports (reports.go).
	rep senderReports
}

// PlayOptions are a viewer's choices.
type PlayOptions struct {
	// Layer pins a simulcast layer: "low", "mid", "high" or a rid; ""
	// follows the viewer's bandwidth. Streams without simulcast ignore it.
	Layer string
}

func newSession(ctx context.Context, srv *Server, stream *live.Stream, offer []byte, remote string, opts PlayOptions) (*Session, []byte, error) {
	if err := checkLayer(stream, opts.Layer); err != nil {
		return nil, nil, err
	}
	vts, me, err := rtc.NegotiateViewer(offer, stream)
	if err != nil {
		return nil, nil, err
	}
	pc, err := srv.engine.NewViewerPeerConnection(me)
	if err != nil {
		return nil, nil, err
	}
	sess := &Session{Session: srv.engine.NewSession(pc, srv.cfg.Logger.With("stream", stream.Name, "peer", remote)), stream: stream}
	if err := sess.addTracks(vts, opts, srv.cfg.StartBitrate); err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	sess.OnConnectionState(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			// The send path is chosen once: a second context on the
			// same keys would reuse their keystream.
			sess.directOnce.Do(func() {
				sess.sendDirect(srv)
				// A viewer sent to through the shared socket's batch
				// never waits on its own network path: it moves onto one
				// of the stream's lanes (live/lane.go), before it
				// forwards its first packet. A simulcast viewer too: the
				// lane takes the layers its members take, and sheds and
				// asks keyframes for those alone.
				if sess.direct.Load() != nil {
					sess.sub.Share()
				}
			})
			sess.connected.Store(true)
			// Ask now, not at POST: the keyframe must arrive after the
			// viewer can receive it. A simulcast viewer asks for its
			// layer's (layers.go).
			if !sess.simulcast() {
				sess.stream.RequestKeyframe()
			}
		}
	})
	// Subscribed before the answer, so that a Close from any goroutine
	// finds the subscription to end; until the viewer connects, its
	// packets are dropped (WritePacket).
	queue := live.SubscribeOptions{QueueSize: srv.cfg.QueueSize, LatencyBudget: max(srv.cfg.LatencyBudget, 0), ID: sess.ID}
	if sess.sub, err = stream.SubscribeWith(string(live.OutputWHEP), sess, queue); err != nil {
		_ = pc.Close()
		return nil, nil, ErrNotLive
	}
	sess.OnClose(sess.closed)
	answer, err := sess.Answer(ctx, string(offer))
	if err != nil {
		sess.Close()
		return nil, nil, err
	}
	if sess.est != nil {
		sess.twccID = transportCCID(sess.PC)
	}
	return sess, answer, nil
}

// addTracks adds one sending track per stream track the viewer takes.
func (sess *Session) addTracks(vts []rtc.ViewerTrack, opts PlayOptions, startBitrate float64) error {
	for _, vt := range vts {
		static, err := webrtc.NewTrackLocalStaticRTP(vt.Codec, string(vt.Track.Kind), "reel-"+sess.stream.Name)
		if err != nil {
			return fmt.Errorf("creating %s track: %w", vt.Track.Kind, err)
		}
		local := &boundTrack{TrackLocalStaticRTP: static}
		sender, err := sess.PC.AddTrack(local)
		if err != nil {
			return fmt.Errorf("adding %s track: %w", vt.Track.Kind, err)
		}
		t := &viewerTrack{sess: sess, src: vt.Track, local: local, started: vt.Track.Kind != live.Video}
		t.rep.every = reportEvery
		if enc := sender.GetParameters().Encodings; len(enc) > 0 {
			t.rep.ssrc = uint32(enc[0].SSRC)
		}
		if vt.Track.Kind == live.Video {
			t.hist = new(history)
			if vt.Track.Layers() != nil {
				sess.layered = true
				if opts.Layer == "" {
					sess.est = newEstimator(startBitrate)
				}
				t.sw = newLayerSwitch(sess, vt.Track, opts.Layer, sess.est)
			}
		}
		go sess.readRTCP(sender, t)
		sess.tracks = append(sess.tracks, t)
	}
	return nil
}

// simulcast reports whether the viewer's video comes from layers.
func (sess *Session) simulcast() bool { return sess.layered }

// Layer is the rid of the simulcast layer the viewer gets, "" before its
// first keyframe and for streams without simulcast.
func (sess *Session) Layer() string {
	if r := sess.layerRID.Load(); r != nil {
		return *r
	}
	return ""
}

// LayerSwitches counts the simulcast layer switches of the viewer.
func (sess *Session) LayerSwitches() uint64 {
	for _, vt := range sess.tracks {
		if vt.sw != nil {
			return vt.sw.switches.Load()
		}
	}
	return 0
}

// readRTCP reads the viewer's feedback on one track: it resends what the
// viewer NACKs, passes keyframe requests on to the publisher, and feeds a
// simulcast viewer's bandwidth estimate.
func (sess *Session) readRTCP(sender *webrtc.RTPSender, vt *viewerTrack) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				sess.requestKeyframe()
			case *rtcp.TransportLayerCC:
				if sess.est != nil {
					sess.est.onTWCC(p, now)
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				if sess.est != nil {
					sess.est.onREMB(float64(p.Bitrate), now)
				}
			case *rtcp.ReceiverReport:
				if sess.est != nil && vt.src.Kind == live.Video {
					for _, r := range p.Reports {
						sess.est.onLoss(r.FractionLost, now)
					}
				}
			case *rtcp.TransportLayerNack:
				if vt.hist == nil {
					continue
				}
				for _, pair := range p.Nacks {
					pair.Range(func(seq uint16) bool {
						vt.hist.resend(seq, vt.write)
						return true
					})
				}
			}
		}
	}
}

// requestKeyframe passes a viewer's PLI or FIR on: to the layer it gets,
// for a simulcast stream.
func (sess *Session) requestKeyframe() {
	for _, vt := range sess.tracks {
		if vt.sw != nil {
			if l := vt.sw.Layer(); l != nil {
				sess.stream.RequestLayerKeyframe(l)
			}
			return
		}
	}
	sess.stream.RequestKeyframe()
}

// WritePacket implements live.Consumer.
func (sess *Session) WritePacket(p *live.Packet) {
	if !sess.connected.Load() {
		return
	}
	for _, vt := range sess.tracks {
		if vt.src != p.Track && (vt.sw == nil || vt.src != p.Track.Parent()) {
			continue
		}
		forwardHeader(&vt.out, p)
		switch {
		case vt.sw != nil:
			if !vt.sw.forward(p, &vt.out) {
				vt.out.Payload = nil
				return
			}
		case !vt.started:
			if !live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) {
				vt.out.Payload = nil
				return
			}
			vt.started = true
		}
		if vt.send(&vt.out, p.Arrival) > 0 {
			if vt.hist != nil {
				vt.hist.put(p, vt.out.SequenceNumber, vt.out.Timestamp)
			}
			vt.rep.sent(p, &vt.out)
			vt.maybeReport(p.Arrival)
		}
		vt.out.Payload = nil // p goes back to the pool after we return
		if vt.sw != nil {
			vt.sw.padding(vt, p)
		}
		return
	}
}

// send writes pkt to the viewer and returns its size, 0 if it failed. For
// a simulcast viewer it adds the transport-wide sequence number and tells
// the estimate.
func (vt *viewerTrack) send(pkt *rtp.Packet, now time.Time) int {
	sess := vt.sess
	if sess.twccID != 0 {
		sess.twccSeq++
		sess.twccBuf[0], sess.twccBuf[1] = byte(sess.twccSeq>>8), byte(sess.twccSeq)
		pkt.Header.Extensions = vt.ext[:0]
		if sess.twccID > 14 {
			pkt.Header.Extension, pkt.Header.ExtensionProfile = true, rtp.ExtensionProfileTwoByte
		}
		_ = pkt.Header.SetExtension(sess.twccID, sess.twccBuf[:])
	}
	err := vt.write(pkt)
	size := pkt.MarshalSize() // with its padding, in either form
	pkt.Header.Extension, pkt.Header.Extensions = false, nil
	if err != nil {
		return 0
	}
	if sess.est != nil {
		if sess.twccID != 0 {
			sess.est.onSent(sess.twccSeq, size, now)
		} else {
			sess.est.onSentUntracked(size, now)
		}
	}
	return size
}

// StreamEnded implements live.StreamEnder: the publisher left.
func (sess *Session) StreamEnded() {
	sess.Log.Info("publisher left; closing viewer")
	go sess.Close()
}

// closed runs once when the session ends: no packet is forwarded after it
// returns, and the NACK histories let go of the hub's packets.
func (sess *Session) closed() {
	if sess.sub != nil {
		sess.sub.Close()
	}
	for _, vt := range sess.tracks {
		if vt.hist != nil {
			vt.hist.close()
		}
	}
	sess.Log.Info("viewer left")
}

// transportCCID is the header extension id the viewer negotiated for
// transport-wide sequence numbers, 0 if none.
func transportCCID(pc *webrtc.PeerConnection) uint8 {
	for _, sender := range pc.GetSenders() {
		for _, h := range sender.GetParameters().HeaderExtensions {
			if h.URI == sdp.TransportCCURI && h.ID > 0 && h.ID < 256 {
				return uint8(h.ID)
			}
		}
	}
	return 0
}
