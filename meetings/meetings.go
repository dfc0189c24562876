// Package meetings groups the streams of a meeting room, {meeting}/
// {participant}, into occurrences: an occurrence begins with the room's
// first publisher and ends when the last has left and nobody returned
// within the grace. Every participant's recordings go into the
// occurrence's folder, and manifest.json beside them places every track on
// one timeline (the gateway's clock) with who was there when. The archive
// half finds, holds, audits and zips occurrences.
//
// Files: meetings.go the Manager and the occurrence state machine,
// manifest.go the manifest and its atomic writes, archive.go listing,
// holds, deletion and the audit log, zip.go the streamed download.
package meetings

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
)

// DefaultGrace is how long an occurrence waits, once its last participant
// left, for someone to come back before it ends.
const DefaultGrace = 60 * time.Second

// Config configures a Manager.
type Config struct {
	// Dir is the recordings directory; occurrences live in
	// Dir/{meeting}/{occurrence}/.
	Dir string
	// Grace is how long an empty occurrence waits (default DefaultGrace;
	// negative: it ends at once).
	Grace  time.Duration
	Logger *slog.Logger
	// Notify, if set, is told when an occurrence starts and ends, with
	// its manifest and (once ended) the manifest's SHA-256. It runs with
	// no lock held and must not block.
	Notify func(kind string, m Manifest, sha256 string)
	// DeleteRecording deletes one recording (file and sidecar) from the
	// recorder's catalog, for DeleteOccurrence; nil deletes the files.
	DeleteRecording func(id string) error
	// Now is the clock (tests).
	Now func() time.Time
	// Archive, if set, is the cluster's shared archive (shared.go):
	// ended manifests are uploaded to it, occurrences of other nodes are
	// listed and served from it, and legal holds live in it.
	Archive Archive
	// Node is this node's id in a cluster: in manifests and audit
	// entries.
	Node string
}

// Notify kinds.
const (
	Started = "meeting.started"
	Ended   = "meeting.ended"
)

// Manager follows the meeting rooms' occurrences. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg   Config
	log   *slog.Logger
	audit *auditLog

	mu        sync.Mutex
	open      map[string]*occurrence // by meeting: the occurrence in progress
	all       map[string]*occurrence // by id: every occurrence on disk
	listed    time.Time              // when findRemote last listed the archive
	downUntil time.Time              // a hold read failed: fail at once until then
}

// occurrence is one occurrence and what the state machine needs of it.
type occurrence struct {
	man   *Manifest
	dir   string
	live  map[string]int  // participant -> live publications
	rec   map[string]bool // recordings being written
	grace *time.Timer     // running while nobody is there
	hold  *Hold           // nil when not held
	sum   string          // the manifest's SHA-256 once ended
	gen   int             // bumped on every start or stop of the grace
	flush *time.Timer     // running while events wait to be written
}

// New indexes the occurrences under cfg.Dir. An occurrence still live on
// disk (the gateway stopped or crashed during it) stays open for the
// grace: a participant who comes back continues it; otherwise it ends.
func New(cfg Config) (*Manager, error) {
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the recordings directory: %w", err)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "meetings"), open: map[string]*occurrence{}, all: map[string]*occurrence{},
		audit: &auditLog{path: filepath.Join(cfg.Dir, auditName)}}
	if err := m.load(); err != nil {
		return nil, err
	}
	if cfg.Archive != nil {
		go m.migrateHolds()
	}
	return m, nil
}

