package access

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestInputWatchVerdicts(t *testing.T) {
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	calm := Input{SocketsKnown: true, Capacity: 8 << 20, Lateness: []time.Duration{sec(0.02), sec(0.05), sec(0.3)}}
	cases := []struct {
		name   string
		second Input  // the sample after a calm one
		want   string // in the verdict; "" none
	}{
		{"calm", calm, ""},
		{"socket dropped", Input{SocketsKnown: true, Capacity: 8 << 20, Drops: 12, Lateness: calm.Lateness}, "dropped 12 packets"},
		{"packets waited in the socket", Input{SocketsKnown: true, Capacity: 8 << 20, ReadLag: sec(1.5), ReadLagKnown: true}, "waited up to 1.5s in its WebRTC socket"},
		{"packets waited a little", Input{SocketsKnown: true, Capacity: 8 << 20, ReadLag: sec(0.2), ReadLagKnown: true}, ""},
		{"socket half full", Input{SocketsKnown: true, Capacity: 8 << 20, Queued: 5 << 20, Lateness: calm.Lateness}, "62% full"},
		{"socket a third full", Input{SocketsKnown: true, Capacity: 9 << 20, Queued: 3 << 20, Lateness: calm.Lateness}, ""},
		// A congested uplink makes every stream from it late before it
		// arrives; the gateway is not behind.
		{"every stream late, socket read on time", Input{SocketsKnown: true, Capacity: 8 << 20, ReadLag: sec(0.003), ReadLagKnown: true,
			Lateness: []time.Duration{sec(2.5), sec(2.6), sec(3)}}, ""},
		{"no socket statistics", Input{Drops: 99, ReadLag: sec(9), Lateness: []time.Duration{sec(4), sec(5)}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			probe := calm
			w := newInputWatch(time.Second, func() Input { return probe })
			t0 := time.Now()
			probe = c.second
			w.sample(t0.Add(inputSample))
			got := w.behind(t0.Add(inputSample))
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Fatalf("verdict %q, want %q", got, c.want)
			}
			if c.want == "" {
				return
			}
			// Held while the input keeps up, then lifted.
			probe = calm
			for at := 2 * inputSample; at <= inputHold+inputSample; at += inputSample {
				w.sample(t0.Add(at))
				if w.behind(t0.Add(at)) == "" {
					t.Fatalf("lifted %v after the input caught up, want %v", at-inputSample, inputHold)
				}
			}
			at := inputHold + 3*inputSample
			w.sample(t0.Add(at))
			if v := w.behind(t0.Add(at)); v != "" {
				t.Fatalf("still refusing %v after the input caught up: %q", at-inputSample, v)
			}
		})
	}
}

// Through the Gate: new sessions are refused while the probe shows the
// gateway behind, with a 503-worthy LimitError, and counted.
func TestGateRefusesWhileBehindItsInput(t *testing.T) {
	g, err := New(Config{}, Limits{MaxInputLag: time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var mu sync.Mutex
	in := Input{SocketsKnown: true, Capacity: 8 << 20}
	g.WatchInput(func() Input {
		mu.Lock()
		defer mu.Unlock()
		return in
	})
	req := Request{Action: Read, Stream: "cam", Protocol: WHEP, Addr: "192.0.2.1"}
	release, err := g.Admit(req)
	if err != nil {
		t.Fatalf("a gateway keeping up refused a viewer: %v", err)
	}
	release()
	if why := g.Overloaded(); why != "" {
		t.Fatalf("a gateway keeping up is overloaded: %s", why)
	}

	mu.Lock()
	in.Drops = 40
	mu.Unlock()
	var refusal *LimitError
	deadline := time.Now().Add(3 * inputSample)
	for refusal == nil && time.Now().Before(deadline) {
		release, err := g.Admit(req)
		if err == nil {
			release()
			time.Sleep(inputSample / 5)
			continue
		}
		if !errors.As(err, &refusal) {
			t.Fatal(err)
		}
	}
	if refusal == nil {
		t.Fatal("still admitting after the socket dropped packets")
	}
	if why := g.Overloaded(); !strings.Contains(why, "dropped 40 packets") {
		t.Errorf("Overloaded() = %q", why)
	}
	if refusal.Limit != "overloaded" || refusal.PerClient || refusal.Retry != inputHold ||
		!strings.Contains(refusal.Detail, "behind its input") || !strings.Contains(refusal.Detail, "dropped 40 packets") {
		t.Fatalf("refusal %+v", refusal)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collectors()...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if got["reel_limit_rejections_total/overloaded"] < 1 || got["reel_input_socket_drops_total"] != 40 {
		t.Errorf("metrics %v", got)
	}
	for _, name := range []string{"reel_input_socket_queue_ratio", "reel_input_read_lag_seconds", "reel_input_late_streams"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in %v", name, got)
		}
	}
}

// Without MaxInputLag the watch never starts.
func TestWatchInputOff(t *testing.T) {
	g, err := New(Config{}, Limits{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	called := false
	g.WatchInput(func() Input { called = true; return Input{} })
	if called || g.adm.input != nil {
		t.Fatal("the input is watched with MaxInputLag 0")
	}
}
