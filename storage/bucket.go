package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/reel-gateway/reel/recorder"
)

// The bucket is the archive of the whole cluster: every node uploads its
// recordings with their sidecars, so any node can list them (by the
// sidecars) and serve them.

// indexEvery is how often the bucket's sidecars are listed again.
const indexEvery = 30 * time.Second

// Object is a recording in the bucket: its metadata (the sidecar's) and
// the key of its file.
type Object struct {
	recorder.Info
	Key string
}

type bucketIndex struct {
	mu      sync.Mutex
	byID    map[string]Object
	sidecar map[string]string // sidecar key -> ETag read
	docs    map[string]document
	listed  time.Time
	err     error

	// The changes this node made while a listing was under way, which
	// that listing may not show: they are applied again over it before
	// it replaces the index. Without them a hold put during a listing
	// would vanish from the index until the next one, and retention runs
	// right after each listing.
	edits    []indexEdit
	seq      uint64   // the last edit's number
	listings []uint64 // the seq at which each listing under way began
}

// indexEdit is a change this node made to the bucket, as it changes the
// index.
type indexEdit struct {
	seq   uint64
	apply func(byID map[string]Object, docs map[string]document)
}

// document is a small object the index keeps the content of
// (Config.Documents), by its path relative to the recordings directory.
type document struct {
	etag string
	data []byte
}

func (x *bucketIndex) init() {
	x.byID, x.sidecar, x.docs = map[string]Object{}, map[string]string{}, map[string]document{}
}

// edit applies a change this node made to the bucket to the index now,
// and keeps it for the listings under way.
func (x *bucketIndex) edit(apply func(byID map[string]Object, docs map[string]document)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	apply(x.byID, x.docs)
	if len(x.listings) > 0 {
		x.seq++
		x.edits = append(x.edits, indexEdit{seq: x.seq, apply: apply})
	}
}

// beginListing notes a listing under way and returns its mark for
// endListing.
func (x *bucketIndex) beginListing() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.listings = append(x.listings, x.seq)
	return x.seq
}

// endListing applies the edits made since the listing marked mark began
// to what it built (nothing when byID is nil: it failed) and forgets
// the edits no listing under way still needs. Called with mu held.
func (x *bucketIndex) endListing(mark uint64, byID map[string]Object, docs map[string]document) {
	if byID != nil {
		for _, e := range x.edits {
			if e.seq > mark {
				e.apply(byID, docs)
			}
		}
	}
	if i := slices.Index(x.listings, mark); i >= 0 {
		x.listings = slices.Delete(x.listings, i, i+1)
	}
	if len(x.listings) == 0 {
		x.edits = nil
		return
	}
	oldest := slices.Min(x.listings)
	x.edits = slices.DeleteFunc(x.edits, func(e indexEdit) bool { return e.seq <= oldest })
}

// indexLocalSidecar adds a sidecar this node has just verified in the
// bucket to the index, without waiting for the next listing.
func (s *Store) indexLocalSidecar(d *done) {
	if !strings.HasSuffix(d.Path, ".json") {
		return
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(d.Path)))
	if err != nil {
		return
	}
	var in recorder.Info
	if json.Unmarshal(b, &in) != nil || in.ID == "" {
		return
	}
	o := Object{Info: in, Key: strings.TrimSuffix(d.Key, ".json")}
	s.index.edit(func(byID map[string]Object, _ map[string]document) { byID[in.ID] = o })
}

// Refresh lists the bucket's sidecars and reads those it has not read.
func (s *Store) Refresh(ctx context.Context) error {
	mark := s.index.beginListing()
	published := false
	defer func() {
		if !published {
			s.index.mu.Lock()
			s.index.endListing(mark, nil, nil)
			s.index.mu.Unlock()
		}
	}()
	keys := map[string]minio.ObjectInfo{}
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.cfg.Prefix, Recursive: true}) {
		if obj.Err != nil && minio.ToErrorResponse(obj.Err).Code == "NoSuchBucket" {
			break // nothing uploaded yet: the first upload creates it
		}
		if obj.Err != nil {
			s.index.mu.Lock()
			s.index.err = obj.Err
			s.index.mu.Unlock()
			return fmt.Errorf("listing bucket %s: %w", s.cfg.Bucket, obj.Err)
		}
		keys[obj.Key] = obj
	}
	byID := map[string]Object{}
	seen := map[string]string{}
	// What the index holds, copied: this node's uploads change it while
	// the sidecars are read.
	cached := map[string]Object{}
	s.index.mu.Lock()
	for _, o := range s.index.byID {
		cached[o.Key+".json"] = o
	}
	oldSeen := s.index.sidecar
	s.index.mu.Unlock()
	for key, obj := range keys {
		media := strings.TrimSuffix(key, ".json")
		if !strings.HasSuffix(key, ".json") || strings.Contains(key, "/"+queueDirName+"/") {
			continue
		}
		if _, ok := keys[media]; !ok {
			continue // the file itself is not (yet) there
		}
		if o, ok := cached[key]; ok && oldSeen[key] == obj.ETag {
			byID[o.ID], seen[key] = o, obj.ETag
			continue
		}
		in, err := s.readSidecar(ctx, key)
		if err != nil {
			s.log.Warn("skipping an unreadable sidecar in the bucket", "key", key, "err", err)
			continue
		}
		in.Size = keys[media].Size
		byID[in.ID], seen[key] = Object{Info: in, Key: media}, obj.ETag
	}
	docs := s.readDocuments(ctx, keys)
	s.index.mu.Lock()
	s.index.endListing(mark, byID, docs)
	s.index.byID, s.index.sidecar, s.index.docs, s.index.listed, s.index.err = byID, seen, docs, time.Now(), nil
	s.index.mu.Unlock()
	published = true
	return nil
}

