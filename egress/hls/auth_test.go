package hls

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/internal/hubtest"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/live"
)

// The stream a request is authorized for is the stream it is served: the
// last path element is the file and everything between /hls/ and it the
// stream, so /hls/zzz/cam/index.m3u8 is stream "zzz/cam", which cam's own
// key does not open, and which is not cam.
func TestPathNamesTheStreamAuthorized(t *testing.T) {
	gate, err := access.New(access.Config{StreamTokens: map[string]string{"cam": "camkey", "zzz": "zkey"}, ReadTokens: []string{"reader"}},
		access.Limits{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := start(t, Config{Gate: gate}, hubtest.Source{Video: live.H264, Audio: true, Loop: true})
	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, f.http.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testwait.Until(t, 20*time.Second, "cam's playlist with its own key", func() bool {
		return get("/hls/cam/index.m3u8", "camkey") == http.StatusOK
	})
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/hls/zzz/cam/index.m3u8", "camkey", http.StatusUnauthorized}, // stream "zzz/cam", not cam
		{"/hls/zzz/cam/index.m3u8", "zkey", http.StatusUnauthorized},   // nor zzz
		{"/hls/zzz/cam/index.m3u8", "reader", http.StatusNotFound},     // "zzz/cam" is not live
		{"/hls/cam/index.m3u8", "zkey", http.StatusUnauthorized},       // another stream's key
		{"/hls/cam/index.m3u8", "", http.StatusUnauthorized},           // no token
		{"/hls/a/b/c/index.m3u8", "reader", http.StatusNotFound},       // not a stream name
		{"/hls/.cam/index.m3u8", "reader", http.StatusNotFound},        // not a stream name
		{"/hls/index.m3u8", "reader", http.StatusNotFound},             // no stream
		{"/cam/index.m3u8", "reader", http.StatusNotFound},             // not under /hls/
		{"/hls/cam/index.m3u8?token=camkey", "", http.StatusOK},        // ?token= for players
		{"/hls/zzz/cam/index.m3u8?token=camkey", "", http.StatusUnauthorized},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
}
