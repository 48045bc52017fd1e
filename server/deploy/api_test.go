package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/dais-dev/dais/server/store"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/deploy"
)

// staticBundle is a static site whose page says text.
func staticBundle(t *testing.T, text string) []byte {
	t.Helper()
	dir := t.TempDir()
	index := "<html><body>" + text + "</body></html>"
	os.WriteFile(filepath.Join(dir, "index.html"), []byte(index), 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{}}}`), 0o644)
	return tarGz(t, dir)
}

// upload sends a bundle of guid and returns its id.
func (f *fixture) upload(t *testing.T, user, guid string, archive []byte) string {
	t.Helper()
	var b struct {
		ID string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/bundles", user, archive, &b)
	return b.ID
}

// startTask posts body to path and waits for the task it starts.
func (f *fixture) startTask(t *testing.T, user, path, body string) (taskJSON, []string) {
	t.Helper()
	var d struct {
		TaskID string `json:"task_id"`
	}
	f.must(t, "POST", path, user, body, &d)
	return f.waitV1(t, user, d.TaskID)
}

func (f *fixture) page(t *testing.T, guid string) string {
	t.Helper()
	a := f.do(t, "GET", "/content/"+guid+"/", "", nil)
	return string(a.body)
}

// TestDraftThenActivate: a deploy with activate false builds the bundle
// and leaves the live one serving; deploying that bundle makes it live.
func TestDraftThenActivate(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "site", staticBundle(t, "version one"))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	live := f.mustContent(t, guid).BundleID
	draft := f.upload(t, "pub1", guid, staticBundle(t, "version two"))
	tj, lines = f.startTask(t, "pub1", "/__api__/v1/content/"+guid+"/deploy", `{"bundle_id":"`+draft+`","activate":false}`)
	if tj.Code != 0 || !strings.Contains(strings.Join(lines, "\n"), "not live (a draft)") {
		t.Fatalf("draft deploy: %d %s\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	if got := f.page(t, guid); !strings.Contains(got, "version one") {
		t.Fatalf("after the draft the page is %q, want version one still live", got)
	}
	if c := f.mustContent(t, guid); c.BundleID == nil || *c.BundleID != *live {
		t.Fatalf("active bundle after the draft = %v, want %d", c.BundleID, *live)
	}
	if a := f.do(t, "POST", "/__api__/v1/content/"+guid+"/deploy", "pub1", `{"bundle_id":"`+draft+`","activate":"no"}`); a.status != 400 {
		t.Errorf("activate as a string = %d %s, want 400", a.status, a.body)
	}
	tj, lines = f.startTask(t, "pub1", "/__api__/v1/content/"+guid+"/deploy", `{"bundle_id":"`+draft+`"}`)
	if tj.Code != 0 {
		t.Fatalf("activating deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	if got := f.page(t, guid); !strings.Contains(got, "version two") {
		t.Fatalf("after activation the page is %q, want version two", got)
	}
}

// TestBuild: POST .../build is a task like a deploy that restores the
// environment again; a viewer may not start one.
func TestBuild(t *testing.T) {
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "flask", tarGz(t, example("flask")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	bid := *f.mustContent(t, guid).BundleID
	tj, lines = f.startTask(t, "pub1", "/__api__/v1/content/"+guid+"/build", `{"bundle_id":"`+itoa(int(bid))+`"}`)
	if tj.Code != 0 || !strings.Contains(strings.Join(lines, "\n"), "Rebuilding the package environment") {
		t.Fatalf("build: %d %s\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	if a := f.do(t, "GET", "/content/"+guid+"/hello", "", nil); a.status != 200 || !strings.Contains(string(a.body), "hello from flask") {
		t.Fatalf("after the build GET /hello = %d %s", a.status, a.body)
	}
	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"access_type":"logged_in"}`, nil)
	if a := f.do(t, "POST", "/__api__/v1/content/"+guid+"/build", "viewer1", `{}`); a.status != 403 {
		t.Errorf("viewer build = %d %s, want 403", a.status, a.body)
	}
	if a := f.do(t, "POST", "/__api__/v1/content/"+guid+"/build", "pub1", `{"bundle_id":"999999"}`); a.status != 404 {
		t.Errorf("build of an unknown bundle = %d %s, want 404", a.status, a.body)
	}
}

