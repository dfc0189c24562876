package meetings

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

// memArchive is a shared archive in memory: what Upload queues is copied
// at once (the storage queue does it later; storage's tests cover that).
type memArchive struct {
	mu    sync.Mutex
	dirs  map[string]string // node's recordings dir, by node, for Upload
	files map[string][]byte
	down  bool
}

func newMemArchive() *memArchive {
	return &memArchive{dirs: map[string]string{}, files: map[string][]byte{}}
}

func (a *memArchive) errIfDown() error {
	if a.down {
		return errors.New("connection refused")
	}
	return nil
}

// node is the Archive one node sees: Upload reads from its directory.
type memNode struct {
	*memArchive
	dir string
}

func (n memNode) Upload(path string) error {
	rel, err := filepath.Rel(n.dir, path)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.files[filepath.ToSlash(rel)] = data
	return nil
}

func (a *memArchive) Documents() map[string][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]byte{}
	for p, d := range a.files {
		if IsDocument(p) {
			out[p] = d
		}
	}
	return out
}

func (a *memArchive) Refresh(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errIfDown()
}
func (a *memArchive) ListErr() error { a.mu.Lock(); defer a.mu.Unlock(); return a.errIfDown() }

func (a *memArchive) Document(_ context.Context, p string) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.errIfDown(); err != nil {
		return nil, err
	}
	d, ok := a.files[p]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return d, nil
}

func (a *memArchive) PutDocument(_ context.Context, p string, data []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.errIfDown(); err != nil {
		return err
	}
	a.files[p] = data
	return nil
}

