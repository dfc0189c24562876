package meetings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

// Archive is the cluster's shared archive, an S3 bucket (storage.Store
// behind an adapter in cmd/reel): the other nodes' occurrences, their
// files, the legal holds and the audit entries every node sees. Paths are
// relative to the recordings directory, with '/'.
type Archive interface {
	// Upload queues a file for upload, durably; its local copy stays.
	Upload(path string) error
	// Documents are the archive's manifests, holds and audit entries
	// (IsDocument) as last listed, by path.
	Documents() map[string][]byte
	// Refresh lists the archive again.
	Refresh(ctx context.Context) error
	// ListErr is the last listing's error, nil when it worked.
	ListErr() error
	// Document reads one now; fs.ErrNotExist when there is none.
	Document(ctx context.Context, path string) ([]byte, error)
	// PutDocument writes one now, verified; DeleteDocument removes one.
	PutDocument(ctx context.Context, path string, data []byte) error
	DeleteDocument(ctx context.Context, path string) error
	// Open opens a file; fs.ErrNotExist when there is none.
	Open(ctx context.Context, path string) (io.ReadSeekCloser, error)
	// DeleteFolder removes every file under a folder.
	DeleteFolder(ctx context.Context, path string) error
}

// ErrArchive wraps a failure of the shared archive: what needs it (a
// hold, a deletion) is not done, and may be tried again.
var ErrArchive = errors.New("the shared archive (S3) did not answer")

// archiveTimeout bounds one exchange with the archive on a request's path.
const archiveTimeout = 10 * time.Second

// archiveBackoff is how long a failed hold read makes the next ones fail
// at once (and keep what they protect).
const archiveBackoff = 5 * time.Second

// auditDir is the folder of audit entries shared through the archive:
// one small file per entry, so nodes never write the same object.
const auditDir = ".audit"

// IsDocument reports whether the archive's index keeps the content of
// the object at path: a manifest, a hold, an audit entry.
func IsDocument(p string) bool {
	base := path.Base(p)
	return base == manifestName || base == holdName || strings.HasPrefix(p, auditDir+"/")
}

// folder is where an occurrence's files are, relative to the
// recordings directory (Dir/{meeting}/{occurrence}/).
func folder(meeting, id string) string { return recorder.SafeName(meeting) + "/" + id }

// uploadLocked queues an ended occurrence's manifest and its checksum
// for the archive (again after a repair or a deletion changed them).
func (m *Manager) uploadLocked(o *occurrence) {
	if m.cfg.Archive == nil || o.man.State != StateEnded {
		return
	}
	for _, name := range []string{manifestName, checksumName} {
		if err := m.cfg.Archive.Upload(filepath.Join(o.dir, name)); err != nil {
			m.log.Error("a meeting's manifest is not queued for the archive", "occurrence", o.man.ID, "file", name, "error", err)
		}
	}
}

// remote is an occurrence of the archive that is not on this node.
type remote struct {
	man  Manifest
	sum  string
	hold *Hold
	dir  string // its folder, relative
}

// remotes are the archive's occurrences that this node does not hold, as
// last listed, by id.
func (m *Manager) remotes() map[string]remote {
	out := map[string]remote{}
	if m.cfg.Archive == nil {
		return out
	}
	docs := m.cfg.Archive.Documents()
	m.mu.Lock()
	local := make(map[string]bool, len(m.all))
	for id := range m.all {
		local[id] = true
	}
	m.mu.Unlock()
	for p, data := range docs {
		if path.Base(p) != manifestName {
			continue
		}
		var man Manifest
		if json.Unmarshal(data, &man) != nil || man.ID == "" || local[man.ID] {
			continue
		}
		dir := path.Dir(p)
		r := remote{man: man, dir: dir, hold: parseHold(docs[dir+"/"+holdName])}
		if man.State == StateEnded {
			r.sum = sumOf(data)
		}
		out[man.ID] = r
	}
	return out
}

