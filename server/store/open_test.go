package store_test

import (
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

func TestPostgresURL(t *testing.T) {
	tests := []struct {
		name, url, password, want, wantErr string
	}{
		{"no password setting", "postgres://u:p@db:5432/dais?sslmode=disable", "", "postgres://u:p@db:5432/dais?sslmode=disable", ""},
		{"password replaces the URL's", "postgres://u:p@db:5432/dais?sslmode=disable", "s3cr:t@", "postgres://u:s3cr%3At%40@db:5432/dais?sslmode=disable", ""},
		{"password added", "postgresql://u@db/dais", "pw", "postgresql://u:pw@db/dais", ""},
		{"key=value form", "host=db user=u dbname=dais", "it's", `host=db user=u dbname=dais password='it\'s'`, ""},
		{"missing", "", "", "", "Postgres.URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Postgres.URL, cfg.Postgres.Password = tc.url, tc.password
			got, err := store.PostgresURL(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PostgresURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@db/dais":          "postgres://u:xxxxx@db/dais",
		"postgres://u@db/dais":                 "postgres://u@db/dais",
		"host=db password=secret user=u":       "host=db password=xxxxx user=u",
		`host=db password='sec ret\'s' user=u`: "host=db password=xxxxx user=u",
		"host=db user=u":                       "host=db user=u",
	} {
		if got := store.RedactURL(in); got != want || strings.Contains(got, "secret") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
