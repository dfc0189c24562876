package whep

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// A viewer of a simulcast stream receives one layer at a time, as one
// continuous RTP stream: the hub's layers each have their own SSRC,
// sequence numbers and timestamps, so the viewer's video track rewrites
// them (pion's track sets its own SSRC; a live.Splice renumbers and
// retimes) and switches only at a keyframe of the new layer, which it
// asks the publisher for. With auto selection the layer is the
// best whose bitrate fits the viewer's bandwidth estimate (estimate.go);
// a viewer can also pin a layer (?layer=low|mid|high|<rid>).

const (
	// decideEvery is how often the layer choice is looked at.
	decideEvery = 200 * time.Millisecond
	// upHeadroom: a higher layer needs this much more estimate than its
	// bitrate, and the current one is kept while the estimate is at least
	// its bitrate over keepTolerance, so a viewer does not flap at the
	// edge (a keyframe lifts a layer's bitrate for a moment).
	upHeadroom    = 1.15
	keepTolerance = 1.15
	// switchTimeout gives up waiting for a target layer's keyframe.
	switchTimeout = 4 * time.Second
	// startWait: a viewer that has no picture yet and waited this long
	// for its target layer's keyframe starts on the first keyframe of
	// any layer, and moves up from there. A browser short of CPU encodes
	// its top layer at a few frames a second and lets keyframe requests
	// wait for seconds; the viewer saw nothing for 15 s.
	startWait = 2 * time.Second
	// keyframeRetry asks again for the target layer's keyframe.
	keyframeRetry = time.Second
	// inactiveAfter: a layer without packets this long is not chosen (a
	// publisher's encoder may stop a layer when its own uplink shrinks).
	inactiveAfter = time.Second
	// probeStable is how long without congestion before probing a
	// higher layer; failed probes back off from probeBackoff to maxBackoff.
	probeStable  = 2 * time.Second
	probeBackoff = 4 * time.Second
	maxBackoff   = time.Minute
	// probeFactor: a probe fills the path to this much of the next
	// layer's need.
	probeFactor = 1.25
	// padSize is one padding packet's payload (RTP padding is at most 255
	// bytes); paddingPerCall bounds a burst.
	padSize        = 255
	paddingPerCall = 40
)

// layerSwitch is the simulcast part of a viewer's video track. Every field
// but est is touched on the subscription's goroutine only; est is nil for
// a viewer that pinned a layer.
type layerSwitch struct {
	sess   *Session
	parent *live.Track
	pin    string // "" for auto
	est    *estimator

	cur, target *live.Track
	targetSince time.Time
	lastKeyReq  time.Time
	nextDecide  time.Time

	anyStart bool // no layer carried after startWait: any layer's keyframe starts
	// splice gives cur's packets the viewer's numbering.
	splice live.Splice

	// Ranking, refreshed when the hub's version changes.
	version uint64
	ranked  []*live.Track

	// Probing for a higher layer.
	nextProbe time.Time
	backoff   time.Duration
	padSent   float64 // bits of padding sent in this probe
	probeRate float64 // bits/s of padding
	probeFrom time.Time
	pad       rtp.Packet
	padBuf    [padSize]byte

	switches atomic.Uint64
}

func newLayerSwitch(sess *Session, parent *live.Track, pin string, est *estimator) *layerSwitch {
	ls := &layerSwitch{sess: sess, parent: parent, pin: pin, est: est, backoff: probeBackoff}
	ls.padBuf[padSize-1] = padSize
	ls.pad.Header = rtp.Header{Version: 2, Padding: true}
	ls.pad.Payload = ls.padBuf[:]
	return ls
}

// Layer is the layer being forwarded, nil before the first keyframe.
func (ls *layerSwitch) Layer() *live.Track { return ls.cur }

// layers returns the ranking, refreshed when it may have changed.
func (ls *layerSwitch) layers() []*live.Track {
	if v := ls.parent.LayersVersion(); ls.ranked == nil || v != ls.version {
		ls.version = v
		ls.ranked = ls.parent.RankedLayers()
	}
	return ls.ranked
}

// want is the layer the viewer should get now.
func (ls *layerSwitch) want(now time.Time) *live.Track {
	ranked := ls.layers()
	if ls.pin != "" {
		if l := ls.parent.Layer(ls.pin); l != nil {
			return l
		}
		return ls.cur
	}
	audio := 0.0
	if a := ls.sess.stream.Track(live.Audio); a != nil {
		audio = a.Bitrate()
	}
	est := ls.est.Estimate()
	var best *live.Track
	curRank := rankOf(ranked, ls.cur)
	for i, l := range ranked {
		if !active(l, now) {
			continue
		}
		need := l.Bitrate() + audio
		switch {
		case i > curRank:
			need *= upHeadroom
		case i == curRank:
			need /= keepTolerance
		}
		if best == nil || need <= est {
			best = l
		}
	}
	if best == nil {
		return ls.cur
	}
	return best
}

func rankOf(ranked []*live.Track, l *live.Track) int {
	for i, x := range ranked {
		if x == l {
			return i
		}
	}
	return -1
}

// active reports whether the publisher is sending the layer.
func active(l *live.Track, now time.Time) bool {
	last := l.LastArrival()
	return !last.IsZero() && now.Sub(last) < inactiveAfter
}

