package recorder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"

	"github.com/reel-gateway/reel/internal/atomicfile"
)

// maxElementSize bounds what reading a damaged or foreign file allocates
// for one element; no frame comes near it.
const maxElementSize = 32 << 20

// repairFailed starts the Error of a recording that repair could not fix;
// such a recording is not tried again.
const repairFailed = "could not be repaired: "

// mkvHeader is what a Matroska file says before its first cluster.
type mkvHeader struct {
	DocType string
	Info    webm.Info
	Tracks  []webm.TrackEntry
	// Where things are, as offsets from where readHeader began (the start
	// of the file): the first element after Tracks, and the Cues by the
	// SeekHead (-1: none, or no SeekHead to find them). CueClusterPosition
	// counts from segmentData (-1 when unknown).
	afterTracks, cues, segmentData int64
}

// readHeader reads the EBML header, Segment Info and Tracks of a Matroska
// or WebM file, and leaves r at the element after Tracks.
func readHeader(r io.Reader) (mkvHeader, error) {
	var doc struct {
		Header  webm.EBMLHeader `ebml:"EBML"`
		Segment struct {
			SeekHead webm.SeekHead `ebml:"SeekHead"`
			Info     webm.Info     `ebml:"Info"`
			Tracks   webm.Tracks   `ebml:"Tracks,stop"`
		} `ebml:"Segment"`
	}
	cr := &countingReader{r: r}
	var infoPos int64 = -1
	hook := func(e *ebml.Element) {
		if e.Type == ebml.ElementInfo {
			infoPos = int64(e.Position)
		}
	}
	err := ebml.Unmarshal(cr, &doc, ebml.WithMaxLeafElementSize(maxElementSize), ebml.WithElementReadHooks(hook))
	if !errors.Is(err, ebml.ErrReadStopped) {
		if err == nil {
			err = errors.New("the file ends before its Tracks")
		}
		return mkvHeader{}, fmt.Errorf("reading the Matroska header: %w", err)
	}
	h := mkvHeader{DocType: doc.Header.DocType, Info: doc.Segment.Info, Tracks: doc.Segment.Tracks.TrackEntry,
		afterTracks: cr.n, cues: -1, segmentData: -1}
	h.locate(doc.Segment.SeekHead, infoPos)
	if len(h.Tracks) == 0 {
		return h, errors.New("reading the Matroska header: the file has no tracks")
	}
	if h.Info.TimecodeScale == 0 {
		h.Info.TimecodeScale = uint64(time.Millisecond) // the Matroska default
	}
	return h, nil
}

// scannedFrame is one frame read back from a file, its timestamp in ms.
type scannedFrame struct {
	track    uint64
	keyframe bool
	ms       int64
	data     []byte
}

// scanFrames reads the clusters that follow the header (r as readHeader
// left it) and calls fn for every SimpleBlock's frames, in file order.
// Reading stops at the end of the file or at the first damaged element;
// the error says why, after fn has seen every whole block before it.
func scanFrames(r io.Reader, h mkvHeader, fn func(scannedFrame)) error {
	return scanFramesUntil(r, h, func(f scannedFrame) bool { fn(f); return true })
}

// scanFramesUntil is scanFrames that also stops, without an error, once
// fn returns false. r may also be at any Cluster of the file.
func scanFramesUntil(r io.Reader, h mkvHeader, fn func(scannedFrame) bool) error {
	sr := &stoppableReader{r: r}
	var body struct {
		Cluster struct {
			Timecode    uint64     `ebml:"Timecode"`
			SimpleBlock ebml.Block `ebml:"SimpleBlock"`
		} `ebml:"Cluster"`
	}
	var clusterTC uint64
	hook := func(e *ebml.Element) {
		switch e.Type {
		case ebml.ElementTimecode:
			clusterTC, _ = e.Value.(uint64)
		case ebml.ElementSimpleBlock:
			b, ok := e.Value.(ebml.Block)
			if !ok || sr.stopped {
				return
			}
			ticks := int64(clusterTC) + int64(b.Timecode)
			ms := ticks * int64(h.Info.TimecodeScale) / int64(time.Millisecond)
			for _, d := range b.Data {
				if !sr.stopped && !fn(scannedFrame{track: b.TrackNumber, keyframe: b.Keyframe, ms: ms, data: d}) {
					sr.stopped = true
				}
			}
		}
	}
	err := ebml.Unmarshal(sr, &body, ebml.WithElementReadHooks(hook), ebml.WithMaxLeafElementSize(maxElementSize))
	if err != nil && !sr.stopped {
		return fmt.Errorf("reading clusters: %w", err)
	}
	return nil
}

// containerOf maps a DocType to the file extension Reel uses.
func containerOf(docType string) string {
	if docType == "webm" {
		return "webm"
	}
	return "mkv"
}

// repairResult is what a repair made of one unfinished recording.
type repairResult struct {
	frames     int
	durationMS int64
	truncated  error // why reading stopped early, if it did
}

