package api

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
)

// hubCollector reads the hub's counters at scrape time, so the forwarding
// path never touches Prometheus.
type hubCollector struct {
	hub                                 *live.Hub
	publishers, viewers, dropped, bytes *prometheus.Desc
	packets, keyframes, shed            *prometheus.Desc
}

func newHubCollector(h *live.Hub) *hubCollector {
	return &hubCollector{
		hub:        h,
		publishers: prometheus.NewDesc("reel_publishers", "Live streams being published.", nil, nil),
		viewers:    prometheus.NewDesc("reel_consumers", "Hub subscriptions by output (whep, rtsp, hls, record).", []string{"output"}, nil),
		dropped:    prometheus.NewDesc("reel_consumer_dropped_packets", "Packets dropped for slow consumers of live streams, by output.", []string{"output"}, nil),
		bytes:      prometheus.NewDesc("reel_ingest_bytes", "RTP bytes received from live publishers, by media kind.", []string{"kind"}, nil),
		packets:    prometheus.NewDesc("reel_ingest_packets", "RTP packets received from live publishers, by media kind.", []string{"kind"}, nil),
		shed:       prometheus.NewDesc("reel_consumer_shed_packets", "Packets shed for consumers of live streams that fell further behind than their latency budget, by output (per viewer: the stream's consumers in the API).", []string{"output"}, nil),
		keyframes:  prometheus.NewDesc("reel_keyframe_requests", "Keyframe requests sent to live publishers.", nil, nil),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.publishers, c.viewers, c.dropped, c.shed, c.bytes, c.packets, c.keyframes} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	streams := c.hub.Streams()
	ch <- prometheus.MustNewConstMetric(c.publishers, prometheus.GaugeValue, float64(len(streams)))
	viewers, dropped, shed := map[string]float64{}, map[string]float64{}, map[string]float64{}
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
		for k, n := range info.Shed {
			shed[k] += float64(n)
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
		ch <- prometheus.MustNewConstMetric(c.shed, prometheus.GaugeValue, shed[out], out)
	}
	for _, k := range []string{"video", "audio"} {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, bytes[k], k)
		ch <- prometheus.MustNewConstMetric(c.packets, prometheus.GaugeValue, packets[k], k)
	}
	ch <- prometheus.MustNewConstMetric(c.keyframes, prometheus.GaugeValue, keyframes)
}

// RecorderSource is what /metrics reads from the recorder at scrape time;
// *recorder.Recorder provides it.
type RecorderSource interface {
	Catalog() *recorder.Catalog
	FreeSpace() (uint64, error)
	PausedReason() string
}

// recorderCollector exposes the catalog by state, its size, the recordings
// file system's free space and whether the disk guard pauses recording.
type recorderCollector struct {
	src                             RecorderSource
	recordings, bytes, free, paused *prometheus.Desc
}

// NewRecorderCollector reads src at scrape time; register it with
// Deps.Metrics.
func NewRecorderCollector(src RecorderSource) prometheus.Collector {
	return &recorderCollector{
		src:        src,
		recordings: prometheus.NewDesc("reel_recordings", "Recordings in the catalog by state (recording is the active ones).", []string{"state"}, nil),
		bytes:      prometheus.NewDesc("reel_recordings_bytes", "Total size of the recording files in the catalog.", nil, nil),
		free:       prometheus.NewDesc("reel_recordings_disk_free_bytes", "Free space of the file system holding the recordings directory.", nil, nil),
		paused:     prometheus.NewDesc("reel_recording_paused", "1 while new recordings are paused because the disk is almost full.", nil, nil),
	}
}

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.recordings, c.bytes, c.free, c.paused} {
		ch <- d
	}
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Catalog().Stats()
	states := slices.Sorted(maps.Keys(st.Recordings))
	for _, state := range states {
		ch <- prometheus.MustNewConstMetric(c.recordings, prometheus.GaugeValue, float64(st.Recordings[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	// When the measurement fails the sample is left out, and the series
	// goes stale: an invalid metric would fail the whole scrape.
	if free, err := c.src.FreeSpace(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(free))
	}
	paused := 0.0
	if c.src.PausedReason() != "" {
		paused = 1
	}
	ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, paused)
}

// EventsSource is what /metrics reads from the webhook dispatcher;
// *events.Dispatcher provides it.
type EventsSource interface {
	Stats() events.Stats
}

type eventsCollector struct {
	src                                  EventsSource
	emitted, deliveries, retries, queued *prometheus.Desc
}

// NewEventsCollector reads src at scrape time; register it with
// Deps.Metrics.
func NewEventsCollector(src EventsSource) prometheus.Collector {
	return &eventsCollector{
		src:        src,
		emitted:    prometheus.NewDesc("reel_events_total", "Events emitted (publish.started, publish.stopped, recording.finished).", nil, nil),
		deliveries: prometheus.NewDesc("reel_webhook_deliveries_total", "Webhook deliveries (one per event and webhook) by result: delivered, failed (gave up after retries or a 4xx), dropped (queue full or shutdown).", []string{"result"}, nil),
		retries:    prometheus.NewDesc("reel_webhook_retries_total", "Webhook delivery attempts after the first.", nil, nil),
		queued:     prometheus.NewDesc("reel_webhook_queue", "Webhook deliveries waiting to be made or retried.", nil, nil),
	}
}

func (c *eventsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.emitted, c.deliveries, c.retries, c.queued} {
		ch <- d
	}
}

func (c *eventsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.emitted, prometheus.CounterValue, float64(s.Emitted))
	ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(s.Delivered), "delivered")
	ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(s.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(s.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(s.Retries))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
}

// viewersCollector counts the people watching, by protocol: WHEP viewers
// are hub subscriptions, RTSP and HLS viewers share one subscription per
// stream and are counted by their servers.
type viewersCollector struct {
	hub     *live.Hub
	outputs map[string]ViewerCounter
	viewers *prometheus.Desc
}

func newViewersCollector(hub *live.Hub, outputs map[string]ViewerCounter) *viewersCollector {
	return &viewersCollector{hub: hub, outputs: outputs,
		viewers: prometheus.NewDesc("reel_viewers", "People watching live streams, by protocol (whep, rtsp, hls).", []string{"protocol"}, nil)}
}

func (c *viewersCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.viewers }

func (c *viewersCollector) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{"whep": 0, "rtsp": 0, "hls": 0}
	for _, s := range c.hub.Streams() {
		for _, sub := range s.Subscriptions() {
			if sub.Kind == string(live.OutputWHEP) {
				n["whep"]++
			}
		}
		for name, counter := range c.outputs {
			n[name] += counter.Viewers(s.Name)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(n)) {
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(n[p]), p)
	}
}

// SessionCounter counts a signaling server's live sessions; *ingest.Server
// and *whep.Server are ones.
type SessionCounter interface{ Sessions() int }

// sessionsCollector exposes the WHIP and WHEP session tables' sizes, so
// that a leak (a session never taken out) shows.
type sessionsCollector struct {
	byProtocol map[string]SessionCounter
	desc       *prometheus.Desc
}

func newSessionsCollector(byProtocol map[string]SessionCounter) *sessionsCollector {
	return &sessionsCollector{byProtocol: byProtocol,
		desc: prometheus.NewDesc("reel_webrtc_sessions", "Live WHIP and WHEP sessions (answered, connected or not), by protocol.", []string{"protocol"}, nil)}
}

func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range slices.Sorted(maps.Keys(c.byProtocol)) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(c.byProtocol[p].Sessions()), p)
	}
}
