package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/reel-gateway/reel/internal/whipclient"
)

// peer is a connected viewer or reader.
type peer struct {
	recv  *receiver
	close func()
}

// run performs one measurement and returns its report.
func run(ctx context.Context, cfg *config, logw io.Writer) (*report, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	tmp, err := os.MkdirTemp("", "reel-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	videoFile, videoRate, err := videoSource(cfg.video, cfg.videoFile, cfg.bitrate, tmp)
	if err != nil {
		return nil, err
	}
	pcfg := *cfg
	pcfg.videoFile = videoFile
	pcfg.videoRate = videoRate
	rep := newReport(cfg, videoFile, videoRate)

	pid := cfg.pid
	var gw *gateway
	if cfg.gatewayBin != "" {
		gw, err = startGateway(cfg.gatewayBin, cfg.baseURL, cfg.rtspURL, cfg.gatewayUDP, splitArgs(cfg.gatewayArgs), tmp)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := gw.stop(); err != nil {
				logf("%v", err)
			}
		}()
		pid = gw.pid()
		logf("started gateway %s, pid %d", cfg.gatewayBin, pid)
	} else if pid == 0 {
		if pid, err = findGateway(); err != nil {
			logf("gateway CPU and memory will not be reported: %v", err)
		}
	}
	rep.Gateway.PID = pid

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var errs errorList

	// Publishers.
	pubs := make([]*publisher, cfg.streams)
	forEach(ctx, cfg.streams, cfg.parallel, func(i int) {
		p, err := startPublisher(ctx, &pcfg, streamName(cfg, i), client)
		if err != nil {
			errs.add("publisher", err)
			return
		}
		pubs[i] = p
	})
	defer func() {
		forEach(context.Background(), len(pubs), 32, func(i int) {
			if pubs[i] != nil {
				_ = pubs[i].pub.Close()
			}
		})
	}()
	live := pubs[:0:0]
	for _, p := range pubs {
		if p != nil {
			live = append(live, p)
		}
	}
	rep.Publish.Connected = len(live)
	if len(live) == 0 {
		return rep, fmt.Errorf("no publisher connected: %s", errs.first())
	}
	logf("%d publishers connected", len(live))
	sleep(ctx, time.Second) // the first keyframe, and the recorder's file

	// Viewers and readers, all streams interleaved.
	type job struct {
		pub   *publisher
		rtsp  bool
		layer string // a simulcast layer to pin, "" for none
	}
	var jobs []job
	for j := 0; j < max(cfg.viewers, cfg.rtspReaders); j++ {
		for _, p := range live {
			if j < cfg.viewers {
				jb := job{pub: p}
				if len(cfg.layers) > 0 && cfg.layers[j%len(cfg.layers)] != "auto" {
					jb.layer = cfg.layers[j%len(cfg.layers)]
				}
				jobs = append(jobs, jb)
			}
			if j < cfg.rtspReaders {
				jobs = append(jobs, job{pub: p, rtsp: true})
			}
		}
	}
	var mu sync.Mutex
	var whepPeers, rtspPeers []peer
	setupStart := time.Now()
	var done sync.WaitGroup
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	done.Add(1)
	go func() {
		defer done.Done()
		forEach(ctx, len(jobs), cfg.parallel, func(i int) {
			jb := jobs[i]
			if jb.rtsp {
				recv := newReceiver(jb.pub.stamps)
				r, err := dialRTSP(endpoint(cfg.rtspTpl, jb.pub.name), cfg.token, cfg.transport, recv)
				if err != nil {
					errs.add("rtsp", err)
					return
				}
				mu.Lock()
				rtspPeers = append(rtspPeers, peer{recv: recv, close: r.Close})
				mu.Unlock()
				return
			}
			recv := newReceiver(jb.pub.stamps)
			whepURL := endpoint(cfg.whepURL, jb.pub.name)
			if jb.layer != "" {
				recv.layer = layerRIDs[jb.layer]
				sep := "?"
				if strings.Contains(whepURL, "?") {
					sep = "&"
				}
				whepURL += sep + "layer=" + url.QueryEscape(jb.layer)
			}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			v, err := dialWHEP(cctx, whepURL, cfg.token, client, recv, cfg.decrypt, cfg.gro)
			if err != nil {
				errs.add("whep", err)
				return
			}
			mu.Lock()
			whepPeers = append(whepPeers, peer{recv: recv, close: v.Close})
			mu.Unlock()
		})
	}()
	waitLoop(&done, progress.C, func() {
		mu.Lock()
		logf("connecting: %d WHEP, %d RTSP of %d, %d failed", len(whepPeers), len(rtspPeers), len(jobs), errs.count())
		mu.Unlock()
	})
	setup := time.Since(setupStart)
	defer closeAll(whepPeers, rtspPeers)
	logf("%d WHEP viewers and %d RTSP readers connected in %.1f s, %d failed", len(whepPeers), len(rtspPeers), setup.Seconds(), errs.count())
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	sleep(ctx, cfg.warmup)
	logf("measuring for %s", cfg.duration)
	before := takeSnapshot(cfg, pid, live, client)
	window.from.Store(now())
	peakRSS := sampleRSS(ctx, pid, cfg.duration)
	window.to.Store(now())
	after := takeSnapshot(cfg, pid, live, client)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.fill(before, after, peakRSS, live, whepPeers, rtspPeers, len(jobs), setup, &errs)
	if err := gw.died(); err != nil {
		return rep, err
	}
	logf("done; closing %d peers", len(whepPeers)+len(rtspPeers))
	return rep, nil
}

