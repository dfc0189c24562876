package live

import (
	"bytes"
	"testing"
)

// Fuzz targets for what a stranger's RTP payloads reach on every packet:
// keyframe detection and the parameter-set observers. Run one with e.g.
// go test -run=^$ -fuzz=FuzzH264Params -fuzztime=20s ./live (.ci/fuzz.sh
// runs them all). The seeds live in testdata/fuzz/<Target>.

// FuzzIsKeyframeStart: payload inspection of every codec never reads past
// the payload.
func FuzzIsKeyframeStart(f *testing.F) {
	f.Add([]byte{0x65, 0x88})                                           // H.264 IDR
	f.Add([]byte{0x18, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}) // STAP-A SPS PPS
	f.Add([]byte{0x7c, 0x85, 0x00})                                     // FU-A IDR start
	f.Add([]byte{0x90, 0x80, 0x80, 0x01, 0x10, 0x02})                   // VP8 X I M picture id
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0x08})
	f.Add([]byte{0x60, 0x01, 0x00, 0x03, 0x40, 0x01, 0x0c}) // H.265 AP with a VPS
	f.Add([]byte{0x62, 0x01, 0x93})                         // H.265 FU IDR start
	codecs := []Codec{H264, H265, VP8, VP9, AV1, Opus}
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, c := range codecs {
			_ = IsKeyframeStart(c, payload)
		}
	})
}

// FuzzH264Params: the parameter-set observer runs on every H.264 packet of
// every publisher. It keeps only whole SPS/PPS NAL units, of their type.
func FuzzH264Params(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xe0, 0x1f})
	f.Add([]byte{0x18, 0x00, 0x04, 0x67, 0x42, 0xe0, 0x1f, 0x00, 0x02, 0x68, 0xce, 0x00, 0x01, 0x65})
	f.Add([]byte{0x18, 0x00, 0x00})
	f.Add([]byte{0x18, 0xff, 0xff, 0x67})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var h h264Params
		in := bytes.Clone(payload)
		h.observe(payload)
		if !bytes.Equal(in, payload) {
			t.Fatal("observe modified the payload")
		}
		sps, pps := h.get()
		if sps != nil && (len(sps) == 0 || sps[0]&0x1f != naluSPS) {
			t.Fatalf("kept %x as SPS", sps)
		}
		if pps != nil && (len(pps) == 0 || pps[0]&0x1f != naluPPS) {
			t.Fatalf("kept %x as PPS", pps)
		}
		// What was kept must not alias the packet, which is recycled.
		if len(payload) > 0 && (sps != nil || pps != nil) {
			sps0, pps0 := bytes.Clone(sps), bytes.Clone(pps)
			for i := range payload {
				payload[i] ^= 0xff
			}
			sps2, pps2 := h.get()
			if !bytes.Equal(sps0, sps2) || !bytes.Equal(pps0, pps2) {
				t.Fatal("kept parameter sets alias the packet buffer")
			}
		}
	})
}

// FuzzH265Params: the H.265 observer keeps only whole VPS/SPS/PPS NAL
// units, of their type, never aliasing the (recycled) packet.
func FuzzH265Params(f *testing.F) {
	f.Add([]byte{0x40, 0x01, 0x0c, 0x01})
	f.Add([]byte{0x60, 0x01, 0x00, 0x04, 0x40, 0x01, 0x0c, 0x01, 0x00, 0x03, 0x42, 0x01, 0x01})
	f.Add([]byte{0x60, 0x01, 0x00, 0x00})
	f.Add([]byte{0x60, 0x01, 0xff, 0xff, 0x44})
	f.Fuzz(func(t *testing.T, payload []byte) {
		var h h265Params
		in := bytes.Clone(payload)
		h.observe(payload)
		if !bytes.Equal(in, payload) {
			t.Fatal("observe modified the payload")
		}
		vps, sps, pps := h.get()
		for want, got := range map[byte][]byte{h265VPS: vps, h265SPS: sps, h265PPS: pps} {
			if got != nil && (len(got) < 2 || h265Type(got[0]) != want) {
				t.Fatalf("kept %x as NAL type %d", got, want)
			}
		}
		if len(payload) > 0 {
			kept := [][]byte{bytes.Clone(vps), bytes.Clone(sps), bytes.Clone(pps)}
			for i := range payload {
				payload[i] ^= 0xff
			}
			v2, s2, p2 := h.get()
			if !bytes.Equal(kept[0], v2) || !bytes.Equal(kept[1], s2) || !bytes.Equal(kept[2], p2) {
				t.Fatal("kept parameter sets alias the packet buffer")
			}
		}
	})
}
