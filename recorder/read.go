package recorder

import "io"

// Reading a finished recording from outside the package (the meeting
// exports build files from the recordings' frames, as they are stored).

// MatroskaHeader is a recording's EBML header, Segment Info and Tracks,
// as ReadHeader reads them.
type MatroskaHeader = mkvHeader

// ReadHeader reads the EBML header, Segment Info and Tracks of a Matroska
// or WebM file, and leaves r at the element after Tracks.
func ReadHeader(r io.Reader) (MatroskaHeader, error) { return readHeader(r) }

// StoredFrame is one frame of a recording as stored: its track number,
// whether it is a keyframe, its time in ms from the file's start and its
// bytes (valid only during the callback).
type StoredFrame struct {
	Track    uint64
	Keyframe bool
	MS       int64
	Data     []byte
}

// ScanFrames reads the clusters that follow the header (r as ReadHeader
// left it) and calls fn for every frame, in file order. Reading stops at
// the end of the file or at the first damaged element; the error says
// why, after fn has seen every whole frame before it.
func ScanFrames(r io.Reader, h MatroskaHeader, fn func(StoredFrame)) error {
	return scanFrames(r, h, func(f scannedFrame) {
		fn(StoredFrame{Track: f.track, Keyframe: f.keyframe, MS: f.ms, Data: f.data})
	})
}
