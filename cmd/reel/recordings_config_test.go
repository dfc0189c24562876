package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The archive settings read sizes and durations the same way from the
// file, the environment and flags.
func TestRecordingsArchiveConfig(t *testing.T) {
	c, err := loadConfig(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Recordings.SegmentDuration != 0 || c.Recordings.MaxAge != 0 || c.Recordings.MaxTotalSize != 0 || c.Recordings.MinFreeSpace != 500e6 {
		t.Errorf("defaults: %+v", c.Recordings)
	}
	file := filepath.Join(t.TempDir(), "reel.yaml")
	yaml := "recordings:\n  segment_duration: 10m\n  max_age: 720h\n  max_total_size: 100GB\n  min_free_space: 2147483648\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = loadConfig([]string{"--config", file, "--recordings-min-free-space", "1GiB"},
		env(map[string]string{"REEL_RECORDINGS_MAX_TOTAL_SIZE": "1.5TB"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Recordings.SegmentDuration != 10*time.Minute || c.Recordings.MaxAge != 720*time.Hour ||
		c.Recordings.MaxTotalSize != 1.5e12 || c.Recordings.MinFreeSpace != 1<<30 {
		t.Errorf("layered: %+v", c.Recordings)
	}
	for _, bad := range [][]string{{"--recordings-max-total-size", "lots"}, {"--recordings-min-free-space", "-1GB"}} {
		if _, err := loadConfig(bad, env(nil), nil); err == nil || !strings.Contains(err.Error(), "want a size like") {
			t.Errorf("%v: %v", bad, err)
		}
	}
	yaml = "recordings:\n  max_total_size: huge\n"
	os.WriteFile(file, []byte(yaml), 0o600)
	if _, err := loadConfig([]string{"--config", file}, env(nil), nil); err == nil || !strings.Contains(err.Error(), "want a size like") {
		t.Errorf("bad size in the file: %v", err)
	}
}
