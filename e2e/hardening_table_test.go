package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/reel-gateway/reel/events"
	"github.com/reel-gateway/reel/internal/mediacheck"
	"github.com/reel-gateway/reel/internal/testwait"
	"github.com/reel-gateway/reel/internal/whipclient"
)

// attack is one row of the hardening table: a gateway started with flags
// and env, an admin token for the warm-up and the checks (none with auth
// off), the token /metrics needs, and what the attacker does.
type attack struct {
	name   string
	flags  []string
	env    []string
	admin  string
	scrape string
	run    func(a *attackEnv)
}

const (
	rootToken  = "e2e-root-token"
	jwtSecret  = "e2e-hardening-secret-e2e-hardening"
	authTokens = "--auth-admin-tokens"
)

// rootJWT is a global admin JWT, good for the whole test run.
var rootJWT = mustJWT("*", "admin", time.Hour)

// TestHardening runs the attacks of issue 12 against the real binary, one
// gateway each. After each, the gateway's goroutines, open files and
// WHIP/WHEP sessions must come back to the baseline taken before it.
func TestHardening(t *testing.T) {
	for _, at := range hardening {
		t.Run(at.name, func(t *testing.T) {
			t.Parallel()
			a := &attackEnv{t: t, at: at, hooks: newHookLog(t),
				client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
			a.g = startGateway(t, a.env(), append(attackFlags(), at.flags...)...)
			a.warmUp()
			at.run(a)
			a.backToBaseline()
		})
	}
}

var hardening = []attack{
	{
		// Item 1: /hls/{a}/{b}/index.m3u8 is stream "a/b", authorized as
		// that, never as a or b.
		name:  "hls-path-is-the-stream",
		flags: []string{authTokens, rootToken, "--auth-stream-tokens", "cam=camkey,studio=skey", "--auth-read-tokens", "rd"},
		admin: rootToken, scrape: rootToken,
		run: func(a *attackEnv) {
			a.publish("cam", "camkey", "h264")
			testwait.Until(a.t, 30*time.Second, "cam's HLS playlist with cam's key", func() bool {
				return a.do("GET", "/hls/cam/index.m3u8?token=camkey", "", "").status == http.StatusOK
			})
			for _, c := range []struct {
				path string
				want int
			}{
				{"/hls/studio/cam/index.m3u8?token=camkey", 401}, // stream "studio/cam", not cam
				{"/hls/studio/cam/index.m3u8?token=skey", 401},   // nor studio
				{"/hls/studio/cam/index.m3u8?token=rd", 404},     // "studio/cam" is not live
				{"/hls/studio/cam/index.m3u8?token=" + signJWT(a.t, jwtSecret, "studio", "read"), 401},
				{"/hls/cam/index.m3u8?token=skey", 401},
				{"/hls/x/y/z/index.m3u8?token=rd", 404},
			} {
				if r := a.do("GET", c.path, "", ""); r.status != c.want {
					a.t.Errorf("GET %s: %d, want %d", c.path, r.status, c.want)
				}
			}
		},
	},
	{
		// Item 2: a session URL works only for its creator (or an admin),
		// and its id is not published to others.
		name:  "session-url-bound-to-creator",
		flags: []string{authTokens, rootToken, "--auth-publish-tokens", "alice,mallory"},
		admin: rootToken, scrape: rootToken,
		run: func(a *attackEnv) {
			pub := a.publish("cam", "alice", "vp8")
			id := path.Base(pub.Location)
			var seen struct{ Session string }
			if r := a.do("GET", "/api/v1/streams/cam", "", "", bearer("mallory")...); r.status != 200 || json.Unmarshal([]byte(r.body), &seen) != nil || seen.Session != "" {
				a.t.Errorf("mallory reads the streams API: %d %s", r.status, r.body)
			}
			if r := a.do("GET", "/api/v1/streams/cam", "", "", bearer(rootToken)...); !strings.Contains(r.body, id) {
				a.t.Errorf("the admin does not see the session: %s", r.body)
			}
			frag := "a=ice-ufrag:evil\r\na=ice-pwd:evilevilevilevilevilevil\r\n"
			if r := a.do("PATCH", pub.Location, "application/trickle-ice-sdpfrag", frag, append(bearer("mallory"), "If-Match", "*")...); r.status != http.StatusForbidden {
				a.t.Errorf("mallory restarts alice's ICE: %d %s", r.status, r.body)
			}
			if r := a.do("DELETE", pub.Location, "", "", bearer("mallory")...); r.status != http.StatusForbidden {
				a.t.Errorf("mallory ends alice's session: %d %s", r.status, r.body)
			}
			if r := a.do("GET", "/api/v1/streams/cam", "", "", bearer(rootToken)...); r.status != 200 {
				a.t.Fatalf("alice's stream ended: %d", r.status)
			}
			if err := pub.Close(); err != nil {
				a.t.Errorf("alice's own DELETE: %v", err)
			}
		},
	},
	{
		// Item 3: bodies sent a byte at a time hold no publisher slot and
		// are cut off by the read timeout.
		name:  "slow-bodies",
		flags: []string{"--limits-publishers", "2", "--http-read-timeout", "2s"},
		run: func(a *attackEnv) {
			addr := strings.TrimPrefix(a.g.HTTP, "http://")
			var wg sync.WaitGroup
			cut := make(chan time.Duration, 8)
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						return
					}
					defer conn.Close()
					start := time.Now()
					fmt.Fprintf(conn, "POST /whip/slow%d HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 4000\r\n\r\n", i)
					closed := make(chan struct{})
					go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
					for range 40 { // a byte every 250 ms, 10 s at most
						select {
						case <-closed:
							cut <- time.Since(start)
							return
						case <-time.After(250 * time.Millisecond):
							_, _ = conn.Write([]byte("v"))
						}
					}
					cut <- time.Since(start)
				}()
			}
			// Meanwhile both publisher slots go to real publishers.
			p1, p2 := a.publish("real1", "", "vp8"), a.publish("real2", "", "vp8")
			wg.Wait()
			close(cut)
			for d := range cut {
				if d > 5*time.Second {
					a.t.Errorf("a slow body kept its connection %v (read timeout 2 s)", d)
				}
			}
			if r := a.do("POST", "/whip/third", "application/sdp", sdpOffer(a.t)); r.status != http.StatusServiceUnavailable {
				a.t.Errorf("a third publisher: %d, want 503 (the limit still holds)", r.status)
			}
			_, _ = p1.Close(), p2.Close()
		},
	},
	{
		// Item 4: an offer with 600 candidates is refused before Reel sends
		// anything to them; trickle cannot go past the cap either.
		name: "candidate-flood",
		run: func(a *attackEnv) {
			var listeners []net.PacketConn
			var ports []int
			for range 5 {
				l, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					a.t.Fatal(err)
				}
				defer l.Close()
				listeners = append(listeners, l)
				ports = append(ports, l.LocalAddr().(*net.UDPAddr).Port)
			}
			for p := 30000; len(ports) < 600; p++ {
				ports = append(ports, p)
			}
			r := a.do("POST", "/whip/flood", "application/sdp", withCandidates(sdpOffer(a.t), ports))
			if r.status != http.StatusUnprocessableEntity || !strings.Contains(problemDetail(r), "ICE candidates") {
				a.t.Errorf("600 candidates: %d %s", r.status, r.body)
			}
			for _, l := range listeners {
				_ = l.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
				if n, _, err := l.ReadFrom(make([]byte, 1500)); err == nil {
					a.t.Errorf("Reel sent %d bytes to a candidate of a refused offer", n)
				}
			}
			pub := a.publish("trickler", "", "vp8")
			var frag strings.Builder
			frag.WriteString("a=mid:0\r\n")
			for i := range 25 {
				fmt.Fprintf(&frag, "a=candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host\r\n", 100+i, 31000+i)
			}
			if r := a.do("PATCH", pub.Location, "application/trickle-ice-sdpfrag", frag.String(), "If-Match", pub.ETag); r.status != http.StatusUnprocessableEntity {
				a.t.Errorf("trickling 25 candidates: %d %s", r.status, r.body)
			}
			if n := a.rejections("ice_candidates"); n != 2 {
				a.t.Errorf("ice_candidates rejections %v, want 2", n)
			}
			_ = pub.Close()
		},
	},
	{
		// Item 5: offers that never connect, from several addresses (a
		// trusted proxy forwards them), fill neither the publisher limit
		// nor keep connected publishers out.
		name:  "unconnected-offers",
		flags: []string{"--http-trusted-proxies", "127.0.0.1/32", "--limits-publishers", "20"},
		run: func(a *attackEnv) {
			connected := a.publish("connected", "", "vp8")
			post := func(i int, from string) int {
				return a.do("POST", fmt.Sprintf("/whip/pending%d", i), "application/sdp", sdpOffer(a.t), "X-Forwarded-For", from).status
			}
			n := 0
			for _, from := range []string{"198.51.100.1", "198.51.100.2"} {
				for range 4 {
					if s := post(n, from); s != http.StatusCreated {
						a.t.Fatalf("pending offer %d from %s: %d", n, from, s)
					}
					n++
				}
				if s := post(n, from); s != http.StatusTooManyRequests {
					a.t.Errorf("fifth pending offer from %s: %d, want 429", from, s)
				}
			}
			for range 2 {
				if s := post(n, "198.51.100.3"); s != http.StatusCreated {
					a.t.Fatalf("pending offer %d: %d", n, s)
				}
				n++
			}
			// Ten pending: the cap (10% of 20 publishers, at least 10).
			if s := post(n, "198.51.100.4"); s != http.StatusServiceUnavailable {
				a.t.Errorf("eleventh pending offer: %d, want 503", s)
			}
			if a.rejections("pending_per_ip") != 2 || a.rejections("pending_publishers") != 1 {
				a.t.Errorf("pending refusals not counted")
			}
			if r := a.do("GET", "/api/v1/streams/connected", "", ""); r.status != 200 {
				a.t.Errorf("the connected publisher was pushed out: %d", r.status)
			}
			testwait.Until(a.t, 20*time.Second, "the unconnected offers to end", func() bool { return a.snapshot().whip == 1 })
			if s := post(n+1, "198.51.100.4"); s != http.StatusCreated {
				a.t.Errorf("an offer once they ended: %d", s)
			}
			_ = connected.Close()
		},
	},
	{
		// Item 6: forwarding headers from a client are not its address:
		// not in the streams API, the webhook, nor the log.
		name:  "forged-client-address",
		flags: []string{authTokens, rootToken, "--auth-publish-tokens", "pub"},
		admin: rootToken, scrape: rootToken,
		run: func(a *attackEnv) {
			remote := forgedPublish(a, "<img src=x onerror=alert(1)>")
			if remote != "127.0.0.1" {
				a.t.Errorf("remote %q, want the TCP peer 127.0.0.1", remote)
			}
			if strings.Contains(a.g.Log(), "onerror") {
				a.t.Error("the forged address reached the log")
			}
		},
	},
	{
		// Item 6, behind a trusted proxy: the right-most address it did
		// not add itself.
		name:  "trusted-proxy",
		flags: []string{authTokens, rootToken, "--auth-publish-tokens", "pub", "--http-trusted-proxies", "127.0.0.0/8"},
		admin: rootToken, scrape: rootToken,
		run: func(a *attackEnv) {
			if remote := forgedPublish(a, "6.6.6.6, 203.0.113.9"); remote != "203.0.113.9" {
				a.t.Errorf("remote %q, want 203.0.113.9 (the right-most untrusted hop)", remote)
			}
		},
	},
	{
		// Item 8: a JWT admin for one stream administers that stream only.
		name:  "scoped-jwt-admin",
		env:   []string{"REEL_AUTH_JWT_HS256_SECRET=" + jwtSecret},
		admin: rootJWT, scrape: rootJWT,
		run: func(a *attackEnv) {
			adminX := signJWT(a.t, jwtSecret, "x", "admin")
			noStream := signJWTClaims(a.t, jwtSecret, jwt.MapClaims{"action": "admin"})
			a.publish("x", adminX, "vp8")
			a.publish("y", signJWT(a.t, jwtSecret, "y", "publish"), "vp8")
			for _, c := range []struct {
				method, path, token string
				want                int
			}{
				{"DELETE", "/api/v1/streams/y", adminX, 401},
				{"DELETE", "/api/v1/streams/y", noStream, 401},
				{"GET", "/metrics", adminX, 401},
				{"DELETE", "/api/v1/streams/x", adminX, 204},
				{"DELETE", "/api/v1/streams/y", signJWT(a.t, jwtSecret, "*", "admin"), 204},
			} {
				if r := a.do(c.method, c.path, "", "", bearer(c.token)...); r.status != c.want {
					a.t.Errorf("%s %s: %d, want %d", c.method, c.path, r.status, c.want)
				}
			}
		},
	},
	{
		// Item 9: wrong tokens are throttled per address, on every
		// protocol; asking without a token is not a failure.
		name:  "wrong-token-flood",
		flags: []string{authTokens, rootToken, "--auth-read-tokens", "rd", "--metrics-public"},
		admin: rootToken,
		run: func(a *attackEnv) {
			for i := range 10 {
				if r := a.do("GET", "/api/v1/recordings", "", "", bearer(fmt.Sprintf("guess%d", i))...); r.status != 401 {
					a.t.Fatalf("wrong token %d: %d", i, r.status)
				}
			}
			r := a.do("DELETE", "/api/v1/streams/x", "", "", bearer("guess10")...)
			if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 429 || ra < 1 || problemDetail(r) == "" {
				a.t.Errorf("eleventh wrong token: %d, Retry-After %q, %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			if r := a.do("GET", "/api/v1/recordings", "", "", bearer("rd")...); r.status != 429 {
				a.t.Errorf("a good token while throttled: %d, want 429", r.status)
			}
			if r := a.do("GET", "/hls/cam/index.m3u8?token=guess", "", ""); r.status != 429 {
				a.t.Errorf("HLS while throttled: %d, want 429", r.status)
			}
			basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("x:guess"))
			if status, h := rtspDescribe(a.t, a.g.RTSPPort, "cam", basic); status != 503 || h.Get("Retry-After") == "" {
				a.t.Errorf("RTSP while throttled: %d, Retry-After %q; want 503", status, h.Get("Retry-After"))
			}
			if r := a.do("GET", "/api/v1/recordings", "", ""); r.status != 401 {
				a.t.Errorf("no token while throttled: %d, want the 401 challenge", r.status)
			}
			if n := a.rejections("auth_failures"); n < 4 {
				a.t.Errorf("auth_failures rejections %v, want 4 or more", n)
			}
		},
	},
	{
		// Item 10: with auth off, another site's page cannot change
		// anything through the user's browser.
		name: "cross-site-with-auth-off",
		run: func(a *attackEnv) {
			pub := a.publish("cam", "", "vp8")
			for _, h := range [][]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Origin", "null"}} {
				if r := a.do("DELETE", "/api/v1/streams/cam", "", "", h...); r.status != http.StatusForbidden {
					a.t.Errorf("DELETE with %v: %d, want 403", h, r.status)
				}
			}
			r := a.do("GET", "/api/v1/streams", "", "", "Origin", "http://evil.example")
			if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("X-Content-Type-Options") != "nosniff" {
				a.t.Errorf("reading from another origin: %d %v", r.status, r.header)
			}
			if r := a.do("POST", "/whip/other", "application/sdp", "v=0", "Origin", "http://evil.example"); r.status == http.StatusForbidden {
				a.t.Error("WHIP refused from another origin")
			}
			if r := a.do("DELETE", "/api/v1/streams/cam", "", ""); r.status != http.StatusNoContent {
				a.t.Errorf("DELETE without Origin (curl): %d", r.status)
			}
			_ = pub.Close()
		},
	},
	{
		// Item 11: with auth on, names, addresses and sessions need a read
		// token.
		name:  "information-needs-a-token",
		flags: []string{authTokens, rootToken, "--auth-read-tokens", "rd"},
		admin: rootToken, scrape: rootToken,
		run: func(a *attackEnv) {
			a.publish("cam", rootToken, "vp8")
			for _, p := range []string{"/api/v1/streams", "/api/v1/streams/cam", "/metrics"} {
				if r := a.do("GET", p, "", ""); r.status != 401 {
					a.t.Errorf("GET %s without a token: %d", p, r.status)
				}
				if r := a.do("GET", p, "", "", bearer("rd")...); r.status != 200 || strings.Contains(r.body, `"session"`) {
					a.t.Errorf("GET %s with a read token: %d %.200s", p, r.status, r.body)
				}
			}
		},
	},
	{
		// Items 7, 12 and 14: two recordings under one name in two
		// containers, a hostile file name, a FIFO, and an empty Range.
		name: "archive",
		run: func(a *attackEnv) {
			mediacheck.Require(a.t)
			for stream, video := range map[string]string{"x": "vp8", "y": "h264"} {
				p := a.publish(stream, "", video)
				time.Sleep(1500 * time.Millisecond)
				_ = p.Close()
			}
			dir := a.g.Recordings
			var webm, mkv []string
			testwait.Until(a.t, 30*time.Second, "both recordings finished", func() bool {
				webm, _ = filepath.Glob(filepath.Join(dir, "x", "*.webm"))
				mkv, _ = filepath.Glob(filepath.Join(dir, "y", "*.mkv"))
				return len(webm) == 1 && len(mkv) == 1 && len(a.g.partFiles()) == 0
			})
			a.g.stop(syscall.SIGTERM)
			if len(webm) != 1 || len(mkv) != 1 {
				a.t.Fatalf("recordings %v %v", webm, mkv)
			}
			base := strings.TrimSuffix(webm[0], ".webm")
			for _, ext := range []string{"", ".json"} {
				if err := os.Rename(mkv[0]+ext, base+".mkv"+ext); err != nil {
					a.t.Fatal(err)
				}
			}
			weird := filepath.Join(dir, "x", `we"ird; name.webm`)
			if b, err := os.ReadFile(webm[0]); err != nil || os.WriteFile(weird, b, 0o644) != nil {
				a.t.Fatal(err)
			}
			a.restart()
			var all, list struct{ Recordings []archiveRecording }
			r := a.do("GET", "/api/v1/recordings", "", "")
			if err := json.Unmarshal([]byte(r.body), &all); err != nil {
				a.t.Fatalf("recordings: %v %s", err, r.body)
			}
			for _, rec := range all.Recordings {
				if strings.HasPrefix(rec.Path, "x/") {
					list.Recordings = append(list.Recordings, rec)
				}
			}
			if len(list.Recordings) != 3 {
				a.t.Fatalf("recordings in x/: %+v", all.Recordings)
			}
			ids := map[string]bool{}
			for _, rec := range list.Recordings {
				ids[rec.ID] = true
				f := a.do("GET", rec.FileURL, "", "")
				if f.status != 200 || int64(len(f.body)) != rec.Size {
					a.t.Errorf("download %s: %d, %d of %d bytes", rec.ID, f.status, len(f.body), rec.Size)
				}
				if cd := f.header.Get("Content-Disposition"); strings.Count(cd, `"`) != 2 || !strings.Contains(cd, "filename*=UTF-8''") {
					a.t.Errorf("%s: Content-Disposition %q", rec.ID, cd)
				}
				if e := a.do("GET", rec.FileURL, "", "", "Range", "bytes=-0"); e.status != http.StatusRequestedRangeNotSatisfiable {
					a.t.Errorf("%s: Range bytes=-0: %d, want 416", rec.ID, e.status)
				}
			}
			if len(ids) != 3 {
				a.t.Errorf("ids %v: not distinct", ids)
			}
			// A FIFO where a listed recording was: refused, at once.
			fifoRec := list.Recordings[0]
			fifo := filepath.Join(dir, filepath.FromSlash(fifoRec.Path))
			if err := os.Remove(fifo); err != nil {
				a.t.Fatal(err)
			}
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				a.t.Fatal(err)
			}
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get(a.g.HTTP + fifoRec.FileURL)
			if err != nil {
				if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				a.t.Fatalf("GET of a FIFO: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				a.t.Errorf("GET of a FIFO: %d, want 403", resp.StatusCode)
			}
			for _, rec := range list.Recordings[1:] {
				if r := a.do("DELETE", "/api/v1/recordings/"+rec.ID, "", ""); r.status != http.StatusNoContent {
					a.t.Errorf("DELETE %s: %d", rec.ID, r.status)
				}
			}
		},
	},
	{
		// Item 13: a webhook request replayed later is refused by a
		// receiver that checks the signed time.
		name: "webhook-replay",
		run: func(a *attackEnv) {
			pub := a.publish("cam", "", "vp8")
			d := a.hooks.wait(a.t, events.PublishStarted, "cam")
			body := d.body
			sig := d.header.Get(events.SignatureHeader)
			now := time.Now()
			if err := events.Verify(hookSecret, body, sig, events.SignatureTolerance, now); err != nil {
				a.t.Fatalf("signature %q: %v", sig, err)
			}
			if err := events.Verify(hookSecret, body, sig, events.SignatureTolerance, now.Add(10*time.Minute)); !errors.Is(err, events.ErrStale) {
				a.t.Errorf("replayed 10 minutes later: %v, want ErrStale", err)
			}
			_ = pub.Close()
		},
	},
}

