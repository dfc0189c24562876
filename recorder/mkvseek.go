package recorder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// Finding a time in a recording without reading all of it: the SeekHead
// says where the Cues are, the Cues where each cluster starts and at
// which time. Everything here falls back to reading from the first
// cluster when a file lacks any of it.

// locate finds the Segment's data (Info's position less its SeekHead
// offset) and, from there, the Cues.
func (h *mkvHeader) locate(sh webm.SeekHead, infoPos int64) {
	infoSeek, cuesSeek := int64(-1), int64(-1)
	for _, s := range sh.Seek {
		switch {
		case bytes.Equal(s.SeekID, ebml.ElementInfo.Bytes()):
			infoSeek = int64(s.SeekPosition)
		case bytes.Equal(s.SeekID, ebml.ElementCues.Bytes()):
			cuesSeek = int64(s.SeekPosition)
		}
	}
	if infoPos < 0 || infoSeek < 0 || infoSeek > infoPos {
		return
	}
	h.segmentData = infoPos - infoSeek
	if cuesSeek >= 0 {
		h.cues = h.segmentData + cuesSeek
	}
}

// readCues reads the Cues where the SeekHead says they are. A file without
// them (a recording cut by a crash has a Void there) has none: no error.
func readCues(r io.ReadSeeker, h mkvHeader) ([]webm.CuePoint, error) {
	if h.cues < 0 || !elementAt(r, h.cues, ebml.ElementCues) {
		return nil, nil
	}
	if _, err := r.Seek(h.cues, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seeking to the Cues: %w", err)
	}
	var doc struct {
		Cues webm.Cues `ebml:"Cues,stop"`
	}
	err := ebml.Unmarshal(bufio.NewReader(io.LimitReader(r, maxElementSize)), &doc, ebml.WithMaxLeafElementSize(maxElementSize))
	if !errors.Is(err, ebml.ErrReadStopped) {
		return nil, fmt.Errorf("reading the Cues: %w", err)
	}
	return doc.Cues.CuePoint, nil
}

// elementAt reports whether the element at offset pos of r is a t.
func elementAt(r io.ReadSeeker, pos int64, t ebml.ElementType) bool {
	id := t.Bytes()
	buf := make([]byte, len(id))
	if _, err := r.Seek(pos, io.SeekStart); err != nil {
		return false
	}
	_, err := io.ReadFull(r, buf)
	return err == nil && bytes.Equal(buf, id)
}

// firstFrameAt reads the first frame of the cluster at offset pos.
func firstFrameAt(r io.ReadSeeker, h mkvHeader, pos int64) (scannedFrame, bool) {
	if !elementAt(r, pos, ebml.ElementCluster) {
		return scannedFrame{}, false
	}
	if _, err := r.Seek(pos, io.SeekStart); err != nil {
		return scannedFrame{}, false
	}
	var first scannedFrame
	found := false
	_ = scanFramesUntil(bufio.NewReaderSize(r, 16<<10), h, func(f scannedFrame) bool {
		first, found = f, true
		return false
	})
	return first, found
}

// clusterBefore is the offset of a cluster that starts with a sync frame
// of track (every frame is one when sync is nil) at or before ms, by the
// Cues: the last such cue point no later than ms. Without Cues, or
// without such a cluster, it is the first cluster.
func clusterBefore(r io.ReadSeeker, h mkvHeader, track uint64, ms int64, sync func(scannedFrame) bool) int64 {
	cues, err := readCues(r, h)
	if err != nil || h.segmentData < 0 {
		return h.afterTracks
	}
	scale := int64(h.Info.TimecodeScale)
	for i := len(cues) - 1; i >= 0; i-- {
		c := cues[i]
		if int64(c.CueTime)*scale/1e6 > ms || len(c.CueTrackPositions) == 0 {
			continue
		}
		pos := h.segmentData + int64(c.CueTrackPositions[0].CueClusterPosition)
		if f, ok := firstFrameAt(r, h, pos); ok && f.track == track && (sync == nil || sync(f)) {
			return pos
		}
	}
	return h.afterTracks
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// stoppableReader ends a read early: once stopped, it reads nothing more.
type stoppableReader struct {
	r       io.Reader
	stopped bool
}

// errReadStopped is what a stopped reader returns; nobody sees it.
var errReadStopped = errors.New("reading stopped")

func (s *stoppableReader) Read(p []byte) (int, error) {
	if s.stopped {
		return 0, errReadStopped
	}
	return s.r.Read(p)
}
