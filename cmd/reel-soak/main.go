// Command reel-soak churns WHIP publish / WHEP view / DELETE cycles against
// a Reel gateway on loopback and reports sessions churned, errors and
// leaks: the gateway's goroutines (from /metrics) and open files (from
// /proc/<pid>/fd) before and after, and recordings left unfinished.
//
// It is bounded by a session count and a time limit, and talks to
// loopback only. Typical use, from the module root:
//
//	go build -o /tmp/reel ./cmd/reel
//	go run ./cmd/reel-soak -gateway /tmp/reel -sessions 500 -time 10m
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reel-gateway/reel/internal/whipclient"
)

type config struct {
	gatewayBin string
	baseURL    string
	pid        int
	recDir     string
	sessions   int
	limit      time.Duration
	parallel   int
	video      string
	jsonOut    string
}

// report is what a soak run found.
type report struct {
	Sessions       int     `json:"sessions"`
	Errors         int     `json:"errors"`
	Seconds        float64 `json:"seconds"`
	GoroutinesPre  int     `json:"goroutines_before"`
	GoroutinesPost int     `json:"goroutines_after"`
	FDsPre         int     `json:"fds_before"`
	FDsPost        int     `json:"fds_after"`
	Recordings     int     `json:"recordings"`
	Unfinished     int     `json:"unfinished_recordings"`
	Unplayable     int     `json:"unplayable_recordings"`
	LiveAfter      int     `json:"streams_live_after"`
	FirstError     string  `json:"first_error,omitempty"`
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reel-soak:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("reel-soak", flag.ContinueOnError)
	fs.StringVar(&c.gatewayBin, "gateway", "", "start this reel binary on loopback for the run (recordings in a temporary directory)")
	fs.StringVar(&c.baseURL, "url", "http://127.0.0.1:8080", "the gateway's HTTP base URL, when not using -gateway (loopback only)")
	fs.IntVar(&c.pid, "pid", 0, "the gateway's pid, when not using -gateway, for its open files")
	fs.StringVar(&c.recDir, "recordings", "", "the gateway's recordings directory, when not using -gateway, to count unfinished files")
	fs.IntVar(&c.sessions, "sessions", 200, "publish/view/teardown cycles to run")
	fs.DurationVar(&c.limit, "time", 5*time.Minute, "stop starting cycles after this long")
	fs.IntVar(&c.parallel, "parallel", 4, "cycles running at the same time")
	fs.StringVar(&c.video, "video", "vp8", "video codec: vp8, vp9, av1, h264 or h265")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.sessions < 1 || c.parallel < 1 || c.limit <= 0 {
		return nil, errors.New("-sessions, -parallel and -time must be positive")
	}
	return c, nil
}

func run(c *config) error {
	var gw *gateway
	if c.gatewayBin != "" {
		var err error
		if gw, err = startGateway(c.gatewayBin); err != nil {
			return err
		}
		defer gw.stop()
		c.baseURL, c.pid, c.recDir = gw.url, gw.cmd.Process.Pid, gw.dir
	}
	if err := loopbackOnly(c.baseURL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.limit)
	defer cancel()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	// A first cycle warms up what lives for the process.
	if err := cycle(ctx, c, client, "soak-warmup"); err != nil {
		return fmt.Errorf("warm-up cycle: %w", err)
	}
	var rep report
	rep.GoroutinesPre, rep.FDsPre = settle(c, client, 0, 0)

	start := time.Now()
	var next, done, failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for range c.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(c.sessions) && ctx.Err() == nil; i = next.Add(1) {
				cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
				err := cycle(cctx, c, client, fmt.Sprintf("soak-%d", i))
				ccancel()
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					firstErr.Do(func() { rep.FirstError = err.Error() })
				}
				if n := done.Add(1); n%50 == 0 {
					fmt.Fprintf(os.Stderr, "%d sessions, %d errors\n", n, failed.Load())
				}
			}
		}()
	}
	wg.Wait()
	rep.Sessions, rep.Errors, rep.Seconds = int(done.Load()), int(failed.Load()), time.Since(start).Seconds()
	rep.GoroutinesPost, rep.FDsPost = settle(c, client, rep.GoroutinesPre, rep.FDsPre)
	rep.LiveAfter = liveStreams(c, client)
	var files []string
	files, rep.Unfinished = listRecordings(c.recDir)
	rep.Recordings, rep.Unplayable = len(files), unplayable(files)
	printReport(os.Stdout, &rep)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loopbackOnly refuses to soak anything but this machine.
