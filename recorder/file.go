package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// clusterID is the EBML ID of a Matroska Cluster. ebml-go writes an
// element's ID in a Write call of its own, and a Cluster (written with
// unknown size) as ID, size, then its children, so a Write of exactly these
// four bytes is where a new cluster begins.
var clusterID = []byte{0x1f, 0x43, 0xb6, 0x75}

const (
	// syncInterval bounds how often the file is fsynced.
	syncInterval = 2 * time.Second
	// maxBuffered bounds the memory held for one cluster should the
	// cluster logic ever fail to cut one (a 2 s cluster is a few MB).
	maxBuffered = 64 << 20
)

// osFile is the part of *os.File a partFile uses; tests replace it to
// inject a full disk.
type osFile interface {
	Write(b []byte) (int, error)
	WriteAt(b []byte, off int64) (int, error)
	Sync() error
	Close() error
}

// partFile makes a recording crash safe. It keeps the bytes of the cluster
// being written in memory and hands them to the OS in one write when the
// next cluster begins, so a kill leaves whole clusters on disk rather than
// a torn block (only a kill during that write itself can cut the cluster
// being written, which the kernel copies a chunk at a time; readers and
// repair stop at its last whole frame). It never returns an error to ebml-go (whose goroutine would
// die and leave later frame writes blocked forever): the first error is
// kept, writing stops, and Err reports it.
type partFile struct {
	f osFile

	mu       sync.Mutex
	buf      []byte
	flushed  int64
	err      error
	lastSync time.Time
	closed   bool
}

func newPartFile(f osFile) *partFile {
	return &partFile{f: f, lastSync: time.Now()}
}

// Write buffers b, first flushing the previous cluster if b starts a new one.
func (p *partFile) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || p.closed {
		return len(b), nil
	}
	if bytes.Equal(b, clusterID) && len(p.buf) > 0 {
		p.flushLocked()
		p.syncLocked(false)
	}
	p.buf = append(p.buf, b...)
	if len(p.buf) > maxBuffered {
		p.flushLocked()
	}
	return len(b), nil
}

// WriteAt flushes what is buffered, then writes b at off (ebml-go uses it
// for Cues and Duration when the file is finalized).
func (p *partFile) WriteAt(b []byte, off int64) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || p.closed {
		return len(b), nil
	}
	p.flushLocked()
	if _, err := p.f.WriteAt(b, off); err != nil {
		p.err = err
	}
	return len(b), nil
}

// Close flushes, fsyncs and closes the file. Safe twice.
func (p *partFile) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.flushLocked()
	p.syncLocked(true)
	p.closed = true
	if err := p.f.Close(); err != nil && p.err == nil {
		p.err = err
	}
	return nil
}

func (p *partFile) flushLocked() {
	if p.err != nil || len(p.buf) == 0 {
		return
	}
	n, err := p.f.Write(p.buf)
	p.flushed += int64(n)
	p.buf = p.buf[:0]
	if err != nil {
		p.err = err
	}
}

func (p *partFile) syncLocked(force bool) {
	if p.err != nil || (!force && time.Since(p.lastSync) < syncInterval) {
		return
	}
	p.lastSync = time.Now()
	if err := p.f.Sync(); err != nil {
		p.err = err
	}
}

// Err is the first error writing the file, or nil.
func (p *partFile) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Size is the number of bytes written so far, buffered or not.
func (p *partFile) Size() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushed + int64(len(p.buf))
}

// openPart creates a new file for writing; it fails if the name exists.
func openPart(name string) (osFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// fileSHA256 is the hex SHA-256 of a file. A recording's is taken when it
// is final, by reading it back (from the page cache, just written): it
// cannot be taken while writing, since Matroska's header is rewritten at
// the end (Duration, the Cues' place).
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
