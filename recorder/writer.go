package recorder

import "github.com/reel-gateway/reel/live"

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
	codec live.Codec
	// width and height are the video's size from its first keyframe.
	width, height int
	// codecPrivate is the decoder configuration (avcC, hvcC, av1C, OpusHead).
	codecPrivate []byte
	channels     int
}

// containerFor says which container, by file extension, can carry codecs:
// WebM cannot carry H.264 or H.265, so such a stream is written as Matroska.
func containerFor(codecs []live.Codec) string {
	for _, c := range codecs {
		if c.Container() == "mkv" {
			return "mkv"
		}
	}
	return "webm"
}

// codecName is the short lower-case codec name used in metadata ("h264").
func codecName(c live.Codec) string {
	switch c {
	case live.H264:
		return "h264"
	case live.H265:
		return "h265"
	case live.VP8:
		return "vp8"
	case live.VP9:
		return "vp9"
	case live.AV1:
		return "av1"
	case live.Opus:
		return "opus"
	}
	return string(c)
}

// needsCodecPrivate reports whether a file of codec c cannot be decoded
// without the decoder configuration from a keyframe (avcC, hvcC, av1C):
// the recording waits for a keyframe that carries it.
func needsCodecPrivate(c live.Codec) bool {
	return c == live.H264 || c == live.H265 || c == live.AV1
}
