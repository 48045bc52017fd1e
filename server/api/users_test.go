package api_test

import (
	"context"
	"strings"
	"testing"
)

func TestUsers(t *testing.T) {
	f := newFixture(t)
	f.run(t, []apiCase{
		{name: "me without key", method: "GET", path: "/__api__/me", want: 401, wantIn: "Authorization: Key <key>"},
		{name: "me viewer", method: "GET", path: "/__api__/me", role: "viewer", want: 200, wantIn: `"username":"viewer1"`},
		{name: "users/current", method: "GET", path: "/__api__/users/current", role: "publisher", want: 200, wantIn: `"user_role":"publisher"`},
		{name: "v1/user", method: "GET", path: "/__api__/v1/user", role: "administrator", want: 200, wantIn: `"username":"administrator1"`},
		{name: "viewer cannot create users", method: "POST", path: "/__api__/v1/users", role: "viewer", body: `{"username":"x"}`, want: 403},
		{name: "admin bad JSON", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `[`, want: 400},
		{name: "admin creates user", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `{"username":"new1","password":"longenough","user_role":"publisher"}`, want: 200, wantIn: `"username":"new1"`},
		{name: "duplicate user", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `{"username":"new1"}`, want: 409},
		{name: "bad role", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `{"username":"new2","user_role":"king"}`, want: 400},
		{name: "list users", method: "GET", path: "/__api__/v1/users?page_size=2", role: "viewer", want: 200, wantIn: `"total":4`},
		{name: "list users bad page", method: "GET", path: "/__api__/v1/users?page_size=0", role: "viewer", want: 400},
		{name: "get user", method: "GET", path: "/__api__/v1/users/" + f.users["publisher"].GUID, role: "viewer", want: 200, wantIn: `"username":"publisher1"`},
		{name: "get unknown user", method: "GET", path: "/__api__/v1/users/nope", role: "viewer", want: 404},
		{name: "viewer patches other", method: "PATCH", path: "/__api__/v1/users/" + f.users["publisher"].GUID, role: "viewer", body: `{"first_name":"x"}`, want: 403},
		{name: "viewer patches self", method: "PATCH", path: "/__api__/v1/users/" + f.users["viewer"].GUID, role: "viewer", body: `{"first_name":"Vi"}`, want: 200, wantIn: `"first_name":"Vi"`},
		{name: "viewer cannot promote self", method: "PATCH", path: "/__api__/v1/users/" + f.users["viewer"].GUID, role: "viewer", body: `{"user_role":"administrator"}`, want: 403},
	})
	if u, err := f.st.UserByGUID(context.Background(), f.users["viewer"].GUID); err != nil || u.Role != "viewer" {
		t.Errorf("viewer after refused promotion: %v %+v", err, u)
	}
}

func TestServerSettings(t *testing.T) {
	f := newFixture(t)
	f.run(t, []apiCase{
		{name: "public", method: "GET", path: "/__api__/server_settings", want: 200, wantIn: `"version":"1.2.3-test"`},
	})
	f.web.SetGate(func() (bool, string) { return false, "no license lease: start the license server" })
	if a := f.do(t, "GET", "/__api__/server_settings", "", ""); !strings.Contains(a.body, `"ok":false`) {
		t.Fatalf("server_settings does not show the gate: %s", a.body)
	}
}
