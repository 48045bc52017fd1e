package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dais-dev/dais/e2e/browser"
	"github.com/dais-dev/dais/internal/slapdtest"
)

// TestLDAPBrowserContainer (issue 15, LDAP): dais in its container signs
// people in against a private slapd on the host (internal/slapdtest,
// reached on the docker network's gateway) with StartTLS checked against
// the test's CA, driven by chromium: the login page; a wrong password
// and a filter-injection name refused on the page; alice (in analysts,
// mapped to administrator) lands on the dashboard, opens an acl app
// shared with data-science (which she is in through analysts, a nested
// group) and the app gets her user and groups; she logs out. bob
// (publishers: publisher) is refused by the acl app. With slapd stopped
// the login page says the directory cannot be reached, and bob's open
// session goes on. The bind password is in no log and redacted by
// `dais config print`.
func TestLDAPBrowserContainer(t *testing.T) {
	netName := NewNetwork(t)
	slapd := slapdtest.Start(t, networkGateway(t, netName))
	const ca = "/etc/rstudio-connect/ldap-ca.pem"
	c := Run(t, Options{Network: netName, Binds: []string{slapd.CAFile + ":" + ca + ":ro"}, Env: []string{
		"CONNECT_AUTHENTICATION_PROVIDER=ldap",
		"CONNECT_LDAP_corp_SERVERADDRESS=" + slapd.Addr,
		"CONNECT_LDAP_corp_STARTTLS=true",
		"CONNECT_LDAP_corp_TLSCACERTIFICATE=" + ca,
		"CONNECT_LDAP_corp_BINDDN=" + slapdtest.ServiceDN,
		"CONNECT_LDAP_corp_BINDPASSWORD=" + slapdtest.ServicePass,
		"CONNECT_LDAP_corp_USERSEARCHBASEDN=" + slapdtest.PeopleDN,
		"CONNECT_LDAP_corp_USEROBJECTCLASS=inetOrgPerson",
		"CONNECT_LDAP_corp_UNIQUEIDATTRIBUTE=entryUUID",
		"CONNECT_LDAP_corp_GROUPSEARCHBASEDN=" + slapdtest.GroupsDN,
		"CONNECT_LDAP_corp_NESTEDGROUPS=true",
		"CONNECT_AUTHORIZATION_USERROLEGROUPMAPPING=true",
		"CONNECT_AUTHORIZATION_ADMINISTRATORROLEMAPPING=analysts",
		"CONNECT_AUTHORIZATION_PUBLISHERROLEMAPPING=publishers",
	}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)

	br := browser.New(t, 1280)
	login := func(user, password string) {
		t.Helper()
		br.Run("log in as "+user, chromedp.Navigate(c.URL("/__login__")),
			chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
			chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
			chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
			chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
			// The form's answer: the dashboard, or the form again with a message.
			chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) li.who, body:not([data-old]) p.error`)))
	}
	pageError := func() string {
		return browser.Value(br, "the login page's message", chromedp.Evaluate[string](`(document.querySelector("p.error")||{}).textContent||""`))
	}

	br.Visit(c.URL("/__login__"), "e2e-ldap-login")
	for _, bad := range []struct{ user, pw string }{{"alice", "wrong-pw"}, {"*)(uid=*", "alice-pw"}, {"admin)(|(uid=*", "alice-pw"}} {
		login(bad.user, bad.pw)
		if msg := pageError(); msg != "Wrong username or password." {
			t.Errorf("login %q with a wrong password: the page says %q", bad.user, msg)
		}
		br.Expect("HTTP 401 from")
	}
	br.Allow("/favicon.ico")
	br.Check("e2e-ldap-login-refused")
	br.Screenshot("e2e-ldap-login-refused")

	// An acl app shared with data-science, deployed with alice's key
	// once her first login has made her account.
	login("alice", "alice-pw")
	key, guid := deployProbeForGroup(t, c, c, "alice", "ldap-who", "data-science")
	waitApp(t, c, "/content/"+guid+"/headers", key, 3*time.Minute)
	logOut(br)
	login("alice", "alice-pw") // again: the dashboard now lists the app
	browserJourney(t, br, c, "/content/"+guid+"/headers", "alice", "administrator", []string{"analysts", "data-science", "staff"}, "e2e-ldap")
	logOutChecked(t, br, c)

	// bob: a publisher, not in data-science.
	login("bob", "bob-pw")
	if who := browser.Value(br, "who", chromedp.Text(chromedp.CSS(`li.who`))); !strings.Contains(who, "bob") || !strings.Contains(who, "publisher") {
		t.Errorf("bob's dashboard shows %q, want bob, publisher", who)
	}
	br.Run("bob at the acl app", chromedp.Navigate(c.URL("/content/"+guid+"/headers")), chromedp.WaitReady(chromedp.CSS("body")))
	if body := browser.Value(br, "bob's answer", chromedp.Evaluate[string](`document.body.innerText`)); strings.Contains(body, "RStudio-Connect-Credentials") {
		t.Errorf("bob (not in data-science) reached the acl app: %s", body)
	}
	br.Expect("HTTP 403 from")

	// The directory goes down: a clear page; bob's session goes on.
	slapd.Stop()
	br.Run("open a second tab's worth of login", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitVisible(chromedp.CSS(`li.who`)))
	if who := browser.Value(br, "who", chromedp.Text(chromedp.CSS(`li.who`))); !strings.Contains(who, "bob") {
		t.Errorf("bob's session while the directory is down shows %q", who)
	}
	cl := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.PostForm(c.URL("/__login__"), map[string][]string{"username": {"carol"}, "password": {"carol-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("login with the directory down = %d, want 503", resp.StatusCode)
	}
	logOut(br)
	login("carol", "carol-pw")
	if msg := pageError(); !strings.Contains(msg, "cannot be reached") {
		t.Errorf("login with the directory down: the page says %q", msg)
	}
	br.Expect("HTTP 503 from")
	br.Allow("/favicon.ico")
	br.Check("e2e-ldap-login-down")
	br.Screenshot("e2e-ldap-login-down")
	slapd.Restart()

	if r := c.Exec("dais", "config", "print"); !strings.Contains(r.Stdout, "BindPassword = (redacted)") || strings.Contains(r.Stdout, slapdtest.ServicePass) {
		t.Errorf("dais config print does not redact LDAP.corp.BindPassword:\n%s", r.Stdout)
	}
	logs := c.Logs()
	for _, secret := range []string{slapdtest.ServicePass, "alice-pw", "bob-pw", "carol-pw"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the server's log has the password %q", secret)
		}
	}
	if !strings.Contains(logs, "LDAP directory cannot be reached") {
		t.Errorf("no log line for the directory down:\n%s", tail(logs, 30))
	}
	t.Logf("figure: LDAP through the container with StartTLS: refused x3 on the page, alice -> administrator with data-science (nested), bob -> publisher refused by the acl app, directory down -> 503 page and bob's session kept")
}
