package live

import (
	"log/slog"
	"math"
	"sync"
	"time"
)

// Sync modes of a stream's clock, as the streams API shows them.
const (
	// SyncPending: the stream has just started and its clock waits for
	// Sender Reports (at most SettleTimeout).
	SyncPending = "pending"
	// SyncSenderReports: every track is placed by the publisher's RTCP
	// Sender Reports, which map its RTP clock to the publisher's NTP
	// clock; tracks are in sync whatever the order and delay of sending.
	SyncSenderReports = "sender-reports"
	// SyncArrival: no Sender Report came; each track is placed by its
	// smoothed arrival times (the least delay over a window).
	SyncArrival = "arrival"
	// SyncMixed: some tracks have Sender Reports, some do not.
	SyncMixed = "mixed"
)

const (
	// SettleTimeout is how long a stream's clock waits for every track's
	// first Sender Report before it places the tracks without one by
	// arrival. Encoders send their first report within one to four
	// seconds (libwebrtc's audio after ~2.5 s, RFC 3550's first interval
	// is 1.25 to 3.75 s).
	SettleTimeout = 4 * time.Second
	// firstTracksWait is how long the clock waits for every track's
	// first packet before it settles on the tracks that have sent.
	firstTracksWait = time.Second
	// minWindow is how far back the least delay is looked for; a path
	// whose delay grew is followed at slewRate once the smaller delays
	// have left the window.
	minWindow = 10 * time.Second
	// slewRate bounds how fast an estimate may grow, and how fast a
	// correction may fade (ns per second of media): 2 % of real time,
	// small enough that no player notices a track's speed change.
	slewRate = 20 * time.Millisecond
	// wildSR is how far a Sender Report may disagree with what the track
	// and the gateway's clock predict before it is taken for a jump of the
	// publisher's clock, to be confirmed by the next report.
	wildSR = time.Second
	// aheadSR is how far a Sender Report's RTP time may be from what the
	// track's latest packet predicts for the report's arrival (its RTP
	// time plus the time since it came) before the report is taken not
	// to map the packets at all: a sender's reports name its capture
	// clock's time, a few frames of encoding and pacing past its latest
	// packet, never seconds (GStreamer 1.22's webrtcbin adds its
	// pipeline's whole running time).
	aheadSR = 500 * time.Millisecond
	// capturedAfterSR is how much later than its packets came (less the
	// least delay of the Sender Reports themselves) a track's reports
	// may put their capture before they are taken not to map the
	// packets: no packet comes before it was captured, and a report
	// travels the packets' path. Chromium stamps audio made with WebAudio
	// (a MediaStreamAudioDestinationNode) when its render thread hands it
	// over, plus the rebuffering delay, not when it was made (its own
	// TODO, crbug.com/1302080): on a loaded machine its reports named
	// capture times 130-140 ms after its packets came, and, placed by
	// them, the stream's least delay fell that far and took the video
	// along. A path's jitter moves the two least delays apart by a few
	// ms.
	capturedAfterSR = 50 * time.Millisecond
	// maxStep is a jump of a track's RTP timestamps that is a
	// discontinuity (the publisher restarted its clock), not delay.
	maxStep = 5 * time.Second
	// maxBacklog is the most a packet may come later than the least delay
	// says and still be delay (the gateway behind its input), not new
	// RTP timestamps.
	maxBacklog = 30 * time.Second
	// settleDrop and settleQuiet: the clock does not settle (before
	// SettleTimeout) within settleQuiet of a packet that lowered the
	// stream's delay estimate by more than settleDrop. Media held back
	// and sent at once (webrtcbin sends the second captured before DTLS
	// was up in one burst) lowers it by a second within tens of ms, as
	// ever later-captured packets come; settled in the middle, the clock
	// stepped back by most of that, and a frame stamped then (by an
	// output that kept up with the stream) came that much too late.
	// Network jitter lowers it by tens of ms, once or twice.
	settleDrop  = 50 * time.Millisecond
	settleQuiet = 200 * time.Millisecond
)

