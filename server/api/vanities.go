package api

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// maxVanityDepth bounds the segments of a vanity path (and so the paths
// one request is looked up under).
const maxVanityDepth = 8

// reservedPaths are the first path segments dais serves itself; a vanity
// path may not start with one, nor with "__" (dais's and Connect's own
// paths: /__api__, /__login__, /__static__, /__ping__, ...).
var reservedPaths = []string{"connect", "content", "metrics"}

var vanitySegment = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// vanityJSON is a vanity path as Connect's v1 API shows it.
type vanityJSON struct {
	ContentGUID string    `json:"content_guid"`
	Path        string    `json:"path"`
	CreatedTime time.Time `json:"created_time"`
}

// normalVanity turns what a client sends ("sales/dash", "/sales/dash/",
// or the full URL under base) into "/sales/dash/", or says what is wrong.
func normalVanity(raw, base string) (string, error) {
	p := strings.TrimSpace(raw)
	if base != "" {
		p = strings.TrimPrefix(p, base)
	}
	p = strings.Trim(p, "/")
	if p == "" {
		return "", errStatus(http.StatusBadRequest, "path is required: the vanity path, such as sales/dashboard")
	}
	segs := strings.Split(p, "/")
	if len(segs) > maxVanityDepth || len(p) > 255 {
		return "", errStatus(http.StatusBadRequest, fmt.Sprintf("path %q is too long: at most %d segments and 255 characters", raw, maxVanityDepth))
	}
	for _, s := range segs {
		if !vanitySegment.MatchString(s) || s == "." || s == ".." {
			return "", errStatus(http.StatusBadRequest, fmt.Sprintf("path %q is not valid: use letters, digits, '-', '_', '.' and '~' between slashes", raw))
		}
	}
	return "/" + p + "/", nil
}

// reservedVanity names the dais path p collides with, or "".
func reservedVanity(p string) string {
	first, _, _ := strings.Cut(strings.Trim(p, "/"), "/")
	for _, r := range reservedPaths {
		if strings.EqualFold(first, r) {
			return "/" + r + "/"
		}
	}
	if strings.HasPrefix(first, "__") {
		return "/" + first + "/"
	}
	return ""
}

func (a *API) vanityJSON(c *store.Content, v *store.Vanity) vanityJSON {
	return vanityJSON{ContentGUID: c.GUID, Path: v.Path, CreatedTime: v.CreatedAt.UTC()}
}

// getVanity is GET /__api__/v1/content/{guid}/vanity.
func (a *API) getVanity(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	v, err := a.st.Vanity(r.Context(), c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusNotFound, "content "+c.Name+" has no vanity path")
	}
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.vanityJSON(c, v))
	return nil
}

