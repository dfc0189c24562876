package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/ingest"
)

// peerSession is what PATCH and DELETE need of a WHIP or WHEP session.
type peerSession interface {
	ETag() string
	Patch(ctx context.Context, ifMatch string, body []byte) ([]byte, string, error)
	Close()
	// Done is closed when the session has ended.
	Done() <-chan struct{}
}

// signaling is one RFC 9725 resource family: /whip or /whep. Both follow
// the same rules, so they share these handlers.
type signaling struct {
	prefix string // "/whip" or "/whep"
	act    action
	open   func(ctx context.Context, stream string, offer []byte, remote string) (id string, answer []byte, etag string, err error)
	lookup func(stream, id string) (peerSession, error)
	ice    func() []string
}

var streamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$`)

const (
	sdpType     = "application/sdp"
	sdpFragType = "application/trickle-ice-sdpfrag"
	// answerTimeout bounds ICE gathering for an answer.
	answerTimeout = 10 * time.Second
)

func (g *signaling) post(c echo.Context) error {
	name := c.Param("stream")
	if !streamName.MatchString(name) {
		return problem(c, http.StatusBadRequest, "stream names are 1-128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit")
	}
	if !hasContentType(c.Request(), sdpType) {
		return problem(c, http.StatusUnsupportedMediaType, "the offer must be sent with Content-Type: application/sdp")
	}
	offer, answered, err := readBody(c, ingest.MaxSDPSize)
	if answered {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), answerTimeout)
	defer cancel()
	id, answer, etag, err := g.open(ctx, name, offer, c.RealIP())
	if err != nil {
		return signalingError(c, err)
	}
	h := c.Response().Header()
	h.Set("Location", g.prefix+"/"+name+"/"+id)
	h.Set("ETag", etag)
	h.Set("Accept-Patch", sdpFragType)
	for _, u := range g.ice() {
		h.Add("Link", fmt.Sprintf(`<%s>; rel="ice-server"`, u))
	}
	return c.Blob(http.StatusCreated, sdpType, answer)
}

func (g *signaling) patch(c echo.Context) error {
	sess, err := g.lookup(c.Param("stream"), c.Param("session"))
	if err != nil {
		return signalingError(c, err)
	}
	if !hasContentType(c.Request(), sdpFragType) {
		return problem(c, http.StatusUnsupportedMediaType, "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
	}
	body, answered, err := readBody(c, 16<<10)
	if answered {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), answerTimeout)
	defer cancel()
	answer, etag, err := sess.Patch(ctx, c.Request().Header.Get("If-Match"), body)
	if err != nil {
		return signalingError(c, err)
	}
	c.Response().Header().Set("ETag", etag)
	if answer == nil {
		return c.NoContent(http.StatusNoContent)
	}
	return c.Blob(http.StatusOK, sdpFragType, answer)
}

func (g *signaling) delete(c echo.Context) error {
	sess, err := g.lookup(c.Param("stream"), c.Param("session"))
	if err != nil {
		return signalingError(c, err)
	}
	sess.Close()
	return c.NoContent(http.StatusOK)
}

// options answers CORS preflights and tells WHIP clients what POST takes.
func (g *signaling) options(c echo.Context) error {
	h := c.Response().Header()
	if c.Param("session") == "" {
		h.Set("Accept-Post", sdpType)
		h.Set("Allow", "OPTIONS, GET, POST")
	} else {
		h.Set("Accept-Patch", sdpFragType)
		h.Set("Allow", "OPTIONS, PATCH, DELETE")
	}
	return c.NoContent(http.StatusNoContent)
}

// get answers a probe of the endpoint; some clients check it exists.
func (g *signaling) get(c echo.Context) error { return c.NoContent(http.StatusNoContent) }

func (g *signaling) routes(e *echo.Echo, s *Server) {
	auth := s.require(g.act)
	// Limits (limits.go): the request rate first, so that guessing tokens
	// is slowed too; session slots only once the token is good.
	rate, body := s.lim.rate, s.lim.body
	e.OPTIONS(g.prefix+"/:stream", g.options)
	e.GET(g.prefix+"/:stream", g.get)
	e.HEAD(g.prefix+"/:stream", g.get)
	e.POST(g.prefix+"/:stream", g.post, rate, body, auth, s.lim.sessions(g.act == actionPublish, g.lookup))
	e.OPTIONS(g.prefix+"/:stream/:session", g.options)
	e.PATCH(g.prefix+"/:stream/:session", g.patch, rate, body, auth)
	e.DELETE(g.prefix+"/:stream/:session", g.delete, rate, auth)
}

// signalingError maps session errors to RFC 9725 status codes.
func signalingError(c echo.Context, err error) error {
	var oe *ingest.OfferError
	switch {
	case errors.As(err, &oe) && oe.Unprocessable:
		return problem(c, http.StatusUnprocessableEntity, oe.Msg)
	case errors.As(err, &oe):
		return problem(c, http.StatusBadRequest, oe.Msg)
	case errors.Is(err, ingest.ErrStreamLive):
		return problem(c, http.StatusConflict, "someone is already publishing this stream; stop that publisher first or use another stream name")
	case errors.Is(err, whep.ErrNotLive):
		c.Response().Header().Set("Retry-After", "5")
		return problem(c, http.StatusConflict, "nobody is publishing this stream right now; try again when it is live")
	case errors.Is(err, ingest.ErrSessionNotFound):
		return problem(c, http.StatusNotFound, "no such session: it has ended or never existed")
	case errors.Is(err, ingest.ErrPreconditionRequired):
		return problem(c, http.StatusPreconditionRequired, "send If-Match with the ETag from the POST response (or * for an ICE restart)")
	case errors.Is(err, ingest.ErrPreconditionFailed):
		return problem(c, http.StatusPreconditionFailed, "If-Match does not match this session's current ETag; an ICE restart may have changed it")
	case errors.Is(err, context.DeadlineExceeded):
		c.Response().Header().Set("Retry-After", "2")
		return problem(c, http.StatusServiceUnavailable, "the server could not prepare its ICE candidates in time; try again")
	}
	c.Logger().Error(err)
	return problem(c, http.StatusInternalServerError, "the session could not be set up; see the server log")
}

func hasContentType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

// readBody reads at most limit bytes. When the body is unreadable or too
// large it answers the request itself (400, 413) and reports answered.
func readBody(c echo.Context, limit int64) (body []byte, answered bool, err error) {
	body, err = io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, true, problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit))
	}
	if err != nil {
		return nil, true, problem(c, http.StatusBadRequest, "the request body could not be read")
	}
	if int64(len(body)) > limit {
		return nil, true, problem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit))
	}
	return body, false, nil
}
