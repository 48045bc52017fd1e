package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dais-dev/dais/e2e/browser"
	"github.com/moby/moby/api/types/container"
)

// networkGateway is the host's address on a network from NewNetwork:
// where a server the test runs on the host is reachable from containers.
func networkGateway(t *testing.T, network string) string {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", "-f", `{{range .IPAM.Config}}{{.Gateway}} {{end}}`, network).Output()
	for _, f := range strings.Fields(string(out)) {
		if !strings.Contains(f, ":") { // IPv4
			return f
		}
	}
	t.Fatalf("docker network inspect %s: no IPv4 gateway: %v %q", network, err, out)
	return ""
}

// waitApp waits until the app at path answers 200 to key's user.
func waitApp(t *testing.T, c *Container, path, key string, within time.Duration) {
	t.Helper()
	var status int
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		req, _ := http.NewRequest("GET", c.URL(path), nil)
		req.Header.Set("Authorization", "Key "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if status = resp.StatusCode; status == http.StatusOK {
			return
		}
	}
	t.Fatalf("GET %s: not 200 within %s (last %d)", path, within, status)
}

// logOut clicks the navigation's "Log out" and waits for the page that follows.
func logOut(br *browser.Browser) {
	br.Run("log out", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
		chromedp.Click(chromedp.CSS(`form[action="/__logout__"] button`)),
		chromedp.WaitReady(chromedp.CSS(`body:not([data-old])`)))
}

// browserJourney is what a person signed in by any provider does in the
// browser, from the page the sign-in landed on: it is the dashboard,
// showing user and role; the acl app at appPath (the probe app's
// /headers, shared with a group) gets RStudio-Connect-Credentials naming
// the user and wantGroups. shot prefixes the screenshots' names.
func browserJourney(t *testing.T, br *browser.Browser, c *Container, appPath, user, role string, wantGroups []string, shot string) {
	t.Helper()
	if p := browser.Value(br, "location", chromedp.Evaluate[string](`location.pathname`)); p != "/connect/" {
		t.Fatalf("%s's sign-in landed on %s, want /connect/", user, p)
	}
	who := browser.Value(br, "who", chromedp.Text(chromedp.CSS(`li.who`)))
	if !strings.Contains(who, user) || !strings.Contains(who, role) {
		t.Errorf("the dashboard shows %q, want %s and %s", who, user, role)
	}
	br.Allow("/favicon.ico")
	br.Check(shot + "-dashboard")
	br.Screenshot(shot + "-dashboard")

	br.Run("open the acl app", chromedp.Navigate(c.URL(appPath)), chromedp.WaitReady(chromedp.CSS("body")))
	body := browser.Value(br, "the app's answer", chromedp.Evaluate[string](`document.body.innerText`))
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("%s at the acl app: %v: %s", user, err, body)
	}
	raw, _ := headerFold(h, "RStudio-Connect-Credentials")
	var creds struct {
		User   string   `json:"user"`
		Groups []string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(raw), &creds); err != nil {
		t.Fatalf("RStudio-Connect-Credentials %q: %v", raw, err)
	}
	for _, g := range wantGroups {
		if !slices.Contains(creds.Groups, g) {
			t.Errorf("the app got groups %v, want %s among them", creds.Groups, g)
		}
	}
	if creds.User != user {
		t.Errorf("the app got user %q, want %s", creds.User, user)
	}
	t.Logf("figure: %s's browser at the acl app: RStudio-Connect-Credentials %s", user, raw)
}

