package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/whipclient"
)

// shapedLink is a network namespace made by the test, joined to the
// test's own by a veth pair. Reel runs inside it; the clients (Chromium,
// the pion publisher and viewers) stay outside. limit shapes, with tc's
// token bucket, everything that leaves the namespace: all that reel sends
// to its clients, as a thin last mile would.
type shapedLink struct {
	ns           string
	hostIf, nsIf string
	hostIP, nsIP string
	limited      bool
	t            *testing.T
}

// newShapedLink makes the namespace and the link, and removes them when
// the test ends. Without root (ip netns needs it) the test is skipped.
func newShapedLink(t *testing.T) *shapedLink {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bandwidth tests need root: they make a network namespace (ip netns) and shape it with tc")
	}
	needTools(t, "ip", "tc")
	n := os.Getpid()%200 + 20
	l := &shapedLink{
		ns: fmt.Sprintf("reelbw%d", os.Getpid()), hostIf: fmt.Sprintf("rbw%dh", os.Getpid()%100000), nsIf: fmt.Sprintf("rbw%dn", os.Getpid()%100000),
		hostIP: fmt.Sprintf("10.213.%d.1", n), nsIP: fmt.Sprintf("10.213.%d.2", n), t: t,
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", l.ns).Run()
		_ = exec.Command("ip", "link", "del", l.hostIf).Run()
	})
	for _, c := range [][]string{
		{"ip", "netns", "add", l.ns},
		{"ip", "link", "add", l.hostIf, "type", "veth", "peer", "name", l.nsIf},
		{"ip", "link", "set", l.nsIf, "netns", l.ns},
		{"ip", "addr", "add", l.hostIP + "/30", "dev", l.hostIf},
		{"ip", "link", "set", l.hostIf, "up"},
		{"ip", "netns", "exec", l.ns, "ip", "addr", "add", l.nsIP + "/30", "dev", l.nsIf},
		{"ip", "netns", "exec", l.ns, "ip", "link", "set", l.nsIf, "up"},
		{"ip", "netns", "exec", l.ns, "ip", "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("bandwidth tests: cannot make the network namespace here (%s: %v %s)", strings.Join(c, " "), err, out)
		}
	}
	return l
}

// gateway runs reel inside the namespace.
func (l *shapedLink) gateway(t *testing.T, extra ...string) *gateway {
	t.Helper()
	return startGatewayAt(t, l.nsIP, []string{"ip", "netns", "exec", l.ns}, 8554, nil, extra...)
}

// limit shapes what leaves the namespace to kbit/s, with a queue of at
// most latency (tbf drops what would wait longer), or lifts the limit for
// kbit 0.
func (l *shapedLink) limit(kbit int) {
	l.t.Helper()
	var args []string
	switch {
	case kbit == 0 && !l.limited:
		return
	case kbit == 0:
		args = []string{"qdisc", "del", "dev", l.nsIf, "root"}
	default:
		args = []string{"qdisc", "replace", "dev", l.nsIf, "root", "tbf",
			"rate", fmt.Sprintf("%dkbit", kbit), "burst", "15000", "latency", "100ms"}
	}
	cmd := append([]string{"netns", "exec", l.ns, "tc"}, args...)
	if out, err := exec.Command("ip", cmd...).CombinedOutput(); err != nil {
		l.t.Fatalf("tc %s: %v %s", strings.Join(args, " "), err, out)
	}
	l.limited = kbit != 0
	l.t.Logf("link out of reel's namespace: %s", map[bool]string{true: fmt.Sprintf("limited to %d kbit/s", kbit), false: "unlimited"}[l.limited])
}

// settingEngine keeps a pion peer outside the namespace on the link.
func (l *shapedLink) settingEngine() *webrtc.SettingEngine {
	se := whipclient.LoopbackSettingEngine()
	se.SetInterfaceFilter(func(name string) bool { return name == l.hostIf })
	host := net.ParseIP(l.hostIP)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(host) })
	return &se
}

// url is reel's HTTP base as the clients reach it.
func (l *shapedLink) url(g *gateway) string { return g.HTTP }
