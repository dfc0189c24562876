package recorder

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
)

// The catalog keeps no database: the recordings and their sidecars are the
// record, and an index of a few thousand entries is rebuilt from them in
// milliseconds at start. A database would be a second truth that can
// disagree with the files after a crash or a manual clean-up.

// Query selects recordings from the catalog.
type Query struct {
	// Stream, if set, keeps only this stream's recordings.
	Stream string
	// From and To, if set, keep recordings overlapping [From, To).
	From, To time.Time
	// Limit is the page size: DefaultLimit if 0, at most MaxLimit.
	Limit int
	// Cursor continues a listing: a Page's NextCursor.
	Cursor string
}

// Page sizes for Catalog.List.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Page is one page of a listing, newest first.
type Page struct {
	Recordings []Info
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string
}

// Catalog errors.
var (
	ErrNotFound  = errors.New("no such recording")
	ErrRecording = errors.New("the recording is still in progress")
	ErrBadCursor = errors.New("the cursor is not one this server returned")
	// ErrOutside refuses a file that resolves outside the recordings
	// directory (a symbolic link put there after the scan).
	ErrOutside = errors.New("the recording file is outside the recordings directory")
	// ErrNotRegular refuses a recording whose file is not a regular file
	// (a FIFO or a device put there after the scan).
	ErrNotRegular = errors.New("the recording file is not a regular file")
)

// Catalog indexes the recordings under a directory. It is built by
// scanning the directory and kept current by the Recorder; the files are
// the source of truth. Safe for concurrent use.
type Catalog struct {
	root     string // absolute
	rootReal string // root with symlinks resolved
	log      *slog.Logger

	mu   sync.RWMutex
	byID map[string]*entry
}

// entry is one recording. live, while set, reports the metadata of a
// recording in progress.
type entry struct {
	info  Info
	final string // the final file name, which the sidecar is named after
	live  func() Info
}

func newCatalog(root string, log *slog.Logger) (*Catalog, error) {
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("resolving the recordings directory: %w", err)
	}
	return &Catalog{root: root, rootReal: resolved, log: log, byID: map[string]*entry{}}, nil
}

// fileGroup is what a scan found for one recording: its final file, its
// .part file and its sidecar, any of which may be missing.
type fileGroup struct {
	finalPath            string
	final, part, sidecar string // found files; "" if absent
	sidecarInfo          Info
	sidecarErr           error
}

// mediaExts are the recording file extensions.
var mediaExts = []string{".webm", ".mkv"}

// scan walks root (the root, stream folders, and meetings' occurrence
// folders inside meeting folders: two levels) and groups what it finds by
// recording. Symbolic links are never followed.
func scan(root string) ([]*fileGroup, error) {
	groups := map[string]*fileGroup{}
	group := func(final string) *fileGroup {
		g := groups[final]
		if g == nil {
			g = &fileGroup{finalPath: final}
			groups[final] = g
		}
		return g
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root {
				return err
			}
			return nil // an unreadable folder: list what can be read
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || depth(root, path) > 2) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		name := d.Name()
		switch {
		case hasMediaExt(strings.TrimSuffix(name, ".json")) && strings.HasSuffix(name, ".json"):
			group(strings.TrimSuffix(path, ".json")).sidecar = path
		case hasMediaExt(strings.TrimSuffix(name, ".part")) && strings.HasSuffix(name, ".part"):
			group(strings.TrimSuffix(path, ".part")).part = path
		case hasMediaExt(name):
			group(path).final = path
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning the recordings directory: %w", err)
	}
	out := make([]*fileGroup, 0, len(groups))
	for _, g := range groups {
		if g.sidecar != "" {
			g.sidecarInfo, g.sidecarErr = readSidecar(g.sidecar)
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *fileGroup) int { return strings.Compare(a.finalPath, b.finalPath) })
	return out, nil
}

// depth is how many folders path is below root.
func depth(root, path string) int {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return 0
	}
	return strings.Count(rel, string(filepath.Separator)) + 1
}

func hasMediaExt(name string) bool {
	return slices.Contains(mediaExts, filepath.Ext(name))
}

