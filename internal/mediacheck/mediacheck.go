// Package mediacheck inspects media files and URLs with tools we did not
// write (ffprobe, ffmpeg), so tests judge Reel's output as players would.
package mediacheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Require skips the test when ffmpeg/ffprobe are missing on a developer
// machine, and fails it in CI, where they must be installed.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed; .ci/run must install ffmpeg", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
}

// Stream is one stream as ffprobe reports it.
type Stream struct {
	Index     int    `json:"index"`
	CodecName string `json:"codec_name"`
	CodecType string `json:"codec_type"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Profile   string `json:"profile"`
}

// Probe is ffprobe's view of a file or URL.
type Probe struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
	} `json:"format"`
	Streams []Stream `json:"streams"`
}

// Duration is the container's duration.
func (p *Probe) Duration() time.Duration {
	f, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return time.Duration(f * float64(time.Second))
}

// Stream returns the first stream of a type ("video", "audio").
func (p *Probe) Stream(codecType string) *Stream {
	for i := range p.Streams {
		if p.Streams[i].CodecType == codecType {
			return &p.Streams[i]
		}
	}
	return nil
}

// ProbeFile runs ffprobe on a file or URL; extra arguments go before -i.
func ProbeFile(ctx context.Context, target string, extra ...string) (*Probe, error) {
	args := append([]string{"-v", "error", "-show_format", "-show_streams", "-of", "json"}, extra...)
	args = append(args, target)
	out, err := exec.CommandContext(ctx, "ffprobe", args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return nil, fmt.Errorf("ffprobe %s: %w: %s", target, err, stderr)
	}
	var p Probe
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	return &p, nil
}

// Decode has ffmpeg decode the input fully (or for the given input
// arguments, e.g. "-t 3") and returns an error if ffmpeg exits non-zero or
// prints anything at level error.
func Decode(ctx context.Context, target string, inputArgs ...string) error {
	return decode(ctx, target, inputArgs, nil)
}

// SeekDecode seeks to at and decodes a few video frames from there.
func SeekDecode(ctx context.Context, file string, at time.Duration) error {
	return decode(ctx, file, []string{"-ss", fmt.Sprintf("%.3f", at.Seconds())}, []string{"-frames:v", "5"})
}

// AsStored has ffmpeg hand the null muxer every video frame with its
// timestamp as stored, in ms. ffmpeg 5.1 otherwise rescales frames to
// 1/framerate, puts two frames less than a frame interval apart (a
// recording absorbing a step back of its stream's clock at nine tenths
// of real time, frames 30 ms apart; some seek positions) on one tick, and
// reports "non monotonically increasing dts", for ffmpeg's own remuxes
// too. Frames on one millisecond are still reported.
var AsStored = []string{"-fps_mode", "passthrough", "-enc_time_base:v", "1:1000"}

func decode(ctx context.Context, target string, inputArgs, outputArgs []string) error {
	args := append([]string{"-nostdin", "-v", "error"}, inputArgs...)
	args = append(append(append(append(args, "-i", target), outputArgs...), AsStored...), "-f", "null", "-")
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if msg := strings.TrimSpace(stderr.String()); err != nil || msg != "" {
		return fmt.Errorf("ffmpeg decoding %s (%s): err=%v output=%q", target, strings.Join(inputArgs, " "), err, msg)
	}
	return nil
}

// CountFrames decodes the video and returns the number of frames.
func CountFrames(ctx context.Context, file string) (int, error) {
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file).Output()
	if err != nil {
		return 0, fmt.Errorf("counting frames of %s: %w", file, err)
	}
	return strconv.Atoi(strings.TrimSpace(strings.Trim(string(out), ",\n")))
}
