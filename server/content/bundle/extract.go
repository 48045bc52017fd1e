// Package bundle unpacks deployment bundles (tar.gz archives as written by
// rsconnect and rsconnect-python) into a directory, refusing anything that
// could reach outside it.
//
// Use:
//
//	res, err := bundle.Extract(ctx, body, "/data/apps/7/12", bundle.Options{})
//
// Extract creates the directory (it must not exist yet), writes every entry
// through an os.Root opened on it, and removes the directory again when it
// fails, so a refused bundle leaves nothing behind. Refused, with an
// *EntryError naming the entry (errors.Is works with the sentinels below):
//
//   - absolute names and names with a ".." component (ErrUnsafePath);
//   - symbolic links that are absolute or resolve outside the directory, hard
//     links to names outside it, entries written through a link (ErrLink);
//   - device files, FIFOs and other special entries (ErrSpecialFile);
//   - more than Options.MaxFiles entries or Options.MaxBytes uncompressed
//     bytes (ErrTooManyFiles, ErrTooLarge), counted while reading, so a tar
//     bomb stops at the limit instead of filling the disk.
//
// R bundles name their entries "./app.R"; the "./" prefix is dropped. File
// modes keep only the owner's execute bit (0755 or 0644); owners and
// set-id bits in the archive are ignored.
package bundle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Default limits, used when an Options field is zero.
const (
	// DefaultMaxBytes is the default limit on the total uncompressed size: 2 GiB.
	DefaultMaxBytes int64 = 2 << 30
	// DefaultMaxFiles is the default limit on the number of entries.
	DefaultMaxFiles = 100_000
)

// Sentinel errors, wrapped by *EntryError or returned for the whole archive.
var (
	ErrUnsafePath   = errors.New("path escapes the bundle directory")
	ErrLink         = errors.New("link points outside the bundle directory")
	ErrSpecialFile  = errors.New("special file (device, FIFO or socket) not allowed")
	ErrTooLarge     = errors.New("bundle too large")
	ErrTooManyFiles = errors.New("bundle has too many files")
	ErrNotArchive   = errors.New("not a tar or tar.gz archive")
)

// Options are the limits of one extraction. Zero values mean the defaults.
type Options struct {
	// MaxBytes bounds the total uncompressed size of all files. Default 2 GiB.
	MaxBytes int64
	// MaxFiles bounds the number of entries (files, directories, links). Default 100000.
	MaxFiles int
}

// Result tells what was written.
type Result struct {
	Files int   // regular files written
	Dirs  int   // directories created (not counting the bundle directory)
	Links int   // symbolic and hard links created
	Bytes int64 // bytes of file content written
}

// EntryError is a refusal that names the archive entry at fault.
type EntryError struct {
	Entry  string // the name as written in the archive
	Detail string // what about it, e.g. `target "../../etc"`
	Err    error  // one of the sentinels
}

func (e *EntryError) Error() string {
	msg := fmt.Sprintf("bundle entry %q: %v", e.Entry, e.Err)
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

func (e *EntryError) Unwrap() error { return e.Err }

// Extract unpacks the tar or tar.gz archive read from r into dir, which must
// not exist yet (its parent must). On failure dir is removed.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) (Result, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("create bundle directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.Remove(dir)
		return Result{}, fmt.Errorf("open bundle directory: %w", err)
	}
	x := &extractor{root: root, dir: dir, opts: opts, links: map[string]bool{}}
	err = x.run(ctx, r)
	if err == nil {
		err = x.checkLinks()
	}
	root.Close()
	if err != nil {
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			err = fmt.Errorf("%w (and removing %s: %v)", err, dir, rmErr)
		}
		return Result{}, err
	}
	return x.res, nil
}

type extractor struct {
	root  *os.Root
	dir   string
	opts  Options
	res   Result
	links map[string]bool // symbolic links created, by cleaned name
}

func (x *extractor) run(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("read bundle: %w: %v", ErrNotArchive, err)
		}
		defer zr.Close()
		src = zr
	}
	tr := tar.NewReader(src)
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if entries == 0 && x.res.Files == 0 {
				// An empty archive is legal but never a useful bundle.
				return fmt.Errorf("read bundle: archive is empty: %w", ErrNotArchive)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read bundle after %d entries: %w: %v", entries, ErrNotArchive, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		entries++
		if entries > x.opts.MaxFiles {
			return &EntryError{Entry: hdr.Name, Err: ErrTooManyFiles,
				Detail: fmt.Sprintf("limit %d entries", x.opts.MaxFiles)}
		}
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
}

