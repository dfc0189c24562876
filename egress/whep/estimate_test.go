package whep

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// path is a bottleneck: a FIFO drained at rate bits/s that drops what
// would wait longer than maxQueue, as tc's tbf does. The viewer's side is
// pion's own TWCC recorder, which builds the feedback a pion viewer sends.
type path struct {
	rate     float64
	maxQueue time.Duration
	free     time.Time // when the link is free again
	rec      *twcc.Recorder
	epoch    time.Time
}

func (p *path) send(seq uint16, size int, at time.Time) {
	start := at
	if p.free.After(start) {
		start = p.free
	}
	if start.Sub(at) > p.maxQueue {
		return // dropped: reported as not received
	}
	p.free = start.Add(time.Duration(float64(size*8) / p.rate * float64(time.Second)))
	arrival := p.free.Add(20 * time.Millisecond) // propagation
	p.rec.Record(1, seq, arrival.Sub(p.epoch).Microseconds())
}

// run sends media at rate bits/s (1200-byte packets) over p for d, with
// feedback every 100 ms, and returns the estimates seen at each feedback.
func run(e *estimator, p *path, seq *uint16, now *time.Time, rate float64, d time.Duration) []float64 {
	var out []float64
	interval := time.Duration(1200 * 8 / rate * float64(time.Second))
	nextFB := now.Add(100 * time.Millisecond)
	for end := now.Add(d); now.Before(end); *now = now.Add(interval) {
		*seq++
		e.onSent(*seq, 1200, *now)
		p.send(*seq, 1200, *now)
		if !now.Before(nextFB) {
			nextFB = nextFB.Add(100 * time.Millisecond)
			for _, fb := range p.rec.BuildFeedbackPacket() {
				e.onTWCC(fb.(*rtcp.TransportLayerCC), now.Add(40*time.Millisecond))
			}
			out = append(out, e.Estimate())
		}
	}
	return out
}

// Sending 2 Mbit/s into a 600 kbit/s path, the estimate falls below 600
// kbit/s within a second; sending under the capacity, it does not fall.
func TestEstimateFollowsTheBottleneck(t *testing.T) {
	now := time.Now()
	e := newEstimator(DefaultStartBitrate)
	p := &path{rate: 600_000, maxQueue: 100 * time.Millisecond, rec: twcc.NewRecorder(5), epoch: now.Add(-time.Hour)}
	var seq uint16
	est := run(e, p, &seq, &now, 400_000, 3*time.Second)
	if last := est[len(est)-1]; last < 400_000 {
		t.Fatalf("under capacity the estimate fell to %.0f", last)
	}
	est = run(e, p, &seq, &now, 2_000_000, 3*time.Second)
	for i, v := range est {
		if v < 600_000 {
			t.Logf("estimate under the 600 kbit/s capacity after %d ms: %.0f", (i+1)*100, v)
			if i >= 10 {
				t.Errorf("took %d ms", (i+1)*100)
			}
			break
		}
	}
	if last := est[len(est)-1]; last > 600_000 || last < 250_000 {
		t.Fatalf("congested estimate %.0f, want between 250 and 600 kbit/s", last)
	}
}

// A probe that the path carries raises the estimate to what it
// delivered; one that congests the path leaves it where it was.
func TestProbe(t *testing.T) {
	for _, c := range []struct {
		capacity float64
		ok       bool
	}{{3_000_000, true}, {500_000, false}} {
		now := time.Now()
		e := newEstimator(400_000)
		p := &path{rate: c.capacity, maxQueue: 100 * time.Millisecond, rec: twcc.NewRecorder(5), epoch: now.Add(-time.Hour)}
		var seq uint16
		run(e, p, &seq, &now, 300_000, 2*time.Second)
		before := e.Estimate()
		e.startProbe(now, probeDuration)
		run(e, p, &seq, &now, 1_500_000, probeDuration) // media and padding
		run(e, p, &seq, &now, 300_000, probeSettle+100*time.Millisecond)
		done, ok := e.probeDone(now)
		if !done || ok != c.ok {
			t.Fatalf("capacity %.0f: probe done %v ok %v, want ok %v", c.capacity, done, ok, c.ok)
		}
		after := e.Estimate()
		if c.ok && after < 1_200_000 {
			t.Errorf("a carried 1.5 Mbit/s probe left the estimate at %.0f (before %.0f)", after, before)
		}
		if !c.ok && after > before {
			t.Errorf("a failed probe raised the estimate from %.0f to %.0f", before, after)
		}
	}
}