// streamName is the name of the i-th publisher's stream: flat, or the
// participant of a meeting with -meeting-size.
func streamName(cfg *config, i int) string {
	if cfg.meetingSize > 0 {
		return fmt.Sprintf("%sm%02d/p%d", cfg.prefix, i/cfg.meetingSize, i%cfg.meetingSize)
	}
	return fmt.Sprintf("%s%d", cfg.prefix, i)
}

// forEach runs f(0..n-1) on at most par goroutines, stopping early when
// ctx ends.
func forEach(ctx context.Context, n, par int, f func(i int)) {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// waitLoop waits for wg, calling tick on every tick meanwhile.
func waitLoop(wg *sync.WaitGroup, ticks <-chan time.Time, tick func()) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	for {
		select {
		case <-ch:
			return
		case <-ticks:
			tick()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func closeAll(groups ...[]peer) {
	var all []peer
	for _, g := range groups {
		all = append(all, g...)
	}
	forEach(context.Background(), len(all), 32, func(i int) { all[i].close() })
}

// snapshot is what is read at the start and at the end of the window.
type snapshot struct {
	gw, self procSample
	gwErr    error
	sys      sysSample
	udp      udpErrors
	drops    map[string]uint64
	shed     map[string]uint64
	sent     []whipclient.PublisherStats
	sock     socketCounts
}

func takeSnapshot(cfg *config, pid int, pubs []*publisher, client *http.Client) snapshot {
	s := snapshot{sys: readSys(), udp: readUDPErrors(), drops: map[string]uint64{}, shed: map[string]uint64{}}
	if pid != 0 {
		s.gw, s.gwErr = readProc(pid)
	}
	s.self, _ = readProc(os.Getpid())
	s.sock = outputSocket(cfg, client)
	for _, p := range pubs {
		s.sent = append(s.sent, p.pub.Stats())
		drops, shed := hubDrops(cfg, p.name, client)
		for k, n := range drops {
			s.drops[k] += n
		}
		for k, n := range shed {
			s.shed[k] += n
		}
	}
	return s
}

// hubDrops reads the gateway's per-output counts of packets its hub dropped
// for consumers whose queue was full, and shed for those beyond their
// latency budget (Reel's streams API; nil from another gateway).
func hubDrops(cfg *config, stream string, client *http.Client) (dropped, shed map[string]uint64) {
	body, err := getGateway(cfg, client, "/api/v1/streams/"+url.PathEscape(stream))
	if err != nil {
		return nil, nil
	}
	defer body.Close()
	var info struct {
		Dropped map[string]uint64 `json:"dropped_packets"`
		Shed    map[string]uint64 `json:"shed_packets"`
	}
	if json.NewDecoder(body).Decode(&info) != nil {
		return nil, nil
	}
	return info.Dropped, info.Shed
}

// getGateway GETs path from the gateway with the run's token. The body is
// the caller's to close; a status other than 200 is an error.
func getGateway(cfg *config, client *http.Client, path string) (io.ReadCloser, error) {
	req, err := http.NewRequest(http.MethodGet, cfg.baseURL+path, nil)
	if err != nil {
		return nil, err
	}
	if cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// socketCounts is what the gateway's shared WebRTC socket had sent: its
// datagrams, and the messages (system call entries) that carried them.
type socketCounts struct {
	ok                bool
	packets, messages float64
}

// outputSocket reads the gateway's output-socket counters from its
// metrics (Reel's; not ok from another gateway or without the right).
func outputSocket(cfg *config, client *http.Client) socketCounts {
	body, err := getGateway(cfg, client, "/metrics")
	if err != nil {
		return socketCounts{}
	}
	defer body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return socketCounts{}
	}
	count := func(name string) (float64, bool) {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			return 0, false
		}
		return f.GetMetric()[0].GetCounter().GetValue(), true
	}
	var c socketCounts
	var okP, okM bool
	c.packets, okP = count("reel_output_socket_packets_total")
	c.messages, okM = count("reel_output_socket_messages_total")
	c.ok = okP && okM
	return c
}

// sampleRSS waits d, reading the gateway's RSS every second, and returns
// the largest value seen in kB.
func sampleRSS(ctx context.Context, pid int, d time.Duration) int64 {
	var peak int64
	end := time.Now().Add(d)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Now().Before(end) {
		if pid != 0 {
			if s, err := readProc(pid); err == nil {
				peak = max(peak, s.rssKB)
			}
		}
		select {
		case <-t.C:
		case <-time.After(time.Until(end)):
		case <-ctx.Done():
			return peak
		}
	}
	return peak
}

// errorList keeps a count of errors by kind and the first few messages.
type errorList struct {
	mu     sync.Mutex
	n      int
	byKind map[string]int
	msgs   []string
}

func (e *errorList) add(kind string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.byKind == nil {
		e.byKind = map[string]int{}
	}
	e.byKind[kind]++
	if len(e.msgs) < 10 {
		e.msgs = append(e.msgs, kind+": "+err.Error())
	}
}

func (e *errorList) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

func (e *errorList) kind(k string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.byKind[k]
}

func (e *errorList) first() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.msgs) == 0 {
		return "no error recorded"
	}
	return e.msgs[0]
}
