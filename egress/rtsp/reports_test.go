package rtsp

import (
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// rtcpEvent is a packet a reader got: an RTP packet or a Sender Report.
type rtcpEvent struct {
	media string
	sr    *rtcp.SenderReport // nil for an RTP packet
	at    time.Time
}

// recordPlay plays rawURL over TCP and records, in order, every RTP
// packet's media and every Sender Report.
func recordPlay(t *testing.T, rawURL string) func() []rtcpEvent {
	t.Helper()
	c, _, err := setUp(t, rawURL, gortsplib.TransportTCP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var mu sync.Mutex
	var events []rtcpEvent
	c.OnPacketRTPAny(func(m *description.Media, _ format.Format, _ *rtp.Packet) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, rtcpEvent{media: string(m.Type), at: time.Now()})
	})
	c.OnPacketRTCPAny(func(m *description.Media, pkt rtcp.Packet) {
		if sr, ok := pkt.(*rtcp.SenderReport); ok {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, rtcpEvent{media: string(m.Type), sr: sr, at: time.Now()})
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	return func() []rtcpEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]rtcpEvent(nil), events...)
	}
}

// TestSenderReports: a stream's first reader and a reader that joins it
// running each get a Sender Report per track ahead of the track's first
// packet, and one every reportEvery after. Every report of a track maps
// its RTP time to the same NTP time (the stream clock's mapping, which
// gortsplib v4.16.2's own reports broke by writing nanoseconds for the
// fraction of a second), and that NTP time is the gateway's clock.
func TestSenderReports(t *testing.T) {
	defer func(d time.Duration) { reportEvery = d }(reportEvery)
	reportEvery = 300 * time.Millisecond
	hub := live.NewHub(live.Reject)
	p, _ := publish(t, hub, "sr", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	s := startServer(t, hub, false)
	eventually(t, "the stream's clock settles", p.Stream.Clock().Settled)

	first := recordPlay(t, streamURL(s, "sr"))
	time.Sleep(time.Second)
	joined := recordPlay(t, streamURL(s, "sr"))
	time.Sleep(2500 * time.Millisecond)

	rates := map[string]float64{"video": 90000, "audio": 48000}
	for name, events := range map[string][]rtcpEvent{"first reader": first(), "joining reader": joined()} {
		for media, rate := range rates {
			var reports []rtcpEvent
			packets, before := 0, 0 // before: reports ahead of the first packet
			for _, ev := range events {
				if ev.media != media {
					continue
				}
				if ev.sr == nil {
					if len(reports) == 0 && packets == 0 {
						t.Errorf("%s, %s: the first packet came before any Sender Report", name, media)
					}
					if packets == 0 {
						before = len(reports)
					}
					packets++
					continue
				}
				reports = append(reports, ev)
			}
			if packets == 0 || len(reports) < 6 {
				t.Errorf("%s, %s: %d packets and %d Sender Reports in 2.5 s, want packets and one every %v", name, media, packets, len(reports), reportEvery)
				continue
			}
			// The mapping is the one of the last report ahead of the
			// first packet: a first reader's report at PLAY may come
			// before the subscription forwarded anything, and the clock
			// refines its mapping by a millisecond or two until then.
			sr0 := reports[max(before-1, 0)].sr
			ntp0 := live.NTPTime(sr0.NTPTime)
			for i, ev := range reports {
				ntp := live.NTPTime(ev.sr.NTPTime)
				// The same mapping: the NTP time the first report gives
				// this report's RTP time.
				want := ntp0.Add(time.Duration(float64(int32(ev.sr.RTPTime-sr0.RTPTime)) / rate * float64(time.Second)))
				tolerance := time.Millisecond
				if i < before-1 {
					tolerance = 5 * time.Millisecond
				}
				if d := ntp.Sub(want); d > tolerance || d < -tolerance {
					t.Errorf("%s, %s: report %d maps RTP %d to %v, %v from the first report's mapping", name, media, i, ev.sr.RTPTime, ntp.Format("15:04:05.000"), d)
				}
				// The gateway's clock: the stream's clock is fed by the
				// arrival times of packets sent in real time.
				if d := ev.at.Sub(ntp); d < -50*time.Millisecond || d > 250*time.Millisecond {
					t.Errorf("%s, %s: report %d says %v, received at %v", name, media, i, ntp.Format("15:04:05.000"), ev.at.Format("15:04:05.000"))
				}
				if i >= before && (ev.sr.PacketCount == 0 || ev.sr.OctetCount == 0) {
					t.Errorf("%s, %s: report %d counts %d packets, %d octets", name, media, i, ev.sr.PacketCount, ev.sr.OctetCount)
				}
			}
		}
	}
}
