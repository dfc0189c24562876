package rtc

import (
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/pion/webrtc/v3"
)

type testSession struct{ *Session }

func newTestSession(t *testing.T) testSession {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return testSession{NewSession(pc, slog.New(slog.DiscardHandler))}
}

// A session closed while its answer was being made (kicked, replaced, its
// connection failed) must not be entered: nothing would ever take it out.
func TestRegistryRefusesASessionThatEndedDuringSetup(t *testing.T) {
	var r Registry[testSession]
	s := newTestSession(t)
	s.Close()
	if err := r.Add(s); !errors.Is(err, ErrEndedDuringSetup) {
		t.Fatalf("Add of an ended session: %v, want ErrEndedDuringSetup", err)
	}
	if r.Len() != 0 {
		t.Fatalf("registry holds %d sessions, want 0", r.Len())
	}
}

// Close racing Add, from another goroutine, never leaves a dead entry.
func TestRegistryCloseRacingAdd(t *testing.T) {
	var r Registry[testSession]
	for range 200 {
		s := newTestSession(t)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = r.Add(s) }()
		go func() { defer wg.Done(); s.Close() }()
		wg.Wait()
		<-s.Done()
		if _, ok := r.Get(s.ID); ok {
			t.Fatal("an ended session is still in the registry")
		}
	}
	if r.Len() != 0 {
		t.Fatalf("registry holds %d sessions, want 0", r.Len())
	}
}

func TestRegistryCloseAll(t *testing.T) {
	var r Registry[testSession]
	a, b := newTestSession(t), newTestSession(t)
	for _, s := range []testSession{a, b} {
		if err := r.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	r.CloseAll()
	if !a.Ended() || !b.Ended() || r.Len() != 0 {
		t.Fatalf("after CloseAll: ended %v %v, %d left", a.Ended(), b.Ended(), r.Len())
	}
	if err := r.Add(newTestSession(t)); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Add after CloseAll: %v, want ErrShuttingDown", err)
	}
	r.CloseAll() // twice is safe
}
