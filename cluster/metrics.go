package cluster

import "github.com/prometheus/client_golang/prometheus"

var (
	descRedisUp  = prometheus.NewDesc("reel_cluster_redis_up", "1 while the last exchange with the cluster's Redis succeeded.", nil, nil)
	descNodes    = prometheus.NewDesc("reel_cluster_nodes", "Nodes in the cluster's registry, this one included.", nil, nil)
	descRelays   = prometheus.NewDesc("reel_cluster_relays", "Streams this node relays from the node that owns them.", nil, nil)
	descOwned    = prometheus.NewDesc("reel_cluster_owned_groups", "Streams and meetings this node owns in the registry.", nil, nil)
	descCommands = prometheus.NewDesc("reel_cluster_redis_commands_total", "Redis commands this node sent.", nil, nil)
	descFailed   = prometheus.NewDesc("reel_cluster_redis_failures_total", "Redis commands that failed.", nil, nil)
)

// Collector exports the node's view of the cluster.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRedisUp, descNodes, descRelays, descOwned, descCommands, descFailed} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.n.Healthy() {
		up = 1
	}
	sent, failed := c.n.Commands()
	ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(c.n.Nodes())))
	ch <- prometheus.MustNewConstMetric(descRelays, prometheus.GaugeValue, float64(c.n.Relays()))
	ch <- prometheus.MustNewConstMetric(descOwned, prometheus.GaugeValue, float64(len(c.n.ownedGroups())))
	ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(sent))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(failed))
}
