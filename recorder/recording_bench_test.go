package recorder

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// benchSource packetizes a fixture track in a loop, as a publisher would.
type benchSource struct {
	track   *live.Track
	samples []testmedia.Sample
	pkt     rtp.Packetizer
	next    int
	at      time.Duration
}

// benchPacket is one packet of the timeline, with its arrival offset.
type benchPacket struct {
	src *benchSource
	at  time.Duration
	pkt *rtp.Packet
}

// chunk packetizes the next d of every source, merged by arrival time.
func chunk(srcs []*benchSource, d time.Duration) []benchPacket {
	var out []benchPacket
	for _, s := range srcs {
		end := s.at + d
		for s.at < end {
			sample := s.samples[s.next%len(s.samples)]
			s.next++
			ticks := uint32(sample.Duration.Seconds() * float64(s.track.ClockRate))
			for _, p := range s.pkt.Packetize(sample.Data, ticks) {
				out = append(out, benchPacket{src: s, at: s.at, pkt: p})
			}
			s.at += sample.Duration
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	return out
}

func benchSources(b *testing.B, video live.Codec, file string) []*benchSource {
	b.Helper()
	path := filepath.Join(testmedia.Dir(), file)
	v := &benchSource{track: &live.Track{Kind: live.Video, Codec: video, ClockRate: 90000}}
	var payloader rtp.Payloader
	var err error
	switch video {
	case live.H264:
		v.track.PayloadType, v.track.Fmtp = 102, "packetization-mode=1;profile-level-id=640032"
		payloader = &codecs.H264Payloader{}
		v.samples, err = testmedia.ReadH264(path, 30)
	case live.H265:
		v.track.PayloadType, v.track.Fmtp = 104, "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
		payloader = &codecs.H265Payloader{}
		v.samples, err = testmedia.ReadH265(path, 30)
	case live.VP8:
		v.track.PayloadType = 96
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
		_, v.samples, err = testmedia.ReadIVF(path)
	}
	if err != nil {
		b.Fatal(err)
	}
	v.pkt = rtp.NewPacketizer(1200, v.track.PayloadType, rand.Uint32(), payloader, rtp.NewRandomSequencer(), 90000)
	opus, err := testmedia.ReadOgg(filepath.Join(testmedia.Dir(), "opus.ogg"))
	if err != nil {
		b.Fatal(err)
	}
	a := &benchSource{track: &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2},
		samples: opus, pkt: rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)}
	return []*benchSource{v, a}
}

// BenchmarkRecordingWritePacket is the recorder's cost per received packet:
// copy, reorder, depacketize, interleave and write through ebml-go to a real
// file, for a looping fixture stream. %core is what one publisher of that
// stream costs, from ns/op and the stream's packet rate.
func BenchmarkRecordingWritePacket(b *testing.B) {
	for _, tc := range []struct {
		name  string
		video live.Codec
		file  string
	}{
		{"h264-2500k+opus", live.H264, "h264-2500k.h264"},
		{"h265-430k+opus", live.H265, "h265.h265"},
		{"vp8-300k+opus", live.VP8, "vp8.ivf"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srcs := benchSources(b, tc.video, tc.file)
			r, err := New(Config{Dir: b.TempDir(), Enabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var rc live.Consumer
			r.wrap = func(c live.Consumer) live.Consumer {
				rc = c
				return live.ConsumerFunc(func(*live.Packet) {})
			}
			hub := live.NewHub(live.Reject)
			hub.OnPublish(r.Record)
			s, err := hub.Publish("bench", live.PublishSpec{Tracks: []*live.Track{srcs[0].track, srcs[1].track}})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if rc == nil {
				b.Fatal("the recorder did not subscribe")
			}
			const chunkLen = 10 * time.Second
			t0 := time.Now()
			pkts := chunk(srcs, chunkLen)
			rate := float64(len(pkts)) / chunkLen.Seconds()
			var in live.Packet
			b.ReportAllocs()
			b.ResetTimer()
			for i, j := 0, 0; i < b.N; i, j = i+1, j+1 {
				if j == len(pkts) {
					b.StopTimer()
					pkts, j = chunk(srcs, chunkLen), 0
					b.StartTimer()
				}
				p := pkts[j]
				in.Track, in.RTP, in.Arrival = p.src.track, *p.pkt, t0.Add(p.at)
				rc.WritePacket(&in)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*rate/1e7, "%core")
			b.ReportMetric(rate, "packets/s")
		})
	}
}
