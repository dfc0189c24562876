// Package recorder writes live streams to files: every published stream is
// recorded as WebM (VP8, VP9, AV1 with Opus) or Matroska (H.264, H.265), with
// ebml-go, crash safe and with Cues and Duration once finalized. It also
// keeps the archive: a catalog of the files, repair after a crash,
// retention and a free-disk guard.
package recorder

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/reel-gateway/reel/live"
)

// Recording states, as in Info.State.
const (
	StateRecording = "recording"
	StateFinished  = "finished"
	StateFailed    = "failed"
	// StateRepaired is a recording cut by a crash (or a full disk) and
	// rewritten at the next start: it has Duration and Cues and plays up
	// to the last cluster that reached the disk.
	StateRepaired = "repaired"
)

// DefaultDir is where recordings go unless configured.
const DefaultDir = "./recordings"

// DefaultMinFreeSpace is the free space below which no new recording
// starts, unless configured (Config.MinFreeSpace).
const DefaultMinFreeSpace = 500e6

// Config configures a Recorder.
type Config struct {
	// Dir is the recordings directory; DefaultDir if empty. Each stream
	// gets a folder of its own inside it.
	Dir string
	// Enabled turns recording on; when false Record does nothing.
	Enabled bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// SegmentDuration, if set, cuts a long recording into consecutive
	// files of about this length, each starting on a keyframe, with no
	// frame lost or repeated between them.
	SegmentDuration time.Duration
	// MaxAge, if set, deletes finished recordings older than this.
	MaxAge time.Duration
	// MaxTotalSize, if set, deletes the oldest finished recordings while
	// all recordings together are larger (bytes).
	MaxTotalSize uint64
	// MinFreeSpace, if set, pauses new recordings (and new segments) while
	// the file system has fewer bytes free; live streaming goes on.
	MinFreeSpace uint64
	// FreeSpace measures free space; the operating system's by default.
	FreeSpace FreeSpacer
	// OnFinish, if set, is called with every recording file once it is
	// final: finished, failed, or repaired (or not) at start. It runs on
	// the recording's goroutine (or New's): it must not block.
	OnFinish func(Info)
	// OnStart, if set, is called when a recording file (or segment) is
	// opened, with its metadata so far. Same goroutine rules as OnFinish.
	OnStart func(Info)
	// OnEvent, if set, is told what happened to a recording's media: a
	// gap from lost packets, a keyframe the publisher did not send when
	// asked. Same goroutine rules as OnFinish.
	OnEvent func(Info, Event)
	// Place, if set, says where a stream's files go (meetings put every
	// participant of an occurrence in one folder); nil puts them in a
	// folder named after the stream.
	Place func(stream string) Placement
	// Protect, if set, may keep a finished recording from retention: a
	// non-empty reason (a legal hold) and retention skips it.
	Protect func(Info) string
	// OnDelete, if set, is told of every recording retention deleted.
	OnDelete func(Deletion)

	// CheckInterval is how often retention and the disk guard run
	// (0: DefaultCheckInterval).
	CheckInterval time.Duration

	// For tests: retention's clock.
	now func() time.Time
}

// Placement is where a stream's recording files go: Dir, a folder below
// the recordings directory ("board-42/board-42_20261130T221000Z"), and
// Prefix, the start of every file name ("board-42.alice"), each path
// element already safe (letters, digits, '.', '_', '-'). Meeting,
// Occurrence and Participant go into the sidecar.
type Placement struct {
	Dir, Prefix                      string
	Meeting, Occurrence, Participant string
}

// Event is something that happened to a recording's media, for a
// meeting's manifest.
type Event struct {
	Time time.Time `json:"time"`
	// Type is "loss" (packets lost: a gap; Lost says how many) or
	// "keyframe_unanswered" (asked for one, none came within 3 s).
	Type string `json:"type"`
	Kind string `json:"kind,omitempty"` // "video", "audio"
	Lost uint64 `json:"lost,omitempty"`
}

// TrackInfo is one track of a recording file.
type TrackInfo struct {
	Kind  string `json:"kind"`
	Codec string `json:"codec"`
	// OffsetMS is where the track's first frame lies after the file's
	// start (the first video keyframe): audio may begin a little later.
	OffsetMS int64 `json:"offset_ms"`
}

