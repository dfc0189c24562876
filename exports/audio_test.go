package exports

import (
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// firstSound is when path's audio first rises above -40 dBFS, in seconds.
func firstSound(t *testing.T, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "info", "-i", path, "-af", "silencedetect=noise=-40dB:d=0.02", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("silencedetect: %v\n%s", err, out)
	}
	start := regexp.MustCompile(`silence_start: (-?[0-9.]+)`).FindSubmatch(out)
	end := regexp.MustCompile(`silence_end: ([0-9.]+)`).FindSubmatch(out)
	if start == nil || end == nil {
		return 0 // sound from the first sample
	}
	if s, _ := strconv.ParseFloat(string(start[1]), 64); s > 0.001 {
		return 0
	}
	v, _ := strconv.ParseFloat(string(end[1]), 64)
	return v
}

// The audio export: the mix as Opus in WebM and as 16 kHz mono WAV, one
// 16 kHz mono stem per participant starting at the meeting's start, so
// each participant's first sound lies at their offset in the manifest;
// bob's stem is silent while he was away.
func TestAudio(t *testing.T) {
	mm, oc := recordedMeeting(t)
	m := newTestManager(t, mm, Config{})
	j, _, err := m.Start(oc.Manifest.ID, Request{Kind: Audio, ToMS: -1})
	if err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, m, j.ID)
	t.Logf("audio export: %.1fx real time", j.Speed)
	if len(j.Files) != 2+len(participants) {
		t.Fatalf("files %+v, want the mix twice and %d stems", j.Files, len(participants))
	}
	meetingS := float64(oc.Manifest.DurationMS) / 1000
	for _, f := range j.Files {
		path, err := m.File(j.ID, f.Name)
		if err != nil {
			t.Fatal(err)
		}
		p := ffprobe(t, path)
		if len(p.Streams) != 1 {
			t.Fatalf("%s: %d streams", f.Name, len(p.Streams))
		}
		s := p.Streams[0]
		switch f.Format {
		case "wav":
			if s.CodecName != "pcm_s16le" || s.SampleRate != "16000" || s.Channels != 1 {
				t.Errorf("%s: %s %s Hz %d channels, want 16 kHz mono PCM", f.Name, s.CodecName, s.SampleRate, s.Channels)
			}
		case "webm":
			if s.CodecName != "opus" || p.Format.FormatName != "matroska,webm" {
				t.Errorf("%s: %s in %s, want Opus in WebM", f.Name, s.CodecName, p.Format.FormatName)
			}
		}
		if d := num(p.Format.Duration); math.Abs(d-meetingS) > 0.1 {
			t.Errorf("%s lasts %.3f s, the meeting %.3f s", f.Name, d, meetingS)
		}
		if msg := decodeErrors(t, path); msg != "" {
			t.Errorf("%s: decoding reports errors:\n%s", f.Name, msg)
		}
		if f.Role != "stem" {
			continue
		}
		segs := segmentsOf(oc, f.Participant)
		if f.OffsetMS == nil || math.Abs(float64(*f.OffsetMS)/1000-segs[0].audio) > 0.001 {
			t.Errorf("%s: offset %v ms, the manifest's %.3f s", f.Name, f.OffsetMS, segs[0].audio)
		}
		got := firstSound(t, path)
		t.Logf("%s: first sound at %.3f s, manifest %.3f s", f.Name, got, segs[0].audio)
		if math.Abs(got-segs[0].audio) > 0.020 {
			t.Errorf("%s: first sound at %.3f s, the manifest places %s's audio at %.3f s", f.Name, got, f.Participant, segs[0].audio)
		}
		var hz float64
		for _, part := range participants {
			if part.name == f.Participant {
				hz = part.hz
			}
		}
		for i, s := range segs {
			if rms := bandRMS(t, path, hz, s.audio+0.1, s.end-0.1); rms < -35 {
				t.Errorf("%s: %.1f dB during recording %d", f.Name, rms, i)
			}
			if i > 0 {
				if rms := bandRMS(t, path, hz, segs[i-1].end+0.1, s.audio-0.1); rms > -60 {
					t.Errorf("%s: %.1f dB while away", f.Name, rms)
				}
			}
		}
	}
	mix, _ := m.File(j.ID, j.Files[1].Name)
	for _, part := range participants {
		s := segmentsOf(oc, part.name)[0]
		if rms := bandRMS(t, mix, part.hz, s.audio+0.1, s.end-0.1); rms < -35 {
			t.Errorf("the mix holds %s's tone at %.1f dB while present", part.name, rms)
		}
	}
}
