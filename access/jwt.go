package access

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig lets a separate service hand out short-lived tokens, signed
// with HS256 (a shared secret) or RS256 (we hold the public key only),
// alongside the static token lists. A token carries:
//
//	"stream": the stream it is good for, or "*" for any
//	"action": "publish", "read" or "admin" (or a list of them)
//	"exp":    required; expired tokens are refused
//
// A publish token may also read its stream, as static publish tokens may.
// Admin is scoped like the other actions: admin on "*" is the global
// admin; admin on stream x administers x only (kicks it, deletes its
// recordings) and nothing that is not about one stream. A token without
// a stream claim is refused, whatever its action.
type JWTConfig struct {
	// HS256Secret, if set, verifies HS256 tokens.
	HS256Secret string
	// RS256PublicKeyPEM, if set, verifies RS256 tokens: a PEM "PUBLIC KEY"
	// (PKIX) or "RSA PUBLIC KEY" (PKCS #1).
	RS256PublicKeyPEM []byte

	rsaKey *rsa.PublicKey
}

func (j *JWTConfig) enabled() bool { return j.HS256Secret != "" || len(j.RS256PublicKeyPEM) > 0 }

// prepare parses the public key once, at startup, so a bad key is a
// configuration error rather than every request failing.
func (j *JWTConfig) prepare() error {
	if len(j.RS256PublicKeyPEM) == 0 {
		return nil
	}
	k, err := jwt.ParseRSAPublicKeyFromPEM(j.RS256PublicKeyPEM)
	if err != nil {
		return fmt.Errorf("reading the JWT RS256 public key: %w", err)
	}
	j.rsaKey = k
	return nil
}

// jwtClaims are the claims Reel reads.
type jwtClaims struct {
	Stream string `json:"stream"`
	// Meeting and Participant are another way to say stream: meeting
	// alone is "{meeting}/*", both are "{meeting}/{participant}".
	Meeting     string           `json:"meeting"`
	Participant string           `json:"participant"`
	Action      jwt.ClaimStrings `json:"action"`
	jwt.RegisteredClaims
}

// scope is the streams the claims are good for.
func (c *jwtClaims) scope() string {
	switch {
	case c.Stream != "":
		return c.Stream
	case c.Meeting != "" && c.Participant != "":
		return c.Meeting + "/" + c.Participant
	case c.Meeting != "":
		return c.Meeting + "/*"
	}
	return ""
}

// allows reports whether token is a valid JWT that permits act on stream.
// Only the algorithms whose key is configured are accepted, so an RS256
// public key can never be used as an HS256 secret, and "none" never works.
func (j *JWTConfig) allows(token string, act Action, stream string) bool {
	if !j.enabled() || strings.Count(token, ".") != 2 {
		return false
	}
	var methods []string
	if j.HS256Secret != "" {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if j.rsaKey != nil {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	if len(methods) == 0 {
		return false
	}
	var c jwtClaims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return []byte(j.HS256Secret), nil
		case jwt.SigningMethodRS256.Alg():
			return j.rsaKey, nil
		}
		return nil, errors.New("unexpected signing method")
	}, jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return false
	}
	// stream is "" for what concerns no single stream (the streams list,
	// metrics, profiles): only "*" covers it.
	if scope := c.scope(); scope == "" || !ScopeCovers(scope, stream) {
		return false
	}
	for _, a := range c.Action {
		switch {
		case a == "admin":
			return true
		case a == "publish" && (act == Publish || act == Read):
			return true
		case a == "read" && act == Read:
			return true
		}
	}
	return false
}