// Info describes one recording. It is also the sidecar file's content.
type Info struct {
	// ID is the file's base name without extension, unique in Dir.
	ID     string `json:"id"`
	Stream string `json:"stream"`
	// Path is where the file is now: "<name>.<ext>.part" while recording.
	Path string `json:"path"`
	// Container is "webm" or "mkv".
	Container string `json:"container"`
	// Codecs are lower-case codec names, video first ("h264", "opus").
	Codecs     []string  `json:"codecs"`
	Width      int       `json:"width,omitempty"`
	Height     int       `json:"height,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	DurationMS int64     `json:"duration_ms"`
	Size       int64     `json:"size"`
	// State is StateRecording, StateFinished, StateRepaired or StateFailed.
	State string `json:"state"`
	// Error says why a recording failed.
	Error string `json:"error,omitempty"`
	// SHA256 is the hex SHA-256 of the final file (set once finished or
	// repaired), so an archive can prove the file did not change.
	SHA256 string `json:"sha256,omitempty"`
	// Tracks lists the file's tracks and where each begins.
	Tracks []TrackInfo `json:"tracks,omitempty"`
	// Meeting, Occurrence and Participant are set for a grouped stream
	// ("{meeting}/{participant}"): the meeting occurrence it belongs to.
	Meeting     string `json:"meeting,omitempty"`
	Occurrence  string `json:"occurrence,omitempty"`
	Participant string `json:"participant,omitempty"`
}

// Recorder records every published stream, one file per publication.
type Recorder struct {
	dir     string
	enabled bool
	log     *slog.Logger
	// openFile creates a recording's .part file; tests replace it.
	openFile func(name string) (osFile, error)
	// wrap lets tests put a consumer between the stream and a recording.
	wrap func(live.Consumer) live.Consumer

	cat      *Catalog
	guard    *diskGuard
	segment  time.Duration
	maxAge   time.Duration
	maxTotal uint64
	onFinish func(Info)
	onStart  func(Info)
	onEvent  func(Info, Event)
	place    func(string) Placement
	protect  func(Info) string
	onDelete func(Deletion)
	retainMu sync.Mutex       // one retention pass at a time
	now      func() time.Time // retention's clock; tests replace it

	stop      chan struct{}
	maintDone chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	active []*recording
	closed bool
}

// New returns a Recorder writing to cfg.Dir, which it creates. It indexes
// the recordings already there and first repairs any that an earlier crash
// left unfinished (see Catalog), which takes a moment per such file.
func New(cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving the recordings directory %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the recordings directory: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved // the catalog compares paths under one spelling of dir
	}
	r := &Recorder{dir: dir, enabled: cfg.Enabled, log: cfg.Logger, openFile: openPart,
		segment: cfg.SegmentDuration, maxAge: cfg.MaxAge, maxTotal: cfg.MaxTotalSize, onFinish: cfg.OnFinish,
		onStart: cfg.OnStart, onEvent: cfg.OnEvent, place: cfg.Place, protect: cfg.Protect, onDelete: cfg.OnDelete,
		now: time.Now, stop: make(chan struct{}), maintDone: make(chan struct{})}
	if r.cat, err = newCatalog(dir, cfg.Logger); err != nil {
		return nil, err
	}
	if err := r.cat.load(r.notify); err != nil {
		return nil, err
	}
	if cfg.MinFreeSpace > 0 {
		src := cfg.FreeSpace
		if src == nil {
			src = osFreeSpace{}
		}
		r.guard = &diskGuard{src: src, dir: dir, min: cfg.MinFreeSpace, log: cfg.Logger}
	}
	if cfg.now != nil {
		r.now = cfg.now
	}
	if r.maxAge > 0 || r.maxTotal > 0 || r.guard != nil {
		every := cfg.CheckInterval
		if every <= 0 {
			every = DefaultCheckInterval
		}
		go r.maintain(every)
	} else {
		close(r.maintDone)
	}
	return r, nil
}

// Catalog is the index of the recordings in Dir.
func (r *Recorder) Catalog() *Catalog { return r.cat }

// PausedReason says why new recordings are paused (the disk is almost
// full), or is empty while they are not. It measures the free space now.
func (r *Recorder) PausedReason() string { return r.guard.check() }

// FreeSpace is the free space of the recordings' file system, in bytes.
func (r *Recorder) FreeSpace() (uint64, error) {
	if r.guard != nil {
		return r.guard.src.FreeSpace(r.dir)
	}
	return osFreeSpace{}.FreeSpace(r.dir)
}

// Delete deletes a recording that is not in progress: ErrNotFound if there
// is none with this id, ErrRecording if it is still being written.
func (r *Recorder) Delete(id string) (Info, error) { return r.cat.Delete(id) }

// notify passes a final recording to Config.OnFinish.
func (r *Recorder) notify(info Info) {
	if r.onFinish != nil {
		r.onFinish(cloneInfo(info))
	}
}

// Dir is the absolute recordings directory.
func (r *Recorder) Dir() string { return r.dir }

// Record starts recording s. It is meant as the hub's OnPublish hook: it
// runs before the stream's first packet. It does nothing when recording is
// disabled or the Recorder is closed.
func (r *Recorder) Record(s *live.Stream) {
	if !r.enabled {
		return
	}
	log := r.log.With("stream", s.Name)
	if reason := r.guard.check(); reason != "" {
		log.Error("stream not recorded: disk almost full", "reason", reason)
		return
	}
	rc, err := newRecording(r, s)
	if err != nil {
		log.Warn("stream not recorded", "error", err)
		return
	}
	var c live.Consumer = rc
	if r.wrap != nil {
		c = r.wrap(rc)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	sub, err := s.Subscribe(string(live.OutputRecord), c, 0)
	if err != nil {
		log.Warn("stream not recorded", "error", err)
		return
	}
	rc.sub = sub
	r.active = append(r.active, rc)
	sub.RequestKeyframe()
}

// Active returns the recordings in progress (those that have started a
// file), oldest first.
func (r *Recorder) Active() []Info {
	r.mu.Lock()
	recs := slices.Clone(r.active)
	r.mu.Unlock()
	var out []Info
	for _, rc := range recs {
		if in := rc.info(); in.Path != "" && in.State == StateRecording {
			out = append(out, in)
		}
	}
	return out
}

// Close finalizes every active recording, for a graceful shutdown, and
// stops recording new streams. Safe to call twice.
func (r *Recorder) Close() {
	r.closeOnce.Do(func() { close(r.stop) })
	<-r.maintDone
	r.mu.Lock()
	r.closed = true
	recs := slices.Clone(r.active)
	r.mu.Unlock()
	for _, rc := range recs {
		// After Close the consumer is never called again, so finalize
		// owns the recording.
		rc.sub.Close()
		rc.finalize(nil)
	}
}

func (r *Recorder) remove(rc *recording) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active = slices.DeleteFunc(r.active, func(x *recording) bool { return x == rc })
}

// paths returns the folder for stream's files, created, and the base name
// of a recording started at start.
func (r *Recorder) paths(stream string, start time.Time) (dir, base string, err error) {
	pl := r.placement(stream)
	dir = filepath.Join(r.dir, filepath.FromSlash(pl.Dir))
	if !strings.HasPrefix(dir, r.dir+string(filepath.Separator)) {
		return "", "", errors.New("stream name escapes the recordings directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("creating the stream's recordings directory: %w", err)
	}
	return dir, pl.Prefix + "_" + start.UTC().Format("20060102T150405Z"), nil
}

// placement is where stream's files go: Config.Place's answer, or a
// folder and prefix named after the stream.
func (r *Recorder) placement(stream string) Placement {
	if r.place != nil {
		if pl := r.place(stream); pl.Dir != "" && pl.Prefix != "" {
			return pl
		}
	}
	name := SafeName(stream)
	return Placement{Dir: name, Prefix: name}
}

// maxNameLen keeps file names well under file system limits.
const maxNameLen = 100

// SafeName makes a stream name safe as one path element: letters,
// digits, '.', '_' and '-' are kept, everything else becomes '_', and it
// never starts with '.' (no "..", no hidden files).
func SafeName(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= maxNameLen {
			break
		}
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteRune(c)
		case c == '.' && b.Len() > 0:
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
