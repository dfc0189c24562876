package testmedia

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDirFindsTestdata(t *testing.T) {
	dir := Dir()
	if !filepath.IsAbs(dir) {
		t.Fatalf("Dir() = %q, want absolute path", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "generate.sh")); err != nil {
		t.Fatalf("testdata dir %q lacks generate.sh: %v", dir, err)
	}
}

// checkSamples verifies the frame count (±1), that the stream opens with a
// keyframe and that keyframes come every keyEvery frames (±1).
func checkSamples(t *testing.T, samples []Sample, wantFrames, keyEvery int, wantDur time.Duration) {
	t.Helper()
	if diff := len(samples) - wantFrames; diff < -1 || diff > 1 {
		t.Errorf("got %d samples, want %d±1", len(samples), wantFrames)
	}
	if len(samples) == 0 {
		return
	}
	if !samples[0].Keyframe {
		t.Errorf("first sample is not a keyframe")
	}
	last := 0
	keys := 1
	for i, s := range samples {
		if len(s.Data) == 0 {
			t.Fatalf("sample %d is empty", i)
		}
		if d := s.Duration - wantDur; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("sample %d duration %v, want %v", i, s.Duration, wantDur)
		}
		if i == 0 || !s.Keyframe {
			continue
		}
		keys++
		if gap := i - last; keyEvery > 0 && (gap < keyEvery-1 || gap > keyEvery+1) {
			t.Errorf("keyframe at %d is %d frames after the previous one, want ~%d", i, gap, keyEvery)
		}
		last = i
	}
	t.Logf("%d samples, %d keyframes", len(samples), keys)
	if keyEvery > 0 {
		if gap := len(samples) - last; gap > keyEvery+1 {
			t.Errorf("no keyframe in the last %d frames", gap)
		}
		if want := wantFrames / keyEvery; keys < want-1 || keys > want+1 {
			t.Errorf("got %d keyframes, want ~%d", keys, want)
		}
	}
}

func TestReadIVF(t *testing.T) {
	for _, tc := range []struct {
		file   string
		fourcc string
		frames int
	}{
		{"vp8.ivf", FourCCVP8, 180},
		{"vp9.ivf", FourCCVP9, 90},
		{"av1.ivf", FourCCAV1, 90},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := Path(tc.file)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("fixture missing (see testdata/generate.sh): %v", err)
			}
			fourcc, samples, err := ReadIVF(path)
			if err != nil {
				t.Fatal(err)
			}
			if fourcc != tc.fourcc {
				t.Errorf("fourcc = %q, want %q", fourcc, tc.fourcc)
			}
			checkSamples(t, samples, tc.frames, 30, time.Second/30)
		})
	}
}

func TestReadH264(t *testing.T) {
	for _, tc := range []struct {
		file       string
		frames     int
		idrSlices  int
		profileIDC byte
	}{
		{"h264.h264", 180, 4, 100},
		{"h264-baseline.h264", 90, 1, 66},
	} {
		t.Run(tc.file, func(t *testing.T) {
			samples, err := ReadH264(Path(tc.file), 30)
			if err != nil {
				t.Fatal(err)
			}
			checkSamples(t, samples, tc.frames, 30, time.Second/30)
			for i, s := range samples {
				checkAccessUnit(t, i, s, tc.idrSlices, tc.profileIDC)
			}
		})
	}
}

// checkAccessUnit checks that keyframes carry SPS+PPS before their IDR
// slices and that every AU is one picture (slice count matches the file).
func checkAccessUnit(t *testing.T, i int, s Sample, slicesPerPicture int, profileIDC byte) {
	t.Helper()
	nals := SplitAnnexB(s.Data)
	types := NALTypes(s.Data)
	slices := 0
	for j, typ := range types {
		switch typ {
		case nalSlice, nalIDR:
			slices++
		case nalSPS:
			if got := nals[j][1]; got != profileIDC {
				t.Errorf("AU %d: SPS profile_idc %d, want %d", i, got, profileIDC)
			}
		}
	}
	if slices != slicesPerPicture {
		t.Errorf("AU %d has %d slices (%v), want %d", i, slices, types, slicesPerPicture)
	}
	if s.Keyframe && (len(types) < 3 || types[0] != nalSPS || types[1] != nalPPS) {
		t.Errorf("keyframe AU %d NAL types %v, want SPS, PPS, IDR...", i, types)
	}
}

