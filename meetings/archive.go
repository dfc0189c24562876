package meetings

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
	"github.com/reel-gateway/reel/recorder"
)

// Errors of the archive.
var (
	ErrNotFound = errors.New("no such meeting occurrence")
	ErrLive     = errors.New("the meeting occurrence is still in progress")
)

// HeldError refuses a deletion of a held occurrence (or of one of its
// recordings), naming the hold.
type HeldError struct{ Hold Hold }

func (e *HeldError) Error() string {
	return fmt.Sprintf("the meeting is under legal hold since %s (%s): it cannot be deleted until the hold is lifted",
		e.Hold.Since.Format(time.RFC3339), e.Hold.Reason)
}

// Hold is a legal hold on an occurrence: while it stands, retention skips
// the occurrence and deleting it, or any of its recordings, is refused.
type Hold struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	By     string    `json:"by,omitempty"` // who set it (a credential's fingerprint)
}

// Summary is one occurrence in a listing.
type Summary struct {
	Meeting      string    `json:"meeting"`
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	DurationMS   int64     `json:"duration_ms"`
	Participants []string  `json:"participants"`
	Recordings   int       `json:"recordings"`
	Bytes        int64     `json:"bytes"`
	Hold         *Hold     `json:"hold,omitempty"`
	// Node is the node that recorded it, in a cluster; Archived says it
	// is served from the shared archive, not from this node's disk.
	Node     string `json:"node,omitempty"`
	Archived bool   `json:"archived,omitempty"`
}

// Query filters List. Zero fields do not filter.
type Query struct {
	From, To    time.Time // occurrences overlapping [From, To]
	Meeting     string    // of this meeting room (exactly)
	Participant string    // took part
	Q           string    // in the meeting's or a participant's name (any case)
	Hold        *bool     // held or not
	Limit       int       // 1-500; default 50
	Cursor      string    // from the previous page's NextCursor
}

// Page is one page of occurrences, newest first.
type Page struct {
	Meetings   []Summary `json:"meetings"`
	NextCursor string    `json:"next_cursor,omitempty"`
	// Warning says what the list may lack (the archive unreachable).
	Warning string `json:"warning,omitempty"`
}

// List returns the occurrences matching q, newest first.
func (m *Manager) List(q Query) (Page, error) {
	limit := q.Limit
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > 500 {
		return Page{}, fmt.Errorf("limit must be 1 to 500, not %d", q.Limit)
	}
	var after *Summary
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		after = &c
	}
	holds := m.remoteHolds()
	m.mu.Lock()
	all := make([]Summary, 0, len(m.all))
	for _, o := range m.all {
		s := summary(o)
		if h := holds[folder(o.man.Meeting, o.man.ID)]; s.Hold == nil && h != nil {
			s.Hold = h
		}
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, r := range m.remotes() {
		s := summarize(&r.man, r.hold)
		s.Node = r.man.Node
		s.Archived = true
		all = append(all, s)
	}
	slices.SortFunc(all, newer)
	needle := strings.ToLower(q.Q)
	out := Page{Meetings: []Summary{}}
	for _, s := range all {
		if after != nil && newer(s, *after) <= 0 {
			continue
		}
		end := s.End
		if end.IsZero() {
			end = time.Now()
		}
		switch {
		case !q.From.IsZero() && end.Before(q.From), !q.To.IsZero() && s.Start.After(q.To):
			continue
		case q.Meeting != "" && s.Meeting != q.Meeting:
			continue
		case q.Participant != "" && !slices.Contains(s.Participants, q.Participant):
			continue
		case q.Hold != nil && (s.Hold != nil) != *q.Hold:
			continue
		case needle != "" && !strings.Contains(strings.ToLower(s.Meeting), needle) &&
			!slices.ContainsFunc(s.Participants, func(p string) bool { return strings.Contains(strings.ToLower(p), needle) }):
			continue
		}
		if len(out.Meetings) == limit {
			out.NextCursor = encodeCursor(out.Meetings[limit-1])
			break
		}
		out.Meetings = append(out.Meetings, s)
	}
	return out, nil
}

// Local are the ids of this node's occurrences.
func (m *Manager) Local() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.all))
	for id := range m.all {
		out = append(out, id)
	}
	return out
}

