package web

import (
	"net/http"
	"net/url"
	"strings"
)

// The profile page, /connect/profile: who the user is (username, names,
// e-mail, role), a form to change their names and e-mail (PATCH
// /__api__/v1/users/{guid} in process, which lets users change those of
// their own and nothing else), and log out.

type profileData struct {
	PageData
	CSRF           string
	Me             apiUserFull
	Message, Error string
}

func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next=/connect/profile", http.StatusFound)
		return
	}
	d := profileData{PageData: s.pageData(r, "Profile"), CSRF: csrfToken(r, "profile"), Message: flashed(r, "msg"), Error: flashed(r, "err")}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/user", nil, &d.Me); st != http.StatusOK {
		d.Error = "Could not read your account: " + msg
	}
	s.render(w, s.pages.profile, http.StatusOK, d)
}

// handleProfileSave is POST /connect/profile: the names and e-mail.
func (s *Server) handleProfileSave(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next=/connect/profile", http.StatusSeeOther)
		return
	}
	if !readForm(w, r, "profile") {
		return
	}
	body := map[string]string{}
	for _, k := range []string{"first_name", "last_name", "email"} {
		body[k] = strings.TrimSpace(r.PostForm.Get(k))
	}
	q := url.Values{}
	if st, msg := s.callAPI(r, http.MethodPatch, "/__api__/v1/users/"+url.PathEscape(u.GUID), body, nil); st >= 300 {
		flash(r, q, "err", msg)
	} else {
		flash(r, q, "msg", "Saved.")
	}
	http.Redirect(w, r, "/connect/profile?"+q.Encode(), http.StatusSeeOther)
}
