package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// archiveRecording is a recording as GET /api/v1/recordings shows it.
type archiveRecording struct {
	ID         string   `json:"id"`
	Stream     string   `json:"stream"`
	Path       string   `json:"path"`
	Container  string   `json:"container"`
	Codecs     []string `json:"codecs"`
	DurationMS int64    `json:"duration_ms"`
	Size       int64    `json:"size"`
	State      string   `json:"state"`
	Error      string   `json:"error"`
	FileURL    string   `json:"file_url"`
}

type archivePage struct {
	Recordings []archiveRecording `json:"recordings"`
	Paused     string             `json:"recording_paused_reason"`
}

func archiveList(t *testing.T, g *gateway, stream string) archivePage {
	t.Helper()
	var p archivePage
	getJSON(t, g.HTTP+"/api/v1/recordings?"+url.Values{"stream": {stream}}.Encode(), &p)
	return p
}

// startGatewayOn runs reel on an existing recordings directory (a later
// --recordings-dir wins over startGateway's own).
func startGatewayOn(t *testing.T, dir string, extra ...string) *gateway {
	t.Helper()
	g := startGateway(t, nil, append([]string{"--recordings-dir", dir}, extra...)...)
	g.Recordings = dir
	return g
}

// TestCrashRepair: kill -9 the gateway while it records, start it again
// on the same directory: the recording is listed as repaired, has a
// duration and seeks, read through the API.
func TestCrashRepair(t *testing.T) {
	mediacheck.Require(t)
	for _, c := range []struct{ video, ext, codec string }{{"vp8", ".webm", "vp8"}, {"h264", ".mkv", "h264"}} {
		t.Run(c.video, func(t *testing.T) {
			dir := t.TempDir()
			g := startGatewayOn(t, dir)
			ctx := ctxTimeout(t, 90*time.Second)
			se := whipclient.LoopbackSettingEngine()
			pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/crash", whipclient.PublishOptions{
				Video: c.video, Audio: true, Loop: true, H264SeparateParamSets: c.video == "h264", SettingEngine: &se})
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			defer pub.Close()
			// Wait for whole clusters on disk, past the 130 KB header.
			g.waitRecording(t, 1, 400<<10)
			live := archiveList(t, g, "crash").Recordings
			if len(live) != 1 || live[0].State != "recording" {
				t.Fatalf("before the crash: %+v", live)
			}
			g.stop(syscall.SIGKILL)
			parts := g.partFiles()
			if len(parts) != 1 {
				t.Fatalf("after kill -9: .part files %v", parts)
			}
			st, err := os.Stat(parts[0])
			if err != nil {
				t.Fatal(err)
			}

			g2 := startGatewayOn(t, dir)
			if !strings.Contains(g2.Log(), "recording repaired") {
				t.Errorf("the restart does not log the repair:\n%s", g2.Log())
			}
			recs := archiveList(t, g2, "crash").Recordings
			if len(recs) != 1 {
				t.Fatalf("after the restart: %+v", recs)
			}
			rec := recs[0]
			if rec.ID != live[0].ID || rec.State != "repaired" || rec.Error != "" || filepath.Ext(rec.Path) != c.ext || rec.DurationMS < 1000 {
				t.Fatalf("repaired recording: %+v", rec)
			}
			if parts := g2.partFiles(); len(parts) != 0 {
				t.Errorf(".part files left after the repair: %v", parts)
			}
			fileURL := g2.HTTP + rec.FileURL
			pr, err := mediacheck.ProbeFile(ctx, fileURL)
			if err != nil {
				t.Fatal(err)
			}
			d := pr.Duration()
			if d < time.Second || (d-time.Duration(rec.DurationMS)*time.Millisecond).Abs() > 100*time.Millisecond {
				t.Errorf("ffprobe duration %v, catalog %d ms", d, rec.DurationMS)
			}
			if v := pr.Stream("video"); v == nil || v.CodecName != c.codec {
				t.Errorf("streams %+v", pr.Streams)
			}
			file := filepath.Join(dir, filepath.FromSlash(rec.Path))
			if err := mediacheck.Decode(ctx, file); err != nil {
				t.Errorf("decoding the repaired file: %v", err)
			}
			if err := mediacheck.SeekDecode(ctx, file, d/2); err != nil {
				t.Errorf("ffmpeg -ss %v in the repaired file: %v", d/2, err)
			}
			if err := mediacheck.SeekDecode(ctx, fileURL, d*3/4); err != nil {
				t.Errorf("ffmpeg -ss %v through the API: %v", d*3/4, err)
			}
			t.Logf("killed with %d bytes on disk; repaired %s: %d bytes, %v", st.Size(), filepath.Base(rec.Path), rec.Size, d)
		})
	}
}

