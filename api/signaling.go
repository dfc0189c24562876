package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
	"github.com/reel-gateway/reel/egress/whep"
	"github.com/reel-gateway/reel/live"
	"github.com/reel-gateway/reel/rtc"
)

// peerSession is what PATCH and DELETE need of a WHIP or WHEP session.
type peerSession interface {
	ETag() string
	Patch(ctx context.Context, ifMatch string, body []byte) ([]byte, string, error)
	Close()
	// Connected is closed when the peer first connects (ICE and DTLS).
	Connected() <-chan struct{}
	// Done is closed when the session has ended.
	Done() <-chan struct{}
}

// signaling is one RFC 9725 resource family: /whip or /whep. Both follow
// the same rules, so they share these handlers.
type signaling struct {
	s      *Server
	prefix string // "/whip" or "/whep"
	act    access.Action
	proto  access.Protocol
	open   func(ctx context.Context, stream string, offer []byte, remote string, query url.Values) (id string, answer []byte, etag string, err error)
	lookup func(stream, id string) (peerSession, error)
	ice    func() []string

	// owners binds each live session's URL to the credential that created
	// it: session id -> access.Fingerprint of the POST's token.
	mu     sync.Mutex
	owners map[string]string
}

const (
	sdpType     = "application/sdp"
	sdpFragType = "application/trickle-ice-sdpfrag"
	// answerTimeout bounds ICE gathering for an answer.
	answerTimeout = 10 * time.Second
)

// post opens a session. The whole offer is read before a slot is taken,
// so a client that sends its body slowly holds a connection (until the
// server's read timeout), never one of the gateway's session slots.
func (g *signaling) post(c echo.Context) error {
	name := c.Param("stream")
	if !live.ValidName(name) {
		return writeProblem(c, http.StatusBadRequest, "stream names are 1-128 letters, digits, '.', '_', '~' or '-', starting with a letter or digit, or two such parts joined by '/' ({meeting}/{participant})")
	}
	// In a cluster, another node may serve this stream (cluster.go).
	if answered, err := g.s.routeCluster(c, g.prefix, name); answered {
		return err
	}
	if !hasContentType(c.Request(), sdpType) {
		return writeProblem(c, http.StatusUnsupportedMediaType, "the offer must be sent with Content-Type: application/sdp")
	}
	offer, answered, err := g.s.readBody(c, rtc.MaxSDPSize)
	if answered {
		return err
	}
	req := g.s.request(c, g.act, g.proto)
	slot, err := g.s.gate.AdmitPending(req)
	if err != nil {
		var le *access.LimitError
		if errors.As(err, &le) {
			return refuse(c, le)
		}
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), answerTimeout)
	defer cancel()
	id, answer, etag, err := g.open(ctx, name, offer, req.Addr, c.QueryParams())
	if err != nil {
		slot.Release()
		return g.fail(c, err)
	}
	if sess, err := g.lookup(name, id); err == nil {
		g.hold(sess, id, slot, access.Fingerprint(req.Token))
	} else {
		slot.Release() // it ended already
	}
	h := c.Response().Header()
	h.Set("Location", g.s.absoluteURL(g.prefix+"/"+name+"/"+id))
	h.Set("ETag", etag)
	h.Set("Accept-Patch", sdpFragType)
	for _, u := range g.ice() {
		h.Add("Link", fmt.Sprintf(`<%s>; rel="ice-server"`, u))
	}
	return c.Blob(http.StatusCreated, sdpType, answer)
}

// hold keeps slot while sess lives, pending until it connects, and binds
// the session's URL to its creator's credential.
func (g *signaling) hold(sess peerSession, id string, slot *access.Slot, owner string) {
	g.mu.Lock()
	if g.owners == nil {
		g.owners = map[string]string{}
	}
	g.owners[id] = owner
	g.mu.Unlock()
	go func() {
		select {
		case <-sess.Connected():
			slot.Connected()
			<-sess.Done()
		case <-sess.Done():
		}
		slot.Release()
		g.mu.Lock()
		delete(g.owners, id)
		g.mu.Unlock()
	}()
}

