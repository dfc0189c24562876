package whep

import (
	"math"
	"sync"
	"time"

	"github.com/pion/rtcp"
)

// The bandwidth estimate of one viewer's path, from what the viewer tells
// us: transport-wide congestion control feedback (TWCC: which packets
// arrived and when), REMB (the viewer's own estimate) and receiver reports
// (fraction lost). It is a small delay- and loss-based controller in the
// manner of Google Congestion Control (draft-ietf-rmcat-gcc):
//
//   - queuing delay is the one-way delay of recent packets above the least
//     seen in the last seconds; loss is the share of packets reported lost;
//   - overuse (queuing delay growing past overuseDelay, or loss above
//     lossHigh) cuts the estimate to decrease × the rate the viewer
//     actually received;
//   - otherwise the estimate grows by increasePerSecond, but not past
//     what the path has been seen to carry (capFactor × received, plus
//     capMargin): more than that is only believed once a probe shows it;
//   - a probe (padding sent on top of the media for probeDuration, layers.go)
//     shows whether the path carries more: if it arrives without overuse,
//     the estimate becomes the rate received during the probe.
//
// Simulcast layer selection (layers.go) reads the estimate; it never
// paces or drops media itself.

const (
	sentRing          = 2048 // packets remembered for feedback, a power of two
	recvWindow        = 500 * time.Millisecond
	baseDelayWindow   = 10 * time.Second
	overuseDelay      = 60 * time.Millisecond
	lossHigh          = 0.08
	lossLow           = 0.02
	decrease          = 0.85
	increasePerSecond = 0.08
	capFactor         = 1.08
	capMargin         = 30_000
	decreaseHold      = 300 * time.Millisecond
	probeDuration     = 600 * time.Millisecond
	probeSettle       = 400 * time.Millisecond // feedback for the probe's last packets
	probeMinReports   = 10                     // packets of a probe reported received
	minEstimate       = 50_000
)

// DefaultStartBitrate is the estimate before any feedback: a new viewer
// starts on the best layer that fits it, then moves as feedback comes.
const DefaultStartBitrate = 1_000_000

type sentPacket struct {
	at   int64 // ns since estimator start
	size uint16
	seq  uint16
	ok   bool
}

type recvSample struct {
	arrival int64 // µs, the viewer's clock
	size    int
}

// estimator is one viewer's bandwidth estimate. onSent runs on the
// subscription's goroutine, the feedback methods on the RTCP reader's.
type estimator struct {
	mu    sync.Mutex
	start time.Time
	sent  [sentRing]sentPacket

	estimate float64 // bits/s
	recvRate float64 // bits/s delivered, over recvWindow
	loss     float64 // smoothed share lost
	queue    time.Duration
	recv     []recvSample // last recvWindow of arrivals
	// base one-way delay: the least per second over baseDelayWindow (µs).
	minDelay  [10]int64
	minSecond [10]int64
	lastAdj   time.Time
	lastCut   time.Time
	congested time.Time // last overuse or heavy loss

	// sendRate is measured on what we send (for loss-based control when
	// the viewer sends no TWCC).
	sendBytes  int
	sendStart  time.Time
	sendRate   float64
	twccSeen   bool
	remb       float64
	rembAt     time.Time
	probeFrom  time.Time // sending padding from..until
	probeUntil time.Time
	probeOK    bool // the probe's feedback so far shows no overuse
	probeRecv  []recvSample
}

func newEstimator(start float64) *estimator {
	e := &estimator{start: time.Now(), estimate: start, recv: make([]recvSample, 0, 512), probeRecv: make([]recvSample, 0, 512)}
	for i := range e.minDelay {
		e.minDelay[i] = math.MaxInt64
	}
	return e
}

// Estimate is the current estimate in bits/s.
func (e *estimator) Estimate() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.estimate
}

// Congested reports when the path last showed overuse or heavy loss.
func (e *estimator) lastCongestion() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.congested
}

// onSent records a packet sent with transport-wide sequence number seq.
func (e *estimator) onSent(seq uint16, size int, now time.Time) {
	e.mu.Lock()
	e.sent[seq%sentRing] = sentPacket{at: int64(now.Sub(e.start)), size: uint16(size), seq: seq, ok: true}
	e.countSent(size, now)
	e.mu.Unlock()
}

