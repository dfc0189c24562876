package recorder

import (
	"slices"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/rtpreorderer"
	"github.com/pion/rtp"
)

// TestMissingBefore places each loss the real reorderer reports before the
// packet that follows it, across the sequence number wrap.
func TestMissingBefore(t *testing.T) {
	for _, start := range []uint16{100, 65533} {
		var r rtpreorderer.Reorderer //nolint:staticcheck // as the recording uses it
		r.BufferSize = 4
		r.Initialize()
		// Packets 1 and 4 (after start) never come; the reorderer gives
		// up on them when packet 5 does not fit its buffer.
		var got []uint
		var seqs []uint16
		for _, off := range []uint16{0, 2, 3, 5} {
			pkts, lost := r.Process(&rtp.Packet{Header: rtp.Header{SequenceNumber: start + off}})
			for i, p := range pkts {
				seqs = append(seqs, p.SequenceNumber-start)
				got = append(got, missingBefore(pkts, i, lost))
			}
		}
		if want := []uint16{0, 2, 3, 5}; !slices.Equal(seqs, want) {
			t.Fatalf("start %d: the reorderer returned %v, want %v", start, seqs, want)
		}
		if want := []uint{0, 1, 0, 1}; !slices.Equal(got, want) {
			t.Errorf("start %d: missing before each packet %v, want %v", start, got, want)
		}
	}
}