// session finds the route's session and checks that the request may act
// on it: it must carry the credential that created it, or an admin token
// for its stream. Otherwise it answers the request itself (404, 403).
func (g *signaling) session(c echo.Context) (peerSession, bool) {
	stream, id := c.Param("stream"), c.Param("session")
	sess, err := g.lookup(stream, id)
	if err != nil {
		if g.s.proxySession(c, stream) {
			return nil, false
		}
		_ = g.fail(c, err)
		return nil, false
	}
	token := access.BearerToken(c.Request())
	g.mu.Lock()
	owner, known := g.owners[id]
	g.mu.Unlock()
	if (known && owner == access.Fingerprint(token)) || g.s.gate.IsAdmin(token, stream) {
		return sess, true
	}
	g.s.cfg.Logger.Warn("session request refused: not its creator's credential", "stream", stream, "session", id,
		"peer", g.s.gate.ClientIP(c.Request()), "method", c.Request().Method)
	_ = writeProblem(c, http.StatusForbidden, "this session was created with another credential: only its creator, or an admin of the stream, may change or end it")
	return nil, false
}

func (g *signaling) patch(c echo.Context) error {
	sess, ok := g.session(c)
	if !ok {
		return nil
	}
	if !hasContentType(c.Request(), sdpFragType) {
		return writeProblem(c, http.StatusUnsupportedMediaType, "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
	}
	body, answered, err := g.s.readBody(c, 16<<10)
	if answered {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), answerTimeout)
	defer cancel()
	answer, etag, err := sess.Patch(ctx, c.Request().Header.Get("If-Match"), body)
	if err != nil {
		return g.fail(c, err)
	}
	c.Response().Header().Set("ETag", etag)
	if answer == nil {
		return c.NoContent(http.StatusNoContent)
	}
	return c.Blob(http.StatusOK, sdpFragType, answer)
}

func (g *signaling) delete(c echo.Context) error {
	sess, ok := g.session(c)
	if !ok {
		return nil
	}
	sess.Close()
	return c.NoContent(http.StatusOK)
}

// options answers CORS preflights and tells WHIP clients what POST takes.
// Two segments are both a grouped endpoint and a flat session: it answers
// for both.
func (g *signaling) options(c echo.Context) error {
	h := c.Response().Header()
	stream, session := c.Param("stream"), c.Param("session")
	endpoint := session == "" || (!strings.Contains(stream, "/") && live.ValidName(stream+"/"+session))
	allow := []string{"OPTIONS"}
	if endpoint {
		h.Set("Accept-Post", sdpType)
		allow = append(allow, "GET", "POST")
	}
	if session != "" {
		h.Set("Accept-Patch", sdpFragType)
		allow = append(allow, "PATCH", "DELETE")
	}
	h.Set("Allow", strings.Join(allow, ", "))
	return c.NoContent(http.StatusNoContent)
}

// get answers a probe of the endpoint; some clients check it exists.
func (g *signaling) get(c echo.Context) error { return c.NoContent(http.StatusNoContent) }

func (g *signaling) routes(e *echo.Echo) {
	s := g.s
	auth := s.require(g.act, g.proto)
	// Limits: the request rate first, so that guessing tokens is slowed
	// too; session slots only once the token is good and the offer read.
	rate, body := s.rateLimit(g.proto), s.bodyLimit
	// A stream name is flat ("studio") or grouped ("board-42/alice"): the
	// endpoint has one or two segments, the session URL one more. Two
	// segments are a grouped endpoint for GET, HEAD and POST and a flat
	// session for PATCH and DELETE; OPTIONS answers for both.
	e.OPTIONS(g.prefix+"/:stream", g.options)
	e.GET(g.prefix+"/:stream", g.get)
	e.HEAD(g.prefix+"/:stream", g.get)
	e.POST(g.prefix+"/:stream", g.post, rate, body, auth)
	e.GET(g.prefix+"/:group/:participant", g.get, grouped)
	e.HEAD(g.prefix+"/:group/:participant", g.get, grouped)
	e.POST(g.prefix+"/:group/:participant", g.post, grouped, rate, body, auth)
	e.OPTIONS(g.prefix+"/:stream/:session", g.options)
	e.PATCH(g.prefix+"/:stream/:session", g.patch, rate, body, auth)
	e.DELETE(g.prefix+"/:stream/:session", g.delete, rate, auth)
	e.OPTIONS(g.prefix+"/:group/:participant/:session", g.options, grouped)
	e.PATCH(g.prefix+"/:group/:participant/:session", g.patch, grouped, rate, body, auth)
	e.DELETE(g.prefix+"/:group/:participant/:session", g.delete, grouped, rate, auth)
	e.Any(g.prefix+"/*", func(c echo.Context) error {
		return writeProblem(c, http.StatusNotFound, "nothing is served at "+c.Request().URL.Path+
			": a stream name has at most one group level, "+g.prefix+"/{meeting}/{participant}")
	})
}

