package rtsp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// liveStream is one live stream bound to a gortsplib ServerStream: a single
// hub subscription forwards every packet, and gortsplib fans it out to the
// readers, each behind its own bounded write queue.
type liveStream struct {
	name string
	key  string // in Server.streams: name, and layer if asked for
	src  *live.Stream
	// layer is the simulcast layer carried, nil for a stream without.
	// follow, on a simulcast stream's plain path, moves it to the top
	// layer as the ranking changes (follow.go).
	layer  atomic.Pointer[live.Track]
	follow *layerFollow
	rtsp   *gortsplib.ServerStream
	outs   []output
	sub    *live.Subscription
	log    *slog.Logger

	// pkt is the outgoing packet, reused for every packet; only the
	// subscription's goroutine touches it.
	pkt       rtp.Packet
	timed     bool       // the stream's clock has settled: packets go out
	lastMu    sync.Mutex // guards outs[i].last, read by PLAY handlers
	writeErrs atomic.Uint64
	onEnd     func(*liveStream)
	closeOnce sync.Once

	// Guarded by Server.mu.
	sessions map[*gortsplib.ServerSession]*readerState
	lastUse  time.Time
	idle     *time.Timer
}

// readerState is one RTSP session reading a liveStream.
type readerState struct {
	peer    string
	playing bool   // PLAY was accepted; until then the session only SETUP
	release func() // gives back the viewer slot Config.Gate reserved
}

// output is one forwarded track: the SDP media it is sent on and the
// payload type the SDP declares for it.
type output struct {
	// track is the packets' track: the simulcast layer carried, for a
	// simulcast stream's video, or the simulcast track itself on a path
	// that follows the top layer (carried).
	track   *live.Track
	media   *description.Media
	pt      uint8
	padding paddingFilter
	last    lastPacket // the latest packet forwarded, for Sender Reports
	anchor  anchor     // the mapping of its RTP time that players get
	rate    float64    // RTP ticks per second
	// The packets and payload octets forwarded (guarded by lastMu), and
	// when the next periodic Sender Report is due (reports.go).
	packets, octets uint32
	nextReport      time.Time
}

// anchor keeps one mapping of a track's RTP time to the stream's clock
// for the life of the RTSP stream. The clock refines its mapping as
// Sender Reports come (and fades a track that changed mode), but a player
// takes each Sender Report's mapping as it is: a refinement would make it
// move the track, and ffmpeg logs timestamps going back when it moves one
// back. So packets are stamped by the first mapping, and by a new one
// only when the clock's differs from it by more than maxAnchorDrift (the
// publisher restarted its RTP clock, say).
type anchor struct {
	ok  bool
	rtp uint32
	ntp time.Time
}

// maxAnchorDrift is how far the stream's clock may move from the anchored
// mapping before the anchor follows it.
const maxAnchorDrift = 500 * time.Millisecond

// time is the anchored time of RTP time rtp, which the clock places at
// clock.
func (a *anchor) time(rtp uint32, clock time.Time, rate float64) time.Time {
	if a.ok {
		d := int64(int32(rtp - a.rtp))
		t := a.ntp.Add(time.Duration(float64(d) * float64(time.Second) / rate))
		if off := t.Sub(clock); off < maxAnchorDrift && off > -maxAnchorDrift && d < 1<<30 && d > -(1<<30) {
			return t
		}
	}
	*a = anchor{ok: true, rtp: rtp, ntp: clock}
	return clock
}

// newLiveStream describes src's tracks (of a simulcast video, layer's),
// creates the ServerStream and subscribes to src; with follow, the
// simulcast layer carried moves to the top one as the ranking changes.
// onEnd runs on the subscription's goroutine when the publisher leaves.
func newLiveStream(srv *gortsplib.Server, src *live.Stream, layer *live.Track, follow bool, log *slog.Logger,
	onEnd func(*liveStream)) (*liveStream, error) {
	ls := &liveStream{
		name:     src.Name,
		key:      src.Name,
		src:      src,
		log:      log.With("stream", src.Name),
		onEnd:    onEnd,
		sessions: map[*gortsplib.ServerSession]*readerState{},
		lastUse:  time.Now(),
	}
	if layer != nil {
		ls.layer.Store(layer)
		if follow {
			ls.follow = &layerFollow{parent: layer.Parent()}
		}
	}
	desc := &description.Session{Title: src.Name}
	for _, t := range src.Tracks() {
		key := t // the packets' track; a following path's are its layers
		if t.Layers() != nil && layer != nil {
			t = layer
			if !follow {
				key = layer
			}
		}
		pt := payloadType(t.PayloadType)
		media := mediaFor(t, pt)
		if media == nil {
			ls.log.Warn("RTSP cannot carry this track; leaving it out", "codec", t.Codec)
			continue
		}
		desc.Medias = append(desc.Medias, media)
		ls.outs = append(ls.outs, output{track: key, media: media, pt: pt, rate: t.RTPRate()})
	}
	if len(desc.Medias) == 0 {
		return nil, fmt.Errorf("rtsp: stream %q has no track RTSP can carry", src.Name)
	}
	ls.rtsp = &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := ls.rtsp.Initialize(); err != nil {
		return nil, fmt.Errorf("rtsp: creating the server stream for %q: %w", src.Name, err)
	}
	sub, err := src.Subscribe(string(live.OutputRTSP), ls, 0)
	if err != nil {
		ls.rtsp.Close()
		return nil, fmt.Errorf("rtsp: subscribing to %q: %w", src.Name, err)
	}
	if layer != nil {
		sub.SetLayers(live.LayerMask(layer))
	}
	ls.sub = sub
	return ls, nil
}

