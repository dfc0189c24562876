package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// simulcastInfo is the streams API's view of a simulcast stream.
type simulcastInfo struct {
	Tracks []struct {
		Kind   string `json:"kind"`
		Width  int    `json:"width"`
		Layers []struct {
			RID         string  `json:"rid"`
			Width       int     `json:"width"`
			Height      int     `json:"height"`
			BitrateKbps float64 `json:"bitrate_kbps"`
			FPS         float64 `json:"fps"`
		} `json:"layers"`
	} `json:"tracks"`
	WHEPLayers map[string]int `json:"whep_viewers_by_layer"`
}

// waitLayers waits until the streams API lists n layers of the video
// track, each with its size, bitrate and frame rate.
func waitLayers(t *testing.T, g *gateway, stream string, n int) simulcastInfo {
	t.Helper()
	var info simulcastInfo
	testwait.Until(t, 20*time.Second, fmt.Sprintf("%d sized layers of %s in the streams API", n, stream), func() bool {
		resp, err := http.Get(g.HTTP + "/api/v1/streams/" + stream)
		if err != nil || resp.StatusCode != 200 {
			return false
		}
		defer resp.Body.Close()
		info = simulcastInfo{}
		if json.NewDecoder(resp.Body).Decode(&info) != nil {
			return false
		}
		for _, tr := range info.Tracks {
			if tr.Kind != "video" || len(tr.Layers) != n {
				continue
			}
			for _, l := range tr.Layers {
				if l.Width == 0 || l.BitrateKbps == 0 || l.FPS == 0 {
					return false
				}
			}
			return true
		}
		return false
	})
	return info
}