// load reads every manifest under Dir/{meeting}/{occurrence}/.
func (m *Manager) load() error {
	dirs, err := filepath.Glob(filepath.Join(m.cfg.Dir, "*", "*", manifestName))
	if err != nil {
		return err
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		man, err := readManifest(dir)
		if err != nil {
			m.log.Warn("meeting manifest not read", "path", f, "error", err)
			continue
		}
		o := &occurrence{man: man, dir: dir, live: map[string]int{}, rec: map[string]bool{}}
		o.hold, _ = readHold(dir)
		if data, err := os.ReadFile(filepath.Join(dir, checksumName)); err == nil {
			o.sum, _, _ = strings.Cut(string(data), " ")
		}
		m.all[man.ID] = o
		m.uploadLocked(o) // queued once; unchanged ones are skipped
		if man.State == StateLive {
			if prev := m.open[man.Meeting]; prev != nil && prev.man.Start.After(man.Start) {
				m.endLocked(o, "an older occurrence left open by a stop") // keep the newest open
				continue
			}
			if prev := m.open[man.Meeting]; prev != nil {
				m.endLocked(prev, "an older occurrence left open by a stop")
			}
			m.open[man.Meeting] = o
			m.log.Info("meeting occurrence left open by a stop: it continues if someone rejoins within the grace",
				"meeting", man.Meeting, "occurrence", man.ID, "grace", m.cfg.Grace)
			m.startGraceLocked(o)
		}
	}
	return nil
}

// Group returns the meeting and participant of a grouped stream name.
func Group(stream string) (meeting, participant string, ok bool) {
	meeting, participant, ok = strings.Cut(stream, "/")
	return meeting, participant, ok && live.ValidName(stream)
}

// Published is the hub's OnPublish hook: a participant joins (and the
// occurrence begins if nobody was there). It runs before the stream's
// first packet, so the recorder finds the occurrence's folder.
func (m *Manager) Published(s *live.Stream) { m.Join(s.Name, m.cfg.Now()) }

// Unpublished is the hub's OnUnpublish hook: a participant leaves.
func (m *Manager) Unpublished(s *live.Stream) { m.Leave(s.Name, m.cfg.Now()) }

// Join records that stream started publishing at at.
func (m *Manager) Join(stream string, at time.Time) {
	meeting, name, ok := Group(stream)
	if !ok {
		return
	}
	m.mu.Lock()
	o := m.open[meeting]
	started := false
	if o == nil {
		var err error
		if o, err = m.startLocked(meeting, at); err != nil {
			m.mu.Unlock()
			m.log.Error("meeting occurrence not started", "meeting", meeting, "error", err)
			return
		}
		started = true
	}
	if o.grace != nil {
		o.grace.Stop()
		o.grace = nil
		o.gen++
	}
	p := o.man.participant(name)
	typ := "join"
	if len(p.Sessions) > 0 {
		typ = "reconnect"
	}
	p.Sessions = append(p.Sessions, Presence{Join: at.UTC(), JoinMS: o.man.ms(at)})
	o.live[name]++
	o.man.event(Event{Time: at, Type: typ, Participant: name})
	sum := m.saveLocked(o)
	snap := o.man.clone()
	m.mu.Unlock()
	m.log.Info("meeting participant joined", "meeting", meeting, "occurrence", snap.ID, "participant", name, "event", typ)
	if started {
		m.notify(Started, snap, sum)
	}
}

// startLocked opens a new occurrence of meeting.
func (m *Manager) startLocked(meeting string, at time.Time) (*occurrence, error) {
	safe := recorder.SafeName(meeting)
	base := safe + "_" + at.UTC().Format("20060102T150405Z")
	id := base
	for i := 2; ; i++ {
		if _, taken := m.all[id]; !taken && !exists(filepath.Join(m.cfg.Dir, safe, id)) {
			break
		}
		id = fmt.Sprintf("%s-%d", base, i)
	}
	dir := filepath.Join(m.cfg.Dir, safe, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the occurrence's folder: %w", err)
	}
	o := &occurrence{man: &Manifest{Schema: SchemaVersion, Meeting: meeting, ID: id, State: StateLive, Start: at.UTC(), Node: m.cfg.Node,
		Participants: []Participant{}, Recordings: []Recording{}, Events: []Event{}},
		dir: dir, live: map[string]int{}, rec: map[string]bool{}}
	m.open[meeting] = o
	m.all[id] = o
	m.log.Info("meeting occurrence started", "meeting", meeting, "occurrence", id)
	return o, nil
}

