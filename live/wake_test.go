package live

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/testwait"
)

// publishAV is a stream with a video and an audio track.
func publishAV(t testing.TB, name string) (*Stream, *Track, *Track) {
	t.Helper()
	video := &Track{Kind: Video, Codec: VP8, PayloadType: 96, ClockRate: 90000}
	audio := &Track{Kind: Audio, Codec: Opus, PayloadType: 111, ClockRate: 48000}
	s, err := NewHub(Reject).Publish(name, PublishSpec{Session: "s", Tracks: []*Track{video, audio}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, video, audio
}

func writeAV(t testing.TB, s *Stream, tr *Track, seq uint16, marker bool) {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: tr.PayloadType, SequenceNumber: seq,
		SSRC: uint32(tr.PayloadType), Marker: marker}, Payload: []byte{0x10, 0, 0, 0}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteRTP(tr, b, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// heldBy reports how many of subs hold packets they were not woken for.
func heldBy(subs []*Subscription) (n int) {
	for _, sub := range subs {
		sub.mu.Lock()
		if sub.held {
			n++
		}
		sub.mu.Unlock()
	}
	return n
}

// From holdFrom consumers on, a video packet that does not end its frame
// is queued without waking anyone; the frame's last packet or an audio
// packet wakes everyone for what they hold. Under holdFrom, every packet
// wakes, except for a consumer that asked to be woken per frame.
func TestConsumersAreWokenPerFrameFromHoldFrom(t *testing.T) {
	for _, tc := range []struct {
		n        int
		perFrame bool
	}{{holdFrom - 1, false}, {holdFrom, false}, {1, true}} {
		n := tc.n
		s, video, audio := publishAV(t, "cam")
		s.holdMax = time.Hour // only packets wake
		// Every consumer blocks in its first packet, so what it holds
		// after that stays queued and can be looked at.
		release := make(chan struct{})
		var first sync.WaitGroup
		subs := make([]*Subscription, n)
		for i := range subs {
			var once sync.Once
			first.Add(1)
			sub, err := s.SubscribeWith("whep", ConsumerFunc(func(*Packet) {
				once.Do(func() { first.Done(); <-release })
			}), SubscribeOptions{QueueSize: 64, PerFrame: tc.perFrame})
			if err != nil {
				t.Fatal(err)
			}
			subs[i] = sub
		}
		writeAV(t, s, audio, 0, false)
		first.Wait()

		held := 0
		if n >= holdFrom || tc.perFrame {
			held = n
		}
		writeAV(t, s, video, 1, false)
		writeAV(t, s, video, 2, false)
		if got := heldBy(subs); got != held {
			t.Errorf("%d consumers: %d hold a frame's first packets, want %d", n, got, held)
		}
		writeAV(t, s, video, 3, true) // the frame's last
		if got := heldBy(subs); got != 0 {
			t.Errorf("%d consumers: %d still hold packets after the frame's last", n, got)
		}
		writeAV(t, s, video, 4, false)
		writeAV(t, s, audio, 5, false)
		if got := heldBy(subs); got != 0 {
			t.Errorf("%d consumers: %d still hold packets after an audio packet", n, got)
		}
		close(release)
		for _, sub := range subs {
			testwait.Until(t, 5*time.Second, "every packet delivered", func() bool { return sub.Delivered() == 6 })
		}
	}
}

// A frame whose last packet never comes (lost, or the publisher paused)
// reaches the consumers holdMax later, in order and whole.
func TestHeldPacketsLeaveAfterHoldMax(t *testing.T) {
	s, video, _ := publishAV(t, "cam")
	s.holdMax = 20 * time.Millisecond
	var got [holdFrom]atomic.Int64
	for i := range got {
		next := uint16(0)
		if _, err := s.Subscribe("whep", ConsumerFunc(func(p *Packet) {
			if p.RTP.SequenceNumber != next {
				t.Errorf("consumer %d got packet %d, want %d", i, p.RTP.SequenceNumber, next)
			}
			next++
			got[i].Add(1)
		}), 64); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range uint16(10) {
		writeAV(t, s, video, seq, false)
	}
	for i := range got {
		testwait.Until(t, 5*time.Second, "the held packets to leave", func() bool { return got[i].Load() == 10 })
	}
}
