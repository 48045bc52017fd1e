package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestVanities(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "bob", "publisher")
	site := f.deployStatic(t, "publisher", "site", "<p>the site</p>")
	other := f.deployStatic(t, "bob", "bobs", "<p>bob's site</p>")
	vp := "/__api__/v1/content/" + site + "/vanity"
	ovp := "/__api__/v1/content/" + other + "/vanity"

	f.run(t, []apiCase{
		{"none yet", "GET", vp, "publisher", "", 404, "no vanity path"},
		{"set", "PUT", vp, "publisher", `{"path":"sales/dashboard"}`, 200, `"path":"/sales/dashboard/"`},
		{"get", "GET", vp, "publisher", "", 200, `"content_guid":"` + site},
		{"list", "GET", "/__api__/v1/vanities", "viewer", "", 200, `"path":"/sales/dashboard/"`},
		{"include vanity_url", "GET", "/__api__/v1/content/" + site + "?include=vanity_url", "publisher", "", 200, `/sales/dashboard/"`},
		{"viewer may not set", "PUT", vp, "viewer", `{"path":"x"}`, 404, "no content"},
		{"another's content", "PUT", vp, "bob", `{"path":"x"}`, 404, "no content"},
		{"no path", "PUT", ovp, "bob", `{}`, 400, "path is required"},
		{"bad characters", "PUT", ovp, "bob", `{"path":"a b"}`, 400, "not valid"},
		{"dot segment", "PUT", ovp, "bob", `{"path":"a/../b"}`, 400, "not valid"},
		{"too deep", "PUT", ovp, "bob", `{"path":"a/b/c/d/e/f/g/h/i"}`, 400, "too long"},
		{"path of the wrong type", "PUT", ovp, "bob", `{"path":5}`, 400, "path must be a string"},
		{"taken", "PUT", ovp, "bob", `{"path":"/sales/dashboard/"}`, 409, `(` + site + `) of user publisher1; pick another path`},
		{"below a taken one", "PUT", ovp, "bob", `{"path":"/sales/dashboard/extra"}`, 409, "lies below /sales/dashboard/"},
		{"above a taken one", "PUT", ovp, "bob", `{"path":"/sales"}`, 409, "lies above /sales/dashboard/"},
		{"force without the right", "PUT", ovp, "bob", `{"path":"/sales/dashboard/","force":true}`, 409, "of user publisher"},
		{"a dais path", "PUT", ovp, "bob", `{"path":"__api__/x"}`, 409, "dais's own /__api__/"},
		{"the dashboard", "PUT", ovp, "bob", `{"path":"/connect/"}`, 409, "dais's own /connect/"},
		{"content", "PUT", ovp, "bob", `{"path":"Content/x"}`, 409, "dais's own /content/"},
		{"login", "PUT", ovp, "bob", `{"path":"__login__"}`, 409, "dais's own /__login__/"},
		{"metrics", "PUT", ovp, "bob", `{"path":"metrics"}`, 409, "dais's own /metrics/"},
		{"free", "PUT", ovp, "bob", `{"path":"bob"}`, 200, `"path":"/bob/"`},
	})

	// The content answers at its vanity path as at /content/<guid>/.
	for _, p := range []string{"/sales/dashboard/", "/content/" + site + "/"} {
		if a := f.raw(t, "GET", p, "publisher", nil); a.status != 200 || a.body != "<p>the site</p>" {
			t.Fatalf("GET %s: %d %q", p, a.status, a.body)
		}
	}
	if a := f.raw(t, "GET", "/sales/dashboard?x=1", "publisher", nil); a.status != http.StatusMovedPermanently || a.header.Get("Location") != "/sales/dashboard/?x=1" {
		t.Fatalf("vanity without its slash: %d %q", a.status, a.header.Get("Location"))
	}
	// With the same access rule.
	if a := f.raw(t, "GET", "/sales/dashboard/", "bob", nil); a.status != http.StatusForbidden {
		t.Fatalf("another user at the vanity path: %d", a.status)
	}
	if a := f.raw(t, "GET", "/sales/dashboard/", "", nil); a.status != http.StatusFound || !strings.HasPrefix(a.header.Get("Location"), "/__login__?next=") {
		t.Fatalf("anonymous at the vanity path: %d %q", a.status, a.header.Get("Location"))
	}
	for _, p := range []string{"/sales/", "/nothing/here", "/connect/nope"} {
		if a := f.raw(t, "GET", p, "publisher", nil); a.status != http.StatusNotFound {
			t.Fatalf("GET %s: %d, want 404", p, a.status)
		}
	}

	// An administrator may take a path with force; the other content loses it.
	f.do(t, "PUT", ovp, "administrator", `{"path":"/sales/dashboard/","force":true}`).must(t, nil)
	if a := f.raw(t, "GET", "/sales/dashboard/", "administrator", nil); a.body != "<p>bob's site</p>" {
		t.Fatalf("after force: %q", a.body)
	}
	if a := f.do(t, "GET", vp, "publisher", ""); a.status != http.StatusNotFound {
		t.Fatalf("the content that lost its path: %d %s", a.status, a.body)
	}
	if a := f.raw(t, "GET", "/bob/", "administrator", nil); a.status != http.StatusNotFound {
		t.Fatalf("bob's former path still answers: %d", a.status)
	}

	// Deleting the path, or the content, frees it.
	f.do(t, "DELETE", ovp, "bob", "").must(t, nil)
	if a := f.raw(t, "GET", "/sales/dashboard/", "administrator", nil); a.status != http.StatusNotFound {
		t.Fatalf("deleted vanity still answers: %d", a.status)
	}
	f.do(t, "PUT", vp, "publisher", `{"path":"again"}`).must(t, nil)
	f.do(t, "DELETE", "/__api__/v1/content/"+site, "publisher", "").must(t, nil)
	var vs []json.RawMessage
	f.do(t, "GET", "/__api__/v1/vanities", "viewer", "").must(t, &vs)
	if len(vs) != 0 {
		t.Fatalf("vanities after deletes: %s", vs)
	}
}

