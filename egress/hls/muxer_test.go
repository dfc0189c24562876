package hls

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gortsplib/v4/pkg/rtpreorderer"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

// recordingDepacketizer takes every packet as one unit and records the
// PTS it is written at.
type recordingDepacketizer struct{ pts []int64 }

func (d *recordingDepacketizer) decode(p *rtp.Packet) ([][]byte, error) {
	return [][]byte{p.Payload}, nil
}
func (d *recordingDepacketizer) reset()                     {}
func (d *recordingDepacketizer) randomAccess([][]byte) bool { return true }
func (d *recordingDepacketizer) write(_ *gohlslib.Muxer, _ *gohlslib.Track, _ time.Time, pts int64, _ [][]byte) error {
	d.pts = append(d.pts, pts)
	return nil
}

// TestTimeline feeds two tracks out of order, across a 32-bit RTP
// timestamp wrap, and checks the PTS put on each unit.
func TestTimeline(t *testing.T) {
	audioIn := &ingest.Track{Kind: ingest.Audio, Codec: ingest.Opus, ClockRate: 48000}
	videoIn := &ingest.Track{Kind: ingest.Video, Codec: ingest.H264, ClockRate: 90000}
	audio, video := &recordingDepacketizer{}, &recordingDepacketizer{}
	m := &muxer{log: slog.New(slog.DiscardHandler), tracks: map[*ingest.Track]*track{}}
	for in, d := range map[*ingest.Track]*recordingDepacketizer{audioIn: audio, videoIn: video} {
		tr := &track{in: in, dep: d, clock: int64(in.ClockRate), reorder: &rtpreorderer.Reorderer{BufferSize: 16}}
		tr.reorder.Initialize()
		m.tracks[in] = tr
	}

	t0 := time.Now()
	feed := func(in *ingest.Track, seq uint16, ts uint32, at time.Duration) {
		m.WritePacket(&ingest.Packet{Track: in, Arrival: t0.Add(at),
			RTP: rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts}, Payload: []byte{1}}})
	}
	// Audio starts first: its first packet is PTS 0. 960 ticks = 20 ms.
	var a0 uint32 = 0xffff_fc40 // wraps after the first packet
	feed(audioIn, 65535, a0, 0)
	feed(audioIn, 1, a0+2*960, 40*time.Millisecond) // early: waits for seq 0
	feed(audioIn, 0, a0+960, 41*time.Millisecond)
	// Video arrives 100 ms later: its first unit is at PTS 100 ms.
	feed(videoIn, 7, 5000, 100*time.Millisecond)
	feed(videoIn, 8, 5000+3000, 133*time.Millisecond)
	feed(audioIn, 1, a0+2*960, 50*time.Millisecond) // duplicate: dropped

	if want := []int64{0, 960, 1920}; !slices.Equal(audio.pts, want) {
		t.Errorf("audio PTS %v, want %v", audio.pts, want)
	}
	if want := []int64{9000, 12000}; !slices.Equal(video.pts, want) {
		t.Errorf("video PTS %v, want %v", video.pts, want)
	}
}

// keyDepacketizer takes every packet as one unit, a keyframe when its
// payload is "K", and records the sequence numbers of the units written.
type keyDepacketizer struct {
	written []uint16
	seq     uint16
}

func (d *keyDepacketizer) decode(p *rtp.Packet) ([][]byte, error) {
	d.seq = p.SequenceNumber
	return [][]byte{p.Payload}, nil
}
func (d *keyDepacketizer) reset()                       {}
func (d *keyDepacketizer) randomAccess(u [][]byte) bool { return string(u[0]) == "K" }
func (d *keyDepacketizer) write(*gohlslib.Muxer, *gohlslib.Track, time.Time, int64, [][]byte) error {
	d.written = append(d.written, d.seq)
	return nil
}

