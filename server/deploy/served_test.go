package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/deploy"
)

// A node that serves nothing of an app (its activation at start failed, or
// another node deployed it since) activates it on its first request; the
// requests that come while that activation is under way wait for it, and
// none is answered "this content is not running" (the ha soak saw two such
// 503s on a restarted node).
func TestRequestsWaitForActivationUnderWay(t *testing.T) {
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "flask", tarGz(t, example("flask")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	f.svc.Forget(guid)
	// The first request's activation waits, as behind another content's.
	release := f.svc.HoldActivations()
	const n = 20
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = f.do(t, "GET", "/content/"+guid+"/hello", "", nil) })
	}
	time.Sleep(500 * time.Millisecond)
	release()
	wg.Wait()
	for i, a := range answers {
		if a.status != 200 || !strings.Contains(string(a.body), "hello from flask") {
			t.Errorf("request %d of %d: %d %s", i+1, n, a.status, a.body)
		}
	}
}

// A node that serves nothing of an app while a deploy of it runs here
// (the deploy holds the content's lock) serves the active bundle
// meanwhile: the ha soak saw 20 requests in a row answered 503 "this
// content is not running" on the node that redeployed the app before its
// first request for it.
func TestRequestsDuringDeployOnANodeServingNothing(t *testing.T) {
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "flask", tarGz(t, example("flask")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	get := func() answer { return f.do(t, "GET", "/content/"+guid+"/hello", "", nil) }

	// A deploy holds the lock: the active bundle serves.
	f.svc.Forget(guid)
	release := f.svc.HoldDeploy(f.mustContent(t, guid).ID)
	for i := range 5 {
		if a := get(); a.status != 200 || !strings.Contains(string(a.body), "hello from flask") {
			t.Errorf("request %d while a deploy holds the lock: %d %s", i+1, a.status, a.body)
		}
	}
	release()

	// A real redeploy: every request answered, by the old bundle or the
	// new, then the new only, by one pool's processes.
	f.svc.Forget(guid)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, tj, lines = f.deployV1(t, "pub1", "flask", tarGz(t, flaskSaying(t, "hello again")))
	}()
	time.Sleep(200 * time.Millisecond)
	n := 0
	for running := true; running; n++ {
		select {
		case <-done:
			running = false
		default:
		}
		if a := get(); a.status != 200 || !strings.Contains(string(a.body), "hello") {
			t.Errorf("request %d during the redeploy: %d %s", n+1, a.status, a.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tj.Code != 0 {
		t.Fatalf("redeploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	if a := get(); a.status != 200 || !strings.Contains(string(a.body), "hello again") {
		t.Errorf("after the redeploy: %d %s, want the new bundle", a.status, a.body)
	}
	t.Logf("%d requests during the redeploy, all answered", n)
}

// flaskSaying is the Flask example answering /hello with greeting.
func flaskSaying(t *testing.T, greeting string) string {
	t.Helper()
	dir := t.TempDir()
	src, _ := os.ReadFile(filepath.Join(example("flask"), "app.py"))
	os.WriteFile(filepath.Join(dir, "app.py"), bytes.ReplaceAll(src, []byte("hello from flask"), []byte(greeting)), 0o644)
	req, _ := os.ReadFile(filepath.Join(example("flask"), "requirements.txt"))
	os.WriteFile(filepath.Join(dir, "requirements.txt"), req, 0o644)
	man, _ := os.ReadFile(filepath.Join(example("flask"), "manifest.json"))
	var m map[string]any
	json.Unmarshal(man, &m)
	m["files"].(map[string]any)["app.py"] = map[string]any{} // its checksum no longer holds
	man, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "manifest.json"), man, 0o644)
	return dir
}
