package hls

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// ptsRecorder is a writeFunc that records the PTS each frame is written at.
type ptsRecorder struct{ pts []int64 }

func (r *ptsRecorder) write(_ *gohlslib.Muxer, _ *gohlslib.Track, _ time.Time, pts int64, _ [][]byte) error {
	r.pts = append(r.pts, pts)
	return nil
}

// TestTimeline feeds two tracks out of order, across a 32-bit RTP
// timestamp wrap, with video sent 100 ms after its capture, and checks the
// PTS put on each frame: by the stream's clock (Sender Reports), frames
// captured together get the same PTS, whatever their arrival.
func TestTimeline(t *testing.T) {
	hub := live.NewHub(live.Reject)
	audioIn := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000}
	videoIn := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}
	stream, err := hub.Publish("cam", live.PublishSpec{Tracks: []*live.Track{videoIn, audioIn}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	audio, video := &ptsRecorder{}, &ptsRecorder{}
	m := &muxer{log: slog.New(slog.DiscardHandler), stream: stream, tracks: map[*live.Track]*track{}}
	for in, r := range map[*live.Track]*ptsRecorder{audioIn: audio, videoIn: video} {
		asm, err := frames.New(in, frames.Config{Clock: stream.Clock()})
		if err != nil {
			t.Fatal(err)
		}
		tr := &track{in: in, asm: asm, write: r.write, clock: int64(in.ClockRate)}
		tr.emit = func(f frames.Frame) { m.handle(tr, f) }
		m.tracks[in] = tr
	}

	t0 := time.Now()
	// One-packet frames: an Opus packet; a VP8 keyframe (S=1, P=0).
	feed := func(in *live.Track, seq uint16, ts uint32, at time.Duration) {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: in.PayloadType, SequenceNumber: seq, Timestamp: ts, Marker: true},
			Payload: []byte{0x10, 0, 0, 0}}
		raw, _ := pkt.Marshal()
		if err := stream.WriteRTP(in, raw, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
		m.WritePacket(&live.Packet{Track: in, RTP: pkt, Arrival: t0.Add(at)})
	}
	// Capture 0 is audio timestamp a0 (which wraps after the first packet)
	// and video timestamp 5000; audio arrives 10 ms after capture, video
	// 110 ms. 960 ticks = 20 ms of audio, 3000 = 33.3 ms of video.
	var a0 uint32 = 0xffff_fc40
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feed(audioIn, 65535, a0, 10*time.Millisecond)
	feed(videoIn, 7, 5000, 110*time.Millisecond)
	// The reports, sent at 110 ms, name that instant on both clocks.
	stream.WriteSenderReport(videoIn, epoch.Add(110*time.Millisecond), 5000+110*90, t0.Add(111*time.Millisecond))
	stream.WriteSenderReport(audioIn, epoch.Add(110*time.Millisecond), a0+110*48, t0.Add(111*time.Millisecond))
	feed(audioIn, 1, a0+2*960, 50*time.Millisecond) // early: waits for seq 0
	feed(audioIn, 0, a0+960, 51*time.Millisecond)
	feed(videoIn, 8, 5000+3000, 144*time.Millisecond)
	feed(audioIn, 1, a0+2*960, 52*time.Millisecond) // duplicate: dropped
	feed(videoIn, 9, 5000+6000, 177*time.Millisecond)
	feed(audioIn, 2, a0+3*960, 70*time.Millisecond)

	// Video captured at 0, 33.3, 66.7 ms; audio at 0, 20, 40, 60 ms: on one
	// timeline, video's 0 is audio's 0, whichever came first.
	if want := []int64{0, 3000, 6000}; !slices.Equal(video.pts, want) {
		t.Errorf("video PTS %v, want %v", video.pts, want)
	}
	if want := []int64{0, 960, 1920, 2880}; !slices.Equal(audio.pts, want) {
		t.Errorf("audio PTS %v, want %v", audio.pts, want)
	}
}
