package access

import (
	"math"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A gateway whose CPUs are saturated reads every socket late: its input
// buffers overflow and media that was already admitted is lost, in every
// recording at once. The Go scheduler measures this directly, as the time
// runnable goroutines wait for a CPU; past Limits.MaxSchedLag the gateway
// takes no new sessions, so the ones it has keep everything.

const (
	// lagSample is how often the scheduler's latencies are read.
	lagSample = 500 * time.Millisecond
	// lagWindow is how many samples the percentile is taken over (2 s).
	lagWindow = 4
	// lagQuantile is the share of waits below the reported lag.
	lagQuantile = 0.99
)

const schedLatencies = "/sched/latencies:seconds"

// schedLag follows the 99th percentile of goroutines' scheduling
// latencies over the last lagWindow samples. Safe for concurrent use.
type schedLag struct {
	mu     sync.Mutex
	sample []metrics.Sample
	prev   []uint64
	window [lagWindow][]uint64 // counts per bucket, one per sample
	next   int
	lag    time.Duration
	poller
}

func newSchedLag() *schedLag {
	s := &schedLag{sample: []metrics.Sample{{Name: schedLatencies}}, poller: newPoller()}
	s.read() // the baseline: waits before now are not counted
	return s
}

// run samples every lagSample until close.
func (s *schedLag) run() { s.every(lagSample, func(time.Time) { s.read() }) }

// poller runs a sampler's loop: one call per period until close. The
// gate's load measures (the scheduling lag, the input watch) share it.
type poller struct {
	stop    chan struct{}
	stopped *sync.Once
}

func newPoller() poller { return poller{stop: make(chan struct{}), stopped: &sync.Once{}} }

// every calls f with each tick's time until close.
func (p poller) every(period time.Duration, f func(time.Time)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			f(now)
		}
	}
}

// close ends every; safe to call twice.
func (p poller) close() { p.stopped.Do(func() { close(p.stop) }) }

// read takes one sample: the waits since the previous one go into the
// window, and the percentile is computed again.
func (s *schedLag) read() {
	s.mu.Lock()
	defer s.mu.Unlock()
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return // not measured by this runtime
	}
	h := s.sample[0].Value.Float64Histogram()
	if s.prev == nil {
		s.prev = append([]uint64(nil), h.Counts...)
		return
	}
	d := s.window[s.next]
	if len(d) != len(h.Counts) {
		d = make([]uint64, len(h.Counts))
		s.window[s.next] = d
	}
	for i, n := range h.Counts {
		d[i] = n - s.prev[i]
		s.prev[i] = n
	}
	s.next = (s.next + 1) % lagWindow
	s.lag = quantile(s.window[:], h.Buckets, lagQuantile)
}

// quantile is the q quantile of the waits counted in window (bucket i
// holds waits in [buckets[i], buckets[i+1])), as the bucket's upper
// bound: a lag is never reported lower than it was.
func quantile(window [][]uint64, buckets []float64, q float64) time.Duration {
	var total uint64
	for _, d := range window {
		for _, n := range d {
			total += n
		}
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(float64(total) * q))
	var seen uint64
	for i := range len(buckets) - 1 {
		for _, d := range window {
			if i < len(d) {
				seen += d[i]
			}
		}
		if seen >= want {
			upper := buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return time.Duration(buckets[len(buckets)-1] * float64(time.Second))
}

// get is the latest percentile.
func (s *schedLag) get() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lag
}

func (s *schedLag) collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reel_sched_latency_seconds",
		Help: "99th percentile, over the last 2 s, of how long the gateway's goroutines waited for a CPU; new sessions are refused above limits.max_sched_lag.",
	}, func() float64 { return s.get().Seconds() })
}
