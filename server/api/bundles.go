package api

import (
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
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	b, err := a.dep.BundleOf(r.Context(), c, r.PathValue("bid"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newBundleJSON(c, b))
	return nil
}

// bundleOf finds a bundle of c by its id; "" means the newest.
