package whep

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// senderReport is a Sender Report a viewer got, and when.
type senderReport struct {
	sr *rtcp.SenderReport
	at time.Time
}

// reportViewer is a pion viewer that keeps every Sender Report per kind,
// and the SSRC each kind's media came with.
type reportViewer struct {
	*viewer
	mu      sync.Mutex
	reports map[webrtc.RTPCodecType][]senderReport
	ssrc    map[webrtc.RTPCodecType]uint32
}

func newReportViewer(t *testing.T) (*reportViewer, string) {
	v, offer := newViewer(t)
	rv := &reportViewer{viewer: v, reports: map[webrtc.RTPCodecType][]senderReport{}, ssrc: map[webrtc.RTPCodecType]uint32{}}
	for _, tr := range v.pc.GetTransceivers() {
		kind, receiver := tr.Kind(), tr.Receiver()
		go func() {
			for {
				pkts, _, err := receiver.ReadRTCP()
				if err != nil {
					return
				}
				now := time.Now()
				rv.mu.Lock()
				if track := receiver.Track(); track != nil {
					rv.ssrc[kind] = uint32(track.SSRC())
				}
				for _, p := range pkts {
					if sr, ok := p.(*rtcp.SenderReport); ok {
						rv.reports[kind] = append(rv.reports[kind], senderReport{sr: sr, at: now})
					}
				}
				rv.mu.Unlock()
			}
		}()
	}
	return rv, offer
}

func (rv *reportViewer) got(kind webrtc.RTPCodecType) ([]senderReport, uint32) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]senderReport(nil), rv.reports[kind]...), rv.ssrc[kind]
}

// TestSenderReportsFromTheClock: a viewer's Sender Reports map each
// track's RTP time to where the stream's clock places it, which is its
// capture as the publisher reported it, so a player lines the tracks up
// as they were captured. The publisher here sends its video 150 ms after
// capture and its audio at once; reports that go by when packets are sent
// (pion's interceptor, which viewers ran before) put the video 150 ms late.
// The first reports come a quarter of the period apart.
func TestSenderReportsFromTheClock(t *testing.T) {
	defer func(d time.Duration) { reportEvery = d }(reportEvery)
	reportEvery = 300 * time.Millisecond
	const videoDelay = 150 * time.Millisecond
	hub := live.NewHub(live.Reject)
	srv := startServer(t, hub, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true, VideoDelay: videoDelay})
	if err != nil {
		t.Fatal(err)
	}
	clock := pub.Stream.Clock()
	eventually(t, "the stream's clock settles", clock.Settled)
	v, offer := newReportViewer(t)
	play(t, ctx, srv, v.pc, "cam", offer, PlayOptions{})
	eventually(t, "five Sender Reports per track", func() bool {
		video, _ := v.got(webrtc.RTPCodecTypeVideo)
		audio, _ := v.got(webrtc.RTPCodecTypeAudio)
		return len(video) >= 5 && len(audio) >= 5
	})
	for kind, track := range map[webrtc.RTPCodecType]*live.Track{
		webrtc.RTPCodecTypeVideo: pub.Stream.Track(live.Video),
		webrtc.RTPCodecTypeAudio: pub.Stream.Track(live.Audio),
	} {
		reports, ssrc := v.got(kind)
		var lastPackets uint32
		for i, r := range reports {
			if r.sr.SSRC != ssrc {
				t.Errorf("%s report %d is for SSRC %d, the media came with %d", kind, i, r.sr.SSRC, ssrc)
			}
			// The stream's own RTP times reach a viewer of a stream
			// without simulcast unchanged.
			want, ok := clock.Time(track, r.sr.RTPTime)
			if !ok {
				t.Fatalf("the clock cannot place %s RTP time %d", kind, r.sr.RTPTime)
			}
			ntp := live.NTPTime(r.sr.NTPTime)
			if d := ntp.Sub(want); d > 2*time.Millisecond || d < -2*time.Millisecond {
				t.Errorf("%s report %d maps RTP %d to %v; the stream's clock places it at %v (%v apart)",
					kind, i, r.sr.RTPTime, ntp.Format("15:04:05.000"), want.Format("15:04:05.000"), d)
			}
			if d := r.at.Sub(ntp); d < -50*time.Millisecond || d > 500*time.Millisecond {
				t.Errorf("%s report %d says %v and came at %v", kind, i, ntp.Format("15:04:05.000"), r.at.Format("15:04:05.000"))
			}
			if r.sr.PacketCount <= lastPackets || r.sr.OctetCount == 0 {
				t.Errorf("%s report %d counts %d packets (the last %d) and %d octets", kind, i, r.sr.PacketCount, lastPackets, r.sr.OctetCount)
			}
			lastPackets = r.sr.PacketCount
		}
		// The first quickReports come a quarter of the period apart (a
		// browser syncs once it has two), the rest a period apart.
		if n := len(reports); n > quickReports {
			quick := reports[quickReports-1].at.Sub(reports[0].at) / (quickReports - 1)
			every := reports[n-1].at.Sub(reports[quickReports-1].at) / time.Duration(n-quickReports)
			if quick > reportEvery/2 {
				t.Errorf("%s's first %d reports came every %v, want %v", kind, quickReports, quick, reportEvery/4)
			}
			if every < reportEvery*8/10 || every > reportEvery*2 {
				t.Errorf("%s reports came every %v, want %v", kind, every, reportEvery)
			}
		}
	}
}
