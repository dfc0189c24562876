package cluster

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/reel-gateway/reel/live"
)

// renewScript extends the ownerships a node still holds, takes back any
// that vanished (Redis restarted empty) and returns those another node
// holds now. KEYS: owner keys; ARGV: node id, TTL in ms.
var renewScript = redis.NewScript(`
local lost = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
  elseif not v then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, k)
  end
end
return lost`)

// releaseScript deletes an ownership only if the node still holds it.
// KEYS: the owner key; ARGV: node id.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func ownerKeys(groups []string) []string {
	keys := make([]string, len(groups))
	for i, g := range groups {
		keys[i] = keyOwnerPrefix + g
	}
	return keys
}

// ownedGroups are the groups this node must keep owning: those with a
// stream published here.
func (n *Node) ownedGroups() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.owned))
	for g := range n.owned {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// localGroup reports whether a stream of group is published here.
func (n *Node) localGroup(group string) bool {
	for _, s := range n.hub.Streams() {
		if !s.Relayed() && Group(s.Name) == group {
			return true
		}
	}
	return false
}

// published runs for every new stream of the hub: one published here is
// owned here, and the other nodes hear of it.
func (n *Node) published(s *live.Stream) {
	if s.Relayed() {
		return
	}
	g := Group(s.Name)
	n.mu.Lock()
	n.owned[g] = true
	n.mu.Unlock()
	info := publicInfo(s.Info())
	go func() {
		if n.ctx.Err() != nil {
			return // leaving the cluster
		}
		ctx, cancel := n.opContext(nil)
		defer cancel()
		if owner, err := n.claim(ctx, g, n.cfg.NodeID); err != nil {
			n.log.Warn("publishing without the registry: ownership will be taken when Redis returns", "stream", s.Name, "err", err)
			return
		} else if owner != n.cfg.NodeID {
			n.log.Error("stream published here while another node owns its group", "stream", s.Name, "owner", owner)
		}
		n.publish(Event{Type: "stream.up", Node: n.cfg.NodeID, Stream: &info})
	}()
}

// unpublished releases the group once its last stream here has ended.
func (n *Node) unpublished(s *live.Stream) {
	if s.Relayed() {
		return
	}
	g := Group(s.Name)
	info := publicInfo(s.Info())
	last := !n.localGroup(g)
	if last {
		n.mu.Lock()
		delete(n.owned, g)
		n.mu.Unlock()
	}
	go func() {
		if n.ctx.Err() != nil {
			return // leaving the cluster: leave releases everything
		}
		ctx, cancel := n.opContext(nil)
		defer cancel()
		if last {
			if err := releaseScript.Run(ctx, n.rdb, []string{keyOwnerPrefix + g}, n.cfg.NodeID).Err(); err != nil {
				_ = n.unavailable(err)
				return
			}
		}
		n.publish(Event{Type: "stream.down", Node: n.cfg.NodeID, Stream: &info})
	}()
}

// claim makes node the owner of group unless someone owns it already,
// atomically (SET NX PX), and returns the owner.
func (n *Node) claim(ctx context.Context, group, node string) (string, error) {
	ok, err := n.rdb.SetNX(ctx, keyOwnerPrefix+group, node, n.cfg.TTL).Result()
	if err != nil {
		return "", n.unavailable(err)
	}
	n.reachable()
	if ok {
		return node, nil
	}
	owner, err := n.rdb.Get(ctx, keyOwnerPrefix+group).Result()
	switch {
	case err == redis.Nil:
		// Released between the two commands: try once more.
		if ok, err = n.rdb.SetNX(ctx, keyOwnerPrefix+group, node, n.cfg.TTL).Result(); err == nil && ok {
			return node, nil
		}
		return "", n.unavailable(err)
	case err != nil:
		return "", n.unavailable(err)
	}
	if owner == n.cfg.NodeID {
		// This node owns it (a stream of the group is here, or a
		// placement chose this node moments ago): keep it alive.
		_ = n.rdb.PExpire(ctx, keyOwnerPrefix+group, n.cfg.TTL)
	}
	return owner, nil
}

// Owner returns the node that owns name's group, "" when nobody does.
func (n *Node) Owner(ctx context.Context, name string) (string, error) {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	owner, err := n.rdb.Get(ctx, keyOwnerPrefix+Group(name)).Result()
	if err == redis.Nil {
		n.reachable()
		return "", nil
	}
	if err != nil {
		return "", n.unavailable(err)
	}
	n.reachable()
	return owner, nil
}

// checkRenewed logs ownerships that another node took meanwhile (both
// held a stream of the group while Redis could not tell them apart).
func (n *Node) checkRenewed(groups []string, cmd *redis.Cmd) {
	lost, err := cmd.StringSlice()
	if err != nil || len(lost) == 0 {
		return
	}
	n.log.Error("another node owns groups published here; new publishers of them go there", "keys", lost)
}

// publicInfo is a stream's snapshot as the registry shows it: without
// the publisher's session id and address.
func publicInfo(in live.StreamInfo) live.StreamInfo {
	in.Session, in.Remote = "", ""
	return in
}

// RegisterRecordings says in the registry that this node holds the
// recordings ids (a cluster without S3: others redirect there).
func (n *Node) RegisterRecordings(ids ...string) { n.register(keyRecordings, ids) }

// RegisterMeetings says in the registry that this node holds the meeting
// occurrences ids (a cluster without S3: others redirect there).
func (n *Node) RegisterMeetings(ids ...string) { n.register(keyMeetings, ids) }

// ForgetMeeting removes a deleted occurrence from the registry.
func (n *Node) ForgetMeeting(id string) {
	ctx, cancel := n.opContext(nil)
	defer cancel()
	_ = n.rdb.HDel(ctx, keyMeetings, id).Err()
}

// MeetingNode is the node that holds occurrence id, "" if none says so.
func (n *Node) MeetingNode(ctx context.Context, id string) (string, error) {
	return n.holder(ctx, keyMeetings, id)
}

func (n *Node) register(key string, ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := n.opContext(nil)
	defer cancel()
	vals := make([]any, 0, 2*len(ids))
	for _, id := range ids {
		vals = append(vals, id, n.cfg.NodeID)
	}
	if err := n.rdb.HSet(ctx, key, vals...).Err(); err != nil {
		_ = n.unavailable(err)
	}
}

// ForgetRecording removes a deleted recording from the registry.
func (n *Node) ForgetRecording(id string) {
	ctx, cancel := n.opContext(nil)
	defer cancel()
	_ = n.rdb.HDel(ctx, keyRecordings, id).Err()
}

// RecordingNode is the node that holds recording id, "" if none says so.
func (n *Node) RecordingNode(ctx context.Context, id string) (string, error) {
	return n.holder(ctx, keyRecordings, id)
}

func (n *Node) holder(ctx context.Context, key, id string) (string, error) {
	ctx, cancel := n.opContext(ctx)
	defer cancel()
	node, err := n.rdb.HGet(ctx, key, id).Result()
	if err == redis.Nil {
		return "", nil
	}
	if err != nil {
		return "", n.unavailable(err)
	}
	return node, nil
}
