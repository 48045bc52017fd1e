package deploy

// The runtime package cache: a package environment built once for a set
// of requirements and a runtime is kept under
//
//	DataDir/cache/runtime/<Language>/<version>/<key>/python  (a venv)
//	DataDir/cache/runtime/<Language>/<version>/<key>/R       (an R library)
//
// where key hashes the runtime's path and version, the bundle's
// requirements (Python: the package file; R: the manifest's packages and
// the repositories), the content's owner and its environment variables. A
// deploy whose key has an entry copies it instead of creating the
// environment, checking the packages and installing the missing ones again.
//
// What a restore builds can depend on more than the requirements: the
// content's environment variables reach it (PIP_INDEX_URL, R_PROFILE_USER,
// ...), and a requirement may point into the bundle (-r, -e, ./pkg,
// file:). So an entry is only ever reused for the same owner and the same
// variables, never across tenants, and a package file with such a
// reference is not cached at all. GET/DELETE
// /__api__/v1/system/caches/runtime list and clear the caches of one
// runtime, as Connect's API does.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/store"
)

// cacheFormat changes when what an entry holds changes: older entries are
// then never hit.
const cacheFormat = "dais-env-1"

// CacheImage is the image_name of every runtime cache: dais runs content
// on its own host, which Connect calls "Local".
const CacheImage = "Local"

// RuntimeCache is one runtime's package cache, as Connect lists them.
type RuntimeCache struct {
	Language  string `json:"language"` // "Python" or "R"
	Version   string `json:"version"`
	ImageName string `json:"image_name"`
}

func (s *Service) cacheRoot() string {
	return filepath.Join(s.o.Config().Server.DataDir, "cache", "runtime")
}

// cacheLanguage is the name of a language in the cache and the API.
func cacheLanguage(lang manifest.Language) string {
	switch lang {
	case manifest.LangPython:
		return "Python"
	case manifest.LangR:
		return "R"
	}
	return ""
}

// envSubdir is where Restore puts a language's environment in EnvDir.
func envSubdir(lang manifest.Language) string {
	if lang == manifest.LangPython {
		return "python"
	}
	return "R"
}

// cacheable lists the languages of p whose environment Restore builds.
func cacheable(p *prepared) []manifest.Language {
	var out []manifest.Language
	for _, lang := range p.m.Languages() {
		switch {
		case lang == manifest.LangPython && p.rts.Python.Path != "":
			out = append(out, lang)
		case lang == manifest.LangR && p.rts.R.Path != "" && len(p.m.Packages) > 0:
			out = append(out, lang)
		}
	}
	return out
}

// cacheDir is the entry of lang's environment for p's requirements, as
// built for c; "" when the environment must not be cached.
func (s *Service) cacheDir(ctx context.Context, c *store.Content, p *prepared, lang manifest.Language, repos map[string]string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00owner %d\x00", cacheFormat, lang, c.OwnerID)
	vars, err := s.st.Environment(ctx, c.ID) // the variables set through the API
	if err != nil {
		return "", err
	}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(h, "env %s=%s\x00", k, vars[k])
	}
	var version string
	switch lang {
	case manifest.LangPython:
		version = p.rts.Python.Version.String()
		fmt.Fprintf(h, "%s\x00%s\x00", p.rts.Python.Path, version)
		req, err := os.ReadFile(filepath.Join(p.dirs.Code, p.m.PackageFile()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if pointsOutside(req) {
			return "", nil
		}
		h.Write(req)
	case manifest.LangR:
		version = p.rts.R.Version.String()
		fmt.Fprintf(h, "%s\x00%s\x00", p.rts.R.Path, version)
		for _, name := range p.m.Packages.Names() {
			pkg := p.m.Packages[name]
			fmt.Fprintf(h, "%s\t%s\t%s\t%s\n", name, pkg.Version(), pkg.Source, pkg.Repository)
		}
		keys := make([]string, 0, len(repos))
		for k := range repos {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(h, "repo\t%s\t%s\n", k, repos[k])
		}
	}
	return filepath.Join(s.cacheRoot(), cacheLanguage(lang), version, hex.EncodeToString(h.Sum(nil))[:32]), nil
}

// pointsOutside tells whether a pip requirements file refers to anything
// but package names and versions: an option (-r, -c, -e, --index-url,
// ...), a path or a URL. What such a file installs depends on more than
// its text.
func pointsOutside(req []byte) bool {
	for _, line := range strings.Split(string(req), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "-") || strings.HasPrefix(line, ".") || strings.ContainsAny(line, "/\\") ||
			strings.Contains(line, "file:") || strings.Contains(line, "@") {
			return true
		}
	}
	return false
}

// copyTree copies src to dst (which must not exist), links and modes kept.
func copyTree(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", "--", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w: %s", src, dst, err, bytes.TrimSpace(out))
	}
	return nil
}

