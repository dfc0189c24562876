package access

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
	a := Config{JWT: JWTConfig{HS256Secret: "s3cret-s3cret-s3cret-s3cret-s3cret", RS256PublicKeyPEM: pubPEM}}
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
		act    Action
		stream string
		want   bool
	}{
		{"publish own stream", pubA, Publish, "a", true},
		{"publish token reads", pubA, Read, "a", true},
		{"publish other stream", pubA, Publish, "b", false},
		{"publish is not admin", pubA, Admin, "a", false},
		{"read token", hs(jwt.MapClaims{"stream": "a", "action": "read", "exp": exp}), Read, "a", true},
		{"read cannot publish", hs(jwt.MapClaims{"stream": "a", "action": "read", "exp": exp}), Publish, "a", false},
		{"any stream", rs(jwt.MapClaims{"stream": "*", "action": []string{"read", "publish"}, "exp": exp}), Publish, "zz", true},
		{"rs256 global admin", rs(jwt.MapClaims{"stream": "*", "action": "admin", "exp": exp}), Admin, "", true},
		{"global admin, any stream", rs(jwt.MapClaims{"stream": "*", "action": "admin", "exp": exp}), Admin, "b", true},
		{"admin without stream claim", rs(jwt.MapClaims{"action": "admin", "exp": exp}), Admin, "", false},
		{"admin without stream claim, on a stream", hs(jwt.MapClaims{"action": "admin", "exp": exp}), Admin, "a", false},
		{"stream admin, own stream", hs(jwt.MapClaims{"stream": "a", "action": "admin", "exp": exp}), Admin, "a", true},
		{"stream admin publishes own stream", hs(jwt.MapClaims{"stream": "a", "action": "admin", "exp": exp}), Publish, "a", true},
		{"stream admin, other stream", hs(jwt.MapClaims{"stream": "a", "action": "admin", "exp": exp}), Admin, "b", false},
		{"stream admin, gateway-wide", hs(jwt.MapClaims{"stream": "a", "action": "admin", "exp": exp}), Admin, "", false},
		{"stream reader, gateway-wide read", hs(jwt.MapClaims{"stream": "a", "action": "read", "exp": exp}), Read, "", false},
		{"expired", hs(jwt.MapClaims{"stream": "a", "action": "publish", "exp": time.Now().Add(-time.Minute).Unix()}), Publish, "a", false},
		{"no exp", hs(jwt.MapClaims{"stream": "a", "action": "publish"}), Publish, "a", false},
		{"no stream claim", hs(jwt.MapClaims{"action": "publish", "exp": exp}), Publish, "a", false},
		{"alg none", none, Publish, "a", false},
		{"public key as HMAC secret", confused, Admin, "", false},
		{"wrong secret", otherKey, Publish, "a", false},
		{"garbage", "a.b.c", Publish, "a", false},
	} {
		if got := a.allows(c.token, c.act, c.stream); got != c.want {
			t.Errorf("%s: allows = %v, want %v", c.name, got, c.want)
		}
	}

	// Only RS256 configured: an HS256 token is refused whatever its key.
	rsOnly := Config{JWT: JWTConfig{RS256PublicKeyPEM: pubPEM}}
	if err := rsOnly.JWT.prepare(); err != nil {
		t.Fatal(err)
	}
	if rsOnly.allows(pubA, Publish, "a") || rsOnly.allows(confused, Admin, "") {
		t.Error("RS256-only config accepted an HS256 token")
	}
	if err := (&JWTConfig{RS256PublicKeyPEM: []byte("nope")}).prepare(); err == nil {
		t.Error("a bad public key is not a configuration error")
	}
}

// A token may be scoped to a meeting: a stream token under
// "{meeting}/*", a JWT with a meeting claim (or stream "{meeting}/*");
// with a participant claim too, to that participant's stream alone.
func TestMeetingScopes(t *testing.T) {
	c := Config{StreamTokens: map[string]string{"board-42/*": "board-key", "board-42/alice": "alice-key"},
		JWT: JWTConfig{HS256Secret: "s3cret-s3cret-s3cret-s3cret-s3cret"}}
	if err := c.JWT.prepare(); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	hs := func(cl jwt.MapClaims) string {
		cl["exp"] = exp
		return signed(t, jwt.SigningMethodHS256, []byte(c.JWT.HS256Secret), cl)
	}
	meeting := hs(jwt.MapClaims{"meeting": "board-42", "action": "publish"})
	participant := hs(jwt.MapClaims{"meeting": "board-42", "participant": "bob", "action": "publish"})
	wildcard := hs(jwt.MapClaims{"stream": "board-42/*", "action": "read"})
	for _, tc := range []struct {
		name, token string
		act         Action
		stream      string
		want        bool
	}{
		{"meeting key publishes a participant", "board-key", Publish, "board-42/carol", true},
		{"meeting key reads the meeting", "board-key", Read, "board-42/*", true},
		{"meeting key is not another meeting's", "board-key", Publish, "board-43/carol", false},
		{"meeting key is not a flat stream's", "board-key", Publish, "board-42", false},
		{"participant key publishes itself", "alice-key", Publish, "board-42/alice", true},
		{"participant key is not another's", "alice-key", Publish, "board-42/bob", false},
		{"participant key does not read the meeting", "alice-key", Read, "board-42/*", false},
		{"JWT meeting claim", meeting, Publish, "board-42/dave", true},
		{"JWT meeting claim, other meeting", meeting, Publish, "board-7/dave", false},
		{"JWT participant claim", participant, Publish, "board-42/bob", true},
		{"JWT participant claim, other participant", participant, Publish, "board-42/alice", false},
		{"JWT stream board-42/*", wildcard, Read, "board-42/*", true},
		{"JWT stream board-42/* cannot publish", wildcard, Publish, "board-42/x", false},
		{"nothing but * covers the gateway", meeting, Read, "", false},
	} {
		if got := c.allows(tc.token, tc.act, tc.stream); got != tc.want {
			t.Errorf("%s: allows = %v, want %v", tc.name, got, tc.want)
		}
	}
}
