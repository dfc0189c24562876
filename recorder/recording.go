package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/rtpreorderer"
	"github.com/pion/rtp"

	"github.com/reel-gateway/reel/ingest"
)

const (
	// keyframeRetry is how often a recording waiting for its first
	// keyframe asks the publisher again.
	keyframeRetry = time.Second
	// maxInterleaveLag is how long a track's frames wait for the other
	// track before being written anyway (the other track went quiet).
	maxInterleaveLag = 500
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
	stream *ingest.Stream
	log    *slog.Logger
	sub    *ingest.Subscription // set under rec.mu by Record

	tracks   []*trackState // video first, then audio
	hasVideo bool

	started   bool
	stopped   bool
	t0        time.Time // arrival of the first video keyframe: ms 0
	lastKFReq time.Time
	lastKeyMS int64 // timeline ms of the last video keyframe written
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
	track *ingest.Track
	index int // the track's index in the file
	// reorder puts late packets back in sequence and reports losses. It is
	// deprecated upstream in favour of rtcpreceiver.Receiver, which also
	// sends RTCP; the ingest side owns RTCP here, so the standalone one fits.
	reorder rtpreorderer.Reorderer //nolint:staticcheck
	depack  depacketizer

	// After a loss, the frame being assembled is damaged: drop the frame
	// with skipTS (the timestamp of the first packet after the loss).
	skipping, skipSet bool
	skipTS            uint32
	needKeyframe      bool

	// Timestamps: RTP timestamps unwrapped to 64 bit, then placed on the
	// file's timeline at offsetMS from the frame with timestamp base.
	unwrapped bool
	lastRaw   uint32
	ext       int64
	timed     bool
	base      int64
	offsetMS  int64
	lastMS    int64
	nominalMS int64
}

