package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	size     int64 // header size when it should differ from len(body); -1 means zero body of size bytes
	zeroBody int64 // write this many zero bytes as the body
}

func makeTar(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.body))
		if e.zeroBody > 0 {
			size = e.zeroBody
		}
		if typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, Size: size, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if e.zeroBody > 0 {
			if _, err := io.CopyN(tw, zeros{}, e.zeroBody); err != nil {
				t.Fatal(err)
			}
		} else if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// setup makes a parent directory with a sentinel file beside the bundle
// directory, and returns the bundle directory path (not yet created).
func setup(t testing.TB) (parent, dir string) {
	t.Helper()
	parent = t.TempDir()
	if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(parent, "outside"), 0o755); err != nil {
		t.Fatal(err)
	}
	return parent, filepath.Join(parent, "bundle")
}

// assertOutsideUntouched fails when anything beside the bundle directory changed.
func assertOutsideUntouched(t testing.TB, parent string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(parent, "sentinel"))
	if err != nil || string(b) != "untouched" {
		t.Fatalf("sentinel outside the bundle changed: %q, %v", b, err)
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "sentinel", "outside", "bundle":
		default:
			t.Fatalf("extraction wrote %q outside the bundle directory", e.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(parent, "outside")); len(ents) != 0 {
		t.Fatalf("extraction wrote into a directory outside the bundle: %v", ents)
	}
}

func TestExtractAccepts(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		gz      bool
		want    map[string]string // path -> content ("->x" for a link to x)
		exec    []string
	}{
		{
			name: "R bundle with ./ prefix",
			gz:   true,
			entries: []entry{
				{name: "./", typ: tar.TypeDir},
				{name: "./app.R", body: "library(shiny)\n"},
				{name: "./www/", typ: tar.TypeDir},
				{name: "./www/style.css", body: "body{}"},
				{name: "./manifest.json", body: "{}"},
			},
			want: map[string]string{"app.R": "library(shiny)\n", "www/style.css": "body{}", "manifest.json": "{}"},
		},
		{
			name: "python bundle, plain tar, implicit parents, executable",
			entries: []entry{
				{name: "app.py", body: "app = 1\n"},
				{name: "pkg/sub/mod.py", body: "x = 2\n", mode: 0o755},
			},
			want: map[string]string{"app.py": "app = 1\n", "pkg/sub/mod.py": "x = 2\n"},
			exec: []string{"pkg/sub/mod.py"},
		},
		{
			name: "links inside",
			gz:   true,
			entries: []entry{
				{name: "data/a.csv", body: "1,2\n"},
				{name: "latest.csv", typ: tar.TypeSymlink, link: "data/a.csv"},
				{name: "data/self", typ: tar.TypeSymlink, link: "../data"},
				{name: "copy.csv", typ: tar.TypeLink, link: "./data/a.csv"},
			},
			want: map[string]string{"data/a.csv": "1,2\n", "latest.csv": "->data/a.csv", "copy.csv": "1,2\n"},
		},
		{
			name: "duplicate file: last wins",
			entries: []entry{
				{name: "a.txt", body: "one"},
				{name: "./a.txt", body: "two"},
			},
			want: map[string]string{"a.txt": "two"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, dir := setup(t)
			res, err := Extract(context.Background(), bytes.NewReader(makeTar(t, tt.gz, tt.entries...)), dir, Options{})
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			for p, want := range tt.want {
				full := filepath.Join(dir, p)
				if target, ok := strings.CutPrefix(want, "->"); ok {
					got, err := os.Readlink(full)
					if err != nil || got != target {
						t.Errorf("link %s = %q, %v; want %q", p, got, err, target)
					}
					continue
				}
				b, err := os.ReadFile(full)
				if err != nil || string(b) != want {
					t.Errorf("%s = %q, %v; want %q", p, b, err, want)
				}
			}
			for _, p := range tt.exec {
				fi, err := os.Stat(filepath.Join(dir, p))
				if err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("%s mode = %v, %v; want 0755", p, fi.Mode(), err)
				}
			}
			if res.Files == 0 {
				t.Errorf("Result.Files = 0")
			}
			assertOutsideUntouched(t, parent)
		})
	}
}

