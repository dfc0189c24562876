package whipclient

import (
	"fmt"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testmedia"
)

// Payload types offered for each codec (pion's defaults).
const (
	ptOpus = 111
	ptVP8  = 96
	ptVP9  = 98
	ptAV1  = 45
	ptH264 = 102
	// ptH265 is not among pion's default payload types (pion v3 registers
	// no H.265), so the viewer can add it beside them.
	ptH265 = 49
)

// h265Fmtp is what Safari and OBS offer for H.265 Main.
const h265Fmtp = "level-id=93;profile-id=1;tier-flag=0;tx-mode=SRST"

// defaultFixtures are the testdata files used when no file is given.
var defaultFixtures = map[string]string{
	"vp8":   "vp8.ivf",
	"vp9":   "vp9.ivf",
	"av1":   "av1.ivf",
	"h264":  "h264.h264",
	"h265":  "h265.h265",
	"audio": "opus.ogg",
}

// ivfFourCC is the IVF FourCC expected for each IVF codec name.
var ivfFourCC = map[string]string{
	"vp8": testmedia.FourCCVP8,
	"vp9": testmedia.FourCCVP9,
	"av1": testmedia.FourCCAV1,
}

// mediaSource is one loaded file plus how to send it.
type mediaSource struct {
	kind      string // "video" or "audio"
	codec     webrtc.RTPCodecParameters
	payloader rtp.Payloader
	samples   []testmedia.Sample
}

func videoRTCPFeedback() []webrtc.RTCPFeedback {
	return []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"},
		{Type: "nack"}, {Type: "nack", Parameter: "pli"},
	}
}

// fixturePath returns file, or the default fixture for key when file is "".
func fixturePath(file, key string) (string, error) {
	if file != "" {
		return file, nil
	}
	path, err := testmedia.Lookup(defaultFixtures[key])
	if err != nil {
		return "", fmt.Errorf("no file given and no default fixture: %w", err)
	}
	return path, nil
}

// loadVideo reads the video file and picks codec parameters and payloader.
func loadVideo(opts PublishOptions) (*mediaSource, error) {
	path, err := fixturePath(opts.VideoFile, opts.Video)
	if err != nil {
		return nil, fmt.Errorf("loading %s video: %w", opts.Video, err)
	}
	switch opts.Video {
	case "h264":
		return loadH264(path, opts)
	case "h265":
		return loadH265(path, opts)
	}
	want, ok := ivfFourCC[opts.Video]
	if !ok {
		return nil, fmt.Errorf("unsupported video codec %q (want vp8, vp9, av1, h264 or h265)", opts.Video)
	}
	fourcc, samples, err := testmedia.ReadIVF(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s video: %w", opts.Video, err)
	}
	if fourcc != want {
		return nil, fmt.Errorf("loading %s video: %s holds %s, not %s", opts.Video, path, fourcc, want)
	}
	src := &mediaSource{kind: "video", samples: samples}
	switch opts.Video {
	case "vp8":
		src.codec = videoCodec(webrtc.MimeTypeVP8, "", ptVP8)
		src.payloader = &codecs.VP8Payloader{EnablePictureID: true}
	case "vp9":
		src.codec = videoCodec(webrtc.MimeTypeVP9, "profile-id=0", ptVP9)
		src.payloader = &codecs.VP9Payloader{}
	case "av1":
		src.codec = videoCodec(webrtc.MimeTypeAV1, "", ptAV1)
		src.payloader = &codecs.AV1Payloader{}
	}
	return src, nil
}

func loadH264(path string, opts PublishOptions) (*mediaSource, error) {
	fps := opts.VideoFPS
	if fps == 0 {
		fps = 30
	}
	samples, err := testmedia.ReadH264(path, fps)
	if err != nil {
		return nil, fmt.Errorf("loading h264 video: %w", err)
	}
	profile := opts.H264ProfileLevelID
	if profile == "" {
		profile = sdpProfileLevelID(testmedia.ProfileLevelID(samples))
	}
	fmtp := "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile
	return &mediaSource{
		kind:      "video",
		codec:     videoCodec(webrtc.MimeTypeH264, fmtp, ptH264),
		payloader: &codecs.H264Payloader{DisableStapA: opts.H264SeparateParamSets},
		samples:   samples,
	}, nil
}

func loadH265(path string, opts PublishOptions) (*mediaSource, error) {
	fps := opts.VideoFPS
	if fps == 0 {
		fps = 30
	}
	samples, err := testmedia.ReadH265(path, fps)
	if err != nil {
		return nil, fmt.Errorf("loading h265 video: %w", err)
	}
	return &mediaSource{
		kind:      "video",
		codec:     videoCodec(webrtc.MimeTypeH265, h265Fmtp, ptH265),
		payloader: &codecs.H265Payloader{SkipAggregation: opts.H264SeparateParamSets},
		samples:   samples,
	}, nil
}

// sdpProfileLevelID maps the profile-level-id found in a file's SPS to the
// value browsers and OBS put in SDP for that profile (level 3.1), because
// pion matches the profile and constraint byte exactly.
func sdpProfileLevelID(fromSPS string) string {
	switch {
	case len(fromSPS) < 4:
		return "42e01f"
	case fromSPS[:2] == "42" && fromSPS[2:4] == "00":
		return "42001f" // Baseline
	case fromSPS[:2] == "42":
		return "42e01f" // Constrained Baseline
	case fromSPS[:2] == "4d":
		return "4d001f" // Main
	case fromSPS[:2] == "64":
		return "64001f" // High
	default:
		return fromSPS[:4] + "1f"
	}
}

func videoCodec(mime, fmtp string, pt webrtc.PayloadType) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: mime, ClockRate: 90000, SDPFmtpLine: fmtp, RTCPFeedback: videoRTCPFeedback(),
		},
		PayloadType: pt,
	}
}

// loadAudio reads the Ogg Opus file.
func loadAudio(opts PublishOptions) (*mediaSource, error) {
	path, err := fixturePath(opts.AudioFile, "audio")
	if err != nil {
		return nil, fmt.Errorf("loading audio: %w", err)
	}
	samples, err := testmedia.ReadOgg(path)
	if err != nil {
		return nil, fmt.Errorf("loading audio: %w", err)
	}
	return &mediaSource{
		kind: "audio",
		codec: webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
				SDPFmtpLine: "minptime=10;useinbandfec=1",
			},
			PayloadType: ptOpus,
		},
		payloader: &codecs.OpusPayloader{},
		samples:   samples,
	}, nil
}

// loadSources reads every file the options ask for.
func loadSources(opts PublishOptions) ([]*mediaSource, error) {
	var sources []*mediaSource
	if opts.Video != "" {
		src, err := loadVideo(opts)
		if err != nil {
			return nil, err
		}
		sources = append(sources, src)
	}
	if opts.Audio {
		src, err := loadAudio(opts)
		if err != nil {
			return nil, err
		}
		sources = append(sources, src)
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("nothing to publish: set Video and/or Audio")
	}
	return sources, nil
}

// mediaEngine registers exactly the codecs of sources.
func mediaEngine(sources []*mediaSource) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	for _, src := range sources {
		kind := webrtc.RTPCodecTypeVideo
		if src.kind == "audio" {
			kind = webrtc.RTPCodecTypeAudio
		}
		if err := m.RegisterCodec(src.codec, kind); err != nil {
			return nil, fmt.Errorf("registering %s codec %s: %w", src.kind, src.codec.MimeType, err)
		}
	}
	return m, nil
}
