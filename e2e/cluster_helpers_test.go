package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The cluster tests run, on loopback: a Redis (Debian's redis-server), an
// S3 server (SeaweedFS's weed, built by drivers/build_weed.sh) and three
// reel processes, each on ports of its own.

// weedVersion is the SeaweedFS build drivers/build_weed.sh makes.
const weedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// clusterTTL keeps the tests short: a dead node leaves the registry
// within it.
const clusterTTL = 3 * time.Second

// service is an outside server the test runs and may stop and start.
type service struct {
	t    testing.TB
	name string
	argv []string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func (s *service) start(ready func() bool) { s.startWithin(30*time.Second, ready) }

// startWithin is start for a server that may take up to limit to be ready.
func (s *service) startWithin(limit time.Duration, ready func() bool) {
	s.t.Helper()
	s.cmd = exec.Command(s.argv[0], s.argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", s.name, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	started := time.Now()
	deadline := started.Add(limit)
	for !ready() {
		select {
		case <-s.done:
			s.t.Fatalf("%s exited at start; its log: %s", s.name, s.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s not ready within %v; its log: %s", s.name, limit, s.log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Logf("%s ready in %v", s.name, time.Since(started).Round(time.Millisecond))
}

// stop kills the server (SIGKILL: an outage, not a shutdown) and waits.
func (s *service) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("%s did not exit within 10 s of SIGKILL", s.name)
	}
	s.cmd = nil
}

func newService(t testing.TB, name string, argv ...string) *service {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &service{t: t, name: name, argv: argv, log: log}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s log (tail):\n%s", name, tail(string(b), 30))
		}
	})
	return s
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// redisServer is Debian's redis-server on a free loopback port, without
// persistence (restarting it is Redis coming back empty).
type redisServer struct {
	*service
	URL  string
	port int
}

func startRedis(t testing.TB) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		cannotRun(t, "redis-server is not installed")
	}
	port := freePort(t, "tcp")
	r := &redisServer{port: port, URL: fmt.Sprintf("redis://127.0.0.1:%d", port)}
	r.service = newService(t, "redis", bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	r.start()
	return r
}

func (r *redisServer) start() {
	r.service.start(func() bool { return tcpUp(r.port) })
}

// weedServer is SeaweedFS (master, volume, filer and S3 gateway in one
// process) on free loopback ports, keeping its data across a restart.
type weedServer struct {
	*service
	URL    string
	s3Port int
	probed bool // the probe object was written at the first start
}

func weedBinary() string {
	if p := os.Getenv("REEL_WEED"); p != "" {
		return p
	}
	cache := os.Getenv("REEL_CI_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "reel-ci")
	}
	return filepath.Join(cache, "weed-"+weedVersion, "weed")
}

func startWeed(t *testing.T) *weedServer {
	t.Helper()
	bin := weedBinary()
	if _, err := os.Stat(bin); err != nil {
		cannotRun(t, "SeaweedFS is not built at %s (run e2e/drivers/build_weed.sh)", bin)
	}
	dir := t.TempDir()
	port := func() string { return strconv.Itoa(freePort(t, "tcp")) }
	w := &weedServer{}
	w.s3Port, _ = strconv.Atoi(port())
	w.URL = fmt.Sprintf("http://127.0.0.1:%d", w.s3Port)
	w.service = newService(t, "seaweedfs", bin, "server", "-dir="+dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port="+port(), "-master.port.grpc="+port(), "-volume.port="+port(), "-volume.port.grpc="+port(),
		"-filer", "-filer.port="+port(), "-filer.port.grpc="+port(),
		"-s3", "-s3.port="+strconv.Itoa(w.s3Port), "-s3.port.grpc="+port(), "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-master.volumeSizeLimitMB=64", "-volume.max=16", "-metricsPort=0")
	w.start()
	return w
}

// start runs weed and waits until its S3 gateway serves objects, not only
// bucket metadata: a probe object written at the first start must read
// back (after a restart that is data written before the outage, which
// needs the volume server registered with the master again), and a new
// one must write and read back. A bucket PUT alone answers seconds before
// reads do, and a test that restarted S3 then met reads timing out. Here
// weed is ready ~10 s after its first start and ~30 s after a restart
// (its master's state is resumed first), so it is given 90 s.
func (w *weedServer) start() {
	client := &http.Client{Timeout: 2 * time.Second}
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, w.URL+path, strings.NewReader(body))
		res, err := client.Do(req)
		if err != nil {
			return 0, ""
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	bucket := "/probe-" + strconv.Itoa(w.s3Port)
	w.service.startWithin(90*time.Second, func() bool {
		if code, _ := do(http.MethodPut, bucket, ""); code != http.StatusOK && code != http.StatusConflict {
			return false
		}
		name := "/first"
		if w.probed {
			if code, body := do(http.MethodGet, bucket+"/first", ""); code != http.StatusOK || body != "first" {
				return false
			}
			name = "/again"
		}
		if code, _ := do(http.MethodPut, bucket+name, name[1:]); code != http.StatusOK {
			return false
		}
		code, body := do(http.MethodGet, bucket+name, "")
		return code == http.StatusOK && body == name[1:]
	})
	w.probed = true
}

func tcpUp(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// node is one reel of the cluster.
type node struct {
	*gateway
	ID       string
	httpPort int
	args     []string
}

// startNode runs a reel that joins the cluster on redisURL, with uploads to
// s3URL when set, and the fixed HTTP port the registry advertises. extra
// are more flags.
func startNode(t *testing.T, id, redisURL, s3URL string, extra ...string) *node {
	t.Helper()
	// A free port found here may be taken by another process before reel
	// binds it (other tests run beside these): then try other ports.
	for attempt := 1; ; attempt++ {
		n := &node{ID: id, httpPort: freePort(t, "tcp")}
		n.args = append([]string{"--http-addr", fmt.Sprintf("127.0.0.1:%d", n.httpPort),
			"--cluster-redis-url", redisURL, "--cluster-node-id", id, "--cluster-ttl", clusterTTL.String(),
			"--limits-sessions-per-ip", "0", "--limits-pending-per-ip", "0", "--limits-request-rate", "0"}, extra...)
		if s3URL != "" {
			n.args = append(n.args, "--storage-s3-endpoint", s3URL, "--storage-s3-bucket", "reel-archive",
				"--storage-s3-access-key", "reel", "--storage-s3-secret-key", "reel-secret")
		}
		g, err := tryGateway(t, nil, n.args...)
		if err == nil {
			n.gateway = g
			return n
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("node %s: a port was taken meanwhile; trying other ports", id)
	}
}

// restart runs the node again after it died, with its recordings.
func (n *node) restart(t *testing.T) {
	t.Helper()
	dir := n.Recordings
	rtsp := n.RTSPPort
	n.gateway = startGateway(t, nil, append(n.args, "--recordings-dir", dir,
		"--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", rtsp))...)
	n.Recordings, n.RTSPPort = dir, rtsp
}

// clusterStream is an entry of the streams API in a cluster.
type clusterStream struct {
	Name     string `json:"name"`
	Node     string `json:"node"`
	Protocol string `json:"protocol"`
	Tracks   []struct {
		Codec string `json:"codec"`
	} `json:"tracks"`
}

func listStreams(t *testing.T, base string) (streams []clusterStream, node string) {
	t.Helper()
	var body struct {
		Streams []clusterStream `json:"streams"`
		Node    string          `json:"node"`
	}
	getJSON(t, base+"/api/v1/streams", &body)
	return body.Streams, body.Node
}

// streamNode is the node the streams API of base names for stream, "".
func streamNode(t *testing.T, base, stream string) string {
	t.Helper()
	streams, _ := listStreams(t, base)
	for _, s := range streams {
		if s.Name == stream {
			return s.Node
		}
	}
	return ""
}

// metric reads one unlabelled value from base's /metrics, -1 if absent.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return -1
}

// noRedirect is an HTTP client that shows redirects instead of following.
var noRedirect = &http.Client{Timeout: 20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// decodeJSON reads a response body as JSON into v.
func decodeJSON(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", res.Request.URL, err)
	}
}
