// Command mkdeb builds dais's Debian package (make deb):
//
//	mkdeb [--bin bin] [--out .] [--version V | --describe D --commit-time T] [--arch amd64]
//
// It prints the path of the package it wrote.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/dais-dev/dais/packaging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkdeb", flag.ContinueOnError)
	o := packaging.Options{}
	fs.StringVar(&o.Root, "root", ".", "the repository `DIR`")
	fs.StringVar(&o.BinDir, "bin", "bin", "`DIR` of the built dais, dais-init and dais-sandbox-exec")
	fs.StringVar(&o.Version, "version", "", "the Debian `VERSION` (default: from --describe)")
	describe := fs.String("describe", "", "the version stamped into the binaries (git describe), turned into a Debian version")
	commit := fs.Int64("commit-time", 0, "Unix time of the commit, orders untagged versions")
	fs.StringVar(&o.Arch, "arch", "amd64", "Debian `ARCH`")
	out := fs.String("out", ".", "`DIR` to write dais_<version>_<arch>.deb into")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Version == "" {
		if *describe == "" {
			return fmt.Errorf("give --version or --describe")
		}
		o.Version = packaging.DebianVersion(*describe, time.Unix(*commit, 0))
	}
	// Reproducible: SOURCE_DATE_EPOCH stamps the files and the changelog.
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		o.Date = time.Unix(sec, 0)
	} else if *commit != 0 {
		o.Date = time.Unix(*commit, 0)
	}
	path, err := packaging.Build(o, *out)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
