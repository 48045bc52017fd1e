package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
	"github.com/moby/moby/api/types/container"
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

// deployProbeForGroup makes an API key for user, deploys the probe app
// as name through via (dais itself, or a proxy in front) with it, and
// shares it (access acl) with group, which user's login brought; it
// returns the key and the content's GUID.
func deployProbeForGroup(t *testing.T, c, via *Container, user, name, group string) (key, guid string) {
	t.Helper()
	r := c.Exec("dais", "keys", "create", "--user", user)
	key = strings.TrimSpace(r.Stdout)
	if r.Code != 0 || len(key) < 16 {
		t.Fatalf("dais keys create --user %s: %d %q %s", user, r.Code, r.Stdout, r.Stderr)
	}
	guid, tk, out := deployV1(t, via, key, name, bundle(t, flaskDir(t, probeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy with %s's API key failed: %s\n%s", user, tk.Error, out)
	}
	g := firstGUID(t, c, "/__api__/v1/groups?prefix="+group, key)
	apiJSON(t, via, "PATCH", "/__api__/v1/content/"+guid, key, strings.NewReader(`{"access_type":"acl"}`), nil)
	apiJSON(t, via, "POST", "/__api__/v1/content/"+guid+"/permissions", key,
		strings.NewReader(`{"principal_guid":"`+g+`","principal_type":"group","role":"viewer"}`), nil)
	return key, guid
}

// viewerBobInAnalysts adds viewer bob (password bob-password-e2e) as a
// member of a new local group analysts, and returns both guids.
func viewerBobInAnalysts(t *testing.T, c *Container, key string) (bob, analysts string) {
	t.Helper()
	if r := c.Exec("sh", "-c", "echo bob-password-e2e | dais users add --role viewer bob"); r.Code != 0 {
		t.Fatalf("dais users add bob: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	bob = firstGUID(t, c, "/__api__/v1/users?prefix=bob", key)
	var g struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/groups", key, strings.NewReader(`{"name":"analysts"}`), &g)
	apiJSON(t, c, "POST", "/__api__/v1/groups/"+g.GUID+"/members", key, strings.NewReader(`{"user_guid":"`+bob+`"}`), nil)
	return bob, g.GUID
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
	_, analysts := viewerBobInAnalysts(t, c, key)
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid, key, strings.NewReader(`{"access_type":"acl"}`), nil)
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/permissions", key,
		strings.NewReader(`{"principal_guid":"`+analysts+`","principal_type":"group","role":"viewer"}`), nil)

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

// containerIP is c's address on the network.
func containerIP(t *testing.T, c *Container, network string) string {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, c.ID).Output()
	ip := strings.TrimSpace(string(out))
	if err != nil || ip == "" {
		t.Fatalf("docker inspect %s: %v %q", c.Name, err, out)
	}
	return ip
}

// TestProxyAuthHAProxy (issue 15, proxy authentication): Debian's haproxy
// in front authenticates (HTTP Basic against its userlist) and names the
// user in X-Auth-Username, X-Auth-Id and X-Auth-Groups; dais trusts only
// haproxy's address. Through haproxy: the first user becomes
// administrator, the next a viewer with their groups; an API key deploys;
// an acl app shared with a group sees the user and groups in
// RStudio-Connect-Credentials; a user outside the group is refused.
// Directly, bypassing haproxy: spoofed headers are removed and logged.
func TestProxyAuthHAProxy(t *testing.T) {
	netName := NewNetwork(t)
	cfgPath, err := filepath.Abs("testdata/proxyauth/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	lb := Run(t, Options{Image: "dais-haproxy:latest", Network: netName, NoData: true, NoSysAdmin: true,
		Binds: []string{cfgPath + ":/etc/haproxy/haproxy.cfg:ro"}, Health: &container.HealthConfig{Test: []string{"NONE"}}})
	lbIP := containerIP(t, lb, netName)
	c := Run(t, Options{Network: netName, Aliases: []string{"dais"}, Env: []string{
		"CONNECT_AUTHENTICATION_PROVIDER=proxy",
		"CONNECT_PROXYAUTH_USERNAMEHEADER=X-Auth-Username",
		"CONNECT_PROXYAUTH_UNIQUEIDHEADER=X-Auth-Id",
		"CONNECT_PROXYAUTH_GROUPSHEADER=X-Auth-Groups",
		"CONNECT_PROXYAUTH_TRUSTEDPROXIES=" + lbIP,
	}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	lb.WaitHTTP("/__ping__", http.StatusUnauthorized, 30*time.Second) // haproxy up, asking for credentials
	// haproxy resolves dais by DNS after its start: wait until it reaches
	// dais, with a request that logs nobody in (a key dais refuses).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest("GET", lb.URL("/__ping__"), nil)
		req.Header.Set("Authorization", "Key not-a-key")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not reach dais: %v %v", resp, err)
		}
	}

	cl := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	via := func(base *Container, method, path, user, pass string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base.URL(path), rd)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	whoami := func(user, pass string) (int, string) {
		t.Helper()
		return via(lb, "GET", "/__api__/v1/user", user, pass, nil, "")
	}

	// carol first: the first account of the empty server, administrator.
	if code, body := whoami("carol", "carol-pw"); code != 200 || !strings.Contains(body, `"username":"carol"`) || !strings.Contains(body, `"user_role":"administrator"`) {
		t.Fatalf("carol through haproxy = %d %s, want carol, administrator", code, body)
	}
	if code, body := whoami("bob", "bob-pw"); code != 200 || !strings.Contains(body, `"username":"bob"`) || !strings.Contains(body, `"user_role":"viewer"`) {
		t.Fatalf("bob through haproxy = %d %s, want bob, viewer", code, body)
	}
	if code, _ := whoami("bob", "wrong"); code != 401 {
		t.Errorf("bob with a wrong password at haproxy = %d, want 401", code)
	}
	// API keys keep working, through the proxy (haproxy lets "Key" through).
	_, guid := deployProbeForGroup(t, c, lb, "carol", "who", "analysts")

	path := "/content/" + guid + "/headers"
	spoof := map[string]string{"RStudio-Connect-Credentials": `{"user":"carol","groups":["admins"]}`, "X-Auth-Username": "carol"}
	code, body := via(lb, "GET", path, "bob", "bob-pw", spoof, "")
	if code != 200 {
		t.Fatalf("bob (in analysts) at the acl app through haproxy = %d %s", code, body)
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	creds, _ := headerFold(h, "RStudio-Connect-Credentials")
	if creds != `{"user":"bob","groups":["analysts","readers"]}` {
		t.Errorf("the app got RStudio-Connect-Credentials %q, want bob in analysts and readers", creds)
	}
	if v, _ := headerFold(h, "Authorization"); v != "" {
		t.Errorf("the app got Authorization %q", v)
	}
	// dave's account made ahead of his first login (no password under
	// proxy): that login takes it over, with its role.
	if r := c.Exec("dais", "users", "add", "--role", "publisher", "dave"); r.Code != 0 {
		t.Fatalf("dais users add dave under proxy: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	if code, body := via(lb, "GET", path, "dave", "dave-pw", nil, ""); code != 403 {
		t.Errorf("dave (not in analysts) at the acl app = %d %s, want 403", code, body)
	}
	if code, body := whoami("dave", "dave-pw"); code != 200 || !strings.Contains(body, `"user_role":"publisher"`) {
		t.Errorf("dave through haproxy = %d %s, want the pre-made publisher account", code, body)
	}

	// Bypassing haproxy: the headers are not honoured, and logged.
	if code, body := via(c, "GET", "/__api__/v1/user", "", "", map[string]string{"X-Auth-Username": "carol", "X-Auth-Id": "id-carol"}, ""); code != 401 {
		t.Errorf("direct request naming carol in X-Auth-Username = %d %s, want 401", code, body)
	}
	if code, _ := via(c, "GET", path, "", "", map[string]string{"X-Auth-Username": "bob", "X-Auth-Id": "id-bob", "X-Auth-Groups": "analysts"}, ""); code != http.StatusFound {
		t.Errorf("direct request to the acl app naming bob = %d, want 302 to the login page", code)
	}
	if code, body := via(c, "POST", "/__login__", "", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "username=carol&password=x"); code != 403 {
		t.Errorf("password login under proxy = %d %s, want 403", code, body)
	}
	logs := c.LogsWith("ProxyAuth.TrustedProxies removed", 10*time.Second)
	// Every account is the proxy's: a restart is not refused.
	c.Stop(10)
	c.Start()
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	if code, body := whoami("bob", "bob-pw"); code != 200 || !strings.Contains(body, `"username":"bob"`) {
		t.Errorf("bob after a restart = %d %s", code, body)
	}
	if !strings.Contains(logs, "ProxyAuth.TrustedProxies removed") {
		t.Errorf("the removed spoofed headers are not logged:\n%s", tail(logs, 30))
	}
	t.Logf("figure: through haproxy carol -> administrator, bob -> viewer, the acl app saw %s, dave -> 403 and his pre-made publisher account; direct spoofs -> 401 and 302, logged", creds)
}

// TestProviderChangeRefused (issue 15): a server whose accounts signed in
// with passwords refuses to start with Authentication.Provider = proxy,
// in one line saying why and what to do, and starts again as before.
func TestProviderChangeRefused(t *testing.T) {
	c := Run(t, Options{})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	publisherKey(t, c, "alice", "alice-password-e2e")
	c.Stop(10)
	p := Run(t, Options{DataDir: c.DataDir, Env: []string{"CONNECT_AUTHENTICATION_PROVIDER=proxy", "CONNECT_PROXYAUTH_TRUSTEDPROXIES=10.0.0.5"}})
	code := p.WaitExit(time.Minute)
	logs := p.Logs()
	if code != 78 {
		t.Fatalf("exit code %d, want 78; log:\n%s", code, tail(logs, 30))
	}
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "Authentication.Provider = proxy, but this server has accounts of another provider (1 password)") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "set Authentication.Provider back, or start with an empty database") {
		t.Fatalf("no one-line reason in the log:\n%s", tail(logs, 30))
	}
	c.Start()
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	t.Logf("figure: exit 78, %s", strings.TrimSpace(line))
}

// whoShinyApp shows session$user and session$groups, which Shiny reads
// from Shiny-Server-Credentials.
const whoShinyApp = `library(shiny)

ui <- fluidPage(textOutput("who"))

server <- function(input, output, session) {
  output$who <- renderText(paste0("user=", if (is.null(session$user)) "NULL" else session$user,
                                  " groups=", paste(session$groups, collapse = "+")))
}

shinyApp(ui, server)
`

// shinyDir is the shiny example with app.R replaced (checksums updated).
func shinyDir(t *testing.T, appR string) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(exampleDir("shiny"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(appR))
	m["files"] = map[string]any{"app.R": map[string]string{"checksum": hex.EncodeToString(sum[:])}}
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.R"), []byte(appR), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestShinySessionUser (issue 15): a Shiny app's session$user and
// session$groups are the signed-in user's, through its WebSocket, whatever
// Shiny-Server-Credentials the client sends; anonymous: NULL.
func TestShinySessionUser(t *testing.T) {
	c, key := deployServer(t)
	guid, tk, out := deployV1(t, c, key, "who-shiny", bundle(t, shinyDir(t, whoShinyApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	viewerBobInAnalysts(t, c, key)
	session := loginCookie(t, c, "bob", "bob-password-e2e")
	ws := "ws://127.0.0.1:" + c.HostPort(ServerPort) + "/content/" + guid + "/websocket/"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spoof := `{"user":"alice","groups":["admins"]}`

	s := shinytest.Dial(t, ctx, ws, http.Header{"Cookie": {"dais_session=" + session}, "Shiny-Server-Credentials": {spoof}})
	s.Send(t, "init", shinytest.Init("/content/"+guid+"/", nil, "who"))
	s.Expect(t, `"who":"user=bob groups=analysts"`)
	s.Close()
	anon := shinytest.Dial(t, ctx, ws, http.Header{"Shiny-Server-Credentials": {spoof}})
	anon.Send(t, "init", shinytest.Init("/content/"+guid+"/", nil, "who"))
	anon.Expect(t, `"who":"user=NULL groups="`)
	anon.Close()
	t.Logf("figure: Shiny session$user/session$groups: bob by session cookie -> bob/analysts; anonymous with a spoofed Shiny-Server-Credentials -> NULL")
}