// load scans the directory, repairs what a crash left unfinished, and
// indexes every recording. repaired receives each repaired (or failed to
// repair) recording.
func (c *Catalog) load(repaired func(Info)) error {
	groups, err := scan(c.root)
	if err != nil {
		return err
	}
	for _, g := range groups {
		info, ok := c.resolve(g, repaired)
		if !ok {
			continue
		}
		c.add(info, g.finalPath)
	}
	return nil
}

// resolve turns a scanned group into its catalog entry, repairing it first
// if it is unfinished.
func (c *Catalog) resolve(g *fileGroup, repaired func(Info)) (Info, bool) {
	side := g.sidecar != "" && g.sidecarErr == nil
	// Unfinished: cut by a crash, or failed while being written (a full
	// disk) and not yet tried.
	unfinished := side && (g.sidecarInfo.State == StateRecording ||
		g.sidecarInfo.State == StateFailed && !strings.HasPrefix(g.sidecarInfo.Error, repairFailed))
	switch {
	case g.part != "" && (!side || unfinished),
		g.part == "" && g.final != "" && unfinished:
		info := c.repairEntry(g)
		if repaired != nil {
			repaired(info)
		}
		return info, true
	case g.part != "" && g.final != "" && g.sidecarInfo.State != StateFailed:
		// Repaired or finished, but the crash came before the .part file
		// was removed: the final file holds the same media.
		if err := os.Remove(g.part); err != nil {
			c.log.Warn("leftover unfinished file not removed", "file", g.part, "error", err)
		}
		g.part = ""
	}
	path := g.final
	if path == "" {
		path = g.part // a failed recording kept as it was
	}
	if path == "" {
		c.log.Warn("recording metadata without a recording file; not listed", "file", g.sidecar)
		return Info{}, false
	}
	if g.sidecar == "" || g.sidecarErr != nil {
		if g.sidecarErr != nil {
			c.log.Warn("recording metadata unreadable; reading the file instead", "file", g.sidecar, "error", g.sidecarErr)
		}
		return c.probeInfo(g, path), true
	}
	info := g.sidecarInfo
	info.Path = path
	if st, err := os.Stat(path); err == nil {
		info.Size = st.Size()
	}
	return info, true
}

// nameTime matches the start time in a recording's file name.
var nameTime = regexp.MustCompile(`_(\d{8}T\d{6}Z)(?:_\d+)?$`)

// probeInfo describes a recording file that has no metadata, from its
// name, its folder and its Matroska header.
func (c *Catalog) probeInfo(g *fileGroup, path string) Info {
	base := filepath.Base(g.finalPath)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	info := Info{ID: idOf(g.finalPath), Stream: stem, Container: strings.TrimPrefix(ext, "."), Path: path,
		State: StateFinished, Codecs: []string{}}
	if m := nameTime.FindStringSubmatchIndex(stem); m != nil {
		info.Stream = stem[:m[0]]
		if t, err := time.Parse("20060102T150405Z", stem[m[2]:m[3]]); err == nil {
			info.Start = t
		}
	}
	if dir := filepath.Dir(g.finalPath); dir != c.root {
		info.Stream = filepath.Base(dir)
	}
	st, err := os.Stat(path)
	if err == nil {
		info.Size = st.Size()
	}
	h, err := probeHeader(path)
	if err != nil {
		info.State, info.Error = StateFailed, "not a readable recording: "+err.Error()
	} else {
		if info.Start.IsZero() {
			info.Start = h.Info.DateUTC
		}
		info.DurationMS = int64(h.Info.Duration * float64(h.Info.TimecodeScale) / float64(time.Millisecond))
		for _, t := range h.Tracks {
			info.Codecs = append(info.Codecs, codecFromID(t.CodecID))
			if t.Video != nil && info.Width == 0 {
				info.Width, info.Height = int(t.Video.PixelWidth), int(t.Video.PixelHeight)
			}
		}
	}
	if info.Start.IsZero() && st != nil {
		info.Start = st.ModTime().UTC().Add(-time.Duration(info.DurationMS) * time.Millisecond)
	}
	info.Start = info.Start.UTC()
	info.End = info.Start.Add(time.Duration(info.DurationMS) * time.Millisecond)
	return info
}

// probeHeader reads a file's Matroska header.
func probeHeader(path string) (mkvHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return mkvHeader{}, err
	}
	defer f.Close()
	return readHeader(bufio.NewReader(f))
}

