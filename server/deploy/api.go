package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// MaxUploadBytes bounds an uploaded (compressed) bundle.
const MaxUploadBytes = 2 << 30

// Register adds the deployment API and the content router to w.
func (s *Service) Register(w *web.Server) {
	h := func(f func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return func(rw http.ResponseWriter, r *http.Request) {
			if err := f(rw, r); err != nil {
				s.writeErr(rw, r, err)
			}
		}
	}
	// Legacy API (rsconnect 0.8.x, rsconnect-python up to 1.26).
	w.Handle("GET /__api__/applications", h(s.listApplications))
	w.Handle("POST /__api__/applications", h(s.createApplication))
	w.Handle("GET /__api__/applications/{id}", h(s.getApplication))
	w.Handle("POST /__api__/applications/{id}", h(s.updateApplication))
	w.Handle("POST /__api__/applications/{id}/upload", h(s.uploadApplication))
	w.Handle("POST /__api__/applications/{id}/deploy", h(s.deployApplication))
	w.Handle("GET /__api__/applications/{id}/config", h(s.configApplication))
	w.Handle("GET /__api__/tasks/{id}", h(s.getTask("first_status", "status", "last_status")))

	// v1 content API.
	w.Handle("GET /__api__/v1/content", h(s.listContent))
	w.Handle("POST /__api__/v1/content", h(s.createContent))
	w.Handle("GET /__api__/v1/content/{guid}", h(s.getContent))
	w.Handle("PATCH /__api__/v1/content/{guid}", h(s.patchContent))
	w.Handle("DELETE /__api__/v1/content/{guid}", h(s.deleteContent))
	w.Handle("POST /__api__/v1/content/{guid}/bundles", h(s.uploadBundle))
	w.Handle("GET /__api__/v1/content/{guid}/bundles", h(s.listBundles))
	w.Handle("GET /__api__/v1/content/{guid}/bundles/{bid}", h(s.getBundle))
	w.Handle("POST /__api__/v1/content/{guid}/deploy", h(s.deployContent))
	w.Handle("POST /__api__/v1/content/{guid}/render", h(s.renderContent))
	w.Handle("GET /__api__/v1/tasks/{id}", h(s.getTask("first", "output", "last")))
	w.Handle("GET /__api__/v1/content/{guid}/environment", h(s.getEnvironment))
	w.Handle("PATCH /__api__/v1/content/{guid}/environment", h(s.setEnvironment(false)))
	w.Handle("PUT /__api__/v1/content/{guid}/environment", h(s.setEnvironment(true)))
	w.Handle("GET /__api__/v1/content/{guid}/permissions", h(s.listPermissions))
	w.Handle("POST /__api__/v1/content/{guid}/permissions", h(s.addPermission))
	w.Handle("PUT /__api__/v1/content/{guid}/permissions/{pid}", h(s.updatePermission))
	w.Handle("DELETE /__api__/v1/content/{guid}/permissions/{pid}", h(s.deletePermission))
	w.Handle("GET /__api__/v1/content/{guid}/jobs", h(s.listJobs))
	w.Handle("GET /__api__/v1/content/{guid}/jobs/{key}/log", h(s.jobLog))

	// Content.
	w.Handle("/content/{guid}/", http.HandlerFunc(s.serveContent))
}

