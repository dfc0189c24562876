package recorder

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// A recording's name is its id, so it must be free in every container:
// with cam_<T>.webm (or its .part or sidecar) already there, an H.264
// recording starting in the same second is not written as cam_<T>.mkv.
func TestNameFreeInEveryContainer(t *testing.T) {
	for _, planted := range []string{".webm", ".webm.part"} {
		t.Run(planted, func(t *testing.T) {
			t.Parallel()
			r := newTestRecorder(t)
			dir := filepath.Join(r.Dir(), "cam")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			// Every second the H.264 recording may start in.
			now := time.Now().UTC()
			for s := range 40 {
				name := "cam_" + now.Add(time.Duration(s)*time.Second).Format("20060102T150405Z") + planted
				if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			publishAll(t, r, "cam", hubtest.Source{Video: live.H264})
			files, _ := filepath.Glob(filepath.Join(dir, "*.mkv"))
			if len(files) != 1 {
				t.Fatalf("recordings %v, want one .mkv", files)
			}
			if base := filepath.Base(files[0]); !regexpSuffix2.MatchString(base) {
				t.Errorf("the H.264 recording is %s: its name is taken by another container's file", base)
			}
		})
	}
}

var regexpSuffix2 = regexp.MustCompile(`^cam_\d{8}T\d{6}Z_2\.mkv$`)

// Two old files sharing a name in two containers are both listed, with
// distinct ids that stay the same across restarts, and each can be opened
// and deleted on its own.
func TestSharedNameAcrossContainers(t *testing.T) {
	requireTools(t, "ffprobe")
	src := newTestRecorder(t)
	publishAll(t, src, "a", hubtest.Source{Video: live.VP8})
	publishAll(t, src, "b", hubtest.Source{Video: live.H264})
	src.Close()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	const base = "x_20250101T000000Z"
	for stream, ext := range map[string]string{"a": ".webm", "b": ".mkv"} {
		files, _ := filepath.Glob(filepath.Join(src.Dir(), stream, "*"+ext))
		if len(files) != 1 {
			t.Fatalf("%s: %v", stream, files)
		}
		if err := os.Rename(files[0], filepath.Join(dir, "x", base+ext)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(files[0]+".json", filepath.Join(dir, "x", base+ext+".json")); err != nil {
			t.Fatal(err)
		}
	}
	ids := func() []string {
		r, err := New(Config{Dir: dir, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var out []string
		for _, in := range listAll(t, r.Catalog(), Query{}) {
			out = append(out, in.ID)
		}
		slices.Sort(out)
		return out
	}
	want := []string{base, base + "-webm"}
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	if got := ids(); !slices.Equal(got, want) {
		t.Fatalf("after a restart: ids %v, want %v", got, want)
	}
	r, err := New(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for id, container := range map[string]string{base: "mkv", base + "-webm": "webm"} {
		f, in, err := r.Catalog().Open(id)
		if err != nil {
			t.Fatalf("open %s: %v", id, err)
		}
		head := make([]byte, 4)
		_, err = io.ReadFull(f, head)
		f.Close()
		if err != nil || in.Container != container || filepath.Ext(in.Path) != "."+container {
			t.Errorf("%s: %v, container %s, path %s", id, err, in.Container, in.Path)
		}
	}
	if _, err := r.Delete(base + "-webm"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x", base+".webm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the .webm is still there: %v", err)
	}
	for _, f := range []string{base + ".mkv", base + ".mkv.json"} {
		if _, err := os.Stat(filepath.Join(dir, "x", f)); err != nil {
			t.Errorf("deleting the .webm took %s: %v", f, err)
		}
	}
	if _, err := r.Delete(base); err != nil {
		t.Fatal(err)
	}
}

// A FIFO put where a recording was makes Open fail at once, instead of
// waiting for a writer that never comes.
func TestOpenRefusesAFIFO(t *testing.T) {
	r := newTestRecorder(t)
	publishAll(t, r, "cam", hubtest.Source{Video: live.VP8})
	in := listAll(t, r.Catalog(), Query{})[0]
	if err := os.Remove(in.Path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(in.Path, 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		f, _, err := r.Catalog().Open(in.ID)
		if f != nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Open of a FIFO: %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		// Unblock the open so the test can end.
		if w, err := os.OpenFile(in.Path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("Open of a FIFO hangs")
	}
}
