package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/access"
)

// request is the access.Request of an HTTP request on the route's stream.
func (s *Server) request(c echo.Context, act access.Action, proto access.Protocol) access.Request {
	return s.requestFor(c, act, proto, c.Param("stream"))
}

// requestFor is request on a named stream ("" for the gateway as a whole).
func (s *Server) requestFor(c echo.Context, act access.Action, proto access.Protocol, stream string) access.Request {
	return access.Request{Action: act, Stream: stream, Protocol: proto,
		Token: access.BearerToken(c.Request()), Addr: s.gate.ClientIP(c.Request())}
}

// require checks the request's token for act on the route's stream.
func (s *Server) require(act access.Action, proto access.Protocol) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s.authorize(c, s.request(c, act, proto)) {
				return next(c)
			}
			return nil
		}
	}
}

// authorize asks the gate about r; when refused it answers the request
// itself (401 with a challenge, or 429 after too many wrong tokens) and
// reports false.
func (s *Server) authorize(c echo.Context, r access.Request) bool {
	err := s.gate.Authorize(r)
	var le *access.LimitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &le):
		_ = refuse(c, le)
	case errors.Is(err, access.ErrNoToken):
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="reel"`)
		_ = writeProblem(c, http.StatusUnauthorized, "this endpoint needs a token: send Authorization: Bearer <token>")
	default:
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="reel", error="invalid_token"`)
		_ = writeProblem(c, http.StatusUnauthorized, "the bearer token is not valid for this stream and action")
	}
	return false
}

// refuse answers a request a limit turned away: 429 when the client used
// up its own share, 503 when the gateway is full, with Retry-After.
func refuse(c echo.Context, e *access.LimitError) error {
	secs := max(int(math.Ceil(e.Retry.Seconds())), 1)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	status := http.StatusServiceUnavailable
	if e.PerClient {
		status = http.StatusTooManyRequests
	}
	return writeProblem(c, status, e.Detail)
}

// rateLimit limits POST, PATCH and DELETE per address. It runs before
// auth, so guessing tokens is slowed down too.
func (s *Server) rateLimit(proto access.Protocol) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			var le *access.LimitError
			if err := s.gate.AllowRequest(s.request(c, 0, proto)); errors.As(err, &le) {
				return refuse(c, le)
			}
			return next(c)
		}
	}
}

// bodyLimit refuses bodies over Limits.MaxBodyBytes, by Content-Length at
// once and otherwise while reading (readBody answers 413).
func (s *Server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		limit := s.gate.Limits().MaxBodyBytes
		if limit <= 0 {
			return next(c)
		}
		r := c.Request()
		if r.ContentLength > limit {
			s.gate.CountRejection("body_size")
			s.cfg.Logger.Warn("request refused: limit reached", "limit", "body_size", "peer", s.gate.ClientIP(r), "bytes", r.ContentLength)
			return writeProblem(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", limit))
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}
