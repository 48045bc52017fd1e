package config

import (
	"testing"

	"gopkg.in/gcfg.v1"
)

// BenchmarkLoad is dais's whole load of testdata/good.gcfg (every key):
// scan with provenance, per-key gcfg set, environment overlay, validation.
// bench/config.sh compares it with BenchmarkGcfgReadFileInto.
func BenchmarkLoad(b *testing.B) {
	env := []string{"RSC_LICENSE_SERVER=license:8999", "CONNECT_POSTGRES_PASSWORD=pw", "PATH=/usr/bin", "HOME=/root"}
	for b.Loop() {
		if _, err := Load("testdata/good.gcfg", env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGcfgReadFileInto is the peer: gcfg reading the same file into
// the same struct, with no provenance, environment or validation.
func BenchmarkGcfgReadFileInto(b *testing.B) {
	for b.Loop() {
		cfg := Defaults()
		if err := gcfg.FatalOnly(gcfg.ReadFileInto(cfg, "testdata/good.gcfg")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender is writing the effective file dais-init hands the server.
func BenchmarkRender(b *testing.B) {
	l, err := Load("testdata/good.gcfg", nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Render(l.Config)
	}
}
