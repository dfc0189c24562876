// Package hubtest publishes fixture media straight into a live.Hub, paced
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

	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// Source is the media to publish.
type Source struct {
	Video     live.Codec // "" for none
	VideoFile string     // a file in testdata/, e.g. "vp8.ivf"; default by codec
	Audio     bool       // Opus from testdata/opus.ogg
	AudioFile string     // another Ogg Opus file in testdata/ (implies Audio)
	// Loop repeats the files until the context ends.
	Loop bool
	// SeparateParamSets sends H.264 SPS and PPS in packets of their own
	// (no STAP-A), as OBS does.
	SeparateParamSets bool
	// Simulcast sends H.264 or VP8 video as three layers, rids "q"
	// (160x90), "h" (320x180) and "f" (640x360), from the fixtures made
	// for it (same frames and GOP); VideoFile is then unused.
	Simulcast bool
	// KeyframeOnRequest answers a keyframe request as an encoder does:
	// the video (every layer, or the layer asked for) goes on from its
	// file's first frame, a keyframe, at the next frame. Without it the
	// files play on and requests are only counted.
	KeyframeOnRequest bool
	// WithholdKeyframes is a simulcast layer's rid ("f", say) whose
	// keyframes after its first are never sent, its other frames are: a
	// browser short of CPU lets its top layer's keyframes wait for
	// seconds.
	WithholdKeyframes string
	// LoseFirstKeyframe is a simulcast layer's rid whose first keyframe
	// is not sent: pion v3 reads a layer's first packets to learn its
	// rid, and they are lost. With WithholdKeyframes on the same layer,
	// the layer's size is never shown.
	LoseFirstKeyframe string
	// LateLayer is a simulcast layer's rid whose media starts LateBy
	// after the others, at a keyframe: a browser holds its top layer back
	// while its bandwidth estimate ramps up. It is not also PauseLayer.
	LateLayer string
	LateBy    time.Duration
	// PauseLayer is a simulcast layer's rid that sends nothing from
	// PauseAt for PauseFor, then goes on at a keyframe: a browser
	// suspends its top layer while its bandwidth is short.
	PauseLayer        string
	PauseAt, PauseFor time.Duration
	// VideoDelay sends every video sample this long after its capture
	// (the audio at once), as an encoder that takes longer over video
	// does; the Sender Reports still give each sample its capture time.
	VideoDelay time.Duration
}

// simulcastFiles are the layer fixtures, lowest first.
var simulcastFiles = map[live.Codec][3]string{
	live.H264: {"h264-160.h264", "h264-320.h264", "h264.h264"},
	live.VP8:  {"vp8-160.ivf", "vp8-320.ivf", "vp8.ivf"},
}

// Publisher is a running fixture publication.
type Publisher struct {
	Stream *live.Stream
	// KeyframeRequests counts RequestKeyframe calls that reached the publisher.
	KeyframeRequests atomic.Int64
	// LayerKeyframeRequests counts requests for one simulcast layer, by
	// the layer's index (q, h, f).
	LayerKeyframeRequests [3]atomic.Int64
	done                  chan struct{}
	err                   error
}

// Done is closed when all media was sent (or the context ended) and the
// stream was closed.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err is the sending error, valid after Done.
func (p *Publisher) Err() error { return p.err }

type trackMedia struct {
	track   *live.Track
	samples []testmedia.Sample
	pkt     rtp.Packetizer
	// lastSR is when the track last sent an RTCP Sender Report: like a
	// WebRTC encoder it sends one with its first packet, then every second.
	lastSR time.Time
	// next is the sample sent at the next event, and restart a keyframe
	// request that sets it back to 0 (Source.KeyframeOnRequest).
	next    int
	restart atomic.Bool
	// withhold: the track's keyframes after its first are not sent
	// (Source.WithholdKeyframes).
	withhold, sentKeyframe bool
	// loseFirst: the track's first keyframe is not sent
	// (Source.LoseFirstKeyframe).
	loseFirst bool
	// pauseFrom, pauseTo: the track sends nothing in between, then goes on
	// at its file's first frame (Source.PauseLayer; Source.LateLayer is
	// a pause from the start).
	pauseFrom, pauseTo time.Duration
	paused             bool
	// delay: every sample is sent this long after its point of the
	// timeline, its capture time (Source.VideoDelay).
	delay time.Duration
}

