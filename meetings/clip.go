package meetings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

// Span is a part of an occurrence's timeline, as offsets from its start.
type Span struct {
	From, To time.Duration
}

// ClipInfo, in a clip's manifest, says which part of which occurrence the
// clip holds. The clip's timeline starts at FromMS of the occurrence's:
// every offset_ms in the clip's manifest is re-based to it.
type ClipInfo struct {
	Occurrence      string    `json:"occurrence"`
	OccurrenceStart time.Time `json:"occurrence_start"`
	FromMS          int64     `json:"from_ms"`
	ToMS            int64     `json:"to_ms"`
	// SourceManifestSHA256 is the occurrence's manifest's checksum (its
	// manifest.json.sha256) once it has ended.
	SourceManifestSHA256 string `json:"source_manifest_sha256,omitempty"`
}

// WriteClipZip streams the part span of occurrence id to w, as WriteZip
// does the whole: every participant's recording cut to the span and
// remuxed to MP4 (recorder.MP4Remux, no re-encoding), each starting at its
// keyframe at or before span.From; a manifest.json of the clip, its
// offsets re-based to span.From; and SHA256SUMS. Recordings that lie
// outside the span are left out. A recording MP4 cannot carry (VP8), or
// one that cannot be cut (a damaged file; its entry's error says why), is
// put in whole, as recorded, and marked "whole_file": so that no
// participant is missing from a clip; its offset_ms may then be negative
// (it starts before the clip). span.To zero is the occurrence's end.
func (m *Manager) WriteClipZip(w io.Writer, id string, span Span) error {
	oc, err := m.Get(id)
	if err != nil {
		return err
	}
	src := oc.Manifest
	from, to := span.From.Milliseconds(), span.To.Milliseconds()
	if to <= 0 {
		to = max(src.DurationMS, m.cfg.Now().Sub(src.Start).Milliseconds())
		if src.State == StateEnded {
			to = src.DurationMS
		}
	}
	if from >= to {
		return fmt.Errorf("the clip from %d ms to %d ms is empty", from, to)
	}
	clip := clipManifest(src, from, to)
	clip.Clip.SourceManifestSHA256 = oc.SHA256
	z := newZipper(w, id+"/")
	for _, r := range src.Recordings {
		if !zipped(r) || r.OffsetMS+r.DurationMS <= from || r.OffsetMS >= to {
			continue
		}
		out, err := m.clipRecording(z, m.opener(context.Background(), oc, r.File), r, from, to)
		switch {
		case errors.Is(err, recorder.ErrClipEmpty), errors.Is(err, fs.ErrNotExist):
			m.log.Warn("a meeting's recording has no media in a clip, or is missing", "occurrence", id, "file", r.File, "error", err)
			continue
		case err != nil:
			return err
		}
		clip.Recordings = append(clip.Recordings, out)
	}
	data, err := json.MarshalIndent(clip, "", "  ")
	if err != nil {
		return err
	}
	if err := z.add(manifestName, clip.Start, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	}); err != nil {
		return err
	}
	return z.close()
}

