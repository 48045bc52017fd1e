package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLDAPCACertificate: TLSCACertificate must be a readable PEM file.
func TestLDAPCACertificate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{notPEM, "holds no PEM certificate"},
		{filepath.Join(dir, "missing.pem"), "cannot read it"},
	} {
		cfg := Defaults()
		cfg.Server.DataDir = "/data"
		cfg.Authentication.Provider = "ldap"
		l := cfg.Default_LDAP
		l.ServerAddress, l.StartTLS, l.TLSCACertificate = "ldap.example.com:389", true, c.file
		l.BindDN, l.BindPassword, l.UserSearchBaseDN = "cn=dais,dc=example,dc=com", "pw", "dc=example,dc=com"
		cfg.LDAP = map[string]*LDAP{"corp": &l}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), `"pw"`) {
			t.Errorf("TLSCACertificate %s: %v, want %q (and no password)", c.file, err, c.want)
		}
	}
}

// TestClientSecretFile: OAuth2.ClientSecretFile instead of ClientSecret,
// read at each use.
func TestClientSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := func() *Config {
		c := Defaults()
		c.Server.DataDir = "/data"
		c.Authentication.Provider = "oauth2"
		c.OAuth2.ClientId, c.OAuth2.OpenIDConnectIssuer = "dais", "https://login.example.com/"
		return c
	}
	c := base()
	c.OAuth2.ClientSecretFile = file
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if s, err := c.OAuth2.Secret(); err != nil || s != "s3cret" {
		t.Errorf("Secret() = %q %v, want s3cret", s, err)
	}
	if err := os.WriteFile(file, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.OAuth2.Secret(); s != "rotated" {
		t.Errorf("after a rotation Secret() = %q, want the file's new content", s)
	}
	for _, x := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.OAuth2.ClientSecretFile = "secret" }, "must be an absolute path"},
		{func(c *Config) { c.OAuth2.ClientSecretFile = empty }, "is empty"},
		{func(c *Config) { c.OAuth2.ClientSecretFile = filepath.Join(dir, "nope") }, "read OAuth2.ClientSecretFile"},
		{func(c *Config) { c.OAuth2.ClientSecretFile, c.OAuth2.ClientSecret = file, "x" }, "set one of them"},
		{func(c *Config) {}, "OAuth2.ClientSecretFile"},
	} {
		c := base()
		x.set(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), x.want) {
			t.Errorf("%+v: %v, want %q", c.OAuth2, err, x.want)
		}
	}
}
