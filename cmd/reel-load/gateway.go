package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// gateway is a reel process the load tool started itself: loopback only,
// recordings in a temporary directory, its log in a file.
type gateway struct {
	cmd    *exec.Cmd
	dir    string
	log    string
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

func startGateway(bin, baseURL, rtspURL, udpAddr string, extra []string, dir string) (*gateway, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing -url: %w", err)
	}
	r, err := url.Parse(rtspURL)
	if err != nil {
		return nil, fmt.Errorf("parsing -rtsp: %w", err)
	}
	if resp, err := http.Get(baseURL + "/healthz"); err == nil {
		resp.Body.Close()
		return nil, fmt.Errorf("something already answers %s; pick another -url for -gateway", baseURL)
	}
	g := &gateway{dir: filepath.Join(dir, "recordings"), log: filepath.Join(dir, "gateway.log"), exited: make(chan struct{})}
	logFile, err := os.Create(g.log)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--http-addr", u.Host,
		"--webrtc-udp-addr", udpAddr,
		"--rtsp-addr", r.Host,
		"--recordings-dir", g.dir,
		"--log-level", "warn",
		// Every peer comes from 127.0.0.1: the per-address and per-stream
		// limits that stop a flood would stop the load test.
		"--limits-sessions-per-ip", "0", "--limits-request-rate", "0",
		"--limits-publishers", "0", "--limits-viewers-per-stream", "0", "--limits-viewers", "0",
		"--limits-pending-per-ip", "0", "--limits-pending-publishers", "0",
	}
	args = append(args, extra...)
	g.cmd = exec.Command(bin, args...)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	logFile.Close()
	go func() { g.err = g.cmd.Wait(); close(g.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		select {
		case <-g.exited:
			log, _ := os.ReadFile(g.log)
			return nil, fmt.Errorf("the gateway exited (%v): %s", g.err, strings.TrimSpace(string(log)))
		case <-ctx.Done():
			_ = g.stop()
			return nil, fmt.Errorf("the gateway did not answer %s/healthz within 15 s", baseURL)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

// died reports a gateway that exited on its own, with the end of its log;
// nil for a gateway still running, or none started.
func (g *gateway) died() error {
	if g == nil {
		return nil
	}
	select {
	case <-g.exited:
	default:
		return nil
	}
	return fmt.Errorf("the gateway exited during the run (%v); the end of its log:\n%s", g.err, g.logTail())
}

// stop ends the gateway with SIGTERM, as an operator would, so recordings
// are finalized, and kills it if it has not stopped after 20 s. It returns
// an error with the end of the log if the gateway did not exit cleanly
// (a panic, a data race in a -race build).
func (g *gateway) stop() error {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	if g.err == nil {
		return nil
	}
	return fmt.Errorf("the gateway exited with %v; the end of its log:\n%s", g.err, g.logTail())
}

func (g *gateway) logTail() []byte {
	log, _ := os.ReadFile(g.log)
	if len(log) > 4000 {
		log = log[len(log)-4000:]
	}
	return log
}

// splitArgs splits -gateway-args on spaces.
func splitArgs(s string) []string { return strings.Fields(s) }
