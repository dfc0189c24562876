package api

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// TestUIPages serves every page and every file a page or module names, with
// the headers that keep tokens in URLs from leaking and scripts to our own.
func TestUIPages(t *testing.T) {
	ts := newTestServer(t, AuthConfig{AdminTokens: []string{"admin"}})
	ref := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"|from "(/ui/[^"]+)"`)
	seen := map[string]bool{}
	var check func(path string)
	check = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		r := do(t, "GET", ts.url+path, "", "")
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
			return
		}
		ct := r.header.Get("Content-Type")
		switch {
		case strings.HasSuffix(path, ".js") && !strings.HasPrefix(ct, "text/javascript"),
			strings.HasSuffix(path, ".css") && !strings.HasPrefix(ct, "text/css"),
			strings.HasSuffix(path, ".svg") && !strings.HasPrefix(ct, "image/svg+xml"),
			!strings.Contains(path, "/ui/") && !strings.HasPrefix(ct, "text/html"):
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
		for h, want := range map[string]string{"Content-Security-Policy": "script-src 'self'", "Referrer-Policy": "no-referrer",
			"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"} {
			if !strings.Contains(r.header.Get(h), want) {
				t.Errorf("GET %s: %s %q lacks %q", path, h, r.header.Get(h), want)
			}
		}
		for _, m := range ref.FindAllStringSubmatch(r.body, -1) {
			check(m[1] + m[2])
		}
	}
	for _, p := range []string{"/", "/watch/cam1", "/publish", "/publish/cam.1_x~y-z", "/recordings", "/recordings?stream=cam1&token=t", "/meetings", "/meetings/board-42_20260101T000000Z"} {
		check(p)
	}
	// Every embedded script, style and image is used by some page.
	entries, _ := fs.ReadDir(uiFS, "ui")
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".html") && !seen["/ui/"+e.Name()] {
			t.Errorf("ui/%s is embedded but no page uses it", e.Name())
		}
	}
}

func TestUIRevalidatesByETag(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	r := do(t, "GET", ts.url+"/ui/reel.js", "", "")
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := do(t, "GET", ts.url+"/ui/reel.js", "", "", "If-None-Match", etag); r.status != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", r.status)
	}
}

func TestUIErrors(t *testing.T) {
	ts := newTestServer(t, AuthConfig{})
	wantProblem(t, do(t, "GET", ts.url+"/ui/missing.js", "", ""), 404, "no file missing.js")
	wantProblem(t, do(t, "GET", ts.url+"/ui/..%2fui.go", "", ""), 404, "")
	wantProblem(t, do(t, "GET", ts.url+"/watch/bad%20name", "", ""), 404, "stream names are")
	wantProblem(t, do(t, "GET", ts.url+"/publish/.hidden", "", ""), 404, "stream names are")
	wantProblem(t, do(t, "POST", ts.url+"/recordings", "text/plain", "x"), 405, "")
}

func TestUIConfig(t *testing.T) {
	srv := newUIServer(t, AuthConfig{ReadTokens: []string{"r"}, PublicRead: true}, Config{UI: UIConfig{RTSPAddr: ":8554"}})
	r := do(t, "GET", srv+"/ui/config.json", "", "")
	var cfg struct {
		Auth       bool `json:"auth"`
		PublicRead bool `json:"public_read"`
		RTSPPort   int  `json:"rtsp_port"`
		HLS        bool `json:"hls"`
	}
	if err := json.Unmarshal([]byte(r.body), &cfg); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	if !cfg.Auth || !cfg.PublicRead || cfg.RTSPPort != 8554 || cfg.HLS {
		t.Errorf("config %+v", cfg)
	}
	if strings.Contains(r.body, `"r"`) {
		t.Error("config.json shows a token")
	}
}

// newUIServer is a server with cfg, no HLS, and the given collectors.
func newUIServer(t *testing.T, auth AuthConfig, cfg Config, collectors ...prometheus.Collector) string {
	t.Helper()
	return serveAPI(t, live.NewHub(live.Reject), rtc.Config{}, auth, cfg, Deps{Metrics: collectors})
}
