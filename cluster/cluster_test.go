package cluster

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

const testTTL = 3 * time.Second

// testNode starts a node called id on mr with its own hub. It is closed
// (leaving the registry) at the end of the test unless killed first.
func testNode(t *testing.T, mr *miniredis.Miniredis, id string, edit func(*Config, *live.Hub)) *Node {
	t.Helper()
	hub := live.NewHub(live.Reject)
	cfg := Config{RedisURL: "redis://" + mr.Addr(), NodeID: id, HTTPURL: "http://" + id + ".test:8080",
		TTL: testTTL, Edge: true, Logger: testlog.New(t)}
	cfg.Snapshot = func() (Load, []live.StreamInfo) {
		var l Load
		var out []live.StreamInfo
		for _, s := range hub.Streams() {
			if !s.Relayed() {
				l.Publishers++
				out = append(out, s.Info())
			}
		}
		return l, out
	}
	if edit != nil {
		edit(&cfg, hub)
	}
	n, err := New(cfg, hub)
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(n.Close)
	return n
}

// kill stops a node as kill -9 would: no more heartbeats, nothing
// released, its keys left to expire.
func kill(n *Node) { n.Abandon() }

func publishOn(t *testing.T, n *Node, name string) *live.Stream {
	t.Helper()
	s, err := n.hub.Publish(name, live.PublishSpec{Session: "s-" + name, Protocol: "whip",
		Tracks: []*live.Track{{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func whipURL(name string) *url.URL {
	u, _ := url.Parse("/whip/" + name + "?token=x")
	return u
}

func TestNodesRegisterAndExpire(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", func(c *Config, _ *live.Hub) { c.Region, c.Labels = "eu-west", map[string]string{"rack": "r1"} })
	b := testNode(t, mr, "b", nil)
	a.heartbeat()
	if got := len(a.Nodes()); got != 2 {
		t.Fatalf("a sees %d nodes, want 2: %+v", got, a.Nodes())
	}
	if ni := b.NodeByID("a"); ni == nil {
		b.heartbeat()
	}
	if ni := b.NodeByID("a"); ni == nil || ni.Region != "eu-west" || ni.Labels["rack"] != "r1" || ni.HTTPURL != "http://a.test:8080" {
		t.Fatalf("b's view of a: %+v", ni)
	}
	if ttl := mr.TTL(keyNodePrefix + "a"); ttl <= 0 || ttl > testTTL {
		t.Fatalf("node key TTL %v, want (0, %v]", ttl, testTTL)
	}

	kill(b)
	mr.FastForward(testTTL + time.Millisecond)
	a.heartbeat()
	if a.NodeByID("b") != nil || len(a.Nodes()) != 1 {
		t.Fatalf("a still sees the dead node: %+v", a.Nodes())
	}
	if ok, _ := mr.SIsMember(keyNodes, "b"); ok {
		t.Fatal("the dead node is still in the set of nodes")
	}
}

func TestMeetingOwnedWholeAndRedirected(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", nil)
	ctx := context.Background()

	d, err := a.LocatePublish(ctx, "board/alice", whipURL("board/alice"))
	if err != nil || !d.Local {
		t.Fatalf("a, first publisher of a new meeting: %+v, %v; want local", d, err)
	}
	s := publishOn(t, a, "board/alice")
	testwait.Until(t, 2*time.Second, "a owns the meeting", func() bool { v, _ := mr.Get(keyOwnerPrefix + "board"); return v == "a" })

	// Another participant of the same meeting, sent to b: redirected to a,
	// to the same path and query.
	d, err = b.LocatePublish(ctx, "board/bob", whipURL("board/bob"))
	if err != nil || d.Local || d.Node != "a" || d.Target.String() != "http://a.test:8080/whip/board/bob?token=x" {
		t.Fatalf("b for board/bob: %+v, %v; want a 307 to a", d, err)
	}
	// The owner keeps it alive beyond the TTL.
	for range 3 {
		mr.FastForward(testTTL / 2)
		a.heartbeat()
	}
	if v, _ := mr.Get(keyOwnerPrefix + "board"); v != "a" {
		t.Fatalf("after 1.5 TTL with renewals the owner is %q, want a", v)
	}
	// Released when its last stream ends.
	s.Close()
	testwait.Until(t, 2*time.Second, "ownership released on unpublish", func() bool { return !mr.Exists(keyOwnerPrefix + "board") })
}

func TestOwnershipExpiresWhenOwnerDies(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", nil)
	publishOn(t, a, "cam")
	testwait.Until(t, 2*time.Second, "a owns cam", func() bool { v, _ := mr.Get(keyOwnerPrefix + "cam"); return v == "a" })
	b.heartbeat()
	testwait.Until(t, 2*time.Second, "b sees a's stream", func() bool { return b.cache.streamAt("cam") != nil })

	kill(a)
	d, err := b.LocatePublish(context.Background(), "cam", whipURL("cam"))
	if err != nil || d.Node != "a" {
		t.Fatalf("before the TTL: %+v, %v; want still a", d, err)
	}
	mr.FastForward(testTTL + time.Millisecond)
	b.heartbeat()
	if b.cache.streamAt("cam") != nil {
		t.Fatal("the dead node's stream is still listed")
	}
	d, err = b.LocatePublish(context.Background(), "cam", whipURL("cam"))
	if err != nil || !d.Local {
		t.Fatalf("after the TTL: %+v, %v; want placed here", d, err)
	}
	if v, _ := mr.Get(keyOwnerPrefix + "cam"); v != "b" {
		t.Fatalf("owner %q, want b", v)
	}
}

// TestPlacementLeastLoaded: a busy receiving node sends a new stream to
// the least loaded node and reserves it there, so that node keeps it.
func TestPlacementLeastLoaded(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", nil)
	testNode(t, mr, "c", func(c *Config, _ *live.Hub) {
		c.Snapshot = func() (Load, []live.StreamInfo) { return Load{Publishers: 5}, nil }
	})
	for _, name := range []string{"one", "two", "three"} {
		publishOn(t, a, name)
	}
	a.heartbeat()
	b.heartbeat()
	d, err := a.LocatePublish(context.Background(), "four", whipURL("four"))
	if err != nil || d.Node != "b" {
		t.Fatalf("a (3 publishers) placing a new stream: %+v, %v; want b (0)", d, err)
	}
	// b, receiving the redirected POST, finds the reservation and keeps it.
	d, err = b.LocatePublish(context.Background(), "four", whipURL("four"))
	if err != nil || !d.Local {
		t.Fatalf("b after the redirect: %+v, %v; want local", d, err)
	}
	// A reservation nobody used expires.
	mr.FastForward(testTTL + time.Millisecond)
	if mr.Exists(keyOwnerPrefix + "four") {
		t.Fatal("an unused reservation did not expire")
	}
}

func TestPlace(t *testing.T) {
	n := func(id string, pubs, viewers int, cpu float64) NodeInfo {
		return NodeInfo{ID: id, HTTPURL: "http://" + id, Load: Load{Publishers: pubs, Viewers: viewers, CPU: cpu}}
	}
	overloaded := func(ni NodeInfo) NodeInfo { ni.Load.Overloaded = true; return ni }
	for _, tc := range []struct {
		name  string
		self  NodeInfo
		nodes []NodeInfo
		want  string
	}{
		{"alone", n("a", 9, 0, 0), nil, "a"},
		{"even: keep", n("b", 0, 0, 0), []NodeInfo{n("a", 0, 0, 0), n("c", 0, 0, 0)}, "b"},
		{"within margin: keep", n("a", 1, 0, 0), []NodeInfo{n("b", 0, 0, 0)}, "a"},
		{"least publishers", n("a", 4, 0, 0), []NodeInfo{n("b", 2, 0, 0), n("c", 1, 0, 0)}, "c"},
		{"viewers weigh 1/14", n("a", 3, 0, 0), []NodeInfo{n("b", 0, 700, 0), n("c", 0, 14, 0)}, "c"},
		{"busy CPU avoided", n("a", 5, 0, 0.2), []NodeInfo{n("b", 0, 0, 0.95), n("c", 3, 0, 0.1)}, "c"},
		{"all busy: least cost", n("a", 5, 0, 0.9), []NodeInfo{n("b", 0, 0, 0.95)}, "b"},
		{"ties: smaller id", n("z", 5, 0, 0), []NodeInfo{n("y", 1, 0, 0), n("x", 1, 0, 0)}, "x"},
		{"overloaded self: another", overloaded(n("a", 0, 0, 0.3)), []NodeInfo{n("b", 4, 0, 0.5)}, "b"},
		{"overloaded other avoided", n("a", 5, 0, 0.3), []NodeInfo{overloaded(n("b", 0, 0, 0.1)), n("c", 3, 0, 0.2)}, "c"},
		{"all overloaded: least cost", overloaded(n("a", 5, 0, 0.3)), []NodeInfo{overloaded(n("b", 1, 0, 0.3))}, "b"},
		{"stale self entry ignored", n("a", 0, 0, 0), []NodeInfo{n("a", 50, 0, 0)}, "a"},
	} {
		if got := place(tc.self, tc.nodes); got != tc.want {
			t.Errorf("%s: placed on %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRedisDown: without Redis a node serves the groups it has, refuses
// new placements with ErrUnavailable, and takes its ownerships back when
// Redis returns (empty, as after a restart without persistence).
func TestRedisDown(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	publishOn(t, a, "board/alice")
	testwait.Until(t, 2*time.Second, "a owns board", func() bool { v, _ := mr.Get(keyOwnerPrefix + "board"); return v == "a" })

	mr.Close()
	a.heartbeat()
	if a.Healthy() {
		t.Fatal("a says Redis is reachable")
	}
	if d, err := a.LocatePublish(context.Background(), "board/carol", whipURL("board/carol")); err != nil || !d.Local {
		t.Fatalf("a, for its own meeting without Redis: %+v, %v; want local", d, err)
	}
	_, err := a.LocatePublish(context.Background(), "newroom", whipURL("newroom"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a new placement without Redis: %v; want ErrUnavailable", err)
	}

	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	mr.FlushAll()
	// go-redis waits a little before dialing again after failed dials.
	testwait.Until(t, 5*time.Second, "a notices Redis is back", func() bool { a.heartbeat(); return a.Healthy() })
	if v, _ := mr.Get(keyOwnerPrefix + "board"); v != "a" {
		t.Fatalf("after Redis came back empty, board is owned by %q, want a", v)
	}
	if ok, _ := mr.SIsMember(keyNodes, "a"); !ok {
		t.Fatal("a did not register again")
	}
	if d, err := a.LocatePublish(context.Background(), "newroom", whipURL("newroom")); err != nil || !d.Local {
		t.Fatalf("a new placement after recovery: %+v, %v", d, err)
	}
}

// TestEventsUpdateCache: another node learns of a stream from pub/sub,
// before any heartbeat, and forgets it the same way.
func TestEventsUpdateCache(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", nil)
	b.heartbeat() // b knows a, with no stream
	s := publishOn(t, a, "live1")
	testwait.Until(t, 2*time.Second, "b hears stream.up", func() bool { return b.cache.streamAt("live1") != nil })
	s.Close()
	testwait.Until(t, 2*time.Second, "b hears stream.down", func() bool { return b.cache.streamAt("live1") == nil })
}

func TestLocatePlayNotEdge(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", func(c *Config, _ *live.Hub) { c.Edge = false })
	publishOn(t, a, "cam")
	testwait.Until(t, 2*time.Second, "a owns cam", func() bool { v, _ := mr.Get(keyOwnerPrefix + "cam"); return v == "a" })
	b.heartbeat()
	u, _ := url.Parse("/whep/cam")
	d, err := b.LocatePlay(context.Background(), "cam", u)
	if err != nil || d.Target == nil || d.Target.String() != "http://a.test:8080/whep/cam" {
		t.Fatalf("WHEP on a non-edge node: %+v, %v; want a 307 to a", d, err)
	}
	if d, err := a.LocatePlay(context.Background(), "cam", u); err != nil || !d.Local {
		t.Fatalf("WHEP on the owner: %+v, %v", d, err)
	}
	if d, err := b.LocatePlay(context.Background(), "nobody", u); err != nil || !d.Local {
		t.Fatalf("WHEP of a stream live nowhere: %+v, %v; want local (409 there)", d, err)
	}
}

func TestConfigErrors(t *testing.T) {
	hub := live.NewHub(live.Reject)
	for _, cfg := range []Config{
		{},
		{RedisURL: "http://x", NodeID: "a", HTTPURL: "http://a"},
		{RedisURL: "redis://127.0.0.1:1", NodeID: "", HTTPURL: "http://a"},
		{RedisURL: "redis://127.0.0.1:1", NodeID: "a", HTTPURL: "a:8080"},
		{RedisURL: "redis://127.0.0.1:1", NodeID: "a", HTTPURL: "http://a", Route: "teleport"},
	} {
		if _, err := New(cfg, hub); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

// TestMeetingHolder: without S3, the registry says which node holds a
// meeting occurrence (and a recording), until it is forgotten; with
// Redis gone, asking fails instead of answering "nobody".
func TestMeetingHolder(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", nil)
	b := testNode(t, mr, "b", nil)
	a.RegisterMeetings("board_20261201T090000Z")
	a.RegisterRecordings("board.alice_20261201T090001Z")
	ctx := context.Background()
	if node, err := b.MeetingNode(ctx, "board_20261201T090000Z"); err != nil || node != "a" {
		t.Fatalf("MeetingNode: %q %v, want a", node, err)
	}
	if node, err := b.RecordingNode(ctx, "board.alice_20261201T090001Z"); err != nil || node != "a" {
		t.Fatalf("RecordingNode: %q %v, want a", node, err)
	}
	if node, err := b.MeetingNode(ctx, "board.alice_20261201T090001Z"); err != nil || node != "" {
		t.Fatalf("a recording's id as a meeting: %q %v, want none", node, err)
	}
	a.ForgetMeeting("board_20261201T090000Z")
	if node, _ := b.MeetingNode(ctx, "board_20261201T090000Z"); node != "" {
		t.Fatalf("after ForgetMeeting: %q", node)
	}
	mr.Close()
	if _, err := b.MeetingNode(ctx, "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("with Redis gone: %v, want ErrUnavailable", err)
	}
}

// A node that would refuse a new publisher for its load (behind its
// input) redirects it to one that would not, though it has fewer streams.
func TestOverloadedNodePlacesElsewhere(t *testing.T) {
	mr := miniredis.RunT(t)
	a := testNode(t, mr, "a", func(c *Config, _ *live.Hub) {
		c.Snapshot = func() (Load, []live.StreamInfo) { return Load{Overloaded: true}, nil }
	})
	b := testNode(t, mr, "b", func(c *Config, _ *live.Hub) {
		c.Snapshot = func() (Load, []live.StreamInfo) { return Load{Publishers: 4}, nil }
	})
	a.heartbeat()
	b.heartbeat()
	d, err := a.LocatePublish(context.Background(), "new", whipURL("new"))
	if err != nil || d.Node != "b" {
		t.Fatalf("overloaded a placing a new stream: %+v, %v; want b", d, err)
	}
}
