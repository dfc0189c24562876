package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/reel-gateway/reel/internal/testlog"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/recorder"
)

// fakeS3 is gofakes3 on a loopback port that can be stopped and started
// again on the same address, keeping its objects.
type fakeS3 struct {
	t       *testing.T
	addr    string
	handler http.Handler
	parts   atomic.Int64 // multipart part uploads seen
	corrupt atomic.Bool  // flip a byte of every object PUT while set
	// listGate, when set, holds the next listing request until the test
	// lets it go: it is answered with the objects of that moment.
	listGate atomic.Pointer[gate]

	mu  sync.Mutex
	srv *http.Server
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{t: t, handler: gofakes3.New(s3mem.New()).Server()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

// gate holds a request: reached is closed when it arrives, release lets
// it go on.
type gate struct{ reached, release chan struct{} }

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
		if g := f.listGate.Swap(nil); g != nil {
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, r) // the listing as it is now
			close(g.reached)
			<-g.release
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
	}
	if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" {
		f.parts.Add(1)
	}
	if r.Method == http.MethodPut && f.corrupt.Load() && r.ContentLength > 0 {
		b, _ := io.ReadAll(r.Body)
		b[len(b)/2] ^= 0xff
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	f.handler.ServeHTTP(w, r)
}

func (f *fakeS3) serve(ln net.Listener) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.srv = &http.Server{Handler: f}
	go f.srv.Serve(ln)
}

func (f *fakeS3) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

func (f *fakeS3) start() {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.serve(ln)
}

func (f *fakeS3) url() string { return "http://" + f.addr }

