package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestStripCredentials (issue 23, defect 2): what dais accepted as a
// credential never reaches content, whatever the scheme; what is the
// app's own passes unchanged.
func TestStripCredentials(t *testing.T) {
	f := newFixture(t)
	// Content as the proxy sees it: who dais says is asking, and the
	// headers the app would get.
	f.srv.HandleFunc("/content/{guid}/", func(w http.ResponseWriter, r *http.Request) {
		StripCredentials(r)
		u, _ := UserFrom(r.Context())
		user := ""
		if u != nil {
			user = u.Username
		}
		WriteJSON(w, http.StatusOK, map[string]any{"user": user, "authorization": r.Header.Values("Authorization"), "cookie": r.Header.Values("Cookie")})
	})
	// A session cookie, as a browser gets it by logging in.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(f.ts.URL+"/__login__", url.Values{"username": {"viewer1"}, "password": {"pw-viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatalf("login set no %s cookie: %d %v", SessionCookie, resp.StatusCode, resp.Header)
	}
	key := f.keys["publisher"]
	tests := []struct {
		name          string
		hdr           map[string]string
		status        int
		user          string
		authorization string // what the app gets; "" none
		cookie        string
	}{
		{"Key scheme", map[string]string{"Authorization": "Key " + key}, 200, "publisher1", "", ""},
		{"Bearer scheme", map[string]string{"Authorization": "Bearer " + key}, 200, "publisher1", "", ""},
		{"bearer, lower case, extra spaces", map[string]string{"Authorization": "bearer   " + key + " "}, 200, "publisher1", "", ""},
		{"session cookie", map[string]string{"Cookie": SessionCookie + "=" + session}, 200, "viewer1", "", ""},
		{"session cookie among others", map[string]string{"Cookie": "a=1; " + SessionCookie + "=" + session + "; b=\"x y\""}, 200, "viewer1", "", "a=1; b=\"x y\""},
		{"key and cookie", map[string]string{"Authorization": "Bearer " + key, "Cookie": SessionCookie + "=" + session + "; app=2"}, 200, "publisher1", "", "app=2"},
		{"stale session cookie", map[string]string{"Cookie": SessionCookie + "=expired; app=3"}, 200, "", "", "app=3"},
		{"the app's own Basic", map[string]string{"Authorization": "Basic dXNlcjpwdw==", "Cookie": "app=4"}, 200, "", "Basic dXNlcjpwdw==", "app=4"},
		{"the app's own bearer token", map[string]string{"Authorization": "Bearer eyJhbGciOi.app.token"}, 200, "", "Bearer eyJhbGciOi.app.token", ""},
		{"a bad Key is refused", map[string]string{"Authorization": "Key 0123456789abcdef"}, 401, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, "GET", "/content/g/headers", "", "", tt.hdr)
			if a.status != tt.status {
				t.Fatalf("status %d %s, want %d", a.status, a.body, tt.status)
			}
			if tt.status != 200 {
				return
			}
			var got struct {
				User          string   `json:"user"`
				Authorization []string `json:"authorization"`
				Cookie        []string `json:"cookie"`
			}
			if err := json.Unmarshal([]byte(a.body), &got); err != nil {
				t.Fatal(err)
			}
			if got.User != tt.user {
				t.Errorf("dais saw user %q, want %q", got.User, tt.user)
			}
			if strings.Join(got.Authorization, ",") != tt.authorization {
				t.Errorf("the app got Authorization %q, want %q", got.Authorization, tt.authorization)
			}
			if strings.Join(got.Cookie, ",") != tt.cookie {
				t.Errorf("the app got Cookie %q, want %q", got.Cookie, tt.cookie)
			}
			if strings.Contains(a.body, key) || strings.Contains(a.body, session) {
				t.Errorf("a dais credential reached the app: %s", a.body)
			}
		})
	}
	// Under /__api__ a bearer token that is no dais key is still refused.
	if a := f.do(t, "GET", "/__api__/me", "", "", map[string]string{"Authorization": "Bearer nope"}); a.status != 401 {
		t.Errorf("GET /__api__/me with a bad bearer token = %d, want 401", a.status)
	}
	// The app's Basic does not make dais refuse the API call; it is anonymous.
	if a := f.do(t, "GET", "/__api__/me", "", "", map[string]string{"Authorization": "Basic dXNlcjpwdw=="}); a.status != 401 || !strings.Contains(a.body, "authentication required") {
		t.Errorf("GET /__api__/me with Basic = %d %s, want 401 authentication required", a.status, a.body)
	}
}
