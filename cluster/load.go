package cluster

import (
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Load is what placement weighs: a node's live publishers, its viewers
// (WHEP and RTSP sessions, relays' included), the share of its CPUs the
// process used since the last heartbeat (0..1), and whether it refuses
// new sessions for its load (access: behind its input, or its goroutines
// waiting for a CPU).
type Load struct {
	Publishers int     `json:"publishers"`
	Viewers    int     `json:"viewers"`
	CPU        float64 `json:"cpu"`
	Overloaded bool    `json:"overloaded,omitempty"`
}

// cpuMeter measures the process's CPU use between two samples.
type cpuMeter struct {
	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
	value    float64
}

func (m *cpuMeter) sample() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if !m.lastWall.IsZero() {
		if wall := now.Sub(m.lastWall); wall >= 100*time.Millisecond {
			m.value = float64(used-m.lastCPU) / float64(wall) / float64(runtime.NumCPU())
			m.lastCPU, m.lastWall = used, now
		}
		return m.value
	}
	m.lastCPU, m.lastWall = used, now
	return 0
}
