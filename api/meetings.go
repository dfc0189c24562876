package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/meetings"
)

// meetingsRoutes serves the meetings archive: occurrences found by time,
// participant and name, one occurrence's manifest, its zip, its legal hold,
// its deletion, and the audit log. Reading needs a read token for the
// meeting ("{meeting}/*" covers it); holds, deletion and the audit log an
// admin token.
func (s *Server) meetingsRoutes(e *echo.Echo) {
	if s.deps.Meetings == nil {
		return
	}
	read, admin := s.requireMeeting(access.Read), s.requireMeeting(access.Admin)
	e.GET("/api/v1/meetings", s.listMeetings, read)
	e.GET("/api/v1/meetings/:id", s.getMeeting, read)
	e.GET("/api/v1/meetings/:id/manifest.json", s.meetingManifest, read)
	e.GET("/api/v1/meetings/:id/manifest.json.sha256", s.meetingManifestSum, read)
	e.GET("/api/v1/meetings/:id/download.zip", s.meetingZip, read)
	e.PUT("/api/v1/meetings/:id/hold", s.putHold, admin)
	e.DELETE("/api/v1/meetings/:id/hold", s.deleteHold, admin)
	e.DELETE("/api/v1/meetings/:id", s.deleteMeeting, admin)
	e.GET("/api/v1/audit", s.auditLog, admin)
}

// requireMeeting checks the token for act on the meeting the request is
// about ("{meeting}/*"): the occurrence's, or else the gateway as a whole
// (a listing, an unknown id); see authorizeMeeting.
func (s *Server) requireMeeting(act access.Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			stream := ""
			if id := c.Param("id"); id != "" {
				if oc, err := s.deps.Meetings.Get(id); err == nil {
					stream = oc.Manifest.Meeting + "/*"
				}
			} else if m := c.QueryParam("meeting"); m != "" {
				stream = m + "/*"
			}
			return s.authorizeMeeting(c, act, stream, next)
		}
	}
}