// impossibleDelay reports whether a packet whose delay (arrival minus its
// place by the mapping) is d cannot be delayed by an estimate est of the
// least delay: it came more than maxStep before it could have been sent,
// or more than maxBacklog after.
func impossibleDelay(d, est int64) bool {
	return d < est-int64(maxStep) || d > est+int64(maxBacklog)
}

// Clock is a stream's one clock model: it maps every track's RTP
// timestamps to the gateway's clock, so that every output places a frame
// at the same time and the tracks line up. Each track's RTP clock is
// mapped to the publisher's NTP clock by its latest RTCP Sender Report
// (so clock drift between tracks is followed), and the publisher's clock
// to the gateway's by the least delay seen (arrival minus send time) over
// a window. Until a track has a Sender Report it is placed by its own
// smoothed arrival times; once the clock has settled, a track that
// changes mode moves to the new mapping gradually, never by a jump.
//
// WriteRTP feeds it every packet; the publisher's session feeds Sender
// Reports (Stream.WriteSenderReport). It is safe for concurrent use.
type Clock struct {
	log *slog.Logger

	mu      sync.Mutex
	tracks  []*trackClock
	start   time.Time // arrival of the first packet
	now     time.Time // the latest arrival seen
	settled bool
	mode    string
	// delay estimates gateway time minus publisher NTP time, in ns, from
	// packets of tracks that have a Sender Report. dropAt is the arrival
	// of the latest packet that lowered it by more than settleDrop
	// before the clock settled.
	delay  minEstimator
	dropAt time.Time
	// dropRef is the delay estimate at dropRefAt, the start of the
	// window over which noteDrop measures its fall.
	dropRef   int64
	dropRefAt time.Time
	// transit estimates a Sender Report's arrival minus its NTP time
	// (ns): the path's least delay plus the offset between the clocks,
	// which a packet mapped by its report cannot beat by more than the
	// path's jitter (see capturedAfterSR).
	transit minEstimator
	// peak is the most any packet since peakAt came later than its
	// track's least delay says (ns), held for lateHold: the gateway's
	// backlog, or the path's.
	peak   int64
	peakAt time.Time
}

// trackClock is one track's part of the model.
type trackClock struct {
	track *Track
	rate  float64 // RTP ticks per second

	// late: the track's first packet (at firstAt) came after the clock
	// had settled; it waits for its own first report as the first
	// tracks did (see Settled).
	late    bool
	firstAt time.Time

	// Unwrapped RTP timestamps, from the packets in arrival order.
	seen    bool
	lastRTP uint32
	lastExt int64
	lastAt  time.Time // arrival of the latest packet

	// arr estimates arrival minus RTP time (ns), for placing by arrival.
	arr minEstimator

	// sro estimates, from the Sender Reports, publisher NTP time (ns since
	// the Unix epoch, plus ntpShift: NTP jumps of the publisher's clock
	// that were absorbed) minus RTP time. A report can only be late for
	// the RTP time it names (a sender that stamps it when it sends, pion's
	// for one, adds its pacing), never early, so the least over a window
	// is the capture clock's; the window follows drift between the RTP
	// and NTP clocks.
	hasSR    bool
	sro      minEstimator
	ntpShift int64
	// A report that disagreed by more than wildSR, waiting for the next
	// one to confirm it.
	suspect      bool
	suspectShift int64
	// The NTP time (with ntpShift) and offset o of the latest report
	// taken into sro, and of the latest one refused for disagreeing with
	// it (see rateOK).
	srN, srO     int64
	refused      bool
	refN, refO   int64
	refusedCount int
	// aheadCount counts reports refused for being far from the packets.
	aheadCount int
	// capturedAfter: the track's reports named capture times after its
	// packets came (capturedAfterSR); they are ignored from then on and
	// the track is placed by arrival.
	capturedAfter bool

	// mode is how the track is placed ("sender-reports" or "arrival");
	// corr (ns) is added to its times and fades to 0 at slewRate, so a
	// change of mode after settling moves it gradually.
	mode    string
	corr    int64
	corrAt  time.Time
	arrival bool // placed by arrival (no usable Sender Report)
}

