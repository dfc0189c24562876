package rtc

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// The GCM sender's packets are byte for byte pion's (whose SRTP is
// interoperable with libsrtp, so with browsers): two SSRCs, headers with
// CSRCs and extensions, padding, a wrap of the sequence numbers, and
// resends from before and after it.
func TestGCMSenderMatchesPion(t *testing.T) {
	key := []byte("0123456789abcdef")
	salt := []byte("saltsaltsalt")
	ours, err := newGCMSender(key, salt)
	if err != nil {
		t.Fatal(err)
	}
	pion, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	type send struct {
		ssrc uint32
		seq  uint16
	}
	var sends []send
	for seq := uint16(65530); seq != 10; seq++ {
		sends = append(sends, send{1111, seq})
		if seq%3 == 0 {
			sends = append(sends, send{2222, seq * 7})
		}
	}
	sends = append(sends,
		send{1111, 65533}, // resent after the wrap: the counter before it
		send{1111, 3},     // and after
		send{1111, 11},    // new again
		send{2222, 40000}, // half the space on: a new packet, no wrap
	)
	buf := make([]byte, rtpWriterBuffer)
	for i, s := range sends {
		p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: s.ssrc, SequenceNumber: s.seq, Timestamp: uint32(i) * 3000, Marker: i%5 == 0},
			Payload: bytes.Repeat([]byte{byte(i)}, 50+i*13)}
		switch i % 4 {
		case 1:
			p.CSRC = []uint32{7, 8}
		case 2:
			if err := p.SetExtension(3, []byte{1, 2}); err != nil {
				t.Fatal(err)
			}
		case 3:
			p.Header.Padding, p.Header.PaddingSize = true, 9
		}
		n, err := marshalRTP(p, buf[:cap(buf)-srtpOverhead])
		if err != nil {
			t.Fatal(err)
		}
		want, err := pion.EncryptRTP(nil, buf[:n], &rtp.Header{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := ours.seal(buf, n, p.Header.MarshalSize(), s.ssrc, s.seq)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("send %d (ssrc %d seq %d): ours differs from pion's\n% x\n% x", i, s.ssrc, s.seq, got, want)
		}
	}
}

// A resend from before the first packet of an SSRC has no index.
func TestGCMSenderRefusesAPacketBeforeTheFirst(t *testing.T) {
	s, err := newGCMSender([]byte("0123456789abcdef"), []byte("saltsaltsalt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.rollover(1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.rollover(1, 65000); err == nil {
		t.Fatal("a packet numbered before the first one sent got an index")
	}
}
