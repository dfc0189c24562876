// Package testlog is a debug logger into a test's output that goes quiet
// when the test ends. Goroutines outlive their test: pion reports a
// closed peer connection's state from a goroutine of its own, which may
// run after the test's cleanups, and a write to t's output then races
// with the test's end (the race detector says so) or panics.
package testlog

import (
	"io"
	"log/slog"
	"sync"
	"testing"
)

// New returns the logger; lines logged after t's cleanups are dropped.
func New(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(newWriter(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newWriter writes to t's output until t's cleanups have run. Call it
// before anything whose cleanup may log, so that its own cleanup runs
// after theirs.
func newWriter(t testing.TB) *endingWriter {
	w := &endingWriter{w: t.Output()}
	t.Cleanup(w.end)
	return w
}

type endingWriter struct {
	mu sync.Mutex
	w  io.Writer // nil once the test ended
}

func (e *endingWriter) Write(b []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.w == nil {
		return len(b), nil
	}
	return e.w.Write(b)
}

func (e *endingWriter) end() {
	e.mu.Lock()
	e.w = nil
	e.mu.Unlock()
}