// relocate rewrites the absolute path a virtual environment was built at
// (from) to where it now is (to) in the text files of its bin/: the
// shebangs of installed scripts and the activate scripts.
func relocate(venv, from, to string) error {
	ents, err := os.ReadDir(filepath.Join(venv, "bin"))
	if err != nil {
		return nil
	}
	for _, e := range ents {
		p := filepath.Join(venv, "bin", e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 1<<20 {
			continue
		}
		b, err := readTail(p, 1<<20) // the whole file (checked above), never a FIFO swapped in since
		if err != nil || !bytes.Contains(b, []byte(from)) {
			continue
		}
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte(from), []byte(to)), fi.Mode().Perm()); err != nil {
			return fmt.Errorf("relocate %s: %w", p, err)
		}
	}
	return nil
}

// fromCache copies the cached environment of lang into p.env; false when
// there is no entry.
func (s *Service) fromCache(ctx context.Context, p *prepared, lang manifest.Language, entry string) (bool, error) {
	s.cacheMu.RLock()
	defer s.cacheMu.RUnlock()
	src := filepath.Join(entry, envSubdir(lang))
	if _, err := os.Stat(src); err != nil {
		return false, nil
	}
	dst := filepath.Join(p.env, envSubdir(lang))
	if err := os.RemoveAll(dst); err != nil {
		return false, err
	}
	if err := copyTree(ctx, src, dst); err != nil {
		return false, err
	}
	if lang == manifest.LangPython {
		if err := relocate(dst, src, dst); err != nil {
			return false, err
		}
	}
	return true, nil
}

// toCache keeps p.env's environment of lang as the cache entry; an entry
// made meanwhile by another deploy wins.
func (s *Service) toCache(ctx context.Context, p *prepared, lang manifest.Language, entry string) error {
	s.cacheMu.RLock()
	defer s.cacheMu.RUnlock()
	src := filepath.Join(p.env, envSubdir(lang))
	if _, err := os.Stat(src); err != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(entry), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(entry), ".new-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dst := filepath.Join(tmp, envSubdir(lang))
	if err := copyTree(ctx, src, dst); err != nil {
		return err
	}
	if lang == manifest.LangPython {
		final := filepath.Join(entry, envSubdir(lang))
		if err := relocate(dst, src, final); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(entry); err != nil {
		return err
	}
	return os.Rename(tmp, entry)
}

// RuntimeCaches lists the runtimes that have a package cache.
func (s *Service) RuntimeCaches() ([]RuntimeCache, error) {
	s.cacheMu.RLock()
	defer s.cacheMu.RUnlock()
	out := []RuntimeCache{}
	for _, lang := range []string{"Python", "R"} {
		ents, err := os.ReadDir(filepath.Join(s.cacheRoot(), lang))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, RuntimeCache{Language: lang, Version: e.Name(), ImageName: CacheImage})
			}
		}
	}
	return out, nil
}

// FindRuntimeCache returns the cache of language (any case) and version
// as listed; 404 when there is none.
func (s *Service) FindRuntimeCache(language, version, image string) (RuntimeCache, error) {
	all, err := s.RuntimeCaches()
	if err != nil {
		return RuntimeCache{}, err
	}
	for _, rc := range all {
		if strings.EqualFold(rc.Language, language) && rc.Version == version && (image == "" || strings.EqualFold(image, rc.ImageName)) {
			return rc, nil
		}
	}
	return RuntimeCache{}, errStatus(404, fmt.Sprintf("no runtime cache for language %q, version %q, image %q: GET /__api__/v1/system/caches/runtime lists them", language, version, image))
}

// StartDeleteRuntimeCache clears the package cache of one runtime as a
// task; deploys already built keep their environments.
func (s *Service) StartDeleteRuntimeCache(ctx context.Context, rc RuntimeCache, u *store.User) (*store.Task, error) {
	t := &store.Task{UserID: u.ID, Kind: TaskCacheDelete, Node: s.o.Node}
	if err := s.st.CreateTask(ctx, t); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tl := &taskLog{s: s, id: t.ID}
		tl.Printf("Removing the package cache of %s %s", rc.Language, rc.Version)
		s.cacheMu.Lock()
		err := os.RemoveAll(filepath.Join(s.cacheRoot(), rc.Language, rc.Version))
		s.cacheMu.Unlock()
		code, msg := 0, ""
		if err != nil {
			code, msg = 1, err.Error()
			tl.Printf("Failed: %s", msg)
		} else {
			tl.Printf("Removed the package cache of %s %s", rc.Language, rc.Version)
			s.log.Info("runtime cache removed", "language", rc.Language, "version", rc.Version, "by", u.Username)
		}
		tl.flush()
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.finishTask(fctx, t.ID, code, msg, nil, time.Now()); err != nil {
			s.log.Error("finish task", logKeyTask, t.ID, logKeyErr, err)
		}
	}()
	return t, nil
}

// TaskCacheDelete is the kind of the task that clears a runtime cache.
const TaskCacheDelete = "cache-delete"