func newClock(tracks []*Track, log *slog.Logger) *Clock {
	c := &Clock{log: log, mode: SyncPending}
	var all []*Track
	for _, t := range tracks {
		// Each simulcast layer has its own RTP clock and Sender Reports;
		// the packets come as the layer's.
		all = append(all, t)
		all = append(all, t.Layers()...)
	}
	for _, t := range all {
		c.tracks = append(c.tracks, &trackClock{track: t, rate: t.RTPRate()})
	}
	return c
}

func (c *Clock) trackClock(t *Track) *trackClock {
	for _, tc := range c.tracks {
		if tc.track == t {
			return tc
		}
	}
	return nil
}

// ext unwraps rtp against the track's latest timestamp.
func (tc *trackClock) ext(rtp uint32) int64 { return tc.lastExt + int64(int32(rtp-tc.lastRTP)) }

// rtpNS is the media time of an unwrapped timestamp, in ns.
func (tc *trackClock) rtpNS(ext int64) int64 { return int64(math.Round(float64(ext) * 1e9 / tc.rate)) }

// ntpOf is the publisher NTP time (ns) of an unwrapped timestamp by the
// track's Sender Report.
func (tc *trackClock) ntpOf(ext int64) int64 {
	return tc.rtpNS(ext) + tc.sro.est
}

// observe takes one packet's timestamp and arrival; WriteRTP calls it for
// every packet, so it does not allocate.
func (c *Clock) observe(t *Track, rtp uint32, arrival time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.trackClock(t)
	if tc == nil {
		return
	}
	if c.start.IsZero() {
		c.start = arrival
	}
	if arrival.After(c.now) {
		c.now = arrival
	}
	// Discontinuities are told from delay by what is impossible for a
	// delay: a packet placed (by the track's least delay so far, or by
	// its Sender Report and the stream's delay) more than maxStep before
	// it came, or more than maxBacklog after, has new RTP timestamps (the
	// publisher restarted its RTP clock). Anything between is delay to
	// ride out: a gateway seconds behind its input (its CPU saturated
	// while a crowd joins) reads packets late by seconds, and its input
	// buffers, overflowing, leave seconds of media out between two
	// packets read. A packet more than maxStep later than the previous
	// one plus their RTP times' difference ends a pause in the sending
	// (an encoder whose RTP clock stopped with it): placed by arrival,
	// the track starts over there.
	paused := false
	if !tc.seen {
		tc.seen, tc.lastRTP, tc.lastExt = true, rtp, int64(rtp)
		tc.firstAt, tc.late = arrival, c.settled
	} else {
		ext := tc.ext(rtp)
		if !tc.lastAt.IsZero() {
			paused = arrival.Sub(tc.lastAt).Nanoseconds()-(tc.rtpNS(ext)-tc.rtpNS(tc.lastExt)) > int64(maxStep)
		}
		tc.lastExt, tc.lastRTP = ext, rtp
	}
	tc.lastAt = arrival
	at := arrival.UnixNano()
	x := at - tc.rtpNS(tc.lastExt)
	if paused || (tc.arr.valid && impossibleDelay(x, tc.arr.est)) {
		tc.arr = minEstimator{}
	}
	tc.arr.add(x, arrival)
	if late := x - tc.arr.est; late >= c.peak || arrival.Sub(c.peakAt) > lateHold {
		c.peak, c.peakAt = late, arrival
	}
	if tc.hasSR {
		d := at - tc.ntpOf(tc.lastExt)
		if c.delay.valid && impossibleDelay(d, c.delay.est) {
			// The Sender Reports no longer map the timestamps; wait for
			// the next one, placing the track by arrival until then.
			tc.hasSR, tc.sro = false, minEstimator{}
			c.logf(slog.LevelWarn, "a track's RTP timestamps jumped; placing it by arrival until its next Sender Report", tc)
		} else {
			before, valid := c.delay.est, c.delay.valid
			c.delay.add(d, arrival)
			if valid && !c.settled {
				c.noteDrop(before, arrival)
			}
		}
	}
	if !c.settled {
		c.maybeSettle()
	}
}

