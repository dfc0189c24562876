package rtsp

import (
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// BenchmarkRTSPFanOut is the whole RTSP path from the hub to n readers over
// TCP: one op is one publisher packet, written by gortsplib to every
// reader's connection and read by a gortsplib client. The producer waits
// for the slowest reader, so nothing is dropped and the time is the path's
// throughput, client reads included.
func BenchmarkRTSPFanOut(b *testing.B) {
	for _, tr := range []gortsplib.Transport{gortsplib.TransportTCP, gortsplib.TransportUDP} {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/readers=%d", tr, n), func(b *testing.B) { benchRTSP(b, tr, n) })
		}
	}
}

func benchRTSP(b *testing.B, tr gortsplib.Transport, n int) {
	hub := live.NewHub(live.Reject)
	cfg := Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tr == gortsplib.TransportUDP {
		port := freeUDPPair(b)
		cfg.UDPRTPAddr, cfg.UDPRTCPAddr = fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
	}
	srv, err := New(cfg, hub)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	video := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000,
		Fmtp: "packetization-mode=1;profile-level-id=640032"}
	s, err := hub.Publish("bench", live.PublishSpec{Tracks: []*live.Track{video}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// SPS and PPS first, so DESCRIBE has them at once.
	samples, err := testmedia.ReadH264(testmedia.Path("h264-2500k.h264"), 30)
	if err != nil {
		b.Fatal(err)
	}
	seq := uint16(0)
	for _, nal := range testmedia.SplitAnnexB(samples[0].Data)[:2] {
		_ = s.WriteRTP(video, rtpRaw(seq, nal), time.Now())
		seq++
	}
	// A Sender Report settles the stream's clock at once: RTSP forwards
	// nothing before (stream.go).
	s.WriteSenderReport(video, time.Now(), 0, time.Now())
	counts := make([]*atomic.Int64, n)
	for i := range n {
		counts[i] = new(atomic.Int64)
		c := benchReader(b, "rtsp://"+srv.Addr()+"/bench", tr, counts[i])
		defer c.Close()
	}
	payload := make([]byte, 1100)
	payload[0] = 0x41 // a non-IDR slice
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		_ = s.WriteRTP(video, rtpRaw(seq, payload), time.Now())
		seq++
		if i%32 == 31 && i >= 128 {
			waitReaders(counts, int64(i+1)-128)
		}
	}
	waitReaders(counts, int64(b.N))
	b.StopTimer()
	var got int64
	for _, c := range counts {
		got += c.Load()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reader-packet")
	b.ReportMetric(100-100*float64(got)/float64(b.N*n), "%lost")
}

func rtpRaw(seq uint16, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: uint32(seq) * 300, SSRC: 99}, Payload: payload}
	raw, _ := p.Marshal()
	return raw
}

// waitReaders waits until every reader has n packets, or a second passes
// (a UDP reader may have lost some).
func waitReaders(counts []*atomic.Int64, n int64) {
	deadline := time.Now().Add(time.Second)
	for _, c := range counts {
		for c.Load() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Microsecond)
		}
	}
}

func benchReader(b *testing.B, rawURL string, tr gortsplib.Transport, count *atomic.Int64) *gortsplib.Client {
	b.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		b.Fatal(err)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tr, UDPReadBufferSize: 1 << 20}
	if err := c.Start2(); err != nil {
		b.Fatal(err)
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		b.Fatal(err)
	}
	c.OnPacketRTPAny(func(*description.Media, format.Format, *rtp.Packet) { count.Add(1) })
	if _, err := c.Play(nil); err != nil {
		b.Fatal(err)
	}
	return c
}
