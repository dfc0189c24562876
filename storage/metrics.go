package storage

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	uploads  atomic.Uint64
	bytes    atomic.Uint64
	failures atomic.Uint64
}

var (
	descQueue    = prometheus.NewDesc("reel_upload_queue", "Files waiting to be uploaded to S3 (and verified).", nil, nil)
	descOldest   = prometheus.NewDesc("reel_upload_oldest_pending_seconds", "Age of the oldest file waiting to be uploaded (0 when none).", nil, nil)
	descUploads  = prometheus.NewDesc("reel_uploads_total", "Files uploaded to S3 and verified (size and SHA-256).", nil, nil)
	descBytes    = prometheus.NewDesc("reel_upload_bytes_total", "Bytes of the files uploaded and verified.", nil, nil)
	descFailures = prometheus.NewDesc("reel_upload_failures_total", "Upload attempts that failed (and are retried).", nil, nil)
)

// Collector exports the upload queue's metrics.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descOldest, descUploads, descBytes, descFailures} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.OldestPending.Seconds())
	ch <- prometheus.MustNewConstMetric(descUploads, prometheus.CounterValue, float64(st.Uploads))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.Failures))
}

// Stats is the queue at a glance.
type Stats struct {
	Pending       int
	OldestPending time.Duration
	Uploads       uint64
	Bytes         uint64
	Failures      uint64
}

// Stats reports the queue's state and counters.
func (s *Store) Stats() Stats {
	st := Stats{Pending: s.queue.pendingCount(), Uploads: s.metrics.uploads.Load(),
		Bytes: s.metrics.bytes.Load(), Failures: s.metrics.failures.Load()}
	if t := s.queue.oldest(); !t.IsZero() {
		st.OldestPending = time.Since(t)
	}
	return st
}