// The project's pion publisher sends three rids of real H.264 or VP8 to
// the real binary: the API lists the layers by size; a WHEP viewer pinned
// to the low layer plays; RTSP serves the top layer and ?layer=low; HLS
// is one variant per layer (H.264); the recording holds the top layer
// only, decodes fully, and its Cues are on keyframes.
func TestSimulcastGoPublisher(t *testing.T) {
	needTools(t, "mkvinfo", "mkvmerge")
	g := startGateway(t, nil)
	for _, c := range []struct {
		codec, ffprobe, ext string
	}{{"h264", "h264", ".mkv"}, {"vp8", "vp8", ".webm"}} {
		t.Run(c.codec, func(t *testing.T) {
			start := time.Now()
			ctx := ctxTimeout(t, 90*time.Second)
			stream := "simulcast-" + c.codec
			se := whipclient.LoopbackSettingEngine()
			pub, err := whipclient.Publish(ctx, g.HTTP+"/whip/"+stream, whipclient.PublishOptions{
				Video: c.codec, Audio: true, Loop: true, Simulcast: whipclient.DefaultSimulcast(), SettingEngine: &se})
			if err != nil {
				t.Fatal(err)
			}
			<-pub.Connected()
			connected := time.Now()
			info := waitLayers(t, g, stream, 3)
			var video = info.Tracks[0]
			if video.Kind != "video" {
				video = info.Tracks[1]
			}
			for i, want := range []string{"160x90", "320x180", "640x360"} {
				if l := video.Layers[i]; fmt.Sprintf("%dx%d", l.Width, l.Height) != want {
					t.Fatalf("layer %d is %+v, want %s", i, l, want)
				}
			}
			step(t, start, "the API lists the layers: %+v", video.Layers)

			viewer, err := whipclient.View(ctx, g.HTTP+"/whep/"+stream+"?layer=low", whipclient.ViewOptions{SettingEngine: &se})
			if err != nil {
				t.Fatal(err)
			}
			if err := viewer.WaitVideoFrames(ctx, 60); err != nil {
				t.Fatalf("the pinned WHEP viewer: %v (%+v)", err, viewer.Stats())
			}
			testwait.Until(t, 5*time.Second, "the viewer counted on layer q", func() bool {
				var i simulcastInfo
				getJSON(t, g.HTTP+"/api/v1/streams/"+stream, &i)
				return i.WHEPLayers["q"] == 1
			})
			step(t, start, "a WHEP viewer pinned to ?layer=low plays it")

			rtsp := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, stream)
			for url, want := range map[string][2]int{rtsp: {640, 360}, rtsp + "?layer=low": {160, 90}} {
				p, err := mediacheck.ProbeFile(ctx, url, "-rtsp_transport", "tcp")
				if err != nil {
					t.Fatalf("RTSP %s: %v", url, err)
				}
				if v := p.Stream("video"); v == nil || v.CodecName != c.ffprobe || v.Width != want[0] || v.Height != want[1] || p.Stream("audio") == nil {
					t.Fatalf("RTSP %s: %+v, want %s %dx%d and audio", url, p.Streams, c.ffprobe, want[0], want[1])
				}
			}
			step(t, start, "RTSP serves the top layer and ?layer=low")

			if c.codec == "h264" {
				hls := g.HTTP + "/hls/" + stream + "/index.m3u8"
				waitHLSSegment(t, hls)
				p, err := mediacheck.ProbeFile(ctx, hls)
				if err != nil {
					t.Fatalf("HLS: %v", err)
				}
				sizes := map[string]bool{}
				for _, s := range p.Streams {
					if s.CodecType == "video" {
						sizes[fmt.Sprintf("%dx%d", s.Width, s.Height)] = true
					}
				}
				if !sizes["160x90"] || !sizes["320x180"] || !sizes["640x360"] || p.Stream("audio") == nil {
					t.Fatalf("ffprobe of the multivariant playlist lists %+v; want the three variants and audio", p.Streams)
				}
				if err := decodeLive(t, ctx, hls); err != nil {
					t.Fatalf("HLS: %v", err)
				}
				step(t, start, "ffprobe lists every HLS variant; ffmpeg decodes it")
			}

			if d := time.Until(connected.Add(minPublish)); d > 0 {
				time.Sleep(d)
			}
			published := time.Since(connected)
			if err := pub.Close(); err != nil {
				t.Fatal(err)
			}
			_ = viewer.Close()
			file := finishedRecording(t, g, stream, t.TempDir())
			p, err := mediacheck.ProbeFile(ctx, file)
			if err != nil {
				t.Fatal(err)
			}
			if v := p.Stream("video"); v == nil || v.Width != 640 || v.Height != 360 || !strings.HasSuffix(file, c.ext) {
				t.Fatalf("recording %s: %+v, want the top layer, 640x360", file, p.Streams)
			}
			checkInteropRecording(t, file, wantRecording{ext: c.ext, videoCodec: c.ffprobe}, published, start)
		})
	}
}

// layerResult is what the page reports of one layer Chromium sends.
type layerResult struct {
	RID           string `json:"rid"`
	Codec         string `json:"codec"`
	FramesEncoded int    `json:"framesEncoded"`
	FrameWidth    int    `json:"frameWidth"`
	FrameHeight   int    `json:"frameHeight"`
	BytesSent     int    `json:"bytesSent"`
	PLICount      int    `json:"pliCount"`
	Quality       string `json:"qualityLimitationReason"`
}

type simulcastPublish struct {
	Layers      []layerResult `json:"layers"`
	OfferFirst  string        `json:"offerFirst"`
	ConnectedAt int64         `json:"connectedAt"`
}