// newer orders newest first, then by id.
func newer(a, b Summary) int {
	if c := b.Start.Compare(a.Start); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func encodeCursor(s Summary) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(s.Start.UnixNano(), 10) + " " + s.ID))
}

func decodeCursor(c string) (Summary, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	ns, id, ok := strings.Cut(string(b), " ")
	n, perr := strconv.ParseInt(ns, 10, 64)
	if err != nil || !ok || perr != nil {
		return Summary{}, errors.New("the cursor is not one this server gave out")
	}
	return Summary{Start: time.Unix(0, n), ID: id}, nil
}

func summary(o *occurrence) Summary {
	s := summarize(o.man, o.hold)
	s.Node = o.man.Node
	return s
}

func summarize(man *Manifest, hold *Hold) Summary {
	s := Summary{Meeting: man.Meeting, ID: man.ID, State: man.State, Start: man.Start, End: man.End,
		DurationMS: man.DurationMS, Recordings: len(man.Recordings), Participants: []string{}}
	for _, p := range man.Participants {
		s.Participants = append(s.Participants, p.Name)
	}
	for _, r := range man.Recordings {
		s.Bytes += r.Bytes
	}
	if hold != nil {
		h := *hold
		s.Hold = &h
	}
	return s
}

// Occurrence is one occurrence for the API: its manifest, the manifest's
// checksum once ended, its hold, and its folder.
type Occurrence struct {
	Manifest Manifest
	SHA256   string
	Hold     *Hold
	// Dir is its folder on this node, "" when only the archive has it.
	Dir string
	// Folder is its folder relative to the recordings directory (and
	// its key in the archive, after the prefix).
	Folder string
}

// Get returns the occurrence id: this node's, else the archive's. The
// hold is as last known (the archive's as last listed).
func (m *Manager) Get(id string) (Occurrence, error) {
	m.mu.Lock()
	o := m.all[id]
	if o != nil {
		oc := Occurrence{Manifest: o.man.clone(), SHA256: o.sum, Dir: o.dir, Folder: folder(o.man.Meeting, o.man.ID)}
		if o.hold != nil {
			h := *o.hold
			oc.Hold = &h
		}
		m.mu.Unlock()
		if oc.Hold == nil {
			oc.Hold = m.remoteHolds()[oc.Folder]
		}
		return oc, nil
	}
	m.mu.Unlock()
	if r, ok := m.findRemote(id); ok {
		return Occurrence{Manifest: r.man, SHA256: r.sum, Hold: r.hold, Folder: r.dir}, nil
	}
	return Occurrence{}, ErrNotFound
}

// SetHold puts occurrence id under legal hold (again: the reason is
// replaced), and writes it to the audit log. With an archive, the hold is
// stored there, where every node sees it, and only there; without one,
// beside the occurrence's manifest. An error wrapping ErrArchive: it is
// not set.
func (m *Manager) SetHold(id, reason, by string) (Hold, error) {
	if strings.TrimSpace(reason) == "" {
		return Hold{}, errors.New("a hold needs a reason")
	}
	oc, err := m.Get(id)
	if err != nil {
		return Hold{}, err
	}
	h := Hold{Reason: reason, Since: m.cfg.Now().UTC(), By: by}
	prev, err := m.CheckHold(context.Background(), oc.Manifest.Meeting, id)
	if err != nil {
		return Hold{}, err
	}
	if prev != nil {
		h.Since = prev.Since
	}
	data, _ := json.MarshalIndent(h, "", "  ")
	data = append(data, '\n')
	if m.cfg.Archive != nil {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		err := m.cfg.Archive.PutDocument(ctx, oc.Folder+"/"+holdName, data)
		cancel()
		if err != nil {
			return Hold{}, fmt.Errorf("%w: storing the legal hold: %v; it is not set", ErrArchive, err)
		}
	}
	m.mu.Lock()
	o := m.all[id]
	if o != nil && m.cfg.Archive == nil {
		if err := atomicfile.Write(filepath.Join(o.dir, holdName), data); err != nil {
			m.mu.Unlock()
			return Hold{}, fmt.Errorf("writing the hold: %w", err)
		}
	}
	if o != nil {
		o.hold = &h
	}
	m.mu.Unlock()
	if err := m.appendAudit(AuditEntry{Time: m.cfg.Now().UTC(), Action: "hold", Meeting: oc.Manifest.Meeting, Occurrence: id, Reason: reason, By: by}); err != nil {
		return Hold{}, err
	}
	m.log.Info("meeting put under legal hold", "occurrence", id, "reason", reason)
	return h, nil
}

