package api

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
)

// TestRecordingMP4 fetches recordings as MP4 over HTTP: whole, as clips,
// refused for VP8 and for bad parameters, and read by a slow client
// for longer than the server's write timeout.
func TestRecordingMP4(t *testing.T) {
	mediacheck.Require(t)
	a := &archive{dir: t.TempDir(), hub: live.NewHub(live.Reject)}
	// A file that is no recording, found at start: listed as failed.
	if err := os.MkdirAll(filepath.Join(a.dir, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "broken", "broken_20250101T000000Z.mkv"), []byte("not matroska at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := recorder.New(recorder.Config{Dir: a.dir, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	a.rec = rec
	a.hub.OnPublish(rec.Record)
	a.url = serveTightAPI(t, a.hub, Config{WriteTimeout: 500 * time.Millisecond}, Deps{Recordings: rec})

	p264, stop264 := a.publish(t, "mp4-h264", hubtest.Source{Video: live.H264, Audio: true, SeparateParamSets: true})
	pvp8, stopVP8 := a.publish(t, "mp4-vp8", hubtest.Source{Video: live.VP8, Audio: true})
	for _, p := range []*hubtest.Publisher{p264, pvp8} {
		select {
		case <-p.Done():
		case <-time.After(60 * time.Second):
			t.Fatal("the publication did not end")
		}
	}
	stop264()
	stopVP8()
	h264 := listPage(t, a.url, "stream=mp4-h264").Recordings[0]
	vp8 := listPage(t, a.url, "stream=mp4-vp8").Recordings[0]
	base := a.url + h264.FileURL
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("whole", func(t *testing.T) {
		r := do(t, "GET", base+"?format=mp4", "", "")
		name := h264.ID + ".mp4"
		if r.status != 200 || r.header.Get("Content-Type") != "video/mp4" || r.header.Get("Accept-Ranges") != "none" ||
			r.header.Get("Content-Disposition") != `attachment; filename="`+name+`"; filename*=UTF-8''`+name {
			t.Fatalf("GET ?format=mp4: %d %v", r.status, r.header)
		}
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte(r.body), 0o644); err != nil {
			t.Fatal(err)
		}
		pr, err := mediacheck.ProbeFile(ctx, file)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Duration(h264.DurationMS) * time.Millisecond
		if !strings.Contains(pr.Format.FormatName, "mp4") || pr.Stream("video") == nil || pr.Stream("video").CodecName != "h264" ||
			pr.Stream("audio") == nil || pr.Stream("audio").CodecName != "opus" || math.Abs(float64(pr.Duration()-want)) > float64(want/10) {
			t.Errorf("the MP4: %+v, %v (the recording lasts %v)", pr.Streams, pr.Duration(), want)
		}
		if err := mediacheck.Decode(ctx, file); err != nil {
			t.Error(err)
		}
		// ffmpeg reads it straight from the API, as it streams.
		if err := mediacheck.Decode(ctx, base+"?format=mp4"); err != nil {
			t.Error(err)
		}
		if cs := r.header.Get("Reel-Clip-Start"); cs != "0.000" {
			t.Errorf("Reel-Clip-Start of the whole recording: %q", cs)
		}
		head := do(t, "HEAD", base+"?format=mp4", "", "")
		if head.status != 200 || head.body != "" || head.header.Get("Content-Type") != "video/mp4" {
			t.Errorf("HEAD ?format=mp4: %d %v", head.status, head.header)
		}
	})

	t.Run("clip", func(t *testing.T) {
		secs := do(t, "GET", base+"?format=mp4&from=2&to=4", "", "")
		at := func(d time.Duration) string { return url.QueryEscape(h264.Start.Add(d).Format(time.RFC3339Nano)) }
		rfc := do(t, "GET", base+"?format=mp4&from="+at(2*time.Second)+"&to="+at(4*time.Second), "", "")
		if secs.status != 200 || rfc.status != 200 || secs.body != rfc.body {
			t.Fatalf("from=2&to=4: %d, %d bytes; the same by RFC 3339 times: %d, %d bytes", secs.status, len(secs.body), rfc.status, len(rfc.body))
		}
		if cd := secs.header.Get("Content-Disposition"); !strings.Contains(cd, h264.ID+"_2s-4s.mp4") {
			t.Errorf("Content-Disposition %q", cd)
		}
		// The clip's time zero is the keyframe at or before 2 s, which
		// ffprobe finds in the recording itself.
		kf := keyframeAtOrBefore(ctx, t, filepath.Join(a.dir, h264.Path), 2*time.Second)
		if got, want := secs.header.Get("Reel-Clip-Start"), strconv.FormatFloat(kf.Seconds(), 'f', 3, 64); got != want {
			t.Errorf("Reel-Clip-Start %q, want %q (the keyframe at or before 2 s)", got, want)
		}
		file := filepath.Join(t.TempDir(), "clip.mp4")
		if err := os.WriteFile(file, []byte(secs.body), 0o644); err != nil {
			t.Fatal(err)
		}
		pr, err := mediacheck.ProbeFile(ctx, file)
		if err != nil {
			t.Fatal(err)
		}
		if d := pr.Duration(); d < 1900*time.Millisecond || d > 3100*time.Millisecond {
			t.Errorf("the clip lasts %v, want 2 s and at most a GOP (1 s) more", d)
		}
		if err := mediacheck.Decode(ctx, file); err != nil {
			t.Error(err)
		}
		tail := do(t, "GET", base+"?format=mp4&from=4.5", "", "")
		if tail.status != 200 || len(tail.body) == 0 || len(tail.body) >= len(secs.body)*2 {
			t.Errorf("from=4.5: %d, %d bytes (2 s from 2 s: %d)", tail.status, len(tail.body), len(secs.body))
		}
	})

	t.Run("refused", func(t *testing.T) {
		wantProblem(t, do(t, "GET", a.url+vp8.FileURL+"?format=mp4", "", ""), http.StatusUnsupportedMediaType, "VP8")
		wantProblem(t, do(t, "GET", a.url+vp8.FileURL+"?format=mp4", "", ""), http.StatusUnsupportedMediaType, "webm file plays in browsers")
		broken := listPage(t, a.url, "stream=broken").Recordings
		if len(broken) != 1 || broken[0].State != "failed" {
			t.Fatalf("the broken file is listed as %+v", broken)
		}
		wantProblem(t, do(t, "GET", a.url+broken[0].FileURL+"?format=mp4", "", ""), http.StatusConflict, "can still be downloaded as it is")
		before := url.QueryEscape(h264.Start.Add(-time.Hour).Format(time.RFC3339))
		for q, want := range map[string]string{
			"format=avi":              "format must be mp4",
			"format=":                 "format must be mp4",
			"from=2":                  "add format=mp4",
			"to=2&format=webm":        "format must be mp4",
			"format=mp4&from=two":     "from must be seconds",
			"format=mp4&to=1e400":     "to must be seconds",
			"format=mp4&from=-1":      "from must be 0 or more",
			"format=mp4&from=NaN":     "from must be 0 or more",
			"format=mp4&from=4&to=2":  "from (4) must be earlier than to (2)",
			"format=mp4&from=3&to=3":  "must be earlier",
			"format=mp4&to=0":         "must be after recording",
			"format=mp4&from=60":      "past the end",
			"format=mp4&to=" + before: "must be after recording",
		} {
			t.Run(q, func(t *testing.T) { wantProblem(t, do(t, "GET", base+"?"+q, "", ""), http.StatusBadRequest, want) })
		}
	})

	t.Run("slow client", func(t *testing.T) {
		// A client with a 4 KiB receive buffer that takes 4 KiB every
		// 20 ms needs well over the server's 500 ms write timeout: each
		// fragment written moves the deadline on.
		dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
		resp, err := client.Get(base + "?format=mp4")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := time.Now()
		var n int
		buf := make([]byte, 4096)
		for {
			k, err := io.ReadFull(resp.Body, buf)
			n += k
			if err != nil {
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("after %d bytes in %v: %v", n, time.Since(start), err)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		whole := do(t, "GET", base+"?format=mp4", "", "")
		if n != len(whole.body) {
			t.Errorf("the slow client got %d bytes in %v, the whole MP4 is %d", n, time.Since(start), len(whole.body))
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("the slow read took %v: it did not outlast the write timeout", took)
		}
	})
}

// serveTightAPI is serveAPI on a server with cfg's write timeout (as Serve
// sets it) and 4 KiB send buffers: a slow client holds its writes up at
// once instead of after megabytes of kernel buffer.
func serveTightAPI(t *testing.T, hub *live.Hub, cfg Config, deps Deps) string {
	t.Helper()
	engine, err := rtc.NewEngine(rtc.Config{UDPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	whipSrv, whepSrv := ingest.New(hub, engine, ingest.Config{}), whep.New(hub, engine, whep.Config{})
	deps.Gate, deps.Hub, deps.WHIP, deps.WHEP = testGate(t, AuthConfig{}), hub, whipSrv, whepSrv
	srv, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Config.WriteTimeout = cfg.WriteTimeout
	hs.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if tc, ok := c.(*net.TCPConn); ok && s == http.StateNew {
			_ = tc.SetWriteBuffer(4096)
		}
	}
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		whepSrv.Close()
		whipSrv.Close()
		_ = engine.Close()
	})
	return hs.URL
}
