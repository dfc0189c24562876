package recorder

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"

	"github.com/reel-gateway/reel/live"
)

const (
	// cuesReservedBytes is the space kept after the header for Cues. About
	// 22 bytes per cue point: ~6000 clusters (over 1.5 hours at one cluster
	// a second); ebml-go thins longer recordings' cues out to fit.
	cuesReservedBytes = 128 << 10
	// minClusterMS keeps clusters from getting tiny when keyframes are
	// requested often; a video keyframe after it starts a new cluster.
	minClusterMS = 250
	// maxClusterMS bounds a cluster, and so what a crash can lose.
	maxClusterMS = 2000
	// opusPreSkip is the encoder delay in 48 kHz samples (6.5 ms), the value
	// libopus uses; CodecDelay says the same in nanoseconds.
	opusPreSkip     = 312
	opusCodecDelay  = uint64(6500 * time.Microsecond)
	opusSeekPreRoll = uint64(80 * time.Millisecond)
)

// matroskaWriter writes .webm and .mkv files with ebml-go. The two differ
// only in DocType: WebM is the Matroska subset for VP8/VP9/AV1 and Opus.
type matroskaWriter struct {
	ws []mkvcore.BlockWriteCloser
}

// newMatroskaWriter writes the header for tracks to w. ebml-go closes w when
// the writer is closed. onFatal receives ebml-go's errors: the default
// handler would panic and take the whole gateway down.
func newMatroskaWriter(w io.WriteCloser, container string, start time.Time, tracks []trackSpec, onFatal, onError func(error)) (*matroskaWriter, error) {
	var entries []webm.TrackEntry
	for i, t := range tracks {
		entry, err := trackEntry(uint64(i+1), t)
		if err != nil {
			return nil, err
		}
		entries = append(entries, entry)
	}
	return newMatroskaWriterEntries(w, container, start, entries, onFatal, onError)
}

// newMatroskaWriterEntries is newMatroskaWriter for ready track entries;
// repair uses it to rewrite a file with the tracks it already has.
func newMatroskaWriterEntries(w io.WriteCloser, container string, start time.Time, entries []webm.TrackEntry, onFatal, onError func(error)) (*matroskaWriter, error) {
	docType := "webm"
	if container == "mkv" {
		docType = "matroska"
	}
	header := &webm.EBMLHeader{
		EBMLVersion: 1, EBMLReadVersion: 1, EBMLMaxIDLength: 4, EBMLMaxSizeLength: 8,
		DocType: docType, DocTypeVersion: 4, DocTypeReadVersion: 2,
	}
	// A fresh Info per file: ebml-go sets its Duration.
	info := &webm.Info{TimecodeScale: uint64(time.Millisecond), MuxingApp: "Reel (ebml-go)", WritingApp: "Reel", DateUTC: start.UTC()}

	var descs []mkvcore.TrackDescription
	main := uint64(0)
	mainMin := int64(minClusterMS)
	for _, entry := range entries {
		descs = append(descs, mkvcore.TrackDescription{TrackNumber: entry.TrackNumber, TrackEntry: entry})
		if entry.TrackType == 1 && main == 0 {
			main = entry.TrackNumber
		}
	}
	if main == 0 && len(entries) > 0 {
		// Audio only: every Opus frame is a keyframe, so cut once a second.
		main, mainMin = entries[0].TrackNumber, 1000
	}
	ws, err := mkvcore.NewSimpleBlockWriter(w, descs,
		mkvcore.WithEBMLHeader(header),
		mkvcore.WithSegmentInfo(info),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cuesReservedBytes),
		mkvcore.WithMinMaxClusterDuration(main, mainMin, maxClusterMS),
		mkvcore.WithOnFatalHandler(onFatal),
		mkvcore.WithOnErrorHandler(onError),
	)
	if err != nil {
		return nil, fmt.Errorf("writing the %s header: %w", container, err)
	}
	return &matroskaWriter{ws: ws}, nil
}

func trackEntry(number uint64, t trackSpec) (webm.TrackEntry, error) {
	e := webm.TrackEntry{
		TrackNumber:  number,
		TrackUID:     rand.Uint64() | 1,
		CodecPrivate: t.codecPrivate,
	}
	switch t.codec {
	case live.H264:
		e.CodecID = "V_MPEG4/ISO/AVC"
	case live.H265:
		e.CodecID = "V_MPEGH/ISO/HEVC"
	case live.VP8:
		e.CodecID = "V_VP8"
	case live.VP9:
		e.CodecID = "V_VP9"
	case live.AV1:
		e.CodecID = "V_AV1"
	case live.Opus:
		e.CodecID = "A_OPUS"
		e.CodecDelay = opusCodecDelay
		e.SeekPreRoll = opusSeekPreRoll
	default:
		return e, fmt.Errorf("no Matroska mapping for codec %q", t.codec)
	}
	if t.codec.Kind() == live.Video {
		e.Name, e.TrackType = "video", 1
		e.Video = &webm.Video{PixelWidth: uint64(t.width), PixelHeight: uint64(t.height)}
	} else {
		e.Name, e.TrackType = "audio", 2
		e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: uint64(max(t.channels, 1))}
	}
	return e, nil
}

// WriteFrame implements containerWriter. ebml-go reads data after
// WriteFrame returns: the caller must not reuse it.
func (m *matroskaWriter) WriteFrame(track int, keyframe bool, ts int64, data []byte) error {
	if track < 0 || track >= len(m.ws) {
		return errors.New("no such track")
	}
	_, err := m.ws[track].Write(keyframe, ts, data)
	return err
}

// Close implements containerWriter. It returns once ebml-go has written
// Cues and Duration and closed the file.
func (m *matroskaWriter) Close() error {
	for _, w := range m.ws {
		w.Close()
	}
	return nil
}

// opusHead is the Opus identification header (RFC 7845 section 5.1) that
// Matroska wants as A_OPUS CodecPrivate.
func opusHead(channels int) []byte {
	h := []byte("OpusHead")
	h = append(h, 1, byte(channels))
	h = append(h, opusPreSkip&0xff, opusPreSkip>>8)
	h = append(h, 0x80, 0xbb, 0, 0) // 48000 Hz, little endian
	h = append(h, 0, 0, 0)          // output gain, channel mapping family 0
	return h
}
