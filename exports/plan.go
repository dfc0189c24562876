package exports

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
)

// segment is one recording of a participant, placed on the export's
// timeline: ms 0 is the export's start (the meeting's start, or From).
type segment struct {
	participant string
	recording   string
	path        string
	startMS     int64 // where the file's ms 0 lies on the export's timeline
	endMS       int64
	video       bool
	audio       bool
	// audioMS is where the audio track's first frame lies in the file.
	audioMS int64
	bytes   int64
}

// plan is what an export is made of: the participants in order of
// appearance and every usable recording of theirs, on the export's
// timeline [0, durationMS).
type plan struct {
	occurrence   meetings.Occurrence
	fromMS       int64 // the export's start on the meeting's timeline
	durationMS   int64
	participants []string
	segments     []segment // by start
}

// Range errors.
var (
	ErrBadRange = errors.New("bad time range")
)

// newPlan places occurrence oc's finished recordings on the timeline of
// the range [fromMS, toMS) of the meeting (toMS < 0: its end).
func newPlan(oc meetings.Occurrence, fromMS, toMS int64) (*plan, error) {
	m := oc.Manifest
	if m.State != meetings.StateEnded {
		return nil, meetings.ErrLive
	}
	if toMS < 0 {
		toMS = m.DurationMS
	}
	if fromMS < 0 || toMS > m.DurationMS || fromMS >= toMS {
		return nil, fmt.Errorf("%w: from %.3f s and to %.3f s must satisfy 0 <= from < to <= %.3f s (the meeting's length)",
			ErrBadRange, float64(fromMS)/1000, float64(toMS)/1000, float64(m.DurationMS)/1000)
	}
	p := &plan{occurrence: oc, fromMS: fromMS, durationMS: toMS - fromMS}
	for _, r := range m.Recordings {
		if r.State != recorder.StateFinished && r.State != recorder.StateRepaired {
			continue
		}
		s := segment{participant: r.Participant, recording: r.ID, path: filepath.Join(oc.Dir, r.File),
			startMS: r.OffsetMS - fromMS, endMS: r.OffsetMS + r.DurationMS - fromMS}
		if s.endMS <= 0 || s.startMS >= p.durationMS {
			continue
		}
		for _, t := range r.Tracks {
			switch t.Kind {
			case "video":
				s.video = true
			case "audio":
				s.audio = true
				s.audioMS = max(t.OffsetMS-r.OffsetMS, 0)
			}
		}
		st, err := os.Stat(s.path)
		if err != nil {
			return nil, fmt.Errorf("recording %s of %s: %w", r.ID, r.Participant, err)
		}
		s.bytes = st.Size()
		p.segments = append(p.segments, s)
		if !slices.Contains(p.participants, r.Participant) {
			p.participants = append(p.participants, r.Participant)
		}
	}
	if len(p.segments) == 0 {
		return nil, fmt.Errorf("%w: no finished recording of the meeting lies in it", ErrBadRange)
	}
	slices.SortStableFunc(p.segments, func(a, b segment) int { return int(a.startMS - b.startMS) })
	return p, nil
}

// interval is a stretch of the timeline during which the same
// participants are present; tiles[i] is the segment shown in tile i.
type interval struct {
	startMS, endMS int64
	tiles          []segment
}

// intervals cuts the timeline where someone joins or leaves. Stretches
// shorter than minMS (a reconnect's instant) join the next one.
func (p *plan) intervals(minMS int64) []interval {
	cuts := []int64{0, p.durationMS}
	for _, s := range p.segments {
		cuts = append(cuts, clamp(s.startMS, 0, p.durationMS), clamp(s.endMS, 0, p.durationMS))
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var out []interval
	start := int64(0)
	for i := 1; i < len(cuts); i++ {
		end := cuts[i]
		if end-start < minMS && i < len(cuts)-1 {
			continue
		}
		mid := start + (end-start)/2
		iv := interval{startMS: start, endMS: end}
		for _, name := range p.participants {
			// The participant's segment at the interval's middle; of
			// two (a replace), the later.
			var pick *segment
			for j := range p.segments {
				s := &p.segments[j]
				if s.participant == name && s.startMS <= mid && mid < s.endMS {
					pick = s
				}
			}
			if pick != nil {
				iv.tiles = append(iv.tiles, *pick)
			}
		}
		out = append(out, iv)
		start = end
	}
	return out
}

// grid is the layout for n tiles: 1 full, 2 side by side, up to 4 in
// 2×2, up to 9 in 3×3, and so on.
func grid(n int) (cols, rows int) {
	if n <= 1 {
		return 1, 1
	}
	cols = int(math.Ceil(math.Sqrt(float64(n))))
	rows = (n + cols - 1) / cols
	return cols, rows
}

func clamp(v, lo, hi int64) int64 { return min(max(v, lo), hi) }
