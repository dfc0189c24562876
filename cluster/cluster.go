// Package cluster lets many Reel nodes act as one gateway: a Redis
// registry of nodes and of who owns each stream or meeting, the decision
// where a new stream goes (least loaded), and relays that bring a stream
// owned by another node into this node's hub. No media goes through
// Redis. A single node never builds one.
//
// Files: cluster.go the Node and its lifecycle, registry.go the node
// keys, heartbeat and cache, owner.go stream and meeting ownership,
// place.go where a request is served (local, 307, proxy), relay.go the
// RTSP pull from the owner, load.go the node's load.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reel-gateway/reel/live"
)

// Defaults.
const (
	// DefaultTTL is how long a node's key and its ownerships live without
	// renewal; they are renewed every TTL/3.
	DefaultTTL = 10 * time.Second
	// DefaultRelayIdle closes a relay nobody has watched for this long.
	DefaultRelayIdle = 30 * time.Second
	// opTimeout bounds one round of Redis commands; past it Redis counts
	// as unavailable for that request.
	opTimeout = 2 * time.Second
)

// Route is how a WHIP POST for a stream owned elsewhere is answered.
type Route string

const (
	// Redirect answers 307 with the owner's WHIP URL (RFC 9725 §4.5).
	Redirect Route = "redirect"
	// Proxy forwards the SDP exchange to the owner, for nodes that
	// clients cannot reach directly; media still goes to the owner.
	Proxy Route = "proxy"
)

// ErrUnavailable wraps every failure to reach the registry: a node keeps
// serving what it owns, and refuses what needs the cluster (503).
var ErrUnavailable = errors.New("the cluster registry (Redis) is unreachable")

// Config configures a node.
type Config struct {
	// RedisURL is redis://[user:password@]host:port[/db]; required.
	RedisURL string
	// NodeID names this node in the registry; unique in the cluster.
	NodeID string
	// HTTPURL is this node's base URL as clients reach it
	// (http://10.0.0.5:8080): redirects point there.
	HTTPURL string
	// RTSPURL is this node's RTSP base URL (rtsp://10.0.0.5:8554) as other
	// nodes reach it, for relays; "" when RTSP is off (no relay from here).
	RTSPURL string
	// WebRTC is this node's WebRTC UDP address, for the registry's readers.
	WebRTC string
	// Region and Labels describe the node in the registry.
	Region string
	Labels map[string]string
	// TTL of the node's keys (default DefaultTTL).
	TTL time.Duration
	// Route: Redirect (default) or Proxy.
	Route Route
	// Edge relays WHEP, RTSP and HLS viewers of streams owned elsewhere;
	// false answers WHEP with 307 to the owner.
	Edge bool
	// RelayIdle closes a relay without viewers after this long (default
	// DefaultRelayIdle).
	RelayIdle time.Duration
	// Token is the credential this node presents to the others (relay
	// pulls, proxied requests) when auth is on; every node must accept it.
	Token string
	// Snapshot reports this node's load and own streams for the registry.
	Snapshot func() (Load, []live.StreamInfo)
	Logger   *slog.Logger
}