// requestKeyframe asks the publisher for a keyframe of what the stream
// carries: the layer's, for a simulcast stream.
func (ls *liveStream) requestKeyframe() {
	if l := ls.layer.Load(); l != nil {
		ls.src.RequestLayerKeyframe(l)
		return
	}
	ls.src.RequestKeyframe()
}

// WritePacket implements live.Consumer: it forwards the packet as the
// publisher timed it, stamped with its time on the stream's clock, with the declared payload type and without header
// extensions, whose IDs were negotiated with the publisher and mean nothing
// to RTSP players. Padding-only packets are left out (padding.go). It does
// not allocate (gortsplib's marshalling does).
func (ls *liveStream) WritePacket(p *live.Packet) {
	in := &p.RTP.Header
	seq, ts := in.SequenceNumber, in.Timestamp
	track := p.Track
	if f := ls.follow; f != nil {
		f.look(ls, p.Arrival)
		if track.Parent() == f.parent {
			var ok bool
			if seq, ts, ok = f.forward(ls, p); !ok {
				return
			}
			track = f.parent
		}
	}
	out := ls.output(track)
	if out == nil {
		return
	}
	clock := ls.src.Clock()
	if !ls.timed {
		// Until the stream's clock has settled (its first Sender
		// Reports, at most live.SettleTimeout), nothing is sent: a player
		// that got packets first would place the tracks by them, then move
		// them when the reports come. Then every reader gets the reports
		// ahead of its first packet, and a keyframe is asked for.
		if !clock.Settled() {
			return
		}
		ls.timed = true
		ls.src.RequestKeyframe()
		// Readers that are already playing get every track's report
		// ahead of its first packet; later ones get theirs at PLAY
		// (handler.go).
		for i := range ls.outs {
			ls.sendReport(&ls.outs[i], p.Arrival)
		}
	}
	seq, ok := out.padding.forward(seq, len(p.RTP.Payload) == 0)
	if !ok {
		return
	}
	ls.pkt.Header = rtp.Header{
		Version:        2,
		Marker:         in.Marker,
		PayloadType:    out.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           in.SSRC, // gortsplib replaces it with the stream's own
	}
	ls.pkt.Payload = p.RTP.Payload
	// The packet's time on the stream's clock, which the Sender Reports
	// carry (gortsplib's and reports.go's): players line the tracks up as
	// the recording does.
	ntp, ok := clock.Time(p.Track, in.Timestamp)
	if !ok {
		ntp = p.Arrival
	}
	ntp = out.anchor.time(ts, ntp, out.rate)
	ls.lastMu.Lock()
	out.last = lastPacket{rtp: ts, ntp: ntp, at: p.Arrival, ok: true}
	out.packets++
	out.octets += uint32(len(p.RTP.Payload))
	ls.lastMu.Unlock()
	err := ls.rtsp.WritePacketRTPWithNTP(out.media, &ls.pkt, ntp)
	if !p.Arrival.Before(out.nextReport) {
		ls.sendReport(out, p.Arrival)
	}
	ls.pkt.Payload = nil // the packet goes back to the pool after we return
	if err != nil && !errors.As(err, &liberrors.ErrServerStreamClosed{}) {
		if ls.writeErrs.Add(1) == 1 {
			ls.log.Warn("RTSP cannot forward a packet; further errors are counted, not logged", "err", err)
		}
	}
}

// StreamEnded implements live.StreamEnder.
func (ls *liveStream) StreamEnded() { ls.onEnd(ls) }

func (ls *liveStream) output(t *live.Track) *output {
	for i := range ls.outs {
		if ls.outs[i].track == t {
			return &ls.outs[i]
		}
	}
	return nil
}

// carried is the track whose packets o carries now: the layer being
// followed, on a simulcast stream's plain path.
func (ls *liveStream) carried(o *output) *live.Track {
	if l := ls.layer.Load(); l != nil && o.track == l.Parent() {
		return l
	}
	return o.track
}

// shutdown unsubscribes, then disconnects the readers. Not for the
// subscription's own goroutine.
func (ls *liveStream) shutdown() {
	ls.sub.Close()
	ls.closeRTSP()
}

// closeRTSP closes the ServerStream, which ends every reader's session.
func (ls *liveStream) closeRTSP() {
	ls.closeOnce.Do(ls.rtsp.Close)
}

