package api

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/recorder"
)

// wantMP4 reads format, from and to of a file request: true for
// format=mp4; detail says what is wrong with them, if anything. A clip
// is made of the MP4 form only: the recording's own file is served whole,
// with Range.
func wantMP4(c echo.Context) (bool, string) {
	q := c.QueryParams()
	format, clip := q.Get("format"), q.Has("from") || q.Has("to")
	switch {
	case format == "mp4":
		return true, ""
	case q.Has("format"):
		return false, fmt.Sprintf("format must be mp4 (the recording remuxed for browsers), or left out for the recording's own file; got %q", format)
	case clip:
		return false, "from and to cut a clip of the MP4 form only: add format=mp4 (the recording's own file is served whole, with Range)"
	}
	return false, ""
}

// recordingMP4 streams recording in, open as f, remuxed to fragmented MP4
// (recorder.MP4Remux), whole or the clip that from and to ask for. It is
// written as it is read: no Content-Length and no Range (the whole body
// is sent); the write deadline moves on with each fragment.
func (s *Server) recordingMP4(c echo.Context, f io.ReadSeeker, in recorder.Info) error {
	clip, name, detail := parseClip(c, in)
	if detail != "" {
		return writeProblem(c, http.StatusBadRequest, detail)
	}
	m, err := recorder.NewMP4Remux(f, clip)
	switch {
	case errors.Is(err, recorder.ErrMP4Codec):
		return writeProblem(c, http.StatusUnsupportedMediaType, fmt.Sprintf(
			"recording %s cannot be served as MP4 (%v); its %s file plays in browsers as it is: GET /api/v1/recordings/%s/file without format",
			in.ID, err, in.Container, in.ID))
	case err != nil && in.State == recorder.StateFailed:
		return writeProblem(c, http.StatusConflict, fmt.Sprintf("recording %s failed (%s) and cannot be remuxed (%v); its file can still be downloaded as it is",
			in.ID, in.Error, err))
	case err != nil:
		s.cfg.Logger.Error("recording not remuxed to MP4", "recording", in.ID, "error", err)
		return writeProblem(c, http.StatusInternalServerError, "recording "+in.ID+" cannot be read to remux it; the server log says why")
	}
	t0, err := m.ClipStart()
	if err != nil && !errors.Is(err, recorder.ErrClipEmpty) {
		s.cfg.Logger.Error("recording not remuxed to MP4", "recording", in.ID, "error", err)
		return writeProblem(c, http.StatusInternalServerError, "recording "+in.ID+" cannot be read to remux it; the server log says why")
	}
	h := c.Response().Header()
	if err == nil {
		// Where the MP4's time zero lies in the recording (the keyframe at
		// or before from), so that a player can place a clip on the
		// recording's timeline (the meeting page does, to seek).
		h.Set("Reel-Clip-Start", strconv.FormatFloat(t0.Seconds(), 'f', 3, 64))
	}
	h.Set("Content-Type", "video/mp4")
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Accept-Ranges", "none")
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	_, err = m.WriteTo(&progressWriter{ResponseWriter: c.Response(), rc: http.NewResponseController(c.Response())})
	switch {
	case err == nil:
		return nil
	case c.Response().Committed:
		// The MP4 so far is whole fragments: the client keeps what came.
		s.cfg.Logger.Warn("MP4 of a recording ended early", "recording", in.ID, "error", err)
		return nil
	}
	for _, k := range []string{"Content-Disposition", "Cache-Control", "Accept-Ranges", "Reel-Clip-Start"} {
		h.Del(k)
	}
	if errors.Is(err, recorder.ErrClipEmpty) {
		return writeProblem(c, http.StatusBadRequest, fmt.Sprintf("recording %s has no media between from and to (it starts %s and lasts %s)",
			in.ID, in.Start.Format(time.RFC3339), seconds(time.Duration(in.DurationMS)*time.Millisecond)))
	}
	s.cfg.Logger.Error("recording not remuxed to MP4", "recording", in.ID, "error", err)
	return writeProblem(c, http.StatusInternalServerError, "recording "+in.ID+" could not be remuxed to MP4; the server log says why")
}

