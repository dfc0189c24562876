package rtsp

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

type probedStream struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Channels  int    `json:"channels"`
}

// ffprobe runs ffprobe on a URL and returns its streams.
func ffprobe(t *testing.T, url string, transport string) ([]probedStream, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", transport,
		"-i", url, "-show_streams", "-of", "json")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Logf("ffprobe stderr: %s", stderr.String())
		return nil, err
	}
	var res struct {
		Streams []probedStream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	return res.Streams, nil
}

func findProbed(streams []probedStream, typ string) *probedStream {
	for i := range streams {
		if streams[i].CodecType == typ {
			return &streams[i]
		}
	}
	return nil
}

func TestFFprobeSeesRealCodecs(t *testing.T) {
	needTool(t, "ffprobe")
	for _, tc := range []struct {
		codec live.Codec
		name  string
	}{
		{live.H264, "h264"},
		{live.H265, "hevc"},
		{live.VP8, "vp8"},
		{live.VP9, "vp9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := live.NewHub(live.Reject)
			publish(t, hub, "cam", hubtest.Source{Video: tc.codec, Audio: true, Loop: true})
			s := startServer(t, hub, false)

			streams, err := ffprobe(t, streamURL(s, "cam"), "tcp")
			if err != nil {
				t.Fatalf("ffprobe: %v", err)
			}
			v, a := findProbed(streams, "video"), findProbed(streams, "audio")
			if v == nil || v.CodecName != tc.name || v.Width != 640 || v.Height != 360 {
				t.Errorf("video: got %+v, want %s 640x360", v, tc.name)
			}
			if a == nil || a.CodecName != "opus" || a.Channels != 2 {
				t.Errorf("audio: got %+v, want opus, 2 channels", a)
			}
		})
	}
}

// TestFFmpegDecodesWithoutErrors covers the codecs whose packets ffmpeg
// reassembles from fragments and parameter sets (H.264, H.265), where a
// forwarding mistake shows up as a decoding error.
func TestFFmpegDecodesWithoutErrors(t *testing.T) {
	needTool(t, "ffmpeg")
	for _, codec := range []live.Codec{live.H264, live.H265} {
		for _, transport := range []string{"tcp", "udp"} {
			t.Run(string(codec)+"/"+transport, func(t *testing.T) {
				hub := live.NewHub(live.Reject)
				src := hubtest.Source{Video: codec, Audio: true, Loop: true}
				s := startServer(t, hub, true)
				if codec == live.H265 {
					publishJoiningAtKeyframe(t, hub, s, "cam", src)
				} else {
					publish(t, hub, "cam", src)
				}

				decode3s(t, streamURL(s, "cam"), transport)
			})
		}
	}
}

// publishJoiningAtKeyframe publishes a looping fixture as name through a
// relay that, once a reader plays, holds the video back until the server
// sends that reader packets and a keyframe begins: the reader's first
// picture is a keyframe, as it is when a publisher answers the keyframe
// request that PLAY sends. The fixture publisher keeps its 1 s GOP
// whatever is asked, and ffmpeg's HEVC decoder, unlike its H.264 one,
// reports every picture whose references it never got ("Could not find
// ref with POC") at level error, so a mid-GOP join fails decode3s
// however well Reel forwards.
func publishJoiningAtKeyframe(t *testing.T, hub *live.Hub, s *Server, name string, src hubtest.Source) {
	t.Helper()
	pub, _ := publish(t, hub, name+"-fixture", src)
	tracks := map[*live.Track]*live.Track{}
	var out []*live.Track
	for _, in := range pub.Stream.Tracks() {
		c := &live.Track{Kind: in.Kind, Codec: in.Codec, PayloadType: in.PayloadType,
			ClockRate: in.ClockRate, Channels: in.Channels, Fmtp: in.Fmtp}
		tracks[in] = c
		out = append(out, c)
	}
	dst, err := hub.Publish(name, live.PublishSpec{Session: "relay", Protocol: "test", Tracks: out})
	if err != nil {
		t.Fatal(err)
	}
	// Until a reader plays, video flows (to nobody) so that the track
	// learns the parameter sets DESCRIBE puts in the SDP. A PLAY counts
	// in Readers before gortsplib adds the session to the ServerStream;
	// bytes sent (audio flows throughout) show it was added.
	restarted := false
	sub, err := pub.Stream.Subscribe("relay", live.ConsumerFunc(func(p *live.Packet) {
		if p.Track.Kind == live.Video && !restarted && s.Readers(name) > 0 {
			if !live.IsKeyframeStart(p.Track.Codec, p.RTP.Payload) || !s.sendingTo(name) {
				return
			}
			restarted = true
		}
		_ = dst.WriteRTP(tracks[p.Track], p.Raw(), p.Arrival)
	}), 0)
	if err != nil {
		dst.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sub.Close()
		dst.Close()
	})
}

