package frames

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

func nalu(typ byte, body ...byte) []byte { return append([]byte{0x60 | typ}, body...) }

func nalu265(typ byte, body ...byte) []byte { return append([]byte{typ << 1, 1}, body...) }

// collect pushes pkts and returns the frames emitted.
func collect(a *Assembler, pkts []*rtp.Packet) []Frame {
	var out []Frame
	for _, p := range pkts {
		a.Push(&live.Packet{Track: a.Track(), RTP: *p}, func(f Frame) { out = append(out, f) })
	}
	return out
}

func newAssembler(t *testing.T, tr *live.Track, cfg Config) *Assembler {
	t.Helper()
	a, err := New(tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestH264AccessUnits assembles OBS-style access units: SPS and PPS in
// packets of their own, an IDR in two slices; a later IDR without
// parameter sets gets them put in front; an IDR before any parameter set
// is dropped, the assembler asks for another keyframe.
func TestH264AccessUnits(t *testing.T) {
	tr := &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: "packetization-mode=1"}
	a := newAssembler(t, tr, Config{})
	sps, pps := nalu(7, 0x64, 0, 0x1e), nalu(8, 0xee)
	got := collect(a, []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: sps},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: pps},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100}, Payload: nalu(5, 1)},
		{Header: rtp.Header{SequenceNumber: 4, Timestamp: 100, Marker: true}, Payload: nalu(5, 2)},
		{Header: rtp.Header{SequenceNumber: 5, Timestamp: 3100, Marker: true}, Payload: nalu(1, 9)},
		{Header: rtp.Header{SequenceNumber: 6, Timestamp: 6100, Marker: true}, Payload: nalu(5, 3)},
	})
	if len(got) != 3 {
		t.Fatalf("%d frames, want 3", len(got))
	}
	if f := got[0]; !f.Keyframe || len(f.Units) != 4 || f.RTPTime != 100 {
		t.Errorf("first frame: keyframe %v, %d NAL units, ts %d; want a keyframe of SPS PPS and two slices at 100", f.Keyframe, len(f.Units), f.RTPTime)
	}
	if f := got[1]; f.Keyframe || len(f.Units) != 1 {
		t.Errorf("P-frame: keyframe %v, %d NAL units", f.Keyframe, len(f.Units))
	}
	if u := got[2].Units; len(u) != 3 || u[0][0]&0x1f != 7 || u[1][0]&0x1f != 8 {
		t.Errorf("IDR without parameter sets: got %d NAL units, want SPS PPS IDR", len(u))
	}

	asked := 0
	fresh := newAssembler(t, &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000}, Config{RequestKeyframe: func() { asked++ }})
	if got := collect(fresh, []*rtp.Packet{{Header: rtp.Header{Marker: true}, Payload: nalu(5, 3)}}); len(got) != 0 {
		t.Errorf("an IDR before any SPS was emitted: %v", got)
	}
	if asked == 0 {
		t.Error("no keyframe was asked for after an IDR without parameter sets")
	}
}

// TestH264ParameterSetsFromTheHub: a consumer that subscribed after the
// publisher's SPS/PPS went by takes them from the track.
func TestH264ParameterSetsFromTheHub(t *testing.T) {
	hub := live.NewHub(live.Reject)
	tr := &live.Track{Kind: live.Video, Codec: live.H264, PayloadType: 102, ClockRate: 90000}
	s, err := hub.Publish("cam", live.PublishSpec{Tracks: []*live.Track{tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stapA := []byte{24, 0, 4, 0x67, 0x64, 0, 0x1e, 0, 2, 0x68, 0xee}
	raw, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: 1}, Payload: stapA}).Marshal()
	if err := s.WriteRTP(tr, raw, time.Now()); err != nil {
		t.Fatal(err)
	}
	a := newAssembler(t, tr, Config{})
	got := collect(a, []*rtp.Packet{{Header: rtp.Header{SequenceNumber: 9, Timestamp: 900, Marker: true}, Payload: nalu(5, 3)}})
	if len(got) != 1 || len(got[0].Units) != 3 {
		t.Fatalf("got %v, want one keyframe of SPS PPS IDR", got)
	}
}