// visibleContent lists the content matching f that u may see, then pages it.
func (s *Service) visibleContent(ctx context.Context, u *store.User, f store.ContentFilter) ([]store.Content, int, error) {
	start, count := f.Start, f.Count
	f.Start, f.Count = 0, 0
	all, _, err := s.st.ListContent(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	var vis []store.Content
	for i := range all {
		a, err := s.accessOf(ctx, u, &all[i])
		if err != nil {
			return nil, 0, err
		}
		if a != accessNone {
			vis = append(vis, all[i])
		}
	}
	total := len(vis)
	if start > len(vis) {
		start = len(vis)
	}
	vis = vis[start:]
	if count > 0 && count < len(vis) {
		vis = vis[:count]
	}
	return vis, total, nil
}

// listApplications is GET /__api__/applications?filter=name:N&filter=account_id:I&search=S&count=C&start=O (or offset=O).
func (s *Service) listApplications(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f store.ContentFilter
	for _, flt := range q["filter"] {
		key, val, ok := strings.Cut(flt, ":")
		if !ok {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("filter %q must be key:value (name, account_id, guid, app_mode)", flt))
		}
		switch key {
		case "name":
			f.Name = val
		case "account_id":
			id, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return errStatus(http.StatusBadRequest, "filter account_id must be a number")
			}
			f.OwnerID = id
		case "app_mode":
			f.AppMode = val
		case "guid":
			c, err := s.st.ContentByGUID(r.Context(), val)
			if errors.Is(err, store.ErrNotFound) {
				web.WriteJSON(w, http.StatusOK, map[string]any{"applications": []appJSON{}, "count": 0, "total": 0, "continuation": 0})
				return nil
			}
			if err != nil {
				return err
			}
			f.Name, f.OwnerID = c.Name, c.OwnerID
		default:
			return errStatus(http.StatusBadRequest, fmt.Sprintf("unknown filter %q: use name, account_id, guid or app_mode", key))
		}
	}
	f.Search = q.Get("search")
	count, start := 100, 0
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 {
			return errStatus(http.StatusBadRequest, "count must be a positive integer")
		}
	}
	for _, k := range []string{"start", "offset"} {
		if v := q.Get(k); v != "" {
			if start, err = strconv.Atoi(v); err != nil || start < 0 {
				return errStatus(http.StatusBadRequest, k+" must be a non-negative integer")
			}
		}
	}
	f.Start, f.Count = start, count
	list, total, err := s.visibleContent(r.Context(), u, f)
	if err != nil {
		return err
	}
	apps := make([]appJSON, 0, len(list))
	for i := range list {
		apps = append(apps, s.appJSON(r, &list[i]))
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"applications": apps, "count": len(apps), "total": total, "continuation": start + len(apps),
	})
	return nil
}

// newContent creates content owned by the request's user from the
// request's fields (POST /__api__/applications and /__api__/v1/content).
func (s *Service) newContent(r *http.Request) (*store.Content, *store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	st, err := decodeSettings(r)
	if err != nil {
		return nil, nil, err
	}
	if err := needPublisher(u); err != nil {
		return nil, nil, err
	}
	if _, ok := st["name"]; !ok {
		return nil, nil, errStatus(http.StatusBadRequest, "name is required")
	}
	c := &store.Content{OwnerID: u.ID, AccessType: store.AccessACL}
	if err := st.apply(c, u.Role == store.RoleAdministrator); err != nil {
		return nil, nil, err
	}
	if err := s.st.CreateContent(r.Context(), c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil, errStatus(http.StatusConflict, "you already have content named "+c.Name+"; pick another name or deploy to that one")
		}
		return nil, nil, err
	}
	s.log.Info("content created", logKeyContent, c.GUID, "name", c.Name, "owner", u.Username)
	return c, u, nil
}

func decodeSettings(r *http.Request) (settings, error) {
	var st settings
	if err := web.DecodeJSON(r, &st); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errStatus(http.StatusBadRequest, "send a JSON object")
	}
	return st, nil
}

// createApplication is POST /__api__/applications {name, title}.
func (s *Service) createApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.newContent(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.appJSON(r, c))
	return nil
}

func (s *Service) getApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessViewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.appJSON(r, c))
	return nil
}

// updateApplication is POST /__api__/applications/{id} {title, ...}.
func (s *Service) updateApplication(w http.ResponseWriter, r *http.Request) error {
	c, err := s.update(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.appJSON(r, c))
	return nil
}

// update applies a settings body to the content of the request.
func (s *Service) update(r *http.Request) (*store.Content, error) {
	c, u, err := s.contentFor(r, accessEditor)
	if err != nil {
		return nil, err
	}
	st, err := decodeSettings(r)
	if err != nil {
		return nil, err
	}
	before := *c
	if err := st.apply(c, u.Role == store.RoleAdministrator); err != nil {
		return nil, err
	}
	if err := s.st.UpdateContent(r.Context(), c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, errStatus(http.StatusConflict, "the owner already has content named "+c.Name)
		}
		return nil, err
	}
	if poolSettingsChanged(&before, c) {
		s.restartApp(c)
	}
	return c, nil
}

