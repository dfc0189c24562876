package live

import (
	"fmt"
	"strings"
)

// Codec is a media codec Reel accepts from publishers.
type Codec string

// The codecs Reel accepts.
const (
	H264 Codec = "H264"
	H265 Codec = "H265"
	VP8  Codec = "VP8"
	VP9  Codec = "VP9"
	AV1  Codec = "AV1"
	Opus Codec = "Opus"
)

// MediaKind is audio or video.
type MediaKind string

// Media kinds, spelled as in SDP m-lines.
const (
	Video MediaKind = "video"
	Audio MediaKind = "audio"
)

// Output is a place a live stream can go.
type Output string

// Outputs of a live stream.
const (
	OutputWHEP   Output = "whep"
	OutputRTSP   Output = "rtsp"
	OutputHLS    Output = "hls"
	OutputRecord Output = "record"
)

// codecSpec is everything Reel knows about one codec, in one row, so a reader
// sees at once how each codec travels from WHIP to every output.
type codecSpec struct {
	mime      string
	kind      MediaKind
	clockRate uint32
	channels  uint16
	// container is the recording container: WebM cannot carry H.264, so an
	// H.264 stream is written as Matroska.
	container string
	// notOn lists outputs that cannot carry the codec, with the reason a
	// person reads in the API and in errors.
	notOn map[Output]string
}

var codecSpecs = map[Codec]codecSpec{
	H264: {mime: "video/H264", kind: Video, clockRate: 90000, container: "mkv"},
	// H.265: WebM cannot carry it either. Few browsers decode it, so WHEP
	// viewers of an H.265 stream need one that does (Safari, Chrome with a
	// hardware decoder); RTSP, HLS and recordings take it everywhere.
	H265: {mime: "video/H265", kind: Video, clockRate: 90000, container: "mkv"},
	VP8: {mime: "video/VP8", kind: Video, clockRate: 90000, container: "webm",
		notOn: map[Output]string{OutputHLS: "HLS cannot carry VP8 video; publish H.264 (or H.265, VP9, AV1) to watch this stream over HLS"}},
	VP9:  {mime: "video/VP9", kind: Video, clockRate: 90000, container: "webm"},
	AV1:  {mime: "video/AV1", kind: Video, clockRate: 90000, container: "webm"},
	Opus: {mime: "audio/opus", kind: Audio, clockRate: 48000, channels: 2, container: "webm"},
}

// DefaultVideoPreference lists the video codecs a WHIP answer accepts. The
// offer's order picks among them unless the configuration makes this order
// win (codecs.prefer: server): H.264 first because OBS and most hardware
// encoders send it and every output can carry it; H.265 last, after VP8,
// VP9 and AV1, since most browsers cannot watch it.
var DefaultVideoPreference = []Codec{H264, VP8, VP9, AV1, H265}

// DefaultAudioPreference is the audio counterpart of DefaultVideoPreference.
var DefaultAudioPreference = []Codec{Opus}

// ParseCodec reads a codec name as written in configuration ("h264", "vp8",
// "opus", ...), ignoring case.
func ParseCodec(name string) (Codec, error) {
	for c := range codecSpecs {
		if strings.EqualFold(string(c), strings.TrimSpace(name)) {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown codec %q (known: H264, H265, VP8, VP9, AV1, Opus)", name)
}

// CodecFromMime finds the codec for an SDP rtpmap encoding name or MIME type.
func CodecFromMime(name string) (Codec, bool) {
	name = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(name), "video/"), "audio/")
	for c := range codecSpecs {
		if strings.EqualFold(string(c), name) {
			return c, true
		}
	}
	return "", false
}

// MimeType is the codec's WebRTC MIME type ("video/H264").
func (c Codec) MimeType() string { return codecSpecs[c].mime }

// Kind says whether the codec is audio or video.
func (c Codec) Kind() MediaKind { return codecSpecs[c].kind }

// ClockRate is the codec's RTP clock rate.
func (c Codec) ClockRate() uint32 { return codecSpecs[c].clockRate }

// Container is the file extension a recording of this codec needs on its
// own: "mkv" for H.264 and H.265, "webm" otherwise.
func (c Codec) Container() string { return codecSpecs[c].container }

// CarriedBy reports whether out can carry the codec and, if not, why.
func (c Codec) CarriedBy(out Output) (ok bool, reason string) {
	if r, blocked := codecSpecs[c].notOn[out]; blocked {
		return false, r
	}
	return true, ""
}
