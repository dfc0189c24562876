// Package exports turns a meeting occurrence into one file, as background
// jobs: a lossless multi-track Matroska file (written with ebml-go from
// the recordings, no ffmpeg), a composite MP4 (a grid of the participants
// present at each moment, rendered by ffmpeg), and audio for
// transcription (a mix and one stem per participant, by ffmpeg).
//
// Files: exports.go the jobs (queue, state on disk, cancel, restart),
// plan.go the recordings on the export's timeline, mkv.go and
// multitrack.go the multi-track file, ffmpeg.go the child process,
// composite.go and audio.go their filter graphs.
package exports

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
	"github.com/reel-gateway/reel/meetings"
)

// Kind is what an export makes.
type Kind string

// The exports.
const (
	Multitrack Kind = "multitrack"
	Composite  Kind = "composite"
	Audio      Kind = "audio"
)

// Job states.
const (
	Queued   = "queued"
	Running  = "running"
	Done     = "done"
	Failed   = "failed"
	Canceled = "canceled"
)

// Errors of the jobs.
var (
	ErrBadKind  = errors.New(`kind must be "multitrack", "composite" or "audio"`)
	ErrNotFound = errors.New("no such export job")
)

// Job is one export, as job.json in its folder and the API show it.
type Job struct {
	ID         string `json:"id"`
	Meeting    string `json:"meeting"`
	Occurrence string `json:"occurrence"`
	Kind       Kind   `json:"kind"`
	// FromMS and ToMS are the exported range on the meeting's timeline.
	FromMS   int64   `json:"from_ms"`
	ToMS     int64   `json:"to_ms"`
	State    string  `json:"state"`
	Progress float64 `json:"progress"` // percent
	// ETASeconds is the time left, estimated from the progress so far.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Speed is the export's length over the time it took (× real time).
	Speed    float64   `json:"speed,omitempty"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Error    string    `json:"error,omitempty"`
	Warning  string    `json:"warning,omitempty"`
	// Restarts counts the gateway's restarts during the job.
	Restarts int    `json:"restarts,omitempty"`
	Files    []File `json:"files"`
}

// File is one output of a finished job.
type File struct {
	Name        string `json:"name"`
	Role        string `json:"role"` // multitrack, composite, mix, stem
	Format      string `json:"format"`
	Participant string `json:"participant,omitempty"`
	// OffsetMS, for a stem, is where the participant's audio begins on
	// the export's timeline (the stem is silent before it).
	OffsetMS *int64 `json:"offset_ms,omitempty"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// Meetings is what the jobs need of the meetings archive.
type Meetings interface {
	Get(id string) (meetings.Occurrence, error)
	SetExport(id string, e meetings.Export) error
	RemoveExport(id, job string) error
	// CheckHold is the hold on an occurrence now (in a cluster, read from
	// the shared archive; an error: it could not be read).
	CheckHold(ctx context.Context, meeting, occurrence string) (*meetings.Hold, error)
}

// Config configures a Manager.
type Config struct {
	// Dir is the recordings directory; a job lives in
	// {occurrence folder}/exports/{kind}[-{from}-{to}]/.
	Dir      string
	Meetings Meetings
	// Concurrency is how many jobs run at once (default 1); the others
	// wait in order.
	Concurrency int
	// FFmpeg is the ffmpeg binary (default: "ffmpeg" on the PATH).
	FFmpeg string
	// Nice is the CPU priority ffmpeg runs at (default 10; negative: 0).
	Nice int
	// Threads caps ffmpeg's threads (default 1).
	Threads int
	// Width, Height and FPS are the composite's (default 1280×720, 30).
	Width, Height, FPS int
	// Font labels the composite's tiles (default: DejaVu Sans or another
	// sans font found on the machine; none: no labels, and a warning).
	Font string
	// Notify, if set, is told when a job is done or has failed. It must
	// not block.
	Notify func(Job)
	Logger *slog.Logger
}

// Manager runs export jobs. Its methods are safe for concurrent use.
type Manager struct {
	cfg Config
	ff  ffmpeg
	log *slog.Logger

	mu      sync.Mutex
	jobs    map[string]*job
	queue   []*job
	running int
	closed  bool
	wg      sync.WaitGroup
}

type job struct {
	Job
	dir    string
	cancel context.CancelFunc
	done   chan struct{} // closed when a run ends
	gone   bool          // deleted: nothing is written for it any more
}

const jobFile = "job.json"

// New loads the jobs on disk. A job that was running when the gateway
// stopped is started again (its partial output removed), once; a second
// time it fails with the reason.
func New(cfg Config) (*Manager, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Nice == 0 {
		cfg.Nice = 10
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 1
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		cfg.Width, cfg.Height = DefaultWidth, DefaultHeight
	}
	if cfg.FPS <= 0 {
		cfg.FPS = DefaultFPS
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Width%2 != 0 || cfg.Height%2 != 0 || cfg.Width < 64 || cfg.Height < 64 || cfg.FPS > 120 {
		return nil, fmt.Errorf("exports.composite: width and height must be even and at least 64, fps at most 120 (got %dx%d at %d)", cfg.Width, cfg.Height, cfg.FPS)
	}
	m := &Manager{cfg: cfg, ff: newFFmpeg(cfg.FFmpeg, cfg.Nice, cfg.Threads), log: cfg.Logger.With("component", "exports"), jobs: map[string]*job{}}
	files, _ := filepath.Glob(filepath.Join(cfg.Dir, "*", "*", "exports", "*", jobFile))
	var restart []*job
	for _, f := range files {
		j := &job{dir: filepath.Dir(f)}
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &j.Job)
		}
		if err != nil || j.ID == "" {
			m.log.Warn("export job not read", "path", f, "error", err)
			continue
		}
		m.jobs[j.ID] = j
		switch j.State {
		case Running:
			removeOutputs(j.dir)
			if j.Restarts >= 1 {
				j.State, j.Error, j.Finished = Failed, "the gateway stopped twice during this export: POST it again to retry", time.Now().UTC()
				m.saveLocked(j)
				continue
			}
			j.Restarts++
			j.State, j.Progress = Queued, 0
			restart = append(restart, j)
		case Queued:
			restart = append(restart, j)
		}
	}
	slices.SortFunc(restart, func(a, b *job) int { return a.Created.Compare(b.Created) })
	m.mu.Lock()
	for _, j := range restart {
		m.log.Info("export job started again after a restart", "job", j.ID)
		m.saveLocked(j)
		m.queue = append(m.queue, j)
	}
	m.dispatchLocked()
	m.mu.Unlock()
	return m, nil
}