func (s *Service) configApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessViewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{
		"config_url": s.dashboardURL(r, c),
		"logs_url":   s.dashboardURL(r, c) + "/logs",
	})
	return nil
}

// uploadApplication is POST /__api__/applications/{id}/upload: the raw
// tar.gz body (perhaps chunked, perhaps without a Content-Type).
func (s *Service) uploadApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	b, err := s.receiveBundle(r, c)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"id": b.ID, "app_id": c.ID, "size": b.Size, "created_time": b.CreatedAt.UTC(),
	})
	return nil
}

// receiveBundle stores the request body as a new bundle of c.
func (s *Service) receiveBundle(r *http.Request, c *store.Content) (*store.Bundle, error) {
	dir := s.contentDir(c.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w (check Server.DataDir)", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "upload-*.tar.gz")
	if err != nil {
		return nil, fmt.Errorf("store upload: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, http.MaxBytesReader(nil, r.Body, MaxUploadBytes))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf("bundle larger than %d bytes", int64(MaxUploadBytes)))
	}
	if err != nil {
		return nil, errStatus(http.StatusBadRequest, "reading the bundle failed: "+err.Error())
	}
	if n == 0 {
		return nil, errStatus(http.StatusBadRequest, "the bundle is empty: send the tar.gz archive as the request body")
	}
	b := &store.Bundle{ContentID: c.ID, Path: dir, Size: n}
	if err := s.st.CreateBundle(r.Context(), b); err != nil {
		return nil, err
	}
	bdir := s.bundleDir(c.ID, b.ID)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), s.archivePath(c.ID, b.ID)); err != nil {
		return nil, fmt.Errorf("store bundle %d: %w", b.ID, err)
	}
	s.log.Info("bundle uploaded", logKeyContent, c.GUID, logKeyBundle, b.ID, "bytes", n)
	return b, nil
}

// deployApplication is POST /__api__/applications/{id}/deploy {bundle}.
func (s *Service) deployApplication(w http.ResponseWriter, r *http.Request) error {
	c, u, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	var req struct {
		Bundle json.Number `json:"bundle"`
	}
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	t, err := s.startDeploy(r.Context(), c, u, string(req.Bundle))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"task_id": t.ID, "id": t.ID, "user_id": u.ID, "finished": false, "code": 0, "error": "",
	})
	return nil
}

// getTask serves a task's output from line first on, with a long poll of
// up to wait seconds. The legacy GET /__api__/tasks/{id}?first_status=N
// and the v1 GET /__api__/v1/tasks/{id}?first=N&wait=S answer alike but
// for the names of the first-line parameter and of the lines and next-line
// fields.
func (s *Service) getTask(firstParam, linesField, lastField string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		first, err := intParam(r, firstParam, 0)
		if err != nil {
			return err
		}
		wait, err := intParam(r, "wait", 0)
		if err != nil {
			return err
		}
		t, lines, err := s.pollTask(r, first, wait)
		if err != nil {
			return err
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{
			"id": t.ID, "user_id": t.UserID, linesField: lines, lastField: first + len(lines),
			"finished": t.Finished, "code": t.Code, "error": t.Error, "result": rawOrNull(t.Result),
		})
		return nil
	}
}

func rawOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errStatus(http.StatusBadRequest, name+" must be a non-negative integer")
	}
	return n, nil
}

// maxWait bounds a long poll.
const maxWait = 30

