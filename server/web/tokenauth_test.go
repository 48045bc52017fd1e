package web

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// TestTokenCredentialsStripped: a signed request reaches content as the
// token's user, without the token's headers.
func TestTokenCredentialsStripped(t *testing.T) {
	f := newFixture(t)
	f.srv.HandleFunc("/content/{guid}/", func(w http.ResponseWriter, r *http.Request) {
		StripCredentials(r)
		u, _ := UserFrom(r.Context())
		WriteJSON(w, http.StatusOK, map[string]any{"user": u.Username, "token": r.Header.Values(headerAuthToken),
			"signature": r.Header.Values(headerAuthSignature), "checksum": r.Header.Values(headerChecksum)})
	})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ctx := context.Background()
	tok := &store.Token{Token: "T0123456789abcdef0123456789abcdef", PublicKey: base64.StdEncoding.EncodeToString(der)}
	if err := f.st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := f.st.ClaimToken(ctx, tok.ID, f.users["viewer"].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().Format(http.TimeFormat)
	digest := sha1.Sum([]byte("GET\n/content/g/headers\n" + date + "\n" + emptyChecksum))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	a := f.do(t, "GET", "/content/g/headers", "", "", map[string]string{
		"Date": date, headerAuthToken: tok.Token, headerChecksum: emptyChecksum,
		headerAuthSignature: base64.StdEncoding.EncodeToString(sig),
	})
	var got struct {
		User                       string
		Token, Signature, Checksum []string
	}
	if err := json.Unmarshal([]byte(a.body), &got); err != nil || a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	if got.User != "viewer1" || len(got.Token)+len(got.Signature)+len(got.Checksum) != 0 {
		t.Fatalf("content saw user %q and token headers %v %v %v; want viewer1 and none", got.User, got.Token, got.Signature, got.Checksum)
	}
}

func TestLogURIRedactsURLPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"/__api__/repo/branches?url=https%3A%2F%2Fu%3Atok%40h%2Fr.git": "/__api__/repo/branches?url=https%3A%2F%2Fu%3AREDACTED%40h%2Fr.git",
		"/__api__/repo/branches?url=https://u:tok@h/r.git&x=1":         "/__api__/repo/branches?url=https%3A%2F%2Fu%3AREDACTED%40h%2Fr.git&x=1",
		"/__api__/v1/users?prefix=a@b":                                 "/__api__/v1/users?prefix=a@b",
		"/content/x/?q=1":                                              "/content/x/?q=1",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := logURI(u); got != want || strings.Contains(got, "tok@") {
			t.Errorf("logURI(%s) = %s, want %s", in, got, want)
		}
	}
}
