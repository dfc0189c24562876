package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/internal/testwait"
)

// TestBrowserUI drives the web UI in the system's headless Chromium through
// e2e/drivers/ui.mjs (Playwright): publish the fake camera as VP8, watch it
// over WHEP, stop, then play and delete the recording on the recordings
// page. The gateway sends its webhooks to a receiver here, which checks
// they arrive signed, in order, for the same stream.
func TestBrowserUI(t *testing.T) {
	node, chromium := browserTools(t)
	const secret = "browser-test-secret"
	hooks := newHookReceiver(t, secret)
	g := startGateway(t, []string{"REEL_EVENTS_WEBHOOKS=" + hooks.srv.URL, "REEL_EVENTS_SECRET=" + secret})

	artifacts, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "drivers/ui.mjs", g.HTTP)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium, "REEL_ARTIFACTS="+artifacts, "REEL_STREAM=browsertest")
	out, err := cmd.CombinedOutput()
	t.Logf("ui.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); screenshots are in %s", err, artifacts)
	}

	// The page's Delete removed the file.
	for _, f := range g.recordings(t) {
		if strings.Contains(filepath.Base(f), "browsertest") {
			t.Errorf("%s is still on disk after the recordings page deleted it", f)
		}
	}

	// publish.started, publish.stopped and recording.finished, signed.
	hooks.waitFor(t, events.RecordingFinished)
	// The recording finishes on its own goroutine, so it may be told
	// before or after publish.stopped; publish.started comes first.
	got := typeNames(hooks.types("browsertest"))
	sorted := slices.Sorted(slices.Values(got))
	if len(got) == 0 || got[0] != string(events.PublishStarted) ||
		strings.Join(sorted, ",") != "publish.started,publish.stopped,recording.finished" {
		t.Errorf("webhook events %v, want publish.started, then publish.stopped and recording.finished", got)
	}
	if n := hooks.badSignatures(); n != 0 {
		t.Errorf("%d webhook requests had a bad signature", n)
	}
}

// browserTools finds node, Chromium and playwright-core (installing the
// latter from package-lock.json when missing). Outside CI a missing tool
// skips the test; in CI it fails it.
func browserTools(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser test cannot run in CI: %s", why)
		}
		t.Skipf("browser test skipped: %s", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (apt-get install nodejs npm)")
	}
	chromium = cmp.Or(os.Getenv("REEL_CHROMIUM"), os.Getenv("CHROMIUM"))
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		missing("Chromium is not installed (apt-get install chromium)")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("Chromium not found at " + chromium)
	}
	if _, err := os.Stat("drivers/node_modules/playwright-core/package.json"); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			missing("playwright-core is not installed and npm is missing (bash e2e/drivers/install.sh)")
		}
		install := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		install.Dir = "drivers"
		install.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
		if out, err := install.CombinedOutput(); err != nil {
			missing("npm ci in e2e/drivers failed: " + err.Error() + "\n" + string(out))
		}
	}
	return node, chromium
}

// hookReceiver is a webhook endpoint that keeps what it gets.
type hookReceiver struct {
	secret string
	srv    *httptest.Server

	mu     sync.Mutex
	events []events.Event
	badSig int
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	h := &hookReceiver{secret: secret}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev events.Event
		err := json.Unmarshal(body, &ev)
		h.mu.Lock()
		defer h.mu.Unlock()
		if events.Verify(h.secret, body, r.Header.Get(events.SignatureHeader), events.SignatureTolerance, time.Now()) != nil {
			h.badSig++
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, ev)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) types(stream string) []events.Type {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []events.Type
	for _, ev := range h.events {
		if ev.Stream == stream {
			out = append(out, ev.Type)
		}
	}
	return out
}

func (h *hookReceiver) badSignatures() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.badSig
}

func (h *hookReceiver) waitFor(t *testing.T, typ events.Type) {
	t.Helper()
	testwait.Until(t, 10*time.Second, "a "+string(typ)+" webhook", func() bool {
		for _, got := range h.types("browsertest") {
			if got == typ {
				return true
			}
		}
		return false
	})
}

func typeNames(ts []events.Type) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}
