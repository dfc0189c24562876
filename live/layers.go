package live

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Simulcast: a publisher may send its video as several encodings of the
// same picture at different sizes (RFC 8853), each an RTP stream of its
// own named by a rid (RFC 8851). The stream's video Track then has Layers:
// each layer is a Track of its own (SSRC, counters, parameter sets, size),
// and a packet of a layer carries that layer as Packet.Track. Consumers
// pick the layer they want (Subscription.SetLayers); the parent track
// itself never carries packets.

// MaxLayers bounds the layers of one track: a subscription selects layers
// by the bits of a uint32, and no encoder sends more than a few.
const MaxLayers = 8

// DefaultSimulcastLayers is how many layers of a simulcast offer are
// accepted unless configured (OBS sends up to 4, browsers usually 3).
const DefaultSimulcastLayers = 4

// LayerSettle is how long after a simulcast track's first packet its
// ranking counts as known even if some layer has not shown its picture
// size yet (a layer the publisher never sends, or a codec whose size is
// not read from the stream).
const LayerSettle = 3 * time.Second

// rankRefresh bounds how often a ranking is recomputed when no layer's
// size changed: without sizes, layers are ranked by bitrate.
const rankRefresh = time.Second

// layerSet is what a simulcast track knows of its layers.
type layerSet struct {
	list []*Track // offer order
	// version counts changes that may reorder the layers (a size seen).
	version atomic.Uint64
	// start is the arrival of the first packet of any layer, Unix ns.
	start atomic.Int64

	mu       sync.Mutex
	ranked   []*Track
	rankedAt time.Time
	rankedV  uint64
}

// AddLayers makes t a simulcast track with one layer per rid, in the
// offer's order. Call it before the stream is published.
func (t *Track) AddLayers(rids []string) error {
	if t.Kind != Video {
		return fmt.Errorf("live: only video tracks have simulcast layers, not %s", t.Kind)
	}
	if len(rids) < 2 || len(rids) > MaxLayers {
		return fmt.Errorf("live: %d simulcast layers; want 2 to %d", len(rids), MaxLayers)
	}
	ls := &layerSet{}
	for i, rid := range rids {
		if rid == "" || slices.ContainsFunc(ls.list, func(l *Track) bool { return l.RID == rid }) {
			return fmt.Errorf("live: simulcast rid %q is empty or repeated", rid)
		}
		ls.list = append(ls.list, &Track{
			Kind: t.Kind, Codec: t.Codec, PayloadType: t.PayloadType, ClockRate: t.ClockRate, Fmtp: t.Fmtp,
			RID: rid, parent: t, bit: 1 << i,
		})
	}
	t.layers = ls
	return nil
}

// Layers returns a simulcast track's layers in the publisher's order, or
// nil for a track without layers.
func (t *Track) Layers() []*Track {
	if t.layers == nil {
		return nil
	}
	return t.layers.list
}

// Parent is the track a layer belongs to, nil for a track that is not a
// layer.
func (t *Track) Parent() *Track { return t.parent }

// LayerBit is the layer's bit in a Subscription's layer mask, 0 for a
// track that is not a layer.
func (t *Track) LayerBit() uint32 { return t.bit }

// Size is the picture size last seen in a keyframe, 0×0 before one (or
// for a codec whose size is not read from the stream, AV1).
func (t *Track) Size() (width, height int) {
	v := t.size.Load()
	return int(v >> 32), int(v & 0xffffffff)
}

// setSize records a picture size; a change may reorder the layers.
func (t *Track) setSize(w, h int) {
	if w <= 0 || h <= 0 {
		return
	}
	v := uint64(w)<<32 | uint64(h)
	if t.size.Swap(v) != v && t.parent != nil {
		t.parent.layers.version.Add(1)
	}
}

// LayersVersion changes whenever the ranking of t's layers may have
// changed, so a consumer can keep its own copy of RankedLayers until then.
func (t *Track) LayersVersion() uint64 {
	if t.layers == nil {
		return 0
	}
	return t.layers.version.Load()
}

