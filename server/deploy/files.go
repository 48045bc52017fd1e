package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/dais-dev/dais/server/content/manifest"
)

// fileSite serves one content's files: a static bundle's code directory
// or a rendered document's output directory. A render runs the
// publisher's code, which may leave anything there (a FIFO, a socket, a
// link out of the directory), so nothing in it is trusted:
//
//   - files are opened through an os.Root, which follows a link only while
//     it stays inside the directory (one leading out answers 404);
//   - every open is O_NONBLOCK: opening a FIFO would otherwise wait for a
//     writer forever, holding the server's goroutine and thread;
//   - only what fstat says is a regular file is served (a directory serves
//     its index file); anything else answers 404, never a listing;
//   - deployment metadata (manifest.json) is never served;
//   - a path with a NUL byte or invalid UTF-8 answers 400.
type fileSite struct {
	root  *os.Root
	index string // served for "/" before index.html and index.htm
}

// hiddenFiles are names at the top of a site that are deployment metadata,
// not content.
var hiddenFiles = map[string]bool{"manifest.json": true}

// errNotRegular: the name exists but is not a regular file (or, with
// dirOK, a directory).
var errNotRegular = errors.New("not a regular file")

// openRegular opens name in root without blocking and returns it when it is
// a regular file, or (dirOK) a directory; else an error wrapping
// errNotRegular or the open's error. The caller closes the file.
func openRegular(root *os.Root, name string, dirOK bool) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if fi.Mode().IsRegular() || (dirOK && fi.IsDir()) {
		return f, fi, nil
	}
	f.Close()
	return nil, nil, fmt.Errorf("%s: %w (%s)", name, errNotRegular, fi.Mode().Type())
}

func (f *fileSite) close() {
	// Requests in flight may still open files: close a little later.
	r := f.root
	time.AfterFunc(time.Minute, func() { r.Close() })
}

// serveStatic makes dir the files of guid; m (nil for rendered output)
// names the primary document.
func (s *Service) serveStatic(guid, dir string, m *manifest.Manifest) error {
	f, err := openSite(dir, m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old := s.files[guid]
	s.files[guid] = f
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

// openSite opens dir to be served as a content's files; m, when given,
// names the index page a directory without index.html has.
func openSite(dir string, m *manifest.Manifest) (*fileSite, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	f := &fileSite{root: root, index: "index.html"}
	if fi, err := root.Lstat("index.html"); (err != nil || !fi.Mode().IsRegular()) && m != nil {
		if doc := m.PrimaryDocument(".html"); doc != "" {
			f.index = doc
		} else if doc := m.PrimaryDocument(".htm"); doc != "" {
			f.index = doc
		}
	}
	return f, nil
}

// serve answers a GET or HEAD of rest, the path below /content/<guid>
// ("/", "/sub/page.html"); see fileSite.
func (f *fileSite) serve(w http.ResponseWriter, r *http.Request, rest string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "static content answers GET and HEAD only", http.StatusMethodNotAllowed)
		return
	}
	if strings.IndexByte(rest, 0) >= 0 || !utf8.ValidString(rest) {
		http.Error(w, "invalid path: it holds a NUL byte or is not UTF-8", http.StatusBadRequest)
		return
	}
	clean := path.Clean("/" + rest)
	name := strings.TrimPrefix(clean, "/")
	if name == "" {
		name = "."
	}
	if hiddenFiles[name] {
		http.NotFound(w, r)
		return
	}
	file, fi, err := openRegular(f.root, name, true)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer file.Close()
	if fi.IsDir() {
		if !strings.HasSuffix(rest, "/") {
			// Relative links in the directory's index need the slash; a
			// relative redirect works behind a proxy that rewrites paths.
			target := path.Base(r.URL.Path) + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		candidates := []string{"index.html", "index.htm"}
		if name == "." && f.index != "" {
			candidates = append([]string{f.index}, candidates...)
		}
		for _, c := range candidates {
			idx, ifi, err := openRegular(f.root, path.Join(name, c), false)
			if err != nil {
				continue
			}
			defer idx.Close()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r, ifi.Name(), ifi.ModTime(), idx)
			return
		}
		http.NotFound(w, r) // no directory listings
		return
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), file)
}
