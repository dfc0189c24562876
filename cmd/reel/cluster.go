package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/meetings"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/storage"
)

// The optional parts: a cluster (cluster.redis_url) and uploads to S3
// (storage.s3.bucket). Without either setting, none of this runs.

func (g *gateway) buildStorage() error {
	s3 := g.cfg.Storage.S3
	if s3.Bucket == "" {
		if s3.Endpoint != "" {
			return fmt.Errorf("storage.s3.endpoint is set but storage.s3.bucket is not: name the bucket to upload to")
		}
		return nil
	}
	keep := g.cfg.Storage.KeepLocal
	store, err := storage.New(storage.Config{Endpoint: s3.Endpoint, Region: s3.Region, Bucket: s3.Bucket, Prefix: s3.Prefix,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, Dir: g.cfg.Recordings.Dir, KeepLocal: keep,
		Node: nodeID(g.cfg), Logger: g.log, Remove: g.removeUploaded,
		MaxAge: g.cfg.Recordings.MaxAge, MaxTotalSize: uint64(g.cfg.Recordings.MaxTotalSize),
		// Meetings share the bucket: their manifests, holds and audit
		// entries are read at each listing; held ones are kept; what
		// other nodes deleted is applied here. g.meetings is built next,
		// before the store starts.
		Documents: meetings.IsDocument,
		Protect:   func(ctx context.Context, in recorder.Info) string { return g.meetings.ProtectArchived(ctx, in) },
		OnListed:  func() { g.meetings.Reconcile() }})
	if err != nil {
		return err
	}
	g.store = store
	g.onClose("storage", store.Close)
	return nil
}

// upload queues a final recording for S3.
func (g *gateway) upload(in recorder.Info) {
	if g.store == nil {
		return
	}
	if err := g.store.EnqueueRecording(in); err != nil {
		g.log.Error("cannot queue the recording for upload; it stays local", "recording", in.ID, "err", err)
	}
}

// startUploads queues every final recording not uploaded yet (those of
// an earlier run, repaired ones included) and starts the uploads.
func (g *gateway) startUploads() {
	if g.store == nil {
		return
	}
	for _, in := range g.localRecordings() {
		g.upload(in)
	}
	g.store.Start()
}

// removeUploaded removes a recording whose upload was verified, through
// the recorder so its catalog follows.
func (g *gateway) removeUploaded(path string) error {
	base := filepath.Base(path)
	id := strings.TrimSuffix(base, filepath.Ext(base))
	if in, ok := g.rec.Catalog().Get(id); ok && sameFile(in.Path, path) {
		_, err := g.rec.Delete(id)
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	_ = os.Remove(path + ".json")
	return nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func (g *gateway) buildCluster() error {
	c := g.cfg.Cluster
	if c.RedisURL == "" {
		return nil
	}
	scheme := "http"
	if g.cfg.HTTP.TLSCert != "" {
		scheme = "https"
	}
	httpURL, rtspURL := c.HTTPURL, c.RTSPURL
	if httpURL == "" {
		httpURL = advertised(scheme, g.cfg.HTTP.Addr)
	}
	if rtspURL == "" && g.rtsp != nil {
		rs := "rtsp"
		if g.cfg.RTSP.TLSCert != "" {
			rs = "rtsps"
		}
		rtspURL = advertised(rs, g.cfg.RTSP.Addr)
	}
	if g.rtsp == nil {
		rtspURL = "" // nothing to relay from here
	}
	n, err := cluster.New(cluster.Config{RedisURL: c.RedisURL, NodeID: nodeID(g.cfg), HTTPURL: httpURL, RTSPURL: rtspURL,
		WebRTC: g.cfg.WebRTC.UDPAddr, Region: c.Region, Labels: c.Labels, TTL: c.TTL, Route: cluster.Route(c.Route),
		Edge: c.Edge, RelayIdle: c.RelayIdle, Token: c.Token, Snapshot: g.snapshot, Logger: g.log}, g.hub)
	if err != nil {
		return err
	}
	g.node = n
	g.onClose("cluster", n.Close)
	if g.store == nil {
		// Without S3, the registry says which node holds a recording.
		var ids []string
		for _, in := range g.localRecordings() {
			ids = append(ids, in.ID)
		}
		go n.RegisterRecordings(ids...)
		go n.RegisterMeetings(g.meetings.Local()...)
	}
	return nil
}

// meetingStarted tells the cluster (without S3) that this node holds a
// new meeting occurrence.
func (g *gateway) meetingStarted(id string) {
	if g.node != nil && g.store == nil {
		go g.node.RegisterMeetings(id)
	}
}

// meetingArchive is the bucket as the meetings' shared archive.
type meetingArchive struct{ *storage.Store }

func (a meetingArchive) Upload(path string) error { return a.EnqueueKept(path) }

func (a meetingArchive) Open(ctx context.Context, path string) (io.ReadSeekCloser, error) {
	obj, _, err := a.OpenFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// registerRecording tells the cluster (without S3) that this node holds a
// new recording.
func (g *gateway) registerRecording(in recorder.Info) {
	if g.node != nil && g.store == nil {
		go g.node.RegisterRecordings(in.ID)
	}
}

// localRecordings are every recording of this node's catalog.
func (g *gateway) localRecordings() []recorder.Info {
	var out []recorder.Info
	for q := (recorder.Query{Limit: recorder.MaxLimit}); ; {
		page, err := g.rec.Catalog().List(q)
		if err != nil {
			return out
		}
		out = append(out, page.Recordings...)
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

// snapshot is this node's load and own streams, for the registry.
func (g *gateway) snapshot() (cluster.Load, []live.StreamInfo) {
	var l cluster.Load
	var out []live.StreamInfo
	// A node that would refuse a new session for its load places new
	// streams on the others.
	l.Overloaded = g.gate != nil && g.gate.Overloaded() != ""
	for _, s := range g.hub.Streams() {
		info := s.Info()
		if g.rtsp != nil {
			info.Viewers["rtsp"] = g.rtsp.Readers(s.Name)
		}
		if g.hls != nil {
			info.Viewers["hls"] = g.hls.Viewers(s.Name)
		}
		l.Viewers += info.Viewers["whep"] + info.Viewers["rtsp"]
		if s.Relayed() {
			continue
		}
		l.Publishers++
		info.Session, info.Remote = "", ""
		out = append(out, info)
	}
	return l, out
}

// nodeID is cluster.node_id, or the host name and HTTP port.
func nodeID(cfg *Config) string {
	if cfg.Cluster.NodeID != "" {
		return cfg.Cluster.NodeID
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "reel"
	}
	_, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil || port == "" {
		port = "8080"
	}
	return host + "-" + port
}

// advertised is the URL others reach addr at: its host, or when it
// listens on every address, the first non-loopback IPv4 address.
func advertised(scheme, addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = firstIPv4()
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

func firstIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return "127.0.0.1"
}
