package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Crash leftovers (issue 23, defect 6). A server killed in the middle of
// an upload leaves its temporary file; killed during a render, the
// render's partial output; a deletion that failed half way, directories
// no row refers to. At start, before content is served again, dais
// removes under DataDir:
//
//   - apps/<id>/ of a content that no longer exists;
//   - apps/<id>/<bundle>/ of a bundle that no longer exists;
//   - apps/<id>/<bundle>/output-<render>/ of a render that no longer
//     exists or failed (a killed render is marked failed just before);
//   - apps/<id>/upload-<node>-*.tar.gz, uploads that never became bundles;
//   - cache/runtime/**/.new-*, package cache entries never finished.
//
// Several servers may share DataDir (PostgreSQL): a temporary file or
// directory is then removed only when this node made it (its name holds
// the node) or nothing has written to it for leftoverGrace; an upload in
// progress writes at HTTP.UploadMinRate at least. Directories are listed
// before rows are read, and rows are always written before their
// directories, so what another server is creating has its row by then.

// leftoverGrace is how long a temporary file or directory of another
// server must have been left untouched before it counts as abandoned.
const leftoverGrace = time.Hour

// uploadPrefix starts the name of an upload's temporary file; the node
// and a random part follow (uploadPattern).
const uploadPrefix = "upload-"

var nodeUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.]+`)

// uploadPattern is os.CreateTemp's pattern of this node's uploads.
func (s *Service) uploadPattern() string {
	return uploadPrefix + nodeUnsafe.ReplaceAllString(s.o.Node, "_") + "-*.tar.gz"
}

// leftover is one thing to remove, and why.
type leftover struct {
	path, why string
}

// cleanLeftovers removes the crash leftovers under DataDir and logs what
// it removed. shared says several servers may use DataDir (PostgreSQL).
// Failing to remove something is logged, not fatal: it is tried again at
// the next start.
func (s *Service) cleanLeftovers(ctx context.Context, shared bool) error {
	found, err := s.findLeftovers(ctx, shared, time.Now())
	if err != nil {
		return err
	}
	var n int
	var bytes int64
	for _, l := range found {
		size := treeSize(l.path)
		if err := os.RemoveAll(l.path); err != nil {
			s.log.Warn("remove a crash leftover", "path", l.path, logKeyErr, err)
			continue
		}
		s.log.Debug("removed a crash leftover", "path", l.path, "why", l.why, "bytes", size)
		n++
		bytes += size
	}
	if n > 0 {
		s.log.Warn("removed what earlier runs left behind (killed uploads and renders, half-deleted content)",
			"count", n, "bytes", bytes, "data_dir", s.o.Config().Server.DataDir)
	}
	return nil
}

// findLeftovers lists the leftovers (see above); now decides the age of
// temporary files.
func (s *Service) findLeftovers(ctx context.Context, shared bool, now time.Time) ([]leftover, error) {
	dataDir := s.o.Config().Server.DataDir
	mine := s.uploadPattern()
	mine = mine[:strings.Index(mine, "*")]
	abandoned := func(path, name string) bool {
		if !shared {
			return true // one server: nothing else writes here
		}
		if strings.HasPrefix(name, mine) {
			return true // this node's, from before this start
		}
		fi, err := os.Lstat(path)
		return err == nil && now.Sub(fi.ModTime()) > leftoverGrace
	}

	// What is on disk first (see above), then the rows.
	type bundleDir struct {
		id      int64
		outputs map[int64]string // render id -> path
	}
	type contentDir struct {
		bundles map[int64]*bundleDir
		uploads []string
	}
	apps := filepath.Join(dataDir, "apps")
	ents, err := os.ReadDir(apps)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("list %s: %w", apps, err)
	}
	disk := map[int64]*contentDir{}
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		cd := &contentDir{bundles: map[int64]*bundleDir{}}
		disk[id] = cd
		sub, err := os.ReadDir(filepath.Join(apps, e.Name()))
		if err != nil {
			continue
		}
		for _, b := range sub {
			p := filepath.Join(apps, e.Name(), b.Name())
			if strings.HasPrefix(b.Name(), uploadPrefix) && strings.HasSuffix(b.Name(), ".tar.gz") && b.Type().IsRegular() {
				if abandoned(p, b.Name()) {
					cd.uploads = append(cd.uploads, p)
				}
				continue
			}
			bid, err := strconv.ParseInt(b.Name(), 10, 64)
			if err != nil || !b.IsDir() {
				continue
			}
			bd := &bundleDir{id: bid, outputs: map[int64]string{}}
			cd.bundles[bid] = bd
			outs, err := os.ReadDir(p)
			if err != nil {
				continue
			}
			for _, o := range outs {
				rest, ok := strings.CutPrefix(o.Name(), "output-")
				if !ok || !o.IsDir() {
					continue
				}
				if rid, err := strconv.ParseInt(rest, 10, 64); err == nil {
					bd.outputs[rid] = filepath.Join(p, o.Name())
				}
			}
		}
	}

	var out []leftover
	for id, cd := range disk {
		cdir := filepath.Join(apps, strconv.FormatInt(id, 10))
		if _, err := s.st.Content(ctx, id); err != nil {
			if !isNotFound(err) {
				return nil, fmt.Errorf("read content %d: %w", id, err)
			}
			out = append(out, leftover{cdir, "no content " + strconv.FormatInt(id, 10)})
			continue
		}
		for _, u := range cd.uploads {
			out = append(out, leftover{u, "an upload that never became a bundle"})
		}
		bundles, err := s.st.ListBundles(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("list bundles of content %d: %w", id, err)
		}
		known := map[int64]bool{}
		for _, b := range bundles {
			known[b.ID] = true
		}
		renders, err := s.st.ListRenders(ctx, id, 0)
		if err != nil {
			return nil, fmt.Errorf("list renders of content %d: %w", id, err)
		}
		status := map[int64]string{}
		for _, r := range renders {
			status[r.ID] = r.Status
		}
		for bid, bd := range cd.bundles {
			if !known[bid] {
				out = append(out, leftover{filepath.Join(cdir, strconv.FormatInt(bid, 10)), "no bundle " + strconv.FormatInt(bid, 10)})
				continue
			}
			for rid, p := range bd.outputs {
				switch st, ok := status[rid]; {
				case !ok:
					out = append(out, leftover{p, "no render " + strconv.FormatInt(rid, 10)})
				case st == store.RenderFailed:
					out = append(out, leftover{p, "the output of a failed render"})
				}
			}
		}
	}

	// Package cache entries whose copy never finished.
	cache := filepath.Join(dataDir, "cache", "runtime")
	_ = filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == cache {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".new-") {
			if abandoned(p, d.Name()) {
				out = append(out, leftover{p, "a package cache entry never finished"})
			}
			return fs.SkipDir
		}
		if strings.Count(strings.TrimPrefix(p, cache), string(filepath.Separator)) >= 3 {
			return fs.SkipDir // inside an entry: the environment itself
		}
		return nil
	})
	return out, nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }

// treeSize is the bytes of the files under path, not following links.
func treeSize(path string) int64 {
	var n int64
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
