package deploy_test

import (
	"strings"
	"testing"
)

// TestQuartoStaticServesRenderedDocument deploys examples/quarto with the
// Quarto stand-in of the e2e tests (e2e/testdata/quarto-standin: a shell
// script that renders the markdown body with pandoc, NOT Quarto) as the
// only Quarto installation. Quarto writes <stem>.html for a document, not
// index.html: the deploy must still succeed and serve the document at the
// content's URL, on deploy and after a render on demand.
func TestQuartoStaticServesRenderedDocument(t *testing.T) {
	f, _ := quartoFixture(t, "1.4.550")

	guid, tj, lines := f.deployV1(t, "pub1", "quarto", tarGz(t, example("quarto")))
	out := strings.Join(lines, "\n")
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, out)
	}
	if !strings.Contains(out, "bin/quarto 'render' ") || !strings.Contains(out, "quarto-src/document.qmd' '--output-dir' ") {
		t.Errorf("the task output does not show `quarto render <copy>/document.qmd --output-dir ...`:\n%s", out)
	}
	const phrase = "rendered by dais when it is deployed"
	for _, p := range []string{"/", "/document.html"} {
		if a := f.do(t, "GET", "/content/"+guid+p, "", nil); a.status != 200 || !strings.Contains(string(a.body), phrase) {
			t.Errorf("GET /content/%s%s = %d %.300s, want the rendered document", guid, p, a.status, a.body)
		}
	}
	if c := f.mustContent(t, guid); c.QuartoVersion != "1.4.550" {
		t.Errorf("quarto_version = %q, want 1.4.550", c.QuartoVersion)
	}

	tj, lines = f.renderV1(t, "pub1", guid)
	if tj.Code != 0 {
		t.Fatalf("render on demand: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	if a := f.do(t, "GET", "/content/"+guid+"/", "", nil); a.status != 200 || !strings.Contains(string(a.body), phrase) {
		t.Errorf("after the render on demand GET / = %d %.300s", a.status, a.body)
	}
}
