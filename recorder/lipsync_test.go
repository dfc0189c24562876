package recorder

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
)

// recordSimulated records a simulated flash-and-beep publisher (hubtest.
// Simulate: real H.264 and Opus, timed as opts say) and measures the lip
// sync of the file with ffmpeg.
func recordSimulated(t *testing.T, opts hubtest.SimOptions) *mediacheck.Sync {
	t.Helper()
	mediacheck.Require(t)
	r := newTestRecorder(t)
	defer r.Close()
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	s, err := hubtest.Simulate(hub, "sync", opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range s.Subscriptions() {
		select {
		case <-sub.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the recording did not finish")
		}
	}
	info := onlySidecar(t, r, "sync")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sync, err := mediacheck.LipSync(ctx, info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(opts.Duration/(2*time.Second)) - 2; len(sync.Offsets) < want {
		t.Fatalf("found %d flash/beep pairs (flashes %v, beeps %v), want at least %d", len(sync.Offsets), sync.Flashes, sync.Beeps, want)
	}
	return sync
}

// wantSync checks the targets: median |audio − video| within
// median, every pair within worst.
func wantSync(t *testing.T, s *mediacheck.Sync, median, worst time.Duration) {
	t.Helper()
	t.Logf("audio − video over %d flashes: median %v, worst %v", len(s.Offsets), s.Median(), s.Worst())
	if s.Median() > median || s.Worst() > worst {
		t.Errorf("audio − video: median %v, worst %v (want ≤ %v, ≤ %v); offsets %v", s.Median(), s.Worst(), median, worst, s.Offsets)
	}
}

func delays(video, audio time.Duration) func(live.MediaKind, time.Duration) time.Duration {
	return func(k live.MediaKind, _ time.Duration) time.Duration {
		if k == live.Audio {
			return audio
		}
		return video
	}
}

// jittered adds up to j of random delay to each packet.
func jittered(base func(live.MediaKind, time.Duration) time.Duration, j time.Duration) func(live.MediaKind, time.Duration) time.Duration {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 9))
	return func(k live.MediaKind, c time.Duration) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return base(k, c) + time.Duration(rng.Int64N(int64(j)))
	}
}

// TestLipSyncWhateverTheSendTiming: the three ways publishers start, as
// measured on real encoders (issue: OBS-like, webrtcbin's burst, audio sent
// 100 ms late with unchanged timestamps and Sender Reports), each give a
// recording whose flashes and beeps line up.
func TestLipSyncWhateverTheSendTiming(t *testing.T) {
	burst := func(k live.MediaKind, c time.Duration) time.Duration {
		// Capture runs from 0; the connection is up at 1.5 s, when what
		// was held goes out at once (video first), then real time.
		const up = 1500 * time.Millisecond
		if c < up {
			if k == live.Audio {
				return up - c + 30*time.Millisecond + c/30
			}
			return up - c + c/50
		}
		return 15 * time.Millisecond
	}
	for name, delay := range map[string]func(live.MediaKind, time.Duration) time.Duration{
		"obs-like":   delays(15*time.Millisecond, 15*time.Millisecond),
		"burst":      burst,
		"late-audio": delays(15*time.Millisecond, 115*time.Millisecond),
	} {
		t.Run(name, func(t *testing.T) {
			s := recordSimulated(t, hubtest.SimOptions{Duration: 14 * time.Second, Delay: jittered(delay, 5*time.Millisecond), SRInterval: time.Second})
			wantSync(t, s, 20*time.Millisecond, 45*time.Millisecond)
		})
	}
}

// TestLipSyncNoDriftOverAMinute: a minute of 2 % jittered delivery stays
// in sync from the first flash to the last.
func TestLipSyncNoDriftOverAMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of media")
	}
	s := recordSimulated(t, hubtest.SimOptions{Duration: 60 * time.Second,
		Delay: jittered(delays(15*time.Millisecond, 40*time.Millisecond), 30*time.Millisecond), SRInterval: time.Second})
	wantSync(t, s, 20*time.Millisecond, 45*time.Millisecond)
}

// TestLipSyncTwoDriftingClocks: the publisher's audio RTP clock runs
// 100 ppm fast against its video clock (its Sender Reports say so); ten
// minutes on, the recording is still within 20 ms.
func TestLipSyncTwoDriftingClocks(t *testing.T) {
	if testing.Short() {
		t.Skip("ten minutes of media")
	}
	s := recordSimulated(t, hubtest.SimOptions{Duration: 10 * time.Minute, AudioDrift: 100e-6,
		Delay: jittered(delays(15*time.Millisecond, 15*time.Millisecond), 5*time.Millisecond), SRInterval: time.Second})
	wantSync(t, s, 20*time.Millisecond, 45*time.Millisecond)
	last := &mediacheck.Sync{Offsets: s.Offsets[len(s.Offsets)-30:]}
	if last.Worst() > 20*time.Millisecond {
		t.Errorf("the last minute is off by up to %v: %v", last.Worst(), last.Offsets)
	}
}

// TestLipSyncWithoutUsefulSenderReports: the first report lost (audio's
// reports 5 s apart, as libwebrtc sends them, so the next comes after the
// clock settled), a report with a wild NTP time, and no report at all:
// the recording stays within the fallback's bound.
func TestLipSyncWithoutUsefulSenderReports(t *testing.T) {
	cases := map[string]hubtest.SimOptions{
		"first report lost": {SRInterval: 5 * time.Second, SR: func(_ live.MediaKind, n int) (bool, time.Duration) { return n > 0, 0 }},
		"wild NTP time": {SRInterval: time.Second, SR: func(k live.MediaKind, n int) (bool, time.Duration) {
			if k == live.Audio && n == 3 {
				return true, time.Hour
			}
			return true, 0
		}},
		"no reports": {},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			opts.Duration = 16 * time.Second
			opts.Delay = jittered(delays(15*time.Millisecond, 15*time.Millisecond), 30*time.Millisecond)
			s := recordSimulated(t, opts)
			wantSync(t, s, 20*time.Millisecond, 45*time.Millisecond)
		})
	}
}

// TestLipSyncFallbackBound documents what placing by arrival cannot know:
// without Sender Reports, audio sent 100 ms after its capture is recorded
// 100 ms late. (It also shows that the measurement sees an offset.)
func TestLipSyncFallbackBound(t *testing.T) {
	s := recordSimulated(t, hubtest.SimOptions{Duration: 14 * time.Second, Delay: delays(15*time.Millisecond, 115*time.Millisecond)})
	t.Logf("audio − video without Sender Reports, audio sent 100 ms late: %v", s.Offsets)
	if m := s.Median(); m < 90*time.Millisecond || m > 110*time.Millisecond {
		t.Errorf("median offset %v, want about 100 ms", m)
	}
}
