package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// zitadelDais starts dais (Provider = oauth2, client web/secret) and
// zitadel's example OpenID provider (built by the test) in dais's network
// namespace, so that its issuer http://localhost:9998/ is on loopback for
// dais; it returns dais and the provider's published address, which a
// client must reach under the name localhost:9998. env adds to dais's.
func zitadelDais(t *testing.T, env ...string) (*Container, string) {
	t.Helper()
	bin := filepath.Join(tempDir(t), "op")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	build := exec.Command(gobin, "build", "-o", filepath.Join(bin, "server"), "github.com/zitadel/oidc/v3/example/server")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build zitadel's example OP: %v\n%s", err, out)
	}
	c := Run(t, Options{Ports: []string{ServerPort, "9998"}, Env: append([]string{
		"CONNECT_AUTHENTICATION_PROVIDER=oauth2",
		"CONNECT_OAUTH2_CLIENTID=web",
		"CONNECT_OAUTH2_CLIENTSECRET=secret",
		"CONNECT_OAUTH2_OPENIDCONNECTISSUER=http://localhost:9998/",
	}, env...)})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	callback := "http://127.0.0.1:" + c.HostPort(ServerPort) + "/__login__/callback"
	Run(t, Options{Image: Image(t), Network: "container:" + c.ID, NoData: true, NoSysAdmin: true, Ports: []string{},
		Entrypoint: []string{"/op/server"}, Env: []string{"PORT=9998", "REDIRECT_URI=" + callback},
		Binds: []string{bin + ":/op:ro"}, Health: &container.HealthConfig{Test: []string{"NONE"}}})
	opAddr := "127.0.0.1:" + c.HostPort("9998")
	// The provider is up once it serves its discovery document.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest("GET", "http://"+opAddr+"/.well-known/openid-configuration", nil)
		req.Host = "localhost:9998"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("zitadel's OP did not start: %v", err)
		}
	}
	return c, opAddr
}

// TestOIDCZitadelContainer (issue 15): dais in its container signs people
// in with OpenID Connect against zitadel's example provider
// (github.com/zitadel/oidc/v3 example/server, built by the test), which
// runs in dais's network namespace so that its issuer,
// http://localhost:9998/, is on loopback for dais. The test's client is
// the browser: it reaches the provider's published port under the name
// localhost:9998 (as a hosts entry would), fills in the provider's login
// form, comes back to /__login__/callback, and is signed in as the first
// account (administrator); logout ends the session; the client secret is
// redacted in `dais config print`.
func TestOIDCZitadelContainer(t *testing.T) {
	c, opAddr := zitadelDais(t)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == "localhost:9998" {
				addr = opAddr // the provider's published port, under its issuer's name
			}
			return dialer.DialContext(ctx, network, addr)
		}}}
	// The provider is up once it serves its discovery document.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := browser.Get("http://localhost:9998/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("zitadel's OP did not start: %v", err)
		}
	}

	resp, err := browser.Get(c.URL("/__login__?next=/__api__/v1/user"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != 200 || id == "" || resp.Request.URL.Host != "localhost:9998" {
		t.Fatalf("/__login__ led to %s (%d), want the provider's login form", resp.Request.URL, resp.StatusCode)
	}
	resp, err = browser.PostForm("http://localhost:9998/login/username", url.Values{"id": {id}, "username": {"test-user@localhost"}, "password": {"verysecure"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"username":"test-user@localhost"`) || !strings.Contains(string(body), `"user_role":"administrator"`) {
		t.Fatalf("after the provider's form: %s %d %s, want /__api__/v1/user as test-user@localhost, administrator", resp.Request.URL, resp.StatusCode, body)
	}
	dash, err := browser.Get(c.URL("/connect/"))
	if err != nil {
		t.Fatal(err)
	}
	dashBody, _ := io.ReadAll(dash.Body)
	dash.Body.Close()
	if dash.StatusCode != 200 || !strings.Contains(string(dashBody), "test-user@localhost") {
		t.Errorf("dashboard after sign-in: %d, user not shown", dash.StatusCode)
	}
	// Logout ends the dais session.
	u, _ := url.Parse(c.URL("/"))
	var session string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "dais_session" {
			session = ck.Value
		}
	}
	req, _ := http.NewRequest("POST", c.URL("/__logout__"), nil)
	req.Header.Set("Cookie", "dais_session="+session)
	if resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %v %v", resp, err)
	}
	req, _ = http.NewRequest("GET", c.URL("/__api__/v1/user"), nil)
	req.Header.Set("Cookie", "dais_session="+session)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("the session after logout: %v %v, want 401", resp, err)
	}
	if r := c.Exec("dais", "config", "print"); !strings.Contains(r.Stdout, "ClientSecret = (redacted)") || strings.Contains(r.Stdout, `"secret"`) {
		t.Errorf("dais config print does not redact OAuth2.ClientSecret:\n%s", r.Stdout)
	}
	t.Logf("figure: sign-in through zitadel's OP form from dais's container: test-user@localhost -> administrator, dashboard shown, logout -> 401, secret redacted")
}
