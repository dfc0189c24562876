package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The tool starts a gateway, publishes, watches over WHEP and RTSP and
// reports what every peer received. Nothing here is timed: the figures
// only have to exist.
func TestRunAgainstGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := filepath.Join(t.TempDir(), "reel")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/reel-gateway/reel/cmd/reel").CombinedOutput(); err != nil {
		t.Fatalf("building the gateway: %v\n%s", err, out)
	}
	cfg, err := parseFlags([]string{
		"-gateway", bin,
		"-url", fmt.Sprintf("http://127.0.0.1:%d", freePort(t, "tcp")),
		"-rtsp", fmt.Sprintf("rtsp://127.0.0.1:%d", freePort(t, "tcp")),
		"-gateway-udp", fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")),
		"-gateway-args", "--rtsp-udp-rtp-addr= --rtsp-udp-rtcp-addr= --hls-enabled=false",
		"-viewers", "2", "-rtsp-readers", "1", "-duration", "3s", "-warmup", "1s",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Publish.Connected != 1 || rep.Publish.PPS == 0 {
		t.Errorf("publisher: %+v", rep.Publish)
	}
	for name, g := range map[string]*groupReport{"WHEP": rep.WHEP, "RTSP": rep.RTSP} {
		if g == nil {
			t.Fatalf("no %s figures", name)
		}
		if g.Connected != g.Wanted || g.Failed != 0 || g.Silent != 0 || g.Received == 0 {
			t.Errorf("%s: %+v", name, g)
		}
		if g.PerPeer <= 0 || g.PerPeerMin == 0 || g.SentPerPub <= 0 {
			t.Errorf("%s: packets per peer not counted: %+v", name, g)
		}
		if g.Latency.P50 <= 0 || g.Unmapped > g.Received/100 {
			t.Errorf("%s: latency not measured: %+v, %d packets without a send time", name, g.Latency, g.Unmapped)
		}
	}
	if rep.Gateway.CPUCores <= 0 || rep.Gateway.RSSMB <= 0 {
		t.Errorf("gateway not measured: %+v", rep.Gateway)
	}
	// The viewers' media left the shared socket: as many datagrams as
	// they received at least, in no more messages than datagrams.
	if s := rep.Socket; s == nil || s.Packets < float64(rep.WHEP.Received) || s.Messages > s.Packets || s.PerMessage < 1 {
		t.Errorf("the gateway's socket counts: %+v (viewers received %d)", s, rep.WHEP.Received)
	}
	if err := writeTable(rep, io.Discard); err != nil {
		t.Error(err)
	}
}

// URL templates put the stream's name where {stream} is, so the tool can
// measure another gateway's paths; the defaults are Reel's.
func TestURLTemplates(t *testing.T) {
	cfg, err := parseFlags([]string{"-url", "http://h:1/", "-rtsp", "rtsp://h:2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a, b, c := endpoint(cfg.whipURL, "x/y"), endpoint(cfg.whepURL, "x/y"), endpoint(cfg.rtspTpl, "x/y"); a != "http://h:1/whip/x/y" || b != "http://h:1/whep/x/y" || c != "rtsp://h:2/x/y" {
		t.Errorf("defaults: %s %s %s", a, b, c)
	}
	cfg, err = parseFlags([]string{"-whip-url", "http://o:1/{stream}/whip", "-whep-url", "http://o:1/{stream}/whep?k=v", "-rtsp-url", "rtsp://o:2/live/{stream}"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a, b, c := endpoint(cfg.whipURL, "s"), endpoint(cfg.whepURL, "s"), endpoint(cfg.rtspTpl, "s"); a != "http://o:1/s/whip" || b != "http://o:1/s/whep?k=v" || c != "rtsp://o:2/live/s" {
		t.Errorf("templates: %s %s %s", a, b, c)
	}
	if _, err := parseFlags([]string{"-whep-url", "http://o:1/whep"}, io.Discard); err == nil {
		t.Error("a template without {stream} was taken")
	}
}