// Request is what POST .../exports asks for. ToMS < 0 is the meeting's
// end.
type Request struct {
	Kind   Kind
	FromMS int64
	ToMS   int64
}

// Start queues an export of occurrence id, or returns the job that
// already makes (or made) the same one (created false). It fails with
// meetings.ErrNotFound, meetings.ErrLive, ErrBadKind, ErrBadRange or
// ErrNoFFmpeg.
func (m *Manager) Start(id string, req Request) (Job, bool, error) {
	switch req.Kind {
	case Multitrack:
	case Composite, Audio:
		if err := m.ff.available(); err != nil {
			return Job{}, false, err
		}
	default:
		return Job{}, false, fmt.Errorf("%w, not %q", ErrBadKind, req.Kind)
	}
	oc, err := m.cfg.Meetings.Get(id)
	if err != nil {
		return Job{}, false, err
	}
	p, err := newPlan(oc, req.FromMS, req.ToMS)
	if err != nil {
		return Job{}, false, err
	}
	to := p.fromMS + p.durationMS
	folder := string(req.Kind)
	if p.fromMS != 0 || to != oc.Manifest.DurationMS {
		folder += "-" + strconv.FormatInt(p.fromMS, 10) + "-" + strconv.FormatInt(to, 10)
	}
	jobID := oc.Manifest.ID + "." + folder
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Job{}, false, errors.New("the gateway is stopping")
	}
	if j := m.jobs[jobID]; j != nil && (j.State == Queued || j.State == Running || j.State == Done) {
		return m.viewLocked(j), false, nil
	}
	j := &job{dir: filepath.Join(oc.Dir, "exports", folder), Job: Job{ID: jobID, Meeting: oc.Manifest.Meeting, Occurrence: oc.Manifest.ID,
		Kind: req.Kind, FromMS: p.fromMS, ToMS: to, State: Queued, Created: time.Now().UTC(), Files: []File{}}}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return Job{}, false, fmt.Errorf("creating the export's folder: %w", err)
	}
	removeOutputs(j.dir)
	m.jobs[jobID] = j
	m.saveLocked(j)
	m.queue = append(m.queue, j)
	m.log.Info("export queued", "job", jobID, "kind", req.Kind)
	m.dispatchLocked()
	return m.viewLocked(j), true, nil
}