// TestTwoGapsInOneReorderedBatch loses two video packets close together:
// the reorderer reports them once, when its buffer overflows, and returns
// a keyframe that came between them with the rest. The second gap must
// stop the video until the next keyframe too.
func TestTwoGapsInOneReorderedBatch(t *testing.T) {
	hub := ingest.NewHub(ingest.Reject)
	in := &ingest.Track{Kind: ingest.Video, Codec: ingest.H264, PayloadType: 102, ClockRate: 90000}
	stream, err := hub.Publish("cam", ingest.PublishSpec{Tracks: []*ingest.Track{in}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	d := &keyDepacketizer{}
	tr := &track{in: in, dep: d, video: true, clock: 90000, waitKey: true, reorder: &rtpreorderer.Reorderer{BufferSize: 4}}
	tr.reorder.Initialize()
	m := &muxer{log: slog.New(slog.DiscardHandler), stream: stream, tracks: map[*ingest.Track]*track{in: tr}}

	t0 := time.Now()
	// 2 and 4 are lost; 6 overflows the buffer, which returns 3, 5 and 6.
	for i, seq := range []uint16{0, 1, 3, 5, 6, 7, 8, 9} {
		payload := "P"
		if seq == 0 || seq == 3 || seq == 8 {
			payload = "K"
		}
		m.WritePacket(&ingest.Packet{Track: in, Arrival: t0.Add(time.Duration(i) * 33 * time.Millisecond),
			RTP: rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: []byte(payload)}})
	}
	if want := []uint16{0, 1, 3, 8, 9}; !slices.Equal(d.written, want) {
		t.Errorf("units written %v, want %v: nothing between the second gap and the next keyframe", d.written, want)
	}
}

func nalu(typ byte, body ...byte) []byte { return append([]byte{0x60 | typ}, body...) }

// TestH264AccessUnits assembles OBS-style access units: SPS and PPS in
// packets of their own, an IDR in two slices; a later IDR without
// parameter sets gets them put in front.
func TestH264AccessUnits(t *testing.T) {
	d := &h264Depacketizer{mode: 1}
	d.reset()
	sps, pps := nalu(7, 0x64, 0, 0x1e), nalu(8, 0xee)
	pkts := []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: sps},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: pps},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100}, Payload: nalu(5, 1)},
		{Header: rtp.Header{SequenceNumber: 4, Timestamp: 100, Marker: true}, Payload: nalu(5, 2)},
	}
	au := decodeAll(t, d, pkts)
	if len(au) != 4 || !d.randomAccess(au) {
		t.Fatalf("access unit has %d NALUs (random access %v), want SPS PPS and two slices", len(au), d.randomAccess(au))
	}

	u, err := d.decode(&rtp.Packet{Header: rtp.Header{SequenceNumber: 5, Timestamp: 3100, Marker: true}, Payload: nalu(5, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 3 || u[0][0]&0x1f != 7 || u[1][0]&0x1f != 8 {
		t.Errorf("IDR without parameter sets: got %d NALUs, want SPS PPS IDR", len(u))
	}

	fresh := &h264Depacketizer{mode: 1}
	fresh.reset()
	if _, err := fresh.decode(&rtp.Packet{Header: rtp.Header{Marker: true}, Payload: nalu(5, 3)}); err != errNoParams {
		t.Errorf("IDR before any SPS: err %v, want errNoParams", err)
	}
}

func nalu265(typ byte, body ...byte) []byte { return append([]byte{typ << 1, 1}, body...) }

// TestH265AccessUnits assembles access units the way WebRTC sends them:
// VPS, SPS and PPS in packets of their own, an IDR in a fragmentation unit;
// a later IDR without parameter sets gets them put in front, a P-picture
// does not.
func TestH265AccessUnits(t *testing.T) {
	d := &h265Depacketizer{}
	d.reset()
	const idr, trail, fu = 19, 1, 49
	vps, sps, pps := nalu265(32, 0x0c), nalu265(33, 0x01), nalu265(34, 0xc1)
	pkts := []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: vps},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: sps},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100}, Payload: pps},
		{Header: rtp.Header{SequenceNumber: 4, Timestamp: 100}, Payload: []byte{fu << 1, 1, 0x80 | idr, 0xaa}},
		{Header: rtp.Header{SequenceNumber: 5, Timestamp: 100, Marker: true}, Payload: []byte{fu << 1, 1, 0x40 | idr, 0xbb}},
	}
	au := decodeAll(t, d, pkts)
	if want := [][]byte{vps, sps, pps, nalu265(idr, 0xaa, 0xbb)}; !slices.EqualFunc(au, want, slices.Equal) {
		t.Fatalf("access unit %x, want %x", au, want)
	}
	if !d.randomAccess(au) {
		t.Error("an IDR access unit is not a random access point")
	}

	u, err := d.decode(&rtp.Packet{Header: rtp.Header{SequenceNumber: 6, Timestamp: 3100, Marker: true}, Payload: nalu265(trail, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || d.randomAccess(u) {
		t.Errorf("P-picture: got %x (random access %v), want it alone", u, d.randomAccess(u))
	}

	u, err = d.decode(&rtp.Packet{Header: rtp.Header{SequenceNumber: 7, Timestamp: 6100, Marker: true}, Payload: nalu265(idr, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]byte{vps, sps, pps, nalu265(idr, 3)}; !slices.EqualFunc(u, want, slices.Equal) {
		t.Errorf("IDR without parameter sets: got %x, want %x", u, want)
	}

	fresh := &h265Depacketizer{}
	fresh.reset()
	if _, err := fresh.decode(&rtp.Packet{Header: rtp.Header{Marker: true}, Payload: nalu265(idr, 3)}); err != errNoH265Params {
		t.Errorf("IDR before any VPS/SPS/PPS: err %v, want errNoH265Params", err)
	}
}

// decodeAll feeds pkts to d, which must return nothing before the last
// (marker) packet, and returns the unit that one completes.
func decodeAll(t *testing.T, d depacketizer, pkts []*rtp.Packet) [][]byte {
	t.Helper()
	var au [][]byte
	for i, p := range pkts {
		u, err := d.decode(p)
		if i < len(pkts)-1 {
			if u != nil || !ignoreDecodeError(err) {
				t.Fatalf("packet %d: unit %v err %v before the marker", i, u, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		au = u
	}
	return au
}
