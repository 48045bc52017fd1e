package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// tagJSON is a tag as Connect's v1 API shows it: ids are strings.
type tagJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ParentID    *string   `json:"parent_id"`
	CreatedTime time.Time `json:"created_time"`
	UpdatedTime time.Time `json:"updated_time"`
}

func newTagJSON(t *store.Tag) tagJSON {
	j := tagJSON{ID: strconv.FormatInt(t.ID, 10), Name: t.Name, CreatedTime: t.CreatedAt.UTC(), UpdatedTime: t.UpdatedAt.UTC()}
	if t.ParentID != 0 {
		p := strconv.FormatInt(t.ParentID, 10)
		j.ParentID = &p
	}
	return j
}

func tagsJSON(ts []store.Tag) []tagJSON {
	out := make([]tagJSON, 0, len(ts))
	for i := range ts {
		out = append(out, newTagJSON(&ts[i]))
	}
	return out
}

// idField reads an id a client sends as a string ("12", connectapi) or a
// number (12); null and "" are 0.
func idField(name string, raw json.RawMessage) (int64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" || s == `""` {
		return 0, nil
	}
	s = strings.Trim(s, `"`)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, errStatus(http.StatusBadRequest, name+" must be a tag id (a positive integer, as a string or a number)")
	}
	return id, nil
}

// tagOf is the tag of the request's {id}.
func (a *API) tagOf(r *http.Request, name string) (*store.Tag, error) {
	ref := r.PathValue(name)
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusNotFound, "no tag "+ref+": tag ids are numbers")
	}
	t, err := a.st.Tag(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errStatus(http.StatusNotFound, "no tag "+ref)
	}
	return t, err
}

func checkTagName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > 255 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return errStatus(http.StatusBadRequest, "name must be 1 to 255 characters, not blank, without control characters")
	}
	return nil
}

// tagRequest is the body of POST and PATCH /__api__/v1/tags.
type tagRequest struct {
	Name     *string         `json:"name"`
	ParentID json.RawMessage `json:"parent_id"`
}

// tagConflict words a store conflict on a tag.
func tagConflict(err error, name string) error {
	if errors.Is(err, store.ErrConflict) {
		return errStatus(http.StatusConflict, "a tag named "+name+" exists already under that parent")
	}
	return err
}

// listTags is GET /__api__/v1/tags?name=&parent_id=: every tag, flat
// (each names its parent), as connectapi builds its tag tree from.
func (a *API) listTags(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.TagFilter{Name: q.Get("name")}
	if q.Has("parent_id") {
		id, err := idField("parent_id", json.RawMessage(strconv.Quote(q.Get("parent_id"))))
		if err != nil {
			return err
		}
		f.ParentID, f.TopLevel = id, id == 0
	}
	ts, err := a.st.ListTags(r.Context(), f)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, tagsJSON(ts))
	return nil
}

// createTag is POST /__api__/v1/tags {name, parent_id?} (administrators).
func (a *API) createTag(w http.ResponseWriter, r *http.Request) error {
	var req tagRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return errStatus(http.StatusBadRequest, "name is required")
	}
	if err := checkTagName(*req.Name); err != nil {
		return err
	}
	parent, err := idField("parent_id", req.ParentID)
	if err != nil {
		return err
	}
	if parent != 0 {
		if _, err := a.st.Tag(r.Context(), parent); errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusBadRequest, "parent_id: no tag "+strconv.FormatInt(parent, 10))
		} else if err != nil {
			return err
		}
	}
	t := &store.Tag{Name: *req.Name, ParentID: parent}
	if err := a.st.CreateTag(r.Context(), t); err != nil {
		return tagConflict(err, t.Name)
	}
	web.WriteJSON(w, http.StatusOK, newTagJSON(t))
	return nil
}

func (a *API) getTag(w http.ResponseWriter, r *http.Request) error {
	t, err := a.tagOf(r, "id")
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newTagJSON(t))
	return nil
}

