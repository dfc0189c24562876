package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// lossTarget is the per-viewer loss the targets allow.
const lossTarget = 0.5

type report struct {
	Label     string            `json:"label,omitempty"`
	Started   time.Time         `json:"started"`
	Setup     runSetup          `json:"setup"`
	Publish   publishReport     `json:"publishers"`
	WHEP      *groupReport      `json:"whep,omitempty"`
	RTSP      *groupReport      `json:"rtsp,omitempty"`
	Gateway   procReport        `json:"gateway"`
	LoadTool  procReport        `json:"load_tool"`
	Machine   machineReport     `json:"machine"`
	HubDrops  map[string]uint64 `json:"hub_dropped_packets"`
	HubShed   map[string]uint64 `json:"hub_shed_packets"`
	UDPErrors udpErrorsReport   `json:"kernel_udp_errors"`
	// Socket is what the gateway's shared WebRTC socket sent in the
	// window (Reel's metrics; absent from another gateway).
	Socket *socketReport `json:"gateway_socket,omitempty"`
	Errors []string      `json:"errors,omitempty"`
}

type runSetup struct {
	Streams          int     `json:"streams"`
	ViewersPerStream int     `json:"whep_viewers_per_stream"`
	ReadersPerStream int     `json:"rtsp_readers_per_stream"`
	RTSPTransport    string  `json:"rtsp_transport,omitempty"`
	DurationS        float64 `json:"duration_s"`
	Video            string  `json:"video"`
	VideoFile        string  `json:"video_file"`
	VideoKbps        float64 `json:"video_file_kbps"`
	Decrypt          bool    `json:"whep_decrypt"`
	GRO              bool    `json:"whep_gro"`
	Pace             float64 `json:"pace"`
	AnswerKeyframes  bool    `json:"publishers_answer_keyframe_requests"`
	// Layers are the simulcast layers viewers pinned (-simulcast).
	Layers []string `json:"simulcast_layers,omitempty"`
}

type socketReport struct {
	Packets  float64 `json:"packets"`
	Messages float64 `json:"messages"`
	// PerMessage is datagrams per message: above 1 where batches carried
	// runs to one viewer as one segmented (GSO) message.
	PerMessage float64 `json:"packets_per_message"`
}

type publishReport struct {
	Wanted    int     `json:"wanted"`
	Connected int     `json:"connected"`
	SentKbps  float64 `json:"sent_kbps_per_publisher"`
	PPS       float64 `json:"packets_per_s_per_publisher"`
}

type latencyReport struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

type groupReport struct {
	Wanted     int     `json:"wanted"`
	Connected  int     `json:"connected"`
	Failed     int     `json:"failed"`
	SetupS     float64 `json:"setup_s"`
	Silent     int     `json:"silent"`
	OverTarget int     `json:"over_loss_target"`
	Received   uint64  `json:"packets_received"`
	Expected   uint64  `json:"packets_expected"`
	// Packets received per peer, next to what each publisher sent in the
	// window: loss by sequence numbers misses what a gateway that
	// renumbers after dropping never sent.
	PerPeer      float64       `json:"packets_received_per_peer"`
	PerPeerMin   uint64        `json:"packets_received_min_peer"`
	SentPerPub   float64       `json:"packets_sent_per_publisher"`
	LossPct      float64       `json:"loss_pct"`
	WorstLossPct float64       `json:"worst_viewer_loss_pct"`
	KbpsMean     float64       `json:"kbps_per_viewer"`
	JitterMS     float64       `json:"video_jitter_ms_mean"`
	JitterMaxMS  float64       `json:"video_jitter_ms_max"`
	Latency      latencyReport `json:"latency"`
	Unmapped     uint64        `json:"packets_without_send_time"`
}

type procReport struct {
	PID        int     `json:"pid,omitempty"`
	CPUCores   float64 `json:"cpu_cores"`
	RSSMB      float64 `json:"rss_mb"`
	PeakRSSMB  float64 `json:"peak_rss_mb,omitempty"`
	RSSStartMB float64 `json:"rss_start_mb,omitempty"`
	Threads    int64   `json:"threads,omitempty"`
	Error      string  `json:"error,omitempty"`
}

