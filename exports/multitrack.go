package exports

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"

	"github.com/at-wat/ebml-go/webm"

	"github.com/reel-gateway/reel/recorder"
)

// source is one recording read for the multi-track file: its header, and
// which output track each of its tracks goes to.
type source struct {
	seg    segment
	header recorder.MatroskaHeader
	out    map[uint64]uint64 // its TrackNumber -> the output's
}

// multitrackTracks reads every segment's header and makes one output
// track per participant and kind: a participant's later segments join
// the track of their first when the codec and its setup (CodecPrivate)
// are the same, so a reconnect is a gap in one track; a participant who
// came back with another codec gets a second track, "name (2)".
func multitrackTracks(p *plan) ([]source, []mkvTrack, error) {
	var (
		sources []source
		tracks  []mkvTrack
	)
	type key struct{ participant, kind string }
	owned := map[key][]int{} // the output tracks (indexes) of a participant and kind
	for _, seg := range p.segments {
		f, err := os.Open(seg.path)
		if err != nil {
			return nil, nil, err
		}
		h, err := recorder.ReadHeader(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("recording %s: %w", seg.recording, err)
		}
		src := source{seg: seg, header: h, out: map[uint64]uint64{}}
		for _, te := range h.Tracks {
			kind := map[uint64]string{1: "video", 2: "audio"}[te.TrackType]
			if kind == "" {
				continue
			}
			k := key{seg.participant, kind}
			found := -1
			for _, i := range owned[k] {
				if tracks[i].CodecID == te.CodecID && bytes.Equal(tracks[i].CodecPrivate, te.CodecPrivate) {
					found = i
					break
				}
			}
			if found < 0 {
				name := seg.participant
				if n := len(owned[k]); n > 0 {
					name = fmt.Sprintf("%s (%d)", name, n+1)
				}
				tracks = append(tracks, outTrack(uint64(len(tracks)+1), name, te))
				found = len(tracks) - 1
				owned[k] = append(owned[k], found)
			}
			src.out[te.TrackNumber] = tracks[found].TrackNumber
		}
		sources = append(sources, src)
	}
	// The first video and the first audio track play by default.
	for _, typ := range []uint64{1, 2} {
		for i := range tracks {
			if tracks[i].TrackType == typ {
				tracks[i].FlagDefault = 1
				break
			}
		}
	}
	return sources, tracks, nil
}

func outTrack(number uint64, name string, te webm.TrackEntry) mkvTrack {
	t := mkvTrack{Name: name, TrackNumber: number, TrackUID: rand.Uint64() | 1, Language: "und",
		CodecID: te.CodecID, CodecPrivate: te.CodecPrivate, CodecDelay: te.CodecDelay, SeekPreRoll: te.SeekPreRoll,
		TrackType: te.TrackType, Audio: te.Audio, Video: te.Video}
	return t
}

// docTypeFor is "webm" when every track's codec is one WebM allows.
func docTypeFor(tracks []mkvTrack) string {
	for _, t := range tracks {
		switch t.CodecID {
		case "V_VP8", "V_VP9", "V_AV1", "A_OPUS", "A_VORBIS":
		default:
			return "matroska"
		}
	}
	return "webm"
}

// outFrame is a frame on the export's timeline, for the output track.
type outFrame struct {
	track    uint64
	keyframe bool
	ms       int64
	data     []byte
}