// pollTask returns the task and its lines from first on, waiting up to
// wait seconds for a new line or the end when there is none yet.
func (s *Service) pollTask(r *http.Request, first, wait int) (*store.Task, []string, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	deadline := time.Now().Add(time.Duration(min(wait, maxWait)) * time.Second)
	checked := false
	for {
		t, err := s.st.Task(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, errStatus(http.StatusNotFound, "no task "+id)
		}
		if err != nil {
			return nil, nil, err
		}
		if !checked {
			if err := s.checkTaskAccess(ctx, u, t); err != nil {
				return nil, nil, err
			}
			checked = true
		}
		out, err := s.st.TaskOutput(ctx, id, first)
		if err != nil {
			return nil, nil, err
		}
		if len(out) > 0 || t.Finished || !time.Now().Before(deadline) {
			lines := make([]string, len(out))
			for i, l := range out {
				lines[i] = l.Line
			}
			return t, lines, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-s.o.Stopping.Done():
			deadline = time.Now()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkTaskAccess lets the task's starter, administrators and the
// content's editors read a task.
func (s *Service) checkTaskAccess(ctx context.Context, u *store.User, t *store.Task) error {
	if u.Role == store.RoleAdministrator || u.ID == t.UserID {
		return nil
	}
	if t.ContentID != 0 {
		if c, err := s.st.Content(ctx, t.ContentID); err == nil {
			if a, err := s.accessOf(ctx, u, c); err == nil && a == accessEditor {
				return nil
			}
		}
	}
	return errStatus(http.StatusNotFound, "no task "+t.ID)
}

// listContent is GET /__api__/v1/content?name=N&owner_guid=G.
func (s *Service) listContent(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.ContentFilter{Name: q.Get("name")}
	if g := q.Get("owner_guid"); g != "" {
		o, err := s.st.UserByGUID(r.Context(), g)
		if errors.Is(err, store.ErrNotFound) {
			web.WriteJSON(w, http.StatusOK, []contentJSON{})
			return nil
		}
		if err != nil {
			return err
		}
		f.OwnerID = o.ID
	}
	list, _, err := s.visibleContent(r.Context(), u, f)
	if err != nil {
		return err
	}
	out := make([]contentJSON, 0, len(list))
	for i := range list {
		out = append(out, s.contentJSON(r, &list[i], u))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) createContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := s.newContent(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.contentJSON(r, c, u))
	return nil
}

func (s *Service) getContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := s.contentFor(r, accessViewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.contentJSON(r, c, u))
	return nil
}

func (s *Service) patchContent(w http.ResponseWriter, r *http.Request) error {
	c, err := s.update(r)
	if err != nil {
		return err
	}
	u, _ := web.UserFrom(r.Context())
	web.WriteJSON(w, http.StatusOK, s.contentJSON(r, c, u))
	return nil
}

// deleteContent stops the content, removes its files and its records.
func (s *Service) deleteContent(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	lock := s.contentLock(c.ID)
	lock.Lock()
	defer lock.Unlock()
	s.deactivate(c.GUID)
	if err := s.st.DeleteContent(r.Context(), c.ID); err != nil {
		return err
	}
	if err := os.RemoveAll(s.contentDir(c.ID)); err != nil {
		s.log.Warn("remove content files", logKeyContent, c.GUID, logKeyErr, err)
	}
	s.log.Info("content deleted", logKeyContent, c.GUID)
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

type bundleJSON struct {
	ID          string    `json:"id"`
	ContentGUID string    `json:"content_guid"`
	CreatedTime time.Time `json:"created_time"`
	Size        int64     `json:"size"`
	Active      bool      `json:"active"`
}

func newBundleJSON(c *store.Content, b *store.Bundle) bundleJSON {
	return bundleJSON{
		ID: strconv.FormatInt(b.ID, 10), ContentGUID: c.GUID, CreatedTime: b.CreatedAt.UTC(), Size: b.Size,
		Active: c.BundleID != nil && *c.BundleID == b.ID,
	}
}

func (s *Service) uploadBundle(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	b, err := s.receiveBundle(r, c)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newBundleJSON(c, b))
	return nil
}

func (s *Service) listBundles(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	bs, err := s.st.ListBundles(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := make([]bundleJSON, 0, len(bs))
	for i := range bs {
		out = append(out, newBundleJSON(c, &bs[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) getBundle(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	b, err := s.bundleOf(r.Context(), c, r.PathValue("bid"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newBundleJSON(c, b))
	return nil
}

// bundleOf finds a bundle of c by its id; "" means the newest.
func (s *Service) bundleOf(ctx context.Context, c *store.Content, ref string) (*store.Bundle, error) {
	if ref == "" {
		bs, err := s.st.ListBundles(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 {
			return nil, errStatus(http.StatusBadRequest, "content "+c.Name+" has no bundle: upload one first")
		}
		return &bs[0], nil
	}
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusBadRequest, "bundle id "+ref+" is not a number")
	}
	b, err := s.st.Bundle(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.ContentID != c.ID) {
		return nil, errStatus(http.StatusNotFound, "content "+c.Name+" has no bundle "+ref)
	}
	return b, err
}

// deployContent is POST /__api__/v1/content/{guid}/deploy {bundle_id}.
func (s *Service) deployContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	var req struct {
		BundleID json.RawMessage `json:"bundle_id"`
	}
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	ref := strings.Trim(string(req.BundleID), `"`)
	if ref == "null" {
		ref = ""
	}
	t, err := s.startDeploy(r.Context(), c, u, ref)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"task_id": t.ID})
	return nil
}

// renderContent is POST /__api__/v1/content/{guid}/render: render the
// document again; its output replaces the served one when it succeeds.
func (s *Service) renderContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	t, err := s.startRender(r.Context(), c, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"id": t.ID, "task_id": t.ID})
	return nil
}

// Environment variables: names only ever leave the server.

func (s *Service) writeEnvNames(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	names, err := s.st.EnvironmentNames(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	web.WriteJSON(w, http.StatusOK, names)
	return nil
}

func (s *Service) getEnvironment(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	return s.writeEnvNames(w, r, c)
}

type envVarJSON struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

func decodeEnv(r *http.Request) ([]store.EnvVar, error) {
	var req []envVarJSON
	if err := web.DecodeJSON(r, &req); err != nil {
		return nil, err
	}
	var out []store.EnvVar
	for _, v := range req {
		if !envNameOK(v.Name) {
			return nil, errStatus(http.StatusBadRequest, fmt.Sprintf("environment variable name %q is not valid: use letters, digits and '_', not starting with a digit", v.Name))
		}
		out = append(out, store.EnvVar{Name: v.Name, Value: v.Value})
	}
	return out, nil
}

func envNameOK(n string) bool {
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		return false
	}
	for _, ch := range n {
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// setEnvironment is PATCH .../environment [{name, value}], where value
// null removes the variable, and (replace) PUT .../environment, where the
// list replaces every variable. Running app processes are replaced so
// that they see the change.
func (s *Service) setEnvironment(replace bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, _, err := s.contentFor(r, accessEditor)
		if err != nil {
			return err
		}
		vars, err := decodeEnv(r)
		if err != nil {
			return err
		}
		if replace {
			old, err := s.st.EnvironmentNames(r.Context(), c.ID)
			if err != nil {
				return err
			}
			for _, n := range old {
				if !slices.ContainsFunc(vars, func(v store.EnvVar) bool { return v.Name == n }) {
					vars = append(vars, store.EnvVar{Name: n})
				}
			}
		}
		if err := s.st.UpdateEnvironment(r.Context(), c.ID, vars); err != nil {
			return err
		}
		s.restartApp(c)
		return s.writeEnvNames(w, r, c)
	}
}

type permissionJSON struct {
	ID            string `json:"id"`
	ContentGUID   string `json:"content_guid"`
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

func (s *Service) permissionJSON(ctx context.Context, c *store.Content, p *store.Permission) permissionJSON {
	j := permissionJSON{ID: strconv.FormatInt(p.ID, 10), ContentGUID: c.GUID, PrincipalType: "user", Role: p.Role}
	if u, err := s.st.User(ctx, p.UserID); err == nil {
		j.PrincipalGUID = u.GUID
	}
	return j
}

func (s *Service) listPermissions(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessViewer)
	if err != nil {
		return err
	}
	ps, err := s.st.Permissions(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := make([]permissionJSON, 0, len(ps))
	for i := range ps {
		out = append(out, s.permissionJSON(r.Context(), c, &ps[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

type permissionRequest struct {
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

func checkPermRole(role string) error {
	if role != store.PermViewer && role != store.PermOwner {
		return errStatus(http.StatusBadRequest, fmt.Sprintf("role %q is not valid: use viewer or owner", role))
	}
	return nil
}

// addPermission is POST .../permissions {principal_guid, principal_type: "user", role}.
func (s *Service) addPermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	var req permissionRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.PrincipalType != "" && req.PrincipalType != "user" {
		return errStatus(http.StatusBadRequest, "principal_type must be user: dais has no groups yet")
	}
	if err := checkPermRole(req.Role); err != nil {
		return err
	}
	u, err := s.st.UserByGUID(r.Context(), req.PrincipalGUID)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusBadRequest, "no user with guid "+req.PrincipalGUID)
	}
	if err != nil {
		return err
	}
	p := &store.Permission{ContentID: c.ID, UserID: u.ID, Role: req.Role}
	if err := s.st.SetPermission(r.Context(), p); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.permissionJSON(r.Context(), c, p))
	return nil
}

func (s *Service) permissionOf(r *http.Request, c *store.Content) (*store.Permission, error) {
	id, err := strconv.ParseInt(r.PathValue("pid"), 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusNotFound, "no permission "+r.PathValue("pid"))
	}
	p, err := s.st.Permission(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.ContentID != c.ID) {
		return nil, errStatus(http.StatusNotFound, "no permission "+r.PathValue("pid")+" on "+c.Name)
	}
	return p, err
}

func (s *Service) updatePermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	p, err := s.permissionOf(r, c)
	if err != nil {
		return err
	}
	var req permissionRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkPermRole(req.Role); err != nil {
		return err
	}
	p.Role = req.Role
	if err := s.st.SetPermission(r.Context(), p); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, s.permissionJSON(r.Context(), c, p))
	return nil
}

func (s *Service) deletePermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	p, err := s.permissionOf(r, c)
	if err != nil {
		return err
	}
	if err := s.st.DeletePermission(r.Context(), p.ID); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

type jobJSON struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	PID       int        `json:"pid"`
	AppID     string     `json:"app_id"`
	AppGUID   string     `json:"app_guid"`
	BundleID  string     `json:"bundle_id"`
	Tag       string     `json:"tag"`
	Hostname  string     `json:"hostname"`
	Status    int        `json:"status"` // 0 running, 1 finished (Connect's codes)
	ExitCode  *int       `json:"exit_code"`
	StartTime time.Time  `json:"start_time"`
	EndTime   *time.Time `json:"end_time"`
}

// listJobs is GET .../jobs: the content's processes, newest first.
func (s *Service) listJobs(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	jobs, err := s.st.ListJobs(r.Context(), c.ID, 100)
	if err != nil {
		return err
	}
	out := make([]jobJSON, 0, len(jobs))
	for _, j := range jobs {
		jj := jobJSON{
			ID: strconv.FormatInt(j.ID, 10), Key: j.Key, PID: j.PID, AppID: strconv.FormatInt(c.ID, 10), AppGUID: c.GUID,
			BundleID: strconv.FormatInt(j.BundleID, 10), Tag: j.Tag, Hostname: j.Node, ExitCode: j.ExitCode,
			StartTime: j.StartedAt.UTC(),
		}
		if !j.EndedAt.IsZero() {
			t := j.EndedAt.UTC()
			jj.EndTime, jj.Status = &t, 1
		}
		out = append(out, jj)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// jobLog is GET .../jobs/{key}/log: the process's output, last 1000 lines.
func (s *Service) jobLog(w http.ResponseWriter, r *http.Request) error {
	c, _, err := s.contentFor(r, accessEditor)
	if err != nil {
		return err
	}
	j, err := s.st.Job(r.Context(), r.PathValue("key"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ContentID != c.ID) {
		return errStatus(http.StatusNotFound, "no job "+r.PathValue("key")+" of "+c.Name)
	}
	if err != nil {
		return err
	}
	type entry struct {
		Source string `json:"source"`
		Data   string `json:"data"`
	}
	entries := []entry{}
	if j.LogPath != "" && strings.HasPrefix(filepath.Clean(j.LogPath), s.contentDir(c.ID)+"/") {
		b, err := os.ReadFile(j.LogPath)
		if err == nil {
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(lines) > 1000 {
				lines = lines[len(lines)-1000:]
			}
			for _, l := range lines {
				entries = append(entries, entry{Source: "output", Data: l})
			}
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"source": "both", "entries": entries})
	return nil
}