type machineReport struct {
	Cores     int     `json:"cores"`
	BusyPct   float64 `json:"busy_pct"`
	LoadAvg   string  `json:"loadavg"`
	GoVersion string  `json:"go_version"`
}

type udpErrorsReport struct {
	RcvbufErrors int64 `json:"rcvbuf_errors"`
	SndbufErrors int64 `json:"sndbuf_errors"`
}

func newReport(cfg *config, videoFile string, videoRate float64) *report {
	r := &report{Label: cfg.label, Started: time.Now().UTC()}
	r.Setup = runSetup{
		Streams: cfg.streams, ViewersPerStream: cfg.viewers, ReadersPerStream: cfg.rtspReaders,
		DurationS: cfg.duration.Seconds(), Video: cfg.video, VideoFile: filepath.Base(videoFile),
		VideoKbps: math.Round(videoRate / 1000), Decrypt: cfg.decrypt, GRO: cfg.gro, Pace: cfg.pace, AnswerKeyframes: cfg.answerKeyframes, Layers: cfg.layers,
	}
	if cfg.rtspReaders > 0 {
		r.Setup.RTSPTransport = cfg.transport
	}
	r.Publish.Wanted = cfg.streams
	return r
}

func (r *report) fill(a, b snapshot, peakRSS int64, pubs []*publisher, whep, rtsp []peer, jobs int, setup time.Duration, errs *errorList) {
	wall := b.self.at.Sub(a.self.at).Seconds()
	r.Publish.Connected = len(pubs)
	var bytes, pkts uint64
	for i := range pubs {
		x, y := a.sent[i], b.sent[i]
		bytes += y.Video.Bytes + y.Audio.Bytes - x.Video.Bytes - x.Audio.Bytes
		pkts += y.Video.Packets + y.Audio.Packets - x.Video.Packets - x.Audio.Packets
	}
	if n := float64(len(pubs)); n > 0 && wall > 0 {
		r.Publish.SentKbps = round1(float64(bytes) * 8 / 1000 / wall / n)
		r.Publish.PPS = round1(float64(pkts) / wall / n)
	}
	if wanted := r.Setup.Streams * r.Setup.ViewersPerStream; wanted > 0 {
		r.WHEP = group(whep, wanted, errs.kind("whep"), setup, wall)
		r.WHEP.SentPerPub = sentPerPub(pkts, len(pubs))
	}
	if wanted := r.Setup.Streams * r.Setup.ReadersPerStream; wanted > 0 {
		r.RTSP = group(rtsp, wanted, errs.kind("rtsp"), setup, wall)
		r.RTSP.SentPerPub = sentPerPub(pkts, len(pubs))
	}
	if a.gwErr == nil && b.gwErr == nil && r.Gateway.PID != 0 {
		r.Gateway.CPUCores = round3(cpuShare(a.gw, b.gw))
		r.Gateway.RSSMB = round1(float64(b.gw.rssKB) / 1024)
		r.Gateway.RSSStartMB = round1(float64(a.gw.rssKB) / 1024)
		r.Gateway.PeakRSSMB = round1(float64(max(peakRSS, b.gw.rssKB)) / 1024)
		r.Gateway.Threads = b.gw.thread
	} else if r.Gateway.PID != 0 {
		r.Gateway.Error = fmt.Sprint(a.gwErr, b.gwErr)
	}
	r.LoadTool = procReport{PID: os.Getpid(), CPUCores: round3(cpuShare(a.self, b.self)),
		RSSMB: round1(float64(b.self.rssKB) / 1024), Threads: b.self.thread}
	load, _ := os.ReadFile("/proc/loadavg")
	r.Machine = machineReport{Cores: runtime.NumCPU(), BusyPct: round1(100 * sysBusy(a.sys, b.sys)),
		LoadAvg: string(trimNL(load)), GoVersion: runtime.Version()}
	r.HubDrops = map[string]uint64{}
	for k, n := range b.drops {
		r.HubDrops[k] = n - min(n, a.drops[k])
	}
	r.HubShed = map[string]uint64{}
	for k, n := range b.shed {
		r.HubShed[k] = n - min(n, a.shed[k])
	}
	if a.sock.ok && b.sock.ok && b.sock.messages > a.sock.messages {
		p, m := b.sock.packets-a.sock.packets, b.sock.messages-a.sock.messages
		r.Socket = &socketReport{Packets: p, Messages: m, PerMessage: round3(p / m)}
	}
	r.UDPErrors = udpErrorsReport{RcvbufErrors: b.udp.rcvbuf - a.udp.rcvbuf, SndbufErrors: b.udp.sndbuf - a.udp.sndbuf}
	errs.mu.Lock()
	r.Errors = slices.Clone(errs.msgs)
	errs.mu.Unlock()
}

