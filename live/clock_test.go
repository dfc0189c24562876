package live

import (
	"cmp"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// clockSim drives a Clock with a simulated publisher: capture time c (from
// the start of the publish) becomes RTP timestamp base + c×rate×(1+drift)
// on each track, the publisher's NTP clock reads epoch + c, and a packet
// or report captured at c reaches the gateway at gw + c + delay.
type clockSim struct {
	c      *Clock
	v, a   *Track
	epoch  time.Time // the publisher's NTP time at c = 0
	gw     time.Time // the gateway's time at c = 0
	base   map[*Track]uint32
	drift  map[*Track]float64
	jitter time.Duration
	rng    *rand.Rand
}

func newClockSim() *clockSim {
	v := &Track{Kind: Video, Codec: H264, ClockRate: 90000}
	a := &Track{Kind: Audio, Codec: Opus, ClockRate: 48000}
	return &clockSim{
		c: newClock([]*Track{v, a}, slog.New(slog.DiscardHandler)), v: v, a: a,
		epoch: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), gw: time.Date(2026, 11, 30, 12, 0, 7, 0, time.UTC),
		base:  map[*Track]uint32{v: 0xfffff000, a: 12345},
		drift: map[*Track]float64{},
		rng:   rand.New(rand.NewPCG(1, 2)),
	}
}

func (s *clockSim) rtp(t *Track, c time.Duration) uint32 {
	return s.base[t] + uint32(int64(c.Seconds()*float64(t.ClockRate)*(1+s.drift[t])))
}

// packet delivers a packet of t captured at c after delay (plus jitter).
func (s *clockSim) packet(t *Track, c, delay time.Duration) {
	if s.jitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(s.jitter)))
	}
	s.c.observe(t, s.rtp(t, c), s.gw.Add(c+delay))
}

// report delivers a Sender Report of t sent at c, with NTP time off the
// publisher's clock by ntpOff.
func (s *clockSim) report(t *Track, c, delay, ntpOff time.Duration) {
	s.c.senderReport(t, s.epoch.Add(c+ntpOff), s.rtp(t, c), s.gw.Add(c+delay))
}

// skew is how much later audio captured at c is placed than video
// captured at c.
func (s *clockSim) skew(c time.Duration) time.Duration {
	tv, ok1 := s.c.Time(s.v, s.rtp(s.v, c))
	ta, ok2 := s.c.Time(s.a, s.rtp(s.a, c))
	if !ok1 || !ok2 {
		return time.Hour
	}
	return ta.Sub(tv)
}

// run simulates from..to: video every 33 ms, audio every 20 ms, with
// delays, and Sender Reports every srEvery (0: none) except when skip
// says so.
func (s *clockSim) run(from, to time.Duration, vDelay, aDelay, srEvery time.Duration, skip func(t *Track, c time.Duration) bool) {
	nextV, nextA, nextSR := from, from, from+srEvery/2
	for c := from; c < to; c += time.Millisecond {
		if c >= nextV {
			s.packet(s.v, nextV, vDelay)
			nextV += 33 * time.Millisecond
		}
		if c >= nextA {
			s.packet(s.a, nextA, aDelay)
			nextA += 20 * time.Millisecond
		}
		if srEvery > 0 && c >= nextSR {
			for _, t := range []*Track{s.v, s.a} {
				if skip == nil || !skip(t, c) {
					s.report(t, c, vDelay, 0)
				}
			}
			nextSR += srEvery
		}
	}
}

func within(t *testing.T, what string, got, limit time.Duration) {
	t.Helper()
	if got < -limit || got > limit {
		t.Errorf("%s: audio %v from video, want within ±%v", what, got, limit)
	}
}

// Audio sent 100 ms later than video, with the RTP timestamps and Sender
// Reports of the capture: placed by the reports, they line up.
func TestClockSenderReportsAlignLateAudio(t *testing.T) {
	s := newClockSim()
	s.run(0, 10*time.Second, 20*time.Millisecond, 120*time.Millisecond, time.Second, nil)
	if m := s.c.Mode(); m != SyncSenderReports {
		t.Fatalf("mode %q, want %q", m, SyncSenderReports)
	}
	within(t, "late audio", s.skew(9*time.Second), 2*time.Millisecond)
	// The timeline is the gateway's clock: capture plus the least delay.
	if tv, _ := s.c.Time(s.v, s.rtp(s.v, 5*time.Second)); tv.Sub(s.gw.Add(5*time.Second)) != 20*time.Millisecond {
		t.Errorf("video at 5 s placed at gateway +%v, want +5.02 s", tv.Sub(s.gw))
	}
}

