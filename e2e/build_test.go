package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestQuartoVersionWithoutTarball: asking for Quarto without its tarball in
// docker/quarto/ fails the build, naming the file, instead of building an
// image without Quarto. The layers before Quarto come from the cache of
// `make image` (same BASE_IMAGE), so this costs seconds, not a full build.
func TestQuartoVersionWithoutTarball(t *testing.T) {
	Image(t) // the cache this relies on comes with the image
	base := os.Getenv("BASE_IMAGE")
	if base == "" {
		base = "dais-base:bookworm"
	}
	root := RepoRoot(t)
	for _, b := range []string{"bin/dais", "bin/dais-sandbox-exec", "bin/dais-init"} {
		if _, err := os.Stat(root + "/" + b); err != nil {
			requireOrSkip(t, "%s missing: run `make build` (make image does)", b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	const version = "0.0.0-e2e-missing"
	cmd := exec.CommandContext(ctx, "docker", "build", "--force-rm",
		"--build-arg", "BASE_IMAGE="+base, "--build-arg", "QUARTO_VERSION="+version, root)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("docker build with QUARTO_VERSION=%s and no tarball succeeded; want a failure:\n%s", version, tail(string(out), 30))
	}
	want := "docker/quarto/quarto-" + version + "-linux-amd64.tar.gz is not in the build context"
	if !strings.Contains(string(out), want) {
		t.Errorf("build output does not name the missing tarball (%q):\n%s", want, tail(string(out), 30))
	}
}
