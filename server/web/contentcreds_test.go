package web

import (
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// TestSetContentCredentials: content learns who is looking as Connect
// tells it, and never from the client.
func TestSetContentCredentials(t *testing.T) {
	r := httptest.NewRequest("GET", "/content/x/", nil)
	r.Header.Set(ConnectCredentialsHeader, `{"user":"admin","groups":["admins"]}`)
	r.Header.Set(ShinyCredentialsHeader, `{"user":"admin"}`)
	SetContentCredentials(r, nil, nil, false)
	if v := r.Header.Values(ConnectCredentialsHeader); len(v) != 0 {
		t.Errorf("anonymous: spoofed %s passed: %q", ConnectCredentialsHeader, v)
	}
	if v := r.Header.Values(ShinyCredentialsHeader); len(v) != 0 {
		t.Errorf("anonymous: spoofed %s passed: %q", ShinyCredentialsHeader, v)
	}

	u := &store.User{Username: `bob "the" builder`}
	r.Header.Add(ConnectCredentialsHeader, `{"user":"admin"}`)
	r.Header.Add(ConnectCredentialsHeader, `{"user":"admin2"}`)
	SetContentCredentials(r, u, nil, false)
	if got, want := r.Header.Values(ConnectCredentialsHeader), []string{`{"user":"bob \"the\" builder","groups":[]}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("API: %s = %q, want %q", ConnectCredentialsHeader, got, want)
	}
	SetContentCredentials(r, u, []string{"eng", "ops"}, true)
	if got, want := r.Header.Values(ShinyCredentialsHeader), []string{`{"user":"bob \"the\" builder","groups":["eng","ops"]}`}; !reflect.DeepEqual(got, want) {
		t.Errorf("Shiny: %s = %q, want %q", ShinyCredentialsHeader, got, want)
	}
	if v := r.Header.Values(ConnectCredentialsHeader); len(v) != 0 {
		t.Errorf("Shiny: %s also set: %q", ConnectCredentialsHeader, v)
	}
}
