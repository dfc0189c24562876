package live

import (
	"runtime"
	"sync"
)

// A lane carries a stream's packets to many consumers on one goroutine.
// A subscription's own queue costs, per packet and per consumer, a lock
// to queue, a wake-up of its goroutine, a lock to take the packet off and
// two atomic operations on the packet's shared count. With WHEP viewers
// on lanes, the gateway's CPU per viewer-packet at 500 viewers fell by
// about a tenth, and at 1000 viewers on two cores the loss fell from
// 14-24% to 0-4% (docs/BENCHMARKS.md, issue 17). A consumer whose
// WritePacket never waits on its peer (a WHEP viewer that sends through
// the shared socket's batch) can move onto a lane instead
// (Subscription.Share): the stream queues each packet once per lane, and
// the lane's goroutine hands it to every member in turn. A stream has at most one lane per processor for each queue
// setting, and a new member joins the one with the fewest.
//
// What a member gives up is a queue of its own: its packets wait in the
// lane's, and when the machine cannot keep up the lane sheds for all its
// members alike (each member counts what it lost). A viewer on a slow
// network path still costs the lane nothing: a send to it never waits.
// A consumer whose write can wait (pion's path over TCP or a relay)
// keeps its own queue, so it can only fall behind alone.

// lane is one shared queue and the members it delivers to.
type lane struct {
	sub  *Subscription // the queue and its goroutine; not in Stream.subs
	opts SubscribeOptions

	// members is replaced whole under mu (copy on write), so a member
	// joins without waiting for a pass; pass is held for one burst's
	// pass over them, so a member that leaves (Subscription.Close) waits
	// for the pass in progress and is never called after.
	mu      sync.Mutex
	members subList
	pass    sync.Mutex
}

func newLane(s *Stream, opts SubscribeOptions) *lane {
	l := &lane{opts: opts}
	l.sub = newSubscription(s, "lane", nil, opts, l)
	l.sub.layers.Store(0) // no member yet
	return l
}

// laneBurst is the most packets a lane takes off its queue for one pass.
// A member is handed the whole burst before the next member, so a
// frame's packets to one viewer are written one after the other and
// leave as one segmented message (rtc/sendbatch.go): one packet per pass
// interleaved the viewers and took datagrams per message from 2.2 to 1.5.
const laneBurst = 64

// laneWrites bounds a pass's writes (burst × members), and with them how
// long the last member waits for the burst when the machine is behind (at
// ~2.5 µs a write, ~40 ms); a pass takes at least laneBurstMin packets,
// about a frame of a 2.5 Mbit/s stream. With 750 members a lane, 64
// packets a pass gave a p99 latency of 453-733 ms at 1500 viewers, this
// bound 375-399 ms (docs/BENCHMARKS.md).
const (
	laneWrites   = 16384
	laneBurstMin = 16
)

// runLane takes up to len(pass) queued packets off a lane's queue, whose
// lock is held and which has at least one, and hands them to the lane.
func (sub *Subscription) runLane(pass []*Packet) {
	most := len(pass)
	if m := laneWrites / max(sub.runs.size(), 1); m < most {
		most = max(m, laneBurstMin)
	}
	n := 0
	for ; n < most && sub.count > 0; n++ {
		pass[n] = sub.ring[sub.head]
		sub.ring[sub.head] = nil
		sub.head = (sub.head + 1) % len(sub.ring)
		sub.count--
	}
	more := sub.count > 0
	sub.mu.Unlock()
	sub.runs.writeBurst(pass[:n])
	for i := range n {
		pass[i].Release()
		pass[i] = nil
	}
	sub.delivered.Add(uint64(n))
	if more {
		runtime.Gosched() // a pass is hundreds of writes
	}
}

// writeBurst hands ps, in order, to every member in turn (each gets those
// of the tracks it takes), in the order they joined.
func (l *lane) writeBurst(ps []*Packet) {
	l.pass.Lock()
	for _, m := range l.members.load() {
		mask, n := m.layers.Load(), 0
		for _, p := range ps {
			if !p.inLayers(mask) {
				continue
			}
			m.consumer.WritePacket(p)
			n++
		}
		m.delivered.Add(uint64(n))
	}
	l.pass.Unlock()
}

// streamEnded runs after the lane's last packet: every member is told,
// as its own goroutine would have, and its subscription is done.
func (l *lane) streamEnded() {
	l.mu.Lock()
	members := l.members.load()
	l.members.store(nil)
	l.mu.Unlock()
	for _, m := range members {
		if e, ok := m.consumer.(StreamEnder); ok {
			e.StreamEnded()
		}
		close(m.done)
	}
}

// add makes m a member, from the next pass on.
func (l *lane) add(m *Subscription) {
	l.mu.Lock()
	l.members.add(m)
	l.selectLayersLocked()
	l.mu.Unlock()
}

// remove takes m off the lane once any pass in progress is over, and
// reports whether it was on it (false: the stream's end took it).
func (l *lane) remove(m *Subscription) bool {
	l.mu.Lock()
	was := l.members.remove(m)
	l.selectLayersLocked()
	l.mu.Unlock()
	l.pass.Lock() // a pass that read the old members is over
	l.pass.Unlock()
	return was
}

func (l *lane) size() int { return len(l.members.load()) }

// selectLayers makes the lane's queue take the simulcast layers that any
// member takes (SetLayers) and no other: the lane neither queues a layer
// nobody forwards nor, when it sheds, waits for and asks a keyframe of
// one (shed.go), while a member's own layer stays cut.
func (l *lane) selectLayers() {
	l.mu.Lock()
	l.selectLayersLocked()
	l.mu.Unlock()
}

func (l *lane) selectLayersLocked() {
	var mask uint32
	for _, m := range l.members.load() {
		mask |= m.layers.Load()
	}
	l.sub.layers.Store(mask)
}

// joinLane puts m on the lane of its queue settings with the fewest
// members, making one while there are fewer than processors, and takes
// m off the stream's fan-out. It returns nil, and changes nothing, once
// the stream has ended. m's goroutine calls it with m's lock held.
func (s *Stream) joinLane(m *Subscription) *lane {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	var best *lane
	same, bestSize := 0, 0
	for _, l := range s.lanes {
		if l.opts != m.opts {
			continue
		}
		same++
		if n := l.size(); best == nil || n < bestSize {
			best, bestSize = l, n
		}
	}
	most := s.maxLanes
	if most == 0 {
		most = runtime.GOMAXPROCS(0)
	}
	if best == nil || (bestSize > 0 && same < most) {
		best = newLane(s, m.opts)
		s.lanes = append(s.lanes, best)
		s.fan.add(best.sub)
	}
	best.add(m)
	s.fan.remove(m)
	return best
}
