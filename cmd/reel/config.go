package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/reel-gateway/reel/api"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/recorder"
)

// Config is everything an operator can set. Each field is reachable as a
// YAML key, a REEL_* environment variable and a flag; see options.
type Config struct {
	HTTP struct {
		Addr    string `yaml:"addr"`
		TLSCert string `yaml:"tls_cert"`
		TLSKey  string `yaml:"tls_key"`
	} `yaml:"http"`
	RTSP struct {
		Enabled     bool   `yaml:"enabled"`
		Addr        string `yaml:"addr"`
		UDPRTPAddr  string `yaml:"udp_rtp_addr"`
		UDPRTCPAddr string `yaml:"udp_rtcp_addr"`
		TLSCert     string `yaml:"tls_cert"`
		TLSKey      string `yaml:"tls_key"`
		// Multicast is off while MulticastIPRange is empty.
		MulticastIPRange  string `yaml:"multicast_ip_range"`
		MulticastRTPPort  int    `yaml:"multicast_rtp_port"`
		MulticastRTCPPort int    `yaml:"multicast_rtcp_port"`
	} `yaml:"rtsp"`
	HLS struct {
		Enabled     bool          `yaml:"enabled"`
		IdleTimeout time.Duration `yaml:"idle_timeout"`
	} `yaml:"hls"`
	WebRTC struct {
		UDPAddr    string   `yaml:"udp_addr"`
		NAT1To1IPs []string `yaml:"nat_1to1_ips"`
		ICEServers []string `yaml:"ice_servers"`
	} `yaml:"webrtc"`
	Recordings struct {
		Enabled         bool          `yaml:"enabled"`
		Dir             string        `yaml:"dir"`
		SegmentDuration time.Duration `yaml:"segment_duration"`
		MaxAge          time.Duration `yaml:"max_age"`
		MaxTotalSize    byteSize      `yaml:"max_total_size"`
		MinFreeSpace    byteSize      `yaml:"min_free_space"`
	} `yaml:"recordings"`
	Publish struct {
		OnConflict string `yaml:"on_conflict"`
	} `yaml:"publish"`
	Limits struct {
		MaxBodyBytes     int           `yaml:"max_body_bytes"`
		Publishers       int           `yaml:"publishers"`
		ViewersPerStream int           `yaml:"viewers_per_stream"`
		Viewers          int           `yaml:"viewers"`
		SessionsPerIP    int           `yaml:"sessions_per_ip"`
		RequestRate      float64       `yaml:"request_rate"`
		RequestBurst     int           `yaml:"request_burst"`
		ConnectTimeout   time.Duration `yaml:"connect_timeout"`
		IdleTimeout      time.Duration `yaml:"idle_timeout"`
	} `yaml:"limits"`
	Codecs struct {
		Video []string `yaml:"video"`
		Audio []string `yaml:"audio"`
	} `yaml:"codecs"`
	Auth struct {
		PublishTokens []string          `yaml:"publish_tokens"`
		StreamTokens  map[string]string `yaml:"stream_tokens"`
		ReadTokens    []string          `yaml:"read_tokens"`
		AdminTokens   []string          `yaml:"admin_tokens"`
		PublicRead    bool              `yaml:"public_read"`
		JWTHS256      string            `yaml:"jwt_hs256_secret"`
		JWTRS256Key   string            `yaml:"jwt_rs256_public_key"`
	} `yaml:"auth"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	Events struct {
		Webhooks []string `yaml:"webhooks"`
		Secret   string   `yaml:"secret"`
	} `yaml:"events"`
	Debug struct {
		PProf bool `yaml:"pprof"`
	} `yaml:"debug"`
}

// defaultConfig is the SPEC's "one command, nothing to configure".
func defaultConfig() *Config {
	c := &Config{}
	c.HTTP.Addr = ":8080"
	c.RTSP.Enabled = true
	c.RTSP.Addr = ":8554"
	c.RTSP.UDPRTPAddr = ":8000"
	c.RTSP.MulticastRTPPort, c.RTSP.MulticastRTCPPort = 8002, 8003
	c.RTSP.UDPRTCPAddr = ":8001"
	c.HLS.Enabled = true
	c.HLS.IdleTimeout = 30 * time.Second
	c.WebRTC.UDPAddr = ":8189"
	c.Recordings.Enabled = true
	c.Recordings.Dir = "./recordings"
	c.Recordings.MinFreeSpace = 500e6
	c.Publish.OnConflict = "reject"
	lim := api.DefaultLimits()
	c.Limits.MaxBodyBytes, c.Limits.Publishers = int(lim.MaxBodyBytes), lim.Publishers
	c.Limits.ViewersPerStream, c.Limits.Viewers = lim.ViewersPerStream, lim.Viewers
	c.Limits.SessionsPerIP, c.Limits.RequestRate, c.Limits.RequestBurst = lim.SessionsPerIP, lim.RequestRate, lim.RequestBurst
	c.Limits.ConnectTimeout, c.Limits.IdleTimeout = 15*time.Second, ingest.DefaultIdleTimeout
	c.Codecs.Video = []string{"h264", "vp8", "vp9", "av1", "h265"}
	c.Codecs.Audio = []string{"opus"}
	c.Log.Level = "info"
	c.Log.Format = "text"
	return c
}

// option binds one setting to its YAML key (dots for nesting), flag and
// environment variable, which are all derived from the key.
type option struct {
	key   string
	help  string
	value flag.Value
}

func (o option) flagName() string { return strings.NewReplacer(".", "-", "_", "-").Replace(o.key) }
func (o option) envName() string {
	return "REEL_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(o.key))
}

func options(c *Config) []option {
	return []option{
		{"http.addr", "HTTP listen address: WHIP, WHEP, API, HLS, web UI, metrics", (*stringValue)(&c.HTTP.Addr)},
		{"http.tls_cert", "PEM certificate file: serve HTTPS instead of HTTP (with http.tls_key)", (*stringValue)(&c.HTTP.TLSCert)},
		{"http.tls_key", "PEM private key file for http.tls_cert", (*stringValue)(&c.HTTP.TLSKey)},
		{"rtsp.enabled", "serve live streams over RTSP", (*boolValue)(&c.RTSP.Enabled)},
		{"rtsp.addr", "RTSP listen address (TCP)", (*stringValue)(&c.RTSP.Addr)},
		{"rtsp.udp_rtp_addr", "RTSP UDP transport, RTP port (empty: TCP only)", (*stringValue)(&c.RTSP.UDPRTPAddr)},
		{"rtsp.udp_rtcp_addr", "RTSP UDP transport, RTCP port", (*stringValue)(&c.RTSP.UDPRTCPAddr)},
		{"rtsp.tls_cert", "PEM certificate: serve RTSPS (rtsps://) instead of RTSP", (*stringValue)(&c.RTSP.TLSCert)},
		{"rtsp.tls_key", "PEM private key for rtsp.tls_cert", (*stringValue)(&c.RTSP.TLSKey)},
		{"rtsp.multicast_ip_range", "turn on the UDP multicast transport with groups from this range, e.g. 224.1.0.0/16 (empty: off)", (*stringValue)(&c.RTSP.MulticastIPRange)},
		{"rtsp.multicast_rtp_port", "UDP multicast RTP port (even)", (*intValue)(&c.RTSP.MulticastRTPPort)},
		{"rtsp.multicast_rtcp_port", "UDP multicast RTCP port (the RTP port + 1)", (*intValue)(&c.RTSP.MulticastRTCPPort)},
		{"hls.enabled", "serve live streams over HLS at /hls/{stream}/index.m3u8", (*boolValue)(&c.HLS.Enabled)},
		{"hls.idle_timeout", "stop an HLS muxer nobody has requested for this long", (*durationValue)(&c.HLS.IdleTimeout)},
		{"webrtc.udp_addr", "the one UDP address every WebRTC peer shares (ICE UDP mux)", (*stringValue)(&c.WebRTC.UDPAddr)},
		{"webrtc.nat_1to1_ips", "public IPs to advertise when behind NAT/Docker, comma separated", (*listValue)(&c.WebRTC.NAT1To1IPs)},
		{"webrtc.ice_servers", "STUN/TURN URLs offered to clients in Link headers, comma separated", (*listValue)(&c.WebRTC.ICEServers)},
		{"recordings.enabled", "record every live stream", (*boolValue)(&c.Recordings.Enabled)},
		{"recordings.dir", "where recordings are written", (*stringValue)(&c.Recordings.Dir)},
		{"recordings.segment_duration", "cut long recordings into files of about this length, on keyframes, without a gap (0: one file per publication)", (*durationValue)(&c.Recordings.SegmentDuration)},
		{"recordings.max_age", "delete finished recordings older than this, checked every minute, e.g. 720h (0: keep)", (*durationValue)(&c.Recordings.MaxAge)},
		{"recordings.max_total_size", "delete the oldest finished recordings while all take more than this, e.g. 100GB (0: no limit)", (*byteSize)(&c.Recordings.MaxTotalSize)},
		{"recordings.min_free_space", "start no new recording while the disk has less free space than this; live streaming goes on (0: off)", (*byteSize)(&c.Recordings.MinFreeSpace)},
		{"publish.on_conflict", "a second publisher on a live stream: reject (409) or replace the first", (*stringValue)(&c.Publish.OnConflict)},
		{"limits.max_body_bytes", "largest WHIP/WHEP POST or PATCH body (413 beyond; 0: no limit but the SDP's 64 KiB)", (*intValue)(&c.Limits.MaxBodyBytes)},
		{"limits.publishers", "most live publishers in total (503 beyond; 0: no limit)", (*intValue)(&c.Limits.Publishers)},
		{"limits.viewers_per_stream", "most WHEP and RTSP viewers of one stream (503 beyond; 0: no limit)", (*intValue)(&c.Limits.ViewersPerStream)},
		{"limits.viewers", "most WHEP and RTSP viewers in total (503 beyond; 0: no limit)", (*intValue)(&c.Limits.Viewers)},
		{"limits.sessions_per_ip", "most live WHIP, WHEP and RTSP sessions from one address (429 beyond, RTSP 503; 0: no limit)", (*intValue)(&c.Limits.SessionsPerIP)},
		{"limits.request_rate", "POST/PATCH/DELETE requests per second from one address (429 beyond; 0: no limit)", (*floatValue)(&c.Limits.RequestRate)},
		{"limits.request_burst", "requests one address may make at once before request_rate applies", (*intValue)(&c.Limits.RequestBurst)},
		{"limits.connect_timeout", "end a WHIP/WHEP session whose peer has not connected (ICE+DTLS) this long after the answer", (*durationValue)(&c.Limits.ConnectTimeout)},
		{"limits.idle_timeout", "end a connected publisher that sends no media for this long; its recording is finalized (0: never)", (*durationValue)(&c.Limits.IdleTimeout)},
		{"codecs.video", "video codecs WHIP accepts, most preferred first", (*listValue)(&c.Codecs.Video)},
		{"codecs.audio", "audio codecs WHIP accepts, most preferred first", (*listValue)(&c.Codecs.Audio)},
		{"auth.publish_tokens", "bearer tokens that may publish any stream, comma separated (any token turns auth on)", (*listValue)(&c.Auth.PublishTokens)},
		{"auth.stream_tokens", "per-stream publish tokens as stream=token pairs, comma separated", (*mapValue)(&c.Auth.StreamTokens)},
		{"auth.read_tokens", "tokens that may watch (WHEP, HLS, RTSP), comma separated", (*listValue)(&c.Auth.ReadTokens)},
		{"auth.admin_tokens", "tokens that may do everything, including the API's DELETE", (*listValue)(&c.Auth.AdminTokens)},
		{"auth.public_read", "let anyone watch while publishing needs a token", (*boolValue)(&c.Auth.PublicRead)},
		{"auth.jwt_hs256_secret", "accept HS256 JWTs signed with this secret (claims: stream, action, exp)", (*secretValue)(&c.Auth.JWTHS256)},
		{"auth.jwt_rs256_public_key", "accept RS256 JWTs verified with this PEM public key file (claims: stream, action, exp)", (*stringValue)(&c.Auth.JWTRS256Key)},
		{"log.level", "debug, info, warn or error", (*stringValue)(&c.Log.Level)},
		{"log.format", "text or json", (*stringValue)(&c.Log.Format)},
		{"events.webhooks", "URLs that get every event (publish.started, publish.stopped, recording.finished) as a JSON POST, comma separated", (*listValue)(&c.Events.Webhooks)},
		{"events.secret", "key of the X-Reel-Signature HMAC-SHA256 on webhook requests", (*secretValue)(&c.Events.Secret)},
		{"debug.pprof", "serve Go profiles at /debug/pprof/ to admin tokens (needs auth.admin_tokens)", (*boolValue)(&c.Debug.PProf)},
	}
}

// errHelp is returned when the user asked for --help.
var errHelp = errors.New("help requested")

// loadConfig layers the defaults, the YAML file, REEL_* variables and
// flags, each overriding the one before.
func loadConfig(args []string, getenv func(string) string, usageOut io.Writer) (*Config, error) {
	c := defaultConfig()
	path := getenv("REEL_CONFIG")
	if p, ok := configFlag(args); ok {
		path = p
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config file: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parsing config file %s: %w", path, err)
		}
	}
	opts := options(c)
	for _, o := range opts {
		if v := getenv(o.envName()); v != "" {
			if err := o.value.Set(v); err != nil {
				return nil, fmt.Errorf("environment variable %s: %w", o.envName(), err)
			}
		}
	}
	fs := flag.NewFlagSet("reel", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", path, "")
	for _, o := range opts {
		fs.Var(o.value, o.flagName(), o.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(usageOut)
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w (see reel --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see reel --help)", fs.Arg(0))
	}
	return c, nil
}

// configFlag finds --config before the other flags are parsed, because the
// file it names sits below them.
func configFlag(args []string) (string, bool) {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val, true
		}
		if i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Reel: a WebRTC recording and broadcast gateway.

Publishers push WHIP to /whip/{stream}; viewers watch over WHEP (/whep/{stream}),
RTSP (rtsp://host:8554/{stream}) or HLS (/hls/{stream}/index.m3u8); every live
stream is recorded. Everything works with no configuration.

Usage:
  reel [serve] [flags]
  reel help

Every option can be set in a YAML file (--config reel.yaml), by an environment
variable or by a flag; flags win over the environment, which wins over the file.

  --config FILE   YAML configuration file [env REEL_CONFIG]
`)
	opts := options(defaultConfig())
	for _, o := range opts {
		def := o.value.String()
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  --%s\n      %s (default %s)\n      [env %s, yaml %s]\n", o.flagName(), o.help, def, o.envName(), o.key)
	}
}

