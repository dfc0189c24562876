package recorder

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/reel-gateway/reel/internal/atomicfile"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/live/frames"
)

const (
	// keyframeRetry is how often a recording waiting for its first
	// keyframe asks the publisher again.
	keyframeRetry = time.Second
	// maxInterleaveLag is how long a track's frames wait for the other
	// track before being written anyway (the other track went quiet).
	maxInterleaveLag = 500 * time.Millisecond
	// segmentSlackMS lets a keyframe this much before a segment's nominal
	// end start the next one: timestamps rounded to ms put the keyframe
	// of a 1 s GOP at 1999 ms.
	segmentSlackMS = 50
	// maxJumpMS treats a larger jump of a track's timestamps as a
	// discontinuity (the publisher's clock restarted), not as a gap.
	maxJumpMS = 10_000
)

// recording is one stream's consumer. Every method but info runs on the
// subscription's goroutine, one packet at a time; finalize may also run on
// Recorder.Close's goroutine once the subscription has stopped.
type recording struct {
	rec    *Recorder
	stream *live.Stream
	log    *slog.Logger
	sub    *live.Subscription // set under rec.mu by Record

	tracks []*trackState // video first, then audio
	// layered is the simulcast video track's, once its layer is chosen.
	layered  *trackState
	hasVideo bool

	started bool
	stopped bool
	t0      time.Time // the first video keyframe's Time: ms 0
	now     time.Time // the latest packet's arrival
	// early holds audio frames that came before the first keyframe was
	// whole (a keyframe is large and arrives last): those at or after it
	// on the timeline are written once the file starts.
	early     []earlyFrame
	lastKFReq time.Time
	kfAsked   time.Time // when a keyframe was asked for and has not come
	lastKey   time.Time // arrival of the last video keyframe's first packet
	file      *partFile
	w         containerWriter // nil before the first file and once stopped
	partPath  string
	finalPath string
	il        interleaver

	// Segments: every file has the same tracks; the current one starts at
	// segOffset ms of the recording's timeline. files counts those opened.
	specs     []trackSpec
	container string
	streamLog *slog.Logger
	segOffset int64
	files     int

	fatalMu  sync.Mutex
	fatalErr error // from ebml-go's goroutine

	once sync.Once
	mu   sync.Mutex // guards meta
	meta Info
}

// trackState is one track's way from RTP packets to timed frames.
type trackState struct {
	track *live.Track
	index int // the track's index in the file
	// asm assembles frames: reorder, loss, depacketizing, keyframes.
	asm  *frames.Assembler
	emit func(frames.Frame) // rc.handle for this track, made once
	// layer is the simulcast layer recorded, chosen once the layers are
	// ranked (simulcast.go); nil for other tracks and until then, while
	// pre assembles every layer.
	layer     *live.Track
	pre       map[*live.Track]*frames.Assembler
	preFrames map[*live.Track][]frames.Frame // from each layer's first keyframe
	// next is the layer the recording moves to (simulcast.go), assembled
	// by nextAsm until its first keyframe; respec marks that keyframe,
	// which starts a new segment with its picture.
	next          *live.Track
	nextAsm       *frames.Assembler
	nextAsked     time.Time
	checkedLayers time.Time // when reconsider last looked
	moved         time.Time // when the recording last moved to another layer
	respec        bool

	// Frames are placed by their Time on the stream's timeline (the
	// stream's clock model, live.Clock), in ms after t0. jumpMS shifts a
	// track whose timestamps jumped (the publisher restarted its clock)
	// back next to its previous frame.
	timed     bool
	lastMS    int64
	jumpMS    int64
	nominalMS int64
	// The latest frame placed in RTP order (floorMS): its place and
	// timestamp.
	anchored  bool
	anchorMS  int64
	anchorRTP uint32

	// lostNoted is the loss count last reported to Config.OnEvent, at
	// lostAt.
	lostNoted uint64
	lostAt    time.Time
}

// earlyFrame is an audio frame waiting for the file to start.
type earlyFrame struct {
	ts *trackState
	f  *frame
	at time.Time
}

// maxEarly bounds the audio frames kept before the first keyframe: 5 s of
// 20 ms Opus frames.
const maxEarly = 250