// updateTag is PATCH /__api__/v1/tags/{id} {name?, parent_id?}
// (administrators); a tag cannot move below itself.
func (a *API) updateTag(w http.ResponseWriter, r *http.Request) error {
	t, err := a.tagOf(r, "id")
	if err != nil {
		return err
	}
	var req tagRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name != nil {
		if err := checkTagName(*req.Name); err != nil {
			return err
		}
		t.Name = *req.Name
	}
	if req.ParentID != nil {
		parent, err := idField("parent_id", req.ParentID)
		if err != nil {
			return err
		}
		// Walk up from the new parent: meeting t means a cycle.
		for p := parent; p != 0; {
			if p == t.ID {
				return errStatus(http.StatusBadRequest, "parent_id: a tag cannot move below itself")
			}
			pt, err := a.st.Tag(r.Context(), p)
			if errors.Is(err, store.ErrNotFound) {
				return errStatus(http.StatusBadRequest, "parent_id: no tag "+strconv.FormatInt(p, 10))
			}
			if err != nil {
				return err
			}
			p = pt.ParentID
		}
		t.ParentID = parent
	}
	if err := a.st.UpdateTag(r.Context(), t); err != nil {
		return tagConflict(err, t.Name)
	}
	web.WriteJSON(w, http.StatusOK, newTagJSON(t))
	return nil
}

