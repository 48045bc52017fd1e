package content_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/content"
)

func TestStaticHandler(t *testing.T) {
	parent := t.TempDir()
	os.WriteFile(filepath.Join(parent, "secret.txt"), []byte("outside"), 0o644)
	dir := filepath.Join(parent, "site")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	os.WriteFile(filepath.Join(dir, "report.html"), []byte("<p>report</p>"), 0o644)
	os.WriteFile(filepath.Join(dir, "style.css"), []byte("body{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "index.htm"), []byte("<p>sub</p>"), 0o644)
	os.Symlink("../secret.txt", filepath.Join(dir, "escape.txt"))
	os.Symlink("style.css", filepath.Join(dir, "inside.css"))

	h, closeFn, err := content.StaticHandler(dir, "report.html")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	srv := httptest.NewServer(http.StripPrefix("/content/g", h))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/content/g/", 200, "<p>report</p>"},
		{"/content/g/style.css", 200, "body{}"},
		{"/content/g/inside.css", 200, "body{}"},
		{"/content/g/sub/", 200, "<p>sub</p>"},
		{"/content/g/sub", 301, ""},
		{"/content/g/empty/", 404, ""},
		{"/content/g/manifest.json", 404, ""},
		{"/content/g/escape.txt", 404, ""},
		{"/content/g/../secret.txt", 404, ""},
		{"/content/g/%2e%2e/secret.txt", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := noRedirect.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d (%.100s); want %d", resp.StatusCode, b, tt.code)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body %q; want %q", b, tt.body)
			}
			if strings.Contains(string(b), "outside") {
				t.Errorf("served a file outside the directory")
			}
		})
	}
}