// readDocuments reads the documents among keys that the index does not
// hold at the same ETag.
func (s *Store) readDocuments(ctx context.Context, keys map[string]minio.ObjectInfo) map[string]document {
	docs := map[string]document{}
	if s.cfg.Documents == nil {
		return docs
	}
	s.index.mu.Lock()
	old := make(map[string]document, len(s.index.docs))
	for rel, d := range s.index.docs {
		old[rel] = d
	}
	s.index.mu.Unlock()
	for key, obj := range keys {
		rel, ok := strings.CutPrefix(key, s.cfg.Prefix)
		if !ok || !s.cfg.Documents(rel) {
			continue
		}
		if d, ok := old[rel]; ok && d.etag == obj.ETag {
			docs[rel] = d
			continue
		}
		data, err := s.Document(ctx, rel)
		if err != nil {
			s.log.Warn("skipping an unreadable document in the bucket", "key", key, "err", err)
			continue
		}
		docs[rel] = document{etag: obj.ETag, data: data}
	}
	return docs
}

// indexLocalDocument adds a document this node has just verified in
// the bucket to the index, without waiting for the next listing.
func (s *Store) indexLocalDocument(d *done) {
	if s.cfg.Documents == nil || !s.cfg.Documents(d.Path) {
		return
	}
	data, err := os.ReadFile(filepath.Join(s.cfg.Dir, filepath.FromSlash(d.Path)))
	if err != nil {
		return
	}
	s.index.edit(func(_ map[string]Object, docs map[string]document) { docs[d.Path] = document{data: data} })
}

// Documents are the documents of the bucket (Config.Documents) as last
// listed, by path relative to the recordings directory.
func (s *Store) Documents() map[string][]byte {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	out := make(map[string][]byte, len(s.index.docs))
	for rel, d := range s.index.docs {
		out[rel] = d.data
	}
	return out
}

// ListErr is the error of the bucket's last listing, nil when it
// worked: the archive shows what it listed before.
func (s *Store) ListErr() error {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	return s.index.err
}

// Document reads the object at rel (relative to the recordings
// directory) now; fs.ErrNotExist when the bucket has none.
func (s *Store) Document(ctx context.Context, rel string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.cfg.Prefix+rel, minio.GetObjectOptions{})
	if err != nil {
		return nil, notExist(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(io.LimitReader(obj, 16<<20))
	if err != nil {
		return nil, notExist(err)
	}
	return data, nil
}

// PutDocument writes a small object at rel now, and verifies it (size
// and SHA-256 read back) before it reports it written.
func (s *Store) PutDocument(ctx context.Context, rel string, data []byte) error {
	if err := s.ensureBucket(ctx); err != nil {
		return err
	}
	key := s.cfg.Prefix + rel
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	opts := minio.PutObjectOptions{ContentType: contentType(rel), DisableContentSha256: true,
		UserMetadata: map[string]string{"sha256": hexSum, "node": s.cfg.Node}}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), opts); err != nil {
		return fmt.Errorf("writing %s to the bucket: %w", key, err)
	}
	if err := s.verify(ctx, key, int64(len(data)), hexSum); err != nil {
		return err
	}
	s.index.edit(func(_ map[string]Object, docs map[string]document) { docs[rel] = document{data: data} })
	return nil
}

// DeleteDocument removes the object at rel now (no error if absent).
func (s *Store) DeleteDocument(ctx context.Context, rel string) error {
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.cfg.Prefix+rel, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("deleting %s from the bucket: %w", s.cfg.Prefix+rel, err)
	}
	s.queue.forget(rel)
	s.index.edit(func(_ map[string]Object, docs map[string]document) { delete(docs, rel) })
	return nil
}

// OpenFile opens the object at rel for reading, with Seek (ranged GETs);
// fs.ErrNotExist when the bucket has none.
func (s *Store) OpenFile(ctx context.Context, rel string) (*minio.Object, int64, error) {
	obj, st, err := s.Open(ctx, s.cfg.Prefix+rel)
	if err != nil {
		return nil, 0, notExist(err)
	}
	return obj, st.Size, nil
}

