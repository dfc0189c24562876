package recorder

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// TestRecordingMovesToALateTopLayer: a simulcast publisher whose top
// layer (640x360) starts 4.5 s after the others, past the layers'
// settling time, as a browser's does while its bandwidth estimate ramps
// up. The recording starts on the best layer there is (320x180) and moves
// to the top one at its keyframe: two consecutive files, each with its
// own picture size in its header, each starting on a keyframe and
// decoding cleanly, the second starting one frame after the first ends,
// audio in both.
func TestRecordingMovesToALateTopLayer(t *testing.T) {
	requireTools(t)
	t.Parallel()
	for _, codec := range []live.Codec{live.H264, live.VP8} {
		t.Run(string(codec), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var finished []Info
			r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: testLogger(t),
				OnFinish: func(in Info) { mu.Lock(); finished = append(finished, in); mu.Unlock() }})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			const length = 10 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), length)
			defer cancel()
			publishUntil(ctx, t, r, "late", hubtest.Source{Video: codec, Audio: true, Simulcast: true, Loop: true,
				KeyframeOnRequest: true, LateLayer: "f", LateBy: 4500 * time.Millisecond})

			segs := listAll(t, r.Catalog(), Query{Limit: 1})
			mu.Lock()
			nFinished := len(finished)
			mu.Unlock()
			if len(segs) != 2 || nFinished != 2 {
				t.Fatalf("want two files (before and after the move), %d listed, %d finished: %+v", len(segs), nFinished, segs)
			}
			first, second := segs[1], segs[0] // newest first
			var total float64
			for i, tc := range []struct {
				in   Info
				w, h int
			}{{first, 320, 180}, {second, 640, 360}} {
				in := tc.in
				if in.State != StateFinished || in.Width != tc.w || in.Height != tc.h {
					t.Errorf("file %d: %s %dx%d, want finished %dx%d", i+1, in.State, in.Width, in.Height, tc.w, tc.h)
				}
				pr := ffprobe(t, in.Path)
				var audio bool
				for _, s := range pr.Streams {
					switch s.CodecType {
					case "video":
						if s.Width != tc.w || s.Height != tc.h {
							t.Errorf("file %d's header says %dx%d, want %dx%d", i+1, s.Width, s.Height, tc.w, tc.h)
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
				t.Logf("%s: %dx%d, %d video packets, %d ms", filepath.Base(in.Path), in.Width, in.Height, len(pkts), in.DurationMS)
			}
			// The second file starts where the first one's timeline ends:
			// one frame (33 ms) after its last.
			gap := second.Start.Sub(first.Start) - time.Duration(lastVideoPTS(t, first.Path)*float64(time.Second))
			if gap <= 0 || gap > 50*time.Millisecond {
				t.Errorf("the second file starts %v after the first one's last frame, want one frame", gap)
			}
			// The top layer came 4.5 s in; its keyframe was asked for
			// within about 2 s of that (the ranking, then a check a second).
			if moved := second.Start.Sub(first.Start); moved < 4500*time.Millisecond || moved > 8*time.Second {
				t.Errorf("moved to the top layer %v after the start, want 4.5–8 s", moved)
			}
			if math.Abs(total-length.Seconds()) > 1.5 {
				t.Errorf("the files hold %.1f s of a %v publication", total, length)
			}
		})
	}
}
