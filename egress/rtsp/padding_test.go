package rtsp

import "testing"

func TestPaddingFilterRenumbers(t *testing.T) {
	type step struct {
		seq   uint16
		empty bool
		want  uint16 // when forwarded
	}
	for name, steps := range map[string][]step{
		"no padding": {{10, false, 10}, {11, false, 11}, {12, false, 12}},
		"probes between frames": {
			{10, false, 10}, {11, true, 0}, {12, true, 0}, {13, false, 11}, {14, false, 12}, {15, true, 0}, {16, false, 13},
		},
		"late packet from before the probes": {
			{10, false, 10}, {12, true, 0}, {13, true, 0}, {14, false, 12}, {11, false, 11}, {15, false, 13},
		},
		"retransmitted probe": {
			{10, false, 10}, {11, true, 0}, {11, true, 0}, {12, false, 11},
		},
		"wrap-around": {
			{65534, false, 65534}, {65535, true, 0}, {0, false, 65535}, {1, true, 0}, {2, false, 0},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var f paddingFilter
			var out []uint16
			for _, s := range steps {
				got, ok := f.forward(s.seq, s.empty)
				if ok == s.empty {
					t.Fatalf("seq %d (empty %v): forwarded %v", s.seq, s.empty, ok)
				}
				if ok {
					if got != s.want {
						t.Errorf("seq %d forwarded as %d, want %d", s.seq, got, s.want)
					}
					out = append(out, got)
				}
			}
			t.Logf("forwarded %v", out)
		})
	}
}

// Drops remembered from long ago must not shift packets once the
// sequence has wrapped around past them.
func TestPaddingFilterForgetsOldDrops(t *testing.T) {
	var f paddingFilter
	f.forward(100, true)
	for seq := uint16(101); seq != 99; seq++ {
		got, _ := f.forward(seq, false)
		if got != seq-1 {
			t.Fatalf("seq %d forwarded as %d, want %d", seq, got, seq-1)
		}
	}
}
