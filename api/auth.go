package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// AuthConfig holds the tokens. Auth is off while no token is configured;
// once any is, every media and mutating endpoint requires one.
type AuthConfig struct {
	// PublishTokens may publish any stream.
	PublishTokens []string
	// StreamTokens maps a stream name to a token that may publish it only
	// (an OBS "stream key" per channel).
	StreamTokens map[string]string
	// ReadTokens may watch (WHEP, HLS, RTSP).
	ReadTokens []string
	// AdminTokens may do everything, including the API's mutations.
	AdminTokens []string
	// PublicRead lets anyone watch while publishing stays protected.
	PublicRead bool
	// JWT accepts signed tokens with stream and action claims (jwt.go).
	JWT JWTConfig
}

// Enabled reports whether any token is configured.
func (a AuthConfig) Enabled() bool {
	return len(a.PublishTokens)+len(a.StreamTokens)+len(a.ReadTokens)+len(a.AdminTokens) > 0 || a.JWT.enabled()
}

// Prepare checks the configuration and reads the JWT key; New calls it
// for the HTTP server, and whoever passes AllowsRead elsewhere calls it first.
func (a *AuthConfig) Prepare() error { return a.JWT.prepare() }

// AllowsRead reports whether token may watch stream. It is for outputs
// served outside this package (RTSP), so that every way of watching has
// the same rules: read, publish and admin tokens, a stream's own token,
// JWT, and PublicRead.
func (a AuthConfig) AllowsRead(token, stream string) bool { return a.allows(token, actionRead, stream) }

// action is what a request wants to do.
type action int

const (
	actionPublish action = iota
	actionRead
	actionAdmin
)

// allows reports whether token may perform act on stream.
func (a AuthConfig) allows(token string, act action, stream string) bool {
	if !a.Enabled() || (act == actionRead && a.PublicRead) {
		return true
	}
	if token == "" {
		return false
	}
	if a.JWT.allows(token, act, stream) {
		return true
	}
	ok := anyMatch(token, a.AdminTokens)
	switch act {
	case actionPublish:
		ok = anyMatch(token, a.PublishTokens) || ok
		if t, found := a.StreamTokens[stream]; found {
			ok = tokenEqual(token, t) || ok
		}
	case actionRead:
		ok = anyMatch(token, a.ReadTokens) || anyMatch(token, a.PublishTokens) || ok
		if t, found := a.StreamTokens[stream]; found {
			ok = tokenEqual(token, t) || ok
		}
	}
	return ok
}

// anyMatch compares against every token, without stopping early, so the
// time taken does not tell which one matched.
func anyMatch(token string, tokens []string) bool {
	ok := false
	for _, t := range tokens {
		ok = tokenEqual(token, t) || ok
	}
	return ok
}

// tokenEqual compares in constant time. Hashing first makes the time
// independent of the tokens' lengths too.
func tokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// bearerToken reads "Authorization: Bearer <token>"; browsers' players that
// cannot set headers (HLS in a <video>) may pass ?token= instead.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return r.URL.Query().Get("token")
}

// require checks the request's token for act on the route's stream.
func (s *Server) require(act action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s.cfg.Auth.allows(bearerToken(c.Request()), act, c.Param("stream")) {
				return next(c)
			}
			if bearerToken(c.Request()) == "" {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="reel"`)
				return problem(c, http.StatusUnauthorized, "this endpoint needs a token: send Authorization: Bearer <token>")
			}
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="reel", error="invalid_token"`)
			return problem(c, http.StatusUnauthorized, "the bearer token is not valid for this stream and action")
		}
	}
}
