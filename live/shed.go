package live

import "time"

// Shedding bounds a consumer's latency. A consumer that cannot keep up (a
// viewer on a slow path, or every viewer of a saturated machine) would
// otherwise see its queue grow to its size (DefaultQueueSize, ~1.5 s of a
// 2.5 Mbit/s stream) and then lose packets at random, in the middle of
// frames. With a latency budget (SubscribeOptions.LatencyBudget) the queue
// holds at most that much media by arrival time: when a packet arrives and
// the oldest queued one is older than the budget, the media queued before
// half the budget ago is shed, for this consumer alone. Audio packets are
// independent and simply go. A video track that lost packets this way is
// useless to a decoder until its next keyframe, so its packets are shed
// too until a keyframe start (queued or new), and a keyframe of each track
// it waits on is asked for (at most once per shedKeyframeInterval per
// consumer, and per track for all consumers together).
// A subscription without a budget (the recorder) never sheds.

// shedKeyframeInterval bounds the keyframe requests of shedding: per
// consumer, and per track for all consumers together, so a saturated
// machine whose viewers all shed does not make the publisher send
// keyframes (the largest frames) ever more often.
const shedKeyframeInterval = time.Second

// shedState is a subscription's shedding, guarded by its mutex.
type shedState struct {
	budget time.Duration
	// waiting holds the gate bits (gateBit) of the video tracks whose
	// packets are shed until their next keyframe start; track is one of
	// them, which names the others (its siblings, for a layer).
	waiting uint32
	track   *Track
	asked   bool // a keyframe was asked for since waiting became non-zero
	lastAsk time.Time
}

// plainVideoBit stands for a video track without layers in
// shedState.waiting, above every layer's bit (MaxLayers).
const plainVideoBit = 1 << 31

// gateBit is t's bit in shedState.waiting: its layer bit, or
// plainVideoBit.
func gateBit(t *Track) uint32 {
	if t.bit != 0 {
		return t.bit
	}
	return plainVideoBit
}

// shedAsk is the keyframes a shedding consumer asks for: of every track
// whose gate bit is in bits, t being one of them (none if bits is 0).
type shedAsk struct {
	t    *Track
	bits uint32
}

// shedLocked runs before p is queued: it sheds the oldest media if the
// queue is over its budget or full, and reports whether p is queued (not
// if p is video of a track waiting for a keyframe) and the keyframes to
// ask for outside the lock.
func (sub *Subscription) shedLocked(p *Packet) (keep bool, ask shedAsk) {
	st := &sub.shed
	if sub.count > 0 {
		full := sub.count == len(sub.ring)
		if full || p.Arrival.Sub(sub.ring[sub.head].Arrival) > st.budget {
			sub.shedQueueLocked(p.Arrival, full)
		}
	}
	if st.waiting != 0 {
		// A layer the consumer no longer selects (on a lane: no member
		// selects) sends it nothing to wait for; its bit would keep the
		// wait, and its request, open.
		st.waiting &= sub.layers.Load() | plainVideoBit
	}
	keep = true
	if st.waiting != 0 && p.Track.Kind == Video {
		if b := gateBit(p.Track); st.waiting&b != 0 {
			if p.key {
				st.waiting &^= b
			} else {
				keep = false
				sub.shedCount.Add(1)
			}
		}
	}
	if st.waiting != 0 && !st.asked && p.Arrival.Sub(st.lastAsk) >= shedKeyframeInterval {
		st.asked, st.lastAsk = true, p.Arrival
		ask = shedAsk{st.track, st.waiting}
	}
	return keep, ask
}

// shedQueueLocked sheds the queued packets that arrived before half the
// budget ago (or the older half of a full queue), then the video of every
// track it cut until that track's next queued keyframe start. It keeps
// the order of what remains.
func (sub *Subscription) shedQueueLocked(now time.Time, full bool) {
	st := &sub.shed
	n := len(sub.ring)
	cut := now.Add(-st.budget / 2)
	if mid := sub.ring[(sub.head+sub.count/2)%n].Arrival; full && mid.After(cut) {
		cut = mid
	}
	wasWaiting := st.waiting != 0
	kept := 0
	for i := 0; i < sub.count; i++ {
		q := sub.ring[(sub.head+i)%n]
		sub.ring[(sub.head+i)%n] = nil
		drop := q.Arrival.Before(cut)
		if q.Track.Kind == Video {
			b := gateBit(q.Track)
			switch {
			case drop:
				st.waiting |= b
				st.track = q.Track
			case st.waiting&b != 0 && q.key:
				st.waiting &^= b
			case st.waiting&b != 0:
				drop = true
			}
		}
		if drop {
			q.Release()
			sub.shedCount.Add(1)
			continue
		}
		sub.ring[(sub.head+kept)%n] = q
		kept++
	}
	sub.count = kept
	if !wasWaiting && st.waiting != 0 {
		st.asked = false
	}
}

// askKeyframe asks the publisher, for a consumer that shed video, for a
// keyframe of each track it waits on: of every layer it cut, not only the
// last, for a consumer that takes several (a viewer between two layers,
// a lane whose members take different ones).
func (sub *Subscription) askKeyframe(a shedAsk) {
	if a.bits == 0 {
		return
	}
	if a.t.parent == nil {
		sub.stream.requestShedKeyframe(a.t)
		return
	}
	for _, l := range a.t.parent.Layers() {
		if a.bits&l.bit != 0 {
			sub.stream.requestShedKeyframe(l)
		}
	}
}

// requestShedKeyframe asks for a keyframe of t (a layer's, for a simulcast
// layer) on behalf of consumers that shed its video, merged over every
// consumer of t to one per shedKeyframeInterval.
func (s *Stream) requestShedKeyframe(t *Track) {
	t.shedKF.request(shedKeyframeInterval, func() { s.RequestLayerKeyframe(t) })
}
