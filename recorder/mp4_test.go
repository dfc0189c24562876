package recorder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	amp4 "github.com/abema/go-mp4"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// recordFixture records src through a hub and returns the finished file.
func recordFixture(t *testing.T, name string, src hubtest.Source) Info {
	t.Helper()
	r := newTestRecorder(t)
	hub := live.NewHub(live.Reject)
	hub.OnPublish(r.Record)
	p, err := hubtest.Publish(context.Background(), hub, "live/"+name, src)
	if err != nil {
		t.Fatal(err)
	}
	info := waitRecorded(t, r, p)
	if info.State != StateFinished {
		t.Fatalf("recording %s: %s", info.State, info.Error)
	}
	return info
}

// remuxFile writes the MP4 of recording path (or a clip of it) to a file.
func remuxFile(t *testing.T, path string, clip Clip) string {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	m, err := NewMP4Remux(in, clip)
	if err != nil {
		t.Fatalf("NewMP4Remux: %v", err)
	}
	var out bytes.Buffer
	n, err := m.WriteTo(&out)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(out.Len()) {
		t.Errorf("WriteTo says %d bytes, wrote %d", n, out.Len())
	}
	dst := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+".mp4")
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// packet is one packet as ffprobe reads it, with a hash of its bytes.
type packet struct {
	pts  float64
	key  bool
	hash string
}

// hashedPackets lists a file's video packets in decoding order.
func hashedPackets(t *testing.T, path string) []packet {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_data_hash", "MD5",
		"-show_entries", "packet=pts_time,flags,data_hash", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets of %s: %v", path, err)
	}
	var ps []packet
	for _, line := range strings.Fields(string(out)) {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		pts, _ := strconv.ParseFloat(f[0], 64)
		ps = append(ps, packet{pts: pts, key: strings.HasPrefix(f[1], "K"), hash: f[2]})
	}
	return ps
}

// firstAudioPTS is the presentation time of a file's first audio packet.
func firstAudioPTS(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-read_intervals", "%+#1",
		"-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe audio of %s: %v", path, err)
	}
	v, err := strconv.ParseFloat(strings.Trim(strings.TrimSpace(string(out)), ","), 64)
	if err != nil {
		t.Fatalf("first audio packet of %s: %q", path, out)
	}
	return v
}

// fragments counts a file's moof boxes and reports whether it has an
// mvex/mehd with a duration.
func fragments(t *testing.T, path string) (moofs int, mehdMS uint64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = amp4.ReadBoxStructure(f, func(h *amp4.ReadHandle) (any, error) {
		switch h.BoxInfo.Type {
		case amp4.BoxTypeMoof():
			moofs++
		case amp4.BoxTypeMoov(), amp4.BoxTypeMvex():
			return h.Expand()
		case amp4.BoxTypeMehd():
			b, _, err := h.ReadPayload()
			if err != nil {
				return nil, err
			}
			mehdMS = b.(*amp4.Mehd).FragmentDurationV1
		}
		return nil, nil
	})
	if err != nil {
		t.Fatalf("reading the boxes of %s: %v", path, err)
	}
	return moofs, mehdMS
}

