package ingest

import (
	"sync"
	"sync/atomic"
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

// Subscription is one consumer's bounded queue and the goroutine draining
// it. The publisher never waits on it: when the queue is full the packet is
// dropped for this consumer alone and counted.
type Subscription struct {
	// Kind names the output ("whep", "rtsp", "hls", "record") for stats.
	Kind string

	stream   *Stream
	consumer Consumer

	mu     sync.Mutex
	cond   sync.Cond
	ring   []*Packet
	head   int // next slot to read
	count  int
	closed bool // Close was called: discard what is queued
	eof    bool // the stream ended: deliver what is queued, then stop

	delivered atomic.Uint64
	dropped   atomic.Uint64
	done      chan struct{}
	closeOnce sync.Once
}

func newSubscription(s *Stream, kind string, c Consumer, size int) *Subscription {
	if size <= 0 {
		size = DefaultQueueSize
	}
	sub := &Subscription{
		Kind:     kind,
		stream:   s,
		consumer: c,
		ring:     make([]*Packet, size),
		done:     make(chan struct{}),
	}
	sub.cond.L = &sub.mu
	go sub.run()
	return sub
}

// push enqueues p with a new reference, or drops it if the queue is full.
func (sub *Subscription) push(p *Packet) {
	sub.mu.Lock()
	if sub.closed || sub.eof {
		sub.mu.Unlock()
		return
	}
	if sub.count == len(sub.ring) {
		sub.mu.Unlock()
		sub.dropped.Add(1)
		return
	}
	p.Retain()
	sub.ring[(sub.head+sub.count)%len(sub.ring)] = p
	sub.count++
	sub.mu.Unlock()
	sub.cond.Signal()
}

func (sub *Subscription) run() {
	defer close(sub.done)
	for {
		sub.mu.Lock()
		for sub.count == 0 && !sub.closed && !sub.eof {
			sub.cond.Wait()
		}
		if sub.closed || (sub.eof && sub.count == 0) {
			sub.drainLocked()
			ended := !sub.closed
			sub.mu.Unlock()
			if e, ok := sub.consumer.(StreamEnder); ok && ended {
				e.StreamEnded()
			}
			return
		}
		p := sub.ring[sub.head]
		sub.ring[sub.head] = nil
		sub.head = (sub.head + 1) % len(sub.ring)
		sub.count--
		sub.mu.Unlock()

		sub.consumer.WritePacket(p)
		p.Release()
		sub.delivered.Add(1)
	}
}

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
	})
	<-sub.done
}

// Done is closed when the subscription has ended, by Close or because the
// stream ended.
func (sub *Subscription) Done() <-chan struct{} { return sub.done }

// Delivered counts packets handed to the consumer.
func (sub *Subscription) Delivered() uint64 { return sub.delivered.Load() }

// Dropped counts packets dropped because the consumer fell behind.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// RequestKeyframe asks the publisher for a keyframe on the consumer's
// behalf, subject to the stream's rate limit.
func (sub *Subscription) RequestKeyframe() { sub.stream.RequestKeyframe() }

// Stream returns the stream this subscription reads.
func (sub *Subscription) Stream() *Stream { return sub.stream }
