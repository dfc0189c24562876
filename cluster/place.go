package cluster

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// Decision says where a WHIP or WHEP request is served.
type Decision struct {
	// Local: this node serves it.
	Local bool
	// Node is the node that serves it otherwise, and Target the same
	// request's absolute URL there (the path and query kept).
	Node   string
	Target *url.URL
	// Proxy: forward the request to Target instead of redirecting.
	Proxy bool
}

// OwnerUnknownError is returned when the registry names an owner that
// has no registration (it died moments ago): the ownership expires
// within the TTL.
type OwnerUnknownError struct{ Owner string }

func (e *OwnerUnknownError) Error() string {
	return fmt.Sprintf("the node %q that owns this stream is not answering; its ownership expires within seconds", e.Owner)
}

// LocatePublish decides where a WHIP POST for name goes, from the path
// alone, before the offer is read: here when this node owns the stream's
// group (or a stream of it is live here), the owner when another node
// owns it; a new group is placed on the least loaded node, which this
// node may be. reqURL is the request's path and query. An error wrapping
// ErrUnavailable means the registry cannot be asked (503).
func (n *Node) LocatePublish(ctx context.Context, name string, reqURL *url.URL) (Decision, error) {
	g := Group(name)
	if n.localGroup(g) {
		return Decision{Local: true}, nil
	}
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	owner, err := n.Owner(ctx, name)
	if err != nil {
		return Decision{}, err
	}
	if owner == "" {
		self := n.self()
		nodes := n.cache.list()
		target := place(self, nodes)
		if owner, err = n.claim(ctx, g, target); err != nil {
			return Decision{}, err
		}
		if owner != n.cfg.NodeID {
			n.log.Info("placed a new stream on another node", "stream", name, "on", owner)
		}
	}
	return n.decide(owner, reqURL, n.cfg.Route == Proxy)
}

// LocatePlay decides where a WHEP POST for name goes: here, unless the
// node is not an edge (cluster.edge: false) and another node publishes
// the stream, which then answers it.
func (n *Node) LocatePlay(ctx context.Context, name string, reqURL *url.URL) (Decision, error) {
	if n.cfg.Edge {
		return Decision{Local: true}, nil
	}
	if s := n.hub.Get(name); s != nil && !s.Relayed() {
		return Decision{Local: true}, nil
	}
	owner, err := n.Owner(ctx, name)
	if err != nil {
		return Decision{}, err
	}
	if owner == "" {
		return Decision{Local: true}, nil // not live: 409 from here
	}
	return n.decide(owner, reqURL, false)
}

func (n *Node) decide(owner string, reqURL *url.URL, proxy bool) (Decision, error) {
	if owner == n.cfg.NodeID {
		return Decision{Local: true}, nil
	}
	ni := n.cache.get(owner)
	if ni == nil {
		// Registered after the last heartbeat: read it now.
		ctx, cancel := n.opContext(nil)
		n.refresh(ctx, []string{owner})
		cancel()
		if ni = n.cache.get(owner); ni == nil {
			return Decision{}, &OwnerUnknownError{Owner: owner}
		}
	}
	target, err := url.Parse(ni.HTTPURL + reqURL.EscapedPath())
	if err != nil {
		return Decision{}, fmt.Errorf("node %q registered an unusable URL %q: %w", owner, ni.HTTPURL, err)
	}
	target.RawQuery = reqURL.RawQuery
	return Decision{Node: owner, Target: target, Proxy: proxy}, nil
}

// viewersPerPublisher weighs viewers against publishers in a node's
// cost: one Reel on 2 cores carries about 700 WHEP viewers or 50
// recording publishers (docs/BENCHMARKS.md), so a publisher costs as much
// as 14 viewers.
const viewersPerPublisher = 14

// keepMargin: the receiving node keeps a new stream while its cost is
// within this much of the least loaded node's, which saves the client a
// redirect when the nodes are about even.
const keepMargin = 1.0

// busyCPU: a node busier than this is placed on only when all are.
const busyCPU = 0.85

func cost(l Load) float64 { return float64(l.Publishers) + float64(l.Viewers)/viewersPerPublisher }

// place picks the node for a new stream among nodes (self's registration
// is taken from self, which is fresher): the least cost among nodes not
// busy, self when within keepMargin of it; ties go to the smaller id. A
// node that is overloaded (it would refuse the session) is busy, so a
// publisher an overloaded node would refuse goes to another instead.
func place(self NodeInfo, nodes []NodeInfo) string {
	cands := []NodeInfo{self}
	for _, ni := range nodes {
		if ni.ID != self.ID && strings.TrimSpace(ni.HTTPURL) != "" {
			cands = append(cands, ni)
		}
	}
	idle := cands[:0:0]
	for _, c := range cands {
		if c.Load.CPU < busyCPU && !c.Load.Overloaded {
			idle = append(idle, c)
		}
	}
	if len(idle) > 0 {
		cands = idle
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if cost(c.Load) < cost(best.Load) || (cost(c.Load) == cost(best.Load) && c.ID < best.ID) {
			best = c
		}
	}
	selfIn := false
	for _, c := range cands {
		selfIn = selfIn || c.ID == self.ID
	}
	if selfIn && cost(self.Load) <= cost(best.Load)+keepMargin {
		return self.ID
	}
	return best.ID
}
