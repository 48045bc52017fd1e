package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/content/manifest"
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
	if c := f.svc.mustContent(t, guid); c.QuartoVersion != "1.4.550" {
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

// TestQuartoIndex: the primary document's HTML becomes index.html, an
// index.html of the render is kept, and nothing is read through a link
// out of the output directory (it belongs to the content).
func TestQuartoIndex(t *testing.T) {
	m := &manifest.Manifest{Metadata: manifest.Metadata{AppMode: manifest.QuartoStatic, PrimaryRmd: "report.qmd"}}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("server secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(out string) error
		want  string // index.html's content, "" for none
	}{
		{"document", func(out string) error {
			return os.WriteFile(filepath.Join(out, "report.html"), []byte("<p>report</p>"), 0o644)
		}, "<p>report</p>"},
		{"project index kept", func(out string) error {
			os.WriteFile(filepath.Join(out, "report.html"), []byte("<p>report</p>"), 0o644)
			return os.WriteFile(filepath.Join(out, "index.html"), []byte("<p>index</p>"), 0o644)
		}, "<p>index</p>"},
		{"link out of the output", func(out string) error {
			return os.Symlink(secret, filepath.Join(out, "report.html"))
		}, ""},
		{"not a regular file", func(out string) error {
			return os.Mkdir(filepath.Join(out, "report.html"), 0o755)
		}, ""},
		{"nothing rendered", func(string) error { return nil }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if err := tt.setup(out); err != nil {
				t.Fatal(err)
			}
			if err := quartoIndex(out, m); err != nil {
				t.Fatalf("quartoIndex: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(out, "index.html"))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("index.html = %q, want none", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Fatalf("index.html = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