// The burst start of webrtcbin: a second of media captured before the
// connection was up arrives at once, then real time follows.
func TestClockBurstStart(t *testing.T) {
	s := newClockSim()
	for c := time.Duration(0); c < time.Second; c += 20 * time.Millisecond {
		s.c.observe(s.a, s.rtp(s.a, c), s.gw.Add(time.Second+c/50))
		if c%(40*time.Millisecond) == 0 {
			s.c.observe(s.v, s.rtp(s.v, c), s.gw.Add(time.Second+c/40))
		}
	}
	s.run(time.Second, 8*time.Second, 15*time.Millisecond, 15*time.Millisecond, time.Second, nil)
	within(t, "burst start, first frames", s.skew(100*time.Millisecond), 2*time.Millisecond)
	within(t, "burst start, later", s.skew(7*time.Second), 2*time.Millisecond)
}

// Two clocks: the publisher's audio RTP clock runs 100 ppm fast against
// its video clock, as the Sender Reports say. Ten minutes on, the tracks
// still line up.
func TestClockFollowsDriftBetweenTracks(t *testing.T) {
	s := newClockSim()
	s.drift[s.a] = 100e-6
	s.jitter = 5 * time.Millisecond
	s.run(0, 10*time.Minute, 20*time.Millisecond, 20*time.Millisecond, time.Second, nil)
	within(t, "after 10 minutes of 100 ppm drift", s.skew(10*time.Minute-time.Second), 2*time.Millisecond)
}