func (a *memArchive) DeleteDocument(_ context.Context, p string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.errIfDown(); err != nil {
		return err
	}
	delete(a.files, p)
	return nil
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func (a *memArchive) Open(_ context.Context, p string) (io.ReadSeekCloser, error) {
	d, err := a.Document(context.Background(), p)
	if err != nil {
		return nil, err
	}
	return nopCloser{bytes.NewReader(d)}, nil
}

func (a *memArchive) DeleteFolder(_ context.Context, p string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.errIfDown(); err != nil {
		return err
	}
	for k := range a.files {
		if strings.HasPrefix(k, p+"/") {
			delete(a.files, k)
		}
	}
	return nil
}

func sharedManager(t *testing.T, a *memArchive, node string) (*Manager, string) {
	t.Helper()
	dir := t.TempDir()
	m, err := New(Config{Dir: dir, Grace: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Archive: memNode{a, dir}, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, dir
}

// TestSharedArchive: node a records a meeting; its ended manifest goes to
// the archive; node b lists it, zips it from the archive (sums matching),
// and puts a hold that a's retention and deletion obey; with the archive
// down a hold is neither set nor lost; b deletes it after the release,
// and a, reconciling, deletes its copy; both audits show every step.
func TestSharedArchive(t *testing.T) {
	arch := newMemArchive()
	a, dirA := sharedManager(t, arch, "a")
	b, _ := sharedManager(t, arch, "b")
	t0 := time.Now().UTC().Truncate(time.Second)
	a.Join("board/alice", t0)
	pl := a.Place("board/alice")
	file := filepath.Join(dirA, filepath.FromSlash(pl.Dir), pl.Prefix+"_1.webm")
	body := bytes.Repeat([]byte("alice"), 5000)
	if err := os.WriteFile(file, body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	rec := recorder.Info{ID: pl.Prefix + "_1", Path: file, State: recorder.StateFinished, Start: t0, End: t0.Add(time.Second),
		Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Meeting: "board", Occurrence: pl.Occurrence, Participant: "alice"}
	a.RecordingFinished(rec)
	a.Leave("board/alice", t0.Add(time.Second))
	id := pl.Occurrence
	local := waitEnded(t, a, id)
	// The recording goes up as the storage queue would send it.
	if err := (memNode{arch, dirA}).Upload(file); err != nil {
		t.Fatal(err)
	}
	if got := string(arch.files[pl.Dir+"/"+checksumName]); !strings.HasPrefix(got, local.SHA256) {
		t.Fatalf("the archive's manifest.json.sha256 %q, want the ended manifest's %s", got, local.SHA256)
	}

	page, err := b.List(Query{})
	if err != nil || len(page.Meetings) != 1 || page.Meetings[0].ID != id || !page.Meetings[0].Archived || page.Meetings[0].Node != "a" {
		t.Fatalf("b lists %+v %v, want a's occurrence from the archive", page.Meetings, err)
	}
	oc, err := b.Get(id)
	if err != nil || oc.Dir != "" || oc.SHA256 != local.SHA256 {
		t.Fatalf("b gets %+v %v", oc, err)
	}
	var buf bytes.Buffer
	if err := b.WriteZip(&buf, id); err != nil {
		t.Fatal(err)
	}
	got := readZip(t, buf.Bytes(), id, true)
	if !bytes.Equal(got[filepath.Base(file)], body) || sumOf(got[manifestName]) != local.SHA256 {
		t.Fatalf("b's zip: %d files, manifest sha256 %s", len(got), sumOf(got[manifestName]))
	}
	if want := fmt.Sprintf("%x  %s", sum, filepath.Base(file)); !strings.Contains(string(got["SHA256SUMS"]), want) {
		t.Fatalf("SHA256SUMS %q lacks %q", got["SHA256SUMS"], want)
	}

	// The hold, set through b, binds a.
	if _, err := b.SetHold(id, "case 9", "token:b"); err != nil {
		t.Fatal(err)
	}
	var he *HeldError
	if err := a.DeleteOccurrence(id, "token:a", "cleanup"); !errors.As(err, &he) || he.Hold.Reason != "case 9" {
		t.Fatalf("a deletes b's held occurrence: %v", err)
	}
	if why := a.Protect(rec); !strings.Contains(why, "case 9") {
		t.Fatalf("a's retention: %q, want the hold", why)
	}
	if why := b.ProtectArchived(context.Background(), rec); !strings.Contains(why, "case 9") {
		t.Fatalf("the bucket's retention on b: %q, want the hold", why)
	}
	if p, _ := a.List(Query{Hold: new(true)}); len(p.Meetings) != 1 {
		t.Fatalf("a lists %d held occurrences", len(p.Meetings))
	}

	// The archive down: no hold is lifted, none set, nothing deleted,
	// and retention keeps what it cannot check.
	arch.mu.Lock()
	arch.down = true
	arch.mu.Unlock()
	if err := b.ReleaseHold(id, "oops", "token:b"); !errors.Is(err, ErrArchive) {
		t.Fatalf("release with the archive down: %v", err)
	}
	if why := b.ProtectArchived(context.Background(), rec); !strings.Contains(why, "cannot be checked") {
		t.Fatalf("retention with the archive down: %q", why)
	}
	if b.ArchiveStatus() == "" {
		t.Fatal("no status with the archive down")
	}
	arch.mu.Lock()
	arch.down = false
	arch.mu.Unlock()

	if err := a.ReleaseHold(id, "case closed", "token:a"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteOccurrence(id, "token:b", "cleanup"); err != nil {
		t.Fatal(err)
	}
	if _, ok := arch.files[pl.Dir+"/"+manifestName]; ok {
		t.Fatal("the archive still has the deleted occurrence")
	}
	a.Reconcile()
	if _, err := os.Stat(filepath.Join(dirA, filepath.FromSlash(pl.Dir))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a's folder after b deleted the occurrence: %v", err)
	}
	if _, err := a.Get(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a still has the occurrence: %v", err)
	}
	for _, m := range []*Manager{a, b} {
		log, _ := m.Audit(id)
		var steps []string
		for _, e := range log {
			steps = append(steps, e.Action+"@"+e.Node)
		}
		if strings.Join(steps, ",") != "hold@b,release_hold@a,delete_meeting@b" {
			t.Errorf("audit on %s: %v", m.cfg.Node, steps)
		}
	}
}

// An export of an ended occurrence goes to the archive with the manifest
// that lists it, another node's zip has it, and removing the export
// removes it from the archive too.
func TestSharedArchiveExports(t *testing.T) {
	arch := newMemArchive()
	a, dirA := sharedManager(t, arch, "a")
	b, _ := sharedManager(t, arch, "b")
	t0 := time.Now().UTC().Truncate(time.Second)
	a.Join("board/alice", t0)
	pl := a.Place("board/alice")
	a.Leave("board/alice", t0.Add(time.Second))
	id := pl.Occurrence
	waitEnded(t, a, id)

	rel := "exports/job1/board.webm"
	path := filepath.Join(dirA, filepath.FromSlash(pl.Dir), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("tracks"), 4000)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	e := Export{Job: "job1", Kind: "multitrack", Finished: t0.Add(2 * time.Second),
		Files: []ExportFile{{File: rel, Bytes: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}}}
	if err := a.SetExport(id, e); err != nil {
		t.Fatal(err)
	}
	key := pl.Dir + "/" + rel
	if !bytes.Equal(arch.files[key], body) {
		t.Fatalf("the export is not in the archive at %s", key)
	}
	var man Manifest
	if err := json.Unmarshal(arch.files[pl.Dir+"/"+manifestName], &man); err != nil || len(man.Exports) != 1 {
		t.Fatalf("the archive's manifest lists exports %+v (%v), want job1", man.Exports, err)
	}
	var buf bytes.Buffer
	if err := b.WriteZip(&buf, id); err != nil {
		t.Fatal(err)
	}
	if _, found := readZip(t, buf.Bytes(), id, true)[rel]; !found {
		t.Fatalf("b's zip of %s lacks the export", id)
	}

	if err := a.RemoveExport(id, "job1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		arch.mu.Lock()
		_, still := arch.files[key]
		arch.mu.Unlock()
		if !still {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a removed export stays in the archive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
