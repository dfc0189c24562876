package hubtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// SimOptions describe a simulated publisher of testdata/flashbeep.*: its
// capture clock, when its packets and RTCP Sender Reports reach the
// gateway, and its RTP clocks. Simulate runs as fast as the stream's
// subscribers take packets, so minutes of media take seconds.
type SimOptions struct {
	// Duration of media to send (the fixture loops).
	Duration time.Duration
	// Start is the gateway time of capture 0 (default: now).
	Start time.Time
	// Delay is how long after its capture a packet of kind reaches the
	// gateway (default 20 ms); a burst start is a delay that brings early
	// packets all to the same moment.
	Delay func(kind live.MediaKind, c time.Duration) time.Duration
	// AudioDrift makes the audio RTP clock run fast by this fraction
	// (100 ppm: 1e-4); the Sender Reports say so.
	AudioDrift float64
	// SRInterval is how often each track sends a Sender Report (0: never).
	SRInterval time.Duration
	// SR, if set, sees each report (the nth of its track): it may drop it
	// or move its NTP time.
	SR func(kind live.MediaKind, n int) (send bool, ntpOffset time.Duration)
}

// simEvent is one packet or report reaching the gateway.
type simEvent struct {
	at     time.Time
	track  *live.Track
	raw    []byte
	report bool
	ntp    time.Time
	rtp    uint32
}

// Simulate publishes name on hub as opts describe, then closes the stream.
func Simulate(hub *live.Hub, name string, opts SimOptions) (*live.Stream, error) {
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.Delay == nil {
		opts.Delay = func(live.MediaKind, time.Duration) time.Duration { return 20 * time.Millisecond }
	}
	video, err := testmedia.ReadH264(filepath.Join(testmedia.Dir(), "flashbeep.h264"), 30)
	if err != nil {
		return nil, err
	}
	audio, err := testmedia.ReadOgg(filepath.Join(testmedia.Dir(), "flashbeep.ogg"))
	if err != nil {
		return nil, err
	}
	vt := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000,
		Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"}
	at := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
	s, err := hub.Publish(name, live.PublishSpec{Session: "sim-" + name, Protocol: "test", Tracks: []*live.Track{vt, at}})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	epoch := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // the publisher's NTP clock at capture 0
	var events []simEvent
	add := func(t *live.Track, samples []testmedia.Sample, p rtp.Packetizer, base uint32, drift float64) error {
		rtpAt := func(c time.Duration) uint32 {
			return base + uint32(int64(c.Seconds()*float64(t.ClockRate)*(1+drift)))
		}
		var c time.Duration
		for i := 0; c < opts.Duration; i = (i + 1) % len(samples) {
			smp := samples[i]
			for _, pkt := range p.Packetize(smp.Data, 0) {
				pkt.Timestamp = rtpAt(c)
				raw, err := pkt.Marshal()
				if err != nil {
					return err
				}
				events = append(events, simEvent{at: opts.Start.Add(c + opts.Delay(t.Kind, c)), track: t, raw: raw})
			}
			c += smp.Duration
		}
		if opts.SRInterval <= 0 {
			return nil
		}
		n := 0
		for c := opts.SRInterval / 2; c < opts.Duration; c += opts.SRInterval {
			send, off := true, time.Duration(0)
			if opts.SR != nil {
				send, off = opts.SR(t.Kind, n)
			}
			n++
			if send {
				events = append(events, simEvent{at: opts.Start.Add(c + opts.Delay(t.Kind, c)), track: t, report: true,
					ntp: epoch.Add(c + off), rtp: rtpAt(c)})
			}
		}
		return nil
	}
	if err := add(vt, video, rtp.NewPacketizer(1200, 102, rand.Uint32(), &codecs.H264Payloader{}, rtp.NewRandomSequencer(), 90000), rand.Uint32(), 0); err != nil {
		return nil, err
	}
	if err := add(at, audio, rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000), rand.Uint32(), opts.AudioDrift); err != nil {
		return nil, err
	}
	slices.SortStableFunc(events, func(a, b simEvent) int { return a.at.Compare(b.at) })
	written := uint64(0)
	for _, ev := range events {
		if ev.report {
			s.WriteSenderReport(ev.track, ev.ntp, ev.rtp, ev.at)
			continue
		}
		if err := s.WriteRTP(ev.track, ev.raw, ev.at); err != nil {
			return nil, fmt.Errorf("hubtest: %w", err)
		}
		written++
		if err := waitSubscribers(s, written); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// waitSubscribers keeps the simulation within a few hundred packets of the
// slowest subscriber, so no queue overflows (bounded: 30 s per wait).
func waitSubscribers(s *live.Stream, written uint64) error {
	deadline := time.Now().Add(30 * time.Second)
	for _, sub := range s.Subscriptions() {
		for written-(sub.Delivered()+sub.Dropped()) > 256 {
			if time.Now().After(deadline) {
				return errors.New("hubtest: a subscriber stopped taking packets")
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}
