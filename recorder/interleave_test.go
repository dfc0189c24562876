package recorder

import (
	"slices"
	"testing"
	"time"
)

func queuedFrames(il *interleaver) int {
	n := 0
	for _, q := range il.q {
		n += len(q)
	}
	return n
}

// Video at 30 fps and Opus at 50 fps, each arriving a little late at
// times, come out in timestamp order, every frame once.
func TestInterleaverOrders(t *testing.T) {
	il := interleaver{q: make([][]queuedFrame, 2)}
	var out []queuedFrame
	t0 := time.Now()
	for i := range int64(300) {
		now := t0.Add(time.Duration(i*33) * time.Millisecond)
		out = append(out, il.push(queuedFrame{track: 0, ts: i * 33, queued: now}, now)...)
		for j := range int64(2) {
			out = append(out, il.push(queuedFrame{track: 1, ts: i*33 + j*20 - 120, queued: now}, now)...)
		}
	}
	out = append(out, il.flush()...)
	if len(out) != 900 {
		t.Fatalf("%d frames out, want 900", len(out))
	}
	if !slices.IsSortedFunc(out, func(a, b queuedFrame) int { return int(a.ts - b.ts) }) {
		t.Error("frames are not in timestamp order")
	}
}

// A track whose timestamps keep jumping by just under maxJumpMS (which
// place does not treat as a discontinuity) must not make the other track's
// frames, or its own, pile up in memory: the lag rule lets them go.
func TestInterleaverStaysSmallUnderTimestampJumps(t *testing.T) {
	for name, jump := range map[string]int64{"ahead": maxJumpMS - 100, "behind": -(maxJumpMS - 100)} {
		t.Run(name, func(t *testing.T) {
			il := interleaver{q: make([][]queuedFrame, 2)}
			most := 0
			var video, audio int64
			t0 := time.Now()
			for i := range 5000 {
				now := t0.Add(time.Duration(i*20) * time.Millisecond)
				video += 33
				il.push(queuedFrame{track: 0, ts: video, queued: now}, now)
				audio += 20
				if i%10 == 0 {
					audio += jump
				}
				il.push(queuedFrame{track: 1, ts: audio, queued: now}, now)
				most = max(most, queuedFrames(&il))
			}
			// maxInterleaveLag of both tracks' frames, and some.
			if most > int(4*maxInterleaveLag/(20*time.Millisecond)) {
				t.Errorf("up to %d frames queued", most)
			}
		})
	}
}
