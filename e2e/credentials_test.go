package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "a visitor's API key (Key, Bearer) and session cookie at an app's /headers", Issue: "23.2",
		Run: func(t *testing.T, r *row) { testCredentialsStripped(t, r, sandboxMode("namespaces")) }})
	addCase(batteryCase{Name: "the same, the app in a Landlock sandbox", Issue: "23.2",
		Run: func(t *testing.T, r *row) { testCredentialsStripped(t, r, sandboxMode("landlock")) }})
}

// flaskDir writes a Flask app (app.py) with the flask example's manifest
// (checksums updated) into a new directory and returns it.
func flaskDir(t *testing.T, appPy string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{"app.py": []byte(appPy)}
	req, err := os.ReadFile(filepath.Join(exampleDir("flask"), "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files["requirements.txt"] = req
	raw, err := os.ReadFile(filepath.Join(exampleDir("flask"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	sums := map[string]any{}
	for name, b := range files {
		sum := md5.Sum(b)
		sums[name] = map[string]string{"checksum": hex.EncodeToString(sum[:])}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m["files"] = sums
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// probeApp answers GET /headers with the request headers it got, and
// POST /body with the length of the body it read.
const probeApp = `from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/headers")
def headers():
    return jsonify({k: v for k, v in request.headers.items()})


@app.post("/body")
def body():
    return jsonify(bytes=len(request.get_data()))
`

// loginCookie logs user in through the login form and returns the
// session cookie's value.
func loginCookie(t *testing.T, c *Container, user, password string) string {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.PostForm(c.URL("/__login__"), url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "dais_session" && ck.Value != "" {
			return ck.Value
		}
	}
	t.Fatalf("login of %s: %s, no session cookie", user, resp.Status)
	return ""
}

// testCredentialsStripped (issue 23, defect 2): the API accepts
// "Authorization: Bearer <key>", but only "Key <key>" was removed before
// proxying: the app's /headers showed the visitor's key. No credential
// dais accepted may reach content; the app's own Authorization and
// cookies pass unchanged.
func testCredentialsStripped(t *testing.T, r *row, env []string) {
	c, key := deployServer(t, env...)
	guid, tk, out := deployV1(t, c, key, "headers", bundle(t, flaskDir(t, probeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	mustMode(t, c, env)
	session := loginCookie(t, c, "alice", "alice-password-e2e")
	path := "/content/" + guid + "/headers"
	get := func(hdr map[string]string) map[string]string {
		t.Helper()
		req, _ := http.NewRequest("GET", c.URL(path), nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s with %v = %d %s", path, hdr, resp.StatusCode, b)
		}
		if strings.Contains(string(b), key) || strings.Contains(string(b), session) {
			t.Errorf("a dais credential reached the app (sent %v): %s", hdr, b)
		}
		var h map[string]string
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return h
	}
	cases := []struct {
		name                 string
		hdr                  map[string]string
		wantAuth, wantCookie string
	}{
		{"Key", map[string]string{"Authorization": "Key " + key}, "", ""},
		{"Bearer", map[string]string{"Authorization": "Bearer " + key}, "", ""},
		{"session cookie", map[string]string{"Cookie": "dais_session=" + session + "; theme=dark"}, "", "theme=dark"},
		{"the app's Basic", map[string]string{"Authorization": "Basic YXBwOnB3", "Cookie": "theme=dark"}, "Basic YXBwOnB3", "theme=dark"},
	}
	var seen []string
	for _, cs := range cases {
		h := get(cs.hdr)
		if h["Authorization"] != cs.wantAuth || h["Cookie"] != cs.wantCookie {
			t.Errorf("%s: the app got Authorization %q Cookie %q, want %q %q", cs.name, h["Authorization"], h["Cookie"], cs.wantAuth, cs.wantCookie)
		}
		seen = append(seen, cs.name+" -> Authorization "+quoteOrNone(h["Authorization"])+", Cookie "+quoteOrNone(h["Cookie"]))
	}
	r.Figure(t, "the app saw: %s", strings.Join(seen, "; "))
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	if len(s) > 24 {
		s = s[:24] + "..."
	}
	return `"` + s + `"`
}
