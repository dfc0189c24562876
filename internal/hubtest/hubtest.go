// Package hubtest publishes fixture media straight into an ingest.Hub, paced
// in real time, so the recorder and egress packages can be tested on real
// encoded media without a WebRTC peer in between.
package hubtest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/testmedia"
)

// Source is the media to publish.
type Source struct {
	Video     ingest.Codec // "" for none
	VideoFile string       // a file in testdata/, e.g. "vp8.ivf"; default by codec
	Audio     bool         // Opus from testdata/opus.ogg
	// Loop repeats the files until the context ends.
	Loop bool
	// SeparateParamSets sends H.264 SPS and PPS in packets of their own
	// (no STAP-A), as OBS does.
	SeparateParamSets bool
}

// Publisher is a running fixture publication.
type Publisher struct {
	Stream *ingest.Stream
	// KeyframeRequests counts RequestKeyframe calls that reached the publisher.
	KeyframeRequests atomic.Int64
	done             chan struct{}
	err              error
}

// Done is closed when all media was sent (or the context ended) and the
// stream was closed.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err is the sending error, valid after Done.
func (p *Publisher) Err() error { return p.err }

type trackMedia struct {
	track   *ingest.Track
	samples []testmedia.Sample
	pkt     rtp.Packetizer
}

// Publish makes name live on hub and sends src in the background.
func Publish(ctx context.Context, hub *ingest.Hub, name string, src Source) (*Publisher, error) {
	var media []*trackMedia
	if src.Video != "" {
		m, err := videoMedia(src)
		if err != nil {
			return nil, err
		}
		media = append(media, m)
	}
	if src.Audio {
		samples, err := testmedia.ReadOgg(filepath.Join(testmedia.Dir(), "opus.ogg"))
		if err != nil {
			return nil, err
		}
		t := &ingest.Track{Kind: ingest.Audio, Codec: ingest.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}
		media = append(media, &trackMedia{track: t, samples: samples,
			pkt: rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)})
	}
	p := &Publisher{done: make(chan struct{})}
	var tracks []*ingest.Track
	for _, m := range media {
		tracks = append(tracks, m.track)
	}
	s, err := hub.Publish(name, ingest.PublishSpec{
		Session: "hubtest-" + name, Protocol: "test", Tracks: tracks,
		RequestKeyframe: func() { p.KeyframeRequests.Add(1) },
	})
	if err != nil {
		return nil, err
	}
	p.Stream = s
	go p.run(ctx, media, src.Loop)
	return p, nil
}

func videoMedia(src Source) (*trackMedia, error) {
	file := src.VideoFile
	if file == "" {
		file = map[ingest.Codec]string{ingest.H264: "h264.h264", ingest.H265: "h265.h265", ingest.VP8: "vp8.ivf", ingest.VP9: "vp9.ivf", ingest.AV1: "av1.ivf"}[src.Video]
	}
	path := filepath.Join(testmedia.Dir(), file)
	t := &ingest.Track{Kind: ingest.Video, Codec: src.Video, ClockRate: 90000}
	var payloader rtp.Payloader
	var samples []testmedia.Sample
	var err error
	switch src.Video {
	case ingest.H264:
		t.PayloadType = 102
		profile := "640032"
		if strings.Contains(file, "baseline") {
			profile = "42e01f"
		}
		t.Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile
		payloader = &codecs.H264Payloader{DisableStapA: src.SeparateParamSets}
		samples, err = testmedia.ReadH264(path, 30)
	case ingest.H265:
		t.PayloadType = 104
		t.Fmtp = "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
		payloader = &codecs.H265Payloader{SkipAggregation: src.SeparateParamSets}
		samples, err = testmedia.ReadH265(path, 30)
	case ingest.VP8:
		t.PayloadType = 96
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
		_, samples, err = testmedia.ReadIVF(path)
	case ingest.VP9:
		t.PayloadType = 98
		t.Fmtp = "profile-id=0"
		payloader = &codecs.VP9Payloader{}
		_, samples, err = testmedia.ReadIVF(path)
	case ingest.AV1:
		t.PayloadType = 45
		payloader = &codecs.AV1Payloader{}
		_, samples, err = testmedia.ReadIVF(path)
	default:
		return nil, fmt.Errorf("hubtest: unsupported video codec %q", src.Video)
	}
	if err != nil {
		return nil, fmt.Errorf("hubtest: reading %s: %w", path, err)
	}
	return &trackMedia{track: t, samples: samples,
		pkt: rtp.NewPacketizer(1200, t.PayloadType, rand.Uint32(), payloader, rtp.NewRandomSequencer(), 90000)}, nil
}

// event is one sample due at a point of the timeline.
type event struct {
	at time.Duration
	m  *trackMedia
	s  testmedia.Sample
}

func (p *Publisher) run(ctx context.Context, media []*trackMedia, loop bool) {
	defer close(p.done)
	defer p.Stream.Close()
	start := time.Now()
	var offset time.Duration
	for {
		events, length := schedule(media, offset)
		buf := make([]byte, ingest.MaxPacketSize)
		for _, ev := range events {
			if wait := time.Until(start.Add(ev.at)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			samples := uint32(ev.s.Duration.Seconds() * float64(ev.m.track.ClockRate))
			for _, pkt := range ev.m.pkt.Packetize(ev.s.Data, samples) {
				n, err := pkt.MarshalTo(buf)
				if err != nil {
					p.err = err
					return
				}
				if err := p.Stream.WriteRTP(ev.m.track, buf[:n], time.Now()); err != nil {
					p.err = err
					return
				}
			}
		}
		if !loop || ctx.Err() != nil {
			return
		}
		offset += length
	}
}

// schedule merges the tracks' samples into one timeline starting at offset.
func schedule(media []*trackMedia, offset time.Duration) ([]event, time.Duration) {
	var events []event
	var length time.Duration
	for _, m := range media {
		at := offset
		for _, s := range m.samples {
			events = append(events, event{at: at, m: m, s: s})
			at += s.Duration
		}
		length = max(length, at-offset)
	}
	sortEvents(events)
	return events, length
}

func sortEvents(ev []event) {
	slices.SortStableFunc(ev, func(a, b event) int { return cmp.Compare(a.at, b.at) })
}
