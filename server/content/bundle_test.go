package content_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/content/bundle"
	"github.com/dais-dev/dais/server/content/manifest"
)

// TestExampleBundles packs every example the way rsconnect does (GNU tar
// of ".", so entries are "./app.R"), unpacks it with bundle.Extract and
// checks the manifest and its checksums: the deploy path up to the runtime.
func TestExampleBundles(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	ents, err := os.ReadDir("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			tmp := t.TempDir()
			tgz := filepath.Join(tmp, "bundle.tar.gz")
			if out, err := exec.Command("tar", "-C", filepath.Join("../../examples", e.Name()), "-czf", tgz, ".").CombinedOutput(); err != nil {
				t.Fatalf("tar: %v %s", err, out)
			}
			f, err := os.Open(tgz)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dir := filepath.Join(tmp, "bundle")
			res, err := bundle.Extract(context.Background(), f, dir, bundle.Options{})
			if err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.VerifyFiles(dir); err != nil {
				t.Fatal(err)
			}
			if res.Files != len(m.Files)+1 { // + manifest.json
				t.Errorf("extracted %d files; the manifest lists %d (+ itself)", res.Files, len(m.Files))
			}
			// Tampering after the manifest was written is caught.
			for name := range m.Files {
				os.WriteFile(filepath.Join(dir, name), []byte("changed"), 0o644)
				break
			}
			if err := m.VerifyFiles(dir); err == nil {
				t.Error("VerifyFiles accepted a changed file")
			}
		})
	}
	if n < 7 {
		t.Errorf("%d examples; want the 7 of the assignment", n)
	}
}
