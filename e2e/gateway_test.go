// Package e2e starts the real reel binary and drives it over loopback with
// clients we did not write (ffmpeg, ffprobe) and our pion WHIP/WHEP client.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "reel-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "reel")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/reel")
	if os.Getenv("REEL_E2E_NORACE") != "" {
		build = exec.Command("go", "build", "-o", binary, "../cmd/reel")
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building reel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateway is a running reel process.
type gateway struct {
	t          *testing.T
	cmd        *exec.Cmd
	HTTP       string // base URL
	RTSPPort   int
	Recordings string
	done       chan struct{}
	mu         sync.Mutex
	log        strings.Builder
}

var runningLine = regexp.MustCompile(`reel is running"? http=(\S+)`)

// startGateway runs reel on free loopback ports. extra are more flags;
// env are REEL_* settings.
func startGateway(t *testing.T, env []string, extra ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, Recordings: t.TempDir(), RTSPPort: freePort(t, "tcp"), done: make(chan struct{})}
	udp := freeUDPPair(t)
	args := append([]string{"serve",
		"--http-addr", "127.0.0.1:0",
		"--webrtc-udp-addr", "127.0.0.1:0",
		"--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", g.RTSPPort),
		"--rtsp-udp-rtp-addr", fmt.Sprintf("127.0.0.1:%d", udp),
		"--rtsp-udp-rtcp-addr", fmt.Sprintf("127.0.0.1:%d", udp+1),
		"--recordings-dir", g.Recordings,
		"--log-level", "debug",
	}, extra...)
	g.cmd = exec.Command(binary, args...)
	g.cmd.Env = append(os.Environ(), env...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stdout = io.Discard
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		defer close(g.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.mu.Lock()
			g.log.WriteString(line + "\n")
			g.mu.Unlock()
			if m := runningLine.FindStringSubmatch(line); m != nil {
				ready <- m[1]
			}
		}
		_ = g.cmd.Wait()
	}()
	t.Cleanup(func() {
		g.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.Log())
		}
	})
	select {
	case addr := <-ready:
		g.HTTP = "http://" + addr
	case <-g.done:
		t.Fatalf("reel exited before it was ready:\n%s", g.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("reel did not start within 30 s:\n%s", g.Log())
	}
	return g
}

// Log returns what the gateway printed so far.
func (g *gateway) Log() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// stop signals the process and waits (bounded) for it to exit.
func (g *gateway) stop(sig syscall.Signal) {
	if g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(sig)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
		g.t.Errorf("reel did not exit within 20 s of %v", sig)
	}
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeUDPPair finds an even UDP port whose successor is free too, as RTSP
// over UDP needs an RTP/RTCP pair.
func freeUDPPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := freePort(t, "udp")
		if p%2 != 0 || p+1 > 65535 {
			continue
		}
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			continue
		}
		c.Close()
		return p
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordings lists finished recording files (not .part, not sidecars).
func (g *gateway) recordings(t *testing.T) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(g.Recordings, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".webm") || strings.HasSuffix(path, ".mkv")) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
