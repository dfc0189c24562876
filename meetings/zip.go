package meetings

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// copyBuffer is the buffer each file is streamed through: large enough
// that a zip streams at disk speed, small enough to be constant memory.
const copyBuffer = 1 << 20

// WriteZip streams occurrence id to w as a store-only zip (no compression:
// media does not compress, and a store-only zip streams at disk speed),
// without a temporary file: under "{id}/", the manifest, its checksum
// once ended, every recording file that exists, the finished exports'
// files, and last SHA256SUMS with
// the SHA-256 of each, computed as they are written, for `sha256sum -c`.
// A file whose checksum differs from the manifest's is logged.
func (m *Manager) WriteZip(w io.Writer, id string) error {
	oc, err := m.Get(id)
	if err != nil {
		return err
	}
	ctx := context.Background()
	z := newZipper(w, id+"/")
	if err := z.addFile(m.opener(ctx, oc, manifestName), manifestName, oc.Manifest.Start); err != nil {
		return err
	}
	if oc.SHA256 != "" {
		if err := z.addFile(m.opener(ctx, oc, checksumName), checksumName, oc.Manifest.End); err != nil {
			return err
		}
	}
	for _, r := range oc.Manifest.Recordings {
		if !zipped(r) {
			continue
		}
		err := z.addFile(m.opener(ctx, oc, r.File), r.File, r.End)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			m.log.Warn("a meeting's recording is missing from its folder", "occurrence", id, "file", r.File)
			continue
		case err != nil:
			return err
		}
		if sum := z.last; r.SHA256 != "" && r.SHA256 != sum {
			m.log.Error("a meeting's file does not match the checksum its manifest gives", "occurrence", id, "file", r.File, "manifest", r.SHA256, "file_sha256", sum)
		}
	}
	for _, e := range oc.Manifest.Exports {
		for _, f := range e.Files {
			err := z.addFile(m.opener(ctx, oc, f.File), f.File, e.Finished)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			if err == nil && f.SHA256 != "" && f.SHA256 != z.last {
				m.log.Error("a meeting's export does not match the checksum its manifest gives", "occurrence", id, "file", f.File, "manifest", f.SHA256, "file_sha256", z.last)
			}
		}
	}
	return z.close()
}

// zipped reports whether a recording's file goes into a zip: not one
// deleted, nor one still being written.
func zipped(r Recording) bool { return r.State != "deleted" && r.State != "recording" }

// zipper writes store-only entries under one folder and keeps each one's
// SHA-256 for SHA256SUMS, the last entry.
type zipper struct {
	zw     *zip.Writer
	prefix string
	buf    []byte
	sums   strings.Builder
	last   string // the SHA-256 of the last entry
}

func newZipper(w io.Writer, prefix string) *zipper {
	return &zipper{zw: zip.NewWriter(w), prefix: prefix, buf: make([]byte, copyBuffer)}
}

// add writes one entry named name with what write writes to it.
func (z *zipper) add(name string, modified time.Time, write func(io.Writer) error) error {
	zf, err := z.zw.CreateHeader(&zip.FileHeader{Name: z.prefix + name, Method: zip.Store, Modified: modified})
	if err != nil {
		return err
	}
	h := sha256.New()
	if err := write(io.MultiWriter(zf, h)); err != nil {
		return fmt.Errorf("streaming %s: %w", name, err)
	}
	z.last = hex.EncodeToString(h.Sum(nil))
	fmt.Fprintf(&z.sums, "%s  %s\n", z.last, name)
	return nil
}

// opener opens one file of an occurrence, here or in the archive.
func (m *Manager) opener(ctx context.Context, oc Occurrence, name string) func() (io.ReadSeekCloser, error) {
	return func() (io.ReadSeekCloser, error) { return m.Open(ctx, oc, name) }
}

// addFile adds the file open opens as name. A missing file is reported
// (fs.ErrNotExist) before anything is written.
func (z *zipper) addFile(open func() (io.ReadSeekCloser, error), name string, modified time.Time) error {
	f, err := open()
	if err != nil {
		return err
	}
	defer f.Close()
	return z.add(name, modified, func(w io.Writer) error {
		_, err := io.CopyBuffer(w, f, z.buf)
		return err
	})
}

// close writes SHA256SUMS and the zip's central directory.
func (z *zipper) close() error {
	sums := z.sums.String()
	if err := z.add("SHA256SUMS", time.Now(), func(w io.Writer) error {
		_, err := io.WriteString(w, sums)
		return err
	}); err != nil {
		return err
	}
	return z.zw.Close()
}
