package recorder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// memFile records every call a partFile makes to the OS.
type memFile struct {
	mu     sync.Mutex
	data   []byte
	writes [][]byte
	syncs  int
	closed bool
	// failAfter, if > 0, makes writes fail with ENOSPC past that size.
	failAfter int
}

func (m *memFile) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAfter > 0 && len(m.data)+len(b) > m.failAfter {
		n := m.failAfter - len(m.data)
		m.data = append(m.data, b[:n]...)
		return n, &os.PathError{Op: "write", Path: "test", Err: syscall.ENOSPC}
	}
	m.writes = append(m.writes, bytes.Clone(b))
	m.data = append(m.data, b...)
	return len(b), nil
}

func (m *memFile) WriteAt(b []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(off)+len(b) > len(m.data) {
		return 0, errors.New("WriteAt past the end")
	}
	return copy(m.data[off:], b), nil
}

func (m *memFile) Sync() error  { m.mu.Lock(); m.syncs++; m.mu.Unlock(); return nil }
func (m *memFile) Close() error { m.mu.Lock(); m.closed = true; m.mu.Unlock(); return nil }

// TestPartFileWritesWholeClusters drives the real ebml-go writer and checks
// the assumption file.go rests on: every OS write but the first (header and
// Cues space) begins with a Cluster and holds whole clusters.
func TestPartFileWritesWholeClusters(t *testing.T) {
	mem := &memFile{}
	pf := newPartFile(mem)
	w, err := newMatroskaWriter(pf, "webm", time.Now(), []trackSpec{
		{codec: live.VP8, width: 64, height: 48},
		{codec: live.Opus, channels: 2, codecPrivate: opusHead(2)},
	}, func(err error) { t.Errorf("fatal: %v", err) }, func(err error) { t.Errorf("error: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	for ms := int64(0); ms < 5000; ms += 20 {
		if ms%40 == 0 {
			w.WriteFrame(0, ms%1000 == 0, ms, bytes.Repeat([]byte{1}, 300))
		}
		w.WriteFrame(1, true, ms, bytes.Repeat([]byte{2}, 100))
	}
	mem.mu.Lock()
	before := len(mem.writes)
	mem.mu.Unlock()
	w.Close()
	if err := pf.Err(); err != nil {
		t.Fatal(err)
	}
	// 5 keyframes → clusters at 0..4 s; the 5th is still in memory when
	// the writer closes; header+Void and 4 clusters were written.
	if before != 5 {
		t.Errorf("%d OS writes before Close, want 5 (header, then one per finished cluster)", before)
	}
	for i, b := range mem.writes[1:] {
		if !bytes.HasPrefix(b, clusterID) {
			t.Errorf("write %d does not start with a Cluster: % x", i+1, b[:min(8, len(b))])
		}
		if i+1 < before && bytes.Count(b, clusterID) != 1 {
			t.Errorf("write %d holds %d clusters", i+1, bytes.Count(b, clusterID))
		}
	}
	if int64(len(mem.data)) != pf.Size() || !mem.closed || mem.syncs == 0 {
		t.Errorf("size %d vs %d, closed %v, syncs %d", len(mem.data), pf.Size(), mem.closed, mem.syncs)
	}
}

func TestPartFileKeepsFirstError(t *testing.T) {
	mem := &memFile{failAfter: 10}
	pf := newPartFile(mem)
	for i := 0; i < 3; i++ {
		if n, err := pf.Write(bytes.Repeat([]byte{9}, 8)); n != 8 || err != nil {
			t.Fatalf("Write = %d, %v: ebml-go must never see an error", n, err)
		}
		pf.Write(clusterID)
	}
	if n, err := pf.WriteAt([]byte{1}, 0); n != 1 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	pf.Close()
	pf.Close()
	if err := pf.Err(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Err = %v, want ENOSPC", err)
	}
	if len(mem.data) != 10 {
		t.Errorf("%d bytes reached the file, want 10 (nothing after the error)", len(mem.data))
	}
}

// TestDiskFull: the file system fills up mid-recording. The recording is
// marked failed with the error, nothing panics, the publisher goes on and
// the consumer keeps draining its queue to the end of the stream.
func TestDiskFull(t *testing.T) {
	r := newTestRecorder(t)
	r.openFile = func(name string) (osFile, error) {
		f, err := openPart(name)
		if err != nil {
			return nil, err
		}
		return &fullDisk{File: f.(*os.File), left: 200 << 10}, nil
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	p, err := hubtest.Publish(context.Background(), hub, "full",
		hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true})
	if err != nil {
		t.Fatal(err)
	}
	info := waitRecorded(t, r, p) // fails if the consumer blocks
	if info.State != StateFailed || !strings.Contains(info.Error, "no space left") {
		t.Errorf("state %q, error %q; want failed with the disk's error", info.State, info.Error)
	}
	if _, err := os.Stat(info.Path); err != nil {
		t.Errorf("the partial recording is gone: %v", err)
	}
	if len(r.Active()) != 0 {
		t.Errorf("a failed recording is still active: %+v", r.Active())
	}
	t.Logf("failed recording: %+v", info)
}

// fullDisk is a file on a file system with left bytes free.
type fullDisk struct {
	*os.File
	left int
}

func (f *fullDisk) Write(b []byte) (int, error) {
	if len(b) > f.left {
		n, _ := f.File.Write(b[:f.left])
		f.left = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.left -= len(b)
	return f.File.Write(b)
}