// Get returns job id with its progress and ETA.
func (m *Manager) Get(id string) (Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[id]
	if j == nil {
		return Job{}, ErrNotFound
	}
	return m.viewLocked(j), nil
}

// List returns occurrence's jobs, oldest first.
func (m *Manager) List(occurrence string) []Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Job{}
	for _, j := range m.jobs {
		if j.Occurrence == occurrence {
			out = append(out, m.viewLocked(j))
		}
	}
	slices.SortFunc(out, func(a, b Job) int { return a.Created.Compare(b.Created) })
	return out
}

// File returns the path of output name of job id, once done.
func (m *Manager) File(id, name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[id]
	if j == nil || j.State != Done {
		return "", ErrNotFound
	}
	for _, f := range j.Files {
		if f.Name == name {
			return filepath.Join(j.dir, name), nil
		}
	}
	return "", ErrNotFound
}

// Delete cancels job id if it is queued or running (ffmpeg is killed) and
// removes its folder, partial output included; a finished export's files
// go too, unless its meeting is held (*meetings.HeldError). It returns
// once nothing of the job is left.
func (m *Manager) Delete(id string) error {
	m.mu.Lock()
	j := m.jobs[id]
	if j == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	finished, meeting, occurrence := j.State == Done, j.Meeting, j.Occurrence
	m.mu.Unlock()
	if finished {
		// Asked without the lock: in a cluster it reads the bucket.
		h, err := m.cfg.Meetings.CheckHold(context.Background(), meeting, occurrence)
		if err != nil {
			return err // unknown: keep the export
		}
		if h != nil {
			return &meetings.HeldError{Hold: *h}
		}
	}
	m.mu.Lock()
	if j = m.jobs[id]; j == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	j.gone = true
	delete(m.jobs, id)
	m.queue = slices.DeleteFunc(m.queue, func(q *job) bool { return q == j })
	done := j.done
	if j.cancel != nil {
		j.cancel()
	}
	m.mu.Unlock()
	if done != nil {
		<-done // the run has removed its partial output and let go of the folder
	}
	// Also when not done: an earlier run of the job may be listed.
	if err := m.cfg.Meetings.RemoveExport(j.Occurrence, j.ID); err != nil && !errors.Is(err, meetings.ErrNotFound) {
		m.log.Warn("export not taken out of the manifest", "job", id, "error", err)
	}
	if err := os.RemoveAll(j.dir); err != nil {
		return fmt.Errorf("removing the export's folder: %w", err)
	}
	_ = os.Remove(filepath.Dir(j.dir)) // exports/, if now empty
	m.log.Info("export deleted", "job", id, "state", j.State)
	return nil
}

