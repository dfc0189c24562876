package recorder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testmedia"
	"github.com/reel-gateway/reel/live"
)

// The recorder fuzz target drives a recording's consumer through a real hub
// (hub.Publish, stream.WriteRTP) with real encoded media that the fuzzer
// mangles the way networks and publishers do: loss, reordering,
// duplicates, timestamp jumps and wrap-around, sequence jumps, an SSRC
// change, corrupted and truncated payloads. Whatever arrives, the recorder
// must not panic or block, and every file it leaves must parse, with
// Duration and Cues, starting on a keyframe.

// fuzzPacket is one RTP packet of the clean source.
type fuzzPacket struct {
	track int // 0 video, 1 audio
	pkt   rtp.Packet
	at    time.Duration // media time, for the arrival clock
}

type fuzzSource struct {
	codec   live.Codec
	tracks  [2]live.Track // templates: copied per run (Track holds counters)
	packets []fuzzPacket
}

var (
	fuzzSourcesOnce sync.Once
	fuzzSources     []*fuzzSource
	fuzzSourcesErr  error
)

// loadFuzzSources packetizes the first ~2 s of the H.264, VP8 and H.265
// fixtures with Opus, interleaved by media time. New sources go last, so
// the seeds' source numbers keep their meaning.
func loadFuzzSources() ([]*fuzzSource, error) {
	fuzzSourcesOnce.Do(func() {
		opus, err := testmedia.ReadOgg(filepath.Join(testmedia.Dir(), "opus.ogg"))
		if err != nil {
			fuzzSourcesErr = err
			return
		}
		for _, c := range []live.Codec{live.H264, live.VP8, live.H265} {
			src := &fuzzSource{codec: c}
			var video []testmedia.Sample
			var pay rtp.Payloader
			src.tracks[0] = live.Track{Kind: live.Video, Codec: c, ClockRate: 90000}
			switch c {
			case live.H264:
				src.tracks[0].PayloadType, src.tracks[0].Fmtp = 102, "packetization-mode=1;profile-level-id=640032"
				pay = &codecs.H264Payloader{}
				video, err = testmedia.ReadH264(filepath.Join(testmedia.Dir(), "h264.h264"), 30)
			case live.H265:
				src.tracks[0].PayloadType, src.tracks[0].Fmtp = 104, "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"
				pay = &codecs.H265Payloader{}
				video, err = testmedia.ReadH265(filepath.Join(testmedia.Dir(), "h265.h265"), 30)
			default:
				src.tracks[0].PayloadType = 96
				pay = &codecs.VP8Payloader{EnablePictureID: true}
				_, video, err = testmedia.ReadIVF(filepath.Join(testmedia.Dir(), "vp8.ivf"))
			}
			if err != nil {
				fuzzSourcesErr = err
				return
			}
			src.tracks[1] = live.Track{Kind: live.Audio, Codec: live.Opus, PayloadType: 111, ClockRate: 48000, Channels: 2}
			vp := rtp.NewPacketizer(1200, 102, 0x1111, pay, rtp.NewFixedSequencer(65000), 90000)
			ap := rtp.NewPacketizer(1200, 111, 0x2222, &codecs.OpusPayloader{}, rtp.NewFixedSequencer(100), 48000)
			src.packets = append(src.packets, packetize(0, vp, video, 90000, 2*time.Second)...)
			src.packets = append(src.packets, packetize(1, ap, opus, 48000, 2*time.Second)...)
			// Stable by media time: the video packets of a frame stay together.
			sortPackets(src.packets)
			fuzzSources = append(fuzzSources, src)
		}
	})
	return fuzzSources, fuzzSourcesErr
}

func packetize(track int, p rtp.Packetizer, samples []testmedia.Sample, rate float64, upTo time.Duration) []fuzzPacket {
	var out []fuzzPacket
	var at time.Duration
	for _, s := range samples {
		if at >= upTo {
			break
		}
		for _, pkt := range p.Packetize(s.Data, uint32(s.Duration.Seconds()*rate)) {
			out = append(out, fuzzPacket{track: track, pkt: *pkt, at: at})
		}
		at += s.Duration
	}
	return out
}

func sortPackets(ps []fuzzPacket) {
	// Insertion-stable merge by media time; the lists are small.
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].at < ps[j-1].at; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// mangler turns the clean packet list into what the fuzzer's program says
// arrived. Each program byte acts on the next clean packet.
type mangler struct {
	src     *fuzzSource
	tsOff   [2]uint32
	seqOff  [2]uint16
	ssrcOff [2]uint32
	out     []fuzzPacket
}

