package rtsp

import (
	"net"
	"sync"

	"github.com/bluenviron/gortsplib/v4"
)

// setupGate lets one SETUP at a time run per client address.
//
// gortsplib v4.16.2 has a data race that can kill the process: when a
// reader's first SETUP joins a ServerStream, the stream looks through the
// media map of every other UDP reader from the same address (to refuse a
// port pair already in use), without the lock those readers hold while
// adding their next media to that map. A map read during a write is a
// fatal error in Go, not a panic, so a crowd of VLC users behind one NAT
// joining at once could take the gateway down (a load test did, with
// readers on loopback). Both the reading and the writing run inside one
// SETUP request, between Server.OnRequest and Server.OnResponse, so holding
// a per-address lock over that span keeps them apart. Readers from
// different addresses never touch each other's maps and are not delayed.
type setupGate struct {
	mu    sync.Mutex
	addrs map[string]*addrGate                // by client IP
	held  map[*gortsplib.ServerConn]*addrGate // connections inside a SETUP
}

type addrGate struct {
	sync.Mutex
	key   string
	users int // connections holding or waiting; the entry goes at 0
}

func newSetupGate() *setupGate {
	return &setupGate{addrs: map[string]*addrGate{}, held: map[*gortsplib.ServerConn]*addrGate{}}
}

// enter blocks until no other SETUP from sc's address is being handled.
// gortsplib handles a connection's requests one after the other, so a
// connection enters at most once before it leaves.
func (g *setupGate) enter(sc *gortsplib.ServerConn) {
	key := clientIP(sc)
	g.mu.Lock()
	a := g.addrs[key]
	if a == nil {
		a = &addrGate{key: key}
		g.addrs[key] = a
	}
	a.users++
	g.mu.Unlock()

	a.Lock()

	g.mu.Lock()
	g.held[sc] = a
	g.mu.Unlock()
}

// leave ends the SETUP that sc entered; without one it does nothing.
func (g *setupGate) leave(sc *gortsplib.ServerConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.held[sc]
	if a == nil {
		return
	}
	delete(g.held, sc)
	a.Unlock()
	if a.users--; a.users == 0 {
		delete(g.addrs, a.key)
	}
}

// clientIP is the address gortsplib compares readers by: IP and zone.
func clientIP(sc *gortsplib.ServerConn) string {
	if sc == nil || sc.NetConn() == nil {
		return ""
	}
	switch a := sc.NetConn().RemoteAddr().(type) {
	case *net.TCPAddr:
		return (&net.IPAddr{IP: a.IP, Zone: a.Zone}).String()
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		return host
	}
}
