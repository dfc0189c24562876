package testmedia

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v3/pkg/media/oggreader"
)

// opusClockRate is the Ogg Opus granule rate (RFC 7845 section 4).
const opusClockRate = 48000

// ReadOgg reads an Ogg Opus file into one Sample per Opus packet, every one a
// keyframe. pion's oggreader returns whole pages, so the file must hold one
// packet per page (ffmpeg -page_duration 20000, see testdata/generate.sh);
// ReadOgg checks that by comparing each page's granule advance with the
// duration coded in the packet's TOC byte and fails otherwise. Duration comes
// from the granule position; the first page (whose granule includes the
// encoder's start offset) and the final, possibly end-trimmed page fall back
// to the TOC duration.
func ReadOgg(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening Ogg file: %w", err)
	}
	defer f.Close()

	reader, header, err := oggreader.NewWith(f)
	if err != nil {
		return nil, fmt.Errorf("reading Ogg Opus header of %s: %w", path, err)
	}
	if header.SampleRate == 0 {
		return nil, fmt.Errorf("reading %s: zero sample rate in OpusHead", path)
	}

	var (
		samples     []Sample
		prevGranule uint64
		havePrev    bool
	)
	for page := 1; ; page++ {
		payload, ph, err := reader.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading Ogg page %d of %s: %w", page, path, err)
		}
		if len(payload) == 0 || bytes.HasPrefix(payload, []byte("OpusTags")) {
			continue
		}
		tocDur, err := OpusPacketDuration(payload)
		if err != nil {
			return nil, fmt.Errorf("reading Opus packet on page %d of %s: %w", page, path, err)
		}
		dur := tocDur
		if havePrev && ph.GranulePosition > prevGranule {
			granDur := granuleDuration(ph.GranulePosition - prevGranule)
			if granDur > tocDur {
				return nil, fmt.Errorf("reading %s: page %d spans %v but its first packet only %v; "+
					"it holds several packets (regenerate with ffmpeg -page_duration 20000)",
					path, page, granDur, tocDur)
			}
			dur = granDur
		}
		prevGranule, havePrev = ph.GranulePosition, true
		samples = append(samples, Sample{Data: payload, Duration: dur, Keyframe: true})
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("reading %s: no Opus packets", path)
	}
	// The last page's granule may be trimmed below a full packet; send it as
	// a full packet so pacing stays regular.
	last := &samples[len(samples)-1]
	if d, err := OpusPacketDuration(last.Data); err == nil {
		last.Duration = d
	}
	return samples, nil
}

func granuleDuration(samples uint64) time.Duration {
	return time.Duration(samples) * time.Second / opusClockRate
}

// OpusPacketDuration decodes the duration of an Opus packet from its TOC
// byte and, for code 3 packets, its frame count byte (RFC 6716 3.1-3.2).
func OpusPacketDuration(packet []byte) (time.Duration, error) {
	if len(packet) == 0 {
		return 0, errors.New("empty Opus packet")
	}
	toc := packet[0]
	frame := opusFrameDuration(toc >> 3)
	switch toc & 0x03 {
	case 0:
		return frame, nil
	case 1, 2:
		return 2 * frame, nil
	default:
		if len(packet) < 2 {
			return 0, errors.New("code 3 Opus packet without frame count")
		}
		return time.Duration(packet[1]&0x3f) * frame, nil
	}
}

// opusFrameDuration maps the TOC configuration number to a frame duration.
func opusFrameDuration(config byte) time.Duration {
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		return [...]time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // Hybrid: 10, 20 ms
		return [...]time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT: 2.5, 5, 10, 20 ms
		return [...]time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
}
