package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// sweepEvery is how often local copies past KeepLocal are looked for.
const sweepEvery = time.Minute

// run uploads the queue one file at a time (so uploads never take more
// than one core from live forwarding), and removes local copies past
// KeepLocal.
func (s *Store) run() {
	defer s.wg.Done()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	s.sweep()
	for s.ctx.Err() == nil {
		j, due := s.queue.next()
		wait := time.Hour
		if j != nil {
			wait = time.Until(due)
		}
		if j != nil && wait <= 0 {
			s.attempt(j)
			continue
		}
		timer := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
		case <-sweep.C:
			s.sweep()
		case <-timer.C:
		}
		timer.Stop()
	}
}

// attempt uploads one job and records the outcome.
func (s *Store) attempt(j *job) {
	log := s.log.With("file", j.Path, "attempt", j.Attempts+1)
	d, err := s.upload(s.ctx, j.Path)
	if d != nil {
		d.Keep = j.Keep
	}
	switch {
	case err == nil:
		if err := s.queue.finish(d); err != nil {
			log.Error("upload verified, but its record could not be written; it will be uploaded again", "err", err)
			s.metrics.failures.Add(1)
			_ = s.queue.failed(j, err, backoff(j.Attempts))
			return
		}
		s.metrics.uploads.Add(1)
		s.metrics.bytes.Add(uint64(d.Size))
		log.Info("uploaded and verified", "key", d.Key, "size", d.Size, "sha256", d.SHA256)
		s.indexLocalSidecar(d)
		s.indexLocalDocument(d)
		// Changed while it was being uploaded (a manifest rewritten):
		// the new content goes up too.
		_ = s.enqueue(j.Path, j.Keep)
		if s.cfg.KeepLocal == 0 && !d.Keep {
			s.maybeRemove(*d)
		}
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("file gone before its upload; dropping the job")
		_ = s.queue.drop(j.Path)
	case s.ctx.Err() != nil:
		log.Info("upload interrupted by shutdown; it resumes at the next start")
	default:
		retry := backoff(j.Attempts)
		s.metrics.failures.Add(1)
		log.Warn("upload failed; retrying", "err", err, "retry_in", retry.Round(time.Millisecond))
		if err := s.queue.failed(j, err, retry); err != nil {
			log.Error("cannot record the failed upload", "err", err)
		}
	}
}

// backoff is the wait after the nth failure: 1 s doubling to maxBackoff,
// with ±20% jitter so nodes that failed together do not retry together.
func backoff(attempts int) time.Duration {
	d := time.Second << min(attempts, 10)
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// upload puts the file at path (relative) into the bucket and verifies it.
func (s *Store) upload(ctx context.Context, path string) (*done, error) {
	full := filepath.Join(s.cfg.Dir, filepath.FromSlash(path))
	f, err := os.Open(full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	sum, err := hashReader(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	key := s.cfg.Prefix + path
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	// An attempt cut by a crash or an outage may have left parts behind.
	_ = s.client.RemoveIncompleteUpload(ctx, s.cfg.Bucket, key)
	// Unsigned payloads (no aws-chunked framing), as over HTTPS: some
	// S3-compatible servers store the framing of streamed parts as data.
	// Integrity is checked by reading the object back (verify).
	opts := minio.PutObjectOptions{ContentType: contentType(path), PartSize: s.cfg.PartSize, DisableContentSha256: true,
		UserMetadata: map[string]string{"sha256": sum, "node": s.cfg.Node}}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, key, f, st.Size(), opts); err != nil {
		return nil, fmt.Errorf("uploading %s: %w", key, err)
	}
	if err := s.verify(ctx, key, st.Size(), sum); err != nil {
		return nil, err
	}
	return &done{Path: path, Key: key, Size: st.Size(), SHA256: sum, ModTime: st.ModTime(), Uploaded: time.Now().UTC()}, nil
}

// verify reads the object back: its size and SHA-256 must be the file's.
func (s *Store) verify(ctx context.Context, key string, size int64, sum string) error {
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return fmt.Errorf("verifying %s: %w", key, err)
	}
	if info.Size != size {
		return fmt.Errorf("verifying %s: the object has %d bytes, the file %d", key, info.Size, size)
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("verifying %s: %w", key, err)
	}
	defer obj.Close()
	got, err := hashReader(obj)
	if err != nil {
		return fmt.Errorf("verifying %s: reading it back: %w", key, err)
	}
	if got != sum {
		return fmt.Errorf("verifying %s: its SHA-256 is %s, the file's %s", key, got, sum)
	}
	return nil
}

func hashReader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ensureBucket creates the bucket the first time it is found missing.
func (s *Store) ensureBucket(ctx context.Context) error {
	if s.bucketOK.Load() {
		return nil
	}
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("checking bucket %s: %w", s.cfg.Bucket, err)
	}
	if !ok {
		if err := s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("bucket %s does not exist and cannot be created: %w", s.cfg.Bucket, err)
		}
		s.log.Info("bucket created")
	}
	s.bucketOK.Store(true)
	return nil
}

