package config

import (
	"errors"
	"fmt"
	"os/user"
)

// CheckRunAs refuses a run-as user (Applications.RunAs, a content's
// run_as) that content cannot run as: one that does not exist on this
// system, or root (uid 0). The error names the fix. Unlike the rest of
// this package it reads the system (the user database): dais serve and
// dais-init call it at start, the API when a content's run_as changes.
func CheckRunAs(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return fmt.Errorf("run-as user %q does not exist on this system: create it (useradd --system %s) or name an existing unprivileged user, such as rstudio-connect (uid 999 in the image)", name, name)
		}
		return fmt.Errorf("run-as user %q: %w", name, err)
	}
	if u.Uid == "0" {
		return fmt.Errorf("run-as user %q is root (uid 0): content must never run as root; name an unprivileged user, such as rstudio-connect (uid 999 in the image)", name)
	}
	return nil
}

// RunAsProblem is CheckRunAs of the configuration's Applications.RunAs as
// a line for the admin: where the value came from, the value, the fix;
// "" when the user will do.
func (l *Loaded) RunAsProblem() string {
	name := l.Config.Applications.RunAs
	err := CheckRunAs(name)
	if err == nil {
		return ""
	}
	where := l.Origin("Applications.RunAs")
	if where == "" {
		where = "default"
	}
	return fmt.Sprintf("%s: Applications.RunAs = %q: %v; set Applications.RunAs in the configuration, or %sAPPLICATIONS_RUNAS", where, name, err, EnvPrefix)
}