// sendingTo reports whether the server has sent packets of stream name to
// a reader.
func (s *Server) sendingTo(name string) bool {
	s.mu.Lock()
	ls := s.streams[name]
	s.mu.Unlock()
	return ls != nil && ls.rtsp.Stats().BytesSent > 0
}

// decode3s has ffmpeg decode 3 s of url over transport (with output
// arguments out, e.g. "-map 0:v"), with no message at level error, and
// checks that it got the frames of those 3 s.
func decode3s(t *testing.T, url, transport string, out ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	args := append([]string{"-nostdin", "-v", "error", "-rtsp_transport", transport, "-i", url, "-t", "3"}, out...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args, "-f", "null", "-progress", "pipe:1", "-")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	progress, err := cmd.Output()
	if err != nil {
		t.Errorf("ffmpeg over %s: %v\n%s", transport, err, stderr.String())
		return
	}
	if stderr.Len() > 0 {
		t.Errorf("ffmpeg over %s reported errors:\n%s", transport, stderr.String())
	}
	// -progress ends with the totals. 3 s at 30 fps is 90 frames, less
	// those before the first keyframe: the fixture publisher counts
	// keyframe requests but keeps its 1 s GOP.
	frames := lastProgress(progress, "frame")
	t.Logf("ffmpeg over %s decoded %d video frames", transport, frames)
	if frames < 45 {
		t.Errorf("ffmpeg over %s decoded %d video frames of 3 s at 30 fps, want at least 45", transport, frames)
	}
}

// lastProgress reads the last integer value of key in ffmpeg -progress output.
func lastProgress(out []byte, key string) int {
	n := -1
	for line := range bytes.Lines(out) {
		k, v, ok := bytes.Cut(bytes.TrimSpace(line), []byte("="))
		if ok && string(k) == key {
			if x, err := strconv.Atoi(string(v)); err == nil {
				n = x
			}
		}
	}
	return n
}

func TestFFprobeUnknownStreamFails(t *testing.T) {
	needTool(t, "ffprobe")
	hub := live.NewHub(live.Reject)
	s := startServer(t, hub, false)
	if _, err := ffprobe(t, streamURL(s, "nobody"), "tcp"); err == nil {
		t.Fatal("ffprobe of a stream that is not live succeeded")
	}
}

func TestFFprobeWithToken(t *testing.T) {
	needTool(t, "ffprobe")
	hub := live.NewHub(live.Reject)
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	s := startServer(t, hub, false, "s3cret")

	if _, err := ffprobe(t, streamURL(s, "cam"), "tcp"); err == nil {
		t.Error("ffprobe without credentials succeeded")
	}
	for name, url := range map[string]string{
		"basic": "rtsp://viewer:s3cret@" + s.Addr() + "/cam",
		"query": streamURL(s, "cam") + "?token=s3cret",
	} {
		streams, err := ffprobe(t, url, "tcp")
		if err != nil {
			t.Errorf("%s: ffprobe with the right token: %v", name, err)
			continue
		}
		if v := findProbed(streams, "video"); v == nil || v.CodecName != "h264" {
			t.Errorf("%s: video %+v", name, v)
		}
	}
}

func TestFFmpegEndsWhenPublisherLeaves(t *testing.T) {
	needTool(t, "ffmpeg")
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			hub := live.NewHub(live.Reject)
			pub, stop := publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true})
			s := startServer(t, hub, true)

			ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", transport,
				"-i", streamURL(s, "cam"), "-f", "null", "-")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			eventually(t, "ffmpeg plays", func() bool { return s.Readers("cam") == 1 })
			stop()
			<-pub.Done()
			start := time.Now()
			select {
			case err := <-exited:
				t.Logf("ffmpeg exited %v after the publisher left: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(wait):
				t.Fatal("ffmpeg still running after the publisher left")
			}
		})
	}
}