// A publisher that never sends a Sender Report: after SettleTimeout the
// tracks are placed by their least delay over a window, not by the first
// packet, whose delay was high.
func TestClockWithoutSenderReports(t *testing.T) {
	s := newClockSim()
	if s.c.Settled() {
		t.Fatal("settled before any packet")
	}
	s.c.observe(s.v, s.rtp(s.v, 0), s.gw.Add(300*time.Millisecond)) // a slow first packet
	s.jitter = 30 * time.Millisecond
	s.run(33*time.Millisecond, 3*time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	if s.c.Settled() {
		t.Fatal("settled before SettleTimeout without Sender Reports")
	}
	s.run(3*time.Second, 20*time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	if m := s.c.Mode(); !s.c.Settled() || m != SyncArrival {
		t.Fatalf("settled %v, mode %q; want %q", s.c.Settled(), m, SyncArrival)
	}
	within(t, "by arrival, 30 ms jitter", s.skew(19*time.Second), 8*time.Millisecond)
	tv, _ := s.c.Time(s.v, s.rtp(s.v, 19*time.Second))
	if d := tv.Sub(s.gw.Add(19 * time.Second)); d < 20*time.Millisecond || d > 28*time.Millisecond {
		t.Errorf("video placed %v after capture, want about the least delay (20 ms)", d)
	}
}

// The first Sender Report of audio is lost and the next comes after the
// clock settled: audio starts by arrival and moves to the reports'
// timeline gradually, with no jump.
func TestClockFirstSenderReportLost(t *testing.T) {
	s := newClockSim()
	lateAudio := 60 * time.Millisecond // sent later than captured
	noAudioSR := func(tr *Track, c time.Duration) bool { return tr == s.a && c < 5*time.Second }
	s.run(0, 4500*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond+lateAudio, time.Second, noAudioSR)
	if m := s.c.Mode(); m != SyncMixed {
		t.Fatalf("mode %q, want %q", m, SyncMixed)
	}
	within(t, "before audio's first report (fallback)", s.skew(4*time.Second), lateAudio+2*time.Millisecond)
	s.run(4500*time.Millisecond, 5000*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond+lateAudio, time.Second, noAudioSR)
	prev, _ := s.c.Time(s.a, s.rtp(s.a, 4980*time.Millisecond))
	// Audio's first report comes at 5 s.
	s.run(5000*time.Millisecond, 5040*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond+lateAudio, time.Second, noAudioSR)
	// The audio placed just before and just after the report: no jump.
	next, _ := s.c.Time(s.a, s.rtp(s.a, 5020*time.Millisecond))
	if step := next.Sub(prev) - 40*time.Millisecond; step < -3*time.Millisecond || step > 3*time.Millisecond {
		t.Errorf("audio stepped by %v at the switch", step)
	}
	s.run(5040*time.Millisecond, 12*time.Second, 20*time.Millisecond, 20*time.Millisecond+lateAudio, time.Second, noAudioSR)
	if m := s.c.Mode(); m != SyncSenderReports {
		t.Fatalf("mode %q, want %q", m, SyncSenderReports)
	}
	within(t, "after fading to the reports", s.skew(11*time.Second), 2*time.Millisecond)
}

// A Sender Report with a wild NTP time is ignored; a jump of the
// publisher's clock that the next report confirms is absorbed without a
// jump in the timeline.
func TestClockWildAndJumpingSenderReports(t *testing.T) {
	s := newClockSim()
	s.run(0, 5*time.Second, 20*time.Millisecond, 20*time.Millisecond, time.Second, nil)
	before, _ := s.c.Time(s.v, s.rtp(s.v, 4*time.Second))
	s.report(s.v, 5*time.Second, 20*time.Millisecond, time.Hour) // garbage, once
	after, _ := s.c.Time(s.v, s.rtp(s.v, 4*time.Second))
	if !after.Equal(before) {
		t.Fatalf("a wild report moved the timeline by %v", after.Sub(before))
	}
	within(t, "after a wild report", s.skew(4900*time.Millisecond), 2*time.Millisecond)

	// The publisher's clock really jumps an hour ahead: every report from
	// now on says so.
	for c := 5 * time.Second; c < 10*time.Second; c += time.Second {
		s.run(c, c+time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
		for _, tr := range []*Track{s.v, s.a} {
			s.report(tr, c+500*time.Millisecond, 20*time.Millisecond, time.Hour)
		}
	}
	tv, _ := s.c.Time(s.v, s.rtp(s.v, 9*time.Second))
	if d := tv.Sub(s.gw.Add(9 * time.Second)); d < 15*time.Millisecond || d > 30*time.Millisecond {
		t.Errorf("after the jump video at 9 s is placed %v after capture, want about 20 ms", d)
	}
	within(t, "after the publisher's clock jumped", s.skew(9*time.Second), 3*time.Millisecond)
}

// GStreamer's webrtcbin, when its pipeline runs late, sends Sender
// Reports whose RTP time runs twice as fast as its packets'. They are
// refused after the first; the tracks stay placed by it, in sync, and
// never jump.
func TestClockReportsAtTheWrongRate(t *testing.T) {
	s := newClockSim()
	fast := func(tr *Track, c time.Duration) {
		rtp := s.base[tr] + uint32(int64((2*c-time.Second).Seconds()*float64(tr.ClockRate)))
		s.c.senderReport(tr, s.epoch.Add(c), rtp, s.gw.Add(c+20*time.Millisecond))
	}
	for c := time.Duration(0); c < 20*time.Second; c += time.Second {
		s.run(c, c+time.Second, 20*time.Millisecond, 30*time.Millisecond, 0, nil)
		fast(s.v, c+time.Second)
		fast(s.a, c+time.Second)
		tv, _ := s.c.Time(s.v, s.rtp(s.v, c+900*time.Millisecond))
		if d := tv.Sub(s.gw.Add(c + 900*time.Millisecond)); d < -100*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("at %v video is placed %v from its capture", c, d)
		}
		within(t, "with reports at twice the rate", s.skew(c+900*time.Millisecond), 15*time.Millisecond)
	}
}

// RTP timestamps that jump (the publisher restarted its RTP clock) are a
// discontinuity, not an hour of delay.
func TestClockRTPJumpWithoutReport(t *testing.T) {
	s := newClockSim()
	s.run(0, 6*time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	s.base[s.v] += 90000 * 3600
	s.run(6*time.Second, 8*time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	tv, _ := s.c.Time(s.v, s.rtp(s.v, 7*time.Second))
	if d := tv.Sub(s.gw.Add(7 * time.Second)); d < 0 || d > 100*time.Millisecond {
		t.Errorf("video after an RTP jump placed %v after capture", d)
	}
}

// observe runs for every packet of every stream: no allocation.
func TestClockObserveDoesNotAllocate(t *testing.T) {
	s := newClockSim()
	s.run(0, time.Second, 20*time.Millisecond, 20*time.Millisecond, time.Second, nil)
	at := s.gw.Add(time.Second)
	if n := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Millisecond)
		s.c.observe(s.v, 1234, at)
	}); n != 0 {
		t.Errorf("observe allocates %v times per packet", n)
	}
}

// A sender that stamps its reports when it sends them (pion's report
// interceptor, behind a pacer) makes video's reports late by up to the
// pacing delay: the least over a window is the capture clock's, so the
// tracks stay in line and do not wander from report to report.
func TestClockSendTimeReports(t *testing.T) {
	s := newClockSim()
	rng := rand.New(rand.NewPCG(3, 4))
	var worst time.Duration
	for c := time.Duration(0); c < 60*time.Second; c += time.Second {
		s.run(c, c+time.Second, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
		s.report(s.v, c+500*time.Millisecond, 20*time.Millisecond, time.Duration(rng.Int64N(int64(25*time.Millisecond))))
		s.report(s.a, c+500*time.Millisecond, 20*time.Millisecond, time.Duration(rng.Int64N(int64(2*time.Millisecond))))
		if c > 10*time.Second {
			k := s.skew(c + 900*time.Millisecond)
			worst = max(worst, k, -k)
		}
	}
	if worst > 10*time.Millisecond {
		t.Errorf("audio wanders up to %v from video with send-time reports", worst)
	}
}

// GStreamer 1.22's webrtcbin stamps a Sender Report's RTP time as its
// latest packet's plus the pipeline's whole running time (its source's
// last running time is unset), so even its first report is ahead of the
// packets by as long as the pipeline has run: a second and a half when
// the WHIP exchange took that long. Such a report does not map the
// packets; placed by it, audio and video land a second apart. They are
// refused, and the tracks placed by their arrival.
func TestClockReportsAheadOfThePackets(t *testing.T) {
	for _, lead := range []time.Duration{1500 * time.Millisecond, 700 * time.Millisecond, 3 * time.Second} {
		s := newClockSim()
		gst := func(tr *Track, c time.Duration) {
			rtp := s.rtp(tr, c) + uint32(int64((c+lead).Seconds()*float64(tr.ClockRate)))
			s.c.senderReport(tr, s.epoch.Add(c), rtp, s.gw.Add(c+20*time.Millisecond))
		}
		for c := time.Duration(0); c < 12*time.Second; c += time.Second {
			s.run(c, c+time.Second, 20*time.Millisecond, 30*time.Millisecond, 0, nil)
			// Audio's report first: the stream's delay comes from it.
			gst(s.a, c+time.Second)
			gst(s.v, c+time.Second)
			if c < 5*time.Second {
				continue // settling
			}
			tv, _ := s.c.Time(s.v, s.rtp(s.v, c+900*time.Millisecond))
			if d := tv.Sub(s.gw.Add(c + 900*time.Millisecond)); d < -100*time.Millisecond || d > 100*time.Millisecond {
				t.Fatalf("lead %v: at %v video is placed %v from its capture", lead, c, d)
			}
			within(t, "lead "+lead.String()+", at "+c.String(), s.skew(c+900*time.Millisecond), 15*time.Millisecond)
		}
	}
}

// Video that starts 1.2 s after audio (a publisher that sends video
// from its next keyframe, as OBS and the Go client do): the clock has
// settled on audio's report (past firstTracksWait) when video's first packet comes. Video waits
// for its own first report, as a stream's first tracks do, and is placed
// by it from its first frame; placed by its first arrivals instead, it
// started up to the path's jitter late (a recording of the meeting e2e
// test began 40-60 ms after its first keyframe was captured).
func TestClockTrackThatStartsLater(t *testing.T) {
	s := newClockSim()
	s.jitter = 60 * time.Millisecond
	audioOnly := func(tr *Track, c time.Duration) bool { return tr == s.v }
	for c := time.Duration(0); c < 1200*time.Millisecond; c += 20 * time.Millisecond {
		s.packet(s.a, c, 20*time.Millisecond)
		if c == 500*time.Millisecond {
			s.report(s.a, c, 20*time.Millisecond, 0)
		}
	}
	if !s.c.Settled() {
		t.Fatal("not settled on audio's report once the wait for the other tracks' first packets was over")
	}
	s.run(1200*time.Millisecond, 1500*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 0, audioOnly)
	if s.c.Settled() {
		t.Error("settled while video, which has just begun, waits for its first report")
	}
	s.report(s.v, 1500*time.Millisecond, 20*time.Millisecond, 0)
	s.report(s.a, 1500*time.Millisecond, 20*time.Millisecond, 0)
	s.run(1500*time.Millisecond, 1600*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	if !s.c.Settled() || s.c.Mode() != SyncSenderReports {
		t.Fatalf("settled %v, mode %q once video's report came", s.c.Settled(), s.c.Mode())
	}
	tv, _ := s.c.Time(s.v, s.rtp(s.v, 1200*time.Millisecond))
	if d := tv.Sub(s.gw.Add(1200 * time.Millisecond)); d < 15*time.Millisecond || d > 25*time.Millisecond {
		t.Errorf("video's first frame placed %v after its capture, want the least delay (20 ms)", d)
	}
	within(t, "video's first frame", s.skew(1200*time.Millisecond), 3*time.Millisecond)
}

// A stream with no Sender Report at all does not wait again for one of a
// track that began later.
func TestClockLateTrackWithoutReports(t *testing.T) {
	s := newClockSim()
	for c := time.Duration(0); c < 5*time.Second; c += 20 * time.Millisecond {
		s.packet(s.a, c, 20*time.Millisecond)
	}
	s.run(5*time.Second, 5200*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 0, nil)
	if !s.c.Settled() || s.c.Mode() != SyncArrival {
		t.Errorf("settled %v, mode %q; want settled by arrival", s.c.Settled(), s.c.Mode())
	}
}

// Video comes 100 ms slower than audio (a pacer, a path). The first
// report is video's; had the stream's delay been estimated from video's
// packets alone, audio's quicker packets would lower it right after the
// clock settled, and every track would step back 100 ms: two frames of a
// recording on one instant, an RTSP reader's timestamps going back.
// Every track's packets before its first report count.
func TestClockSettlesOnEveryTracksDelay(t *testing.T) {
	s := newClockSim()
	var prev time.Time
	for c := time.Duration(0); c < 5*time.Second; c += 20 * time.Millisecond {
		if c%(40*time.Millisecond) == 0 {
			s.packet(s.v, c, 110*time.Millisecond)
		}
		s.packet(s.a, c, 10*time.Millisecond)
		if c == 500*time.Millisecond {
			s.report(s.v, c, 110*time.Millisecond, 0)
			s.report(s.a, c, 10*time.Millisecond, 0)
			if !s.c.Settled() {
				t.Fatal("not settled once every track had its report")
			}
		}
		if !s.c.Settled() {
			continue
		}
		// Placed as an output places it, when it comes.
		at, _ := s.c.Time(s.a, s.rtp(s.a, c))
		if !prev.IsZero() && at.Sub(prev) < 19*time.Millisecond {
			t.Fatalf("audio captured at %v placed %v after the frame before it, want 20 ms", c, at.Sub(prev))
		}
		prev = at
	}
	within(t, "video 100 ms slower", s.skew(4*time.Second), 2*time.Millisecond)
}

// GStreamer webrtcbin's start, as recorder/lipsync_test.go simulates it:
// 1.5 s of media captured before the connection was up goes out at once
// (video first), with each track's first Sender Report in the burst. The
// stream's delay estimate falls by a second within those 30 ms as the
// later-captured packets come. The clock settles only once it has stopped
// falling: a frame stamped the moment the clock settled, which an output
// that keeps up with the stream does, keeps its time (it came 768 ms too
// late, and the recording dropped the 0.8 s of video after it).
func TestClockSettlesAfterABurst(t *testing.T) {
	s := newClockSim()
	const up = 1500 * time.Millisecond
	delay := func(k MediaKind, c time.Duration) time.Duration {
		switch {
		case c >= up:
			return 15 * time.Millisecond
		case k == Audio:
			return up - c + 30*time.Millisecond + c/30
		}
		return up - c + c/50
	}
	type event struct {
		t      *Track
		c      time.Duration
		at     time.Duration // arrival, from capture 0
		report bool
	}
	// Reports first: one that comes with a packet goes ahead of it (the
	// audio report of 1.5 s, ahead of any audio packet).
	var events []event
	for c := 500 * time.Millisecond; c < 4*time.Second; c += time.Second {
		events = append(events, event{t: s.v, c: c, at: c + delay(Video, c), report: true},
			event{t: s.a, c: c, at: c + delay(Audio, c), report: true})
	}
	for c := time.Duration(0); c < 4*time.Second; c += 33 * time.Millisecond {
		events = append(events, event{t: s.v, c: c, at: c + delay(Video, c)})
	}
	for c := time.Duration(0); c < 4*time.Second; c += 20 * time.Millisecond {
		events = append(events, event{t: s.a, c: c, at: c + delay(Audio, c)})
	}
	slices.SortStableFunc(events, func(x, y event) int { return cmp.Compare(x.at, y.at) })
	var atSettle [2]time.Time
	for _, ev := range events {
		if ev.report {
			s.c.senderReport(ev.t, s.epoch.Add(ev.c), s.rtp(ev.t, ev.c), s.gw.Add(ev.at))
		} else {
			s.c.observe(ev.t, s.rtp(ev.t, ev.c), s.gw.Add(ev.at))
		}
		if atSettle[0].IsZero() && s.c.Settled() {
			atSettle[0], _ = s.c.Time(s.v, s.rtp(s.v, 0))
			atSettle[1], _ = s.c.Time(s.a, s.rtp(s.a, 0))
			t.Logf("settled at arrival +%v", ev.at)
		}
	}
	if atSettle[0].IsZero() {
		t.Fatal("never settled")
	}
	final := [2]time.Time{}
	final[0], _ = s.c.Time(s.v, s.rtp(s.v, 0))
	final[1], _ = s.c.Time(s.a, s.rtp(s.a, 0))
	for i, kind := range []string{"video", "audio"} {
		if d := atSettle[i].Sub(final[i]); d > 5*time.Millisecond || d < -5*time.Millisecond {
			t.Errorf("%s captured at 0: placed %v from its final place when the clock settled", kind, d)
		}
	}
	within(t, "burst, first frames", s.skew(0), 2*time.Millisecond)
}

// Chromium stamps audio made with WebAudio when its render thread hands
// it over, plus the rebuffering delay (crbug.com/1302080): its Sender
// Reports, stamped "now" and over in a millisecond, name capture times
// 100-170 ms after the packets came. Placed by them, the stream's least
// delay fell that far and took the video along (a meeting's Chromium
// flashes 148 ms early). The audio's reports are ignored and it is placed
// by arrival; the video keeps its place.
func TestClockReportsThatNameCaptureAfterArrival(t *testing.T) {
	s := newClockSim()
	rng := rand.New(rand.NewPCG(5, 6))
	for c := time.Duration(0); c < 12*time.Second; c += time.Second {
		s.run(c, c+time.Second, 20*time.Millisecond, 37*time.Millisecond, 0, nil)
		at := c + time.Second
		s.report(s.v, at, time.Millisecond, 0)
		ahead := 140*time.Millisecond + time.Duration(rng.Int64N(int64(70*time.Millisecond)))
		s.c.senderReport(s.a, s.epoch.Add(at), s.rtp(s.a, at-ahead), s.gw.Add(at+time.Millisecond))
	}
	if m := s.c.Mode(); m != SyncMixed {
		t.Errorf("mode %q, want %q (audio by arrival)", m, SyncMixed)
	}
	for _, c := range []time.Duration{2 * time.Second, 11 * time.Second} {
		tv, _ := s.c.Time(s.v, s.rtp(s.v, c))
		if d := tv.Sub(s.gw.Add(c)); d < 17*time.Millisecond || d > 23*time.Millisecond {
			t.Errorf("video captured at %v placed %v after it, want its least delay, 20 ms", c, d)
		}
		// By arrival, audio lies as late as it was sent: 17 ms after
		// the video of the same instant.
		if k := s.skew(c); k < 12*time.Millisecond || k > 22*time.Millisecond {
			t.Errorf("audio captured at %v placed %v from video, want +17 ms", c, k)
		}
	}
}

// Reports and packets over a path with 60 ms of jitter, from a sender
// that sends its audio the moment it is captured: the reports' least
// delay and the packets' differ by the jitter's luck only, and the
// reports are kept.
func TestClockJitterKeepsHonestReports(t *testing.T) {
	s := newClockSim()
	s.jitter = 60 * time.Millisecond
	rng := rand.New(rand.NewPCG(7, 8))
	for c := time.Duration(0); c < 30*time.Second; c += time.Second {
		s.run(c, c+time.Second, 15*time.Millisecond, 0, 0, nil)
		for _, tr := range []*Track{s.v, s.a} {
			s.report(tr, c+time.Second, time.Duration(rng.Int64N(int64(60*time.Millisecond))), 0)
		}
	}
	if m := s.c.Mode(); m != SyncSenderReports {
		t.Errorf("mode %q, want %q", m, SyncSenderReports)
	}
	within(t, "jittered path", s.skew(29*time.Second), 5*time.Millisecond)
}
