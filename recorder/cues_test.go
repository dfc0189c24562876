package recorder

import (
	"bytes"
	"testing"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// cuesInto fills the reserved space exactly, whatever is left after the
// Cues (1 byte: a wider size; more: a Void), and ebml-go reads back the
// cue points and nothing else.
func TestCuesIntoFillsTheSpace(t *testing.T) {
	points := []webm.CuePoint{
		{CueTime: 0, CueTrackPositions: []webm.CueTrackPosition{{CueTrack: 1, CueClusterPosition: 1000}}},
		{CueTime: 5000, CueTrackPositions: []webm.CueTrackPosition{{CueTrack: 1, CueClusterPosition: 90000}}},
	}
	min, err := cuesInto(points, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	need := int64(bytes.Index(min, []byte{0xEC})) // where the Void begins
	if _, err := cuesInto(points, need-1); err == nil {
		t.Error("Cues larger than the space were written")
	}
	for space := need; space < need+300; space++ {
		b, err := cuesInto(points, space)
		if err != nil {
			t.Fatalf("space %d: %v", space, err)
		}
		if int64(len(b)) != space {
			t.Fatalf("space %d: wrote %d bytes", space, len(b))
		}
		var doc struct {
			Cues webm.Cues `ebml:"Cues"`
		}
		if err := ebml.Unmarshal(bytes.NewReader(b), &doc); err != nil {
			t.Fatalf("space %d: ebml-go cannot read it back: %v", space, err)
		}
		if len(doc.Cues.CuePoint) != 2 || doc.Cues.CuePoint[1].CueTrackPositions[0].CueClusterPosition != 90000 {
			t.Fatalf("space %d: read back %+v", space, doc.Cues)
		}
		if n, err := elementSize(bytes.NewReader(b), 0); err != nil || (n != space && !bytes.Equal(b[n:n+1], []byte{0xEC})) {
			t.Fatalf("space %d: the Cues take %d bytes and no Void follows (%v)", space, n, err)
		}
	}
}
