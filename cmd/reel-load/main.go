// Command reel-load measures a running Reel gateway over loopback: it
// publishes N streams over WHIP (real H.264 + Opus from the fixtures, looped
// at 2.5 Mbit/s by default), opens M WHEP viewers and K RTSP readers per
// stream, and reports per-viewer loss, jitter and added latency (publisher
// send to viewer receive, matched by RTP sequence number in-process) with
// the gateway's CPU and memory from /proc, and, from Reel's metrics, how
// many datagrams its shared WebRTC socket sent per message (what batching
// and segmenting save). Everything is bounded: peers by
// -max-peers, time by -duration.
//
//	go run ./cmd/reel              # in one terminal
//	go run ./cmd/reel-load -viewers 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	baseURL string
	viewURL string // WHEP viewers' base URL: a cluster's edge; baseURL if empty
	rtspURL string
	// URL templates of one stream's endpoints, {stream} for its name.
	whipURL, whepURL, rtspTpl string
	token                     string
	streams                   int
	viewers                   int
	rtspReaders               int
	transport                 string
	duration                  time.Duration
	warmup                    time.Duration
	parallel                  int
	video                     string
	videoFile                 string
	bitrate                   int
	pace                      float64
	answerKeyframes           bool
	videoRate                 float64 // of the file sent, bit/s
	decrypt                   bool
	gro                       bool
	pid                       int
	gatewayBin                string
	gatewayArgs               string
	gatewayUDP                string
	jsonOut                   string
	prefix                    string
	meetingSize               int
	reports                   string
	maxPeers                  int
	label                     string
	simulcast                 bool
	layers                    []string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("reel-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.baseURL, "url", "http://127.0.0.1:8080", "the gateway's HTTP base URL (WHIP and WHEP)")
	fs.StringVar(&c.viewURL, "view-url", "", "WHEP viewers' HTTP base URL, e.g. another node of a cluster that relays the streams (default: -url)")
	fs.StringVar(&c.rtspURL, "rtsp", "rtsp://127.0.0.1:8554", "the gateway's RTSP base URL")
	fs.StringVar(&c.whipURL, "whip-url", "", "WHIP endpoint template, {stream} for the stream's name, to measure another gateway (default: -url + /whip/{stream})")
	fs.StringVar(&c.whepURL, "whep-url", "", "WHEP endpoint template (default: -view-url + /whep/{stream})")
	fs.StringVar(&c.rtspTpl, "rtsp-url", "", "RTSP URL template (default: -rtsp + /{stream})")
	fs.StringVar(&c.token, "token", "", "token for WHIP, WHEP and the API (Bearer) and RTSP (Basic auth password)")
	fs.IntVar(&c.streams, "streams", 1, "WHIP publishers, one stream each")
	fs.IntVar(&c.viewers, "viewers", 1, "WHEP viewers per stream")
	fs.IntVar(&c.rtspReaders, "rtsp-readers", 0, "RTSP readers per stream")
	fs.StringVar(&c.transport, "rtsp-transport", "tcp", "RTSP transport: tcp or udp")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measurement time, after every peer is connected and the warm-up")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "time between the last peer connecting and the measurement")
	fs.IntVar(&c.parallel, "parallel", 8, "peers connecting at the same time")
	fs.StringVar(&c.video, "video", "h264", "video codec: h264, vp8, vp9 or av1")
	fs.StringVar(&c.videoFile, "video-file", "", "video fixture (default testdata/h264-2500k.h264, or <codec>.ivf)")
	fs.IntVar(&c.bitrate, "bitrate", 2_500_000, "H.264 video bitrate in bit/s; above the file's own, filler NAL units pad it")
	fs.Float64Var(&c.pace, "pace", 10, "publishers pace video at this multiple of its bitrate in bursts of at most 5 ms, as OBS 31+ does (10); 0 sends every frame in one burst, as OBS 30 did")
	fs.BoolVar(&c.answerKeyframes, "answer-keyframes", false, "publishers answer keyframe requests (PLI, FIR) with the file's next keyframe at once, as browsers do, so a viewer the gateway shed for gets a picture back within a frame; default: the file as it is, keyframes at its own interval (2 s in the default fixture)")
	fs.BoolVar(&c.gro, "gro", false, "light WHEP viewers take the gateway's segmented sends whole (UDP_GRO), so that over loopback the kernel does not cut them into datagrams in softirq on the gateway's CPU, charged to the gateway; off: one datagram per read, as the earlier rows in docs/BENCHMARKS.md")
	fs.BoolVar(&c.decrypt, "decrypt", false, "WHEP viewers decrypt every packet with pion, with its default interceptors (NACK, reports), like a browser; default: read RTP headers off the socket")
	fs.IntVar(&c.pid, "pid", 0, "gateway pid for CPU and memory (default: the one process called reel)")
	fs.StringVar(&c.gatewayBin, "gateway", "", "start this reel binary on loopback for the run, recordings in a temporary directory")
	fs.StringVar(&c.gatewayUDP, "gateway-udp", "127.0.0.1:8189", "WebRTC UDP address for -gateway")
	fs.StringVar(&c.gatewayArgs, "gateway-args", "", "extra flags for -gateway, e.g. \"--recordings-enabled=false\"")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file (- for stdout, replacing the table)")
	fs.StringVar(&c.prefix, "prefix", "", "stream name prefix (default load-<random>-)")
	fs.StringVar(&c.reports, "sender-reports", "pion", "who writes the publishers' RTCP Sender Reports: pion (its interceptor: RTP mapped to the time a packet was sent) or capture (RTP mapped to the capture clock, as browsers and OBS do)")
	fs.IntVar(&c.meetingSize, "meeting-size", 0, "group the streams into meetings of this many participants, named <prefix>m<k>/p<j> (0: one stream per name)")
	fs.IntVar(&c.maxPeers, "max-peers", 5000, "refuse runs with more viewers and readers than this in total")
	fs.StringVar(&c.label, "label", "", "a name for the run, copied into the report")
	fs.BoolVar(&c.simulcast, "simulcast", false, "publishers send three layers of H.264 (rids q 320x180, h 640x360, f 1280x720 at -bitrate)")
	layers := fs.String("layers", "low,mid,high", "with -simulcast, the layers viewers pin (?layer=), round robin; \"auto\" lets the gateway choose")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.streams < 1:
		return nil, errors.New("-streams must be at least 1")
	case c.viewers < 0 || c.rtspReaders < 0:
		return nil, errors.New("-viewers and -rtsp-readers cannot be negative")
	case c.streams*(c.viewers+c.rtspReaders) > c.maxPeers:
		return nil, fmt.Errorf("%d viewers and readers in total is more than -max-peers %d", c.streams*(c.viewers+c.rtspReaders), c.maxPeers)
	case c.transport != "tcp" && c.transport != "udp":
		return nil, fmt.Errorf("-rtsp-transport: want tcp or udp, got %q", c.transport)
	case c.duration <= 0 || c.duration > time.Hour:
		return nil, errors.New("-duration must be between 0 and 1h")
	case c.pace < 0:
		return nil, errors.New("-pace cannot be negative")
	case c.parallel < 1:
		return nil, errors.New("-parallel must be at least 1")
	case c.reports != "pion" && c.reports != "capture":
		return nil, fmt.Errorf("-sender-reports: want pion or capture, got %q", c.reports)
	case c.meetingSize < 0:
		return nil, errors.New("-meeting-size cannot be negative")
	}
	if c.simulcast {
		if c.video != "h264" {
			return nil, errors.New("-simulcast sends H.264 layers: leave -video h264")
		}
		for _, l := range strings.Split(*layers, ",") {
			if l = strings.TrimSpace(l); l != "auto" && layerRIDs[l] == "" {
				return nil, fmt.Errorf("-layers: %q is not low, mid, high, q, h, f or auto", l)
			}
			c.layers = append(c.layers, strings.TrimSpace(l))
		}
	}
	c.baseURL = strings.TrimRight(c.baseURL, "/")
	if c.viewURL = strings.TrimRight(c.viewURL, "/"); c.viewURL == "" {
		c.viewURL = c.baseURL
	}
	c.rtspURL = strings.TrimRight(c.rtspURL, "/")
	for _, t := range []struct {
		tpl  *string
		flag string
		def  string
	}{{&c.whipURL, "-whip-url", c.baseURL + "/whip/{stream}"}, {&c.whepURL, "-whep-url", c.viewURL + "/whep/{stream}"}, {&c.rtspTpl, "-rtsp-url", c.rtspURL + "/{stream}"}} {
		if *t.tpl == "" {
			*t.tpl = t.def
		}
		if !strings.Contains(*t.tpl, streamPlaceholder) {
			return nil, fmt.Errorf("%s %q has no %s", t.flag, *t.tpl, streamPlaceholder)
		}
	}
	if c.prefix == "" {
		c.prefix = fmt.Sprintf("load-%04x-", time.Now().UnixNano()&0xffff)
	}
	return c, nil
}

// streamPlaceholder stands for a stream's name in the URL templates.
const streamPlaceholder = "{stream}"

// endpoint fills a URL template with a stream's name.
func endpoint(tpl, stream string) string { return strings.ReplaceAll(tpl, streamPlaceholder, stream) }

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reel-load:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg, os.Stderr)
	if rep != nil {
		if werr := writeReport(rep, cfg, os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reel-load:", err)
		os.Exit(1)
	}
}
