package recorder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "1234": 1234, "500MB": 500e6, "10GB": 10e9, "10 gb": 10e9, "1.5TB": 1.5e12,
		"512MiB": 512 << 20, "2GiB": 2 << 30, "100k": 100e3, "7B": 7,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1GB", "ten", "1e30TB", "NaN"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	for n, want := range map[uint64]string{0: "0B", 999: "999B", 500e6: "500MB", 1.5e9: "1.5GB", 1234567: "1.23MB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func exists2(paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// TestRetention runs retention over real recordings: by age, by total
// size, never touching a failed recording or one in progress.
func TestRetention(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	r, err := New(Config{Dir: dir, Enabled: true, Logger: testLogger(t), SegmentDuration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, r, "ret", hubtest.Source{Video: live.VP8, Audio: true})
	r.Close()
	failed := filepath.Join(dir, "ret", "ret_20200101T000000Z.webm.part")
	os.WriteFile(failed, []byte("not media"), 0o644)

	open := func(cfg Config) (*Recorder, []Info) {
		t.Helper()
		cfg.Dir, cfg.Logger = dir, testLogger(t)
		if cfg.CheckInterval == 0 {
			cfg.CheckInterval = time.Hour // passes run when the test says
		}
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		all := listAll(t, r.Catalog(), Query{})
		sortOldestFirst(all)
		return r, all
	}

	// By age: everything that ended before the third segment's end + 1 ms.
	_, all := open(Config{})
	var segs []Info
	for _, in := range all {
		if in.State == StateFinished {
			segs = append(segs, in)
		}
	}
	if len(all) != 7 || len(segs) != 6 {
		t.Fatalf("want the failed file and 6 one-second segments, got %+v", all)
	}
	now := endOf(segs[2]).Add(10*time.Minute + time.Millisecond)
	rA, _ := open(Config{MaxAge: 10 * time.Minute, now: func() time.Time { return now }})
	del := rA.EnforceRetention()
	if len(del) != 3 {
		t.Fatalf("deleted by age: %+v", del)
	}
	for i, d := range del {
		if d.ID != segs[i].ID || !strings.Contains(d.Reason, "max_age") {
			t.Errorf("deletion %d: %s (%s), want %s", i, d.ID, d.Reason, segs[i].ID)
		}
		if _, err := os.Stat(segs[i].Path); !os.IsNotExist(err) {
			t.Errorf("%s still on disk", segs[i].Path)
		}
		if _, err := os.Stat(segs[i].Path + ".json"); !os.IsNotExist(err) {
			t.Errorf("sidecar of %s still on disk", segs[i].ID)
		}
	}
	if !exists2(failed, segs[3].Path, segs[3].Path+".json") {
		t.Error("retention by age deleted too much")
	}
	if again := rA.EnforceRetention(); len(again) != 0 {
		t.Errorf("a second pass deleted %+v", again)
	}
	rA.Close()

	// By size: exactly the oldest finished one has to go.
	_, all = open(Config{})
	var total int64
	for _, in := range all {
		total += in.Size
	}
	rB, _ := open(Config{MaxTotalSize: uint64(total - segs[3].Size)})
	if del := rB.EnforceRetention(); len(del) != 1 || del[0].ID != segs[3].ID || !strings.Contains(del[0].Reason, "max_total_size") {
		t.Fatalf("deleted by size: %+v", del)
	}
	rB.Close()

	// Over the limit with a recording in progress: the finished ones go,
	// the live one and the failed one stay.
	rC, _ := open(Config{Enabled: true, MaxTotalSize: 1})
	hub := live.NewHub(live.Reject)
	hub.OnPublish(rC.Record)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := hubtest.Publish(ctx, hub, "ret", hubtest.Source{Video: live.VP8, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	waitActive(t, rC, 1)
	del = rC.EnforceRetention()
	if len(del) != 2 || del[0].ID != segs[4].ID || del[1].ID != segs[5].ID {
		t.Errorf("with a live recording: deleted %+v", del)
	}
	live := rC.Active()
	cancel()
	<-p.Done()
	waitActive(t, rC, 0)
	left := listAll(t, rC.Catalog(), Query{})
	if len(left) != 2 || !exists2(failed) {
		t.Fatalf("left: %+v", left)
	}
	for _, in := range left {
		if in.ID == live[0].ID && in.State != StateFinished {
			t.Errorf("the recording that was live: %+v", in)
		}
	}
	rC.Close()

	// Passes run on their own every CheckInterval.
	rD, _ := open(Config{MaxTotalSize: 1, CheckInterval: 50 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for len(listAll(t, rD.Catalog(), Query{})) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no pass within %v of a 50 ms CheckInterval: %+v", 10*time.Second, listAll(t, rD.Catalog(), Query{}))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !exists2(failed) {
		t.Error("a pass deleted the failed recording")
	}
}

// waitActive waits until n recordings are in progress (each with some
// media when n > 0).
func waitActive(t *testing.T, r *Recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := r.Active()
		if len(a) == n && (n == 0 || a[0].DurationMS > 300) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d active recordings, have %+v", n, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
