package mediacheck

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Sync is how a file made from testdata/flashbeep.* lines up: each white
// flash of the picture paired with the beep nearest to it.
type Sync struct {
	Flashes []time.Duration // when each flash starts, by the file's timestamps
	// Since are, one per flash, the timestamp of the frame before it:
	// the flash began in (Since, Flashes], by the file's timestamps. A
	// source that captures its picture late, or drops frames, shows the
	// flash a frame after it began; placing it anywhere in that window
	// is right.
	Since []time.Duration
	Beeps []time.Duration // when each beep starts
	// Offsets are beep minus flash, one per flash that has a beep within
	// half a second: positive when the sound comes late.
	Offsets []time.Duration
	// Unsure are flashes whose start and end both follow a gap in the
	// picture (frames missing: lost, or dropped until a keyframe): the
	// flash may have begun in the gap, so they are not in Flashes.
	Unsure []time.Duration
}

// Median is the median of the absolute offsets.
func (s *Sync) Median() time.Duration {
	abs := make([]time.Duration, len(s.Offsets))
	for i, o := range s.Offsets {
		abs[i] = max(o, -o)
	}
	slices.Sort(abs)
	if len(abs) == 0 {
		return time.Hour
	}
	return abs[len(abs)/2]
}

// Worst is the largest absolute offset.
func (s *Sync) Worst() time.Duration {
	var w time.Duration
	for _, o := range s.Offsets {
		w = max(w, o, -o)
	}
	return w
}

// LipSync decodes a file with ffmpeg and finds where the flashes of its
// video (mean luma jumps above 128 from below 64, by ffmpeg's signalstats)
// and the beeps of its audio (the end of each silence, by silencedetect)
// start.
func LipSync(ctx context.Context, file string) (*Sync, error) {
	s := &Sync{}
	var err error
	if s.Flashes, s.Since, s.Unsure, err = flashes(ctx, file); err != nil {
		return nil, err
	}
	if s.Beeps, err = beeps(ctx, file); err != nil {
		return nil, err
	}
	for _, f := range s.Flashes {
		best := time.Duration(math.MaxInt64)
		for _, b := range s.Beeps {
			if d := b - f; max(d, -d) < max(best, -best) {
				best = d
			}
		}
		if best != math.MaxInt64 && max(best, -best) < 500*time.Millisecond {
			s.Offsets = append(s.Offsets, best)
		}
	}
	return s, nil
}

var (
	ptsRe    = regexp.MustCompile(`pts_time:(-?[0-9.]+)`)
	yavgRe   = regexp.MustCompile(`lavfi\.signalstats\.YAVG=([0-9.]+)`)
	silEvent = regexp.MustCompile(`silence_(start|end): (-?[0-9.]+)`)
	secsDur  = func(s string) time.Duration {
		f, _ := strconv.ParseFloat(s, 64)
		return time.Duration(f * float64(time.Second))
	}
)

// FlashLength is how long the flash of every flash-and-beep source lasts
// (testdata/flashbeep.h264, the Chromium page's canvas, the GStreamer
// driver's frames): the first dark frame after it comes this long after
// its start.
const FlashLength = 100 * time.Millisecond

// flashes returns where the flashes start, and the frame before each
// start (see Sync.Since). A flash whose first white frame follows a gap
// in the picture (more than 1.5 frame periods, the median interval
// between frames) is measured by its end instead, the first dark frame
// after it less FlashLength (and the last white one less FlashLength),
// if no gap precedes that one; otherwise it is unsure.
func flashes(ctx context.Context, file string) (sure, since, unsure []time.Duration, err error) {
	out, err := ffmpegLog(ctx, file, "-map", "0:v:0", "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG")
	if err != nil {
		return nil, nil, nil, err
	}
	type frame struct {
		pts  time.Duration
		luma float64
	}
	var frames []frame
	var pts time.Duration
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := ptsRe.FindStringSubmatch(line); m != nil {
			pts = secsDur(m[1])
		} else if m := yavgRe.FindStringSubmatch(line); m != nil {
			y, _ := strconv.ParseFloat(m[1], 64)
			frames = append(frames, frame{pts, y})
		}
	}
	var steps []time.Duration
	for i := 1; i < len(frames); i++ {
		steps = append(steps, frames[i].pts-frames[i-1].pts)
	}
	slices.Sort(steps)
	var period time.Duration
	if len(steps) > 0 {
		period = steps[len(steps)/2]
	}
	gap := func(i int) bool { return i > 0 && period > 0 && frames[i].pts-frames[i-1].pts > period*3/2 }
	var start, before time.Duration
	dark, white, startSure := false, false, false
	for i, f := range frames {
		switch {
		case f.luma < 64 && white:
			switch {
			case startSure:
				sure, since = append(sure, start), append(since, before)
			case !gap(i):
				sure, since = append(sure, f.pts-FlashLength), append(since, frames[i-1].pts-FlashLength)
			default:
				unsure = append(unsure, start)
			}
			white, dark = false, true
		case f.luma < 64:
			dark = true
		case f.luma > 128 && dark:
			white, start, before, startSure = true, f.pts, frames[i-1].pts, !gap(i)
			dark = false
		}
	}
	if white {
		if startSure {
			sure, since = append(sure, start), append(since, before)
		} else {
			unsure = append(unsure, start)
		}
	}
	return sure, since, unsure, nil
}

func beeps(ctx context.Context, file string) ([]time.Duration, error) {
	out, err := ffmpegLog(ctx, file, "-map", "0:a:0", "-af", "silencedetect=n=-30dB:d=0.05")
	if err != nil {
		return nil, err
	}
	var res []time.Duration
	ended := false // the latest silence ended, and no other began
	for _, m := range silEvent.FindAllStringSubmatch(string(out), -1) {
		if m[1] == "start" {
			ended = false
			continue
		}
		res = append(res, secsDur(m[2]))
		ended = true
	}
	// A silence that ends and is not followed by another one ends with
	// the audio (which may stop before the file does, when its last
	// packets were lost), or with a beep the file cut: neither is a whole
	// beep.
	if ended {
		res = res[:len(res)-1]
	}
	return res, nil
}

func ffmpegLog(ctx context.Context, file string, args ...string) ([]byte, error) {
	all := append([]string{"-hide_banner", "-nostdin", "-i", file}, args...)
	all = append(all, "-f", "null", "-")
	out, err := exec.CommandContext(ctx, "ffmpeg", all...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg analysing %s: %w: %s", file, err, tail(out))
	}
	return out, nil
}

func tail(b []byte) string {
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}