// logOutChecked logs out from the dashboard and checks that the
// dashboard then shows no user and offers to log in.
func logOutChecked(t *testing.T, br *browser.Browser, c *Container) {
	t.Helper()
	br.Run("open the dashboard", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	logOut(br)
	br.Run("the dashboard after logout", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitReady(chromedp.CSS("body")))
	if n := browser.Value(br, "who after logout", chromedp.Evaluate[int](`document.querySelectorAll("li.who").length`)); n != 0 {
		t.Errorf("after logout the dashboard still shows a user")
	}
	// The dashboard offers "Log in", or (OpenID Connect) has sent the
	// browser to the provider's login form.
	if n := browser.Value(br, "log in", chromedp.Evaluate[int](`document.querySelectorAll('a[href="/__login__"], input[type="password"]').length`)); n == 0 {
		t.Errorf("after logout the dashboard offers no Log in (at %s)", browser.Value(br, "location", chromedp.Evaluate[string](`location.href`)))
	}
}

// mappingProxy is an HTTP proxy for the browser (browser.ProxyThrough)
// that sends requests for the addresses in routes (host:port) to others,
// and the rest where they were going.
func mappingProxy(t *testing.T, routes map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host }, // Out.URL is the absolute URL asked for
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := routes[addr]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		}},
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestOIDCBrowserContainer (issue 15, OpenID Connect): chromium signs in
// to dais's container through zitadel's example provider's own login
// form (the provider's issuer name localhost:9998 mapped by a proxy to
// its published port): the first account becomes administrator and
// shares an acl app with a local group; test-user2 (made ahead with
// `dais users add`, in that group) signs in, lands on the dashboard as a
// viewer, the app gets their user and group, and logout ends the session,
// at the provider too (OAuth2.LogoutAtProvider).
func TestOIDCBrowserContainer(t *testing.T) {
	c, opAddr := zitadelDais(t, "CONNECT_OAUTH2_LOGOUTATPROVIDER=true")
	br := browser.New(t, 1280, browser.ProxyThrough(mappingProxy(t, map[string]string{"localhost:9998": opAddr}))...)
	shots := 0
	signIn := func(user string) {
		t.Helper()
		br.Run("to the provider's form", chromedp.Navigate(c.URL("/__login__")), chromedp.WaitVisible(chromedp.ID("username")))
		if host := browser.Value(br, "host", chromedp.Evaluate[string](`location.host`)); host != "localhost:9998" {
			t.Fatalf("/__login__ led to %s, want the provider localhost:9998", host)
		}
		if shots++; shots == 1 {
			br.Allow("/favicon.ico")
			br.Check("e2e-oidc-login")
			br.Screenshot("e2e-oidc-login")
		}
		br.Run("sign in as "+user, chromedp.SendKeys(chromedp.ID("username"), user),
			chromedp.SendKeys(chromedp.ID("password"), "verysecure"),
			chromedp.Submit(chromedp.ID("password")),
			chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	}

	admin := "test-user@localhost"
	signIn(admin)
	r := c.Exec("dais", "keys", "create", "--user", admin)
	key := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || len(key) < 16 {
		t.Fatalf("dais keys create --user %s: %d %q %s", admin, r.Code, r.Stdout, r.Stderr)
	}
	guid, tk, out := deployV1(t, c, key, "oidc-who", bundle(t, flaskDir(t, probeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy: %s\n%s", tk.Error, out)
	}
	if r := c.Exec("dais", "users", "add", "--role", "viewer", "test-user2"); r.Code != 0 {
		t.Fatalf("dais users add test-user2: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	user2 := firstGUID(t, c, "/__api__/v1/users?prefix=test-user2", key)
	var g struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/groups", key, strings.NewReader(`{"name":"oidc-team"}`), &g)
	apiJSON(t, c, "POST", "/__api__/v1/groups/"+g.GUID+"/members", key, strings.NewReader(`{"user_guid":"`+user2+`"}`), nil)
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid, key, strings.NewReader(`{"access_type":"acl"}`), nil)
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/permissions", key,
		strings.NewReader(`{"principal_guid":"`+g.GUID+`","principal_type":"group","role":"viewer"}`), nil)
	waitApp(t, c, "/content/"+guid+"/headers", key, 3*time.Minute)
	logOutChecked(t, br, c)

	// A callback that is not the answer to this browser's sign-in (the
	// logout above left one in progress): a page that says so, with a way back.
	br.Run("a forged callback", chromedp.Navigate(c.URL("/__login__/callback?state=forged&code=x")), chromedp.WaitVisible(chromedp.CSS(`p.error`)))
	if msg := browser.Value(br, "the failure", chromedp.Text(chromedp.CSS(`p.error`))); !strings.Contains(msg, "does not belong to the sign-in this browser started") {
		t.Errorf("a forged callback says %q", msg)
	}
	br.Expect("HTTP 400 from")
	br.Allow("/favicon.ico")
	br.Check("e2e-oidc-failed")
	br.Screenshot("e2e-oidc-failed")

	signIn("test-user2")
	browserJourney(t, br, c, "/content/"+guid+"/headers", "test-user2", "viewer", []string{"oidc-team"}, "e2e-oidc")
	logOutChecked(t, br, c)
	// OAuth2.LogoutAtProvider: the logout went on to the provider, which ended its session.
	signIn("test-user2")
	br.Run("open the dashboard", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	logOut(br)
	br.Run("the provider's signed-out page", chromedp.WaitReady(chromedp.CSS("body")))
	if at := browser.Value(br, "location", chromedp.Evaluate[string](`location.host + location.pathname + " " + document.body.innerText`)); at != "localhost:9998/logged-out signed out successfully" {
		t.Errorf("after logout with LogoutAtProvider the browser is at %q, want the provider's signed-out page", at)
	}
	t.Logf("figure: OpenID Connect in chromium through zitadel's form: %s -> administrator, test-user2 -> viewer reaching the acl app through oidc-team, logout", admin)
}

// TestProxyAuthBrowserContainer (issue 15, proxy): chromium signs in at
// haproxy (HTTP Basic, as a browser's password prompt sends it) in front
// of dais's container: bob lands on the dashboard as a viewer, the acl
// app shared with analysts (a group haproxy names) gets bob and his
// groups; "Log out" at dais says to log out at the single sign-on, which
// owns the login. Without credentials haproxy asks for them (401, Basic).
func TestProxyAuthBrowserContainer(t *testing.T) {
	netName := NewNetwork(t)
	cfgPath, err := filepath.Abs("testdata/proxyauth/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	lb := Run(t, Options{Image: "dais-haproxy:latest", Network: netName, NoData: true, NoSysAdmin: true,
		Binds: []string{cfgPath + ":/etc/haproxy/haproxy.cfg:ro"}, Health: &container.HealthConfig{Test: []string{"NONE"}}})
	c := Run(t, Options{Network: netName, Aliases: []string{"dais"}, Env: []string{
		"CONNECT_AUTHENTICATION_PROVIDER=proxy",
		"CONNECT_PROXYAUTH_USERNAMEHEADER=X-Auth-Username",
		"CONNECT_PROXYAUTH_UNIQUEIDHEADER=X-Auth-Id",
		"CONNECT_PROXYAUTH_GROUPSHEADER=X-Auth-Groups",
		"CONNECT_PROXYAUTH_TRUSTEDPROXIES=" + containerIP(t, lb, netName),
	}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	basic := func(user, pass, path string) int {
		req, _ := http.NewRequest("GET", lb.URL(path), nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// haproxy resolves dais after its start: wait until carol, the first
	// account (administrator), gets through; then bob, once, for his groups.
	for deadline := time.Now().Add(30 * time.Second); basic("carol", "carol-pw", "/__api__/v1/user") != 200; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("haproxy does not reach dais")
		}
	}
	if code := basic("bob", "bob-pw", "/__api__/v1/user"); code != 200 {
		t.Fatalf("bob through haproxy: %d", code)
	}
	key, guid := deployProbeForGroup(t, c, lb, "carol", "proxy-who", "analysts")
	waitApp(t, lb, "/content/"+guid+"/headers", key, 3*time.Minute)

	// Without credentials haproxy asks for them (a browser shows its
	// password prompt, which headless chromium cancels).
	resp, err := http.Get(lb.URL("/connect/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("/connect/ without credentials at haproxy: %d %q, want 401 asking for Basic", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	br := browser.New(t, 1280)
	// The prompt sends Basic credentials; so do these, kept for the origin.
	withCreds := strings.Replace(lb.URL("/connect/"), "http://", "http://bob:bob-pw@", 1)
	br.Run("sign in at haproxy as bob", chromedp.Navigate(withCreds), chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	browserJourney(t, br, lb, "/content/"+guid+"/headers", "bob", "viewer", []string{"analysts", "readers"}, "e2e-proxy")
	br.Run("open the dashboard", chromedp.Navigate(lb.URL("/connect/")), chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	logOut(br)
	if body := browser.Value(br, "logout page", chromedp.Evaluate[string](`document.body.innerText`)); !strings.Contains(body, "log out there") {
		t.Errorf("logout under proxy shows %q, want it to say to log out at the single sign-on", body)
	}
	br.Allow("/favicon.ico")
	br.Check("e2e-proxy-logout")
	br.Screenshot("e2e-proxy-logout")
	t.Logf("figure: proxy (haproxy Basic) in chromium: no credentials -> haproxy 401, bob -> viewer reaching the acl app through analysts, logout -> single sign-on notice")
}
