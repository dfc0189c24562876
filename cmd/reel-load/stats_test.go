package main

import (
	"math"
	"testing"

	"github.com/reel-gateway/reel/internal/testmedia"
)

func TestHistogramBuckets(t *testing.T) {
	for _, us := range []int64{0, 1, 63, 64, 65, 127, 128, 1000, 4999, 123456, 9_999_999} {
		b := bucketOf(us)
		if v := bucketValue(b); math.Abs(v-float64(us)) > 0.016*float64(us)+1 {
			t.Errorf("%d µs lands in bucket %d worth %.1f µs", us, b, v)
		}
		if b > 0 && bucketOf(int64(bucketValue(b-1))) != b-1 {
			t.Errorf("bucket %d does not hold its own value", b-1)
		}
	}
	var h histogram
	for us := int64(1); us <= 10000; us++ {
		h.add(us)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 5}, {0.99, 9.9}, {1, 10}} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want) > 0.02*tc.want {
			t.Errorf("quantile(%g) = %.3f ms, want %.3f", tc.q, got, tc.want)
		}
	}
	if h.max != 10000 || h.n != 10000 {
		t.Errorf("max %d n %d", h.max, h.n)
	}
	// No ceiling at seconds: a gateway whose queues grow is measured.
	var slow histogram
	for _, s := range []int64{1, 5, 60, 600} {
		slow.add(s * 1_000_000)
	}
	if got := slow.quantile(1); math.Abs(got-600_000) > 0.02*600_000 {
		t.Errorf("a 600 s latency reads %.0f ms", got)
	}
	if got := slow.quantile(0.5); math.Abs(got-5000) > 0.02*5000 {
		t.Errorf("p50 of 1, 5, 60, 600 s reads %.0f ms, want 5000", got)
	}
}

func TestLossAcrossWrap(t *testing.T) {
	var tr trackRecv
	for _, seq := range []uint16{65533, 65534, 0, 2, 1, 3} { // 65535 lost, 1 late
		tr.add(seq, 100, 1000)
	}
	if tr.expected() != 7 || tr.received != 6 || tr.lost() != 1 || tr.late != 1 {
		t.Errorf("expected %d received %d lost %d late %d; want 7 6 1 1", tr.expected(), tr.received, tr.lost(), tr.late)
	}
}

func TestJitterIsTransitVariation(t *testing.T) {
	var steady, shaky trackRecv
	for i := range 1000 {
		steady.add(uint16(i), 100, 500_000)
		shaky.add(uint16(i), 100, int64(500_000+(i%2)*1_000_000))
	}
	if steady.jitterMS() != 0 {
		t.Errorf("constant transit gives jitter %.3f ms", steady.jitterMS())
	}
	if j := shaky.jitterMS(); math.Abs(j-1) > 0.01 {
		t.Errorf("transit alternating by 1 ms gives jitter %.3f ms, want 1", j)
	}
}

func TestStampLookupChecksTimestamp(t *testing.T) {
	var s streamStamps
	s.video.stamp(7, 9000, 42)
	if got := s.table(true).lookup(7, 9000); got != 42 {
		t.Errorf("lookup = %d, want 42", got)
	}
	if got := s.table(true).lookup(7, 9001); got != 0 {
		t.Errorf("another packet with the same sequence number matched: %d", got)
	}
	if got := s.table(false).lookup(7, 9000); got != 0 {
		t.Errorf("the audio table answered for video: %d", got)
	}
}

// Padding a fixture with filler NAL units keeps every access unit whole and
// reaches the asked bitrate.
func TestVideoSourcePadsToBitrate(t *testing.T) {
	if _, err := testmedia.Lookup("h264.h264"); err != nil {
		t.Skip(err)
	}
	path, rate, err := videoSource("h264", testmedia.Path("h264.h264"), 2_000_000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(rate-2_000_000) > 20_000 {
		t.Errorf("padded to %.0f bit/s, want 2000000", rate)
	}
	orig, err := testmedia.ReadH264(testmedia.Path("h264.h264"), fixtureFPS)
	if err != nil {
		t.Fatal(err)
	}
	padded, err := testmedia.ReadH264(path, fixtureFPS)
	if err != nil {
		t.Fatal(err)
	}
	if len(padded) != len(orig) {
		t.Fatalf("%d access units after padding, %d before", len(padded), len(orig))
	}
	types := testmedia.NALTypes(padded[0].Data)
	if types[len(types)-1] != 12 || !padded[0].Keyframe {
		t.Errorf("first access unit: NAL types %v, keyframe %v; want a keyframe ending in filler (12)", types, padded[0].Keyframe)
	}
	if _, rate, _ := videoSource("h264", testmedia.Path("h264.h264"), 100_000, t.TempDir()); rate > 1_000_000 || rate < 100_000 {
		t.Errorf("a bitrate below the file's changed it: %.0f", rate)
	}
}
