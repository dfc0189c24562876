package whipclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testmedia"
)

// rtpMTU is the RTP packet size budget (header + payload) used for
// packetizing, leaving room for SRTP and extensions in a 1500-byte path.
const rtpMTU = 1200

// SendStats counts what one track sent and the feedback it got back.
type SendStats struct {
	Packets uint64
	Bytes   uint64 // RTP payload bytes
	Frames  uint64 // samples (video frames / Opus packets) sent
	PLIs    uint64
	FIRs    uint64
	NACKs   uint64 // NACK RTCP packets received
	// NACKedPackets is the number of sequence numbers asked for again.
	NACKedPackets uint64
}

func (a SendStats) add(b SendStats) SendStats {
	return SendStats{Packets: a.Packets + b.Packets, Bytes: a.Bytes + b.Bytes, Frames: a.Frames + b.Frames,
		PLIs: a.PLIs + b.PLIs, FIRs: a.FIRs + b.FIRs, NACKs: a.NACKs + b.NACKs, NACKedPackets: a.NACKedPackets + b.NACKedPackets}
}

// sendCounters is the atomic form of SendStats.
type sendCounters struct {
	packets, bytes, frames, plis, firs, nacks, nackedPackets atomic.Uint64
}

func (c *sendCounters) snapshot() SendStats {
	return SendStats{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(), Frames: c.frames.Load(),
		PLIs: c.plis.Load(), FIRs: c.firs.Load(), NACKs: c.nacks.Load(),
		NACKedPackets: c.nackedPackets.Load(),
	}
}

// trackSender paces the samples of one source onto one local track.
type trackSender struct {
	src        *mediaSource
	rid        string        // simulcast layer, "" otherwise
	onPLI      func()        // a keyframe request (PLI or FIR), if answered
	keyframe   atomic.Bool   // a single track's keyframe request to answer
	readDone   chan struct{} // closed when readRTCP returns
	track      *webrtc.TrackLocalStaticRTP
	rtpSender  *webrtc.RTPSender
	packetizer rtp.Packetizer
	onPacket   func(*rtp.Packet)
	counters   sendCounters
	// sendDelay sends each sample this much after its capture time.
	sendDelay time.Duration
	clock     captureClock
}

// newTrackSender makes the local track for src; rid names a simulcast
// encoding ("" for none).
func newTrackSender(src *mediaSource, onPacket func(*rtp.Packet), rid string) (*trackSender, error) {
	var opts []func(*webrtc.TrackLocalStaticRTP)
	if rid != "" {
		opts = append(opts, webrtc.WithRTPStreamID(rid))
	}
	track, err := webrtc.NewTrackLocalStaticRTP(src.codec.RTPCodecCapability, src.kind, "reel-whipclient", opts...)
	if err != nil {
		return nil, fmt.Errorf("creating %s track: %w", src.kind, err)
	}
	packetizer := rtp.NewPacketizer(rtpMTU, uint8(src.codec.PayloadType), randomSSRC(),
		src.payloader, rtp.NewRandomSequencer(), src.codec.ClockRate)
	return &trackSender{src: src, rid: rid, track: track, packetizer: packetizer, onPacket: onPacket, readDone: make(chan struct{}),
		clock: captureClock{rate: src.codec.ClockRate}}, nil
}

// schedule says when sending stops: at until (if set), or after one pass of
// the samples unless loop is set.
type schedule struct {
	start time.Time
	until time.Time
	loop  bool
	// from, if set, skips the samples captured before it (and, for
	// video, up to the next keyframe): the capture clock ran before
	// sending could begin.
	from time.Time
}

// firstSample is the sample sending begins with, and its capture time:
// the first captured at or after from (a keyframe, with keyframes), on a
// clock where sample 0 is captured at start and the samples loop.
func firstSample(samples []testmedia.Sample, start, from time.Time, keyframes bool) (int, time.Time) {
	next := start
	if !next.Before(from) || len(samples) == 0 {
		return 0, next
	}
	var loop time.Duration
	anyKey := false
	for _, smp := range samples {
		loop += smp.Duration
		anyKey = anyKey || smp.Keyframe
	}
	if loop <= 0 {
		return 0, next
	}
	keyframes = keyframes && anyKey
	// Whole passes of the files at once; an hour late costs nothing.
	next = next.Add(from.Sub(next) / loop * loop)
	for i := 0; ; i = (i + 1) % len(samples) {
		if !next.Before(from) && (!keyframes || samples[i].Keyframe) {
			return i, next
		}
		next = next.Add(samples[i].Duration)
	}
}

