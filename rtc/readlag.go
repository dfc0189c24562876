package rtc

import (
	"sync/atomic"
	"time"
)

// A gateway behind its input leaves publishers' packets waiting in its
// WebRTC socket. The kernel stamps each packet as it arrives
// (SO_TIMESTAMPNS, where the platform has it: readlag_linux.go), so the
// wait is measured exactly, whatever the network did before: a
// congested uplink delays packets before they arrive, never after.

// readLag keeps the longest wait of a packet in the sockets, from its
// arrival to its read, since it was last taken.
type readLag struct {
	known atomic.Bool  // a timestamped read happened
	max   atomic.Int64 // ns
}

// note records one packet's wait; the sockets' one reader goroutine each
// calls it per packet, so it takes no lock and allocates nothing.
func (l *readLag) note(d time.Duration) {
	l.known.Store(true)
	for {
		cur := l.max.Load()
		if int64(d) <= cur || l.max.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// take returns the longest wait since the previous take and starts over;
// ok is false while no read was timestamped.
func (l *readLag) take() (time.Duration, bool) {
	return time.Duration(l.max.Swap(0)), l.known.Load()
}