// noteDrop follows the fall of the stream's delay estimate while the clock
// settles: before is the estimate ahead of the packet that came at
// arrival. A fall of more than settleDrop within settleQuiet, in one step
// or many (a burst lowers it a frame's duration at a time), sets dropAt.
func (c *Clock) noteDrop(before int64, arrival time.Time) {
	if c.dropRefAt.IsZero() || arrival.Sub(c.dropRefAt) > settleQuiet {
		c.dropRef, c.dropRefAt = before, arrival
	}
	if c.dropRef-c.delay.est > int64(settleDrop) {
		c.dropAt = arrival
		c.dropRef, c.dropRefAt = c.delay.est, arrival
	}
}

const (
	// lateHold is how long the latest packets' worst lateness is held,
	// so that a reader every half second sees a backlog that was read in
	// a burst.
	lateHold = time.Second
	// lateStale is how long a stream's lateness is believed without a
	// new packet: a stream that stopped sending is not behind.
	lateStale = 5 * time.Second
)

// Lateness is how much later than its track's least delay (over the last
// minWindow) the stream's packets came: the most of the packets of about
// the last lateHold, if the latest came within lateStale of now. A path's
// jitter keeps it to tens of ms; a gateway behind its input, or a
// publisher's queue, makes it seconds.
func (c *Clock) Lateness(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() || now.Sub(c.now) > lateStale {
		return 0
	}
	return time.Duration(max(c.peak, 0))
}

// maybeSettle ends the wait for Sender Reports: every track that sends
// has one, or SettleTimeout has passed.
func (c *Clock) maybeSettle() {
	all, any := true, false
	for _, tc := range c.tracks {
		if !tc.seen {
			// A track that has not sent yet is waited for a little (the
			// first packets of the others may come a few ms ahead of
			// it), not for SettleTimeout: it may never send (a simulcast
			// layer held back, a muted camera). A simulcast track's
			// packets come as its layers'.
			if tc.track.Layers() == nil && c.now.Sub(c.start) < firstTracksWait {
				return
			}
			continue
		}
		any = true
		if !tc.hasSR && !tc.capturedAfter {
			all = false
		}
	}
	if !any || (!all && c.now.Sub(c.start) < SettleTimeout) {
		return
	}
	if !c.dropAt.IsZero() && c.now.Sub(c.dropAt) < settleQuiet && c.now.Sub(c.start) < SettleTimeout {
		return // the delay estimate is still falling (a burst)
	}
	c.settled = true
	for _, tc := range c.tracks {
		tc.arrival = !tc.hasSR
		tc.mode = modeOf(tc.arrival)
	}
	c.mode = c.overallMode()
	switch c.mode {
	case SyncSenderReports:
		c.log.Info("stream clock: tracks placed by RTCP Sender Reports", "sync", c.mode)
	case SyncArrival:
		c.log.Warn("stream clock: no RTCP Sender Report in time; tracks placed by smoothed arrival times",
			"sync", c.mode, "waited", SettleTimeout)
	default:
		c.log.Warn("stream clock: some tracks sent no RTCP Sender Report in time; those are placed by smoothed arrival times",
			"sync", c.mode, "waited", SettleTimeout)
	}
}

func modeOf(arrival bool) string {
	if arrival {
		return SyncArrival
	}
	return SyncSenderReports
}

func (c *Clock) overallMode() string {
	sr, arr := 0, 0
	for _, tc := range c.tracks {
		if !tc.seen {
			continue
		}
		if tc.arrival {
			arr++
		} else {
			sr++
		}
	}
	switch {
	case arr == 0:
		return SyncSenderReports
	case sr == 0:
		return SyncArrival
	}
	return SyncMixed
}