func TestExtractRefuses(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		entries []entry
		want    error
		naming  string // the error must name this entry
	}{
		{"path traversal", Options{}, []entry{{name: "ok.txt", body: "x"}, {name: "../sentinel", body: "pwned"}}, ErrUnsafePath, "../sentinel"},
		{"traversal hidden in the middle", Options{}, []entry{{name: "a/../../outside/x", body: "pwned"}}, ErrUnsafePath, "a/../../outside/x"},
		{"absolute path", Options{}, []entry{{name: "/tmp/dais-bundle-test-abs", body: "pwned"}}, ErrUnsafePath, "/tmp/dais-bundle-test-abs"},
		{"escaping symlink", Options{}, []entry{{name: "evil", typ: tar.TypeSymlink, link: "../outside"}, {name: "evil/x", body: "pwned"}}, ErrLink, "evil"},
		{"absolute symlink", Options{}, []entry{{name: "evil", typ: tar.TypeSymlink, link: "/etc"}}, ErrLink, "evil"},
		{"write through an inside symlink", Options{}, []entry{{name: "d", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/x", body: "y"}}, ErrLink, "l/x"},
		{"symlink chain escapes", Options{}, []entry{
			{name: "a/", typ: tar.TypeDir},
			{name: "a/up", typ: tar.TypeSymlink, link: ".."},
			{name: "b", typ: tar.TypeSymlink, link: "a/up/a/up/../outside"},
		}, ErrLink, "b"},
		{"escaping hard link", Options{}, []entry{{name: "h", typ: tar.TypeLink, link: "../sentinel"}}, ErrLink, "h"},
		{"absolute hard link", Options{}, []entry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, ErrLink, "h"},
		{"character device", Options{}, []entry{{name: "null", typ: tar.TypeChar}}, ErrSpecialFile, "null"},
		{"block device", Options{}, []entry{{name: "sda", typ: tar.TypeBlock}}, ErrSpecialFile, "sda"},
		{"fifo", Options{}, []entry{{name: "pipe", typ: tar.TypeFifo}}, ErrSpecialFile, "pipe"},
		{"tar bomb: one huge file", Options{MaxBytes: 1 << 20}, []entry{{name: "bomb", zeroBody: 8 << 20}}, ErrTooLarge, "bomb"},
		{"tar bomb: many files add up", Options{MaxBytes: 100 << 10}, func() []entry {
			var es []entry
			for i := range 20 {
				es = append(es, entry{name: "f" + string(rune('a'+i)), zeroBody: 10 << 10})
			}
			return es
		}(), ErrTooLarge, "fk"},
		{"too many files", Options{MaxFiles: 10}, func() []entry {
			var es []entry
			for i := range 11 {
				es = append(es, entry{name: "f" + string(rune('a'+i)), body: "x"})
			}
			return es
		}(), ErrTooManyFiles, "fk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, dir := setup(t)
			_, err := Extract(context.Background(), bytes.NewReader(makeTar(t, true, tt.entries...)), dir, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Extract error = %v; want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), `"`+tt.naming+`"`) {
				t.Errorf("error %q does not name the entry %q", err, tt.naming)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("bundle directory left behind after a refusal: %v", err)
			}
			assertOutsideUntouched(t, parent)
		})
	}
	if _, err := os.Lstat("/tmp/dais-bundle-test-abs"); err == nil {
		t.Fatal("absolute entry was written to /tmp")
	}
}

func TestExtractNotAnArchive(t *testing.T) {
	for _, in := range []string{"", "hello, world", "\x1f\x8bgarbage"} {
		parent, dir := setup(t)
		_, err := Extract(context.Background(), strings.NewReader(in), dir, Options{})
		if !errors.Is(err, ErrNotArchive) {
			t.Errorf("Extract(%q) = %v; want ErrNotArchive", in, err)
		}
		assertOutsideUntouched(t, parent)
	}
}

func TestExtractExistingDir(t *testing.T) {
	_, dir := setup(t)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Extract(context.Background(), bytes.NewReader(makeTar(t, true, entry{name: "a", body: "b"})), dir, Options{})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Extract into an existing directory = %v; want ErrExist", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("existing directory removed: %v", err)
	}
}

// FuzzExtract checks the one property that matters: whatever the archive,
// nothing is written outside the bundle directory and every link that is
// left resolves inside it.
func FuzzExtract(f *testing.F) {
	f.Add(makeTar(f, true, entry{name: "./app.R", body: "x"}, entry{name: "l", typ: tar.TypeSymlink, link: "app.R"}))
	f.Add(makeTar(f, false, entry{name: "../x", body: "x"}))
	f.Add(makeTar(f, false, entry{name: "a/up", typ: tar.TypeSymlink, link: ".."}, entry{name: "b", typ: tar.TypeSymlink, link: "a/up/a/up/.."}))
	f.Add(makeTar(f, false, entry{name: "h", typ: tar.TypeLink, link: "../sentinel"}))
	f.Add(makeTar(f, false, entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/l", typ: tar.TypeSymlink, link: "../../outside"}))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, dir := setup(t)
		_, err := Extract(context.Background(), bytes.NewReader(data), dir, Options{MaxBytes: 1 << 20, MaxFiles: 100})
		assertOutsideUntouched(t, parent)
		if err != nil {
			if _, serr := os.Lstat(dir); serr == nil {
				t.Fatalf("refused (%v) but left the directory", err)
			}
			return
		}
		base, _ := filepath.EvalSymlinks(dir)
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			if real, err := filepath.EvalSymlinks(p); err == nil && real != base && !strings.HasPrefix(real, base+"/") {
				t.Fatalf("link %s resolves outside: %s", p, real)
			}
			if fi, err := os.Stat(p); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
				t.Fatalf("%s is a special file", p)
			}
			return nil
		})
	})
}
