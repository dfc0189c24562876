package main

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// window is the measurement interval, in Unix ns; packets outside it
// are not counted, so connection setup and warm-up do not skew the figures.
var window struct{ from, to atomic.Int64 }

func inWindow(at int64) bool {
	from, to := window.from.Load(), window.to.Load()
	return from != 0 && at >= from && (to == 0 || at < to)
}

// histogram counts latencies in microseconds: exact below 64 µs, then 64
// buckets per power of two (under 1.6% error), up to about 17 minutes.
type histogram struct {
	counts [36 * 64]uint64
	n      uint64
	sum    int64
	max    int64
}

func bucketOf(us int64) int {
	if us < 64 {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 7
	return (shift+1)*64 + int(us>>shift) - 64
}

// bucketValue is the middle of bucket i, in microseconds.
func bucketValue(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	shift := i/64 - 1
	lo := int64(i%64+64) << shift
	return float64(lo) + float64(int64(1)<<shift)/2
}

func (h *histogram) add(us int64) {
	b := bucketOf(us)
	if b >= len(h.counts) {
		b = len(h.counts) - 1
	}
	h.counts[b]++
	h.n++
	h.sum += us
	h.max = max(h.max, us)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile in milliseconds, or NaN when empty.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= max(rank, 1) {
			return min(bucketValue(i), float64(h.max)) / 1000
		}
	}
	return float64(h.max) / 1000
}

func (h *histogram) meanMS() float64 {
	if h.n == 0 {
		return math.NaN()
	}
	return float64(h.sum) / float64(h.n) / 1000
}

// trackRecv follows one received track: sequence numbers for loss, and
// the RFC 3550 (A.8) interarrival jitter of the packets' transit times. The
// transit is taken from the publisher's real send time, not from the RTP
// timestamp, so the jitter is the variation the gateway adds, without the
// publisher's own pacing of a frame's packets.
type trackRecv struct {
	started  bool
	first    int64 // extended sequence number of the first packet in the window
	highest  int64
	received uint64
	late     uint64 // arrived after a higher sequence number
	bytes    uint64

	haveTransit bool
	lastTransit int64   // ns
	jitter      float64 // ns
}

// add counts a packet; transit is its send-to-receive time, or -1 when the
// send time is unknown.
func (t *trackRecv) add(seq uint16, payload int, transit int64) {
	ext := int64(seq)
	if t.started {
		// Unwrap relative to the highest number seen.
		d := int64(int16(seq - uint16(t.highest)))
		ext = t.highest + d
	}
	if !t.started {
		t.started, t.first, t.highest = true, ext, ext
	}
	t.received++
	t.bytes += uint64(payload)
	if ext > t.highest {
		t.highest = ext
	} else if ext < t.highest {
		t.late++
	}
	if ext < t.first {
		t.first = ext
	}
	if transit < 0 {
		return
	}
	if t.haveTransit {
		t.jitter += (math.Abs(float64(transit-t.lastTransit)) - t.jitter) / 16
	}
	t.haveTransit, t.lastTransit = true, transit
}

func (t *trackRecv) expected() uint64 {
	if !t.started {
		return 0
	}
	return uint64(t.highest - t.first + 1)
}

func (t *trackRecv) lost() uint64 {
	if e := t.expected(); e > t.received {
		return e - t.received
	}
	return 0
}

func (t *trackRecv) jitterMS() float64 { return t.jitter / 1e6 }

// receiver is what one viewer or RTSP reader measures. add is called from
// the receiving goroutine(s); the mutex is uncontended but lets the report
// read it safely.
type receiver struct {
	stamps *streamStamps
	layer  string // the rid of a simulcast layer the viewer is pinned to

	mu       sync.Mutex
	video    trackRecv
	audio    trackRecv
	lat      histogram
	unmapped uint64 // packets whose send time was not found
}

func newReceiver(stamps *streamStamps) *receiver { return &receiver{stamps: stamps} }

// packet records one RTP packet received at at (Unix ns).
func (r *receiver) packet(video bool, seq uint16, rtpTS uint32, payload int, at int64) {
	if !inWindow(at) {
		return
	}
	transit := int64(-1)
	if sent := r.stamps.layerTable(video, r.layer).lookup(seq, rtpTS); sent != 0 {
		transit = at - sent
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if video {
		r.video.add(seq, payload, transit)
	} else {
		r.audio.add(seq, payload, transit)
	}
	if transit < 0 {
		r.unmapped++
		return
	}
	r.lat.add(transit / 1000)
}
