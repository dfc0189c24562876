package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsMatchTheSpec(t *testing.T) {
	c, err := loadConfig(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8080" || c.RTSP.Addr != ":8554" || c.WebRTC.UDPAddr != ":8189" || c.Recordings.Dir != "./recordings" || !c.Recordings.Enabled {
		t.Fatalf("defaults differ from the documented ones (README, Configuration): %+v", c)
	}
	if strings.Join(c.Codecs.Video, ",") != "h264,vp8,vp9,av1,h265" || strings.Join(c.Codecs.Audio, ",") != "opus" {
		t.Fatalf("codec preference %v %v", c.Codecs.Video, c.Codecs.Audio)
	}
	if ac, err := accessConfig(c); err != nil || ac.Enabled() {
		t.Fatal("auth is on by default")
	}
}

// Flags win over the environment, which wins over the file.
func TestLayering(t *testing.T) {
	file := filepath.Join(t.TempDir(), "reel.yaml")
	yaml := "http:\n  addr: \":1111\"\nrecordings:\n  dir: /from/file\n  enabled: false\nauth:\n  stream_tokens:\n    cam: k1\nhls:\n  idle_timeout: 5s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig([]string{"--config", file, "--http-addr", ":3333"},
		env(map[string]string{"REEL_HTTP_ADDR": ":2222", "REEL_RECORDINGS_DIR": "/from/env", "REEL_WEBRTC_NAT_1TO1_IPS": "203.0.113.7, 203.0.113.8"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":3333" {
		t.Errorf("flag did not win: %s", c.HTTP.Addr)
	}
	if c.Recordings.Dir != "/from/env" {
		t.Errorf("env did not beat the file: %s", c.Recordings.Dir)
	}
	if c.Recordings.Enabled || c.Auth.StreamTokens["cam"] != "k1" || c.HLS.IdleTimeout != 5*time.Second {
		t.Errorf("file values lost: %+v", c)
	}
	if strings.Join(c.WebRTC.NAT1To1IPs, "|") != "203.0.113.7|203.0.113.8" {
		t.Errorf("list from env: %v", c.WebRTC.NAT1To1IPs)
	}
}

func TestConfigErrorsSayWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("http:\n  adress: \":1\"\n"), 0o600)
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--config", bad}, nil, "adress"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "reading config file"},
		{nil, map[string]string{"REEL_RECORDINGS_ENABLED": "maybe"}, "REEL_RECORDINGS_ENABLED"},
		{[]string{"--hls-idle-timeout", "soon"}, nil, "duration"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"--auth-stream-tokens", "cam"}, nil, "stream=token"},
	} {
		_, err := loadConfig(c.args, env(c.env), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want mention of %q", c.args, c.env, err, c.want)
		}
	}
}

func TestHelpListsEveryOption(t *testing.T) {
	var out bytes.Buffer
	if _, err := loadConfig([]string{"--help"}, env(nil), &out); err != errHelp {
		t.Fatalf("err %v", err)
	}
	for _, o := range options(defaultConfig()) {
		for _, want := range []string{"--" + o.flagName(), o.envName(), o.key} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("help lacks %s", want)
			}
		}
	}
}

func TestSecretsNotShownInHelp(t *testing.T) {
	c := defaultConfig()
	c.Auth.StreamTokens = map[string]string{"cam": "supersecret"}
	for _, o := range options(c) {
		if strings.Contains(o.value.String(), "supersecret") {
			t.Fatalf("%s prints its token", o.key)
		}
	}
}

func TestBadCodecPreference(t *testing.T) {
	c := defaultConfig()
	c.Codecs.Video = []string{"h264", "opus"}
	if _, err := preferences(c); err == nil || !strings.Contains(err.Error(), "codecs.video") {
		t.Fatalf("err %v", err)
	}
	c = defaultConfig()
	c.Codecs.Prefer = "publisher"
	if _, err := preferences(c); err == nil || !strings.Contains(err.Error(), "codecs.prefer") {
		t.Fatalf("codecs.prefer publisher: err %v", err)
	}
}

// By default the offer's order picks the codec; codecs.prefer server (or
// REEL_CODECS_PREFER, --codecs-prefer) makes the configured order win.
func TestCodecPrefer(t *testing.T) {
	c, err := loadConfig(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := preferences(c); err != nil || p.ServerOrder || c.Codecs.Prefer != "offer" {
		t.Fatalf("default: %+v %v (%q)", p, err, c.Codecs.Prefer)
	}
	for _, src := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--codecs-prefer", "server"}, nil},
		{nil, map[string]string{"REEL_CODECS_PREFER": "server"}},
	} {
		c, err := loadConfig(src.args, env(src.env), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := preferences(c); err != nil || !p.ServerOrder {
			t.Fatalf("%v %v: %+v %v", src.args, src.env, p, err)
		}
	}
}

// The security options reach the parts: trusted proxies and metrics.public
// the access policy, the limits the gate (pending_publishers derived from
// publishers unless set), ice_candidates the engine, the timeouts the
// HTTP server.
func TestSecurityOptions(t *testing.T) {
	c, err := loadConfig(nil, env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.PendingPerIP != 4 || c.Limits.PendingPublishers != -1 || c.Limits.AuthFailures != 10 ||
		c.Limits.AuthFailureRefill != 6*time.Second || c.Limits.ICECandidates != 20 || len(c.HTTP.TrustedProxies) != 0 ||
		c.HTTP.ReadTimeout != 15*time.Second || c.HTTP.WriteTimeout != 30*time.Second || c.HTTP.IdleTimeout != 2*time.Minute || c.Metrics.Public {
		t.Fatalf("security defaults differ from the README's: %+v %+v", c.Limits, c.HTTP)
	}
	file := filepath.Join(t.TempDir(), "reel.yaml")
	yaml := "http:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.7]\nlimits:\n  pending_publishers: auto\n  publishers: 300\nmetrics:\n  public: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = loadConfig([]string{"--config", file, "--limits-ice-candidates", "7"},
		env(map[string]string{"REEL_LIMITS_AUTH_FAILURES": "3", "REEL_HTTP_READ_TIMEOUT": "2s"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := accessConfig(c)
	if err != nil || len(ac.TrustedProxies) != 2 || !ac.PublicMetrics {
		t.Fatalf("access config %+v (%v)", ac, err)
	}
	if c.Limits.ICECandidates != 7 || c.Limits.AuthFailures != 3 || c.HTTP.ReadTimeout != 2*time.Second || c.Limits.PendingPublishers != -1 {
		t.Errorf("options not applied: %+v %+v", c.Limits, c.HTTP)
	}
	if _, err := loadConfig([]string{"--limits-pending-publishers", "5"}, env(nil), nil); err != nil {
		t.Errorf("a number for pending_publishers: %v", err)
	}
	for _, bad := range [][]string{{"--limits-pending-publishers", "lots"}, {"--http-trusted-proxies", "10.0.0.0/99"}} {
		c, err := loadConfig(bad, env(nil), nil)
		if err == nil {
			_, err = accessConfig(c)
		}
		if err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
