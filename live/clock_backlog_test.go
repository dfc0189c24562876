package live

import (
	"testing"
	"time"
)

// A gateway seconds behind its input (its CPU saturated while a crowd of
// publishers joins) reads packets, and maybe their Sender Reports, up to
// 7.6 s late, then catches up in a burst, three times; in the first, its
// input buffer overflowed and 5.8 s of media never came. That is backlog
// and loss, not a new clock: frames stay placed by their capture (within
// the delay estimate's slew while the backlog lasts), and nothing is left
// shifted once it has drained. Taken for discontinuities, each episode
// moved the track by seconds, and recordings came out three times longer
// than the publish.
func TestClockRidesOutABacklog(t *testing.T) {
	// backlog(c): how late the gateway reads what was captured at c.
	backlog := func(c time.Duration) time.Duration {
		p := c % (20 * time.Second)
		switch {
		case c < 5*time.Second || p < 4*time.Second:
			return 0
		case p < 12*time.Second: // grows to 7.6 s
			return (p - 4*time.Second) * 95 / 100
		case p < 12*time.Second+7600*time.Millisecond: // read in one burst
			return 7600*time.Millisecond - (p - 12*time.Second)
		}
		return 0
	}
	for _, reports := range []string{"late as the packets", "on time", "none"} {
		s := newClockSim()
		var first time.Time
		var firstC time.Duration
		var worst, last time.Duration
		nextV, nextA, nextSR := time.Duration(0), time.Duration(0), 500*time.Millisecond
		lost := func(c time.Duration) bool { return c >= 12500*time.Millisecond && c < 18300*time.Millisecond }
		for c := time.Duration(0); c < 60*time.Second; c += time.Millisecond {
			d := 20*time.Millisecond + backlog(c)
			if lost(c) {
				nextV, nextA = max(nextV, c+time.Millisecond), max(nextA, c+time.Millisecond)
			}
			if c >= nextV {
				s.packet(s.v, nextV, d)
				// Placed as the recorder places it, when it comes.
				tv, ok := s.c.Time(s.v, s.rtp(s.v, nextV))
				if ok && c > 5*time.Second {
					if first.IsZero() {
						first, firstC = tv, nextV
					}
					last = tv.Sub(first) - (nextV - firstC)
					worst = max(worst, last, -last)
				}
				nextV += 33 * time.Millisecond
			}
			if c >= nextA {
				s.packet(s.a, nextA, d)
				nextA += 20 * time.Millisecond
			}
			if c >= nextSR && reports != "none" {
				sd := d
				if reports == "on time" {
					sd = 20 * time.Millisecond
				}
				s.report(s.v, c, sd, 0)
				s.report(s.a, c, sd, 0)
				nextSR += time.Second
			}
		}
		if worst > 200*time.Millisecond || last < -20*time.Millisecond || last > 20*time.Millisecond {
			t.Errorf("reports %s: video placed up to %v from its capture, %v at the end", reports, worst, last)
		}
		if k := s.skew(59 * time.Second); reports != "none" && (k < -5*time.Millisecond || k > 5*time.Millisecond) {
			t.Errorf("reports %s: audio %v from video after the backlog", reports, k)
		}
	}
}

// Lateness shows a backlog as it builds and drains, stays at the path's
// jitter otherwise, and is forgotten when the stream stops sending.
func TestClockLateness(t *testing.T) {
	s := newClockSim()
	s.jitter = 30 * time.Millisecond
	backlog := func(c time.Duration) time.Duration {
		switch {
		case c < 10*time.Second:
			return 0
		case c < 13*time.Second: // the gateway falls 2.7 s behind
			return (c - 10*time.Second) * 9 / 10
		case c < 16*time.Second: // and catches up
			return 2700*time.Millisecond - (c-13*time.Second)*9/10
		}
		return 0
	}
	type read struct {
		at      time.Time
		backlog time.Duration
	}
	var reads []read
	var worstCalm time.Duration
	var end time.Time
	for c := time.Duration(0); c < 20*time.Second; c += 20 * time.Millisecond {
		b := backlog(c)
		s.packet(s.a, c, 20*time.Millisecond+b)
		if c%(40*time.Millisecond) == 0 {
			s.packet(s.v, c, 20*time.Millisecond+b)
		}
		now := s.gw.Add(c + 20*time.Millisecond + b)
		end = now
		reads = append(reads, read{now, b})
		got := s.c.Lateness(now)
		// The worst of the packets read in about the last second is held.
		var held time.Duration
		for _, r := range reads {
			if now.Sub(r.at) <= lateHold+40*time.Millisecond {
				held = max(held, r.backlog)
			}
		}
		switch {
		case c > time.Second && held == 0:
			worstCalm = max(worstCalm, got)
		case b > 500*time.Millisecond:
			if got < b-50*time.Millisecond || got > held+50*time.Millisecond {
				t.Fatalf("backlog %v at %v (%v in the last second): lateness %v", b, c, held, got)
			}
		}
	}
	if worstCalm > s.jitter {
		t.Errorf("lateness up to %v with no backlog (jitter %v)", worstCalm, s.jitter)
	}
	if got := s.c.Lateness(end.Add(lateStale + time.Second)); got != 0 {
		t.Errorf("a stream silent for %v is %v late", lateStale+time.Second, got)
	}
}

// A gateway stopped for two seconds reads the backlog in one burst;
// its lateness is held long enough for a reader every half second.
func TestClockLatenessHoldsABurst(t *testing.T) {
	s := newClockSim()
	for c := time.Duration(0); c < 10*time.Second; c += 20 * time.Millisecond {
		s.packet(s.a, c, 20*time.Millisecond)
	}
	// Captured 10–12 s, all read at 12.02 s (the gateway was stopped).
	readAt := 12*time.Second + 20*time.Millisecond
	for c := 10 * time.Second; c < 12*time.Second; c += 20 * time.Millisecond {
		s.packet(s.a, c, readAt-c)
	}
	for c := 12 * time.Second; c < 14*time.Second; c += 20 * time.Millisecond {
		s.packet(s.a, c, 20*time.Millisecond)
		at := s.gw.Add(c + 20*time.Millisecond)
		got := s.c.Lateness(at)
		switch since := c - 12*time.Second; {
		case since < lateHold-50*time.Millisecond && got < 1900*time.Millisecond:
			t.Fatalf("%v after the burst: lateness %v, want the burst's 2 s", since, got)
		case since > lateHold+50*time.Millisecond && got > 50*time.Millisecond:
			t.Fatalf("%v after the burst: lateness %v, want it forgotten", since, got)
		}
	}
}