// codecFromID is the short codec name for a Matroska CodecID.
func codecFromID(id string) string {
	switch id {
	case "V_MPEG4/ISO/AVC":
		return "h264"
	case "V_MPEGH/ISO/HEVC":
		return "h265"
	case "V_VP8":
		return "vp8"
	case "V_VP9":
		return "vp9"
	case "V_AV1":
		return "av1"
	case "A_OPUS":
		return "opus"
	case "A_AAC":
		return "aac"
	}
	return strings.ToLower(id)
}

// idOf is a recording's id: its file name without extension, when that is
// a valid id, else a cleaned-up form of it.
func idOf(finalPath string) string {
	base := filepath.Base(finalPath)
	id := strings.TrimSuffix(base, filepath.Ext(base))
	if ValidID(id) {
		return id
	}
	return SafeName(id)
}

// ValidID reports whether id has the form of a recording id: 1 to 255
// letters, digits, '.', '_' or '-', not starting with '.'. It says nothing
// about whether the recording exists.
func ValidID(id string) bool {
	if id == "" || len(id) > 255 || id[0] == '.' {
		return false
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// add indexes a recording found on disk under a unique id. Files that
// share a name in two containers (x.mkv and x.webm, written by older
// versions) get distinct ids: the first in path order keeps the name,
// the next its name and container ("x-webm"). Scans see the files in the
// same order, so ids stay the same across restarts.
func (c *Catalog) add(info Info, final string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	base := idOf(final)
	id := base
	if c.byID[id] != nil {
		id = base + "-" + strings.TrimPrefix(filepath.Ext(final), ".")
	}
	for n := 2; c.byID[id] != nil; n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	info.ID = id
	c.byID[id] = &entry{info: info, final: final}
}

// put adds or replaces a recording the Recorder is writing or has written.
// live, if set, reports its metadata while it is being written.
func (c *Catalog) put(info Info, final string, live func() Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[info.ID] = &entry{info: info, final: final, live: live}
}

// snapshot returns every recording, with live metadata for those in
// progress.
func (c *Catalog) snapshot() []Info {
	c.mu.RLock()
	type item struct {
		id   string
		info Info
		live func() Info
	}
	items := make([]item, 0, len(c.byID))
	for id, e := range c.byID {
		items = append(items, item{id, e.info, e.live})
	}
	c.mu.RUnlock()
	out := make([]Info, 0, len(items))
	for _, it := range items {
		info := it.info
		if it.live != nil {
			// Called without c.mu: the recording's lock is taken inside.
			if in := it.live(); in.ID == it.id {
				info = in
			} else if got, ok := c.Get(it.id); ok {
				info = got // the file was finished meanwhile
			}
		}
		out = append(out, cloneInfo(info))
	}
	return out
}

func cloneInfo(in Info) Info {
	in.Codecs = append([]string{}, in.Codecs...)
	in.Tracks = append([]TrackInfo(nil), in.Tracks...)
	return in
}

// Get returns one recording's metadata.
func (c *Catalog) Get(id string) (Info, bool) {
	c.mu.RLock()
	e := c.byID[id]
	c.mu.RUnlock()
	if e == nil {
		return Info{}, false
	}
	if e.live != nil {
		if in := e.live(); in.ID == id {
			return cloneInfo(in), true
		}
		c.mu.RLock()
		e = c.byID[id]
		c.mu.RUnlock()
		if e == nil {
			return Info{}, false
		}
	}
	return cloneInfo(e.info), true
}

// newer orders recordings newest first; the id breaks ties.
func newer(a, b Info) int {
	if c := b.Start.Compare(a.Start); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// List returns the recordings q selects, newest first, one page at a time.
func (c *Catalog) List(q Query) (Page, error) { return Select(c.snapshot(), q) }

// Select returns the recordings of all that q selects, newest first, one
// page at a time, as List does (an archive adds recordings kept
// elsewhere). all is reordered.
func Select(all []Info, q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var after *Info
	if q.Cursor != "" {
		k, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		after = &k
	}
	now := time.Now()
	sel := all[:0]
	for _, in := range all {
		if q.Stream != "" && in.Stream != q.Stream {
			continue
		}
		end := in.End
		if in.State == StateRecording || end.IsZero() {
			end = now
		}
		if !q.From.IsZero() && end.Before(q.From) {
			continue
		}
		if !q.To.IsZero() && !in.Start.Before(q.To) {
			continue
		}
		if after != nil && newer(*after, in) >= 0 {
			continue // not past the cursor
		}
		sel = append(sel, in)
	}
	slices.SortFunc(sel, newer)
	page := Page{Recordings: sel}
	if len(sel) > limit {
		page.Recordings = sel[:limit]
		page.NextCursor = encodeCursor(sel[limit-1])
	}
	return page, nil
}

// A cursor is the sort key of the last recording of a page; the next page
// starts after it, so deletions between pages skip nothing.
func encodeCursor(in Info) string {
	raw := strconv.FormatInt(in.Start.UnixNano(), 10) + "/" + in.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (Info, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Info{}, ErrBadCursor
	}
	ns, id, ok := strings.Cut(string(raw), "/")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !ValidID(id) {
		return Info{}, ErrBadCursor
	}
	return Info{ID: id, Start: time.Unix(0, n)}, nil
}

// Stats summarizes the catalog, for metrics.
type Stats struct {
	// Recordings counts recordings by state.
	Recordings map[string]int
	// Bytes is the size of every recording file.
	Bytes int64
}

// Stats counts the recordings and their bytes.
func (c *Catalog) Stats() Stats {
	s := Stats{Recordings: map[string]int{StateRecording: 0, StateFinished: 0, StateRepaired: 0, StateFailed: 0}}
	for _, in := range c.snapshot() {
		s.Recordings[in.State]++
		s.Bytes += in.Size
	}
	return s
}

// Open opens a finished recording's file for reading. It refuses a file
// that is still being written, any path that resolves (through symbolic
// links) outside the recordings directory, and anything but a regular
// file: the open does not block (a FIFO would wait for a writer forever)
// and the type is checked on the opened file itself.
func (c *Catalog) Open(id string) (*os.File, Info, error) {
	info, ok := c.Get(id)
	if !ok {
		return nil, info, ErrNotFound
	}
	if info.State == StateRecording {
		return nil, info, ErrRecording
	}
	resolved, err := c.inside(info.Path)
	if err != nil {
		return nil, info, err
	}
	f, err := os.OpenFile(resolved, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, info, ErrNotFound
		}
		return nil, info, fmt.Errorf("opening recording %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, info, fmt.Errorf("reading recording %s: %w", id, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, info, ErrNotRegular
	}
	info.Size = st.Size()
	return f, info, nil
}

// inside resolves path and checks that it lies within the recordings
// directory.
func (c *Catalog) inside(path string) (string, error) {
	if path == "" {
		return "", ErrNotFound
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", ErrNotFound
		}
		return "", fmt.Errorf("resolving recording file: %w", err)
	}
	rel, err := filepath.Rel(c.rootReal, resolved)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		c.log.Error("recording file resolves outside the recordings directory; refused", "file", path, "resolved", resolved)
		return "", ErrOutside
	}
	return resolved, nil
}

// RelPath is a recording's path relative to the recordings directory, for
// showing to API users without revealing the server's layout.
func (c *Catalog) RelPath(path string) string {
	if rel, err := filepath.Rel(c.root, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.ToSlash(rel)
	}
	return filepath.Base(path)
}

// Delete removes a recording that is not in progress: its file, then its
// metadata. It returns what was deleted.
func (c *Catalog) Delete(id string) (Info, error) {
	c.mu.Lock()
	e := c.byID[id]
	if e == nil {
		c.mu.Unlock()
		return Info{}, ErrNotFound
	}
	if e.live != nil || e.info.State == StateRecording {
		c.mu.Unlock()
		return e.info, ErrRecording
	}
	delete(c.byID, id)
	c.mu.Unlock()

	info := e.info
	if _, err := c.inside(info.Path); err != nil && !errors.Is(err, ErrNotFound) {
		c.put(info, e.final, nil)
		return info, err
	}
	if err := os.Remove(info.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.put(info, e.final, nil)
		return info, fmt.Errorf("deleting recording %s: %w", id, err)
	}
	if err := os.Remove(sidecarPath(e.final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("recording deleted but not its metadata file", "recording", id, "error", err)
	}
	atomicfile.SyncDir(filepath.Dir(info.Path))
	return info, nil
}
