package frames

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// Run a fuzz target with e.g.
// go test -run=^$ -fuzz=FuzzDepacketize -fuzztime=20s ./live/frames
// (.ci/fuzz.sh runs them all). The seeds live in testdata/fuzz/<Target>.

// FuzzDepacketize feeds arbitrary payloads, in sequence, to each codec's
// assembler: the frame stage behind every recording and HLS muxer must
// drop garbage, never panic, and never emit an empty frame or unit. data is split into packets by
// length bytes; the marker bit is set on every third.
func FuzzDepacketize(f *testing.F) {
	f.Add(byte(0), []byte{3, 0x7c, 0x85, 0x00, 3, 0x7c, 0x45, 0x01})                               // H.264 FU-A
	f.Add(byte(0), []byte{9, 0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce, 2, 0x65, 0x88}) // STAP-A, IDR
	f.Add(byte(1), []byte{6, 0x90, 0x80, 0x01, 0x10, 0x02, 0x9d, 4, 0x80, 0x80, 0x02, 0x00})       // VP8
	f.Add(byte(2), []byte{5, 0x8c, 0x01, 0x02, 0x03, 0x04, 3, 0x84, 0x05, 0x06})                   // VP9
	f.Add(byte(3), []byte{6, 0x18, 0x0a, 0x0b, 0x00, 0x00, 0x00, 4, 0x10, 0x32, 0x00, 0x12})       // AV1
	f.Add(byte(4), []byte{3, 0xfc, 0xff, 0xfe})                                                    // Opus
	// H.265: the fixture's parameter sets, so that mutations reach the SPS
	// parser and the hvcC; an aggregation packet with a truncated SPS.
	f.Add(byte(5), h265FuzzSeed(f))
	f.Add(byte(5), []byte{10, 0x60, 0x01, 0x00, 0x02, 0x40, 0x01, 0x00, 0x02, 0x42, 0x01, 3, 0x26, 0x01, 0xaf})
	codecs := []live.Codec{live.H264, live.VP8, live.VP9, live.AV1, live.Opus, live.H265}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		c := codecs[int(which)%len(codecs)]
		tr := &live.Track{Kind: c.Kind(), Codec: c, ClockRate: c.ClockRate()}
		asm, err := New(tr, Config{})
		if err != nil {
			t.Fatal(err)
		}
		check := func(fr Frame) {
			if len(fr.Units) == 0 {
				t.Fatalf("%s: an empty frame", c)
			}
			for _, u := range fr.Units {
				if len(u) == 0 {
					t.Fatalf("%s: an empty unit", c)
				}
			}
		}
		for seq := uint16(0); len(data) > 0; seq++ {
			n := min(int(data[0]), len(data)-1)
			payload := data[1 : 1+n]
			data = data[1+n:]
			pkt := rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: uint32(seq/3) * 3000, Marker: seq%3 == 2}, Payload: payload}
			asm.Push(&live.Packet{Track: tr, RTP: pkt}, check)
		}
	})
}

// h265FuzzSeed is a FuzzDepacketize input for one H.265 keyframe: the
// fixture's VPS, SPS and PPS in an aggregation packet, then the start of
// its first IDR slice twice, the second with the marker bit.
func h265FuzzSeed(f *testing.F) []byte {
	samples, err := testmedia.ReadH265(testmedia.Path("h265.h265"), 30)
	if err != nil {
		f.Fatal(err)
	}
	ap := []byte{0x60, 0x01}
	var idr []byte
	for _, n := range testmedia.SplitAnnexB(samples[0].Data) {
		switch testmedia.H265Type(n) {
		case 32, 33, 34: // VPS, SPS, PPS
			ap = append(append(ap, byte(len(n)>>8), byte(len(n))), n...)
		case 19, 20: // IDR
			if idr == nil {
				idr = n[:min(len(n), 16)]
			}
		}
	}
	if len(ap) > 255 || idr == nil {
		f.Fatalf("the fixture's first access unit does not fit a seed: %d bytes of parameter sets", len(ap))
	}
	seed := append([]byte{byte(len(ap))}, ap...)
	for range 2 {
		seed = append(append(seed, byte(len(idr))), idr...)
	}
	return seed
}
