package api

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/live"
)

// streamInfo adds the viewer counts of outputs the hub does not see
// per viewer (RTSP and HLS share one subscription per stream). The
// publisher's session id, with which its session URL is built, is shown
// only to an admin of the stream (and so never while auth is off).
func (s *Server) streamInfo(c echo.Context, st *live.Stream) live.StreamInfo {
	info := st.Info()
	for name, counter := range s.deps.Outputs {
		info.Viewers[name] = counter.Viewers(st.Name)
	}
	if !s.gate.IsAdmin(access.BearerToken(c.Request()), st.Name) {
		info.Session = ""
	}
	return info
}

// listStreams lists the live streams; in a cluster, every node's, each
// with the node that publishes it (relays are left out: they are the
// owner's streams).
func (s *Server) listStreams(c echo.Context) error {
	if s.deps.Cluster != nil {
		out := []clusterStream{}
		for _, st := range s.deps.Hub.Streams() {
			if !st.Relayed() {
				out = append(out, clusterStream{StreamInfo: s.streamInfo(c, st), Node: s.deps.Cluster.ID()})
			}
		}
		out = append(out, s.remoteStreams()...)
		return c.JSON(http.StatusOK, map[string]any{"streams": out, "node": s.deps.Cluster.ID()})
	}
	out := []live.StreamInfo{}
	for _, st := range s.deps.Hub.Streams() {
		out = append(out, s.streamInfo(c, st))
	}
	return c.JSON(http.StatusOK, map[string]any{"streams": out})
}

func (s *Server) getStream(c echo.Context) error {
	name := c.Param("stream")
	st := s.deps.Hub.Get(name)
	if s.deps.Cluster != nil {
		if st != nil && !st.Relayed() {
			return c.JSON(http.StatusOK, clusterStream{StreamInfo: s.streamInfo(c, st), Node: s.deps.Cluster.ID()})
		}
		for _, rs := range s.remoteStreams() {
			if rs.Name == name {
				return c.JSON(http.StatusOK, rs)
			}
		}
		st = nil
	}
	if st == nil {
		return writeProblem(c, http.StatusNotFound, "stream \""+name+"\" is not live")
	}
	info := s.streamInfo(c, st)
	info.Consumers = st.Consumers()
	return c.JSON(http.StatusOK, info)
}

func (s *Server) kickStream(c echo.Context) error {
	st := s.deps.Hub.Get(c.Param("stream"))
	if s.deps.Cluster != nil && (st == nil || st.Relayed()) {
		// Published on another node: that node kicks it, asked by this one
		// (a browser's DELETE would not survive a cross-origin redirect).
		for _, rs := range s.remoteStreams() {
			if ni := s.deps.Cluster.NodeByID(rs.Node); rs.Name == c.Param("stream") && ni != nil {
				target, err := url.Parse(ni.HTTPURL + c.Request().URL.EscapedPath())
				if err != nil {
					return err
				}
				s.proxyTo(c, target)
				return nil
			}
		}
		st = nil
	}
	if st == nil {
		return writeProblem(c, http.StatusNotFound, "stream \""+c.Param("stream")+"\" is not live")
	}
	st.Kick()
	return c.NoContent(http.StatusNoContent)
}