func (m *mangler) emit(fp fuzzPacket, arg byte) {
	fp.pkt.Timestamp += m.tsOff[fp.track]
	fp.pkt.SequenceNumber += m.seqOff[fp.track]
	fp.pkt.SSRC += m.ssrcOff[fp.track]
	m.out = append(m.out, fp)
}

func (m *mangler) run(program []byte) []fuzzPacket {
	pkts := m.src.packets
	i := 0
	for pc := 0; pc < len(program) && i < len(pkts); pc++ {
		op, arg := program[pc]&0x0f, program[pc]>>4
		fp := pkts[i]
		fp.pkt.Payload = bytes.Clone(fp.pkt.Payload)
		i++
		switch op {
		case 4: // loss
		case 5: // duplicate
			m.emit(fp, arg)
			m.emit(fp, arg)
		case 6: // reorder: the next packet first
			if i < len(pkts) {
				m.emit(pkts[i], arg)
				i++
			}
			m.emit(fp, arg)
		case 7: // timestamp jump, forwards, backwards or across the wrap
			m.tsOff[fp.track] += []uint32{0x7fffffff, 0x80000001, 90000 * 20, 0xffffffff - 90000*20 + 1, 0xffff0000, 3000}[arg%6]
			m.emit(fp, arg)
		case 8: // the publisher's SSRC changes (a new encoder)
			m.ssrcOff[fp.track] += uint32(arg) + 1
			m.emit(fp, arg)
		case 9: // sequence jump
			m.seqOff[fp.track] += []uint16{100, 0x8000, 65000, 2}[arg%4]
			m.emit(fp, arg)
		case 10: // corrupt one payload byte
			if len(fp.pkt.Payload) > 0 {
				fp.pkt.Payload[int(arg)%len(fp.pkt.Payload)] ^= 0x5a | arg
			}
			m.emit(fp, arg)
		case 11: // truncated payload
			fp.pkt.Payload = fp.pkt.Payload[:int(arg)%(len(fp.pkt.Payload)+1)]
			m.emit(fp, arg)
		case 12: // marker bit flipped
			fp.pkt.Marker = !fp.pkt.Marker
			m.emit(fp, arg)
		default:
			m.emit(fp, arg)
		}
	}
	for ; i < len(pkts); i++ {
		m.emit(pkts[i], 0)
	}
	return m.out
}

