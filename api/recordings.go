package api

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/recorder"
	"github.com/reel-gateway/reel/storage"
)

// recordingsRoutes serves the recordings archive: list, metadata, file
// (with Range, or remuxed to MP4 and clipped), delete. Reading needs a read token when auth is on,
// deleting an admin token, each for the recording's stream.
func (s *Server) recordingsRoutes(e *echo.Echo) {
	if s.deps.Recordings == nil {
		return
	}
	read := s.requireRecording(access.Read)
	e.GET("/api/v1/recordings", s.listRecordings, read)
	e.GET("/api/v1/recordings/:id", s.getRecording, read)
	e.Match([]string{http.MethodGet, http.MethodHead}, "/api/v1/recordings/:id/file", s.recordingFile, read)
	e.DELETE("/api/v1/recordings/:id", s.deleteRecording, s.requireRecording(access.Admin))
}

// requireRecording checks the token for act on the stream the request is
// about: the recording's, the list's ?stream=, or else the gateway as a
// whole (an unknown id included, so that a token scoped to one stream
// cannot tell which ids exist elsewhere).
func (s *Server) requireRecording(act access.Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			stream := ""
			if id := c.Param("id"); id == "" {
				stream = c.QueryParam("stream")
			} else if in, found := s.findRecording(c.Request().Context(), id); found && recorder.ValidID(id) {
				stream = in.Stream
			}
			if !s.authorize(c, s.requestFor(c, act, access.API, stream)) {
				return nil
			}
			return next(c)
		}
	}
}

// recordingJSON is a recording as the API shows it: the path is relative
// to the recordings directory, and file_url is where to download it.
type recordingJSON struct {
	recorder.Info
	Path    string `json:"path"`
	FileURL string `json:"file_url"`
	// Node holds the file, in a cluster.
	Node string `json:"node,omitempty"`
	// Archived: the file is served from the S3 archive (path is its key).
	Archived bool `json:"archived,omitempty"`
}

func (s *Server) recordingJSON(in recorder.Info) recordingJSON {
	out := recordingJSON{Info: in, Path: s.deps.Recordings.Catalog().RelPath(in.Path),
		FileURL: "/api/v1/recordings/" + in.ID + "/file"}
	if s.deps.Cluster != nil {
		out.Node = s.deps.Cluster.ID()
	}
	return out
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
		return writeProblem(c, http.StatusBadRequest, detail)
	}
	page, objects, err := s.allRecordings(q)
	if errors.Is(err, recorder.ErrBadCursor) {
		return writeProblem(c, http.StatusBadRequest, "cursor is not valid: pass the next_cursor of the previous page unchanged, or leave it out to start from the newest recording")
	}
	if err != nil {
		return err
	}
	out := recordingsPage{Recordings: []recordingJSON{}, NextCursor: page.NextCursor,
		RecordingPausedReason: s.deps.Recordings.PausedReason()}
	archived := map[string]storage.Object{}
	for _, o := range objects {
		archived[o.ID] = o
	}
	for _, in := range page.Recordings {
		if o, ok := archived[in.ID]; ok {
			if _, local := s.deps.Recordings.Catalog().Get(in.ID); !local {
				out.Recordings = append(out.Recordings, archivedJSON(o))
				continue
			}
		}
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
	return writeProblem(c, http.StatusNotFound, fmt.Sprintf("%q is not a recording id: ids are letters, digits, '.', '_' and '-' as listed by GET /api/v1/recordings", id))
}

func notFound(c echo.Context, id string) error {
	return writeProblem(c, http.StatusNotFound, "there is no recording "+id+"; GET /api/v1/recordings lists them")
}

func (s *Server) getRecording(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	in, found := s.deps.Recordings.Catalog().Get(id)
	if !found {
		if o, ok := s.archived(c.Request().Context(), id); ok {
			return c.JSON(http.StatusOK, archivedJSON(o))
		}
		if s.elsewhere(c, id) {
			return nil
		}
		return notFound(c, id)
	}
	return c.JSON(http.StatusOK, s.recordingJSON(in))
}

