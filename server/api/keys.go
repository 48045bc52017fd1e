package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// API keys of the user who asks, as Connect's dashboard manages them:
// GET, POST /__api__/keys and DELETE /__api__/keys/{id}. A user sees and
// deletes only their own keys; a new key's secret is in the answer to its
// creation and nowhere else (only its hash is kept).

type keyJSON struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"key_prefix"`
	CreatedTime  time.Time  `json:"created_time"`
	LastUsedTime *time.Time `json:"last_used_time"`
	Key          string     `json:"key,omitempty"` // only in the answer to the creation
}

func newKeyJSON(k *store.APIKey) keyJSON {
	j := keyJSON{ID: strconv.FormatInt(k.ID, 10), Name: k.Name, Prefix: k.Prefix, CreatedTime: k.CreatedAt.UTC()}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt.UTC()
		j.LastUsedTime = &t
	}
	return j
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	keys, err := a.st.ListAPIKeys(r.Context(), u.ID)
	if err != nil {
		return err
	}
	out := make([]keyJSON, 0, len(keys))
	for i := range keys {
		out = append(out, newKeyJSON(&keys[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || len(req.Name) > 100 || strings.ContainsAny(req.Name, "\r\n\x00") {
		return errStatus(http.StatusBadRequest, "a key needs a name of 1 to 100 characters on one line, to tell it from your other keys")
	}
	key, rec, err := web.NewAPIKey()
	if err != nil {
		return err
	}
	rec.UserID, rec.Name, rec.CreatedAt = u.ID, req.Name, time.Now()
	if err := a.st.CreateAPIKey(r.Context(), &rec); err != nil {
		return err
	}
	web.RecordAudit(r.Context(), a.st, a.log, u, web.AuditAddAPIKey, fmt.Sprintf("Created API key %d %q", rec.ID, rec.Name))
	j := newKeyJSON(&rec)
	j.Key = key
	web.WriteJSON(w, http.StatusOK, j)
	return nil
}

func (a *API) deleteKey(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errStatus(http.StatusNotFound, "no key "+r.PathValue("id"))
	}
	keys, err := a.st.ListAPIKeys(r.Context(), u.ID)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.ID != id {
			continue
		}
		if err := a.st.DeleteAPIKey(r.Context(), id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		web.RecordAudit(r.Context(), a.st, a.log, u, web.AuditDropAPIKey, fmt.Sprintf("Deleted API key %d %q", k.ID, k.Name))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return errStatus(http.StatusNotFound, "no key "+r.PathValue("id")+" of "+u.Username)
}
