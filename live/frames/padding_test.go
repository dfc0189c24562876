package frames

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// Padding-only packets between frames (a browser's bandwidth probes on
// the video's SSRC) are passed by: no frame is damaged, none is lost, and
// nobody is asked for a keyframe.
func TestPaddingOnlyPacketsArePassedBy(t *testing.T) {
	asked := 0
	tr := &live.Track{Kind: live.Video, Codec: live.H264, ClockRate: 90000, Fmtp: "packetization-mode=1"}
	a := newAssembler(t, tr, Config{RequestKeyframe: func() { asked++ }})
	sps, pps := nalu(7, 0x64, 0, 0x1e), nalu(8, 0xee)
	got := collect(a, []*rtp.Packet{
		{Header: rtp.Header{SequenceNumber: 1, Timestamp: 100}, Payload: sps},
		{Header: rtp.Header{SequenceNumber: 2, Timestamp: 100}, Payload: pps},
		{Header: rtp.Header{SequenceNumber: 3, Timestamp: 100, Marker: true}, Payload: nalu(5, 1)},
		{Header: rtp.Header{SequenceNumber: 4, Timestamp: 100, Padding: true}},
		{Header: rtp.Header{SequenceNumber: 5, Timestamp: 100, Padding: true}},
		{Header: rtp.Header{SequenceNumber: 6, Timestamp: 3100, Marker: true}, Payload: nalu(1, 9)},
	})
	if len(got) != 2 || a.Lost() != 0 || a.Dropped() != 0 || asked != 0 {
		t.Fatalf("%d frames, %d lost, %d dropped, %d keyframe requests; want 2, 0, 0, 0", len(got), a.Lost(), a.Dropped(), asked)
	}
}
