package web

import (
	"crypto/hmac"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The API keys page, /connect/keys: the user's own keys (list, create,
// delete), through the API's /__api__/keys in process, as the content
// page does (apppage.go). A new key is shown once, in the answer to the
// form that created it (never in a URL), with a button to copy it.

type apiKey struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"key_prefix"`
	CreatedTime  time.Time  `json:"created_time"`
	LastUsedTime *time.Time `json:"last_used_time"`
	Key          string     `json:"key"`
}

type keyRow struct {
	ID, Name, Prefix, Created, LastUsed string
}

type keysData struct {
	PageData
	CSRF           string
	Keys           []keyRow
	NewKey         string // the secret of the key just created; shown once
	NewName        string
	Message, Error string
}

func (s *Server) keysPage(w http.ResponseWriter, r *http.Request, d keysData, status int) {
	d.PageData = s.pageData(r, "API keys")
	d.CSRF = csrfToken(r, "keys")
	var keys []apiKey
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/keys", nil, &keys); st != http.StatusOK && d.Error == "" {
		d.Error = "Could not list your keys: " + msg
	}
	for _, k := range keys {
		row := keyRow{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Created: k.CreatedTime.UTC().Format("2006-01-02 15:04 UTC"), LastUsed: "never"}
		if k.LastUsedTime != nil {
			row.LastUsed = k.LastUsedTime.UTC().Format("2006-01-02 15:04 UTC")
		}
		d.Keys = append(d.Keys, row)
	}
	s.render(w, s.pages.keys, status, d)
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next=/connect/keys", http.StatusFound)
		return
	}
	s.keysPage(w, r, keysData{Message: flashed(r, "msg"), Error: flashed(r, "err")}, http.StatusOK)
}

// handleKeyAction is POST /connect/keys/{action}: create or delete.
func (s *Server) handleKeyAction(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next=/connect/keys", http.StatusSeeOther)
		return
	}
	if !readForm(w, r, "keys") {
		return
	}
	q := url.Values{}
	switch r.PathValue("action") {
	case "create":
		name := strings.TrimSpace(r.PostForm.Get("name"))
		var k apiKey
		if st, msg := s.callAPI(r, http.MethodPost, "/__api__/keys", map[string]string{"name": name}, &k); st != http.StatusOK {
			s.keysPage(w, r, keysData{Error: msg}, st)
			return
		}
		// Shown in this answer only; not cached, not in a URL.
		s.keysPage(w, r, keysData{NewKey: k.Key, NewName: k.Name}, http.StatusOK)
		return
	case "delete":
		id := r.PostForm.Get("id")
		if st, msg := s.callAPI(r, http.MethodDelete, "/__api__/keys/"+url.PathEscape(id), nil, nil); st >= 300 {
			flash(r, q, "err", msg)
		} else {
			flash(r, q, "msg", "Deleted the key "+r.PostForm.Get("name")+".")
		}
	default:
		http.NotFound(w, r)
		return
	}
	http.Redirect(w, r, "/connect/keys?"+q.Encode(), http.StatusSeeOther)
}

// readForm parses a dashboard form's POST and checks its CSRF token, made
// for form (csrfToken); on failure it answers (the body's error, 400, or
// 403 for a token that is missing or not this form's) and says false.
func readForm(w http.ResponseWriter, r *http.Request, form string) bool {
	if err := r.ParseForm(); err != nil {
		if status, msg, ok := BodyError(err); ok {
			http.Error(w, msg, status)
			return false
		}
		http.Error(w, "malformed form", http.StatusBadRequest)
		return false
	}
	want := csrfToken(r, form)
	if want == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(want)) {
		http.Error(w, "this form has expired or did not come from this page; reload the page and try again", http.StatusForbidden)
		return false
	}
	return true
}