// Node is this gateway's membership of the cluster.
type Node struct {
	cfg   Config
	rdb   *redis.Client
	hub   *live.Hub
	log   *slog.Logger
	renew time.Duration

	healthy atomic.Bool
	cache   nodeCache
	relays  *relays
	stats   opStats
	cpu     cpuMeter

	mu    sync.Mutex
	owned map[string]bool // groups this node owns (live streams here)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New checks cfg and connects to Redis (without waiting for it: a node
// starts while Redis is down and joins when it comes back).
func New(cfg Config, hub *live.Hub) (*Node, error) {
	if cfg.RedisURL == "" {
		return nil, errors.New("cluster: no redis_url")
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster.redis_url: %w", err)
	}
	if cfg.NodeID == "" || strings.ContainsAny(cfg.NodeID, " \t\r\n") {
		return nil, fmt.Errorf("cluster.node_id: want a name without spaces, got %q", cfg.NodeID)
	}
	if u, err := url.Parse(cfg.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cluster.http_url: want the node's base URL as clients reach it, like http://10.0.0.5:8080, got %q", cfg.HTTPURL)
	}
	cfg.HTTPURL = strings.TrimRight(cfg.HTTPURL, "/")
	cfg.RTSPURL = strings.TrimRight(cfg.RTSPURL, "/")
	switch cfg.Route {
	case "":
		cfg.Route = Redirect
	case Redirect, Proxy:
	default:
		return nil, fmt.Errorf("cluster.route: want redirect or proxy, got %q", cfg.Route)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < 300*time.Millisecond {
		return nil, fmt.Errorf("cluster.ttl: %v is too short (300ms at least)", cfg.TTL)
	}
	if cfg.RelayIdle <= 0 {
		cfg.RelayIdle = DefaultRelayIdle
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Snapshot == nil {
		cfg.Snapshot = func() (Load, []live.StreamInfo) { return Load{}, nil }
	}
	// Fail fast: a request waits for Redis at most opTimeout, then the
	// node answers from what it owns.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, time.Second, time.Second
	opt.MaxRetries = 1
	opt.DialerRetries, opt.DialerRetryTimeout = 1, 100*time.Millisecond
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
	opt.PoolTimeout = opTimeout
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{cfg: cfg, rdb: redis.NewClient(opt), hub: hub, renew: cfg.TTL / 3,
		log: cfg.Logger.With("component", "cluster", "node", cfg.NodeID), owned: map[string]bool{},
		ctx: ctx, cancel: cancel}
	n.rdb.AddHook(&n.stats)
	n.cache.init()
	n.relays = newRelays(n)
	return n, nil
}

// Start joins the cluster: it registers the node, keeps its keys alive,
// follows the other nodes' events, and hooks the hub (ownership of what
// is published here, relays of what is live elsewhere).
func (n *Node) Start() {
	n.hub.OnPublish(n.published)
	n.hub.OnUnpublish(n.unpublished)
	if n.cfg.Edge {
		n.hub.SetRemote(n.relays.find)
	}
	n.heartbeat() // the first one at once, so the node is placeable now
	n.wg.Add(2)
	go n.beatLoop()
	go n.followEvents()
	n.log.Info("joined the cluster", "http", n.cfg.HTTPURL, "rtsp", n.cfg.RTSPURL, "ttl", n.cfg.TTL,
		"route", n.cfg.Route, "edge", n.cfg.Edge, "redis_up", n.healthy.Load())
}

// Close leaves the cluster: relays end, ownerships are released and the
// node's key removed, so others may place its streams at once. Safe to
// call twice.
func (n *Node) Close() {
	n.once.Do(func() {
		n.cancel()
		n.relays.closeAll()
		n.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		n.leave(ctx)
		_ = n.rdb.Close()
		n.log.Info("left the cluster")
	})
}

// Abandon stops the node as a crash would: no more renewals, nothing
// released, its keys left to expire. For tests and measurements.
func (n *Node) Abandon() {
	n.once.Do(func() {
		n.cancel()
		n.relays.closeAll()
		n.wg.Wait()
		_ = n.rdb.Close()
	})
}

// ID is this node's name in the registry.
func (n *Node) ID() string { return n.cfg.NodeID }

// HTTPURL is this node's base URL as clients reach it.
func (n *Node) HTTPURL() string { return n.cfg.HTTPURL }

// Healthy reports whether the last exchange with Redis succeeded.
func (n *Node) Healthy() bool { return n.healthy.Load() }

// RouteMode is how WHIP POSTs for streams owned elsewhere are answered.
func (n *Node) RouteMode() Route { return n.cfg.Route }

// TTL is how long the node's keys live without renewal.
func (n *Node) TTL() time.Duration { return n.cfg.TTL }

// Group is the unit of ownership of a stream name: a meeting
// ("{meeting}/{participant}") is owned whole, by its meeting part; a flat
// name by itself.
func Group(name string) string {
	g, _, _ := strings.Cut(name, "/")
	return g
}

var redisLogOnce sync.Once

// redisLog sends go-redis's own messages (failed dials while Redis is
// down) to the debug log: the node logs the outage once itself.
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	slog.Debug(fmt.Sprintf(format, v...), "component", "redis")
}

func (n *Node) opContext(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = n.ctx
	}
	return context.WithTimeout(parent, opTimeout)
}

// unavailable records a failed exchange with Redis and wraps err.
func (n *Node) unavailable(err error) error {
	if n.healthy.Swap(false) {
		n.log.Error("Redis is unreachable: serving what this node owns, refusing new cluster placements", "err", err)
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// reachable records a successful exchange with Redis.
func (n *Node) reachable() {
	if !n.healthy.Swap(true) {
		n.log.Info("Redis is reachable")
	}
}