// Leave records that stream stopped publishing at at. When nobody is
// left, the grace starts.
func (m *Manager) Leave(stream string, at time.Time) {
	meeting, name, ok := Group(stream)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.open[meeting]
	if o == nil || o.live[name] == 0 {
		return
	}
	o.live[name]--
	if o.live[name] == 0 {
		delete(o.live, name)
	}
	p := o.man.participant(name)
	if n := len(p.Sessions); n > 0 && p.Sessions[n-1].Leave.IsZero() {
		ms := o.man.ms(at)
		p.Sessions[n-1].Leave, p.Sessions[n-1].LeaveMS = at.UTC(), &ms
	}
	o.man.event(Event{Time: at, Type: "leave", Participant: name})
	m.saveLocked(o)
	m.log.Info("meeting participant left", "meeting", meeting, "occurrence", o.man.ID, "participant", name)
	if len(o.live) == 0 {
		m.startGraceLocked(o)
	}
}

// startGraceLocked ends o after the grace unless someone joins first (or
// a recording is still being written: then when it is).
func (m *Manager) startGraceLocked(o *occurrence) {
	o.gen++
	gen := o.gen
	wait := max(m.cfg.Grace, 0)
	o.grace = time.AfterFunc(wait, func() {
		m.mu.Lock()
		if o.gen != gen || len(o.live) > 0 || m.open[o.man.Meeting] != o {
			m.mu.Unlock()
			return
		}
		o.grace = nil
		if len(o.rec) > 0 {
			m.mu.Unlock()
			return // RecordingFinished ends it
		}
		sum, snap, ok := m.finishLocked(o)
		m.mu.Unlock()
		if ok {
			m.notify(Ended, snap, sum)
		}
	})
}

// finishLocked ends o if it is empty, past its grace and has no recording
// in progress.
func (m *Manager) finishLocked(o *occurrence) (string, Manifest, bool) {
	if m.open[o.man.Meeting] != o || len(o.live) > 0 || len(o.rec) > 0 || o.grace != nil {
		return "", Manifest{}, false
	}
	sum := m.endLocked(o, "")
	return sum, o.man.clone(), true
}

// endLocked makes o's manifest final: the end is the last leave (or the
// last recording's end), and it gets its checksum.
func (m *Manager) endLocked(o *occurrence, why string) string {
	if o.grace != nil {
		o.grace.Stop()
		o.grace = nil
	}
	end := o.man.Start
	for _, p := range o.man.Participants {
		for i, s := range p.Sessions {
			if s.Leave.IsZero() {
				// Left open by a stop: the participant left when the
				// last of their recordings ended.
				s.Leave = lastRecordingEnd(o.man, p.Name, s.Join)
				ms := o.man.ms(s.Leave)
				p.Sessions[i].Leave, p.Sessions[i].LeaveMS = s.Leave, &ms
			}
			if s.Leave.After(end) {
				end = s.Leave
			}
		}
	}
	for _, r := range o.man.Recordings {
		if r.End.After(end) {
			end = r.End
		}
	}
	o.man.End = end.UTC()
	o.man.DurationMS = o.man.ms(end)
	o.man.State = StateEnded
	if m.open[o.man.Meeting] == o {
		delete(m.open, o.man.Meeting)
	}
	sum := m.saveLocked(o)
	o.sum = sum
	m.log.Info("meeting occurrence ended", "meeting", o.man.Meeting, "occurrence", o.man.ID,
		"duration", time.Duration(o.man.DurationMS)*time.Millisecond, "why", cmpOr(why, "everyone left"))
	return sum
}

func lastRecordingEnd(man *Manifest, participant string, after time.Time) time.Time {
	end := after
	for _, r := range man.Recordings {
		if r.Participant == participant && r.End.After(end) {
			end = r.End
		}
	}
	return end
}

// saveLocked writes o's manifest; a failure is logged (the next change
// writes it again).
func (m *Manager) saveLocked(o *occurrence) string {
	if o.flush != nil {
		o.flush.Stop()
		o.flush = nil // written now, events included
	}
	sum, err := o.man.write(o.dir)
	if err != nil {
		m.log.Error("meeting manifest not written", "occurrence", o.man.ID, "error", err)
		return sum
	}
	m.uploadLocked(o)
	return sum
}