// parseClip reads from and to: seconds from the recording's start (2.5)
// or RFC 3339 times. The part of [from, to) that lies outside the
// recording is left out; a range with none of it inside, or with from
// not before to, is refused. name is the file name of the MP4.
func parseClip(c echo.Context, in recorder.Info) (clip recorder.Clip, name, detail string) {
	dur := time.Duration(in.DurationMS) * time.Millisecond
	q := c.QueryParams()
	var from, to time.Duration
	if q.Has("from") {
		if from, detail = clipBound("from", q.Get("from"), in.Start, "recording", 2500*time.Millisecond); detail != "" {
			return clip, "", detail
		}
	}
	if q.Has("to") {
		if to, detail = clipBound("to", q.Get("to"), in.Start, "recording", 2500*time.Millisecond); detail != "" {
			return clip, "", detail
		}
		if q.Has("from") && from >= to {
			return clip, "", fmt.Sprintf("from (%s) must be earlier than to (%s)", q.Get("from"), q.Get("to"))
		}
		if to <= 0 {
			return clip, "", fmt.Sprintf("to (%s) must be after recording %s starts (%s)", q.Get("to"), in.ID, in.Start.Format(time.RFC3339Nano))
		}
	}
	from = max(from, 0)
	if dur > 0 && from >= dur {
		return clip, "", fmt.Sprintf("from (%s) is past the end of recording %s: it lasts %s, from %s to %s",
			q.Get("from"), in.ID, seconds(dur), in.Start.Format(time.RFC3339Nano), in.End.Format(time.RFC3339Nano))
	}
	if dur > 0 && to >= dur {
		to = 0 // to the end
	}
	clip = recorder.Clip{From: from, To: to}
	name = in.ID + ".mp4"
	if clip != (recorder.Clip{}) {
		end := "end"
		if to > 0 {
			end = seconds(to)
		}
		name = in.ID + "_" + seconds(from) + "-" + end + ".mp4"
	}
	return clip, name, ""
}

// Errors of offsetFrom.
var (
	errOffsetRange  = errors.New("seconds out of range")
	errOffsetSyntax = errors.New("neither seconds nor an RFC 3339 time")
)

// offsetFrom reads v, seconds after start ("2.5") or an RFC 3339 time,
// as an offset from start: the bounds of a recording's clip, a meeting's
// and an export's. Seconds must be 0 to 1e9 (errOffsetRange); anything
// else is errOffsetSyntax.
func offsetFrom(v string, start time.Time) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs < 0 || secs > 1e9 {
			return 0, errOffsetRange
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, errOffsetSyntax
	}
	return t.Sub(start), nil
}

// clipBound reads bound name of a clip of what ("recording", "meeting")
// that began at start; detail says what is wrong, with example (seconds)
// as a sample.
func clipBound(name, v string, start time.Time, what string, example time.Duration) (time.Duration, string) {
	d, err := offsetFrom(v, start)
	sample := strconv.FormatFloat(example.Seconds(), 'f', -1, 64)
	switch {
	case errors.Is(err, errOffsetRange):
		return 0, fmt.Sprintf("%s must be 0 or more seconds from the %s's start (such as %s), or an RFC 3339 time; got %q", name, what, sample, v)
	case err != nil:
		return 0, fmt.Sprintf("%s must be seconds from the %s's start (such as %s) or an RFC 3339 time (such as %s); got %q",
			name, what, sample, start.Add(example).Format(time.RFC3339), v)
	}
	return d, ""
}

// seconds writes d as seconds, to the millisecond: "2.5s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Round(time.Millisecond).Seconds(), 'f', -1, 64) + "s"
}