// recordingFile serves the file with Range, If-Range and conditional GETs
// (http.ServeContent), a strong ETag from size and modification time, and
// the container's media type; or, with format=mp4, the recording remuxed
// to MP4 (recordingMP4).
func (s *Server) recordingFile(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	mp4, detail := wantMP4(c)
	if detail != "" {
		return writeProblem(c, http.StatusBadRequest, detail)
	}
	f, in, err := s.deps.Recordings.Catalog().Open(id)
	switch {
	case errors.Is(err, recorder.ErrNotFound):
		if o, ok := s.archived(c.Request().Context(), id); ok {
			return s.serveArchived(c, o)
		}
		if s.elsewhere(c, id) {
			return nil
		}
		return notFound(c, id)
	case errors.Is(err, recorder.ErrRecording):
		return writeProblem(c, http.StatusConflict, "recording "+id+" is still being written and has no Duration or Cues yet; download it once it has finished, or watch the stream live")
	case errors.Is(err, recorder.ErrOutside):
		return writeProblem(c, http.StatusForbidden, "the file of recording "+id+" is not inside the recordings directory and is not served")
	case errors.Is(err, recorder.ErrNotRegular):
		s.cfg.Logger.Error("recording file not served: not a regular file", "recording", id)
		return writeProblem(c, http.StatusForbidden, "the file of recording "+id+" is not a regular file and is not served")
	case err != nil:
		s.cfg.Logger.Error("recording file not served", "recording", id, "error", err)
		return writeProblem(c, http.StatusInternalServerError, "the file of recording "+id+" cannot be read; the server log says why")
	}
	defer f.Close()
	if mp4 {
		return s.recordingMP4(c, f, in)
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	name := filepath.Base(in.Path)
	etag := fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano())
	h := c.Response().Header()
	h.Set("Content-Type", mediaType(in.Container))
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("ETag", etag)
	h.Set("Cache-Control", "private, no-cache")
	if !satisfiableRange(c.Request(), etag) {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size()))
		return writeProblem(c, http.StatusRequestedRangeNotSatisfiable,
			fmt.Sprintf("the Range asks for no bytes of this %d-byte file (bytes=-0 is empty); ask for bytes=0- or a suffix of 1 or more", st.Size()))
	}
	// A download may take longer than the server's write timeout: each
	// write moves the deadline on, so only a client that stops reading
	// is cut off.
	http.ServeContent(&progressWriter{ResponseWriter: c.Response(), rc: http.NewResponseController(c.Response())},
		c.Request(), name, st.ModTime(), f)
	return nil
}

// downloadWriteWindow is how long one write of a download may take.
const downloadWriteWindow = time.Minute

// progressWriter extends the write deadline before every write.
type progressWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(downloadWriteWindow))
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// satisfiableRange drops from r's Range the suffix ranges of zero bytes
// ("-0"), which no file can satisfy and which Go's ServeContent would
// answer with an impossible Content-Range, and reports false when nothing
// else is asked for (416). A Range that If-Range disables is left alone.
func satisfiableRange(r *http.Request, etag string) bool {
	rng := r.Header.Get("Range")
	unit, specs, ok := strings.Cut(rng, "=")
	if rng == "" || !ok || strings.TrimSpace(unit) != "bytes" {
		return true
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		return true // not evaluated: the whole file is sent
	}
	var kept []string
	for _, spec := range strings.Split(specs, ",") {
		spec = strings.TrimSpace(spec)
		if n, isSuffix := strings.CutPrefix(spec, "-"); isSuffix && strings.Trim(n, "0") == "" && n != "" {
			continue
		}
		kept = append(kept, spec)
	}
	if len(kept) == 0 {
		return false
	}
	r.Header.Set("Range", "bytes="+strings.Join(kept, ","))
	return true
}

