package meetings

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"time"
)

// Export is a finished export of an occurrence, as its manifest lists it:
// the files are part of the meeting (its folder, its zip, its hold).
type Export struct {
	Job      string       `json:"job"`
	Kind     string       `json:"kind"`
	FromMS   int64        `json:"from_ms"`
	ToMS     int64        `json:"to_ms"`
	Finished time.Time    `json:"finished"`
	Files    []ExportFile `json:"files"`
}

// ExportFile is one file of an export.
type ExportFile struct {
	// File is relative to the occurrence's folder.
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// SetExport enters (or replaces) a finished export in occurrence id's
// manifest, whose checksum is written again if it has ended.
func (m *Manager) SetExport(id string, e Export) error {
	return m.editExports(id, func(list []Export) []Export {
		for i := range list {
			if list[i].Job == e.Job {
				list[i] = e
				return list
			}
		}
		return append(list, e)
	})
}

// RemoveExport takes export job out of occurrence id's manifest, if it
// is there.
func (m *Manager) RemoveExport(id, job string) error {
	return m.editExports(id, func(list []Export) []Export {
		out := list[:0]
		for _, e := range list {
			if e.Job != job {
				out = append(out, e)
			}
		}
		return out
	})
}

func (m *Manager) editExports(id string, edit func([]Export) []Export) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.all[id]
	if o == nil {
		return ErrNotFound
	}
	before := slices.Clone(o.man.Exports)
	o.man.Exports = edit(o.man.Exports)
	if len(o.man.Exports) == 0 {
		o.man.Exports = nil
		if len(before) == 0 {
			return nil // nothing changed
		}
	}
	sum, err := o.man.write(o.dir)
	if err != nil {
		return err
	}
	if o.man.State == StateEnded {
		o.sum = sum
	}
	m.shareExportsLocked(o, before)
	return nil
}

// shareExportsLocked puts a change of o's exports into the shared archive
// (S3), when there is one: the files of an export that came are queued
// for upload (their local copies stay, for the job's downloads), those of
// one that went are deleted there, and the manifest goes up again.
func (m *Manager) shareExportsLocked(o *occurrence, before []Export) {
	if m.cfg.Archive == nil {
		return
	}
	now := map[string]bool{}
	for _, e := range o.man.Exports {
		for _, f := range e.Files {
			now[f.File] = true
			if err := m.cfg.Archive.Upload(filepath.Join(o.dir, f.File)); err != nil {
				m.log.Error("a meeting's export is not queued for the archive", "occurrence", o.man.ID, "file", f.File, "error", err)
			}
		}
	}
	var gone []string
	for _, e := range before {
		for _, f := range e.Files {
			if !now[f.File] {
				gone = append(gone, folder(o.man.Meeting, o.man.ID)+"/"+f.File)
			}
		}
	}
	m.uploadLocked(o)
	if len(gone) == 0 {
		return
	}
	id, archive := o.man.ID, m.cfg.Archive
	go func() { // not under the manager's lock: it talks to S3
		for _, p := range gone {
			ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
			err := archive.DeleteDocument(ctx, p)
			cancel()
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				m.log.Warn("a removed export stays in the archive", "occurrence", id, "file", p, "error", err)
			}
		}
	}()
}
