package deploy

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// TestSandboxMasksRelativeConfig: `dais serve --config c.gcfg` (a path
// relative to the working directory) hides the configuration's directory
// by its absolute path; "." made every content process fail to start
// ("mask "." is not an absolute path").
func TestSandboxMasksRelativeConfig(t *testing.T) {
	ctx := context.Background()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	confDir := t.TempDir()
	t.Chdir(confDir)
	svc, err := New(Options{Config: func() *config.Config { return cfg }, Store: st, NoSandbox: true, ConfigPath: "c.gcfg"})
	if err != nil {
		t.Fatal(err)
	}
	o := svc.sandboxOptions(&store.Content{GUID: "g"}, &prepared{}, nil)
	for _, m := range o.Masks {
		if !filepath.IsAbs(m) {
			t.Errorf("mask %q is not absolute; masks %q", m, o.Masks)
		}
	}
	want, _ := filepath.EvalSymlinks(confDir)
	found := slices.ContainsFunc(o.Masks, func(m string) bool {
		got, _ := filepath.EvalSymlinks(m)
		return got == want
	})
	if !found {
		t.Errorf("the configuration's directory %s is not among the masks %q", confDir, o.Masks)
	}
}

// TestSandboxLimits: a content's memory_limit and cpu_limit win over the
// [Scheduler] defaults; the process limit and /tmp size come from [Sandbox].
func TestSandboxLimits(t *testing.T) {
	ctx := context.Background()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	cfg.Scheduler.MemoryLimit, cfg.Scheduler.CPULimit = 512<<20, 1
	cfg.Sandbox.ProcessLimit, cfg.Sandbox.TmpSize = 300, 64<<20
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err := New(Options{Config: func() *config.Config { return cfg }, Store: st, NoSandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	o := svc.sandboxOptions(&store.Content{GUID: "g"}, &prepared{}, nil)
	if o.MemoryLimit != 512<<20 || o.CPULimit != 1 || o.ProcessLimit != 300 || o.TmpSize != 64<<20 {
		t.Errorf("server defaults: memory %d cpu %g processes %d tmp %d", o.MemoryLimit, o.CPULimit, o.ProcessLimit, o.TmpSize)
	}
	mem, cpu := int64(256<<20), 0.5
	o = svc.sandboxOptions(&store.Content{GUID: "g", MemoryLimit: &mem, CPULimit: &cpu}, &prepared{}, nil)
	if o.MemoryLimit != mem || o.CPULimit != cpu {
		t.Errorf("content's own: memory %d cpu %g", o.MemoryLimit, o.CPULimit)
	}
}