// recordPackets publishes pkts on a fresh hub with a recorder and returns
// the recordings directory once the recording has finalized.
func recordPackets(t *testing.T, src *fuzzSource, pkts []fuzzPacket, log *slog.Logger) string {
	t.Helper()
	r, err := New(Config{Dir: t.TempDir(), Enabled: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	tracks := []*live.Track{new(live.Track), new(live.Track)}
	for i, tr := range tracks {
		tmpl := &src.tracks[i]
		tr.Kind, tr.Codec, tr.PayloadType, tr.ClockRate, tr.Channels, tr.Fmtp =
			tmpl.Kind, tmpl.Codec, tmpl.PayloadType, tmpl.ClockRate, tmpl.Channels, tmpl.Fmtp
	}
	s, err := hub.Publish("fuzz", live.PublishSpec{Session: "fuzz", Protocol: "test", Tracks: tracks})
	if err != nil {
		t.Fatal(err)
	}
	subs := s.Subscriptions()
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions, want the recorder's", len(subs))
	}
	sub := subs[0]
	t0 := time.Now()
	buf := make([]byte, live.MaxPacketSize)
	var written uint64
	for _, fp := range pkts {
		n, err := fp.pkt.MarshalTo(buf)
		if err != nil {
			continue
		}
		if s.WriteRTP(tracks[fp.track], buf[:n], t0.Add(fp.at)) == nil {
			written++
		}
		// Keep well inside the queue: drops are tested elsewhere, and
		// here they would make the input's effect depend on scheduling.
		for deadline := time.Now().Add(10 * time.Second); written-sub.Delivered()-sub.Dropped() > live.DefaultQueueSize/2; {
			if time.Now().After(deadline) {
				t.Fatal("the recording's consumer is stuck")
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	s.Close()
	select {
	case <-sub.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the recording did not finish after the stream ended")
	}
	r.Close()
	return r.Dir()
}

// mkvDoc is what a player needs of a recording.
type mkvDoc struct {
	Header  webm.EBMLHeader `ebml:"EBML"`
	Segment webm.Segment    `ebml:"Segment"`
}

// checkRecordings parses every file under dir with ebml-go: nothing left
// as .part, every file with Duration and Cues, starting on a keyframe.
func checkRecordings(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".part"):
			t.Errorf("left behind: %s", path)
		case strings.HasSuffix(path, ".webm"), strings.HasSuffix(path, ".mkv"):
			files = append(files, path)
			checkMatroska(t, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func checkMatroska(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var doc mkvDoc
	if err := ebml.Unmarshal(f, &doc, ebml.WithIgnoreUnknown(true)); err != nil && err != io.EOF {
		t.Fatalf("%s does not parse: %v", filepath.Base(path), err)
	}
	seg := &doc.Segment
	if seg.Info.Duration <= 0 {
		t.Errorf("%s has no Duration", filepath.Base(path))
	}
	if seg.Cues == nil || len(seg.Cues.CuePoint) == 0 {
		t.Errorf("%s has no Cues", filepath.Base(path))
	}
	if len(seg.Tracks.TrackEntry) == 0 {
		t.Fatalf("%s has no tracks", filepath.Base(path))
	}
	if len(seg.Cluster) == 0 || len(seg.Cluster[0].SimpleBlock) == 0 {
		t.Errorf("%s has no frames", filepath.Base(path))
		return
	}
	first := seg.Cluster[0].SimpleBlock[0]
	if first.TrackNumber != 1 || !first.Keyframe {
		t.Errorf("%s starts with a block of track %d, keyframe %v", filepath.Base(path), first.TrackNumber, first.Keyframe)
	}
	// Per track, time never goes back: a player would drop or reorder
	// frames. (Across tracks a late track may trail; players cope.)
	last := map[uint64]int64{}
	for _, c := range seg.Cluster {
		for _, b := range c.SimpleBlock {
			ts := int64(c.Timecode) + int64(b.Timecode)
			if prev, ok := last[b.TrackNumber]; ok && ts <= prev {
				t.Errorf("%s: track %d has a block at %d ms after one at %d ms", filepath.Base(path), b.TrackNumber, ts, prev)
				return
			}
			last[b.TrackNumber] = ts
		}
	}
	if d := int64(seg.Info.Duration); d+1 < last[1] {
		t.Errorf("%s: Duration %d ms, but video runs to %d ms", filepath.Base(path), d, last[1])
	}
}

func FuzzRecorder(f *testing.F) {
	f.Add(byte(0), []byte{})
	f.Add(byte(1), []byte{})
	f.Add(byte(0), []byte{0, 0, 0, 4, 0, 0, 5, 0, 6, 0, 0x17, 0, 0, 0x08, 0, 0x19, 0x3a, 0x2b, 0x0c})
	f.Add(byte(1), []byte{0, 0, 0, 4, 4, 4, 0, 5, 5, 6, 6, 0x07, 0x17, 0x27, 0x37, 0x47, 0x57, 8, 9, 0x19})
	f.Add(byte(1), bytes.Repeat([]byte{0, 0, 6}, 60))
	f.Add(byte(0), bytes.Repeat([]byte{0x57, 0, 0, 0, 0x8}, 30))
	f.Add(byte(2), []byte{})
	f.Add(byte(2), []byte{0, 0, 0, 4, 0, 0, 5, 0, 6, 0, 0x17, 0, 0, 0x08, 0, 0x19, 0x3a, 0x2b, 0x0c})
	srcs, err := loadFuzzSources()
	if err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, which byte, program []byte) {
		if len(program) > 4096 {
			return
		}
		src := srcs[int(which)%len(srcs)]
		pkts := (&mangler{src: src}).run(program)
		checkRecordings(t, recordPackets(t, src, pkts, log))
	})
}

// TestGarbageRecordingsPlay runs mangled sequences like the fuzz seeds and
// judges the files with ffmpeg, which the fuzz loop is too fast for.
func TestGarbageRecordingsPlay(t *testing.T) {
	mediacheck.Require(t)
	srcs, err := loadFuzzSources()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 6 {
		src := srcs[i%len(srcs)]
		program := make([]byte, 400)
		for j := range program {
			if rng.IntN(5) == 0 {
				program[j] = byte(rng.IntN(256))
			}
		}
		t.Run(fmt.Sprintf("%s-%d", src.codec, i), func(t *testing.T) {
			pkts := (&mangler{src: src}).run(program)
			for _, file := range checkRecordings(t, recordPackets(t, src, pkts, testLogger(t))) {
				if _, err := mediacheck.ProbeFile(context.Background(), file); err != nil {
					t.Errorf("ffprobe: %v", err)
				}
			}
		})
	}
}
