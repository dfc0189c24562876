package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// TestGatewayBehindItsInputRefusesNewSessions: a gateway process that
// stops running for 2.5 s (SIGSTOP: what a machine whose CPUs other
// processes took does to it, in one piece) reads its publishers' media
// that much late when it resumes. It refuses new sessions then, with 503
// and the reason, admits them again once it has kept up for 10 s, and its
// recordings keep everything the publishers sent.
func TestGatewayBehindItsInputRefusesNewSessions(t *testing.T) {
	mediacheck.Require(t)
	t.Parallel()
	g := startGateway(t, nil, "--limits-max-input-lag", "500ms")
	ctx := ctxTimeout(t, 120*time.Second)
	se := whipclient.LoopbackSettingEngine()
	var pubs []*whipclient.Publisher
	for i := range 2 {
		pub, err := whipclient.Publish(ctx, fmt.Sprintf("%s/whip/behind%d", g.HTTP, i),
			whipclient.PublishOptions{Video: "h264", Audio: true, Loop: true, SettingEngine: &se})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pub.PC.Close() })
		<-pub.Connected()
		pubs = append(pubs, pub)
	}
	g.waitRecording(t, 2, 50<<10)
	for _, pub := range pubs {
		waitSent(t, pub, 90)
	}
	view := func() error {
		v, err := whipclient.View(ctx, g.HTTP+"/whep/behind0", whipclient.ViewOptions{SettingEngine: &se})
		if err == nil {
			_ = v.Close()
		}
		return err
	}
	if err := view(); err != nil {
		t.Fatalf("a gateway keeping up refused a viewer: %v", err)
	}

	if err := g.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if err := g.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	// The input is sampled every half second, and the backlog is read
	// in the first few ms: the refusal starts within a sample.
	time.Sleep(700 * time.Millisecond)
	var refusal *whipclient.HTTPError
	for refusal == nil && time.Since(resumed) < 3*time.Second {
		err := view()
		if err != nil && !errors.As(err, &refusal) {
			t.Fatalf("viewer after the stop: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if refusal == nil {
		t.Fatalf("viewers still admitted 3 s after the gateway resumed 2.5 s behind its input")
	}
	if refusal.StatusCode != http.StatusServiceUnavailable || !strings.Contains(refusal.Body, "behind its input") ||
		!strings.Contains(refusal.Body, "in its WebRTC socket") {
		t.Fatalf("refusal: %d %s", refusal.StatusCode, refusal.Body)
	}
	// The wait it names is the oldest packet's: above the limit, and no
	// longer than the stop (less when the publishers, in this loaded test
	// process, sent nothing in its first moments).
	if wait := waitedUpTo(t, refusal.Body); wait <= 500*time.Millisecond || wait > 2600*time.Millisecond {
		t.Fatalf("refusal names a wait of %v for a 2.5 s stop and a 500ms limit: %s", wait, refusal.Body)
	}
	t.Logf("refused %v after resuming: %s", time.Since(resumed).Round(time.Millisecond), refusal.Body)
	m, err := http.Get(g.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(body), `reel_limit_rejections_total{limit="overloaded"}`) {
		t.Errorf("/metrics does not count the refusal:\n%s", grepLines(string(body), "reel_limit"))
	}
	if !strings.Contains(string(body), "reel_input_socket_drops_total 0") {
		t.Errorf("the socket dropped input (its buffer holds 2.5 s of two publishers):\n%s", grepLines(string(body), "reel_input"))
	}

	// Admitted again once the input has kept up for the hold.
	for view() != nil {
		if time.Since(resumed) > 20*time.Second {
			t.Fatal("viewers still refused 20 s after the gateway resumed")
		}
		time.Sleep(time.Second) // within the request rate
	}
	if held := time.Since(resumed); held < 9*time.Second {
		t.Errorf("admitted again %v after resuming, before the 10 s hold", held)
	}

	// The live sessions lost nothing: each recording has every frame its
	// publisher sent but those before its first keyframe (under a second
	// at 30 fps); the 2.5 s the gateway stopped are 75.
	var sent []uint64
	for _, pub := range pubs {
		sent = append(sent, pub.Stats().Video.Frames)
		if err := pub.Close(); err != nil {
			t.Errorf("DELETE: %v", err)
		}
	}
	testwait.Until(t, 30*time.Second, "both recordings finished", func() bool { return len(g.partFiles()) == 0 && len(g.recordings(t)) == 2 })
	files := g.recordings(t)
	checkPlayable(t, files)
	for _, f := range files {
		n, err := mediacheck.CountFrames(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		if strings.Contains(filepath.Base(f), "behind1") {
			i = 1
		}
		t.Logf("%s: %d frames of %d sent", filepath.Base(f), n, sent[i])
		if uint64(n)+30 < sent[i] {
			t.Errorf("%s: %d frames recorded of %d sent", filepath.Base(f), n, sent[i])
		}
	}
}

// waitedUpTo is the wait a refusal for read lag names ("waited up to 2.495s").
func waitedUpTo(t *testing.T, body string) time.Duration {
	t.Helper()
	_, after, ok := strings.Cut(body, "waited up to ")
	if !ok {
		t.Fatalf("refusal names no wait: %s", body)
	}
	word, _, _ := strings.Cut(after, " ")
	d, err := time.ParseDuration(word)
	if err != nil {
		t.Fatalf("refusal's wait %q: %v", word, err)
	}
	return d
}
