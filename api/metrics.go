package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-gateway/reel/ingest"
)

// hubCollector reads the hub's counters at scrape time, so the forwarding
// path never touches Prometheus.
type hubCollector struct {
	hub                                 *ingest.Hub
	publishers, viewers, dropped, bytes *prometheus.Desc
	packets, keyframes                  *prometheus.Desc
}

func newHubCollector(h *ingest.Hub) *hubCollector {
	return &hubCollector{
		hub:        h,
		publishers: prometheus.NewDesc("reel_publishers", "Live streams being published.", nil, nil),
		viewers:    prometheus.NewDesc("reel_consumers", "Hub subscriptions by output (whep, rtsp, hls, record).", []string{"output"}, nil),
		dropped:    prometheus.NewDesc("reel_consumer_dropped_packets", "Packets dropped for slow consumers of live streams, by output.", []string{"output"}, nil),
		bytes:      prometheus.NewDesc("reel_ingest_bytes", "RTP bytes received from live publishers, by media kind.", []string{"kind"}, nil),
		packets:    prometheus.NewDesc("reel_ingest_packets", "RTP packets received from live publishers, by media kind.", []string{"kind"}, nil),
		keyframes:  prometheus.NewDesc("reel_keyframe_requests", "Keyframe requests sent to live publishers.", nil, nil),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.publishers, c.viewers, c.dropped, c.bytes, c.packets, c.keyframes} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	streams := c.hub.Streams()
	ch <- prometheus.MustNewConstMetric(c.publishers, prometheus.GaugeValue, float64(len(streams)))
	viewers, dropped := map[string]float64{}, map[string]float64{}
	bytes, packets := map[string]float64{}, map[string]float64{}
	var keyframes float64
	for _, s := range streams {
		info := s.Info()
		for k, n := range info.Viewers {
			viewers[k] += float64(n)
		}
		for k, n := range info.Dropped {
			dropped[k] += float64(n)
		}
		for _, t := range info.Tracks {
			bytes[string(t.Kind)] += float64(t.Bytes)
			packets[string(t.Kind)] += float64(t.Packets)
		}
		keyframes += float64(info.KeyframeRequests)
	}
	for _, out := range []string{"whep", "rtsp", "hls", "record"} {
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, viewers[out], out)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.GaugeValue, dropped[out], out)
	}
	for _, k := range []string{"video", "audio"} {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, bytes[k], k)
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.GaugeValue, packets[k], k)
	}
	ch <- prometheus.MustNewConstMetric(c.keyframes, prometheus.GaugeValue, keyframes)
}
