package recorder

import (
	"bytes"
	"fmt"
	"io"

	amp4 "github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// fragmenter turns frames, in file order and on the clip's time, into an
// initialization segment and fragments (mediacommon's fmp4 writes both)
// and writes each as soon as it is complete.
type fragmenter struct {
	w          io.Writer
	tracks     []*mp4Track
	main       *mp4Track
	durationMS int64 // for mehd; 0 if unknown

	buf       seekablebuffer.Buffer
	initDone  bool
	seq       uint32
	fragStart int64 // ms of the current fragment's first frame; -1 before one
	hasFrames bool
}

// add takes one frame of track t at ms on the clip's time. The frame
// before it on t gets its duration, and the fragment is cut in front of
// it if it is time to. Matroska keeps presentation times; WebRTC video
// has no B-frames, so they are the decoding times as well.
func (f *fragmenter) add(t *mp4Track, ms int64, keyframe bool, data []byte) error {
	dts := ms * t.scale / 1000
	if t.held != nil {
		// Time never goes back or stands still within a track.
		dts = max(dts, t.held.dts+1)
		t.push(uint32(dts - t.held.dts))
	}
	if !f.initDone && keyframe {
		t.refine(data)
	}
	if f.hasFrames {
		span := ms - f.fragStart
		if span >= maxFragmentMS || t == f.main && t.isSync(keyframe) && span >= minFragmentMS {
			if err := f.flush(); err != nil {
				return err
			}
		}
	}
	if !f.hasFrames {
		f.fragStart, f.hasFrames = ms, true
	}
	t.held = &heldFrame{dts: dts, keyframe: keyframe, data: data}
	return nil
}

// push moves t's held frame into the fragment with duration d.
func (t *mp4Track) push(d uint32) {
	h := t.held
	if len(t.samples) == 0 {
		t.base = uint64(h.dts)
	}
	t.samples = append(t.samples, &fmp4.Sample{Duration: d, IsNonSyncSample: !t.isSync(h.keyframe), Payload: h.data})
	t.lastDur, t.held = d, nil
}

// finish gives each track's last frame a duration (its packet's for Opus,
// else the one before it) and writes the last fragment.
func (f *fragmenter) finish() error {
	for _, t := range f.tracks {
		if t.held == nil {
			continue
		}
		d := t.lastDur
		if !t.video {
			if n := opus.PacketDuration2(t.held.data); n > 0 {
				d = uint32(n * t.scale / 48000)
			}
		}
		if d == 0 {
			d = uint32(t.scale / 30)
		}
		t.push(d)
	}
	if err := f.flush(); err != nil {
		return err
	}
	if !f.initDone {
		return ErrClipEmpty
	}
	return nil
}

// flush writes the fragment made so far (and, before the first, the
// initialization segment).
func (f *fragmenter) flush() error {
	part := fmp4.Part{SequenceNumber: f.seq + 1}
	for _, t := range f.tracks {
		if len(t.samples) > 0 {
			part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.id, BaseTime: t.base, Samples: t.samples})
		}
	}
	f.hasFrames = false
	if len(part.Tracks) == 0 {
		return nil
	}
	if !f.initDone {
		if err := f.writeInit(); err != nil {
			return err
		}
		f.initDone = true
	}
	f.buf.Reset()
	if err := part.Marshal(&f.buf); err != nil {
		return fmt.Errorf("writing an MP4 fragment: %w", err)
	}
	for _, t := range f.tracks {
		t.samples = nil
	}
	f.seq++
	if _, err := f.w.Write(f.buf.Bytes()); err != nil {
		return fmt.Errorf("sending an MP4 fragment: %w", err)
	}
	return nil
}

// writeInit writes the initialization segment.
func (f *fragmenter) writeInit() error {
	init := fmp4.Init{}
	var hvcC []byte
	for _, t := range f.tracks {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: uint32(t.scale), Codec: t.codec})
		if t.hvcC != nil {
			hvcC = t.hvcC
		}
	}
	f.buf.Reset()
	if err := init.Marshal(&f.buf); err != nil {
		return fmt.Errorf("writing the MP4 initialization segment: %w", err)
	}
	b, err := completeInit(f.buf.Bytes(), f.durationMS, hvcC)
	if err != nil {
		return fmt.Errorf("writing the MP4 initialization segment: %w", err)
	}
	if _, err := f.w.Write(b); err != nil {
		return fmt.Errorf("sending the MP4 initialization segment: %w", err)
	}
	return nil
}

// completeInit adds to mediacommon's initialization segment what it
// leaves out, with go-mp4: the duration (mvex/mehd, in the movie's
// milliseconds), for players that read it before they reach the end
// (Chromium and ffmpeg go by the samples they have), and an
// H.265 recording's own hvcC in place of mediacommon's, whose constraint
// flags are wrong when the SPS has an emulation prevention byte there
// (see hevcDecoderConfig).
func completeInit(init []byte, durationMS int64, hvcC []byte) ([]byte, error) {
	var out seekablebuffer.Buffer
	w := amp4.NewWriter(&out)
	r := bytes.NewReader(init)
	_, err := amp4.ReadBoxStructure(r, func(h *amp4.ReadHandle) (any, error) {
		switch h.BoxInfo.Type {
		case amp4.BoxTypeHvcC():
			if hvcC == nil {
				return nil, w.CopyBox(r, &h.BoxInfo)
			}
			if _, err := w.StartBox(&amp4.BoxInfo{Type: amp4.BoxTypeHvcC()}); err != nil {
				return nil, err
			}
			if _, err := w.Write(hvcC); err != nil {
				return nil, err
			}
			_, err := w.EndBox()
			return nil, err
		case amp4.BoxTypeMoov(), amp4.BoxTypeTrak(), amp4.BoxTypeMdia(), amp4.BoxTypeMinf(), amp4.BoxTypeStbl(),
			amp4.BoxTypeStsd(), amp4.BoxTypeHvc1(), amp4.BoxTypeMvex():
			if _, err := w.StartBox(&h.BoxInfo); err != nil {
				return nil, err
			}
			box, _, err := h.ReadPayload()
			if err != nil {
				return nil, err
			}
			if _, err := amp4.Marshal(w, box, h.BoxInfo.Context); err != nil {
				return nil, err
			}
			if h.BoxInfo.Type == amp4.BoxTypeMvex() && durationMS > 0 {
				if err := writeBox(w, &amp4.Mehd{FullBox: amp4.FullBox{Version: 1}, FragmentDurationV1: uint64(durationMS)}); err != nil {
					return nil, err
				}
			}
			if _, err := h.Expand(); err != nil {
				return nil, err
			}
			_, err = w.EndBox()
			return nil, err
		default:
			return nil, w.CopyBox(r, &h.BoxInfo)
		}
	})
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// writeBox writes one whole box with go-mp4.
func writeBox(w *amp4.Writer, box amp4.IBox) error {
	if _, err := w.StartBox(&amp4.BoxInfo{Type: box.GetType()}); err != nil {
		return err
	}
	if _, err := amp4.Marshal(w, box, amp4.Context{}); err != nil {
		return err
	}
	_, err := w.EndBox()
	return err
}
