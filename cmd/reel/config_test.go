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
		t.Fatalf("defaults differ from SPEC.md: %+v", c)
	}
	if strings.Join(c.Codecs.Video, ",") != "h264,vp8,vp9,av1,h265" || strings.Join(c.Codecs.Audio, ",") != "opus" {
		t.Fatalf("codec preference %v %v", c.Codecs.Video, c.Codecs.Audio)
	}
	if authConfig(c).Enabled() {
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
}