func newRecording(r *Recorder, s *live.Stream) (*recording, error) {
	rc := &recording{rec: r, stream: s, log: r.log.With("stream", s.Name)}
	rc.streamLog = rc.log
	var codecs []string
	for _, kind := range []live.MediaKind{live.Video, live.Audio} {
		t := s.Track(kind)
		if t == nil {
			continue
		}
		var asm *frames.Assembler
		if t.Layers() == nil { // a simulcast track's comes with its layer
			var err error
			if asm, err = frames.New(t, frames.Config{RequestKeyframe: s.RequestKeyframe, Logger: rc.log, Clock: s.Clock()}); err != nil {
				return nil, err
			}
		}
		ts := &trackState{track: t, index: len(rc.tracks), asm: asm, nominalMS: 20}
		ts.emit = func(f frames.Frame) {
			if err := rc.handle(ts, f); err != nil {
				rc.finalize(err)
			}
		}
		if kind == live.Video {
			rc.hasVideo = true
			ts.nominalMS = 33
		}
		rc.tracks = append(rc.tracks, ts)
		codecs = append(codecs, codecName(t.Codec))
	}
	if len(rc.tracks) == 0 {
		return nil, errors.New("the stream has no tracks to record")
	}
	rc.il.q = make([][]queuedFrame, len(rc.tracks))
	rc.meta = Info{Stream: s.Name, Codecs: codecs, State: StateRecording}
	return rc, nil
}

func (rc *recording) trackOf(t *live.Track) *trackState {
	for _, ts := range rc.tracks {
		if ts.track == t {
			return ts
		}
	}
	return nil
}

// WritePacket implements live.Consumer.
func (rc *recording) WritePacket(p *live.Packet) {
	if rc.stopped {
		return
	}
	if p.Arrival.After(rc.now) {
		rc.now = p.Arrival
	}
	if rc.layered != nil {
		rc.reconsider(rc.layered, p.Arrival) // simulcast.go
	}
	ts := rc.trackOf(p.Track)
	if ts == nil {
		// A simulcast layer: only the recorded one goes on (simulcast.go).
		if p.Track.Parent() == nil {
			return
		}
		if ts = rc.trackOf(p.Track.Parent()); ts == nil || !rc.inRecordedLayer(ts, p) {
			return
		}
	}
	if ts.track.Kind == live.Video {
		rc.askForClusterKeyframe(p)
	}
	ts.asm.Push(p, ts.emit)
	rc.noteEvents(ts, p)
}

// askForClusterKeyframe keeps keyframes coming often enough that every
// cluster starts on one. WebRTC publishers send keyframes only when asked,
// and ebml-go cuts a cluster every maxClusterMS and lists it in Cues even
// when it does not start on a keyframe, which breaks seeking there. Ask
// early enough (500 ms covers a round trip and the encoder); OBS's usual
// 2 s keyframes need no asking. It goes by the packets' arrival, not by
// what was written, which lags while the stream's clock settles.
func (rc *recording) askForClusterKeyframe(p *live.Packet) {
	switch {
	case live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload):
		rc.lastKey, rc.kfAsked = p.Arrival, time.Time{}
	case !rc.lastKey.IsZero() && p.Arrival.Sub(rc.lastKey) >= (maxClusterMS-500)*time.Millisecond:
		rc.requestKeyframe(false)
	}
}

// StreamEnded implements live.StreamEnder: the publisher has gone. Frames
// still held while the stream's clock settled are written first.
func (rc *recording) StreamEnded() {
	for _, ts := range rc.tracks {
		if ts.asm != nil { // nil: a simulcast layer was never chosen
			ts.asm.Flush(ts.emit)
		}
	}
	rc.finalize(nil)
}

