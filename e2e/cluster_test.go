package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// TestClusterPublishRedirect: a meeting is owned whole by the node of
// its first participant; the others, sent to other nodes, are redirected
// there (307, RFC 9725 §4.5) and the project's Go client and GStreamer's
// webrtcbin (driven by drivers/gst_whip_publish.py) follow. Chromium's
// whip-whep follows it in TestClusterEdgeRelay.
func TestClusterPublishRedirect(t *testing.T) {
	redis := startRedis(t)
	a := startNode(t, "a", redis.URL, "")
	b := startNode(t, "b", redis.URL, "")
	c := startNode(t, "c", redis.URL, "")
	ctx := ctxTimeout(t, 3*time.Minute)
	se := whipclient.LoopbackSettingEngine()

	alice, err := whipclient.Publish(ctx, a.HTTP+"/whip/board/alice", whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se})
	if err != nil {
		t.Fatalf("publishing board/alice to a: %v", err)
	}
	defer alice.Close()
	if !strings.HasPrefix(alice.Location, a.HTTP+"/whip/board/alice/") {
		t.Fatalf("session URL %q, want an absolute URL on a", alice.Location)
	}

	// Decided from the path, before the offer is read: an empty POST
	// is redirected too, with the path and query kept.
	res, err := noRedirect.Post(b.HTTP+"/whip/board/bob?x=1", "application/sdp", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != a.HTTP+"/whip/board/bob?x=1" {
		t.Fatalf("POST to b for a's meeting: %d Location %q, want 307 to %s", res.StatusCode, res.Header.Get("Location"), a.HTTP)
	}

	t.Run("go", func(t *testing.T) {
		bob, err := whipclient.Publish(ctx, b.HTTP+"/whip/board/bob", whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se})
		if err != nil {
			t.Fatalf("publishing board/bob via b: %v", err)
		}
		defer bob.Close()
		select {
		case <-bob.Connected():
		case <-ctx.Done():
			t.Fatal("board/bob never connected")
		}
		if !strings.HasPrefix(bob.Location, a.HTTP+"/whip/board/bob/") {
			t.Fatalf("board/bob's session URL %q, want one on a", bob.Location)
		}
		// Every node lists the meeting's streams on a.
		for _, n := range []*node{a, b, c} {
			testwait.Until(t, 5*time.Second, "board/bob on a, seen from "+n.ID, func() bool { return streamNode(t, n.HTTP, "board/bob") == "a" })
		}
		// A recording needs a keyframe first: on a busy machine the
		// streams are listed well before one arrives.
		testwait.Until(t, 15*time.Second, "a to record board/bob", func() bool {
			var l struct {
				Recordings []struct{} `json:"recordings"`
			}
			getJSON(t, a.HTTP+"/api/v1/recordings?stream=board/bob", &l)
			return len(l.Recordings) > 0
		})
		if err := bob.Close(); err != nil { // DELETE on a, through the absolute URL
			t.Fatalf("DELETE: %v", err)
		}
		// Without S3, a's recording of bob is a's: c redirects there.
		var list struct {
			Recordings []struct {
				ID    string `json:"id"`
				Node  string `json:"node"`
				State string `json:"state"`
			} `json:"recordings"`
		}
		var id string
		testwait.Until(t, 15*time.Second, "a's finished recording of board/bob", func() bool {
			getJSON(t, a.HTTP+"/api/v1/recordings?stream=board/bob", &list)
			for _, r := range list.Recordings {
				if r.State == "finished" && r.Node == "a" {
					id = r.ID
				}
			}
			return id != ""
		})
		testwait.Until(t, 5*time.Second, "c to redirect to a's recording", func() bool {
			res, err := noRedirect.Get(c.HTTP + "/api/v1/recordings/" + id + "/file")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusTemporaryRedirect && res.Header.Get("Location") == a.HTTP+"/api/v1/recordings/"+id+"/file"
		})
		if got, want := downloadSHA(t, c.HTTP+"/api/v1/recordings/"+id+"/file"), downloadSHA(t, a.HTTP+"/api/v1/recordings/"+id+"/file"); got != want {
			t.Fatalf("through c's redirect: sha256 %s, from a %s", got, want)
		}
		// The meeting too: c redirects every request for it to a (a
		// hold set through c lands on a, beside the files).
		var meetings struct {
			Meetings []struct {
				ID string `json:"id"`
			} `json:"meetings"`
		}
		getJSON(t, a.HTTP+"/api/v1/meetings?meeting=board", &meetings)
		if len(meetings.Meetings) != 1 {
			t.Fatalf("a has %d occurrences of board", len(meetings.Meetings))
		}
		occ := meetings.Meetings[0].ID
		for _, method := range []string{http.MethodGet, http.MethodPut} {
			path := "/api/v1/meetings/" + occ
			if method == http.MethodPut {
				path += "/hold?reason=case"
			}
			req, _ := http.NewRequest(method, c.HTTP+path, nil)
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != a.HTTP+path {
				t.Fatalf("%s %s on c: %d Location %q, want 307 to a", method, path, res.StatusCode, res.Header.Get("Location"))
			}
		}
	})

	t.Run("gstreamer", func(t *testing.T) {
		needGStreamer(t)
		art := artifactsDir(t)
		p := startGStreamer(t, art, c.HTTP+"/whip/board/carol")
		ev := p.next(t, 60*time.Second, "redirected")
		if !strings.HasPrefix(ev.To, a.HTTP+"/whip/board/carol") {
			t.Fatalf("GStreamer was redirected to %q, want a", ev.To)
		}
		p.next(t, 60*time.Second, "connected")
		testwait.Until(t, 10*time.Second, "board/carol live on a", func() bool { return streamNode(t, c.HTTP, "board/carol") == "a" })
		t.Logf("GStreamer followed the 307 to %s", ev.To)
		if st := p.stop(t); st.DeleteStatus != http.StatusOK {
			t.Fatalf("DELETE answered %d", st.DeleteStatus)
		}
	})
}