// flag.Value types for the config fields.
type (
	stringValue   string
	boolValue     bool
	durationValue time.Duration
	listValue     []string
	mapValue      map[string]string
)

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type (
	intValue   int
	floatValue float64
)

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a whole number, 0 or more, got %q", s)
	}
	*v = intValue(n)
	return nil
}
func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return fmt.Errorf("want a number, 0 or more, got %q", s)
	}
	*v = floatValue(f)
	return nil
}
func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }

// byteSize is a size in bytes, written as 10GB, 512MiB or a plain number.
type byteSize uint64

func (v *byteSize) Set(s string) error {
	n, err := recorder.ParseSize(s)
	if err != nil {
		return err
	}
	*v = byteSize(n)
	return nil
}

func (v *byteSize) String() string {
	if *v == 0 {
		return "0"
	}
	return recorder.FormatSize(uint64(*v))
}

// UnmarshalYAML reads a size from the configuration file.
func (v *byteSize) UnmarshalYAML(n *yaml.Node) error { return v.Set(n.Value) }

// secretValue is a string that help never shows.
type secretValue string

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }
func (v *secretValue) String() string {
	if *v == "" {
		return ""
	}
	return "(set)"
}

func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, got %q", s)
	}
	*v = boolValue(b)
	return nil
}
func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 30s, got %q", s)
	}
	*v = durationValue(d)
	return nil
}
func (v *durationValue) String() string { return time.Duration(*v).String() }

func (v *listValue) Set(s string) error {
	*v = nil
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*v = append(*v, item)
		}
	}
	return nil
}
func (v *listValue) String() string { return strings.Join(*v, ",") }

func (v *mapValue) Set(s string) error {
	m := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok || k == "" || val == "" {
			return fmt.Errorf("want stream=token pairs, got %q", pair)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	*v = m
	return nil
}

func (v *mapValue) String() string {
	keys := make([]string, 0, len(*v))
	for k := range *v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Tokens are secrets: help and logs show which streams have one, not
	// the token itself.
	return strings.Join(keys, ",")
}