func TestMP4Remux(t *testing.T) {
	requireTools(t)
	cases := []struct {
		name  string
		src   hubtest.Source
		video string
	}{
		{"h264-opus", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true}, "h264"},
		{"h265-opus", hubtest.Source{Video: live.H265, Audio: true}, "hevc"},
		{"vp9-opus", hubtest.Source{Video: live.VP9, Audio: true}, "vp9"},
		{"av1-opus", hubtest.Source{Video: live.AV1, Audio: true}, "av1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info := recordFixture(t, tc.name, tc.src)
			srcDur, _ := strconv.ParseFloat(ffprobe(t, info.Path).Format.Duration, 64)

			whole := remuxFile(t, info.Path, Clip{})
			pr := ffprobe(t, whole)
			if !strings.Contains(pr.Format.FormatName, "mp4") {
				t.Errorf("format %q, want mp4", pr.Format.FormatName)
			}
			var gotVideo, gotAudio string
			for _, s := range pr.Streams {
				switch s.CodecType {
				case "video":
					gotVideo = s.CodecName
					if s.Width != 640 || s.Height != 360 {
						t.Errorf("video %dx%d, want 640x360", s.Width, s.Height)
					}
				case "audio":
					gotAudio = s.CodecName
				}
			}
			if gotVideo != tc.video || gotAudio != "opus" {
				t.Errorf("streams %q + %q, want %q + opus", gotVideo, gotAudio, tc.video)
			}
			dur, _ := strconv.ParseFloat(pr.Format.Duration, 64)
			if math.Abs(dur-srcDur) > srcDur/10 {
				t.Errorf("MP4 lasts %.3f s, the recording %.3f s", dur, srcDur)
			}
			if msg := ffmpegErrors(t, whole, nil, nil); msg != "" {
				t.Errorf("decoding the MP4 reports errors:\n%s", msg)
			}
			moofs, mehd := fragments(t, whole)
			if float64(moofs) < srcDur/2 {
				t.Errorf("%d fragments for %.1f s: a fragment holds more than 2 s", moofs, srcDur)
			}
			if math.Abs(float64(mehd)/1000-srcDur) > 0.1 {
				t.Errorf("mehd says %d ms, the recording lasts %.3f s", mehd, srcDur)
			}
			if tc.video == "hevc" {
				checkHVCC(t, info.Path, whole)
			}
			// Remuxed, not re-encoded: the same video packets, byte for byte.
			src, out := hashedPackets(t, info.Path), hashedPackets(t, whole)
			if len(src) == 0 || len(out) != len(src) {
				t.Fatalf("%d video packets in the MP4, %d in the recording", len(out), len(src))
			}
			for i := range src {
				if out[i].hash != src[i].hash || out[i].key != src[i].key || math.Abs(out[i].pts-src[i].pts) > 0.0015 {
					t.Fatalf("video packet %d differs: %+v in the MP4, %+v in the recording", i, out[i], src[i])
				}
			}

			// A clip from 2 s to 4 s starts on the keyframe at or before 2 s.
			clip := remuxFile(t, info.Path, Clip{From: 2 * time.Second, To: 4 * time.Second})
			kf := -1
			for i, p := range src {
				if p.key && p.pts <= 2.0005 {
					kf = i
				}
			}
			var want []packet
			for _, p := range src[kf:] {
				if p.pts < 4 {
					want = append(want, p)
				}
			}
			got := hashedPackets(t, clip)
			if len(got) != len(want) || len(got) == 0 || !got[0].key || got[0].hash != want[0].hash || got[0].pts != 0 {
				t.Fatalf("the clip has %d video packets from %+v; want %d from the keyframe at %.3f s (%s)",
					len(got), got[0], len(want), src[kf].pts, want[0].hash)
			}
			for i := range want {
				if got[i].hash != want[i].hash || math.Abs(got[i].pts-(want[i].pts-src[kf].pts)) > 0.0015 {
					t.Fatalf("clip packet %d: %+v, want %+v shifted by %.3f s", i, got[i], want[i], src[kf].pts)
				}
			}
			cd, _ := strconv.ParseFloat(ffprobe(t, clip).Format.Duration, 64)
			if cd < 1.9 || cd > 2+1+0.1 {
				t.Errorf("the clip lasts %.3f s, want 2 s and at most a GOP (1 s) more", cd)
			}
			if a := firstAudioPTS(t, clip); a < 0 || a > 0.05 {
				t.Errorf("the clip's audio starts at %.3f s, want with its video at 0", a)
			}
			if msg := ffmpegErrors(t, clip, nil, nil); msg != "" {
				t.Errorf("decoding the clip reports errors:\n%s", msg)
			}
			t.Logf("%s: %.3f s → MP4 %.3f s in %d fragments; clip 2–4 s from the keyframe at %.3f s: %.3f s",
				tc.name, srcDur, dur, moofs, src[kf].pts, cd)
		})
	}
}