// TestBundleDownloadAndDelete: the archive comes back byte for byte; the
// active bundle cannot be deleted, another one can, and is gone after.
func TestBundleDownloadAndDelete(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	first := staticBundle(t, "one")
	guid, tj, _ := f.deployV1(t, "pub1", "site", first)
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s", tj.Error)
	}
	active := itoa(int(*f.mustContent(t, guid).BundleID))
	second := staticBundle(t, "two")
	other := f.upload(t, "pub1", guid, second)

	for _, tt := range []struct {
		id   string
		want []byte
	}{{active, first}, {other, second}} {
		a := f.do(t, "GET", "/__api__/v1/content/"+guid+"/bundles/"+tt.id+"/download", "pub1", nil)
		if a.status != 200 || !bytes.Equal(a.body, tt.want) {
			t.Fatalf("download of bundle %s = %d, %d bytes; want 200 and the %d bytes uploaded", tt.id, a.status, len(a.body), len(tt.want))
		}
	}
	for _, tt := range []struct {
		name, method, path, user string
		want                     int
	}{
		{"download by a viewer of the content", "GET", "/bundles/" + other + "/download", "pub2", 403},
		{"download anonymous", "GET", "/bundles/" + other + "/download", "", 401},
		{"download unknown bundle", "GET", "/bundles/999999/download", "pub1", 404},
		{"download bad id", "GET", "/bundles/abc/download", "pub1", 400},
		{"delete the active bundle", "DELETE", "/bundles/" + active, "pub1", 409},
		{"delete by a viewer of the content", "DELETE", "/bundles/" + other, "pub2", 403},
		{"delete", "DELETE", "/bundles/" + other, "pub1", 200},
		{"deleted: gone", "GET", "/bundles/" + other + "/download", "pub1", 404},
		{"deleted: twice", "DELETE", "/bundles/" + other, "pub1", 404},
		{"active still there", "GET", "/bundles/" + active + "/download", "pub1", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if a := f.do(t, tt.method, "/__api__/v1/content/"+guid+tt.path, tt.user, nil); a.status != tt.want {
				t.Fatalf("%s = %d %s, want %d", tt.path, a.status, a.body, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(f.cfg.Server.DataDir, "apps", itoa(int(f.mustContent(t, guid).ID)), other)); !os.IsNotExist(err) {
		t.Errorf("the deleted bundle's files are still there: %v", err)
	}
}

// TestLockedContent: locking stops serving (the message is shown),
// refuses deploys, renders and settings; unlocking serves again.
func TestLockedContent(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	guid, tj, _ := f.deployV1(t, "pub1", "site", staticBundle(t, "open"))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s", tj.Error)
	}
	path := "/__api__/v1/content/" + guid
	f.must(t, "PATCH", path, "pub1", `{"locked":true,"locked_message":"Moved to reports"}`, nil)
	var c struct {
		Locked        bool   `json:"locked"`
		LockedMessage string `json:"locked_message"`
	}
	f.must(t, "GET", path, "pub1", nil, &c)
	if !c.Locked || c.LockedMessage != "Moved to reports" {
		t.Fatalf("content after locking: %+v", c)
	}
	if a := f.do(t, "GET", "/content/"+guid+"/", "", nil); a.status != 403 || !strings.Contains(string(a.body), "Moved to reports") {
		t.Fatalf("locked content serves %d %s, want 403 with the message", a.status, a.body)
	}
	bid := f.upload(t, "pub1", guid, staticBundle(t, "new"))
	for _, tt := range []struct{ method, path, body string }{
		{"POST", path + "/deploy", `{"bundle_id":"` + bid + `"}`},
		{"POST", path + "/build", `{}`},
		{"PATCH", path, `{"title":"changed"}`},
		{"PATCH", path + "/environment", `[{"name":"A","value":"b"}]`},
		{"POST", "/__api__/applications/" + itoa(int(f.mustContent(t, guid).ID)) + "/deploy", `{}`},
	} {
		if a := f.do(t, tt.method, tt.path, "pub1", tt.body); a.status != 409 || !strings.Contains(string(a.body), "locked") {
			t.Errorf("%s %s on locked content = %d %s, want 409", tt.method, tt.path, a.status, a.body)
		}
	}
	f.must(t, "PATCH", path, "pub1", `{"locked_message":"Back soon"}`, nil)
	f.must(t, "PATCH", path, "pub1", `{"locked":false}`, nil)
	deadline := timeNow().Add(timeout)
	for f.do(t, "GET", "/content/"+guid+"/", "", nil).status != 200 {
		if timeNow().After(deadline) {
			t.Fatal("unlocked content is not served again")
		}
		sleep()
	}
	if got := f.page(t, guid); !strings.Contains(got, "open") {
		t.Fatalf("unlocked content serves %q", got)
	}
}

// TestContentPatchFields: every field is set or refused with a 400 that
// names it; a refused request changes nothing.
func TestContentPatchFields(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	f.cfg.Scheduler.MaxMemoryLimit, f.cfg.Scheduler.MaxCPULimit = 1<<30, 2
	var c struct {
		GUID string `json:"guid"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"fields"}`, &c)
	path := "/__api__/v1/content/" + c.GUID
	for _, tt := range []struct {
		name, user, body string
		want             int
		wantIn           string
	}{
		{"title", "pub1", `{"title":"T"}`, 200, `"title":"T"`},
		{"unknown field", "pub1", `{"colour":"red"}`, 400, `unknown content field \"colour\"`},
		{"read-only field", "pub1", `{"guid":"x"}`, 400, "guid cannot be set"},
		{"unsupported with a value", "pub1", `{"load_factor":0.8}`, 400, "does not support load_factor"},
		{"unsupported null", "pub1", `{"load_factor":null}`, 200, `"guid"`},
		{"proxy timeouts", "pub1", `{"connection_timeout":30,"read_timeout":0}`, 200, `"connection_timeout":30,"read_timeout":0`},
		{"proxy timeouts null", "pub1", `{"connection_timeout":null}`, 200, `"connection_timeout":null,"read_timeout":0`},
		{"negative timeout", "pub1", `{"read_timeout":-1}`, 400, "read_timeout must be an integer from 0 to 604800"},
		{"absurd timeout", "pub1", `{"connection_timeout":3600000}`, 400, "connection_timeout must be an integer from 0 to 604800"},
		{"fractional timeout", "pub1", `{"connection_timeout":1.5}`, 400, "connection_timeout must be an integer"},
		{"run as current user", "pub1", `{"run_as_current_user":true}`, 400, "run_as_current_user"},
		{"run as current user false", "pub1", `{"run_as_current_user":false}`, 200, `"run_as_current_user":false`},
		{"environment management off", "pub1", `{"py_environment_management":false}`, 400, "py_environment_management can only be true"},
		{"wrong type", "pub1", `{"max_processes":"many"}`, 400, "max_processes must be an integer"},
		{"locked wrong type", "pub1", `{"locked":"yes"}`, 400, "locked must be true or false"},
		{"process settings", "pub1", `{"min_processes":1,"max_processes":2,"idle_timeout":5,"init_timeout":30,"max_conns_per_process":10}`, 200, `"max_processes":2`},
		{"run_as by a publisher", "pub1", `{"run_as":"someone"}`, 403, "only administrators may change run_as"},
		{"run_as by an administrator", "admin1", `{"run_as":"nobody"}`, 200, `"run_as":"nobody"`}, // a user that exists here and is not root
		{"outbound network shown as the server default", "pub1", `{}`, 200, `"outbound_network":null`},
		{"outbound network by a publisher", "pub1", `{"outbound_network":true}`, 403, "only administrators may change outbound_network"},
		{"outbound network wrong type", "admin1", `{"outbound_network":"off"}`, 400, "outbound_network must be true, false or null"},
		{"outbound network off by an administrator", "admin1", `{"outbound_network":false}`, 200, `"outbound_network":false`},
		{"outbound network unchanged by a publisher", "pub1", `{"outbound_network":false,"title":"same"}`, 200, `"outbound_network":false`},
		{"outbound network back to the default", "admin1", `{"outbound_network":null}`, 200, `"outbound_network":null`},
		{"limits shown as the server default", "pub1", `{}`, 200, `"memory_limit":null`},
		{"memory and cpu limits", "pub1", `{"memory_limit":268435456,"cpu_limit":0.5,"memory_request":134217728,"cpu_request":0.25}`, 200,
			`"memory_request":134217728,"memory_limit":268435456,"cpu_request":0.25,"cpu_limit":0.5`},
		{"memory limit in a float's notation", "pub1", `{"memory_limit":5.36870912e+08}`, 200, `"memory_limit":536870912`},
		{"memory limit over the maximum", "pub1", `{"memory_limit":2147483648}`, 400, "memory_limit 2147483648 is over the server's maximum of 1073741824 bytes"},
		{"memory limit too small", "pub1", `{"memory_limit":1000}`, 400, "memory_limit must be at least"},
		{"memory limit not whole", "pub1", `{"memory_limit":"1G"}`, 400, "memory_limit must be a whole number of bytes"},
		{"cpu limit over the maximum", "pub1", `{"cpu_limit":4}`, 400, "cpu_limit 4 is over the server's maximum of 2 CPUs"},
		{"cpu request over its limit", "pub1", `{"cpu_request":1}`, 400, "cpu_request must not exceed cpu_limit"},
		{"limits back to the default", "pub1", `{"memory_limit":null,"memory_request":0,"cpu_limit":null,"cpu_request":null}`, 200, `"memory_request":null,"memory_limit":null`},
		{"owner by a publisher", "pub1", `{"owner_guid":"` + f.users["pub2"].GUID + `"}`, 403, "only administrators may change the owner"},
		{"owner unknown", "admin1", `{"owner_guid":"nope"}`, 400, "owner_guid: no user"},
		{"owner a viewer", "admin1", `{"owner_guid":"` + f.users["viewer1"].GUID + `"}`, 400, "is a viewer"},
		{"viewer cannot patch", "viewer1", `{"title":"x"}`, 404, "no content"},
		{"owner transfer", "admin1", `{"owner_guid":"` + f.users["pub2"].GUID + `"}`, 200, `"owner_guid":"` + f.users["pub2"].GUID + `"`},
		{"old owner lost it", "pub1", `{"title":"mine"}`, 404, "no content"},
		{"new owner has it", "pub2", `{"title":"theirs"}`, 200, `"title":"theirs"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := *f.mustContent(t, c.GUID)
			a := f.do(t, "PATCH", path, tt.user, tt.body)
			if a.status != tt.want || !strings.Contains(string(a.body), tt.wantIn) {
				t.Fatalf("PATCH %s = %d %s, want %d with %q", tt.body, a.status, a.body, tt.want, tt.wantIn)
			}
			if a.status != 200 {
				after := *f.mustContent(t, c.GUID)
				after.UpdatedAt = before.UpdatedAt
				if after.Title != before.Title || after.OwnerID != before.OwnerID || after.RunAs != before.RunAs || after.Locked != before.Locked ||
					(after.OutboundNetwork == nil) != (before.OutboundNetwork == nil) ||
					resources(after) != resources(before) {
					t.Errorf("a refused PATCH changed the content: %+v -> %+v", before, after)
				}
			}
		})
	}
	// Owner transfer onto a name the new owner already uses: 409.
	var mine struct {
		GUID string `json:"guid"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"fields"}`, &mine)
	if a := f.do(t, "PATCH", "/__api__/v1/content/"+mine.GUID, "admin1", `{"owner_guid":"`+f.users["pub2"].GUID+`"}`); a.status != 409 {
		t.Errorf("owner transfer onto a taken name = %d %s, want 409", a.status, a.body)
	}
}

const timeout = 30 * time.Second

// resources shows c's memory and CPU fields by value.
func resources(c store.Content) string {
	v := func(p any) string {
		switch x := p.(type) {
		case *int64:
			if x != nil {
				return fmt.Sprint(*x)
			}
		case *float64:
			if x != nil {
				return fmt.Sprint(*x)
			}
		}
		return "null"
	}
	return v(c.MemoryRequest) + " " + v(c.MemoryLimit) + " " + v(c.CPURequest) + " " + v(c.CPULimit)
}

var timeNow = time.Now

func sleep() { time.Sleep(50 * time.Millisecond) }

// TestRuntimeCache: a second deploy with the same requirements reuses the
// environment the first built; the cache is listed per runtime and
// cleared with DELETE, after which a deploy restores again.
func TestRuntimeCache(t *testing.T) {
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	f := newFixture(t, deploy.Options{})
	const reuse = "Reusing the Python package environment of the runtime cache"
	guid, tj, lines := f.deployV1(t, "pub1", "first", tarGz(t, example("flask")))
	if tj.Code != 0 || strings.Contains(strings.Join(lines, "\n"), reuse) {
		t.Fatalf("first deploy: %d %s (want a restore, not the cache)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	guid2, tj, lines := f.deployV1(t, "pub1", "second", tarGz(t, example("flask")))
	if tj.Code != 0 || !strings.Contains(strings.Join(lines, "\n"), reuse) {
		t.Fatalf("second deploy: %d %s (want the cache reused)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	for _, g := range []string{guid, guid2} {
		if a := f.do(t, "GET", "/content/"+g+"/hello", "", nil); a.status != 200 || !strings.Contains(string(a.body), "hello from flask") {
			t.Fatalf("GET /hello of %s = %d %s", g, a.status, a.body)
		}
	}
	// Never across tenants, nor with other environment variables (they
	// reach the restore: PIP_INDEX_URL, ...), nor for a package file that
	// refers to files or options.
	if _, tj, lines := f.deployV1(t, "pub2", "other-owner", tarGz(t, example("flask"))); tj.Code != 0 || strings.Contains(strings.Join(lines, "\n"), reuse) {
		t.Fatalf("another owner's deploy: %d %s (want its own restore)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	var withEnv struct {
		GUID string `json:"guid"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"with-env","access_type":"all"}`, &withEnv)
	f.must(t, "PATCH", "/__api__/v1/content/"+withEnv.GUID+"/environment", "pub1", `[{"name":"PIP_INDEX_URL","value":"http://127.0.0.1:9/simple"}]`, nil)
	if _, tj, lines := f.deployV1(t, "pub1", "with-env", tarGz(t, example("flask"))); tj.Code != 0 || strings.Contains(strings.Join(lines, "\n"), reuse) {
		t.Fatalf("deploy with an environment variable: %d %s (want its own restore)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	refs := t.TempDir()
	for name, body := range map[string]string{"app.py": "from flask import Flask\napp = Flask(__name__)\n", "requirements.txt": "-r base.txt\n", "base.txt": "flask\n",
		"manifest.json": `{"version":1,"metadata":{"appmode":"python-api","entrypoint":"app"},"python":{"version":"3","package_manager":{"name":"pip","package_file":"requirements.txt"}},"files":{}}`} {
		os.WriteFile(filepath.Join(refs, name), []byte(body), 0o644)
	}
	for range 2 {
		_, tj, lines := f.deployV1(t, "pub1", "refs", tarGz(t, refs))
		if tj.Code != 0 || strings.Contains(strings.Join(lines, "\n"), reuse) || !strings.Contains(strings.Join(lines, "\n"), "not kept in the package cache") {
			t.Fatalf("deploy of a package file with -r: %d %s (want no cache)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
		}
	}

	var list struct {
		Caches []deploy.RuntimeCache `json:"caches"`
	}
	f.must(t, "GET", "/__api__/v1/system/caches/runtime", "admin1", nil, &list)
	if len(list.Caches) != 1 || list.Caches[0].Language != "Python" || list.Caches[0].ImageName != "Local" {
		t.Fatalf("caches = %+v, want one Python cache", list.Caches)
	}
	rc := list.Caches[0]
	body := `{"language":"python","version":"` + rc.Version + `","image_name":"Local","dry_run":%s}`
	for _, tt := range []struct {
		name, method, user, body string
		want                     int
	}{
		{"publisher cannot list", "GET", "pub1", "", 403},
		{"publisher cannot delete", "DELETE", "pub1", strings.Replace(body, "%s", "false", 1), 403},
		{"unknown version", "DELETE", "admin1", `{"language":"Python","version":"0.1","image_name":"Local","dry_run":false}`, 404},
		{"no language", "DELETE", "admin1", `{"version":"1"}`, 400},
		{"wrong type", "DELETE", "admin1", `{"language":"Python","version":"1","dry_run":"yes"}`, 400},
	} {
		if a := f.do(t, tt.method, "/__api__/v1/system/caches/runtime", tt.user, tt.body); a.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, a.status, a.body, tt.want)
		}
	}
	var del struct {
		Language string  `json:"language"`
		TaskID   *string `json:"task_id"`
	}
	f.must(t, "DELETE", "/__api__/v1/system/caches/runtime", "admin1", strings.Replace(body, "%s", "true", 1), &del)
	if del.TaskID != nil || del.Language != "Python" {
		t.Fatalf("dry run = %+v, want no task", del)
	}
	f.must(t, "GET", "/__api__/v1/system/caches/runtime", "admin1", nil, &list)
	if len(list.Caches) != 1 {
		t.Fatalf("the dry run removed the cache: %+v", list.Caches)
	}
	f.must(t, "DELETE", "/__api__/v1/system/caches/runtime", "admin1", strings.Replace(body, "%s", "false", 1), &del)
	if del.TaskID == nil {
		t.Fatal("delete started no task")
	}
	if tj, lines := f.waitV1(t, "admin1", *del.TaskID); tj.Code != 0 {
		t.Fatalf("delete task: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	f.must(t, "GET", "/__api__/v1/system/caches/runtime", "admin1", nil, &list)
	if len(list.Caches) != 0 {
		t.Fatalf("caches after delete = %+v", list.Caches)
	}
	if a := f.do(t, "GET", "/content/"+guid2+"/hello", "", nil); a.status != 200 {
		t.Fatalf("content deployed from the cache stopped working after the cache was cleared: %d", a.status)
	}
	_, tj, lines = f.deployV1(t, "pub1", "third", tarGz(t, example("flask")))
	if tj.Code != 0 || strings.Contains(strings.Join(lines, "\n"), reuse) {
		t.Fatalf("deploy after clearing: %d %s (want a restore)\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
}

// TestBadInput: wrong types, unknown guids, another user's content, a
// viewer writing, oversized bodies: Connect's JSON error and status, and
// nothing changes.
func TestBadInput(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	guid, tj, _ := f.deployV1(t, "pub1", "site", staticBundle(t, "kept"))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s", tj.Error)
	}
	var private struct {
		GUID string `json:"guid"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"private"}`, &private)
	otherBundle := f.upload(t, "pub1", private.GUID, staticBundle(t, "other"))
	big := `{"title":"` + strings.Repeat("x", 5<<20) + `"}`
	before := *f.mustContent(t, guid)
	for _, tt := range []struct {
		name, method, path, user, body string
		want                           int
	}{
		{"oversized PATCH", "PATCH", "/__api__/v1/content/" + guid, "pub1", big, 413},
		{"oversized user", "POST", "/__api__/v1/users", "admin1", big, 413},
		{"malformed JSON", "PATCH", "/__api__/v1/content/" + guid, "pub1", `{"title":`, 400},
		{"wrong type", "PATCH", "/__api__/v1/content/" + guid, "pub1", `{"title":7}`, 400},
		{"not an object", "PATCH", "/__api__/v1/content/" + guid, "pub1", `["title"]`, 400},
		{"unknown guid", "PATCH", "/__api__/v1/content/00000000-0000-0000-0000-000000000000", "pub1", `{"title":"x"}`, 404},
		{"another user's content", "PATCH", "/__api__/v1/content/" + private.GUID, "pub2", `{"title":"x"}`, 404},
		{"another user's bundle", "GET", "/__api__/v1/content/" + private.GUID + "/bundles/" + otherBundle + "/download", "pub2", "", 404},
		{"a bundle of other content", "POST", "/__api__/v1/content/" + guid + "/deploy", "pub1", `{"bundle_id":"` + otherBundle + `"}`, 404},
		{"bundle id not a number", "POST", "/__api__/v1/content/" + guid + "/deploy", "pub1", `{"bundle_id":{}}`, 400},
		{"viewer creates", "POST", "/__api__/v1/content", "viewer1", `{"name":"mine"}`, 403},
		{"viewer patches", "PATCH", "/__api__/v1/content/" + guid, "viewer1", `{"title":"x"}`, 403},
		{"viewer deletes a bundle", "DELETE", "/__api__/v1/content/" + guid + "/bundles/" + otherBundle, "viewer1", "", 403},
		{"viewer locks a user", "POST", "/__api__/v1/users/" + f.users["pub1"].GUID + "/lock", "viewer1", `{"locked":true}`, 403},
		{"anonymous write", "PATCH", "/__api__/v1/content/" + guid, "", `{"title":"x"}`, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, tt.method, tt.path, tt.user, tt.body)
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			a.json(t, &e)
			if a.status != tt.want || e.Code != tt.want || e.Error == "" {
				t.Fatalf("%s %s = %d %s, want %d with {error, code}", tt.method, tt.path, a.status, a.body, tt.want)
			}
		})
	}
	after := *f.mustContent(t, guid)
	if after.Title != before.Title || *after.BundleID != *before.BundleID || after.UpdatedAt != before.UpdatedAt {
		t.Errorf("refused requests changed the content: %+v -> %+v", before, after)
	}
	if u, err := f.st.UserByGUID(t.Context(), f.users["pub1"].GUID); err != nil || u.Locked {
		t.Errorf("a viewer locked pub1: %v %+v", err, u)
	}
	if got := f.page(t, guid); !strings.Contains(got, "kept") {
		t.Errorf("the content serves %q after the refused requests", got)
	}
	if a := f.do(t, "GET", "/__ping__", "", nil); a.status != 200 {
		t.Errorf("the server stopped answering: %d", a.status)
	}
}

// TestTaskLongPollWakes: a long poll of a task of this node returns as
// soon as the task writes a line or ends, not at its next read of the
// task (each second): a static deploy done in 5 ms was reported done
// 200 ms later (bench/scale.sh).
func TestTaskLongPollWakes(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	ctx := t.Context()
	task := &store.Task{UserID: f.users["pub1"].ID, Kind: store.TaskDeploy, Node: f.svc.Node()}
	if err := f.st.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	poll := func(first int, change func()) (taskJSON, time.Duration) {
		t.Helper()
		changed := make(chan time.Time, 1)
		go func() {
			time.Sleep(300 * time.Millisecond) // the poll is waiting
			changed <- time.Now()
			change()
		}()
		var tj taskJSON
		f.must(t, "GET", "/__api__/v1/tasks/"+task.ID+"?wait=20&first="+itoa(first), "pub1", nil, &tj)
		return tj, time.Since(<-changed)
	}
	tj, after := poll(0, func() { f.svc.WriteTask(task.ID, "one line") })
	if len(tj.Output) != 1 || tj.Output[0] != "one line" || tj.Finished {
		t.Fatalf("poll after a line: %+v", tj)
	}
	// Unwoken, the poll would return at its next read, 700 ms after the line.
	if after > 500*time.Millisecond {
		t.Errorf("the poll returned %s after the line was written: not woken", after)
	}
	tj, after = poll(1, func() {
		if err := f.svc.FinishTask(context.Background(), task.ID, 0); err != nil {
			t.Error(err)
		}
	})
	if !tj.Finished || len(tj.Output) != 0 {
		t.Fatalf("poll after the end: %+v", tj)
	}
	if after > 500*time.Millisecond {
		t.Errorf("the poll returned %s after the task ended: not woken", after)
	}
}
