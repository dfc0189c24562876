package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// Cues that players can seek to. ebml-go lists every cluster it starts in
// the Cues, and it starts one every maxClusterMS whether or not a keyframe
// came (so that a crash loses little): when the publisher is slow to answer
// the keyframe request that precedes a cut (recording.go), a cluster starts
// with a video frame that is not a keyframe, and a player that seeks to its
// cue point shows broken pictures until the next keyframe. Once the file is
// closed, keyframeCues rewrites the Cues in the space ebml-go reserved for
// them, without those cue points.

// keyframeCues drops, from the Cues of the closed file at path, every cue
// point whose cluster starts with a video frame that is not a keyframe. It
// reports how many it dropped. A file without Cues, or without video, is
// left as it is.
func keyframeCues(path string) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h, err := readHeader(f)
	if err != nil {
		return 0, err
	}
	video := uint64(0)
	for _, t := range h.Tracks {
		if t.TrackType == 1 {
			video = t.TrackNumber
		}
	}
	if video == 0 || h.cues < 0 || h.segmentData < 0 {
		return 0, nil
	}
	cues, err := readCues(f, h)
	if err != nil || len(cues) == 0 {
		return 0, err
	}
	kept := make([]webm.CuePoint, 0, len(cues))
	for _, c := range cues {
		if len(c.CueTrackPositions) == 0 {
			continue
		}
		pos := h.segmentData + int64(c.CueTrackPositions[0].CueClusterPosition)
		if fr, ok := firstFrameAt(f, h, pos); ok && fr.track == video && !fr.keyframe {
			continue
		}
		kept = append(kept, c)
	}
	dropped := len(cues) - len(kept)
	if dropped == 0 {
		return 0, nil
	}
	space, err := reservedCuesSpace(f, h.cues)
	if err != nil {
		return 0, err
	}
	b, err := cuesInto(kept, space)
	if err != nil {
		return 0, err
	}
	if _, err := f.WriteAt(b, h.cues); err != nil {
		return 0, fmt.Errorf("writing the Cues: %w", err)
	}
	return dropped, f.Sync()
}

// reservedCuesSpace is the size of the Cues element at pos and of the Void
// that follows it, if one does: the space ebml-go reserved for Cues.
func reservedCuesSpace(r io.ReadSeeker, pos int64) (int64, error) {
	n, err := elementSize(r, pos)
	if err != nil {
		return 0, err
	}
	if elementAt(r, pos+n, ebml.ElementVoid) {
		v, err := elementSize(r, pos+n)
		if err != nil {
			return 0, err
		}
		n += v
	}
	return n, nil
}

// elementSize is the whole size (ID, size and data) of the EBML element
// at pos.
func elementSize(r io.ReadSeeker, pos int64) (int64, error) {
	var buf [12]byte
	if _, err := r.Seek(pos, io.SeekStart); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return 0, fmt.Errorf("reading an element header: %w", err)
	}
	idLen := vintLen(buf[0])
	if idLen == 0 || idLen > 4 {
		return 0, errors.New("not an EBML element")
	}
	sizeLen := vintLen(buf[idLen])
	if sizeLen == 0 {
		return 0, errors.New("an EBML element with a bad size")
	}
	size := uint64(buf[idLen]) & (0xff >> sizeLen)
	for _, c := range buf[idLen+1 : idLen+sizeLen] {
		size = size<<8 | uint64(c)
	}
	return int64(idLen+sizeLen) + int64(size), nil
}

// vintLen is the length of the EBML variable-size integer that starts with
// b (0: not one).
func vintLen(b byte) int {
	for n := 1; n <= 8; n++ {
		if b&(0x80>>(n-1)) != 0 {
			return n
		}
	}
	return 0
}

// cuesInto encodes a Cues element of points followed by a Void so that the
// two fill exactly space bytes.
func cuesInto(points []webm.CuePoint, space int64) ([]byte, error) {
	var doc struct {
		Cues webm.Cues `ebml:"Cues"`
	}
	doc.Cues.CuePoint = points
	var buf bytes.Buffer
	if err := ebml.Marshal(&doc, &buf); err != nil {
		return nil, fmt.Errorf("encoding the Cues: %w", err)
	}
	b := buf.Bytes()
	rest := space - int64(len(b))
	switch {
	case rest < 0:
		return nil, errors.New("the Cues do not fit the space reserved for them")
	case rest == 1:
		// A Void takes at least 2 bytes: write the Cues' size one byte
		// longer instead (EBML allows a longer size than needed).
		wide, err := widenSize(b, 4)
		if err != nil {
			return nil, err
		}
		return wide, nil
	case rest == 0:
		return b, nil
	}
	return append(b, voidOf(rest)...), nil
}

// widenSize re-encodes the size of the element b (whose ID takes idLen
// bytes) one byte longer.
func widenSize(b []byte, idLen int) ([]byte, error) {
	sizeLen := vintLen(b[idLen])
	if sizeLen == 0 || sizeLen == 8 {
		return nil, errors.New("cannot widen the size of an element")
	}
	size := uint64(b[idLen]) & (0xff >> sizeLen)
	for _, c := range b[idLen+1 : idLen+sizeLen] {
		size = size<<8 | uint64(c)
	}
	n := sizeLen + 1
	out := make([]byte, 0, len(b)+1)
	out = append(out, b[:idLen]...)
	for i := n - 1; i >= 0; i-- {
		out = append(out, byte(size>>(8*i)))
	}
	out[idLen] |= 0x80 >> (n - 1)
	return append(out, b[idLen+sizeLen:]...), nil
}

// voidOf is an EBML Void element of exactly n bytes (n >= 2).
func voidOf(n int64) []byte {
	// The size takes the fewest bytes that hold what is left after it.
	for sizeLen := int64(1); sizeLen <= 8; sizeLen++ {
		data := n - 1 - sizeLen
		if data < 0 || data >= 1<<(7*sizeLen)-1 {
			continue
		}
		b := make([]byte, n)
		b[0] = 0xEC
		for i := int64(0); i < sizeLen; i++ {
			b[1+i] = byte(uint64(data) >> (8 * (sizeLen - 1 - i)))
		}
		b[1] |= 0x80 >> (sizeLen - 1)
		return b
	}
	return nil
}
