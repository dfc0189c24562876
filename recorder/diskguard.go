package recorder

import (
	"fmt"
	"log/slog"
	"sync"
)

// FreeSpacer reports the free space, in bytes, of the file system holding
// path. The default reads it from the operating system; tests fake it.
type FreeSpacer interface {
	FreeSpace(path string) (uint64, error)
}

// diskGuard pauses new recordings while the recordings' file system has
// less than min bytes free, so a full disk never cuts a recording short.
type diskGuard struct {
	src FreeSpacer
	dir string
	min uint64
	log *slog.Logger

	mu      sync.Mutex
	paused  string // why new recordings are paused; "" while they are not
	failing bool   // the last measurement failed (logged once)
}

// check measures the free space and returns why new recordings are paused,
// or "". It logs when recording pauses or resumes. A failed measurement
// does not pause recording: a guard that cannot see must not stop it.
func (g *diskGuard) check() string {
	if g == nil || g.min == 0 {
		return ""
	}
	free, err := g.src.FreeSpace(g.dir)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		if !g.failing {
			g.log.Warn("cannot measure free disk space; recordings are not guarded", "dir", g.dir, "error", err)
		}
		g.failing = true
		g.paused = ""
		return ""
	}
	g.failing = false
	reason := ""
	if free < g.min {
		reason = fmt.Sprintf("free disk space (%s) is below recordings.min_free_space (%s): new recordings are paused until space is freed; live streaming continues",
			FormatSize(free), FormatSize(g.min))
	}
	switch {
	case reason != "" && g.paused == "":
		g.log.Error("recording paused: disk almost full", "dir", g.dir, "free", free, "min_free_space", g.min, "reason", reason)
	case reason == "" && g.paused != "":
		g.log.Info("recording resumed: disk space is available again", "dir", g.dir, "free", free, "min_free_space", g.min)
	}
	g.paused = reason
	return reason
}
