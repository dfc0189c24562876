// Package storage uploads finished recordings and their sidecars to an
// S3-compatible bucket, verifies each object (size and SHA-256, read
// back), and only then lets the local copy go, after Config.KeepLocal.
// Pending uploads are files on disk, so a crash or an S3 outage loses
// none: they are retried with backoff and taken up again at start.
//
// Files: storage.go the Store and its lifecycle, queue.go the jobs on
// disk, upload.go one upload and its verification, bucket.go reading
// the bucket back (the cluster-wide archive), metrics.go.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/reel-gateway/reel/recorder"
)

// Defaults.
const (
	// DefaultKeepLocal keeps the local copy this long after its upload
	// was verified.
	DefaultKeepLocal = 24 * time.Hour
	// DefaultPartSize is the multipart upload's part size: files larger
	// than this go up in parts.
	DefaultPartSize = 8 << 20
	// queueDirName is the queue's folder inside the recordings directory;
	// the recorder's catalog skips names that start with a dot.
	queueDirName = ".uploads"
	// maxBackoff caps the wait between two attempts of one upload.
	maxBackoff = 30 * time.Second
)

// Config configures uploads.
type Config struct {
	// Endpoint is the S3 endpoint URL ("http://127.0.0.1:8333",
	// "https://s3.eu-west-1.amazonaws.com"); empty means AWS S3.
	Endpoint string
	Region   string
	Bucket   string
	// Prefix is put in front of every key ("reel/").
	Prefix string
	// AccessKey and SecretKey; when empty, the usual AWS environment
	// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the shared
	// credentials file (~/.aws/credentials).
	AccessKey, SecretKey string
	// Dir is the recordings directory: keys are paths relative to it, and
	// the queue lives in Dir/.uploads.
	Dir string
	// KeepLocal is how long a local file stays after its upload was
	// verified; 0 removes it at once. Negative keeps it forever.
	KeepLocal time.Duration
	// PartSize of multipart uploads (default DefaultPartSize).
	PartSize uint64
	// Remove deletes a local recording file and its sidecar once both
	// uploads were verified and KeepLocal has passed (the recorder's
	// Delete, so its catalog follows); nil removes the two files.
	Remove func(path string) error
	// MaxAge and MaxTotalSize are recordings.max_age and
	// max_total_size, applied to the bucket too (retention.go); 0: off.
	MaxAge       time.Duration
	MaxTotalSize uint64
	// Protect, if set, may keep a recording of the bucket from its
	// retention (a meeting's legal hold): a non-empty answer says why.
	// It is asked right before each deletion.
	Protect func(context.Context, recorder.Info) string
	// Documents, if set, picks the small objects (by path relative to
	// the recordings directory) whose content the index keeps at each
	// listing: meetings' manifests and holds, audit entries.
	Documents func(rel string) bool
	// OnListed, if set, runs after each listing of the bucket that
	// worked (a node applies what other nodes did).
	OnListed func()
	// Node is written into each object's metadata (x-amz-meta-node).
	Node   string
	Logger *slog.Logger
}

// Store is the upload queue and its worker.
type Store struct {
	cfg    Config
	client *minio.Client
	queue  *queue
	log    *slog.Logger

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	bucketOK atomic.Bool
	metrics  metrics
	index    bucketIndex
}

// New checks cfg, opens the queue and makes the S3 client (which does
// not talk to S3 yet).
func New(cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("storage.s3.bucket: no bucket")
	}
	if cfg.Dir == "" {
		return nil, errors.New("storage: no recordings directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("storage: part size %d is below S3's minimum of 5 MiB", cfg.PartSize)
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	cfg.Dir = dir
	q, err := openQueue(filepath.Join(dir, queueDirName))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{cfg: cfg, client: client, queue: q, log: cfg.Logger.With("component", "storage", "bucket", cfg.Bucket),
		wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	s.index.init()
	return s, nil
}

// newClient makes the minio-go client for cfg's endpoint and credentials.
func newClient(cfg Config) (*minio.Client, error) {
	endpoint, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("storage.s3.endpoint: want an http(s) URL like http://127.0.0.1:8333, got %q", cfg.Endpoint)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	if cfg.AccessKey == "" {
		// The environment, then the shared file; not the EC2 metadata
		// service, which a node outside AWS must never be made to call.
		creds = credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}})
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: creds, Secure: secure, Region: region})
	if err != nil {
		return nil, fmt.Errorf("storage: S3 client for %s: %w", endpoint, err)
	}
	return c, nil
}

// Start runs the upload worker: the jobs left by an earlier run first.
func (s *Store) Start() {
	s.wg.Add(2)
	go s.run()
	go s.runIndex()
	s.log.Info("uploads to S3 on", "endpoint", s.cfg.Endpoint, "prefix", s.cfg.Prefix, "pending", s.queue.pendingCount(),
		"keep_local", s.cfg.KeepLocal)
}

// Close stops the worker; an upload in flight is abandoned and taken up
// again at the next start. Safe to call twice.
func (s *Store) Close() {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
}

// rel is path relative to the recordings directory, with '/'.
func (s *Store) rel(path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(s.cfg.Dir, path)
	}
	rel, err := filepath.Rel(s.cfg.Dir, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("storage: %s is not inside the recordings directory", path)
	}
	return filepath.ToSlash(rel), nil
}

// Enqueue adds a finished file (absolute, or relative to the recordings
// directory) to the upload queue, durably, and wakes the worker. A file
// already queued, or uploaded unchanged, is not queued again.
func (s *Store) Enqueue(path string) error { return s.enqueue(path, false) }

// EnqueueKept queues a file as Enqueue does, but its local copy stays
// after the upload (storage.keep_local does not apply): a meeting's
// manifest and its checksum, an audit entry. A file changed after its
// upload (a manifest rewritten by a repair or a deletion) is queued
// again by the next call.
func (s *Store) EnqueueKept(path string) error { return s.enqueue(path, true) }

func (s *Store) enqueue(path string, keep bool) error {
	rel, err := s.rel(path)
	if err != nil {
		return err
	}
	added, err := s.queue.add(rel, keep)
	if err != nil {
		return fmt.Errorf("storage: queueing %s: %w", rel, err)
	}
	if added {
		s.log.Debug("upload queued", "file", rel)
		s.poke()
	}
	return nil
}

func (s *Store) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// EnqueueRecording queues a final recording (finished, or repaired after
// a crash) and its sidecar. A failed or unfinished one stays local only.
func (s *Store) EnqueueRecording(in recorder.Info) error {
	if in.State != recorder.StateFinished && in.State != recorder.StateRepaired {
		return nil
	}
	if err := s.Enqueue(in.Path); err != nil {
		return err
	}
	if _, err := os.Stat(in.Path + ".json"); err == nil {
		return s.Enqueue(in.Path + ".json")
	}
	return nil
}
