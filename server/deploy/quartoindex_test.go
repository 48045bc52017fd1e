package deploy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/content/manifest"
)

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
