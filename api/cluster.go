package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/cluster"
	"github.com/reel-gateway/reel/live"
)

// routeCluster sends a WHIP or WHEP POST that another node of the cluster
// serves to that node: a 307 to the same URL there (RFC 9725 §4.5), or,
// with cluster.route: proxy, the request forwarded to it. It decides from
// the path alone, before the offer is read, and reports whether it
// answered the request. On a single node it does nothing.
func (s *Server) routeCluster(c echo.Context, prefix, name string) (bool, error) {
	n := s.deps.Cluster
	if n == nil {
		return false, nil
	}
	r := c.Request()
	locate := n.LocatePublish
	if prefix == "/whep" {
		locate = n.LocatePlay
	}
	d, err := locate(r.Context(), name, r.URL)
	if err != nil {
		return true, s.clusterUnavailable(c, err)
	}
	if d.Local {
		return false, nil
	}
	if d.Proxy {
		s.proxyTo(c, d.Target)
		return true, nil
	}
	s.cfg.Logger.Info("redirected to the owner", "stream", name, "to", d.Node, "protocol", strings.TrimPrefix(prefix, "/"),
		"peer", s.gate.ClientIP(r))
	c.Response().Header().Set("Location", d.Target.String())
	return true, c.NoContent(http.StatusTemporaryRedirect)
}

// clusterUnavailable answers 503: the registry cannot say where the
// stream goes.
func (s *Server) clusterUnavailable(c echo.Context, err error) error {
	retry := int(math.Ceil(s.deps.Cluster.TTL().Seconds()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(retry, 1)))
	var unknown *cluster.OwnerUnknownError
	switch {
	case errors.As(err, &unknown):
		return writeProblem(c, http.StatusServiceUnavailable, unknown.Error()+"; try again then")
	case errors.Is(err, cluster.ErrUnavailable):
		s.cfg.Logger.Warn("cluster placement refused: Redis is unreachable", "path", c.Request().URL.Path, "err", err)
		return writeProblem(c, http.StatusServiceUnavailable, "the cluster registry is unreachable, so this node cannot tell which node serves this stream; "+
			"streams already live go on; try again in a few seconds")
	}
	s.cfg.Logger.Error("cluster placement failed", "path", c.Request().URL.Path, "err", err)
	return writeProblem(c, http.StatusServiceUnavailable, "this node cannot place the stream in the cluster; see its log")
}

// proxyTo forwards the request to the same path on another node and
// relays its answer (cluster.route: proxy). The session URL the owner
// returns is made this node's, so PATCH and DELETE come here too and are
// forwarded (proxySession).
func (s *Server) proxyTo(c echo.Context, target *url.URL) {
	base := *target
	base.Path, base.RawPath, base.RawQuery = "", "", ""
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.SetXForwarded()
			// This node checked the request's origin (sameOrigin); to the
			// owner it comes from this node.
			pr.Out.Header.Del("Origin")
			pr.Out.Header.Del("Sec-Fetch-Site")
		},
		ModifyResponse: func(res *http.Response) error {
			// This node's CORS headers stand; the owner's would repeat them.
			for k := range res.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					res.Header.Del(k)
				}
			}
			if loc := res.Header.Get("Location"); strings.HasPrefix(loc, base.String()+"/") {
				res.Header.Set("Location", s.absoluteURL(strings.TrimPrefix(loc, base.String())))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.cfg.Logger.Warn("proxying to the owner failed", "to", target.Host, "err", err)
			w.Header().Set("Retry-After", "2")
			_ = writeProblem(c, http.StatusBadGateway, fmt.Sprintf("the node that owns this stream (%s) did not answer; try again", target.Host))
		},
	}
	p.ServeHTTP(c.Response(), c.Request())
}

// proxySession forwards a PATCH or DELETE of a session this node does not
// hold to the stream's owner, when sessions were proxied there. It
// reports whether it answered.
func (s *Server) proxySession(c echo.Context, stream string) bool {
	n := s.deps.Cluster
	if n == nil || n.RouteMode() != cluster.Proxy {
		return false
	}
	owner, err := n.Owner(c.Request().Context(), stream)
	if err != nil || owner == "" || owner == n.ID() {
		return false
	}
	ni := n.NodeByID(owner)
	if ni == nil {
		return false
	}
	target, err := url.Parse(ni.HTTPURL + c.Request().URL.EscapedPath())
	if err != nil {
		return false
	}
	target.RawQuery = c.Request().URL.RawQuery
	s.proxyTo(c, target)
	return true
}

// absoluteURL is path on this node: absolute in a cluster, whose clients
// may have been redirected here from another node; relative alone.
func (s *Server) absoluteURL(path string) string {
	if s.deps.Cluster == nil {
		return path
	}
	return s.deps.Cluster.HTTPURL() + path
}

// clusterStream is a live stream as the streams API shows it in a
// cluster: with the node that publishes it.
type clusterStream struct {
	live.StreamInfo
	Node string `json:"node"`
}

// remoteStreams are the streams other nodes publish, by the registry.
func (s *Server) remoteStreams() []clusterStream {
	n := s.deps.Cluster
	var out []clusterStream
	for _, ni := range n.Nodes() {
		if ni.ID == n.ID() {
			continue
		}
		for _, st := range ni.Streams {
			out = append(out, clusterStream{StreamInfo: st, Node: ni.ID})
		}
	}
	return out
}
