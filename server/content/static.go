package content

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// StaticHandler serves the files of dir: a static bundle (Dirs.Code) or a
// rendered document (Dirs.Output). Mount it with the /content/<guid>
// prefix stripped. Files are opened through an os.Root, so no link can
// lead outside dir. The directory index is index, else index.html, else
// index.htm (R's static bundles carry one); manifest.json is not served.
// Close the returned closer when the content is replaced.
func StaticHandler(dir, index string) (http.Handler, func() error, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("serve %s: %w", dir, err)
	}
	fsys := notFoundFS{root.FS()}
	return &static{root: root, fsys: fsys, files: http.FileServerFS(fsys), index: index}, root.Close, nil
}

// notFoundFS answers "not found" for names os.Root refuses (a link out of
// the directory), which FileServer would report as a 500.
type notFoundFS struct{ fs.FS }

func (n notFoundFS) Open(name string) (fs.File, error) {
	f, err := n.FS.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f, err
}

type static struct {
	root  *os.Root
	fsys  fs.FS
	files http.Handler
	index string
}

func (s *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if p == "/manifest.json" {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/") {
		dir := strings.TrimPrefix(p, "/")
		if dir == "" {
			dir = "."
		}
		for _, name := range []string{s.index, "index.html", "index.htm"} {
			if name == "" {
				continue
			}
			f := path.Join(dir, name)
			if fi, err := fs.Stat(s.fsys, f); err == nil && fi.Mode().IsRegular() {
				// Serve the index file itself: FileServer would redirect
				// ".../index.html" to ".../".
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				http.ServeFileFS(w, r, s.fsys, f)
				return
			}
		}
		http.NotFound(w, r) // no directory listings
		return
	}
	s.files.ServeHTTP(w, r)
}
