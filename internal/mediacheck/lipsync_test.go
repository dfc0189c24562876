package mediacheck

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestBeepsWhenTheAudioEndsFirst: a file whose audio stops (in silence)
// half a second before its video, as a recording does when a lossy
// path took its last audio packets. The end of the audio is no beep.
func TestBeepsWhenTheAudioEndsFirst(t *testing.T) {
	Require(t)
	file := filepath.Join(t.TempDir(), "short-audio.mkv")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "color=c=black:size=64x64:rate=30:duration=3",
		"-f", "lavfi", "-i", "aevalsrc='if(between(t\\,1\\,1.1)\\,0.8*sin(2*PI*1000*t)\\,0)':s=48000:d=2.5",
		"-c:v", "libx264", "-c:a", "libopus", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := beeps(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || (got[0]-time.Second).Abs() > 30*time.Millisecond {
		t.Errorf("beeps at %v, want one at 1 s", got)
	}
}

// TestFlashAfterAGapIsUnsure: frames missing just before a flash (lost,
// or dropped until a keyframe) hide where it began; its end still tells.
func TestFlashAfterAGapIsUnsure(t *testing.T) {
	Require(t)
	dir := t.TempDir()
	gen := func(name, sel string) string {
		file := filepath.Join(dir, name)
		out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
			"-f", "lavfi", "-i", "color=c=black:size=64x64:rate=30:duration=3",
			"-vf", "drawbox=c=white:t=fill:enable='between(t,1,1.09)',select='"+sel+"'",
			"-fps_mode", "passthrough", "-c:v", "libx264", file).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v: %s", err, out)
		}
		return file
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		name, sel    string
		sure, unsure int
	}{
		{"whole.mkv", "1", 1, 0},
		{"gap-before.mkv", "not(between(t,0.5,0.6))", 1, 0},
		// The first white frame and two before it are missing: the
		// flash is measured by its end.
		{"gap-start.mkv", "not(between(t,0.9,1.02))", 1, 0},
		// ...and when its end is missing too, it is unsure.
		{"gap-both.mkv", "not(between(t,0.9,1.02)+between(t,1.05,1.12))", 0, 1},
	} {
		sure, since, unsure, err := flashes(ctx, gen(c.name, c.sel))
		if err != nil {
			t.Fatal(err)
		}
		if len(sure) != c.sure || len(since) != c.sure || len(unsure) != c.unsure {
			t.Errorf("%s: flashes %v since %v, unsure %v; want %d and %d", c.name, sure, since, unsure, c.sure, c.unsure)
			continue
		}
		for i, f := range sure {
			if (f - time.Second).Abs() > 2*time.Millisecond {
				t.Errorf("%s: flash at %v, want 1 s", c.name, f)
			}
			// The frame before the flash, or (measured by its end) the
			// last white frame less the flash's length: a frame earlier.
			if want := time.Second - time.Second/30; (since[i] - want).Abs() > 2*time.Millisecond {
				t.Errorf("%s: flash since %v, want %v", c.name, since[i], want)
			}
		}
	}
}
