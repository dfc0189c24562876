package api

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/recorder"
)

// recordingsRoutes serves the recordings archive: list, metadata, file
// (with Range), delete. Reading needs a read token when auth is on,
// deleting an admin token.
func (s *Server) recordingsRoutes(e *echo.Echo) {
	if s.deps.Recordings == nil {
		return
	}
	read := s.require(actionRead)
	e.GET("/api/v1/recordings", s.listRecordings, read)
	e.GET("/api/v1/recordings/:id", s.getRecording, read)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/api/v1/recordings/:id/file", s.recordingFile, read)
	e.DELETE("/api/v1/recordings/:id", s.deleteRecording, s.require(actionAdmin))
}

// recordingJSON is a recording as the API shows it: the path is relative
// to the recordings directory, and file_url is where to download it.
type recordingJSON struct {
	recorder.Info
	Path    string `json:"path"`
	FileURL string `json:"file_url"`
}

func (s *Server) recordingJSON(in recorder.Info) recordingJSON {
	return recordingJSON{Info: in, Path: s.deps.Recordings.Catalog().RelPath(in.Path),
		FileURL: "/api/v1/recordings/" + in.ID + "/file"}
}

// recordingsPage is the body of GET /api/v1/recordings.
type recordingsPage struct {
	Recordings []recordingJSON `json:"recordings"`
	// NextCursor fetches the next page; absent on the last one.
	NextCursor string `json:"next_cursor,omitempty"`
	// RecordingPausedReason says why new recordings are not being made
	// (the disk is almost full); absent while recording works.
	RecordingPausedReason string `json:"recording_paused_reason,omitempty"`
}

func (s *Server) listRecordings(c echo.Context) error {
	q, detail := parseRecordingsQuery(c)
	if detail != "" {
		return problem(c, http.StatusBadRequest, detail)
	}
	page, err := s.deps.Recordings.Catalog().List(q)
	if errors.Is(err, recorder.ErrBadCursor) {
		return problem(c, http.StatusBadRequest, "cursor is not valid: pass the next_cursor of the previous page unchanged, or leave it out to start from the newest recording")
	}
	if err != nil {
		return err
	}
	out := recordingsPage{Recordings: []recordingJSON{}, NextCursor: page.NextCursor,
		RecordingPausedReason: s.deps.Recordings.PausedReason()}
	for _, in := range page.Recordings {
		out.Recordings = append(out.Recordings, s.recordingJSON(in))
	}
	return c.JSON(http.StatusOK, out)
}

// parseRecordingsQuery reads stream, from, to, limit and cursor; detail
// says what is wrong with them, if anything.
func parseRecordingsQuery(c echo.Context) (recorder.Query, string) {
	q := recorder.Query{Stream: c.QueryParam("stream"), Cursor: c.QueryParam("cursor")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		v := c.QueryParam(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return q, fmt.Sprintf("%s must be an RFC 3339 time such as 2025-05-01T09:00:00Z, got %q", p.name, v)
		}
		*p.dst = t
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, "from must be earlier than to"
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > recorder.MaxLimit {
			return q, fmt.Sprintf("limit must be a whole number from 1 to %d, got %q", recorder.MaxLimit, v)
		}
		q.Limit = n
	}
	return q, ""
}

// badID answers a request whose :id cannot be a recording id.
func badID(c echo.Context, id string) error {
	return problem(c, http.StatusNotFound, fmt.Sprintf("%q is not a recording id: ids are letters, digits, '.', '_' and '-' as listed by GET /api/v1/recordings", id))
}

func notFound(c echo.Context, id string) error {
	return problem(c, http.StatusNotFound, "there is no recording "+id+"; GET /api/v1/recordings lists them")
}

func (s *Server) getRecording(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	in, found := s.deps.Recordings.Catalog().Get(id)
	if !found {
		return notFound(c, id)
	}
	return c.JSON(http.StatusOK, s.recordingJSON(in))
}

// recordingFile serves the file with Range, If-Range and conditional GETs
// (http.ServeContent), a strong ETag from size and modification time, and
// the container's media type.
func (s *Server) recordingFile(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	f, in, err := s.deps.Recordings.Catalog().Open(id)
	switch {
	case errors.Is(err, recorder.ErrNotFound):
		return notFound(c, id)
	case errors.Is(err, recorder.ErrRecording):
		return problem(c, http.StatusConflict, "recording "+id+" is still being written and has no Duration or Cues yet; download it once it has finished, or watch the stream live")
	case errors.Is(err, recorder.ErrOutside):
		return problem(c, http.StatusForbidden, "the file of recording "+id+" is not inside the recordings directory and is not served")
	case err != nil:
		s.cfg.Logger.Error("recording file not served", "recording", id, "error", err)
		return problem(c, http.StatusInternalServerError, "the file of recording "+id+" cannot be read; the server log says why")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	name := filepath.Base(in.Path)
	h := c.Response().Header()
	h.Set("Content-Type", mediaType(in.Container))
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano()))
	h.Set("Cache-Control", "private, no-cache")
	http.ServeContent(c.Response(), c.Request(), name, st.ModTime(), f)
	return nil
}

// mediaType is the Content-Type of a container.
func mediaType(container string) string {
	if container == "webm" {
		return "video/webm"
	}
	return "video/x-matroska"
}

func (s *Server) deleteRecording(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	in, err := s.deps.Recordings.Delete(id)
	switch {
	case errors.Is(err, recorder.ErrNotFound):
		return notFound(c, id)
	case errors.Is(err, recorder.ErrRecording):
		return problem(c, http.StatusConflict, "recording "+id+" is still in progress; it can be deleted once stream \""+in.Stream+
			"\" stops (DELETE /api/v1/streams/"+in.Stream+" ends it now)")
	case errors.Is(err, recorder.ErrOutside):
		return problem(c, http.StatusForbidden, "the file of recording "+id+" is not inside the recordings directory and is not deleted")
	case err != nil:
		s.cfg.Logger.Error("recording not deleted", "recording", id, "error", err)
		return problem(c, http.StatusInternalServerError, "recording "+id+" could not be deleted; the server log says why")
	}
	s.cfg.Logger.Info("recording deleted", "recording", id, "stream", in.Stream, "size", in.Size)
	return c.NoContent(http.StatusNoContent)
}