// checkHVCC: the MP4's hvcC is the recording's own CodecPrivate.
func checkHVCC(t *testing.T, recording, mp4 string) {
	t.Helper()
	h, err := probeHeader(recording)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(mp4)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	path := amp4.BoxPath{amp4.BoxTypeMoov(), amp4.BoxTypeTrak(), amp4.BoxTypeMdia(), amp4.BoxTypeMinf(),
		amp4.BoxTypeStbl(), amp4.BoxTypeStsd(), amp4.BoxTypeHvc1(), amp4.BoxTypeHvcC()}
	boxes, err := amp4.ExtractBox(f, nil, path)
	if err != nil || len(boxes) != 1 {
		t.Fatalf("the MP4's hvcC: %v, %d boxes", err, len(boxes))
	}
	got := make([]byte, boxes[0].Size-boxes[0].HeaderSize)
	if _, err := f.ReadAt(got, int64(boxes[0].Offset+boxes[0].HeaderSize)); err != nil {
		t.Fatal(err)
	}
	if want := h.Tracks[0].CodecPrivate; !bytes.Equal(got, want) {
		t.Errorf("the MP4's hvcC is\n%x\nthe recording's\n%x", got, want)
	}
}

// TestMP4ReadingPaths: a clip found through the Cues is the same, byte
// for byte, as one found by reading from the first cluster; a recording
// cut anywhere gives an error or an MP4 of what it holds, never a panic;
// a long recording is remuxed in constant memory.
func TestMP4ReadingPaths(t *testing.T) {
	requireTools(t)
	info := recordFixture(t, "cues", hubtest.Source{Video: live.H264, Audio: true})
	t.Run("cues", func(t *testing.T) { clipWithoutCues(t, info) })
	t.Run("truncated", func(t *testing.T) { truncated(t, info) })
	t.Run("constant memory", func(t *testing.T) { constantMemory(t, info) })
}