// contentDisposition is an attachment header for a file name that may
// hold anything (a file put in the recordings directory by hand): an
// ASCII fallback with nothing that could end the quoted string or the
// header, and the exact name per RFC 6266 / RFC 8187.
func contentDisposition(name string) string {
	var ascii, enc strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == ';' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	for _, b := range []byte(name) {
		if isAttrChar(b) {
			enc.WriteByte(b)
		} else {
			fmt.Fprintf(&enc, "%%%02X", b)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + enc.String()
}

// isAttrChar is RFC 8187's attr-char: what a filename* value may hold
// unencoded.
func isAttrChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}

// mediaType is the Content-Type of a container.
func mediaType(container string) string {
	if container == "webm" {
		return "video/webm"
	}
	return "video/x-matroska"
}

// heldRecording answers 409 for a recording of a held meeting occurrence
// (this node's or the archive's), or 503 when the hold cannot be read;
// it reports whether it answered.
func (s *Server) heldRecording(c echo.Context, id string) bool {
	if s.deps.Meetings == nil {
		return false
	}
	in, found := s.deps.Recordings.Catalog().Get(id)
	if !found {
		o, ok := s.archived(c.Request().Context(), id)
		if !ok {
			return false
		}
		in = o.Info
	}
	if in.Occurrence == "" {
		return false
	}
	h, err := s.deps.Meetings.CheckHold(c.Request().Context(), in.Meeting, in.Occurrence)
	switch {
	case archiveProblem(c, err):
		return true
	case err != nil:
		_ = writeProblem(c, http.StatusInternalServerError, "the legal hold of recording "+id+" could not be read: "+err.Error())
		return true
	case h != nil:
		_ = writeProblem(c, http.StatusConflict, "recording "+id+" belongs to meeting occurrence "+in.Occurrence+", which is under legal hold since "+
			h.Since.Format(time.RFC3339)+" ("+h.Reason+"); lift the hold first (DELETE /api/v1/meetings/"+in.Occurrence+"/hold)")
		return true
	}
	return false
}

func (s *Server) deleteRecording(c echo.Context) error {
	id := c.Param("id")
	if !recorder.ValidID(id) {
		return badID(c, id)
	}
	if s.heldRecording(c, id) {
		return nil
	}
	in, err := s.deps.Recordings.Delete(id)
	switch {
	case errors.Is(err, recorder.ErrNotFound):
		if o, ok := s.archived(c.Request().Context(), id); ok {
			return s.deleteArchived(c, o)
		}
		if s.elsewhere(c, id) {
			return nil
		}
		return notFound(c, id)
	case errors.Is(err, recorder.ErrRecording):
		return writeProblem(c, http.StatusConflict, "recording "+id+" is still in progress; it can be deleted once stream \""+in.Stream+
			"\" stops (DELETE /api/v1/streams/"+in.Stream+" ends it now)")
	case errors.Is(err, recorder.ErrOutside):
		return writeProblem(c, http.StatusForbidden, "the file of recording "+id+" is not inside the recordings directory and is not deleted")
	case err != nil:
		s.cfg.Logger.Error("recording not deleted", "recording", id, "error", err)
		return writeProblem(c, http.StatusInternalServerError, "recording "+id+" could not be deleted; the server log says why")
	}
	s.cfg.Logger.Info("recording deleted", "recording", id, "stream", in.Stream, "size", in.Size)
	if in.Occurrence != "" && s.deps.Meetings != nil {
		s.deps.Meetings.RecordingDeleted(in.Occurrence, id, in.Participant, who(c), "deleted through the API")
	}
	if s.deps.Archive != nil {
		if err := s.deps.Archive.DeleteLocalUpload(c.Request().Context(), in.Path); err != nil {
			s.cfg.Logger.Error("recording deleted here but not from the bucket", "recording", id, "err", err)
			return writeProblem(c, http.StatusBadGateway, "recording "+id+" was deleted from this node, but its copy in the S3 archive could not be; delete it again to retry")
		}
	}
	if s.deps.Cluster != nil {
		s.deps.Cluster.ForgetRecording(id)
	}
	return c.NoContent(http.StatusNoContent)
}