func newRecording(r *Recorder, s *ingest.Stream) (*recording, error) {
	rc := &recording{rec: r, stream: s, log: r.log.With("stream", s.Name)}
	rc.streamLog = rc.log
	var codecs []string
	for _, kind := range []ingest.MediaKind{ingest.Video, ingest.Audio} {
		t := s.Track(kind)
		if t == nil {
			continue
		}
		d, err := newDepacketizer(t)
		if err != nil {
			return nil, err
		}
		ts := &trackState{track: t, index: len(rc.tracks), depack: d, nominalMS: 20}
		ts.reorder.BufferSize = 16
		if kind == ingest.Video {
			rc.hasVideo = true
			ts.reorder.BufferSize = 64
			ts.nominalMS = 33
		}
		ts.reorder.Initialize()
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

func (rc *recording) trackOf(t *ingest.Track) *trackState {
	for _, ts := range rc.tracks {
		if ts.track == t {
			return ts
		}
	}
	return nil
}

// WritePacket implements ingest.Consumer.
func (rc *recording) WritePacket(p *ingest.Packet) {
	if rc.stopped {
		return
	}
	ts := rc.trackOf(p.Track)
	if ts == nil {
		return
	}
	// The reorderer and the depacketizers keep packets past this call;
	// the pooled packet is not ours to keep, so copy what they need.
	pkt := &rtp.Packet{
		Header: rtp.Header{
			Marker: p.RTP.Marker, PayloadType: p.RTP.PayloadType,
			SequenceNumber: p.RTP.SequenceNumber, Timestamp: p.RTP.Timestamp, SSRC: p.RTP.SSRC,
		},
		Payload: bytes.Clone(p.RTP.Payload),
	}
	pkts, lost := ts.reorder.Process(pkt)
	for i, q := range pkts {
		if n := missingBefore(pkts, i, lost); n > 0 {
			rc.onLoss(ts, n)
		}
		if err := rc.handle(ts, q, p.Arrival); err != nil {
			rc.finalize(err)
			return
		}
	}
}

// missingBefore is how many packets were lost just before pkts[i]. The
// reorderer reports a loss only once it gives up waiting for the missing
// packet: it then returns every packet it held, all of them after the
// first gap (with maybe more gaps between them), and the total missing.
// Each gap must reset the depacketizer before the packet after it, or
// the frames after a lost one would be written without their reference.
func missingBefore(pkts []*rtp.Packet, i int, lost uint) uint {
	if lost == 0 {
		return 0
	}
	if i > 0 {
		return uint(pkts[i].SequenceNumber - pkts[i-1].SequenceNumber - 1)
	}
	first := int(lost)
	for j := 1; j < len(pkts); j++ {
		first -= int(pkts[j].SequenceNumber - pkts[j-1].SequenceNumber - 1)
	}
	return uint(max(first, 1))
}

// StreamEnded implements ingest.StreamEnder: the publisher has gone.
func (rc *recording) StreamEnded() { rc.finalize(nil) }

// onLoss drops the frame being assembled; on video, frames depend on each
// other, so nothing is written until the next keyframe.
func (rc *recording) onLoss(ts *trackState, lost uint) {
	d, err := newDepacketizer(ts.track)
	if err == nil {
		ts.depack = d
	}
	ts.skipping, ts.skipSet = true, false
	if ts.track.Kind == ingest.Video {
		ts.needKeyframe = true
		rc.requestKeyframe(true)
	}
	rc.log.Debug("recording lost packets", "kind", ts.track.Kind, "lost", lost)
}

func (rc *recording) handle(ts *trackState, pkt *rtp.Packet, arrival time.Time) error {
	if ts.skipping && !ts.skipSet {
		ts.skipTS, ts.skipSet = pkt.Timestamp, true
	}
	f, err := ts.depack.decode(pkt)
	if err != nil {
		rc.log.Debug("recording dropped a packet", "kind", ts.track.Kind, "error", err)
		return nil
	}
	if f == nil {
		return nil
	}
	if ts.skipping {
		if f.rtpTS == ts.skipTS {
			return nil
		}
		ts.skipping = false
	}
	if ts.needKeyframe {
		if !f.keyframe {
			rc.requestKeyframe(false)
			return nil
		}
		ts.needKeyframe = false
	}
	if !rc.started {
		ok, err := rc.maybeStart(ts, f, arrival)
		if err != nil || !ok {
			return err
		}
	}
	return rc.place(ts, f, arrival)
}

// maybeStart opens the file at the first video keyframe (or, for audio
// only, the first audio frame), so every recording starts on a keyframe.
func (rc *recording) maybeStart(ts *trackState, f *frame, arrival time.Time) (bool, error) {
	if rc.hasVideo {
		if ts.track.Kind != ingest.Video {
			return false, nil // audio before the first keyframe is dropped
		}
		if !f.keyframe || f.width == 0 || f.height == 0 ||
			(f.codecPrivate == nil && needsCodecPrivate(ts.track.Codec)) {
			rc.requestKeyframe(false)
			return false, nil
		}
	}
	rc.started = true
	rc.t0 = arrival
	if err := rc.open(f); err != nil {
		return false, err
	}
	return true, nil
}

func (rc *recording) requestKeyframe(now bool) {
	if !now && time.Since(rc.lastKFReq) < keyframeRetry {
		return
	}
	rc.lastKFReq = time.Now()
	rc.stream.RequestKeyframe()
}

// open fixes the tracks from the first frame and opens the first file.
func (rc *recording) open(first *frame) error {
	var specs []trackSpec
	var codecs []ingest.Codec
	for _, ts := range rc.tracks {
		spec := trackSpec{codec: ts.track.Codec, channels: int(ts.track.Channels)}
		if ts.track.Kind == ingest.Video {
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
	return rc.openFile(time.Now().UTC())
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
		if exists(rc.finalPath) || exists(sidecarPath(rc.finalPath)) {
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
	rc.meta = Info{Stream: rc.meta.Stream, Codecs: rc.meta.Codecs, Width: rc.meta.Width, Height: rc.meta.Height,
		ID:   filepath.Base(rc.finalPath[:len(rc.finalPath)-len(container)-1]),
		Path: rc.partPath, Container: container, Start: start, State: StateRecording}
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
	return nil
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

// place puts a frame on the file's timeline and queues it for writing.
func (rc *recording) place(ts *trackState, f *frame, arrival time.Time) error {
	if !ts.unwrapped {
		ts.unwrapped, ts.ext = true, int64(f.rtpTS)
	} else {
		ts.ext += int64(int32(f.rtpTS - ts.lastRaw))
	}
	ts.lastRaw = f.rtpTS
	rate := int64(ts.track.ClockRate)
	if rate == 0 {
		rate = int64(ts.track.Codec.ClockRate())
	}
	if !ts.timed {
		// A track's first frame is placed by when it arrived, relative to
		// the first video keyframe; later frames by their RTP timestamps.
		ts.timed, ts.base = true, ts.ext
		ts.offsetMS = max(arrival.Sub(rc.t0).Milliseconds(), 0)
		ts.lastMS = -1
	}
	ms := ts.offsetMS + (ts.ext-ts.base)*1000/rate
	if ts.lastMS >= 0 && (ms < ts.lastMS-maxJumpMS || ms > ts.lastMS+maxJumpMS) {
		ts.base, ts.offsetMS = ts.ext, ts.lastMS+ts.nominalMS
		ms = ts.offsetMS
	}
	if ms <= ts.lastMS {
		ms = ts.lastMS + 1
	}
	ts.lastMS = ms
	for _, q := range rc.il.push(queuedFrame{track: ts.index, keyframe: f.keyframe, ts: ms, data: f.data}) {
		if err := rc.write(q); err != nil {
			return err
		}
	}
	return nil
}

// errStopped ends a recording that the disk guard stopped between segments.
var errStopped = errors.New("recording stopped: disk almost full")

func (rc *recording) write(q queuedFrame) error {
	if rc.w == nil {
		return errStopped
	}
	// Track 0 is the video track, or the only audio one: a segment ends
	// just before one of its keyframes (every Opus frame is one).
	if seg := rc.rec.segment.Milliseconds(); seg > 0 && q.track == 0 && q.ts-rc.segOffset >= seg-segmentSlackMS {
		if q.keyframe {
			if err := rc.cut(q.ts); err != nil {
				return err
			}
		} else {
			rc.requestKeyframe(false)
		}
	}
	// WebRTC publishers send keyframes only when asked, and ebml-go cuts a
	// cluster every maxClusterMS and lists it in Cues even when it does
	// not start on a keyframe, which breaks seeking there. Ask early
	// enough (500 ms covers a round trip and the encoder) that every
	// cluster starts on one; OBS's usual 2 s keyframes need no asking.
	if rc.hasVideo && q.track == 0 {
		if q.keyframe {
			rc.lastKeyMS = q.ts
		} else if q.ts-rc.lastKeyMS >= maxClusterMS-500 {
			rc.requestKeyframe(false)
		}
	}
	ts := q.ts - rc.segOffset
	if err := rc.w.WriteFrame(q.track, q.keyframe, ts, q.data); err != nil {
		return fmt.Errorf("writing a frame: %w", err)
	}
	rc.mu.Lock()
	rc.meta.DurationMS = max(rc.meta.DurationMS, ts)
	rc.mu.Unlock()
	return rc.writerErr()
}

// cut finishes the current file and opens the next segment, which starts
// with the frame at ts (a keyframe) on the recording's timeline: every
// frame goes to exactly one file, so segments join without a gap.
func (rc *recording) cut(ts int64) error {
	start := rc.meta.Start.Add(time.Duration(ts-rc.segOffset) * time.Millisecond)
	rc.closeFile(nil)
	if reason := rc.rec.guard.check(); reason != "" {
		rc.log.Error("recording stopped at a segment boundary", "reason", reason)
		return errStopped
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
	}
	path := rc.partPath
	if rerr := os.Rename(rc.partPath, rc.finalPath); rerr != nil {
		rc.log.Error("recording not renamed", "error", rerr)
		if err == nil {
			err = fmt.Errorf("renaming the finished recording: %w", rerr)
		}
	} else {
		path = rc.finalPath
		syncDir(filepath.Dir(path))
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
	rc.mu.Unlock()
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
	if in.State == StateRecording && rc.file != nil {
		in.Size = rc.file.Size()
	}
	return in
}