// setVanity is PUT /__api__/v1/content/{guid}/vanity {path, force?}: the
// content's editors set it; a path another content has is refused with
// 409 naming that content, unless force and the user may change that
// content too (then it moves here).
func (a *API) setVanity(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req struct {
		Path  *string `json:"path"`
		Force bool    `json:"force"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Path == nil {
		return errStatus(http.StatusBadRequest, "path is required: the vanity path, such as sales/dashboard")
	}
	p, err := normalVanity(*req.Path, a.publicBase(r))
	if err != nil {
		return err
	}
	if own := reservedVanity(p); own != "" {
		return errStatus(http.StatusConflict, "vanity path "+p+" collides with dais's own "+own+"; pick another path")
	}
	if req.Force {
		// Taking a path from another content needs the right to change it.
		if others, err := a.st.VanityByPath(r.Context(), []string{p}); err == nil && others.ContentID != c.ID {
			oc, err := a.st.Content(r.Context(), others.ContentID)
			if err != nil {
				return err
			}
			if have, err := authz.Content(r.Context(), a.st, u, oc); err != nil {
				return err
			} else if have < authz.Editor {
				return a.vanityTaken(r, p, others)
			}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	v := &store.Vanity{ContentID: c.ID, Path: p}
	if err := a.st.SetVanity(r.Context(), v, req.Force); err != nil {
		var ce *store.VanityConflictError
		if errors.As(err, &ce) {
			return a.vanityTaken(r, p, &ce.Other)
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.vanityJSON(c, v))
	return nil
}

// vanityTaken is the 409 for p colliding with other's path, naming the
// content that has it and its owner.
func (a *API) vanityTaken(r *http.Request, p string, other *store.Vanity) error {
	who := fmt.Sprintf("content %d", other.ContentID)
	if oc, err := a.st.Content(r.Context(), other.ContentID); err == nil {
		who = fmt.Sprintf("content %q (%s) of user %s", oc.Name, oc.GUID, a.owner(r.Context(), oc).Username)
	}
	how := "is the vanity path of"
	switch {
	case strings.HasPrefix(p, other.Path) && p != other.Path:
		how = "lies below " + other.Path + ", the vanity path of"
	case strings.HasPrefix(other.Path, p) && p != other.Path:
		how = "lies above " + other.Path + ", the vanity path of"
	}
	return errStatus(http.StatusConflict, "vanity path "+p+" "+how+" "+who+"; pick another path")
}

// deleteVanity is DELETE /__api__/v1/content/{guid}/vanity.
func (a *API) deleteVanity(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	if err := a.st.DeleteVanity(r.Context(), c.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusNotFound, "content "+c.Name+" has no vanity path")
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// listVanities is GET /__api__/v1/vanities: every vanity path (so that a
// client can tell which are free), with its content's guid.
func (a *API) listVanities(w http.ResponseWriter, r *http.Request) error {
	vs, err := a.st.ListVanities(r.Context())
	if err != nil {
		return err
	}
	out := make([]vanityJSON, 0, len(vs))
	for i := range vs {
		c, err := a.st.Content(r.Context(), vs[i].ContentID)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, a.vanityJSON(c, &vs[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// vanityCandidates are the vanity paths a request path may be under:
// "/a/b/c" gives "/a/", "/a/b/", "/a/b/c/" (the last for a path without
// its trailing slash, which is redirected).
func vanityCandidates(p string) []string {
	var out []string
	for i := 1; i < len(p) && len(out) < maxVanityDepth; i++ {
		if p[i] == '/' {
			out = append(out, p[:i+1])
		}
	}
	if !strings.HasSuffix(p, "/") && strings.Count(p, "/") <= maxVanityDepth {
		out = append(out, p+"/")
	}
	return out
}

// serveVanity answers every path no other route has: content at its
// vanity path is served exactly as at /content/<guid>/ (access, files,
// processes, WebSockets; its base URL is the vanity path); anything else
// is a 404.
func (a *API) serveVanity(w http.ResponseWriter, r *http.Request) {
	cands := vanityCandidates(r.URL.Path)
	if len(cands) == 0 || reservedVanity(cands[0]) != "" {
		http.NotFound(w, r)
		return
	}
	v, err := a.st.VanityByPath(r.Context(), cands)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		a.log.Error("look up vanity path", "path", r.URL.Path, logKeyErr, err)
		http.Error(w, "cannot look up the content now", http.StatusServiceUnavailable)
		return
	}
	if ok, reason := a.web.Licensed(); !ok {
		http.Error(w, "dais cannot serve content: "+reason, http.StatusPaymentRequired)
		return
	}
	if r.URL.Path+"/" == v.Path {
		// Relative URLs in apps need the trailing slash.
		u := *r.URL
		u.Path, u.RawPath = v.Path, ""
		http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
		return
	}
	c, err := a.st.Content(r.Context(), v.ContentID)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		a.log.Error("look up content", logKeyContent, v.ContentID, logKeyErr, err)
		http.Error(w, "cannot look up the content now", http.StatusServiceUnavailable)
		return
	}
	a.dep.Serve(w, r, c, strings.TrimSuffix(v.Path, "/"))
}
