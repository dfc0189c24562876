package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/reel-gateway/reel/api/problem"
)

// Problem is the problem+json body every error is answered with.
type Problem = problem.Details

// writeProblem answers c with a problem+json body (package problem).
func writeProblem(c echo.Context, status int, detail string) error {
	problem.Write(c.Response(), status, detail)
	return nil
}

// httpErrorHandler turns every error echo sees (unknown route, wrong
// method, a panic caught by Recover) into problem+json.
func httpErrorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, detail := http.StatusInternalServerError, "the server failed to handle the request; see its log"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		detail = ""
		if msg, ok := he.Message.(string); ok && msg != http.StatusText(status) {
			detail = msg
		}
		switch status {
		case http.StatusNotFound:
			if detail == "" {
				detail = "nothing is served at " + c.Request().URL.Path
			}
		case http.StatusMethodNotAllowed:
			if detail == "" {
				detail = c.Request().Method + " is not allowed on " + c.Request().URL.Path
			}
		}
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = writeProblem(c, status, detail)
}