// clean turns an archive name into a slash path relative to the bundle
// directory, "" for the directory itself.
func clean(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", errors.New("NUL in name")
	}
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New(`".." component`)
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// throughLink reports the first parent of name that is a link this
// extraction created.
func (x *extractor) throughLink(name string) string {
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if x.links[p] {
			return p
		}
	}
	return ""
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := clean(hdr.Name)
	if err != nil {
		return &EntryError{Entry: hdr.Name, Err: ErrUnsafePath, Detail: err.Error()}
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		return &EntryError{Entry: hdr.Name, Err: ErrUnsafePath, Detail: "names the bundle directory itself"}
	}
	if p := x.throughLink(name); p != "" {
		return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: fmt.Sprintf("written through the link %q", p)}
	}
	if x.links[name] {
		return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: "replaces a link"}
	}
	parent := path.Dir(name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("bundle entry %q: %w", hdr.Name, err)
		}
		x.res.Dirs++
	case tar.TypeReg, tar.TypeRegA:
		if hdr.Size > x.opts.MaxBytes-x.res.Bytes {
			return &EntryError{Entry: hdr.Name, Err: ErrTooLarge,
				Detail: fmt.Sprintf("%d bytes would pass the limit of %d uncompressed bytes", x.res.Bytes+hdr.Size, x.opts.MaxBytes)}
		}
		if err := x.mkParent(hdr.Name, parent); err != nil {
			return err
		}
		if err := x.removeOld(hdr.Name, name); err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if hdr.Mode&0o100 != 0 {
			mode = 0o755
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("bundle entry %q: %w", hdr.Name, err)
		}
		// Copy at most one byte past the limit, so a lying header cannot
		// write more than the limit.
		n, err := io.Copy(f, io.LimitReader(tr, x.opts.MaxBytes-x.res.Bytes+1))
		x.res.Bytes += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("bundle entry %q: %w", hdr.Name, err)
		}
		if x.res.Bytes > x.opts.MaxBytes {
			return &EntryError{Entry: hdr.Name, Err: ErrTooLarge,
				Detail: fmt.Sprintf("limit %d uncompressed bytes", x.opts.MaxBytes)}
		}
		x.res.Files++
	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, 0) {
			return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: fmt.Sprintf("target %q", target)}
		}
		if resolved := path.Join(parent, target); resolved == ".." || strings.HasPrefix(resolved, "../") {
			return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: fmt.Sprintf("target %q", target)}
		}
		if err := x.mkParent(hdr.Name, parent); err != nil {
			return err
		}
		if err := x.removeOld(hdr.Name, name); err != nil {
			return err
		}
		if err := x.root.Symlink(target, name); err != nil {
			return fmt.Errorf("bundle entry %q: %w", hdr.Name, err)
		}
		x.links[name] = true
		x.res.Links++
	case tar.TypeLink:
		target, err := clean(hdr.Linkname)
		if err != nil || target == "" {
			return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: fmt.Sprintf("hard link target %q", hdr.Linkname)}
		}
		if p := x.throughLink(target); p != "" || x.links[target] {
			return &EntryError{Entry: hdr.Name, Err: ErrLink, Detail: fmt.Sprintf("hard link target %q goes through a symbolic link", hdr.Linkname)}
		}
		if err := x.mkParent(hdr.Name, parent); err != nil {
			return err
		}
		if err := x.removeOld(hdr.Name, name); err != nil {
			return err
		}
		if err := x.root.Link(target, name); err != nil {
			return fmt.Errorf("bundle entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, err)
		}
		x.res.Links++
	default:
		return &EntryError{Entry: hdr.Name, Err: ErrSpecialFile, Detail: fmt.Sprintf("tar type %q", hdr.Typeflag)}
	}
	return nil
}

func (x *extractor) mkParent(entry, parent string) error {
	if parent == "." {
		return nil
	}
	if err := x.root.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("bundle entry %q: create parent: %w", entry, err)
	}
	return nil
}

// removeOld removes an earlier entry of the same name (tar semantics: the
// last one wins) so that the new one is never written through it.
func (x *extractor) removeOld(entry, name string) error {
	fi, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bundle entry %q: %w", entry, err)
	}
	if fi.IsDir() {
		return &EntryError{Entry: entry, Err: ErrUnsafePath, Detail: "a directory of that name is already in the bundle"}
	}
	if err := x.root.Remove(name); err != nil {
		return fmt.Errorf("bundle entry %q: replace: %w", entry, err)
	}
	return nil
}

// checkLinks resolves every symbolic link with the kernel's rules once all
// entries are written: a chain of links that are each fine on their own
// can still leave the directory (a/up -> "..", b -> "a/up/a/up/..").
func (x *extractor) checkLinks() error {
	base, err := filepath.EvalSymlinks(x.dir)
	if err != nil {
		return fmt.Errorf("resolve bundle directory: %w", err)
	}
	for name := range x.links {
		real, err := filepath.EvalSymlinks(filepath.Join(base, filepath.FromSlash(name)))
		if err != nil {
			// A dangling link: judge it by where it would point.
			real, err = resolveDangling(base, name)
			if err != nil {
				return &EntryError{Entry: name, Err: ErrLink, Detail: err.Error()}
			}
		}
		if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
			target, _ := os.Readlink(filepath.Join(base, filepath.FromSlash(name)))
			return &EntryError{Entry: name, Err: ErrLink, Detail: fmt.Sprintf("target %q resolves to %s", target, real)}
		}
	}
	return nil
}

// resolveDangling resolves the longest existing prefix of a link's target
// and appends the rest lexically.
func resolveDangling(base, name string) (string, error) {
	p := filepath.Join(base, filepath.FromSlash(name))
	for range 40 {
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			return "", fmt.Errorf("absolute target %q", target)
		}
		p = filepath.Join(filepath.Dir(p), target)
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			return "", fmt.Errorf("target directory of %q: %v", target, err)
		}
		p = filepath.Join(dir, filepath.Base(p))
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
	}
	return "", errors.New("too many levels of links")
}