// TestH265AccessUnits assembles access units the way WebRTC sends them:
// VPS, SPS and PPS in packets of their own, an IDR in a fragmentation unit;
// a later IDR without parameter sets gets them put in front, a P-picture
// does not.
func TestH265AccessUnits(t *testing.T) {
	tr := &live.Track{Kind: live.Video, Codec: live.H265, ClockRate: 90000}
	a := newAssembler(t, tr, Config{})
	const idr, trail, fu = 19, 1, 49
	vps, sps, pps := nalu265(32, 0x0c), nalu265(33, 0x01), nalu265(34, 0xc1)
	got := collect(a, []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: vps},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: sps},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100}, Payload: pps},
		{Header: rtp.Header{SequenceNumber: 4, Timestamp: 100}, Payload: []byte{fu << 1, 1, 0x80 | idr, 0xaa}},
		{Header: rtp.Header{SequenceNumber: 5, Timestamp: 100, Marker: true}, Payload: []byte{fu << 1, 1, 0x40 | idr, 0xbb}},
		{Header: rtp.Header{SequenceNumber: 6, Timestamp: 3100, Marker: true}, Payload: nalu265(trail, 1)},
		{Header: rtp.Header{SequenceNumber: 7, Timestamp: 6100, Marker: true}, Payload: nalu265(idr, 3)},
	})
	if len(got) != 3 {
		t.Fatalf("%d frames, want 3", len(got))
	}
	if want := [][]byte{vps, sps, pps, nalu265(idr, 0xaa, 0xbb)}; !got[0].Keyframe || !slices.EqualFunc(got[0].Units, want, slices.Equal) {
		t.Errorf("access unit %x (keyframe %v), want %x", got[0].Units, got[0].Keyframe, want)
	}
	if got[1].Keyframe || len(got[1].Units) != 1 {
		t.Errorf("P-picture: got %x (keyframe %v), want it alone", got[1].Units, got[1].Keyframe)
	}
	if want := [][]byte{vps, sps, pps, nalu265(idr, 3)}; !slices.EqualFunc(got[2].Units, want, slices.Equal) {
		t.Errorf("IDR without parameter sets: got %x, want %x", got[2].Units, want)
	}
}

// TestTwoGapsInOneReorderedBatch loses two video packets close together:
// the reorderer reports them once, when its buffer overflows, and returns
// a keyframe that came between them with the rest. The second gap must
// stop the video until the next keyframe too.
func TestTwoGapsInOneReorderedBatch(t *testing.T) {
	tr := &live.Track{Kind: live.Video, Codec: live.VP8, ClockRate: 90000}
	a := newAssembler(t, tr, Config{})
	a.reorder.BufferSize = 4
	a.reorder.Initialize()
	// One-packet VP8 frames: S=1, partition 0; a keyframe has P=0.
	vp8 := func(key bool) []byte {
		if key {
			return []byte{0x10, 0x00, 0x00, 0x00}
		}
		return []byte{0x10, 0x01, 0x00, 0x00}
	}
	var written []uint32
	// 2 and 4 are lost; 6 overflows the buffer, which returns 3, 5 and 6.
	for _, seq := range []uint16{0, 1, 3, 5, 6, 7, 8, 9} {
		key := seq == 0 || seq == 3 || seq == 8
		pkt := rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: vp8(key)}
		a.Push(&live.Packet{Track: tr, RTP: pkt}, func(f Frame) { written = append(written, f.RTPTime/3000) })
	}
	if want := []uint32{0, 1, 8, 9}; !slices.Equal(written, want) {
		t.Errorf("frames written %v, want %v: nothing between a gap and the next whole keyframe", written, want)
	}
	if a.Lost() != 2 {
		t.Errorf("Lost() = %d, want 2", a.Lost())
	}
}

// TestAudioKeepsTheFrameAfterALoss: an Opus frame is one packet, so the
// packet after a gap is a whole frame and is kept.
func TestAudioKeepsTheFrameAfterALoss(t *testing.T) {
	tr := &live.Track{Kind: live.Audio, Codec: live.Opus, ClockRate: 48000}
	a := newAssembler(t, tr, Config{})
	a.reorder.BufferSize = 4
	a.reorder.Initialize()
	var got []uint16
	for _, seq := range []uint16{10, 11, 13, 14, 15, 16, 17} {
		pkt := rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq) * 960, Marker: true}, Payload: []byte{0xfc, 0xff}}
		a.Push(&live.Packet{Track: tr, RTP: pkt}, func(f Frame) { got = append(got, uint16(f.RTPTime/960)) })
	}
	if want := []uint16{10, 11, 13, 14, 15, 16, 17}; !slices.Equal(got, want) {
		t.Errorf("audio frames %v, want %v", got, want)
	}
}

// TestPacketizationModeFromFmtp: H.264's mode comes from the track's
// format parameters, for every consumer alike; a mode no decoder here
// reads is refused.
func TestPacketizationModeFromFmtp(t *testing.T) {
	for fmtp, want := range map[string]int{"": 0, "packetization-mode=0": 0, "profile-level-id=42e01f;packetization-mode=1": 1} {
		a := newAssembler(t, &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: fmtp}, Config{})
		if got := a.dec.(*h264Decoder).mode; got != want {
			t.Errorf("fmtp %q: mode %d, want %d", fmtp, got, want)
		}
	}
	if _, err := New(&live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: "packetization-mode=2"}, Config{}); err == nil {
		t.Error("packetization-mode=2 was accepted")
	}
}