// clipRecording adds recording r's part in [from, to) of the timeline to
// z, as MP4 or, if MP4 cannot carry it, whole; out is its entry in the
// clip's manifest.
func (m *Manager) clipRecording(z *zipper, open func() (io.ReadSeekCloser, error), r Recording, from, to int64) (out Recording, err error) {
	f, err := open()
	if err != nil {
		return out, err
	}
	defer f.Close()
	cut := recorder.Clip{From: time.Duration(max(from-r.OffsetMS, 0)) * time.Millisecond}
	if end := to - r.OffsetMS; end < r.DurationMS || r.DurationMS == 0 {
		cut.To = time.Duration(end) * time.Millisecond
	}
	remux, err := recorder.NewMP4Remux(f, cut)
	var t0 time.Duration
	if err == nil {
		t0, err = remux.ClipStart()
	}
	switch {
	case errors.Is(err, recorder.ErrClipEmpty):
		return out, err
	case errors.Is(err, recorder.ErrMP4Codec):
		return m.wholeFile(z, open, r, from, "")
	case err != nil:
		m.log.Warn("a meeting's recording cannot be cut for a clip: it goes in whole", "file", r.File, "error", err)
		return m.wholeFile(z, open, r, from, "it cannot be cut ("+err.Error()+"): the clip holds the whole file")
	}
	start := r.OffsetMS + t0.Milliseconds() // the clip file's start on the occurrence's timeline
	out = Recording{ID: r.ID, Participant: r.Participant, Container: "mp4", State: r.State, Source: r.File,
		File:     strings.TrimSuffix(r.File, filepath.Ext(r.File)) + ".mp4",
		Start:    r.Start.Add(t0),
		OffsetMS: start - from,
		Tracks:   rebaseTracks(r.Tracks, start),
	}
	for i := range out.Tracks {
		out.Tracks[i].OffsetMS = max(out.Tracks[i].OffsetMS, 0) + start - from
	}
	end := r.OffsetMS + r.DurationMS
	if r.DurationMS == 0 {
		end = to
	}
	out.DurationMS = min(end, to) - start
	out.End = out.Start.Add(time.Duration(out.DurationMS) * time.Millisecond)
	var (
		n    int64
		rerr error
	)
	err = z.add(out.File, out.End, func(w io.Writer) error {
		// A read error (a damaged end) leaves the clip as far as it
		// could be read, and says so; a write error fails the next entry.
		n, rerr = remux.WriteTo(w)
		return nil
	})
	out.Bytes, out.SHA256 = n, z.last
	if rerr != nil {
		m.log.Warn("a meeting's clip of a recording ends early", "file", r.File, "error", rerr)
		out.Error = "the clip ends early: " + rerr.Error()
	}
	return out, err
}

// wholeFile adds recording r's own file, whole, to a clip whose timeline
// starts at from; why, if set, says why it is not cut.
func (m *Manager) wholeFile(z *zipper, open func() (io.ReadSeekCloser, error), r Recording, from int64, why string) (Recording, error) {
	out := r
	out.OffsetMS, out.Whole, out.Source = r.OffsetMS-from, true, r.File
	out.Tracks = rebaseTracks(r.Tracks, from)
	if why != "" {
		out.Error = why
	}
	err := z.addFile(open, r.File, r.End)
	out.SHA256 = z.last
	return out, err
}

// rebaseTracks returns tracks with their offsets made relative to at.
func rebaseTracks(tracks []Track, at int64) []Track {
	out := make([]Track, len(tracks))
	for i, t := range tracks {
		t.OffsetMS -= at
		out[i] = t
	}
	return out
}

// clipManifest is src cut to [from, to): the clip's timeline starts at
// from; who was there and what happened then, re-based to it. Its
// recordings are added as they are written.
func clipManifest(src Manifest, from, to int64) Manifest {
	at := func(ms int64) time.Time { return src.Start.Add(time.Duration(ms) * time.Millisecond) }
	c := Manifest{Schema: SchemaVersion, Meeting: src.Meeting, ID: src.ID, State: src.State,
		Start: at(from), End: at(to), DurationMS: to - from,
		Clip:         &ClipInfo{Occurrence: src.ID, OccurrenceStart: src.Start, FromMS: from, ToMS: to},
		Participants: []Participant{}, Recordings: []Recording{}, Events: []Event{}}
	for _, p := range src.Participants {
		var in []Presence
		for _, s := range p.Sessions {
			leave := to
			if s.LeaveMS != nil {
				leave = min(*s.LeaveMS, to)
			}
			if leave < from || s.JoinMS > to {
				continue
			}
			join := max(s.JoinMS, from)
			cs := Presence{Join: at(join), JoinMS: join - from}
			if s.LeaveMS != nil && *s.LeaveMS <= to {
				ms := leave - from
				cs.Leave, cs.LeaveMS = at(leave), &ms
			}
			in = append(in, cs)
		}
		if len(in) > 0 {
			c.Participants = append(c.Participants, Participant{Name: p.Name, Sessions: in})
		}
	}
	for _, e := range src.Events {
		if e.OffsetMS >= from && e.OffsetMS <= to {
			e.OffsetMS -= from
			c.Events = append(c.Events, e)
		}
	}
	return c
}