// DeleteFolder removes every object under the folder rel (a meeting
// occurrence's: its recordings, sidecars, manifest) and forgets their
// uploads, pending ones included.
func (s *Store) DeleteFolder(ctx context.Context, rel string) error {
	prefix := s.cfg.Prefix + strings.TrimSuffix(rel, "/") + "/"
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			if minio.ToErrorResponse(obj.Err).Code == "NoSuchBucket" {
				break
			}
			return fmt.Errorf("listing %s in the bucket: %w", prefix, obj.Err)
		}
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("deleting %s from the bucket: %w", obj.Key, err)
		}
	}
	s.queue.forgetUnder(strings.TrimPrefix(prefix, s.cfg.Prefix))
	s.index.edit(func(byID map[string]Object, docs map[string]document) {
		for id, o := range byID {
			if strings.HasPrefix(o.Key, prefix) {
				delete(byID, id)
			}
		}
		for d := range docs {
			if strings.HasPrefix(s.cfg.Prefix+d, prefix) {
				delete(docs, d)
			}
		}
	})
	return nil
}

// notExist turns S3's "no such key" into fs.ErrNotExist.
func notExist(err error) error {
	if code := minio.ToErrorResponse(err).Code; code == "NoSuchKey" || code == "NoSuchBucket" {
		return fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	return err
}

func (s *Store) readSidecar(ctx context.Context, key string) (recorder.Info, error) {
	var in recorder.Info
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return in, err
	}
	defer obj.Close()
	if err := json.NewDecoder(obj).Decode(&in); err != nil {
		return in, err
	}
	if !recorder.ValidID(in.ID) {
		return in, fmt.Errorf("no valid recording id in it")
	}
	return in, nil
}

// Recordings are the recordings in the bucket as last listed.
func (s *Store) Recordings() []Object {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	out := make([]Object, 0, len(s.index.byID))
	for _, o := range s.index.byID {
		out = append(out, o)
	}
	return out
}

// Lookup returns a recording of the bucket by id; when the index does not
// know it, the bucket is listed again first (at most every few seconds).
func (s *Store) Lookup(ctx context.Context, id string) (Object, bool) {
	s.index.mu.Lock()
	o, ok := s.index.byID[id]
	stale := time.Since(s.index.listed) > 3*time.Second
	s.index.mu.Unlock()
	if ok || !stale {
		return o, ok
	}
	if err := s.Refresh(ctx); err != nil {
		return Object{}, false
	}
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	o, ok = s.index.byID[id]
	return o, ok
}

// Open opens an object for reading, with Seek (ranged GETs) for Range
// requests.
func (s *Store) Open(ctx context.Context, key string) (*minio.Object, minio.ObjectInfo, error) {
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, minio.ObjectInfo{}, err
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, minio.ObjectInfo{}, err
	}
	return obj, st, nil
}

// PresignedURL is a URL that downloads key without credentials for ttl.
func (s *Store) PresignedURL(ctx context.Context, key, filename string, ttl time.Duration) (*url.URL, error) {
	params := url.Values{}
	if filename != "" {
		params.Set("response-content-disposition", fmt.Sprintf("attachment; filename=%q", filename))
	}
	return s.client.PresignedGetObject(ctx, s.cfg.Bucket, key, ttl, params)
}

// Delete removes a recording's objects (file and sidecar) from the
// bucket and forgets its upload records.
func (s *Store) Delete(ctx context.Context, o Object) error {
	for _, key := range []string{o.Key, o.Key + ".json"} {
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("deleting %s from the bucket: %w", key, err)
		}
		s.queue.forget(strings.TrimPrefix(key, s.cfg.Prefix))
	}
	s.index.mu.Lock()
	delete(s.index.byID, o.ID)
	s.index.mu.Unlock()
	return nil
}

// DeleteLocalUpload removes the bucket's copy of a local recording being
// deleted (path is its file), if it was uploaded.
func (s *Store) DeleteLocalUpload(ctx context.Context, path string) error {
	rel, err := s.rel(path)
	if err != nil {
		return err
	}
	_ = s.queue.drop(rel)
	_ = s.queue.drop(rel + ".json")
	d, ok := s.queue.doneRecord(rel)
	if !ok {
		return nil
	}
	id := recorderID(rel)
	return s.Delete(ctx, Object{Info: recorder.Info{ID: id}, Key: d.Key})
}

// recorderID is the id the recorder gives a file (its base name without
// extension).
func recorderID(rel string) string {
	base := filepath.Base(rel)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// runIndex keeps the index current.
func (s *Store) runIndex() {
	defer s.wg.Done()
	t := time.NewTicker(indexEvery)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, indexEvery)
		if err := s.Refresh(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("cannot list the bucket; the archive shows what it last saw", "err", err)
		} else if err == nil {
			if s.cfg.OnListed != nil {
				s.cfg.OnListed()
			}
			s.EnforceRetention(ctx)
		}
		cancel()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}
