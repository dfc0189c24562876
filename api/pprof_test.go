package api

import (
	"net/http"
	"testing"

	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

func pprofServer(t *testing.T, on bool, auth AuthConfig) string {
	t.Helper()
	return serveAPI(t, live.NewHub(live.Reject), rtc.Config{}, auth, Config{PProf: on}, Deps{})
}

// Profiles are off by default, closed while auth is off, and open to admin
// tokens only.
func TestPProf(t *testing.T) {
	auth := AuthConfig{AdminTokens: []string{"adm"}, ReadTokens: []string{"rd"}}
	off := pprofServer(t, false, auth)
	if r := do(t, http.MethodGet, off+"/debug/pprof/", "", "", "Authorization", "Bearer adm"); r.status != http.StatusNotFound {
		t.Errorf("pprof off: status %d, want 404", r.status)
	}
	noAuth := pprofServer(t, true, AuthConfig{})
	wantProblem(t, do(t, http.MethodGet, noAuth+"/debug/pprof/", "", ""), http.StatusForbidden, "admin token")

	on := pprofServer(t, true, auth)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/debug/pprof/", "", http.StatusUnauthorized},
		{"/debug/pprof/", "rd", http.StatusUnauthorized},
		{"/debug/pprof/heap", "rd", http.StatusUnauthorized},
		{"/debug/pprof/", "adm", http.StatusOK},
		{"/debug/pprof/heap?debug=1", "adm", http.StatusOK},
		{"/debug/pprof/goroutine?debug=1", "adm", http.StatusOK},
		{"/debug/pprof/cmdline", "adm", http.StatusOK},
	} {
		var headers []string
		if tc.token != "" {
			headers = []string{"Authorization", "Bearer " + tc.token}
		}
		if r := do(t, http.MethodGet, on+tc.path, "", "", headers...); r.status != tc.want {
			t.Errorf("GET %s with token %q: status %d, want %d", tc.path, tc.token, r.status, tc.want)
		}
	}
}
