package recorder

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// fakeDisk is a FreeSpacer the test turns up and down.
type fakeDisk struct {
	free atomic.Uint64
	fail atomic.Bool
}

func (d *fakeDisk) FreeSpace(string) (uint64, error) {
	if d.fail.Load() {
		return 0, errors.New("statfs: input/output error")
	}
	return d.free.Load(), nil
}

// syncBuffer is a log sink safe for the recorder's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func hasRecordConsumer(s *live.Stream) bool {
	for _, sub := range s.Subscriptions() {
		if sub.Kind == string(live.OutputRecord) {
			return true
		}
	}
	return false
}

// TestDiskGuard: below MinFreeSpace no new recording (nor new segment)
// starts, with a log line and a reason for the API; the stream itself
// stays live; recording resumes once there is room.
func TestDiskGuard(t *testing.T) {
	requireTools(t)
	disk := &fakeDisk{}
	disk.free.Store(100e6)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: log, MinFreeSpace: 1e9, FreeSpace: disk,
		SegmentDuration: time.Second, CheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer func() {
		if t.Failed() {
			t.Logf("recorder log:\n%s", logs.String())
		}
	}()
	reason := r.PausedReason()
	if !strings.Contains(reason, "free disk space (100MB) is below recordings.min_free_space (1GB)") {
		t.Errorf("paused reason %q", reason)
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := hubtest.Publish(ctx, hub, "low", hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if hasRecordConsumer(p.Stream) {
		t.Error("a stream published with the disk almost full is recorded")
	}
	if !strings.Contains(logs.String(), "stream not recorded: disk almost full") {
		t.Error("no log line says why the stream is not recorded")
	}
	cancel()
	<-p.Done()

	disk.free.Store(10e9)
	if reason := r.PausedReason(); reason != "" {
		t.Errorf("paused with room on disk: %q", reason)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	p2, err := hubtest.Publish(ctx2, hub, "ok", hubtest.Source{Video: live.VP8, Audio: true, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if !hasRecordConsumer(p2.Stream) {
		t.Fatal("not recorded with room on disk")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if page, _ := r.Catalog().List(Query{Stream: "ok"}); len(page.Recordings) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second segment within 30 s")
		}
	}
	// The disk fills up: the recording stops at the next segment boundary;
	// the stream goes on.
	disk.free.Store(1e6)
	waitActive(t, r, 0)
	if hub.Get("ok") == nil {
		t.Error("the stream stopped with the recording")
	}
	select {
	case <-p2.Done():
		t.Error("the publication ended with the recording")
	default:
	}
	recs := listAll(t, r.Catalog(), Query{Stream: "ok"})
	for _, in := range recs {
		if in.State != StateFinished {
			t.Errorf("%s: %+v", in.ID, in)
		}
		if msg := ffmpegErrors(t, in.Path, nil, nil); msg != "" {
			t.Errorf("%s: %s", in.ID, msg)
		}
	}
	if !strings.Contains(logs.String(), "recording stopped at a segment boundary") ||
		!strings.Contains(logs.String(), "recording paused: disk almost full") {
		t.Error("no log line says the recording stopped for lack of disk space")
	}
	cancel2()
	<-p2.Done()

	// A guard that cannot measure lets recording run.
	disk.fail.Store(true)
	if reason := r.PausedReason(); reason != "" {
		t.Errorf("paused on a measurement error: %q", reason)
	}
	if !strings.Contains(logs.String(), "cannot measure free disk space") {
		t.Error("the measurement error is not logged")
	}
	t.Logf("%d segments before the disk filled up", len(recs))
}