// writeMultitrack writes p as one Matroska file at path: every
// participant's video and audio as tracks of their own, each frame at its
// place on the export's timeline, without re-encoding. progress gets the
// share of the input read, 0 to 1. It returns the container ("webm" or
// "mkv").
func writeMultitrack(ctx context.Context, p *plan, path string, progress func(float64)) (string, error) {
	sources, tracks, err := multitrackTracks(p)
	if err != nil {
		return "", err
	}
	docType := docTypeFor(tracks)
	w, err := newMKVWriter(path, docType, p.occurrence.Manifest.ID, p.occurrence.Manifest.Start, tracks)
	if err != nil {
		return "", err
	}
	var total, read atomic.Int64
	for _, s := range sources {
		total.Add(s.seg.bytes)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	chans := make([]chan outFrame, len(sources))
	errs := make([]error, len(sources))
	for i, s := range sources {
		chans[i] = make(chan outFrame, 256)
		wg.Go(func() { errs[i] = s.frames(ctx, p.durationMS, chans[i], &read) })
	}
	werr := mergeFrames(ctx, chans, func(f outFrame) error {
		if total.Load() > 0 {
			progress(float64(read.Load()) / float64(total.Load()))
		}
		return w.WriteFrame(f.track, f.keyframe, f.ms, f.data)
	})
	cancel()
	wg.Wait()
	if werr == nil {
		werr = parent.Err()
	}
	for i, e := range errs {
		if werr == nil && e != nil && e != context.Canceled {
			werr = fmt.Errorf("reading recording %s: %w", sources[i].seg.recording, e)
		}
	}
	if werr != nil {
		w.abort()
		return "", werr
	}
	if err := w.Close(p.durationMS); err != nil {
		return "", fmt.Errorf("finishing the file: %w", err)
	}
	if docType == "webm" {
		return "webm", nil
	}
	return "mkv", nil
}

// frames sends the segment's frames that fall in [0, durationMS) of the
// export's timeline, in file order, to out, and closes it. A video track
// starts at its first keyframe in the range.
func (s source) frames(ctx context.Context, durationMS int64, out chan<- outFrame, read *atomic.Int64) error {
	defer close(out)
	f, err := os.Open(s.seg.path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(&ctxReader{ctx: ctx, r: f, n: read}, 256<<10)
	h, err := recorder.ReadHeader(r)
	if err != nil {
		return err
	}
	started := map[uint64]bool{}
	video := map[uint64]bool{}
	for _, te := range h.Tracks {
		video[te.TrackNumber] = te.TrackType == 1
	}
	var sendErr error
	scanErr := recorder.ScanFrames(r, h, func(fr recorder.StoredFrame) {
		track, ok := s.out[fr.Track]
		ms := fr.MS + s.seg.startMS
		if !ok || sendErr != nil || ms < 0 || ms >= durationMS {
			return
		}
		if !started[fr.Track] {
			if video[fr.Track] && !fr.Keyframe {
				return
			}
			started[fr.Track] = true
		}
		select {
		case out <- outFrame{track: track, keyframe: fr.Keyframe, ms: ms, data: fr.Data}:
		case <-ctx.Done():
			sendErr = ctx.Err()
		}
	})
	if sendErr != nil {
		return sendErr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return scanErr
}

// ctxReader ends a read when ctx is done, and counts bytes read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	n   *atomic.Int64
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// mergeFrames calls fn for the frames of every channel in time order (each
// channel's in its own order), until all are closed.
func mergeFrames(ctx context.Context, chans []chan outFrame, fn func(outFrame) error) error {
	h := &frameHeap{}
	for i, c := range chans {
		if f, ok := <-c; ok {
			heap.Push(h, headFrame{f, i})
		}
	}
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		top := heap.Pop(h).(headFrame)
		if err := fn(top.f); err != nil {
			return err
		}
		if f, ok := <-chans[top.src]; ok {
			heap.Push(h, headFrame{f, top.src})
		}
	}
	return nil
}

type headFrame struct {
	f   outFrame
	src int
}

type frameHeap []headFrame

func (h frameHeap) Len() int { return len(h) }
func (h frameHeap) Less(i, j int) bool {
	if h[i].f.ms != h[j].f.ms {
		return h[i].f.ms < h[j].f.ms
	}
	return h[i].src < h[j].src
}
func (h frameHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *frameHeap) Push(x any)   { *h = append(*h, x.(headFrame)) }
func (h *frameHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
