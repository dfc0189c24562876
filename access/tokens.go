package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/netip"
	"strings"
)

// Config holds the tokens. Auth is off while no token is configured; once
// any is, every media and mutating request needs one.
type Config struct {
	// PublishTokens may publish any stream.
	PublishTokens []string
	// StreamTokens maps a stream name to a token that may publish it only
	// (an OBS "stream key" per channel).
	StreamTokens map[string]string
	// ReadTokens may watch (WHEP, HLS, RTSP).
	ReadTokens []string
	// AdminTokens may do everything, including the API's mutations.
	AdminTokens []string
	// PublicRead lets anyone watch, and read the streams API, while
	// publishing stays protected.
	PublicRead bool
	// PublicMetrics lets anyone read /metrics while auth is on.
	PublicMetrics bool
	// JWT accepts signed tokens with stream and action claims (jwt.go).
	JWT JWTConfig
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed (Gate.ClientIP); none by default.
	TrustedProxies []netip.Prefix
}

// Enabled reports whether any token is configured.
func (c *Config) Enabled() bool {
	return len(c.PublishTokens)+len(c.StreamTokens)+len(c.ReadTokens)+len(c.AdminTokens) > 0 || c.JWT.enabled()
}

// allows reports whether token may perform act on stream ("" for the
// gateway as a whole), by the tokens alone: Gate.Allows adds what is open
// without one.
func (c *Config) allows(token string, act Action, stream string) bool {
	if token == "" {
		return false
	}
	if c.JWT.allows(token, act, stream) {
		return true
	}
	ok := anyMatch(token, c.AdminTokens)
	switch act {
	case Publish:
		ok = anyMatch(token, c.PublishTokens) || ok
		ok = c.streamTokenMatch(token, stream) || ok
	case Read:
		ok = anyMatch(token, c.ReadTokens) || anyMatch(token, c.PublishTokens) || ok
		ok = c.streamTokenMatch(token, stream) || ok
	}
	return ok
}

// streamTokenMatch reports whether token is the stream token of a scope
// that covers stream: the stream's own, or its meeting's ("board-42/*").
func (c *Config) streamTokenMatch(token, stream string) bool {
	if stream == "" {
		return false
	}
	ok := false
	if t, found := c.StreamTokens[stream]; found {
		ok = tokenEqual(token, t)
	}
	if meeting, _, grouped := strings.Cut(stream, "/"); grouped {
		if t, found := c.StreamTokens[meeting+"/*"]; found {
			ok = tokenEqual(token, t) || ok
		}
	}
	return ok
}

// ScopeCovers reports whether a token's scope covers stream: "*" covers
// everything, "{meeting}/*" the meeting's participants and the meeting as
// a whole ("{meeting}/*", what the meetings archive asks for), any other
// scope that stream alone. The stream "" (the gateway as a whole) is
// covered by "*" only.
func ScopeCovers(scope, stream string) bool {
	switch {
	case scope == "*":
		return true
	case stream == "":
		return false
	case scope == stream:
		return true
	case strings.HasSuffix(scope, "/*"):
		return strings.HasPrefix(stream, strings.TrimSuffix(scope, "*"))
	}
	return false
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

// Fingerprint identifies a credential without keeping it: the hex SHA-256
// of token, "" for no token. A session remembers its creator's this way.
func Fingerprint(token string) string {
	if token == "" {
		return ""
	}
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