// ReleaseHold lifts occurrence id's hold, with the audit log's reason:
// in the archive, and here.
func (m *Manager) ReleaseHold(id, reason, by string) error {
	oc, err := m.Get(id)
	if err != nil {
		return err
	}
	prev, err := m.CheckHold(context.Background(), oc.Manifest.Meeting, id)
	if err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	if m.cfg.Archive != nil {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		err := m.cfg.Archive.DeleteDocument(ctx, oc.Folder+"/"+holdName)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: lifting the legal hold: %v; it stands", ErrArchive, err)
		}
	}
	m.mu.Lock()
	if o := m.all[id]; o != nil {
		if err := os.Remove(filepath.Join(o.dir, holdName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.mu.Unlock()
			return fmt.Errorf("removing the hold: %w", err)
		}
		o.hold = nil
	}
	m.mu.Unlock()
	if err := m.appendAudit(AuditEntry{Time: m.cfg.Now().UTC(), Action: "release_hold", Meeting: oc.Manifest.Meeting, Occurrence: id, Reason: reason, By: by}); err != nil {
		return err
	}
	m.log.Info("meeting's legal hold lifted", "occurrence", id)
	return nil
}

// Protect is the recorder's Config.Protect: retention skips recordings of
// held occurrences (and, with an archive, those whose hold cannot be
// read now).
func (m *Manager) Protect(in recorder.Info) string { return m.protect(context.Background(), in) }

// DeleteOccurrence deletes an ended occurrence: its recordings, manifest
// and folder, here and in the archive. It refuses a held one
// (*HeldError), one in progress (ErrLive), and, when the archive cannot
// say whether it is held, answers an error wrapping ErrArchive.
func (m *Manager) DeleteOccurrence(id, by, reason string) error {
	oc, err := m.Get(id)
	if err != nil {
		return err
	}
	h, err := m.CheckHold(context.Background(), oc.Manifest.Meeting, id)
	switch {
	case err != nil:
		return err
	case h != nil:
		return &HeldError{Hold: *h}
	case oc.Manifest.State != StateEnded:
		return ErrLive
	}
	if m.cfg.Archive != nil {
		ctx, cancel := context.WithTimeout(context.Background(), archiveTimeout)
		err := m.cfg.Archive.DeleteFolder(ctx, oc.Folder)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: deleting the occurrence from the archive: %v; nothing was deleted here", ErrArchive, err)
		}
	}
	m.mu.Lock()
	o := m.all[id]
	delete(m.all, id)
	m.mu.Unlock()
	if o != nil {
		m.deleteLocal(o, oc.Manifest.Recordings)
	}
	m.log.Info("meeting occurrence deleted", "occurrence", id, "reason", reason)
	return m.appendAudit(AuditEntry{Time: m.cfg.Now().UTC(), Action: "delete_meeting", Meeting: oc.Manifest.Meeting, Occurrence: id, Reason: reason, By: by})
}

// RecordingDeleted notes in the audit log, and in the occurrence's
// manifest, that one of its recordings was deleted (by retention or the
// API: the caller checked the hold).
func (m *Manager) RecordingDeleted(occurrence, recordingID, participant, by, reason string) {
	entry := AuditEntry{Time: m.cfg.Now().UTC(), Action: "delete_recording", Occurrence: occurrence, Recording: recordingID, Reason: reason, By: by}
	m.mu.Lock()
	o := m.all[occurrence]
	if o != nil {
		entry.Meeting = o.man.Meeting
	}
	m.mu.Unlock()
	if o != nil {
		m.markDeleted(o, recordingID, reason)
	} else if r, ok := m.findRemote(occurrence); ok {
		entry.Meeting = r.man.Meeting
	}
	if err := m.appendAudit(entry); err != nil {
		m.log.Error("audit log not written", "error", err)
	}
}

// markDeleted marks a recording of o deleted in its manifest, with an
// event.
func (m *Manager) markDeleted(o *occurrence, recordingID, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	participant := ""
	for i := range o.man.Recordings {
		if o.man.Recordings[i].ID == recordingID {
			o.man.Recordings[i].State = "deleted"
			participant = o.man.Recordings[i].Participant
		}
	}
	ev := Event{Time: m.cfg.Now(), Type: "recording_deleted", Participant: participant, Detail: recordingID + ": " + reason}
	ev.Time = ev.Time.UTC()
	ev.OffsetMS = o.man.ms(ev.Time)
	o.man.Events = append(o.man.Events, ev)
	sum := m.saveLocked(o)
	if o.man.State == StateEnded {
		o.sum = sum
	}
}

