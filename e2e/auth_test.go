package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// headerFold finds a header in the map the probe app returns, whatever
// the case its framework gave the name.
func headerFold(h map[string]string, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// probeHeaders asks the probe app (probeApp) at path for the headers it
// got, sending hdr; the answer must be 200.
func probeHeaders(t *testing.T, c *Container, path string, hdr map[string]string) map[string]string {
	t.Helper()
	req, _ := http.NewRequest("GET", c.URL(path), nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s with %v = %d %s", path, hdr, resp.StatusCode, b)
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return h
}

// testGUID returns the guid of the one item of a {"results": [...]} list.
func firstGUID(t *testing.T, c *Container, path, key string) string {
	t.Helper()
	var l struct {
		Results []struct {
			GUID string `json:"guid"`
		} `json:"results"`
	}
	apiJSON(t, c, "GET", path, key, nil, &l)
	if len(l.Results) != 1 {
		t.Fatalf("GET %s: %d results, want 1", path, len(l.Results))
	}
	return l.Results[0].GUID
}

// TestContentCredentials (issue 15): an app shared with a group learns who
// is looking from RStudio-Connect-Credentials, as on Connect: the
// signed-in user and their groups, for a session cookie and an API key
// alike; a value a client sends is never passed on, and an anonymous
// visitor gets none.
func TestContentCredentials(t *testing.T) {
	c, key := deployServer(t)
	guid, tk, out := deployV1(t, c, key, "creds", bundle(t, flaskDir(t, probeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	if r := c.Exec("sh", "-c", "echo bob-password-e2e | dais users add --role viewer bob"); r.Code != 0 {
		t.Fatalf("dais users add bob: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	bob := firstGUID(t, c, "/__api__/v1/users?prefix=bob", key)
	var g struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/groups", key, strings.NewReader(`{"name":"analysts"}`), &g)
	apiJSON(t, c, "POST", "/__api__/v1/groups/"+g.GUID+"/members", key, strings.NewReader(`{"user_guid":"`+bob+`"}`), nil)
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid, key, strings.NewReader(`{"access_type":"acl"}`), nil)
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/permissions", key,
		strings.NewReader(`{"principal_guid":"`+g.GUID+`","principal_type":"group","role":"viewer"}`), nil)

	path := "/content/" + guid + "/headers"
	spoof := map[string]string{
		"RStudio-Connect-Credentials": `{"user":"admin","groups":["admins"]}`,
		"Shiny-Server-Credentials":    `{"user":"admin","groups":["admins"]}`,
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range spoof {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	creds := func(who string, h map[string]string) string {
		t.Helper()
		if v, ok := headerFold(h, "Shiny-Server-Credentials"); ok {
			t.Errorf("%s: a Flask app got Shiny-Server-Credentials %q", who, v)
		}
		v, _ := headerFold(h, "RStudio-Connect-Credentials")
		return v
	}

	session := loginCookie(t, c, "bob", "bob-password-e2e")
	bobSaw := creds("bob", probeHeaders(t, c, path, with(map[string]string{"Cookie": "dais_session=" + session})))
	var cc struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(bobSaw), &cc); err != nil || cc.User != "bob" || len(cc.Groups) != 1 || cc.Groups[0] != "analysts" {
		t.Fatalf("bob (in analysts, the app shared with analysts): the app got RStudio-Connect-Credentials %q (%v), want bob in [analysts]", bobSaw, err)
	}
	aliceSaw := creds("alice", probeHeaders(t, c, path, with(map[string]string{"Authorization": "Key " + key})))
	if aliceSaw != `{"user":"alice","groups":[]}` {
		t.Errorf("alice with an API key: the app got %q, want {\"user\":\"alice\",\"groups\":[]}", aliceSaw)
	}
	// Anonymous (the app opened to all): the spoofed values are dropped.
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid, key, strings.NewReader(`{"access_type":"all"}`), nil)
	anonSaw := creds("anonymous", probeHeaders(t, c, path, spoof))
	if anonSaw != "" {
		t.Errorf("anonymous with a spoofed header: the app got RStudio-Connect-Credentials %q, want none", anonSaw)
	}
	t.Logf("figure: bob by session cookie -> %s; alice by API key -> %s; anonymous with a spoofed header -> none", bobSaw, aliceSaw)
}
