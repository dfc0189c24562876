package access

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A gateway can fall behind its input while its goroutines are scheduled
// promptly: when other processes take the machine's CPUs, the whole
// process waits, and the publishers' media piles up in the WebRTC
// socket's receive buffer until the kernel drops it. So admission also
// watches the input itself (Gate.WatchInput): how long packets wait in
// that socket before they are read (the kernel stamps their arrival),
// and the kernel's drops and fill of it. These are the gateway's own
// backlog, whatever the network does: a congested uplink makes streams
// late before they arrive (Input.Lateness, shown, not acted on). While
// the input shows the gateway behind, and for inputHold after, new
// sessions are refused and the live ones keep what they have.

// Input is how the gateway reads its publishers' media, as WatchInput's
// probe reports it.
type Input struct {
	// SocketsKnown: the kernel reported the shared WebRTC sockets (Linux).
	SocketsKnown bool
	// Queued and Capacity: bytes waiting in the sockets' receive buffers,
	// and their size; Drops: packets the kernel dropped on them since they
	// opened.
	Queued, Capacity int
	Drops            uint64
	// ReadLag is the longest a packet waited in the sockets before it
	// was read, since the previous sample; ReadLagKnown is false where
	// the kernel does not stamp arrivals.
	ReadLag      time.Duration
	ReadLagKnown bool
	// Lateness has one entry per live stream: how much later than its
	// least delay its latest packets came (live.Clock.Lateness). A
	// stream is late for the network's reasons too, so this is counted
	// (reel_input_late_streams), not acted on.
	Lateness []time.Duration
}

const (
	// inputSample is how often the probe is read.
	inputSample = 500 * time.Millisecond
	// inputHold is how long new sessions stay refused after the input
	// last showed the gateway behind: as long as a refused client is
	// told to wait, so it does not come back into the same backlog.
	inputHold = retryCapacity
)

// inputWatch samples a probe and says whether the gateway is behind its
// input, and why.
type inputWatch struct {
	maxLag time.Duration
	probe  func() Input

	mu       sync.Mutex
	started  bool
	drops    uint64 // at the previous sample
	behindAt time.Time
	why      string
	last     Input
	poller
}

func newInputWatch(maxLag time.Duration, probe func() Input) *inputWatch {
	w := &inputWatch{maxLag: maxLag, probe: probe, poller: newPoller()}
	w.sample(time.Now())
	return w
}

// run samples every inputSample until close.
func (w *inputWatch) run() { w.every(inputSample, w.sample) }

// sample reads the probe once and updates the verdict.
func (w *inputWatch) sample(now time.Time) {
	in := w.probe()
	w.mu.Lock()
	defer w.mu.Unlock()
	why := ""
	switch {
	case in.SocketsKnown && w.started && in.Drops > w.drops:
		why = fmt.Sprintf("its WebRTC socket overflowed and dropped %d packets of publishers' media in the last %v", in.Drops-w.drops, inputSample)
	case in.ReadLagKnown && in.ReadLag > w.maxLag:
		why = fmt.Sprintf("publishers' packets waited up to %v in its WebRTC socket before it read them (limit %v)", in.ReadLag.Round(time.Millisecond), w.maxLag)
	case in.SocketsKnown && in.Capacity > 0 && in.Queued*2 > in.Capacity:
		why = fmt.Sprintf("its WebRTC socket's receive buffer is %d%% full", in.Queued*100/in.Capacity)
	}
	if why != "" {
		w.behindAt, w.why = now, why
	}
	w.started, w.drops, w.last = in.SocketsKnown, in.Drops, in
}

// behind is why the gateway is behind its input, or "" when it has kept
// up for inputHold.
func (w *inputWatch) behind(now time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.why == "" || now.Sub(w.behindAt) > inputHold {
		return ""
	}
	if now.Sub(w.behindAt) < inputSample*2 {
		return w.why
	}
	return fmt.Sprintf("%v ago %s", now.Sub(w.behindAt).Round(time.Second), w.why)
}

func (w *inputWatch) collectors() []prometheus.Collector {
	read := func(f func(Input) float64) func() float64 {
		return func() float64 {
			w.mu.Lock()
			defer w.mu.Unlock()
			return f(w.last)
		}
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "reel_input_socket_drops_total",
			Help: "Packets the kernel dropped on the shared WebRTC UDP socket because its receive buffer was full (publishers' media lost before Reel read it).",
		}, read(func(in Input) float64 { return float64(in.Drops) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reel_input_socket_queue_ratio",
			Help: "How full the shared WebRTC UDP socket's receive buffer is (0 to 1); new sessions are refused above 0.5.",
		}, read(func(in Input) float64 {
			if in.Capacity == 0 {
				return 0
			}
			return float64(in.Queued) / float64(in.Capacity)
		})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reel_input_read_lag_seconds",
			Help: "The longest a publisher's packet waited in the shared WebRTC UDP socket before the gateway read it, over the last 500 ms; new sessions are refused above limits.max_input_lag.",
		}, read(func(in Input) float64 { return in.ReadLag.Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "reel_input_late_streams",
			Help: "Live streams whose latest packets came later than limits.max_input_lag past their least delay (the gateway's backlog or the network's; not acted on).",
		}, read(func(in Input) float64 {
			late := 0
			for _, l := range in.Lateness {
				if l > w.maxLag {
					late++
				}
			}
			return float64(late)
		})),
	}
}