// TestArchiveSegmentsAndDiskGuard: with a segment duration the binary
// writes consecutive files that the API lists; with a free-space floor no
// disk can meet, streams stay live but are not recorded, and the API says
// why.
func TestArchiveSegmentsAndDiskGuard(t *testing.T) {
	mediacheck.Require(t)
	se := whipclient.LoopbackSettingEngine()

	t.Run("segments", func(t *testing.T) {
		g := startGateway(t, nil, "--recordings-segment-duration", "2s", "--recordings-min-free-space", "0")
		ctx := ctxTimeout(t, 90*time.Second)
		pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/seg", whipclient.PublishOptions{
			Video: "vp8", Audio: true, Duration: 7 * time.Second, SettingEngine: &se})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		<-pub.Done()
		if err := pub.Close(); err != nil {
			t.Fatalf("DELETE: %v", err)
		}
		testwait.Until(t, 30*time.Second, "every segment finished", func() bool {
			recs := archiveList(t, g, "seg").Recordings
			for _, r := range recs {
				if r.State != "finished" {
					return false
				}
			}
			return len(recs) >= 3
		})
		recs := archiveList(t, g, "seg").Recordings
		var total int64
		for _, r := range recs {
			total += r.DurationMS
			if r.DurationMS > 2100 {
				t.Errorf("segment %s lasts %d ms, want about 2 s", r.ID, r.DurationMS)
			}
		}
		checkPlayable(t, g.recordings(t))
		t.Logf("%d segments, %d ms in all", len(recs), total)
	})

	t.Run("disk guard", func(t *testing.T) {
		g := startGateway(t, nil, "--recordings-min-free-space", "1000000TB")
		p := archiveList(t, g, "")
		if !strings.Contains(p.Paused, "below recordings.min_free_space (1000000TB)") {
			t.Fatalf("recording_paused_reason %q", p.Paused)
		}
		ctx := ctxTimeout(t, 60*time.Second)
		pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/full", whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se})
		if err != nil {
			t.Fatalf("publish with the disk guard on: %v", err)
		}
		defer pub.Close()
		viewer, err := whipclient.View(ctx, g.HTTP+"/whep/full", whipclient.ViewOptions{SettingEngine: &se})
		if err != nil {
			t.Fatalf("view: %v", err)
		}
		defer viewer.Close()
		if err := viewer.WaitVideoFrames(ctx, 30); err != nil {
			t.Fatalf("live restreaming stopped with the disk guard: %v", err)
		}
		var info struct {
			Viewers map[string]int `json:"viewers"`
		}
		getJSON(t, g.HTTP+"/api/v1/streams/full", &info)
		if info.Viewers["record"] != 0 || len(archiveList(t, g, "full").Recordings) != 0 || len(g.partFiles()) != 0 {
			t.Errorf("recorded with the disk guard on: %v", info.Viewers)
		}
		if !strings.Contains(g.Log(), "stream not recorded: disk almost full") {
			t.Error("no log line says why the stream is not recorded")
		}
	})
}
