package whipclient

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"
)

// Timing is how a publisher's sending relates to its capture, for tests of
// lip sync: real encoders differ in exactly these ways.
type Timing struct {
	// StartBeforeConnect starts the capture when Publish is called, as
	// GStreamer's webrtcbin does by default: media encoded before the
	// connection is up is held and sent in one burst once it is. By
	// default (OBS), capture starts when the connection is up.
	StartBeforeConnect bool
	// BurstAfter, with StartBeforeConnect, holds sending until this long
	// after the capture started even if the connection is up sooner (a
	// slow DTLS handshake), so the first burst carries that much media.
	BurstAfter time.Duration
	// CaptureStart, if set, is when sample 0 of the files was captured:
	// they play on the wall clock from then, looped, so publishers given
	// the same CaptureStart show the same picture at the same instant
	// (the flashes of a meeting test). Sending begins once the
	// connection is up, with the sample due then (for video, the next
	// keyframe), and never before CaptureStart; Duration counts from
	// there. It overrides StartBeforeConnect.
	CaptureStart time.Time
	// AudioSendDelay sends every audio packet this much after its capture
	// time (a congested or paced sender); RTP timestamps and Sender
	// Reports still say when it was captured.
	AudioSendDelay time.Duration
	// SenderReports says who writes RTCP Sender Reports: SRPion (the
	// default; pion's interceptor, which maps RTP to the time a packet was
	// sent), SRCapture (every SRInterval, mapping RTP to the capture clock
	// as encoders do), or SRNone (a publisher that sends none).
	SenderReports SRMode
	// SRInterval is the SRCapture period (default 1 s); the first report
	// goes out half an interval after the connection is up.
	SRInterval time.Duration
	// SRFilter, if set, sees each SRCapture report before it is sent (the
	// nth of its track, from 0): it may drop it or move its NTP time.
	SRFilter func(kind string, n int) (send bool, ntpOffset time.Duration)
}

// SRMode selects who writes a publisher's Sender Reports.
type SRMode int

// Sender Report modes.
const (
	SRPion SRMode = iota
	SRCapture
	SRNone
)

// newPublisherAPI builds the publisher's pion API: pion's defaults, or
// without its sender report interceptor when the reports are ours (or
// none).
func newPublisherAPI(m *webrtc.MediaEngine, se *webrtc.SettingEngine, mode SRMode) (*webrtc.API, error) {
	if mode == SRPion {
		return newAPI(m, se)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, fmt.Errorf("registering NACK: %w", err)
	}
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, fmt.Errorf("registering receiver reports: %w", err)
	}
	ir.Add(rr)
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(m, ir); err != nil {
		return nil, fmt.Errorf("registering TWCC: %w", err)
	}
	opts := []func(*webrtc.API){webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir)}
	if se != nil {
		opts = append(opts, webrtc.WithSettingEngine(*se))
	}
	return webrtc.NewAPI(opts...), nil
}

// captureClock maps a track's RTP timestamps to the capture clock: the
// latest sample captured and its RTP timestamp.
type captureClock struct {
	mu   sync.Mutex
	at   time.Time
	rtp  uint32
	rate uint32
	set  bool
}

func (c *captureClock) captured(at time.Time, rtp uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at, c.rtp, c.set = at, rtp, true
}

// rtpAt is the RTP timestamp the capture clock reads at t.
func (c *captureClock) rtpAt(t time.Time) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.set {
		return 0, false
	}
	return c.rtp + uint32(t.Sub(c.at).Seconds()*float64(c.rate)), true
}

// sendReports writes capture-clock Sender Reports for s until ctx ends.
func (p *Publisher) sendReports(ctx context.Context, s *trackSender, tm Timing) {
	every := tm.SRInterval
	if every <= 0 {
		every = time.Second
	}
	timer := time.NewTimer(every / 2)
	defer timer.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(every)
		now := time.Now()
		rtpTS, ok := s.clock.rtpAt(now)
		if !ok {
			continue
		}
		send, off := true, time.Duration(0)
		if tm.SRFilter != nil {
			send, off = tm.SRFilter(s.src.kind, n)
		}
		if !send {
			continue
		}
		ssrc := uint32(s.rtpSender.GetParameters().Encodings[0].SSRC)
		st := s.counters.snapshot()
		_ = p.PC.WriteRTCP([]rtcp.Packet{&rtcp.SenderReport{
			SSRC: ssrc, NTPTime: ntpTime(now.Add(off)), RTPTime: rtpTS,
			PacketCount: uint32(st.Packets), OctetCount: uint32(st.Bytes),
		}})
	}
}

// ntpTime is t as a 64-bit NTP timestamp (RFC 3550).
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix() + unixToNTP)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}
