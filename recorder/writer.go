package recorder

import "github.com/reel-gateway/reel/ingest"

// containerWriter is what a recording needs from a container format: tracks
// are fixed when it is created, frames arrive per track in timestamp order
// and, across tracks, interleaved by timestamp.
type containerWriter interface {
	// WriteFrame appends one frame to track (an index into the tracks the
	// writer was created with) at ts milliseconds from the file's start.
	WriteFrame(track int, keyframe bool, ts int64, data []byte) error
	// Close writes Duration and Cues and closes the underlying file.
	Close() error
}

// trackSpec describes one track of a new file.
type trackSpec struct {
	codec ingest.Codec
	// width and height are the video's size from its first keyframe.
	width, height int
	// codecPrivate is the decoder configuration (avcC, hvcC, av1C, OpusHead).
	codecPrivate []byte
	channels     int
}

// containerFor says which container, by file extension, can carry codecs:
// WebM cannot carry H.264 or H.265, so such a stream is written as Matroska.
func containerFor(codecs []ingest.Codec) string {
	for _, c := range codecs {
		if c.Container() == "mkv" {
			return "mkv"
		}
	}
	return "webm"
}

// codecName is the short lower-case codec name used in metadata ("h264").
func codecName(c ingest.Codec) string {
	switch c {
	case ingest.H264:
		return "h264"
	case ingest.H265:
		return "h265"
	case ingest.VP8:
		return "vp8"
	case ingest.VP9:
		return "vp9"
	case ingest.AV1:
		return "av1"
	case ingest.Opus:
		return "opus"
	}
	return string(c)
}

// needsCodecPrivate reports whether a file of codec c cannot be decoded
// without the decoder configuration from a keyframe (avcC, hvcC, av1C):
// the recording waits for a keyframe that carries it.
func needsCodecPrivate(c ingest.Codec) bool {
	return c == ingest.H264 || c == ingest.H265 || c == ingest.AV1
}
