package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/exports"
	"github.com/reel-gateway/reel/meetings"
)

// exportsRoutes serves a meeting's exports as jobs. Reading a job and
// downloading its files needs a read token for the meeting, like the
// meeting's own files; starting one and deleting one an admin token: an
// export costs minutes of CPU and writes into the archive, and deleting
// one removes files of the meeting.
func (s *Server) exportsRoutes(e *echo.Echo) {
	if s.deps.Meetings == nil || s.deps.Exports == nil {
		return
	}
	e.POST("/api/v1/meetings/:id/exports", s.postExport, s.requireMeeting(access.Admin))
	e.GET("/api/v1/meetings/:id/exports", s.listExports, s.requireMeeting(access.Read))
	read, admin := s.requireExport(access.Read), s.requireExport(access.Admin)
	e.GET("/api/v1/exports/:job", s.getExport, read)
	e.GET("/api/v1/exports/:job/files/:name", s.exportFile, read)
	e.DELETE("/api/v1/exports/:job", s.deleteExport, admin)
}

// requireExport checks the token for act on the meeting of the job.
func (s *Server) requireExport(act access.Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			stream := ""
			if j, err := s.deps.Exports.Get(c.Param("job")); err == nil {
				stream = j.Meeting + "/*"
			}
			return s.authorizeMeeting(c, act, stream, next)
		}
	}
}

// exportBody is what POST .../exports takes. from and to are optional:
// seconds on the meeting's timeline (a number, or a string such as
// "90.5"), or RFC 3339 times.
type exportBody struct {
	Kind string          `json:"kind"`
	From json.RawMessage `json:"from"`
	To   json.RawMessage `json:"to"`
}

// rangeMS reads from or to as ms on the timeline of a meeting that began
// at start; ok false when absent.
func rangeMS(raw json.RawMessage, start time.Time) (ms int64, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, err
	}
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || v < 0 || v > 1e9 {
			return 0, false, errors.New("seconds out of range")
		}
		return int64(math.Round(v * 1000)), true, nil
	case string:
		d, err := offsetFrom(v, start)
		if err != nil {
			return 0, false, fmt.Errorf("%q: %w", v, err)
		}
		return d.Round(time.Millisecond).Milliseconds(), true, nil
	}
	return 0, false, errors.New("not a number or a string")
}

// exportJSON is a job as the API shows it: with its URL and, once done,
// where to download each file.
type exportJSON struct {
	exports.Job
	URL   string       `json:"url"`
	Files []exportFile `json:"files"`
}

type exportFile struct {
	exports.File
	URL string `json:"url"`
}

func toExportJSON(j exports.Job) exportJSON {
	out := exportJSON{Job: j, URL: "/api/v1/exports/" + j.ID, Files: []exportFile{}}
	for _, f := range j.Files {
		out.Files = append(out.Files, exportFile{File: f, URL: out.URL + "/files/" + url.PathEscape(f.Name)})
	}
	return out
}

func (s *Server) postExport(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	var b exportBody
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 16<<10))
	if err == nil {
		err = json.Unmarshal(body, &b)
	}
	if err != nil {
		return writeProblem(c, http.StatusBadRequest, `the body must be JSON such as {"kind": "multitrack"}, with "from" and "to" in seconds or RFC 3339 if only part is wanted`)
	}
	req := exports.Request{Kind: exports.Kind(b.Kind), ToMS: -1}
	for _, p := range []struct {
		name string
		raw  json.RawMessage
		dst  *int64
	}{{"from", b.From, &req.FromMS}, {"to", b.To, &req.ToMS}} {
		ms, set, err := rangeMS(p.raw, oc.Manifest.Start)
		if err != nil {
			return writeProblem(c, http.StatusBadRequest, fmt.Sprintf("%s must be seconds on the meeting's timeline (0 is its start) or an RFC 3339 time: %v", p.name, err))
		}
		if set {
			*p.dst = ms
		}
	}
	j, created, err := s.deps.Exports.Start(oc.Manifest.ID, req)
	switch {
	case errors.Is(err, meetings.ErrNotFound):
		return writeProblem(c, http.StatusNotFound, "there is no meeting occurrence "+strconv.Quote(oc.Manifest.ID)+"; GET /api/v1/meetings lists them")
	case errors.Is(err, meetings.ErrLive):
		return writeProblem(c, http.StatusConflict, "meeting occurrence "+oc.Manifest.ID+" is still in progress; it can be exported once it has ended (meetings.grace after the last participant left)")
	case errors.Is(err, exports.ErrBadKind), errors.Is(err, exports.ErrBadRange):
		return writeProblem(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, exports.ErrNoFFmpeg):
		return writeProblem(c, http.StatusNotImplemented, "the "+b.Kind+" export needs ffmpeg: "+err.Error()+"; the multitrack export does not")
	case err != nil:
		return err
	}
	out := toExportJSON(j)
	c.Response().Header().Set("Location", out.URL)
	status := http.StatusAccepted
	if !created && j.State == exports.Done {
		status = http.StatusOK // the same export, already made
	}
	return c.JSON(status, out)
}

func (s *Server) listExports(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	out := []exportJSON{}
	for _, j := range s.deps.Exports.List(oc.Manifest.ID) {
		out = append(out, toExportJSON(j))
	}
	return c.JSON(http.StatusOK, map[string]any{"exports": out})
}

func exportNotFound(c echo.Context, id string) error {
	return writeProblem(c, http.StatusNotFound, "there is no export job "+strconv.Quote(id)+"; GET /api/v1/meetings/{id}/exports lists a meeting's")
}

func (s *Server) getExport(c echo.Context) error {
	j, err := s.deps.Exports.Get(c.Param("job"))
	if err != nil {
		return exportNotFound(c, c.Param("job"))
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, toExportJSON(j))
}

// exportFile serves a finished export's file with Range, If-Range and
// conditional GETs, like a recording.
func (s *Server) exportFile(c echo.Context) error {
	id, name := c.Param("job"), c.Param("name")
	path, err := s.deps.Exports.File(id, name)
	if err != nil {
		return writeProblem(c, http.StatusNotFound, "export job "+strconv.Quote(id)+" has no finished file "+strconv.Quote(name)+"; GET /api/v1/exports/"+id+" lists its files once it is done")
	}
	h := c.Response().Header()
	h.Set("Content-Type", map[string]string{".mkv": "video/x-matroska", ".webm": "video/webm", ".mp4": "video/mp4", ".wav": "audio/wav"}[strings.ToLower(filepath.Ext(name))])
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("Cache-Control", "private, no-cache")
	http.ServeFile(&progressWriter{ResponseWriter: c.Response(), rc: http.NewResponseController(c.Response())}, c.Request(), path)
	return nil
}

func (s *Server) deleteExport(c echo.Context) error {
	id := c.Param("job")
	err := s.deps.Exports.Delete(id)
	var he *meetings.HeldError
	switch {
	case errors.Is(err, exports.ErrNotFound):
		return exportNotFound(c, id)
	case errors.As(err, &he):
		return writeProblem(c, http.StatusConflict, he.Error())
	case archiveProblem(c, err):
		return nil
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
