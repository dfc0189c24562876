package recorder

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

// TestH265DecoderConfigMatchesFFmpeg: the fixture's first IRAP access
// unit, packetized as publishers send it (parameter sets aggregated or
// alone), is assembled into one length-prefixed keyframe whose hvcC is the
// one ffmpeg's Matroska muxer writes for the same stream, byte for byte.
func TestH265DecoderConfigMatchesFFmpeg(t *testing.T) {
	requireTools(t)
	path := testmedia.Path("h265.h265")
	ref := filepath.Join(t.TempDir(), "ref.mkv")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-c", "copy", ref).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg remux: %v\n%s", err, out)
	}
	f, err := os.Open(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readHeader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	want := h.Tracks[0].CodecPrivate
	if h.Tracks[0].CodecID != "V_MPEGH/ISO/HEVC" || len(want) < 23 {
		t.Fatalf("ffmpeg's track: %s, %d bytes of CodecPrivate", h.Tracks[0].CodecID, len(want))
	}

	samples, err := testmedia.ReadH265(path, 30)
	if err != nil {
		t.Fatal(err)
	}
	au := samples[0]
	nals := testmedia.SplitAnnexB(au.Data)
	for _, separate := range []bool{false, true} {
		tr := &live.Track{Kind: live.Video, Codec: live.H265, ClockRate: 90000}
		asm, err := frames.New(tr, frames.Config{})
		if err != nil {
			t.Fatal(err)
		}
		p := rtp.NewPacketizer(1200, 104, 1, &codecs.H265Payloader{SkipAggregation: separate}, rtp.NewFixedSequencer(1), 90000)
		var got *frame
		for _, pkt := range p.Packetize(au.Data, 3000) {
			asm.Push(&live.Packet{Track: tr, RTP: *pkt}, func(fr frames.Frame) {
				if got != nil {
					t.Fatalf("separate=%v: two frames from one access unit", separate)
				}
				if got, err = toMatroska(live.H265, fr); err != nil {
					t.Fatalf("separate=%v: %v", separate, err)
				}
			})
		}
		if got == nil || !got.keyframe || got.width != 640 || got.height != 360 {
			t.Fatalf("separate=%v: frame %+v, want a 640x360 keyframe", separate, got)
		}
		if !bytes.Equal(got.codecPrivate, want) {
			t.Errorf("separate=%v: hvcC\n%x\nffmpeg writes\n%x", separate, got.codecPrivate, want)
		}
		// The frame is the access unit's NAL units, each after its 4-byte
		// length, parameter sets included.
		var lp []byte
		for _, n := range nals {
			lp = binary.BigEndian.AppendUint32(lp, uint32(len(n)))
			lp = append(lp, n...)
		}
		if !bytes.Equal(got.data, lp) {
			t.Errorf("separate=%v: frame of %d bytes is not the access unit length-prefixed (%d bytes)", separate, len(got.data), len(lp))
		}
	}
}
