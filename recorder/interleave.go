package recorder

// queuedFrame is a frame on the file's timeline, waiting to be written.
type queuedFrame struct {
	track    int
	keyframe bool
	ts       int64
	data     []byte
}

// interleaver orders frames of all tracks by timestamp: Matroska players
// expect them interleaved, and ebml-go cuts clusters by the frames it sees.
type interleaver struct {
	q      [][]queuedFrame
	newest int64
}

// push queues f and returns the frames that can be written now, in order:
// a frame is written once every track has a later one queued, or when it is
// maxInterleaveLag older than the newest frame (another track is quiet).
func (il *interleaver) push(f queuedFrame) []queuedFrame {
	il.q[f.track] = append(il.q[f.track], f)
	il.newest = max(il.newest, f.ts)
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
		if best < 0 || (!all && il.newest-il.q[best][0].ts <= maxInterleaveLag) {
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
