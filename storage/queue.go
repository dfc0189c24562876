package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
)

// job is one pending upload, kept as a file in .uploads/pending/ from the
// moment it is queued until its object is verified.
type job struct {
	Path      string    `json:"path"` // relative to the recordings directory
	Queued    time.Time `json:"queued"`
	Attempts  int       `json:"attempts"`
	Next      time.Time `json:"next"` // not before: backoff after a failure
	LastError string    `json:"last_error,omitempty"`
	// Keep: the local copy stays after the upload (a meeting's
	// manifest, an audit entry): KeepLocal does not apply.
	Keep bool `json:"keep,omitempty"`
}

// done is the record of a verified upload, in .uploads/done/: what was
// uploaded (so it is not uploaded twice) and when (for KeepLocal).
type done struct {
	Path     string    `json:"path"`
	Key      string    `json:"key"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	ModTime  time.Time `json:"mod_time"`
	Uploaded time.Time `json:"uploaded"`
	// Removed: the local copy was removed after KeepLocal.
	Removed bool `json:"removed,omitempty"`
	Keep    bool `json:"keep,omitempty"`
}

// queue is the jobs and done records on disk, with an index in memory.
type queue struct {
	dir string

	mu      sync.Mutex
	pending map[string]*job // by path
	done    map[string]*done
}

func openQueue(dir string) (*queue, error) {
	q := &queue{dir: dir, pending: map[string]*job{}, done: map[string]*done{}}
	for _, sub := range []string{"pending", "done"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("storage: creating the upload queue: %w", err)
		}
	}
	if err := load(filepath.Join(dir, "pending"), func(j *job) { q.pending[j.Path] = j }); err != nil {
		return nil, err
	}
	if err := load(filepath.Join(dir, "done"), func(d *done) { q.done[d.Path] = d }); err != nil {
		return nil, err
	}
	return q, nil
}

// load reads every record of dir; a record that cannot be read (cut by a
// crash while being written: never, since writes are renamed into place)
// is reported and skipped.
func load[T any](dir string, add func(*T)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("storage: reading the upload queue: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("storage: reading the upload queue: %w", err)
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return fmt.Errorf("storage: upload queue record %s is unreadable: %w", e.Name(), err)
		}
		add(v)
	}
	return nil
}

// recordName is the file name of path's records.
func recordName(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// write puts v in dir/name durably: a temporary file, synced, renamed into
// place, and the directory synced.
func write(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, name), b)
}

// add queues path unless it is queued, or was uploaded and has not
// changed since. It reports whether it queued it. keep marks a file whose
// local copy stays after its upload.
func (q *queue) add(path string, keep bool) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending[path] != nil {
		return false, nil
	}
	if d := q.done[path]; d != nil {
		if d.Removed {
			return false, nil
		}
		st, err := os.Stat(filepath.Join(filepath.Dir(q.dir), filepath.FromSlash(path)))
		if err == nil && st.Size() == d.Size && st.ModTime().Equal(d.ModTime) {
			return false, nil
		}
	}
	j := &job{Path: path, Queued: time.Now().UTC(), Keep: keep}
	if err := write(filepath.Join(q.dir, "pending"), recordName(path), j); err != nil {
		return false, err
	}
	q.pending[path] = j
	return true, nil
}

// next returns a copy of the job due soonest, and when it is due; nil
// when nothing is pending.
func (q *queue) next() (*job, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *job
	for _, j := range q.pending {
		if best == nil || j.Next.Before(best.Next) || (j.Next.Equal(best.Next) && j.Queued.Before(best.Queued)) {
			best = j
		}
	}
	if best == nil {
		return nil, time.Time{}
	}
	cp := *best
	return &cp, best.Next
}

// failed records a failed attempt and when to try again.
func (q *queue) failed(j *job, err error, retry time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur := q.pending[j.Path]
	if cur == nil {
		return nil
	}
	cur.Attempts++
	cur.LastError = err.Error()
	cur.Next = time.Now().Add(retry).UTC()
	return write(filepath.Join(q.dir, "pending"), recordName(j.Path), cur)
}

// finish replaces the job of d.Path by its done record.
func (q *queue) finish(d *done) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := write(filepath.Join(q.dir, "done"), recordName(d.Path), d); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(q.dir, "pending", recordName(d.Path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	delete(q.pending, d.Path)
	q.done[d.Path] = d
	return nil
}

// drop forgets a job whose file is gone (deleted before it was uploaded).
func (q *queue) drop(path string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.pending, path)
	if err := os.Remove(filepath.Join(q.dir, "pending", recordName(path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// markRemoved records that d's local copy is gone.
func (q *queue) markRemoved(path string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.done[path]
	if d == nil {
		return nil
	}
	d.Removed = true
	return write(filepath.Join(q.dir, "done"), recordName(path), d)
}

// forget drops the done record of a file deleted on purpose.
func (q *queue) forget(path string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.done, path)
	_ = os.Remove(filepath.Join(q.dir, "done", recordName(path)))
}

// forgetUnder drops every record, pending or done, of the files under
// the folder prefix (ending in '/').
func (q *queue) forgetUnder(prefix string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for path := range q.pending {
		if strings.HasPrefix(path, prefix) {
			delete(q.pending, path)
			_ = os.Remove(filepath.Join(q.dir, "pending", recordName(path)))
		}
	}
	for path := range q.done {
		if strings.HasPrefix(path, prefix) {
			delete(q.done, path)
			_ = os.Remove(filepath.Join(q.dir, "done", recordName(path)))
		}
	}
}

// doneRecords returns copies of the done records.
func (q *queue) doneRecords() []done {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]done, 0, len(q.done))
	for _, d := range q.done {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b done) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func (q *queue) doneRecord(path string) (done, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.done[path]
	if d == nil {
		return done{}, false
	}
	return *d, true
}

// pendingCount is the number of pending jobs.
func (q *queue) pendingCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// oldest is when the oldest pending job was queued; zero when none is.
func (q *queue) oldest() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var t time.Time
	for _, j := range q.pending {
		if t.IsZero() || j.Queued.Before(t) {
			t = j.Queued
		}
	}
	return t
}
