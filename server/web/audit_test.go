package web

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// TestAuditLogin: a login and a logout are in the audit log with the
// user; a failed login is not.
func TestAuditLogin(t *testing.T) {
	f := newFixture(t)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	bad, err := noFollow.PostForm(f.ts.URL+"/__login__", url.Values{"username": {"viewer1"}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	resp, err := noFollow.PostForm(f.ts.URL+"/__login__", url.Values{"username": {"viewer1"}, "password": {"pw-viewer"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", f.ts.URL+"/__logout__", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	out, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	logs, _, err := f.st.ListAuditLogs(context.Background(), store.Page{Limit: 10, Asc: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range logs {
		if l.UserGUID != f.users["viewer"].GUID || l.UserDescription != "viewer1" {
			t.Errorf("entry %+v is not of viewer1", l)
		}
		got = append(got, l.Action)
	}
	if len(got) != 2 || got[0] != AuditLogin || got[1] != AuditLogout {
		t.Errorf("audit log %v, want [%s %s]", got, AuditLogin, AuditLogout)
	}
}