// authorizeMeeting lets the request on to next if its token may do act on
// stream (a meeting's "{meeting}/*"). A token that may read the meeting
// but not do act on it gets 403 (RFC 6750's insufficient_scope), not the
// 401 of a wrong token: it is known, and asking again will not help.
func (s *Server) authorizeMeeting(c echo.Context, act access.Action, stream string, next echo.HandlerFunc) error {
	r := s.requestFor(c, act, access.API, stream)
	if act != access.Read && r.Token != "" && !s.gate.Allows(r) && s.mayRead(r) {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="reel", error="insufficient_scope"`)
		return writeProblem(c, http.StatusForbidden, "this needs an admin token: the bearer token may read this meeting but not change or delete it")
	}
	if !s.authorize(c, r) {
		return nil
	}
	return next(c)
}

// mayRead reports whether r's token itself (not public_read) lets it read
// r's stream.
func (s *Server) mayRead(r access.Request) bool {
	r.Action = access.Read
	anon := r
	anon.Token = ""
	return s.gate.Allows(r) && !s.gate.Allows(anon)
}

func (s *Server) listMeetings(c echo.Context) error {
	q := meetings.Query{Participant: c.QueryParam("participant"), Q: c.QueryParam("q"), Cursor: c.QueryParam("cursor")}
	// meeting= is exact: a token scoped to "board-42/*" lists board-42's
	// occurrences, never board-420's.
	q.Meeting = c.QueryParam("meeting")
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := c.QueryParam(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return writeProblem(c, http.StatusBadRequest, fmt.Sprintf("%s must be an RFC 3339 time such as 2026-05-01T09:00:00Z, got %q", p.name, v))
			}
			*p.dst = t
		}
	}
	if v := c.QueryParam("hold"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return writeProblem(c, http.StatusBadRequest, "hold must be true or false, got "+strconv.Quote(v))
		}
		q.Hold = &b
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return writeProblem(c, http.StatusBadRequest, "limit must be a whole number from 1 to 500, got "+strconv.Quote(v))
		}
		q.Limit = n
	}
	page, err := s.deps.Meetings.List(q)
	if err != nil {
		return writeProblem(c, http.StatusBadRequest, err.Error()+": pass the next_cursor of the previous page unchanged")
	}
	page.Warning = s.deps.Meetings.ArchiveStatus()
	if page.Warning == "" && s.deps.Cluster != nil && s.deps.Archive == nil {
		page.Warning = "without a shared archive (storage.s3), this lists node " + s.deps.Cluster.ID() +
			"'s meetings only; GET /api/v1/meetings/{id} on any node redirects to the node that holds it"
	}
	return c.JSON(http.StatusOK, page)
}

// meetingJSON is one occurrence as the API shows it: the manifest, its
// checksum once ended, the hold, where to get each file and the zip, and
// its audit log.
type meetingJSON struct {
	Manifest       meetings.Manifest     `json:"manifest"`
	ManifestSHA256 string                `json:"manifest_sha256,omitempty"`
	Hold           *meetings.Hold        `json:"hold,omitempty"`
	ManifestURL    string                `json:"manifest_url"`
	ZipURL         string                `json:"zip_url"`
	Files          []meetingFile         `json:"files"`
	Audit          []meetings.AuditEntry `json:"audit"`
	// Archived: served from the shared archive (S3), not this node's disk.
	Archived bool `json:"archived,omitempty"`
}

type meetingFile struct {
	Recording   string `json:"recording"`
	Participant string `json:"participant"`
	URL         string `json:"url"`
	OffsetMS    int64  `json:"offset_ms"`
}

// occurrence finds the request's occurrence: this node's or the shared
// archive's. Otherwise it answers: in a cluster without S3, 307 to the
// node that holds it (or 503 saying where it is), else 404.
func (s *Server) occurrence(c echo.Context) (meetings.Occurrence, bool) {
	id := c.Param("id")
	oc, err := s.deps.Meetings.Get(id)
	if err == nil {
		return oc, true
	}
	if s.meetingElsewhere(c, id) {
		return oc, false
	}
	_ = writeProblem(c, http.StatusNotFound, "there is no meeting occurrence "+strconv.Quote(id)+"; GET /api/v1/meetings lists them")
	return oc, false
}

// meetingElsewhere answers a request for an occurrence another node
// holds (a cluster without S3) with a 307 there, keeping the method, path
// and query; it reports whether it answered.
func (s *Server) meetingElsewhere(c echo.Context, id string) bool {
	n := s.deps.Cluster
	if n == nil || s.deps.Archive != nil {
		return false
	}
	node, err := n.MeetingNode(c.Request().Context(), id)
	if err != nil {
		c.Response().Header().Set("Retry-After", "5")
		_ = writeProblem(c, http.StatusServiceUnavailable, "meeting occurrence "+id+" is not on this node, and the cluster's registry (Redis) cannot say which node holds it: "+err.Error())
		return true
	}
	if node == "" || node == n.ID() {
		return false
	}
	ni := n.NodeByID(node)
	if ni == nil {
		c.Response().Header().Set("Retry-After", "5")
		_ = writeProblem(c, http.StatusServiceUnavailable, "meeting occurrence "+id+" is held by node "+node+", which is not in the cluster now; try again when it is back")
		return true
	}
	c.Response().Header().Set("Location", ni.HTTPURL+c.Request().URL.RequestURI())
	_ = c.NoContent(http.StatusTemporaryRedirect)
	return true
}

// archiveProblem answers an error of the shared archive (a hold, a
// deletion that could not be done) with 503 and Retry-After; it reports
// whether err was one.
func archiveProblem(c echo.Context, err error) bool {
	if !errors.Is(err, meetings.ErrArchive) {
		return false
	}
	c.Response().Header().Set("Retry-After", "5")
	_ = writeProblem(c, http.StatusServiceUnavailable, err.Error()+"; try again when S3 answers")
	return true
}

func (s *Server) getMeeting(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	id := oc.Manifest.ID
	audit, err := s.deps.Meetings.Audit(id)
	if err != nil {
		return err
	}
	out := meetingJSON{Manifest: oc.Manifest, ManifestSHA256: oc.SHA256, Hold: oc.Hold, Audit: audit, Archived: oc.Dir == "",
		ManifestURL: "/api/v1/meetings/" + id + "/manifest.json", ZipURL: "/api/v1/meetings/" + id + "/download.zip", Files: []meetingFile{}}
	for _, r := range oc.Manifest.Recordings {
		if r.State == "deleted" {
			continue
		}
		out.Files = append(out.Files, meetingFile{Recording: r.ID, Participant: r.Participant, OffsetMS: r.OffsetMS,
			URL: "/api/v1/recordings/" + r.ID + "/file"})
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.JSON(http.StatusOK, out)
}

// meetingManifest serves manifest.json exactly as it is on disk, so its
// SHA-256 can be checked against manifest.json.sha256.
func (s *Server) meetingManifest(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	return s.serveMeetingFile(c, oc, "manifest.json", "application/json")
}

// serveMeetingFile serves one small file of an occurrence exactly as
// stored, from this node's disk or the shared archive.
func (s *Server) serveMeetingFile(c echo.Context, oc meetings.Occurrence, name, contentType string) error {
	f, err := s.deps.Meetings.Open(c.Request().Context(), oc, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return writeProblem(c, http.StatusNotFound, "meeting occurrence "+oc.Manifest.ID+" has no "+name+" here or in the archive")
	case err != nil:
		s.cfg.Logger.Error("meeting file not served", "occurrence", oc.Manifest.ID, "file", name, "err", err)
		c.Response().Header().Set("Retry-After", "5")
		return writeProblem(c, http.StatusBadGateway, name+" of meeting occurrence "+oc.Manifest.ID+" is in the S3 archive, which did not answer; try again")
	}
	defer f.Close()
	c.Response().Header().Set("Cache-Control", "no-cache")
	c.Response().Header().Set("Content-Type", contentType)
	http.ServeContent(c.Response(), c.Request(), name, time.Time{}, f)
	return nil
}

// meetingManifestSum serves manifest.json.sha256 (sha256sum's format) of
// an ended occurrence: with manifest.json beside it, `sha256sum -c` checks
// that the manifest is the one written when the meeting ended.
func (s *Server) meetingManifestSum(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	if oc.SHA256 == "" {
		return writeProblem(c, http.StatusNotFound, "meeting occurrence "+oc.Manifest.ID+" is still in progress: its manifest gets its checksum when it ends")
	}
	return s.serveMeetingFile(c, oc, "manifest.json.sha256", "text/plain; charset=utf-8")
}

// meetingZip streams the occurrence as a store-only zip with its
// manifest and SHA256SUMS, in constant memory and without a temporary
// file. Each write moves the write deadline on (progressWriter).
//
// With from and/or to (seconds from the occurrence's start, or RFC 3339
// times) it holds a clip of the meeting instead (meetings.WriteClipZip):
// every participant's recording cut to the range and remuxed to MP4, a
// VP8 one whole, and a manifest of the clip.
func (s *Server) meetingZip(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	name := oc.Manifest.ID + ".zip"
	span, clipped, detail := parseSpan(c, oc.Manifest, time.Now())
	if detail != "" {
		return writeProblem(c, http.StatusBadRequest, detail)
	}
	if clipped {
		end := "end"
		if span.To > 0 {
			end = seconds(span.To)
		}
		name = oc.Manifest.ID + "_" + seconds(span.From) + "-" + end + ".zip"
	}
	h := c.Response().Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(http.StatusOK)
	w := &progressWriter{ResponseWriter: c.Response(), rc: http.NewResponseController(c.Response())}
	write := func() error { return s.deps.Meetings.WriteZip(w, oc.Manifest.ID) }
	if clipped {
		write = func() error { return s.deps.Meetings.WriteClipZip(w, oc.Manifest.ID, span) }
	}
	if err := write(); err != nil {
		// The status is sent: the client sees a cut zip (its central
		// directory missing), which no unzip takes for whole.
		s.cfg.Logger.Error("meeting zip cut short", "occurrence", oc.Manifest.ID, "error", err)
	}
	return nil
}

// holdBody is what PUT and DELETE .../hold take: why.
type holdBody struct {
	Reason string `json:"reason"`
}

func readHoldBody(c echo.Context) (holdBody, error) {
	var b holdBody
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 16<<10))
	if err != nil {
		return b, err
	}
	if len(body) == 0 {
		b.Reason = c.QueryParam("reason")
		return b, nil
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return b, fmt.Errorf("the body must be JSON such as {\"reason\": \"case 2026-17\"}: %w", err)
	}
	return b, nil
}

func (s *Server) putHold(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	b, err := readHoldBody(c)
	if err != nil {
		return writeProblem(c, http.StatusBadRequest, err.Error())
	}
	if b.Reason == "" {
		return writeProblem(c, http.StatusBadRequest, "a legal hold needs a reason: send {\"reason\": \"...\"}")
	}
	h, err := s.deps.Meetings.SetHold(oc.Manifest.ID, b.Reason, who(c))
	if archiveProblem(c, err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h)
}

func (s *Server) deleteHold(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	b, err := readHoldBody(c)
	if err != nil {
		return writeProblem(c, http.StatusBadRequest, err.Error())
	}
	err = s.deps.Meetings.ReleaseHold(oc.Manifest.ID, b.Reason, who(c))
	if archiveProblem(c, err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) deleteMeeting(c echo.Context) error {
	oc, ok := s.occurrence(c)
	if !ok {
		return nil
	}
	err := s.deps.Meetings.DeleteOccurrence(oc.Manifest.ID, who(c), "deleted through the API")
	var he *meetings.HeldError
	switch {
	case errors.As(err, &he):
		return writeProblem(c, http.StatusConflict, he.Error())
	case errors.Is(err, meetings.ErrLive):
		return writeProblem(c, http.StatusConflict, "meeting occurrence "+oc.Manifest.ID+" is still in progress; it can be deleted once it has ended")
	case archiveProblem(c, err):
		return nil
	case err != nil:
		return err
	}
	if s.deps.Exports != nil {
		s.deps.Exports.Drop(oc.Manifest.ID, "the meeting was deleted")
	}
	if s.deps.Cluster != nil && s.deps.Archive == nil {
		s.deps.Cluster.ForgetMeeting(oc.Manifest.ID)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) auditLog(c echo.Context) error {
	entries, err := s.deps.Meetings.Audit(c.QueryParam("occurrence"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": entries})
}

// who identifies the credential of a request for the audit log: the first
// 16 hex digits of its SHA-256, never the token.
func who(c echo.Context) string {
	fp := access.Fingerprint(access.BearerToken(c.Request()))
	if len(fp) > 16 {
		fp = fp[:16]
	}
	if fp == "" {
		return "anonymous"
	}
	return "token:" + fp
}

// parseSpan reads a zip's from and to: seconds from the occurrence's
// start (90.5) or RFC 3339 times, on the occurrence's timeline. A from
// before the start is its start, a to past the end its end (To zero).
// clipped is false when neither is given.
func parseSpan(c echo.Context, man meetings.Manifest, now time.Time) (span meetings.Span, clipped bool, detail string) {
	q := c.QueryParams()
	if !q.Has("from") && !q.Has("to") {
		return span, false, ""
	}
	length := time.Duration(man.DurationMS) * time.Millisecond
	if man.State != meetings.StateEnded {
		length = now.Sub(man.Start)
	}
	bound := func(name string) (time.Duration, string) {
		return clipBound(name, q.Get(name), man.Start, "meeting", 90*time.Second)
	}
	var from, to time.Duration
	if q.Has("from") {
		if from, detail = bound("from"); detail != "" {
			return span, true, detail
		}
		from = max(from, 0)
		if from >= length {
			return span, true, fmt.Sprintf("from (%s) is past the end of meeting occurrence %s: it lasts %s, from %s",
				q.Get("from"), man.ID, seconds(length), man.Start.Format(time.RFC3339))
		}
	}
	if q.Has("to") {
		if to, detail = bound("to"); detail != "" {
			return span, true, detail
		}
		if to <= 0 {
			return span, true, fmt.Sprintf("to (%s) must be after meeting occurrence %s starts (%s)", q.Get("to"), man.ID, man.Start.Format(time.RFC3339Nano))
		}
		if to <= from {
			return span, true, fmt.Sprintf("from (%s) must be earlier than to (%s)", q.Get("from"), q.Get("to"))
		}
		if to >= length {
			to = 0 // to the end
		}
	}
	return meetings.Span{From: from, To: to}, true, ""
}
