package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/ingest"
)

// streamInfo adds the viewer counts of outputs the hub does not see
// per viewer (RTSP and HLS share one subscription per stream).
func (s *Server) streamInfo(st *ingest.Stream) ingest.StreamInfo {
	info := st.Info()
	for name, counter := range s.deps.Outputs {
		info.Viewers[name] = counter.Viewers(st.Name)
	}
	return info
}

func (s *Server) listStreams(c echo.Context) error {
	out := []ingest.StreamInfo{}
	for _, st := range s.deps.Hub.Streams() {
		out = append(out, s.streamInfo(st))
	}
	return c.JSON(http.StatusOK, map[string]any{"streams": out})
}

func (s *Server) getStream(c echo.Context) error {
	st := s.deps.Hub.Get(c.Param("stream"))
	if st == nil {
		return problem(c, http.StatusNotFound, "stream \""+c.Param("stream")+"\" is not live")
	}
	return c.JSON(http.StatusOK, s.streamInfo(st))
}

func (s *Server) kickStream(c echo.Context) error {
	st := s.deps.Hub.Get(c.Param("stream"))
	if st == nil {
		return problem(c, http.StatusNotFound, "stream \""+c.Param("stream")+"\" is not live")
	}
	st.Kick()
	return c.NoContent(http.StatusNoContent)
}