// Place is the recorder's Config.Place: a grouped stream's files go into
// its occurrence's folder, named after the meeting and participant.
func (m *Manager) Place(stream string) recorder.Placement {
	meeting, name, ok := Group(stream)
	if !ok {
		return recorder.Placement{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.open[meeting]
	if o == nil {
		return recorder.Placement{}
	}
	rel, err := filepath.Rel(m.cfg.Dir, o.dir)
	if err != nil {
		return recorder.Placement{}
	}
	return recorder.Placement{Dir: filepath.ToSlash(rel), Prefix: recorder.SafeName(meeting) + "." + recorder.SafeName(name),
		Meeting: meeting, Occurrence: o.man.ID, Participant: name}
}

// RecordingStarted is the recorder's Config.OnStart.
func (m *Manager) RecordingStarted(in recorder.Info) { m.recording(in, true) }

// RecordingFinished is the recorder's Config.OnFinish: the entry gets the
// file's end, size and checksum (also after a repair at start).
func (m *Manager) RecordingFinished(in recorder.Info) { m.recording(in, false) }

func (m *Manager) recording(in recorder.Info, started bool) {
	if in.Occurrence == "" {
		return
	}
	m.mu.Lock()
	o := m.all[in.Occurrence]
	if o == nil {
		m.mu.Unlock()
		return
	}
	r := o.man.recording(in.ID)
	r.File = filepath.Base(in.Path)
	if !started {
		r.File = strings.TrimSuffix(r.File, ".part")
	}
	r.Participant, r.Container, r.State, r.Error = in.Participant, in.Container, in.State, in.Error
	r.Start, r.End, r.DurationMS, r.Bytes, r.SHA256 = in.Start.UTC(), in.End.UTC(), in.DurationMS, in.Size, in.SHA256
	r.OffsetMS = o.man.ms(in.Start)
	r.Tracks = r.Tracks[:0]
	for _, t := range in.Tracks {
		off := r.OffsetMS
		if t.OffsetMS > 0 {
			off += t.OffsetMS
		}
		r.Tracks = append(r.Tracks, Track{Kind: t.Kind, Codec: t.Codec, OffsetMS: off})
	}
	if started {
		o.rec[in.ID] = true
	} else {
		delete(o.rec, in.ID)
	}
	var (
		sum   string
		snap  Manifest
		ended bool
	)
	if o.man.State == StateEnded {
		// A repair of an ended occurrence's file (the gateway crashed
		// between a recording's end and its rename): the final manifest
		// and its checksum are written again.
		o.sum = m.saveLocked(o)
	} else {
		m.saveLocked(o)
		sum, snap, ended = m.finishLocked(o)
	}
	m.mu.Unlock()
	if ended {
		m.notify(Ended, snap, sum)
	}
}

// RecordingEvent is the recorder's Config.OnEvent.
func (m *Manager) RecordingEvent(in recorder.Info, e recorder.Event) {
	if in.Occurrence == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.all[in.Occurrence]
	if o == nil || o.man.State == StateEnded {
		return
	}
	o.man.event(Event{Time: e.Time, Type: e.Type, Participant: in.Participant, Kind: e.Kind, Lost: e.Lost, Detail: in.ID})
	m.saveSoonLocked(o)
}

// eventFlush is how long a recording's event (a loss gap, an unanswered
// keyframe request) may wait to be written into the manifest. Events come
// up to one a second per recording track, and each write encodes and
// syncs the whole manifest under the Manager's lock (milliseconds, more as
// the events add up: BENCHMARKS.md), so they are written together, at most
// once per eventFlush per occurrence; a join, leave, recording change or
// the end writes at once, with whatever events wait.
const eventFlush = time.Second

// saveSoonLocked writes o's manifest within eventFlush.
func (m *Manager) saveSoonLocked(o *occurrence) {
	if o.flush != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(eventFlush, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if o.flush == t {
			m.saveLocked(o)
		}
	})
	o.flush = t
}

// Close writes the events still waiting and stops the grace timers;
// occurrences stay live on disk and are picked up by the next New.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.open {
		if o.flush != nil {
			m.saveLocked(o)
		}
		if o.grace != nil {
			o.grace.Stop()
			o.grace = nil
		}
		o.gen++
	}
}

func (m *Manager) notify(kind string, man Manifest, sum string) {
	if m.cfg.Notify != nil {
		m.cfg.Notify(kind, man, sum)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