func loopbackOnly(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("parsing -url: %w", err)
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return fmt.Errorf("resolving %s: %w", u.Hostname(), err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s is not a loopback address; reel-soak only runs against this machine", u.Hostname())
		}
	}
	return nil
}

// cycle publishes, watches until a video frame arrives, and ends both with
// DELETE.
func cycle(ctx context.Context, c *config, client *http.Client, name string) error {
	se := whipclient.LoopbackSettingEngine()
	return whipclient.Cycle(ctx, c.baseURL, name, whipclient.PublishOptions{Video: c.video, Audio: true, Loop: true, SettingEngine: &se, HTTPClient: client})
}

// settle waits (at most 30 s) for the gateway's goroutines and files to
// come back to the given baseline, and returns the last reading.
func settle(c *config, client *http.Client, wantG, wantF int) (int, int) {
	var g, f int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		g, f = goroutines(c, client), openFiles(c.pid)
		if (wantG == 0 || g <= wantG) && (wantF == 0 || f <= wantF) && liveStreams(c, client) == 0 {
			return g, f
		}
		if time.Now().After(deadline) {
			return g, f
		}
	}
}

// goroutines reads go_goroutines from the gateway's /metrics.
func goroutines(c *config, client *http.Client) int {
	resp, err := client.Get(c.baseURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

func openFiles(pid int) int {
	if pid == 0 {
		return -1
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

func liveStreams(c *config, client *http.Client) int {
	resp, err := client.Get(c.baseURL + "/api/v1/streams")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct {
		Streams []json.RawMessage `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return -1
	}
	return len(body.Streams)
}

// unplayable counts files ffprobe cannot read or finds no duration in; -1
// when ffprobe is not installed.
func unplayable(files []string) int {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		return -1
	}
	bad := 0
	for _, f := range files {
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f).Output()
		if d, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || perr != nil || d <= 0 {
			bad++
		}
	}
	return bad
}

func listRecordings(dir string) (finished []string, unfinished int) {
	if dir == "" {
		return nil, -1
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil || d.IsDir():
		case strings.HasSuffix(path, ".part"):
			unfinished++
		case strings.HasSuffix(path, ".webm"), strings.HasSuffix(path, ".mkv"):
			finished = append(finished, path)
		}
		return nil
	})
	return finished, unfinished
}

func printReport(w io.Writer, r *report) {
	fmt.Fprintf(w, "sessions churned     %d in %.0f s (%.1f/s)\n", r.Sessions, r.Seconds, float64(r.Sessions)/max(r.Seconds, 1e-9))
	fmt.Fprintf(w, "errors               %d\n", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error          %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "gateway goroutines   %d -> %d (leak %d)\n", r.GoroutinesPre, r.GoroutinesPost, max(r.GoroutinesPost-r.GoroutinesPre, 0))
	fmt.Fprintf(w, "gateway open files   %d -> %d (leak %d)\n", r.FDsPre, r.FDsPost, max(r.FDsPost-r.FDsPre, 0))
	fmt.Fprintf(w, "streams live after   %d\n", r.LiveAfter)
	fmt.Fprintf(w, "recordings           %d finished, %d unfinished, %d unplayable (ffprobe)\n", r.Recordings, r.Unfinished, r.Unplayable)
}

// gateway is a reel process started for the run.
type gateway struct {
	cmd *exec.Cmd
	url string
	dir string
	tmp string
}

// startGateway runs bin on free loopback ports with the limits that would
// refuse a soak from one address turned off.
func startGateway(bin string) (*gateway, error) {
	tmp, err := os.MkdirTemp("", "reel-soak-")
	if err != nil {
		return nil, err
	}
	g := &gateway{dir: filepath.Join(tmp, "recordings"), tmp: tmp}
	httpPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	rtspPort, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	g.url = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	logFile, err := os.Create(filepath.Join(tmp, "gateway.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	g.cmd = exec.Command(bin, "serve",
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--webrtc-udp-addr", "127.0.0.1:0",
		"--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtspPort), "--rtsp-udp-rtp-addr", "", "--rtsp-udp-rtcp-addr", "",
		"--recordings-dir", g.dir, "--log-level", "warn",
		"--limits-sessions-per-ip", "0", "--limits-request-rate", "0")
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(g.url + "/healthz"); err == nil {
			resp.Body.Close()
			return g, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			g.stop()
			return nil, fmt.Errorf("the gateway did not answer within 15 s:\n%s", log)
		}
	}
}

// stop sends SIGTERM (recordings are finalized) and kills after 20 s.
func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(g.tmp)
}

func freePort(network string) (int, error) {
	l, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
