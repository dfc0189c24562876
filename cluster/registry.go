package cluster

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reel-gateway/reel/live"
)

// The registry's keys. Every key a node writes expires unless the node
// renews it, so a node that dies leaves nothing behind for longer than
// its TTL.
const (
	keyNodes       = "reel:nodes"      // SET of node ids that registered
	keyNodePrefix  = "reel:node:"      // + id: NodeInfo as JSON, PX ttl
	keyOwnerPrefix = "reel:owner:"     // + group: the owner's node id, PX ttl
	channelEvents  = "reel:events"     // pub/sub: Event as JSON
	keyRecordings  = "reel:recordings" // HASH recording id -> node id (without S3)
	keyMeetings    = "reel:meetings"   // HASH meeting occurrence id -> node id (without S3)
)

// NodeInfo is what a node registers about itself.
type NodeInfo struct {
	ID      string            `json:"id"`
	HTTPURL string            `json:"http_url"`
	RTSPURL string            `json:"rtsp_url,omitempty"`
	WebRTC  string            `json:"webrtc,omitempty"`
	Region  string            `json:"region,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Load    Load              `json:"load"`
	Started time.Time         `json:"started"`
	// Streams are the streams published on the node (not its relays).
	Streams []live.StreamInfo `json:"streams"`
}

// Event is what nodes tell each other on pub/sub, to keep caches current
// between heartbeats.
type Event struct {
	Type   string           `json:"type"` // stream.up, stream.down, node.up, node.down
	Node   string           `json:"node"`
	Stream *live.StreamInfo `json:"stream,omitempty"`
}

// nodeCache is the last known registry: every live node and its streams.
type nodeCache struct {
	mu    sync.Mutex
	nodes map[string]*NodeInfo
}

func (c *nodeCache) init() { c.nodes = map[string]*NodeInfo{} }

func (c *nodeCache) replace(nodes map[string]*NodeInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = nodes
}

func (c *nodeCache) get(id string) *NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *nodeCache) list() []NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NodeInfo, 0, len(c.nodes))
	for _, ni := range c.nodes {
		out = append(out, *ni)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// streamAt returns the node that publishes name, by the cache.
func (c *nodeCache) streamAt(name string) *NodeInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ni := range c.nodes {
		for _, s := range ni.Streams {
			if s.Name == name {
				return ni
			}
		}
	}
	return nil
}

// apply updates the cache from another node's event.
func (c *nodeCache) apply(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ni := c.nodes[ev.Node]
	switch ev.Type {
	case "node.down":
		delete(c.nodes, ev.Node)
	case "stream.up", "stream.down":
		if ni == nil || ev.Stream == nil {
			return
		}
		cp := *ni
		cp.Streams = slices.DeleteFunc(slices.Clone(ni.Streams), func(s live.StreamInfo) bool { return s.Name == ev.Stream.Name })
		if ev.Type == "stream.up" {
			cp.Streams = append(cp.Streams, *ev.Stream)
		}
		c.nodes[ev.Node] = &cp
	}
}

// self is this node's registration as of now.
func (n *Node) self() NodeInfo {
	load, streams := n.cfg.Snapshot()
	load.CPU = n.cpu.sample()
	if streams == nil {
		streams = []live.StreamInfo{}
	}
	return NodeInfo{ID: n.cfg.NodeID, HTTPURL: n.cfg.HTTPURL, RTSPURL: n.cfg.RTSPURL, WebRTC: n.cfg.WebRTC,
		Region: n.cfg.Region, Labels: n.cfg.Labels, Load: load, Started: n.started(), Streams: streams}
}

var startedAt = time.Now().UTC()

func (n *Node) started() time.Time { return startedAt }

func (n *Node) beatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.renew)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.heartbeat()
		}
	}
}

// heartbeat renews the node's key and its ownerships in one round trip,
// and reads every node's registration into the cache in another.
func (n *Node) heartbeat() {
	ctx, cancel := n.opContext(nil)
	defer cancel()
	info := n.self()
	b, err := json.Marshal(info)
	if err != nil {
		n.log.Error("cannot encode the node's registration", "err", err)
		return
	}
	groups := n.ownedGroups()
	wasDown := !n.healthy.Load()
	pipe := n.rdb.Pipeline()
	pipe.Set(ctx, keyNodePrefix+n.cfg.NodeID, b, n.cfg.TTL)
	pipe.SAdd(ctx, keyNodes, n.cfg.NodeID)
	var renewed *redis.Cmd
	if len(groups) > 0 {
		renewed = renewScript.Eval(ctx, pipe, ownerKeys(groups), n.cfg.NodeID, n.cfg.TTL.Milliseconds())
	}
	members := pipe.SMembers(ctx, keyNodes)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		_ = n.unavailable(err)
		return
	}
	n.reachable()
	if renewed != nil {
		n.checkRenewed(groups, renewed)
	}
	if wasDown {
		n.publish(Event{Type: "node.up", Node: n.cfg.NodeID})
	}
	n.refresh(ctx, members.Val())
}

// refresh reads the registrations of ids into the cache; a node whose
// key has expired is dropped from the set and announced down.
func (n *Node) refresh(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		n.cache.replace(map[string]*NodeInfo{})
		return
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = keyNodePrefix + id
	}
	vals, err := n.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		_ = n.unavailable(err)
		return
	}
	nodes := map[string]*NodeInfo{}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			// Expired: the node died or left without saying so.
			if n.rdb.SRem(ctx, keyNodes, ids[i]).Val() == 1 {
				n.log.Warn("node gone from the registry", "gone", ids[i])
				n.publish(Event{Type: "node.down", Node: ids[i]})
			}
			continue
		}
		var ni NodeInfo
		if err := json.Unmarshal([]byte(s), &ni); err != nil {
			n.log.Warn("ignoring an unreadable node registration", "key", keys[i], "err", err)
			continue
		}
		nodes[ni.ID] = &ni
	}
	n.cache.replace(nodes)
}

// Nodes returns the registry's nodes as last seen (this one included).
func (n *Node) Nodes() []NodeInfo { return n.cache.list() }

// NodeByID returns a node's registration as last seen, or nil.
func (n *Node) NodeByID(id string) *NodeInfo { return n.cache.get(id) }

// publish tells the other nodes about a change; best effort (the next
// heartbeat carries the same).
func (n *Node) publish(ev Event) {
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	ctx, cancel := n.opContext(nil)
	defer cancel()
	if err := n.rdb.Publish(ctx, channelEvents, b).Err(); err != nil {
		_ = n.unavailable(err)
	}
}

// followEvents applies the other nodes' events to the cache. go-redis
// resubscribes by itself after Redis comes back.
func (n *Node) followEvents() {
	defer n.wg.Done()
	ps := n.rdb.Subscribe(n.ctx, channelEvents)
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-n.ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			var ev Event
			if err := json.Unmarshal([]byte(m.Payload), &ev); err != nil || ev.Node == n.cfg.NodeID {
				continue
			}
			if ev.Type == "node.up" {
				// Its registration comes with the next refresh; do it now.
				go n.heartbeat()
				continue
			}
			if ev.Type == "stream.up" && n.cache.get(ev.Node) == nil {
				// A node registered since the last refresh: read it.
				go n.heartbeat()
			}
			n.cache.apply(ev)
			if ev.Type == "stream.down" && ev.Stream != nil {
				n.relays.ownerGone(ev.Stream.Name)
			}
		}
	}
}

// leave removes the node's key and releases what it owns.
func (n *Node) leave(ctx context.Context) {
	groups := n.ownedGroups()
	pipe := n.rdb.Pipeline()
	for _, g := range groups {
		releaseScript.Eval(ctx, pipe, []string{keyOwnerPrefix + g}, n.cfg.NodeID)
	}
	pipe.Del(ctx, keyNodePrefix+n.cfg.NodeID)
	pipe.SRem(ctx, keyNodes, n.cfg.NodeID)
	b, _ := json.Marshal(Event{Type: "node.down", Node: n.cfg.NodeID})
	pipe.Publish(ctx, channelEvents, b)
	if _, err := pipe.Exec(ctx); err != nil {
		n.log.Warn("could not leave the registry cleanly; its keys expire by themselves", "err", err, "ttl", n.cfg.TTL)
	}
}

// opStats counts the commands this node sends to Redis (metrics, and
// the registry overhead in docs/BENCHMARKS.md).
type opStats struct {
	commands atomic.Uint64
	failures atomic.Uint64
}

// Commands is the number of Redis commands this node has sent, and how
// many failed.
func (n *Node) Commands() (sent, failed uint64) {
	return n.stats.commands.Load(), n.stats.failures.Load()
}

func (s *opStats) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (s *opStats) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.commands.Add(1)
		err := next(ctx, cmd)
		if err != nil && err != redis.Nil {
			s.failures.Add(1)
		}
		return err
	}
}

func (s *opStats) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		s.commands.Add(uint64(len(cmds)))
		err := next(ctx, cmds)
		if err != nil && err != redis.Nil {
			s.failures.Add(uint64(len(cmds)))
		}
		return err
	}
}