// forgedPublish publishes "cam" with X-Forwarded-For: xff and X-Real-IP
// on every request, and returns the remote address the streams API and
// the publish.started webhook give for it (which must agree).
func forgedPublish(a *attackEnv, xff string) string {
	a.t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: headerTransport{"X-Forwarded-For": xff, "X-Real-IP": "6.6.6.6"}}
	ctx := ctxTimeout(a.t, 60*time.Second)
	se := whipclient.LoopbackSettingEngine()
	pub, err := whipclient.Publish(ctx, a.g.HTTP+"/whip/cam", whipclient.PublishOptions{Video: "vp8", Loop: true, Token: "pub", SettingEngine: &se, HTTPClient: client})
	if err != nil {
		a.t.Fatal(err)
	}
	defer pub.Close()
	var info struct{ Remote string }
	r := a.do("GET", "/api/v1/streams/cam", "", "", append(bearer(rootToken), "X-Forwarded-For", xff)...)
	if err := json.Unmarshal([]byte(r.body), &info); err != nil || info.Remote == "" {
		a.t.Fatalf("streams API: %d %s", r.status, r.body)
	}
	if d := a.hooks.wait(a.t, events.PublishStarted, "cam"); d.ev.Data["remote"] != info.Remote {
		a.t.Errorf("webhook remote %v, streams API %q", d.ev.Data["remote"], info.Remote)
	}
	if err := pub.Close(); err != nil {
		a.t.Errorf("DELETE: %v", err)
	}
	return info.Remote
}

// headerTransport adds headers to every request.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return (&http.Transport{DisableKeepAlives: true}).RoundTrip(r)
}
