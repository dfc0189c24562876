package recorder

import (
	"testing"
	"time"

	"github.com/reel-gateway/reel/live"
)

// fakeWriter keeps the timestamps written, per track.
type fakeWriter struct{ ts [][]int64 }

func (w *fakeWriter) WriteFrame(track int, _ bool, ts int64, _ []byte) error {
	w.ts[track] = append(w.ts[track], ts)
	return nil
}

func (w *fakeWriter) Close() error { return nil }

// The stream's clock steps back 100 ms two seconds in (its delay estimate
// dropped: a packet came quicker than any before). Placed by it as they
// were, the next Opus frames overlapped the ones written, and ffmpeg
// refused the file. Now every frame keeps nine tenths of its RTP distance
// from the previous one, the step is absorbed at the same pace by both
// tracks, and after it they are where the clock says, together.
func TestPlaceAbsorbsAClockStepBack(t *testing.T) {
	video := &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000}
	audio := &live.Track{Kind: live.Audio, Codec: live.Opus, ClockRate: 48000}
	w := &fakeWriter{ts: make([][]int64, 2)}
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rc := &recording{rec: &Recorder{}, w: w, file: &partFile{}, t0: t0, il: interleaver{q: make([][]queuedFrame, 2)},
		meta: Info{Tracks: []TrackInfo{{OffsetMS: -1}, {OffsetMS: -1}}}}
	tracks := []*trackState{{track: video, index: 0}, {track: audio, index: 1}}
	step := func(c time.Duration) time.Duration {
		if c >= 2*time.Second {
			return -100 * time.Millisecond
		}
		return 0
	}
	nextV, nextA := time.Duration(0), time.Duration(0)
	for c := time.Duration(0); c < 5*time.Second; c += time.Millisecond {
		rc.now = t0.Add(c + 20*time.Millisecond)
		for i, ts := range tracks {
			next, every := &nextV, time.Second/30
			if i == 1 {
				next, every = &nextA, 20*time.Millisecond
			}
			if c < *next {
				continue
			}
			rtp := uint32(int64(*next) * int64(ts.track.ClockRate) / int64(time.Second))
			if err := rc.place(ts, &frame{keyframe: true, rtpTS: rtp}, t0.Add(*next+step(*next))); err != nil {
				t.Fatal(err)
			}
			*next += every
		}
	}
	for _, q := range rc.il.flush() {
		if err := rc.write(q); err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range []string{"video", "audio"} {
		ts := w.ts[i]
		distance := int64(33)
		if i == 1 {
			distance = 20
		}
		for j := 1; j < len(ts); j++ {
			if d := ts[j] - ts[j-1]; d < distance*9/10-1 {
				t.Fatalf("%s frames %d and %d written %d ms apart, want at least %d", name, j-1, j, d, distance*9/10-1)
			}
		}
		// 4 s in, the clock places them 100 ms earlier than their
		// capture: the step is absorbed.
		k := len(ts) * 4 / 5
		want := int64(k)*20 - 100
		if i == 0 {
			want = int64(float64(k)*1000/30) - 100
		}
		if got := ts[k]; got < want-2 || got > want+2 {
			t.Errorf("%s frame %d written at %d ms, want %d (the clock's place)", name, k, got, want)
		}
	}
}
