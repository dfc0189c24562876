package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Problem is an RFC 9457 error body: what went wrong, in a sentence a
// person can act on.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// problem writes a problem+json response.
func problem(c echo.Context, status int, detail string) error {
	body, _ := json.Marshal(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail})
	return c.Blob(status, "application/problem+json", body)
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
	_ = problem(c, status, detail)
}
