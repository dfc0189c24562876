package live

import "time"

// A stream with many consumers wakes each consumer's goroutine once per
// video frame, not once per packet. A frame's packets reach the hub over
// a few milliseconds (a pacing publisher spreads them), and a viewer can
// decode none of them before the last; waking every consumer for every
// packet costs a park and a wake-up per packet per consumer. So, from
// holdFrom consumers on, a video packet that does not end its frame (no
// marker bit) is queued without waking; the frame's last packet, any
// audio packet, or holdMax after a packet was held, whichever comes
// first, wakes each consumer for everything it holds (holdMax covers a
// lost last packet and a publisher that pauses mid-frame). It saves a
// few percent of the gateway's CPU at 500 and 1000 WHEP viewers
// (docs/BENCHMARKS.md, tenth session); with fewer consumers the wake-ups
// cost little in all, and the first packets of a frame leave as they
// come: held, the p99 latency per packet at 100 viewers went from 7.6 to
// 9.4 ms, while a frame's last packet, the one a decoder waits for, is
// never held. A consumer that fans packets out again, RTSP's one
// subscription per stream for all its readers, asks to be woken per
// frame at any count (SubscribeOptions.PerFrame).
const (
	holdFrom = 128
	holdMax  = 5 * time.Millisecond
)

// midFrame reports whether p is a video packet that does not end its
// frame: one a consumer woken per frame is not woken for.
func midFrame(p *Packet) bool {
	return p.Track.Kind == Video && !p.RTP.Marker
}

// wakeHeld is heldWake's: it wakes every consumer holding packets.
func (s *Stream) wakeHeld() {
	if !s.held.Swap(false) {
		return
	}
	for _, sub := range *s.subs.Load() {
		sub.wakeHeld()
	}
}
