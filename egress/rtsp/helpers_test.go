package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

// wait is the bound of every poll in these tests; nothing here is timed.
const wait = 15 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a server on loopback: TCP on a port the kernel picks,
// UDP on a free even/odd pair when udp is set. With tokens, any of them
// may read any stream; a token "stream=T" may read that stream only.
func startServer(t *testing.T, hub *live.Hub, udp bool, tokens ...string) *Server {
	t.Helper()
	return startServerWith(t, hub, func(cfg *Config) {
		if len(tokens) > 0 {
			ac := access.Config{StreamTokens: map[string]string{}}
			for _, tok := range tokens {
				if stream, key, ok := strings.Cut(tok, "="); ok {
					ac.StreamTokens[stream] = key
				} else {
					ac.ReadTokens = append(ac.ReadTokens, tok)
				}
			}
			gate, err := access.New(ac, access.Limits{}, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Gate = gate
		}
		if udp {
			rtpPort := freeUDPPair(t)
			cfg.UDPRTPAddr = fmt.Sprintf("127.0.0.1:%d", rtpPort)
			cfg.UDPRTCPAddr = fmt.Sprintf("127.0.0.1:%d", rtpPort+1)
		}
	})
}

// startServerWith runs a server on loopback, TCP only unless configure
// (which may change anything) sets UDP addresses.
func startServerWith(t *testing.T, hub *live.Hub, configure func(*Config)) *Server {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", Logger: testLogger(t)}
	configure(&cfg)
	s, err := New(cfg, hub)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// freeUDPPair finds an even UDP port whose successor is free too.
func freeUDPPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		a, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := a.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 || port >= 65535 {
			a.Close()
			continue
		}
		b, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		a.Close()
		if err != nil {
			continue
		}
		b.Close()
		return port
	}
	t.Fatal("no free UDP port pair")
	return 0
}

// publishTrack publishes one hand-fed track, closed with the test.
func publishTrack(t *testing.T, hub *live.Hub, name string, track *live.Track) *live.Stream {
	t.Helper()
	src, err := hub.Publish(name, live.PublishSpec{Session: "test", Tracks: []*live.Track{track}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src
}

// publish starts a looping fixture publication that stops with the test.
func publish(t *testing.T, hub *live.Hub, name string, src hubtest.Source) (*hubtest.Publisher, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := hubtest.Publish(ctx, hub, name, src)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-p.Done()
	})
	return p, cancel
}

// needTool skips when an ffmpeg tool is missing, except in CI.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func streamURL(s *Server, name string) string { return "rtsp://" + s.Addr() + "/" + name }

// reader is a gortsplib client playing a stream.
type reader struct {
	c       *gortsplib.Client
	desc    *description.Session
	packets atomic.Int64
	last    atomic.Pointer[rtp.Packet]
	done    chan error

	mu    sync.Mutex
	seqs  []uint16 // of every packet, in arrival order
	empty int      // packets without payload
}

// received returns the sequence numbers seen so far and how many packets
// had no payload.
func (r *reader) received() ([]uint16, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs), r.empty
}

// setUp connects a gortsplib client to rawURL and sets up every media,
// ready for its callbacks and Play; closed on error.
func setUp(t *testing.T, rawURL string, transport gortsplib.Transport) (*gortsplib.Client, *description.Session, error) {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &transport}
	if err := c.Start2(); err != nil {
		return nil, nil, err
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, desc, nil
}

// play connects a gortsplib client to rawURL and starts playing.
func play(t *testing.T, rawURL string, transport gortsplib.Transport) (*reader, error) {
	t.Helper()
	c, desc, err := setUp(t, rawURL, transport)
	if err != nil {
		return nil, err
	}
	r := &reader{c: c, desc: desc, done: make(chan error, 1)}
	r.c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		r.packets.Add(1)
		r.last.Store(pkt.Clone())
		r.mu.Lock()
		r.seqs = append(r.seqs, pkt.SequenceNumber)
		if len(pkt.Payload) == 0 {
			r.empty++
		}
		r.mu.Unlock()
	})
	if _, err := r.c.Play(nil); err != nil {
		r.c.Close()
		return nil, err
	}
	go func() { r.done <- r.c.Wait() }()
	t.Cleanup(r.c.Close)
	return r, nil
}

// playMany starts n readers of rawURL at once and waits until each has
// received packets.
func playMany(t *testing.T, rawURL string, transport gortsplib.Transport, n int) []*reader {
	t.Helper()
	readers := make([]*reader, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { readers[i], errs[i] = play(t, rawURL, transport) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	eventually(t, "every reader receives packets", func() bool {
		for _, r := range readers {
			if r.packets.Load() < 10 {
				return false
			}
		}
		return true
	})
	return readers
}

// statusCode is the RTSP status of a failed client request, or 0.
func statusCode(err error) base.StatusCode {
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		return bad.Code
	}
	return 0
}

// eventually polls cond until it holds or wait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, wait, what, cond)
}

// goroutinesSettle waits for the goroutine count to come back to base.
func goroutinesSettle(t *testing.T, base int) {
	t.Helper()
	const slack = 2
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