func sentPerPub(pkts uint64, pubs int) float64 {
	if pubs == 0 {
		return 0
	}
	return round1(float64(pkts) / float64(pubs))
}

func group(peers []peer, wanted, failed int, setup time.Duration, wall float64) *groupReport {
	g := &groupReport{Wanted: wanted, Connected: len(peers), Failed: failed, SetupS: round1(setup.Seconds())}
	var lat histogram
	var jitterSum float64
	var bytes uint64
	var withVideo int
	for _, p := range peers {
		r := p.recv
		r.mu.Lock()
		exp := r.video.expected() + r.audio.expected()
		got := r.video.received + r.audio.received
		g.Expected += exp
		g.Received += min(got, exp)
		if g.PerPeerMin == 0 || got < g.PerPeerMin {
			g.PerPeerMin = got
		}
		g.PerPeer += float64(got)
		g.Unmapped += r.unmapped
		bytes += r.video.bytes + r.audio.bytes
		if r.video.received == 0 {
			g.Silent++
		} else {
			withVideo++
			jitterSum += r.video.jitterMS()
			g.JitterMaxMS = max(g.JitterMaxMS, r.video.jitterMS())
		}
		loss := 100.0
		if exp > 0 {
			loss = 100 * float64(r.video.lost()+r.audio.lost()) / float64(exp)
		}
		g.WorstLossPct = max(g.WorstLossPct, loss)
		if loss >= lossTarget {
			g.OverTarget++
		}
		lat.merge(&r.lat)
		r.mu.Unlock()
	}
	if len(peers) > 0 {
		g.PerPeer = round1(g.PerPeer / float64(len(peers)))
	}
	if g.Expected > 0 {
		g.LossPct = round3(100 * float64(g.Expected-g.Received) / float64(g.Expected))
	}
	g.WorstLossPct = round3(g.WorstLossPct)
	if len(peers) > 0 && wall > 0 {
		g.KbpsMean = round1(float64(bytes) * 8 / 1000 / wall / float64(len(peers)))
	}
	if withVideo > 0 {
		g.JitterMS = round3(jitterSum / float64(withVideo))
	}
	g.JitterMaxMS = round3(g.JitterMaxMS)
	g.Latency = latencyReport{
		P50: round3(lat.quantile(0.50)), P90: round3(lat.quantile(0.90)), P99: round3(lat.quantile(0.99)),
		P999: round3(lat.quantile(0.999)), Max: round3(float64(lat.max) / 1000), Mean: round3(lat.meanMS()),
	}
	return g
}

func writeReport(r *report, cfg *config, stdout io.Writer) error {
	if cfg.jsonOut != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if cfg.jsonOut == "-" {
			_, err = stdout.Write(b)
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, b, 0o644); err != nil {
			return fmt.Errorf("writing -json: %w", err)
		}
	}
	return writeTable(r, stdout)
}