// RetentionDeleted is the recorder's Config.OnDelete.
func (m *Manager) RetentionDeleted(d recorder.Deletion) {
	if d.Occurrence != "" {
		m.RecordingDeleted(d.Occurrence, d.ID, d.Participant, "retention", d.Reason)
	}
}

// Audit returns the audit log's entries about occurrence id ("" for all),
// oldest first: this node's log and, with an archive, every node's
// entries in it.
func (m *Manager) Audit(id string) ([]AuditEntry, error) {
	out, err := m.audit.read(id)
	if err != nil || m.cfg.Archive == nil {
		return out, err
	}
	seen := map[string]bool{}
	for _, e := range out {
		seen[e.key()] = true
	}
	for _, e := range m.archiveAudit() {
		if (id == "" || e.Occurrence == id) && !seen[e.key()] {
			seen[e.key()] = true
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b AuditEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// archiveAudit are the audit entries of the archive as last listed.
func (m *Manager) archiveAudit() []AuditEntry {
	var out []AuditEntry
	for p, data := range m.cfg.Archive.Documents() {
		if !strings.HasPrefix(p, auditDir+"/") {
			continue
		}
		var e AuditEntry
		if json.Unmarshal(data, &e) == nil && e.Action != "" {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b AuditEntry) int { return a.Time.Compare(b.Time) })
	return out
}

// appendAudit writes e to this node's audit log and, with an archive,
// as a file of its own in recordings/.audit/, queued for the archive, so
// every node's audit shows it.
func (m *Manager) appendAudit(e AuditEntry) error {
	e.Node = m.cfg.Node
	if err := m.audit.append(e); err != nil {
		return err
	}
	if m.cfg.Archive == nil {
		return nil
	}
	data, _ := json.Marshal(e)
	name := fmt.Sprintf("%s_%s_%s.json", e.Time.UTC().Format("20060102T150405.000000000Z"), recorder.SafeName(cmpOr(e.Node, "node")), e.Action)
	p := filepath.Join(m.cfg.Dir, auditDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing the shared audit entry: %w", err)
	}
	if err := atomicfile.Write(p, append(data, '\n')); err != nil {
		return fmt.Errorf("writing the shared audit entry: %w", err)
	}
	if err := m.cfg.Archive.Upload(p); err != nil {
		m.log.Error("an audit entry is not queued for the archive; it is in this node's audit log", "error", err)
	}
	return nil
}

// auditName is the audit log's file in the recordings directory.
const auditName = "audit.log"

// AuditEntry is one line of the append-only audit log: every hold change
// and every deletion of a meeting or of a recording of one.
type AuditEntry struct {
	Time       time.Time `json:"time"`
	Action     string    `json:"action"` // hold, release_hold, delete_meeting, delete_recording
	Meeting    string    `json:"meeting,omitempty"`
	Occurrence string    `json:"occurrence,omitempty"`
	Recording  string    `json:"recording,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	By         string    `json:"by,omitempty"`
	// Node is the node that did it and wrote the entry, in a cluster.
	Node string `json:"node,omitempty"`
}

// key identifies an entry across this node's log and the archive's.
func (e AuditEntry) key() string {
	return e.Time.UTC().Format(time.RFC3339Nano) + " " + e.Node + " " + e.Action + " " + e.Occurrence + " " + e.Recording
}

// auditLog appends JSON lines, each synced to disk before the action it
// records is reported done.
type auditLog struct {
	mu   sync.Mutex
	path string
}

func (a *auditLog) append(e AuditEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the audit log: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the audit log: %w", err)
	}
	return nil
}

func (a *auditLog) read(occurrence string) ([]AuditEntry, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.Open(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return []AuditEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := []AuditEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e AuditEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if occurrence == "" || e.Occurrence == occurrence {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

func readHold(dir string) (*Hold, error) {
	data, err := os.ReadFile(filepath.Join(dir, holdName))
	if err != nil {
		return nil, err
	}
	var h Hold
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, err
	}
	return &h, nil
}