// repair rewrites src, a recording cut by a crash, as dst: the same tracks
// and frames, through the recorder's own writer, so dst gets Duration and
// Cues. It writes to a temporary file and renames it over dst only once it
// is complete; src is never modified.
func repair(src, dst string, start time.Time) (repairResult, error) {
	var res repairResult
	in, err := os.Open(src)
	if err != nil {
		return res, fmt.Errorf("opening the unfinished recording: %w", err)
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil && st.Size() == 0 {
		return res, errors.New("the file is empty: the gateway stopped before writing any media")
	}
	br := bufio.NewReaderSize(in, 1<<20)
	h, err := readHeader(br)
	if err != nil {
		return res, err
	}
	if start.IsZero() {
		start = h.Info.DateUTC
	}
	index := map[uint64]int{}
	for i, t := range h.Tracks {
		index[t.TrackNumber] = i
	}

	tmp := dst + ".repair"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return res, fmt.Errorf("creating the repaired file: %w", err)
	}
	pf := newPartFile(f)
	var fatal error
	w, err := newMatroskaWriterEntries(pf, containerOf(h.DocType), start, h.Tracks,
		func(err error) {
			if fatal == nil {
				fatal = err
			}
		}, func(error) {})
	if err != nil {
		pf.Close()
		os.Remove(tmp)
		return res, err
	}
	last := map[int]int64{}
	res.truncated = scanFrames(br, h, func(fr scannedFrame) {
		i, ok := index[fr.track]
		if !ok {
			return
		}
		if prev, seen := last[i]; seen && fr.ms < prev {
			return // out of order: the writer would refuse it
		}
		last[i] = fr.ms
		if w.WriteFrame(i, fr.keyframe, fr.ms, fr.data) == nil {
			res.frames++
			res.durationMS = max(res.durationMS, fr.ms)
		}
	})
	w.Close() // returns once ebml-go has written Cues and Duration and closed pf
	if err := pf.Err(); err != nil {
		fatal = err
	}
	if fatal == nil && res.frames == 0 {
		fatal = errors.New("no media was written before the gateway stopped")
		if res.truncated != nil {
			fatal = fmt.Errorf("no readable media: %w", res.truncated)
		}
	}
	if fatal != nil {
		os.Remove(tmp)
		return res, fatal
	}
	if res.durationMS == 0 && patchDuration(tmp, 20) == nil {
		res.durationMS = 20 // one frame: see fixZeroDuration
	}
	_, _ = keyframeCues(tmp) // without it, players may seek to a cluster with no keyframe
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("renaming the repaired file: %w", err)
	}
	atomicfile.SyncDir(filepath.Dir(dst))
	return res, nil
}

// repairEntry repairs one unfinished recording found at start: its .part
// file (or, if a crash came between the rename and the metadata, its final
// file) is rewritten to the final name and the sidecar says repaired. A
// recording that cannot be repaired keeps its file and is marked failed.
func (c *Catalog) repairEntry(g *fileGroup) Info {
	info := g.sidecarInfo
	src := g.part
	if src == "" {
		src = g.final
	}
	fromSidecar := g.sidecar != "" && g.sidecarErr == nil && info.ID != ""
	if !fromSidecar {
		info = c.probeInfo(g, src)
	}
	wasFailed := fromSidecar && info.State == StateFailed
	log := c.log.With("stream", info.Stream, "recording", info.ID, "file", src)
	if wasFailed {
		log.Info("repairing a recording that failed while being written", "error", info.Error)
	} else {
		log.Info("repairing a recording left unfinished by an earlier stop")
	}
	dst := g.finalPath
	res, err := repair(src, dst, info.Start)
	st, _ := os.Stat(src)
	if err != nil {
		why := repairFailed + err.Error()
		if wasFailed && info.Error != "" {
			why += " (it had failed: " + info.Error + ")"
		}
		info.State, info.Error, info.Path = StateFailed, why, src
		info.End = info.Start
		if st != nil {
			info.Size = st.Size()
			if st.ModTime().After(info.Start) {
				info.End = st.ModTime().UTC()
			}
		}
		log.Error("recording could not be repaired; its file is kept", "error", err)
	} else {
		if src != dst {
			if rerr := os.Remove(src); rerr != nil {
				log.Warn("the unfinished file was not removed after its repair", "error", rerr)
			}
		}
		info.State, info.Error, info.Path = StateRepaired, "", dst
		info.DurationMS = res.durationMS
		info.End = info.Start.Add(time.Duration(res.durationMS) * time.Millisecond)
		if st, serr := os.Stat(dst); serr == nil {
			info.Size = st.Size()
		}
		// The repaired file's own checksum, for a meeting's manifest.
		if sum, serr := fileSHA256(dst); serr == nil {
			info.SHA256 = sum
		}
		for i := range info.Tracks {
			info.Tracks[i].OffsetMS = max(info.Tracks[i].OffsetMS, 0)
		}
		attrs := []any{"duration_ms", res.durationMS, "size", info.Size}
		if res.truncated != nil {
			attrs = append(attrs, "read_until", strings.TrimPrefix(res.truncated.Error(), "reading clusters: "))
		}
		log.Info("recording repaired", attrs...)
	}
	if err := writeSidecar(sidecarPath(g.finalPath), info); err != nil {
		log.Warn("recording metadata not written", "error", err)
	}
	return info
}
