package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// An impaired path to the gateway, on loopback.
//
// The gateway runs in a network namespace of its own (unshare -n), where
// nothing but the test can reach it: the test opens sockets inside that
// namespace (setns on a locked thread) and forwards to them. HTTP is
// forwarded as it is; every media datagram (ICE, DTLS, RTP, RTCP), both
// ways, goes through impairRelay, which delays them all and drops some
// (not DTLS).
// Peers send to 127.0.0.1:port of the test's namespace, which is the
// relay, because the gateway advertises its own 127.0.0.1:port; the
// gateway's connectivity checks to the peers' candidates reach nobody, so
// no pair bypasses the relay.
//
// This stands in for `tc qdisc add dev lo root netem delay 30ms 30ms loss
// 2%` in a namespace, which needs the kernel's sch_netem: this machine's
// kernel has none ("Specified qdisc kind is unknown"). Signalling (HTTP)
// is not impaired.

// netnsGateway is a gateway in its own network namespace.
type netnsGateway struct {
	*gateway
	ns *os.File // /proc/<pid>/ns/net of the gateway
}

// startNetnsGateway runs reel in a new network namespace with its media
// on 127.0.0.1:mediaPort there, and forwards a local HTTP port to it. It
// skips the test where a namespace cannot be made (not root).
func startNetnsGateway(t *testing.T, mediaPort int, extra ...string) *netnsGateway {
	t.Helper()
	if out, err := exec.Command("unshare", "-n", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here (needs root: %v: %s); the impaired path is not tested", err, strings.TrimSpace(string(out)))
	}
	wrap := []string{"unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" "$@"`}
	g := startGatewayIn(t, wrap, nil, append([]string{"--webrtc-udp-addr", fmt.Sprintf("127.0.0.1:%d", mediaPort)}, extra...)...)
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", g.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	n := &netnsGateway{gateway: g, ns: ns}
	inner := strings.TrimPrefix(g.HTTP, "http://")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go n.forwardTCP(l, inner)
	g.HTTP = "http://" + l.Addr().String()
	return n
}

// inNS runs fn on a thread that has entered the gateway's namespace:
// sockets fn opens belong to it.
func (n *netnsGateway) inNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked, and so ends with the goroutine,
		// unless it got back to the test's namespace.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(n.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering the gateway's network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

func (n *netnsGateway) forwardTCP(l net.Listener, inner string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		var up net.Conn
		if err := n.inNS(func() (err error) { up, err = net.Dial("tcp", inner); return err }); err != nil {
			c.Close()
			continue
		}
		go func() {
			_, _ = io.Copy(up, c)
			_ = up.(*net.TCPConn).CloseWrite()
		}()
		go func() {
			_, _ = io.Copy(c, up)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
	}
}

// impairRelay forwards media datagrams between the peers and the gateway
// as a lossy, jittery path would: each one, either way, is dropped with
// probability loss, or else delivered after delay ± jitter (uniform), but
// not before the datagrams ahead of it in its flow and direction, as a
// queue's delay varies. (Reordering them too, as netem's jitter does,
// made most of GStreamer's DTLS handshakes with the gateway fail: pion's
// DTLS client answers openssl's flight, out of order, with an
// internal_error alert.)
type impairRelay struct {
	front *net.UDPConn
	dial  func() (*net.UDPConn, error) // a socket toward the gateway
	loss  float64
	delay time.Duration
	jit   time.Duration

	mu     sync.Mutex
	flows  map[string]*flow
	closed bool
	wg     sync.WaitGroup
	// peersDone: fromPeers, which queues toward the gateway, returned.
	peersDone sync.WaitGroup

	passed, dropped atomic.Int64
}

// flow is one peer's socket toward the gateway and the two directions of
// its path.
type flow struct {
	up                *net.UDPConn
	toGateway, toPeer *lane
}

// lane is one direction of one flow, delivered in order by a goroutine.
type lane struct {
	q    chan queued
	last time.Time // due time of the latest datagram queued; its producer's
}

type queued struct {
	b   []byte
	due time.Time
}

func newLane(wg *sync.WaitGroup, send func([]byte)) *lane {
	l := &lane{q: make(chan queued, 4096)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for it := range l.q {
			time.Sleep(time.Until(it.due))
			send(it.b)
		}
	}()
	return l
}

// impair starts the relay on 127.0.0.1:mediaPort of the test's namespace.
func (n *netnsGateway) impair(t *testing.T, mediaPort int, loss float64, delay, jitter time.Duration) *impairRelay {
	t.Helper()
	front, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: mediaPort})
	if err != nil {
		t.Fatalf("impairment relay: %v", err)
	}
	back := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: mediaPort}
	r := &impairRelay{front: front, loss: loss, delay: delay, jit: jitter, flows: map[string]*flow{},
		dial: func() (up *net.UDPConn, err error) {
			err = n.inNS(func() error { up, err = net.DialUDP("udp4", nil, back); return err })
			return up, err
		}}
	r.peersDone.Add(1)
	go r.fromPeers()
	t.Cleanup(r.close)
	return r
}

// fromPeers forwards what peers send to the gateway, each peer through
// a socket of its own.
func (r *impairRelay) fromPeers() {
	defer r.peersDone.Done()
	buf := make([]byte, 2048)
	for {
		n, peer, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if f := r.flow(peer); f != nil {
			r.later(f.toGateway, buf[:n])
		}
	}
}

// flow returns peer's flow, opening its socket toward the gateway (and
// the goroutine carrying the gateway's datagrams back) on first use.
func (r *impairRelay) flow(peer *net.UDPAddr) *flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flows[peer.String()]; f != nil || r.closed {
		return f
	}
	up, err := r.dial()
	if err != nil {
		return nil
	}
	f := &flow{up: up,
		toGateway: newLane(&r.wg, func(b []byte) { _, _ = up.Write(b) }),
		toPeer:    newLane(&r.wg, func(b []byte) { _, _ = r.front.WriteToUDP(b, peer) }),
	}
	r.flows[peer.String()] = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(f.toPeer.q)
		buf := make([]byte, 2048)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			r.later(f.toPeer, buf[:n])
		}
	}()
	return f
}

// later drops b, or queues a copy of it on l for after the path's delay
// (and after the datagram ahead of it). Only l's producer calls it.
func (r *impairRelay) later(l *lane, b []byte) {
	// DTLS records (first byte 20 to 63, RFC 7983) are never dropped: a
	// lost handshake datagram makes pion's DTLS client end GStreamer's
	// handshake with an internal_error alert about once in six
	// connections, a failure of its own, not what this path measures.
	dtls := len(b) > 0 && b[0] >= 20 && b[0] <= 63
	if !dtls && rand.Float64() < r.loss {
		r.dropped.Add(1)
		return
	}
	d := r.delay
	if r.jit > 0 {
		d += time.Duration(rand.Int64N(int64(2*r.jit))) - r.jit
	}
	due := time.Now().Add(max(d, 0))
	if due.Before(l.last) {
		due = l.last
	}
	select {
	case l.q <- queued{append([]byte(nil), b...), due}:
		l.last = due
		r.passed.Add(1)
	default: // a full queue drops, as a router's does
		r.dropped.Add(1)
	}
}

func (r *impairRelay) close() {
	r.front.Close()
	r.peersDone.Wait()
	r.mu.Lock()
	r.closed = true
	for _, f := range r.flows {
		f.up.Close()
		close(f.toGateway.q)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// String says how much went through and what was dropped.
func (r *impairRelay) String() string {
	p, d := r.passed.Load(), r.dropped.Load()
	r.mu.Lock()
	peers := len(r.flows)
	r.mu.Unlock()
	return fmt.Sprintf("%d datagrams from or to %d peer sockets, %.2f %% dropped", p+d, peers, 100*float64(d)/float64(max(p+d, 1)))
}