// RankedLayers returns t's layers from the lowest quality to the highest:
// by picture size, then by average bitrate, then in the publisher's
// order. The slice is shared: do not modify it.
func (t *Track) RankedLayers() []*Track {
	ls := t.layers
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	v := ls.version.Load()
	if ls.ranked != nil && v == ls.rankedV && time.Since(ls.rankedAt) < rankRefresh {
		return ls.ranked
	}
	now := time.Now()
	ranked := slices.Clone(ls.list)
	// Sizes rank the layers once every layer that sends has shown one;
	// until then (a layer's first keyframe may still be on its way) the
	// bitrate does, which orders layers the same way in practice.
	bySize := true
	for _, l := range ls.list {
		if w, _ := l.Size(); w == 0 && l.first.Load() != 0 {
			bySize = false
		}
	}
	key := func(l *Track) (area int, bps float64) {
		w, h := l.Size()
		if !bySize {
			w, h = 0, 0
		}
		return w * h, l.averageBitrate(now)
	}
	slices.SortStableFunc(ranked, func(a, b *Track) int {
		aa, ab := key(a)
		ba, bb := key(b)
		switch {
		case aa != ba:
			return aa - ba
		case ab < bb:
			return -1
		case ab > bb:
			return 1
		}
		return 0
	})
	ls.ranked, ls.rankedAt, ls.rankedV = ranked, now, v
	return ranked
}

// averageBitrate is the layer's bits per second since its first packet.
func (t *Track) averageBitrate(now time.Time) float64 {
	first := t.first.Load()
	if first == 0 {
		return 0
	}
	d := now.Sub(time.Unix(0, first)).Seconds()
	if d < 0.2 {
		return 0
	}
	return float64(t.bytes.Load()) * 8 / d
}

// LayersSettled reports whether the ranking of t's layers is known: every
// layer has shown its picture size, or LayerSettle has passed since the
// first packet of any of them.
func (t *Track) LayersSettled() bool {
	ls := t.layers
	if ls == nil {
		return true
	}
	start := ls.start.Load()
	if start == 0 {
		return false
	}
	if time.Since(time.Unix(0, start)) >= LayerSettle {
		return true
	}
	for _, l := range ls.list {
		if w, _ := l.Size(); w == 0 {
			return false
		}
	}
	return true
}

// TopLayer is the highest-quality layer of t once the ranking is known
// (LayersSettled), else nil; t itself for a track without layers. The
// recorder and RTSP's default path take it.
func (t *Track) TopLayer() *Track {
	if t.layers == nil {
		return t
	}
	if !t.LayersSettled() {
		return nil
	}
	r := t.RankedLayers()
	return r[len(r)-1]
}

// Layer names a layer of a simulcast track: a rid, or "low", "mid" or
// "high" by rank (mid is the middle one, the lower of two middles). It
// returns nil for a name that fits no layer, and for a track without
// layers.
func (t *Track) Layer(name string) *Track {
	if l := t.LayerByRID(name); l != nil || t.layers == nil {
		return l
	}
	r := t.RankedLayers()
	switch strings.ToLower(name) {
	case "low":
		return r[0]
	case "mid":
		return r[(len(r)-1)/2]
	case "high":
		return r[len(r)-1]
	}
	return nil
}

// ValidLayerName reports whether name can name a layer of some stream: a
// rank name or a rid (RFC 8851: letters, digits, '-' and '_'; at most 255
// octets, what the RtpStreamId header extension carries, RFC 8852).
func ValidLayerName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// LayerByRID returns the layer with rid, or nil.
func (t *Track) LayerByRID(rid string) *Track {
	if t.layers == nil {
		return nil
	}
	for _, l := range t.layers.list {
		if l.RID == rid {
			return l
		}
	}
	return nil
}

// LayerMask is the subscription mask that selects layers.
func LayerMask(layers ...*Track) uint32 {
	var m uint32
	for _, l := range layers {
		if l != nil {
			m |= l.bit
		}
	}
	return m
}

// AllLayers is the mask of a subscription that takes every layer (the
// default).
const AllLayers = ^uint32(0)

// Bitrate is the track's bitrate in bits/s: over the last second or more,
// or since its first packet while it is younger than that.
func (t *Track) Bitrate() float64 {
	if r := t.rate.kbps(t.bytes.Load()) * 1000; r > 0 {
		return r
	}
	return t.averageBitrate(time.Now())
}

// LastArrival is when the layer's last packet arrived (zero before one);
// only layers keep it.
func (t *Track) LastArrival() time.Time {
	if n := t.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}