func contentType(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".mkv":
		return "video/x-matroska"
	case ".webm":
		return "video/webm"
	case ".json":
		return "application/json"
	}
	if t := mime.TypeByExtension(filepath.Ext(path)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// sweep removes the local copies whose upload was verified more than
// KeepLocal ago.
func (s *Store) sweep() {
	if s.cfg.KeepLocal < 0 {
		return
	}
	for _, d := range s.queue.doneRecords() {
		if !d.Removed && !d.Keep && time.Since(d.Uploaded) >= s.cfg.KeepLocal {
			s.maybeRemove(d)
		}
	}
}

// maybeRemove removes a verified file's local copy once the pair it
// belongs to is in the bucket: a recording goes with its sidecar (Remove
// takes both), so neither leaves before both are verified.
func (s *Store) maybeRemove(d done) {
	if media, isSidecar := strings.CutSuffix(d.Path, ".json"); isSidecar {
		if _, err := os.Stat(filepath.Join(s.cfg.Dir, filepath.FromSlash(media))); err != nil {
			s.removeLocal(d) // a sidecar alone
			return
		}
		md, ok := s.queue.doneRecord(media)
		if !ok || md.Removed {
			return // it goes with its file, once that is verified
		}
		d = md
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, filepath.FromSlash(d.Path+".json"))); err == nil {
		if sc, ok := s.queue.doneRecord(d.Path + ".json"); !ok || sc.Removed {
			return // its sidecar is not in the bucket yet
		}
	}
	if s.removeLocal(d) {
		if _, err := os.Stat(filepath.Join(s.cfg.Dir, filepath.FromSlash(d.Path+".json"))); err != nil {
			_ = s.queue.markRemoved(d.Path + ".json")
		}
	}
}

// removeLocal removes a verified file's local copy (with its sidecar),
// unless it changed since its upload (then it is queued again). It
// reports whether the copy is gone.
func (s *Store) removeLocal(d done) bool {
	full := filepath.Join(s.cfg.Dir, filepath.FromSlash(d.Path))
	st, err := os.Stat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		_ = s.queue.markRemoved(d.Path)
		return true
	case err != nil:
		s.log.Warn("cannot check a local copy before removing it", "file", d.Path, "err", err)
		return false
	case st.Size() != d.Size || !st.ModTime().Equal(d.ModTime):
		s.log.Warn("local file changed after its upload; uploading it again instead of removing it", "file", d.Path)
		_ = s.Enqueue(d.Path)
		return false
	}
	remove := s.cfg.Remove
	if remove == nil {
		remove = removeWithSidecar
	}
	if err := remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("cannot remove the local copy of an uploaded file", "file", d.Path, "err", err)
		return false
	}
	_ = s.queue.markRemoved(d.Path)
	s.log.Info("local copy removed; the bucket holds the verified upload", "file", d.Path, "key", d.Key)
	return true
}

// removeWithSidecar removes a file and the sidecar beside it.
func removeWithSidecar(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	if err := os.Remove(path + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