// Publish makes name live on hub and sends src in the background.
func Publish(ctx context.Context, hub *live.Hub, name string, src Source) (*Publisher, error) {
	var media []*trackMedia
	var tracks []*live.Track
	switch {
	case src.Simulcast:
		files, ok := simulcastFiles[src.Video]
		if !ok {
			return nil, fmt.Errorf("hubtest: no simulcast fixtures for %q", src.Video)
		}
		var parent *live.Track
		for i, f := range files {
			layer := src
			layer.VideoFile = f
			m, err := videoMedia(layer)
			if err != nil {
				return nil, err
			}
			if parent == nil {
				parent = m.track
				if err := parent.AddLayers([]string{"q", "h", "f"}); err != nil {
					return nil, err
				}
				tracks = append(tracks, parent)
			}
			m.track = parent.Layers()[i]
			m.withhold = src.WithholdKeyframes != "" && m.track.RID == src.WithholdKeyframes
			m.loseFirst = src.LoseFirstKeyframe != "" && m.track.RID == src.LoseFirstKeyframe
			switch {
			case src.LateLayer != "" && m.track.RID == src.LateLayer:
				m.pauseFrom, m.pauseTo = 0, src.LateBy
			case src.PauseLayer != "" && m.track.RID == src.PauseLayer:
				m.pauseFrom, m.pauseTo = src.PauseAt, src.PauseAt+src.PauseFor
			}
			m.delay = src.VideoDelay
			media = append(media, m)
		}
	case src.Video != "":
		m, err := videoMedia(src)
		if err != nil {
			return nil, err
		}
		m.delay = src.VideoDelay
		media = append(media, m)
		tracks = append(tracks, m.track)
	}
	if src.Audio || src.AudioFile != "" {
		samples, err := testmedia.ReadOgg(filepath.Join(testmedia.Dir(), cmp.Or(src.AudioFile, "opus.ogg")))
		if err != nil {
			return nil, err
		}
		t := &live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}
		media = append(media, &trackMedia{track: t, samples: samples,
			pkt: rtp.NewPacketizer(1200, 111, rand.Uint32(), &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)})
		tracks = append(tracks, t)
	}
	p := &Publisher{done: make(chan struct{})}
	restart := func(t *live.Track) {
		for _, m := range media {
			if src.KeyframeOnRequest && m.track.Kind == live.Video && (t == nil || m.track == t) {
				m.restart.Store(true)
			}
		}
	}
	s, err := hub.Publish(name, live.PublishSpec{
		Session: "hubtest-" + name, Protocol: "test", Tracks: tracks,
		RequestKeyframe: func() {
			p.KeyframeRequests.Add(1)
			restart(nil)
		},
		RequestLayerKeyframe: func(l *live.Track) {
			for i, x := range l.Parent().Layers() {
				if x == l {
					p.LayerKeyframeRequests[i].Add(1)
				}
			}
			restart(l)
		},
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
		file = map[live.Codec]string{live.H264: "h264.h264", live.H265: "h265.h265", live.VP8: "vp8.ivf", live.VP9: "vp9.ivf", live.AV1: "av1.ivf"}[src.Video]
	}
	path := filepath.Join(testmedia.Dir(), file)
	t := &live.Track{Kind: live.Video, Codec: src.Video, ClockRate: 90000}
	var payloader rtp.Payloader
	var samples []testmedia.Sample
	var err error
	switch src.Video {
	case live.H264:
		t.PayloadType = 102
		profile := "640032"
		if strings.Contains(file, "baseline") {
			profile = "42e01f"
		}
		t.Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile
		payloader = &codecs.H264Payloader{DisableStapA: src.SeparateParamSets}
		samples, err = testmedia.ReadH264(path, 30)
	case live.H265:
		t.PayloadType = 104
		t.Fmtp = "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
		payloader = &codecs.H265Payloader{SkipAggregation: src.SeparateParamSets}
		samples, err = testmedia.ReadH265(path, 30)
	case live.VP8:
		t.PayloadType = 96
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
		_, samples, err = testmedia.ReadIVF(path)
	case live.VP9:
		t.PayloadType = 98
		t.Fmtp = "profile-id=0"
		payloader = &codecs.VP9Payloader{}
		_, samples, err = testmedia.ReadIVF(path)
	case live.AV1:
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

// event is one sample captured at a point of the timeline and sent at
// send (later by its track's delay).
type event struct {
	at, send time.Duration
	m        *trackMedia
	s        testmedia.Sample
}

func (p *Publisher) run(ctx context.Context, media []*trackMedia, loop bool) {
	defer close(p.done)
	defer p.Stream.Close()
	start := time.Now()
	var offset time.Duration
	for {
		events, length := schedule(media, offset)
		buf := make([]byte, live.MaxPacketSize)
		for _, ev := range events {
			if wait := time.Until(start.Add(ev.send)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			// The timeline is the files'; the sample sent at each of its
			// points is the next one, or the first after a keyframe
			// request (all of a file's frames last the same).
			m := ev.m
			if m.pauseTo > 0 {
				if ev.at >= m.pauseFrom && ev.at < m.pauseTo {
					// An encoder's RTP clock runs on while a layer
					// sends nothing: its timestamps are capture times.
					m.paused = true
					m.pkt.SkipSamples(uint32(ev.s.Duration.Seconds() * float64(m.track.ClockRate)))
					continue
				}
				if m.paused {
					m.paused, m.next = false, 0
				}
			}
			if m.restart.Swap(false) || m.next >= len(m.samples) {
				m.next = 0
			}
			sample := m.samples[m.next]
			m.next++
			if sample.Keyframe {
				if m.withhold && m.sentKeyframe {
					continue
				}
				lost := m.loseFirst && !m.sentKeyframe
				m.sentKeyframe = true
				if lost {
					continue
				}
			}
			samples := uint32(sample.Duration.Seconds() * float64(ev.m.track.ClockRate))
			pkts := ev.m.pkt.Packetize(sample.Data, samples)
			for _, pkt := range pkts {
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
			if now := time.Now(); len(pkts) > 0 && now.Sub(ev.m.lastSR) >= time.Second {
				// The sample was captured at start+at on the publisher's
				// (here, the gateway's) NTP clock, as encoders report it.
				p.Stream.WriteSenderReport(ev.m.track, start.Add(ev.at), pkts[0].Timestamp, now)
				ev.m.lastSR = now
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
			events = append(events, event{at: at, send: at + m.delay, m: m, s: s})
			at += s.Duration
		}
		length = max(length, at-offset)
	}
	sortEvents(events)
	return events, length
}

func sortEvents(ev []event) {
	slices.SortStableFunc(ev, func(a, b event) int { return cmp.Compare(a.send, b.send) })
}