// countSent keeps the rate we send at, over windows of about a second.
func (e *estimator) countSent(size int, now time.Time) {
	if e.sendStart.IsZero() {
		e.sendStart = now
	}
	e.sendBytes += size
	if d := now.Sub(e.sendStart); d >= time.Second {
		e.sendRate = float64(e.sendBytes) * 8 / d.Seconds()
		e.sendBytes, e.sendStart = 0, now
	}
}

// onSentUntracked counts a packet sent without a transport-wide sequence
// number (the viewer negotiated no TWCC).
func (e *estimator) onSentUntracked(size int, now time.Time) {
	e.mu.Lock()
	e.countSent(size, now)
	e.mu.Unlock()
}

// startProbe marks a probe of d from now: the caller sends padding.
func (e *estimator) startProbe(now time.Time, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.probeFrom, e.probeUntil, e.probeOK = now, now.Add(d), true
	e.probeRecv = e.probeRecv[:0]
}

// probing reports whether a probe's padding is due now.
func (e *estimator) probing(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.probeUntil.IsZero() && now.Before(e.probeUntil)
}

// probeDone reports whether the last probe is over and its feedback in;
// ok says whether the path carried it.
func (e *estimator) probeDone(now time.Time) (done, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.probeUntil.IsZero() || now.Before(e.probeUntil.Add(probeSettle)) {
		return false, false
	}
	e.probeUntil = time.Time{}
	// The loss a failed probe caused was its padding's: it says nothing of
	// the media alone.
	ok = e.probeOK && len(e.probeRecv) >= probeMinReports
	if !ok {
		e.loss = 0
	}
	// A probe whose packets were not reported shows nothing.
	return true, ok
}

// onTWCC takes one transport-wide feedback packet.
func (e *estimator) onTWCC(fb *rtcp.TransportLayerCC, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.twccSeen = true
	arrival := int64(fb.ReferenceTime) * 64_000 // µs
	deltas := fb.RecvDeltas
	seq := fb.BaseSequenceNumber
	var lost, total int
	var delaySum, delayN int64
	inProbe := func(at int64) bool {
		if e.probeFrom.IsZero() {
			return false
		}
		t := e.start.Add(time.Duration(at))
		return !t.Before(e.probeFrom) && t.Before(e.probeUntil)
	}
	status := func(sym uint16) {
		s := e.sent[seq%sentRing]
		known := s.ok && s.seq == seq
		seq++
		if !known {
			if sym == rtcp.TypeTCCPacketReceivedSmallDelta || sym == rtcp.TypeTCCPacketReceivedLargeDelta {
				if len(deltas) > 0 {
					arrival += deltas[0].Delta
					deltas = deltas[1:]
				}
			}
			return
		}
		total++
		switch sym {
		case rtcp.TypeTCCPacketNotReceived:
			lost++
			if inProbe(s.at) {
				e.probeLost(s.at)
			}
			return
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) == 0 {
				return
			}
			arrival += deltas[0].Delta
			deltas = deltas[1:]
		default:
			return
		}
		d := arrival - s.at/1000 // one-way delay plus an unknown offset, µs
		e.noteDelay(d, now)
		delaySum += d
		delayN++
		e.recv = append(e.recv, recvSample{arrival: arrival, size: int(s.size)})
		if inProbe(s.at) {
			e.probeRecv = append(e.probeRecv, recvSample{arrival: arrival, size: int(s.size)})
		}
	}
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range c.RunLength {
				status(c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range c.SymbolList {
				status(sym)
			}
		}
	}
	if total == 0 {
		return
	}
	e.recvRate = windowRate(&e.recv, recvWindow)
	frac := float64(lost) / float64(total)
	e.loss = 0.7*e.loss + 0.3*frac
	if delayN > 0 {
		e.queue = time.Duration(delaySum/delayN-e.baseDelay()) * time.Microsecond
	}
	e.adjust(now)
}

// probeLost marks the probe as failed by loss.
func (e *estimator) probeLost(int64) { e.probeOK = false }