// run sends samples in real time: sample i is captured at start plus the
// sum of the durations before it, so timer jitter never accumulates, and
// goes out then (plus sendDelay; at once if that is past). It returns
// nil when the schedule is over or ctx ends, and an error if a write fails.
func (s *trackSender) run(ctx context.Context, sched schedule) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	samples := s.src.samples
	first, next := 0, sched.start
	if !sched.from.IsZero() {
		first, next = firstSample(samples, sched.start, sched.from, s.src.kind == "video")
	}
	for i := first; ; i++ {
		if i == len(samples) {
			if !sched.loop {
				return nil
			}
			i = 0
		}
		if !sched.until.IsZero() && !next.Before(sched.until) {
			return nil
		}
		if !sleepUntil(ctx, timer, next.Add(s.sendDelay)) {
			return nil
		}
		if s.keyframe.Swap(false) {
			i = nextKeyframe(samples, i)
		}
		if err := s.sendSample(samples[i], next); err != nil {
			return err
		}
		next = next.Add(samples[i].Duration)
	}
}

// nextKeyframe is the first sample from i on (wrapping) that is a
// keyframe; i itself if none is.
func nextKeyframe(samples []testmedia.Sample, i int) int {
	return nextFrom(len(samples), i, func(j int) bool { return samples[j].Keyframe })
}

// nextFrom is the first of n frames from i on (wrapping) for which ok
// holds; i itself if none does.
func nextFrom(n, i int, ok func(j int) bool) int {
	for k := range n {
		if j := (i + k) % n; ok(j) {
			return j
		}
	}
	return i
}

// sleepUntil waits until t; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	if d := time.Until(t); d > 0 {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			return false
		}
	}
	return ctx.Err() == nil
}

func (s *trackSender) sendSample(sample testmedia.Sample, captured time.Time) error {
	ticks := uint32(sample.Duration * time.Duration(s.src.codec.ClockRate) / time.Second)
	pkts := s.packetizer.Packetize(sample.Data, ticks)
	if len(pkts) > 0 {
		s.clock.captured(captured, pkts[0].Timestamp)
	}
	for _, pkt := range pkts {
		if s.onPacket != nil {
			s.onPacket(pkt)
		}
		if err := s.track.WriteRTP(pkt); err != nil {
			return fmt.Errorf("writing %s RTP packet: %w", s.src.kind, err)
		}
		s.counters.packets.Add(1)
		s.counters.bytes.Add(uint64(len(pkt.Payload)))
	}
	s.counters.frames.Add(1)
	return nil
}

// readRTCP drains RTCP from the RTPSender (needed for interceptors such as
// the NACK responder to run) and counts PLI, FIR and NACK until the sender
// is closed.
func (s *trackSender) readRTCP() {
	defer close(s.readDone)
	for {
		var pkts []rtcp.Packet
		var err error
		if s.rid != "" {
			pkts, _, err = s.rtpSender.ReadSimulcastRTCP(s.rid)
		} else {
			pkts, _, err = s.rtpSender.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			s.countRTCP(pkt)
		}
	}
}

func (s *trackSender) countRTCP(pkt rtcp.Packet) {
	switch p := pkt.(type) {
	case *rtcp.PictureLossIndication:
		s.counters.plis.Add(1)
		if s.onPLI != nil {
			s.onPLI()
		}
	case *rtcp.FullIntraRequest:
		s.counters.firs.Add(1)
		if s.onPLI != nil {
			s.onPLI()
		}
	case *rtcp.TransportLayerNack:
		s.counters.nacks.Add(1)
		for _, pair := range p.Nacks {
			s.counters.nackedPackets.Add(uint64(len(pair.PacketList())))
		}
	}
}

// randomSSRC picks a packetizer SSRC; TrackLocalStaticRTP rewrites it with
// the negotiated one, so it only needs to be non-zero.
func randomSSRC() uint32 {
	return rand.Uint32() | 1
}
