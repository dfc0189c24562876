package recorder

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// TestRecordingMovesBetweenLayers: a simulcast publisher whose top layer
// (640x360) does not send all the time, as a browser's does: it starts
// late (past the layers' settling time) while the bandwidth estimate
// ramps up, or pauses while bandwidth is short. The recording moves to
// the best layer sending, at its keyframe, each time in a new file:
// consecutive files, each with its own picture size in its header, each
// starting on a keyframe and decoding cleanly, each starting one frame
// after the one before ends, audio in all, together the whole
// publication.
func TestRecordingMovesBetweenLayers(t *testing.T) {
	requireTools(t)
	t.Parallel()
	type file struct {
		w, h     int
		from, to time.Duration // when it may start, after the first file
	}
	cases := []struct {
		name   string
		length time.Duration
		src    hubtest.Source
		files  []file
	}{
		// The top layer comes 4.5 s in: the recording starts on the
		// middle one and moves up within about 2 s.
		{"late top layer", 10 * time.Second, hubtest.Source{LateLayer: "f", LateBy: 4500 * time.Millisecond},
			[]file{{320, 180, 0, 0}, {640, 360, 4500 * time.Millisecond, 7 * time.Second}}},
		// The top layer stops from 4 s to 10 s: the recording moves down
		// once it has sent nothing for layerStall (by 8 s), and up again
		// moveGap after that (by 19 s).
		{"top layer pauses", 24 * time.Second, hubtest.Source{PauseLayer: "f", PauseAt: 4 * time.Second, PauseFor: 6 * time.Second},
			[]file{{640, 360, 0, 0}, {320, 180, 6500 * time.Millisecond, 9 * time.Second}, {640, 360, 16500 * time.Millisecond, 20 * time.Second}}},
		// The top layer's first keyframe is lost and its others wait (a
		// browser short of CPU, as seen in CI): it sends, at the highest
		// bitrate, but never shows its size. The recording is the
		// biggest layer that has, from its first keyframe: not the top
		// layer of unknown size, left seconds later.
		{"top layer never shows its size", 8 * time.Second, hubtest.Source{LoseFirstKeyframe: "f", WithholdKeyframes: "f"},
			[]file{{320, 180, 0, 0}}},
	}
	for _, tc := range cases {
		for _, codec := range []live.Codec{live.H264, live.VP8} {
			t.Run(tc.name+"/"+string(codec), func(t *testing.T) {
				t.Parallel()
				var mu sync.Mutex
				var finished []Info
				r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: testLogger(t),
					OnFinish: func(in Info) { mu.Lock(); finished = append(finished, in); mu.Unlock() }})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				ctx, cancel := context.WithTimeout(context.Background(), tc.length)
				defer cancel()
				src := tc.src
				src.Video, src.Audio, src.Simulcast, src.Loop, src.KeyframeOnRequest = codec, true, true, true, true
				publishUntil(ctx, t, r, "moves", src)

				segs := listAll(t, r.Catalog(), Query{Limit: 1})
				slices.Reverse(segs) // oldest first
				mu.Lock()
				nFinished := len(finished)
				mu.Unlock()
				if len(segs) != len(tc.files) || nFinished != len(tc.files) {
					t.Fatalf("want %d files, %d listed, %d finished: %+v", len(tc.files), len(segs), nFinished, segs)
				}
				var total float64
				for i, want := range tc.files {
					in := segs[i]
					if in.State != StateFinished || in.Width != want.w || in.Height != want.h {
						t.Errorf("file %d: %s %dx%d, want finished %dx%d", i+1, in.State, in.Width, in.Height, want.w, want.h)
					}
					pr := ffprobe(t, in.Path)
					var audio bool
					for _, s := range pr.Streams {
						switch s.CodecType {
						case "video":
							if s.Width != want.w || s.Height != want.h {
								t.Errorf("file %d's header says %dx%d, want %dx%d", i+1, s.Width, s.Height, want.w, want.h)
							}
						case "audio":
							audio = true
						}
					}
					if !audio {
						t.Errorf("file %d has no audio", i+1)
					}
					pkts := videoPackets(t, in.Path)
					if len(pkts) == 0 || !strings.HasPrefix(pkts[0], "K") {
						t.Errorf("file %d does not start on a keyframe: %v", i+1, pkts[:min(len(pkts), 3)])
					}
					if msg := ffmpegErrors(t, in.Path, nil, nil); msg != "" {
						t.Errorf("file %d decodes with errors: %s", i+1, msg)
					}
					total += float64(in.DurationMS) / 1000
					at := in.Start.Sub(segs[0].Start)
					t.Logf("%s: %dx%d from %v, %d video packets, %d ms", filepath.Base(in.Path), in.Width, in.Height, at.Round(time.Millisecond), len(pkts), in.DurationMS)
					if i == 0 {
						continue
					}
					if at < want.from || at > want.to {
						t.Errorf("file %d starts %v in, want %v to %v", i+1, at, want.from, want.to)
					}
					// It starts where the one before ends: one frame
					// after its last (audio's, where the video stopped).
					prev := segs[i-1]
					gap := in.Start.Sub(prev.Start) - time.Duration(prev.DurationMS)*time.Millisecond
					if gap <= 0 || gap > 50*time.Millisecond {
						t.Errorf("file %d starts %v after the last frame of the one before, want one frame", i+1, gap)
					}
				}
				if math.Abs(total-tc.length.Seconds()) > 1.5 {
					t.Errorf("the files hold %.1f s of a %v publication", total, tc.length)
				}
			})
		}
	}
}
