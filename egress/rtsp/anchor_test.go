package rtsp

import (
	"testing"
	"time"
)

// Players get one mapping of a track's RTP time: the clock's refinements
// (a late Sender Report, a fade) do not move it, a discontinuity does, and
// RTP timestamps wrap through it.
func TestAnchorKeepsOneMapping(t *testing.T) {
	var a anchor
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const rate = 48000
	rtp := uint32(0xffff0000) // wraps after 65536 ticks
	if got := a.time(rtp, t0, rate); !got.Equal(t0) {
		t.Fatalf("first packet at %v, want the clock's %v", got, t0)
	}
	// One second later, the clock has moved the track by 120 ms.
	rtp += rate
	clock := t0.Add(time.Second + 120*time.Millisecond)
	if got, want := a.time(rtp, clock, rate), t0.Add(time.Second); !got.Equal(want) {
		t.Errorf("after a refinement: %v, want the anchored %v", got, want)
	}
	// The publisher restarts its RTP clock: the anchor follows the clock.
	rtp += 12345678
	clock = t0.Add(2 * time.Second)
	if got := a.time(rtp, clock, rate); !got.Equal(clock) {
		t.Errorf("after a discontinuity: %v, want the clock's %v", got, clock)
	}
	if got, want := a.time(rtp+rate/50, clock, rate), clock.Add(20*time.Millisecond); !got.Equal(want) {
		t.Errorf("the next 20 ms frame: %v, want %v", got, want)
	}
}
