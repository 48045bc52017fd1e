package deploy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/deploy"
)

// TestDataVolumeReserve (issue 23, defect 7): below the data volume's
// reserve, an upload, a deploy and a render are refused with 507 and a
// message naming the volume and its free space (the upload before a byte
// of it is read), the readiness check says "degraded: data volume full",
// and the liveness check still answers 200. Above it, all work again.
func TestDataVolumeReserve(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "doc", tarGz(t, example("rmarkdown")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	var up struct {
		ID string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/bundles", "pub1", tarGz(t, example("rmarkdown")), &up)
	if a := f.do(t, "GET", "/__ready__", "", nil); a.status != 200 || !strings.Contains(string(a.body), `"status":"ok"`) {
		t.Fatalf("ready = %d %s", a.status, a.body)
	}

	// A reserve larger than any volume.
	cfg := *f.web.Config()
	cfg.Server.DataDirReserve = 1 << 60
	f.web.SetConfig(&cfg)
	checks := []struct {
		name, method, path string
		body               any
	}{
		{"upload", "POST", "/__api__/v1/content/" + guid + "/bundles", tarGz(t, example("rmarkdown"))},
		{"chunked upload", "POST", "/__api__/v1/content/" + guid + "/bundles", strings.NewReader(string(tarGz(t, example("rmarkdown"))))},
		{"deploy", "POST", "/__api__/v1/content/" + guid + "/deploy", `{"bundle_id":"` + up.ID + `"}`},
		{"render", "POST", "/__api__/v1/content/" + guid + "/render", `{}`},
	}
	for _, ck := range checks {
		a := f.do(t, ck.method, ck.path, "pub1", ck.body)
		if a.status != 507 || !strings.Contains(string(a.body), "the data volume "+f.cfg.Server.DataDir+" is full") ||
			!strings.Contains(string(a.body), "free of") || !strings.Contains(string(a.body), "Server.DataDirReserve") {
			t.Errorf("%s below the reserve = %d %s, want 507 naming the volume", ck.name, a.status, a.body)
		}
	}
	a := f.do(t, "GET", "/__ready__", "", nil)
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), `"status":"degraded: data volume full"`) {
		t.Errorf("ready below the reserve = %d %s", a.status, a.body)
	}
	if a := f.do(t, "GET", "/__ping__", "", nil); a.status != 200 {
		t.Errorf("ping below the reserve = %d, want 200 (liveness)", a.status)
	}
	// The content is still served: reading needs no space.
	if a := f.do(t, "GET", "/content/"+guid+"/", "pub1", nil); a.status != 200 {
		t.Errorf("content below the reserve = %d", a.status)
	}

	cfg.Server.DataDirReserve = 0
	f.web.SetConfig(&cfg)
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/bundles", "pub1", tarGz(t, example("rmarkdown")), nil)
	if a := f.do(t, "GET", "/__ready__", "", nil); a.status != 200 {
		t.Errorf("ready with the reserve off = %d %s", a.status, a.body)
	}
}