// senderReport takes one RTCP Sender Report of t: publisher NTP time ntp
// corresponds to RTP time rtp; it reached the gateway at arrival.
func (c *Clock) senderReport(t *Track, ntp time.Time, rtp uint32, arrival time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.trackClock(t)
	if tc == nil || tc.capturedAfter {
		return
	}
	if !tc.seen {
		// A report ahead of the track's first packet: its timestamp is
		// the reference the packets unwrap against.
		tc.seen, tc.lastRTP, tc.lastExt = true, rtp, int64(rtp)
		tc.firstAt, tc.late = arrival, c.settled
		if c.start.IsZero() {
			c.start = arrival
		}
	}
	ext := tc.ext(rtp)
	if !tc.lastAt.IsZero() {
		predicted := tc.rtpNS(tc.lastExt) + arrival.Sub(tc.lastAt).Nanoseconds()
		if off := tc.rtpNS(ext) - predicted; absDiff(off, 0) > int64(aheadSR) {
			if tc.aheadCount++; tc.aheadCount == 1 {
				c.logf(slog.LevelWarn, "ignored an RTCP Sender Report whose RTP time is far from the track's packets; ignoring such reports", tc,
					"off", time.Duration(off).Round(time.Millisecond))
			}
			return
		}
	}
	n := ntp.UnixNano()
	shift := tc.ntpShift
	// A jump of the publisher's NTP clock is a report that disagrees by
	// more than wildSR both with when it came (by the stream's delay) and
	// with the track: its own mapping so far, or, for its first report,
	// its packets placed by their least delay. Either alone is not a
	// jump: a gateway seconds behind its input reads reports as late as
	// the packets, and an encoder whose RTP clock paused or restarted
	// disagrees with its mapping while its NTP clock is right (the new
	// mapping is then taken below). Expectations are of the NTP time
	// plus the shift already absorbed.
	suspect := false
	var expected int64
	if c.delay.valid {
		byArrival := arrival.UnixNano() - c.delay.est
		expected = byArrival
		switch {
		case tc.sro.valid:
			expected = tc.rtpNS(ext) + tc.sro.est
		case tc.arr.valid:
			expected = tc.rtpNS(ext) + tc.arr.est - c.delay.est
		}
		suspect = absDiff(n+shift, byArrival) > int64(wildSR) && absDiff(n+shift, expected) > int64(wildSR)
	}
	if suspect {
		off := n + shift - expected
		// The publisher's clock jumped (or the report is garbage):
		// believe it only when the next report agrees.
		newShift := expected - n
		if !tc.suspect || absDiff(newShift, tc.suspectShift) > int64(50*time.Millisecond) {
			tc.suspect, tc.suspectShift = true, newShift
			c.logf(slog.LevelWarn, "ignored an RTCP Sender Report whose NTP time disagrees with the stream's clock; waiting for the next", tc,
				"off", time.Duration(off).Round(time.Millisecond))
			return
		}
		shift = tc.suspectShift
		c.logf(slog.LevelWarn, "the publisher's NTP clock jumped; absorbed without a jump in the timeline", tc,
			"jump", time.Duration(-shift+tc.ntpShift).Round(time.Millisecond))
	}
	tc.suspect = false
	c.transit.add(arrival.UnixNano()-(n+shift), arrival)
	o := n + shift - tc.rtpNS(ext)
	if c.capturedAfterArrival(tc, o) {
		return
	}
	first := !tc.hasSR
	before, hadTime := c.timeLocked(tc, tc.lastExt)
	// A report far from the track's mapping is a restart of its RTP
	// clock when the packets agree with it (they restarted too).
	restart := tc.sro.valid && absDiff(o, tc.sro.est) > int64(maxStep) &&
		absDiff(tc.rtpNS(ext), tc.rtpNS(tc.lastExt)) <= int64(wildSR)
	if !restart && tc.hasSR && !rateOK(tc.srN, tc.srO, n+shift, o) {
		// The report's RTP time runs at another rate than the earlier
		// reports' (GStreamer's do, twice as fast, when its pipeline is
		// late): it does not map the packets. Two refused reports that
		// agree with each other are a new mapping.
		if !tc.refused || !rateOK(tc.refN, tc.refO, n+shift, o) {
			tc.refused, tc.refN, tc.refO = true, n+shift, o
			if tc.refusedCount++; tc.refusedCount == 1 {
				c.logf(slog.LevelWarn, "ignored an RTCP Sender Report whose RTP time disagrees with the track's earlier reports; ignoring such reports from now on", tc,
					"off", time.Duration(o-tc.srO).Round(time.Millisecond))
			}
			return
		}
		tc.sro = minEstimator{}
		defer c.fadeFrom(tc, before, hadTime)
	}
	tc.refused = false
	tc.srN, tc.srO = n+shift, o
	if restart {
		tc.sro = minEstimator{} // the RTP timestamps restarted
	}
	tc.sro.add(o, arrival)
	tc.hasSR, tc.ntpShift = true, shift
	if first && tc.arr.valid && (!c.delay.valid || !c.settled) {
		// A track's first report while the clock settles: its packets so
		// far go into the stream's delay, by their least delay mapped
		// through the report, as if it had come with the first of them.
		// Taken from the first reporting track alone, the estimate fell
		// as soon as the next track's quicker packets came, after the
		// clock had settled: every track stepped back that much (a
		// track's packets can be 100 ms quicker than another's), two
		// frames of a recording fell on one instant and an RTSP reader's
		// timestamps went back.
		c.delay.add(tc.arr.est+tc.rtpNS(ext)-tc.ntpOf(ext), arrival)
	}
	if first && c.settled {
		tc.arrival = false
		tc.mode = SyncSenderReports
		c.mode = c.overallMode()
		if c.waiting(tc) {
			// Nothing of the track was released yet: no fade.
			c.logf(slog.LevelInfo, "a track that began after the others is placed by its RTCP Sender Reports", tc, "sync", c.mode)
		} else {
			c.fadeFrom(tc, before, hadTime)
			c.logf(slog.LevelInfo, "a track's first RTCP Sender Report came after the clock settled; moving it to the Sender Report timeline gradually", tc, "sync", c.mode)
		}
	}
	if !c.settled {
		c.maybeSettle()
	}
}