// TestFrameArrivalIsItsFirstPacket: a frame's Arrival is when its first
// packet came, not its last.
func TestFrameArrivalIsItsFirstPacket(t *testing.T) {
	tr := &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: "packetization-mode=1"}
	a := newAssembler(t, tr, Config{})
	t0 := time.Now()
	var got []Frame
	for i, p := range []rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: nalu(7, 0x64, 0, 0x1e)},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: nalu(8, 0xee)},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100, Marker: true}, Payload: nalu(5, 1)},
	} {
		a.Push(&live.Packet{Track: tr, RTP: p, Arrival: t0.Add(time.Duration(i) * 10 * time.Millisecond)}, func(f Frame) { got = append(got, f) })
	}
	if len(got) != 1 || !got[0].Arrival.Equal(t0) {
		t.Fatalf("frames %v, want one arriving at t0", got)
	}
}

// TestLossAcrossSequenceWrap places each loss before the packet that
// follows it, across the sequence number wrap: packets 1 and 4 (after
// start) never come, and the reorderer gives up on them when packet 5 does
// not fit its buffer. Audio frames after each gap are kept, and the count
// of lost packets is exact.
func TestLossAcrossSequenceWrap(t *testing.T) {
	for _, start := range []uint16{100, 65533} {
		tr := &live.Track{Kind: live.Audio, Codec: live.Opus, ClockRate: 48000}
		a := newAssembler(t, tr, Config{})
		a.reorder.BufferSize = 4
		a.reorder.Initialize()
		var got []uint16
		for _, off := range []uint16{0, 2, 3, 5} {
			pkt := rtp.Packet{Header: rtp.Header{SequenceNumber: start + off, Timestamp: uint32(off) * 960}, Payload: []byte{0xfc}}
			a.Push(&live.Packet{Track: tr, RTP: pkt}, func(f Frame) { got = append(got, uint16(f.RTPTime/960)) })
		}
		if want := []uint16{0, 2, 3, 5}; !slices.Equal(got, want) {
			t.Errorf("start %d: frames %v, want %v", start, got, want)
		}
		if a.Lost() != 2 {
			t.Errorf("start %d: Lost() = %d, want 2", start, a.Lost())
		}
	}
}

// TestPaddingOnlyPacketsAreNotDamage: a packet with only RTP padding
// (libwebrtc's bandwidth probes, sent on the media SSRC when RTX is not
// negotiated) carries no media; it takes a sequence number, so it is not
// loss either. No frame is dropped for it, and nobody is asked for a
// keyframe.
func TestPaddingOnlyPacketsAreNotDamage(t *testing.T) {
	for _, tr := range []*live.Track{
		{Kind: live.Video, Codec: live.VP8, ClockRate: 90000},
		{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: "packetization-mode=1"},
	} {
		asked := 0
		a := newAssembler(t, tr, Config{RequestKeyframe: func() { asked++ }})
		key, delta := []byte{0x10, 0x00, 0x9d, 0x01, 0x2a}, []byte{0x10, 0x01, 0x02, 0x03}
		if tr.Codec == live.H264 {
			key, delta = []byte{0x78, 0, 4, 0x67, 0x64, 0, 0x1e, 0, 2, 0x68, 0xee, 0, 2, 0x65, 1}, nalu(1, 2)
		}
		pkts := []*rtp.Packet{
			{Header: rtp.Header{SequenceNumber: 1, Timestamp: 0, Marker: true}, Payload: key},
			{Header: rtp.Header{SequenceNumber: 2, Timestamp: 0, Padding: true, PaddingSize: 224}},
			{Header: rtp.Header{SequenceNumber: 3, Timestamp: 0, Padding: true, PaddingSize: 224}},
			{Header: rtp.Header{SequenceNumber: 4, Timestamp: 3000, Marker: true}, Payload: delta},
			{Header: rtp.Header{SequenceNumber: 5, Timestamp: 3000, Padding: true, PaddingSize: 224}},
			{Header: rtp.Header{SequenceNumber: 6, Timestamp: 6000, Marker: true}, Payload: delta},
		}
		got := collect(a, pkts)
		if len(got) != 3 || a.Dropped() != 0 || a.Lost() != 0 || asked != 0 {
			t.Errorf("%s: %d frames, %d dropped, %d lost, %d keyframe requests; want 3, 0, 0, 0", tr.Codec, len(got), a.Dropped(), a.Lost(), asked)
		}
	}
}
