package api

import (
	"net/http"
	"os"

	"github.com/dais-dev/dais/server/web"
)

// serverSettings is public: rsconnect reads version before it has
// checked the key.
func (a *API) serverSettings(w http.ResponseWriter, r *http.Request) {
	cfg := a.web.Config()
	ok, reason := a.web.Licensed()
	host, _ := os.Hostname()
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"version":  a.web.Version(),
		"build":    "dais " + a.web.Version(),
		"hostname": host,
		"authentication": map[string]any{
			"name":                "Password",
			"handles_credentials": true,
			"handles_login":       true,
			"unique_usernames":    true,
		},
		"license": map[string]any{
			"type":   cfg.Licensing.LicenseType,
			"ok":     ok,
			"reason": reason,
		},
		"r":      map[string]any{"enabled": cfg.R.Enabled},
		"python": map[string]any{"enabled": cfg.Python.Enabled},
		"quarto": map[string]any{"enabled": cfg.Quarto.Enabled},
	})
}
