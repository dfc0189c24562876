package rtsp

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/live"
)

// inNetns marks the test binary re-run inside its own network namespace.
const inNetns = "REEL_TEST_IN_NETNS"

// TestMulticast reads a stream over RTSP UDP multicast with ffprobe and
// two ffmpeg decoders at once, which share the stream's one group. (An
// in-process gortsplib client cannot be used: it never receives the group's
// packets from a server in its own process.) Multicast must not leave this machine, so the test
// re-runs itself in a new network namespace (unshare -rn, no root needed
// where user namespaces are allowed) whose loopback carries multicast.
func TestMulticast(t *testing.T) {
	if os.Getenv(inNetns) == "" {
		needTool(t, "ffprobe")
		for _, tool := range []string{"unshare", "ip"} {
			needTool(t, tool)
		}
		if out, err := exec.Command("unshare", "-rn", "true").CombinedOutput(); err != nil {
			// A capability of the host, not a missing package: say so and stop.
			t.Skipf("cannot create a network namespace here (%v: %s); multicast not tested", err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		cmd := exec.CommandContext(ctx, "unshare", "-rn", "sh", "-c",
			`ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@"`,
			os.Args[0], "-test.run=^TestMulticast$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), inNetns+"=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in the namespace:\n%s", out)
		if err != nil {
			t.Fatalf("multicast test in its namespace: %v", err)
		}
		return
	}

	hub := live.NewHub(live.Reject)
	// The fixture answers each PLAY's keyframe request as an encoder
	// does: a reader joining the group mid-GOP would otherwise decode
	// pictures whose references it never got, and ffmpeg logs each.
	publish(t, hub, "cam", hubtest.Source{Video: live.H264, Audio: true, Loop: true, KeyframeOnRequest: true})
	s := startServerWith(t, hub, func(cfg *Config) {
		cfg.MulticastIPRange = "224.1.0.0/16"
		rtpPort := freeUDPPair(t)
		cfg.MulticastRTPPort, cfg.MulticastRTCPPort = rtpPort, rtpPort+1
	})

	streams, err := ffprobe(t, streamURL(s, "cam"), "udp_multicast")
	if err != nil {
		t.Fatalf("ffprobe over multicast: %v", err)
	}
	if v, a := findProbed(streams, "video"), findProbed(streams, "audio"); v == nil || v.CodecName != "h264" || a == nil || a.CodecName != "opus" {
		t.Errorf("ffprobe sees %+v", streams)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { decode3s(t, streamURL(s, "cam"), "udp_multicast") })
	}
	wg.Wait()
	eventually(t, "the readers leave", func() bool { return s.Readers("cam") == 0 })
}