func writeTable(r *report, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s := r.Setup
	pace := "unpaced"
	if s.Pace > 0 {
		pace = fmt.Sprintf("paced at %g×", s.Pace)
	}
	if s.AnswerKeyframes {
		pace += ", keyframes on request"
	}
	fmt.Fprintf(tw, "run\t%s %d stream(s) × (%d WHEP + %d RTSP/%s), %s video %s (%.0f kbit/s, %s) + Opus, %.0f s\n",
		r.Label, s.Streams, s.ViewersPerStream, s.ReadersPerStream, orDash(s.RTSPTransport), s.Video, s.VideoFile, s.VideoKbps, pace, s.DurationS)
	if len(s.Layers) > 0 {
		fmt.Fprintf(tw, "simulcast\t3 layers (320x180, 640x360, 1280x720); viewers pin %s in turn\n", strings.Join(s.Layers, ", "))
	}
	fmt.Fprintf(tw, "publishers\t%d/%d connected, each sending %.0f kbit/s, %.0f packets/s\n",
		r.Publish.Connected, r.Publish.Wanted, r.Publish.SentKbps, r.Publish.PPS)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "output\tpeers\tfailed\tsilent\tloss %\tworst %\t>0.5%\tpackets each (min)/sent\tkbit/s each\tjitter ms\tlat p50\tp90\tp99\tp99.9\tmax ms")
	for _, g := range []struct {
		name string
		g    *groupReport
	}{{"WHEP", r.WHEP}, {"RTSP/" + s.RTSPTransport, r.RTSP}} {
		if g.g == nil {
			continue
		}
		x := g.g
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d\t%.3f\t%.2f\t%d\t%.0f (%d)/%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f\n",
			g.name, x.Connected, x.Wanted, x.Failed, x.Silent, x.LossPct, x.WorstLossPct, x.OverTarget, x.PerPeer, x.PerPeerMin, x.SentPerPub, x.KbpsMean,
			x.JitterMS, x.Latency.P50, x.Latency.P90, x.Latency.P99, x.Latency.P999, x.Latency.Max)
	}
	fmt.Fprintln(tw)
	gw := r.Gateway
	if gw.PID != 0 && gw.Error == "" {
		fmt.Fprintf(tw, "gateway (pid %d)\tCPU %.1f%% of a core, RSS %.1f MB (start %.1f, peak %.1f), %d threads\n",
			gw.PID, 100*gw.CPUCores, gw.RSSMB, gw.RSSStartMB, gw.PeakRSSMB, gw.Threads)
	} else {
		fmt.Fprintf(tw, "gateway\tnot measured %s\n", gw.Error)
	}
	fmt.Fprintf(tw, "load tool\tCPU %.1f%% of a core, RSS %.1f MB\n", 100*r.LoadTool.CPUCores, r.LoadTool.RSSMB)
	fmt.Fprintf(tw, "machine\t%d cores %.1f%% busy, load %s, %s\n", r.Machine.Cores, r.Machine.BusyPct, r.Machine.LoadAvg, r.Machine.GoVersion)
	fmt.Fprintf(tw, "drops\thub %v, shed %v; kernel UDP rcvbuf %d, sndbuf %d\n", r.HubDrops, r.HubShed, r.UDPErrors.RcvbufErrors, r.UDPErrors.SndbufErrors)
	if s := r.Socket; s != nil {
		fmt.Fprintf(tw, "gateway socket\t%.0f datagrams in %.0f messages (%.2f per message)\n", s.Packets, s.Messages, s.PerMessage)
	}
	limited := false
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "error\t%s\n", e)
		limited = limited || strings.Contains(e, "status 429") || strings.Contains(e, "status 503")
	}
	if limited {
		fmt.Fprintf(tw, "hint\tthe gateway limits sessions per address and stream; for a loopback load test start it with\n")
		fmt.Fprintf(tw, "\t--limits-sessions-per-ip 0 --limits-request-rate 0 --limits-publishers 0 --limits-viewers-per-stream 0 --limits-viewers 0\n")
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round3(x float64) float64 {
	if math.IsNaN(x) {
		return 0
	}
	return math.Round(x*1000) / 1000
}
