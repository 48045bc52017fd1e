package deploy_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/deploy"
)

// TestContentAccessRevokedAtOnce: at /content/<guid>/, a change of access
// type, a removed permission or a deleted content takes effect on the very
// next request, however many requests were allowed just before (a cache
// of content or ACLs must not keep granting access).
func TestContentAccessRevokedAtOnce(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "site", tarGz(t, example("static")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	path := "/content/" + guid + "/"
	expect := func(step, user string, want int) {
		t.Helper()
		for range 20 { // warm whatever could be cached; each must agree
			if a := f.do(t, "GET", path, user, nil); a.status != want {
				t.Fatalf("%s: GET %s as %q = %d, want %d", step, path, user, a.status, want)
			}
		}
	}
	expect("access type all", "", http.StatusOK)
	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"access_type":"logged_in"}`, nil)
	expect("logged_in: anonymous sent to log in", "", http.StatusFound)
	expect("logged_in: a viewer", "viewer1", http.StatusOK)

	f.must(t, "PATCH", "/__api__/v1/content/"+guid, "pub1", `{"access_type":"acl"}`, nil)
	expect("acl: a viewer not on the list", "viewer1", http.StatusForbidden)
	var perm struct {
		ID string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/permissions", "pub1",
		`{"principal_guid":"`+f.users["viewer1"].GUID+`","principal_type":"user","role":"viewer"}`, &perm)
	expect("acl: the viewer added", "viewer1", http.StatusOK)
	f.must(t, "DELETE", "/__api__/v1/content/"+guid+"/permissions/"+perm.ID, "pub1", nil, nil)
	expect("acl: the viewer removed", "viewer1", http.StatusForbidden)
	expect("acl: the owner", "pub1", http.StatusOK)

	f.must(t, "DELETE", "/__api__/v1/content/"+guid, "pub1", nil, nil)
	expect("deleted", "pub1", http.StatusNotFound)
}

// TestContentPathBenchmark (DAIS_BENCH=1) measures the dais side of a
// request to deployed content (authentication, content lookup, access
// check, proxy) against the same Flask process hit directly, with 8
// clients for DAIS_BENCH_DURATION (default 5s) per target. Profile dais's
// own work with
//
//	DAIS_BENCH=1 go test -run ContentPathBenchmark -cpuprofile cpu.out ./server/deploy
//
// (the Flask process is not in the profile).
func TestContentPathBenchmark(t *testing.T) {
	if os.Getenv("DAIS_BENCH") != "1" {
		t.Skip("a benchmark: DAIS_BENCH=1")
	}
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	dur := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("DAIS_BENCH_DURATION")); err == nil {
		dur = d
	}
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "flask", tarGz(t, example("flask")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	if a := f.do(t, "GET", "/content/"+guid+"/hello", "", nil); a.status != 200 {
		t.Fatalf("GET /hello = %d %s", a.status, a.body)
	}
	addr := f.svc.ProcessAddr(guid)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, target := range []struct{ name, url, key string }{
		{"direct", "http://" + addr + "/hello", ""},
		{"content", f.ts.URL + "/content/" + guid + "/hello", ""},
		{"content_key", f.ts.URL + "/content/" + guid + "/hello", f.keys["pub1"]},
	} {
		var n, failed atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(dur)
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(stop) {
					req, _ := http.NewRequest("GET", target.url, nil)
					if target.key != "" {
						req.Header.Set("Authorization", "Key "+target.key)
					}
					resp, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
						continue
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Errorf("%s: %d requests failed", target.name, failed.Load())
		}
		fmt.Printf("RESULT content_path_%s_rps %.1f\n", target.name, float64(n.Load())/dur.Seconds())
	}
}