func clipWithoutCues(t *testing.T, info Info) {
	f, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	clip := Clip{From: 4200 * time.Millisecond, To: 5 * time.Second}
	var outs [2]bytes.Buffer
	for i, cues := range []bool{true, false} {
		m, err := NewMP4Remux(f, clip)
		if err != nil {
			t.Fatal(err)
		}
		if !cues {
			m.h.cues = -1
		}
		start, t0, err := m.clipStart(clip.From.Milliseconds())
		if err != nil {
			t.Fatal(err)
		}
		if cues == (start == m.h.afterTracks) {
			t.Errorf("cues %v: reading starts at %d (the first cluster is at %d)", cues, start, m.h.afterTracks)
		}
		if t0 > 4200 || t0 < 3000 {
			t.Errorf("cues %v: the clip starts at %d ms, want the keyframe at or before 4200 ms", cues, t0)
		}
		if cs, err := m.ClipStart(); err != nil || cs != time.Duration(t0)*time.Millisecond {
			t.Errorf("cues %v: ClipStart %v, %v; want %d ms", cues, cs, err, t0)
		}
		if _, err := m.WriteTo(&outs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(outs[0].Bytes(), outs[1].Bytes()) || outs[0].Len() == 0 {
		t.Errorf("the clip through the Cues (%d bytes) differs from the clip read from the start (%d bytes)", outs[0].Len(), outs[1].Len())
	}
}

// constantMemory remuxes a recording 100 times as long (the recording's
// frames written again and again through the recorder's writer) and
// watches the heap: it holds a fragment or two, not the file.
func constantMemory(t *testing.T, info Info) {
	if testing.Short() {
		t.Skip("writes a 10-minute recording")
	}
	in, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	br := bufio.NewReader(in)
	h, err := readHeader(br)
	if err != nil {
		t.Fatal(err)
	}
	var frames []scannedFrame
	if err := scanFrames(br, h, func(f scannedFrame) { frames = append(frames, f) }); err != nil {
		t.Fatal(err)
	}
	index := map[uint64]int{}
	for i, e := range h.Tracks {
		index[e.TrackNumber] = i
	}
	long := filepath.Join(t.TempDir(), "long.mkv")
	f, err := os.Create(long)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newMatroskaWriterEntries(newPartFile(f), "mkv", info.Start, h.Tracks, func(err error) { t.Error(err) }, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	const loops = 100
	span := frames[len(frames)-1].ms + 40
	for i := range int64(loops) {
		for _, fr := range frames {
			if err := w.WriteFrame(index[fr.track], fr.keyframe, i*span+fr.ms, fr.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()
	frames = nil
	st, err := os.Stat(long)
	if err != nil {
		t.Fatal(err)
	}

	src, err := os.Open(long)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m, err := NewMP4Remux(src, Clip{})
	if err != nil {
		t.Fatal(err)
	}
	// Collect often, so the heap in use is what is held, not garbage.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	n, err := m.WriteTo(io.Discard)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(base)
	t.Logf("a %.1f MB recording of %d s became %.1f MB of MP4; the heap grew by %.1f MB at most",
		float64(st.Size())/1e6, loops*span/1000, float64(n)/1e6, float64(grew)/1e6)
	if n < st.Size()/2 || grew > 6<<20 {
		t.Errorf("%d bytes of MP4 from %d; the heap grew by %d bytes: not constant", n, st.Size(), grew)
	}
}

func truncated(t *testing.T, info Info) {
	whole, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, frac := range []float64{0.001, 0.01, 0.05, 0.3, 0.5, 0.77, 0.999} {
		n := int(float64(len(whole)) * frac)
		path := filepath.Join(dir, "cut.mkv")
		if err := os.WriteFile(path, whole[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewMP4Remux(in, Clip{From: time.Second})
		if err != nil {
			in.Close()
			t.Logf("cut at %d bytes: %v", n, err)
			continue
		}
		var out bytes.Buffer
		_, err = m.WriteTo(&out)
		in.Close()
		t.Logf("cut at %d bytes: %d bytes of MP4, %v", n, out.Len(), err)
		if frac >= 0.3 && out.Len() == 0 {
			t.Errorf("cut at %d of %d bytes: no MP4 (%v)", n, len(whole), err)
		}
		if out.Len() > 0 {
			mp4 := filepath.Join(dir, "cut.mp4")
			if err := os.WriteFile(mp4, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if msg := ffmpegErrors(t, mp4, nil, nil); msg != "" {
				t.Errorf("cut at %d bytes: decoding its MP4 reports errors:\n%s", n, msg)
			}
		}
	}
}

func TestMP4Refusals(t *testing.T) {
	dir := t.TempDir()
	vp8 := filepath.Join(dir, "vp8.webm")
	f, err := os.Create(vp8)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newMatroskaWriter(newPartFile(f), "webm", time.Now(), []trackSpec{{codec: live.VP8, width: 64, height: 64}},
		func(err error) { t.Error(err) }, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := w.WriteFrame(0, i == 0, int64(i*33), []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()

	in, err := os.Open(vp8)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := NewMP4Remux(in, Clip{}); !errors.Is(err, ErrMP4Codec) || !strings.Contains(err.Error(), "VP8") {
		t.Errorf("VP8: %v, want ErrMP4Codec naming VP8", err)
	}
}

func TestMP4EmptyClip(t *testing.T) {
	requireTools(t)
	info := recordFixture(t, "empty", hubtest.Source{Video: live.AV1})
	in, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, clip := range []Clip{{From: time.Hour}, {From: 2 * time.Second, To: time.Second}} {
		m, err := NewMP4Remux(in, clip)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.ClipStart(); !errors.Is(err, ErrClipEmpty) {
			t.Errorf("clip %+v: ClipStart says %v, want ErrClipEmpty", clip, err)
		}
		var out bytes.Buffer
		if _, err := m.WriteTo(&out); !errors.Is(err, ErrClipEmpty) || out.Len() != 0 {
			t.Errorf("clip %+v: %v and %d bytes, want ErrClipEmpty and nothing", clip, err, out.Len())
		}
	}
}
