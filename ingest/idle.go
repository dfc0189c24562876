package ingest

import (
	"time"

	"github.com/pion/webrtc/v3"
)

// DefaultIdleTimeout ends a connected publisher that has sent no media for
// this long: its encoder stopped or its network went, and the recording
// should be finalized instead of waiting for ICE to notice (or never, if
// the peer keeps answering consent checks).
const DefaultIdleTimeout = 10 * time.Second

// watchIdle closes the session once it has been connected and no RTP packet
// has arrived for timeout. It returns when the session ends.
func (p *Publisher) watchIdle(timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	tick := time.NewTicker(max(timeout/10, 50*time.Millisecond))
	defer tick.Stop()
	var last uint64
	quietSince := time.Now()
	for {
		select {
		case <-p.Done():
			return
		case <-tick.C:
		}
		var n uint64
		for _, t := range p.tracks {
			n += t.Packets()
		}
		// Until ICE and DTLS are up, the connect timeout is in charge.
		if n != last || p.PC.ConnectionState() != webrtc.PeerConnectionStateConnected {
			last, quietSince = n, time.Now()
			continue
		}
		if idle := time.Since(quietSince); idle >= timeout {
			p.Log.Warn("publisher sent no media; ending session", "idle", idle.Round(time.Millisecond), "timeout", timeout)
			p.Close()
			return
		}
	}
}