// Drop cancels and forgets every job of occurrence, and removes their
// folders: the meeting was deleted, or retention deleted one of its
// recordings (an export holds that media too, and goes with it). The
// caller has checked the hold.
func (m *Manager) Drop(occurrence, why string) {
	type dropped struct {
		*job
		done chan struct{}
	}
	m.mu.Lock()
	var drop []dropped
	for id, j := range m.jobs {
		if j.Occurrence != occurrence {
			continue
		}
		j.gone = true
		delete(m.jobs, id)
		m.queue = slices.DeleteFunc(m.queue, func(q *job) bool { return q == j })
		if j.cancel != nil {
			j.cancel()
		}
		drop = append(drop, dropped{j, j.done})
	}
	m.mu.Unlock()
	for _, d := range drop {
		if d.done != nil {
			<-d.done
		}
		_ = m.cfg.Meetings.RemoveExport(d.Occurrence, d.ID)
		os.RemoveAll(d.dir)
		_ = os.Remove(filepath.Dir(d.dir))
		m.log.Info("export deleted", "job", d.ID, "why", why)
	}
}

// Close cancels the running jobs and waits for them; they are queued on
// disk again, and the next New starts them.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	for _, j := range m.jobs {
		if j.cancel != nil {
			j.cancel()
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// viewLocked is j for a caller, with its ETA.
func (m *Manager) viewLocked(j *job) Job {
	v := j.Job
	v.Files = slices.Clone(j.Files)
	if j.State == Running && j.Progress > 0.5 {
		elapsed := time.Since(j.Started).Seconds()
		eta := elapsed * (100 - j.Progress) / j.Progress
		v.ETASeconds = &eta
	}
	return v
}

func (m *Manager) saveLocked(j *job) {
	if j.gone {
		return
	}
	data, err := json.MarshalIndent(j.Job, "", "  ")
	if err == nil {
		err = atomicfile.Write(filepath.Join(j.dir, jobFile), append(data, '\n'))
	}
	if err != nil {
		m.log.Error("export job state not written", "job", j.ID, "error", err)
	}
}

// dispatchLocked starts queued jobs while fewer than Concurrency run.
func (m *Manager) dispatchLocked() {
	for !m.closed && m.running < m.cfg.Concurrency && len(m.queue) > 0 {
		j := m.queue[0]
		m.queue = m.queue[1:]
		ctx, cancel := context.WithCancel(context.Background())
		j.cancel, j.done = cancel, make(chan struct{})
		j.State, j.Started, j.Progress, j.Error = Running, time.Now().UTC(), 0, ""
		m.saveLocked(j)
		m.running++
		m.wg.Add(1)
		go m.run(ctx, j)
	}
}

// run makes job j's files, then records how it ended.
func (m *Manager) run(ctx context.Context, j *job) {
	defer m.wg.Done()
	log := m.log.With("job", j.ID, "kind", j.Kind)
	log.Info("export started")
	files, warning, err := m.execute(ctx, j)
	if err != nil {
		removeOutputs(j.dir)
	}
	m.mu.Lock()
	m.running--
	j.cancel = nil
	close(j.done)
	j.done = nil
	now := time.Now().UTC()
	var notify *Job
	switch {
	case j.gone:
		log.Info("export canceled")
	case ctx.Err() != nil && m.closed:
		// The gateway stops: the job is queued on disk for the next start.
		j.State, j.Progress = Queued, 0
		log.Info("export interrupted by the gateway's stop; it starts again with the gateway")
	case err != nil:
		j.State, j.Error, j.Finished = Failed, err.Error(), now
		log.Error("export failed", "error", err)
		v := m.viewLocked(j)
		notify = &v
	default:
		j.State, j.Progress, j.Finished, j.Files, j.Warning = Done, 100, now, files, warning
		if d := now.Sub(j.Started).Seconds(); d > 0 {
			j.Speed = float64(j.ToMS-j.FromMS) / 1000 / d
		}
		log.Info("export done", "files", len(files), "speed", fmt.Sprintf("%.1fx", j.Speed))
		v := m.viewLocked(j)
		notify = &v
	}
	m.saveLocked(j)
	m.dispatchLocked()
	m.mu.Unlock()
	if notify != nil && notify.State == Done {
		ex := meetings.Export{Job: j.ID, Kind: string(j.Kind), FromMS: j.FromMS, ToMS: j.ToMS, Finished: j.Finished}
		for _, f := range notify.Files {
			rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(j.dir)), filepath.Join(j.dir, f.Name))
			ex.Files = append(ex.Files, meetings.ExportFile{File: filepath.ToSlash(rel), Bytes: f.Bytes, SHA256: f.SHA256})
		}
		if err := m.cfg.Meetings.SetExport(j.Occurrence, ex); err != nil {
			log.Warn("export not entered into the manifest", "error", err)
		}
	}
	if notify != nil && m.cfg.Notify != nil {
		m.cfg.Notify(*notify)
	}
}

