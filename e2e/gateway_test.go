// Package e2e starts the real reel binary and drives it over loopback with
// clients we did not write (ffmpeg, ffprobe) and our pion WHIP/WHEP client.
package e2e

import (
	"bufio"
	"context"
	"errors"
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
	g, err := tryGateway(t, env, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// errExitedEarly is tryGateway's error when reel exited before it was
// ready (a port taken meanwhile, say); its log says why.
var errExitedEarly = errors.New("reel exited before it was ready")

// tryGateway is startGateway returning, instead of failing the test,
// an error wrapping errExitedEarly.
func tryGateway(t *testing.T, env []string, extra ...string) (*gateway, error) {
	t.Helper()
	udp := freeUDPPair(t)
	return tryGatewayAt(t, "127.0.0.1", nil, freePort(t, "tcp"), env, append([]string{
		"--rtsp-udp-rtp-addr", fmt.Sprintf("127.0.0.1:%d", udp),
		"--rtsp-udp-rtcp-addr", fmt.Sprintf("127.0.0.1:%d", udp+1),
	}, extra...)...)
}

// startGatewayIn is startGateway run under wrap (a command that execs its
// arguments, such as unshare).
func startGatewayIn(t *testing.T, wrap, env []string, extra ...string) *gateway {
	t.Helper()
	udp := freeUDPPair(t)
	return startGatewayAt(t, "127.0.0.1", wrap, freePort(t, "tcp"), env, append([]string{
		"--rtsp-udp-rtp-addr", fmt.Sprintf("127.0.0.1:%d", udp),
		"--rtsp-udp-rtcp-addr", fmt.Sprintf("127.0.0.1:%d", udp+1),
	}, extra...)...)
}

// startGatewayAt runs reel on host's address, through wrap (a command that
// runs reel, such as ip netns exec), with RTSP on rtspPort and no RTSP
// over UDP unless extra says so.
func startGatewayAt(t *testing.T, host string, wrap []string, rtspPort int, env []string, extra ...string) *gateway {
	t.Helper()
	g, err := tryGatewayAt(t, host, wrap, rtspPort, env, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// tryGatewayAt is startGatewayAt returning an error wrapping
// errExitedEarly when reel exits before it is ready.
func tryGatewayAt(t *testing.T, host string, wrap []string, rtspPort int, env []string, extra ...string) (*gateway, error) {
	t.Helper()
	g := &gateway{t: t, Recordings: t.TempDir(), RTSPPort: rtspPort, done: make(chan struct{})}
	args := append([]string{"serve",
		"--http-addr", host + ":0",
		"--webrtc-udp-addr", host + ":0",
		"--rtsp-addr", fmt.Sprintf("%s:%d", host, g.RTSPPort),
		"--rtsp-udp-rtp-addr=", "--rtsp-udp-rtcp-addr=",
		"--recordings-dir", g.Recordings,
		"--log-level", "debug",
		// The suite runs gateways, browsers and encoders side by side on
		// two cores: a refusal for the machine's load would be the
		// machine's, not the gateway's (access's tests cover it).
		"--limits-max-sched-lag", "0", "--limits-max-input-lag", "0",
	}, extra...)
	cmd := append(append(append([]string{}, wrap...), binary), args...)
	g.cmd = exec.Command(cmd[0], cmd[1:]...)
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
		return nil, fmt.Errorf("%w:\n%s", errExitedEarly, g.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("reel did not start within 30 s:\n%s", g.Log())
	}
	return g, nil
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

func freePort(t testing.TB, network string) int {
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