// capturedAfterArrival reports whether the offset o of a report of tc
// (NTP minus RTP time), taken with the track's earlier reports, puts
// the capture of its packets later than they came by more than
// capturedAfterSR; if so, the track's reports are ignored from now on
// and it is placed by arrival (gradually, if the clock has settled).
func (c *Clock) capturedAfterArrival(tc *trackClock, o int64) bool {
	if !tc.arr.valid || !c.transit.valid {
		return false
	}
	if tc.sro.valid && absDiff(o, tc.sro.est) <= int64(maxStep) {
		o = min(o, tc.sro.est) // the reports' estimate, were this one taken
	}
	// The packets' least delay through the mapping, against the
	// reports' own.
	by := c.transit.est - (tc.arr.est - o)
	if by <= int64(capturedAfterSR) {
		return false
	}
	tc.capturedAfter = true
	c.logf(slog.LevelWarn, "ignored the RTCP Sender Reports of a track whose packets came before the capture times they name; placing it by arrival", tc,
		"by", time.Duration(by).Round(time.Millisecond))
	if tc.hasSR {
		before, hadTime := c.timeLocked(tc, tc.lastExt)
		tc.hasSR, tc.sro = false, minEstimator{}
		if c.settled {
			tc.arrival, tc.mode = true, SyncArrival
			c.mode = c.overallMode()
			c.fadeFrom(tc, before, hadTime)
		}
	}
	if !c.settled {
		c.maybeSettle()
	}
	return true
}

// rateOK reports whether a Sender Report (NTP time n, offset o of NTP
// minus RTP time, in ns) agrees with an earlier one (n0, o0): between two
// reports of one sender the offset changes only by the drift between its
// RTP and NTP clocks (parts per million) and by when each report was
// stamped (pacing, tens of ms). 100 ms plus 1 % of the time between them
// allows for both.
func rateOK(n0, o0, n, o int64) bool {
	return absDiff(o, o0) <= int64(100*time.Millisecond)+absDiff(n, n0)/100
}

// fadeFrom makes tc's times continue from before (its time of the latest
// packet under the old mapping) and fade to the new mapping at slewRate.
func (c *Clock) fadeFrom(tc *trackClock, before time.Time, ok bool) {
	if !ok {
		return
	}
	tc.corr = 0
	after, _ := c.timeLocked(tc, tc.lastExt)
	tc.corr = before.Sub(after).Nanoseconds()
	tc.corrAt = c.now
}

// Time is where the frame or packet of t with RTP timestamp rtp lies on
// the gateway's clock. ok is false before the track's first packet.
func (c *Clock) Time(t *Track, rtp uint32) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.trackClock(t)
	if tc == nil || !tc.seen {
		return time.Time{}, false
	}
	return c.timeLocked(tc, tc.ext(rtp))
}

