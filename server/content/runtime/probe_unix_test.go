//go:build unix

package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/dais-dev/dais/server/content/manifest"
)

// A version query runs in its own process group, so that the SIGTERM
// dais-init sends to dais serve's group on `docker stop` does not kill it
// (and fail the render that asked for it).
func TestVersionQueryOwnProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pgidFile := filepath.Join(dir, "pgid")
	r := filepath.Join(dir, "R")
	script := "#!/bin/sh\nps -o pgid= -p $$ > " + pgidFile + " 2>/dev/null || cut -d' ' -f5 /proc/$$/stat > " + pgidFile + "\necho 'R version 4.2.2 (2022-10-31)'\n"
	if err := os.WriteFile(r, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &Finder{Executables: map[manifest.Language][]string{manifest.LangR: {r}}, Roots: map[manifest.Language][]string{manifest.LangR: {}}}
	got, err := f.Discover(context.Background(), manifest.LangR)
	if err != nil || len(got) != 1 || got[0].Version.String() != "4.2.2" {
		t.Fatalf("Discover = %v, %v; want R 4.2.2", got, err)
	}
	b, err := os.ReadFile(pgidFile)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pgid %q: %v", b, err)
	}
	if pgid == syscall.Getpgrp() {
		t.Errorf("the version query ran in the server's process group %d", pgid)
	}
}
