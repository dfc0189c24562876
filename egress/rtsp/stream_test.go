package rtsp

import (
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/live"
)

// TestWritePacketAddsNoAllocation compares forwarding a hub packet with
// handing gortsplib a ready packet: the header rewrite must cost nothing
// on top of what gortsplib itself allocates.
func TestWritePacketAddsNoAllocation(t *testing.T) {
	hub := live.NewHub(live.Reject)
	track := &live.Track{Kind: live.Video, Codec: live.VP8, PayloadType: 45, ClockRate: 90000}
	src, err := hub.Publish("cam", live.PublishSpec{Tracks: []*live.Track{track}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	srv := &gortsplib.Server{RTSPAddress: "127.0.0.1:0"}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ls, err := newLiveStream(srv, src, nil, false, testLogger(t), func(*liveStream) {})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.shutdown()

	in := &live.Packet{Track: track, Arrival: time.Now(), RTP: rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 45, SequenceNumber: 1, Timestamp: 3000, SSRC: 7},
		Payload: make([]byte, 1000),
	}}
	if err := in.RTP.SetExtension(3, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	ours := testing.AllocsPerRun(200, func() { ls.WritePacket(in) })

	ready := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 3000}, Payload: in.RTP.Payload}
	media := ls.outs[0].media
	theirs := testing.AllocsPerRun(200, func() { _ = ls.rtsp.WritePacketRTPWithNTP(media, ready, in.Arrival) })
	t.Logf("allocations per packet: forwarding %.1f, gortsplib alone %.1f", ours, theirs)
	if ours > theirs {
		t.Errorf("forwarding allocates %.1f per packet, gortsplib alone %.1f", ours, theirs)
	}
}

func TestFmtpInt(t *testing.T) {
	for _, tc := range []struct {
		fmtp, key string
		want      int
		ok        bool
	}{
		{"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", "packetization-mode", 1, true},
		{"profile-level-id=42e01f", "packetization-mode", 0, false},
		{"profile-id=2", "profile-id", 2, true},
		{" profile-id = 0 ", "profile-id", 0, true},
		{"", "profile", 0, false},
	} {
		got, ok := fmtpInt(tc.fmtp, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("fmtpInt(%q, %q) = %d, %v; want %d, %v", tc.fmtp, tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPayloadType(t *testing.T) {
	for in, want := range map[uint8]uint8{45: 96, 0: 96, 96: 96, 102: 102, 111: 111, 127: 127, 200: 96} {
		if got := payloadType(in); got != want {
			t.Errorf("payloadType(%d) = %d, want %d", in, got, want)
		}
	}
}