// findRemote is the archive's occurrence id: as last listed, else after
// listing again (at most every few seconds).
func (m *Manager) findRemote(id string) (remote, bool) {
	if m.cfg.Archive == nil {
		return remote{}, false
	}
	if r, ok := m.remotes()[id]; ok {
		return r, true
	}
	m.mu.Lock()
	stale := time.Since(m.listed) > 3*time.Second
	if stale {
		m.listed = time.Now()
	}
	m.mu.Unlock()
	if !stale {
		return remote{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
	defer cancel()
	if m.cfg.Archive.Refresh(ctx) != nil {
		return remote{}, false
	}
	r, ok := m.remotes()[id]
	return r, ok
}

// remoteHolds are the holds of the archive as last listed, by folder.
func (m *Manager) remoteHolds() map[string]*Hold {
	out := map[string]*Hold{}
	if m.cfg.Archive == nil {
		return out
	}
	for p, data := range m.cfg.Archive.Documents() {
		if path.Base(p) == holdName {
			if h := parseHold(data); h != nil {
				out[path.Dir(p)] = h
			}
		}
	}
	return out
}

func parseHold(data []byte) *Hold {
	if data == nil {
		return nil
	}
	var h Hold
	if json.Unmarshal(data, &h) != nil || h.Reason == "" {
		return nil
	}
	return &h
}

// CheckHold is the hold on occurrence id of meeting now: this node's,
// and with an archive, the archive's, read now (a listing may be 30 s
// old). An error says the archive could not be asked: the caller must
// then act as if it were held.
func (m *Manager) CheckHold(ctx context.Context, meeting, id string) (*Hold, error) {
	m.mu.Lock()
	o := m.all[id]
	var local *Hold
	if o != nil {
		meeting = o.man.Meeting
		if o.hold != nil {
			h := *o.hold
			local = &h
		}
	}
	m.mu.Unlock()
	if local != nil || m.cfg.Archive == nil || meeting == "" {
		return local, nil
	}
	ctx, cancel := context.WithTimeout(ctx, archiveTimeout)
	defer cancel()
	data, err := m.cfg.Archive.Document(ctx, folder(meeting, id)+"/"+holdName)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		m.mu.Lock()
		m.downUntil = time.Now().Add(archiveBackoff)
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: reading the legal hold of %s: %v", ErrArchive, id, err)
	}
	return parseHold(data), nil
}

// protect is why a recording must be kept, "" if it may go.
func (m *Manager) protect(ctx context.Context, in recorder.Info) string {
	if in.Occurrence == "" {
		return ""
	}
	m.mu.Lock()
	down := time.Now().Before(m.downUntil)
	m.mu.Unlock()
	if down {
		// A hold read failed a moment ago: a retention pass over many
		// recordings keeps them without waiting for each.
		return "the legal hold of meeting occurrence " + in.Occurrence + " cannot be checked (the archive failed less than " +
			archiveBackoff.String() + " ago): kept until it can be"
	}
	h, err := m.CheckHold(ctx, in.Meeting, in.Occurrence)
	switch {
	case err != nil:
		return "the legal hold of meeting occurrence " + in.Occurrence + " cannot be checked (" + err.Error() + "): kept until it can be"
	case h != nil:
		return "legal hold: " + h.Reason
	}
	return ""
}

// ProtectArchived is storage's Config.Protect: the bucket's retention
// skips recordings of held occurrences, and those whose hold cannot be
// read.
func (m *Manager) ProtectArchived(ctx context.Context, in recorder.Info) string {
	return m.protect(ctx, in)
}

// Open opens file name of occurrence oc (manifest.json, its checksum, a
// recording): from its folder here, else from the archive (a local copy
// removed after storage.keep_local, or an occurrence of another node).
func (m *Manager) Open(ctx context.Context, oc Occurrence, name string) (io.ReadSeekCloser, error) {
	if oc.Dir != "" {
		f, err := os.Open(filepath.Join(oc.Dir, filepath.FromSlash(name)))
		if err == nil || !errors.Is(err, fs.ErrNotExist) || m.cfg.Archive == nil {
			return f, err
		}
	}
	if m.cfg.Archive == nil {
		return nil, fs.ErrNotExist
	}
	return m.cfg.Archive.Open(ctx, oc.Folder+"/"+name)
}

// ArchiveStatus says, when the archive could not be listed, that a
// listing shows this node's occurrences and the archive's as last seen;
// "" when all is well.
func (m *Manager) ArchiveStatus() string {
	if m.cfg.Archive == nil {
		return ""
	}
	if err := m.cfg.Archive.ListErr(); err != nil {
		return "the shared archive (S3) cannot be listed (" + err.Error() + "): this is this node's meetings and the archive's as last listed"
	}
	return ""
}

// migrateHolds moves the holds of this node's occurrences written before
// it had an archive into the archive, where every node sees them; a
// hold stays local (and still counts) until that worked.
func (m *Manager) migrateHolds() {
	m.mu.Lock()
	type held struct {
		dir, folder string
		hold        Hold
	}
	var todo []held
	for _, o := range m.all {
		if o.hold != nil {
			todo = append(todo, held{o.dir, folder(o.man.Meeting, o.man.ID), *o.hold})
		}
	}
	m.mu.Unlock()
	for _, h := range todo {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		_, err := m.cfg.Archive.Document(ctx, h.folder+"/"+holdName)
		if errors.Is(err, fs.ErrNotExist) {
			data, _ := json.MarshalIndent(h.hold, "", "  ")
			err = m.cfg.Archive.PutDocument(ctx, h.folder+"/"+holdName, append(data, '\n'))
		}
		cancel()
		if err != nil {
			m.log.Warn("a legal hold stays on this node only for now: the archive did not take it", "folder", h.folder, "error", err)
			continue
		}
		m.log.Info("legal hold moved to the shared archive", "folder", h.folder)
	}
}

// Reconcile applies what other nodes did to the occurrences this node
// holds, by the archive's audit entries: an occurrence deleted elsewhere
// is deleted here; a recording deleted elsewhere is deleted here and
// marked deleted in the manifest (which goes up again). storage calls it
// after each listing.
func (m *Manager) Reconcile() {
	if m.cfg.Archive == nil {
		return
	}
	for _, e := range m.archiveAudit() {
		if e.Node == m.cfg.Node || e.Occurrence == "" {
			continue
		}
		m.mu.Lock()
		o := m.all[e.Occurrence]
		m.mu.Unlock()
		if o == nil {
			continue
		}
		switch e.Action {
		case "delete_meeting":
			m.mu.Lock()
			delete(m.all, e.Occurrence)
			recs := o.man.clone().Recordings
			m.mu.Unlock()
			m.deleteLocal(o, recs)
			m.log.Info("meeting occurrence deleted here: another node deleted it", "occurrence", e.Occurrence, "node", e.Node)
		case "delete_recording":
			if m.recordingState(o, e.Recording) == "deleted" || e.Recording == "" {
				continue
			}
			if m.cfg.DeleteRecording != nil {
				_ = m.cfg.DeleteRecording(e.Recording)
			}
			m.markDeleted(o, e.Recording, e.Reason+" (on node "+e.Node+")")
		}
	}
}

func (m *Manager) recordingState(o *occurrence, id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range o.man.Recordings {
		if r.ID == id {
			return r.State
		}
	}
	return "deleted" // not one of its recordings: nothing to do
}

// deleteLocal removes an occurrence's recordings and folder here.
func (m *Manager) deleteLocal(o *occurrence, recs []Recording) {
	for _, r := range recs {
		if m.cfg.DeleteRecording != nil {
			if err := m.cfg.DeleteRecording(r.ID); err != nil && !errors.Is(err, recorder.ErrNotFound) {
				m.log.Warn("a recording of a deleted meeting was not deleted through the catalog", "recording", r.ID, "error", err)
			}
		}
	}
	if err := os.RemoveAll(o.dir); err != nil {
		m.log.Error("a deleted occurrence's folder was not removed", "dir", o.dir, "error", err)
	}
	_ = os.Remove(filepath.Dir(o.dir)) // the meeting's folder, if now empty
}
