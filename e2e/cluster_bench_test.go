package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/live"
)

// BenchmarkClusterRegistry measures the registry's cost on a real
// redis-server at the default TTL (docs/BENCHMARKS.md, Cluster): Redis
// commands per second of one node at rest and with 100 streams, and the
// time from an owner's death to its stream being placeable on another
// node, over 10 deaths. Run it once:
//
//	go test -run XXX -bench ClusterRegistry -benchtime 1x ./e2e
func BenchmarkClusterRegistry(b *testing.B) {
	for range b.N {
		benchRegistry(b)
	}
}

func benchRegistry(b *testing.B) {
	redis := startRedis(b)
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redis.port)})
	defer rdb.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	newNode := func(id string) (*cluster.Node, *live.Hub) {
		hub := live.NewHub(live.Reject)
		n, err := cluster.New(cluster.Config{RedisURL: redis.URL, NodeID: id, HTTPURL: "http://" + id + ".test:8080",
			Edge: true, Logger: quiet, Snapshot: func() (cluster.Load, []live.StreamInfo) {
				var l cluster.Load
				var out []live.StreamInfo
				for _, s := range hub.Streams() {
					l.Publishers++
					out = append(out, s.Info())
				}
				return l, out
			}}, hub)
		if err != nil {
			b.Fatal(err)
		}
		n.Start()
		return n, hub
	}
	// executed is every command Redis ran, those that scripts call
	// included (INFO's total_commands_processed counts them too).
	executed := func() float64 {
		info := rdb.Info(context.Background(), "stats").Val()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return 0
	}
	const window = 30 * time.Second
	var a *cluster.Node
	rate := func(what string) {
		e0 := executed()
		c0, _ := a.Commands()
		time.Sleep(window)
		e1 := executed()
		c1, _ := a.Commands()
		sent, ran := float64(c1-c0)/window.Seconds(), (e1-e0-1)/window.Seconds() // less this INFO
		b.Logf("%s: the node sends %.2f commands/s; Redis executes %.2f commands/s (the commands its scripts call included)", what, sent, ran)
		key := strings.ReplaceAll(what, " ", "_")
		b.ReportMetric(sent, key+"_sent/s")
		b.ReportMetric(ran, key+"_executed/s")
	}

	var hub *live.Hub
	a, hub = newNode("a")
	defer a.Close()
	time.Sleep(time.Second)
	rate("one node at rest")
	for i := range 100 {
		if _, err := hub.Publish("s"+strconv.Itoa(i), live.PublishSpec{Protocol: "whip",
			Tracks: []*live.Track{{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}}}); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	rate("one node with 100 streams")

	// Death to placeable: 10 owners, each killed at a random moment of
	// its renewal period; another node polls every 20 ms.
	placer, _ := newNode("placer")
	defer placer.Close()
	var mu sync.Mutex
	var took []time.Duration
	var wg sync.WaitGroup
	for i := range 10 {
		owner, ohub := newNode("owner" + strconv.Itoa(i))
		group := "dead" + strconv.Itoa(i)
		if _, err := ohub.Publish(group, live.PublishSpec{Protocol: "whip",
			Tracks: []*live.Track{{Kind: live.Video, Codec: live.VP8, PayloadType: 96, ClockRate: 90000}}}); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rdb.Get(context.Background(), "reel:owner:"+group).Val() != owner.ID() {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(time.Duration(rand.Int64N(int64(cluster.DefaultTTL / 3))))
			owner.Abandon()
			died := time.Now()
			u, _ := url.Parse("/whip/" + group)
			for time.Since(died) < 3*cluster.DefaultTTL {
				if d, err := placer.LocatePublish(context.Background(), group, u); err == nil && d.Local {
					mu.Lock()
					took = append(took, time.Since(died))
					mu.Unlock()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if len(took) != 10 {
		b.Fatalf("%d of 10 dead owners' streams became placeable within 3 TTL", len(took))
	}
	slices.Sort(took)
	b.Logf("owner death to placeable elsewhere (TTL %v): %v", cluster.DefaultTTL, took)
	b.ReportMetric(took[4].Seconds(), "death_to_placeable_p50_s")
	b.ReportMetric(took[9].Seconds(), "death_to_placeable_p99_s")
}