func (m *Manager) setProgress(j *job, frac float64) {
	m.mu.Lock()
	j.Progress = min(max(frac*100, j.Progress), 99.9)
	m.mu.Unlock()
}

// execute makes j's files in its folder, each written as .part and
// renamed when complete.
func (m *Manager) execute(ctx context.Context, j *job) ([]File, string, error) {
	oc, err := m.cfg.Meetings.Get(j.Occurrence)
	if err != nil {
		return nil, "", err
	}
	// An earlier run's files are gone: so is its entry in the manifest.
	if err := m.cfg.Meetings.RemoveExport(j.Occurrence, j.ID); err != nil {
		return nil, "", err
	}
	p, err := newPlan(oc, j.FromMS, j.ToMS)
	if err != nil {
		return nil, "", err
	}
	progress := func(f float64) { m.setProgress(j, f) }
	base := oc.Manifest.ID
	var (
		outs    []File
		warning string
	)
	switch j.Kind {
	case Multitrack:
		part := filepath.Join(j.dir, base+".multitrack.part")
		container, err := writeMultitrack(ctx, p, part, progress)
		if err != nil {
			return nil, "", err
		}
		name := base + ".multitrack." + container
		if err := os.Rename(part, filepath.Join(j.dir, name)); err != nil {
			return nil, "", err
		}
		outs = []File{{Name: name, Role: "multitrack", Format: container}}
	case Composite:
		font := findFont(m.cfg.Font)
		if font == "" {
			warning = "no font was found for the participants' names (install fonts-dejavu-core, or set exports.font): the tiles are not labelled"
		}
		name := base + ".composite.mp4"
		args := compositeArgs(p, compositeSettings{width: m.cfg.Width, height: m.cfg.Height, fps: m.cfg.FPS, font: font}, m.cfg.Threads,
			filepath.Join(j.dir, name+".part"))
		if err := m.ff.run(ctx, args, p.durationMS, progress); err != nil {
			return nil, "", err
		}
		if err := os.Rename(filepath.Join(j.dir, name+".part"), filepath.Join(j.dir, name)); err != nil {
			return nil, "", err
		}
		outs = []File{{Name: name, Role: "composite", Format: "mp4"}}
	case Audio:
		args, files := audioArgs(p, m.cfg.Threads, j.dir, base)
		if err := m.ff.run(ctx, args, p.durationMS, progress); err != nil {
			return nil, "", err
		}
		for _, f := range files {
			if err := os.Rename(filepath.Join(j.dir, f.name+".part"), filepath.Join(j.dir, f.name)); err != nil {
				return nil, "", err
			}
			out := File{Name: f.name, Role: f.role, Format: f.format, Participant: f.participant}
			if f.role == "stem" {
				off := f.offsetMS
				out.OffsetMS = &off
			}
			outs = append(outs, out)
		}
	}
	for i := range outs {
		sum, size, err := fileSum(filepath.Join(j.dir, outs[i].Name))
		if err != nil {
			return nil, "", err
		}
		outs[i].SHA256, outs[i].Bytes = sum, size
	}
	return outs, warning, nil
}

func fileSum(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// removeOutputs removes everything in a job's folder but job.json.
func removeOutputs(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != jobFile {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
