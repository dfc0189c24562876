package exports

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Composite defaults: 720p at 30 fps.
const (
	DefaultWidth  = 1280
	DefaultHeight = 720
	DefaultFPS    = 30
)

// fontCandidates are where Debian (fonts-dejavu-core, fonts-liberation)
// and other distributions keep a sans font for the tiles' names.
var fontCandidates = []string{
	"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
	"/usr/share/fonts/TTF/DejaVuSans.ttf",
	"/usr/share/fonts/dejavu/DejaVuSans.ttf",
	"/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
	"/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
	"/usr/share/fonts/noto/NotoSans-Regular.ttf",
}

// findFont returns the first font that exists, "" when none does.
func findFont(configured string) string {
	if configured != "" {
		return configured
	}
	for _, f := range fontCandidates {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

// graph collects ffmpeg inputs and filter graph chains.
type graph struct {
	threads string
	inputs  []string
	n       int
	chains  []string
}

// input adds a file read from fromMS for forMS and returns its index.
// From the start it is read without -ss: an accurate seek to 0 drops
// the first Opus packet, whose time is negative (its pre-skip).
func (g *graph) input(path string, fromMS, forMS int64) int {
	g.inputs = append(g.inputs, "-threads", g.threads)
	if fromMS > 0 {
		g.inputs = append(g.inputs, "-ss", seconds(fromMS))
	}
	g.inputs = append(g.inputs, "-t", seconds(forMS), "-i", path)
	g.n++
	return g.n - 1
}

func (g *graph) chain(format string, a ...any) {
	g.chains = append(g.chains, fmt.Sprintf(format, a...))
}

// compositeSettings are the composite video's size, rate and label font.
type compositeSettings struct {
	width, height, fps int
	font               string // "" draws no names
}

// compositeArgs is the ffmpeg command line (after the common options)
// that renders p as one MP4 at out: for every stretch of the timeline with
// the same participants (plan.intervals), a grid of their tiles, each
// with its name, on black; the stretches concatenated; every audio track
// at its offset, mixed; H.264 + AAC, +faststart.
func compositeArgs(p *plan, s compositeSettings, threads int, out string) []string {
	g := &graph{threads: strconv.Itoa(threads)}
	fps := int64(max(s.fps, 1))
	ivs := p.intervals(2 * 1000 / fps)
	// Every stretch is a whole number of frames, cut at the frame nearest
	// its times, so that the stretches add up to the export's length and
	// the picture does not drift from the sound over many joins and
	// leaves.
	frame := func(ms int64) int64 { return (ms*fps + 500) / 1000 }
	var concat strings.Builder
	n := 0
	for i, iv := range ivs {
		frames := frame(iv.endMS) - frame(iv.startMS)
		if frames <= 0 {
			continue
		}
		n++
		iv.startMS = frame(iv.startMS) * 1000 / fps
		dur := frames * 1000 / fps
		cols, rows := grid(len(iv.tiles))
		tw, th := even(s.width/cols), even(s.height/rows)
		g.chain("color=c=black:s=%dx%d:r=%d,trim=end_frame=%d[bg%d]", s.width, s.height, s.fps, frames, i)
		last := fmt.Sprintf("bg%d", i)
		for j, seg := range iv.tiles {
			tile := fmt.Sprintf("t%d_%d", i, j)
			label := ""
			if s.font != "" {
				label = fmt.Sprintf(",drawtext=fontfile='%s':text='%s':x=10:y=h-th-10:fontsize=%d:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6",
					s.font, labelText(seg.participant), max(14, th/14))
			}
			if seg.video {
				from := max(iv.startMS-seg.startMS, 0)
				shift := max(seg.startMS-iv.startMS, 0)
				k := g.input(seg.path, from, dur-shift+1000/fps)
				g.chain("[%d:v]setpts=PTS+%s/TB,scale=w=%d:h=%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1%s[%s]",
					k, seconds(shift), tw, th, tw, th, label, tile)
			} else {
				// Audio only: a dark tile with the name.
				g.chain("color=c=0x202020:s=%dx%d:r=%d,trim=end_frame=%d%s[%s]", tw, th, s.fps, frames, label, tile)
			}
			x, y := (j%cols)*tw, (j/cols)*th
			next := fmt.Sprintf("o%d_%d", i, j)
			g.chain("[%s][%s]overlay=x=%d:y=%d:eof_action=pass:repeatlast=0[%s]", last, tile, x, y, next)
			last = next
		}
		g.chain("[%s]format=yuv420p,setsar=1[v%d]", last, i)
		fmt.Fprintf(&concat, "[v%d]", i)
	}
	if n == 0 { // a range shorter than a frame: one black frame
		g.chain("color=c=black:s=%dx%d:r=%d,trim=end_frame=1,format=yuv420p[v0]", s.width, s.height, s.fps)
		concat.WriteString("[v0]")
		n = 1
	}
	g.chain("%sconcat=n=%d:v=1:a=0[vout]", concat.String(), n)
	mixAudio(p, g, "aout", nil)
	args := append(g.inputs, "-filter_complex", strings.Join(g.chains, ";"),
		"-map", "[vout]", "-map", "[aout]",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-r", strconv.Itoa(s.fps),
		"-c:a", "aac", "-b:a", "128k", "-ar", "48000",
		"-threads", g.threads, "-movflags", "+faststart", "-t", seconds(p.durationMS), "-f", "mp4", out)
	return args
}

// mixAudio adds every audio track of p, each at its place on the
// timeline and padded with silence from 0, mixed into [label] (silence
// when nobody has audio), exactly as long as the export. stems, if not
// nil, gets for each participant the label of their own track, on the
// same timeline.
func mixAudio(p *plan, g *graph, label string, stems map[string]string) {
	var mix []string
	per := map[string][]string{}
	for k, seg := range p.segments {
		if !seg.audio {
			continue
		}
		from := max(-seg.startMS, 0)
		delay := max(seg.startMS, 0)
		in := g.input(seg.path, from, p.durationMS-delay)
		name := fmt.Sprintf("a%d", k)
		// async fills what the file lacks (the start before its first
		// audio frame, losses) with silence, by the frames' timestamps.
		chain := fmt.Sprintf("[%d:a]aresample=48000:async=1:first_pts=0,aformat=channel_layouts=stereo,adelay=delays=%d:all=1", in, delay)
		if stems != nil {
			g.chain("%s,asplit=2[%s][s%s]", chain, name, name)
			per[seg.participant] = append(per[seg.participant], "s"+name)
		} else {
			g.chain("%s[%s]", chain, name)
		}
		mix = append(mix, name)
	}
	dur := seconds(p.durationMS)
	sum := func(ins []string, out string) {
		if len(ins) == 0 {
			g.chain("anullsrc=r=48000:cl=stereo,atrim=end=%s[%s]", dur, out)
			return
		}
		// A bed of silence exactly as long as the export is mixed in, so
		// the sum lasts that long however early its tracks end. Padded
		// with apad after amix instead, the stem of a participant who
		// left before the end sometimes stopped at their last audio
		// (0.5 s short, in two CI runs of three on a busy machine; not
		// reproduced alone).
		bed := "bed" + out
		g.chain("anullsrc=r=48000:cl=stereo,atrim=end=%s[%s]", dur, bed)
		g.chain("[%s][%s]amix=inputs=%d:duration=longest:dropout_transition=0:normalize=0,atrim=end=%s[%s]",
			strings.Join(ins, "]["), bed, len(ins)+1, dur, out)
	}
	sum(mix, label)
	for _, name := range p.participants {
		if stems == nil || len(per[name]) == 0 {
			continue
		}
		out := fmt.Sprintf("stem%d", len(stems))
		sum(per[name], out)
		stems[name] = out
	}
}

func even(n int) int { return n &^ 1 }
