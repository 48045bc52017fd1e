package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

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

func (a *API) uploadBundle(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	if err := a.dep.CheckSpace(r.ContentLength); err != nil {
		return err // 507 before a byte is read
	}
	web.AllowUpload(r) // an editor of c: the bundle may take its time
	b, err := a.dep.ReceiveBundle(r.Context(), c, r.Body)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newBundleJSON(c, b))
	return nil
}

func (a *API) listBundles(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	bs, err := a.st.ListBundles(r.Context(), c.ID)
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

func (a *API) getBundle(w http.ResponseWriter, r *http.Request) error {
	c, b, err := a.bundleFor(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newBundleJSON(c, b))
	return nil
}

// bundleFor is the request's content and its bundle {bid}, for an
// editor of the content.
func (a *API) bundleFor(r *http.Request) (*store.Content, *store.Bundle, error) {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return nil, nil, err
	}
	b, err := a.dep.BundleOf(r.Context(), c, r.PathValue("bid"))
	return c, b, err
}

// downloadBundle is GET .../bundles/{bid}/download: the archive as it was
// uploaded, byte for byte.
func (a *API) downloadBundle(w http.ResponseWriter, r *http.Request) error {
	_, b, err := a.bundleFor(r)
	if err != nil {
		return err
	}
	f, err := a.dep.OpenArchive(b)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="bundle-%d.tar.gz"`, b.ID))
	http.ServeContent(w, r, "", b.CreatedAt, f)
	return nil
}

// deleteBundle is DELETE .../bundles/{bid}: not the active bundle.
func (a *API) deleteBundle(w http.ResponseWriter, r *http.Request) error {
	c, b, err := a.bundleFor(r)
	if err != nil {
		return err
	}
	if err := a.dep.DeleteBundle(r.Context(), c, b); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