// TestVanityApp: an app at its vanity path gets the same request as at
// /content/<guid>/, with the vanity path as its base URL.
func TestVanityApp(t *testing.T) {
	f := newFixture(t)
	app := `from flask import Flask, jsonify, request
app = Flask(__name__)

@app.route("/", defaults={"rest": ""})
@app.route("/<path:rest>")
def echo(rest):
    return jsonify(path=request.path, query=request.query_string.decode(),
                   base=request.headers.get("RStudio-Connect-App-Base-URL"))
`
	bundle := bundleOf(t, "python-api", `"python":{"version":"3","package_manager":{"name":"pip","package_file":"requirements.txt"}},`,
		map[string]string{"app.py": app, "requirements.txt": "flask\n"})
	guid := f.deployBundle(t, "publisher", "echo", bundle)
	f.do(t, "PUT", "/__api__/v1/content/"+guid+"/vanity", "publisher", `{"path":"team/echo"}`).must(t, nil)

	type echo struct{ Path, Query, Base string }
	get := func(p string) echo {
		t.Helper()
		var e echo
		f.raw(t, "GET", p, "publisher", nil).must(t, &e)
		return e
	}
	byGUID := get("/content/" + guid + "/a/b?x=1")
	byVanity := get("/team/echo/a/b?x=1")
	if byGUID.Path != "/a/b" || byVanity.Path != byGUID.Path || byVanity.Query != "x=1" {
		t.Fatalf("paths: by guid %+v, by vanity %+v", byGUID, byVanity)
	}
	if byGUID.Base != f.ts.URL+"/content/"+guid+"/" || byVanity.Base != f.ts.URL+"/team/echo/" {
		t.Fatalf("base URLs: by guid %q, by vanity %q", byGUID.Base, byVanity.Base)
	}
}
