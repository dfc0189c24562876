package rtsp

// paddingFilter drops the padding-only packets a browser sends on its video
// SSRC to probe bandwidth (when RTX is not negotiated, as with Reel's WHIP
// answers) and renumbers the packets around them so that players see an
// unbroken sequence: ffmpeg reports every empty H.264 packet as an error,
// and a gap in sequence numbers reads as loss. One per forwarded track,
// used only by the stream's subscription goroutine; no allocation.
type paddingFilter struct {
	started bool
	highest uint16 // highest sequence number seen, wrap-aware
	dropped uint16 // padding packets dropped so far, mod 2^16
	// recent holds the drops within reorderWindow of highest: a late packet
	// numbered before them must not be shifted by them. Older drops are
	// before every packet still to come and only count in dropped.
	recent [paddingMemory]uint16
	n      int
}

const (
	// paddingMemory bounds how many recent drops are remembered; beyond
	// it the oldest is forgotten, which only matters for a packet arriving
	// later than 64 probes sent after it.
	paddingMemory = 64
	// reorderWindow is how late, in sequence numbers, a packet may arrive
	// and still be renumbered as of its place in the sequence.
	reorderWindow = 1024
)

// forward returns the sequence number to send a packet under and whether
// to send it at all; empty says the packet carries no payload.
func (f *paddingFilter) forward(seq uint16, empty bool) (uint16, bool) {
	if !f.started || isAfter(seq, f.highest) {
		f.started, f.highest = true, seq
		f.expire()
	}
	if empty {
		if !f.remembers(seq) { // a retransmitted probe is dropped once
			f.remember(seq)
			f.dropped++
		}
		return 0, false
	}
	// Drops numbered after seq came after it in the publisher's sequence,
	// so they do not shift this late packet.
	later := uint16(0)
	for _, d := range f.recent[:f.n] {
		if isAfter(d, seq) {
			later++
		}
	}
	return seq - (f.dropped - later), true
}

// isAfter reports whether a comes after b in a wrapping sequence.
func isAfter(a, b uint16) bool { return a != b && a-b < 1<<15 }

// expire forgets drops too far behind highest to be after any packet that
// can still arrive.
func (f *paddingFilter) expire() {
	for i := 0; i < f.n; {
		if f.highest-f.recent[i] >= reorderWindow {
			f.n--
			f.recent[i] = f.recent[f.n]
			continue
		}
		i++
	}
}

func (f *paddingFilter) remember(seq uint16) {
	if f.n < paddingMemory {
		f.recent[f.n] = seq
		f.n++
		return
	}
	oldest := 0
	for i := range f.recent {
		if f.highest-f.recent[i] > f.highest-f.recent[oldest] {
			oldest = i
		}
	}
	f.recent[oldest] = seq
}

func (f *paddingFilter) remembers(seq uint16) bool {
	for _, d := range f.recent[:f.n] {
		if d == seq {
			return true
		}
	}
	return false
}
