package live

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Consumer receives a stream's packets. WritePacket runs on the
// subscription's own goroutine, one packet at a time and in arrival order;
// the packet is valid until WritePacket returns unless the consumer calls
// Retain on it.
type Consumer interface {
	WritePacket(p *Packet)
}

// StreamEnder is implemented by consumers that want to know, on their own
// goroutine and after the last queued packet, that the publisher has gone.
// It is not called when the consumer itself closes the subscription.
type StreamEnder interface {
	StreamEnded()
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(p *Packet)

// WritePacket implements Consumer.
func (f ConsumerFunc) WritePacket(p *Packet) { f(p) }

// DefaultQueueSize is the number of packets a consumer may lag behind before
// the hub starts dropping for it: about 1.5 s of a 2.5 Mbit/s stream.
const DefaultQueueSize = 512

// SubscribeOptions are a consumer's queue settings.
type SubscribeOptions struct {
	// QueueSize is the most packets queued; 0 means DefaultQueueSize.
	QueueSize int
	// LatencyBudget bounds the media queued for the consumer, by the
	// packets' arrival times: beyond it the oldest media is shed (shed.go).
	// 0 never sheds (the recorder, which must lose nothing).
	LatencyBudget time.Duration
	// ID names the consumer in the API (a WHEP session's id); optional.
	ID string
}

// Subscription is one consumer's bounded queue and the goroutine draining
// it. The publisher never waits on it: when the queue is full the packet is
// dropped for this consumer alone and counted; with a latency budget, the
// oldest media beyond it is shed first (shed.go).
type Subscription struct {
	// Kind names the output ("whep", "rtsp", "hls", "record") for stats.
	Kind string
	// ID names the consumer, "" if it has no name of its own.
	ID string

	stream   *Stream
	consumer Consumer
	opts     SubscribeOptions // the queue's settings, without the ID

	// runs is the lane this queue is the queue of (nil for a consumer's
	// own): its goroutine hands the lane what has queued, in bursts.
	runs *lane

	mu     sync.Mutex
	cond   sync.Cond
	ring   []*Packet
	head   int // next slot to read
	count  int
	closed bool // Close was called: discard what is queued
	eof    bool // the stream ended: deliver what is queued, then stop
	shed   shedState
	// share asks the goroutine to move the consumer onto a lane (Share),
	// and takes the answer.
	share chan bool

	// lane is the lane the consumer is on, and laneDropped and laneShed
	// the lane's counts when it joined (set before the pointer); nil
	// again once it has left (Close).
	lane                  atomic.Pointer[lane]
	laneDropped, laneShed uint64

	// layers selects the simulcast layers delivered (LayerMask); packets
	// of other tracks always are.
	layers    atomic.Uint32
	delivered atomic.Uint64
	dropped   atomic.Uint64
	shedCount atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
}

func newSubscription(s *Stream, kind string, c Consumer, opts SubscribeOptions, runs *lane) *Subscription {
	size := opts.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	sub := &Subscription{
		Kind:     kind,
		ID:       opts.ID,
		stream:   s,
		consumer: c,
		opts:     SubscribeOptions{QueueSize: size, LatencyBudget: opts.LatencyBudget},
		runs:     runs,
		ring:     make([]*Packet, size),
		done:     make(chan struct{}),
		shed:     shedState{budget: opts.LatencyBudget},
	}
	sub.layers.Store(AllLayers)
	sub.cond.L = &sub.mu
	go sub.run()
	return sub
}

// push enqueues p with a new reference, or drops it if the queue is full.
// A packet of a simulcast layer the consumer did not select is skipped.
// With a latency budget, the oldest media is shed first (shed.go).
func (sub *Subscription) push(p *Packet) {
	if !p.inLayers(sub.layers.Load()) {
		return
	}
	sub.mu.Lock()
	if sub.closed || sub.eof || sub.lane.Load() != nil {
		// (a fan-out that read the stream's list before the consumer
		// moved onto a lane: the lane has the packet)
		sub.mu.Unlock()
		return
	}
	var ask shedAsk
	if sub.shed.budget > 0 {
		var keep bool
		if keep, ask = sub.shedLocked(p); !keep {
			sub.mu.Unlock()
			sub.askKeyframe(ask)
			return
		}
	}
	if sub.count == len(sub.ring) {
		sub.mu.Unlock()
		sub.dropped.Add(1)
		sub.askKeyframe(ask)
		return
	}
	p.Retain()
	sub.ring[(sub.head+sub.count)%len(sub.ring)] = p
	sub.count++
	sub.mu.Unlock()
	sub.cond.Signal()
	sub.askKeyframe(ask)
}

func (sub *Subscription) run() {
	burst := 0
	var pass []*Packet // a lane's burst
	if sub.runs != nil {
		pass = make([]*Packet, laneBurst)
	}
	for {
		sub.mu.Lock()
		for sub.count == 0 && !sub.closed && !sub.eof && sub.share == nil {
			sub.cond.Wait()
		}
		if ask := sub.share; ask != nil && !sub.closed && !sub.eof {
			sub.share = nil
			sub.drainLocked()
			l := sub.stream.joinLane(sub)
			if l != nil {
				sub.laneDropped, sub.laneShed = l.sub.dropped.Load(), l.sub.shedCount.Load()
				sub.lane.Store(l)
				l.selectLayers() // a SetLayers before the Store
			}
			sub.mu.Unlock()
			ask <- l != nil
			if l != nil {
				return // the lane delivers from now on, and closes done
			}
			continue
		}
		if sub.closed || (sub.eof && sub.count == 0) {
			sub.drainLocked()
			ended := !sub.closed
			sub.mu.Unlock()
			if sub.runs != nil {
				if ended {
					sub.runs.streamEnded()
				}
			} else if e, ok := sub.consumer.(StreamEnder); ok && ended {
				e.StreamEnded()
			}
			close(sub.done)
			return
		}
		if sub.runs != nil {
			sub.runLane(pass)
			continue
		}
		p := sub.ring[sub.head]
		sub.ring[sub.head] = nil
		sub.head = (sub.head + 1) % len(sub.ring)
		sub.count--
		more := sub.count > 0
		sub.mu.Unlock()

		sub.consumer.WritePacket(p)
		p.Release()
		sub.delivered.Add(1)
		if burst++; !more {
			burst = 0
		} else if burst == yieldEvery {
			burst = 0
			runtime.Gosched()
		}
	}
}

// yieldEvery bounds how many packets a consumer with a backlog delivers
// before it lets other goroutines run. When the machine is saturated
// every consumer has a backlog; a goroutine that drained its whole queue
// in one turn would make a round of all of them last as long as the
// backlogs, and the publisher's receive path (pion's goroutines, then the
// session's read loop) would wait a round before a packet even reaches
// the hub, where no latency budget sees it. At 1050 viewers on two cores,
// 32 took the p99 latency from 758 to 498 ms at no measurable cost per
// packet; 8 gave 449 ms for 40% more CPU per packet (docs/BENCHMARKS.md).
const yieldEvery = 32

func (sub *Subscription) drainLocked() {
	for ; sub.count > 0; sub.count-- {
		sub.ring[sub.head].Release()
		sub.ring[sub.head] = nil
		sub.head = (sub.head + 1) % len(sub.ring)
	}
}

// end marks the stream as finished: queued packets are still delivered.
func (sub *Subscription) end() {
	sub.mu.Lock()
	sub.eof = true
	sub.mu.Unlock()
	sub.cond.Broadcast()
}

// Close unsubscribes and waits until the consumer's goroutine has returned,
// so after Close the consumer is never called again. Safe to call twice and
// from any goroutine except the consumer's own WritePacket.
func (sub *Subscription) Close() {
	sub.closeOnce.Do(func() {
		sub.stream.removeSubscription(sub)
		sub.mu.Lock()
		sub.closed = true
		sub.mu.Unlock()
		sub.cond.Broadcast()
		// A consumer on a lane is never called again once it is off it;
		// if the stream's end took it first, the lane closes done. What
		// the lane drops or sheds after is not the consumer's loss: its
		// counts keep what they were as it left.
		if l := sub.lane.Load(); l != nil && l.remove(sub) {
			sub.mu.Lock()
			sub.dropped.Add(l.sub.dropped.Load() - sub.laneDropped)
			sub.shedCount.Add(l.sub.shedCount.Load() - sub.laneShed)
			sub.lane.Store(nil)
			sub.mu.Unlock()
			close(sub.done)
		}
	})
	<-sub.done
}

// Share moves the consumer from its own queue and goroutine onto one of
// the stream's lanes (lane.go), where one goroutine delivers each packet
// to many consumers. Only a consumer whose WritePacket never waits on its
// peer may share: a member that waits holds up every other. Packets
// queued for the consumer when it moves are dropped, so it must be called
// before the consumer forwards anything (a WHEP viewer calls it as it
// connects). It reports whether the consumer is on a lane: false when the
// subscription has closed or the stream has ended. It must not be called
// from the consumer's own WritePacket.
func (sub *Subscription) Share() bool {
	ask := make(chan bool, 1)
	sub.mu.Lock()
	if sub.closed || sub.eof || sub.share != nil || sub.lane.Load() != nil {
		sub.mu.Unlock()
		return sub.lane.Load() != nil
	}
	sub.share = ask
	sub.mu.Unlock()
	sub.cond.Broadcast()
	select {
	case ok := <-ask:
		return ok
	case <-sub.done:
		return false
	}
}

// Shared reports whether the consumer is on a lane (Share).
func (sub *Subscription) Shared() bool { return sub.lane.Load() != nil }

// Done is closed when the subscription has ended, by Close or because the
// stream ended.
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// SetLayers selects which simulcast layers the consumer gets, by
// LayerMask (AllLayers, the default, takes every one). Packets already
// queued are still delivered, so a consumer that narrows its selection
// filters on its side too. Packets of tracks without layers are always
// delivered.
func (sub *Subscription) SetLayers(mask uint32) {
	sub.layers.Store(mask)
	if l := sub.lane.Load(); l != nil {
		l.selectLayers()
	}
}

// Layers is the current layer selection.
func (sub *Subscription) Layers() uint32 { return sub.layers.Load() }

// Delivered counts packets handed to the consumer.
func (sub *Subscription) Delivered() uint64 { return sub.delivered.Load() }

// Dropped counts packets dropped because the consumer's queue (or, on a
// lane, the lane's) was full.
func (sub *Subscription) Dropped() uint64 {
	n := sub.dropped.Load()
	if l := sub.lane.Load(); l != nil {
		n += l.sub.dropped.Load() - sub.laneDropped
	}
	return n
}

// Shed counts packets shed because the consumer (or, on a lane, the
// lane) fell further behind than its latency budget (shed.go).
func (sub *Subscription) Shed() uint64 {
	n := sub.shedCount.Load()
	if l := sub.lane.Load(); l != nil {
		n += l.sub.shedCount.Load() - sub.laneShed
	}
	return n
}

// Queued returns how many packets wait for the consumer and how much
// media they span, by arrival time.
func (sub *Subscription) Queued() (packets int, span time.Duration) {
	if l := sub.lane.Load(); l != nil {
		return l.sub.Queued()
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.count == 0 {
		return 0, 0
	}
	first := sub.ring[sub.head].Arrival
	last := sub.ring[(sub.head+sub.count-1)%len(sub.ring)].Arrival
	return sub.count, last.Sub(first)
}

// RequestKeyframe asks the publisher for a keyframe on the consumer's
// behalf, subject to the stream's rate limit.
func (sub *Subscription) RequestKeyframe() { sub.stream.RequestKeyframe() }

// Stream returns the stream this subscription reads.
func (sub *Subscription) Stream() *Stream { return sub.stream }