// noteDelay keeps the least one-way delay per second of the viewer's clock.
func (e *estimator) noteDelay(d int64, now time.Time) {
	sec := int64(now.Sub(e.start) / time.Second)
	i := sec % int64(len(e.minDelay))
	if e.minSecond[i] != sec {
		e.minSecond[i], e.minDelay[i] = sec, d
	} else if d < e.minDelay[i] {
		e.minDelay[i] = d
	}
}

func (e *estimator) baseDelay() int64 {
	b := int64(math.MaxInt64)
	for _, d := range e.minDelay {
		b = min(b, d)
	}
	return b
}

// windowRate is the rate of the samples within w of the last arrival; it
// drops older ones.
func windowRate(samples *[]recvSample, w time.Duration) float64 {
	s := *samples
	if len(s) == 0 {
		return 0
	}
	last := s[len(s)-1].arrival
	i := 0
	for i < len(s) && last-s[i].arrival > w.Microseconds() {
		i++
	}
	s = append(s[:0], s[i:]...)
	*samples = s
	span := s[len(s)-1].arrival - s[0].arrival
	if len(s) < 3 || span < 50_000 {
		return 0
	}
	bytes := 0
	for _, r := range s[1:] { // the first arrival opens the span
		bytes += r.size
	}
	return float64(bytes) * 8 / (float64(span) / 1e6)
}

// adjust moves the estimate after new feedback (with e.mu held).
func (e *estimator) adjust(now time.Time) {
	dt := now.Sub(e.lastAdj)
	if e.lastAdj.IsZero() || dt > time.Second {
		dt = 100 * time.Millisecond
	}
	e.lastAdj = now
	overuse := e.queue > overuseDelay || e.loss > lossHigh
	probing := !e.probeUntil.IsZero()
	switch {
	case overuse && probing:
		// The probe's own padding filled the path: the probe failed, and
		// the media alone, which went through before it, still fits.
		e.probeOK = false
		e.congested = now
	case overuse:
		e.congested = now
		if now.Sub(e.lastCut) >= decreaseHold && e.recvRate > 0 {
			e.lastCut = now
			e.estimate = math.Min(e.estimate, decrease*e.recvRate)
		}
	case e.loss < lossLow && e.queue < overuseDelay/2:
		grown := e.estimate * (1 + increasePerSecond*dt.Seconds())
		if ceiling := capFactor*e.recvRate + capMargin; e.recvRate > 0 && grown > ceiling {
			grown = math.Max(e.estimate, ceiling)
		}
		e.estimate = grown
	}
	if probing && e.probeOK && now.After(e.probeUntil) && len(e.probeRecv) >= probeMinReports {
		if r := windowRate(&e.probeRecv, probeDuration+probeSettle); r > e.estimate {
			e.estimate = r
		}
	}
	e.bound(now)
}

// bound keeps the estimate under a recent REMB and above a floor.
func (e *estimator) bound(now time.Time) {
	if e.remb > 0 && now.Sub(e.rembAt) < 2*time.Second {
		e.estimate = math.Min(e.estimate, e.remb)
	}
	e.estimate = math.Max(e.estimate, minEstimate)
}

// onREMB takes the viewer's own estimate.
func (e *estimator) onREMB(bps float64, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remb, e.rembAt = bps, now
	if !e.twccSeen {
		// Without TWCC the viewer's estimate is the best there is.
		e.estimate = bps
	}
	e.bound(now)
}

// onLoss takes a receiver report's fraction lost (0-255), for viewers
// that send no TWCC: loss-based control on the rate we send.
func (e *estimator) onLoss(fraction uint8, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.twccSeen {
		return
	}
	loss := float64(fraction) / 256
	switch {
	case loss > lossHigh:
		e.congested = now
		if e.sendRate > 0 {
			e.estimate = math.Min(e.estimate, e.sendRate*(1-loss/2))
		}
	case loss < lossLow:
		e.estimate *= 1.05
		if e.sendRate > 0 {
			e.estimate = math.Min(e.estimate, capFactor*e.sendRate+capMargin)
		}
	}
	e.bound(now)
}
