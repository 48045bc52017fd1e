package api

import (
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// ConnectVersion is the Posit Connect release whose API dais implements,
// reported as server_settings.version: the clients compare it as a Connect
// version (rsconnect-python with semver, connectapi with compareVersion)
// and turn features on by it, so it must parse as one. It stays below
// 2025.12, from which rsconnect-python uploads bundles as multipart forms.
// dais's own version is in build.
const ConnectVersion = "2024.08.0"

// serverSettings is GET /__api__/server_settings; public: rsconnect reads
// version before it has checked the key.
func (a *API) serverSettings(w http.ResponseWriter, r *http.Request) {
	cfg := a.web.Config()
	ok, reason := a.web.Licensed()
	host, _ := os.Hostname()
	var runtimes []string
	for _, rt := range []struct {
		name    string
		enabled bool
	}{{"R", cfg.R.Enabled}, {"Python", cfg.Python.Enabled}, {"Quarto", cfg.Quarto.Enabled}} {
		if rt.enabled {
			runtimes = append(runtimes, rt.name)
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"version":  ConnectVersion,
		"build":    "dais " + a.web.Version(),
		"hostname": host,
		"authentication": map[string]any{
			"name":                "Password",
			"handles_credentials": true,
			"handles_login":       true,
			"unique_usernames":    true,
		},
		// The fields Posit Publisher and connectapi read: dais has no
		// licensed features, so every one is on.
		"license": map[string]any{
			"type":                   cfg.Licensing.LicenseType,
			"ok":                     ok,
			"reason":                 reason,
			"status":                 map[bool]string{true: "activated", false: "expired"}[ok],
			"allow-apis":             true,
			"current-user-execution": false,
			"enable-launcher":        false,
			"oauth-integrations":     false,
		},
		"runtimes":                        runtimes,
		"execution_type":                  "native",
		"git_enabled":                     false,
		"git_available":                   false,
		"enable_runtime_constraints":      false,
		"enable_image_management":         false,
		"enable_runtime_cache_management": true,
		"r":                               map[string]any{"enabled": cfg.R.Enabled},
		"python":                          map[string]any{"enabled": cfg.Python.Enabled},
		"quarto":                          map[string]any{"enabled": cfg.Quarto.Enabled},
	})
}

// applicationSettings is GET /__api__/server_settings/applications.
func (a *API) applicationSettings(w http.ResponseWriter, r *http.Request) {
	runAs := a.web.Config().Applications.RunAs
	if runAs == "" {
		runAs = "rstudio-connect"
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"access_types":        []string{store.AccessAll, store.AccessLoggedIn, store.AccessACL},
		"run_as":              runAs,
		"run_as_group":        "",
		"run_as_current_user": false,
	})
}

// schedulerSettings is GET /__api__/server_settings/scheduler and
// /scheduler/{app_mode}: the [Scheduler] defaults of process pools (the
// same for every app mode). A limit of 0 means none, as in Connect.
func (a *API) schedulerSettings(w http.ResponseWriter, r *http.Request) {
	if mode := r.PathValue("app_mode"); mode != "" && !manifest.AppMode(mode).Known() {
		web.WriteError(w, http.StatusNotFound, "unknown app mode "+mode+": use an app mode of manifest.json, such as shiny, python-api or quarto-static")
		return
	}
	s := a.web.Config().Scheduler
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"min_processes":         s.MinProcesses,
		"max_processes":         s.MaxProcesses,
		"max_conns_per_process": 0,
		"load_factor":           0.5,
		"init_timeout":          int64(s.InitTimeout.Std() / time.Second),
		"idle_timeout":          int64(s.IdleTimeout.Std() / time.Second),
		"min_processes_limit":   maxProcessesLimit,
		"max_processes_limit":   maxProcessesLimit,
		"connection_timeout":    int64(s.ConnectionTimeout.Std() / time.Second),
		"read_timeout":          int64(s.ReadTimeout.Std() / time.Second),
		"cpu_request":           0,
		"max_cpu_request":       s.MaxCPULimit,
		"cpu_limit":             s.CPULimit,
		"max_cpu_limit":         s.MaxCPULimit,
		"memory_request":        0,
		"max_memory_request":    s.MaxMemoryLimit,
		"memory_limit":          s.MemoryLimit,
		"max_memory_limit":      s.MaxMemoryLimit,
		"amd_gpu_limit":         0,
		"max_amd_gpu_limit":     0,
		"nvidia_gpu_limit":      0,
		"max_nvidia_gpu_limit":  0,
	})
}

// maxProcessesLimit is the highest min_processes and max_processes a
// content may set (content.go checks it).
const maxProcessesLimit = 1000

// installation is one runtime as Connect lists them.
type installation struct {
	Version     string `json:"version"`
	ClusterName string `json:"cluster_name"`
	ImageName   string `json:"image_name"`
}

// runtimeSettings is GET /__api__/v1/server_settings/{r,python,quarto}:
// the installations dais found ([R] Executable and /opt/R/*, and so on).
func (a *API) runtimeSettings(lang manifest.Language) http.Handler {
	return a.handler(func(w http.ResponseWriter, r *http.Request) error {
		found, err := a.dep.Installations(r.Context(), lang)
		if err != nil && len(found) == 0 {
			a.log.Warn("find runtimes", "language", lang, logKeyErr, err)
		}
		out := struct {
			Installations []installation `json:"installations"`
			APIEnabled    *bool          `json:"api_enabled,omitempty"`
		}{Installations: []installation{}}
		for _, i := range found {
			out.Installations = append(out.Installations, installation{Version: i.Version.String(), ClusterName: "Local", ImageName: "Local"})
		}
		if lang == manifest.LangPython {
			on := true
			out.APIEnabled = &on
		}
		web.WriteJSON(w, http.StatusOK, out)
		return nil
	})
}

// tensorflowSettings is GET /__api__/v1/server_settings/tensorflow: dais
// serves no TensorFlow models, so no installations (connectapi's
// get_runtimes asks for them with R's, Python's and Quarto's).
func (a *API) tensorflowSettings(w http.ResponseWriter, r *http.Request) {
	web.WriteJSON(w, http.StatusOK, map[string]any{"installations": []installation{}})
}

// zoneLocations are the time zones of schedule.Zones, loaded once: the
// list and the rules change with a package upgrade, which restarts the
// server (before, each request listed the directory and read 597 files).
var zoneLocations = sync.OnceValue(func() []*time.Location {
	var out []*time.Location
	for _, name := range schedule.Zones() {
		if loc, err := time.LoadLocation(name); err == nil {
			out = append(out, loc)
		}
	}
	return out
})

// timezones is GET /__api__/v1/timezones (and /__api__/timezones): the
// IANA time zones schedules may use, with their offset now.
func (a *API) timezones(w http.ResponseWriter, r *http.Request) {
	type zone struct {
		Timezone string `json:"timezone"`
		Offset   string `json:"offset"`
	}
	now := time.Now()
	out := []zone{}
	for _, loc := range zoneLocations() {
		out = append(out, zone{Timezone: loc.String(), Offset: now.In(loc).Format("-07:00")})
	}
	web.WriteJSON(w, http.StatusOK, out)
}