// handle takes one assembled frame of ts: the frame stage has dropped what
// loss damaged, and video frames before a keyframe.
func (rc *recording) handle(ts *trackState, in frames.Frame) error {
	if rc.stopped {
		return nil
	}
	f, err := toMatroska(ts.track.Codec, in)
	if err != nil {
		rc.log.Debug("recording dropped a frame", "kind", ts.track.Kind, "error", err)
		return nil
	}
	if !rc.started {
		ok, err := rc.maybeStart(ts, f, in.Time)
		if err != nil || !ok {
			return err
		}
		if err := rc.place(ts, f, in.Time); err != nil {
			return err
		}
		// Audio that came before the keyframe was whole, from the
		// keyframe's time on, by its own time.
		early := rc.early
		rc.early = nil
		for _, e := range early {
			if !e.at.Before(rc.t0) {
				if err := rc.place(e.ts, e.f, e.at); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return rc.place(ts, f, in.Time)
}

// maybeStart opens the file at the first video keyframe (or, for audio
// only, the first audio frame), so every recording starts on a keyframe.
// at is the frame's Time.
func (rc *recording) maybeStart(ts *trackState, f *frame, at time.Time) (bool, error) {
	if rc.hasVideo {
		if ts.track.Kind != live.Video {
			if len(rc.early) == maxEarly {
				rc.early = rc.early[1:]
			}
			rc.early = append(rc.early, earlyFrame{ts, f, at})
			return false, nil
		}
		if !startsPicture(f, ts.track.Codec) {
			rc.requestKeyframe(false)
			return false, nil
		}
	}
	rc.started = true
	rc.t0 = at
	if err := rc.open(f); err != nil {
		return false, err
	}
	return true, nil
}

// startsPicture reports whether f can open a file's video (the first
// file, or a segment with another layer's picture): a keyframe that says
// its size and, where the codec needs one, its decoder configuration.
func startsPicture(f *frame, c live.Codec) bool {
	return f.keyframe && f.width != 0 && f.height != 0 && (f.codecPrivate != nil || !needsCodecPrivate(c))
}

func (rc *recording) requestKeyframe(now bool) {
	if !now && time.Since(rc.lastKFReq) < keyframeRetry {
		return
	}
	rc.lastKFReq = time.Now()
	if rc.kfAsked.IsZero() {
		rc.kfAsked = rc.now
	}
	if l := rc.recordedLayer(); l != nil {
		rc.stream.RequestLayerKeyframe(l) // simulcast.go
		return
	}
	rc.stream.RequestKeyframe()
}

// keyframeWait is how long a keyframe the recording asked for may take
// before the meeting's manifest notes that it did not come.
const keyframeWait = 3 * time.Second

// noteEvents tells Config.OnEvent of lost packets (at most once a second
// per track, with the count since the last note) and of a keyframe asked
// for that did not come within keyframeWait, once the file has started.
func (rc *recording) noteEvents(ts *trackState, p *live.Packet) {
	if rc.rec.onEvent == nil || rc.w == nil {
		return
	}
	if lost := ts.asm.Lost(); lost > ts.lostNoted && p.Arrival.Sub(ts.lostAt) >= time.Second {
		rc.rec.onEvent(rc.info(), Event{Time: p.Arrival.UTC(), Type: "loss", Kind: string(ts.track.Kind), Lost: lost - ts.lostNoted})
		ts.lostNoted, ts.lostAt = lost, p.Arrival
	}
	if !rc.kfAsked.IsZero() && p.Arrival.Sub(rc.kfAsked) >= keyframeWait {
		rc.rec.onEvent(rc.info(), Event{Time: rc.kfAsked.UTC(), Type: "keyframe_unanswered", Kind: string(live.Video)})
		rc.kfAsked = time.Time{}
	}
}

// open fixes the tracks from the first frame and opens the first file.
func (rc *recording) open(first *frame) error {
	var specs []trackSpec
	var codecs []live.Codec
	for _, ts := range rc.tracks {
		spec := trackSpec{codec: ts.track.Codec, channels: int(ts.track.Channels)}
		if ts.track.Kind == live.Video {
			spec.width, spec.height, spec.codecPrivate = first.width, first.height, first.codecPrivate
		} else {
			spec.channels = max(spec.channels, 1)
			spec.codecPrivate = opusHead(spec.channels)
		}
		specs = append(specs, spec)
		codecs = append(codecs, ts.track.Codec)
	}
	rc.specs, rc.container = specs, containerFor(codecs)
	if rc.hasVideo {
		rc.mu.Lock()
		rc.meta.Width, rc.meta.Height = first.width, first.height
		rc.mu.Unlock()
	}
	// The file starts at the first keyframe's time on the stream's clock:
	// a meeting places it on its timeline by it.
	return rc.openFile(rc.t0.UTC())
}

// openFile creates the .part file of a recording (or of its next segment)
// starting at start, and writes the header.
func (rc *recording) openFile(start time.Time) error {
	container := rc.container
	dir, base, err := rc.rec.paths(rc.stream.Name, start)
	if err != nil {
		return err
	}
	var f osFile
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		rc.finalPath = filepath.Join(dir, name+"."+container)
		rc.partPath = rc.finalPath + ".part"
		if i > 100 {
			err = fmt.Errorf("no free file name for %s in %s", base, dir)
			break
		}
		if !rc.rec.nameFree(dir, name) {
			continue
		}
		if f, err = rc.rec.openFile(rc.partPath); !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("creating the recording file: %w", err)
	}
	rc.log = rc.streamLog.With("file", rc.finalPath)
	rc.mu.Lock()
	rc.file = newPartFile(f)
	pl := rc.rec.placement(rc.stream.Name)
	rc.meta = Info{Stream: rc.meta.Stream, Codecs: rc.meta.Codecs, Width: rc.meta.Width, Height: rc.meta.Height,
		ID:   filepath.Base(rc.finalPath[:len(rc.finalPath)-len(container)-1]),
		Path: rc.partPath, Container: container, Start: start, State: StateRecording,
		Meeting: pl.Meeting, Occurrence: pl.Occurrence, Participant: pl.Participant}
	for _, ts := range rc.tracks {
		rc.meta.Tracks = append(rc.meta.Tracks, TrackInfo{Kind: string(ts.track.Kind), Codec: codecName(ts.track.Codec), OffsetMS: -1})
	}
	rc.mu.Unlock()
	rc.fatalMu.Lock()
	rc.fatalErr = nil
	rc.fatalMu.Unlock()
	w, err := newMatroskaWriter(rc.file, container, start, rc.specs, rc.onFatal, rc.onWriterError)
	if err != nil {
		rc.file.Close()
		os.Remove(rc.partPath)
		return err
	}
	rc.w = w
	rc.files++
	if err := writeSidecar(sidecarPath(rc.finalPath), rc.info()); err != nil {
		rc.log.Warn("recording metadata not written", "error", err)
	}
	rc.rec.cat.put(rc.info(), rc.finalPath, rc.info)
	rc.log.Info("recording started", "container", container, "codecs", rc.meta.Codecs,
		"width", rc.meta.Width, "height", rc.meta.Height, "segment", rc.files)
	if rc.rec.onStart != nil {
		rc.rec.onStart(rc.info())
	}
	return nil
}

// nameFree reports whether a recording may be called name in dir: the
// name is its id, so it must be free in every container (a stream
// republished within the same second with another codec would otherwise
// write x.mkv beside x.webm, two recordings with one id), with no .part
// file or sidecar of either, and no id in the catalog.
func (r *Recorder) nameFree(dir, name string) bool {
	for _, ext := range mediaExts {
		final := filepath.Join(dir, name+ext)
		if exists(final) || exists(final+".part") || exists(sidecarPath(final)) {
			return false
		}
	}
	_, taken := r.cat.Get(name)
	return !taken
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func (rc *recording) onFatal(err error) {
	rc.fatalMu.Lock()
	defer rc.fatalMu.Unlock()
	if rc.fatalErr == nil {
		rc.fatalErr = err
	}
}

func (rc *recording) onWriterError(err error) {
	rc.log.Debug("recording writer skipped a frame", "error", err)
}

func (rc *recording) writerErr() error {
	if err := rc.file.Err(); err != nil {
		return fmt.Errorf("writing the recording file: %w", err)
	}
	rc.fatalMu.Lock()
	defer rc.fatalMu.Unlock()
	if rc.fatalErr != nil {
		return fmt.Errorf("writing the recording: %w", rc.fatalErr)
	}
	return nil
}

// place puts a frame on the file's timeline (at is its Time) and queues
// it for writing.
func (rc *recording) place(ts *trackState, f *frame, at time.Time) error {
	if !ts.timed {
		ts.timed, ts.lastMS = true, -1
	}
	ms := (at.Sub(rc.t0) + time.Millisecond/2).Milliseconds() + ts.jumpMS
	if ts.lastMS >= 0 && (ms < ts.lastMS-maxJumpMS || ms > ts.lastMS+maxJumpMS) {
		ts.jumpMS += ts.lastMS + ts.nominalMS - ms
		ms = ts.lastMS + ts.nominalMS
	}
	if ms < 0 {
		return nil // before the first picture
	}
	var spec *trackSpec
	if ts.respec {
		if !startsPicture(f, ts.track.Codec) {
			rc.requestKeyframe(false)
			return nil // the new layer's picture starts at a keyframe that says its size
		}
		next := rc.specs[ts.index]
		next.width, next.height, next.codecPrivate = f.width, f.height, f.codecPrivate
		spec, ts.respec = &next, false
	}
	floor, inOrder := ts.floorMS(f.rtpTS)
	ms = max(ms, floor, ts.lastMS+1)
	ts.lastMS = ms
	if inOrder {
		ts.anchored, ts.anchorMS, ts.anchorRTP = true, ms, f.rtpTS
	}
	for _, q := range rc.il.push(queuedFrame{track: ts.index, keyframe: f.keyframe, ts: ms, data: f.data, queued: rc.now, spec: spec}, rc.now) {
		if err := rc.write(q); err != nil {
			return err
		}
	}
	return nil
}

// floorMS is the earliest a frame with RTP timestamp rtp may be placed:
// most of its distance from the track's latest frame in RTP order, by
// their RTP timestamps. The stream's clock steps back when its delay
// estimate drops (a packet came quicker than any before); placed by it,
// two 20 ms Opus frames fell on one instant and decoders took the file
// for broken ("non monotonically increasing dts"). Held to nine tenths of
// their distance, frames absorb the step at a tenth of real time (100 ms
// in a second, the same for every track of the stream) and never
// overlap. inOrder is false for a frame older than that latest one (a
// publisher that sent it late): it is placed just after the frame before
// it, as ever, and the floor stays with the frames in order.
func (ts *trackState) floorMS(rtp uint32) (floor int64, inOrder bool) {
	if !ts.anchored {
		return 0, true
	}
	rate := int64(ts.track.ClockRate)
	if rate <= 0 {
		rate = int64(ts.track.Codec.ClockRate())
	}
	d := int64(int32(rtp - ts.anchorRTP))
	switch {
	case rate <= 0 || d > rate || d < -rate:
		// Frames a second or more apart (a gap, or a jump that jumpMS
		// handles) cannot overlap.
		return 0, true
	case d <= 0:
		return 0, false
	}
	return ts.anchorMS + d*900/rate, true
}

// errStopped ends a recording that the disk guard stopped between segments.
var errStopped = errors.New("recording stopped: disk almost full")

func (rc *recording) write(q queuedFrame) error {
	if rc.w == nil {
		return errStopped
	}
	// Track 0 is the video track, or the only audio one: a segment ends
	// just before one of its keyframes (every Opus frame is one), or
	// before the first keyframe of another simulcast layer, whose
	// picture the next segment's header describes.
	switch seg := rc.rec.segment.Milliseconds(); {
	case q.spec != nil:
		if err := rc.cut(q.ts, q.track, q.spec); err != nil {
			return err
		}
	case seg > 0 && q.track == 0 && q.ts-rc.segOffset >= seg-segmentSlackMS:
		if q.keyframe {
			if err := rc.cut(q.ts, 0, nil); err != nil {
				return err
			}
		} else {
			rc.requestKeyframe(false)
		}
	}
	ts := q.ts - rc.segOffset
	if err := rc.w.WriteFrame(q.track, q.keyframe, ts, q.data); err != nil {
		return fmt.Errorf("writing a frame: %w", err)
	}
	rc.mu.Lock()
	rc.meta.DurationMS = max(rc.meta.DurationMS, ts)
	if t := &rc.meta.Tracks[q.track]; t.OffsetMS < 0 {
		t.OffsetMS = ts
	}
	rc.mu.Unlock()
	return rc.writerErr()
}

// cut finishes the current file and opens the next segment, which starts
// with the frame at ts (a keyframe) on the recording's timeline: every
// frame goes to exactly one file, so segments join without a gap. spec,
// if set, is track's new description from that frame on.
func (rc *recording) cut(ts int64, track int, spec *trackSpec) error {
	start := rc.meta.Start.Add(time.Duration(ts-rc.segOffset) * time.Millisecond)
	rc.closeFile(nil)
	if reason := rc.rec.guard.check(); reason != "" {
		rc.log.Error("recording stopped at a segment boundary", "reason", reason)
		return errStopped
	}
	if spec != nil {
		rc.specs[track] = *spec
		if spec.width > 0 { // video
			rc.mu.Lock()
			rc.meta.Width, rc.meta.Height = spec.width, spec.height
			rc.mu.Unlock()
		}
	}
	rc.segOffset = ts
	if err := rc.openFile(start); err != nil {
		return fmt.Errorf("starting the next segment: %w", err)
	}
	return nil
}

// finalize closes the file (Cues, Duration), renames it to its final name
// and writes the metadata. cause, if set, is why the recording failed.
func (rc *recording) finalize(cause error) {
	rc.once.Do(func() {
		rc.stopped = true
		defer rc.rec.remove(rc)
		if rc.w == nil && rc.files > 0 {
			// Stopped between segments; every file is final already.
			if cause != nil && !errors.Is(cause, errStopped) {
				rc.log.Error("recording failed", "error", cause)
			}
			return
		}
		if rc.w == nil {
			if cause != nil {
				rc.log.Error("recording failed", "error", cause)
			} else {
				rc.log.Info("stream ended before its first keyframe: nothing recorded")
			}
			rc.mu.Lock()
			rc.meta.State, rc.meta.End = StateFailed, time.Now().UTC()
			if cause != nil {
				rc.meta.Error = cause.Error()
			}
			rc.mu.Unlock()
			return
		}
		if cause == nil {
			for _, q := range rc.il.flush() {
				if rc.write(q) != nil {
					break
				}
			}
		}
		if rc.w != nil {
			rc.closeFile(cause)
		}
	})
}

// closeFile finishes the current file: Cues and Duration, the final name,
// the metadata. cause, if set, is why the recording failed.
func (rc *recording) closeFile(cause error) {
	rc.w.Close() // returns once ebml-go has closed the file
	rc.w = nil
	err := cause
	if err == nil {
		err = rc.writerErr()
	}
	if err == nil {
		rc.fixZeroDuration()
		if n, cerr := keyframeCues(rc.partPath); cerr != nil {
			rc.log.Warn("the recording's Cues still list clusters that start without a keyframe", "error", cerr)
		} else if n > 0 {
			rc.log.Debug("dropped cue points of clusters that start without a keyframe", "count", n)
		}
	}
	path := rc.partPath
	if rerr := os.Rename(rc.partPath, rc.finalPath); rerr != nil {
		rc.log.Error("recording not renamed", "error", rerr)
		if err == nil {
			err = fmt.Errorf("renaming the finished recording: %w", rerr)
		}
	} else {
		path = rc.finalPath
		atomicfile.SyncDir(filepath.Dir(path))
	}
	rc.mu.Lock()
	// The file covers Start to End: the next segment starts just after.
	rc.meta.Path, rc.meta.End = path, rc.meta.Start.Add(time.Duration(rc.meta.DurationMS)*time.Millisecond)
	rc.meta.Size = rc.file.Size()
	if st, serr := os.Stat(path); serr == nil {
		rc.meta.Size = st.Size()
	}
	rc.meta.State = StateFinished
	if err != nil {
		rc.meta.State, rc.meta.Error = StateFailed, err.Error()
	}
	for i := range rc.meta.Tracks {
		rc.meta.Tracks[i].OffsetMS = max(rc.meta.Tracks[i].OffsetMS, 0)
	}
	rc.mu.Unlock()
	if sum, serr := fileSHA256(path); serr == nil {
		rc.mu.Lock()
		rc.meta.SHA256 = sum
		rc.mu.Unlock()
	} else {
		rc.log.Warn("recording checksum not computed", "error", serr)
	}
	info := rc.info()
	if serr := writeSidecar(sidecarPath(rc.finalPath), info); serr != nil {
		rc.log.Warn("recording metadata not written", "error", serr)
	}
	rc.rec.cat.put(info, rc.finalPath, nil)
	rc.rec.notify(info)
	if err != nil {
		rc.log.Error("recording failed", "error", err, "duration_ms", info.DurationMS, "size", info.Size)
		return
	}
	rc.log.Info("recording finished", "duration_ms", info.DurationMS, "size", info.Size)
}

// info returns a snapshot of the recording's metadata; safe from any
// goroutine.
func (rc *recording) info() Info {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	in := rc.meta
	in.Codecs = append([]string(nil), in.Codecs...)
	in.Tracks = append([]TrackInfo(nil), in.Tracks...) // write() sets their offsets
	if in.State == StateRecording && rc.file != nil {
		in.Size = rc.file.Size()
	}
	return in
}
