package deploy_test

import (
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
