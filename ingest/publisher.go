package ingest

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// Publisher is one WHIP session: a peer connection feeding a live stream.
type Publisher struct {
	*rtc.Session
	Stream *live.Stream
	tracks []*live.Track

	// rtcpMu guards the RTCP readers of simulcast layers waiting to start
	// (readLayerRTCP).
	rtcpMu      sync.Mutex
	rtcpWaiting []func()
	rtcpStarted bool
	rtcpTimer   *time.Timer
}

func newPublisher(sess *rtc.Session, tracks []*live.Track) *Publisher {
	p := &Publisher{Session: sess, tracks: tracks}
	sess.PC.OnTrack(p.onTrack)
	p.OnClose(func() { p.Log.Info("publish ended") })
	return p
}

// onTrack pumps one remote track into the stream: a simulcast publisher's
// video comes as one remote track per rid, each pumped into its layer.
// The buffer is allocated once per track; the hub copies each packet into
// its pool.
func (p *Publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	var track *live.Track
	for _, t := range p.tracks {
		if string(t.Kind) == remote.Kind().String() {
			track = t
		}
	}
	if track != nil && track.Layers() != nil {
		track = track.LayerByRID(remote.RID())
	}
	if track == nil {
		p.Log.Warn("ignoring unexpected track", "kind", remote.Kind().String(), "rid", remote.RID())
		return
	}
	p.Log.Debug("track started", "kind", track.Kind, "rid", remote.RID(), "ssrc", uint32(remote.SSRC()))
	track.SetSSRC(uint32(remote.SSRC()))
	// Reading RTCP lets the interceptors see it, and the stream's clock
	// the Sender Reports.
	if rid := remote.RID(); rid != "" {
		p.readLayerRTCP(track, func() {
			p.readRTCP(track, func() ([]rtcp.Packet, error) {
				pkts, _, err := recv.ReadSimulcastRTCP(rid)
				return pkts, err
			})
		})
	} else {
		go p.readRTCP(track, func() ([]rtcp.Packet, error) {
			pkts, _, err := recv.ReadRTCP()
			return pkts, err
		})
	}
	if track.Kind == live.Video {
		p.Stream.RequestLayerKeyframe(track) // so the recording starts soon
		if track.Parent() != nil {
			go p.sizeLayer(track)
		}
	}
	buf := make([]byte, live.MaxPacketSize)
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		if err := p.Stream.WriteRTP(track, buf[:n], time.Now()); err != nil {
			p.Log.Debug("dropping bad RTP packet", "kind", track.Kind, "err", err)
		}
	}
}

// readRTCP reads the publisher's RTCP on one track (which also lets the
// interceptors see it) and hands its Sender Reports to the stream's clock,
// which places the tracks in time by them.
func (p *Publisher) readRTCP(track *live.Track, read func() ([]rtcp.Packet, error)) {
	for {
		pkts, err := read()
		if err != nil {
			return
		}
		now := time.Now()
		for _, pkt := range pkts {
			if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == track.SSRC() {
				p.Stream.WriteSenderReport(track, live.NTPTime(sr.NTPTime), sr.RTPTime, now)
			}
		}
	}
}

// sizeLayer asks again for a keyframe of a simulcast layer until one shows
// the layer's size, for at most live.LayerSettle: pion v3.3.6 reads the
// first packets of each rid to learn it, and the keyframe a layer starts
// with is lost with them, while the layers rank by size.
func (p *Publisher) sizeLayer(layer *live.Track) {
	if layer.Codec == live.AV1 {
		return // its size is not read from the stream (live/size.go)
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(live.LayerSettle); time.Now().Before(deadline); {
		select {
		case <-p.Done():
			return
		case <-tick.C:
		}
		if w, _ := layer.Size(); w != 0 {
			return
		}
		p.Stream.RequestLayerKeyframe(layer)
	}
}

// readLayerRTCP starts read, a simulcast layer's RTCP reader, once every
// layer's remote track has started (or live.LayerSettle after the first):
// pion v3.3.6's RTPReceiver.ReadSimulcast walks the receiver's streams
// without its lock while a later layer's arrival fills them in.
func (p *Publisher) readLayerRTCP(layer *live.Track, read func()) {
	p.rtcpMu.Lock()
	defer p.rtcpMu.Unlock()
	if p.rtcpStarted {
		go read()
		return
	}
	p.rtcpWaiting = append(p.rtcpWaiting, read)
	if len(p.rtcpWaiting) == len(layer.Parent().Layers()) {
		p.startLayerRTCPLocked()
		return
	}
	if p.rtcpTimer == nil {
		p.rtcpTimer = time.AfterFunc(live.LayerSettle, func() {
			p.rtcpMu.Lock()
			defer p.rtcpMu.Unlock()
			p.startLayerRTCPLocked()
		})
	}
}

func (p *Publisher) startLayerRTCPLocked() {
	if p.rtcpStarted {
		return
	}
	p.rtcpStarted = true
	if p.rtcpTimer != nil {
		p.rtcpTimer.Stop()
	}
	for _, read := range p.rtcpWaiting {
		go read()
	}
	p.rtcpWaiting = nil
}

// requestKeyframe sends a PLI for the video track once its SSRC is known,
// for every layer of a simulcast track.
func (p *Publisher) requestKeyframe() {
	var plis []rtcp.Packet
	for _, t := range p.tracks {
		if t.Kind != live.Video {
			continue
		}
		for _, l := range append([]*live.Track{t}, t.Layers()...) {
			if ssrc := l.SSRC(); ssrc != 0 && l.Layers() == nil {
				plis = append(plis, &rtcp.PictureLossIndication{MediaSSRC: ssrc})
			}
		}
	}
	if len(plis) > 0 {
		err := p.PC.WriteRTCP(plis)
		p.Log.Debug("asked publisher for a keyframe", "streams", len(plis), "err", err)
	}
}

// requestLayerKeyframe sends a PLI for one simulcast layer.
func (p *Publisher) requestLayerKeyframe(layer *live.Track) {
	if ssrc := layer.SSRC(); ssrc != 0 {
		err := p.PC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		p.Log.Debug("asked publisher for a keyframe", "rid", layer.RID, "ssrc", ssrc, "err", err)
	}
}