// grouped joins a route's :group and :participant into the "stream"
// parameter every handler and middleware reads, so a grouped name is
// handled exactly as a flat one.
func grouped(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		names := []string{"stream"}
		values := []string{c.Param("group") + "/" + c.Param("participant")}
		if s := c.Param("session"); s != "" {
			names, values = append(names, "session"), append(values, s)
		}
		c.SetParamNames(names...)
		c.SetParamValues(values...)
		return next(c)
	}
}

// fail maps session errors to RFC 9725 status codes.
func (g *signaling) fail(c echo.Context, err error) error {
	var oe *rtc.OfferError
	var ce *rtc.CandidateLimitError
	switch {
	case errors.As(err, &ce):
		g.s.gate.CountRejection("ice_candidates")
		g.s.cfg.Logger.Warn("request refused: limit reached", "limit", "ice_candidates", "peer", g.s.gate.ClientIP(c.Request()),
			"protocol", g.proto, "stream", c.Param("stream"), "candidates", ce.Count)
		return writeProblem(c, http.StatusUnprocessableEntity, ce.Error())
	case errors.As(err, &oe) && oe.Unprocessable:
		return writeProblem(c, http.StatusUnprocessableEntity, oe.Msg)
	case errors.As(err, &oe):
		return writeProblem(c, http.StatusBadRequest, oe.Msg)
	case errors.Is(err, live.ErrStreamLive):
		return writeProblem(c, http.StatusConflict, "someone is already publishing this stream; stop that publisher first or use another stream name")
	case errors.Is(err, whep.ErrNotLive):
		c.Response().Header().Set("Retry-After", "5")
		return writeProblem(c, http.StatusConflict, "nobody is publishing this stream right now; try again when it is live")
	case errors.Is(err, rtc.ErrSessionNotFound):
		return writeProblem(c, http.StatusNotFound, "no such session: it has ended or never existed")
	case errors.Is(err, rtc.ErrPreconditionRequired):
		return writeProblem(c, http.StatusPreconditionRequired, "send If-Match with the ETag from the POST response (or * for an ICE restart)")
	case errors.Is(err, rtc.ErrPreconditionFailed):
		return writeProblem(c, http.StatusPreconditionFailed, "If-Match does not match this session's current ETag; an ICE restart may have changed it")
	case errors.Is(err, rtc.ErrEndedDuringSetup), errors.Is(err, rtc.ErrShuttingDown):
		c.Response().Header().Set("Retry-After", "2")
		return writeProblem(c, http.StatusServiceUnavailable, err.Error()+"; try again")
	case errors.Is(err, context.DeadlineExceeded):
		c.Response().Header().Set("Retry-After", "2")
		return writeProblem(c, http.StatusServiceUnavailable, "the server could not prepare its ICE candidates in time; try again")
	}
	g.s.cfg.Logger.Error("session could not be set up", "stream", c.Param("stream"), "error", err)
	return writeProblem(c, http.StatusInternalServerError, "the session could not be set up; see the server log")
}

func hasContentType(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && strings.EqualFold(mt, want)
}

// readBody reads at most limit bytes. When the body is unreadable or too
// large it answers the request itself (400, 413) and reports answered; a
// body past Limits.MaxBodyBytes is counted and logged as a refusal.
func (s *Server) readBody(c echo.Context, limit int64) (body []byte, answered bool, err error) {
	body, err = io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		s.gate.CountRejection("body_size")
		s.cfg.Logger.Warn("request refused: limit reached", "limit", "body_size", "peer", s.gate.ClientIP(c.Request()))
		return nil, true, writeProblem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", tooLarge.Limit))
	}
	if err != nil {
		return nil, true, writeProblem(c, http.StatusBadRequest, "the request body could not be read")
	}
	if int64(len(body)) > limit {
		return nil, true, writeProblem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit))
	}
	return body, false, nil
}
