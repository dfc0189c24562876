package access

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the address an HTTP request came from, the one every limit,
// log line, webhook and the streams API use. It is the TCP peer, unless
// the peer is one of Config.TrustedProxies: then it is the right-most
// X-Forwarded-For address that is not a trusted proxy (the one the first
// trusted proxy saw). Everything left of that is whatever the client
// wrote and is ignored, as are X-Real-IP and Forwarded.
func (g *Gate) ClientIP(r *http.Request) string {
	peer := HostOnly(r.RemoteAddr)
	if len(g.cfg.TrustedProxies) == 0 {
		return peer
	}
	addr, err := netip.ParseAddr(peer)
	if err != nil || !g.trusted(addr.Unmap()) {
		return peer
	}
	addr = addr.Unmap()
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			// Not an address: the last trusted hop is as far as the
			// chain can be believed.
			break
		}
		if !g.trusted(hop) {
			return hop.String()
		}
		addr = hop
	}
	return addr.String()
}

// ForwardedHost is the Host the client asked for: the request's, or the
// X-Forwarded-Host a trusted proxy set.
func (g *Gate) ForwardedHost(r *http.Request) string {
	if len(g.cfg.TrustedProxies) > 0 {
		if a, err := netip.ParseAddr(HostOnly(r.RemoteAddr)); err == nil && g.trusted(a.Unmap()) {
			if h := r.Header.Values("X-Forwarded-Host"); len(h) > 0 {
				if last := strings.TrimSpace(h[len(h)-1]); last != "" {
					return last
				}
			}
		}
	}
	return r.Host
}

func (g *Gate) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For element: an address, perhaps with a
// port ("[::1]:80", "192.0.2.1:80").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// ParsePrefixes reads trusted proxies: CIDRs ("10.0.0.0/8") or single
// addresses ("192.0.2.7").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR such as 10.0.0.0/8", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// HostOnly strips the port from a "host:port" address.
func HostOnly(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// BearerToken reads "Authorization: Bearer <token>"; players that cannot
// set headers (HLS in a <video>) may pass ?token= instead.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return r.URL.Query().Get("token")
}
