package access

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func newGate(t *testing.T, cfg Config, lim Limits) *Gate {
	t.Helper()
	g, err := New(cfg, lim, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func rejections(g *Gate, limit string) float64 {
	var m dto.Metric
	if err := g.adm.rejected.WithLabelValues(limit).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// Wrong credentials are throttled per address on every protocol: after
// AuthFailures of them even a good token is not checked until the bucket
// refills; requests without a credential cost nothing; other addresses
// are not affected.
func TestAuthFailuresThrottled(t *testing.T) {
	g := newGate(t, Config{ReadTokens: []string{"good"}}, Limits{AuthFailures: 3, AuthFailureRefill: 300 * time.Millisecond})
	req := func(addr, token string, p Protocol) Request {
		return Request{Action: Read, Stream: "s", Protocol: p, Token: token, Addr: addr}
	}
	for range 5 {
		if err := g.Authorize(req("192.0.2.1", "", HLS)); !errors.Is(err, ErrNoToken) {
			t.Fatalf("no token: %v", err)
		}
	}
	for i, p := range []Protocol{API, RTSP, HLS} {
		if err := g.Authorize(req("192.0.2.1", "bad", p)); !errors.Is(err, ErrBadToken) {
			t.Fatalf("wrong token %d: %v, want ErrBadToken", i, err)
		}
	}
	var le *LimitError
	for _, tok := range []string{"bad", "good"} {
		err := g.Authorize(req("192.0.2.1", tok, WHEP))
		if !errors.As(err, &le) || le.Limit != "auth_failures" || !le.PerClient || le.Retry <= 0 {
			t.Fatalf("token %q after 3 failures: %v, want an auth_failures LimitError", tok, err)
		}
	}
	if err := g.Authorize(req("192.0.2.2", "good", RTSP)); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if n := rejections(g, "auth_failures"); n != 2 {
		t.Errorf("auth_failures rejections = %v, want 2", n)
	}
	time.Sleep(le.Retry + 50*time.Millisecond)
	if err := g.Authorize(req("192.0.2.1", "good", API)); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
}

// A request that needs no credential is let in whatever it carries, and
// a wrong credential there is not a failure.
func TestAuthorizePublicRead(t *testing.T) {
	g := newGate(t, Config{AdminTokens: []string{"a"}, PublicRead: true}, Limits{AuthFailures: 1, AuthFailureRefill: time.Hour})
	for range 3 {
		if err := g.Authorize(Request{Action: Read, Stream: "s", Token: "wrong", Addr: "192.0.2.1"}); err != nil {
			t.Fatalf("public read with a stray token: %v", err)
		}
	}
	if err := g.Authorize(Request{Action: Admin, Stream: "s", Token: "a", Addr: "192.0.2.1"}); err != nil {
		t.Fatalf("admin after public reads: %v", err)
	}
}

func TestMetricsAccess(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   Config
		token string
		want  bool
	}{
		{"auth off", Config{}, "", true},
		{"no token", Config{ReadTokens: []string{"r"}}, "", false},
		{"public_read does not open metrics", Config{ReadTokens: []string{"r"}, PublicRead: true}, "", false},
		{"metrics.public", Config{ReadTokens: []string{"r"}, PublicMetrics: true}, "", true},
		{"read token", Config{ReadTokens: []string{"r"}}, "r", true},
		{"admin token", Config{AdminTokens: []string{"a"}}, "a", true},
		{"stream token", Config{StreamTokens: map[string]string{"s": "k"}}, "k", false},
	} {
		g := newGate(t, c.cfg, Limits{})
		if got := g.Allows(Request{Protocol: Metrics, Action: Read, Token: c.token}); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	proxies, err := ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	trusting := newGate(t, Config{TrustedProxies: proxies}, Limits{})
	plain := newGate(t, Config{}, Limits{})
	for _, c := range []struct {
		name, peer string
		xff        []string
		g          *Gate
		want       string
	}{
		{"no proxies: the peer, XFF ignored", "198.51.100.1:5000", []string{"<img src=x onerror=alert(1)>", "203.0.113.9"}, plain, "198.51.100.1"},
		{"untrusted peer", "198.51.100.1:5000", []string{"203.0.113.9"}, trusting, "198.51.100.1"},
		{"trusted proxy", "10.1.2.3:5000", []string{"203.0.113.9"}, trusting, "203.0.113.9"},
		{"right-most untrusted", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9, 10.9.9.9", "192.0.2.7"}, trusting, "203.0.113.9"},
		{"forged left part ignored", "192.0.2.7:1", []string{"6.6.6.6", "203.0.113.9"}, trusting, "203.0.113.9"},
		{"garbage stops the chain", "10.1.2.3:5000", []string{"203.0.113.9, <script>"}, trusting, "10.1.2.3"},
		{"all trusted: the left-most", "10.1.2.3:5000", []string{"10.0.0.5, 10.0.0.6"}, trusting, "10.0.0.5"},
		{"no header", "10.1.2.3:5000", nil, trusting, "10.1.2.3"},
		{"v6 and ports", "[::ffff:10.1.2.3]:5000", []string{"[2001:db8::1]:443"}, trusting, "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		r.Header.Set("X-Real-IP", "6.6.6.6")
		if got := c.g.ClientIP(r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR is accepted")
	}
	if p, _ := ParsePrefixes([]string{"::1"}); len(p) != 1 || p[0] != netip.MustParsePrefix("::1/128") {
		t.Errorf("single address: %v", p)
	}
}

// Offers that never connect hold at most PendingPerIP slots per address
// and PendingPublishers in total, so connected publishers always find
// the rest of the Publishers slots.
func TestPendingSlots(t *testing.T) {
	g := newGate(t, Config{}, Limits{Publishers: 10, PendingPerIP: 2, PendingPublishers: 3})
	pub := func(addr string) Request { return Request{Action: Publish, Stream: addr, Protocol: WHIP, Addr: addr} }
	var slots []*Slot
	for _, addr := range []string{"a", "a", "b", "b"} {
		s, err := g.AdmitPending(pub(addr))
		if addr == "b" && len(slots) == 3 {
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != "pending_publishers" || le.PerClient {
				t.Fatalf("fourth pending publisher: %v, want pending_publishers (503)", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("pending %s: %v", addr, err)
		}
		slots = append(slots, s)
	}
	var le *LimitError
	if _, err := g.AdmitPending(pub("a")); !errors.As(err, &le) || le.Limit != "pending_per_ip" || !le.PerClient {
		t.Fatalf("third pending publisher of a: %v, want pending_per_ip (429)", err)
	}
	// Viewers are not held to the pending limits: five behind one NAT may
	// press play at once.
	for i := range 5 {
		v, err := g.AdmitPending(Request{Action: Read, Stream: "x", Protocol: WHEP, Addr: "a"})
		if err != nil {
			t.Fatalf("pending viewer %d of a: %v", i, err)
		}
		defer v.Release()
	}
	// Connected sessions leave the pending counts, not the slots.
	slots[0].Connected()
	slots[0].Connected()
	s, err := g.AdmitPending(pub("c"))
	if err != nil {
		t.Fatalf("after one connected: %v", err)
	}
	s.Release()
	s.Release()
	// Connected publishers fill the rest; pending ones never could.
	for i := range 7 {
		if _, err := g.Admit(pub("d")); err != nil {
			t.Fatalf("connected publisher %d: %v", i, err)
		}
	}
	if _, err := g.Admit(pub("d")); !errors.As(err, &le) || le.Limit != "publishers" {
		t.Fatalf("eleventh publisher: %v", err)
	}
	for _, s := range slots {
		s.Release()
	}
	if n := g.adm.pendingPubs + len(g.adm.pendingPerIP); n != 0 {
		t.Errorf("pending counts left after release: %d", n)
	}
	if rejections(g, "pending_per_ip") != 1 || rejections(g, "pending_publishers") != 1 {
		t.Errorf("rejections not counted")
	}
}
