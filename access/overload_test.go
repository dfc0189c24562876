package access

import (
	"errors"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestQuantileOfWindow(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0.001, 0.01, 0.1, 1, math.Inf(1)}
	window := [][]uint64{
		{0, 90, 0, 0, 0},
		{0, 5, 3, 1, 1},
		nil, // a sample not taken yet
	}
	// 100 waits: 95 of 1–10 ms, 3 of 10–100 ms, one of 0.1–1 s, one
	// longer. Each quantile is its bucket's upper bound.
	if got := quantile(window, buckets, 0.99); got != time.Second {
		t.Errorf("p99 %v, want 1s", got)
	}
	if got := quantile(window, buckets, 0.98); got != 100*time.Millisecond {
		t.Errorf("p98 %v, want 100ms", got)
	}
	if got := quantile(window, buckets, 0.5); got != 10*time.Millisecond {
		t.Errorf("p50 %v, want 10ms", got)
	}
	if got := quantile([][]uint64{{0, 0, 0, 0, 2}}, buckets, 0.99); got != time.Second {
		t.Errorf("waits in the open last bucket: %v, want its lower bound, 1s", got)
	}
	if got := quantile([][]uint64{nil, {0, 0, 0, 0, 0}}, buckets, 0.99); got != 0 {
		t.Errorf("no waits: %v, want 0", got)
	}
}

// A gateway whose CPUs are taken (here by busy goroutines, many more than
// GOMAXPROCS) refuses new sessions with a 503-kind LimitError, and takes
// them again once the CPUs are free.
func TestOverloadedGatewayRefusesNewSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("saturates the CPUs for a few seconds")
	}
	g, err := New(Config{}, Limits{MaxSchedLag: 20 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	req := Request{Action: Publish, Stream: "cam", Protocol: WHIP, Addr: "192.0.2.1"}
	release, err := g.Admit(req)
	if err != nil {
		t.Fatalf("idle gateway refused a publisher: %v", err)
	}
	release()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1e5; i++ {
					_ = i * i
				}
			}
		})
	}
	var refusal *LimitError
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		release, err := g.Admit(req)
		if errors.As(err, &refusal) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		release()
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if refusal == nil {
		t.Fatalf("still admitting with %d busy goroutines on %d CPUs (lag %v)", 8*runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), g.adm.lag.get())
	}
	if refusal.Limit != "overloaded" || refusal.PerClient || refusal.Retry <= 0 {
		t.Errorf("refusal %+v, want limit overloaded, for every client, with a Retry-After", refusal)
	}
	if n := rejections(g, "overloaded"); n < 1 {
		t.Errorf("refusals counted: %v", n)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		release, err := g.Admit(req)
		if err == nil {
			release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused %v after the load ended: %v", 15*time.Second, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
