package api_test

import (
	"context"
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

func TestUserUpdateLockAndSearch(t *testing.T) {
	f := newFixture(t)
	pub := f.users["publisher"].GUID
	f.run(t, []apiCase{
		{name: "PUT as connectapi sends it", method: "PUT", path: "/__api__/v1/users/" + pub, role: "administrator", body: `{"email":"p@example.com","first_name":"Pat"}`, want: 200, wantIn: `"email":"p@example.com"`},
		{name: "PUT keeps fields not sent", method: "GET", path: "/__api__/v1/users/" + pub, role: "viewer", want: 200, wantIn: `"first_name":"Pat"`},
		{name: "PUT wrong type", method: "PUT", path: "/__api__/v1/users/" + pub, role: "administrator", body: `{"email":3}`, want: 400, wantIn: "email must be a string"},
		{name: "PUT unknown user", method: "PUT", path: "/__api__/v1/users/nope", role: "administrator", body: `{"email":"x@example.com"}`, want: 404},
		{name: "publisher cannot lock", method: "POST", path: "/__api__/v1/users/" + pub + "/lock", role: "publisher", body: `{"locked":true}`, want: 403},
		{name: "lock needs the field", method: "POST", path: "/__api__/v1/users/" + pub + "/lock", role: "administrator", body: `{}`, want: 400, wantIn: "locked is required"},
		{name: "lock wrong type", method: "POST", path: "/__api__/v1/users/" + pub + "/lock", role: "administrator", body: `{"locked":"yes"}`, want: 400},
		{name: "admin cannot lock self", method: "POST", path: "/__api__/v1/users/" + f.users["administrator"].GUID + "/lock", role: "administrator", body: `{"locked":true}`, want: 400, wantIn: "cannot lock themselves"},
		{name: "lock", method: "POST", path: "/__api__/v1/users/" + pub + "/lock", role: "administrator", body: `{"locked":true}`, want: 200, wantIn: `"locked":true`},
		{name: "locked user refused", method: "GET", path: "/__api__/v1/user", role: "publisher", want: 401, wantIn: "locked"},
		{name: "locked user cannot write", method: "POST", path: "/__api__/v1/content", role: "publisher", body: `{"name":"x"}`, want: 401, wantIn: "locked"},
		{name: "unlock", method: "POST", path: "/__api__/v1/users/" + pub + "/lock", role: "administrator", body: `{"locked":false}`, want: 200, wantIn: `"locked":false`},
		{name: "unlocked user back", method: "GET", path: "/__api__/v1/user", role: "publisher", want: 200, wantIn: `"username":"publisher1"`},
		{name: "search by prefix", method: "GET", path: "/__api__/v1/users?prefix=pub", role: "viewer", want: 200, wantIn: `"total":1`},
		{name: "search by first name prefix", method: "GET", path: "/__api__/v1/users?prefix=pa", role: "viewer", want: 200, wantIn: `"username":"publisher1"`},
		{name: "search finds none", method: "GET", path: "/__api__/v1/users?prefix=zz", role: "viewer", want: 200, wantIn: `"total":0`},
	})
}

// TestCreateUserUnderProxy (issue 15): with another provider than
// password, an account is made without a password and belongs to that
// provider (so that the server's next start does not refuse it); a
// password is refused.
func TestCreateUserUnderProxy(t *testing.T) {
	f := newFixture(t)
	cfg := *f.web.Config()
	cfg.Authentication.Provider = "proxy"
	f.web.SetConfig(&cfg)
	f.run(t, []apiCase{
		{name: "password refused", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `{"username":"erin","password":"longenough"}`, want: 400, wantIn: "not with passwords"},
		{name: "account without password", method: "POST", path: "/__api__/v1/users", role: "administrator", body: `{"username":"erin","user_role":"publisher"}`, want: 200, wantIn: `"username":"erin"`},
	})
	u, err := f.st.UserByUsername(context.Background(), "erin")
	if err != nil || u.Provider != "proxy" || u.PasswordHash != "" || u.UniqueID != "" {
		t.Fatalf("erin: %+v %v, want a proxy account without password or unique id", u, err)
	}
}
