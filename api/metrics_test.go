package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// metrics is one parsed scrape.
type metrics map[string]*dto.MetricFamily

// scrape GETs /metrics and parses it as Prometheus would.
func scrape(t *testing.T, url string) metrics {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the sample of name with the given label pairs; ok is false if
// there is none.
func (m metrics) value(name string, labels ...string) (v float64, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
next:
	for _, s := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case s.Gauge != nil:
			return s.GetGauge().GetValue(), true
		case s.Counter != nil:
			return s.GetCounter().GetValue(), true
		case s.Untyped != nil:
			return s.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

func (m metrics) want(t *testing.T, cond func(float64) bool, what, name string, labels ...string) {
	t.Helper()
	v, ok := m.value(name, labels...)
	if !ok {
		t.Errorf("%s%v is missing", name, labels)
		return
	}
	if !cond(v) {
		t.Errorf("%s%v = %v, want %s", name, labels, v, what)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func positive(v float64) bool            { return v > 0 }

type fixedViewers int

func (n fixedViewers) Viewers(string) int { return int(n) }

// TestMetricsScrape publishes real VP8+Opus into the hub with the recorder
// and the webhook dispatcher wired as in the binary, and reads every Reel
// metric back through a real scrape: while live, then once it has ended.
func TestMetricsScrape(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(hook.Close)
	ev, err := events.New(events.Config{Webhooks: []string{hook.URL}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ev.Close)

	hub := live.NewHub(live.Reject)
	rec, err := recorder.New(recorder.Config{Dir: t.TempDir(), Enabled: true, Logger: quiet,
		OnFinish: func(in recorder.Info) { ev.Emit(events.FromRecording(in)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	hub.OnPublish(rec.Record)
	hub.OnPublish(func(s *live.Stream) { ev.Emit(events.FromPublish(s.Info())) })
	hub.OnUnpublish(func(s *live.Stream) { ev.Emit(events.FromUnpublish(s.Info())) })

	url := serveAPI(t, hub, rtc.Config{}, AuthConfig{}, Config{Logger: quiet}, Deps{
		Outputs: map[string]ViewerCounter{"rtsp": fixedViewers(2), "hls": fixedViewers(1)},
		Metrics: []prometheus.Collector{NewRecorderCollector(rec), NewEventsCollector(ev)}})

	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	pub, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	// Active once the file is open; in the catalog just after.
	testwait.Until(t, 5*time.Second, "the recording to start", func() bool {
		return len(rec.Active()) == 1 && rec.Catalog().Stats().Recordings[recorder.StateRecording] == 1
	})

	m := scrape(t, url)
	m.want(t, eq(1), "1", "reel_publishers")
	m.want(t, eq(1), "1", "reel_consumers", "output", "record")
	m.want(t, positive, "> 0", "reel_ingest_packets", "kind", "video")
	m.want(t, positive, "> 0", "reel_ingest_bytes", "kind", "audio")
	m.want(t, positive, "> 0", "reel_keyframe_requests") // the recording asked for one
	m.want(t, eq(0), "0", "reel_viewers", "protocol", "whep")
	m.want(t, eq(2), "2 (RTSP's own count)", "reel_viewers", "protocol", "rtsp")
	m.want(t, eq(1), "1", "reel_viewers", "protocol", "hls")
	m.want(t, eq(1), "1", "reel_recordings", "state", "recording")
	m.want(t, eq(0), "0", "reel_recordings", "state", "finished")
	m.want(t, positive, "> 0", "reel_recordings_disk_free_bytes")
	m.want(t, eq(0), "0", "reel_recording_paused")
	m.want(t, eq(1), "1 (publish.started)", "reel_events_total")

	<-pub.Done()
	testwait.Until(t, 5*time.Second, "the recording to finish and three webhooks to be delivered", func() bool {
		s := ev.Stats()
		return s.Delivered == 3 && s.Queued == 0
	})
	m = scrape(t, url)
	m.want(t, eq(0), "0", "reel_publishers")
	m.want(t, eq(0), "0", "reel_recordings", "state", "recording")
	m.want(t, eq(1), "1", "reel_recordings", "state", "finished")
	m.want(t, eq(0), "0", "reel_recordings", "state", "failed")
	m.want(t, positive, "> 0", "reel_recordings_bytes")
	m.want(t, eq(3), "3", "reel_events_total")
	m.want(t, eq(3), "3", "reel_webhook_deliveries_total", "result", "delivered")
	m.want(t, eq(0), "0", "reel_webhook_deliveries_total", "result", "failed")
	m.want(t, eq(0), "0", "reel_webhook_deliveries_total", "result", "dropped")
	m.want(t, eq(0), "0", "reel_webhook_retries_total")
	m.want(t, eq(0), "0", "reel_webhook_queue")
	if t.Failed() {
		names := make([]string, 0, len(m))
		for n := range m {
			if strings.HasPrefix(n, "reel_") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		t.Logf("reel metrics: %v", names)
	}
}

// TestMetricsDiskFreeError leaves out the free space when it cannot be
// measured, and /metrics still answers with everything else.
func TestMetricsDiskFreeError(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec, err := recorder.New(recorder.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	url := newUIServer(t, AuthConfig{}, Config{Logger: quiet}, NewRecorderCollector(brokenDisk{rec}))
	m := scrape(t, url)
	if _, ok := m.value("reel_recordings_disk_free_bytes"); ok {
		t.Error("disk free is reported although it could not be measured")
	}
	m.want(t, eq(0), "0", "reel_recordings", "state", "finished")
	m.want(t, eq(0), "0", "reel_publishers")
}

type brokenDisk struct{ *recorder.Recorder }

func (brokenDisk) FreeSpace() (uint64, error) { return 0, errStatfs }

var errStatfs = errors.New("statfs failed")

// TestShedVisibleInAPIAndMetrics: a WHEP consumer that stops reading sheds
// beyond its latency budget, and the count shows per consumer in the
// stream's API and by output in /metrics; the recorder sheds nothing.
func TestShedVisibleInAPIAndMetrics(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := live.NewHub(live.Reject)
	url := serveAPI(t, hub, rtc.Config{}, AuthConfig{}, Config{Logger: quiet}, Deps{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hubtest.Publish(ctx, hub, "cam", hubtest.Source{Video: live.VP8, Audio: true, Loop: true}); err != nil {
		t.Fatal(err)
	}
	st := hub.Get("cam")
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	stalled, err := st.SubscribeWith("whep", live.ConsumerFunc(func(*live.Packet) { <-block }),
		live.SubscribeOptions{LatencyBudget: 50 * time.Millisecond, ID: "stalled"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Subscribe("record", live.ConsumerFunc(func(*live.Packet) {}), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	testwait.Until(t, 5*time.Second, "the stalled consumer to shed", func() bool { return stalled.Shed() > 0 })

	m := scrape(t, url)
	m.want(t, positive, "> 0", "reel_consumer_shed_packets", "output", "whep")
	m.want(t, eq(0), "0", "reel_consumer_shed_packets", "output", "record")

	resp, err := http.Get(url + "/api/v1/streams/cam")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info live.StreamInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, c := range info.Consumers {
		switch c.Output {
		case "whep":
			found = c.ID == "stalled" && c.Shed > 0
		case "record":
			if c.Shed != 0 {
				t.Errorf("the recorder shed %d packets", c.Shed)
			}
		}
	}
	if !found || info.Shed["whep"] == 0 {
		t.Fatalf("the stalled consumer's shedding is not in the API: %+v, shed %v", info.Consumers, info.Shed)
	}
}
