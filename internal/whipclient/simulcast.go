package whipclient

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testmedia"
)

// SimulcastLayer is one encoding of a simulcast publish.
type SimulcastLayer struct {
	RID string
	// File is a fixture of the publish's video codec; "" takes the one
	// DefaultSimulcast names for RID.
	File string
}

// simulcastFixtures are the testdata files of one picture at three sizes,
// with the same frames and GOP (testdata/generate.sh).
var simulcastFixtures = map[string]map[string]string{
	"h264": {"q": "h264-160.h264", "h": "h264-320.h264", "f": "h264.h264"},
	"vp8":  {"q": "vp8-160.ivf", "h": "vp8-320.ivf", "f": "vp8.ivf"},
}

// DefaultSimulcast is three layers named as browsers often name them, the
// lowest first: "q" (160x90), "h" (320x180) and "f" (640x360), from
// testdata (H.264 or VP8).
func DefaultSimulcast() []SimulcastLayer {
	return []SimulcastLayer{{RID: "q"}, {RID: "h"}, {RID: "f"}}
}

// addSimulcastSenders adds one video transceiver that sends every layer of
// opts.Simulcast, each from its own file with its own SSRC, sequence
// numbers and packetizer. Every packet carries the mid and rid header
// extensions, which is how the receiver tells the layers apart (RFC 8852).
func (p *Publisher) addSimulcastSenders(first *mediaSource, opts PublishOptions) error {
	ext := &simulcastExtensions{}
	var senders []*trackSender
	for _, l := range opts.Simulcast {
		file := l.File
		if file == "" {
			name := simulcastFixtures[opts.Video][l.RID]
			if name == "" {
				return fmt.Errorf("no %s fixture for simulcast rid %q; give SimulcastLayer.File", opts.Video, l.RID)
			}
			var err error
			if file, err = testmedia.Lookup(name); err != nil {
				return fmt.Errorf("simulcast layer %s: %w", l.RID, err)
			}
		}
		o := opts
		o.VideoFile = file
		src, err := loadVideo(o)
		if err != nil {
			return fmt.Errorf("simulcast layer %s: %w", l.RID, err)
		}
		src.codec = first.codec // a section has one codec for every layer
		rid, name := []byte(l.RID), l.RID
		onPacket := func(pkt *rtp.Packet) {
			ext.add(pkt, rid)
			switch {
			case opts.OnLayerPacket != nil:
				opts.OnLayerPacket(name, pkt)
			case opts.OnPacket != nil:
				opts.OnPacket(pkt)
			}
		}
		ts, err := newTrackSender(src, onPacket, l.RID)
		if err != nil {
			return err
		}
		senders = append(senders, ts)
	}
	tr, err := p.PC.AddTransceiverFromTrack(senders[0].track,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return fmt.Errorf("adding the simulcast video transceiver: %w", err)
	}
	for _, ts := range senders[1:] {
		if err := tr.Sender().AddEncoding(ts.track); err != nil {
			return fmt.Errorf("adding simulcast encoding %s: %w", ts.rid, err)
		}
	}
	ext.tr = tr
	group := &layerGroup{senders: senders}
	for _, ts := range senders {
		if len(ts.src.samples) != len(senders[0].src.samples) {
			return fmt.Errorf("simulcast layer %s has %d frames, layer %s %d: the layers must be the same frames",
				ts.rid, len(ts.src.samples), senders[0].rid, len(senders[0].src.samples))
		}
		ts.rtpSender = tr.Sender()
		ts.onPLI = func() { group.keyframe.Store(true) }
		go ts.readRTCP()
		p.senders = append(p.senders, ts)
	}
	p.layers = group
	return nil
}

// layerGroup sends the layers of a simulcast video together, frame by
// frame, as one encoder feeding several layers does: frame i of every
// layer goes out at the same moment. It answers a keyframe request (a PLI
// on any layer) as such an encoder does, with a keyframe on every layer:
// the next frame sent is the next one that is a keyframe in every file
// (the files' GOPs line up), so the layers stay the same pictures.
type layerGroup struct {
	senders  []*trackSender
	keyframe atomic.Bool
}

// run sends the layers from when the connection came up (*connectedAt,
// set before connected closes), the capture clock of every track.
func (g *layerGroup) run(ctx context.Context, connected <-chan struct{}, connectedAt *time.Time, opts PublishOptions) error {
	select {
	case <-connected:
	case <-ctx.Done():
		return nil
	}
	sched := schedule{start: *connectedAt, loop: opts.Loop || opts.Duration > 0}
	if opts.Duration > 0 {
		sched.until = sched.start.Add(opts.Duration)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n := len(g.senders[0].src.samples)
	next := sched.start
	for i := 0; ; i++ {
		if i == n {
			if !sched.loop {
				return nil
			}
			i = 0
		}
		if !sched.until.IsZero() && !next.Before(sched.until) {
			return nil
		}
		if !sleepUntil(ctx, timer, next) {
			return nil
		}
		if g.keyframe.Swap(false) {
			i = g.nextKeyframe(i)
		}
		for _, s := range g.senders {
			if err := s.sendSample(s.src.samples[i], next); err != nil {
				return err
			}
		}
		next = next.Add(g.senders[0].src.samples[i].Duration)
	}
}

// stopReading ends the layers' RTCP readers before the peer connection
// closes: pion v3.3.6's RTPSender.ReadSimulcast walks the sender's
// encodings without its lock while Close replaces their tracks, which the
// race detector rightly reports. A reader not yet started ends with the
// close itself.
func (g *layerGroup) stopReading() {
	sender := g.senders[0].rtpSender
	for _, s := range g.senders {
		_ = sender.SetReadDeadlineSimulcast(time.Now(), s.rid)
	}
	deadline := time.After(2 * time.Second)
	for _, s := range g.senders {
		select {
		case <-s.readDone:
		case <-deadline:
			return
		}
	}
}

// nextKeyframe is the first frame from i on (wrapping) that is a keyframe
// in every layer; i itself if none is.
func (g *layerGroup) nextKeyframe(i int) int {
	return nextFrom(len(g.senders[0].src.samples), i, func(j int) bool {
		for _, s := range g.senders {
			if !s.src.samples[j].Keyframe {
				return false
			}
		}
		return true
	})
}

// simulcastExtensions puts the mid and rid header extensions on packets,
// with the ids negotiated (known once the answer is applied, before any
// packet is sent).
type simulcastExtensions struct {
	tr    *webrtc.RTPTransceiver
	once  sync.Once
	midID uint8
	ridID uint8
	mid   []byte
}

func (e *simulcastExtensions) add(pkt *rtp.Packet, rid []byte) {
	e.once.Do(func() {
		for _, h := range e.tr.Sender().GetParameters().HeaderExtensions {
			switch h.URI {
			case sdp.SDESMidURI:
				e.midID = uint8(h.ID)
			case sdp.SDESRTPStreamIDURI:
				e.ridID = uint8(h.ID)
			}
		}
		e.mid = []byte(e.tr.Mid())
	})
	if e.midID != 0 {
		_ = pkt.Header.SetExtension(e.midID, e.mid)
	}
	if e.ridID != 0 {
		_ = pkt.Header.SetExtension(e.ridID, rid)
	}
}