func TestReadOgg(t *testing.T) {
	samples, err := ReadOgg(Path("opus.ogg"))
	if err != nil {
		t.Fatal(err)
	}
	// 6 s of 20 ms packets, plus one for the encoder's pre-skip.
	checkSamples(t, samples, 301, 0, 20*time.Millisecond)
}

func TestSplitAnnexB(t *testing.T) {
	in := []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5}
	got := NALTypes(in)
	want := []byte{nalSPS, nalPPS, nalIDR}
	if string(got) != string(want) {
		t.Fatalf("NALTypes = %v, want %v", got, want)
	}
	nals := SplitAnnexB(in)
	if len(nals[0]) != 3 || len(nals[1]) != 2 || len(nals[2]) != 3 {
		t.Fatalf("unexpected NAL lengths: %q", nals)
	}
}

func TestOpusPacketDuration(t *testing.T) {
	for _, tc := range []struct {
		packet []byte
		want   time.Duration
	}{
		{[]byte{0xfc}, 20 * time.Millisecond},       // CELT FB 20 ms, code 0
		{[]byte{0x08 | 1}, 40 * time.Millisecond},   // SILK 20 ms, code 1
		{[]byte{0xf3, 0x03}, 30 * time.Millisecond}, // CELT 10 ms, code 3, 3 frames
	} {
		got, err := OpusPacketDuration(tc.packet)
		if err != nil || got != tc.want {
			t.Errorf("OpusPacketDuration(%x) = %v, %v; want %v", tc.packet, got, err, tc.want)
		}
	}
}

func TestKeyframeDetectorsRejectGarbage(t *testing.T) {
	for _, f := range []func([]byte) bool{IsVP8Keyframe, IsVP9Keyframe, IsAV1Keyframe} {
		if f(nil) {
			t.Errorf("empty frame reported as keyframe")
		}
	}
	if IsVP9Keyframe([]byte{0x00}) {
		t.Errorf("VP9 frame without frame marker reported as keyframe")
	}
}

func TestProfileLevelID(t *testing.T) {
	for file, wantProfile := range map[string]string{"h264.h264": "64", "h264-baseline.h264": "42"} {
		samples, err := ReadH264(Path(file), 30)
		if err != nil {
			t.Fatal(err)
		}
		got := ProfileLevelID(samples)
		if len(got) != 6 || got[:2] != wantProfile {
			t.Errorf("%s: ProfileLevelID = %q, want %s....", file, got, wantProfile)
		}
		t.Logf("%s: profile-level-id=%s", file, got)
	}
}

func TestReadH265(t *testing.T) {
	samples, err := ReadH265(Path("h265.h265"), 30)
	if err != nil {
		t.Fatal(err)
	}
	// 6 s at 30 fps with an IDR every second, parameter sets in front.
	if len(samples) != 180 {
		t.Errorf("%d access units, want 180", len(samples))
	}
	keys := 0
	for i, s := range samples {
		nals := SplitAnnexB(s.Data)
		if !s.Keyframe {
			continue
		}
		keys++
		if i%30 != 0 {
			t.Errorf("keyframe at %d", i)
		}
		if got := []byte{H265Type(nals[0]), H265Type(nals[1]), H265Type(nals[2])}; got[0] != 32 || got[1] != 33 || got[2] != 34 {
			t.Errorf("keyframe %d starts with NAL types %v, want VPS, SPS, PPS", i, got)
		}
	}
	if keys != 6 {
		t.Errorf("%d keyframes, want 6", keys)
	}
}