// decide picks the target layer and starts or ends probes, at most every
// decideEvery.
func (ls *layerSwitch) decide(now time.Time) {
	if now.Before(ls.nextDecide) {
		return
	}
	ls.nextDecide = now.Add(decideEvery)
	want := ls.want(now)
	switch {
	case want == nil:
	case want == ls.cur:
		ls.setTarget(nil, now)
	case want != ls.target:
		ls.setTarget(want, now)
	}
	if ls.cur == nil && !ls.anyStart && ls.pin == "" && ls.target != nil && now.Sub(ls.targetSince) > startWait {
		ls.anyStart = true
		ls.sess.Log.Debug("no keyframe on the target layer yet; starting on any layer's", "rid", ls.target.RID)
		ls.sess.sub.SetLayers(live.LayerMask(ls.layers()...))
		ls.sess.stream.RequestKeyframe()
	}
	if ls.target != nil && now.Sub(ls.targetSince) > switchTimeout {
		ls.sess.Log.Debug("no keyframe on the target layer; staying", "rid", ls.target.RID)
		ls.setTarget(nil, now)
		ls.nextDecide = now.Add(switchTimeout)
	}
	if ls.target != nil && now.Sub(ls.lastKeyReq) >= keyframeRetry {
		ls.lastKeyReq = now
		ls.sess.stream.RequestLayerKeyframe(ls.target)
	}
	ls.probe(now)
}

// setTarget selects which layers the hub delivers: the current one and the
// one being switched to.
func (ls *layerSwitch) setTarget(l *live.Track, now time.Time) {
	if l == ls.target {
		return
	}
	ls.target = l
	ls.sess.sub.SetLayers(live.LayerMask(ls.cur, l))
	if l != nil {
		ls.targetSince = now
		ls.lastKeyReq = now
		ls.sess.stream.RequestLayerKeyframe(l)
	}
}

// probe decides whether to probe for the next layer up, and ends probes.
func (ls *layerSwitch) probe(now time.Time) {
	// Without transport-wide feedback nothing would show what a probe
	// delivered; such viewers move up as their REMB or loss allows.
	if ls.pin != "" || ls.cur == nil || ls.sess.twccID == 0 {
		return
	}
	if ls.probeRate > 0 {
		done, ok := ls.est.probeDone(now)
		if !done {
			return
		}
		ls.probeRate = 0
		if ok {
			ls.backoff = probeBackoff
			ls.nextDecide = now // switch up at once if the estimate now fits
		} else {
			ls.backoff = min(2*ls.backoff, maxBackoff)
		}
		ls.nextProbe = now.Add(ls.backoff)
		return
	}
	if ls.target != nil || now.Before(ls.nextProbe) || now.Sub(ls.est.lastCongestion()) < probeStable {
		return
	}
	ranked := ls.layers()
	i := rankOf(ranked, ls.cur)
	if i < 0 || i+1 >= len(ranked) || !active(ranked[i+1], now) {
		return
	}
	next := ranked[i+1]
	need := (next.Bitrate() + ls.audioRate()) * probeFactor
	extra := need - ls.cur.Bitrate() - ls.audioRate()
	if extra <= 0 {
		return
	}
	ls.probeRate, ls.padSent, ls.probeFrom = extra, 0, now
	ls.est.startProbe(now, probeDuration)
	ls.nextProbe = now.Add(ls.backoff)
}

func (ls *layerSwitch) audioRate() float64 {
	if a := ls.sess.stream.Track(live.Audio); a != nil {
		return a.Bitrate()
	}
	return 0
}

// forward decides what to do with a packet of one of the layers: it
// returns false for a packet the viewer does not get; otherwise it has
// rewritten out's sequence number and timestamp.
func (ls *layerSwitch) forward(p *live.Packet, out *rtp.Packet) bool {
	ls.decide(p.Arrival)
	l := p.Track
	if (l == ls.target || (ls.anyStart && ls.cur == nil)) && live.IsKeyframeStart(l.Codec, p.RTP.Payload) {
		ls.switchTo(l, p)
	}
	if l != ls.cur {
		return false
	}
	out.SequenceNumber, out.Timestamp = ls.splice.Forward(p)
	return true
}

// switchTo makes l the forwarded layer from its keyframe p on. The first
// layer keeps the publisher's numbering; a later one continues the
// viewer's (live.Splice).
func (ls *layerSwitch) switchTo(l *live.Track, p *live.Packet) {
	if ls.cur != nil {
		ls.splice.Switch(p, ls.sess.stream.Clock())
		ls.switches.Add(1)
		if ls.est != nil {
			ls.sess.Log.Debug("layer switch", "from", ls.cur.RID, "to", l.RID, "estimate_kbps", int(ls.est.Estimate()/1000))
		} else {
			ls.sess.Log.Debug("layer switch", "from", ls.cur.RID, "to", l.RID, "pinned", ls.pin)
		}
	}
	ls.cur, ls.target = l, nil
	ls.sess.sub.SetLayers(live.LayerMask(l))
	ls.sess.layerRID.Store(&l.RID)
}

// padding sends the probe's padding after a packet that ends a frame: the
// padding takes the next sequence numbers (later media shifts after them)
// and the last timestamp, and carries no payload (RFC 3550 §5.1).
func (ls *layerSwitch) padding(vt *viewerTrack, p *live.Packet) {
	if ls.probeRate == 0 || !p.RTP.Marker || !ls.est.probing(p.Arrival) {
		return
	}
	owed := ls.probeRate*p.Arrival.Sub(ls.probeFrom).Seconds() - ls.padSent
	for n := 0; owed > 0 && n < paddingPerCall; n++ {
		ls.pad.Header.SequenceNumber, ls.pad.Header.Timestamp = ls.splice.Insert()
		size := vt.send(&ls.pad, p.Arrival)
		bits := float64(size * 8)
		owed -= bits
		ls.padSent += bits
	}
}
