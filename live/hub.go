// Package live is the hub every output subscribes to: one Stream per live
// name, its Tracks as negotiated with the publisher, and the fan-out of
// each received RTP packet to every Subscription (viewers, players, the
// recorder), each with a bounded queue and goroutine: its own, or a
// lane's, shared by consumers whose writes never wait. It also owns
// what every output needs to know about a codec: which outputs carry it,
// keyframe detection, and the latest parameter sets.
//
// Files: hub.go the set of streams, stream.go a stream and its tracks,
// layers.go the simulcast layers of a video track and their ranking,
// splice.go one output stream made of several layers,
// subscription.go one consumer's queue, lane.go a queue shared by many
// consumers, shed.go a queue's latency budget, packet.go the pooled packet,
// stats.go the API's snapshots, codecs.go the codec table, keyframe.go,
// size.go, h264params.go and h265params.go what is read from payloads.
package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrStreamLive is returned by Publish when the name is already live and
// the hub is set to reject a second publisher.
var ErrStreamLive = errors.New("the stream is already being published")

// ConflictPolicy says what happens when a second publisher claims a live
// stream name.
type ConflictPolicy string

const (
	// Reject refuses the newcomer (WHIP answers 409).
	Reject ConflictPolicy = "reject"
	// Replace ends the old publication and lets the newcomer in, which is
	// what a reconnecting OBS needs when its old session has not timed out.
	Replace ConflictPolicy = "replace"
)

// ParseConflictPolicy reads a policy name from configuration.
func ParseConflictPolicy(s string) (ConflictPolicy, error) {
	switch p := ConflictPolicy(s); p {
	case Reject, Replace:
		return p, nil
	}
	return "", fmt.Errorf("unknown publish conflict policy %q (want reject or replace)", s)
}

// DefaultConflictPolicy is what a second publisher meets unless configured.
const DefaultConflictPolicy = Reject

// Hub is the set of live streams, by name.
type Hub struct {
	policy ConflictPolicy

	mu          sync.Mutex
	streams     map[string]*Stream
	onPublish   []func(*Stream)
	onUnpublish []func(*Stream)
	remote      Remote
}

// Remote brings a stream that is live elsewhere (on another node of a
// cluster) into the hub, as a relay published under its name, and
// returns it; nil, nil when the stream is live nowhere. It must return
// within ctx.
type Remote func(ctx context.Context, name string) (*Stream, error)

// RelayProtocol is the PublishSpec.Protocol of a stream relayed from the
// node that owns it: the recorder and the events leave it to that node.
const RelayProtocol = "relay"

// NewHub returns an empty hub.
func NewHub(policy ConflictPolicy) *Hub {
	if policy == "" {
		policy = Reject
	}
	return &Hub{policy: policy, streams: map[string]*Stream{}}
}

// OnPublish registers f to run, synchronously, for every new stream before
// its first packet can arrive; the recorder subscribes here.
func (h *Hub) OnPublish(f func(*Stream)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onPublish = append(h.onPublish, f)
}

// OnUnpublish registers f to run after a stream has ended.
func (h *Hub) OnUnpublish(f func(*Stream)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onUnpublish = append(h.onUnpublish, f)
}

// Publish makes a stream live under name.
func (h *Hub) Publish(name string, spec PublishSpec) (*Stream, error) {
	h.mu.Lock()
	old := h.streams[name]
	if old != nil && h.policy == Reject {
		h.mu.Unlock()
		return nil, ErrStreamLive
	}
	s := newStream(h, name, spec)
	h.streams[name] = s
	hooks := slices.Clone(h.onPublish)
	h.mu.Unlock()

	if old != nil {
		// The old stream's Close sees it is no longer the hub's entry and
		// leaves the new one in place.
		old.Kick()
	}
	for _, f := range hooks {
		f(s)
	}
	return s, nil
}

// Get returns the live stream called name, or nil.
func (h *Hub) Get(name string) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[name]
}

// SetRemote makes Find ask r for streams that are not live here. A
// single node has none.
func (h *Hub) SetRemote(r Remote) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remote = r
}

// Find returns the live stream called name, for an output that is about
// to serve it: the hub's own or, when it is live on another node, a
// relay of it that the Remote brings in. nil when it is live nowhere, or
// when the relay could not be set up (the Remote logs why).
func (h *Hub) Find(ctx context.Context, name string) *Stream {
	h.mu.Lock()
	s, remote := h.streams[name], h.remote
	h.mu.Unlock()
	if s != nil || remote == nil {
		return s
	}
	s, err := remote(ctx, name)
	if err != nil {
		return nil
	}
	return s
}

// Streams returns the live streams sorted by name.
func (h *Hub) Streams() []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Stream) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// CloseAll kicks every publisher, for shutdown.
func (h *Hub) CloseAll() {
	for _, s := range h.Streams() {
		s.Kick()
	}
}

func (h *Hub) remove(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[s.Name] == s {
		delete(h.streams, s.Name)
	}
}

func (h *Hub) notifyUnpublish(s *Stream) {
	h.mu.Lock()
	hooks := slices.Clone(h.onUnpublish)
	h.mu.Unlock()
	for _, f := range hooks {
		f(s)
	}
}
