package meetings

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/reel-gateway/reel/recorder"
)

// BenchmarkManifestWrite is what one write of a running meeting's manifest
// costs: it is written whole, atomically and synced (a temporary file,
// fsync, rename, fsync of the folder), on every join, leave, recording
// start or end, and for the loss and unanswered-keyframe events at most
// once per eventFlush. A meeting of five, each with two recordings, after
// n events so far. BenchmarkRecordingEvent is what an event costs.
func BenchmarkManifestWrite(b *testing.B) {
	for _, events := range []int{20, 500, 2000} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) {
			m, err := New(Config{Dir: b.TempDir(), Grace: time.Hour, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			var ins []recorder.Info
			for p := range 5 {
				stream := fmt.Sprintf("board/p%d", p)
				m.Join(stream, t0.Add(time.Duration(p)*time.Second))
				pl := m.Place(stream)
				for r := range 2 {
					in := recorder.Info{ID: fmt.Sprintf("board.p%d_%d", p, r), Path: fmt.Sprintf("/x/board.p%d_%d.mkv.part", p, r),
						Container: "mkv", Start: t0.Add(time.Duration(p)*time.Second + time.Duration(r)*time.Minute), State: recorder.StateRecording,
						Meeting: pl.Meeting, Occurrence: pl.Occurrence, Participant: pl.Participant,
						Tracks: []recorder.TrackInfo{{Kind: "video", Codec: "h264"}, {Kind: "audio", Codec: "opus", OffsetMS: 12}}}
					m.RecordingStarted(in)
					ins = append(ins, in)
				}
			}
			for i := 0; len(m.all[ins[0].Occurrence].man.Events) < events; i++ {
				m.RecordingEvent(ins[i%len(ins)], recorder.Event{Time: t0.Add(time.Duration(i) * time.Second), Type: "loss", Kind: "video", Lost: 3})
			}
			o := m.all[ins[0].Occurrence]
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.RecordingEvent(ins[i%len(ins)], recorder.Event{Time: t0.Add(time.Hour), Type: "loss", Kind: "audio", Lost: 1})
				m.mu.Lock()
				m.saveLocked(o) // written at once, as a join or leave would
				m.mu.Unlock()
			}
			b.StopTimer()
			oc, err := m.Get(ins[0].Occurrence)
			if err != nil {
				b.Fatal(err)
			}
			data, err := json.MarshalIndent(oc.Manifest, "", "  ")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(data)), "manifest-bytes")
			// The part of the cost that is not the disk: encoding.
			start := time.Now()
			for range 20 {
				_, _ = json.MarshalIndent(oc.Manifest, "", "  ")
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/20, "encode-ns")
		})
	}
}

// BenchmarkRecordingEvent is what one loss or unanswered-keyframe event
// of a recording costs the Manager (its lock held): it waits, with the
// others, for the next write, at most once per eventFlush.
func BenchmarkRecordingEvent(b *testing.B) {
	m, err := New(Config{Dir: b.TempDir(), Grace: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	m.Join("board/p0", t0)
	pl := m.Place("board/p0")
	in := recorder.Info{ID: "board.p0_0", Path: "/x/board.p0_0.mkv.part", Container: "mkv", Start: t0, State: recorder.StateRecording,
		Meeting: pl.Meeting, Occurrence: pl.Occurrence, Participant: pl.Participant}
	m.RecordingStarted(in)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.RecordingEvent(in, recorder.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Type: "loss", Kind: "audio", Lost: 1})
	}
}