func testStore(t *testing.T, s3 *fakeS3, dir string, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{Endpoint: s3.url(), Bucket: "archive", Prefix: "reel", AccessKey: "key", SecretKey: "secret",
		Dir: dir, KeepLocal: DefaultKeepLocal, PartSize: 5 << 20, Node: "n1",
		Logger: testlog.New(t)}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// recording writes a finished recording of size bytes and its sidecar,
// as the recorder leaves them, and returns its metadata and SHA-256.
func recording(t *testing.T, dir, stream string, size int) (recorder.Info, string) {
	t.Helper()
	path := filepath.Join(dir, stream, stream+"_20261201T000000Z.mkv")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	_, _ = rand.Read(b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	in := recorder.Info{ID: stream + "_20261201T000000Z", Stream: stream, Path: path, Container: "mkv", Codecs: []string{"h264", "opus"},
		Start: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 1, 0, 0, time.UTC),
		DurationMS: 60000, Size: int64(size), State: recorder.StateFinished}
	side, _ := json.Marshal(in)
	if err := os.WriteFile(path+".json", side, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return in, hex.EncodeToString(sum[:])
}

func objectSHA(t *testing.T, s *Store, key string) string {
	t.Helper()
	obj, err := s.client.GetObject(context.Background(), s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	sum, err := hashReader(obj)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return sum
}

// TestUploadMultipartVerified: a 12 MiB recording goes up in 5 MiB parts
// with its sidecar, is verified, listed from the bucket and kept locally.
func TestUploadMultipartVerified(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s := testStore(t, s3, dir, nil)
	in, sum := recording(t, dir, "cam", 12<<20)
	if err := s.EnqueueRecording(in); err != nil {
		t.Fatal(err)
	}
	s.Start()
	testwait.Until(t, 20*time.Second, "both files uploaded", func() bool { return s.Stats().Uploads == 2 })
	if st := s.Stats(); st.Pending != 0 || st.Bytes < 12<<20 || st.Failures != 0 {
		t.Fatalf("stats after upload: %+v", st)
	}
	if s3.parts.Load() < 3 {
		t.Fatalf("%d parts uploaded, want a multipart upload of 3", s3.parts.Load())
	}
	key := "reel/cam/cam_20261201T000000Z.mkv"
	if got := objectSHA(t, s, key); got != sum {
		t.Fatalf("object sha256 %s, file %s", got, sum)
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Fatalf("the local copy went before keep_local: %v", err)
	}
	// Queued again unchanged: nothing to do.
	if err := s.EnqueueRecording(in); err != nil || s.Stats().Pending != 0 {
		t.Fatalf("an uploaded file was queued again: %v, %+v", err, s.Stats())
	}
	// The archive, from the bucket.
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, ok := s.Lookup(context.Background(), in.ID)
	if !ok || o.Key != key || o.Stream != "cam" || o.Size != 12<<20 {
		t.Fatalf("bucket lookup: %+v, %v", o, ok)
	}
	obj, st, err := s.Open(context.Background(), key)
	if err != nil || st.Size != 12<<20 {
		t.Fatalf("open: %v, %d", err, st.Size)
	}
	if _, err := obj.Seek(6<<20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	tail, err := io.ReadAll(obj)
	obj.Close()
	local, _ := os.ReadFile(in.Path)
	if err != nil || !bytes.Equal(tail, local[6<<20:]) {
		t.Fatalf("a ranged read from the bucket differs from the file: %v", err)
	}
	u, err := s.PresignedURL(context.Background(), key, "cam.mkv", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(body, local) {
		t.Fatalf("presigned download: %d, %d bytes", res.StatusCode, len(body))
	}
}

// TestUploadSurvivesOutageAndRestart: with S3 down, uploads fail and are
// retried; the queue survives a restart of the node; once S3 is back the
// upload completes, and nothing was removed locally meanwhile.
func TestUploadSurvivesOutageAndRestart(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s3.stop()
	s := testStore(t, s3, dir, func(c *Config) { c.KeepLocal = 0 })
	in, sum := recording(t, dir, "room", 1<<20)
	if err := s.EnqueueRecording(in); err != nil {
		t.Fatal(err)
	}
	s.Start()
	testwait.Until(t, 10*time.Second, "a failed attempt", func() bool { return s.Stats().Failures > 0 })
	if st := s.Stats(); st.Pending != 2 || st.OldestPending <= 0 {
		t.Fatalf("stats during the outage: %+v", st)
	}
	s.Close() // the node stops (or crashes) with the uploads pending

	s2 := testStore(t, s3, dir, func(c *Config) { c.KeepLocal = 0 })
	if st := s2.Stats(); st.Pending != 2 {
		t.Fatalf("after restart %d pending, want 2", st.Pending)
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Fatal("the file was removed before its upload")
	}
	s3.start()
	s2.Start()
	testwait.Until(t, 20*time.Second, "uploads done after S3 returned", func() bool { return s2.Stats().Uploads == 2 })
	if got := objectSHA(t, s2, "reel/room/room_20261201T000000Z.mkv"); got != sum {
		t.Fatalf("object sha256 %s, file %s", got, sum)
	}
	// keep_local 0: both local files go once both are verified.
	testwait.Until(t, 5*time.Second, "local copies removed", func() bool {
		_, e1 := os.Stat(in.Path)
		_, e2 := os.Stat(in.Path + ".json")
		return os.IsNotExist(e1) && os.IsNotExist(e2)
	})
}

// TestCorruptUploadNotTrusted: an object that does not read back as the
// file was (a byte changed on the way) is not accepted: the upload is
// retried and the local file kept until a verified copy exists.
func TestCorruptUploadNotTrusted(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s3.corrupt.Store(true)
	removed := atomic.Int64{}
	s := testStore(t, s3, dir, func(c *Config) {
		c.KeepLocal = 0
		c.Remove = func(p string) error { removed.Add(1); return os.Remove(p) }
	})
	in, sum := recording(t, dir, "desk", 256<<10)
	if err := s.Enqueue(in.Path); err != nil {
		t.Fatal(err)
	}
	s.Start()
	testwait.Until(t, 10*time.Second, "the corrupted upload refused", func() bool { return s.Stats().Failures >= 1 })
	if s.Stats().Uploads != 0 || removed.Load() != 0 {
		t.Fatalf("a corrupted upload was accepted: %+v, removed %d", s.Stats(), removed.Load())
	}
	if _, err := os.Stat(in.Path); err != nil {
		t.Fatal("the file was removed although no verified copy exists")
	}
	s3.corrupt.Store(false)
	testwait.Until(t, 20*time.Second, "the retry verified", func() bool { return s.Stats().Uploads == 1 })
	if got := objectSHA(t, s, "reel/desk/desk_20261201T000000Z.mkv"); got != sum {
		t.Fatalf("object sha256 %s, file %s", got, sum)
	}
}

// TestDeleteFromBucket: deleting a recording removes its objects.
func TestDeleteFromBucket(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s := testStore(t, s3, dir, nil)
	in, _ := recording(t, dir, "gone", 64<<10)
	if err := s.EnqueueRecording(in); err != nil {
		t.Fatal(err)
	}
	s.Start()
	testwait.Until(t, 10*time.Second, "uploaded", func() bool { return s.Stats().Uploads == 2 })
	if err := s.DeleteLocalUpload(context.Background(), in.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.StatObject(context.Background(), "archive", "reel/gone/gone_20261201T000000Z.mkv", minio.StatObjectOptions{}); err == nil {
		t.Fatal("the object is still in the bucket")
	}
	if _, ok := s.Lookup(context.Background(), in.ID); ok {
		t.Fatal("the archive still lists the deleted recording")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{
		{Dir: dir},
		{Bucket: "b"},
		{Bucket: "b", Dir: dir, Endpoint: "127.0.0.1:8333"},
		{Bucket: "b", Dir: dir, PartSize: 1 << 20},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
	s := testStore(t, newFakeS3(t), dir, nil)
	if err := s.Enqueue("/etc/passwd"); err == nil || !strings.Contains(err.Error(), "not inside") {
		t.Fatalf("queued a file outside the recordings directory: %v", err)
	}
}

// TestBucketRetention: recordings.max_age applies to the bucket: an old
// recording's file and sidecar are deleted there, a recent one is kept.
func TestBucketRetention(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s := testStore(t, s3, dir, func(c *Config) { c.MaxAge = 48 * time.Hour })
	old, _ := recording(t, dir, "old", 32<<10) // ends 2026-12-01T00:01Z
	recent, _ := recording(t, dir, "recent", 32<<10)
	recent.Start, recent.End = time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	side, _ := json.Marshal(recent)
	if err := os.WriteFile(recent.Path+".json", side, 0o644); err != nil {
		t.Fatal(err)
	}
	old.Start, old.End = time.Now().Add(-72*time.Hour), time.Now().Add(-71*time.Hour)
	side, _ = json.Marshal(old)
	if err := os.WriteFile(old.Path+".json", side, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, in := range []recorder.Info{old, recent} {
		if err := s.EnqueueRecording(in); err != nil {
			t.Fatal(err)
		}
	}
	s.Start()
	testwait.Until(t, 10*time.Second, "uploaded", func() bool { return s.Stats().Uploads == 4 })
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone := s.EnforceRetention(context.Background())
	if len(gone) != 1 || gone[0].ID != old.ID {
		t.Fatalf("retention deleted %+v, want only %s", gone, old.ID)
	}
	for key, want := range map[string]bool{
		"reel/old/old_20261201T000000Z.mkv": false, "reel/old/old_20261201T000000Z.mkv.json": false,
		"reel/recent/recent_20261201T000000Z.mkv": true, "reel/recent/recent_20261201T000000Z.mkv.json": true,
	} {
		_, err := s.client.StatObject(context.Background(), "archive", key, minio.StatObjectOptions{})
		if (err == nil) != want {
			t.Errorf("%s: in the bucket %v, want %v", key, err == nil, want)
		}
	}
}

// TestKeptDocuments: a meeting's manifest is uploaded through the queue,
// stays local with keep_local 0, is uploaded again when it changes, and
// the index keeps its content; a hold written now reads back, blocks the
// bucket's retention of its recording, and goes; a folder goes whole.
func TestKeptDocuments(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	var s *Store
	s = testStore(t, s3, dir, func(c *Config) {
		c.KeepLocal = 0
		c.MaxAge = time.Hour
		c.Documents = func(rel string) bool {
			return filepath.Base(rel) == "manifest.json" || filepath.Base(rel) == "hold.json"
		}
		c.Protect = func(ctx context.Context, in recorder.Info) string {
			if _, err := s.Document(ctx, in.Meeting+"/"+in.Occurrence+"/hold.json"); err == nil {
				return "held"
			}
			return ""
		}
	})
	ctx := context.Background()
	folder := filepath.Join(dir, "board", "board_20261201T000000Z")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(folder, "manifest.json")
	if err := os.WriteFile(manifest, []byte(`{"v":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueKept(manifest); err != nil {
		t.Fatal(err)
	}
	s.Start()
	rel := "board/board_20261201T000000Z/manifest.json"
	testwait.Until(t, 10*time.Second, "the manifest uploaded", func() bool { return string(s.Documents()[rel]) == `{"v":1}` })
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(manifest); err != nil {
		t.Fatalf("the kept manifest was removed locally: %v", err)
	}
	// A repair rewrites it: queued again, the bucket follows.
	if err := os.WriteFile(manifest, []byte(`{"v":2, "repaired": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueKept(manifest); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the changed manifest uploaded", func() bool {
		b, err := s.Document(ctx, rel)
		return err == nil && string(b) == `{"v":2, "repaired": true}`
	})
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := string(s.Documents()[rel]); got != `{"v":2, "repaired": true}` {
		t.Fatalf("indexed manifest %q", got)
	}

	// A recording of the occurrence, old enough for retention, and a hold.
	in, _ := recording(t, dir, "board", 4<<10)
	in.Start, in.End = time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour)
	in.Meeting, in.Occurrence = "board", "board_20261201T000000Z"
	side, _ := json.Marshal(in)
	if err := os.WriteFile(in.Path+".json", side, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueRecording(in); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the recording uploaded", func() bool { return s.Stats().Uploads >= 4 })
	hold := "board/board_20261201T000000Z/hold.json"
	if _, err := s.Document(ctx, hold); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no hold yet: %v, want fs.ErrNotExist", err)
	}
	if err := s.PutDocument(ctx, hold, []byte(`{"reason":"case 1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if gone := s.EnforceRetention(ctx); len(gone) != 0 {
		t.Fatalf("retention deleted a held recording: %+v", gone)
	}
	if err := s.DeleteDocument(ctx, hold); err != nil {
		t.Fatal(err)
	}
	if gone := s.EnforceRetention(ctx); len(gone) != 1 {
		t.Fatalf("retention after the hold went: %+v, want the recording", gone)
	}
	if err := s.DeleteFolder(ctx, "board/board_20261201T000000Z"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Document(ctx, rel); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the manifest after DeleteFolder: %v", err)
	}
	if _, ok := s.Documents()[rel]; ok {
		t.Fatal("the index still has the deleted folder's manifest")
	}
}

// TestEditsDuringListing: what this node puts in or deletes from the
// bucket while a listing is under way stays in the index when that
// listing, which does not show it, replaces the index.
func TestEditsDuringListing(t *testing.T) {
	s3, dir := newFakeS3(t), t.TempDir()
	s := testStore(t, s3, dir, func(c *Config) {
		c.Documents = func(rel string) bool { return filepath.Ext(rel) == ".json" }
	})
	ctx := context.Background()
	manifest, hold := "m/m_20261201T000000Z/manifest.json", "m/m_20261201T000000Z/hold.json"
	if err := s.PutDocument(ctx, manifest, []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	g := &gate{reached: make(chan struct{}), release: make(chan struct{})}
	s3.listGate.Store(g)
	listed := make(chan error, 1)
	go func() { listed <- s.Refresh(ctx) }()
	<-g.reached // the listing holds the manifest and no hold
	if err := s.PutDocument(ctx, hold, []byte(`{"reason":"case 1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDocument(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-listed; err != nil {
		t.Fatal(err)
	}
	docs := s.Documents()
	if string(docs[hold]) != `{"reason":"case 1"}` {
		t.Errorf("the hold put during the listing is not in the index: %q", docs[hold])
	}
	if _, ok := docs[manifest]; ok {
		t.Error("the manifest deleted during the listing is back in the index")
	}
	// The next listing shows both changes itself; nothing is kept for it.
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if docs := s.Documents(); string(docs[hold]) != `{"reason":"case 1"}` || docs[manifest] != nil {
		t.Errorf("after the next listing: %q", docs)
	}
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	if len(s.index.edits) != 0 || len(s.index.listings) != 0 {
		t.Errorf("%d edits and %d listings kept after the listings ended", len(s.index.edits), len(s.index.listings))
	}
}
