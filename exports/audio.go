package exports

import (
	"strconv"
	"strings"

	"github.com/reel-gateway/reel/recorder"
)

// audioOutput is one file of an audio export.
type audioOutput struct {
	name, role, participant, format string
	offsetMS                        int64
}

// audioArgs is the ffmpeg command line (after the common options) of an
// audio export of p into dir, for one run: the mix of everyone as Opus in
// WebM and as 16 kHz mono WAV (what speech-to-text systems take), and one
// 16 kHz mono WAV stem per participant. Every file starts at the export's
// start, so a stem's silence up to the participant's first word is their
// offset, and "who spoke when" is the stem's time. Files are written as
// "<name>.part".
func audioArgs(p *plan, threads int, dir, base string) ([]string, []audioOutput) {
	g := &graph{threads: strconv.Itoa(threads)}
	stems := map[string]string{}
	mixAudio(p, g, "mix", stems)
	g.chain("[mix]asplit=2[mixopus][mixwav]")
	outs := []audioOutput{{name: base + ".mix.webm", role: "mix", format: "webm"}, {name: base + ".mix.wav", role: "mix", format: "wav"}}
	args := append(g.inputs, "-filter_complex", strings.Join(g.chains, ";"),
		"-map", "[mixopus]", "-c:a", "libopus", "-b:a", "48k", "-ac", "1", "-threads", g.threads, "-f", "webm", dir+"/"+outs[0].name+".part",
		"-map", "[mixwav]", "-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1", "-f", "wav", dir+"/"+outs[1].name+".part")
	for _, name := range p.participants {
		label, ok := stems[name]
		if !ok {
			continue
		}
		o := audioOutput{name: base + "." + recorder.SafeName(name) + ".wav", role: "stem", participant: name, format: "wav", offsetMS: -1}
		for _, s := range p.segments {
			if s.participant == name && s.audio {
				at := max(s.startMS+s.audioMS, 0)
				if o.offsetMS < 0 || at < o.offsetMS {
					o.offsetMS = at
				}
			}
		}
		outs = append(outs, o)
		args = append(args, "-map", "["+label+"]", "-c:a", "pcm_s16le", "-ar", "16000", "-ac", "1", "-f", "wav", dir+"/"+o.name+".part")
	}
	return args, outs
}
