package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Environment variables: names only ever leave the server.

func (a *API) writeEnvNames(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	names, err := a.st.EnvironmentNames(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if names == nil {
		names = []string{}
	}
	web.WriteJSON(w, http.StatusOK, names)
	return nil
}

func (a *API) getEnvironment(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	return a.writeEnvNames(w, r, c)
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
		if v.Value != nil && strings.IndexByte(*v.Value, 0) >= 0 {
			return nil, errStatus(http.StatusBadRequest, fmt.Sprintf("environment variable %s: its value holds a NUL byte, which no process environment can carry; remove it", v.Name))
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
func (a *API) setEnvironment(replace bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, _, err := a.contentFor(r, authz.Editor)
		if err != nil {
			return err
		}
		if c.Locked {
			return errLocked(c)
		}
		vars, err := decodeEnv(r)
		if err != nil {
			return err
		}
		if replace {
			old, err := a.st.EnvironmentNames(r.Context(), c.ID)
			if err != nil {
				return err
			}
			for _, n := range old {
				if !slices.ContainsFunc(vars, func(v store.EnvVar) bool { return v.Name == n }) {
					vars = append(vars, store.EnvVar{Name: n})
				}
			}
		}
		if err := a.st.UpdateEnvironment(r.Context(), c.ID, vars); err != nil {
			return err
		}
		a.dep.Restart(c)
		return a.writeEnvNames(w, r, c)
	}
}
