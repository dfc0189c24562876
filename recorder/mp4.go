package recorder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// MP4 for browsers: a finished recording (WebM or Matroska) rewritten
// frame for frame, without decoding, as fragmented MP4, which Safari and
// Firefox play where they play no H.264 or H.265 in Matroska. It is
// written while it is read: one fragment of one to two seconds at a
// time, nothing kept on disk.

// Fragments are cut at a keyframe of the main track once they hold
// minFragmentMS, and anywhere once they hold maxFragmentMS, so memory
// stays bounded whatever the keyframe interval.
const (
	minFragmentMS = 1000
	maxFragmentMS = 2000
	// clipEndSlackMS: once any frame is this far past a clip's end, no
	// frame of the clip follows (files are interleaved by time, give or
	// take maxInterleaveLag), even if a track ended before the clip did.
	clipEndSlackMS = 10_000
)

var (
	// ErrMP4Codec refuses a recording whose codec browsers do not play
	// from MP4 (VP8) or that MP4 cannot carry.
	ErrMP4Codec = errors.New("the recording's codec cannot be remuxed to MP4")
	// ErrClipEmpty says that a clip holds no frame: nothing was written.
	ErrClipEmpty = errors.New("the clip holds no media")
)

// Clip is the part of a recording to remux, as offsets from its first
// frame. The zero Clip is the whole recording; To zero is its end.
type Clip struct {
	From, To time.Duration
}

// MP4Remux writes one recording, or a clip of it, as fragmented MP4.
// A clip starts at the keyframe of its video at or before From, and all
// its tracks start there, at time zero; it ends before To.
type MP4Remux struct {
	r      io.ReadSeeker
	h      mkvHeader
	clip   Clip
	tracks []*mp4Track
	main   *mp4Track // the track whose keyframes start clips and fragments

	located   bool  // start and t0 are known (locate)
	start, t0 int64 // where reading starts, and the clip's first keyframe (ms)
	locateErr error
}

// NewMP4Remux reads the header of the recording in r and checks that
// MP4 can carry each of its tracks for a browser; the error wraps
// ErrMP4Codec if not. It reads no frame yet.
func NewMP4Remux(r io.ReadSeeker, clip Clip) (*MP4Remux, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading the recording: %w", err)
	}
	h, err := readHeader(bufio.NewReader(r))
	if err != nil {
		return nil, err
	}
	m := &MP4Remux{r: r, h: h, clip: clip}
	for i, e := range h.Tracks {
		t, err := newMP4Track(i+1, e)
		if err != nil {
			return nil, err
		}
		m.tracks = append(m.tracks, t)
		if m.main == nil || t.video && !m.main.video {
			m.main = t
		}
	}
	return m, nil
}

// Duration is the recording's duration by its header: zero if it has
// none (a file that was never finished).
func (m *MP4Remux) Duration() time.Duration {
	return time.Duration(m.h.Info.Duration * float64(m.h.Info.TimecodeScale))
}

// WriteTo writes the MP4 to w: the initialization segment, then one
// fragment after another as the recording is read. It returns ErrClipEmpty,
// having written nothing, when no frame falls in the clip. A recording
// whose end is damaged is written up to there, and the error says where
// reading stopped.
func (m *MP4Remux) WriteTo(w io.Writer) (int64, error) {
	to := m.clipEnd()
	start, t0, err := m.locate()
	if err != nil {
		return 0, err
	}
	durMS := m.Duration().Milliseconds()
	if durMS > 0 {
		durMS = min(durMS, to) - t0
	}
	cw := &countingWriter{w: w}
	f := &fragmenter{w: cw, tracks: m.tracks, main: m.main, durationMS: durMS}
	if _, err := m.r.Seek(start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("reading the recording: %w", err)
	}
	byNumber := map[uint64]*mp4Track{}
	for _, t := range m.tracks {
		byNumber[t.number] = t
	}
	open := len(m.tracks)
	var werr error
	rerr := scanFramesUntil(bufio.NewReaderSize(m.r, 256<<10), m.h, func(fr scannedFrame) bool {
		t := byNumber[fr.track]
		switch {
		case fr.ms-clipEndSlackMS >= to:
			return false
		case t == nil || t.ended || fr.ms < t0:
			return true
		case fr.ms >= to:
			t.ended = true
			open--
			return open > 0
		}
		werr = f.add(t, fr.ms-t0, fr.keyframe, fr.data)
		return werr == nil
	})
	if werr != nil {
		return cw.n, werr
	}
	if err := f.finish(); err != nil {
		return cw.n, err
	}
	if rerr != nil {
		return cw.n, fmt.Errorf("the MP4 ends where the recording could not be read: %w", rerr)
	}
	return cw.n, nil
}

// ClipStart is where the MP4 begins, as an offset from the recording's
// first frame: the keyframe at or before the clip's From (zero for the
// whole recording). Its time zero is there. It returns ErrClipEmpty when
// no frame falls in the clip; it reads the file's index and a few frames,
// not the clip.
func (m *MP4Remux) ClipStart() (time.Duration, error) {
	_, t0, err := m.locate()
	return time.Duration(t0) * time.Millisecond, err
}

// clipEnd is the clip's end in ms (MaxInt64: the recording's end).
func (m *MP4Remux) clipEnd() int64 {
	if m.clip.To > 0 {
		return m.clip.To.Milliseconds()
	}
	return math.MaxInt64
}

// locate finds, once, where reading starts and the clip's first keyframe.
func (m *MP4Remux) locate() (start, t0 int64, err error) {
	if !m.located {
		m.located = true
		from := m.clip.From.Milliseconds()
		if m.clipEnd() <= from || m.Duration() > 0 && m.clip.From > m.Duration() {
			m.locateErr = ErrClipEmpty
		} else {
			m.start, m.t0, m.locateErr = m.clipStart(from)
		}
	}
	return m.start, m.t0, m.locateErr
}

// clipStart finds where reading starts (a cluster's offset) and the time
// t0 of the main track's keyframe at or before from (or, if it has none,
// its first keyframe after from).
func (m *MP4Remux) clipStart(from int64) (start, t0 int64, err error) {
	main := m.main
	start = clusterBefore(m.r, m.h, main.number, from, func(f scannedFrame) bool { return main.isSync(f.keyframe) })
	if _, err := m.r.Seek(start, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("reading the recording: %w", err)
	}
	t0 = -1
	err = scanFramesUntil(bufio.NewReaderSize(m.r, 256<<10), m.h, func(fr scannedFrame) bool {
		if fr.track != main.number {
			return true
		}
		if fr.ms > from && t0 >= 0 {
			return false
		}
		if main.isSync(fr.keyframe) {
			t0 = fr.ms
		}
		return fr.ms <= from
	})
	if t0 < 0 {
		if err != nil {
			return 0, 0, fmt.Errorf("reading the recording: %w", err)
		}
		return 0, 0, ErrClipEmpty
	}
	return start, t0, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