// refreshParams puts the latest H.264 SPS and PPS, or H.265 VPS, SPS and
// PPS, into the SDP that the next DESCRIBE returns: the stream was
// described with what was known when its first reader came (nothing, if
// the wait for them ran out), and an encoder may send new ones later.
func (ls *liveStream) refreshParams() {
	for i := range ls.outs {
		o := &ls.outs[i] // not a copy: the subscription writes o.padding
		switch f := o.media.Formats[0].(type) {
		case *format.H264:
			sps, pps := ls.carried(o).H264ParameterSets()
			if sps == nil || pps == nil {
				continue
			}
			if oldSPS, oldPPS := f.SafeParams(); !bytes.Equal(oldSPS, sps) || !bytes.Equal(oldPPS, pps) {
				f.SafeSetParams(sps, pps)
			}
		case *format.H265:
			vps, sps, pps := ls.carried(o).H265ParameterSets()
			if vps == nil || sps == nil || pps == nil {
				continue
			}
			if oldVPS, oldSPS, oldPPS := f.SafeParams(); !bytes.Equal(oldVPS, vps) ||
				!bytes.Equal(oldSPS, sps) || !bytes.Equal(oldPPS, pps) {
				f.SafeSetParams(vps, sps, pps)
			}
		}
	}
}

// waitForParams asks an H.264 or H.265 publisher for a keyframe, which
// carries the parameter sets, and waits up to limit for them (or until
// cancel is closed); it returns at once for other codecs or when they are
// known. For a simulcast stream it waits for the layer asked for (""
// the top one, known once the layers are ranked).
func waitForParams(src *live.Stream, layer string, limit time.Duration, cancel <-chan struct{}) {
	v := src.Track(live.Video)
	if v == nil {
		return
	}
	t := func() *live.Track {
		if v.Layers() == nil {
			return v
		}
		if layer == "" {
			return v.TopLayer()
		}
		return v.Layer(layer)
	}
	ready := func() bool {
		l := t()
		return l != nil && ((l.Codec != live.H264 && l.Codec != live.H265) || hasParams(l))
	}
	if ready() {
		return
	}
	if l := t(); l != nil && l != v {
		src.RequestLayerKeyframe(l)
	} else {
		src.RequestKeyframe()
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		select {
		case <-deadline.C:
			return
		case <-src.Done():
			return
		case <-cancel:
			return
		case <-tick.C:
		}
	}
}

// hasParams reports whether every parameter set the SDP of t's codec
// carries is known: SPS and PPS for H.264, VPS, SPS and PPS for H.265.
func hasParams(t *live.Track) bool {
	if t.Codec == live.H265 {
		vps, sps, pps := t.H265ParameterSets()
		return vps != nil && sps != nil && pps != nil
	}
	sps, pps := t.H264ParameterSets()
	return sps != nil && pps != nil
}

// payloadType keeps the publisher's payload type when it is a dynamic one
// and picks 96 otherwise: players read a type below 96 as a static RTP/AVP
// assignment (Chrome sends AV1 as 45, which ffmpeg would not recognise).
func payloadType(pt uint8) uint8 {
	if pt >= 96 && pt <= 127 {
		return pt
	}
	return 96
}

// mediaFor returns the SDP media for a track, or nil for a codec RTSP
// players cannot take.
func mediaFor(t *live.Track, pt uint8) *description.Media {
	var f format.Format
	switch t.Codec {
	case live.H264:
		mode, _ := fmtpInt(t.Fmtp, "packetization-mode")
		sps, pps := t.H264ParameterSets()
		f = &format.H264{PayloadTyp: pt, PacketizationMode: mode, SPS: sps, PPS: pps}
	case live.H265:
		// No MaxDONDiff: ingest refuses offers with decoding order numbers,
		// so packets are forwarded as RFC 7798 without DON fields.
		vps, sps, pps := t.H265ParameterSets()
		f = &format.H265{PayloadTyp: pt, VPS: vps, SPS: sps, PPS: pps}
	case live.VP8:
		f = &format.VP8{PayloadTyp: pt}
	case live.VP9:
		v := &format.VP9{PayloadTyp: pt}
		if id, ok := fmtpInt(t.Fmtp, "profile-id"); ok {
			v.ProfileID = &id
		}
		f = v
	case live.AV1:
		v := &format.AV1{PayloadTyp: pt}
		if p, ok := fmtpInt(t.Fmtp, "profile"); ok {
			v.Profile = &p
		}
		if l, ok := fmtpInt(t.Fmtp, "level-idx"); ok {
			v.LevelIdx = &l
		}
		if tier, ok := fmtpInt(t.Fmtp, "tier"); ok {
			v.Tier = &tier
		}
		f = v
	case live.Opus:
		f = &format.Opus{PayloadTyp: pt, ChannelCount: 2}
	default:
		return nil
	}
	typ := description.MediaTypeVideo
	if t.Kind == live.Audio {
		typ = description.MediaTypeAudio
	}
	return &description.Media{Type: typ, Formats: []format.Format{f}}
}

// fmtpInt reads an integer parameter from an SDP fmtp string
// ("profile-level-id=42e01f;packetization-mode=1").
func fmtpInt(fmtp, key string) (int, bool) {
	for kv := range strings.SplitSeq(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), key) {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil
	}
	return 0, false
}
