package api

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	a := AuthConfig{JWT: JWTConfig{HS256Secret: "s3cret-s3cret-s3cret-s3cret-s3cret", RS256PublicKeyPEM: pubPEM}}
	if err := a.JWT.prepare(); err != nil {
		t.Fatal(err)
	}
	if !a.Enabled() {
		t.Fatal("JWT alone does not turn auth on")
	}
	exp := time.Now().Add(time.Hour).Unix()
	hs := func(c jwt.MapClaims) string { return signed(t, jwt.SigningMethodHS256, []byte(a.JWT.HS256Secret), c) }
	rs := func(c jwt.MapClaims) string { return signed(t, jwt.SigningMethodRS256, priv, c) }
	pubA := hs(jwt.MapClaims{"stream": "a", "action": "publish", "exp": exp})
	none := signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"stream": "a", "action": "publish", "exp": exp})
	// The classic confusion: HS256 signed with the RSA public key as secret.
	confused := signed(t, jwt.SigningMethodHS256, pubPEM, jwt.MapClaims{"stream": "*", "action": "admin", "exp": exp})
	otherKey := signed(t, jwt.SigningMethodHS256, []byte("not-the-secret"), jwt.MapClaims{"stream": "a", "action": "publish", "exp": exp})
	for _, c := range []struct {
		name   string
		token  string
		act    action
		stream string
		want   bool
	}{
		{"publish own stream", pubA, actionPublish, "a", true},
		{"publish token reads", pubA, actionRead, "a", true},
		{"publish other stream", pubA, actionPublish, "b", false},
		{"publish is not admin", pubA, actionAdmin, "a", false},
		{"read token", hs(jwt.MapClaims{"stream": "a", "action": "read", "exp": exp}), actionRead, "a", true},
		{"read cannot publish", hs(jwt.MapClaims{"stream": "a", "action": "read", "exp": exp}), actionPublish, "a", false},
		{"any stream", rs(jwt.MapClaims{"stream": "*", "action": []string{"read", "publish"}, "exp": exp}), actionPublish, "zz", true},
		{"rs256 admin", rs(jwt.MapClaims{"action": "admin", "exp": exp}), actionAdmin, "", true},
		{"expired", hs(jwt.MapClaims{"stream": "a", "action": "publish", "exp": time.Now().Add(-time.Minute).Unix()}), actionPublish, "a", false},
		{"no exp", hs(jwt.MapClaims{"stream": "a", "action": "publish"}), actionPublish, "a", false},
		{"no stream claim", hs(jwt.MapClaims{"action": "publish", "exp": exp}), actionPublish, "a", false},
		{"alg none", none, actionPublish, "a", false},
		{"public key as HMAC secret", confused, actionAdmin, "", false},
		{"wrong secret", otherKey, actionPublish, "a", false},
		{"garbage", "a.b.c", actionPublish, "a", false},
	} {
		if got := a.allows(c.token, c.act, c.stream); got != c.want {
			t.Errorf("%s: allows = %v, want %v", c.name, got, c.want)
		}
	}

	// Only RS256 configured: an HS256 token is refused whatever its key.
	rsOnly := AuthConfig{JWT: JWTConfig{RS256PublicKeyPEM: pubPEM}}
	if err := rsOnly.JWT.prepare(); err != nil {
		t.Fatal(err)
	}
	if rsOnly.allows(pubA, actionPublish, "a") || rsOnly.allows(confused, actionAdmin, "") {
		t.Error("RS256-only config accepted an HS256 token")
	}
	if err := (&JWTConfig{RS256PublicKeyPEM: []byte("nope")}).prepare(); err == nil {
		t.Error("a bad public key is not a configuration error")
	}
}

// TestJWTOverHTTP: a JWT works as a bearer token on a protected route, and
// static tokens keep working alongside.
func TestJWTOverHTTP(t *testing.T) {
	s := &Server{cfg: Config{Auth: AuthConfig{AdminTokens: []string{"static"}, JWT: JWTConfig{HS256Secret: "k"}}}}
	h := s.require(actionAdmin)(func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	tok := signed(t, jwt.SigningMethodHS256, []byte("k"), jwt.MapClaims{"action": "admin", "exp": time.Now().Add(time.Minute).Unix()})
	for bearer, want := range map[string]int{tok: 204, "static": 204, "wrong": 401, "": 401} {
		req := httptest.NewRequest(http.MethodDelete, "/x", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		rec := httptest.NewRecorder()
		e := echo.New()
		_ = h(e.NewContext(req, rec))
		if rec.Code != want {
			t.Errorf("bearer %.10q: %d, want %d", bearer, rec.Code, want)
		}
	}
}