// deleteTag is DELETE /__api__/v1/tags/{id} (administrators): the tags
// below it go too, and all of them from the content they were on.
func (a *API) deleteTag(w http.ResponseWriter, r *http.Request) error {
	t, err := a.tagOf(r, "id")
	if err != nil {
		return err
	}
	if err := a.st.DeleteTag(r.Context(), t.ID); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// tagContent is GET /__api__/v1/tags/{id}/content: the content with the
// tag that the user may see.
func (a *API) tagContent(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	t, err := a.tagOf(r, "id")
	if err != nil {
		return err
	}
	list, _, err := a.visibleContent(r.Context(), u, store.ContentFilter{TagID: t.ID})
	if err != nil {
		return err
	}
	out, err := a.contentJSONs(r, list, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// contentTags is GET /__api__/v1/content/{guid}/tags.
func (a *API) contentTags(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	ts, err := a.st.ContentTags(r.Context(), c.ID)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, tagsJSON(ts))
	return nil
}

// addContentTag is POST /__api__/v1/content/{guid}/tags {tag_id}: the tag.
func (a *API) addContentTag(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req struct {
		TagID json.RawMessage `json:"tag_id"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	id, err := idField("tag_id", req.TagID)
	if err != nil {
		return err
	}
	if id == 0 {
		return errStatus(http.StatusBadRequest, "tag_id is required")
	}
	t, err := a.st.Tag(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusBadRequest, "tag_id: no tag "+strconv.FormatInt(id, 10))
	}
	if err != nil {
		return err
	}
	if err := a.st.AddContentTag(r.Context(), c.ID, t.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errStatus(http.StatusConflict, "content "+c.Name+" has tag "+t.Name+" already")
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, newTagJSON(t))
	return nil
}

// removeContentTag is DELETE /__api__/v1/content/{guid}/tags/{id}.
func (a *API) removeContentTag(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	t, err := a.tagOf(r, "tid")
	if err != nil {
		return err
	}
	if err := a.st.RemoveContentTag(r.Context(), c.ID, t.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusNotFound, "content "+c.Name+" does not have tag "+t.Name)
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// searchPage is Connect's paged shape of GET /v1/search/content.
type searchPage struct {
	Results     []contentJSON `json:"results"`
	CurrentPage int           `json:"current_page"`
	Total       int           `json:"total"`
}

// searchContent is GET /__api__/v1/search/content?q=&page_number=&page_size=&include=:
// the content the user may see matching every term of q: words match the
// name or title; tag:NAME (tag:"two words") content with a tag of that
// name; owner:USERNAME or owner:@me the owner's.
func (a *API) searchContent(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	page, size, err := pageParams(r, 500)
	if err != nil {
		return err
	}
	var words, tags []string
	var owner string
	for _, term := range searchTerms(r.URL.Query().Get("q")) {
		key, val, ok := strings.Cut(term, ":")
		switch {
		case ok && key == "tag":
			tags = append(tags, val)
		case ok && key == "owner":
			owner = val
		default:
			words = append(words, term)
		}
	}
	var f store.ContentFilter
	if owner == "@me" {
		f.OwnerID = u.ID
	} else if owner != "" {
		o, err := a.st.UserByUsername(r.Context(), owner)
		if errors.Is(err, store.ErrNotFound) {
			web.WriteJSON(w, http.StatusOK, searchPage{Results: []contentJSON{}, CurrentPage: page})
			return nil
		}
		if err != nil {
			return err
		}
		f.OwnerID = o.ID
	}
	f.Words = words
	var list []store.Content
	total := 0
	if len(tags) == 0 {
		// The page in SQL: only its rows are read.
		f.Start, f.Count = (page-1)*size, size
		if list, total, err = a.visibleContent(r.Context(), u, f); err != nil {
			return err
		}
	} else {
		all, err := a.contentWithTags(r.Context(), u, f, tags)
		if err != nil {
			return err
		}
		total = len(all)
		list = all[min((page-1)*size, len(all)):min(page*size, len(all))]
	}
	results, err := a.contentJSONs(r, list, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, searchPage{Results: results, CurrentPage: page, Total: total})
	return nil
}

// contentWithTags is the visible content matching f that has, for each
// name in tags, a tag of that name (any of the tags so named).
func (a *API) contentWithTags(ctx context.Context, u *store.User, f store.ContentFilter, tags []string) ([]store.Content, error) {
	list, _, err := a.visibleContent(ctx, u, f)
	if err != nil || len(tags) == 0 {
		return list, err
	}
	for _, name := range tags {
		named, err := a.st.ListTags(ctx, store.TagFilter{Name: name})
		if err != nil {
			return nil, err
		}
		keep := map[int64]bool{}
		for _, t := range named {
			tf := f
			tf.TagID = t.ID
			tagged, _, err := a.st.ListContent(ctx, tf)
			if err != nil {
				return nil, err
			}
			for _, c := range tagged {
				keep[c.ID] = true
			}
		}
		list = slices.DeleteFunc(list, func(c store.Content) bool { return !keep[c.ID] })
	}
	return list, nil
}

// searchTerms splits q on spaces, keeping "double-quoted" runs together
// (the quotes dropped): tag:"Sales EMEA" is one term.
func searchTerms(q string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range q {
		switch {
		case r == '"':
			quoted = !quoted
		case unicode.IsSpace(r) && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// ownerJSON is the owner of content, with ?include=owner.
type ownerJSON struct {
	GUID      string `json:"guid"`
	Username  string `json:"username"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// includes adds what ?include=tags,owner,vanity_url asks for to j.
// Lookups that fail leave the field out (the content itself was read).
func (a *API) includes(r *http.Request, c *store.Content, j *contentJSON, v *listView) {
	inc := r.URL.Query().Get("include")
	if inc == "" {
		return
	}
	for _, what := range strings.Split(inc, ",") {
		switch strings.TrimSpace(what) {
		case "tags":
			if ts, err := a.st.ContentTags(r.Context(), c.ID); err == nil {
				j.Tags = tagsJSON(ts)
			}
		case "owner":
			o := a.ownerOf(r.Context(), v, c)
			j.Owner = &ownerJSON{GUID: o.GUID, Username: o.Username, FirstName: o.FirstName, LastName: o.LastName}
		case "vanity_url":
			if v, err := a.st.Vanity(r.Context(), c.ID); err == nil {
				u := a.publicBase(r) + v.Path
				j.VanityURL = &u
			}
		}
	}
}