// Latest is t's latest RTP timestamp, its time on the clock and when it
// arrived: a Sender Report for an output that has not forwarded a packet
// yet is extrapolated from it. ok is false until the track can be placed.
func (c *Clock) Latest(t *Track) (rtp uint32, at, arrival time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tc := c.trackClock(t)
	if tc == nil || !tc.seen {
		return 0, time.Time{}, time.Time{}, false
	}
	at, ok = c.timeLocked(tc, tc.lastExt)
	return tc.lastRTP, at, tc.lastAt, ok
}

func (c *Clock) timeLocked(tc *trackClock, ext int64) (time.Time, bool) {
	var ns int64
	switch {
	case tc.hasSR && c.delay.valid && (!c.settled || !tc.arrival):
		ns = tc.ntpOf(ext) + c.delay.est
	case tc.arr.valid:
		ns = tc.rtpNS(ext) + tc.arr.est
	default:
		return time.Time{}, false
	}
	if tc.corr != 0 {
		fade := int64(float64(c.now.Sub(tc.corrAt)) * float64(slewRate) / float64(time.Second))
		switch {
		case tc.corr > 0:
			tc.corr = max(tc.corr-fade, 0)
		default:
			tc.corr = min(tc.corr+fade, 0)
		}
		tc.corrAt = c.now
		ns += tc.corr
	}
	return time.Unix(0, ns), true
}

// Settled reports whether the clock has stopped waiting for Sender
// Reports, also for a track that began later than the others: outputs
// that write files hold their frames until it has, so the timeline never
// jumps in what they wrote.
func (c *Clock) Settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.settled {
		return false
	}
	for _, tc := range c.tracks {
		if c.waiting(tc) {
			return false
		}
	}
	return true
}

// waiting reports whether tc began after the clock settled and still
// waits for its first Sender Report (at most SettleTimeout from its
// first packet), in a stream whose other tracks have them: until then
// the clock is not settled again, so that no output writes the track by
// arrival only to move it a moment later.
func (c *Clock) waiting(tc *trackClock) bool {
	return tc.late && !tc.hasSR && !tc.capturedAfter && c.delay.valid && c.now.Sub(tc.firstAt) < SettleTimeout
}

// Mode is how the stream's tracks are placed: SyncPending,
// SyncSenderReports, SyncArrival or SyncMixed.
func (c *Clock) Mode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

func (c *Clock) logf(level slog.Level, msg string, tc *trackClock, args ...any) {
	c.log.Log(nil, level, msg, append([]any{"kind", tc.track.Kind}, args...)...) //nolint:staticcheck // no context here
}

// minEstimator follows the least of a series of values (delays, in ns)
// over minWindow: it drops to a new least at once and rises, when the
// least leaves the window, by at most slewRate per second.
type minEstimator struct {
	valid    bool
	est      int64 // the estimate
	estAt    time.Time
	bucket   [10]int64 // least value per second of the window
	bucketAt [10]int64 // the second (Unix) each bucket holds
}

func (m *minEstimator) add(x int64, at time.Time) {
	sec := at.Unix()
	i := int(sec % int64(len(m.bucket)))
	if m.bucketAt[i] != sec || !m.valid {
		if !m.valid {
			for j := range m.bucketAt {
				m.bucketAt[j] = math.MinInt64
			}
		}
		m.bucketAt[i], m.bucket[i] = sec, x
	} else if x < m.bucket[i] {
		m.bucket[i] = x
	}
	if !m.valid || x < m.est {
		m.valid, m.est, m.estAt = true, x, at
		return
	}
	m.rise(at)
}

// rise moves the estimate toward the window's least, up by slewRate per
// second at most.
func (m *minEstimator) rise(at time.Time) {
	least := int64(math.MaxInt64)
	oldest := at.Unix() - int64(minWindow/time.Second)
	for i, s := range m.bucketAt {
		if s > oldest && m.bucket[i] < least {
			least = m.bucket[i]
		}
	}
	if least == math.MaxInt64 || least <= m.est {
		m.estAt = at
		return
	}
	step := int64(float64(at.Sub(m.estAt)) * float64(slewRate) / float64(time.Second))
	if step <= 0 {
		return
	}
	m.est = min(least, m.est+step)
	m.estAt = at
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}
