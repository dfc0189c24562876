package recorder

import "time"

// queuedFrame is a frame on the file's timeline, waiting to be written.
type queuedFrame struct {
	track    int
	keyframe bool
	ts       int64
	data     []byte
	queued   time.Time // when it was queued, by the packets' arrival
	// spec, on the first keyframe of another simulcast layer, is its
	// track's description from it on: a new segment starts there.
	spec *trackSpec
}

// interleaver orders frames of all tracks by timestamp: Matroska players
// expect them interleaved, and ebml-go cuts clusters by the frames it sees.
type interleaver struct {
	q [][]queuedFrame
}

// push queues f and returns the frames that can be written now, in order:
// a frame is written once every track has a frame queued (the earliest of
// all goes first), or once it has waited maxInterleaveLag (by now, the
// latest packet's arrival): another track went quiet. Waiting by arrival,
// not by timestamps, lets a batch of one track's frames (held while the
// stream's clock settled) wait for the other track's batch.
func (il *interleaver) push(f queuedFrame, now time.Time) []queuedFrame {
	il.q[f.track] = append(il.q[f.track], f)
	var out []queuedFrame
	for {
		best, all := -1, true
		for i, q := range il.q {
			if len(q) == 0 {
				all = false
				continue
			}
			if best < 0 || q[0].ts < il.q[best][0].ts {
				best = i
			}
		}
		if best < 0 || (!all && now.Sub(il.q[best][0].queued) <= maxInterleaveLag) {
			return out
		}
		out = append(out, il.q[best][0])
		il.q[best] = il.q[best][1:]
	}
}

// flush returns every queued frame, in order.
func (il *interleaver) flush() []queuedFrame {
	var out []queuedFrame
	for {
		best := -1
		for i, q := range il.q {
			if len(q) > 0 && (best < 0 || q[0].ts < il.q[best][0].ts) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		out = append(out, il.q[best][0])
		il.q[best] = il.q[best][1:]
	}
}
