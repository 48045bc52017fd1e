package web

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// fakeOP is a provider the test controls: go-oidc's oidctest server for
// discovery and keys, plus /auth (answers at once with a code) and /token
// (checks the PKCE verifier, signs the ID token claims() returns).
type fakeOP struct {
	*oidctest.Server
	url string
	mu  sync.Mutex
	// sign is the key and kid tokens are signed with.
	sign   *rsa.PrivateKey
	kid    string
	nonce  string
	chall  string
	claims func(nonce string) map[string]any
}

func newFakeOP(t *testing.T) *fakeOP {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	op := &fakeOP{Server: &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: "RS256"}}}, sign: key, kid: "k1"}
	mux := http.NewServeMux()
	mux.Handle("/", op.Server)
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		op.mu.Lock()
		op.nonce, op.chall = q.Get("nonce"), q.Get("code_challenge")
		op.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code=c1&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		op.mu.Lock()
		defer op.mu.Unlock()
		if base64.RawURLEncoding.EncodeToString(sum[:]) != op.chall {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		b, _ := json.Marshal(op.claims(op.nonce))
		tok := oidctest.SignIDToken(op.sign, op.kid, "RS256", string(b))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at","token_type":"Bearer","expires_in":60,"id_token":%q}`, tok)
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	op.url = ts.URL
	op.SetIssuer(ts.URL)
	return op
}

// TestOIDCTokenChecks: with a provider the test controls, a good ID token
// signs in (groups as a list mapped to a role; a rotated key is fetched),
// and an expired, forged, wrongly addressed or replayed-nonce token does not.
func TestOIDCTokenChecks(t *testing.T) {
	f := newFixture(t)
	op := newFakeOP(t)
	cfg := *f.srv.Config()
	cfg.Authentication.Provider = ProviderOAuth2
	cfg.OAuth2.ClientId, cfg.OAuth2.ClientSecret, cfg.OAuth2.OpenIDConnectIssuer = "dais", "s", op.url
	cfg.Authorization = config.Authorization{DefaultUserRole: store.RoleViewer, UserRoleGroupMapping: true, PublisherRoleMapping: []string{"eng"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)
	good := func(nonce string) map[string]any {
		now := time.Now().Unix()
		return map[string]any{"iss": op.url, "aud": "dais", "sub": "u-42", "iat": now, "exp": now + 300, "nonce": nonce,
			"preferred_username": "kim", "email": "kim@example.com", "groups": []string{"eng", "ops"}}
	}
	login := func() (int, string) {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		cl := &http.Client{Jar: jar, Timeout: 20 * time.Second}
		resp, err := cl.Get(f.ts.URL + "/__login__?next=/__api__/v1/user")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	op.claims = good
	if code, body := login(); code != 200 || !strings.Contains(body, `"username":"kim"`) || !strings.Contains(body, `"user_role":"publisher"`) {
		t.Fatalf("good token: %d %s, want kim, publisher (group eng mapped)", code, body)
	}
	u, err := f.st.UserByUniqueID(context.Background(), ProviderOAuth2, "u-42")
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := f.st.UserGroups(context.Background(), u.ID)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if !reflect.DeepEqual(names, []string{"eng", "ops"}) {
		t.Errorf("kim's groups = %v", names)
	}
	// Key rotation: a new key, published; tokens signed with it verify.
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	op.mu.Lock()
	op.PublicKeys = append(op.PublicKeys, oidctest.PublicKey{PublicKey: k2.Public(), KeyID: "k2", Algorithm: "RS256"})
	op.sign, op.kid = k2, "k2"
	op.mu.Unlock()
	if code, body := login(); code != 200 {
		t.Fatalf("after key rotation: %d %s", code, body)
	}
	bad := []struct {
		name   string
		change func(c map[string]any)
		forge  bool
	}{
		{"expired", func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, false},
		{"wrong audience", func(c map[string]any) { c["aud"] = "another-client" }, false},
		{"wrong issuer", func(c map[string]any) { c["iss"] = "https://evil.example.com" }, false},
		{"wrong nonce", func(c map[string]any) { c["nonce"] = "replayed" }, false},
		{"no subject", func(c map[string]any) { delete(c, "sub") }, false},
		{"forged signature", func(c map[string]any) {}, true},
	}
	for _, b := range bad {
		op.claims = func(nonce string) map[string]any { c := good(nonce); b.change(c); return c }
		if b.forge {
			forger, _ := rsa.GenerateKey(rand.Reader, 2048)
			op.mu.Lock()
			op.sign = forger // same kid k2, a key nobody published
			op.mu.Unlock()
		}
		if code, body := login(); (code != 401 && code != 403) || strings.Contains(body, `"username"`) {
			t.Errorf("%s: %d %s, want a refusal (401 or 403)", b.name, code, body)
		}
	}
}
