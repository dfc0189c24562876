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

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/api"
	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/egress/hls"
	"github.com/reel-gateway/reel/egress/rtsp"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/ingest"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/rtc"
	"github.com/reel-gateway/reel/storage"
)

// Config is everything an operator can set. Each field is reachable as a
// YAML key, a REEL_* environment variable and a flag; see options.
type Config struct {
	HTTP struct {
		Addr           string        `yaml:"addr"`
		TLSCert        string        `yaml:"tls_cert"`
		TLSKey         string        `yaml:"tls_key"`
		TrustedProxies []string      `yaml:"trusted_proxies"`
		ReadTimeout    time.Duration `yaml:"read_timeout"`
		WriteTimeout   time.Duration `yaml:"write_timeout"`
		IdleTimeout    time.Duration `yaml:"idle_timeout"`
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
		// LatencyBudget: 0 turns shedding off.
		LatencyBudget time.Duration `yaml:"latency_budget"`
	} `yaml:"webrtc"`
	Recordings struct {
		Enabled         bool          `yaml:"enabled"`
		Dir             string        `yaml:"dir"`
		SegmentDuration time.Duration `yaml:"segment_duration"`
		MaxAge          time.Duration `yaml:"max_age"`
		MaxTotalSize    byteSize      `yaml:"max_total_size"`
		MinFreeSpace    byteSize      `yaml:"min_free_space"`
		CheckInterval   time.Duration `yaml:"check_interval"`
	} `yaml:"recordings"`
	Meetings struct {
		Grace time.Duration `yaml:"grace"`
	} `yaml:"meetings"`
	Exports struct {
		Concurrency int    `yaml:"concurrency"`
		FFmpeg      string `yaml:"ffmpeg"`
		Threads     int    `yaml:"threads"`
		Nice        int    `yaml:"nice"`
		Font        string `yaml:"font"`
		Composite   struct {
			Width  int `yaml:"width"`
			Height int `yaml:"height"`
			FPS    int `yaml:"fps"`
		} `yaml:"composite"`
	} `yaml:"exports"`
	Publish struct {
		OnConflict      string `yaml:"on_conflict"`
		SimulcastLayers int    `yaml:"simulcast_layers"`
	} `yaml:"publish"`
	Limits struct {
		MaxBodyBytes      int           `yaml:"max_body_bytes"`
		Publishers        int           `yaml:"publishers"`
		ViewersPerStream  int           `yaml:"viewers_per_stream"`
		Viewers           int           `yaml:"viewers"`
		SessionsPerIP     int           `yaml:"sessions_per_ip"`
		PendingPerIP      int           `yaml:"pending_per_ip"`
		PendingPublishers autoCount     `yaml:"pending_publishers"`
		RequestRate       float64       `yaml:"request_rate"`
		RequestBurst      int           `yaml:"request_burst"`
		AuthFailures      int           `yaml:"auth_failures"`
		AuthFailureRefill time.Duration `yaml:"auth_failure_refill"`
		ICECandidates     int           `yaml:"ice_candidates"`
		ConnectTimeout    time.Duration `yaml:"connect_timeout"`
		IdleTimeout       time.Duration `yaml:"idle_timeout"`
		MaxSchedLag       time.Duration `yaml:"max_sched_lag"`
		MaxInputLag       time.Duration `yaml:"max_input_lag"`
	} `yaml:"limits"`
	Codecs struct {
		Video  []string `yaml:"video"`
		Audio  []string `yaml:"audio"`
		Prefer string   `yaml:"prefer"`
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
	Metrics struct {
		Public bool `yaml:"public"`
	} `yaml:"metrics"`
	Debug struct {
		PProf bool `yaml:"pprof"`
	} `yaml:"debug"`
	// Cluster is off while RedisURL is empty.
	Cluster struct {
		RedisURL  string            `yaml:"redis_url"`
		NodeID    string            `yaml:"node_id"`
		HTTPURL   string            `yaml:"http_url"`
		RTSPURL   string            `yaml:"rtsp_url"`
		Region    string            `yaml:"region"`
		Labels    map[string]string `yaml:"labels"`
		TTL       time.Duration     `yaml:"ttl"`
		Route     string            `yaml:"route"`
		Edge      bool              `yaml:"edge"`
		RelayIdle time.Duration     `yaml:"relay_idle"`
		Token     string            `yaml:"token"`
	} `yaml:"cluster"`
	// Storage uploads finished files to S3 while S3.Bucket is set.
	Storage struct {
		S3 struct {
			Endpoint  string `yaml:"endpoint"`
			Region    string `yaml:"region"`
			Bucket    string `yaml:"bucket"`
			Prefix    string `yaml:"prefix"`
			AccessKey string `yaml:"access_key"`
			SecretKey string `yaml:"secret_key"`
		} `yaml:"s3"`
		KeepLocal time.Duration `yaml:"keep_local"`
		Redirect  bool          `yaml:"redirect"`
	} `yaml:"storage"`
}

// defaultConfig is "one command, nothing to configure": every default is
// the package's own (the README's Configuration table lists them).
func defaultConfig() *Config {
	c := &Config{}
	c.HTTP.Addr = api.DefaultAddr
	c.HTTP.ReadTimeout, c.HTTP.WriteTimeout, c.HTTP.IdleTimeout = api.DefaultReadTimeout, api.DefaultWriteTimeout, api.DefaultIdleTimeout
	c.RTSP.Enabled = true
	c.RTSP.Addr = rtsp.DefaultAddr
	c.RTSP.UDPRTPAddr, c.RTSP.UDPRTCPAddr = rtsp.DefaultUDPRTPAddr, rtsp.DefaultUDPRTCPAddr
	c.RTSP.MulticastRTPPort, c.RTSP.MulticastRTCPPort = rtsp.DefaultMulticastRTPPort, rtsp.DefaultMulticastRTCPPort
	c.HLS.Enabled = true
	c.HLS.IdleTimeout = hls.DefaultIdleTimeout
	c.WebRTC.UDPAddr = rtc.DefaultUDPAddr
	c.WebRTC.LatencyBudget = whep.DefaultLatencyBudget
	c.Recordings.Enabled = true
	c.Recordings.Dir = recorder.DefaultDir
	c.Recordings.MinFreeSpace = recorder.DefaultMinFreeSpace
	c.Recordings.CheckInterval = recorder.DefaultCheckInterval
	c.Publish.OnConflict = string(live.DefaultConflictPolicy)
	c.Publish.SimulcastLayers = live.DefaultSimulcastLayers
	c.Meetings.Grace = meetings.DefaultGrace
	c.Exports.Concurrency, c.Exports.FFmpeg, c.Exports.Threads, c.Exports.Nice = 1, "ffmpeg", 1, 10
	c.Exports.Composite.Width, c.Exports.Composite.Height, c.Exports.Composite.FPS = exports.DefaultWidth, exports.DefaultHeight, exports.DefaultFPS
	lim := access.DefaultLimits()
	c.Limits.MaxBodyBytes, c.Limits.Publishers = int(lim.MaxBodyBytes), lim.Publishers
	c.Limits.ViewersPerStream, c.Limits.Viewers = lim.ViewersPerStream, lim.Viewers
	c.Limits.SessionsPerIP, c.Limits.RequestRate, c.Limits.RequestBurst = lim.SessionsPerIP, lim.RequestRate, lim.RequestBurst
	c.Limits.PendingPerIP, c.Limits.PendingPublishers = lim.PendingPerIP, autoCount(-1)
	c.Limits.AuthFailures, c.Limits.AuthFailureRefill = lim.AuthFailures, lim.AuthFailureRefill
	c.Limits.ICECandidates = rtc.DefaultMaxCandidates
	c.Limits.ConnectTimeout, c.Limits.IdleTimeout = rtc.DefaultConnectTimeout, ingest.DefaultIdleTimeout
	c.Limits.MaxSchedLag, c.Limits.MaxInputLag = lim.MaxSchedLag, lim.MaxInputLag
	c.Codecs.Video = codecNames(live.DefaultVideoPreference)
	c.Codecs.Audio = codecNames(live.DefaultAudioPreference)
	c.Codecs.Prefer = rtc.PreferOffer
	c.Log.Level = "info"
	c.Log.Format = "text"
	c.Cluster.TTL, c.Cluster.RelayIdle = cluster.DefaultTTL, cluster.DefaultRelayIdle
	c.Cluster.Route, c.Cluster.Edge = string(cluster.Redirect), true
	c.Storage.KeepLocal = storage.DefaultKeepLocal
	return c
}

// codecNames spells codecs as the configuration does ("h264").
func codecNames(cs []live.Codec) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = strings.ToLower(string(c))
	}
	return out
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
		{"http.trusted_proxies", "reverse proxies (CIDRs or addresses, comma separated) whose X-Forwarded-For gives the client's address; none: the TCP peer is the client", (*listValue)(&c.HTTP.TrustedProxies)},
		{"http.read_timeout", "longest time to read a whole request, body included (its headers within 10s)", (*durationValue)(&c.HTTP.ReadTimeout)},
		{"http.write_timeout", "longest time to answer a request; recording downloads and HLS extend it as they go", (*durationValue)(&c.HTTP.WriteTimeout)},
		{"http.idle_timeout", "close a keep-alive connection idle this long", (*durationValue)(&c.HTTP.IdleTimeout)},
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
		{"webrtc.latency_budget", "most media queued for one WHEP viewer: beyond it the oldest is shed for that viewer alone and a keyframe asked for (0: never shed)", (*durationValue)(&c.WebRTC.LatencyBudget)},
		{"recordings.enabled", "record every live stream", (*boolValue)(&c.Recordings.Enabled)},
		{"recordings.dir", "where recordings are written", (*stringValue)(&c.Recordings.Dir)},
		{"recordings.segment_duration", "cut long recordings into files of about this length, on keyframes, without a gap (0: one file per publication)", (*durationValue)(&c.Recordings.SegmentDuration)},
		{"recordings.max_age", "delete finished recordings older than this, checked every check_interval, e.g. 720h (0: keep)", (*durationValue)(&c.Recordings.MaxAge)},
		{"recordings.max_total_size", "delete the oldest finished recordings while all take more than this, e.g. 100GB (0: no limit)", (*byteSize)(&c.Recordings.MaxTotalSize)},
		{"recordings.min_free_space", "start no new recording while the disk has less free space than this; live streaming goes on (0: off)", (*byteSize)(&c.Recordings.MinFreeSpace)},
		{"recordings.check_interval", "how often retention (max_age, max_total_size) and the free-space guard run", (*durationValue)(&c.Recordings.CheckInterval)},
		{"meetings.grace", "a meeting occurrence ends this long after its last participant left, unless someone returns", (*durationValue)(&c.Meetings.Grace)},
		{"exports.concurrency", "meeting exports that run at once; the others wait in order", (*intValue)(&c.Exports.Concurrency)},
		{"exports.ffmpeg", "the ffmpeg binary for composite and audio exports (the multitrack export needs none)", (*stringValue)(&c.Exports.FFmpeg)},
		{"exports.threads", "most threads ffmpeg may use for an export", (*intValue)(&c.Exports.Threads)},
		{"exports.nice", "CPU priority (nice) of an export's ffmpeg, so live media keeps the CPU (0: none)", (*intValue)(&c.Exports.Nice)},
		{"exports.font", "font file for the participants' names in composite exports (default: DejaVu Sans or another sans font found)", (*stringValue)(&c.Exports.Font)},
		{"exports.composite.width", "composite export width (even)", (*intValue)(&c.Exports.Composite.Width)},
		{"exports.composite.height", "composite export height (even)", (*intValue)(&c.Exports.Composite.Height)},
		{"exports.composite.fps", "composite export frame rate", (*intValue)(&c.Exports.Composite.FPS)},
		{"publish.on_conflict", "a second publisher on a live stream: reject (409) or replace the first", (*stringValue)(&c.Publish.OnConflict)},
		{"publish.simulcast_layers", "most simulcast layers (rids) taken from a publisher, 1 to 8; the answer drops the others", (*intValue)(&c.Publish.SimulcastLayers)},
		{"limits.max_body_bytes", "largest WHIP/WHEP POST or PATCH body (413 beyond; 0: no limit but the SDP's 64 KiB)", (*intValue)(&c.Limits.MaxBodyBytes)},
		{"limits.publishers", "most live publishers in total (503 beyond; 0: no limit)", (*intValue)(&c.Limits.Publishers)},
		{"limits.viewers_per_stream", "most WHEP and RTSP viewers of one stream (503 beyond; 0: no limit)", (*intValue)(&c.Limits.ViewersPerStream)},
		{"limits.viewers", "most WHEP and RTSP viewers in total (503 beyond; 0: no limit)", (*intValue)(&c.Limits.Viewers)},
		{"limits.sessions_per_ip", "most live WHIP, WHEP and RTSP sessions from one address (429 beyond, RTSP 503; 0: no limit)", (*intValue)(&c.Limits.SessionsPerIP)},
		{"limits.pending_per_ip", "most publishers (WHIP) from one address that were answered but have not connected yet (429 beyond; 0: no limit)", (*intValue)(&c.Limits.PendingPerIP)},
		{"limits.pending_publishers", "most publishers in total that were answered but have not connected yet (503 beyond; auto: 10% of limits.publishers, at least 10; 0: no limit)", &c.Limits.PendingPublishers},
		{"limits.request_rate", "POST/PATCH/DELETE requests per second from one address (429 beyond; 0: no limit)", (*floatValue)(&c.Limits.RequestRate)},
		{"limits.request_burst", "requests one address may make at once before request_rate applies", (*intValue)(&c.Limits.RequestBurst)},
		{"limits.auth_failures", "wrong tokens one address may send before its requests with a token are refused (HTTP 429, RTSP 503; 0: no limit)", (*intValue)(&c.Limits.AuthFailures)},
		{"limits.auth_failure_refill", "one more wrong token is allowed this often after limits.auth_failures", (*durationValue)(&c.Limits.AuthFailureRefill)},
		{"limits.ice_candidates", "most remote ICE candidates per WHIP/WHEP session, the offer's and trickled ones (422 beyond; 0: no limit)", (*intValue)(&c.Limits.ICECandidates)},
		{"limits.connect_timeout", "end a WHIP/WHEP session whose peer has not connected (ICE+DTLS) this long after the answer", (*durationValue)(&c.Limits.ConnectTimeout)},
		{"limits.idle_timeout", "end a connected publisher that sends no media for this long; its recording is finalized (0: never)", (*durationValue)(&c.Limits.IdleTimeout)},
		{"limits.max_sched_lag", "refuse new sessions (503) while the gateway's goroutines wait longer than this for a CPU, 99th percentile over 2 s (0: never)", (*durationValue)(&c.Limits.MaxSchedLag)},
		{"limits.max_input_lag", "refuse new sessions (503) while the gateway is behind its publishers' media: their packets waiting longer than this in its WebRTC socket, or the socket dropping or half full (0: never)", (*durationValue)(&c.Limits.MaxInputLag)},
		{"codecs.video", "video codecs WHIP accepts (an allow-list; its order counts with codecs.prefer server)", (*listValue)(&c.Codecs.Video)},
		{"codecs.audio", "audio codecs WHIP accepts (an allow-list; its order counts with codecs.prefer server)", (*listValue)(&c.Codecs.Audio)},
		{"codecs.prefer", "whose order picks the codec: offer (the publisher's, RFC 3264) or server (codecs.video/audio)", (*stringValue)(&c.Codecs.Prefer)},
		{"auth.publish_tokens", "bearer tokens that may publish any stream, comma separated (any token turns auth on)", (*listValue)(&c.Auth.PublishTokens)},
		{"auth.stream_tokens", "per-stream publish tokens as stream=token pairs, comma separated", (*mapValue)(&c.Auth.StreamTokens)},
		{"auth.read_tokens", "tokens that may watch (WHEP, HLS, RTSP), comma separated", (*listValue)(&c.Auth.ReadTokens)},
		{"auth.admin_tokens", "tokens that may do everything, including the API's DELETE", (*listValue)(&c.Auth.AdminTokens)},
		{"auth.public_read", "let anyone watch, and read the streams API, while publishing needs a token", (*boolValue)(&c.Auth.PublicRead)},
		{"auth.jwt_hs256_secret", "accept HS256 JWTs signed with this secret (claims: stream, action, exp)", (*secretValue)(&c.Auth.JWTHS256)},
		{"auth.jwt_rs256_public_key", "accept RS256 JWTs verified with this PEM public key file (claims: stream, action, exp)", (*stringValue)(&c.Auth.JWTRS256Key)},
		{"log.level", "debug, info, warn or error", (*stringValue)(&c.Log.Level)},
		{"log.format", "text or json", (*stringValue)(&c.Log.Format)},
		{"events.webhooks", "URLs that get every event (publish.started, publish.stopped, recording.finished, meeting.started, meeting.ended, export.finished, export.failed) as a JSON POST, comma separated", (*listValue)(&c.Events.Webhooks)},
		{"events.secret", "key of the X-Reel-Signature HMAC-SHA256 (t=<unix time>,v1=<HMAC of \"<t>.<body>\">) on webhook requests", (*secretValue)(&c.Events.Secret)},
		{"metrics.public", "let anyone read /metrics while auth is on (default: a read token is needed)", (*boolValue)(&c.Metrics.Public)},
		{"debug.pprof", "serve Go profiles at /debug/pprof/ to admin tokens (needs auth.admin_tokens)", (*boolValue)(&c.Debug.PProf)},
		{"cluster.redis_url", "join a cluster through this Redis (redis://[:password@]host:6379[/db]); empty: a single node", (*secretValue)(&c.Cluster.RedisURL)},
		{"cluster.node_id", "this node's name in the cluster (default: host name and HTTP port)", (*stringValue)(&c.Cluster.NodeID)},
		{"cluster.http_url", "this node's base URL as clients and other nodes reach it; redirects point there (default: http://<first non-loopback IPv4>:<HTTP port>)", (*stringValue)(&c.Cluster.HTTPURL)},
		{"cluster.rtsp_url", "this node's RTSP base URL as other nodes reach it, for relays (default like cluster.http_url)", (*stringValue)(&c.Cluster.RTSPURL)},
		{"cluster.region", "this node's region, shown in the registry", (*stringValue)(&c.Cluster.Region)},
		{"cluster.labels", "this node's labels as key=value pairs, comma separated, shown in the registry", (*mapValue)(&c.Cluster.Labels)},
		{"cluster.ttl", "a dead node's keys and streams leave the registry after this; renewed every third of it", (*durationValue)(&c.Cluster.TTL)},
		{"cluster.route", "a WHIP POST for a stream another node owns: redirect (307) or proxy (forward the SDP exchange)", (*stringValue)(&c.Cluster.Route)},
		{"cluster.edge", "serve WHEP, RTSP and HLS viewers of streams owned elsewhere through a relay (false: WHEP answers 307 to the owner)", (*boolValue)(&c.Cluster.Edge)},
		{"cluster.relay_idle", "close a relay nobody has watched for this long", (*durationValue)(&c.Cluster.RelayIdle)},
		{"cluster.token", "the credential nodes present to each other for relays when auth is on; every node accepts it as a read token", (*secretValue)(&c.Cluster.Token)},
		{"storage.s3.endpoint", "S3-compatible endpoint URL (https://s3.eu-west-1.amazonaws.com, http://127.0.0.1:8333); empty with a bucket: AWS", (*stringValue)(&c.Storage.S3.Endpoint)},
		{"storage.s3.region", "S3 region (default: AWS_REGION, else us-east-1)", (*stringValue)(&c.Storage.S3.Region)},
		{"storage.s3.bucket", "upload finished recordings to this bucket; empty: no upload", (*stringValue)(&c.Storage.S3.Bucket)},
		{"storage.s3.prefix", "key prefix in the bucket, e.g. reel/", (*stringValue)(&c.Storage.S3.Prefix)},
		{"storage.s3.access_key", "S3 access key (default: AWS_ACCESS_KEY_ID)", (*stringValue)(&c.Storage.S3.AccessKey)},
		{"storage.s3.secret_key", "S3 secret key (default: AWS_SECRET_ACCESS_KEY)", (*secretValue)(&c.Storage.S3.SecretKey)},
		{"storage.keep_local", "keep the local copy this long after its upload was verified (0: remove it then; negative: keep it)", (*durationValue)(&c.Storage.KeepLocal)},
		{"storage.redirect", "recording downloads of uploaded files answer 302 to a short-lived presigned URL instead of streaming through the node", (*boolValue)(&c.Storage.Redirect)},
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

// autoCount is a count that may be left to be derived ("auto", -1).
type autoCount int

func (v *autoCount) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*v = -1
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want auto or a whole number, 0 or more, got %q", s)
	}
	*v = autoCount(n)
	return nil
}

func (v *autoCount) String() string {
	if *v < 0 {
		return "auto"
	}
	return strconv.Itoa(int(*v))
}

// UnmarshalYAML reads auto or a number from the configuration file.
func (v *autoCount) UnmarshalYAML(n *yaml.Node) error { return v.Set(n.Value) }

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
