package exports

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/reel-gateway/reel/meetings"
)

// present is who has video at meeting time ts (s), in order of appearance.
func present(oc meetings.Occurrence, ts float64) []int {
	var out []int
	for i, p := range participants {
		for _, s := range segmentsOf(oc, p.name) {
			if s.start <= ts && ts < s.end {
				out = append(out, i)
				break
			}
		}
	}
	return out
}

// stretches are the meeting's stretches with the same participants, at
// least 0.5 s long, as [from, to) in seconds.
func stretches(oc meetings.Occurrence) [][2]float64 {
	cuts := []float64{0, float64(oc.Manifest.DurationMS) / 1000}
	for _, p := range participants {
		for _, s := range segmentsOf(oc, p.name) {
			cuts = append(cuts, s.start, s.end)
		}
	}
	slices.Sort(cuts)
	var out [][2]float64
	for i := 1; i < len(cuts); i++ {
		if cuts[i]-cuts[i-1] >= 0.5 {
			out = append(out, [2]float64{cuts[i-1], cuts[i]})
		}
	}
	return out
}

// frameAt decodes the frame at ts as w×h RGB.
func frameAt(t *testing.T, path string, ts float64, w, h int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-ss", strconv.FormatFloat(ts, 'f', 3, 64), "-i", path,
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(out) != w*h*3 {
		t.Fatalf("frame at %.3f s: %d bytes, %v", ts, len(out), err)
	}
	return out
}

func near(px []byte, rgb [3]int) bool {
	d := 0
	for i := range 3 {
		d += abs(int(px[i]) - rgb[i])
	}
	return d < 90
}

func abs(v int) int { return max(v, -v) }

// bandRMS is the RMS level (dB) of path's audio around hz in [from, to).
func bandRMS(t *testing.T, path string, hz, from, to float64) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "info", "-ss", fmt.Sprint(from), "-t", fmt.Sprint(to-from), "-i", path, "-vn",
		"-af", fmt.Sprintf("bandpass=f=%g:width_type=q:w=8,astats=measure_perchannel=none:measure_overall=RMS_level", hz),
		"-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("astats: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`RMS level dB: (-?[0-9.]+|-inf)`).FindAllSubmatch(out, -1)
	if len(m) == 0 {
		t.Fatalf("no RMS level in:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[len(m)-1][1]), 64)
	if err != nil {
		return math.Inf(-1)
	}
	return v
}

// The composite shows, at a moment inside each stretch of the meeting, the
// colours of exactly the participants present, in the grid the count
// calls for; its audio holds each participant's tone only while they
// are there; it is as long as the meeting and decodes cleanly.
func TestComposite(t *testing.T) {
	mm, oc := recordedMeeting(t)
	const w, h = 640, 360
	m := newTestManager(t, mm, Config{Width: w, Height: h, FPS: 15})
	j, _, err := m.Start(oc.Manifest.ID, Request{Kind: Composite, ToMS: -1})
	if err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, m, j.ID)
	path, err := m.File(j.ID, j.Files[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, %.1fx real time", j.Files[0].Name, j.Files[0].Bytes, j.Speed)
	if j.Warning != "" {
		t.Errorf("warning %q: the tiles are not labelled (e2e/drivers/install.sh installs fonts-dejavu-core)", j.Warning)
	}
	p := ffprobe(t, path)
	if d, want := num(p.Format.Duration), float64(oc.Manifest.DurationMS)/1000; math.Abs(d-want) > 0.5 {
		t.Errorf("duration %.3f s, the meeting's %.3f s", d, want)
	}
	var codecs []string
	for _, s := range p.Streams {
		codecs = append(codecs, s.CodecName)
		if s.CodecType == "video" && (s.Width != w || s.Height != h) {
			t.Errorf("video %dx%d, want %dx%d", s.Width, s.Height, w, h)
		}
	}
	if !slices.Equal(codecs, []string{"h264", "aac"}) {
		t.Errorf("streams %v, want h264 and aac", codecs)
	}
	// +faststart: the moov box comes before mdat.
	head := make([]byte, 64<<10)
	if out, err := exec.Command("head", "-c", "65536", path).Output(); err == nil {
		head = out
	}
	if moov, mdat := bytes.Index(head, []byte("moov")), bytes.Index(head, []byte("mdat")); moov < 0 || (mdat >= 0 && mdat < moov) {
		t.Errorf("moov at %d, mdat at %d: not +faststart", moov, mdat)
	}
	if msg := decodeErrors(t, path); msg != "" {
		t.Errorf("decoding reports errors:\n%s", msg)
	}
	// The stretches add up to the meeting, to the frame: the picture
	// keeps to the sound.
	if n, want := len(packetTimes(t, path, 0)), (oc.Manifest.DurationMS*15+500)/1000; abs(n-int(want)) > 1 {
		t.Errorf("%d video frames, want %d (the meeting's length at 15 fps)", n, want)
	}

	layouts := map[int]bool{}
	for _, st := range stretches(oc) {
		mid := (st[0] + st[1]) / 2
		who := present(oc, mid)
		layouts[len(who)] = true
		cols, rows := grid(len(who))
		tw, th := w/cols, h/rows
		frame := frameAt(t, path, mid, w, h)
		for cell := range cols * rows {
			x, y := (cell%cols)*tw+tw/2, (cell/cols)*th+th/2
			px := frame[(y*w+x)*3:][:3]
			want, name := [3]int{0, 0, 0}, "nobody"
			if cell < len(who) {
				want, name = participants[who[cell]].rgb, participants[who[cell]].name
			}
			if !near(px, want) {
				t.Errorf("at %.2f s (%d present) tile %d is %v, want %s %v", mid, len(who), cell, px, name, want)
			}
			// The name's box (black at 60 %) darkens the tile's bottom left.
			lx, ly := (cell%cols)*tw+7, (cell/cols)*th+th-7
			if lp := frame[(ly*w+lx)*3:][:3]; cell < len(who) && int(lp[0])+int(lp[1])+int(lp[2]) > (want[0]+want[1]+want[2])*3/4 {
				t.Errorf("at %.2f s tile %d (%s) has no name box at its bottom left: %v", mid, cell, name, lp)
			}
		}
		for i, part := range participants {
			if st[1]-st[0] < 0.8 {
				continue
			}
			rms := bandRMS(t, path, part.hz, st[0]+0.25, st[1]-0.25)
			here := slices.Contains(who, i)
			if here && rms < -35 || !here && rms > -45 {
				t.Errorf("from %.2f to %.2f s %s's tone is at %.1f dB; present: %v", st[0], st[1], part.name, rms, here)
			}
		}
	}
	for _, n := range []int{1, 2, 3} {
		if !layouts[n] {
			t.Errorf("no stretch with %d participants: the meeting did not go as planned (%v)", n, layouts)
		}
	}
}
