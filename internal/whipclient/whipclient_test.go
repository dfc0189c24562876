package whipclient

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v3"

	"github.com/reel-gateway/reel/internal/testmedia"
)

func loopback() *webrtc.SettingEngine {
	se := LoopbackSettingEngine()
	return &se
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPublishSendsPacedMediaAndFeedbackIsCounted(t *testing.T) {
	srv := newTestServer(t, "secret")
	ctx := testContext(t, 30*time.Second)
	var hooked int
	pub, err := Publish(ctx, srv.whipURL(), PublishOptions{
		Token: "secret", Video: "vp8", Audio: true,
		Duration:      time.Second,
		SettingEngine: loopback(),
		OnPacket: func(p *rtp.Packet) {
			if p.PayloadType == ptVP8 {
				hooked++ // only the video goroutine touches this
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub.Location, srv.srv.URL+"/resource/") || pub.ETag == "" {
		t.Errorf("Location %q / ETag %q not taken from the 201", pub.Location, pub.ETag)
	}
	select {
	case <-pub.Done():
	case <-ctx.Done():
		t.Fatal("publisher never finished its 1 s run")
	}
	if err := pub.Err(); err != nil {
		t.Fatalf("send error: %v", err)
	}
	st := pub.Stats()
	// One second of 30 fps video / 20 ms audio, give or take the last tick.
	if st.Video.Frames < 29 || st.Video.Frames > 31 || st.Audio.Frames < 49 || st.Audio.Frames > 51 {
		t.Errorf("sent %d video frames / %d audio packets in 1 s, want ~30 / ~50", st.Video.Frames, st.Audio.Frames)
	}
	if uint64(hooked) != st.Video.Packets {
		t.Errorf("OnPacket saw %d video packets, stats say %d", hooked, st.Video.Packets)
	}
	waitFor(ctx, t, "server to receive every packet", func() bool {
		return srv.videoPackets.Load() >= st.Video.Packets && srv.audioPackets.Load() >= st.Audio.Packets
	})
	waitFor(ctx, t, "PLI, FIR and NACK to reach the publisher", func() bool {
		v := pub.Stats().Video
		return v.PLIs >= 1 && v.FIRs >= 1 && v.NACKs >= 1 && v.NACKedPackets >= 1
	})
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if srv.deletedIDs() != "1" {
		t.Errorf("server deleted sessions %q, want 1", srv.deletedIDs())
	}
}

func TestPublishH264Packetization(t *testing.T) {
	const stapA, sps, pps = 24, 7, 8
	for _, separate := range []bool{false, true} {
		t.Run(map[bool]string{false: "stap-a", true: "separate-param-sets"}[separate], func(t *testing.T) {
			srv := newTestServer(t, "")
			ctx := testContext(t, 30*time.Second)
			pub, err := Publish(ctx, srv.whipURL(), PublishOptions{
				Video: "h264", H264SeparateParamSets: separate,
				Duration: 500 * time.Millisecond, SettingEngine: loopback(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			if !strings.Contains(pub.PC.LocalDescription().SDP, "profile-level-id=64001f") {
				t.Errorf("offer lacks the High profile-level-id derived from the file")
			}
			<-pub.Done()
			waitFor(ctx, t, "server to receive the first keyframe", func() bool { return len(srv.videoTypes()) >= 5 })
			types := srv.videoTypes()
			hasStapA := bytes.IndexByte(types, stapA) >= 0
			hasSingleSPS := bytes.IndexByte(types, sps) >= 0 && bytes.IndexByte(types, pps) >= 0
			if separate && (hasStapA || !hasSingleSPS) {
				t.Errorf("separate param sets: NAL types %v, want lone SPS and PPS and no STAP-A", types[:5])
			}
			if !separate && (!hasStapA || hasSingleSPS) {
				t.Errorf("default: NAL types %v, want SPS/PPS in STAP-A", types[:5])
			}
		})
	}
}

func TestPublishAndViewEveryCodec(t *testing.T) {
	for _, tc := range []struct {
		video, file, mime string
	}{
		{"vp8", "", webrtc.MimeTypeVP8},
		{"vp9", "", webrtc.MimeTypeVP9},
		{"av1", "", webrtc.MimeTypeAV1},
		{"h264", "", webrtc.MimeTypeH264},
		{"h264", "h264-baseline.h264", webrtc.MimeTypeH264},
		{"h265", "", webrtc.MimeTypeH265},
	} {
		name := tc.video
		if tc.file != "" {
			name = tc.file
		}
		t.Run(name, func(t *testing.T) {
			file := ""
			if tc.file != "" {
				file = testmedia.Path(tc.file)
			}
			srv := newTestServer(t, "")
			ctx := testContext(t, 30*time.Second)
			pub, err := Publish(ctx, srv.whipURL(), PublishOptions{
				Video: tc.video, VideoFile: file, Audio: true, Loop: true, SettingEngine: loopback(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			view, err := View(ctx, srv.whepURL(), ViewOptions{SettingEngine: loopback()})
			if err != nil {
				t.Fatal(err)
			}
			defer view.Close()
			// 45 frames (1.5 s) always include a keyframe with keyint 30.
			if err := view.WaitVideoFrames(ctx, 45); err != nil {
				t.Fatal(err)
			}
			st := view.Stats()
			if !strings.EqualFold(st.Video.Codec, tc.mime) || st.Video.Keyframes < 1 || st.Video.Lost != 0 {
				t.Errorf("video stats %+v: want codec %s, a keyframe, no loss", st.Video, tc.mime)
			}
			if st.Audio.Codec != webrtc.MimeTypeOpus || st.Audio.Packets == 0 || st.Audio.FirstPacket.IsZero() {
				t.Errorf("audio stats %+v: want Opus packets", st.Audio)
			}
		})
	}
}

func TestViewerClosedWhenPublisherLeaves(t *testing.T) {
	srv := newTestServer(t, "")
	ctx := testContext(t, 30*time.Second)
	pub, err := Publish(ctx, srv.whipURL(), PublishOptions{Video: "vp8", Loop: true, SettingEngine: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	view, err := View(ctx, srv.whepURL(), ViewOptions{SettingEngine: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	if err := view.WaitVideoFrames(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-view.Closed():
	case <-ctx.Done():
		t.Fatal("viewer did not notice that the publisher left")
	}
	if err := view.WaitVideoFrames(ctx, 1<<30); err == nil {
		t.Error("WaitVideoFrames succeeded on a closed viewer")
	}
}

func TestPublishTrickle(t *testing.T) {
	srv := newTestServer(t, "tok")
	ctx := testContext(t, 30*time.Second)
	pub, err := Publish(ctx, srv.whipURL(), PublishOptions{
		Token: "tok", Video: "vp8", Trickle: true, Duration: 500 * time.Millisecond, SettingEngine: loopback(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if srv.trickled.Load() == 0 {
		t.Fatal("no candidate arrived by PATCH")
	}
	patches := srv.patchBodies()
	if last := patches[len(patches)-1]; !strings.Contains(last, "a=end-of-candidates") {
		t.Errorf("last PATCH lacks end-of-candidates: %q", last)
	}
	for _, p := range patches {
		if !strings.Contains(p, "a=ice-ufrag:") || !strings.Contains(p, "a=mid:") {
			t.Errorf("PATCH body is not a full sdpfrag: %q", p)
		}
	}
	<-pub.Done()
	waitFor(ctx, t, "media after trickle", func() bool { return srv.videoPackets.Load() >= pub.Stats().Video.Packets })
}

func TestRestartICE(t *testing.T) {
	srv := newTestServer(t, "")
	ctx := testContext(t, 30*time.Second)
	pub, err := Publish(ctx, srv.whipURL(), PublishOptions{Video: "vp8", Audio: true, Loop: true, SettingEngine: loopback()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	waitFor(ctx, t, "media before restart", func() bool { return srv.videoPackets.Load() > 20 })
	oldETag := pub.ETag
	oldUfrag := parseICE(pub.PC.LocalDescription().SDP).ufrag
	if err := pub.RestartICE(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.ETag == oldETag || srv.restarts.Load() != 1 {
		t.Errorf("ETag %q -> %q, server restarts %d: want a new ETag and one restart", oldETag, pub.ETag, srv.restarts.Load())
	}
	if parseICE(pub.PC.LocalDescription().SDP).ufrag == oldUfrag {
		t.Error("local ufrag unchanged after restart")
	}
	after := srv.videoPackets.Load()
	waitFor(ctx, t, "media after restart", func() bool { return srv.videoPackets.Load() > after+20 })
	// Media can flow on the new pair before pion reports the state (it
	// passes through "connecting" when the restart begins): wait for it.
	waitFor(ctx, t, "connected after restart", func() bool {
		return pub.PC.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
}

func TestPublishErrors(t *testing.T) {
	srv := newTestServer(t, "secret")
	ctx := testContext(t, 10*time.Second)
	_, err := Publish(ctx, srv.whipURL(), PublishOptions{Token: "wrong", Video: "vp8", SettingEngine: loopback()})
	var httpErr *HTTPError
	if !errors.As(err, &httpErr) || httpErr.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "bad token") {
		t.Errorf("wrong token: got %v, want HTTPError 401 with body", err)
	}
	if _, err := Publish(ctx, srv.whipURL(), PublishOptions{SettingEngine: loopback()}); err == nil {
		t.Error("publishing nothing succeeded")
	}
	if _, err := Publish(ctx, srv.whipURL(), PublishOptions{Video: "vp8", VideoFile: testmedia.Path("vp9.ivf")}); err == nil {
		t.Error("vp8 with a VP9 file succeeded")
	}
	if _, err := Publish(ctx, srv.whipURL(), PublishOptions{Video: "theora"}); err == nil {
		t.Error("unknown codec succeeded")
	}
}

func TestSDPFragRoundTrip(t *testing.T) {
	in := iceParams{ufrag: "uf", pwd: "pw", candidates: []string{"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}, end: true}
	frag := buildSDPFrag("video", "0", in)
	out := parseICE(frag)
	if out.ufrag != "uf" || out.pwd != "pw" || len(out.candidates) != 1 || out.candidates[0] != in.candidates[0] || !out.end {
		t.Fatalf("round trip of %q gave %+v", frag, out)
	}
}

func TestH264KeyPayload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"single IDR", []byte{0x65, 0x88}, true},
		{"single P slice", []byte{0x41, 0x9a}, false},
		{"STAP-A SPS PPS IDR", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88}, true},
		{"STAP-A SPS PPS", []byte{0x78, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce}, false},
		{"FU-A IDR start", []byte{0x7c, 0x85, 0x88}, true},
		{"FU-A IDR middle", []byte{0x7c, 0x05, 0x88}, false},
	} {
		if got := isH264KeyPayload(tc.payload); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestH265KeyPayload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		want    bool
	}{
		{"single IDR_N_LP", []byte{0x28, 0x01, 0xaf}, true},
		{"single TRAIL_R", []byte{0x02, 0x01, 0xd0}, false},
		{"AP VPS IDR", []byte{0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c, 0, 3, 0x28, 0x01, 0xaf}, true},
		{"AP VPS SPS", []byte{0x60, 0x01, 0, 3, 0x40, 0x01, 0x0c, 0, 3, 0x42, 0x01, 0x01}, false},
		{"FU IDR start", []byte{0x62, 0x01, 0x94, 0xaf}, true},
		{"FU IDR middle", []byte{0x62, 0x01, 0x14, 0xaf}, false},
	} {
		if got := isH265KeyPayload(tc.payload); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFirstSampleOnTheWallClock(t *testing.T) {
	ms := time.Millisecond
	// 4 frames of 100 ms, a keyframe every second frame: a 400 ms loop.
	samples := []testmedia.Sample{{Duration: 100 * ms, Keyframe: true}, {Duration: 100 * ms}, {Duration: 100 * ms, Keyframe: true}, {Duration: 100 * ms}}
	start := time.Unix(1000, 0)
	for _, c := range []struct {
		from      time.Duration
		keyframes bool
		want      int
		at        time.Duration
	}{
		{-time.Second, true, 0, 0},    // capture starts later: from sample 0
		{0, true, 0, 0},               // exactly on time
		{50 * ms, false, 1, 100 * ms}, // audio: the next sample
		{50 * ms, true, 2, 200 * ms},  // video: the next keyframe
		{250 * ms, true, 0, 400 * ms}, // ...which may be in the next pass
		{3*time.Hour + 150*ms, false, 2, 3*time.Hour + 200*ms},
		{3*time.Hour + 201*ms, true, 0, 3*time.Hour + 400*ms},
	} {
		i, at := firstSample(samples, start, start.Add(c.from), c.keyframes)
		if i != c.want || at.Sub(start) != c.at {
			t.Errorf("from %v (keyframes %v): sample %d at %v, want %d at %v", c.from, c.keyframes, i, at.Sub(start), c.want, c.at)
		}
	}
	if i, _ := firstSample(samples[1:2], start, start.Add(time.Second), true); i != 0 {
		t.Errorf("without keyframes: sample %d", i)
	}
}

// A publisher that answers keyframe requests sends a keyframe soon after
// the server's PLI and FIR (at its 10th video packet), where the file's
// next one is a second away; one that does not sends the file as it is.
func TestPublishAnswersKeyframeRequests(t *testing.T) {
	const sps = 7
	for _, answer := range []bool{false, true} {
		t.Run(map[bool]string{false: "file-as-is", true: "answers"}[answer], func(t *testing.T) {
			srv := newTestServer(t, "")
			ctx := testContext(t, 30*time.Second)
			// 600 ms of a file with a keyframe every 30 frames (1 s).
			pub, err := Publish(ctx, srv.whipURL(), PublishOptions{
				Video: "h264", H264SeparateParamSets: true, AnswerKeyframeRequests: answer,
				Duration: 600 * time.Millisecond, SettingEngine: loopback(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			<-pub.Done()
			st := pub.Stats()
			waitFor(ctx, t, "server to receive every video packet", func() bool { return srv.videoPackets.Load() >= st.Video.Packets })
			if st.Video.PLIs == 0 {
				t.Fatal("the server's PLI did not reach the publisher")
			}
			keyframes := bytes.Count(srv.videoTypes(), []byte{sps})
			if want := map[bool]int{false: 1, true: 2}[answer]; keyframes != want {
				t.Errorf("%d keyframes (lone SPS packets) in %d video packets, want %d", keyframes, st.Video.Packets, want)
			}
		})
	}
}