// TestInteropChromiumSimulcast publishes Chromium's fake camera at 720p
// with three sendEncodings (rids q, h, f), VP8 and H.264, through the
// whip-whep client: reel answers the simulcast offer, keeps each layer,
// a Chromium WHEP viewer plays the stream, RTSP serves the top layer and
// ?layer=low, HLS lists a variant per layer (H.264), and the recording is
// the top layer.
func TestInteropChromiumSimulcast(t *testing.T) {
	for _, c := range []struct{ name, mime, ext string }{{"vp8", "video/VP8", ".webm"}, {"h264", "video/H264", ".mkv"}} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			needChromium(t)
			art := artifactsDir(t)
			g := startInteropGateway(t, art)
			b := startBrowser(t, art)
			stream := "chromium-simulcast-" + c.name
			b.open("publisher")
			var pub simulcastPublish
			b.mustCall(75*time.Second, "publisher", "publishSimulcast", &pub, g.HTTP+"/whip/"+stream, c.mime)
			// When all three layers were sending, after connecting: Chromium
			// holds its top layer back until its own bandwidth estimate
			// allows it, which takes longer on a busy machine.
			allSending := time.Since(time.UnixMilli(pub.ConnectedAt))
			if len(pub.Layers) != 3 {
				t.Fatalf("Chromium sends %+v, want three layers", pub.Layers)
			}
			for _, l := range pub.Layers {
				if !strings.EqualFold(l.Codec, c.mime) {
					t.Fatalf("layer %s sends %s, want %s", l.RID, l.Codec, c.mime)
				}
			}
			step(t, start, "Chromium sends three layers: %+v", pub.Layers)
			info := waitLayers(t, g, stream, 3)
			video := info.Tracks[0]
			if video.Kind != "video" {
				video = info.Tracks[1]
			}
			top := video.Layers[2]
			step(t, start, "reel ranks them: %+v", video.Layers)
			if top.Width != 1280 || top.Height != 720 {
				t.Fatalf("top layer %+v, want 1280x720", top)
			}

			b.open("viewer")
			var ps playResult
			b.mustCall(60*time.Second, "viewer", "play", &ps, g.HTTP+"/whep/"+stream)
			step(t, start, "a Chromium WHEP viewer plays it at %dx%d", ps.Width, ps.Height)

			ctx := ctxTimeout(t, 60*time.Second)
			rtsp := fmt.Sprintf("rtsp://127.0.0.1:%d/%s", g.RTSPPort, stream)
			for url, want := range map[string][2]int{rtsp: {1280, 720}, rtsp + "?layer=low": {video.Layers[0].Width, video.Layers[0].Height}} {
				probeSize(t, ctx, url, want, "-rtsp_transport", "tcp")
			}
			step(t, start, "RTSP serves the top layer and ?layer=low")
			if c.name == "h264" {
				hls := g.HTTP + "/hls/" + stream + "/index.m3u8"
				waitHLSSegment(t, hls)
				p, err := mediacheck.ProbeFile(ctx, hls)
				if err != nil {
					t.Fatalf("HLS: %v", err)
				}
				n := 0
				for _, s := range p.Streams {
					if s.CodecType == "video" {
						n++
					}
				}
				if n != 3 {
					t.Fatalf("ffprobe lists %d HLS video variants: %+v", n, p.Streams)
				}
				step(t, start, "ffprobe lists the three HLS variants")
			}
			// The top layer's recording can only start at the first whole
			// keyframe reel receives of it: pion (v3.3.6) reads the first
			// packets of each rid to learn which rid they carry, so the
			// keyframe a layer starts with is lost, and Chromium lets a
			// keyframe request that comes right after a keyframe wait. That
			// costs up to ~0.8 s at the start; 15 s of publishing keep it
			// inside the 10% the recording check allows.
			published := time.UnixMilli(pub.ConnectedAt)
			if d := time.Until(published.Add(15 * time.Second)); d > 0 {
				time.Sleep(d)
			}
			b.mustCall(20*time.Second, "viewer", "stopWatching", nil)
			sent := stopPublishing(t, b, "publisher")
			// The recording is the top layer reel has once the layers are
			// ranked (live.LayerSettle, 3 s): Chromium's 1280x720, unless
			// Chromium held it back longer than that; then the recording
			// moves to it at its keyframe, in a second file.
			log := g.Log()
			chosen := regexp.MustCompile(`recording the top simulcast layer" stream=\S+ rid=(\w+) width=(\d+) height=(\d+)`).FindStringSubmatch(log)
			if chosen == nil {
				t.Fatal("reel did not log the layer it records")
			}
			// Each move to another layer (a late top layer, or away from one
			// Chromium suspended) starts a new file.
			moves := regexp.MustCompile(`recording another simulcast layer" stream=\S+ .*rid=(\w+) width=(\d+) height=(\d+)`).FindAllStringSubmatch(log, -1)
			// Chromium short of CPU may send its top layer without a
			// keyframe reel sees for seconds (pion loses a layer's first
			// packets); reel then records the biggest layer whose size it
			// knows, and says so.
			unsized := strings.Contains(log, `has not shown its size yet (no keyframe); recording the biggest that has" stream=`+stream+` top=f`)
			if chosen[1] != "f" {
				if allSending < 3*time.Second && !unsized {
					t.Fatalf("reel records layer %s (%sx%s) though Chromium sent all three layers %v after connecting", chosen[1], chosen[2], chosen[3], allSending)
				}
				if !slices.ContainsFunc(moves, func(m []string) bool { return m[1] == "f" }) {
					t.Fatalf("reel records layer %s (%sx%s) and never moved to the top layer, which Chromium sent %v after connecting", chosen[1], chosen[2], chosen[3], allSending)
				}
				t.Logf("Chromium sent its top layer only %v after connecting: reel recorded layer %s (%sx%s) first", allSending, chosen[1], chosen[2], chosen[3])
			}
			for _, m := range moves {
				t.Logf("reel moved the recording to layer %s (%sx%s)", m[1], m[2], m[3])
			}
			// One file per layer recorded: each starts with its size
			// in the log (a move before the first file opens starts none).
			sizes := regexp.MustCompile(`recording started" stream=`+regexp.QuoteMeta(stream)+` .*?width=(\d+) height=(\d+)`).FindAllStringSubmatch(log, -1)
			files := finishedRecordings(t, g, stream, art, len(sizes))
			// The first file starts at the recorded layer's first whole
			// keyframe. Chromium, short of CPU, may encode its top layer
			// at a few frames a second and let keyframe requests wait
			// for seconds: the recording then starts that much after
			// connecting, and holds what was published from there. Its
			// start is the first frame's time (the sidecar's "start"),
			// not when the file was opened: the recorder keeps the
			// layer's frames from its first keyframe until it chooses.
			late := sidecarStart(t, files[0]).Sub(published)
			t.Logf("the recording begins %v after connecting", late.Round(10*time.Millisecond))
			if late > 6*time.Second {
				t.Errorf("the recording begins %v after connecting, want within 6 s", late)
			}
			end := published.Add(sent)
			for i, file := range files {
				w, _ := strconv.Atoi(sizes[i][1])
				h, _ := strconv.Atoi(sizes[i][2])
				probeSize(t, ctx, file, [2]int{w, h})
				// A file holds its part of the publication: up to the next
				// file's start, the last one up to the end.
				until := end
				if i+1 < len(files) {
					until = sidecarStart(t, files[i+1])
				}
				// From its own first frame: how late the first file
				// begins is bounded above, and a first file that lasts
				// only until the top layer came (4.5 s) cannot absorb
				// that lateness in the 10% the duration check allows.
				from := sidecarStart(t, file)
				checkInteropRecording(t, file, wantRecording{ext: c.ext, videoCodec: c.name}, until.Sub(from), start)
			}
		})
	}
}

// playResult is what the page's player reports.
type playResult struct {
	Frames        int `json:"frames"`
	MaxGapMs      int `json:"maxGapMs"`
	Width         int `json:"width"`
	Height        int `json:"height"`
	FramesDecoded int `json:"framesDecoded"`
	PacketsLost   int `json:"packetsLost"`
	FreezeCount   int `json:"freezeCount"`
	Sizes         []struct {
		At     int64 `json:"at"`
		Width  int   `json:"width"`
		Height int   `json:"height"`
	} `json:"sizes"`
	TotalFreezesDuration float64 `json:"totalFreezesDuration"`
	Now                  int64   `json:"now"`
}

// probeSize checks with ffprobe that url's video has the size want.
func probeSize(t *testing.T, ctx context.Context, url string, want [2]int, extra ...string) {
	t.Helper()
	p, err := mediacheck.ProbeFile(ctx, url, extra...)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	if v := p.Stream("video"); v == nil || v.Width != want[0] || v.Height != want[1] || p.Stream("audio") == nil {
		t.Fatalf("%s: %+v, want %dx%d video and audio", url, p.Streams, want[0], want[1])
	}
}
