package exports

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// ErrNoFFmpeg says the machine has no ffmpeg, and how to get it.
var ErrNoFFmpeg = errors.New("ffmpeg is not installed on the gateway's machine: install it (Debian/Ubuntu: apt-get install ffmpeg; " +
	"Docker: the image's \"full\" target, docker build --target full) or set exports.ffmpeg to its path")

// ffmpeg runs Debian's ffmpeg as a child process, at lower CPU priority
// (nice) and with a cap on its threads, so live forwarding and recording
// keep the CPU they need.
type ffmpeg struct {
	bin     string // "" when not installed
	nice    string // the nice binary, "" when not there
	niceN   int
	threads int
}

func newFFmpeg(bin string, niceN, threads int) ffmpeg {
	f := ffmpeg{niceN: niceN, threads: max(threads, 1)}
	if bin == "" {
		bin = "ffmpeg"
	}
	if p, err := exec.LookPath(bin); err == nil {
		f.bin = p
	}
	if p, err := exec.LookPath("nice"); err == nil && niceN > 0 {
		f.nice = p
	}
	return f
}

func (f ffmpeg) available() error {
	if f.bin == "" {
		return ErrNoFFmpeg
	}
	return nil
}

// run runs ffmpeg with args (the common options first) and reports
// progress, 0 to 1, from its -progress output against durationMS. A
// failure carries the end of ffmpeg's error output.
func (f ffmpeg) run(ctx context.Context, args []string, durationMS int64, progress func(float64)) error {
	if err := f.available(); err != nil {
		return err
	}
	full := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-progress", "pipe:1", "-nostats",
		"-filter_complex_threads", strconv.Itoa(f.threads)}, args...)
	name := f.bin
	if f.nice != "" {
		full = append([]string{"-n", strconv.Itoa(f.niceN), f.bin}, full...)
		name = f.nice // nice execs ffmpeg: the child's pid is ffmpeg's, and a cancel kills it
	}
	cmd := exec.CommandContext(ctx, name, full...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting ffmpeg: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		if k == "out_time_us" && durationMS > 0 {
			if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 {
				progress(min(float64(us)/1000/float64(durationMS), 1))
			}
		}
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("ffmpeg failed (%w): %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.ToValidUTF8(t.b, nil))
}

// seconds formats ms for ffmpeg's options and filters.
func seconds(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// labelText is s for drawtext's text: stream names hold only letters,
// digits and ._~- (live.ValidName), which need no escaping; anything else
// shows as "?".
func labelText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("._~-", r):
			return r
		}
		return '?'
	}, s)
}