// TestClusterEdgeRelay: Chromium publishes through b (whip-whep follows
// the 307 to a, which owns the meeting); node c serves it over WHEP,
// RTSP and HLS through one relay from a. A viewer joining the running
// relay gets video within 1 s; the keyframe request of a viewer joining
// a running relay reaches the publisher (counted by the Go publisher,
// which nothing else asks); no packet is lost at steady state.
func TestClusterEdgeRelay(t *testing.T) {
	needChromium(t)
	redis := startRedis(t)
	a := startNode(t, "a", redis.URL, "")
	b := startNode(t, "b", redis.URL, "")
	c := startNode(t, "c", redis.URL, "", "--cluster-relay-idle", "2s")
	ctx := ctxTimeout(t, 4*time.Minute)
	se := whipclient.LoopbackSettingEngine()

	// The meeting's first participant makes a its owner.
	first, err := whipclient.Publish(ctx, a.HTTP+"/whip/show/host", whipclient.PublishOptions{Video: "vp8", Loop: true, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	art := artifactsDir(t)
	br := startBrowser(t, art)
	br.open("publisher")
	var pub publishResult
	br.mustCall(60*time.Second, "publisher", "publishWhipWhep", &pub, b.HTTP+"/whip/show/guest", "video/H264")
	if !strings.HasPrefix(pub.Resource, a.HTTP+"/whip/show/guest/") {
		t.Fatalf("whip-whep's session URL %q, want one on a (it followed the 307)", pub.Resource)
	}
	testwait.Until(t, 10*time.Second, "show/guest listed on c", func() bool { return streamNode(t, c.HTTP, "show/guest") == "a" })

	// The first viewer on c starts the relay.
	v1, err := whipclient.View(ctx, c.HTTP+"/whep/show/guest", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatalf("WHEP on the edge: %v", err)
	}
	defer v1.Close()
	if err := v1.WaitVideoFrames(ctx, 30); err != nil {
		t.Fatalf("the first edge viewer got no video: %v", err)
	}
	if got := metric(t, c.HTTP, "reel_cluster_relays"); got != 1 {
		t.Fatalf("c runs %v relays, want 1", got)
	}
	if got := metric(t, a.HTTP, "reel_cluster_relays"); got != 0 {
		t.Fatalf("the owner runs %v relays, want 0", got)
	}
	time.Sleep(3 * time.Second) // past any keyframe the first join asked for

	// A second viewer joins the running relay: its picture starts within
	// 1 s of its connection (Chromium answers keyframe requests at once).
	// Counted from the connection, not the POST: ICE and DTLS on a
	// loaded CI machine once took 1.05 s of their own, which is not the
	// relay's keyframe path this checks.
	joined := time.Now()
	v2, err := whipclient.View(ctx, c.HTTP+"/whep/show/guest", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatalf("second WHEP viewer on the edge: %v", err)
	}
	defer v2.Close()
	if err := v2.WaitVideoFrames(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st := v2.Stats()
	if d := st.Video.FirstPacket.Sub(st.Connected); st.Connected.IsZero() || d > time.Second {
		t.Errorf("WHEP on the edge: first video %v after the connection (connected %v after the POST), want within 1 s",
			d, st.Connected.Sub(joined))
	} else {
		t.Logf("WHEP on the edge: first video (a keyframe) %v after the connection, %v after the POST",
			d.Round(time.Millisecond), st.Video.FirstPacket.Sub(joined).Round(time.Millisecond))
	}

	// The keyframe request of a viewer joining a running relay reaches the
	// publisher: the Go publisher counts the PLIs it gets, and nothing
	// else asks it for one once its stream runs.
	h1, err := whipclient.View(ctx, c.HTTP+"/whep/show/host", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	if err := h1.WaitVideoFrames(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	plis := first.Stats().Video.PLIs
	h2, err := whipclient.View(ctx, c.HTTP+"/whep/show/host", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	testwait.Until(t, time.Second, "the edge viewer's keyframe request at the publisher", func() bool { return first.Stats().Video.PLIs > plis })
	h1.Close()
	h2.Close()

	// RTSP on the edge, with an outside client: video within 1 s.
	time.Sleep(2 * time.Second)
	if d := rtspFirstKeyframe(t, fmt.Sprintf("rtsp://127.0.0.1:%d/show/guest", c.RTSPPort)); d > time.Second {
		t.Errorf("RTSP on the edge: first keyframe after %v, want within 1 s", d)
	} else {
		t.Logf("RTSP on the edge: first keyframe %v after DESCRIBE", d.Round(time.Millisecond))
	}

	// HLS on the edge, from the same relay.
	waitHLSSegment(t, c.HTTP+"/hls/show/guest/index.m3u8")

	// Steady state: nothing lost over 5 s.
	time.Sleep(time.Second)
	s0 := v2.Stats()
	time.Sleep(5 * time.Second)
	s1 := v2.Stats()
	if s1.Video.Packets-s0.Video.Packets < 100 || s1.Video.Lost != s0.Video.Lost {
		t.Errorf("edge viewer over 5 s: %d packets, %d lost", s1.Video.Packets-s0.Video.Packets, s1.Video.Lost-s0.Video.Lost)
	}
	// One relay for every viewer and protocol; a sees one RTSP reader.
	var info struct {
		Viewers map[string]int `json:"viewers"`
		Node    string         `json:"node"`
	}
	getJSON(t, a.HTTP+"/api/v1/streams/show/guest", &info)
	if info.Node != "a" || info.Viewers["rtsp"] != 1 || info.Viewers["whep"] != 0 {
		t.Errorf("on the owner: node %q viewers %v, want one RTSP reader (the relay)", info.Node, info.Viewers)
	}

	// Nobody watches: the relays close after cluster.relay_idle (RTSP
	// and HLS keep theirs, 30 s, first).
	v1.Close()
	v2.Close()
	testwait.Until(t, 60*time.Second, "the idle relays to close", func() bool { return metric(t, c.HTTP, "reel_cluster_relays") == 0 })
	stopPublishing(t, br, "publisher")
}

// rtspFirstKeyframe plays url with gortsplib's client over TCP and
// returns the time from DESCRIBE to the first H.264 keyframe.
func rtspFirstKeyframe(t *testing.T, url string) time.Duration {
	t.Helper()
	u, err := base.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	start := time.Now()
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	var h264 *format.H264
	medi := desc.FindFormat(&h264)
	if medi == nil {
		t.Fatalf("no H.264 in %s", url)
	}
	if err := c.SetupAll(desc.BaseURL, []*description.Media{medi}); err != nil {
		t.Fatal(err)
	}
	dec, err := h264.CreateDecoder()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Duration, 1)
	c.OnPacketRTP(medi, h264, func(pkt *rtp.Packet) {
		au, err := dec.Decode(pkt)
		if err != nil {
			return
		}
		for _, nalu := range au {
			if len(nalu) > 0 && nalu[0]&0x1f == 5 {
				select {
				case got <- time.Since(start):
				default:
				}
			}
		}
	})
	if _, err := c.Play(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("no keyframe over RTSP from %s within 10 s", url)
	}
	return 0
}

// TestClusterOwnerDies: kill -9 the owner. Within the TTL its stream
// leaves the registry, the publisher's reconnect through another node is
// placed anew, and the dead node's cut recording is repaired when it
// restarts, uploaded, and then listed and downloaded from every node
// with the same SHA-256.
func TestClusterOwnerDies(t *testing.T) {
	redis := startRedis(t)
	s3 := startWeed(t)
	a := startNode(t, "a", redis.URL, s3.URL)
	b := startNode(t, "b", redis.URL, s3.URL)
	c := startNode(t, "c", redis.URL, s3.URL)
	ctx := ctxTimeout(t, 3*time.Minute)
	se := whipclient.LoopbackSettingEngine()

	pub, err := whipclient.Publish(ctx, a.HTTP+"/whip/cam", whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	testwait.Until(t, 10*time.Second, "cam on a, seen from c", func() bool { return streamNode(t, c.HTTP, "cam") == "a" })
	time.Sleep(4 * time.Second) // clusters of the recording reach a's disk

	a.stop(syscall.SIGKILL)
	killed := time.Now()
	testwait.Until(t, clusterTTL+3*time.Second, "cam to leave the registry", func() bool { return streamNode(t, c.HTTP, "cam") == "" })
	t.Logf("the dead owner's stream left the registry %v after kill -9 (TTL %v)", time.Since(killed).Round(time.Millisecond), clusterTTL)
	pub.Close()

	// The publisher reconnects through b: placed on a live node.
	var again *whipclient.Publisher
	testwait.Until(t, 2*clusterTTL, "the reconnect to be placed", func() bool {
		again, err = whipclient.Publish(ctx, b.HTTP+"/whip/cam", whipclient.PublishOptions{Video: "vp8", Audio: true, Duration: 3 * time.Second, SettingEngine: &se})
		return err == nil
	})
	owner := streamNode(t, c.HTTP, "cam")
	if owner != "b" && owner != "c" {
		testwait.Until(t, 5*time.Second, "the reconnect listed", func() bool { owner = streamNode(t, c.HTTP, "cam"); return owner == "b" || owner == "c" })
	}
	t.Logf("the reconnect landed on %s", owner)
	<-again.Done()
	again.Close()

	// a comes back: its cut recording is repaired and uploaded.
	a.restart(t)
	var part string
	for _, f := range a.recordings(t) {
		if strings.Contains(f, "/cam/") {
			part = f
		}
	}
	if part == "" {
		t.Fatal("a has no recording of cam after its restart")
	}
	local := fileSHA(t, part)
	testwait.Until(t, 60*time.Second, "a's uploads to complete", func() bool {
		return metric(t, a.HTTP, "reel_uploads_total") >= 2 && metric(t, a.HTTP, "reel_upload_queue") == 0
	})
	var repaired struct {
		Recordings []struct {
			ID       string `json:"id"`
			Stream   string `json:"stream"`
			State    string `json:"state"`
			Node     string `json:"node"`
			Archived bool   `json:"archived"`
		} `json:"recordings"`
	}
	id := strings.TrimSuffix(part[strings.LastIndex(part, "/")+1:], ".webm")
	for _, n := range []*node{b, c} {
		testwait.Until(t, 45*time.Second, n.ID+" lists a's repaired recording", func() bool {
			getJSON(t, n.HTTP+"/api/v1/recordings?stream=cam", &repaired)
			for _, r := range repaired.Recordings {
				if r.ID == id && r.State == "repaired" && r.Archived {
					return true
				}
			}
			return false
		})
		if got := downloadSHA(t, n.HTTP+"/api/v1/recordings/"+id+"/file"); got != local {
			t.Fatalf("downloaded from %s: sha256 %s, a's file %s", n.ID, got, local)
		}
	}
}

// TestClusterUploadResumes: with the S3 server down, a finished
// recording waits in the queue; once S3 is back it is uploaded, verified,
// and served by another node with the same bytes.
func TestClusterUploadResumes(t *testing.T) {
	redis := startRedis(t)
	s3 := startWeed(t)
	a := startNode(t, "a", redis.URL, s3.URL)
	b := startNode(t, "b", redis.URL, s3.URL)
	ctx := ctxTimeout(t, 3*time.Minute)
	se := whipclient.LoopbackSettingEngine()

	s3.stop()
	pub, err := whipclient.Publish(ctx, a.HTTP+"/whip/desk", whipclient.PublishOptions{Video: "vp8", Audio: true, Duration: 4 * time.Second, SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	<-pub.Done()
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 20*time.Second, "failed upload attempts while S3 is down", func() bool {
		return metric(t, a.HTTP, "reel_upload_failures_total") > 0 && metric(t, a.HTTP, "reel_upload_queue") == 2
	})
	if age := metric(t, a.HTTP, "reel_upload_oldest_pending_seconds"); age <= 0 {
		t.Fatalf("oldest pending upload age %v", age)
	}
	files := a.recordings(t)
	if len(files) != 1 {
		t.Fatalf("a has %d recordings, want 1", len(files))
	}
	local := fileSHA(t, files[0])

	s3.start()
	testwait.Until(t, 60*time.Second, "the queued uploads after S3 returned", func() bool {
		return metric(t, a.HTTP, "reel_upload_queue") == 0 && metric(t, a.HTTP, "reel_uploads_total") >= 2
	})
	id := strings.TrimSuffix(files[0][strings.LastIndex(files[0], "/")+1:], ".webm")
	testwait.Until(t, 45*time.Second, "b serves a's recording from the bucket", func() bool {
		res, err := http.Get(b.HTTP + "/api/v1/recordings/" + id)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	if got := downloadSHA(t, b.HTTP+"/api/v1/recordings/"+id+"/file"); got != local {
		t.Fatalf("downloaded from b: sha256 %s, a's file %s", got, local)
	}
	// A Range request through b reads the bucket's bytes.
	req, _ := http.NewRequest(http.MethodGet, b.HTTP+"/api/v1/recordings/"+id+"/file", nil)
	req.Header.Set("Range", "bytes=100-199")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(res.Body)
	res.Body.Close()
	whole, _ := os.ReadFile(files[0])
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[100:200]) {
		t.Fatalf("Range through b: %d, %d bytes", res.StatusCode, len(part))
	}
}

// TestClusterRedisDown: without Redis, a node keeps serving what it owns
// and takes more participants of its own meeting, another node refuses a
// new placement with a clear 503, and both recover when Redis returns.
func TestClusterRedisDown(t *testing.T) {
	redis := startRedis(t)
	a := startNode(t, "a", redis.URL, "")
	b := startNode(t, "b", redis.URL, "")
	ctx := ctxTimeout(t, 3*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	opts := whipclient.PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: &se}

	alice, err := whipclient.Publish(ctx, a.HTTP+"/whip/room/alice", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	viewer, err := whipclient.View(ctx, a.HTTP+"/whep/room/alice", whipclient.ViewOptions{SettingEngine: &se})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()

	redis.stop()
	testwait.Until(t, 2*clusterTTL, "a to notice Redis is gone", func() bool { return metric(t, a.HTTP, "reel_cluster_redis_up") == 0 })
	before := viewer.Stats().Video.Packets
	time.Sleep(2 * time.Second)
	if after := viewer.Stats().Video.Packets; after-before < 20 {
		t.Fatalf("the owner's viewer got %d packets in 2 s without Redis", after-before)
	}
	bob, err := whipclient.Publish(ctx, a.HTTP+"/whip/room/bob", opts)
	if err != nil {
		t.Fatalf("a refused a participant of its own meeting without Redis: %v", err)
	}
	bob.Close()

	res, err := http.Post(b.HTTP+"/whip/newroom", "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Content-Type") != "application/problem+json" ||
		res.Header.Get("Retry-After") == "" || !bytes.Contains(body, []byte("registry is unreachable")) {
		t.Fatalf("a new placement without Redis: %d %s %q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	redis.start()
	var carol *whipclient.Publisher
	testwait.Until(t, 4*clusterTTL, "placements to work again", func() bool {
		carol, err = whipclient.Publish(ctx, b.HTTP+"/whip/newroom", opts)
		return err == nil
	})
	defer carol.Close()
	// Redis came back empty: a registered again and took its meeting back.
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", redis.port)})
	defer rdb.Close()
	testwait.Until(t, 2*clusterTTL, "a's node key and its meeting's ownership in the new Redis", func() bool {
		owner, _ := rdb.Get(ctx, "reel:owner:room").Result()
		return owner == "a" && rdb.Exists(ctx, "reel:node:a").Val() == 1
	})
	testwait.Until(t, 2*clusterTTL, "b to list a's meeting", func() bool { return streamNode(t, b.HTTP, "room/alice") == "a" })
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func downloadSHA(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	h := sha256.New()
	if _, err := io.Copy(h, res.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestClusterProxyEdgeOffAuth: with auth on, cluster.route: proxy
// forwards a WHIP exchange to the owner and keeps the session URL on the
// proxy (PATCH and DELETE go through it); a node with cluster.edge: false
// answers WHEP with 307 to the owner; an edge relays with the cluster's
// token; the streams API kicks a stream published elsewhere.
func TestClusterProxyEdgeOffAuth(t *testing.T) {
	redis := startRedis(t)
	auth := []string{"--auth-publish-tokens", "pub-secret", "--auth-read-tokens", "view-secret",
		"--auth-admin-tokens", "admin-secret", "--cluster-token", "node-secret"}
	a := startNode(t, "a", redis.URL, "", auth...)
	b := startNode(t, "b", redis.URL, "", append(auth, "--cluster-route", "proxy", "--cluster-edge=false")...)
	c := startNode(t, "c", redis.URL, "", auth...)
	ctx := ctxTimeout(t, 2*time.Minute)
	se := whipclient.LoopbackSettingEngine()
	opts := whipclient.PublishOptions{Token: "pub-secret", Video: "vp8", Audio: true, Loop: true, SettingEngine: &se}

	alice, err := whipclient.Publish(ctx, a.HTTP+"/whip/lobby/alice", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()

	// Proxy: the session is a's, its URL b's.
	bob, err := whipclient.Publish(ctx, b.HTTP+"/whip/lobby/bob", opts)
	if err != nil {
		t.Fatalf("publishing through the proxy: %v", err)
	}
	if !strings.HasPrefix(bob.Location, b.HTTP+"/whip/lobby/bob/") {
		t.Fatalf("session URL %q, want one on the proxy b", bob.Location)
	}
	testwait.Until(t, 5*time.Second, "lobby/bob live on a", func() bool { return streamNodeAuth(t, c.HTTP, "lobby/bob", "view-secret") == "a" })
	if err := bob.Close(); err != nil { // DELETE through b
		t.Fatalf("DELETE through the proxy: %v", err)
	}
	testwait.Until(t, 5*time.Second, "lobby/bob to end on a", func() bool { return streamNodeAuth(t, c.HTTP, "lobby/bob", "view-secret") == "" })

	// cluster.edge: false: WHEP is redirected to the owner.
	req, _ := http.NewRequest(http.MethodPost, b.HTTP+"/whep/lobby/alice", strings.NewReader("v=0\r\n"))
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer view-secret")
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTemporaryRedirect || res.Header.Get("Location") != a.HTTP+"/whep/lobby/alice" {
		t.Fatalf("WHEP on a node with cluster.edge false: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// Without a credential, nothing is said about where the stream lives.
	res, err = noRedirect.Post(b.HTTP+"/whip/lobby/carol", "application/sdp", strings.NewReader("v=0\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("WHIP without a token on b: %d, want 401 before any routing", res.StatusCode)
	}

	// An edge relays with the cluster's token.
	v, err := whipclient.View(ctx, c.HTTP+"/whep/lobby/alice", whipclient.ViewOptions{Token: "view-secret", SettingEngine: &se})
	if err != nil {
		t.Fatalf("WHEP on the edge with auth on: %v", err)
	}
	defer v.Close()
	if err := v.WaitVideoFrames(ctx, 30); err != nil {
		t.Fatalf("no video through the authenticated relay: %v", err)
	}

	// Kicked from c, ended on a.
	req, _ = http.NewRequest(http.MethodDelete, c.HTTP+"/api/v1/streams/lobby/alice", nil)
	req.Header.Set("Authorization", "Bearer admin-secret")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("kicking a's stream from c: %d", res.StatusCode)
	}
	select {
	case <-v.Closed():
	case <-time.After(15 * time.Second):
		t.Fatal("the edge viewer outlived the kicked stream")
	}
}

func streamNodeAuth(t *testing.T, base, stream, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/streams", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Streams []clusterStream `json:"streams"`
	}
	decodeJSON(t, res, &body)
	for _, s := range body.Streams {
		if s.Name == stream {
			return s.Node
		}
	}
	return ""
}
